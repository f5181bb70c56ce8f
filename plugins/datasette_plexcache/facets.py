"""Facets of the tracks table answered from the cache's ``facet_counts``.

Datasette computes every facet by grouping the rows of the page's query; on
the unfiltered tracks table that is the whole table each time (1,000,000
tracks: ~100 ms per column facet, seconds for the ``genres`` array facet).
The core keeps those counts (``plexcache.facet_counts``), so two facet types
read them:

- ``precounted``: Datasette's column facet (``ColumnFacet``);
- ``precounted_array``: Datasette's array facet (``ArrayFacet``).

They are Datasette's own classes. When the page is the unfiltered table (no
filter, ``_search``, ``_where``, ``_next``: its SQL has no WHERE) and the
counts are current, the facet's one query (its top values) is answered from
``facet_counts`` instead of being run on the table; everything else, labels,
toggle URLs, "selected", "truncated", ``_facet_size``, is Datasette's own
code. Any other page computes live, exactly as the builtin facets do.

Results say ``"type": "column"`` / ``"array"`` like the builtin facets, so
pages and JSON look the same as with ``facets: [artist, {array: genres}]``.
"""

from __future__ import annotations

import copy
import re
import sqlite3

from datasette.facets import ArrayFacet, ColumnFacet
from datasette.utils import escape_sqlite, path_with_removed_args

from plexcache import facet_counts

# The SQL Datasette hands a facet for the table with no WHERE clause at all:
# "select col1, [col 2], ... from tracks " (0.65.5 and 1.0a41 alike)
_NAME = r"(?:\w+|\[[^\]]+\])"
_TABLE = facet_counts.TABLE
_UNFILTERED = re.compile(rf"select (?:{_NAME}, )*{_NAME} from (?:{_TABLE}|\[{_TABLE}\])\s*")


class _CountsAnswer:
    """Stands in for the Datasette object while one builtin ``facet_results``
    runs: its top-values query is answered from ``facet_counts``; every other
    attribute and query goes to the real Datasette."""

    def __init__(self, ds, database: str, facet: str, column: str, limit: int):
        self._ds = ds
        self._database = database
        self._facet = facet
        self._column_sql = escape_sqlite(column)
        self._limit = limit

    def __getattr__(self, name):
        return getattr(self._ds, name)

    async def execute(self, database, sql, params=None, **kwargs):
        if database == self._database and self._column_sql in sql and f"limit {self._limit}" in sql:
            return await self._ds.execute(
                database,
                facet_counts.TOP_SQL,
                {"facet": self._facet, "limit": self._limit},
                **kwargs,
            )
        return await self._ds.execute(database, sql, params, **kwargs)


class _Precounted:
    "Mixed into ColumnFacet / ArrayFacet"

    type: str
    builtin_type: str
    counted: tuple[str, ...]
    _only = None  # one config, while answering it from the counts

    def get_configs(self):
        if self._only is not None:
            return [self._only]
        return super().get_configs()

    async def suggest(self):
        # The builtin facets already suggest; ours would repeat them
        return []

    async def facet_results(self):
        configs = self.get_configs()
        if not configs:
            return [], []
        if not await self._counts_usable():
            results, timed_out = await super().facet_results()
            return [self._as_builtin(r) for r in results], timed_out
        limit = self.get_facet_size() + 1
        results, timed_out = [], []
        for config in configs:
            column = config["config"].get("column") or config["config"]["simple"]
            clone = copy.copy(self)
            clone._only = config
            if column in self.counted:
                clone.ds = _CountsAnswer(self.ds, self.database, column, column, limit)
            r, t = await super(_Precounted, clone).facet_results()
            results.extend(self._as_builtin(x) for x in r)
            timed_out.extend(t)
        return results, timed_out

    def _unfiltered(self) -> bool:
        return (
            self.table == facet_counts.TABLE
            and not self.params
            and _UNFILTERED.fullmatch(self.sql) is not None
        )

    async def _counts_usable(self) -> bool:
        if not self._unfiltered():
            return False
        try:
            rows = await self.ds.execute(
                self.database, facet_counts.STATE_SQL, log_sql_errors=False
            )
        except sqlite3.Error:  # no facet_counts_state: a cache from before the counts
            return False
        row = rows.first()
        if row is None:
            return False
        db = self.ds.databases.get(self.database)
        return facet_counts.counts_usable(
            row["status"],
            row["total"],
            row["user_version"],
            self.row_count,
            getattr(db, "count_limit", None),
        )

    def _as_builtin(self, result: dict) -> dict:
        """Report the builtin type; a facet asked for with this type's own query
        argument (hideable) is removed by removing that argument"""
        result = {**result, "type": self.builtin_type}
        if result.get("hideable"):
            result["toggle_url"] = self.ds.urls.path(
                path_with_removed_args(self.request, {f"_facet_{self.type}": result["name"]})
            )
        return result


class PrecountedColumnFacet(_Precounted, ColumnFacet):
    type = "precounted"
    builtin_type = "column"
    counted = facet_counts.COLUMN_FACETS


class PrecountedArrayFacet(_Precounted, ArrayFacet):
    type = "precounted_array"
    builtin_type = "array"
    counted = facet_counts.ARRAY_FACETS
