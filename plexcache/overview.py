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

from . import facet_counts
from .columns import OVERVIEW_TABLES
from .precount import Precount

TABLE = "tracks"
MONTH = "substr(added_at, 1, 7)"
#: How many artists / genres the overview lists
TOP = 15

TABLES_SQL = {t.name: t.create_sql() for t in OVERVIEW_TABLES}  # from columns.py

#: The subtract/add/recount mechanism and the stale-marking triggers (precount.py)
PRECOUNT = Precount(
    "overview",
    counts="overview_counts",
    state="overview_state",
    keys=("metric", "key"),
    counts_sql=lambda schema, keys_sql: _counts_sql(schema, keys_sql),
    stale_on=("added_at", "duration_ms"),
    prune="metric = 'added_month'",  # 'tracks' and 'duration_ms' stay, at 0
    tables_sql=TABLES_SQL,
)
TRIGGERS_SQL = PRECOUNT.triggers_sql
NAMES = PRECOUNT.names


def create(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Create the missing tables and triggers, and count once when the numbers
    were never counted on this file (``schema.ensure_shape`` calls it, in its
    transaction). Needs ``tracks`` and ``sync_state``."""
    if PRECOUNT.create(conn, schema):
        recount(conn, schema)


# subtract before and add after an incremental apply (same keys_sql as
# facet_counts.subtract); add without a subtract recounts: see precount.py
recount = PRECOUNT.recount
subtract = PRECOUNT.subtract
add = PRECOUNT.add


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
        stored = conn.execute(
            f"select * from ({_counts_sql('main', None)}) order by metric, key"
        ).fetchall()
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


#: What ``overview_counts`` holds / what ``recount`` would store: {(metric, key): n}
stored = PRECOUNT.stored
live = PRECOUNT.live
#: The state row (``status``, ``total``, ``counted_at``), None when missing
state = PRECOUNT.read_state


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
    return (
        conn.execute(
            "select 1 from sqlite_master where type in ('table', 'view') and name = ?", (name,)
        ).fetchone()
        is not None
    )
