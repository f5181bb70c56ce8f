"""Opening, creating, inspecting and emptying the cache file.

All failures become ``CacheError`` with a one-line message that says what is
wrong and what to do: a file that is not SQLite, a read-only file or folder,
a locked database, a full disk, a directory where a file should be.

A plexcache cache carries a marker: SQLite's ``PRAGMA application_id`` is
``APPLICATION_ID`` (the bytes ``PlxC``), written before any table. The cache
never writes into a database without it, with three exceptions it then marks:

- an empty SQLite file (0 bytes, or nothing in it): it becomes a cache;
- a cache made before the marker existed (it has ``tracks`` and
  ``sync_state``, or only tables plexcache makes): it is adopted;
- nothing else: any other database (other tables, or another program's
  ``application_id``) is refused with a line saying so, and ``reset`` never
  empties or deletes it, nor a file that is not SQLite at all.
"""

from __future__ import annotations

import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .errors import WHERE_TO, CacheError, describe_os_error, why_unwritable
from .lock import SyncLock
from .schema import ensure_shape

BUSY_TIMEOUT_MS = 10_000
APPLICATION_ID = int.from_bytes(b"PlxC", "big")  # 0x506C7843
SQLITE_MAGIC = b"SQLite format 3\x00"
CACHE_TABLES = ("tracks", "albums", "artists", "sections", "sync_state", "sync_runs",
                "plays", "accounts", "devices", "history_sync")  # fmt: skip
# Every table a plexcache without the marker made (with FTS shadow tables):
# a database holding only these is an unfinished cache, not someone else's.
_OWN_TABLES = (*CACHE_TABLES, "facet_counts", "facet_counts_state")
_OWN_PREFIXES = ("tracks_fts",)
OTHER_FILE = "choose another file with --db or PLEXCACHE_DB"


def _header(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(100)
    except OSError:
        return b""


def has_marker(path) -> bool:
    "True when the file's SQLite header carries plexcache's application_id (even if the rest is damaged)"
    head = _header(Path(path))
    return head[:16] == SQLITE_MAGIC and int.from_bytes(head[68:72], "big") == APPLICATION_ID


def _reset_hint(db_path) -> str:
    return f"plexcache reset --db {shlex.quote(str(db_path))}"


def describe_sqlite_error(e: sqlite3.Error, db_path) -> str:
    "A one-line, actionable message for a sqlite3 error on the cache"
    db_path = Path(db_path)
    text = str(e)
    lowered = text.lower()
    if db_path.is_dir():
        return f"{db_path} is a directory, not a cache file: {OTHER_FILE}, like {db_path / 'library_cache.db'}"
    if "file is not a database" in lowered or "malformed" in lowered or "not a database" in lowered:
        if has_marker(db_path):
            return (
                f"{db_path} is a damaged plexcache cache ({text}): `{_reset_hint(db_path)}` removes it "
                "and the next sync builds it again"
            )
        return (
            f"{db_path} is not a valid SQLite database (another kind of file, or a damaged one); "
            f"plexcache leaves it alone: {OTHER_FILE}"
        )
    if "readonly" in lowered or "read-only" in lowered:
        why = why_unwritable(db_path) or "the file or its folder is read-only"
        return f"cannot write to {db_path}: {why}; {WHERE_TO}"
    if "disk is full" in lowered or "disk full" in lowered:
        return f"cannot write to {db_path}: the disk is full"
    if "locked" in lowered or "busy" in lowered:
        return f"{db_path} is locked by another program; try again when it is done"
    if "unable to open" in lowered or "disk i/o error" in lowered:
        if not db_path.parent.is_dir():
            return f"cannot open {db_path}: the folder {db_path.parent} does not exist"
        why = why_unwritable(db_path)
        if db_path.exists() and not _readable(db_path):
            return f"cannot read {db_path}: permission denied"
        if why:
            return f"cannot open {db_path}: {why}; {WHERE_TO}"
        return f"cannot open {db_path}: check that the folder exists and is writable"
    return f"cache database error on {db_path}: {text}"


def _readable(path: Path) -> bool:
    import os

    return os.access(path, os.R_OK)


# ---- connections ---------------------------------------------------------------


def connect(db_path) -> sqlite3.Connection:
    """A connection to the cache in autocommit mode (we issue BEGIN ourselves).

    Checks the file really is SQLite before anything else touches it.
    """
    db_path = Path(db_path)
    if db_path.is_dir():
        raise CacheError(describe_sqlite_error(sqlite3.OperationalError("is a directory"), db_path))
    try:
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    return conn


def connect_readonly(db_path, timeout: float = 5.0, *, check: bool = True) -> sqlite3.Connection:
    """A read-only connection to an existing cache (status, history, notebooks).

    Works in a read-only folder too: a WAL database there cannot get its
    ``-shm`` file, so it is opened ``immutable`` (nobody can write it there
    either). With ``check``, a database that is not a plexcache cache is
    refused with a ``CacheError`` rather than read as an empty one.
    """
    db_path = Path(db_path)
    if db_path.is_dir():
        raise CacheError(describe_sqlite_error(sqlite3.OperationalError("is a directory"), db_path))
    uri = db_path.resolve().as_uri()
    try:
        try:
            conn = _open_ro(uri + "?mode=ro", timeout)
        except sqlite3.OperationalError:
            if not db_path.exists() or not why_unwritable(db_path.parent / ".probe"):
                raise
            conn = _open_ro(uri + "?mode=ro&immutable=1", timeout)
        if check:
            _refuse_foreign(conn, db_path)
    except sqlite3.Error as e:
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    return conn


def _open_ro(uri: str, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


# ---- whose database is it? -------------------------------------------------------


def _objects(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "select type, name from sqlite_master where name not like 'sqlite_%' order by type = 'table' desc, name"
    ).fetchall()


def _is_own(tables: set[str]) -> bool:
    "A database plexcache made before the marker: its two core tables, or nothing but its tables"
    if {"tracks", "sync_state"} <= tables:
        return True
    return bool(tables) and all(t in _OWN_TABLES or t.startswith(_OWN_PREFIXES) for t in tables)


def _foreign_reason(conn: sqlite3.Connection) -> str | None:
    "Why this database is not a plexcache cache, or None when it is one (or empty)"
    app_id = conn.execute("pragma application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return None
    if app_id:
        return f"it belongs to another program (SQLite application_id {app_id:#x})"
    objects = _objects(conn)
    tables = {name for kind, name in objects if kind == "table"}
    if not objects or _is_own(tables):
        return None
    names = [name for _, name in objects]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"it is another SQLite database (holding {shown})"


def _refuse_foreign(conn: sqlite3.Connection, db_path) -> None:
    reason = _foreign_reason(conn)
    if reason:
        conn.close()
        raise CacheError(
            f"{db_path} is not a plexcache cache: {reason}; plexcache leaves it alone: {OTHER_FILE}"
        )


def claim(conn: sqlite3.Connection, db_path) -> None:
    """Refuse a database that is not a plexcache cache; mark an empty one or
    an unmarked older cache as ours (before any table is written)"""
    _refuse_foreign(conn, db_path)
    if conn.execute("pragma application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute(f"pragma application_id = {APPLICATION_ID}")


def make_folder(db_path) -> None:
    "Create the folder the cache goes in (and its parents) if needed"
    try:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(describe_os_error(e, db_path, "create")) from None


def open_cache(db_path) -> sqlite3.Connection:
    """Open (creating if needed) the cache with its full shape, in WAL mode"""
    db_path = Path(db_path)
    if db_path.is_dir():
        raise CacheError(describe_sqlite_error(sqlite3.OperationalError("is a directory"), db_path))
    make_folder(db_path)
    conn = connect(db_path)
    try:
        claim(conn, db_path)
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


# ---- what is at a path, and resetting it ----------------------------------------


@dataclass(frozen=True)
class CacheFile:
    """What is at a cache path. ``kind`` is one of: ``missing``, ``empty``
    (0 bytes, or SQLite with nothing in it), ``cache``, ``damaged`` (a
    plexcache cache SQLite cannot read), ``foreign`` (another database, or
    not SQLite at all), ``directory``."""

    path: Path
    kind: str
    tracks: int = 0
    reason: str = ""

    @property
    def describe(self) -> str:
        if self.kind == "cache":
            return f"the plexcache cache at {self.path} ({self.tracks:,} tracks)"
        if self.kind == "damaged":
            return f"the damaged plexcache cache at {self.path}"
        return str(self.path)


def inspect_cache(db_path) -> CacheFile:
    "What is at ``db_path``, read without writing or creating anything"
    db_path = Path(db_path)
    if not db_path.exists():
        return CacheFile(db_path, "missing")
    if db_path.is_dir():
        return CacheFile(db_path, "directory", reason="it is a directory")
    try:
        if db_path.stat().st_size == 0:
            return CacheFile(db_path, "empty")
    except OSError as e:
        raise CacheError(f"cannot read {db_path}: {e.strerror}") from None
    head = _header(db_path)
    if not _readable(db_path):
        raise CacheError(f"cannot read {db_path}: permission denied")
    if head[:16] != SQLITE_MAGIC:
        return CacheFile(db_path, "foreign", reason="it is not a SQLite database")
    try:
        conn = connect_readonly(db_path, check=False)
    except CacheError:
        if has_marker(db_path):
            return CacheFile(db_path, "damaged", reason="SQLite cannot read it")
        return CacheFile(db_path, "foreign", reason="it is not a valid SQLite database")
    try:
        reason = _foreign_reason(conn)
        if reason:
            return CacheFile(db_path, "foreign", reason=reason)
        if not _objects(conn):
            return CacheFile(db_path, "empty")
        try:
            tracks = conn.execute("select count(*) from tracks").fetchone()[0]
        except sqlite3.OperationalError:
            tracks = 0  # an unfinished cache without a tracks table
        except sqlite3.DatabaseError:
            return CacheFile(db_path, "damaged", reason="its tracks table is damaged")
        return CacheFile(db_path, "cache", tracks=tracks)
    except sqlite3.DatabaseError:
        return CacheFile(db_path, "damaged", reason="SQLite cannot read it")
    finally:
        conn.close()


@dataclass(frozen=True)
class ResetResult:
    path: Path
    action: str  # "none" | "emptied" | "removed"
    tracks: int
    message: str


def check_resettable(info: CacheFile) -> None:
    "Raise ``CacheError`` when ``reset`` must not touch what is at ``info.path``"
    if info.kind in ("foreign", "directory"):
        raise CacheError(
            f"{info.path} is not a plexcache cache: {info.reason}; refusing to reset it"
        )


def reset(db_path) -> ResetResult:
    """Empty the cache (the spec's "Reset Cache"); the next sync is a full one.

    A cache is emptied in place, in one transaction, rather than deleted:
    Datasette or a notebook that has the file open would otherwise keep
    reading the deleted file. A damaged plexcache cache (its marker says so)
    is removed. Anything else (a text file, another program's database) is
    refused. Refuses while a sync runs.
    """
    db_path = Path(db_path)
    info = inspect_cache(db_path)
    check_resettable(info)
    if info.kind in ("missing", "empty"):
        what = (
            f"No cache at {db_path}"
            if info.kind == "missing"
            else f"{db_path} is an empty database, not yet a cache"
        )
        return ResetResult(db_path, "none", 0, f"{what}: nothing to reset")
    with SyncLock(db_path):
        _remove(Path(f"{db_path}-stage"))
        info = inspect_cache(db_path)  # again, now that no sync can change it
        check_resettable(info)
        if info.kind == "cache":
            conn = connect(db_path)
            try:
                _empty(conn)
                return ResetResult(
                    db_path,
                    "emptied",
                    info.tracks,
                    f"Emptied the cache at {db_path}: removed {info.tracks:,} tracks; the next sync is a full one",
                )
            except sqlite3.DatabaseError as e:
                if not has_marker(db_path) or "malformed" not in str(e).lower():
                    raise CacheError(describe_sqlite_error(e, db_path)) from None
            finally:
                conn.close()
        if info.kind in ("cache", "damaged"):
            for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
                _remove(path)
            return ResetResult(
                db_path,
                "removed",
                0,
                f"Removed the damaged cache at {db_path}; the next sync builds a new one",
            )
    return ResetResult(db_path, "none", 0, f"No cache at {db_path}: nothing to reset")


def reset_cache(db_path) -> bool:
    "``reset``, for callers that only need to know whether there was a cache"
    return reset(db_path).action != "none"


def _empty(conn: sqlite3.Connection) -> None:
    triggers = conn.execute(
        "select name, sql from sqlite_master where type = 'trigger' and tbl_name = 'tracks'"
    ).fetchall()
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    conn.execute("begin immediate")
    try:
        # Without the FTS triggers, emptying a million tracks is one statement.
        for name, _ in triggers:
            conn.execute(f'drop trigger "{name}"')
        for table in CACHE_TABLES:
            if table in tables:
                conn.execute(f"delete from [{table}]")
        if "tracks_fts" in tables:
            conn.execute("insert into tracks_fts(tracks_fts) values('delete-all')")
        for _, sql in triggers:
            conn.execute(sql)
        if "facet_counts_state" in tables:
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
        raise CacheError(describe_os_error(e, path, "remove")) from None
