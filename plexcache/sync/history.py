"""The listening-history step of a sync: plays, accounts and devices.

Runs inside the same sync as the tracks (``sync.sync``; ``history=False``
skips it), stages into the same staging database and is applied in the same
transaction, so a failed or killed sync changes nothing. Per music section:

1. **Read.** ``GET /status/sessions/history/all?librarySectionID=<id>&sort=viewedAt:desc``,
   offset-paged like plexapi's ``server.history()``. The first sync of a
   section (and ``full``) reads every page (the backfill). Later syncs read
   a first page of ``HEAD_SIZE`` entries and go on only while the plays are
   newer than the last read minus ``OVERLAP_SECONDS`` (clock skew).
2. **Check.** An incremental read is exact only if Plex's count of the
   section's plays (``totalSize``) equals the count at the last read
   (``history_sync.listed``) plus the plays this read found that the cache
   lacks. It is not when Plex listed plays outside the window (an offline
   play uploaded late carries its old ``viewedAt``) or dropped some (a
   deleted entry): then every page is read again, in the same sync.
3. **Accounts and devices** (``/accounts``, ``/devices``) are read when a
   full read happened or a play names an account or device the cache lacks.
4. **Apply** (``apply``, inside the sync's transaction): plays are upserted
   by history id and never deleted (the cache is the archive; ``plexcache
   reset`` clears them). A column Plex no longer sends (the ``rating_key`` of
   a play whose track was deleted since) keeps its cached value.

Play counts. A play writes a history entry, so a section whose history shows
no play since its play counts were last asked for needs no
``track.lastViewedAt`` delta: ``viewed_since`` says so, and the sync skips
that request (which is how a sync with nothing new keeps its request count).
Marking a track played without playing it writes no history entry (PMS
1.40+), so such a change waits for the next sync that asks, which is the
next one after any play in that library (or ``--full``): the marker
``history_sync.play_state_synced_at`` only moves when the delta ran.

Permissions. A managed user's token may be refused the history (401/403) or
shown that user's plays only. Refused: the tracks sync as before (with the
delta), and the run gets a warning. One account only: those plays are kept,
and the run gets a warning naming the account.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from ..columns import ACCOUNTS, DEVICES, PLAYS
from ..errors import PlexAuthError, PlexBadResponse, PlexNotFound
from ..plex import PlexSource, prefetch
from ..plex.history import (
    account_row,
    accounts,
    device_row,
    devices,
    history_page,
    play_row,
)
from ..plex.http import int_attr
from ..plex.rows import BadItem
from ..timeutil import epoch_to_iso, iso_to_epoch
from .apply import _upsert as upsert
from .plan import OVERLAP_SECONDS, SectionPlan, SyncPlan
from .runs import Progress

log = logging.getLogger("plexcache.sync")

HEAD_SIZE = 100  # entries on the first page of an incremental read (usually the only one)
OWNER_ACCOUNT = 1  # the server owner's local account id


class HistoryRefused(Exception):
    "The server will not show this token the history (401/403/404 on the first request)"


@dataclass(frozen=True)
class HistoryState:
    "A ``history_sync`` row"

    section_id: int
    synced_at: str | None
    listed: int | None
    account_id: int | None
    play_state_synced_at: str | None


@dataclass
class SectionRead:
    "What this sync read of one section's history"

    section_id: int
    full: bool  # every page was read
    listed: int | None  # Plex's count of the section's plays at the first page


@dataclass
class HistoryResult:
    added: int = 0  # plays new to the cache
    warnings: list[str] = field(default_factory=list)


def read_states(conn: sqlite3.Connection) -> dict[int, HistoryState]:
    return {
        r[0]: HistoryState(*r)
        for r in conn.execute(
            "select section_id, synced_at, listed, account_id, play_state_synced_at from main.history_sync"
        )
    }


def _table_sql(table, name: str) -> str:
    return f"create table stage.{name} ({', '.join(c.name + (' INTEGER PRIMARY KEY' if i == 0 else '') for i, c in enumerate(table.columns))})"


def _insert_sql(table, name: str) -> str:
    return f"insert or replace into stage.{name} values ({', '.join('?' for _ in table.columns)})"


class HistoryStep:
    """Collect (``collect``) and apply (``apply``) one sync's history.

    ``enabled=False`` (``--no-history``) reads nothing; ``apply`` then only
    moves the play-count markers of the sections whose delta ran."""

    def __init__(
        self,
        conn,
        source: PlexSource,
        progress: Progress,
        plan: SyncPlan,
        *,
        full: bool,
        enabled: bool,
    ):
        self.conn = conn
        self.source = source
        self.progress = progress
        self.plan = plan
        self.full = full
        self.enabled = enabled
        self.states = read_states(conn)
        self.reads: dict[int, SectionRead] = {}
        self.viewed_asked: set[int] = (
            set()
        )  # sections whose lastViewedAt delta ran (or full listing)
        self.scope: tuple[int, str] | None | bool = False  # False: accounts not read this sync
        self.refused: str | None = None
        self.skipped = 0  # malformed entries left out
        self._asked = False

    # -- collect --------------------------------------------------------------

    def collect(self) -> None:
        "Stage every music section's plays read by this sync (and accounts/devices when needed)"
        if not self.enabled:
            return
        conn = self.conn
        conn.execute(_table_sql(PLAYS, "plays"))
        conn.execute(_table_sql(ACCOUNTS, "accounts"))
        conn.execute(_table_sql(DEVICES, "devices"))
        self.progress("history", force=True)
        try:
            for p in self.plan.sections:
                self._collect_section(p)
        except HistoryRefused as e:
            self.refused = str(e)
            self.reads.clear()
            with conn:
                conn.execute("delete from stage.plays")
            log.warning("%s", self.refused)
            return
        if any(r.full for r in self.reads.values()) or self._unknown_people():
            self._read_people()

    def _collect_section(self, p: SectionPlan) -> None:
        sid = p.section.id
        state = self.states.get(sid)
        incremental = (
            not self.full and p.incremental and state is not None and state.listed is not None
            and state.synced_at is not None and not self.plan.replacing
        )  # fmt: skip
        if incremental:
            since = max(0, iso_to_epoch(state.synced_at) - OVERLAP_SECONDS)
            listed = self._read(sid, since)
            new = self._new_plays(sid)
            if listed is not None and listed == state.listed + new:
                self.reads[sid] = SectionRead(sid, full=False, listed=listed)
                return
            log.info(
                "history of section %s: Plex counts %s plays, the cache expected %d + %d new: reading it all",
                sid, listed, state.listed, new,
            )  # fmt: skip
        listed = self._read(sid, None)
        self.reads[sid] = SectionRead(sid, full=True, listed=listed)

    def _read(self, sid: int, since: int | None) -> int | None:
        """Stage the section's plays, newest first: every page (``since`` None)
        or until a page reaches plays older than ``since``. Returns Plex's
        count of the section's plays on the first page (None if it sends none).
        The next page is fetched and parsed while this one is staged."""
        first_total = None
        for rows, total, first in prefetch(self._pages(sid, since)):
            if first:
                first_total = total
            self._stage(rows)
            self.progress()
        return first_total

    def _pages(self, sid: int, since: int | None):
        "(rows, totalSize, is the first page) per page, offset-paged as plexapi does"
        page_size = self.source.page_size
        start, size = 0, page_size if since is None else min(HEAD_SIZE, page_size)
        while True:
            items, total = self._page(sid, start, size)
            yield self._rows(items, sid), total, start == 0
            start += len(items)
            if total is not None and start >= total:
                return
            if not items or (total is None and len(items) < size):
                if total is not None and start < total:
                    raise PlexBadResponse(
                        f"Plex at {self.source.base_url} ended the listening history of section {sid} early: "
                        f"it counts {total:,} plays and listed {start:,}"
                    )
                return
            if (
                since is not None
                and min((int_attr(el.get("viewedAt")) or 0) for el in items) < since
            ):
                return
            size = page_size

    def _page(self, sid: int, start: int, size: int):
        if self._asked:
            return history_page(self.source, sid, start, size)
        # The first history request tells whether this token may read it at all.
        try:
            page = history_page(self.source, sid, start, size)
        except PlexAuthError:
            raise HistoryRefused(self._refusal("401 Unauthorized")) from None
        except PlexNotFound:
            raise HistoryRefused(
                f"listening history not synced: Plex at {self.source.base_url} has no "
                "/status/sessions/history/all (404 Not Found)"
            ) from None
        except PlexBadResponse as e:
            if "answered 403 " not in str(e):
                raise
            raise HistoryRefused(self._refusal("403 Forbidden")) from None
        self._asked = True
        return page

    def _refusal(self, status: str) -> str:
        return (
            f"listening history not synced: Plex at {self.source.base_url} refused it to this token ({status}); "
            "only the server owner's token may read every account's plays"
        )

    def _rows(self, items, sid: int) -> list[tuple]:
        rows = []
        for el in items:
            # not ours rather than malformed: another library's plays (a movie, an episode)
            if el.get("type") not in (None, "track") or el.get("librarySectionID") not in (
                None,
                str(sid),
            ):
                continue
            try:
                row = play_row(el)
            except BadItem as e:
                self.skipped += 1
                log.debug("skipping history entry: %s", e)
                continue
            if row[5] is None:
                row = (*row[:5], sid, *row[6:])
            rows.append(row)
        return rows

    def _stage(self, rows: list[tuple]) -> None:
        if rows:
            with self.conn:
                self.conn.execute("begin")
                self.conn.executemany(_insert_sql(PLAYS, "plays"), rows)

    def _new_plays(self, sid: int) -> int:
        "Staged plays of the section the cache does not hold"
        return self.conn.execute(
            "select count(*) from stage.plays sp where sp.section_id = ? and not exists "
            "(select 1 from main.plays p where p.history_id = sp.history_id)",
            (sid,),
        ).fetchone()[0]

    def _unknown_people(self) -> bool:
        "Does a staged play name an account or device the cache does not have?"
        return bool(
            self.conn.execute(
                "select exists(select 1 from stage.plays sp where sp.account_id is not null and not exists "
                "(select 1 from main.accounts a where a.id = sp.account_id)) or exists(select 1 from stage.plays sp "
                "where sp.device_id is not null and not exists (select 1 from main.devices d where d.id = sp.device_id))"
            ).fetchone()[0]
        )

    def _read_people(self) -> None:
        "``/accounts`` and ``/devices`` into the stage; which accounts this token sees"
        rows = {}
        for name, fetch, to_row, table in (
            ("accounts", accounts, account_row, ACCOUNTS),
            ("devices", devices, device_row, DEVICES),
        ):
            try:
                elements = fetch(self.source)
            except (PlexAuthError, PlexNotFound, PlexBadResponse) as e:
                log.info("could not read /%s: %s", name, e)
                continue
            rows[name] = []
            for el in elements:
                try:
                    rows[name].append(to_row(el))
                except BadItem:
                    self.skipped += 1
            with self.conn:
                self.conn.execute("begin")
                self.conn.executemany(_insert_sql(table, name), rows[name])
        if "accounts" in rows:
            listed = {r[0]: r[1] for r in rows["accounts"]}
            people = {k: v for k, v in listed.items() if k != 0}
            if OWNER_ACCOUNT in listed or len(people) != 1:
                self.scope = None
            else:
                self.scope = next(iter(people.items()))

    # -- what the track deltas need -----------------------------------------------

    def viewed_since(self, p: SectionPlan) -> int | None:
        """Start of the ``track.lastViewedAt`` delta for incremental section
        ``p``, or None when the history proves nobody played anything there
        since the play counts were last asked for."""
        state = self.states.get(p.section.id)
        since = p.since
        if state is not None and state.play_state_synced_at:
            since = min(since, max(0, iso_to_epoch(state.play_state_synced_at) - OVERLAP_SECONDS))
        read = self.reads.get(p.section.id)
        if read is not None and not self._played_since(p.section.id, since):
            return None
        self.viewed_asked.add(p.section.id)
        return since

    def _played_since(self, sid: int, since: int) -> bool:
        "Any play of the section at or after ``since``, read now or by an earlier (history-only) sync?"
        return bool(
            self.conn.execute(
                "select exists(select 1 from stage.plays where section_id = :s and viewed_at >= :t) "
                "or exists(select 1 from main.plays where section_id = :s and viewed_at >= :t)",
                {"s": sid, "t": epoch_to_iso(since) or ""},
            ).fetchone()[0]
        )

    # -- apply ----------------------------------------------------------------

    def apply(self, synced_at: str, tracks: bool = True) -> HistoryResult:
        """Inside the sync's transaction: plays, accounts, devices and
        ``history_sync`` (``tracks=False``: the tracks were not synced, so
        the play-count markers stay)"""
        conn = self.conn
        result = HistoryResult()
        if self.plan.replacing:  # another server's plays: their ids mean nothing here
            for table in ("plays", "accounts", "devices", "history_sync"):
                conn.execute(f"delete from main.{table}")
            self.states = {}
        if self.enabled and not self.refused:
            result.added = conn.execute(
                "select count(*) from stage.plays sp where not exists "
                "(select 1 from main.plays p where p.history_id = sp.history_id)"
            ).fetchone()[0]
            # a column Plex stopped sending (a deleted track's key) keeps what we knew
            for table in (ACCOUNTS, DEVICES, PLAYS):
                upsert(
                    conn, table, f"stage.{table.name} s", order_by=table.names[0], keep_known=True
                )
        self._write_states(synced_at, tracks)
        if self.refused:
            result.warnings.append(self.refused)
        scope = self._scope()
        if scope is not None and self.enabled and not self.refused:
            aid = scope
            name = conn.execute("select name from main.accounts where id = ?", (aid,)).fetchone()
            result.warnings.append(
                f"listening history: this token only sees the plays of account {name[0] if name else aid!r} "
                f"(id {aid}), not the server owner's view; other accounts' plays were not synced"
            )
        if self.skipped:
            result.warnings.append(f"skipped {self.skipped:,} malformed history entries")
        return result

    def _scope(self) -> int | None:
        if self.scope is not False:
            return self.scope[0] if self.scope else None
        ids = {
            s.account_id
            for sid, s in self.states.items()
            if sid in self.reads and s.account_id is not None
        }
        return min(ids) if ids else None

    def _write_states(self, synced_at: str, tracks: bool) -> None:
        conn = self.conn
        for p in self.plan.sections:
            sid = p.section.id
            old = self.states.get(sid)
            read = self.reads.get(sid)
            if tracks and (not p.incremental or sid in self.viewed_asked):
                play_state = synced_at
            elif old is not None and old.play_state_synced_at:
                play_state = old.play_state_synced_at
            else:  # never asked with history: the counts are as of the section's last sync
                play_state = p.previous.synced_at if p.previous else None
            if read is not None:
                account = (
                    (self.scope[0] if self.scope else None)
                    if self.scope is not False
                    else (old.account_id if old else None)
                )
                values = (synced_at, read.listed, account)
            else:
                values = (old.synced_at, old.listed, old.account_id) if old else (None, None, None)
            conn.execute(
                "insert into main.history_sync (section_id, synced_at, listed, account_id, play_state_synced_at) "
                "values (?, ?, ?, ?, ?) on conflict(section_id) do update set synced_at = excluded.synced_at, "
                "listed = excluded.listed, account_id = excluded.account_id, "
                "play_state_synced_at = excluded.play_state_synced_at",
                (sid, *values, play_state),
            )
