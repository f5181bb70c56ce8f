"""Serving the cache in Datasette, and the demo: process management, no click.

``open_server`` builds a ``Datasette`` in-process (metadata, plugin config and
settings from ``datasette_plexcache.metadata``) on a bound socket;
``Server.run`` serves it with uvicorn on one event loop until Ctrl-C or
SIGTERM. Syncs never run in this process: the plugin spawns ``plexcache
sync`` children, and ``run`` stops those on the way out. ``demo`` adds a
simulator child (``simulator.process``) and a demo cache of its own.

Nothing is printed here: ``cli.py`` prints (the URL, the banner, how many
syncs were stopped). The only core module that imports the plugin, lazily:
serving *is* running Datasette with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import PlexConfig, env_flag, env_int, resolve_db_path
from .db import init_cache, reset_cache
from .errors import ConfigError, PlexcacheError

DEMO_DB_PATH = Path("data") / "demo.db"
DEMO_LATENCY_MS = 40  # PLEXCACHE_DEMO_LATENCY_MS overrides it (checked when the demo starts)

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
    ``PLEXCACHE_SYNC_ON_START=0`` turns off the sync at server start,
    ``PLEXCACHE_WATCH=0`` the live cache.
    """
    plugin_config = {
        "database": database_name(db_path),
        "bind_host": host,
        "sync_log": f"{db_path}.sync.log",
        "sync_on_start": env_flag("PLEXCACHE_SYNC_ON_START", True),
        # the live cache (`plexcache watch` beside the server); PLEXCACHE_WATCH=0 turns it off
        "watch": env_flag("PLEXCACHE_WATCH", True),
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
    from datasette_plexcache.metadata import datasette_kwargs

    db_path = Path(db_path)
    plugin_config = {**plugin_config_for(db_path, config, host), **(plugin_extra or {})}
    if config.token:
        os.environ["PLEX_TOKEN"] = config.token
    kwargs = datasette_kwargs(
        database_name(db_path), plugin_config=plugin_config, settings=dict(DATASETTE_SETTINGS)
    )
    return Datasette([str(db_path)], **kwargs)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a busy port is a clean error and port 0 works.

    Taken before anything is created. A busy port (or an address this
    machine does not have) is a ``PlexcacheError`` (exit 1): the option's
    value is well-formed, the machine cannot do it now."""
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
        raise PlexcacheError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


@dataclass
class Server:
    "A Datasette on the cache, bound and ready: ``run()`` serves it"

    db_path: Path
    url: str
    configured: bool  # is a Plex server configured (else: browsing only)
    datasette: object
    sock: socket.socket

    def run(self) -> int:
        """Serve until Ctrl-C or SIGTERM; then close the socket and stop the
        syncs this server started. Returns how many were still running."""
        from datasette_plexcache import service

        try:
            _run_until_stopped(_serve_async(self.datasette, self.sock))
        finally:
            self.sock.close()
            stopped = service.stop_children()
        return stopped


def open_server(
    db_path,
    config: PlexConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 5765,
    plugin_extra: dict | None = None,
    sock: socket.socket | None = None,
) -> Server:
    """Everything ``plexcache serve`` needs before it serves: the listening
    socket first (``sock``, when the caller bound it already), then the cache
    file (created if needed: Datasette refuses a missing file) and the
    Datasette. A failure closes the socket."""
    db_path = Path(db_path)
    env_flag("PLEXCACHE_SYNC_ON_START", True)  # a bad setting fails before anything is created
    env_flag("PLEXCACHE_WATCH", True)
    sock = sock or bind(host, port)  # a busy port, too
    try:
        init_cache(db_path)
        ds = build_datasette(db_path, config, host=host, plugin_extra=plugin_extra)
    except BaseException:
        sock.close()
        raise
    return Server(
        db_path=db_path,
        url=url_for(host, sock.getsockname()[1]),
        configured=config.configured,
        datasette=ds,
        sock=sock,
    )


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


@contextlib.contextmanager
def demo(
    *,
    tracks: int = 18432,
    port: int = 5765,
    seed: int = 1,
    db_path=None,
    host: str = "127.0.0.1",
    latency_ms: int | None = None,
) -> Iterator[tuple[Server, str]]:
    """Simulator + its own demo cache + Datasette (the ``plexcache demo`` command).

    Yields the ``Server`` (not yet serving) and the simulator's URL; the
    simulator stops on exit. The demo cache (default ``data/demo.db``) is
    emptied at each start so the first-load flow shows; the real cache is
    refused.
    """
    from .simulator.process import start_simulator, stop_process

    latency = (
        env_int("PLEXCACHE_DEMO_LATENCY_MS", DEMO_LATENCY_MS, 0, 60_000)
        if latency_ms is None
        else latency_ms
    )
    db_path = Path(db_path) if db_path else DEMO_DB_PATH
    check_demo_path(db_path)
    sock = bind(host, port)  # before the demo cache is reset or the simulator started
    proc = None
    try:
        reset_demo_cache(db_path)
        token = secrets.token_urlsafe(18)
        proc, sim_url = start_simulator(tracks=tracks, seed=seed, token=token, latency_ms=latency)
        server = open_server(
            db_path,
            PlexConfig(url=sim_url, token=token),
            host=host,
            # The first page load starts the sync, exactly as in the spec's
            # first-load flow (status -> empty -> modal -> POST -> poll).
            plugin_extra={"sync_on_start": False},
            sock=sock,
        )
        yield server, sim_url
    finally:
        sock.close()  # a no-op once the server has closed it
        if proc is not None:
            stop_process(proc)


def check_demo_path(db_path: Path) -> None:
    "The demo empties its cache at start, so it must never be the real one"
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
    "Empty the demo cache (refused while a sync of it runs) and delete its sync log"
    reset_cache(db_path)
    with contextlib.suppress(FileNotFoundError):
        Path(f"{db_path}.sync.log").unlink()
