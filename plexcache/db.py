"""Opening, creating and removing the cache file.

All failures become ``CacheError`` with a one-line message: a file that is
not SQLite, a read-only file or folder, a locked database, a full disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from .errors import CacheError
from .lock import SyncLock
from .schema import ensure_shape

BUSY_TIMEOUT_MS = 10_000


def describe_sqlite_error(e: sqlite3.Error, db_path) -> str:
    "A one-line, actionable message for a sqlite3 error on the cache"
    text = str(e)
    lowered = text.lower()
    if "file is not a database" in lowered or "malformed" in lowered:
        return f"{db_path} is not a valid SQLite database (corrupt or another kind of file); move it away or run `plexcache reset`"
    if "readonly" in lowered or "read-only" in lowered:
        return f"cannot write to {db_path}: the file or its folder is read-only"
    if "disk is full" in lowered or "disk full" in lowered:
        return f"cannot write to {db_path}: the disk is full"
    if "locked" in lowered or "busy" in lowered:
        return f"{db_path} is locked by another program; try again when it is done"
    if "unable to open" in lowered:
        return f"cannot open {db_path}: check that the folder exists and is writable"
    return f"cache database error on {db_path}: {text}"


def connect(db_path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the cache in autocommit mode (we issue BEGIN ourselves).

    Checks the file really is SQLite before anything else touches it.
    """
    db_path = Path(db_path)
    try:
        if readonly:
            uri = db_path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        else:
            conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    return conn


def open_cache(db_path) -> sqlite3.Connection:
    """Open (creating if needed) the cache with its full shape, in WAL mode"""
    db_path = Path(db_path)
    if db_path.is_dir():
        raise CacheError(f"{db_path} is a directory, not a database file")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"cannot create folder {db_path.parent}: {e.strerror}") from None
    conn = connect(db_path)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise CacheError(f"cannot switch {db_path} to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        ensure_shape(sqlite_utils.Database(conn))
    except sqlite3.Error as e:
        conn.close()
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    except CacheError:
        conn.close()
        raise
    return conn


def init_cache(db_path) -> Path:
    "Create the cache file with its schema if it does not exist yet (idempotent)"
    open_cache(db_path).close()
    return Path(db_path)


def reset_cache(db_path) -> bool:
    """Remove the cache and its side files; refuses while a sync runs.

    Returns False if there was nothing to remove.
    """
    db_path = Path(db_path)
    with SyncLock(db_path):
        removed = False
        for path in (db_path, *(Path(f"{db_path}{s}") for s in ("-wal", "-shm", "-stage"))):
            try:
                path.unlink()
                removed = removed or path == db_path
            except FileNotFoundError:
                pass
            except OSError as e:
                raise CacheError(f"cannot remove {path}: {e.strerror}") from None
    # The lock file stays: unlinking it could let two processes lock two
    # different inodes of the same name.
    return removed
