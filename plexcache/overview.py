"""The library overview's numbers, kept current like ``facet_counts``.

The overview (the web front's home page) shows the library's size and a few
distributions. At 1,000,000 tracks, summing durations or grouping ``added_at``
by month takes 0.3-1 s, too slow for a page everybody opens first, so the
cache keeps what ``facet_counts`` does not already hold:

``overview_counts(metric, key, n)``
    ``tracks`` / ``''``: the number of tracks; ``duration_ms`` / ``''``: the
    sum of their durations; ``added_month`` / ``'YYYY-MM'``: tracks added to
    Plex in that month (``substr(added_at, 1, 7)``; tracks without
    ``added_at`` count nowhere).

``overview_state`` (one row)
    ``status`` ``current`` / ``stale`` / ``applying`` and the ``total`` counted,
    as ``facet_counts_state``.

How they stay right (the same contract as ``facet_counts``):

- ``recount(conn)``: everything from ``tracks``, in the caller's transaction.
- ``subtract(conn, keys_sql)`` before and ``add(conn, keys_sql)`` after an
  incremental apply; ``add`` without a matching ``subtract`` (a bulk apply,
  or counts that were not current) recounts instead.
- Triggers on ``tracks`` (insert, delete, update of ``added_at`` or
  ``duration_ms``) and on deleting ``sync_state`` (a reset) mark current
  counts ``stale``.

Decades, top genres and top artists come from ``facet_counts`` (``year``,
``genres``, ``artist``). ``read(conn)`` returns everything the overview
shows, from the stored counts when they can be trusted and computed live when
not (an old cache, a write that bypassed them): slower, never wrong.

Listening over time comes from a ``plays`` table (one row per play, with
``viewed_at`` ISO-8601 UTC) when the cache has one with rows; it is grouped
live, indexed by ``viewed_at`` if the table has such an index.

No web code here: the Datasette plugin turns ``read``'s dict into charts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from . import facet_counts
from .columns import OVERVIEW_TABLES

TABLE = "tracks"
MONTH = "substr(added_at, 1, 7)"
#: How many artists / genres the overview lists
TOP = 15

TABLES_SQL = {t.name: t.create_sql() for t in OVERVIEW_TABLES}

_STALE = "UPDATE overview_state SET status = 'stale' WHERE status = 'current';"
TRIGGERS_SQL = {
    "overview_tracks_ai": f"CREATE TRIGGER {{schema}}.overview_tracks_ai AFTER INSERT ON tracks BEGIN {_STALE} END",
    "overview_tracks_ad": f"CREATE TRIGGER {{schema}}.overview_tracks_ad AFTER DELETE ON tracks BEGIN {_STALE} END",
    "overview_tracks_au": (
        f"CREATE TRIGGER {{schema}}.overview_tracks_au AFTER UPDATE OF added_at, duration_ms "
        f"ON tracks BEGIN {_STALE} END"
    ),
    "overview_sync_state_ad": (
        f"CREATE TRIGGER {{schema}}.overview_sync_state_ad AFTER DELETE ON sync_state BEGIN {_STALE} END"
    ),
}

NAMES = (*TABLES_SQL, *TRIGGERS_SQL)
_MARK = "overview_applying"  # temp table: "subtract ran on this connection, add has not"


def create(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Create the missing tables and triggers, and count once when the numbers
    were never counted on this file (``schema.ensure_shape`` calls it, in its
    transaction). Needs ``tracks`` and ``sync_state``."""
    existing = _create_tables(conn, schema)
    for name, sql in TRIGGERS_SQL.items():
        if name not in existing:
            conn.execute(sql.format(schema=schema))
    if state(conn, schema) is None:
        recount(conn, schema)


def _create_tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    """The tables, not the triggers: a bulk apply drops the triggers of
    ``tracks`` and restores them itself, so ``recount`` must not add any"""
    existing = {
        r[0]
        for r in conn.execute(
            f"select name from {schema}.sqlite_master where type in ('table', 'trigger')"
        )
    }
    for name, sql in TABLES_SQL.items():
        if name not in existing:
            conn.execute(sql.replace("CREATE TABLE ", f"CREATE TABLE {schema}.", 1))
    return existing


def recount(conn: sqlite3.Connection, schema: str = "main") -> None:
    "Recompute every number from ``tracks`` and mark them current (no commit)"
    _create_tables(conn, schema)
    conn.execute(f"delete from {schema}.overview_counts")
    conn.execute(f"insert into {schema}.overview_counts (metric, key, n) {_counts_sql(schema, None)}")
    total = conn.execute(f"select count(*) from {schema}.{TABLE}").fetchone()[0]
    _set_state(conn, schema, "current", total)
    _unmark(conn)


def subtract(conn: sqlite3.Connection, keys_sql: str, params: Iterable = (), schema: str = "main") -> None:
    """Take the tracks ``keys_sql`` selects out of the numbers, before they are
    written or deleted (same ``keys_sql`` as ``facet_counts.subtract``).

    When the numbers are not current it only marks them stale; ``add`` then
    recounts.
    """
    status = _status(conn, schema)
    if status == "applying" and _marked(conn):
        pass  # a second subtract of the same apply
    elif status == "current" and _total_matches(conn, schema):
        _set_state(conn, schema, "applying")
        conn.execute(f"create temp table if not exists {_MARK} (x)")
    else:
        if status is not None:
            _set_state(conn, schema, "stale")
        _unmark(conn)
        return
    _apply_delta(conn, keys_sql, params, schema, "-")


def add(conn: sqlite3.Connection, keys_sql: str, params: Iterable = (), schema: str = "main") -> None:
    """Put the tracks ``keys_sql`` selects back in, after the writes, and mark
    the numbers current; without a matching ``subtract`` (a bulk apply) it
    recounts everything."""
    if _status(conn, schema) == "applying" and _marked(conn):
        _apply_delta(conn, keys_sql, params, schema, "+")
        _set_state(conn, schema, "current")
        _unmark(conn)
    else:
        recount(conn, schema)


def read(conn: sqlite3.Connection, top: int = TOP) -> dict:
    """Everything the overview shows, as plain data.

    ``{tracks, albums, artists, hours, decades: [(decade, n)], genres: [(genre, n)],
    artists_top: [(artist, n)], added_months: [(YYYY-MM, n)], plays_months:
    [(YYYY-MM, n)] or None (no plays table, or no rows), precounted: bool}``.
    Reads only; answers from the stored counts when they are current.
    """
    tracks = _track_count(conn)
    usable = _usable(conn, tracks)
    if usable:
        stored = conn.execute(
            "select metric, key, n from overview_counts where metric in ('duration_ms', 'added_month') "
            "order by metric, key"
        ).fetchall()
    else:
        stored = conn.execute(f"select * from ({_counts_sql('main', None)}) order by metric, key").fetchall()
    duration_ms = sum(n for m, _, n in stored if m == "duration_ms")
    facets_usable = _facets_usable(conn, tracks)
    return {
        "tracks": tracks,
        "albums": _count(conn, "albums"),
        "artists": _count(conn, "artists"),
        "hours": round(duration_ms / 3_600_000, 1),
        "decades": _decades(conn, facets_usable),
        "genres": _top(conn, "genres", top, facets_usable),
        "artists_top": _top(conn, "artist", top, facets_usable),
        "added_months": [(k, n) for m, k, n in stored if m == "added_month"],
        "plays_months": plays_by_month(conn),
        "precounted": usable and facets_usable,
    }


def plays_by_month(conn: sqlite3.Connection) -> list[tuple[str, int]] | None:
    "Plays per month from a ``plays`` table; None when there is none or it is empty"
    if not _has_table(conn, "plays"):
        return None
    try:
        if conn.execute("select 1 from plays limit 1").fetchone() is None:
            return None
        rows = conn.execute(
            "select substr(viewed_at, 1, 7) as month, count(*) from plays "
            "where viewed_at is not null group by month order by month"
        ).fetchall()
    except sqlite3.OperationalError:  # a plays table without viewed_at
        return None
    return [tuple(r) for r in rows]


def stored(conn: sqlite3.Connection, schema: str = "main") -> dict[tuple, int]:
    "What ``overview_counts`` holds: {(metric, key): n}"
    return {(m, k): n for m, k, n in conn.execute(f"select metric, key, n from {schema}.overview_counts")}


def live(conn: sqlite3.Connection, schema: str = "main") -> dict[tuple, int]:
    "What ``recount`` would store, computed now"
    return {(m, k): n for m, k, n in conn.execute(_counts_sql(schema, None))}


def state(conn: sqlite3.Connection, schema: str = "main") -> dict | None:
    "The state row (``status``, ``total``, ``counted_at``), None when missing"
    try:
        row = conn.execute(f"select status, total, counted_at from {schema}.overview_state where id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else {"status": row[0], "total": row[1], "counted_at": row[2]}


# -- internals ----------------------------------------------------------------


def _counts_sql(schema: str, keys_sql: str | None) -> str:
    "(metric, key, n) over all tracks, or over those whose rating_key is in ``keys_sql``"
    source = f"{schema}.{TABLE}"
    where = "" if keys_sql is None else f" where rating_key in ({keys_sql})"
    # keys_sql appears once, so its parameters bind once
    return (
        f"with t as (select duration_ms, added_at from {source}{where}) "
        "select 'tracks' as metric, '' as key, count(*) as n from t "
        "union all select 'duration_ms', '', coalesce(sum(duration_ms), 0) from t "
        f"union all select 'added_month', {MONTH}, count(*) from t where added_at is not null group by {MONTH}"
    )


def _apply_delta(conn, keys_sql: str, params: Iterable, schema: str, op: str) -> None:
    params = params if isinstance(params, dict) else tuple(params)
    conn.execute(
        f"insert into {schema}.overview_counts (metric, key, n) "
        f"select metric, key, {op}n from ({_counts_sql(schema, keys_sql)}) where true "
        "on conflict (metric, key) do update set n = n + excluded.n",
        params,
    )
    if op == "-":
        conn.execute(f"delete from {schema}.overview_counts where metric = 'added_month' and n <= 0")
    conn.execute(
        f"update {schema}.overview_state set total = "
        f"(select n from {schema}.overview_counts where metric = 'tracks' and key = '') where id = 1"
    )


def _usable(conn, tracks: int) -> bool:
    row = state(conn)
    return row is not None and row["status"] == "current" and row["total"] == tracks


def _facets_usable(conn, tracks: int) -> bool:
    try:
        row = conn.execute(facet_counts.STATE_SQL).fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None and facet_counts.counts_usable(row[0], row[1], row[2], tracks)


def _decades(conn, facets_usable: bool) -> list[tuple[int, int]]:
    if facets_usable:
        sql = (
            "select (cast(value as integer) / 10) * 10 as decade, sum(n) from facet_counts "
            "where facet = 'year' group by decade order by decade"
        )
    else:
        sql = (
            f"select (year / 10) * 10 as decade, count(*) from {TABLE} where year is not null "
            "group by decade order by decade"
        )
    return [tuple(r) for r in conn.execute(sql)]


def _top(conn, facet: str, limit: int, facets_usable: bool) -> list[tuple]:
    if facets_usable:
        return facet_counts.top(conn, facet, limit)
    if facet in facet_counts.ARRAY_FACETS:
        sql = (
            f"select j.value, count(*) as n from {TABLE}, json_each(case when json_valid({facet}) "
            f"then {facet} end) j group by j.value order by n desc, j.value limit ?"
        )
    else:
        sql = (
            f"select {facet}, count(*) as n from {TABLE} where {facet} is not null "
            f"group by {facet} order by n desc, {facet} limit ?"
        )
    return [tuple(r) for r in conn.execute(sql, (limit,))]


def _track_count(conn) -> int:
    return _count(conn, TABLE)


def _count(conn, table: str) -> int:
    try:
        return conn.execute(f"select count(*) from [{table}]").fetchone()[0]
    except sqlite3.OperationalError:  # no such table: an empty file
        return 0


def _has_table(conn, name: str) -> bool:
    return conn.execute(
        "select 1 from sqlite_master where type in ('table', 'view') and name = ?", (name,)
    ).fetchone() is not None


def _total_matches(conn, schema: str) -> bool:
    row = conn.execute(
        f"select total = (select count(*) from {schema}.{TABLE}) from {schema}.overview_state where id = 1"
    ).fetchone()
    return bool(row and row[0])


def _status(conn, schema: str) -> str | None:
    row = state(conn, schema)
    return row["status"] if row else None


def _set_state(conn, schema: str, status: str, total: int | None = None) -> None:
    conn.execute(
        f"insert into {schema}.overview_state (id, status, total, counted_at) "
        "values (1, :status, coalesce(:total, 0), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) "
        "on conflict (id) do update set status = :status, total = coalesce(:total, total), "
        "counted_at = case when :total is null then counted_at else excluded.counted_at end",
        {"status": status, "total": total},
    )


def _marked(conn) -> bool:
    return conn.execute("select 1 from temp.sqlite_master where name = ?", (_MARK,)).fetchone() is not None


def _unmark(conn) -> None:
    if _marked(conn):
        conn.execute(f"drop table temp.{_MARK}")
