"""The sync engine: Plex -> staging -> one atomic apply into the cache.

How a sync runs:

1. Take the cache's lock (one sync at a time across processes) and record a
   ``sync_runs`` row with status ``running``.
2. Read ``/library/sections``. A section synced before whose
   ``contentChangedAt`` has not moved only needs the play-state deltas
   (``lastViewedAt``/``lastRatedAt``: plays and ratings do not move
   ``updatedAt``). Otherwise fetch what changed since the last sync (with an
   overlap for clock skew), or everything on the first or a ``full`` sync.
3. Everything fetched goes to a *staging* database next to the cache
   (``<db>-stage``), page by page, while ``sync_runs`` shows progress. Readers
   of the cache see nothing of it yet.
4. One write transaction applies the staged rows to the cache, removes
   deleted tracks, recomputes derived columns, updates ``sync_state`` and
   marks the run ``succeeded``. Readers see the old cache or the new one,
   never a mix. Any failure before or during it leaves the cache untouched
   and the run marked ``failed`` (or ``interrupted``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import facet_counts
from .config import PlexConfig
from .db import BUSY_TIMEOUT_MS, describe_sqlite_error, make_folder, open_cache
from .errors import CacheError, NoMusicSection, PlexBadResponse, PlexcacheError
from .lock import SyncLock
from .plex import ALBUM, ALBUM_COUNTS_ONLY, ARTIST, KEYS_ONLY, TRACK, PlexSource, Section, prefetch
from .rows import (
    STAGE_TRACK_COLUMNS,
    BadItem,
    album_row,
    artist_row,
    item_type,
    rating_key,
    track_row,
)
from .schema import ALBUM_COLUMNS, ARTIST_COLUMNS, TRACK_COLUMNS
from .status import mark_interrupted
from .timeutil import epoch_to_iso, iso_to_epoch, utc_now_iso

log = logging.getLogger(__name__)

OVERLAP_SECONDS = 120  # incremental windows reach back this far (clock skew)
KEY_FILTER_BATCH = 200  # rating keys per `album.id=` / `artist.id=` filter
KEY_SCAN_PAGE = 5000
SYNC_CACHE_KIB = 64 * 1024


@dataclass
class SyncProgress:
    "What a sync is doing, as data: for progress bars, logs and the web page"

    phase: str  # connecting | tracks | metadata | deletions | applying | done
    current: int
    total: int
    run_id: int | None = None


@dataclass
class SyncResult:
    run_id: int
    mode: str
    status: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    requests: int = 0
    duration_ms: int = 0
    track_count: int = 0
    skipped_items: int = 0
    warnings: list[str] = field(default_factory=list)
    synced_tracks: int | None = None  # tracks in the libraries this run synced
    section: str | None = None  # the library --section named

    def summary(self) -> str:
        "What this run did: the libraries it synced, not the whole cache"
        synced = self.track_count if self.synced_tracks is None else self.synced_tracks
        scope = f" from {self.section!r}" if self.section else ""
        held = f"; the cache holds {self.track_count:,}" if synced != self.track_count else ""
        return (
            f"Synced {synced:,} tracks ({self.mode}){scope}: {self.added:,} added, "
            f"{self.updated:,} updated, {self.removed:,} removed{held}; "
            f"{self.requests:,} requests in {self.duration_ms / 1000:.1f}s"
        )


ProgressCallback = Callable[[SyncProgress], None]


def sync(
    db_path: str | os.PathLike,
    config: PlexConfig,
    *,
    full: bool = False,
    section: str | None = None,
    allow_mass_delete: bool = False,
    on_progress: ProgressCallback | None = None,
    trigger: str = "cli",
    lock: SyncLock | None = None,
    page_size: int = 1000,
    batch_size: int = 500,
    retries: int = 3,
    timeout: float | None = None,
) -> SyncResult:
    """Bring the cache at ``db_path`` up to date with the Plex server.

    Incremental when the cache already holds a sync of this server, full
    otherwise or with ``full=True``. ``section`` limits the sync to one music
    library (by name). Raises ``SyncAlreadyRunning`` if another process is
    syncing this cache, and another ``PlexcacheError`` (with a one-line,
    token-free message) when the sync fails; the cache is then unchanged.
    """
    db_path = Path(db_path)
    make_folder(db_path)  # hardening: a one-line CacheError saying why it cannot
    lock = lock or SyncLock(db_path)
    lock.acquire(timeout=0.25)  # status probes hold it for microseconds
    try:
        # Before opening anything: a missing server config is not a sync.
        source = PlexSource(
            config, timeout=timeout, retries=retries, page_size=page_size, batch_size=batch_size
        )
        conn = open_cache(db_path)
        # A bigger page cache halves the apply of a million-track sync
        # (measured 34.7 s -> 17.7 s) for ~80 MB of memory.
        conn.execute(f"pragma cache_size = -{SYNC_CACHE_KIB}")
        try:
            run = _SyncRun(
                conn,
                db_path,
                source,
                full=full,
                section=section,
                allow_mass_delete=allow_mass_delete,
                on_progress=on_progress,
                trigger=trigger,
            )
            return run.execute()
        finally:
            source.close()
            conn.close()
    finally:
        lock.release()


class _SyncRun:
    def __init__(self, conn, db_path, source, *, full, section, allow_mass_delete, on_progress, trigger):
        self.conn = conn
        self.db_path = db_path
        self.source = source
        self.full = full
        self.section_name = section
        self.allow_mass_delete = allow_mass_delete
        self.on_progress = on_progress
        self.trigger = trigger
        self.stage_path = Path(f"{db_path}-stage")
        self.warnings: list[str] = []
        self.skipped = 0
        self.fetched = 0
        self.total = 0
        self.phase = "connecting"
        self.next_log = 1000
        self.last_progress_write = 0.0
        self.run_id: int | None = None
        self.asked: set[str] = set()  # keys requested through /library/metadata
        self.returned: set[str] = set()  # keys those answers brought back

    # -- lifecycle ----------------------------------------------------------

    def execute(self) -> SyncResult:
        started = time.monotonic()
        try:
            self._recover_stale_runs()
            self.run_id = self._insert_run()
        except sqlite3.Error as e:  # the first writes: a full disk or read-only file shows here
            raise CacheError(describe_sqlite_error(e, self.db_path)) from None
        try:
            result = self._run(started)
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt | SystemExit) else "failed"
            if isinstance(e, sqlite3.Error):
                error = CacheError(describe_sqlite_error(e, self.db_path))
            elif isinstance(e, PlexcacheError):
                error = e
            elif status == "interrupted":
                error = None
            else:
                error = PlexcacheError(f"unexpected {type(e).__name__}: {e}")
            message = self.source.config.redact(str(error)) if error else "interrupted"
            # Staging first: it may be what filled the disk, and a staging file
            # left broken by a failed write (journal off) would make every
            # statement on this connection fail, the failure record included.
            self._rollback()
            self._drop_stage()
            self._finish_failed(status, message, started)
            log.error("Sync %s: %s", status, message)
            if error is not None and error is not e:
                raise error from None
            raise
        self._drop_stage()
        return result

    def _recover_stale_runs(self) -> None:
        # We hold the lock, so any run still 'running' belongs to a dead process.
        mark_interrupted(self.conn)

    def _insert_run(self) -> int:
        cur = self.conn.execute(
            "insert into sync_runs (started_at, mode, status, phase, trigger, section, pid) "
            "values (?, ?, 'running', 'connecting', ?, ?, ?)",
            (utc_now_iso(), "full" if self.full else "incremental", self.trigger, self.section_name, os.getpid()),
        )
        return cur.lastrowid

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("rollback")
        except sqlite3.Error as e:
            log.debug("rollback failed: %s", e)

    def _finish_failed(self, status: str, message: str, started: float) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("rollback")
            self.conn.execute(
                "update sync_runs set status = ?, error = ?, finished_at = ?, duration_ms = ?, "
                "http_requests = ?, phase = ? where id = ?",
                (
                    status,
                    message,
                    utc_now_iso(),
                    int((time.monotonic() - started) * 1000),
                    self.source.requests,
                    self.phase,
                    self.run_id,
                ),
            )
        except sqlite3.Error as e:  # e.g. disk full: the lock + status recovery still tell the truth
            log.warning("could not record the failed run: %s", e)

    # -- progress -----------------------------------------------------------

    def _progress(self, phase: str | None = None, force: bool = False) -> None:
        if phase:
            self.phase = phase
        now = time.monotonic()
        if force or now - self.last_progress_write > 0.2:
            self.last_progress_write = now
            self.conn.execute(
                "update sync_runs set phase = ?, progress_current = ?, progress_total = ?, "
                "http_requests = ? where id = ?",
                (self.phase, self.fetched, max(self.total, self.fetched), self.source.requests, self.run_id),
            )
        while self.total and self.fetched >= self.next_log:
            log.info("Synced %d/%d tracks", self.next_log, self.total)
            self.next_log += 1000
        if self.on_progress:
            self.on_progress(
                SyncProgress(self.phase, self.fetched, max(self.total, self.fetched), self.run_id)
            )

    # -- the sync -------------------------------------------------------------

    def _run(self, started: float) -> SyncResult:
        source, conn = self.source, self.conn
        self._progress("connecting", force=True)
        all_sections = source.sections()
        sync_started_at = source.server_time or int(time.time())
        music = [s for s in all_sections if s.is_music]
        if self.section_name:
            wanted = self.section_name.casefold()
            chosen = [s for s in music if s.title.casefold() == wanted]
            if not chosen:
                names = ", ".join(repr(s.title) for s in music) or "none"
                raise NoMusicSection(
                    f"no music library named {self.section_name!r} on Plex at {source.base_url} (music libraries: {names})"
                )
            music = chosen
        if not music:
            raise NoMusicSection(f"Plex at {source.base_url} has no music library")

        state = conn.execute("select plex_server_id from sync_state where id = 1").fetchone()
        stored_server = state[0] if state else None
        stored = {
            row[0]: row
            for row in conn.execute("select id, uuid, content_changed_at, synced_at from sections")
        }
        # Same server? Section UUIDs are unique per server, so an unchanged set
        # of UUIDs proves it without the extra `GET /`.
        known = all(s.id in stored and stored[s.id][1] == s.uuid and stored[s.id][3] for s in music)
        server_id = stored_server
        replacing = False
        if self.full or not stored_server or not known:
            info = source.server_info()
            server_id = info["machineIdentifier"]
            has_rows = conn.execute("select exists(select 1 from tracks)").fetchone()[0]
            if stored_server and stored_server != server_id and has_rows:
                replacing = True
                self.warnings.append(
                    f"this cache held another Plex server's library ({stored_server}); "
                    f"replacing it with {info.get('friendlyName') or 'this server'} ({server_id})"
                )
        plans = []
        for s in music:
            prev = stored.get(s.id)
            incremental = not (self.full or replacing or prev is None or not prev[3] or prev[1] != s.uuid)
            plans.append((s, incremental, prev))
        mode = "incremental" if all(inc for _, inc, _ in plans) else "full"
        conn.execute("update sync_runs set mode = ?, server_id = ?, server_time = ? where id = ?",
                     (mode, server_id, sync_started_at, self.run_id))

        self._open_stage()
        # Progress total: section sizes for full syncs; incremental totals grow
        # as the delta listings report their sizes.
        for s, incremental, _ in plans:
            if not incremental:
                self.total += source.count(s.id, TRACK)
        log.info("Starting sync, total tracks: %d", self.total)
        self._progress("tracks", force=True)

        scanned_sections = []
        for s, incremental, prev in plans:
            if incremental:
                since = max(0, (iso_to_epoch(prev[3]) or 0) - OVERLAP_SECONDS)
                changed = s.content_changed_at is None or s.content_changed_at != prev[2]
                if self._fetch_incremental(s, since, changed):
                    scanned_sections.append(s.id)
            else:
                self._fetch_all(s)
                scanned_sections.append(s.id)

        self._fetch_metadata()
        self._progress("applying", force=True)
        result = self._apply(
            plans, scanned_sections, replacing, server_id, sync_started_at, mode, started
        )
        self._progress("done", force=True)
        return result

    # -- fetching -------------------------------------------------------------

    def _open_stage(self) -> None:
        self._drop_stage()
        self.conn.execute("attach database ? as stage", (str(self.stage_path),))
        self.conn.execute("pragma stage.journal_mode = off")
        self.conn.execute("pragma stage.synchronous = off")
        cols = ", ".join(
            f"{c} TEXT PRIMARY KEY" if c == "rating_key" else c for c in STAGE_TRACK_COLUMNS
        )
        self.conn.execute(f"create table stage.tracks ({cols})")
        self.conn.execute(
            "create table stage.albums ("
            + ", ".join(f"{c} TEXT PRIMARY KEY" if c == "rating_key" else c for c in ALBUM_COLUMNS)
            + ")"
        )
        self.conn.execute(
            "create table stage.artists ("
            + ", ".join(f"{c} TEXT PRIMARY KEY" if c == "rating_key" else c for c in ARTIST_COLUMNS)
            + ")"
        )
        self.conn.execute("create table stage.seen (rating_key TEXT PRIMARY KEY, section_id INTEGER)")
        self.conn.execute("create table stage.wanted (rating_key TEXT PRIMARY KEY)")
        # Cached tracks found deleted without a full key scan (album counts).
        self.conn.execute("create table stage.gone (rating_key TEXT PRIMARY KEY)")

    def _drop_stage(self) -> None:
        try:
            names = [r[1] for r in self.conn.execute("pragma database_list")]
            if "stage" in names:
                self.conn.execute("detach database stage")
        except sqlite3.Error:
            pass
        for path in (self.stage_path, Path(f"{self.stage_path}-journal")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove %s: %s", path, e)

    def _stage_tracks(self, items, section_id: int) -> int:
        rows, dupes = [], set()
        for el in items:
            try:
                row = track_row(el, section_id)
            except BadItem as e:
                self.skipped += 1
                log.debug("skipping item: %s", e)
                continue
            if row[0] in dupes:
                self.skipped += 1
                continue
            dupes.add(row[0])
            rows.append(row)
        if rows:
            placeholders = ", ".join("?" for _ in STAGE_TRACK_COLUMNS)
            with self.conn:
                self.conn.execute("begin")
                self.conn.executemany(
                    f"insert or replace into stage.tracks values ({placeholders})", rows
                )
        return len(rows)

    def _fetch_all(self, section: Section) -> None:
        # complete: absences from this listing become deletions
        for items, _remaining in prefetch(self.source.pages(section.id, TRACK, complete=True)):
            self.fetched += self._stage_tracks(items, section.id)
            self._progress()
        # Every listed key was seen: one sorted bulk insert, not a second
        # write per track.
        with self.conn:
            self.conn.execute("begin")
            self.conn.execute(
                "insert or ignore into stage.seen select rating_key, section_id from stage.tracks "
                "where section_id = ? order by rating_key",
                (section.id,),
            )

    def _fetch_delta(self, section: Section, libtype: int, filters: dict) -> list:
        "Stage (tracks) or collect keys of (albums, artists) items matching ``filters``"
        keys = []
        first = True
        for items, remaining in self.source.pages(section.id, libtype, filters):
            if libtype == TRACK:
                if first:
                    self.total += remaining
                self.fetched += self._stage_tracks(items, section.id)
                self._progress()
            else:
                keys.extend(el.get("ratingKey") for el in items if el.get("ratingKey"))
            first = False
        return keys

    def _fetch_incremental(self, section: Section, since: int, changed: bool) -> bool:
        """Fetch what changed in ``section`` since ``since``.

        Returns True when it scanned every key of the section (so deletions
        can be applied for it).
        """
        sid = section.id
        if changed:
            self._fetch_delta(section, TRACK, {"track.updatedAt>>": since})
        self._fetch_delta(section, TRACK, {"track.lastViewedAt>>": since})
        self._fetch_delta(section, TRACK, {"track.lastRatedAt>>": since})
        if not changed:
            return False
        albums = self._fetch_delta(section, ALBUM, {"album.updatedAt>>": since})
        artists = self._fetch_delta(section, ARTIST, {"artist.updatedAt>>": since})
        self._want(albums + artists)
        # Album and artist edits change derived track columns (album title,
        # album artist, genre fallback, live): re-read their tracks.
        for field_name, keys in (("album.id", albums), ("artist.id", artists)):
            for i in range(0, len(keys), KEY_FILTER_BATCH):
                self._fetch_delta(section, TRACK, {field_name: ",".join(keys[i : i + KEY_FILTER_BATCH])})

        # Deletions: the server's count tells whether anything disappeared.
        server_total = self.source.count(sid, TRACK)
        local, new = self.conn.execute(
            "select (select count(*) from main.tracks where section_id = :s), "
            "(select count(*) from stage.tracks st where st.section_id = :s and not exists "
            "(select 1 from main.tracks t where t.rating_key = st.rating_key))",
            {"s": sid},
        ).fetchone()
        if server_total == local + new:
            return False
        self._progress("deletions", force=True)
        if self._find_deletions_by_album(sid, server_total, local + new):
            return False
        for items, _ in prefetch(
            self.source.pages(sid, TRACK, page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY, complete=True)
        ):
            with self.conn:
                self.conn.execute("begin")
                self.conn.executemany(
                    "insert or ignore into stage.seen values (?, ?)",
                    ((k, sid) for k in map(rating_key, (el.get("ratingKey") for el in items)) if k),
                )
        # Keys Plex has that we have never seen (e.g. moved in with an old
        # updatedAt): fetch them in full.
        missing = [
            r[0]
            for r in self.conn.execute(
                "select s.rating_key from stage.seen s where s.section_id = ? "
                "and not exists (select 1 from main.tracks t where t.rating_key = s.rating_key) "
                "and not exists (select 1 from stage.tracks st where st.rating_key = s.rating_key)",
                (sid,),
            )
        ]
        if missing:
            self._want(missing)
        return True

    def _find_deletions_by_album(self, sid: int, server_total: int, expected: int) -> bool:
        """Find the tracks that left section ``sid`` from per-album counts.

        The section's count disagrees with the cache, so tracks were deleted
        (or appeared without a recent ``updatedAt``). Instead of listing every
        track key of the section, list its albums with their ``leafCount``,
        compare each with the cache's count for that album (staged tracks
        counted under the album they are staged with), and list the track
        keys of only the albums that differ. Returns True when that explains
        the whole difference, with the deleted tracks in ``stage.gone`` and
        unknown tracks queued for a full read; False (nothing recorded) when
        it does not, e.g. a server without ``leafCount`` or changes racing
        the sync, and the caller falls back to the full key scan.
        """
        conn = self.conn
        server_albums: dict[str, int] = {}
        for items, _ in self.source.pages(
            sid, ALBUM, page_size=KEY_SCAN_PAGE, extra=ALBUM_COUNTS_ONLY
        ):
            for el in items:
                key, leaves = rating_key(el.get("ratingKey")), el.get("leafCount")
                if not key or leaves is None or not leaves.isdigit():
                    return False
                server_albums[key] = int(leaves)
        cached = dict(
            conn.execute(
                "select album_rating_key, count(*) from ("
                "select t.album_rating_key from main.tracks t where t.section_id = :s and not exists "
                "(select 1 from stage.tracks st where st.rating_key = t.rating_key) "
                "union all select st.album_rating_key from stage.tracks st where st.section_id = :s"
                ") where album_rating_key is not null group by album_rating_key",
                {"s": sid},
            )
        )
        suspects = sorted(
            (a for a in server_albums.keys() | cached.keys() if server_albums.get(a, 0) != cached.get(a, 0)),
            key=int,
        )
        seen: set[str] = set()
        for i in range(0, len(suspects), KEY_FILTER_BATCH):
            batch = suspects[i : i + KEY_FILTER_BATCH]
            for items, _ in self.source.pages(
                sid, TRACK, {"album.id": ",".join(batch)}, page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY
            ):
                seen.update(k for k in map(rating_key, (el.get("ratingKey") for el in items)) if k)
        conn.execute("create temp table album_seen (rating_key TEXT PRIMARY KEY)")
        try:
            conn.executemany("insert or ignore into temp.album_seen values (?)", ((k,) for k in seen))
            conn.execute("create temp table suspect_albums (rating_key TEXT PRIMARY KEY)")
            conn.executemany("insert into temp.suspect_albums values (?)", ((a,) for a in suspects))
            gone = [
                r[0]
                for r in conn.execute(
                    "select t.rating_key from main.tracks t where t.section_id = ? "
                    "and t.album_rating_key in (select rating_key from temp.suspect_albums) "
                    "and not exists (select 1 from temp.album_seen s where s.rating_key = t.rating_key) "
                    "and not exists (select 1 from stage.tracks st where st.rating_key = t.rating_key)",
                    (sid,),
                )
            ]
            unknown = [
                r[0]
                for r in conn.execute(
                    "select s.rating_key from temp.album_seen s "
                    "where not exists (select 1 from main.tracks t where t.rating_key = s.rating_key) "
                    "and not exists (select 1 from stage.tracks st where st.rating_key = s.rating_key)"
                )
            ]
        finally:
            conn.execute("drop table if exists temp.album_seen")
            conn.execute("drop table if exists temp.suspect_albums")
        if expected - len(gone) + len(unknown) != server_total:
            log.debug(
                "album counts do not explain section %s: %d cached+new, %d gone, %d unknown, Plex counts %d",
                sid, expected, len(gone), len(unknown), server_total,
            )
            return False
        with conn:
            conn.execute("begin")
            conn.executemany("insert or ignore into stage.gone values (?)", ((k,) for k in gone))
        if unknown:
            self._want(unknown)
        return True

    def _want(self, keys: Iterable[str]) -> None:
        with self.conn:
            self.conn.execute("begin")
            self.conn.executemany(
                "insert or ignore into stage.wanted values (?)", ((k,) for k in keys if k)
            )

    def _fetch_metadata(self) -> None:
        """Full items for: albums and artists the staged tracks need, tracks
        whose listed genres may be truncated, and anything queued in ``wanted``."""
        self._progress("metadata", force=True)
        conn = self.conn
        # Albums/artists referenced by staged tracks that the cache lacks or
        # that this sync re-reads anyway (full sections: everything).
        conn.execute(
            "insert or ignore into stage.wanted "
            "select distinct album_rating_key from stage.tracks st where album_rating_key is not null "
            "and (st.rating_key in (select rating_key from stage.seen) or not exists "
            "(select 1 from main.albums a where a.rating_key = st.album_rating_key))"
        )
        conn.execute(
            "insert or ignore into stage.wanted "
            "select distinct artist_rating_key from stage.tracks st where artist_rating_key is not null "
            "and (st.rating_key in (select rating_key from stage.seen) or not exists "
            "(select 1 from main.artists a where a.rating_key = st.artist_rating_key))"
        )
        conn.execute(
            "insert or ignore into stage.wanted select rating_key from stage.tracks where genres_truncated = 1"
        )
        keys = [r[0] for r in conn.execute("select rating_key from stage.wanted order by cast(rating_key as integer)")]
        if not keys:
            return
        self._consume_metadata(keys)
        # Albums may name artists we do not have yet (rare: tracks name them too).
        extra = [
            r[0]
            for r in conn.execute(
                "select distinct artist_rating_key from stage.albums al where artist_rating_key is not null "
                "and not exists (select 1 from stage.artists s where s.rating_key = al.artist_rating_key) "
                "and not exists (select 1 from main.artists a where a.rating_key = al.artist_rating_key) "
                "and not exists (select 1 from stage.wanted w where w.rating_key = al.artist_rating_key)"
            )
        ]
        if extra:
            self._consume_metadata(extra)
        self._check_metadata()

    def _check_metadata(self) -> None:
        """Every key asked for in full must come back, or be gone for good.

        A metadata answer may leave keys out because they were deleted after
        we listed them, or because the answer was cut or wrong. Taking the
        latter for the former would cache tracks with no album or artist
        row, with an album's or artist's old title, genres and live flag, or
        with truncated genre lists, and the next incremental sync would not
        look again. So ask once more for what is missing; then, if Plex
        still lists the staged tracks that depend on a missing key, it is
        contradicting itself: fail, changing nothing. Otherwise those tracks
        are gone too, and are left out.
        """
        missing = self.asked - self.returned
        if not missing:
            return
        self._consume_metadata(sorted(missing, key=int))
        missing -= self.returned
        if not missing:
            return
        dependents: dict = {}  # section -> staged track keys that need a missing key
        for key in missing:
            for track_key, sid in self.conn.execute(
                "select rating_key, section_id from stage.tracks "
                "where ? in (rating_key, album_rating_key, artist_rating_key)",
                (key,),
            ):
                dependents.setdefault(sid, set()).add(track_key)
        for sid, keys in dependents.items():
            keys = sorted(keys, key=int)
            for i in range(0, len(keys), KEY_FILTER_BATCH):
                batch = keys[i : i + KEY_FILTER_BATCH]
                if sid is not None and self.source.count(sid, TRACK, {"track.id": ",".join(batch)}):
                    raise PlexBadResponse(
                        f"Plex at {self.source.base_url} lists tracks whose album, artist or full "
                        f"details it does not return ({len(missing):,} items, e.g. {min(missing, key=int)}); "
                        "nothing was changed, try again"
                    )
        gone = [(k,) for keys in dependents.values() for k in keys]
        with self.conn:
            self.conn.execute("begin")
            self.conn.executemany("delete from stage.seen where rating_key = ?", gone)
            self.conn.executemany("delete from stage.tracks where rating_key = ?", gone)

    def _consume_metadata(self, keys: list[str]) -> None:
        conn = self.conn
        album_sql = f"insert or replace into stage.albums ({', '.join(ALBUM_COLUMNS)}) values ({', '.join(':' + c for c in ALBUM_COLUMNS)})"
        artist_sql = f"insert or replace into stage.artists ({', '.join(ARTIST_COLUMNS)}) values ({', '.join(':' + c for c in ARTIST_COLUMNS)})"
        self.asked.update(keys)
        for elements in prefetch(self.source.metadata(keys)):
            tracks_full, albums, artists = [], [], []
            for el in elements:
                kind = item_type(el)
                try:
                    if kind == "album":
                        albums.append(album_row(el))
                    elif kind == "artist":
                        artists.append(artist_row(el))
                    elif kind == "track":
                        tracks_full.append(el)
                    else:
                        continue
                    self.returned.add(rating_key(el.get("ratingKey")))
                except BadItem:
                    self.skipped += 1
            with conn:
                conn.execute("begin")
                conn.executemany(album_sql, albums)
                conn.executemany(artist_sql, artists)
            if tracks_full:
                self._merge_full_tracks(tracks_full)
            self._progress()

    def _merge_full_tracks(self, elements) -> None:
        """Full track items: complete genres for staged tracks; tracks we
        only knew by key (found by a key scan) are staged whole."""
        conn = self.conn
        staged, new = [], []
        for el in elements:
            key = el.get("ratingKey")
            if conn.execute("select 1 from stage.tracks where rating_key = ?", (key,)).fetchone():
                staged.append(el)
            else:
                new.append(el)
        with conn:
            conn.execute("begin")
            for el in staged:
                try:
                    row = track_row(el, None)
                except BadItem:
                    self.skipped += 1
                    continue
                genres = row[STAGE_TRACK_COLUMNS.index("own_genres")]
                conn.execute(
                    "update stage.tracks set own_genres = ?, genres_truncated = 0 where rating_key = ?",
                    (genres, row[0]),
                )
        for el in new:
            sid = el.get("librarySectionID")
            self.fetched += self._stage_tracks([el], int(sid) if sid and sid.isdigit() else None)
        if new:
            # their albums/artists may be unknown too
            keys = [
                r[0]
                for r in conn.execute(
                    "select album_rating_key from stage.tracks st where album_rating_key is not null and not exists "
                    "(select 1 from main.albums a where a.rating_key = st.album_rating_key) and not exists "
                    "(select 1 from stage.albums a where a.rating_key = st.album_rating_key) "
                    "union select artist_rating_key from stage.tracks st where artist_rating_key is not null and not exists "
                    "(select 1 from main.artists a where a.rating_key = st.artist_rating_key) and not exists "
                    "(select 1 from stage.artists a where a.rating_key = st.artist_rating_key)"
                )
            ]
            wanted = {r[0] for r in conn.execute("select rating_key from stage.wanted")}
            keys = [k for k in keys if k not in wanted]
            if keys:
                self._want(keys)
                self._consume_metadata(keys)

    # -- applying -------------------------------------------------------------

    def _apply(self, plans, scanned_sections, replacing, server_id, sync_started_at, mode, started) -> SyncResult:
        conn = self.conn
        synced_ids = [s.id for s, _, _ in plans]
        conn.execute("begin immediate")
        try:
            cache_total = conn.execute("select count(*) from main.tracks").fetchone()[0]
            added = conn.execute(
                "select count(*) from stage.tracks st where not exists "
                "(select 1 from main.tracks t where t.rating_key = st.rating_key)"
            ).fetchone()[0]

            # Which cached tracks are gone from Plex?
            conn.execute("create temp table doomed (rating_key TEXT PRIMARY KEY)")
            if replacing:
                conn.execute(
                    "insert into temp.doomed select rating_key from main.tracks t where not exists "
                    "(select 1 from stage.tracks st where st.rating_key = t.rating_key)"
                )
            elif scanned_sections:
                marks = ",".join("?" for _ in scanned_sections)
                conn.execute(
                    f"insert into temp.doomed select rating_key from main.tracks t where t.section_id in ({marks}) "
                    "and not exists (select 1 from stage.seen s where s.rating_key = t.rating_key)",
                    scanned_sections,
                )
            if not replacing:
                conn.execute(
                    "insert or ignore into temp.doomed select g.rating_key from stage.gone g "
                    "where exists (select 1 from main.tracks t where t.rating_key = g.rating_key)"
                )
            doomed = conn.execute("select count(*) from temp.doomed").fetchone()[0]
            guarded: set[int] = set()
            if doomed and not replacing and not self.allow_mass_delete:
                emptied = [
                    s.title
                    for s, _, _ in plans
                    if s.id in scanned_sections
                    and not conn.execute("select exists(select 1 from stage.seen where section_id = ?)", (s.id,)).fetchone()[0]
                    and conn.execute("select exists(select 1 from main.tracks where section_id = ?)", (s.id,)).fetchone()[0]
                ]
                if emptied or doomed * 2 > cache_total:
                    why = (
                        f"Plex returned no tracks for {', '.join(repr(t) for t in emptied)}"
                        if emptied
                        else f"that is more than half of the cache ({cache_total:,} tracks)"
                    )
                    self.warnings.append(
                        f"not removing {doomed:,} tracks: {why}; run again with --allow-mass-delete if this is intended"
                    )
                    # Forget these sections' change marker so the next sync
                    # checks for deletions again instead of trusting it.
                    guarded = {r[0] for r in conn.execute(
                        "select distinct t.section_id from main.tracks t join temp.doomed d using (rating_key)"
                    )}
                    conn.execute("delete from temp.doomed")
                    doomed = 0
            bulk = cache_total == 0 or (added + doomed) > cache_total // 2
            fts_triggers = self._drop_fts_triggers() if bulk else []
            # A bulk load builds the secondary indexes afterwards, sorted, in
            # one pass each: ~30% less time than maintaining 12 of them row by
            # row at 1,000,000 tracks.
            track_indexes = self._drop_indexes("tracks") if bulk else []
            # Facet counts follow the change: out with the rows about to be
            # written or deleted now, in with what they become afterwards.
            facet_keys = "select rating_key from stage.tracks union select rating_key from temp.doomed"
            if not bulk:
                facet_counts.subtract(conn, facet_keys)

            # Artists, then albums (their artist name follows the artist row).
            self._upsert("artists", ARTIST_COLUMNS, "select * from stage.artists")
            self._upsert(
                "albums",
                ALBUM_COLUMNS,
                "select al.rating_key, al.title, coalesce(ar.name, al.artist), al.year, al.genres, "
                "al.subformats, al.is_live, al.studio, al.added_at, al.updated_at, al.artist_rating_key, "
                "al.section_id from stage.albums al left join main.artists ar on ar.rating_key = al.artist_rating_key",
            )
            conn.execute(
                "update main.albums set artist = (select name from main.artists ar where ar.rating_key = albums.artist_rating_key) "
                "where artist_rating_key in (select rating_key from stage.artists)"
            )
            self._upsert(
                "tracks",
                TRACK_COLUMNS,
                """select s.rating_key, s.title,
                    coalesce(s.track_artist, ar.name, s.album_artist, ''),
                    coalesce(al.title, s.album_title, ''),
                    s.duration_ms,
                    coalesce(s.own_year, al.year, s.parent_year),
                    coalesce(s.own_genres, nullif(al.genres, '[]'), nullif(ar.genres, '[]'), '[]'),
                    s.user_rating,
                    coalesce(al.is_live, 0),
                    s.updated_at,
                    coalesce(ar.name, s.album_artist),
                    s.track_artist, s.track_number, s.disc_number, s.play_count, s.skip_count,
                    s.last_played_at, s.last_rated_at, s.added_at, s.codec, s.bitrate,
                    s.album_rating_key, s.artist_rating_key, s.section_id
                from stage.tracks s
                left join main.albums al on al.rating_key = s.album_rating_key
                left join main.artists ar on ar.rating_key = s.artist_rating_key""",
                order_by="rating_key",
            )
            changed = conn.execute("select changes()").fetchone()[0]
            updated = max(0, changed - added)
            removed = 0
            if doomed:
                removed = conn.execute(
                    "delete from main.tracks where rating_key in (select rating_key from temp.doomed)"
                ).rowcount
            for sql in track_indexes:
                conn.execute(sql)
            if bulk:
                facet_counts.recount(conn)
            else:
                facet_counts.add(conn, facet_keys)
            # Albums and artists nobody refers to any more.
            conn.execute(
                "delete from main.albums where not exists "
                "(select 1 from main.tracks t where t.album_rating_key = albums.rating_key)"
            )
            conn.execute(
                "delete from main.artists where not exists "
                "(select 1 from main.tracks t where t.artist_rating_key = artists.rating_key) and not exists "
                "(select 1 from main.albums a where a.artist_rating_key = artists.rating_key)"
            )
            if replacing:
                conn.execute(
                    f"delete from main.sections where id not in ({','.join('?' for _ in synced_ids)})", synced_ids
                )
            if fts_triggers:
                conn.execute("insert into tracks_fts(tracks_fts) values('rebuild')")
                for sql in fts_triggers:
                    conn.execute(sql)

            synced_at_iso = epoch_to_iso(sync_started_at)
            synced_tracks = 0
            for s, _, prev in plans:
                count = conn.execute("select count(*) from main.tracks where section_id = ?", (s.id,)).fetchone()[0]
                synced_tracks += count
                # A guarded section may have listed nothing at all (Plex said
                # "empty"): keep its last sync time, so the next incremental
                # window still covers edits made before this sync.
                synced_at = prev[3] if s.id in guarded and prev and prev[3] else synced_at_iso
                conn.execute(
                    "insert into main.sections (id, uuid, title, content_changed_at, track_count, synced_at) "
                    "values (?, ?, ?, ?, ?, ?) on conflict(id) do update set uuid = excluded.uuid, "
                    "title = excluded.title, content_changed_at = excluded.content_changed_at, "
                    "track_count = excluded.track_count, synced_at = excluded.synced_at",
                    (s.id, s.uuid, s.title, None if s.id in guarded else s.content_changed_at, count, synced_at),
                )
            track_count = conn.execute("select count(*) from main.tracks").fetchone()[0]
            duration_ms = int((time.monotonic() - started) * 1000)
            finished = utc_now_iso()
            conn.execute(
                "insert into main.sync_state (id, plex_server_id, last_sync_at, track_count, sync_duration_ms) "
                "values (1, ?, ?, ?, ?) on conflict(id) do update set plex_server_id = excluded.plex_server_id, "
                "last_sync_at = excluded.last_sync_at, track_count = excluded.track_count, "
                "sync_duration_ms = excluded.sync_duration_ms",
                (server_id, finished, track_count, duration_ms),
            )
            warning = "; ".join(self.warnings + ([f"skipped {self.skipped:,} malformed items"] if self.skipped else []))
            conn.execute(
                "update sync_runs set status = 'succeeded', phase = 'done', finished_at = ?, duration_ms = ?, "
                "progress_current = ?, progress_total = ?, tracks_added = ?, tracks_updated = ?, "
                "tracks_removed = ?, http_requests = ?, warning = ? where id = ?",
                (
                    finished,
                    duration_ms,
                    self.fetched,
                    max(self.total, self.fetched),
                    added,
                    updated,
                    removed,
                    self.source.requests,
                    warning or None,
                    self.run_id,
                ),
            )
            conn.execute("drop table temp.doomed")
            conn.execute("commit")
        except BaseException:
            if conn.in_transaction:
                conn.execute("rollback")
            try:
                conn.execute("drop table if exists temp.doomed")
            except sqlite3.Error:
                pass
            raise
        if self.skipped:
            self.warnings.append(f"skipped {self.skipped:,} malformed items from Plex")
        # Shrink the WAL if no reader is in the way; never wait for readers.
        try:
            conn.execute("pragma busy_timeout = 0")
            conn.execute("pragma main.wal_checkpoint(truncate)")
        except sqlite3.Error:
            pass
        finally:
            conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        log.info("Sync complete in %dms", duration_ms)
        return SyncResult(
            run_id=self.run_id,
            mode=mode,
            status="succeeded",
            added=added,
            updated=updated,
            removed=removed,
            requests=self.source.requests,
            duration_ms=duration_ms,
            track_count=track_count,
            skipped_items=self.skipped,
            warnings=list(self.warnings),
            synced_tracks=synced_tracks,
            section=plans[0][0].title if self.section_name else None,
        )

    def _upsert(self, table: str, columns, select_sql: str, order_by: str | None = None) -> None:
        # Inserting in key order keeps the primary-key index writes sequential.
        cols = ", ".join(columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        old = ", ".join(f"{table}.{c}" for c in columns[1:])
        new = ", ".join(f"excluded.{c}" for c in columns[1:])
        self.conn.execute(
            f"insert into main.{table} ({cols}) select * from ({select_sql}) where true "
            + (f"order by {order_by} " if order_by else "")
            +
            f"on conflict(rating_key) do update set {updates} where ({old}) is not ({new})"
        )

    def _drop_indexes(self, table: str) -> list[str]:
        "Drop ``table``'s non-unique secondary indexes; return the SQL that recreates them"
        rows = self.conn.execute(
            "select name, sql from main.sqlite_master where type = 'index' and tbl_name = ? and sql is not null",
            (table,),
        ).fetchall()
        rows = [(name, sql) for name, sql in rows if not sql.lstrip().upper().startswith("CREATE UNIQUE")]
        for name, _ in rows:
            self.conn.execute(f'drop index main."{name}"')
        return [sql.replace("CREATE INDEX ", "CREATE INDEX main.", 1) if " main." not in sql else sql for _, sql in rows]

    def _drop_fts_triggers(self) -> list[str]:
        rows = self.conn.execute(
            "select name, sql from main.sqlite_master where type = 'trigger' and tbl_name = 'tracks'"
        ).fetchall()
        for name, _ in rows:
            self.conn.execute(f'drop trigger main."{name}"')
        return [sql for _, sql in rows]

