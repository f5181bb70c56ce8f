"""The cache's tables, indexes, full-text search and views.

``ensure_shape(db)`` is the one idempotent step that creates or upgrades all of
it; the sync engine calls it before and after every sync, so readers
(Datasette, notebooks, ``sqlite3``) always find the same shape.

The columns (names, types, descriptions) are in ``columns.py``: ``tracks``
and ``sync_state`` start with exactly the columns of the original quickstart
spec; ``tracks`` then adds the columns people analysing a music library want.

``facet_counts`` (see ``facet_counts.py``) holds the tracks table's default
facet counts; ensure_shape creates it and counts once when a cache gets it.
"""

from __future__ import annotations

import sqlite3

from . import facet_counts, overview
from .columns import SCHEMA_VERSION, TABLES

__all__ = ["ensure_shape", "SCHEMA_VERSION", "TABLES_SQL", "INDEXES", "VIEWS", "FTS_COLUMNS"]

#: The CREATE TABLE statements, derived from columns.py
TABLES_SQL = {t.name: t.create_sql() for t in TABLES}

INDEXES = {
    "tracks": [
        ["artist"],
        ["album"],
        ["year"],
        ["is_live"],
        ["added_at"],
        ["updated_at"],
        ["user_rating"],
        ["play_count"],
        ["last_played_at"],
        ["album_rating_key"],
        ["artist_rating_key"],
        ["section_id"],
    ],
    "albums": [["artist_rating_key"], ["year"], ["section_id"]],
    "artists": [["section_id"]],
    "sync_runs": [["status"], ["started_at"]],
    "plays": [["viewed_at"], ["rating_key"], ["account_id"], ["device_id"], ["section_id"]],
}

FTS_COLUMNS = ["title", "artist", "album"]
FTS_TRIGGERS = {"tracks_ai", "tracks_ad", "tracks_au"}

VIEWS = {
    "track_details": """
SELECT
    t.rating_key,
    t.title,
    t.artist,
    t.album,
    t.year,
    (t.year / 10) * 10 AS decade,
    CASE WHEN t.duration_ms IS NULL THEN NULL
         ELSE (t.duration_ms / 60000) || ':' || printf('%02d', (t.duration_ms / 1000) % 60)
    END AS duration,
    t.genres,
    t.user_rating,
    CASE WHEN t.user_rating IS NULL THEN NULL ELSE t.user_rating / 2.0 END AS stars,
    t.play_count,
    t.last_played_at,
    t.added_at,
    t.is_live,
    t.codec,
    s.title AS section
FROM tracks t LEFT JOIN sections s ON s.id = t.section_id""",
    "artist_summary": """
SELECT
    t.artist,
    count(*) AS tracks,
    count(DISTINCT t.album_rating_key) AS albums,
    round(sum(coalesce(t.duration_ms, 0)) / 3600000.0, 1) AS hours,
    sum(t.play_count) AS plays,
    min(t.year) AS first_year,
    max(t.year) AS last_year
FROM tracks t
GROUP BY t.artist""",
    "album_summary": """
SELECT
    a.rating_key,
    a.title,
    a.artist,
    a.year,
    a.genres,
    a.is_live,
    count(t.rating_key) AS tracks,
    round(sum(coalesce(t.duration_ms, 0)) / 60000.0, 1) AS minutes,
    sum(coalesce(t.play_count, 0)) AS plays
FROM albums a LEFT JOIN tracks t ON t.album_rating_key = a.rating_key
GROUP BY a.rating_key""",
    # Listening history: every play with the track as the library has it now
    # (a play of a deleted track keeps the titles Plex recorded).
    "listening": """
SELECT
    p.history_id,
    p.viewed_at,
    CAST(substr(p.viewed_at, 1, 4) AS INTEGER) AS year,
    substr(p.viewed_at, 1, 7) AS month,
    CAST(substr(p.viewed_at, 12, 2) AS INTEGER) AS hour,
    p.account_id,
    a.name AS account,
    p.device_id,
    d.name AS device,
    d.platform,
    p.rating_key,
    p.title,
    p.artist,
    coalesce(t.album, p.album) AS album,
    t.album_rating_key,
    t.duration_ms,
    t.genres,
    t.year AS release_year,
    t.rating_key IS NOT NULL AS in_library,
    p.section_id
FROM plays p
LEFT JOIN tracks t ON t.rating_key = p.rating_key
LEFT JOIN accounts a ON a.id = p.account_id
LEFT JOIN devices d ON d.id = p.device_id""",
    "plays_per_month": """
SELECT
    substr(p.viewed_at, 1, 7) AS month,
    count(*) AS plays,
    count(DISTINCT p.rating_key) AS tracks,
    count(DISTINCT p.account_id) AS accounts,
    round(sum(coalesce(t.duration_ms, 0)) / 60000.0, 1) AS minutes
FROM plays p LEFT JOIN tracks t ON t.rating_key = p.rating_key
GROUP BY month
ORDER BY month""",
}


def ensure_shape(db) -> None:
    """Create or complete every table, index, FTS table and view. Idempotent.

    ``db`` is a ``sqlite_utils.Database`` or a ``sqlite3.Connection``. Safe to
    run on a cache written by an older plexcache: missing columns are added,
    existing data is kept. A cache already in shape costs one query.

    Plain SQL, written as sqlite-utils writes it (same index names, FTS table
    and triggers, so caches made either way are identical): importing
    sqlite-utils costs ~0.4 s and ~40 MB when pandas and numpy are installed,
    which it imports whenever they are, on every first sync.
    """
    conn = db if isinstance(db, sqlite3.Connection) else db.conn
    if _in_shape(conn):
        return
    previous_version = conn.execute("pragma user_version").fetchone()[0]
    with conn:
        for name, sql in TABLES_SQL.items():
            if not _exists(conn, "table", name):
                conn.execute(sql)
            else:
                _add_missing_columns(conn, name, sql)
        for table, index_list in INDEXES.items():
            for columns in index_list:
                conn.execute(_index_sql(table, columns))
        facet_counts.create(conn)
        overview.create(conn)
    # The FTS table and its triggers together: a process killed in between
    # leaves a search index nothing keeps current, so recreate both.
    if _fts_sql() != _schema_of(conn, "tracks_fts") or not FTS_TRIGGERS <= _names(
        conn, "trigger", "tracks"
    ):
        with conn:
            for trigger in FTS_TRIGGERS:
                conn.execute(f"DROP TRIGGER IF EXISTS {_q(trigger)}")
            conn.execute(f"DROP TABLE IF EXISTS {_q('tracks_fts')}")
            conn.execute(_fts_sql())
            conn.execute("INSERT INTO [tracks_fts] (rowid, " + ", ".join(map(_q, FTS_COLUMNS)) + ") SELECT rowid, "
                         + ", ".join(map(_q, FTS_COLUMNS)) + " FROM [tracks]")  # fmt: skip
            for sql in _fts_trigger_sql():
                conn.execute(sql)
    with conn:
        for name, sql in VIEWS.items():
            create = f"CREATE VIEW {_q(name)} AS {sql.strip()}"
            if _schema_of(conn, name) != create:
                conn.execute(f"DROP VIEW IF EXISTS {_q(name)}")
                conn.execute(create)
    # Count once when the counts are new to this file, were not maintained
    # (stale, or a total that is not the row count), or another plexcache
    # version wrote the file since (it sets its own user_version, and may not
    # maintain them).
    counts = facet_counts.state(conn)
    if (
        previous_version != SCHEMA_VERSION
        or counts is None
        or counts["status"] != "current"
        or counts["total"] != conn.execute("select count(*) from tracks").fetchone()[0]
    ):
        _recount(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _q(name: str) -> str:
    "An identifier quoted as sqlite-utils quotes it"
    return '"' + name.replace('"', '""') + '"'


def _exists(conn: sqlite3.Connection, kind: str, name: str) -> bool:
    return (
        conn.execute(
            "select 1 from sqlite_master where type = ? and name = ?", (kind, name)
        ).fetchone()
        is not None
    )


def _names(conn: sqlite3.Connection, kind: str, table: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "select name from sqlite_master where type = ? and tbl_name = ?", (kind, table)
        )
    }


def _schema_of(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("select sql from sqlite_master where name = ?", (name,)).fetchone()
    return row[0] if row else None


def _index_sql(table: str, columns: list[str]) -> str:
    "sqlite-utils' ``create_index(columns, if_not_exists=True)``"
    name = "idx_{}_{}".format(
        table.replace(" ", "_"), "_".join(c.replace(" ", "_") for c in columns)
    )
    return (
        f"CREATE INDEX IF NOT EXISTS {_q(name)}\n    ON {_q(table)} ({', '.join(map(_q, columns))})"
    )


def _fts_sql() -> str:
    "sqlite-utils' ``enable_fts(FTS_COLUMNS, tokenize='unicode61')`` on tracks"
    return (
        f"CREATE VIRTUAL TABLE {_q('tracks_fts')} USING FTS5 (\n    {', '.join(map(_q, FTS_COLUMNS))},\n"
        f"    tokenize='unicode61',\n    content={_q('tracks')}\n)"
    )


def _fts_trigger_sql() -> list[str]:
    "the triggers sqlite-utils' ``enable_fts(create_triggers=True)`` creates"
    cols = ", ".join(map(_q, FTS_COLUMNS))
    old = ", ".join(f"old.{_q(c)}" for c in FTS_COLUMNS)
    new = ", ".join(f"new.{_q(c)}" for c in FTS_COLUMNS)
    t, fts = _q("tracks"), _q("tracks_fts")
    delete = f"INSERT INTO {fts} ({fts}, rowid, {cols}) VALUES('delete', old.rowid, {old});"
    insert = f"INSERT INTO {fts} (rowid, {cols}) VALUES (new.rowid, {new});"
    return [
        f"CREATE TRIGGER {_q('tracks_ai')} AFTER INSERT ON {t} BEGIN\n  {insert}\nEND",
        f"CREATE TRIGGER {_q('tracks_ad')} AFTER DELETE ON {t} BEGIN\n  {delete}\nEND",
        f"CREATE TRIGGER {_q('tracks_au')} AFTER UPDATE ON {t} BEGIN\n  {delete}\n  {insert}\nEND",
    ]


def _recount(conn: sqlite3.Connection) -> None:
    "facet_counts.recount in a transaction of its own (or the caller's)"
    own = not conn.in_transaction
    if own:
        conn.execute("begin immediate")
    try:
        facet_counts.recount(conn)
        if own:
            conn.execute("commit")
    except BaseException:
        if own and conn.in_transaction:
            conn.execute("rollback")
        raise


def _add_missing_columns(conn: sqlite3.Connection, table: str, create_sql: str) -> None:
    existing = {r[1] for r in conn.execute(f"pragma table_info({_q(table)})")}
    for line in create_sql.splitlines():
        line = line.strip().rstrip(",")
        if not line or line.upper().startswith(("CREATE", ")")):
            continue
        column = line.split()[0]
        if column not in existing and column.upper() not in ("PRIMARY", "FOREIGN", "CHECK"):
            definition = line.replace(" NOT NULL DEFAULT", " DEFAULT")
            conn.execute(f"ALTER TABLE [{table}] ADD COLUMN {definition}")


def _in_shape(conn: sqlite3.Connection) -> bool:
    "True when a previous ensure_shape of this version completed on this file"
    if conn.execute("pragma user_version").fetchone()[0] != SCHEMA_VERSION:
        return False
    names = {
        r[0]
        for r in conn.execute(
            "select name from sqlite_master where type in ('table', 'view', 'trigger')"
        )
    }
    return names >= {
        *TABLES_SQL,
        *VIEWS,
        "tracks_fts",
        *FTS_TRIGGERS,
        *facet_counts.NAMES,
        *overview.NAMES,
    }
