"""The HTTP side of the simulator: a PMS-shaped server on ``ThreadingHTTPServer`` (HTTP/1.1,
keep-alive), fault injection, request counters and the ``/__sim__`` admin endpoint."""

from __future__ import annotations

import base64
import email.utils
import gzip
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from . import history as H
from . import render as R
from .library import ALBUM, ARTIST, MOVIE, TRACK, TYPE_NAMES, Library, QueryError
from .notify import WS_PATHS, Notifier
from .profiles import CLASSIC, PROFILES, Profile, get_profile
from .truth import expected_cache

PMS_VERSION = PROFILES[CLASSIC].version  # classic's: captured from a real PMS 1.41.5 (§6)
BODY_401 = (
    b"<html><head><script>window.location = window.location.href.match(/(^.+\\/)[^\\/]*$/)[1] + "
    b"'web/index.html';</script><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
)
XML_CT = "text/xml;charset=utf-8"
JSON_CT = "application/json"
FAULT_KINDS = {"status", "drop", "stall", "truncate", "malformed", "body"}
# what writing to (or reading from) a client that went away raises
_HANGUPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def html_error(code: int) -> bytes:
    if code == 401:
        return BODY_401
    phrase = HTTPStatus(code).phrase
    return f"<html><head><title>{phrase}</title></head><body><h1>{code} {phrase}</h1></body></html>".encode()


class Fault:
    def __init__(self, kind, path=r".*", nth=1, times=1, status=500, retry_after=None, stall_seconds=None,
                 body=None):  # fmt: skip
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if kind == "status":
            HTTPStatus(int(status))  # only standard codes: plexapi crashes on unknown ones
        if kind == "stall" and stall_seconds is None:
            raise ValueError("stall needs stall_seconds")
        if kind == "body" and body is None:
            raise ValueError("body fault needs body")
        self.kind = kind
        self.path = path
        self.regex = re.compile(path)
        self.nth = max(1, int(nth))
        self.times = int(times)
        self.status = int(status)
        self.retry_after = retry_after
        self.stall_seconds = stall_seconds
        self.body = body.encode() if isinstance(body, str) else body
        self.seen = 0
        self.fired = 0

    def check(self, path: str) -> bool:
        "called for every request in order; True when this request must be hit"
        if self.fired >= self.times or not self.regex.search(path):
            return False
        self.seen += 1
        if self.seen >= self.nth:
            self.fired += 1
            return True
        return False

    def describe(self) -> dict:
        return {"kind": self.kind, "path": self.path, "nth": self.nth, "times": self.times, "status": self.status,
                "retry_after": self.retry_after, "stall_seconds": self.stall_seconds, "seen": self.seen,
                "fired": self.fired}  # fmt: skip


def categorize(path: str) -> str:
    p = path.rstrip("/") or "/"
    if p == "/":
        return "root"
    if p == "/identity":
        return "identity"
    if p == "/library":
        return "library"
    if p == "/library/sections":
        return "sections"
    m = re.fullmatch(r"/library/sections/[^/]+(/([^/]+))?", p)
    if m:
        sub = m.group(2)
        if sub is None:
            return "section"
        if sub in ("all", "collections"):
            return sub
        if sub == "albums":
            return "all"
        return "filter_choices"
    if re.fullmatch(r"/library/metadata/[^/]+/children", p):
        return "children"
    if re.fullmatch(r"/library/metadata/[^/]+", p):
        return "metadata"
    if p.startswith("/status/sessions/history/"):
        return "history"
    if p in ("/accounts", "/devices"):
        return p[1:]
    if p in WS_PATHS:
        return "notifications"
    return "other"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, sim):
        self.sim = sim
        self.open_sockets: set = set()
        self.sock_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self.sock_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.sock_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        "A client that hangs up (even between keep-alive requests) is no error: no traceback for it"
        if isinstance(sys.exc_info()[1], _HANGUPS):
            return
        super().handle_error(request, client_address)

    def close_all(self):
        with self.sock_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: without it every keep-alive response waits ~40 ms for
    # Nagle's algorithm and the client's delayed ACK; a real PMS does not.
    disable_nagle_algorithm = True
    server_version = "PlexMediaServer/" + PMS_VERSION
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def version_string(self):
        return "PlexMediaServer/" + self.server.sim.profile.version

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.server.sim.now(), usegmt=True)

    def do_GET(self):
        self._handle(head=False)

    def do_HEAD(self):
        self._handle(head=True)

    def do_POST(self):
        self._handle(head=False)

    def do_PUT(self):
        self._handle(head=False)

    def do_DELETE(self):
        self._handle(head=False)

    # -----------------------------------------------------------------------------------------

    def _handle(self, head: bool):
        sim = self.server.sim
        url = urlsplit(self.path)
        path = url.path
        params = parse_qsl(url.query, keep_blank_values=True)
        if path.startswith("/__sim__/"):
            return self._admin(path, params)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        fault = sim._record_request(path, self.path)
        if sim.latency_ms:
            time.sleep(sim.latency_ms / 1000)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault is not None and fault.kind == "stall":
            time.sleep(float(fault.stall_seconds))
        if fault is not None and fault.kind == "status":
            body = html_error(fault.status)
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._send(fault.status, body, "text/html", extra, head)
        if fault is not None and fault.kind == "body":
            return self._send(200, fault.body, XML_CT, {}, head, compress=False)
        if path in WS_PATHS and "websocket" in (self.headers.get("Upgrade") or "").lower():
            return self._websocket(params, head)
        try:
            status, body, ctype, extra = self._route(path, params)
        except QueryError:
            status, body, ctype, extra = 400, html_error(400), "text/html", {}
        except Exception:  # a simulator bug must look like a PMS 500, never a hang
            import traceback

            traceback.print_exc()
            status, body, ctype, extra = 500, html_error(500), "text/html", {}
        if fault is not None and fault.kind == "malformed":
            body = body[: max(1, len(body) // 2)] if body else b"<MediaContainer"
            return self._send(200, body, XML_CT, {}, head, compress=False)
        if fault is not None and fault.kind == "truncate":
            return self._send(status, body, ctype, extra, head, truncate=True, compress=False)
        return self._send(status, body, ctype, extra, head)

    def _send(self, status, body, ctype, extra, head, truncate=False, compress=True):
        try:
            self._send_response(status, body, ctype, extra, head, truncate, compress)
        except _HANGUPS:  # the client hung up mid-response (an aborted sync): nobody to answer
            self.close_connection = True

    def _send_response(self, status, body, ctype, extra, head, truncate, compress):
        sim = self.server.sim
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Plex-Protocol", "1.0")
        self.send_header("Cache-Control", "no-cache")
        for k, v in extra.items():
            self.send_header(k, v)
        if (compress and sim.gzip and len(body) > 1024 and "gzip" in (self.headers.get("Accept-Encoding") or "")
                and status == 200):  # fmt: skip
            original = len(body)
            body = gzip.compress(body, compresslevel=1, mtime=0)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("X-Plex-Content-Original-Length", str(original))
            self.send_header("X-Plex-Content-Compressed-Length", str(len(body)))
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("Connection", "close")
            self.close_connection = True
        if truncate:
            self.close_connection = True
        if head:
            body = b""
        elif truncate:
            body = body[: len(body) // 2]
        self._end_headers_with(body)
        if truncate and not head:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _end_headers_with(self, body: bytes) -> None:
        "end_headers() and the body in one write: one send() instead of two"
        if self.request_version != "HTTP/0.9" and hasattr(self, "_headers_buffer"):
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(body)
            data = b"".join(self._headers_buffer)
            self._headers_buffer = []
        else:
            data = body
        self.wfile.write(data)

    # -----------------------------------------------------------------------------------------

    def _token_ok(self, params) -> bool:
        return self._token_account(params) is not None

    def _token_account(self, params) -> int | None:
        "the account of the request's token: the owner's (1), a managed user's, or None (bad token)"
        token = self.headers.get("X-Plex-Token")
        if token is None:
            for k, v in params:
                if k == "X-Plex-Token":
                    token = v
        sim = self.server.sim
        if token == sim.token:
            return H.OWNER
        return sim.managed_tokens.get(token) if token is not None else None

    def _unauthorized(self):
        return 401, BODY_401, "text/html", {}

    _html_error = staticmethod(html_error)

    def _websocket(self, params, head):
        "the notification websocket: 401 before the upgrade on a bad token, 404 when turned off"
        notifier = self.server.sim.notify
        if not self._token_ok(params):
            return self._send(401, BODY_401, "text/html", {}, head)
        if not notifier.enabled:
            return self._send(404, html_error(404), "text/html", {}, head)
        if not notifier.serve(self, params):
            return self._send(400, html_error(400), "text/html", {}, head)

    def _wants_json(self) -> bool:
        return "application/json" in (self.headers.get("Accept") or "")

    def _paging(self, params) -> tuple[int | None, int | None]:
        qs = dict(params)
        start = qs.get("X-Plex-Container-Start", self.headers.get("X-Plex-Container-Start"))
        size = qs.get("X-Plex-Container-Size", self.headers.get("X-Plex-Container-Size"))
        try:
            start = int(start) if start not in (None, "") else None
            size = int(size) if size not in (None, "") else None
        except ValueError:
            raise QueryError("bad paging") from None
        if (start is not None and start < 0) or (size is not None and size < 0):
            raise QueryError("bad paging")
        return start, size

    def _out(self, root, item_key="Metadata", extra=None):
        if self._wants_json():
            return 200, R.to_json(root, item_key), JSON_CT, extra or {}
        return 200, R.to_xml(root), XML_CT, extra or {}

    def _not_found(self):
        return 404, html_error(404), "text/html", {}

    def _route(self, path, params):
        sim = self.server.sim
        lib: Library = sim.library
        live = H.route(self, path, params)  # history, accounts, devices
        if live is not None:
            return live
        if self.command not in ("GET", "HEAD"):
            # PMS write endpoints (scrobble, rate, refresh...) are not simulated
            if not self._token_ok(params):
                return 401, BODY_401, "text/html", {}
            return self._not_found()
        p = path.rstrip("/") or "/"
        if p == "/identity":
            root = ("MediaContainer", {"size": 0, "claimed": True, "machineIdentifier": sim.machine_identifier,
                                       "version": sim.profile.version}, [])  # fmt: skip
            return self._out(root)
        if not self._token_ok(params):
            return 401, BODY_401, "text/html", {}
        if p == "/":
            return self._out(self._root(), "Directory")
        if p == "/library":
            root = ("MediaContainer", {"size": 3, "allowSync": False, "art": "/:/resources/library-art.png",
                                       "content": "", "identifier": "com.plexapp.plugins.library",
                                       "mediaTagPrefix": R.MEDIA_TAG_PREFIX, "mediaTagVersion": R.MEDIA_TAG_VERSION,
                                       "title1": "Plex Library", "title2": ""},
                    [("Directory", {"key": "sections", "title": "Library Sections"}, []),
                     ("Directory", {"key": "recentlyAdded", "title": "Recently Added Content"}, []),
                     ("Directory", {"key": "onDeck", "title": "On Deck Content"}, [])])  # fmt: skip
            return self._out(root, "Directory")
        if p == "/library/sections":
            return self._out(self._sections(), "Directory")
        m = re.fullmatch(r"/library/sections/(\d+)(?:/([A-Za-z]+))?", p)
        if m:
            sec = lib.section(int(m.group(1)))
            if sec is None:
                return self._not_found()
            sub = m.group(2)
            if sub is None:
                return self._section_root(sec)
            if sub == "all":
                return self._all(sec, params)
            if sub == "albums" and sec["type"] == "artist":  # MusicSection.albums()
                return self._all(
                    sec, [("type", str(ALBUM))] + [p for p in params if p[0] != "type"]
                )
            if sub == "collections":
                return self._collections(sec, params)
            if sub in ("genre", "format", "subformat", "mood", "style", "country"):
                return self._choices(sec, sub, params)
            return self._not_found()
        m = re.fullmatch(r"/library/metadata/([^/]+)/children", p)
        if m:
            return self._children(m.group(1), params)
        m = re.fullmatch(r"/library/metadata/([^/]+)", p)
        if m:
            return self._metadata(m.group(1), params)
        return self._not_found()

    # -----------------------------------------------------------------------------------------

    def _root(self):
        sim = self.server.sim
        a = {
            "size": 5, "allowCameraUpload": False, "allowChannelAccess": True, "allowMediaDeletion": True,
            "allowSharing": True, "allowSync": True, "allowTuners": False, "apiVersion": "0.2.0",
            "backgroundProcessing": True, "certificate": False, "companionProxy": True, "countryCode": "fra",
            "diagnostics": "logs,databases,streaminglogs", "eventStream": True, "friendlyName": sim.friendly_name,
            "hubSearch": True, "itemClusters": True, "livetv": 7, "machineIdentifier": sim.machine_identifier,
            "mediaProviders": True, "multiuser": True, "musicAnalysis": 2, "myPlex": True,
            "myPlexMappingState": "mapped", "myPlexSigninState": "ok", "myPlexSubscription": False,
            "myPlexUsername": "plexcache@example.com", "offlineTranscode": 1,
            "ownerFeatures": "home,kevin-bacon,loudness,radio,sonic-analysis", "platform": "Linux",
            "platformVersion": "6.8.0-55-generic", "pluginHost": True, "pushNotifications": False,
            "readOnlyLibraries": False, "streamingBrainABRVersion": 3, "streamingBrainVersion": 2, "sync": True,
            "transcoderActiveVideoSessions": 0, "transcoderAudio": True, "transcoderLyrics": True,
            "transcoderPhoto": True, "transcoderSubtitles": True, "transcoderVideo": True,
            "transcoderVideoBitrates": "64,96,208,320,720,1500,2000,3000,4000,8000,10000,12000,20000",
            "transcoderVideoQualities": "0,1,2,3,4,5,6,7,8,9,10,11,12",
            "transcoderVideoResolutions": "128,128,160,240,320,480,768,720,720,1080,1080,1080,1080",
            "updatedAt": 1743847598, "updater": True, "version": sim.profile.version, "voiceSearch": True,
        }  # fmt: skip
        dirs = [("Directory", {"count": 1, "key": k, "title": k}, [])
                for k in ("activities", "butler", "channels", "library", "playlists")]  # fmt: skip
        return ("MediaContainer", a, dirs)

    def _sections(self):
        lib = self.server.sim.library
        dirs = []
        with lib.lock:
            secs = list(lib._sections.values())
            for s in secs:
                a = {
                    "allowSync": s["type"] == "artist", "art": s["art"],
                    "composite": f"/library/sections/{s['id']}/composite/{s['scannedAt']}", "filters": True,
                    "refreshing": False, "thumb": s["thumb"], "key": str(s["id"]), "type": s["type"],
                    "title": s["title"], "agent": s["agent"], "scanner": s["scanner"], "language": s["language"],
                    "uuid": s["uuid"], "updatedAt": s["updatedAt"], "createdAt": s["createdAt"],
                    "scannedAt": s["scannedAt"], "content": True, "directory": True,
                    "contentChangedAt": s["content_changed_at"], "hidden": 0,
                }  # fmt: skip
                a["hidden"] = False
                dirs.append(
                    (
                        "Directory",
                        a,
                        [("Location", {"id": s["location_id"], "path": s["location"]}, [])],
                    )
                )
        root = ("MediaContainer", {"size": len(dirs), "allowSync": False,
                                   "identifier": "com.plexapp.plugins.library", "mediaTagPrefix": R.MEDIA_TAG_PREFIX,
                                   "mediaTagVersion": R.MEDIA_TAG_VERSION, "title1": "Plex Library"}, dirs)  # fmt: skip
        return root

    def _section_root(self, sec):
        views = [("all", "All Artists" if sec["type"] == "artist" else "All Movies"), ("albums", "By Album"),
                 ("genre", "By Genre"), ("decade", "By Decade"), ("year", "By Year"),
                 ("recentlyAdded", "Recently Added"), ("folder", "By Folder")]  # fmt: skip
        dirs = [("Directory", {"key": k, "title": t}, []) for k, t in views]
        a = {"size": len(dirs), "allowSync": False, "art": sec["art"], "content": "secondary",
             "identifier": "com.plexapp.plugins.library", "librarySectionID": sec["id"],
             "mediaTagPrefix": R.MEDIA_TAG_PREFIX, "mediaTagVersion": R.MEDIA_TAG_VERSION, "thumb": sec["thumb"],
             "title1": sec["title"], "viewGroup": "secondary", "viewMode": 65592}  # fmt: skip
        return self._out(("MediaContainer", a, dirs), "Directory")

    def _opts(self, params, detail=False) -> R.Options:
        qs = {}
        for k, v in params:
            qs.setdefault(k, v)
        profile = self.server.sim.profile

        def csv(name):
            v = qs.get(name, "") if profile.honours_excludes else ""
            return [x.strip() for x in v.split(",") if x.strip()]

        return R.Options(include_guids=qs.get("includeGuids", "0") not in ("0", ""),
                         excl_elements=csv("excludeElements"), excl_fields=csv("excludeFields"), detail=detail,
                         profile=profile)  # fmt: skip

    def _size_attrs(self, n_items, total, start, paged):
        if paged:
            return {"size": n_items, "totalSize": total, "offset": start or 0}, {
                "X-Plex-Container-Start": str(start or 0),
                "X-Plex-Container-Total-Size": str(total),
            }
        return {"size": n_items}, {}

    def _all(self, sec, params):
        sim = self.server.sim
        lib = sim.library
        start, size = self._paging(params)
        if sim.strict and (size is None or size > 1000):
            return 400, html_error(400), "text/html", {}
        qs = dict(params)
        default_t = ARTIST if sec["type"] == "artist" else MOVIE
        try:
            t = int(qs.get("type") or default_t)
        except ValueError:
            raise QueryError("bad type") from None
        valid = (ARTIST, ALBUM, TRACK) if sec["type"] == "artist" else (MOVIE,)
        opts = self._opts(params)
        paged = start is not None or size is not None
        with lib.lock:  # one snapshot: the keys of the page and their records
            if t not in valid:
                total, keys = 0, []
            else:
                total, keys = lib.query(sec["id"], t, params, start, size)
            writer = None if self._wants_json() else R.item_writer(TYPE_NAMES[t], opts)
            if writer is not None and writer.keys_only:  # nothing but keys asked: no record needed
                items = [writer.from_key(k) for k in keys]
            else:
                recs = lib.records(keys, rows=writer is not None and writer.rows)
                if writer is not None:
                    write = writer.write
                    items = [write(r, sec) for r in recs]
                else:
                    items = [R.item_element(r, sec, opts) for r in recs]
        size_attrs, extra = self._size_attrs(len(items), total, start, paged)
        root = R.listing_container(sec, items, size_attrs, t)
        if qs.get("includeMeta", "0") not in ("0", ""):
            root[2].insert(0, R.meta_element(sec))
        return self._out(root, "Metadata", extra)

    def _collections(self, sec, params):
        start, size = self._paging(params)
        paged = start is not None or size is not None
        size_attrs, extra = self._size_attrs(0, 0, start, paged)
        a = dict(size_attrs)
        a.update({"allowSync": False, "art": sec["art"], "identifier": "com.plexapp.plugins.library",
                  "librarySectionID": sec["id"], "librarySectionTitle": sec["title"],
                  "librarySectionUUID": sec["uuid"], "mediaTagPrefix": R.MEDIA_TAG_PREFIX,
                  "mediaTagVersion": R.MEDIA_TAG_VERSION, "thumb": sec["thumb"], "title1": sec["title"],
                  "title2": "All Collections", "viewGroup": "secondary"})  # fmt: skip
        children = []
        if dict(params).get("includeMeta", "0") not in ("0", ""):
            children.append(R.meta_element(sec, collections=True))
        return self._out(("MediaContainer", a, children), "Metadata", extra)

    def _choices(self, sec, field, params):
        lib = self.server.sim.library
        try:
            t = int(dict(params).get("type") or (ARTIST if sec["type"] == "artist" else MOVIE))
        except ValueError:
            raise QueryError("bad type") from None
        choices = lib.tag_choices(sec["id"], t, field)
        dirs = [("Directory", {"fastKey": f"/library/sections/{sec['id']}/all?type={t}&{field}={i}", "key": str(i),
                               "title": name, "type": field}, []) for i, name in choices]  # fmt: skip
        a = {"size": len(dirs), "allowSync": False, "art": sec["art"], "content": "secondary",
             "identifier": "com.plexapp.plugins.library", "mediaTagPrefix": R.MEDIA_TAG_PREFIX,
             "mediaTagVersion": R.MEDIA_TAG_VERSION, "nocache": True, "thumb": sec["thumb"],
             "title1": sec["title"], "title2": f"By {field.title()}", "viewGroup": "secondary"}  # fmt: skip
        return self._out(("MediaContainer", a, dirs), "Directory")

    def _metadata(self, keyspec, params):
        lib = self.server.sim.library
        start, size = self._paging(params)
        keys = []
        seen = set()
        for part in keyspec.split(","):
            part = part.strip()
            if part.isdigit() and int(part) not in seen:
                seen.add(int(part))
                keys.append(int(part))
        with lib.lock:
            recs = [r for r in (lib.record(k) for k in keys) if r is not None]
        if not recs:
            return self._not_found()
        total = len(recs)
        paged = start is not None or size is not None
        s = start or 0
        e = total if size is None else min(total, s + size)
        page = recs[s:e]
        opts = self._opts(params, detail=True)
        render = R.item_element if self._wants_json() else R.xml_item
        items = [render(r, lib.section(r["librarySectionID"]), opts) for r in page]
        size_attrs, extra = self._size_attrs(len(items), total, start, paged)
        a = dict(size_attrs)
        a["allowSync"] = True
        a["identifier"] = "com.plexapp.plugins.library"
        sids = {r["librarySectionID"] for r in recs}
        if len(sids) == 1:
            sec = lib.section(sids.pop())
            a["librarySectionID"] = sec["id"]
            a["librarySectionTitle"] = sec["title"]
            a["librarySectionUUID"] = sec["uuid"]
        a["mediaTagPrefix"] = R.MEDIA_TAG_PREFIX
        a["mediaTagVersion"] = R.MEDIA_TAG_VERSION
        return self._out(("MediaContainer", a, items), "Metadata", extra)

    def _children(self, keyspec, params):
        lib = self.server.sim.library
        if not keyspec.isdigit():
            return self._not_found()
        key = int(keyspec)
        start, size = self._paging(params)
        with lib.lock:
            parent = lib.record(key)
            if parent is None or parent["type"] not in ("album", "artist"):
                return self._not_found()
            child_keys = lib.children(key)
            total = len(child_keys)
            s = start or 0
            e = total if size is None else min(total, s + size)
            recs = [lib.record(k) for k in child_keys[s:e]]
            if parent["type"] == "album":  # tracks in disc/track order
                allrecs = None
                if total <= 2000:
                    allrecs = sorted(
                        (lib.record(k) for k in child_keys),
                        key=lambda r: (r["parentIndex"] or 1, r["index"] or 0, int(r["ratingKey"])),
                    )
                    recs = allrecs[s:e]
        sec = lib.section(parent["librarySectionID"])
        opts = self._opts(params)
        render = R.item_element if self._wants_json() else R.xml_item
        items = [render(r, sec, opts) for r in recs]
        paged = start is not None or size is not None
        size_attrs, extra = self._size_attrs(len(items), total, start, paged)
        a = dict(size_attrs)
        a["allowSync"] = True
        a["art"] = parent.get("art")
        if parent["type"] == "album":
            a["grandparentRatingKey"] = int(parent["parentRatingKey"])
            a["grandparentThumb"] = parent.get("parentThumb")
            a["grandparentTitle"] = parent["parentTitle"]
        a["identifier"] = "com.plexapp.plugins.library"
        a["key"] = str(key)
        a["librarySectionID"] = sec["id"]
        a["librarySectionTitle"] = sec["title"]
        a["librarySectionUUID"] = sec["uuid"]
        a["mediaTagPrefix"] = R.MEDIA_TAG_PREFIX
        a["mediaTagVersion"] = R.MEDIA_TAG_VERSION
        a["nocache"] = True
        if parent["type"] == "album":
            a["parentIndex"] = 1
            a["parentTitle"] = parent["title"]
            if parent.get("year"):
                a["parentYear"] = parent["year"]
            a["summary"] = parent.get("summary") or ""
            a["thumb"] = parent.get("thumb")
            a["title1"] = parent["parentTitle"]
            a["title2"] = parent["title"]
            a["viewGroup"] = "track"
            a["viewMode"] = 458810
        else:
            a["summary"] = parent.get("summary") or ""
            a["thumb"] = parent.get("thumb")
            a["title1"] = sec["title"]
            a["title2"] = parent["title"]
            a["viewGroup"] = "album"
            a["viewMode"] = 65592
        a = {k: v for k, v in a.items() if v is not None}
        return self._out(("MediaContainer", a, items), "Metadata", extra)

    # -----------------------------------------------------------------------------------------
    # admin endpoint (token required, never counted, no latency or faults)

    def _admin(self, path, params):
        sim = self.server.sim
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""

        def reply(code, obj):
            body = json.dumps(obj, default=str).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except _HANGUPS:
                self.close_connection = True

        if self._token_account(params) != H.OWNER:
            return reply(401, {"error": "unauthorized"})
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return reply(400, {"error": "body must be JSON"})
        try:
            result = sim._admin(self.command, path[len("/__sim__/") :].strip("/"), data)
        except KeyError as e:
            return reply(404, {"error": str(e)})
        except (ValueError, TypeError) as e:
            return reply(400, {"error": str(e)})
        if result is NotImplemented:
            return reply(404, {"error": f"unknown admin endpoint {path}"})
        return reply(200, result)


class Simulator:
    """A Plex Media Server simulator serving a deterministic synthetic music library.

    >>> with Simulator(tracks=500, seed=1, token="T") as sim:
    ...     PlexServer(sim.url, "T").library.sections()
    """

    def __init__(self, tracks: int = 18432, seed: int = 1, token: str = "TOKEN", latency_ms: float = 0,
                 music_sections: int = 2, strict: bool = False, gzip: bool = True,
                 friendly_name: str = "plexcache-sim", profile: str | Profile | None = None,
                 history: int = 1000, accounts: int = 4, devices: int = 6, managed_tokens: dict | None = None,
                 managed_history: str = "own", notifications: bool = True,
                 ping_interval: float = 10.0):  # fmt: skip
        self.profile: Profile = get_profile(profile)
        self.token = token
        self.latency_ms = latency_ms or 0
        self.strict = strict
        self.gzip = gzip
        self.friendly_name = friendly_name
        self._clock_offset = 0.0
        self.library = Library(
            tracks=tracks, seed=seed, music_sections=music_sections, clock=self.now
        )
        self.machine_identifier = self.library.machine_seed
        # listening history, accounts, devices (history.py) and the notification websocket (notify.py)
        if managed_history not in ("own", "401", "403"):
            raise ValueError("managed_history must be 'own', '401' or '403'")
        self.history = H.History(self.library, clock=self.now, plays=history, seed=seed, accounts=accounts,
                                 devices=devices)  # fmt: skip
        self.managed_tokens: dict[str, int] = {}
        self.managed_history = managed_history
        for tok, account_id in (managed_tokens or {}).items():
            self.add_managed_token(tok, account_id)
        self.notify = Notifier(self, enabled=notifications, ping_interval=ping_interval)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counts: Counter = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.host = None
        self.port = None

    # -- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._server = _Server((host, port), Handler, self)
        self.host = host
        self.port = self._server.server_address[1]
        self._stopped.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"plex-sim-{self.port}", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("simulator not started")
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        srv = self._server
        if srv is None:
            self._stopped.set()
            return
        self._server = None
        self.notify.close_all()
        srv.shutdown()
        srv.close_all()
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        "Block until stop() (or KeyboardInterrupt in the caller); True when stopped"
        if timeout is not None:
            return self._stopped.wait(timeout)
        while not self._stopped.wait(0.5):
            pass
        return True

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- clock

    def now(self) -> int:
        return int(time.time() + self._clock_offset)

    def advance_clock(self, seconds: float) -> int:
        self._clock_offset += float(seconds)
        return self.now()

    # -- mutations (delegated to the library)

    # Each also publishes the notifications a real PMS sends for it (notify.py).

    def edit_track(self, key, **fields):
        rec = self.library.edit_track(key, **fields)
        self.notify.refreshed(rec)
        return rec

    def edit_album(self, key, **fields):
        rec = self.library.edit_album(key, **fields)
        self.notify.refreshed(rec)
        return rec

    def edit_artist(self, key, **fields):
        rec = self.library.edit_artist(key, **fields)
        self.notify.refreshed(rec)
        return rec

    def add_tracks(self, n, section_id=1, album_key=None):
        keys = self.library.add_tracks(n, section_id=section_id, album_key=album_key)
        if keys and self.notify.enabled:
            recs = [self.library.track(k) for k in keys]
            if album_key is None:  # a new artist and album hold them
                recs = [self.library.artist(recs[0]["grandparentRatingKey"]),
                        self.library.album(recs[0]["parentRatingKey"])] + recs  # fmt: skip
            self.notify.scan(recs[-1]["librarySectionID"], added=recs)
        return keys

    def delete_tracks(self, keys):
        lib = self.library
        with lib.lock:
            before = [lib.item(k) for k in keys]
            count = lib.delete_tracks(keys)
            gone = {}  # section -> the tracks, then the albums and artists left empty
            for rec in (r for r in before if r is not None and r["type"] == "track"):
                if lib.item(rec["ratingKey"]) is None:
                    gone.setdefault(rec["librarySectionID"], []).append(rec)
            for sid, recs in gone.items():
                parents = [r[f] for f in ("parentRatingKey", "grandparentRatingKey") for r in recs]
                for k in dict.fromkeys(parents):
                    if lib.item(k) is None:
                        recs.append(dict(lib._raw(int(k)), librarySectionID=sid))
        for sid, recs in gone.items():
            self.notify.scan(sid, deleted=recs)
        return count

    def play_track(self, key, times=1, account_id=H.OWNER, device_id=None):
        """A play to the end: ``playing`` then ``stopped`` notifications, a history entry per play.
        Only the owner's plays move viewCount/lastViewedAt: play state is per account."""
        if int(account_id) == H.OWNER:
            rec = self.library.play_track(key, times=times)
            viewed_at = rec["lastViewedAt"]  # the newest owner play is the track's lastViewedAt
        else:
            rec = self.library.track(key)
            viewed_at = self.now()
        device = self.history._devices.get(device_id) if device_id is not None else None
        device = device or self.history.device_for(account_id)
        for _ in range(int(times)):  # the play is recorded (scrobbled) before the player stops
            session = self.notify.play_session()
            self.notify.play_state(session, rec, device, "playing", 0)
            self.history.add_play(
                key, account_id=account_id, device_id=device["id"], viewed_at=viewed_at
            )
            self.notify.play_state(session, rec, device, "stopped", rec.get("duration") or 0)
        return rec

    def rate_track(self, key, rating):
        rec = self.library.rate_track(key, rating)
        self.notify.changed(rec)
        return rec

    # -- listening history, accounts, devices, managed users

    def add_play(self, key, account_id=H.OWNER, device_id=None, viewed_at=None):
        "a history entry only (no play state, no notification): e.g. an offline play uploaded later"
        return self.history.add_play(
            key, account_id=account_id, device_id=device_id, viewed_at=viewed_at
        )

    def delete_history(self, history_id):
        if not self.history.delete(history_id):
            raise KeyError(f"no history entry {history_id}")
        return True

    def add_account(self, name, id=None):  # noqa: A002
        return self.history.add_account(name, id=id)

    def add_device(self, name, platform="", client_identifier=None, account_id=None):
        return self.history.add_device(name, platform=platform, client_identifier=client_identifier,
                                       account_id=account_id)  # fmt: skip

    def add_managed_token(self, token, account_id):
        "a token of a managed (non-owner) user: the library works, history shows only its plays"
        account_id = int(account_id)
        if account_id in (H.OWNER, H.SYSTEM) or account_id not in {
            a["id"] for a in self.history.accounts()
        }:
            raise ValueError(f"managed token needs a non-owner account, got {account_id}")
        self.managed_tokens[str(token)] = account_id
        return account_id

    # -- ground truth

    def expected_cache(self) -> dict[str, dict[str, dict]]:
        """What a cache synced from this server must hold (``truth.expected_cache``), for what
        this profile's server knows: no track genres before PMS 1.40."""
        return expected_cache(self.library, track_genres=self.profile.track_genres)

    def expected_tracks(self) -> dict[str, dict]:
        return self.expected_cache()["tracks"]

    # -- controls

    def set_profile(self, profile: str | Profile) -> Profile:
        "Serve the same library as another server (version) from the next request on"
        self.profile = get_profile(profile)
        return self.profile

    def set_latency(self, ms: float) -> None:
        self.latency_ms = ms or 0

    def inject_fault(self, kind, path=r".*", nth=1, times=1, status=500, retry_after=None, stall_seconds=None,
                     body=None) -> Fault:  # fmt: skip
        f = Fault(kind, path=path, nth=nth, times=times, status=status, retry_after=retry_after,
                  stall_seconds=stall_seconds, body=body)  # fmt: skip
        with self._lock:
            self._faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[dict]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def _record_request(self, path: str, raw_path: str) -> Fault | None:
        cat = categorize(path)
        with self._lock:
            self._counts[cat] += 1
            hit = None
            for f in self._faults:
                if f.check(raw_path) and hit is None:
                    hit = f
            return hit

    @property
    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
        self.library.unknown_filters.clear()

    @property
    def unknown_filters(self) -> Counter:
        return self.library.unknown_filters

    # -- admin endpoint dispatcher

    _MUTATIONS = {"edit_track", "edit_album", "edit_artist", "add_tracks", "delete_tracks", "play_track",
                  "rate_track", "add_play", "delete_history", "add_account", "add_device",
                  "add_managed_token"}  # fmt: skip
    _HISTORY_QUERIES = {"entries", "accounts", "devices", "count"}
    _QUERIES = {"track", "album", "artist", "track_keys", "album_keys", "artist_keys", "track_count",
                "album_count", "artist_count", "sections", "item", "expected_cache", "expected_tracks"}  # fmt: skip

    def _admin(self, method: str, name: str, data: dict):
        if name == "notify-stats" and method == "GET":
            return self.notify.stats()
        if name == "stats" and method == "GET":
            return {"request_counts": self.request_counts, "total_requests": self.total_requests,
                    "unknown_filters": dict(self.unknown_filters), "now": self.now(), "latency_ms": self.latency_ms,
                    "faults": self.faults, "track_count": self.library.track_count(),
                    "sections": self.library.sections(), "profile": self.profile.name,
                    "version": self.profile.version}  # fmt: skip
        if method != "POST":
            return NotImplemented
        if name == "mutate":
            op, args = data.get("op"), data.get("args") or {}
            if op not in self._MUTATIONS:
                raise ValueError(f"unknown op {op!r}; expected one of {sorted(self._MUTATIONS)}")
            return {"result": getattr(self, op)(**args)}
        if name == "query":
            op, args = data.get("op"), data.get("args") or {}
            if op in self._HISTORY_QUERIES:
                return {"result": getattr(self.history, op)(**args)}
            if op not in self._QUERIES:
                raise ValueError(f"unknown op {op!r}; expected one of "
                                 f"{sorted(self._QUERIES | self._HISTORY_QUERIES)}")  # fmt: skip
            target = self if op.startswith("expected_") else self.library
            return {"result": getattr(target, op)(**args)}
        if name == "profile":
            if not isinstance(data.get("name"), str):
                raise ValueError('profile needs {"name": NAME}')
            profile = self.set_profile(data["name"])
            return {"profile": profile.name, "version": profile.version}
        if name == "latency":
            self.set_latency(data.get("ms", 0))
            return {"latency_ms": self.latency_ms}
        if name == "fault":
            args = dict(data)
            if "body_b64" in args:
                args["body"] = base64.b64decode(args.pop("body_b64"))
            f = self.inject_fault(**args)
            return {"fault": f.describe()}
        if name == "clear-faults":
            self.clear_faults()
            return {"ok": True}
        if name == "reset-stats":
            self.reset_counts()
            return {"ok": True}
        if name == "advance-clock":
            return {"now": self.advance_clock(data.get("seconds", 0))}
        if name == "notify":
            return self.notify.admin(data)
        return NotImplemented
