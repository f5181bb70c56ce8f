"""``plexcache serve`` and ``plexcache demo``: Datasette on the cache, with the plugin.

Both build a ``Datasette`` in-process (metadata, plugin config and settings
from ``metadata.py``) and run it with uvicorn on one event loop. Syncs never
run in this process: the plugin spawns ``plexcache sync`` children, and Ctrl-C
(or SIGTERM) stops those too, then the simulator for the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from plexcache.config import PlexConfig, resolve_db_path
from plexcache.errors import ConfigError, PlexcacheError

from . import service
from .metadata import datasette_kwargs

DEMO_DB_PATH = Path("data") / "demo.db"
DEMO_LATENCY_MS = int(os.environ.get("PLEXCACHE_DEMO_LATENCY_MS", "40"))

# Settings that keep big tables fast: suggested facets cost seconds at 100k
# rows on 0.65 (perf-reliability.md A4); configured facets stay bounded by
# facet_time_limit_ms.
DATASETTE_SETTINGS = {
    "suggest_facets": False,
    "facet_time_limit_ms": 400,
}


def plugin_config_for(db_path: Path, config: PlexConfig, host: str) -> dict:
    """The ``plexcache`` plugin config ``serve`` passes to Datasette.

    The token is referenced as ``{"$env": "PLEX_TOKEN"}`` so it never shows in
    ``/-/metadata`` or ``/-/config``; ``serve`` puts it in its own environment.
    ``PLEXCACHE_SYNC_ON_START=0`` turns off the sync at server start.
    """
    plugin_config = {
        "database": database_name(db_path),
        "bind_host": host,
        "sync_log": f"{db_path}.sync.log",
        "sync_on_start": os.environ.get("PLEXCACHE_SYNC_ON_START", "1").lower()
        not in ("0", "false", "no", "off"),
        # the live cache (`plexcache watch` beside the server); PLEXCACHE_WATCH=0 turns it off
        "watch": os.environ.get("PLEXCACHE_WATCH", "1").lower() not in ("0", "false", "no", "off"),
    }
    if config.url:
        plugin_config["plex_url"] = config.url
    if config.token:
        plugin_config["plex_token"] = {"$env": "PLEX_TOKEN"}
    return plugin_config


def database_name(db_path: Path) -> str:
    "The name Datasette gives a database file: its stem"
    return Path(db_path).stem


def build_datasette(db_path, config: PlexConfig, *, host: str = "127.0.0.1", plugin_extra=None):
    "A Datasette serving the cache at ``db_path`` with metadata, settings and plugin config"
    from datasette.app import Datasette

    db_path = Path(db_path)
    plugin_config = {**plugin_config_for(db_path, config, host), **(plugin_extra or {})}
    if config.token:
        os.environ["PLEX_TOKEN"] = config.token
    kwargs = datasette_kwargs(
        database_name(db_path), plugin_config=plugin_config, settings=dict(DATASETTE_SETTINGS)
    )
    return Datasette([str(db_path)], **kwargs)


def bind(host: str, port: int) -> socket.socket:
    "A listening socket, so a busy port is a clean error and port 0 works"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a keep-alive client (a
    # browser polling the status endpoint) waits ~40 ms per response for
    # Nagle's algorithm and delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(
    db_path,
    config: PlexConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 5765,
    banner: str | None = None,
    plugin_extra: dict | None = None,
) -> None:
    """Serve the cache until Ctrl-C or SIGTERM (the ``plexcache serve`` command).

    Creates the cache file first if needed (Datasette refuses a missing file).
    """
    db_path = Path(db_path)
    service.init_cache(db_path)
    ds = build_datasette(db_path, config, host=host, plugin_extra=plugin_extra)
    sock = bind(host, port)
    url = url_for(host, sock.getsockname()[1])
    if banner:
        click.echo(banner)
    click.echo(f"Serving {db_path} at {url}")
    if not config.configured:
        click.echo(
            "No Plex server configured (--url/--token or PLEX_URL/PLEX_TOKEN): browsing only."
        )
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    try:
        _run_until_stopped(_serve_async(ds, sock))
    finally:
        sock.close()
        stopped = service.stop_children()
        if stopped:
            click.echo(f"Stopped {stopped} running sync.")


async def _serve_async(ds, sock: socket.socket) -> None:
    import uvicorn
    from datasette.cli import check_databases

    await check_databases(ds)
    # 1.0a runs its full startup sequence through this; 0.65 has only invoke_startup
    startup = getattr(ds, "_startup_sequence", None) or ds.invoke_startup
    await startup()
    server = uvicorn.Server(
        uvicorn.Config(ds.app(), log_level="warning", access_log=False, lifespan="on")
    )
    await server.serve(sockets=[sock])


class _Stop(Exception):
    "SIGTERM, turned into an exception so cleanup code runs"


def _run_until_stopped(coro) -> None:
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        asyncio.run(coro)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_stop(signum, frame):
    raise _Stop()


# ---- demo ------------------------------------------------------------------


def demo(
    *,
    tracks: int = 18432,
    port: int = 5765,
    seed: int = 1,
    db_path=None,
    host: str = "127.0.0.1",
    latency_ms: int | None = None,
) -> None:
    """Simulator + its own demo cache + Datasette (the ``plexcache demo`` command).

    The demo cache (default ``data/demo.db``) is deleted at each start so the
    first-load flow shows; the real cache is refused.
    """
    db_path = Path(db_path) if db_path else DEMO_DB_PATH
    check_demo_path(db_path)
    reset_demo_cache(db_path)
    token = secrets.token_urlsafe(18)
    latency = DEMO_LATENCY_MS if latency_ms is None else latency_ms
    proc, sim_url = start_simulator(tracks=tracks, seed=seed, token=token, latency_ms=latency)
    try:
        serve(
            db_path,
            PlexConfig(url=sim_url, token=token),
            host=host,
            port=port,
            banner=(
                f"plexcache demo: simulated Plex server at {sim_url} "
                f"({tracks:,} tracks, seed {seed}); demo cache {db_path}"
            ),
            # The first page load starts the sync, exactly as in the spec's
            # first-load flow (status -> empty -> modal -> POST -> poll).
            plugin_extra={"sync_on_start": False},
        )
    finally:
        stop_process(proc)


def check_demo_path(db_path: Path) -> None:
    "The demo deletes its cache at start, so it must never be the real one"
    real = resolve_db_path(None)
    if _same_file(db_path, real) or _same_file(db_path, Path("data") / "library_cache.db"):
        raise ConfigError(
            f"refusing to use {db_path} for the demo: it is your real cache "
            "(the demo resets its database); pick another --db"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def reset_demo_cache(db_path: Path) -> None:
    "Delete the demo cache (refused while a sync of it runs) and its sync log"
    from plexcache.db import reset_cache

    reset_cache(db_path)
    with contextlib.suppress(FileNotFoundError):
        Path(f"{db_path}.sync.log").unlink()


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

    A process, not a thread: the simulator must not share the GIL with Datasette.
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
        # the token goes through the environment: argv is visible in `ps`
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
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    "Linux: the simulator gets SIGTERM if the demo process dies without cleanup"
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
