"""The ``plexcache`` command: a thin click adapter over the library.

Each command parses options, calls one library function and prints. Library
errors (``PlexcacheError``) become one-line messages: exit 2 for a bad
setting (``ConfigError``: an option, an environment variable), 1 for the
rest. Option values are checked by the same functions as the environment
variables (``plexcache.config``), so ``--db`` and ``PLEXCACHE_DB`` get the
same message.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import signal
import sys

import click

from . import __version__
from .config import (
    check_db_path,
    env_flag,
    invalid,
    parse_int,
    resolve_db_path,
    resolve_plex_config,
)
from .errors import ConfigError, PlexcacheError, redact


class Fail(click.ClickException):
    "A one-line ``Error: ...`` on stderr; exit 1, or 2 for bad usage"

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _fail(e: PlexcacheError):
    raise Fail(str(e), e.exit_code) from None


class Setting(click.ParamType):
    """An option value checked by a ``plexcache.config`` function: a bad one
    is ``Error: Invalid value for --opt: expected ..., got ...`` and exit 2"""

    def __init__(self, name: str, check, metavar: str | None = None):
        self.name = name
        self.check = check
        self.metavar = metavar or name.upper()

    def get_metavar(self, param, ctx=None):
        return self.metavar

    def convert(self, value, param, ctx):
        if value is None:
            return None
        try:
            return self.check(value, param.opts[0] if param else self.name)
        except ConfigError as e:
            raise Fail(str(e), e.exit_code) from None


def whole(lo: int, hi: int | None = None) -> Setting:
    return Setting("integer", lambda v, name: parse_int(v, name, lo, hi))


def _check_text(value, name):
    if not str(value).strip():
        raise invalid(name, "a name", value)
    return str(value).strip()


def _check_interval(value, name):
    "Seconds from 1 to a day: a watcher must not hammer the server, nor sleep for days"
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = float("nan")
    if not 1 <= seconds <= 86400:
        raise invalid(name, "a number of seconds from 1 to 86400 (like 60)", value)
    return seconds


def _check_host(value, name):
    text = str(value).strip()
    if not text or "://" in text or "/" in text or " " in text:
        raise invalid(
            name, "a host name or IP address to listen on, like 127.0.0.1 or 0.0.0.0", value
        )
    return text.strip("[]")


DB_PATH = Setting("file", check_db_path)
PORT = whole(0, 65535)
HOST = Setting("host", _check_host)
NAME = Setting("name", _check_text)

db_option = click.option(
    "--db",
    "db",
    type=DB_PATH,
    help="Cache database [env PLEXCACHE_DB; default data/library_cache.db]",
)
url_option = click.option(
    "--url", help="Plex server URL, like http://192.168.1.10:32400 [env PLEX_URL]"
)
token_option = click.option("--token", help="Plex token [env PLEX_TOKEN]")


class Cli(click.Group):
    "The group: an unexpected exception is one line too (PLEXCACHE_DEBUG=1 shows the traceback)"

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (
            click.ClickException,
            click.exceptions.Exit,
            click.Abort,
            KeyboardInterrupt,
            SystemExit,
        ):
            raise
        except Exception as e:
            if isinstance(e, OSError) and e.errno == errno.EPIPE:
                raise  # `plexcache status | head`: click exits quietly
            try:
                debug = env_flag("PLEXCACHE_DEBUG", False)
            except ConfigError:
                debug = False
            if debug:
                raise
            raise Fail(
                redact(
                    f"unexpected {type(e).__name__}: {e} (a bug? PLEXCACHE_DEBUG=1 shows where)"
                ).replace("\n", " ")
            ) from None


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plexcache")
def cli():
    """Keep a Plex music library as a local, queryable SQLite dataset.

    \b
    Try it with no Plex server at hand:
        plexcache demo
    """


@cli.command()
@db_option
@url_option
@token_option
@click.option("--section", type=NAME, help="Only sync the music library with this name")
@click.option("--full", is_flag=True, help="Re-read everything instead of only what changed")
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Apply deletions even when they would remove more than half of the cache",
)
@click.option(
    "--page-size",
    default=1000,
    show_default=True,
    type=whole(1, 10000),
    help="Tracks per request (1 to 10000)",
)
@click.option(
    "--no-history", is_flag=True, help="Leave the listening history (plays, accounts, devices) out"
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or log lines, only errors")
@click.option("--trigger", default="cli", hidden=True)
@click.option("--nice", "niceness", default=0, type=whole(0, 19), hidden=True)
def sync(
    db,
    url,
    token,
    section,
    full,
    allow_mass_delete,
    page_size,
    no_history,
    quiet,
    trigger,
    niceness,
):
    """Sync every music track from Plex into the cache

    \b
    Example:
        plexcache sync --url http://127.0.0.1:32400 --token TOKEN
    """
    from .cli_progress import CliProgress
    from .lock import inherited_lock
    from .sync import sync as run_sync

    if niceness:
        os.nice(niceness)
    # SIGTERM (systemd, docker stop, kill) ends the sync like Ctrl-C: the run
    # is recorded as interrupted and the cache stays as it was.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        db_path = resolve_db_path(db)
        config = resolve_plex_config(url, token)
        progress = CliProgress(quiet=quiet)
        with progress:
            result = run_sync(
                db_path,
                config,
                full=full,
                section=section,
                allow_mass_delete=allow_mass_delete,
                on_progress=progress,
                trigger=trigger,
                lock=inherited_lock(db_path),
                page_size=page_size,
                history=not no_history,
            )
    except PlexcacheError as e:
        _fail(e)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not quiet:
        click.echo(result.summary())
        if result.plays_added:
            click.echo(f"{result.plays_added:,} new plays in the listening history")


@cli.command()
@db_option
@url_option
@token_option
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors")
@click.option(
    "--poll-interval",
    default=60.0,
    show_default=True,
    type=Setting("seconds", lambda v, name: _check_interval(v, name)),
    help="Seconds between checks for changes while the notification websocket is unavailable",
)
@click.option("--parent-pid", type=int, hidden=True)
@click.option("--wait-for-first-sync", is_flag=True, hidden=True)
def watch(db, url, token, quiet, poll_interval, parent_pid, wait_for_first_sync):
    """Keep the cache live: apply each change Plex announces, seconds after it

    Runs an incremental sync, then follows Plex's notification websocket
    until Ctrl-C or SIGTERM.

    \b
    Example:
        plexcache watch --url http://127.0.0.1:32400 --token TOKEN
    """
    from .watch import Watcher, WatchOptions

    db_path = resolve_db_path(db)
    signal.signal(signal.SIGTERM, _stop_watching)
    handler = _watch_log_handler(logging.WARNING if quiet else logging.INFO)
    try:
        config = resolve_plex_config(url, token)
        options = WatchOptions(
            poll_interval=poll_interval,
            parent_pid=parent_pid,
            wait_for_first_sync=wait_for_first_sync,
        )
        Watcher(db_path, config, options).run()
    except KeyboardInterrupt:
        pass
    except PlexcacheError as e:
        _fail(e)
    finally:
        logging.getLogger("plexcache").removeHandler(handler)


def _stop_watching(signum, frame):
    "SIGTERM ends `watch` like Ctrl-C (exit 0); a second signal changes nothing"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _watch_log_handler(level: int) -> logging.Handler:
    "plexcache's log lines on stderr, as `Warning: ...` or plain lines"

    class Lines(logging.Formatter):
        def format(self, record):
            text = record.getMessage()
            return f"Warning: {text}" if record.levelno >= logging.WARNING else text

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Lines())
    logger = logging.getLogger("plexcache")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    # each sync's own lines ("Sync complete in ...") would double the watcher's
    logging.getLogger("plexcache.sync").setLevel(max(level, logging.WARNING))
    return handler


@cli.command()
@db_option
@url_option
@token_option
@click.option("--json", "as_json", is_flag=True, help="Print the status object as JSON")
@click.option("--no-plex", is_flag=True, help="Do not contact the Plex server")
def status(db, url, token, as_json, no_plex):
    """Show the cache's state: tracks, last sync, running sync, errors"""
    from .status import get_status

    try:
        db_path = resolve_db_path(db)
        config = resolve_plex_config(url, token)
        data = get_status(db_path, config, check_plex=not no_plex)
    except PlexcacheError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Cache:          {db_path}")
    click.echo(f"Tracks:         {data['track_count']:,}")
    click.echo(f"Synced at:      {data['synced_at'] or 'never'}")
    if data["is_syncing"]:
        p = data["sync_progress"] or {"current": 0, "total": 0}
        click.echo(f"Syncing:        {p['current']:,} / {p['total']:,} tracks")
    else:
        click.echo("Syncing:        no")
    if no_plex:
        click.echo("Plex connected: not checked (--no-plex)")
    elif not config.configured:
        click.echo("Plex connected: no server configured (--url or PLEX_URL)")
    else:
        click.echo(f"Plex connected: {'yes' if data['plex_connected'] else 'no'}")
    if data["error"]:
        click.echo(f"Error:          {data['error']}")


@cli.command()
@db_option
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed when not on a terminal)"
)
def reset(db, yes):
    """Empty the cache; the next sync is a full one

    The file stays (emptied in one transaction), so a running `plexcache
    serve` or an open notebook sees the empty cache instead of a deleted file.
    A damaged cache is removed. Anything that is not a plexcache cache (a
    text file, another program's database) is refused, --yes or not.
    """
    from .db import check_resettable, inspect_cache
    from .db import reset as reset_path

    try:
        db_path = resolve_db_path(db)
        info = inspect_cache(db_path)
        check_resettable(info)
        if info.kind in ("cache", "damaged") and not yes:
            if not sys.stdin.isatty():
                doing = "empty" if info.kind == "cache" else "remove"
                raise ConfigError(
                    f"refusing to {doing} {info.describe} without confirmation: stdin is not a "
                    f"terminal, so nobody can answer; pass --yes to {doing} it"
                )
            question = (
                f"Empty {info.describe}?"
                if info.kind == "cache"
                else f"Remove the damaged cache {db_path}?"
            )
            if not click.confirm(question, default=False):
                click.echo(f"Nothing changed: {db_path} is as it was.")
                sys.exit(1)
        result = reset_path(db_path)
    except PlexcacheError as e:
        _fail(e)
    click.echo(result.message)


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, type=HOST, help="Address to listen on"
)
@click.option(
    "--port",
    default=32400,
    show_default=True,
    type=PORT,
    help="Port to listen on (0: any free port)",
)
@click.option(
    "--tracks",
    default=18432,
    show_default=True,
    type=whole(0, 10_000_000),
    help="Tracks in the library",
)
@click.option(
    "--seed",
    default=1,
    show_default=True,
    type=whole(-(2**63), 2**63 - 1),
    help="Seed of the generated library",
)
@click.option(
    "--token",
    default="plexcache-demo-token",
    show_default=True,
    envvar="PLEXCACHE_SIMULATOR_TOKEN",
    help="Token clients must send [env PLEXCACHE_SIMULATOR_TOKEN]",
)
@click.option(
    "--latency-ms",
    default=0,
    show_default=True,
    type=whole(0, 60_000),
    help="Delay added to every response",
)
@click.option(
    "--profile",
    default=None,
    help="Server behaviour to play, e.g. pms-1.41 (docs/simulator.md) [default pms-1.41]",
)
@click.option("--history", default=1000, show_default=True, type=whole(0, 10_000_000),
              help="Plays in the seeded listening history")  # fmt: skip
@click.option("--notifications/--no-notifications", default=True, show_default=True,
              help="Serve the notification websocket (/:/websockets/notifications)")  # fmt: skip
def simulate(host, port, tracks, seed, token, latency_ms, profile, history, notifications):
    """Serve a synthetic Plex Media Server until stopped (Ctrl-C)

    \b
    Example:
        plexcache simulate --port 32400 --tracks 18432 --seed 1 --token TOKEN
    """
    from .simulator import Simulator

    try:
        sim = Simulator(tracks=tracks, seed=seed, token=token, latency_ms=latency_ms, profile=profile,
                        history=history, notifications=notifications)  # fmt: skip
    except ValueError as e:  # an unknown --profile: bad usage
        raise Fail(str(e), 2) from None
    try:
        sim.start(host=host, port=port)
    except OSError as e:
        raise Fail(f"cannot listen on {host}:{port}: {e.strerror}") from None
    click.echo(f"Plex Media Server simulator on {sim.url} ({tracks:,} tracks, seed {seed}, profile "
               f"{sim.profile.name}: PMS {sim.profile.version})")  # fmt: skip
    click.echo(f"Try: PLEX_URL={sim.url} PLEX_TOKEN={token} plexcache sync")
    try:
        sim.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


@cli.command()
@db_option
@url_option
@token_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    type=HOST,
    help="Address to listen on; 0.0.0.0 opens it to your network (syncs then need the root actor)",
)
@click.option(
    "--port",
    default=5765,
    show_default=True,
    type=PORT,
    help="Port to listen on (0: any free port)",
)
@click.option(
    "--no-watch",
    is_flag=True,
    help="Do not keep the cache live (`plexcache watch` beside the server)",
)
def serve(db, url, token, host, port, no_watch):
    """Browse the cache in Datasette, with sync status and controls"""
    from .serve import open_server

    try:
        db_path = resolve_db_path(db)
        config = resolve_plex_config(url, token)
        server = open_server(db_path, config, host=host, port=port,
                             plugin_extra={"watch": False} if no_watch else None)  # fmt: skip
    except PlexcacheError as e:
        _fail(e)
    _run_server(server)


def _run_server(server, banner: str | None = None) -> None:
    if banner:
        click.echo(banner)
    click.echo(f"Serving {server.db_path} at {server.url}")
    if not server.configured:
        click.echo(
            "No Plex server configured (--url/--token or PLEX_URL/PLEX_TOKEN): browsing only."
        )
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    stopped = server.run()
    if stopped:
        click.echo(f"Stopped {stopped} running sync.")


@cli.command()
@click.option(
    "--tracks",
    default=18432,
    show_default=True,
    type=whole(0, 10_000_000),
    help="Tracks in the simulated library",
)
@click.option(
    "--port",
    default=5765,
    show_default=True,
    type=PORT,
    help="Port for Datasette (0: any free port)",
)
@click.option(
    "--seed",
    default=1,
    show_default=True,
    type=whole(-(2**63), 2**63 - 1),
    help="Seed of the simulated library",
)
@click.option(
    "--db", "db", type=DB_PATH, help="Demo database, reset at every start [default data/demo.db]"
)
def demo(tracks, port, seed, db):
    """Try everything on a built-in simulated Plex server

    Starts the simulator, serves Datasette on a separate demo cache and prints
    the URL. Your real cache is never touched.
    """
    from . import serve as serving

    try:
        with serving.demo(tracks=tracks, port=port, seed=seed, db_path=db) as (server, sim_url):
            banner = (
                f"plexcache demo: simulated Plex server at {sim_url} "
                f"({tracks:,} tracks, seed {seed}); demo cache {server.db_path}"
            )
            _run_server(server, banner)
    except PlexcacheError as e:
        _fail(e)


def main() -> None:
    """The ``plexcache`` command (the console script and ``python -m plexcache``).

    When the command ends, click exits the process (``SystemExit``). The
    interpreter's last garbage collections would then walk every object the
    imports made: 40-60 ms here, as much as a no-change sync's own work
    (docs/performance.md, G5). Frozen first, those objects are skipped; exit
    handlers, stream flushes and file closes still run (unlike ``os._exit``).
    Only here, never in ``cli``: a process that goes on (a test calling
    ``cli``) must keep collecting."""
    try:
        cli()
    finally:
        gc.freeze()
