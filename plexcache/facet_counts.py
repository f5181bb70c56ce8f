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

from .columns import FACET_TABLES, SCHEMA_VERSION
from .precount import Precount

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

#: The subtract/add/recount mechanism and the stale-marking triggers (precount.py)
PRECOUNT = Precount(
    "facet_counts",
    counts="facet_counts",
    state="facet_counts_state",
    keys=("facet", "value"),
    counts_sql=lambda schema, keys_sql: _counts_sql(schema, keys_sql),
    stale_on=FACETS,
    prune="facet in ({})".format(", ".join(f"'{f}'" for f in FACETS)),
    tables_sql=TABLES_SQL,
    indexes_sql=INDEXES_SQL,
)
TRIGGERS_SQL = PRECOUNT.triggers_sql
NAMES = PRECOUNT.names

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
    return PRECOUNT.create(conn, schema)


# subtract before and add after an incremental apply, recount after a bulk
# one: see precount.py for the contract
recount = PRECOUNT.recount
subtract = PRECOUNT.subtract
add = PRECOUNT.add
#: The state row as a dict (``status``, ``total``, ``counted_at``), None when missing
state = PRECOUNT.read_state


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


#: What ``recount`` would store, computed now / what ``facet_counts`` holds: {(facet, value): n}
live_counts = PRECOUNT.live
stored_counts = PRECOUNT.stored


# -- internals ----------------------------------------------------------------


def _counts_sql(schema: str, keys_sql: str | None) -> str:
    """One SELECT of (facet, value, n) over all tracks, or over the tracks whose
    rating_key is in ``keys_sql``"""
    t = f"{schema}.{TABLE}"
    prefix = ""
    source = t
    if keys_sql is not None:
        # keys_sql appears once, so its parameters bind once
        prefix = (
            f"with k as (select {', '.join(FACETS)} from {t} where rating_key in ({keys_sql})) "
        )
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
