"""Opening, creating and removing the cache file.

All failures become ``CacheError`` with a one-line message: a file that is
not SQLite, a read-only file or folder, a locked database, a full disk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

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


def connect(db_path) -> sqlite3.Connection:
    """A connection to the cache in autocommit mode (we issue BEGIN ourselves).

    Checks the file really is SQLite before anything else touches it.
    """
    db_path = Path(db_path)
    try:
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    return conn


def connect_readonly(db_path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``): for readers that must never
    create, change or lock the cache. Errors are the caller's to describe."""
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=timeout)


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
        ensure_shape(conn)
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


CACHE_TABLES = ("tracks", "albums", "artists", "sections", "sync_state", "sync_runs",
                "plays", "accounts", "devices", "history_sync")  # fmt: skip


def reset_cache(db_path) -> bool:
    """Empty the cache (the spec's "Reset Cache"); the next sync is a full one.

    A cache is emptied in place, in one transaction, rather than deleted:
    Datasette or a notebook that has the file open would otherwise keep
    reading the deleted file. A file that is not SQLite at all (corrupt) is
    removed; a SQLite database that is not a plexcache cache is refused.
    Refuses while a sync runs. Returns False if there was no cache.
    """
    db_path = Path(db_path)
    with SyncLock(db_path):
        _remove(Path(f"{db_path}-stage"))
        if not db_path.exists():
            return False
        try:
            conn = connect(db_path)
        except CacheError:
            conn = None  # not SQLite: remove it, as the error message suggests
        if conn is None:
            for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
                _remove(path)
            return True
        try:
            tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
            if not {"tracks", "sync_state"} <= tables:
                raise CacheError(f"{db_path} is not a plexcache cache; refusing to reset it")
            _empty(conn)
        except sqlite3.Error as e:
            raise CacheError(describe_sqlite_error(e, db_path)) from None
        finally:
            conn.close()
    # The lock file stays: unlinking it could let two processes lock two
    # different inodes of the same name.
    return True


def _empty(conn: sqlite3.Connection) -> None:
    triggers = conn.execute(
        "select name, sql from sqlite_master where type = 'trigger' and tbl_name = 'tracks'"
    ).fetchall()
    conn.execute("begin immediate")
    try:
        # Without the FTS triggers, emptying a million tracks is one statement.
        for name, _ in triggers:
            conn.execute(f'drop trigger "{name}"')
        existing = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        for table in CACHE_TABLES:
            if table in existing:  # a cache written before the listening history has no plays
                conn.execute(f"delete from [{table}]")
        if conn.execute("select 1 from sqlite_master where name = 'tracks_fts'").fetchone():
            conn.execute("insert into tracks_fts(tracks_fts) values('delete-all')")
        for _, sql in triggers:
            conn.execute(sql)
        if conn.execute("select 1 from sqlite_master where name = 'facet_counts_state'").fetchone():
            from . import facet_counts

            facet_counts.recount(conn)  # empty and current, not stale
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    # Give the space back when nobody is reading; never wait for readers.
    conn.execute("pragma busy_timeout = 0")
    for statement in ("vacuum", "pragma wal_checkpoint(truncate)"):
        try:
            conn.execute(statement)
        except sqlite3.OperationalError:
            pass


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise CacheError(f"cannot remove {path}: {e.strerror}") from None
