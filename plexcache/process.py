"""Run a sync in its own process.

The web front starts syncs this way: a sync in a thread of the Datasette
process would hold the GIL and slow every request (measured p99 ~100 ms for
the status endpoint), while progress reaches the page through the database
anyway. The lock is taken *here*, before the child starts, and inherited by
it, so of many concurrent callers exactly one gets a sync and the others get
``SyncAlreadyRunning`` at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from .config import PlexConfig
from .errors import ConfigError, SyncAlreadyRunning
from .lock import LOCK_FD_ENV, SyncLock, is_locked


def spawn_sync(
    db_path: str | os.PathLike,
    config: PlexConfig,
    *,
    full: bool = False,
    trigger: str = "web",
    lock_timeout: float = 0.5,
    log_path: str | os.PathLike | None = None,
) -> subprocess.Popen:
    """Start ``plexcache sync`` for ``db_path`` in a child process and return it.

    Raises ``SyncAlreadyRunning`` if another sync holds the cache's lock and
    ``ConfigError`` if no Plex server is configured. The token travels to the
    child in its environment, never on its command line.
    """
    if not config.configured:
        raise ConfigError("no Plex server configured: set PLEX_URL and PLEX_TOKEN")
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # A running sync answers at once: waiting out ``lock_timeout`` (meant for
    # a status probe's momentary shared lock) would hold a web worker thread
    # per refused request, and a burst of them starves the status endpoint.
    if is_locked(db_path):
        raise SyncAlreadyRunning()
    lock = SyncLock(db_path).acquire(timeout=lock_timeout)
    try:
        env = _child_env(config)
        env[LOCK_FD_ENV] = str(lock.fd)
        args = [
            sys.executable,
            "-m",
            "plexcache",
            "sync",
            "--db",
            str(db_path),
            "--quiet",
            "--trigger",
            trigger,
        ]
        if full:
            args.append("--full")
        # A background sync yields the CPU to the web server it runs beside.
        args += ["--nice", "10"]
        proc = _start(args, env, log_path, pass_fds=(lock.fd,))
    finally:
        # The child holds its own copy of the locked descriptor now (or never
        # started): closing ours releases nothing the child still owns.
        os.close(lock.detach())
    # Reap the child when it exits so it never lingers as a zombie.
    threading.Thread(target=proc.wait, name="plexcache-sync-reaper", daemon=True).start()
    return proc


def spawn_watch(
    db_path: str | os.PathLike,
    config: PlexConfig,
    *,
    log_path: str | os.PathLike | None = None,
    wait_for_first_sync: bool = True,
) -> subprocess.Popen:
    """Start ``plexcache watch`` for ``db_path`` in a child process (the web's
    live cache) and return it. It stops with this process; the token travels
    in its environment. ``wait_for_first_sync``: it starts following once a
    sync filled the cache (the web's first-load flow decides when that is)."""
    if not config.configured:
        raise ConfigError("no Plex server configured: set PLEX_URL and PLEX_TOKEN")
    env = _child_env(config)
    args = [sys.executable, "-m", "plexcache", "watch", "--db", str(db_path), "--quiet",
            "--parent-pid", str(os.getpid())]  # fmt: skip
    if wait_for_first_sync:
        args.append("--wait-for-first-sync")
    proc = _start(args, env, log_path)
    threading.Thread(target=proc.wait, name="plexcache-watch-reaper", daemon=True).start()
    return proc


def _child_env(config: PlexConfig) -> dict:
    "This environment with the server's URL and token (never on a command line, visible in `ps`)"
    env = dict(os.environ)
    env["PLEX_URL"] = config.url
    if config.token:
        env["PLEX_TOKEN"] = config.token
    else:
        env.pop("PLEX_TOKEN", None)
    return env


def _start(args: list[str], env: dict, log_path, pass_fds=()) -> subprocess.Popen:
    "A detached child (its own session), its output appended to ``log_path`` or dropped"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()
