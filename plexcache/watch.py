"""The live cache: follow Plex's change notifications (``plexcache watch``).

``Watcher(db_path, config).run()`` keeps the cache live until ``stop()`` (or
Ctrl-C):

1. It connects to ``/:/websockets/notifications`` (what Plex Web, plexapi,
   Tautulli and Music Assistant listen to) with the token in the
   ``X-Plex-Token`` header, never in the URL, and runs an incremental sync.
2. Announcements (``parse``: ``NotificationContainer`` messages of type
   ``timeline``, ``activity`` and ``playing``) gather in ``Pending``. After a
   short quiet period (``quiet``; at most ``max_wait`` while they keep
   coming) they are applied as one live sync, ``sync(changes=...)``: the same
   staging, lock, one-transaction apply and ``sync_runs`` row as any sync,
   mode ``live``, trigger ``watch``. A sync holding the lock makes them wait.
3. A library scan that ends (``library.update.section``) leads to an
   incremental sync ``scan_settle`` seconds after the last one (at most
   ``scan_settle_max`` after the first), for whatever the item messages
   missed.
4. Every (re)connect leads to an incremental sync: changes made while
   disconnected were never announced. Reconnects back off exponentially,
   capped, with jitter. While not connected, and on a server without the
   websocket (404, a proxy that strips upgrades: one warning line), an
   incremental sync runs every ``poll_interval`` seconds.
5. Malformed messages are logged and skipped.

What the watcher is doing is in the cache's ``watch_state`` table (one row,
``read_state``); ``<db>.watch.lock`` (an flock, dropped by the kernel when
the process dies) tells whether a watcher is running.

The websocket client is ``websockets`` (its threading client): a blocking
``recv`` a plain thread can own, keepalive pings that notice a dead server,
close codes, and ``InvalidStatus`` carrying the HTTP status of a refused
upgrade (how a server without the websocket is told from a broken one).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .config import PlexConfig
from .db import connect_readonly, open_cache
from .errors import (
    ConfigError,
    NoMusicSection,
    NotPlexServer,
    PlexAuthError,
    PlexcacheError,
    SyncAlreadyRunning,
)
from .lock import SyncLock, is_locked
from .sync import LiveChanges, SyncResult, sync
from .timeutil import utc_now_iso

__all__ = [
    "Watcher",
    "WatchOptions",
    "Notice",
    "Malformed",
    "parse",
    "read_state",
    "watcher_running",
]

log = logging.getLogger("plexcache.watch")

NOTIFY_PATH = "/:/websockets/notifications"
LIBRARY = "com.plexapp.plugins.library"
MUSIC_TYPES = {8: "artist", 9: "album", 10: "track"}
REREAD_STATES = {0, 5}  # created, processed (edits and ratings report 5 too)
DELETED_STATE = 9
SCAN, REFRESH = "library.update.section", "library.refresh.items"
# Errors a sync at start cannot get past by waiting: the watcher stops with them.
FATAL = (ConfigError, PlexAuthError, NotPlexServer, NoMusicSection)


@dataclass
class WatchOptions:
    "How the watcher paces itself (seconds unless said otherwise)"

    quiet: float = 0.25  # announcements are applied once none came for this long...
    max_wait: float = 2.0  # ...or this long after the first of them
    max_batch: int = 5000  # keys per live sync
    scan_settle: float = 10.0  # incremental sync this long after the last scan ended...
    scan_settle_max: float = 60.0  # ...and at most this long after the first
    poll_interval: float = 60.0  # incremental sync this often while not connected
    resync_interval: float = 3600.0  # and this often while connected, for anything never announced
    backoff_initial: float = 1.0  # reconnect delays: exponential from here...
    backoff_max: float = 60.0  # ...capped here, with jitter
    stable_after: float = 30.0  # a connection up this long resets the backoff
    retry_websocket: float = 600.0  # a server without the websocket is asked again this often
    ping_interval: float = 20.0  # keepalive pings (a dead server is noticed within 2x this)
    open_timeout: float = 10.0
    lock_wait: float = 0.5  # a sync holds the lock: try again this much later
    state_interval: float = 1.0  # the last-event time is written at most this often
    parent_pid: int | None = None  # stop when this process (e.g. `plexcache serve`) is gone
    wait_for_first_sync: bool = (
        False  # start once someone else filled the cache (the web's first load)
    )


# ---- messages -------------------------------------------------------------------------


class Malformed(ValueError):
    "A notification that is not what PMS sends; the message says what is wrong"


@dataclass
class Notice:
    "What one notification asks of the cache"

    changed: dict[str, str] = field(default_factory=dict)  # key -> track | album | artist | item
    deleted: set[str] = field(default_factory=set)
    sections: set[int] = field(default_factory=set)
    scan_ended: bool = False
    played: set[str] = field(default_factory=set)  # plays that stopped (also in ``changed``)

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.scan_ended)


def _key(value) -> str | None:
    "A rating key from a string or an integer id; None when it is neither"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value))
    return None


def _entries(container: dict, name: str) -> list:
    entries = container.get(name)
    if isinstance(entries, dict):  # a single entry not wrapped in a list
        return [entries]
    if not isinstance(entries, list):
        raise Malformed(f"{container.get('type')} notification without a {name} list")
    return entries


def parse(message: str | bytes) -> Notice:
    """What a notification asks for; ``Malformed`` when it is not a notification.

    - ``timeline`` entries of the library for types 8, 9, 10 (artist, album,
      track): states 0 (created) and 5 (processed: additions, edits,
      ratings) re-read the item, state 9 removes it; other states are
      steps on the way to 5 and need nothing;
    - ``activity`` ``ended``: a scan (``library.update.section``) asks for an
      incremental sync, a refresh (``library.refresh.items``) re-reads the
      item its ``Context.key`` names;
    - ``playing`` ``stopped``: re-reads the played item (its play count).

    Other types (``status``, ``progress``, ``reachability``...) ask nothing.
    """
    if isinstance(message, bytes):
        raise Malformed("a binary frame")
    try:
        data = json.loads(message)
    except ValueError:
        raise Malformed("not JSON") from None
    container = data.get("NotificationContainer") if isinstance(data, dict) else None
    if not isinstance(container, dict):
        raise Malformed("no NotificationContainer")
    kind = container.get("type")
    notice = Notice()
    if kind == "timeline":
        for entry in _entries(container, "TimelineEntry"):
            _timeline(entry, notice)
    elif kind == "activity":
        for entry in _entries(container, "ActivityNotification"):
            _activity(entry, notice)
    elif kind == "playing":
        for entry in _entries(container, "PlaySessionStateNotification"):
            if not isinstance(entry, dict):
                raise Malformed("a playing entry that is not an object")
            key = _key(entry.get("ratingKey"))
            if entry.get("state") == "stopped" and key:
                notice.changed.setdefault(key, "item")
                notice.played.add(key)
    elif not isinstance(kind, str):
        raise Malformed("a notification without a type")
    return notice


def _timeline(entry, notice: Notice) -> None:
    if not isinstance(entry, dict):
        raise Malformed("a timeline entry that is not an object")
    if entry.get("identifier") != LIBRARY:
        if "identifier" not in entry:
            raise Malformed("a timeline entry without an identifier")
        return  # another provider's (e.g. DVR)
    kind = MUSIC_TYPES.get(_int(entry.get("type")))
    if kind is None:
        if "type" not in entry:
            raise Malformed("a timeline entry without a type")
        return  # not music (movies, photos, playlists)
    key = _key(entry.get("itemID"))
    state = _int(entry.get("state"))
    if key is None or state is None:
        raise Malformed("a timeline entry without a valid itemID and state")
    section = _int(entry.get("sectionID"))
    if section is not None and section > 0:
        notice.sections.add(section)
    if state == DELETED_STATE:
        notice.deleted.add(key)
        notice.changed.pop(key, None)
    elif state in REREAD_STATES:
        notice.changed[key] = kind


def _activity(entry, notice: Notice) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("Activity"), dict):
        raise Malformed("an activity without an Activity object")
    if entry.get("event") != "ended":
        return
    activity = entry["Activity"]
    context = activity.get("Context") if isinstance(activity.get("Context"), dict) else {}
    if activity.get("type") == SCAN:
        notice.scan_ended = True
    elif activity.get("type") == REFRESH:
        path = context.get("key")
        if isinstance(path, str) and path.startswith("/library/metadata/"):
            key = _key(path.rsplit("/", 1)[1])
            if key:
                notice.changed.setdefault(key, "item")


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


# ---- what is waiting to be applied ---------------------------------------------------------


class Pending:
    "Announced keys not applied yet, with when the first and the last came (not thread-safe)"

    def __init__(self):
        self.changed: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.sections: set[int] = set()
        self.played: set[str] = set()
        self.first: float | None = None
        self.last: float | None = None

    def __len__(self) -> int:
        return len(self.changed) + len(self.deleted)

    def add(self, notice: Notice, now: float) -> None:
        if not (notice.changed or notice.deleted):
            return
        for key, kind in notice.changed.items():
            if key in self.deleted:
                continue
            if self.changed.get(key, "item") == "item":  # a known type beats "item"
                self.changed[key] = kind
        for key in notice.deleted:
            self.changed.pop(key, None)
            self.deleted.add(key)
        self.sections |= notice.sections
        self.played |= notice.played
        self.first = self.first if self.first is not None else now
        self.last = now

    def take(self, limit: int) -> LiveChanges | None:
        "Up to ``limit`` keys as ``LiveChanges`` (deletions first), removed from here"
        if not len(self):
            return None
        deleted = sorted(self.deleted)[:limit]
        changed = list(self.changed.items())[: max(0, limit - len(deleted))]
        for key in deleted:
            self.deleted.discard(key)
        for key, _ in changed:
            del self.changed[key]
        by_kind: dict[str, set[str]] = {
            "track": set(),
            "album": set(),
            "artist": set(),
            "item": set(),
        }
        for key, kind in changed:
            by_kind[kind].add(key)
        changes = LiveChanges(
            tracks=frozenset(by_kind["track"]),
            albums=frozenset(by_kind["album"]),
            artists=frozenset(by_kind["artist"]),
            items=frozenset(by_kind["item"]),
            deleted=frozenset(deleted),
            sections=frozenset(self.sections),
            played=frozenset(k for k, _ in changed if k in self.played),
        )
        self.played -= changes.played
        if not len(self):
            self.sections = set()
            self.played = set()
            self.first = self.last = None
        return changes

    def put_back(self, changes: LiveChanges, now: float) -> None:
        "Keys of a live sync that did not happen (announcements since then win)"
        changed = {k: "track" for k in changes.tracks}
        changed |= {k: "album" for k in changes.albums} | {k: "artist" for k in changes.artists}
        changed |= {k: "item" for k in changes.items}
        for key, kind in changed.items():
            if key not in self.deleted:
                self.changed.setdefault(key, kind)
        self.deleted |= {k for k in changes.deleted if k not in self.changed}
        self.sections |= changes.sections
        self.played |= changes.played
        self.first = min(self.first, now) if self.first is not None else now
        self.last = self.last if self.last is not None else now

    def clear(self) -> None:
        self.__init__()


class Backoff:
    """Reconnect delays: doubling from ``initial`` up to ``cap``, each one
    drawn from its upper half (so many clients restarted together spread out)"""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None):
        self.initial, self.cap = initial, cap
        self.attempt = 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.initial * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return delay / 2 + self.rng.uniform(0, delay / 2)

    def reset(self) -> None:
        self.attempt = 0


# ---- the watcher's state in the cache --------------------------------------------------------


def watch_lock(db_path) -> SyncLock:
    "The lock a running watcher holds: ``<db>.watch.lock``"
    return SyncLock(f"{os.fspath(db_path)}.watch")


def watcher_running(db_path) -> bool:
    return is_locked(f"{os.fspath(db_path)}.watch")


class StateRecorder:
    """Writes the ``watch_state`` row (its own connection, short waits: a
    write that finds the cache busy is left for the next one)"""

    def __init__(self, db_path):
        self.conn = sqlite3.connect(
            db_path, timeout=1.0, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("pragma busy_timeout = 1000")
        self.lock = threading.Lock()
        now = utc_now_iso()
        self.values = {"state": "starting", "since": now, "detail": None, "last_event_at": None,
                       "last_change_at": None, "events": 0, "pid": os.getpid(), "started_at": now}  # fmt: skip
        self.dirty = True
        self.written = 0.0

    def set(self, state: str, detail: str | None = None) -> None:
        with self.lock:
            if state != self.values["state"] or detail != self.values["detail"]:
                self.values.update(state=state, since=utc_now_iso(), detail=detail)
                self.dirty = True
        self.flush()

    def event(self, interval: float) -> None:
        with self.lock:
            self.values["events"] += 1
            self.values["last_event_at"] = utc_now_iso()
            self.dirty = True
            due = time.monotonic() - self.written >= interval
        if due:
            self.flush()

    def changed(self) -> None:
        with self.lock:
            self.values["last_change_at"] = utc_now_iso()
            self.dirty = True
        self.flush()

    @property
    def state(self) -> str:
        return self.values["state"]

    def flush(self) -> None:
        with self.lock:
            if not self.dirty:
                return
            v = dict(self.values)
            names = ", ".join(v)
            try:
                self.conn.execute(
                    f"insert into watch_state (id, {names}) values (1, {', '.join(':' + n for n in v)}) "
                    f"on conflict(id) do update set {', '.join(f'{n} = excluded.{n}' for n in v)}",
                    v,
                )
                self.dirty = False
                self.written = time.monotonic()
            except sqlite3.Error as e:
                log.debug("could not record the watcher's state: %s", e)

    def close(self) -> None:
        self.conn.close()


def read_state(db_path) -> dict | None:
    """The watcher's row of ``watch_state`` (None when no watcher ever ran
    here), with ``running``: whether its process is alive. A watcher that
    died without saying so shows as ``stopped``."""
    if not Path(db_path).exists():
        return None
    try:
        conn = connect_readonly(db_path, timeout=2.0)
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("select * from watch_state where id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    state = {k: row[k] for k in row.keys() if k != "id"}
    state["running"] = watcher_running(db_path)
    if not state["running"]:
        state["state"] = "stopped"
    return state


# ---- the watcher ------------------------------------------------------------------------------


def notification_url(base_url: str) -> str:
    "ws(s)://host:port/:/websockets/notifications for an http(s) server URL (never with a token)"
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :].rstrip("/") + NOTIFY_PATH
    return "ws://" + base_url.removeprefix("http://").rstrip("/") + NOTIFY_PATH


def _ws_logger(config: PlexConfig) -> logging.Logger:
    """The logger handed to ``websockets``: at DEBUG it logs every handshake
    header, the token included, so it never logs below INFO, and a filter
    strips tokens from what it does log"""
    logger = logging.getLogger("plexcache.watch.websocket")
    logger.setLevel(logging.INFO)
    if not any(isinstance(f, _Redact) for f in logger.filters):
        logger.addFilter(_Redact())
    if config.token:
        _Redact.tokens.add(config.token)
    return logger


class _Redact(logging.Filter):
    tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for token in list(self.tokens):
            text = PlexConfig(url=None, token=token).redact(text)
        record.msg, record.args = text, ()
        return True


class Watcher:
    """Keeps the cache at ``db_path`` live from ``config``'s server until ``stop()``.

    ``on_sync(result, reason)`` is called after each sync it runs (reason:
    ``live``, ``start``, ``connect``, ``scan``, ``poll``). Raises
    ``PlexcacheError`` subclasses only for what waiting cannot fix: another
    watcher on this cache, no server configured, and (on the first sync) a
    refused token, a URL that is no Plex server, no music library."""

    def __init__(
        self,
        db_path,
        config: PlexConfig,
        options: WatchOptions | None = None,
        *,
        on_sync: Callable[[SyncResult, str], None] | None = None,
    ):
        if not config.configured:
            raise ConfigError(
                "no Plex server configured: pass --url/--token or set PLEX_URL and PLEX_TOKEN"
            )
        self.db_path = Path(db_path)
        self.config = config
        self.options = options or WatchOptions()
        self.on_sync = on_sync
        self.url = notification_url(config.url)
        self.pending = Pending()
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.first_attempt = threading.Event()
        self.sync_wanted: str | None = None  # why an incremental sync is due
        self.sync_not_before = 0.0
        self.apply_not_before = 0.0
        self.scan_first: float | None = None
        self.scan_due: float | None = None
        self.connected = False
        self.connected_after: int | None = None  # the newest sync_runs id when we connected
        self.next_poll: float | None = None
        self.failures = 0
        self.malformed = 0
        self.synced_once = False
        self.busy = False  # a sync is running
        self.requests = 0  # HTTP requests made by the watcher's syncs
        self.live_syncs = 0
        self.state: StateRecorder | None = None
        self._ws = None
        self._listener: threading.Thread | None = None
        self._warned_unsupported = False
        self._malformed_logged = 0.0

    # -- running

    def run(self) -> None:
        "Watch until ``stop()``; KeyboardInterrupt (Ctrl-C, SIGTERM in the CLI) also ends it, re-raised"
        lock = watch_lock(self.db_path)
        try:
            lock.acquire(timeout=0)
        except SyncAlreadyRunning:
            raise PlexcacheError(
                f"another plexcache watch is already following {self.db_path}"
            ) from None
        try:
            open_cache(self.db_path).close()  # the cache and its watch_state table exist
            self.state = StateRecorder(self.db_path)
            self.state.set("starting")
            self._listener = threading.Thread(
                target=self._listen, name="plexcache-watch-listener", daemon=True
            )
            self._listener.start()
            # The first sync starts after the first connect (when there is
            # one), so it covers everything announced before it.
            self.first_attempt.wait(min(self.options.open_timeout, 5.0))
            if self.options.wait_for_first_sync:
                if not self._wait_for_first_sync():
                    return
            else:
                with self.cond:
                    self.sync_wanted = "start"
            self._loop()
        finally:
            self.stop()
            if self._listener is not None:
                self._listener.join(timeout=5)
            if self.state is not None:
                self.state.set("stopped")
                self.state.close()
            lock.release()

    @property
    def idle(self) -> bool:
        "Nothing announced is waiting, and no sync is due or running"
        with self.cond:
            return not (
                len(self.pending) or self.sync_wanted or self.scan_due is not None or self.busy
            )

    def stop(self) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass

    def _wait_for_first_sync(self) -> bool:
        """Until the cache holds a successful sync (the web's first load makes
        it). One that started after we connected covers the connect: no sync
        of our own then. False when stopped first."""
        while not self.stopping.is_set() and not self._parent_gone():
            last = self._last_run_id(succeeded=True)
            if last is not None:
                with self.cond:
                    covered = self.connected_after is not None and last > self.connected_after
                    if covered and self.sync_wanted == "connect":
                        self.sync_wanted = None
                    elif not covered:
                        self.sync_wanted = "start"
                    self.synced_once = True
                return True
            if not is_locked(self.db_path):
                # an empty cache has nothing to keep live; while a sync runs,
                # what is announced may come after its listing: kept
                with self.cond:
                    self.pending.clear()
            self.stopping.wait(0.5)
        return False

    def _last_run_id(self, succeeded: bool = False) -> int | None:
        "The newest ``sync_runs`` id (of a succeeded run); ids grow as runs start"
        try:
            conn = connect_readonly(self.db_path)
            try:
                where = "where status = 'succeeded'" if succeeded else ""
                row = conn.execute(f"select max(id) from sync_runs {where}").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def _parent_gone(self) -> bool:
        return self.options.parent_pid is not None and os.getppid() != self.options.parent_pid

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if self._parent_gone():
                log.info("the process that started the watcher is gone; stopping")
                return
            with self.cond:
                action, wait = self._next(time.monotonic())
                if action is None:
                    if self.options.parent_pid is not None:
                        wait = 1.0 if wait is None else min(wait, 1.0)
                    self.cond.wait(wait)
                    continue
                self.busy = True
            try:
                action()
            finally:
                with self.cond:
                    self.busy = False

    def _next(self, now: float):
        "(what to do now, or None and how long to wait); call under ``cond``"
        o = self.options
        deadlines = []
        if self.sync_wanted:
            if now >= self.sync_not_before:
                return self._sync, 0
            deadlines.append(self.sync_not_before)
        if len(self.pending):
            due = max(
                min(self.pending.last + o.quiet, self.pending.first + o.max_wait),
                self.apply_not_before,
            )
            if now >= due:
                return self._apply, 0
            deadlines.append(due)
        if self.scan_due is not None:
            if now >= self.scan_due:
                self.sync_wanted = "scan"
                return self._sync, 0
            deadlines.append(self.scan_due)
        if self.synced_once:
            if self.next_poll is None:
                self.next_poll = now + (o.resync_interval if self.connected else o.poll_interval)
            if now >= self.next_poll:
                self.sync_wanted = "poll"
                return self._sync, 0
            deadlines.append(self.next_poll)
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        return None, wait

    def _sync(self) -> None:
        "An incremental sync; what was announced before it started is covered by it"
        with self.cond:
            reason, self.sync_wanted = self.sync_wanted or "poll", None
            self.scan_due = self.scan_first = None
            self.next_poll = None
            taken = self.pending.take(10**9)
        try:
            result = sync(self.db_path, self.config, trigger="watch")
        except SyncAlreadyRunning:
            self._retry(taken, reason, self.options.lock_wait)
            return
        except FATAL as e:
            if not self.synced_once:
                raise
            self._failed(taken, reason, e)
            return
        except PlexcacheError as e:
            self._failed(taken, reason, e)
            return
        self.failures = 0
        self.synced_once = True
        self._done(result, reason)

    def _apply(self) -> None:
        "A live sync of the announced keys"
        with self.cond:
            changes = self.pending.take(self.options.max_batch)
        if changes is None:
            return
        try:
            result = sync(self.db_path, self.config, trigger="watch", changes=changes)
        except SyncAlreadyRunning:
            with self.cond:
                self.pending.put_back(changes, time.monotonic())
                self.apply_not_before = time.monotonic() + self.options.lock_wait
            return
        except PlexcacheError as e:
            # Keep the keys and ask for an incremental sync, which covers them.
            self._failed(changes, "live", e)
            return
        self.failures = 0
        self.live_syncs += 1
        if self.state is not None:
            self.state.changed()
        self._done(result, "live")

    def _done(self, result: SyncResult, reason: str) -> None:
        self.requests += result.requests
        if reason == "live":
            log.info(
                "Live: %d added, %d updated, %d removed (%d requests, %d ms)",
                result.added, result.updated, result.removed, result.requests, result.duration_ms,
            )  # fmt: skip
        else:
            log.info("%s (%s)", result.summary(), _REASONS.get(reason, reason))
        for warning in result.warnings:
            log.warning("%s", warning)
        if self.on_sync is not None:
            self.on_sync(result, reason)

    def _retry(self, taken: LiveChanges | None, reason: str, delay: float) -> None:
        with self.cond:
            if taken is not None:
                self.pending.put_back(taken, time.monotonic())
            self.sync_wanted = self.sync_wanted or reason
            self.sync_not_before = time.monotonic() + delay

    def _failed(self, taken: LiveChanges | None, reason: str, error: PlexcacheError) -> None:
        self.failures += 1
        delay = min(
            self.options.backoff_max, self.options.backoff_initial * 2 ** min(self.failures - 1, 16)
        )
        log.warning("%s; trying again in %.0f s", self.config.redact(str(error)), delay)
        self._retry(taken, "retry" if reason == "live" else reason, delay)

    # -- the websocket (listener thread)

    def _listen(self) -> None:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        o = self.options
        backoff = Backoff(o.backoff_initial, o.backoff_max)
        headers = {"X-Plex-Token": self.config.token or "", "X-Plex-Product": "plexcache",
                   "X-Plex-Version": __version__}  # fmt: skip
        logger = _ws_logger(self.config)
        while not self.stopping.is_set():
            self.state.set("connecting")
            session = _Session()
            try:
                with connect(
                    self.url,
                    additional_headers=headers,
                    user_agent_header=f"plexcache/{__version__}",
                    open_timeout=o.open_timeout,
                    ping_interval=o.ping_interval,
                    ping_timeout=o.ping_interval,
                    close_timeout=2,
                    max_size=4 * 1024 * 1024,
                    max_queue=None,  # drained at once into Pending (bounded by distinct keys)
                    logger=logger,
                ) as ws:
                    self._receive(ws, session)
            except InvalidStatus as e:
                status = e.response.status_code
                if status in (429, 500, 502, 503, 504):
                    self._disconnected(
                        f"Plex answered HTTP {status} to the notification websocket", backoff
                    )
                else:
                    self._unsupported(f"HTTP {status}")
                continue
            except (OSError, TimeoutError) as e:
                if session.started is None:
                    self._disconnected(
                        f"cannot reach Plex at {self.config.url}: {_reason(e)}", backoff
                    )
                    continue
                session.why = f"notification websocket failed: {_reason(e)}"
            except WebSocketException as e:
                if session.started is None:  # e.g. a proxy that answers without upgrading
                    self._unsupported(self.config.redact(str(e)) or type(e).__name__)
                    continue
                session.why = f"notification websocket failed: {self.config.redact(str(e)) or type(e).__name__}"
            if session.started is not None and time.monotonic() - session.started >= o.stable_after:
                backoff.reset()
            if not self.stopping.is_set():
                self._disconnected(session.why, backoff)

    def _receive(self, ws, session: _Session) -> None:
        "Read messages until the connection ends (``session.why`` says how)"
        from websockets.exceptions import ConnectionClosed

        session.started = time.monotonic()
        self._ws = ws
        try:
            if self.stopping.is_set():
                return
            self._connected()
            while not self.stopping.is_set():
                self._on_message(ws.recv())
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else 1006
            session.why = f"Plex closed the notification websocket (code {code})"
        except (OSError, TimeoutError, ValueError, KeyError, TypeError, sqlite3.Error) as e:
            # the listener must outlive any one bad moment: reconnect and sync
            session.why = (
                f"notification websocket failed: {self.config.redact(str(e)) or type(e).__name__}"
            )
        finally:
            self._ws = None

    def _connected(self) -> None:
        log.info("Listening to Plex notifications at %s", self.url)
        newest = self._last_run_id() or 0  # runs numbered above it started after we listened
        with self.cond:
            self.connected = True
            self.connected_after = newest
            self.next_poll = None  # the connect's sync starts the hour
            # Changes made while we were not listening were never announced.
            self.sync_wanted = self.sync_wanted or "connect"
            self.cond.notify_all()
        self.first_attempt.set()
        self.state.set("connected")

    def _disconnected(self, why: str, backoff: Backoff) -> None:
        with self.cond:
            self.connected = False
            self.next_poll = None  # polls from now on
            self.cond.notify_all()
        self.first_attempt.set()
        delay = backoff.next()
        log.info("%s; reconnecting in %.1f s", why, delay)
        self.state.set("disconnected", why)
        self.stopping.wait(delay)

    def _unsupported(self, why: str) -> None:
        message = (
            f"Plex at {self.config.url} offers no notification websocket ({why}); "
            f"checking for changes every {self.options.poll_interval:g} s instead"
        )
        if not self._warned_unsupported:
            log.warning("%s", message)
            self._warned_unsupported = True
        with self.cond:
            self.connected = False
            self.next_poll = None
            self.cond.notify_all()
        self.first_attempt.set()
        self.state.set("polling", message)
        self.stopping.wait(self.options.retry_websocket)

    def _on_message(self, message) -> None:
        try:
            notice = parse(message)
        except Malformed as e:
            self.malformed += 1
            now = time.monotonic()
            if now - self._malformed_logged >= 10:  # one line per 10 s, whatever the flood
                self._malformed_logged = now
                log.warning("skipped a malformed notification from Plex: %s", e)
            return
        self.state.event(self.options.state_interval)
        if not notice:
            return
        now = time.monotonic()
        with self.cond:
            self.pending.add(notice, now)
            if notice.scan_ended:
                o = self.options
                self.scan_first = self.scan_first if self.scan_first is not None else now
                self.scan_due = min(now + o.scan_settle, self.scan_first + o.scan_settle_max)
            self.cond.notify_all()


@dataclass
class _Session:
    "One connection: when it opened (None: the handshake failed) and why it ended"

    started: float | None = None
    why: str = "the connection closed"


_REASONS = {
    "start": "at start",
    "connect": "after connecting: changes made meanwhile were never announced",
    "scan": "a library scan ended",
    "poll": "periodic check",
    "retry": "after a failed live update",
}


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text
