"""Precomputed facet counts for the tracks table.

Datasette computes a facet by grouping every row of the table: at 1,000,000
tracks the ``artist``, ``year`` and ``is_live`` facets take 60-100 ms each and
the ``genres`` array facet (``json_each`` over every row) takes seconds. The
unfiltered tracks page only needs the same numbers every time, so the cache
keeps them:

``facet_counts(facet, value, n)``
    For each default facet of ``tracks`` (``artist``, ``year``, ``is_live`` and
    ``genres`` exploded from its JSON array), how many tracks have each value.
    NULL values are not counted, as Datasette's column facets skip them; a
    track counts once per distinct genre of its array, and NULL, empty or
    invalid arrays count nowhere, as Datasette's array facet does.

``facet_counts_state`` (one row)
    ``status``: ``current`` when the counts match ``tracks``; ``stale`` when
    something wrote to ``tracks`` without maintaining them; ``applying``
    while a sync is between ``subtract`` and ``add`` (inside its transaction;
    a reader that ever sees it treats it as not current). ``total``: the
    tracks counted.

How they stay right:

- ``recount(conn)`` recomputes everything (about 1.5 s at 1,000,000 tracks);
  the sync engine calls it after a bulk apply, and ``schema.ensure_shape``
  after creating the tables on an existing cache.
- ``subtract(conn, keys_sql)`` before and ``add(conn, keys_sql)`` after an
  incremental apply, with ``keys_sql`` a subquery of the ``rating_key`` of
  every track written or deleted: the cost follows the change.
- Triggers on ``tracks`` mark ``current`` counts ``stale`` on any other
  insert, delete or facet-column update (an older plexcache, a notebook, a
  sync that forgot to maintain them), and deleting ``sync_state`` (a reset)
  does too. ``add`` after a write it did not see coming recounts instead.

A reader trusts the counts only when ``counts_usable`` says so (state
``current``, the schema version this code wrote, and the total equal to the
table's row count when it knows it); otherwise it computes live.

No Datasette import here: the plugin (``datasette_plexcache.facets``) reads
these tables through ``STATE_SQL`` and ``TOP_SQL``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .columns import FACET_TABLES, SCHEMA_VERSION

TABLE = "tracks"
#: Column facets of ``tracks`` with precomputed counts (facet name = column)
COLUMN_FACETS = ("artist", "year", "is_live")
#: Array facets (JSON array columns) with precomputed counts
ARRAY_FACETS = ("genres",)
FACETS = COLUMN_FACETS + ARRAY_FACETS

TABLES_SQL = {t.name: t.create_sql() for t in FACET_TABLES}

# Top values of a facet without sorting: the order Datasette's facets use
INDEXES_SQL = {
    "facet_counts_top": "CREATE INDEX {schema}.facet_counts_top ON facet_counts (facet, n DESC, value)",
}

_STALE = "UPDATE facet_counts_state SET status = 'stale' WHERE status = 'current';"
TRIGGERS_SQL = {
    "facet_counts_tracks_ai": f"CREATE TRIGGER {{schema}}.facet_counts_tracks_ai AFTER INSERT ON tracks BEGIN {_STALE} END",
    "facet_counts_tracks_ad": f"CREATE TRIGGER {{schema}}.facet_counts_tracks_ad AFTER DELETE ON tracks BEGIN {_STALE} END",
    "facet_counts_tracks_au": (
        f"CREATE TRIGGER {{schema}}.facet_counts_tracks_au AFTER UPDATE OF {', '.join(FACETS)} "
        f"ON tracks BEGIN {_STALE} END"
    ),
    # plexcache reset empties tracks with its triggers dropped, and sync_state with them
    "facet_counts_sync_state_ad": (
        f"CREATE TRIGGER {{schema}}.facet_counts_sync_state_ad AFTER DELETE ON sync_state BEGIN {_STALE} END"
    ),
}

NAMES = (*TABLES_SQL, *TRIGGERS_SQL)

# A temp table marks "this connection called subtract and has not called add
# yet"; it disappears with a rollback or with the connection.
_MARK = "facet_counts_applying"

#: For readers: (status, total, user_version), no row when never counted
STATE_SQL = (
    "select status, total, (select user_version from pragma_user_version) as user_version "
    "from facet_counts_state where id = 1"
)

#: For readers: the top values of one facet, as Datasette's facet SQL returns them
TOP_SQL = (
    "select value, n as count from facet_counts where facet = :facet "
    "order by n desc, value limit :limit"
)


def create(conn: sqlite3.Connection, schema: str = "main") -> bool:
    """Create the tables, index and triggers that are missing.

    Returns True when the state row had to be created (the counts were never
    computed on this file): the caller should ``recount``. Needs ``tracks``
    and ``sync_state`` to exist.
    """
    existing = _create_tables(conn, schema)
    for name, sql in TRIGGERS_SQL.items():
        if name not in existing:
            conn.execute(sql.format(schema=schema))
    return conn.execute(f"select 1 from {schema}.facet_counts_state where id = 1").fetchone() is None


def _create_tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    """The tables and their index, not the triggers: a bulk apply drops the
    triggers of ``tracks`` on purpose and restores them itself"""
    existing = {
        r[0]
        for r in conn.execute(
            f"select name from {schema}.sqlite_master where type in ('table', 'index', 'trigger')"
        )
    }
    for name, sql in TABLES_SQL.items():
        if name not in existing:
            conn.execute(sql.replace("CREATE TABLE ", f"CREATE TABLE {schema}.", 1))
    for name, sql in INDEXES_SQL.items():
        if name not in existing:
            conn.execute(sql.format(schema=schema))
    return existing


def recount(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Recompute every count from ``tracks`` and mark them current.

    Set-based SQL, run inside the caller's transaction (it does not commit).
    """
    _create_tables(conn, schema)
    conn.execute(f"delete from {schema}.facet_counts")
    conn.execute(f"insert into {schema}.facet_counts (facet, value, n) {_counts_sql(schema, None)}")
    total = conn.execute(f"select count(*) from {schema}.{TABLE}").fetchone()[0]
    _set_state(conn, schema, "current", total=total, counted=True)
    _unmark(conn)


def subtract(conn: sqlite3.Connection, keys_sql: str, params: Iterable = (), schema: str = "main") -> None:
    """Remove the tracks ``keys_sql`` selects from the counts, before they change.

    ``keys_sql`` is a subquery yielding ``rating_key`` values (e.g.
    ``select rating_key from stage.tracks union select rating_key from
    temp.doomed``): every track about to be updated, replaced or deleted;
    keys not in ``tracks`` yet are ignored. Call it in the write
    transaction, before the writes, then ``add`` after them. It may be
    called more than once before ``add``.

    When the counts are not current (or their total is not the table's row
    count: written with the triggers dropped), it only marks them stale;
    ``add`` then recounts.
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
    _apply_delta(conn, keys_sql, params, schema, sign=-1)


def add(conn: sqlite3.Connection, keys_sql: str, params: Iterable = (), schema: str = "main") -> None:
    """Count the tracks ``keys_sql`` selects, after they were written, and mark
    the counts current.

    Same ``keys_sql`` as for ``subtract`` (deleted keys are simply not found).
    Call it once, after every write to ``tracks`` of the transaction. Without
    a matching ``subtract`` on this connection (or when the counts were not
    current then) it recounts everything instead, so the counts are right
    either way.
    """
    if _status(conn, schema) == "applying" and _marked(conn):
        _apply_delta(conn, keys_sql, params, schema, sign=1)
        _set_state(conn, schema, "current")
        _unmark(conn)
    else:
        recount(conn, schema)


def state(conn: sqlite3.Connection, schema: str = "main") -> dict | None:
    "The state row as a dict (``status``, ``total``, ``counted_at``), None when missing"
    try:
        row = conn.execute(
            f"select status, total, counted_at from {schema}.facet_counts_state where id = 1"
        ).fetchone()
    except sqlite3.OperationalError:  # no such table: a cache from before facet counts
        return None
    return None if row is None else {"status": row[0], "total": row[1], "counted_at": row[2]}


def counts_usable(
    status: str | None,
    total: int | None,
    user_version: int | None,
    row_count: int | None = None,
    count_limit: int | None = None,
) -> bool:
    """May a reader answer the unfiltered table's facets from ``facet_counts``?

    ``status``, ``total``, ``user_version``: a ``STATE_SQL`` row. ``row_count``:
    the table's row count when the caller already has it; ``count_limit``:
    when that count stops at ``count_limit + 1`` (Datasette 1.0 does), a
    count at the cap only says "at least".
    """
    if status != "current" or user_version != SCHEMA_VERSION or total is None:
        return False
    if row_count is None:
        return True
    if count_limit is not None and row_count > count_limit:
        return total >= row_count
    return total == row_count


def is_current(conn: sqlite3.Connection) -> bool:
    "Would a reader use the counts of this (main) database? Counts the table to check"
    try:
        row = conn.execute(STATE_SQL).fetchone()
    except sqlite3.OperationalError:  # no such table
        return False
    if row is None:
        return False
    count = conn.execute(f"select count(*) from {TABLE}").fetchone()[0]
    return counts_usable(row[0], row[1], row[2], count)


def top(conn: sqlite3.Connection, facet: str, limit: int, schema: str = "main") -> list[tuple]:
    "The ``limit`` most frequent values of ``facet`` as (value, count), Datasette's order"
    sql = TOP_SQL.replace("from facet_counts", f"from {schema}.facet_counts")
    return [tuple(r) for r in conn.execute(sql, {"facet": facet, "limit": limit})]


def live_counts(conn: sqlite3.Connection, schema: str = "main") -> dict[tuple, int]:
    "What ``recount`` would store, computed now: {(facet, value): n}"
    return {(f, v): n for f, v, n in conn.execute(_counts_sql(schema, None))}


def stored_counts(conn: sqlite3.Connection, schema: str = "main") -> dict[tuple, int]:
    "What ``facet_counts`` holds: {(facet, value): n}"
    return {(f, v): n for f, v, n in conn.execute(f"select facet, value, n from {schema}.facet_counts")}


# -- internals ----------------------------------------------------------------


def _counts_sql(schema: str, keys_sql: str | None) -> str:
    """One SELECT of (facet, value, n) over all tracks, or over the tracks whose
    rating_key is in ``keys_sql``"""
    t = f"{schema}.{TABLE}"
    prefix = ""
    source = t
    if keys_sql is not None:
        # keys_sql appears once, so its parameters bind once
        prefix = f"with k as (select {', '.join(FACETS)} from {t} where rating_key in ({keys_sql})) "
        source = "k"
    parts = [
        f"select '{col}' as facet, {col} as value, count(*) as n from {source} where {col} is not null group by {col}"
        for col in COLUMN_FACETS
    ]
    for col in ARRAY_FACETS:
        # Most tracks share their genre array with their album: explode each
        # distinct array once and weight it (0.9 s instead of 2.2 s at 1M).
        # distinct: a value listed twice in one array counts once, like
        # Datasette's `select distinct j.value, inner.*`; invalid JSON becomes
        # NULL, which json_each skips (Datasette's facet would fail on it).
        parts.append(
            f"select '{col}' as facet, value, sum(n) as n from (select distinct g.arr, j.value as value, g.n as n "
            f"from (select {col} as arr, count(*) as n from {source} where {col} is not null group by {col}) g, "
            "json_each(case when json_valid(g.arr) then g.arr end) j "
            "where j.value is not null) group by value"
        )
    return prefix + " union all ".join(parts)


def _apply_delta(conn, keys_sql: str, params: Iterable, schema: str, sign: int) -> None:
    params = params if isinstance(params, dict) else tuple(params)
    op = "+" if sign > 0 else "-"
    conn.execute(
        f"insert into {schema}.facet_counts (facet, value, n) "
        f"select facet, value, {op}n from ({_counts_sql(schema, keys_sql)}) where true "
        "on conflict (facet, value) do update set n = n + excluded.n",
        params,
    )
    if sign < 0:
        # A value whose last track goes: its row goes too
        marks = ", ".join(f"'{f}'" for f in FACETS)
        conn.execute(f"delete from {schema}.facet_counts where facet in ({marks}) and n <= 0")
    changed = conn.execute(
        f"select count(*) from {schema}.{TABLE} where rating_key in ({keys_sql})", params
    ).fetchone()[0]
    conn.execute(f"update {schema}.facet_counts_state set total = total {op} ? where id = 1", (changed,))


def _total_matches(conn, schema: str) -> bool:
    "12 ms at 1,000,000 tracks"
    row = conn.execute(
        f"select total = (select count(*) from {schema}.{TABLE}) from {schema}.facet_counts_state where id = 1"
    ).fetchone()
    return bool(row and row[0])


def _status(conn, schema: str) -> str | None:
    try:
        row = conn.execute(f"select status from {schema}.facet_counts_state where id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _set_state(conn, schema: str, status: str, *, total: int | None = None, counted: bool = False) -> None:
    conn.execute(
        f"insert into {schema}.facet_counts_state (id, status, total, counted_at) "
        "values (1, :status, coalesce(:total, 0), case when :counted then strftime('%Y-%m-%dT%H:%M:%SZ', 'now') end) "
        "on conflict (id) do update set status = :status, total = coalesce(:total, total), "
        "counted_at = case when :counted then excluded.counted_at else counted_at end",
        {"status": status, "total": total, "counted": counted},
    )


def _marked(conn) -> bool:
    return conn.execute("select 1 from temp.sqlite_master where name = ?", (_MARK,)).fetchone() is not None


def _unmark(conn) -> None:
    if _marked(conn):
        conn.execute(f"drop table temp.{_MARK}")
