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
    _look_again: bool = True,
) -> dict:
    """The spec's status dict for the cache at ``db_path``.

    ``plex_connected`` is a real request to the server, cached for
    ``PLEX_CHECK_TTL`` seconds per server; with ``check_plex=False`` (or no
    server configured) it is ``False`` and no request is made.
    """
    db_path = Path(db_path)
    syncing = is_locked(db_path)
    status = {
        "track_count": 0,
        "synced_at": None,
        "is_syncing": syncing,
        "sync_progress": None,
        "error": None,
        "plex_connected": False,
    }
    last_error = None
    if db_path.exists():
        try:
            conn = connect_readonly(db_path)
            try:
                row = _one(conn, "select track_count, last_sync_at from sync_state where id = 1")
                if row:
                    status["track_count"] = row[0] or 0
                    status["synced_at"] = row[1]
                running = _one(
                    conn,
                    "select progress_current, progress_total from sync_runs "
                    "where status = 'running' order by id desc limit 1",
                )
                finished = _one(
                    conn,
                    "select status, error from sync_runs "
                    "where status != 'running' order by id desc limit 1",
                )
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise CacheError(describe_sqlite_error(e, db_path)) from None
        if running and not syncing:
            # Either the process that owned this run is gone, or a sync took
            # the lock (and maybe finished) after we looked: look again once.
            if recover_interrupted(db_path):
                last_error = INTERRUPTED_MESSAGE
            elif _look_again:
                return get_status(db_path, config, check_plex=check_plex, _look_again=False)
            else:  # really orphaned, but the cache is read-only
                last_error = INTERRUPTED_MESSAGE
        elif finished and finished[0] in ("failed", "interrupted"):
            last_error = finished[1] or f"last sync {finished[0]}"
        if syncing:
            current, total = running if running else (0, 0)
            status["sync_progress"] = {"current": current, "total": total}
    elif syncing:
        status["sync_progress"] = {"current": 0, "total": 0}

    if check_plex and config is not None and config.configured:
        connected, plex_error = plex_reachable(config)
        status["plex_connected"] = connected
        if not connected:
            last_error = plex_error
    status["error"] = last_error
    return status


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
