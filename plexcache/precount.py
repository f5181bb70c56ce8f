"""Numbers over ``tracks`` kept current by deltas: what ``facet_counts`` and
``overview`` share.

A precount is a counts table (two key columns and ``n``) and a one-row state
table (``status``, ``total``, ``counted_at``), and the contract that keeps
them right:

- ``recount(conn)`` recomputes everything from ``tracks`` and marks the
  state ``current``, in the caller's transaction (no commit).
- ``subtract(conn, keys_sql)`` before and ``add(conn, keys_sql)`` after the
  writes of an incremental apply, ``keys_sql`` a subquery of the
  ``rating_key`` of every track written or deleted: the cost follows the
  change. Between the two the state is ``applying``, and a temp table
  (``<name>_applying``) marks "this connection called ``subtract`` and not
  ``add`` yet"; it goes with a rollback or the connection. ``subtract`` on
  numbers that are not current (or whose total is not the table's row count:
  written with the triggers dropped) only marks them ``stale``, and ``add``
  without a matching ``subtract`` recounts.
- Triggers mark ``current`` numbers ``stale`` on any other insert or delete
  of ``tracks``, an update of the columns counted, and deleting
  ``sync_state`` (a reset).

Each user says what it counts: ``counts_sql(schema, keys_sql)``, one SELECT of
its two key columns and ``n`` (named so) over every track, or over those
whose ``rating_key`` is in ``keys_sql`` (where ``keys_sql`` appears once, so its parameters bind once).
Imports nothing of plexcache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

TABLE = "tracks"


class Precount:
    """One precount: ``name`` prefixes its triggers and its temp mark.

    ``counts``/``state``: the two tables (``tables_sql`` creates them,
    ``indexes_sql`` adds indexes, ``{schema}``-formatted); ``keys``: the
    counts table's two key columns; ``stale_on``: the ``tracks`` columns
    whose update makes the numbers stale; ``prune``: which rows go when a
    subtract brings their ``n`` to 0 or below (SQL condition)."""

    def __init__(
        self,
        name: str,
        *,
        counts: str,
        state: str,
        keys: tuple[str, str],
        counts_sql: Callable[[str, str | None], str],
        stale_on: Iterable[str],
        prune: str,
        tables_sql: dict[str, str],
        indexes_sql: dict[str, str] | None = None,
    ):
        self.counts, self.state_table, self.keys = counts, state, keys
        self.counts_sql = counts_sql
        self.prune = prune
        self.tables_sql = tables_sql
        self.indexes_sql = indexes_sql or {}
        self.mark = f"{name}_applying"
        stale = f"UPDATE {state} SET status = 'stale' WHERE status = 'current';"
        self.triggers_sql = {
            f"{name}_tracks_ai": f"CREATE TRIGGER {{schema}}.{name}_tracks_ai AFTER INSERT ON {TABLE} BEGIN {stale} END",
            f"{name}_tracks_ad": f"CREATE TRIGGER {{schema}}.{name}_tracks_ad AFTER DELETE ON {TABLE} BEGIN {stale} END",
            f"{name}_tracks_au": (
                f"CREATE TRIGGER {{schema}}.{name}_tracks_au AFTER UPDATE OF {', '.join(stale_on)} "
                f"ON {TABLE} BEGIN {stale} END"
            ),
            # plexcache reset empties tracks with its triggers dropped, and sync_state with them
            f"{name}_sync_state_ad": (
                f"CREATE TRIGGER {{schema}}.{name}_sync_state_ad AFTER DELETE ON sync_state BEGIN {stale} END"
            ),
        }
        self.names = (*tables_sql, *self.triggers_sql)

    def create(self, conn: sqlite3.Connection, schema: str = "main") -> bool:
        """Create the missing tables, indexes and triggers; True when the state
        row is missing (never counted on this file: the caller recounts)"""
        existing = self.create_tables(conn, schema)
        for name, sql in self.triggers_sql.items():
            if name not in existing:
                conn.execute(sql.format(schema=schema))
        return self.read_state(conn, schema) is None

    def create_tables(self, conn: sqlite3.Connection, schema: str) -> set[str]:
        """The tables and indexes, not the triggers: a bulk apply drops the
        triggers of ``tracks`` on purpose and restores them itself"""
        existing = {
            r[0]
            for r in conn.execute(
                f"select name from {schema}.sqlite_master where type in ('table', 'index', 'trigger')"
            )
        }
        for name, sql in self.tables_sql.items():
            if name not in existing:
                conn.execute(sql.replace("CREATE TABLE ", f"CREATE TABLE {schema}.", 1))
        for name, sql in self.indexes_sql.items():
            if name not in existing:
                conn.execute(sql.format(schema=schema))
        return existing

    def recount(self, conn: sqlite3.Connection, schema: str = "main") -> None:
        """Recompute every number from ``tracks`` and mark them current.

        Set-based SQL, run inside the caller's transaction (it does not commit).
        """
        self.create_tables(conn, schema)
        conn.execute(f"delete from {schema}.{self.counts}")
        conn.execute(
            f"insert into {schema}.{self.counts} ({self._columns}) {self.counts_sql(schema, None)}"
        )
        total = conn.execute(f"select count(*) from {schema}.{TABLE}").fetchone()[0]
        self._set_state(conn, schema, "current", total)
        self._unmark(conn)

    def subtract(
        self, conn: sqlite3.Connection, keys_sql: str, params: Iterable = (), schema: str = "main"
    ) -> None:
        """Take the tracks ``keys_sql`` selects out of the numbers, before they change.

        ``keys_sql`` is a subquery yielding ``rating_key`` values (e.g.
        ``select rating_key from stage.tracks union select rating_key from
        temp.doomed``): every track about to be updated, replaced or deleted;
        keys not in ``tracks`` yet are ignored. Call it in the write
        transaction, before the writes, then ``add`` after them. It may be
        called more than once before ``add``.

        When the numbers are not current (or their total is not the table's
        row count: written with the triggers dropped), it only marks them
        stale; ``add`` then recounts.
        """
        status = self._status(conn, schema)
        if status == "applying" and self._marked(conn):
            pass  # a second subtract of the same apply
        elif status == "current" and self._total_matches(conn, schema):
            self._set_state(conn, schema, "applying")
            conn.execute(f"create temp table if not exists {self.mark} (x)")
        else:
            if status is not None:
                self._set_state(conn, schema, "stale")
            self._unmark(conn)
            return
        self._apply_delta(conn, keys_sql, params, schema, "-")

    def add(
        self, conn: sqlite3.Connection, keys_sql: str, params: Iterable = (), schema: str = "main"
    ) -> None:
        """Count the tracks ``keys_sql`` selects, after they were written, and
        mark the numbers current.

        Same ``keys_sql`` as for ``subtract`` (deleted keys are simply not
        found). Call it once, after every write to ``tracks`` of the
        transaction. Without a matching ``subtract`` on this connection (or
        when the numbers were not current then) it recounts everything
        instead, so they are right either way.
        """
        if self._status(conn, schema) == "applying" and self._marked(conn):
            self._apply_delta(conn, keys_sql, params, schema, "+")
            self._set_state(conn, schema, "current")
            self._unmark(conn)
        else:
            self.recount(conn, schema)

    def read_state(self, conn: sqlite3.Connection, schema: str = "main") -> dict | None:
        "The state row (``status``, ``total``, ``counted_at``), None when missing"
        try:
            row = conn.execute(
                f"select status, total, counted_at from {schema}.{self.state_table} where id = 1"
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: a cache from before this precount
            return None
        return None if row is None else {"status": row[0], "total": row[1], "counted_at": row[2]}

    def stored(self, conn: sqlite3.Connection, schema: str = "main") -> dict[tuple, int]:
        "What the counts table holds: {(key1, key2): n}"
        return {
            (a, b): n
            for a, b, n in conn.execute(f"select {self._columns} from {schema}.{self.counts}")
        }

    def live(self, conn: sqlite3.Connection, schema: str = "main") -> dict[tuple, int]:
        "What ``recount`` would store, computed now: {(key1, key2): n}"
        return {(a, b): n for a, b, n in conn.execute(self.counts_sql(schema, None))}

    # -- internals ---------------------------------------------------------

    @property
    def _columns(self) -> str:
        return f"{self.keys[0]}, {self.keys[1]}, n"

    def _apply_delta(self, conn, keys_sql: str, params: Iterable, schema: str, op: str) -> None:
        params = params if isinstance(params, dict) else tuple(params)
        conn.execute(
            f"insert into {schema}.{self.counts} ({self._columns}) "
            f"select {self.keys[0]}, {self.keys[1]}, {op}n from ({self.counts_sql(schema, keys_sql)}) where true "
            f"on conflict ({self.keys[0]}, {self.keys[1]}) do update set n = n + excluded.n",
            params,
        )
        if op == "-":
            # a key whose last track goes: its row goes too
            conn.execute(f"delete from {schema}.{self.counts} where {self.prune} and n <= 0")
        changed = conn.execute(
            f"select count(*) from {schema}.{TABLE} where rating_key in ({keys_sql})", params
        ).fetchone()[0]
        conn.execute(
            f"update {schema}.{self.state_table} set total = total {op} ? where id = 1", (changed,)
        )

    def _total_matches(self, conn, schema: str) -> bool:
        "12 ms at 1,000,000 tracks"
        row = conn.execute(
            f"select total = (select count(*) from {schema}.{TABLE}) from {schema}.{self.state_table} where id = 1"
        ).fetchone()
        return bool(row and row[0])

    def _status(self, conn, schema: str) -> str | None:
        row = self.read_state(conn, schema)
        return row["status"] if row else None

    def _set_state(self, conn, schema: str, status: str, total: int | None = None) -> None:
        "``total`` given: a recount, which also sets ``counted_at``"
        conn.execute(
            f"insert into {schema}.{self.state_table} (id, status, total, counted_at) "
            "values (1, :status, coalesce(:total, 0), "
            "case when :total is not null then strftime('%Y-%m-%dT%H:%M:%SZ', 'now') end) "
            "on conflict (id) do update set status = :status, total = coalesce(:total, total), "
            "counted_at = case when :total is null then counted_at else excluded.counted_at end",
            {"status": status, "total": total},
        )

    def _marked(self, conn) -> bool:
        return (
            conn.execute("select 1 from temp.sqlite_master where name = ?", (self.mark,)).fetchone()
            is not None
        )

    def _unmark(self, conn) -> None:
        if self._marked(conn):
            conn.execute(f"drop table temp.{self.mark}")
