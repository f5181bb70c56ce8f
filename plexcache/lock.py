"""One sync at a time per cache, across processes.

An exclusive ``flock`` on ``<db>.lock``. The kernel drops it when the holder
exits, SIGKILL included, so a killed sync never blocks the next one and no
stale-lock heuristics are needed.

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

from .errors import CacheError, SyncAlreadyRunning

LOCK_FD_ENV = "PLEXCACHE_LOCK_FD"


def lock_path_for(db_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(db_path)}.lock")


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
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CacheError(f"cannot create lock file {self.path}: {e.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise SyncAlreadyRunning() from None
                time.sleep(0.02)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
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
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        # A shared probe conflicts only with the exclusive holder; concurrent
        # probes do not conflict with each other.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock
    return False
