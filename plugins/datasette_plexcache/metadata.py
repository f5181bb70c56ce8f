"""Datasette metadata for a plexcache database: descriptions, facets, queries.

``build_metadata(name)`` returns one dict in the 0.65 layout (everything in
``metadata``). ``split_for_datasette_1(metadata)`` moves the parts the 1.0
alphas read from ``datasette.yaml`` (table options, stored queries, plugins)
into a config dict. ``datasette_kwargs()`` picks the right layout for the
installed Datasette. Run ``python -m datasette_plexcache.metadata NAME`` to
print it as JSON for use with ``datasette -m``.
"""

from __future__ import annotations

import copy
import json
import sys

TRACK_COLUMNS = {
    "rating_key": "Plex's id for the track (ratingKey)",
    "title": "Track title",
    "artist": "Track artist: the track's own artist when Plex has one, else the album artist",
    "album": "Album title",
    "duration_ms": "Length in milliseconds (track_details shows it as m:ss)",
    "year": "Release year: the track's own year, else its album's",
    "genres": 'Genres as a JSON array, e.g. ["Rock", "Indie"]: the track\'s own, else its album\'s',
    "user_rating": "Your rating, 0-10 (Plex stores half stars; 10 = five stars); empty when unrated",
    "is_live": "1 when the album is marked as a live recording in Plex",
    "updated_at": "When Plex last changed this track's metadata (UTC)",
    "album_artist": "The album's artist (Plex grandparentTitle)",
    "track_artist": "The track's own artist when it differs from the album's (Plex originalTitle)",
    "track_number": "Position on the disc",
    "disc_number": "Disc number on multi-disc albums",
    "play_count": "Times played to the end (Plex viewCount)",
    "skip_count": "Times skipped",
    "last_played_at": "When the track was last played (UTC)",
    "last_rated_at": "When you last rated it (UTC)",
    "added_at": "When the track was added to the Plex library (UTC)",
    "codec": "Audio codec of the first media file, e.g. flac, mp3, aac",
    "bitrate": "Bitrate of the first media file, kbit/s",
    "album_rating_key": "The album (albums.rating_key)",
    "artist_rating_key": "The album artist (artists.rating_key)",
    "section_id": "The Plex music library (sections.id)",
}

ALBUM_COLUMNS = {
    "rating_key": "Plex's id for the album",
    "title": "Album title",
    "artist": "Album artist",
    "year": "Release year",
    "genres": "Genres as a JSON array",
    "subformats": 'Plex subformats as a JSON array, e.g. ["Live", "Compilation"]',
    "is_live": "1 when the album is marked Live",
    "studio": "Record label",
    "added_at": "When the album was added to the Plex library (UTC)",
    "updated_at": "When Plex last changed the album's metadata (UTC)",
    "artist_rating_key": "The album artist (artists.rating_key)",
    "section_id": "The Plex music library (sections.id)",
}

ARTIST_COLUMNS = {
    "rating_key": "Plex's id for the artist",
    "name": "Artist name",
    "genres": "Genres as a JSON array",
    "added_at": "When the artist was added to the Plex library (UTC)",
    "updated_at": "When Plex last changed the artist's metadata (UTC)",
    "section_id": "The Plex music library (sections.id)",
}

SECTION_COLUMNS = {
    "id": "Plex's library section id",
    "uuid": "Plex's unique id for the library section",
    "title": "Library name as shown in Plex",
    "content_changed_at": "Plex's change counter for the section; incremental syncs start from it",
    "track_count": "Tracks in this library at the last sync",
    "synced_at": "When this library was last synced (UTC)",
}

SYNC_STATE_COLUMNS = {
    "id": "Always 1: this table has a single row",
    "plex_server_id": "The Plex server's machine identifier",
    "last_sync_at": "When the last successful sync finished (UTC)",
    "track_count": "Tracks in the cache after that sync",
    "sync_duration_ms": "How long that sync took, in milliseconds",
}

SYNC_RUN_COLUMNS = {
    "id": "Run number",
    "started_at": "When the run started (UTC)",
    "finished_at": "When it ended (UTC); empty while running",
    "mode": "full (re-read everything) or incremental (only what changed)",
    "status": "running, succeeded, failed or interrupted (the process died)",
    "phase": "What a running sync is doing: connecting, counting, tracks, albums, sweeping…",
    "progress_current": "Tracks processed so far",
    "progress_total": "Tracks to process",
    "tracks_added": "Tracks new in the cache",
    "tracks_updated": "Tracks whose data changed",
    "tracks_removed": "Tracks gone from Plex and removed from the cache",
    "http_requests": "Requests sent to the Plex server",
    "duration_ms": "How long the run took, in milliseconds",
    "error": "Why the run failed (never contains the token)",
    "warning": "Problems that did not stop the run, e.g. skipped items",
    "trigger": "What started it: cli, web, startup",
    "section": "The library synced, when limited to one",
    "server_id": "The Plex server's machine identifier",
    "server_time": "The server's clock at the start, used for incremental syncs",
    "pid": "Process id of the sync",
}

TRACK_DETAILS_COLUMNS = {
    "rating_key": TRACK_COLUMNS["rating_key"],
    "title": TRACK_COLUMNS["title"],
    "artist": TRACK_COLUMNS["artist"],
    "album": TRACK_COLUMNS["album"],
    "year": TRACK_COLUMNS["year"],
    "decade": "Decade of the release year, e.g. 1990",
    "duration": "Length as m:ss",
    "genres": TRACK_COLUMNS["genres"],
    "user_rating": TRACK_COLUMNS["user_rating"],
    "stars": "Your rating in stars, 0-5",
    "play_count": TRACK_COLUMNS["play_count"],
    "last_played_at": TRACK_COLUMNS["last_played_at"],
    "added_at": TRACK_COLUMNS["added_at"],
    "is_live": TRACK_COLUMNS["is_live"],
    "codec": TRACK_COLUMNS["codec"],
    "section": "Library name",
}

ARTIST_SUMMARY_COLUMNS = {
    "artist": "Track artist",
    "tracks": "Tracks by this artist",
    "albums": "Distinct albums",
    "hours": "Total length in hours",
    "plays": "Total plays",
    "first_year": "Earliest release year",
    "last_year": "Latest release year",
}

ALBUM_SUMMARY_COLUMNS = {
    "rating_key": ALBUM_COLUMNS["rating_key"],
    "title": ALBUM_COLUMNS["title"],
    "artist": ALBUM_COLUMNS["artist"],
    "year": ALBUM_COLUMNS["year"],
    "genres": ALBUM_COLUMNS["genres"],
    "is_live": ALBUM_COLUMNS["is_live"],
    "tracks": "Tracks in the cache for this album",
    "minutes": "Total length in minutes",
    "plays": "Total plays of its tracks",
}

FACET_COUNTS_COLUMNS = {
    "facet": "The tracks column: artist, year, is_live or genres",
    "value": "A value of that column (for genres: one genre of the JSON array)",
    "n": "Tracks with that value",
}

FACET_COUNTS_STATE_COLUMNS = {
    "id": "Always 1: this table has a single row",
    "status": "current (the counts match tracks), stale (tracks changed without them: pages count live) or applying",
    "total": "Tracks counted",
    "counted_at": "When the counts were last recomputed from scratch (UTC)",
}

# The tracks table's default facets: Datasette's column facets and the genres
# array facet, as the plugin's precounted types (datasette_plexcache.facets)
TRACK_FACETS = [
    {"precounted": "artist"},
    {"precounted": "year"},
    {"precounted_array": "genres"},
    {"precounted": "is_live"},
]

QUERIES = {
    "top_artists_by_hours": {
        "title": "Top artists by hours of music",
        "description": "Who fills your library: total length per artist.",
        "sql": """select artist, count(*) as tracks,
  round(sum(coalesce(duration_ms, 0)) / 3600000.0, 1) as hours,
  sum(play_count) as plays
from tracks
group by artist
order by hours desc
limit 100""",
    },
    "never_played": {
        "title": "Never played",
        "description": "Tracks with no plays, newest additions first.",
        "sql": """select rating_key, title, artist, album, year, added_at
from tracks
where play_count = 0
order by added_at desc
limit 500""",
    },
    "genres_by_decade": {
        "title": "Genres by decade",
        "description": "Track counts per genre and decade, from the genres JSON arrays.",
        "sql": """select (tracks.year / 10) * 10 as decade, genre.value as genre, count(*) as tracks
from tracks, json_each(tracks.genres) as genre
where tracks.year is not null and json_valid(tracks.genres)
group by decade, genre
order by decade, tracks desc""",
    },
    "recently_added": {
        "title": "Recently added",
        "description": "The 100 most recently added tracks.",
        "sql": """select rating_key, title, artist, album, year, added_at
from tracks
order by added_at desc
limit 100""",
    },
}

# Table options the 1.0 alphas read from datasette.yaml rather than metadata.
TABLE_CONFIG_KEYS = (
    "hidden",
    "sort",
    "sort_desc",
    "size",
    "sortable_columns",
    "label_column",
    "facets",
    "fts_table",
    "fts_pk",
    "searchmode",
)


def build_metadata(database: str) -> dict:
    "The metadata dict (0.65 layout) for a plexcache database called ``database``"
    tables = {
        "tracks": {
            "description": "One row per music track in Plex. Search covers title, artist and album.",
            "sort_desc": "added_at",
            # Datasette's column and array facets, answered from facet_counts
            # on the unfiltered table (facets.py); filtered pages count live.
            "facets": copy.deepcopy(TRACK_FACETS),
            "columns": TRACK_COLUMNS,
        },
        "albums": {
            "description": "One row per album.",
            "label_column": "title",
            "sort_desc": "added_at",
            "facets": ["year", {"array": "genres"}, "is_live"],
            "columns": ALBUM_COLUMNS,
        },
        "artists": {
            "description": "One row per album artist.",
            "label_column": "name",
            "sort": "name",
            "facets": [{"array": "genres"}],
            "columns": ARTIST_COLUMNS,
        },
        "sections": {
            "description": "The Plex music libraries that were synced.",
            "label_column": "title",
            "columns": SECTION_COLUMNS,
        },
        "sync_state": {
            "description": "The last successful sync: one row.",
            "columns": SYNC_STATE_COLUMNS,
        },
        "sync_runs": {
            "description": "Every sync, newest first: when, how, what changed and why it failed.",
            "sort_desc": "id",
            "facets": ["status", "mode", "trigger"],
            "columns": SYNC_RUN_COLUMNS,
        },
        "track_details": {
            "description": "Tracks with length as m:ss, decade, stars and library name.",
            "facets": ["decade", {"array": "genres"}, "is_live"],
            "columns": TRACK_DETAILS_COLUMNS,
        },
        "artist_summary": {
            "description": "Per artist: tracks, albums, hours of music, plays, years active.",
            "sort_desc": "tracks",
            "columns": ARTIST_SUMMARY_COLUMNS,
        },
        "album_summary": {
            "description": "Per album: tracks, total minutes and plays.",
            "columns": ALBUM_SUMMARY_COLUMNS,
        },
        "facet_counts": {
            "description": "Tracks per value of each default facet of tracks, kept by the sync "
            "for the unfiltered tracks page.",
            "hidden": True,
            "columns": FACET_COUNTS_COLUMNS,
        },
        "facet_counts_state": {
            "description": "Whether facet_counts is current: one row.",
            "hidden": True,
            "columns": FACET_COUNTS_STATE_COLUMNS,
        },
    }
    return {
        "title": "Plex music library",
        "description": (
            "A local SQLite cache of a Plex music library, kept up to date by plexcache. "
            "Browse tracks, albums and artists, facet by genre or year, or search."
        ),
        "source": "Plex Media Server, via plexcache",
        "databases": {
            database: {
                "title": "Plex music library",
                "description": "Tracks, albums and artists synced from Plex, plus the sync history.",
                "tables": tables,
                "queries": copy.deepcopy(QUERIES),
            }
        },
    }


def split_for_datasette_1(metadata: dict) -> tuple[dict, dict]:
    """(metadata, config) for Datasette 1.0a: table options, queries and
    plugins move to the config dict, descriptions stay in metadata"""
    metadata = copy.deepcopy(metadata)
    config: dict = {}
    if "plugins" in metadata:
        config["plugins"] = metadata.pop("plugins")
    for name, database in (metadata.get("databases") or {}).items():
        db_config = {}
        if "queries" in database:
            db_config["queries"] = database.pop("queries")
        for table_name, table in (database.get("tables") or {}).items():
            moved = {key: table.pop(key) for key in TABLE_CONFIG_KEYS if key in table}
            if moved:
                db_config.setdefault("tables", {})[table_name] = moved
        if db_config:
            config.setdefault("databases", {})[name] = db_config
    return metadata, config


def uses_config_file() -> bool:
    """True on the 1.0 line, which reads table options and queries from config=

    (By version, not by signature: Datasette's pytest plugin wraps __init__.)
    """
    from datasette.version import __version__

    return int(__version__.split(".")[0]) >= 1


def datasette_kwargs(
    database: str, *, plugin_config: dict | None = None, settings: dict | None = None
) -> dict:
    "``metadata=``/``config=``/``settings=`` keyword arguments for ``Datasette()``"
    metadata = build_metadata(database)
    if plugin_config is not None:
        metadata["plugins"] = {"plexcache": plugin_config}
    kwargs: dict = {}
    if uses_config_file():
        metadata, config = split_for_datasette_1(metadata)
        kwargs["config"] = config
    kwargs["metadata"] = metadata
    if settings:
        kwargs["settings"] = settings
    return kwargs


if __name__ == "__main__":  # pragma: no cover
    name = sys.argv[1] if len(sys.argv) > 1 else "library_cache"
    meta = build_metadata(name)
    if len(sys.argv) > 2 and sys.argv[2] == "--config":
        meta = split_for_datasette_1(meta)[1]
    elif len(sys.argv) > 2 and sys.argv[2] == "--metadata-1":
        meta = split_for_datasette_1(meta)[0]
    json.dump(meta, sys.stdout, indent=2)
    sys.stdout.write("\n")
