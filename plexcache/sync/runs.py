"""The ``sync_runs`` table: the only module that writes it.

A run is a row: ``start`` inserts it as ``running`` (after marking runs left
``running`` by dead processes ``interrupted``), ``progress`` keeps its phase
and counters current while the sync works, and it ends with exactly one of
``succeed`` (inside the apply transaction, so the cache and the run's
outcome commit together), ``fail`` (``failed`` or ``interrupted``, with a
token-free message) or, for a process that died, ``mark_interrupted`` by the
next sync or status reader. ``list_runs`` reads them back.

Readers (``status.py``, the plugin) only read; they call
``recover_interrupted`` here when they find a run whose process is gone.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..db import connect_readonly
from ..errors import CacheError, SyncAlreadyRunning
from ..lock import SyncLock, is_locked
from ..timeutil import utc_now_iso

log = logging.getLogger("plexcache.sync")

INTERRUPTED_MESSAGE = "the sync process stopped before finishing (killed or crashed)"
PROGRESS_WRITE_INTERVAL = 0.2  # seconds between progress writes to sync_runs


@dataclass
class SyncProgress:
    "What a sync is doing, as data: for progress bars, logs and the web page"

    phase: str  # connecting | history | tracks | metadata | deletions | applying | done
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
    plays_added: int = 0  # listening-history plays new to the cache

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


def start(conn: sqlite3.Connection, *, full: bool, trigger: str, section: str | None) -> int:
    """Insert this sync's ``running`` row; return its id.

    The caller holds the sync lock, so any run still ``running`` belongs to
    a dead process: it is marked ``interrupted`` first."""
    mark_interrupted(conn)
    cur = conn.execute(
        "insert into sync_runs (started_at, mode, status, phase, trigger, section, pid) "
        "values (?, ?, 'running', 'connecting', ?, ?, ?)",
        (utc_now_iso(), "full" if full else "incremental", trigger, section, os.getpid()),
    )
    return cur.lastrowid


def record_plan(
    conn: sqlite3.Connection, run_id: int, *, mode: str, server_id: str | None, server_time: int
) -> None:
    conn.execute(
        "update sync_runs set mode = ?, server_id = ?, server_time = ? where id = ?",
        (mode, server_id, server_time, run_id),
    )


class Progress:
    """A running sync's counters, written to its row at most every
    ``PROGRESS_WRITE_INTERVAL`` (or when forced), logged every 1,000 tracks
    and passed to ``on_progress``."""

    def __init__(
        self, conn, run_id: int, requests: Callable[[], int], on_progress: ProgressCallback | None
    ):
        self.conn = conn
        self.run_id = run_id
        self.requests = requests
        self.on_progress = on_progress
        self.phase = "connecting"
        self.fetched = 0  # tracks staged so far
        self.total = 0  # tracks expected (grows as delta listings report sizes)
        self._next_log = 1000
        self._last_write = 0.0

    @property
    def shown_total(self) -> int:
        return max(self.total, self.fetched)

    def __call__(self, phase: str | None = None, force: bool = False) -> None:
        if phase:
            self.phase = phase
        now = time.monotonic()
        if force or now - self._last_write > PROGRESS_WRITE_INTERVAL:
            self._last_write = now
            self.conn.execute(
                "update sync_runs set phase = ?, progress_current = ?, progress_total = ?, "
                "http_requests = ? where id = ?",
                (self.phase, self.fetched, self.shown_total, self.requests(), self.run_id),
            )
        while self.total and self.fetched >= self._next_log:
            log.info("Synced %d/%d tracks", self._next_log, self.total)
            self._next_log += 1000
        if self.on_progress:
            self.on_progress(SyncProgress(self.phase, self.fetched, self.shown_total, self.run_id))


def succeed(
    conn: sqlite3.Connection,
    progress: Progress,
    *,
    finished: str,
    duration_ms: int,
    added: int,
    updated: int,
    removed: int,
    warning: str | None,
) -> None:
    "Mark the run ``succeeded``; call it inside the apply transaction"
    conn.execute(
        "update sync_runs set status = 'succeeded', phase = 'done', finished_at = ?, duration_ms = ?, "
        "progress_current = ?, progress_total = ?, tracks_added = ?, tracks_updated = ?, "
        "tracks_removed = ?, http_requests = ?, warning = ? where id = ?",
        (
            finished,
            duration_ms,
            progress.fetched,
            progress.shown_total,
            added,
            updated,
            removed,
            progress.requests(),
            warning,
            progress.run_id,
        ),
    )


def fail(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    status: str,
    message: str,
    duration_ms: int,
    requests: int,
    phase: str,
) -> bool:
    """Mark the run ``failed`` or ``interrupted``; a write that fails is only logged.

    Only a run still ``running`` changes: one whose apply committed (it is
    ``succeeded``) stays so when Ctrl-C lands after the commit. False only
    then: the run had already ended."""
    try:
        if conn.in_transaction:
            conn.execute("rollback")
        cur = conn.execute(
            "update sync_runs set status = ?, error = ?, finished_at = ?, duration_ms = ?, "
            "http_requests = ?, phase = ? where id = ? and status = 'running'",
            (status, message, utc_now_iso(), duration_ms, requests, phase, run_id),
        )
    except sqlite3.Error as e:  # e.g. disk full: the lock + status recovery still tell the truth
        log.warning("could not record the failed run: %s", e)
        return True
    return cur.rowcount > 0


def mark_interrupted(conn: sqlite3.Connection) -> int:
    "Record every 'running' run as interrupted; the caller knows their process is gone"
    cur = conn.execute(
        "update sync_runs set status = 'interrupted', finished_at = ?, "
        "error = coalesce(error, ?) where status = 'running'",
        (utc_now_iso(), INTERRUPTED_MESSAGE),
    )
    return cur.rowcount


def recover_interrupted(db_path) -> int:
    """Mark runs left 'running' by a dead process as 'interrupted'.

    Under the sync lock, taken without waiting: a sync holding it is alive,
    and none can start (and insert its own 'running' row) while the rows
    are updated. Returns how many rows changed.
    """
    if not Path(db_path).exists():
        return 0
    try:
        lock = SyncLock(db_path).acquire(timeout=0)
    except SyncAlreadyRunning:
        return 0
    except CacheError:  # no lock file and a read-only folder: nobody syncs here
        if is_locked(db_path):
            return 0
        lock = None
    try:
        conn = sqlite3.connect(db_path, timeout=2)
        try:
            with conn:
                return mark_interrupted(conn)
        finally:
            conn.close()
    except sqlite3.OperationalError:
        # read-only file or no sync_runs table yet: nothing to recover here
        return 0
    finally:
        if lock is not None:
            lock.release()


def list_runs(db_path, limit: int = 20) -> list[dict]:
    "The most recent rows of ``sync_runs``, newest first"
    if not Path(db_path).exists():
        return []
    conn = connect_readonly(db_path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("select * from sync_runs order by id desc limit ?", (limit,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [dict(r) for r in rows]
