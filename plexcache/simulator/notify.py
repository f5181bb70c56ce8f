"""The notification websocket of the simulated PMS (``/:/websockets/notifications``).

The HTTP server hands an upgrade request's socket to ``Notifier.serve``; wsproto (sans-IO) does
the protocol: the handshake from the request the HTTP server already parsed, frames, pings,
close. Every mutation of the simulator publishes the messages a real PMS sends for it
(``NotificationContainer`` JSON: ``timeline``, ``activity``, ``playing``); the admin API can
drop, delay, reorder or corrupt them, or turn the endpoint off. Evidence: docs/simulator.md,
"Notifications".
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections import Counter
from random import Random

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

WS_PATHS = ("/:/websockets/notifications", "/:/websocket/notifications")
LIBRARY = "com.plexapp.plugins.library"
TYPE_IDS = {"artist": 8, "album": 9, "track": 10}
CREATED, PROCESSED, DELETED = 0, 5, 9
MALFORMED = {
    "not_json": "{\"NotificationContainer\": {\"type\": \"timeline\", ",
    "unknown_type": json.dumps({"NotificationContainer": {"type": "plexcache.unknown", "size": 1,
                                                          "UnknownNotification": [{"x": 1}]}}),
    "missing_fields": json.dumps({"NotificationContainer": {"type": "timeline", "size": 1,
                                                            "TimelineEntry": [{"identifier": LIBRARY}]}}),
    "no_container": json.dumps({"type": "timeline"}),
    "wrong_types": json.dumps({"NotificationContainer": {"type": "timeline", "size": "x",
                                                         "TimelineEntry": {"itemID": None, "state": "five"}}}),
    "binary": b"\x00\xffnot text",
}  # fmt: skip


def _parse_filters(value: str | None):
    "(include set or None, exclude set): the spec's filters= rule, default -log"
    if value is None:
        value = "-log"
    value = value.strip()
    if not value:
        return None, set()
    if value.startswith("-"):
        return None, {v for v in value[1:].split(",") if v}
    return {v for v in value.split(",") if v}, set()


class _Conn:
    "One websocket client: the handler thread reads, a sender thread writes queued messages and pings"

    def __init__(self, notifier: Notifier, sock, ws: WSConnection, filters):
        self.notifier = notifier
        self.sock = sock
        self.ws = ws
        self.include, self.exclude = filters
        self.q: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._sender, daemon=True, name="plex-sim-ws-sender")

    def wants(self, kind: str | None) -> bool:
        if kind is None:
            return True
        if self.include is not None:
            return kind in self.include
        return kind not in self.exclude

    def send(self, event) -> bool:
        with self.lock:
            if self.closed.is_set():
                return False
            try:
                self.sock.sendall(self.ws.send(event))
                return True
            except (OSError, LocalProtocolError):
                self.closed.set()
                return False

    def _sender(self):
        while not self.closed.is_set():
            interval = self.notifier.ping_interval
            try:
                item = self.q.get(timeout=interval if interval and interval > 0 else None)
            except queue.Empty:
                if self.send(Ping(payload=b"")):
                    self.notifier._count("ping")
                continue
            if item is None:
                return
            due, kind, payload = item
            wait = due - time.monotonic()
            if wait > 0 and self.closed.wait(wait):
                return
            ev = (
                BytesMessage(data=payload)
                if isinstance(payload, bytes)
                else TextMessage(data=payload)
            )
            if self.send(ev):
                self.notifier._count("frames")

    def close(self, code: int | None = None):
        "code: send a close frame first (1001 going away); None: hang up without one"
        if code is not None:
            self.send(CloseConnection(code=code))
        self.closed.set()
        self.q.put(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Notifier:
    """Publishes PMS notifications to every connected websocket client.

    Controls (also over ``POST /__sim__/notify``): ``enabled`` (off: the upgrade answers 404, as
    an older PMS or a proxy that strips upgrades), ``delay`` seconds before each message,
    ``reorder(n)`` (the next n messages go out in reverse order), ``drop(close_code=None)``,
    ``malformed(kind)``, ``ids`` ("str", "int" or "mixed": how ids are written), ``timeline_batch``
    (entries per timeline message), ``ping_interval`` (seconds of silence before a ping frame)."""

    def __init__(self, sim, enabled: bool = True, ping_interval: float = 10.0, ids: str = "str",
                 timeline_batch: int = 1):  # fmt: skip
        self.sim = sim
        self.enabled = enabled
        self.ping_interval = ping_interval
        self.delay = 0.0
        self.ids = ids
        self.timeline_batch = max(1, int(timeline_batch))
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._held: list = []
        self._reorder = 0
        self._counts: Counter = Counter()
        self._seq = 0
        self._session = 0
        self._rng = Random(f"notify-{sim.library.seed}")

    # -- bookkeeping

    def _count(self, what: str, n: int = 1):
        with self._lock:
            self._counts[what] += n

    def stats(self) -> dict:
        with self._lock:
            c = dict(self._counts)
            return {"enabled": self.enabled, "connections": len(self._conns), "connects": c.pop("connects", 0),
                    "published": {k[4:]: v for k, v in c.items() if k.startswith("pub:")},
                    "messages": sum(v for k, v in c.items() if k.startswith("pub:")),
                    "frames_sent": c.get("frames", 0), "pings_sent": c.get("ping", 0), "delay": self.delay,
                    "held": len(self._held), "queued": sum(conn.q.qsize() for conn in self._conns),
                    "ids": self.ids, "timeline_batch": self.timeline_batch,
                    "ping_interval": self.ping_interval}  # fmt: skip

    def reset_stats(self):
        with self._lock:
            self._counts.clear()

    # -- publishing

    def publish(self, kind: str, body_key: str, items: list) -> None:
        "one NotificationContainer message of the given type"
        container = {"type": kind, "size": len(items), body_key: items}
        self._dispatch(
            kind, json.dumps({"NotificationContainer": container}, separators=(",", ":"))
        )

    def _dispatch(self, kind: str | None, payload) -> None:
        with self._lock:
            self._counts[f"pub:{kind or 'malformed'}"] += 1
            if self._reorder > 0:
                self._held.append((kind, payload))
                if len(self._held) < self._reorder:
                    return
                batch, self._held, self._reorder = self._held[::-1], [], 0
            else:
                batch = [(kind, payload)]
            due = time.monotonic() + self.delay
            for conn in self._conns:
                for k, p in batch:
                    if conn.wants(k):
                        conn.q.put((due, k, p))

    def _id(self, value):
        mode = self.ids
        if mode == "mixed":
            mode = "int" if self._seq % 2 else "str"
        return int(value) if mode == "int" else str(value)

    def _entry(self, rec: dict, state: int, metadata_state: str | None = None) -> dict:
        self._seq += 1  # "mixed" ids alternate per entry
        t = rec["type"]
        e = {
            "identifier": LIBRARY,
            "sectionID": self._id(rec["librarySectionID"]),
            "itemID": self._id(rec["ratingKey"]),
        }
        if t == "track":
            e["parentItemID"] = self._id(rec["parentRatingKey"])
            e["rootItemID"] = self._id(rec["grandparentRatingKey"])
        elif t == "album":
            e["parentItemID"] = self._id(rec["parentRatingKey"])
            e["rootItemID"] = self._id(rec["parentRatingKey"])
        e["type"] = TYPE_IDS[t]
        e["title"] = rec["title"]
        e["state"] = state
        if metadata_state:
            e["metadataState"] = metadata_state
        e["updatedAt"] = rec.get("updatedAt") or self.sim.now()
        return e

    def timeline(self, entries: list[dict]) -> None:
        b = self.timeline_batch
        for i in range(0, len(entries), b):
            self.publish("timeline", "TimelineEntry", entries[i : i + b])

    def _activity(
        self,
        event: str,
        uuid: str,
        type_: str,
        title: str,
        subtitle: str,
        progress: int,
        context: dict,
    ):
        act = {"uuid": uuid, "type": type_, "cancellable": False, "userID": 1, "title": title, "subtitle": subtitle,
               "progress": progress, "Context": context}  # fmt: skip
        self.publish(
            "activity", "ActivityNotification", [{"event": event, "uuid": uuid, "Activity": act}]
        )

    def _uuid(self) -> str:
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # -- what a mutation announces (records as Library.track/album/artist return them)

    def scan(self, section_id: int, added: list[dict] = (), deleted: list[dict] = ()) -> None:
        """A library scan that found new items (state 0 created, then 5 processed) and/or removed
        ones (state 9 deleted), inside a library.update.section activity."""
        if not self._on():
            return
        sec = self.sim.library.section(section_id)
        uuid = self._uuid()
        title = f"Scanning {sec['title']}"
        ctx = {"librarySectionID": self._id(section_id)}
        self._activity("started", uuid, "library.update.section", title, "", 0, ctx)
        if added:
            self.timeline([self._entry(r, CREATED, "created") for r in added])
            self._activity(
                "updated", uuid, "library.update.section", title, added[-1]["title"], 50, ctx
            )
            self.timeline([self._entry(r, PROCESSED) for r in added])
        if deleted:
            self.timeline([self._entry(r, DELETED, "deleted") for r in deleted])
        self._activity("ended", uuid, "library.update.section", title, "", 100, ctx)

    def refreshed(self, rec: dict) -> None:
        "An edit: a library.refresh.items activity around a timeline state 5 for the item"
        if not self._on():
            return
        uuid = self._uuid()
        ctx = {
            "accessible": True,
            "analyzed": False,
            "exists": True,
            "key": rec["key"],
            "refreshed": True,
        }
        title = f"Refreshing {rec['title']}"
        self._activity("started", uuid, "library.refresh.items", title, "", 0, ctx)
        self.timeline([self._entry(rec, PROCESSED)])
        self._activity("ended", uuid, "library.refresh.items", title, "", 100, ctx)

    def changed(self, rec: dict) -> None:
        "A play-state change (rating): a timeline state 5, updatedAt unchanged"
        if self._on():
            self.timeline([self._entry(rec, PROCESSED)])

    def play_session(self) -> int:
        with self._lock:
            self._session += 1
            return self._session

    def play_state(
        self, session: int, rec: dict, device: dict | None, state: str, offset: int
    ) -> None:
        "A PlaySessionStateNotification: state playing, paused, stopped, buffering or error"
        if not self._on():
            return
        msg = {"sessionKey": str(session), "clientIdentifier": (device or {}).get("clientIdentifier", ""),
               "guid": "", "ratingKey": str(rec["ratingKey"]), "url": "", "key": rec["key"], "viewOffset": offset,
               "playQueueItemID": session, "state": state}  # fmt: skip
        self.publish("playing", "PlaySessionStateNotification", [msg])

    def _on(self) -> bool:
        "messages are built (and counted) only while notifications are on"
        return self.enabled

    # -- controls

    def malformed(self, kind: str = "not_json", text: str | None = None) -> None:
        if text is not None:
            payload = text
        elif kind in MALFORMED:
            payload = MALFORMED[kind]
        else:
            raise ValueError(
                f"unknown malformed kind {kind!r}; expected one of {sorted(MALFORMED)}"
            )
        self._dispatch(None, payload)

    def reorder(self, n: int) -> None:
        with self._lock:
            self._reorder = max(0, int(n))

    def drop(self, close_code: int | None = None) -> int:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close(close_code)
        return len(conns)

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if not on:
            self.drop(1001)

    def admin(self, data: dict) -> dict:
        "POST /__sim__/notify {op: drop|close|delay|reorder|malformed|enable|disable|configure|reset}"
        op = data.get("op")
        if op in ("drop", "close"):
            return dict(
                self.stats(),
                dropped=self.drop(None if op == "drop" else int(data.get("code", 1001))),
            )
        if op == "delay":
            self.delay = float(data.get("seconds", 0))
        elif op == "reorder":
            self.reorder(data.get("n", 2))
        elif op == "malformed":
            self.malformed(data.get("kind", "not_json"), data.get("text"))
        elif op in ("enable", "disable"):
            self.set_enabled(op == "enable")
        elif op == "configure":
            if "ids" in data:
                if data["ids"] not in ("str", "int", "mixed"):
                    raise ValueError("ids must be str, int or mixed")
                self.ids = data["ids"]
            if "timeline_batch" in data:
                self.timeline_batch = max(1, int(data["timeline_batch"]))
            if "ping_interval" in data:
                self.ping_interval = float(data["ping_interval"])
        elif op == "reset":
            self.reset_stats()
        else:
            raise ValueError(f"unknown notify op {op!r}; expected one of ['close', 'configure', 'delay', "
                             "'disable', 'drop', 'enable', 'malformed', 'reorder', 'reset']")  # fmt: skip
        return self.stats()

    # -- the websocket itself

    def serve(self, handler, params) -> bool:
        """Run the websocket on the handler's connection until it closes. False (nothing sent)
        when the request is no websocket handshake."""
        lines = [handler.requestline] + [f"{k}: {v}" for k, v in handler.headers.items()]
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            req = next((e for e in ws.events() if isinstance(e, Request)), None)
        except RemoteProtocolError:
            req = None
        if req is None:
            return False
        sock = handler.connection
        conn = _Conn(self, sock, ws, _parse_filters(dict(params).get("filters")))
        handler.close_connection = True
        if not conn.send(AcceptConnection()):
            return True
        with self._lock:
            self._conns.add(conn)
            self._counts["connects"] += 1
        conn.thread.start()
        try:
            self._read(handler, conn, ws)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()
        return True

    def _read(self, handler, conn: _Conn, ws: WSConnection) -> None:
        while not conn.closed.is_set():
            try:
                data = handler.rfile.read1(65536)
            except (OSError, ValueError):
                return
            if not data:
                return
            try:
                ws.receive_data(data)
                events = list(ws.events())
            except RemoteProtocolError:
                return
            for ev in events:
                if isinstance(ev, Ping):
                    conn.send(ev.response())
                elif isinstance(ev, CloseConnection):
                    conn.send(ev.response())
                    return
                # text or binary from the client is ignored (go-plex-client writes one every second)

    def close_all(self) -> None:
        self.drop(None)
