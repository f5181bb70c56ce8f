"""The simulator in a child process: ``plexcache simulate``, started and stopped.

``plexcache demo`` (``plexcache.serve``) and the benchmarks run the simulator
as a process, not a thread: it must not share the GIL with Datasette or the
sync being measured.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time

from ..errors import PlexcacheError

_URL_RE = re.compile(r"(https?://[^\s)]+)")


def start_simulator(
    *,
    tracks: int,
    seed: int,
    token: str,
    latency_ms: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen, str]:
    """Run ``plexcache simulate`` as a child process; returns (process, its URL).

    The token goes through the environment (argv is visible in ``ps``). On
    Linux the child gets SIGTERM if this process dies without cleaning up.
    """
    args = [
        sys.executable,
        "-m",
        "plexcache",
        "simulate",
        "--host",
        host,
        "--port",
        str(port),
        "--tracks",
        str(tracks),
        "--seed",
        str(seed),
        "--latency-ms",
        str(latency_ms),
    ]
    proc = subprocess.Popen(
        args,
        env={**os.environ, "PLEXCACHE_SIMULATOR_TOKEN": token},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    url = _read_url(proc, timeout)
    if url is None:
        output = _drain(proc)
        stop_process(proc)
        raise PlexcacheError(
            "the Plex simulator did not start: "
            + (output.strip().splitlines() or ["no output"])[-1]
        )
    # Keep reading its output so a chatty simulator never blocks on a full pipe.
    threading.Thread(target=_drain, args=(proc,), daemon=True).start()
    return proc, url.rstrip("/")


def _read_url(proc: subprocess.Popen, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.2):
                if proc.poll() is not None:
                    return None
                continue
            line = proc.stdout.readline()
            if not line:
                return None
            match = _URL_RE.search(line.decode("utf-8", "replace"))
            if match:
                return match.group(1)
    return None


def _drain(proc: subprocess.Popen) -> str:
    try:
        return proc.stdout.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    "SIGTERM, then SIGKILL after ``timeout`` seconds"
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    "Linux: the simulator gets SIGTERM if its parent dies without cleanup"
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
