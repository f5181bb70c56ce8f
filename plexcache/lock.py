"""One sync at a time per cache, across processes.

An exclusive ``flock`` on ``<db>.lock``. The kernel drops it when the holder
exits, SIGKILL included, so a killed sync never blocks the next one and no
stale-lock heuristics are needed.

The lock file exists only while someone holds the lock: the holder unlinks
it before letting go, so no ``.lock`` is left next to the cache, nor next to
a path a failed command only tried. That is safe because a taker checks,
once it holds the flock, that the path still names the file it locked (same
device and inode); if the holder unlinked it meanwhile it starts over, so two
processes can never hold "the" lock on two different files. (A SIGKILLed
holder leaves its file behind; the next taker reuses it and removes it.)

Why not flock the database file itself, which would need no extra file:
SQLite takes POSIX ``fcntl`` locks on it, and closing *any* descriptor of a
file drops every fcntl lock the process holds on it, so the status probe in
the Datasette process would silently release Datasette's own SQLite locks.
On NFS, flock is also emulated with fcntl locks and would collide with
SQLite's. A separate file keeps the two lock families apart.

We do not use ``filelock`` here because the web front has to take the lock
*before* it spawns the sync process (so that exactly one of fifty concurrent
requests wins) and hand it to the child: a flock belongs to the open file
description, so an inherited descriptor carries the lock with it. filelock
does not expose its descriptor for that.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import CacheError, SyncAlreadyRunning, describe_os_error

LOCK_FD_ENV = "PLEXCACHE_LOCK_FD"


def lock_path_for(db_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(db_path)}.lock")


def _same_file(fd: int, path: Path) -> bool:
    "Does ``path`` still name the file open as ``fd``?"
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class SyncLock:
    """Exclusive per-cache lock.

    ``acquire(timeout)`` waits up to ``timeout`` seconds (status readers only
    hold it for microseconds) and raises ``SyncAlreadyRunning`` otherwise.
    """

    def __init__(self, db_path: str | os.PathLike, fd: int | None = None):
        self.path = lock_path_for(db_path)
        self.fd = fd  # an inherited, already locked descriptor

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, timeout: float = 1.0) -> SyncLock:
        if self.fd is not None:
            return self
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                db_path = Path(os.fspath(self.path)[: -len(".lock")])
                raise CacheError(describe_os_error(e, db_path, "write to")) from None
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise SyncAlreadyRunning() from None
                        time.sleep(0.02)
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                self.fd = fd
                return self
            # The holder we waited for unlinked this file as it let go:
            # take the lock on whatever the path names now.
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            try:
                if _same_file(self.fd, self.path):
                    try:
                        self.path.unlink()  # while still holding it: see the module docstring
                    except OSError:
                        pass  # a read-only folder: the file stays, harmless
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def detach(self) -> int:
        "Give up ownership of the descriptor (after a child process inherited it)"
        fd, self.fd = self.fd, None
        return fd

    def __enter__(self) -> SyncLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def inherited_lock(db_path) -> SyncLock | None:
    "The lock handed down by a parent process through PLEXCACHE_LOCK_FD, if any"
    value = os.environ.pop(LOCK_FD_ENV, None)
    if not value:
        return None
    try:
        fd = int(value)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    return SyncLock(db_path, fd=fd)


def is_locked(db_path) -> bool:
    "True while some process holds the sync lock for this cache"
    path = lock_path_for(db_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: nobody holds it
    try:
        # A shared probe conflicts only with the exclusive holder; concurrent
        # probes do not conflict with each other.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock
    return False
