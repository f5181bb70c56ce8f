"""The status object shared by ``plexcache status`` and ``GET /api/library/status``.

Everything comes from the cache file and the sync lock, so a sync started by
any process (CLI, web, cron) shows up here. Shape, exactly as in the spec::

    {"track_count": 18432, "synced_at": "2026-02-05T10:30:00Z",
     "is_syncing": false, "sync_progress": null, "error": null,
     "plex_connected": true}

Read only: ``sync_runs`` belongs to ``sync.runs``; a run left ``running`` by
a dead process is handed to ``runs.recover_interrupted``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import PlexConfig
from .db import connect_readonly, describe_sqlite_error
from .errors import CacheError, PlexcacheError
from .lock import is_locked
from .sync.runs import INTERRUPTED_MESSAGE, recover_interrupted

__all__ = ["get_status", "plex_reachable", "INTERRUPTED_MESSAGE"]

PLEX_CHECK_TTL = 10.0  # seconds a Plex reachability answer is reused


def get_status(
    db_path: str | os.PathLike,
    config: PlexConfig | None = None,
    *,
    check_plex: bool = True,
) -> dict:
    """The spec's status dict for the cache at ``db_path``.

    ``plex_connected`` is a real request to the server, cached for
    ``PLEX_CHECK_TTL`` seconds per server; with ``check_plex=False`` (or no
    server configured) it is ``False`` and no request is made.

    A ``running`` run is called interrupted only when it is proven dead: the
    cache is read *before* the lock is probed, so a run seen ``running``
    whose lock is then free either finished in between (a live sync records
    its outcome before it lets go of the lock) or lost its process; reading
    that run's row once more tells which. Never from the probe's timing alone.
    """
    db_path = Path(db_path)
    status = {
        "track_count": 0,
        "synced_at": None,
        "is_syncing": False,
        "sync_progress": None,
        "error": None,
        "plex_connected": False,
    }
    last_error = None
    if db_path.exists():
        for _ in range(LOOKS):
            seen = _read(db_path)
            syncing = is_locked(db_path)  # after the read: see the docstring
            orphaned = (
                seen.running is not None
                and not syncing
                and _still_running(db_path, seen.running[0])
            )
            if seen.running is None or syncing or orphaned:
                break
            # That run finished between the read and the probe: read again.
        status["track_count"], status["synced_at"] = seen.track_count, seen.synced_at
        status["is_syncing"] = syncing
        if orphaned:
            recover_interrupted(db_path)  # best effort: a read-only cache stays as it is
            last_error = INTERRUPTED_MESSAGE
        elif seen.finished and seen.finished[0] in ("failed", "interrupted"):
            last_error = seen.finished[1] or f"last sync {seen.finished[0]}"
        if syncing:
            current, total = seen.running[1:] if seen.running else (0, 0)
            status["sync_progress"] = {"current": current, "total": total}
    elif is_locked(db_path):
        status["is_syncing"] = True
        status["sync_progress"] = {"current": 0, "total": 0}

    if check_plex and config is not None and config.configured:
        connected, plex_error = plex_reachable(config)
        status["plex_connected"] = connected
        if not connected:
            last_error = plex_error
    status["error"] = last_error
    return status


# How many times a status read starts over when the run it saw finished
# before it probed the lock (syncs back to back); then it answers "not
# syncing" without an error.
LOOKS = 3


@dataclass
class _Seen:
    track_count: int = 0
    synced_at: str | None = None
    running: tuple | None = None  # (id, progress_current, progress_total) of the newest running run
    finished: tuple | None = None  # (status, error) of the newest finished run


def _read(db_path: Path) -> _Seen:
    seen = _Seen()
    try:
        conn = connect_readonly(db_path)
        try:
            row = _one(conn, "select track_count, last_sync_at from sync_state where id = 1")
            if row:
                seen.track_count, seen.synced_at = row[0] or 0, row[1]
            seen.running = _one(
                conn,
                "select id, progress_current, progress_total from sync_runs "
                "where status = 'running' order by id desc limit 1",
            )
            seen.finished = _one(
                conn,
                "select status, error from sync_runs where status != 'running' order by id desc limit 1",
            )
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    return seen


def _still_running(db_path: Path, run_id: int) -> bool:
    "Is run ``run_id`` still ``running`` (read after the lock probe)?"
    try:
        conn = connect_readonly(db_path)
        try:
            row = _one(conn, f"select status from sync_runs where id = {int(run_id)}")
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    return row is not None and row[0] == "running"


_plex_cache: dict[str, tuple[float, bool, str | None]] = {}
_plex_cache_lock = threading.Lock()


def plex_reachable(config: PlexConfig, ttl: float = PLEX_CHECK_TTL) -> tuple[bool, str | None]:
    "(connected, token-free error) for the server, reusing an answer for ``ttl`` seconds"
    from .plex import PlexSource

    key = f"{config.url}\0{hash(config.token)}"
    now = time.monotonic()
    with _plex_cache_lock:
        hit = _plex_cache.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1], hit[2]
    try:
        with PlexSource(config, timeout=min(config.timeout, 5.0), retries=0) as source:
            source.server_info()
        answer = (True, None)
    except PlexcacheError as e:
        answer = (False, str(e))
    with _plex_cache_lock:
        _plex_cache[key] = (time.monotonic(), *answer)
    return answer


def _one(conn, sql):
    try:
        return conn.execute(sql).fetchone()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
