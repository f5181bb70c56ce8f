"""The plugin's logic as plain functions, so hooks and views stay thin.

Nothing here talks HTTP: views turn these results into responses, and the
tests call most of these directly. Who may do what, and which requests are
refused for where they come from, is ``security``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plexcache.config import PlexConfig, parse_flag, parse_number, redact, resolve_plex_config
from plexcache.db import connect_readonly
from plexcache.errors import ConfigError, PlexcacheError

from .security import SYNC_ACTION, is_loopback_host

__all__ = [
    "PluginSettings",
    "SYNC_ACTION",
    "settings_from_config",
    "library_status",
    "recent_runs",
    "start_sync",
]

PLUGIN_NAME = "plexcache"
DEFAULT_STALE_AFTER_HOURS = 24.0

# The spec's status object, used when the cache cannot be read at all.
EMPTY_STATUS = {
    "track_count": 0,
    "synced_at": None,
    "is_syncing": False,
    "sync_progress": None,
    "error": None,
    "plex_connected": False,
}


@dataclass
class PluginSettings:
    """Everything the plugin needs to know, read once per Datasette instance.

    ``bind_host`` is the address Datasette listens on when ``plexcache serve``
    started it; ``None`` means unknown (plain ``datasette serve``), which is
    treated as "not local only".
    """

    database: str | None
    db_path: Path | None
    plex: PlexConfig
    stale_after_hours: float = DEFAULT_STALE_AFTER_HOURS
    allow_sync: Any = None
    bind_host: str | None = None
    sync_on_start: bool = True
    sync_log: str | None = None
    watch: bool = True  # run `plexcache watch` beside the server (the live cache)
    config_error: str | None = None
    health: PlexHealth = field(default_factory=lambda: PlexHealth())

    @property
    def local_only(self) -> bool:
        return is_loopback_host(self.bind_host)

    def redact(self, text: str | None) -> str | None:
        if text is None:
            return None
        return redact(self.plex.redact(str(text)), self.plex.token)


def settings_from_config(plugin_config: dict | None, databases: dict) -> PluginSettings:
    """Build settings from the ``plexcache`` plugin config and Datasette's databases.

    ``databases`` maps database name to file path (None for in-memory ones).
    Plugin config keys: ``database``, ``plex_url``, ``plex_token`` (use
    ``{"$env": "PLEX_TOKEN"}``), ``stale_after_hours``, ``allow_sync``,
    ``bind_host``, ``sync_on_start``, ``sync_log``, ``watch``. Without ``plex_url`` the
    server comes from the same places as for ``plexcache sync``.
    """
    pc = dict(plugin_config or {})
    name = pc.get("database") or pick_cache_database(databases)
    path = databases.get(name) if name else None
    config_error = None
    try:
        plex = resolve_plex_config(
            pc.get("plex_url"),
            pc.get("plex_token"),
            url_setting="plex_url (plexcache plugin config)",
            token_setting="plex_token (plexcache plugin config)",
        )
    except ConfigError as e:
        plex = PlexConfig(url=None)
        config_error = str(e)
    if name and name not in databases:
        config_error = f"plexcache: database {name!r} is not attached to Datasette"
    stale, sync_on_start, watch = DEFAULT_STALE_AFTER_HOURS, True, True
    try:  # hardening: a bad value is reported, not silently replaced
        stale = parse_number(
            pc.get("stale_after_hours", stale),
            "stale_after_hours (plexcache plugin config)",
            at_most=24 * 365,
            unit="hours",
            example="24",
        )
        sync_on_start = parse_flag(
            pc.get("sync_on_start", True), "sync_on_start (plexcache plugin config)"
        )
        watch = parse_flag(pc.get("watch", True), "watch (plexcache plugin config)")
    except ConfigError as e:
        config_error = config_error or str(e)
    return PluginSettings(
        database=name,
        db_path=Path(path) if path else None,
        plex=plex,
        stale_after_hours=stale,
        allow_sync=pc.get("allow_sync"),
        bind_host=pc.get("bind_host"),
        sync_on_start=sync_on_start,
        sync_log=pc.get("sync_log"),
        watch=watch,
        config_error=config_error,
    )


def pick_cache_database(databases: dict) -> str | None:
    """The database that holds the cache when the config does not name one.

    Only a file with plexcache's ``sync_runs`` table qualifies (``library_cache``
    first), so installing the plugin next to unrelated databases never syncs
    into them: without a cache the plugin stays out of the way.
    """
    files = {name: path for name, path in databases.items() if path and not name.startswith("_")}
    names = sorted(files, key=lambda name: name != "library_cache")
    for name in names:
        if _has_table(files[name], "sync_runs"):
            return name
    return None


def _has_table(path, table) -> bool:
    try:
        conn = connect_readonly(path, timeout=1)
        try:
            return bool(
                conn.execute(
                    "select 1 from sqlite_master where type = 'table' and name = ?", (table,)
                ).fetchone()
            )
        finally:
            conn.close()
    except (sqlite3.Error, PlexcacheError):  # missing, unreadable or not a plexcache cache
        return False


def library_status(settings: PluginSettings, *, check_plex: bool = True) -> dict:
    """The spec's status dict, token-free. Blocking: call it in a thread.

    Never raises: an unreadable cache becomes an ``error``. Plex reachability
    comes from ``settings.health``, which never makes a poll wait for Plex
    once it has a first answer.
    """
    from plexcache.status import get_status

    if settings.db_path is None:
        return {**EMPTY_STATUS, "error": settings.config_error or "plexcache: no cache database"}
    try:
        status = get_status(settings.db_path, settings.plex, check_plex=False)
    except PlexcacheError as e:
        status = {**EMPTY_STATUS, "error": str(e)}
    if check_plex and settings.plex.configured:
        connected, plex_error = settings.health.get(settings.plex)
        status["plex_connected"] = connected
        if not connected:
            status["error"] = plex_error
    if settings.config_error and not status["error"]:
        status["error"] = settings.config_error
    status["error"] = settings.redact(status["error"])
    return status


class PlexHealth:
    """Is the Plex server reachable? Stale-while-revalidate around the core's check.

    The first call waits for a real check; after that a call returns the last
    answer at once and, when it is older than ``ttl`` seconds, starts one
    background re-check. So a 1 s status poll never waits on a slow or
    unreachable Plex (a dropped-packet host takes the full timeout).
    """

    def __init__(self, ttl: float = 5.0):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._answer: tuple[bool, str | None] | None = None
        self._checked_at = 0.0
        self._refreshing = False

    def get(self, config: PlexConfig) -> tuple[bool, str | None]:
        with self._lock:
            answer = self._answer
            stale = time.monotonic() - self._checked_at >= self.ttl
            start = answer is not None and stale and not self._refreshing
            if start:
                self._refreshing = True
        if answer is None:
            return self._check(config)
        if start:
            threading.Thread(
                target=self._check, args=(config,), name="plexcache-health", daemon=True
            ).start()
        return answer

    def prefetch(self, config: PlexConfig) -> None:
        "Start a first check in the background (at server start)"
        with self._lock:
            if self._refreshing or self._answer is not None:
                return
            self._refreshing = True
        threading.Thread(
            target=self._check, args=(config,), name="plexcache-health", daemon=True
        ).start()

    def _check(self, config: PlexConfig) -> tuple[bool, str | None]:
        from plexcache import status as core_status

        try:
            answer = core_status.plex_reachable(config, ttl=0)
        except Exception as e:  # never let a probe bug break the status endpoint
            answer = (False, f"cannot check the Plex server: {type(e).__name__}")
        with self._lock:
            self._answer = answer
            self._checked_at = time.monotonic()
            self._refreshing = False
        return answer


def recent_runs(settings: PluginSettings, limit: int = 20) -> list[dict]:
    "The latest ``sync_runs`` rows, newest first, with errors redacted"
    from plexcache.sync.runs import list_runs

    if settings.db_path is None:
        return []
    try:
        runs = list_runs(settings.db_path, limit=limit)
    except PlexcacheError:
        return []
    for run in runs:
        for key in ("error", "warning"):
            if run.get(key):
                run[key] = settings.redact(run[key])
    return runs


def start_sync(settings: PluginSettings, *, full: bool = False, trigger: str = "web"):
    """Start ``plexcache sync`` in a child process; returns the ``Popen``.

    Raises ``SyncAlreadyRunning`` (another process holds the lock) or
    ``ConfigError`` (no server, no cache). Blocking for up to half a second
    while it tries the lock: call it in a thread from async code.
    """
    from plexcache.process import spawn_sync

    if settings.db_path is None:
        raise ConfigError(settings.config_error or "plexcache: no cache database")
    if settings.config_error:
        raise ConfigError(settings.config_error)
    proc = spawn_sync(
        settings.db_path,
        settings.plex,
        full=full,
        trigger=trigger,
        log_path=settings.sync_log,
    )
    _remember(proc)
    return proc


def start_watch(settings: PluginSettings):
    """Start ``plexcache watch`` beside the server when a Plex server is
    configured and the ``watch`` setting is on; returns the ``Popen`` or None.
    It follows the cache once a first sync filled it, and stops with the server."""
    from plexcache.process import spawn_watch

    if (
        not (settings.watch and settings.plex.configured and settings.db_path)
        or settings.config_error
    ):
        return None
    proc = spawn_watch(settings.db_path, settings.plex, log_path=settings.sync_log)
    global _watcher
    _watcher = proc
    return proc


def wait_for_watcher(settings: PluginSettings, proc, timeout: float = 5.0) -> str | None:
    """Wait (up to ``timeout``) until the watcher has tried its first
    connection; returns its state. The server starts serving after this, so a
    first sync started from a page comes after the connect and covers it: the
    watcher then needs no sync of its own."""
    from plexcache.watch import read_state

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = (read_state(settings.db_path) or {}).get("state")
        if state not in (None, "starting", "connecting", "stopped"):
            break
        time.sleep(0.05)
    return state


def live_state(settings: PluginSettings) -> dict:
    """What the live cache is doing, for the footer and the progress page:
    ``enabled`` (the setting), ``running``, ``state`` (connected, polling,
    disconnected, waiting, stopped...), ``since``, ``detail``,
    ``last_event_at``, ``last_change_at``. Token-free."""
    from plexcache.watch import read_state

    state = read_state(settings.db_path) if settings.db_path else None
    out = {"enabled": bool(settings.watch and settings.plex.configured), "running": False, "state": "stopped",
           "since": None, "detail": None, "last_event_at": None, "last_change_at": None}  # fmt: skip
    if state:
        out.update(
            {
                k: state.get(k)
                for k in ("running", "state", "since", "detail", "last_event_at", "last_change_at")
            }
        )
        out["detail"] = settings.redact(out["detail"])
    out["text"] = live_text(out)
    return out


LIVE_TEXT = {
    "connected": "Live: changes in Plex show up here within seconds",
    "polling": "Checking Plex for changes every minute (the server offers no notifications)",
    "disconnected": "Reconnecting to Plex; changes made meanwhile are synced when it is back",
    "waiting": "Live updates start after the first sync",
    "starting": "Connecting to Plex…",
    "connecting": "Connecting to Plex…",
}


def live_text(live: dict) -> str:
    "One sentence for the footer and the progress page"
    if live["running"]:
        return LIVE_TEXT.get(live["state"], "Live updates: " + str(live["state"]))
    if not live["enabled"]:
        return "Off: syncs run on start, on Refresh, or from `plexcache sync`"
    return "Not running"


def is_stale(synced_at: str | None, hours: float, now: datetime | None = None) -> bool:
    "True when the last sync is older than ``hours`` (or there never was one)"
    if not synced_at:
        return True
    try:
        when = datetime.fromisoformat(synced_at.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return (now - when).total_seconds() > hours * 3600


def should_sync_on_start(settings: PluginSettings) -> bool:
    "Server start: sync when a server is configured and the cache is empty or stale"
    if not (settings.sync_on_start and settings.plex.configured and settings.db_path):
        return False
    if settings.config_error:
        return False
    status = library_status(settings, check_plex=False)
    if status["is_syncing"]:
        return False
    return status["track_count"] == 0 or is_stale(status["synced_at"], settings.stale_after_hours)


# Sync processes started by this server, so `plexcache serve`/`demo` can stop
# them on Ctrl-C.
_children: list[subprocess.Popen] = []
_children_lock = threading.Lock()
_watcher: subprocess.Popen | None = None  # `plexcache watch`, stopped with the syncs


def _remember(proc) -> None:
    with _children_lock:
        _children[:] = [p for p in _children if p.poll() is None]
        _children.append(proc)


def stop_children(timeout: float = 5.0) -> int:
    """Terminate the sync processes this server started (and its watcher);
    returns how many syncs were running"""
    global _watcher
    with _children_lock:
        running = [p for p in _children if p.poll() is None]
        _children.clear()
        watcher, _watcher = _watcher, None
    procs = running + ([watcher] if watcher is not None and watcher.poll() is None else [])
    for proc in procs:
        try:
            proc.terminate()
        except OSError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return len(running)


def format_duration(ms) -> str:
    "1234 -> '1.2 s', 95432 -> '1 min 35 s'; '' for None"
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def describe_run(run: dict) -> dict:
    "A ``sync_runs`` row as the progress page shows it"
    return {
        "id": run.get("id"),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "mode": run.get("mode") or "",
        "trigger": run.get("trigger") or "",
        "status": run.get("status") or "",
        "phase": run.get("phase") or "",
        "duration": format_duration(run.get("duration_ms")),
        "added": run.get("tracks_added") or 0,
        "updated": run.get("tracks_updated") or 0,
        "removed": run.get("tracks_removed") or 0,
        "requests": run.get("http_requests") or 0,
        "progress": f"{run.get('progress_current') or 0:,} / {run.get('progress_total') or 0:,}",
        "error": run.get("error") or "",
        "warning": run.get("warning") or "",
    }


def database_paths(datasette) -> dict:
    "Datasette's databases as name -> file path (None when not a file)"
    return {name: getattr(db, "path", None) for name, db in datasette.databases.items()}
