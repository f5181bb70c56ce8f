"""What a sync learns about a server's track listings, kept in ``listing_facts``.

Listings (``/library/sections/N/all``) show only some of an item's tags, and
how many differs by server, version and item type; the API does not say
(plex-wire-format.md §2.4, §13). A track's ``genres`` must be its complete
list, so the sync must know when a listed Genre list may be cut. It learns
that by comparing tracks it reads in full (``/library/metadata``) with their
listing entries:

- a listing that showed n Genre tags of a track that has more proves that
  listings cut at n: ``cap`` is the smallest such n;
- a listing that showed all n tags of a track proves that a cut, if there is
  one, is above n: ``max_shown`` is the largest such n.

The one assumption is that a server cuts every track listing at the same
count. Then a listed list of k tags is complete when k < ``cap``, or, while
no cut has been seen, when k < ``max_shown``; every other listed track is
read in full (``read_in_full_from``). Knowing nothing, that threshold is 0:
every track is read in full. So no constant about servers is needed, and a
small sample only costs more full reads, never a wrong row: a track whose
listing shows 0 genres while it has some (every real capture, §13) makes the
cap 0, and from then on every listed track is read in full.

Facts are kept per server (``machineIdentifier``) and version. A sync that
meets a version the cache has not seen re-reads the library in full and
learns again (``plan.plan_sync``). Albums and artists are always read in full
(one album per ~12 tracks), so nothing needs learning about their listings.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

ITEM_TYPE, TAG = "track", "Genre"


@dataclass
class TagFacts:
    "What listings of one server version show of one kind of tag, and the rule it gives"

    cap: int | None = None
    max_shown: int | None = None
    compared: int = 0

    @property
    def read_in_full_from(self) -> int:
        "Listed items showing at least this many tags may show a cut list: they are read in full"
        if self.cap is not None:
            return self.cap
        return self.max_shown or 0

    def observe(self, listed: int, full: int) -> None:
        "One item whose listing showed ``listed`` tags and whose full item has ``full``"
        self.compared += 1
        if full > listed:
            self.cap = listed if self.cap is None else min(self.cap, listed)
        elif full == listed:
            self.max_shown = listed if self.max_shown is None else max(self.max_shown, listed)
        # full < listed: the item changed between the listing and the read; it proves nothing


def learned_versions(conn: sqlite3.Connection) -> frozenset[tuple[str, str]]:
    "Every (server id, version) the cache has facts for"
    return frozenset(conn.execute("select distinct server_id, version from listing_facts"))


def load(conn: sqlite3.Connection, server_id: str, version: str) -> TagFacts:
    "The facts learned for this server version (nothing learned: read everything in full)"
    row = conn.execute(
        "select cap, max_shown, compared from listing_facts where server_id = ? and version = ? "
        "and item_type = ? and tag = ?",
        (server_id, version, ITEM_TYPE, TAG),
    ).fetchone()
    return TagFacts(*row) if row else TagFacts()


def save(conn: sqlite3.Connection, server_id: str, version: str, facts: TagFacts, now: str) -> None:
    "Store the facts of this server version (they only ever narrow: cap down, max_shown up)"
    conn.execute(
        "insert into listing_facts (server_id, version, item_type, tag, cap, max_shown, compared, learned_at, "
        "checked_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (server_id, version, item_type, tag) do update "
        "set cap = excluded.cap, max_shown = excluded.max_shown, compared = excluded.compared, "
        "checked_at = excluded.checked_at",
        (server_id, version, ITEM_TYPE, TAG, facts.cap, facts.max_shown, facts.compared, now, now),
    )
