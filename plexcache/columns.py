"""The one column spec: every table and view column of the cache.

Each ``Column`` has a name, its SQL type (with constraints), a description
(shown by Datasette, checked by ``tests/test_docs.py``) and, for the tables
the sync writes from the staging database, the SQL ``value`` the apply
writes (over the staged row ``s`` and its cached album ``al`` and artist
``ar``; ``None`` means the staged column of the same name, as is).

Derived from here:

- ``schema.TABLES_SQL`` (the CREATE statements) and the tables of
  ``facet_counts`` and ``overview``;
- the staging tables (``STAGE_TRACK_COLUMNS``: the tracks columns staged as
  is, and what the apply derives the others from);
- the apply's ``insert ... select`` (named columns, ``apply_select``);
- the Datasette column descriptions (``datasette_plexcache.metadata``).

Adding a track column read from Plex: a ``Column`` in ``TRACKS`` and its name
in ``STAGE_TRACK_COLUMNS`` here, and its value in ``rows.track_row`` (in
``STAGE_TRACK_COLUMNS`` order); the schema upgrade of existing caches
(``ALTER TABLE ... ADD COLUMN``), the apply and Datasette follow.

No imports from the rest of plexcache: everything may import this.
"""

from __future__ import annotations

from dataclasses import dataclass

# 2: facet_counts, facet_counts_state and their triggers
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    value: str | None = None  # what the apply writes; None: the staged column of this name


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    constraints: tuple[str, ...] = ()  # table constraints, e.g. a composite PRIMARY KEY
    options: str = ""  # after the closing parenthesis, e.g. " WITHOUT ROWID"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def descriptions(self) -> dict[str, str]:
        return {c.name: c.description for c in self.columns}

    def create_sql(self) -> str:
        lines = [f"    {c.name} {c.type}".rstrip() for c in self.columns]
        lines += [f"    {c}" for c in self.constraints]
        return f"\nCREATE TABLE {self.name} (\n" + ",\n".join(lines) + f"\n){self.options}"

    def apply_select(self, source: str) -> str:
        """``select <value> as <name>, ...`` for the apply, in column order:
        ``source`` is the FROM clause, naming the staged rows ``s``"""
        values = ", ".join(f"{c.value or 's.' + c.name} as {c.name}" for c in self.columns)
        return f"select {values} from {source}"


def _c(name: str, type_: str, description: str, value: str | None = None) -> Column:
    return Column(name, type_, description, value)


SECTIONS = Table(
    "sections",
    (
        _c("id", "INTEGER PRIMARY KEY", "Plex's library section id"),
        _c("uuid", "TEXT", "Plex's unique id for the library section"),
        _c("title", "TEXT NOT NULL", "Library name as shown in Plex"),
        _c(
            "content_changed_at",
            "INTEGER",
            "Plex's change counter for the section; incremental syncs start from it",
        ),
        _c("track_count", "INTEGER", "Tracks in this library at the last sync"),
        _c("synced_at", "TIMESTAMP", "When this library was last synced (UTC)"),
    ),
)

ARTISTS = Table(
    "artists",
    (
        _c("rating_key", "TEXT PRIMARY KEY", "Plex's id for the artist"),
        _c("name", "TEXT NOT NULL", "Artist name"),
        _c("genres", "TEXT", "Genres as a JSON array"),
        _c("added_at", "TIMESTAMP", "When the artist was added to the Plex library (UTC)"),
        _c("updated_at", "TIMESTAMP", "When Plex last changed the artist's metadata (UTC)"),
        _c("section_id", "INTEGER REFERENCES sections(id)", "The Plex music library (sections.id)"),
    ),
)

ALBUMS = Table(
    "albums",
    (
        _c("rating_key", "TEXT PRIMARY KEY", "Plex's id for the album"),
        _c("title", "TEXT NOT NULL", "Album title"),
        # the artist row's name when the cache has it (artist renames follow)
        _c("artist", "TEXT", "Album artist", "coalesce(ar.name, s.artist)"),
        _c("year", "INTEGER", "Release year"),
        _c("genres", "TEXT", "Genres as a JSON array"),
        _c("subformats", "TEXT", 'Plex subformats as a JSON array, e.g. ["Live", "Compilation"]'),
        _c("is_live", "BOOLEAN", "1 when the album is marked Live"),
        _c("studio", "TEXT", "Record label"),
        _c("added_at", "TIMESTAMP", "When the album was added to the Plex library (UTC)"),
        _c("updated_at", "TIMESTAMP", "When Plex last changed the album's metadata (UTC)"),
        _c(
            "artist_rating_key",
            "TEXT REFERENCES artists(rating_key)",
            "The album artist (artists.rating_key)",
        ),
        _c("section_id", "INTEGER REFERENCES sections(id)", "The Plex music library (sections.id)"),
    ),
)

# The first ten are the original spec's columns, in its order.
TRACKS = Table(
    "tracks",
    (
        _c("rating_key", "TEXT PRIMARY KEY", "Plex's id for the track (ratingKey)"),
        _c("title", "TEXT NOT NULL", "Track title"),
        _c(
            "artist",
            "TEXT NOT NULL",
            "Track artist: the track's own artist when Plex has one, else the album artist",
            "coalesce(s.track_artist, ar.name, s.album_artist, '')",
        ),
        _c("album", "TEXT NOT NULL", "Album title", "coalesce(al.title, s.album_title, '')"),
        _c("duration_ms", "INTEGER", "Length in milliseconds (track_details shows it as m:ss)"),
        _c(
            "year",
            "INTEGER",
            "Release year: the track's own year, else its album's",
            "coalesce(s.own_year, al.year, s.parent_year)",
        ),
        _c(
            "genres",
            "TEXT",
            'Genres as a JSON array, e.g. ["Rock", "Indie"]: the track\'s own, else its album\'s',
            "coalesce(s.own_genres, nullif(al.genres, '[]'), nullif(ar.genres, '[]'), '[]')",
        ),
        _c(
            "user_rating",
            "INTEGER",
            "Your rating, 0-10 (Plex stores half stars; 10 = five stars); empty when unrated",
        ),
        _c(
            "is_live",
            "BOOLEAN",
            "1 when the album is marked as a live recording in Plex",
            "coalesce(al.is_live, 0)",
        ),
        _c("updated_at", "TIMESTAMP", "When Plex last changed this track's metadata (UTC)"),
        _c(
            "album_artist",
            "TEXT",
            "The album's artist (Plex grandparentTitle)",
            "coalesce(ar.name, s.album_artist)",
        ),
        _c(
            "track_artist",
            "TEXT",
            "The track's own artist when it differs from the album's (Plex originalTitle)",
            # servers send originalTitle even when it is the album artist (plex-wire-format §13)
            "nullif(s.track_artist, coalesce(ar.name, s.album_artist))",
        ),
        _c("track_number", "INTEGER", "Position on the disc"),
        _c("disc_number", "INTEGER", "Disc number on multi-disc albums"),
        _c("play_count", "INTEGER NOT NULL DEFAULT 0", "Times played to the end (Plex viewCount)"),
        _c("skip_count", "INTEGER NOT NULL DEFAULT 0", "Times skipped"),
        _c("last_played_at", "TIMESTAMP", "When the track was last played (UTC)"),
        _c("last_rated_at", "TIMESTAMP", "When you last rated it (UTC)"),
        _c("added_at", "TIMESTAMP", "When the track was added to the Plex library (UTC)"),
        _c("codec", "TEXT", "Audio codec of the first media file, e.g. flac, mp3, aac"),
        _c("bitrate", "INTEGER", "Bitrate of the first media file, kbit/s"),
        _c(
            "album_rating_key",
            "TEXT REFERENCES albums(rating_key)",
            "The album (albums.rating_key)",
        ),
        _c(
            "artist_rating_key",
            "TEXT REFERENCES artists(rating_key)",
            "The album artist (artists.rating_key)",
        ),
        _c("section_id", "INTEGER REFERENCES sections(id)", "The Plex music library (sections.id)"),
    ),
)

#: The columns of ``stage.tracks``, in the order ``rows.track_row`` returns
#: them: every tracks column whose ``value`` is None (staged as is), and what
#: the apply derives the others from.
STAGE_TRACK_COLUMNS = (
    "rating_key",
    "title",
    "track_artist",  # originalTitle as listed (tracks.track_artist: NULL when it is the album artist)
    "album_artist",  # grandparentTitle as listed (tracks.album_artist prefers the artist row)
    "album_title",  # parentTitle as listed
    "parent_year",  # parentYear as listed
    "own_year",  # the track's own year
    "own_genres",  # the track's own genres (JSON array), NULL when none
    "listed_genres",  # how many Genre tags the listing showed (NULL: the row comes from a full item)
    "duration_ms",
    "user_rating",
    "updated_at",
    "track_number",
    "disc_number",
    "play_count",
    "skip_count",
    "last_played_at",
    "last_rated_at",
    "added_at",
    "codec",
    "bitrate",
    "album_rating_key",
    "artist_rating_key",
    "section_id",
)
_unstaged = [
    c.name for c in TRACKS.columns if c.value is None and c.name not in STAGE_TRACK_COLUMNS
]
assert not _unstaged, f"tracks columns staged as is must be in STAGE_TRACK_COLUMNS: {_unstaged}"

SYNC_STATE = Table(
    "sync_state",
    (
        _c("id", "INTEGER PRIMARY KEY CHECK (id = 1)", "Always 1: this table has a single row"),
        _c("plex_server_id", "TEXT", "The Plex server's machine identifier"),
        _c("last_sync_at", "TIMESTAMP", "When the last successful sync finished (UTC)"),
        _c("track_count", "INTEGER", "Tracks in the cache after that sync"),
        _c("sync_duration_ms", "INTEGER", "How long that sync took, in milliseconds"),
    ),
)

SYNC_RUNS = Table(
    "sync_runs",
    (
        _c("id", "INTEGER PRIMARY KEY", "Run number"),
        _c("started_at", "TIMESTAMP NOT NULL", "When the run started (UTC)"),
        _c("finished_at", "TIMESTAMP", "When it ended (UTC); empty while running"),
        _c(
            "mode",
            "TEXT NOT NULL",
            "full (re-read everything), incremental (only what changed) or live (only what Plex announced)",
        ),
        _c(
            "status",
            "TEXT NOT NULL",
            "running, succeeded, failed or interrupted (the process died)",
        ),
        _c(
            "phase",
            "TEXT",
            "What the sync is doing or last did: connecting, history, tracks, deletions, metadata, applying, done",
        ),
        _c("progress_current", "INTEGER NOT NULL DEFAULT 0", "Tracks processed so far"),
        _c("progress_total", "INTEGER NOT NULL DEFAULT 0", "Tracks to process"),
        _c("tracks_added", "INTEGER NOT NULL DEFAULT 0", "Tracks new in the cache"),
        _c("tracks_updated", "INTEGER NOT NULL DEFAULT 0", "Tracks whose data changed"),
        _c(
            "tracks_removed",
            "INTEGER NOT NULL DEFAULT 0",
            "Tracks gone from Plex and removed from the cache",
        ),
        _c("http_requests", "INTEGER NOT NULL DEFAULT 0", "Requests sent to the Plex server"),
        _c("duration_ms", "INTEGER", "How long the run took, in milliseconds"),
        _c("error", "TEXT", "Why the run failed (never contains the token)"),
        _c("warning", "TEXT", "Problems that did not stop the run, e.g. skipped items"),
        _c("trigger", "TEXT", "What started it: cli, web, startup, watch (`plexcache watch`)"),
        _c("section", "TEXT", "The library synced, when limited to one"),
        _c("server_id", "TEXT", "The Plex server's machine identifier"),
        _c("server_time", "INTEGER", "The server's clock at the start, used for incremental syncs"),
        _c("pid", "INTEGER", "Process id of the sync"),
    ),
)

WATCH_STATE = Table(
    "watch_state",
    (
        _c("id", "INTEGER PRIMARY KEY CHECK (id = 1)", "Always 1: this table has a single row"),
        _c(
            "state",
            "TEXT NOT NULL",
            "What `plexcache watch` is doing: starting, connecting, connected, disconnected, "
            "polling (the server has no notification websocket) or stopped",
        ),
        _c("since", "TIMESTAMP", "When it entered that state (UTC)"),
        _c("detail", "TEXT", "Why it is disconnected or polling (never contains the token)"),
        _c("last_event_at", "TIMESTAMP", "When the last notification from Plex arrived (UTC)"),
        _c(
            "last_change_at",
            "TIMESTAMP",
            "When the last announced change was applied to the cache (UTC)",
        ),
        _c(
            "events",
            "INTEGER NOT NULL DEFAULT 0",
            "Notifications received since the watcher started",
        ),
        _c("pid", "INTEGER", "Process id of the watcher"),
        _c("started_at", "TIMESTAMP", "When the watcher started (UTC)"),
    ),
)

FACET_COUNTS = Table(
    "facet_counts",
    (
        _c("facet", "TEXT NOT NULL", "The tracks column: artist, year, is_live or genres"),
        _c("value", "NOT NULL", "A value of that column (for genres: one genre of the JSON array)"),
        _c("n", "INTEGER NOT NULL", "Tracks with that value"),
    ),
    constraints=("PRIMARY KEY (facet, value)",),
    options=" WITHOUT ROWID",
)

FACET_COUNTS_STATE = Table(
    "facet_counts_state",
    (
        _c("id", "INTEGER PRIMARY KEY CHECK (id = 1)", "Always 1: this table has a single row"),
        _c(
            "status",
            "TEXT NOT NULL",
            "current (the counts match tracks), stale (tracks changed without them: pages count live) or applying",
        ),
        _c("total", "INTEGER NOT NULL DEFAULT 0", "Tracks counted"),
        _c("counted_at", "TIMESTAMP", "When the counts were last recomputed from scratch (UTC)"),
    ),
)

LISTING_FACTS = Table(
    "listing_facts",
    (
        _c("server_id", "TEXT NOT NULL", "The Plex server's machine identifier"),
        _c(
            "version",
            "TEXT NOT NULL",
            "Its Plex Media Server version; another version is learned again",
        ),
        _c("item_type", "TEXT NOT NULL", "The listed items: track"),
        _c("tag", "TEXT NOT NULL", "The kind of tag: Genre"),
        _c(
            "cap",
            "INTEGER",
            "Listings cut this tag at this many: the fewest a listing showed of an item that has more "
            "(empty: never seen cut)",
        ),
        _c(
            "max_shown",
            "INTEGER",
            "The most tags a listing showed of an item that has exactly those (empty: none compared)",
        ),
        _c(
            "compared",
            "INTEGER NOT NULL DEFAULT 0",
            "Items whose listing was compared with their full item",
        ),
        _c("learned_at", "TIMESTAMP", "When this server version was first seen (UTC)"),
        _c("checked_at", "TIMESTAMP", "The last sync that used or refined these facts (UTC)"),
    ),
    constraints=("PRIMARY KEY (server_id, version, item_type, tag)",),
)

# Listening history (plexcache/sync/history.py). Plays outlive their tracks:
# no foreign key on rating_key, and titles are Plex's snapshots.
PLAYS = Table(
    "plays",
    (
        _c(
            "history_id",
            "INTEGER PRIMARY KEY",
            "Plex's id for the play (the number at the end of historyKey)",
        ),
        _c(
            "rating_key",
            "TEXT",
            "The track played (tracks.rating_key); kept when the track is deleted, empty when Plex never sent it",
        ),
        _c(
            "account_id",
            "INTEGER REFERENCES accounts(id)",
            "Who played it (accounts.id; 1 is the server owner)",
        ),
        _c(
            "device_id",
            "INTEGER REFERENCES devices(id)",
            "The player (devices.id); empty when Plex did not record it",
        ),
        _c("viewed_at", "TIMESTAMP", "When it was played (UTC)"),
        _c("section_id", "INTEGER", "The Plex music library (sections.id)"),
        _c("title", "TEXT", "Track title as Plex recorded it for this play"),
        _c("artist", "TEXT", "Artist as Plex recorded it for this play (grandparentTitle)"),
        _c("album", "TEXT", "Album as Plex recorded it for this play (parentTitle)"),
        _c("track_number", "INTEGER", "Position on the disc, as recorded for this play"),
        _c("disc_number", "INTEGER", "Disc number, as recorded for this play"),
    ),
)

ACCOUNTS = Table(
    "accounts",
    (
        _c(
            "id",
            "INTEGER PRIMARY KEY",
            "Plex's account id on this server (1 is the owner, 0 a system account)",
        ),
        _c("name", "TEXT", "Account name"),
        _c("thumb", "TEXT", "Avatar URL, when Plex has one"),
        _c("default_audio_language", "TEXT", "The account's preferred audio language"),
    ),
)

DEVICES = Table(
    "devices",
    (
        _c("id", "INTEGER PRIMARY KEY", "Plex's device id on this server"),
        _c("name", "TEXT", "Device name, e.g. iPhone or Plexamp"),
        _c("platform", "TEXT", "Platform, e.g. iOS or Android; empty when Plex does not know"),
        _c("client_identifier", "TEXT", "The player's unique client identifier"),
        _c("created_at", "TIMESTAMP", "When the device first connected to the server (UTC)"),
    ),
)

HISTORY_SYNC = Table(
    "history_sync",
    (
        _c("section_id", "INTEGER PRIMARY KEY", "The Plex music library (sections.id)"),
        _c(
            "synced_at",
            "TIMESTAMP",
            "When its listening history was last read (server clock, UTC); later syncs read plays from here",
        ),
        _c(
            "listed",
            "INTEGER",
            "Plays Plex listed for it at that read: a later count that does not add up means a full re-read",
        ),
        _c(
            "account_id",
            "INTEGER",
            "Set when the token may only read one account's plays (a managed user's token): that account",
        ),
        _c(
            "play_state_synced_at",
            "TIMESTAMP",
            "Since when the tracks' play counts were last asked for (they are not asked when nothing was played)",
        ),
    ),
)

OVERVIEW_COUNTS = Table(
    "overview_counts",
    (
        _c(
            "metric",
            "TEXT NOT NULL",
            "tracks (how many), duration_ms (their total length) or added_month",
        ),
        _c("key", "TEXT NOT NULL", "For added_month: the month, YYYY-MM; empty for the totals"),
        _c("n", "INTEGER NOT NULL", "The number: tracks, milliseconds, or tracks added that month"),
    ),
    constraints=("PRIMARY KEY (metric, key)",),
    options=" WITHOUT ROWID",
)

OVERVIEW_STATE = Table(
    "overview_state",
    (
        _c("id", "INTEGER PRIMARY KEY CHECK (id = 1)", "Always 1: this table has a single row"),
        _c(
            "status",
            "TEXT NOT NULL",
            "current (the numbers match tracks), stale (the overview computes live) or applying",
        ),
        _c("total", "INTEGER NOT NULL DEFAULT 0", "Tracks counted"),
        _c("counted_at", "TIMESTAMP", "When the numbers were last recomputed from scratch (UTC)"),
    ),
)

#: The cache's tables, in creation order; the precounted ones are created by
#: facet_counts.py and overview.py (with their triggers)
TABLES = (
    SECTIONS,
    ARTISTS,
    ALBUMS,
    TRACKS,
    SYNC_STATE,
    SYNC_RUNS,
    PLAYS,
    ACCOUNTS,
    DEVICES,
    HISTORY_SYNC,
    WATCH_STATE,
    LISTING_FACTS,
)
FACET_TABLES = (FACET_COUNTS, FACET_COUNTS_STATE)
OVERVIEW_TABLES = (OVERVIEW_COUNTS, OVERVIEW_STATE)

_t = TRACKS.descriptions
_a = ALBUMS.descriptions

#: Column descriptions of the views (their SQL is in ``schema.VIEWS``)
VIEW_COLUMNS: dict[str, dict[str, str]] = {
    "track_details": {
        "rating_key": _t["rating_key"],
        "title": _t["title"],
        "artist": _t["artist"],
        "album": _t["album"],
        "year": _t["year"],
        "decade": "Decade of the release year, e.g. 1990",
        "duration": "Length as m:ss",
        "genres": _t["genres"],
        "user_rating": _t["user_rating"],
        "stars": "Your rating in stars, 0-5",
        "play_count": _t["play_count"],
        "last_played_at": _t["last_played_at"],
        "added_at": _t["added_at"],
        "is_live": _t["is_live"],
        "codec": _t["codec"],
        "section": "Library name",
    },
    "artist_summary": {
        "artist": "Track artist",
        "tracks": "Tracks by this artist",
        "albums": "Distinct albums",
        "hours": "Total length in hours",
        "plays": "Total plays",
        "first_year": "Earliest release year",
        "last_year": "Latest release year",
    },
    "album_summary": {
        "rating_key": _a["rating_key"],
        "title": _a["title"],
        "artist": _a["artist"],
        "year": _a["year"],
        "genres": _a["genres"],
        "is_live": _a["is_live"],
        "tracks": "Tracks in the cache for this album",
        "minutes": "Total length in minutes",
        "plays": "Total plays of its tracks",
    },
}


_p = PLAYS.descriptions
VIEW_COLUMNS["listening"] = {
    "history_id": _p["history_id"],
    "viewed_at": _p["viewed_at"],
    "year": "Year of the play (UTC)",
    "month": "Month of the play, e.g. 2024-05 (UTC)",
    "hour": "Hour of the day of the play, 0-23 (UTC)",
    "account_id": _p["account_id"],
    "account": "Account name",
    "device_id": _p["device_id"],
    "device": "Device name",
    "platform": DEVICES.descriptions["platform"],
    "rating_key": _p["rating_key"],
    "title": _p["title"],
    "artist": _p["artist"],
    "album": "Album title: the track's album now, else as Plex recorded it for the play",
    "album_rating_key": _t["album_rating_key"],
    "duration_ms": "The track's length in milliseconds (empty when the track is no longer in the library)",
    "genres": _t["genres"],
    "release_year": _t["year"],
    "in_library": "1 while the track is still in the library",
    "section_id": _p["section_id"],
}
VIEW_COLUMNS["plays_per_month"] = {
    "month": "Month, e.g. 2024-05 (UTC)",
    "plays": "Plays that month",
    "tracks": "Distinct tracks played",
    "accounts": "Accounts that listened",
    "minutes": "Minutes listened (tracks still in the library)",
}


def descriptions() -> dict[str, dict[str, str]]:
    "{table or view: {column: description}} for every table and view"
    out = {t.name: t.descriptions for t in (*TABLES, *FACET_TABLES, *OVERVIEW_TABLES)}
    out.update({name: dict(cols) for name, cols in VIEW_COLUMNS.items()})
    return out
