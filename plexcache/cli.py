"""The ``plexcache`` command: a thin click adapter over the library.

Each command parses options, calls one library function and prints. Library
errors (``PlexcacheError``) become one-line messages and a non-zero exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

import click

from . import __version__
from .config import resolve_db_path, resolve_plex_config
from .errors import PlexcacheError

db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    help="Cache database [env PLEXCACHE_DB; default data/library_cache.db]",
)
url_option = click.option("--url", help="Plex server URL [env PLEX_URL]")
token_option = click.option("--token", help="Plex token [env PLEX_TOKEN]")


class Fail(click.ClickException):
    "A one-line error on stderr and exit code 1"


def _fail(e: PlexcacheError):
    raise Fail(str(e)) from None


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--section", help="Only sync the music library with this name")
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
    type=click.IntRange(1, 10000),
    help="Tracks per request",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or log lines, only errors")
@click.option("--trigger", default="cli", hidden=True)
@click.option("--nice", "niceness", default=0, type=click.IntRange(0, 19), hidden=True)
def sync(db, url, token, section, full, allow_mass_delete, page_size, quiet, trigger, niceness):
    """Sync every music track from Plex into the cache

    \b
    Example:
        plexcache sync --url http://127.0.0.1:32400 --token TOKEN
    """
    from .lock import inherited_lock
    from .progress import CliProgress
    from .sync import sync as run_sync

    db_path = resolve_db_path(db)
    if niceness:
        os.nice(niceness)
    # SIGTERM (systemd, docker stop, kill) ends the sync like Ctrl-C: the run
    # is recorded as interrupted and the cache stays as it was.
    signal.signal(signal.SIGTERM, _terminated)
    try:
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
            )
    except PlexcacheError as e:
        _fail(e)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not quiet:
        click.echo(result.summary())


@cli.command()
@db_option
@url_option
@token_option
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors")
@click.option(
    "--poll-interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
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
            poll_interval=poll_interval, parent_pid=parent_pid, wait_for_first_sync=wait_for_first_sync
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

    db_path = resolve_db_path(db)
    try:
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
    if not no_plex:
        click.echo(f"Plex connected: {'yes' if data['plex_connected'] else 'no'}")
    if data["error"]:
        click.echo(f"Error:          {data['error']}")


@cli.command()
@db_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation")
def reset(db, yes):
    """Empty the cache; the next sync is a full one

    The file stays (emptied in one transaction), so a running `plexcache
    serve` or an open notebook sees the empty cache instead of a deleted file.
    A file that is not SQLite at all is deleted.
    """
    from .db import reset_cache

    db_path = resolve_db_path(db)
    if not yes and sys.stdin.isatty():
        click.confirm(f"Empty the cache at {db_path}?", abort=True)
    try:
        done = reset_cache(db_path)
    except PlexcacheError as e:
        _fail(e)
    click.echo(f"Emptied {db_path}" if done else f"No cache at {db_path}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=32400, show_default=True, type=int)
@click.option("--tracks", default=18432, show_default=True, type=click.IntRange(min=0))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--token",
    default="plexcache-demo-token",
    show_default=True,
    envvar="PLEXCACHE_SIMULATOR_TOKEN",
    help="Token clients must send [env PLEXCACHE_SIMULATOR_TOKEN]",
)
@click.option("--latency-ms", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--profile", default=None, help="Server behaviour to play, e.g. pms-1.41 (docs/simulator.md) [default classic]")
@click.option("--history", default=1000, show_default=True, type=click.IntRange(min=0),
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
    except ValueError as e:
        raise Fail(str(e)) from None
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
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5765, show_default=True, type=int)
@click.option("--no-watch", is_flag=True, help="Do not keep the cache live (`plexcache watch` beside the server)")
def serve(db, url, token, host, port, no_watch):
    """Browse the cache in Datasette, with sync status and controls"""
    from datasette_plexcache.app import serve as serve_datasette

    try:
        config = resolve_plex_config(url, token)
        serve_datasette(resolve_db_path(db), config, host=host, port=port,
                        plugin_extra={"watch": False} if no_watch else None)  # fmt: skip
    except PlexcacheError as e:
        _fail(e)


@cli.command()
@click.option("--tracks", default=18432, show_default=True, type=click.IntRange(min=0))
@click.option("--port", default=5765, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--db", "db", type=click.Path(dir_okay=False), help="Demo database [default data/demo.db]")
def demo(tracks, port, seed, db):
    """Try everything on a built-in simulated Plex server

    Starts the simulator, serves Datasette on a separate demo cache and prints
    the URL. Your real cache is never touched.
    """
    from datasette_plexcache.app import demo as run_demo

    try:
        run_demo(tracks=tracks, port=port, seed=seed, db_path=db)
    except PlexcacheError as e:
        _fail(e)


def main():  # pragma: no cover
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    cli()
