"""Datasette metadata for a plexcache database: descriptions, facets, queries.

Column descriptions come from ``plexcache.columns`` (the one column spec);
table descriptions, facets, sort orders and stored queries are here.

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

from plexcache.columns import descriptions

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
        "description": "Tracks nobody has played: no play count and no play in the listening history, "
        "newest additions first.",
        "sql": """select rating_key, title, artist, album, year, added_at
from tracks t
where play_count = 0
  and not exists (select 1 from plays p where p.rating_key = t.rating_key)
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

# Listening history (the plays table and the listening view)
_SINCE_180_DAYS = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-180 days')"
HISTORY_QUERIES = {
    "top_tracks_of_year": {
        "title": "Top tracks of a year",
        "description": "The most played tracks of a year (e.g. 2024), every account counted.",
        "sql": """select rating_key, title, artist, album, count(*) as plays,
  round(sum(coalesce(duration_ms, 0)) / 60000.0) as minutes
from listening
where year = cast(:year as integer)
group by coalesce(rating_key, title || ' / ' || artist)
order by plays desc
limit 100""",
    },
    "top_artists_of_year": {
        "title": "Top artists of a year",
        "description": "The most played artists of a year (e.g. 2024), with hours listened.",
        "sql": """select artist, count(*) as plays, count(distinct rating_key) as tracks,
  round(sum(coalesce(duration_ms, 0)) / 3600000.0, 1) as hours
from listening
where year = cast(:year as integer)
group by artist
order by plays desc
limit 100""",
    },
    "minutes_per_month_per_account": {
        "title": "Minutes listened per month per account",
        "description": "Listening time by month and account (tracks still in the library; "
        "plays carry no duration of their own).",
        "sql": """select month, coalesce(account, account_id) as account, count(*) as plays,
  round(sum(coalesce(duration_ms, 0)) / 60000.0) as minutes
from listening
group by month, account_id
order by month desc, minutes desc""",
    },
    "forgotten_favourites": {
        "title": "Forgotten favourites",
        "description": "Tracks played at least 5 times, but not in the last 180 days.",
        "sql": f"""select t.rating_key, t.title, t.artist, t.album, count(*) as plays,
  max(p.viewed_at) as last_played
from plays p join tracks t on t.rating_key = p.rating_key
group by t.rating_key
having count(*) >= 5 and max(p.viewed_at) < {_SINCE_180_DAYS}
order by plays desc
limit 100""",
    },
}
QUERIES.update(HISTORY_QUERIES)

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
    columns = descriptions()  # every column's description, from plexcache.columns
    tables = {
        "tracks": {
            "description": "One row per music track in Plex. Search covers title, artist and album.",
            "sort_desc": "added_at",
            # Datasette's column and array facets, answered from facet_counts
            # on the unfiltered table (facets.py); filtered pages count live.
            "facets": copy.deepcopy(TRACK_FACETS),
            "columns": columns["tracks"],
        },
        "albums": {
            "description": "One row per album.",
            "label_column": "title",
            "sort_desc": "added_at",
            "facets": ["year", {"array": "genres"}, "is_live"],
            "columns": columns["albums"],
        },
        "artists": {
            "description": "One row per album artist.",
            "label_column": "name",
            "sort": "name",
            "facets": [{"array": "genres"}],
            "columns": columns["artists"],
        },
        "sections": {
            "description": "The Plex music libraries that were synced.",
            "label_column": "title",
            "columns": columns["sections"],
        },
        "sync_state": {
            "description": "The last successful sync: one row.",
            "columns": columns["sync_state"],
        },
        "sync_runs": {
            "description": "Every sync, newest first: when, how, what changed and why it failed.",
            "sort_desc": "id",
            "facets": ["status", "mode", "trigger"],
            "columns": columns["sync_runs"],
        },
        "track_details": {
            "description": "Tracks with length as m:ss, decade, stars and library name.",
            "facets": ["decade", {"array": "genres"}, "is_live"],
            "columns": columns["track_details"],
        },
        "artist_summary": {
            "description": "Per artist: tracks, albums, hours of music, plays, years active.",
            "sort_desc": "tracks",
            "columns": columns["artist_summary"],
        },
        "album_summary": {
            "description": "Per album: tracks, total minutes and plays.",
            "columns": columns["album_summary"],
        },
        "plays": {
            "description": "Every play Plex's listening history listed, kept even after Plex forgets it "
            "or the track is deleted. Titles are as Plex recorded them for the play.",
            "sort_desc": "viewed_at",
            "facets": ["account_id", "device_id", "section_id"],
            "columns": columns["plays"],
        },
        "accounts": {
            "description": "The server's accounts (who played what).",
            "label_column": "name",
            "columns": columns["accounts"],
        },
        "devices": {
            "description": "The players the server has seen.",
            "label_column": "name",
            "facets": ["platform"],
            "columns": columns["devices"],
        },
        "listening": {
            "description": "Every play with its account, device and the track as the library has it now "
            "(genres, duration, album).",
            "sort_desc": "viewed_at",
            "facets": ["account", "device", "year", "month"],
            "columns": columns["listening"],
        },
        "plays_per_month": {
            "description": "Plays, distinct tracks, accounts and minutes listened per month.",
            "sort_desc": "month",
            "columns": columns["plays_per_month"],
        },
        "history_sync": {
            "description": "Where each library's listening-history sync stands: one row per library.",
            "hidden": True,
            "columns": columns["history_sync"],
        },
        "listing_facts": {
            "description": "What the sync learned of each Plex version's track listings: how many genres "
            "they show, hence which tracks it reads in full (README, How a sync works).",
            "hidden": True,
            "columns": columns["listing_facts"],
        },
        "watch_state": {
            "description": "What `plexcache watch` (the live cache) is doing: one row.",
            "hidden": True,
            "columns": columns["watch_state"],
        },
        "facet_counts": {
            "description": "Tracks per value of each default facet of tracks, kept by the sync "
            "for the unfiltered tracks page.",
            "hidden": True,
            "columns": columns["facet_counts"],
        },
        "facet_counts_state": {
            "description": "Whether facet_counts is current: one row.",
            "hidden": True,
            "columns": columns["facet_counts_state"],
        },
        "overview_counts": {
            "description": "The overview's totals and tracks added per month, kept by the sync.",
            "hidden": True,
            "columns": columns["overview_counts"],
        },
        "overview_state": {
            "description": "Whether overview_counts is current: one row.",
            "hidden": True,
            "columns": columns["overview_state"],
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
