"""Talking to a Plex Media Server: the raw, fast path.

The sync reads listings as XML with ElementTree and never builds plexapi
objects: a partially loaded plexapi ``Track`` silently re-fetches itself when
an absent attribute (``genres``, ``userRating``, ``year``...) is read, which
turns a sync into one request per track. Here every request is explicit:

- ``count``: one ``X-Plex-Container-Size: 0`` request per section;
- ``pages``: keyset paging (``sort=id`` and ``track.id>>=<last key>``), so
  items deleted or added while we page cannot shift others out of a page;
- ``metadata``: full items for up to ``batch_size`` keys per request through
  ``/library/metadata/k1,k2,...`` (complete genre lists, album subformats).

The token travels only in the ``X-Plex-Token`` header; error messages carry
the server URL and path, never the token.
"""

from __future__ import annotations

import email.utils
import logging
import platform
import queue
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from . import __version__
from .config import PlexConfig, redact
from .errors import (
    ConfigError,
    NotPlexServer,
    PlexAuthError,
    PlexBadResponse,
    PlexError,
    PlexNotFound,
    PlexUnreachable,
)
from .rows import rating_key

log = logging.getLogger(__name__)

TRACK, ALBUM, ARTIST = 10, 9, 8
TYPE_PREFIX = {TRACK: "track", ALBUM: "album", ARTIST: "artist"}
# Bounds on what one response may cost. The largest answer a sync asks for
# (a 10,000-track page) is ~12 MB with ~50,000 tags; a parsed element costs
# ~100-400 bytes, so a few MB of tiny tags (or a 400 KB gzip bomb) would
# otherwise take gigabytes.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_XML_TAGS = 400_000
# Listing fields and elements the cache never reads. PMS treats these as
# requests, not guarantees; they cut a track listing to ~40% of its size.
LISTING_TRIM = {
    "excludeElements": "Part,Guid,Stream",
    "excludeFields": "summary,thumb,art,parentThumb,grandparentThumb,grandparentArt,"
    "guid,parentGuid,grandparentGuid,parentKey,grandparentKey,musicAnalysisVersion,ratingCount",
}
MAX_RETRY_AFTER = 30.0
# The request timeout bounds each wait for bytes; a server that trickles a
# byte at a time never trips it. A whole body gets this many timeouts.
BODY_TIMEOUTS = 4
# Full items are read for their complete Genre and Subformat tags (and a
# track's Media, when a key scan found a track we never listed); the
# heavy children (streams, parts, similar artists...) are not needed.
METADATA_TRIM = {
    "excludeElements": "Part,Stream,Guid,Mood,Style,Image,Similar,Location,Field,Extras,Related",
    "excludeFields": "summary",
}
# A keys-only listing, for deletion checks: everything but ratingKey left out.
KEYS_ONLY = {
    "excludeElements": "Media,Part,Stream,Genre,Guid,Mood,Image,Country,Style",
    "excludeFields": "title,titleSort,originalTitle,parentTitle,grandparentTitle,type,key,"
    "parentRatingKey,grandparentRatingKey,index,parentIndex,userRating,viewCount,skipCount,"
    "lastViewedAt,lastRatedAt,parentYear,year,duration,addedAt,updatedAt,parentStudio,summary,"
    "thumb,art,parentThumb,grandparentThumb,grandparentArt,guid,parentGuid,grandparentGuid,"
    "parentKey,grandparentKey,musicAnalysisVersion,ratingCount",
}
CLIENT_IDENTIFIER = "plexcache-" + uuid.uuid5(uuid.NAMESPACE_DNS, platform.node() or "plexcache").hex[:12]


class TransientError(PlexError):
    "A failure worth retrying: connection error, timeout, 429, 5xx, truncated body"

    def __init__(self, message, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Section:
    id: int
    uuid: str | None
    title: str
    type: str
    content_changed_at: int | None

    @property
    def is_music(self) -> bool:
        return self.type == "artist"


def _wait(retry_state) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    return wait_exponential(multiplier=0.5, max=8)(retry_state)


class PlexSource:
    """One server connection. ``requests`` counts every HTTP attempt made."""

    def __init__(
        self,
        config: PlexConfig,
        *,
        timeout: float | None = None,
        retries: int = 3,
        page_size: int = 1000,
        batch_size: int = 500,
    ):
        if not config.url:
            raise ConfigError(
                "no Plex server configured: pass --url/--token or set PLEX_URL and PLEX_TOKEN"
            )
        self.config = config
        self.base_url = config.url.rstrip("/")
        self.timeout = timeout or config.timeout
        self.retries = retries
        self.page_size = page_size
        self.batch_size = batch_size
        self.requests = 0
        self.server_time: int | None = None  # PMS clock, from the Date header
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
        self.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
        self.session.headers.update(
            {
                "Accept": "application/xml",
                "X-Plex-Product": "plexcache",
                "X-Plex-Version": __version__,
                "X-Plex-Client-Identifier": CLIENT_IDENTIFIER,
                "X-Plex-Platform": platform.system() or "Linux",
                "X-Plex-Device-Name": "plexcache",
            }
        )
        if config.token:
            self.session.headers["X-Plex-Token"] = config.token

    # -- plumbing ---------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PlexSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str, params: dict | None = None, start: int | None = None, size: int | None = None) -> ET.Element:
        "GET ``path`` and parse the MediaContainer, retrying transient failures"
        headers = {}
        if start is not None:
            headers["X-Plex-Container-Start"] = str(start)
            headers["X-Plex-Container-Size"] = str(size)
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=_wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._get_once(path, params, headers)
        except TransientError as e:
            # Out of retries: a plain PlexError for the caller.
            raise PlexError(str(e)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(self, path, params, headers) -> ET.Element:
        url = self.base_url + path
        where = f"Plex at {self.base_url}"
        self.requests += 1
        try:
            # Never follow a redirect: requests would send the X-Plex-Token
            # header along to wherever it points.
            response = self.session.get(
                url, params=params, headers=headers, timeout=self.timeout, stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.Timeout:
            raise TransientError(f"{where} did not answer within {self.timeout:g}s ({path})") from None
        except requests.exceptions.SSLError as e:
            raise PlexUnreachable(f"TLS error talking to {where}: {self._clean(e)}") from None
        except requests.exceptions.ConnectionError as e:
            raise TransientError(f"cannot reach {where}: {self._reason(e)}") from None
        except requests.exceptions.RequestException as e:
            raise PlexUnreachable(f"cannot reach {where}: {self._clean(e)}") from None
        try:
            status = response.status_code
            if status == 401:
                raise PlexAuthError(
                    f"{where} rejected the token (401 Unauthorized): check PLEX_TOKEN / --token"
                )
            if status == 404:
                raise PlexNotFound(f"{where} has nothing at {path} (404 Not Found)")
            if status == 429 or status >= 500:
                raise TransientError(
                    f"{where} answered {status} {response.reason} for {path}",
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
            if 300 <= status < 400:
                raise PlexBadResponse(
                    f"{where} answered {status} {response.reason} for {path}, a redirect to "
                    f"{_origin(url, response.headers.get('Location'))}; not following it (the "
                    "token would go along): set the Plex URL to the server's own address"
                )
            if status != 200:
                raise PlexBadResponse(f"{where} answered {status} {response.reason} for {path}")
            body = self._read(response, where, path)
            self._note_date(response.headers.get("Date"))
        finally:
            response.close()
        return self._parse(body, where, path)

    def _read(self, response, where, path) -> bytes:
        chunks, total = [], 0
        limit = self.timeout * BODY_TIMEOUTS
        deadline = time.monotonic() + limit
        try:
            for chunk in _chunks(response):
                total += len(chunk)
                if total > MAX_BODY_BYTES:
                    raise PlexBadResponse(
                        f"{where} sent more than {MAX_BODY_BYTES >> 20} MB for {path}; refusing it"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"{where} stalled mid-response ({path}): not finished after {limit:g}s"
                    )
        except (
            requests.exceptions.Timeout,
            urllib3.exceptions.ReadTimeoutError,
        ):
            raise TransientError(f"{where} stalled mid-response ({path})") from None
        except (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
            raise TransientError(f"{where} sent a corrupt compressed body for {path}") from None
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ConnectionError,
            urllib3.exceptions.HTTPError,
        ):
            raise TransientError(f"{where} closed the connection mid-response ({path})") from None
        return b"".join(chunks)

    def _parse(self, body: bytes, where: str, path: str) -> ET.Element:
        if not body.strip():
            raise TransientError(f"{where} sent an empty response for {path}")
        head = body[:512].lstrip()
        if head[:1] != b"<" or head[:5].lower() == b"<html" or head[:9].lower() == b"<!doctype":
            raise NotPlexServer(f"{where} does not look like a Plex Media Server (no XML at {path})")
        # Plex sends UTF-8, where NUL cannot occur; UTF-16 would hide a DTD
        # from the byte search below (expat decodes it and expands entities).
        if b"\0" in body:
            raise TransientError(f"{where} sent a body with NUL bytes (not UTF-8) for {path}")
        # Plex never sends a DTD: refusing one rules out entity expansion
        # ("billion laughs") and external entities before expat sees them.
        if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
            raise PlexBadResponse(f"{where} sent XML with a DTD/entities for {path}; refusing it")
        if body.count(b"<") > MAX_XML_TAGS:
            raise PlexBadResponse(
                f"{where} sent more than {MAX_XML_TAGS:,} XML tags for {path}; refusing it"
            )
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise TransientError(f"{where} sent malformed XML for {path} ({e})") from None
        if root.tag != "MediaContainer":
            raise NotPlexServer(
                f"{where} does not look like a Plex Media Server (<{root.tag[:40]}> at {path})"
            )
        return root

    def _note_date(self, value: str | None) -> None:
        if not value:
            return
        try:
            self.server_time = int(email.utils.parsedate_to_datetime(value).timestamp())
        except (TypeError, ValueError):
            pass

    def _clean(self, e: Exception) -> str:
        return redact(str(e), self.config.token)[:200]

    def _reason(self, e: Exception) -> str:
        text = str(e)
        for needle, reason in (
            ("Connection refused", "connection refused"),
            ("Name or service not known", "unknown host"),
            ("nodename nor servname", "unknown host"),
            ("No route to host", "no route to host"),
            ("Connection reset", "connection reset"),
            ("RemoteDisconnected", "the server closed the connection"),
            ("timed out", "timed out"),
        ):
            if needle in text:
                return reason
        return self._clean(e)

    # -- the calls the sync makes -----------------------------------------

    def server_info(self) -> dict:
        "``GET /``: machineIdentifier, friendlyName, version"
        root = self.get("/")
        if not root.get("machineIdentifier"):
            raise NotPlexServer(f"Plex at {self.base_url} sent no machineIdentifier: not a Plex Media Server?")
        return dict(root.attrib)

    def sections(self) -> list[Section]:
        root = self.get("/library/sections")
        out = []
        for d in root.iter("Directory"):
            try:
                out.append(
                    Section(
                        id=int(d.get("key")),
                        uuid=d.get("uuid"),
                        title=d.get("title") or f"Section {d.get('key')}",
                        type=d.get("type") or "",
                        content_changed_at=_int(d.get("contentChangedAt")),
                    )
                )
            except (TypeError, ValueError):
                continue
        return out

    def count(self, section_id: int, libtype: int = TRACK, filters: dict | None = None) -> int:
        "How many items of ``libtype`` the section holds (one Size=0 request)"
        params = {"type": libtype, **(filters or {})}
        root = self.get(f"/library/sections/{section_id}/all", params, start=0, size=0)
        total = _int(root.get("totalSize"))
        if total is None:
            total = _int(root.get("size")) or 0
        return total

    def pages(
        self,
        section_id: int,
        libtype: int = TRACK,
        filters: dict | None = None,
        page_size: int | None = None,
        extra: dict | None = None,
        complete: bool = False,
    ) -> Iterator[tuple[list[ET.Element], int]]:
        """Yield (items, remaining_total) pages in ascending rating-key order.

        Keyset paging: every request asks for keys above the last one seen,
        so concurrent deletions cannot make us skip a live item.

        A well-formed but empty or short page from a confused server or
        proxy looks exactly like the end of the listing. So the end is
        checked with a count of the keys above the last one seen when the
        last page brings fewer items than the one before announced (free
        otherwise), and always with ``complete`` (listings whose absences
        become deletions). If Plex counts more, paging goes on (tracks added
        meanwhile are listed too); if it keeps contradicting itself,
        ``PlexBadResponse``.
        """
        size = page_size or self.page_size
        prefix = TYPE_PREFIX[libtype]
        last_key = None
        recounts = 0
        announced = None  # items the previous page said were still to come
        while True:
            params = {"type": libtype, "sort": "id", **LISTING_TRIM, **(filters or {}), **(extra or {})}
            if last_key is not None:
                params[f"{prefix}.id>>"] = last_key
            root = self.get(f"/library/sections/{section_id}/all", params, start=0, size=size)
            items = [el for el in root if el.tag in ("Track", "Directory", "Metadata")]
            total = _int(root.get("totalSize"))
            if total is None:
                total = len(items)
            yield items, total
            keys = [int(k) for k in (rating_key(el.get("ratingKey")) for el in items) if k]
            if keys:
                new_last = max(keys)
                if last_key is not None and new_last <= last_key:
                    raise PlexBadResponse(
                        f"Plex at {self.base_url} ignored key paging (sort=id) for section {section_id}"
                    )
                last_key = new_last
                if total > len(items):
                    announced = total - len(items)
                    continue
            if not complete and (announced is None or total >= announced):
                return
            above = {f"{prefix}.id>>": last_key} if last_key is not None else {}
            left = self.count(section_id, libtype, {**(filters or {}), **above})
            if left <= 0:
                return
            recounts += 1
            if recounts > 2:
                raise PlexBadResponse(
                    f"Plex at {self.base_url} ended the listing of section {section_id} early: "
                    f"it counts {left:,} more items than it lists"
                )
            log.debug("listing of section %s ended early; %d more counted", section_id, left)

    def metadata(self, keys: list[str]) -> Iterator[list[ET.Element]]:
        "Full items for ``keys``, one list per batch; keys the server no longer has are skipped"
        for i in range(0, len(keys), self.batch_size):
            batch = keys[i : i + self.batch_size]
            try:
                root = self.get(
                    "/library/metadata/" + ",".join(batch),
                    METADATA_TRIM,
                    start=0,
                    size=len(batch),
                )
            except PlexNotFound:
                continue  # none of them exists any more
            yield list(root)


def _chunks(response) -> Iterator[bytes]:
    """The decoded body as it arrives. ``read1`` returns whatever one socket
    read brings, so the caller's deadline is checked between reads;
    ``iter_content`` (urllib3 1.x) blocks until a whole chunk is in."""
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(chunk_size=1 << 16)
        return
    while True:
        chunk = raw.read1(1 << 16, decode_content=True)
        if not chunk:
            return
        yield chunk


_DONE = object()


def prefetch(iterable, depth: int = 1):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    The sync spends most of a page's time waiting for the server; reading the
    next page while the current one is parsed into rows and written to SQLite
    overlaps the two. Exceptions are re-raised in the consumer; closing the
    generator early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as e:  # handed to the consumer
            q.put((_DONE, e))

    thread = threading.Thread(target=produce, name="plexcache-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _origin(base: str, location: str | None) -> str:
    "scheme://host:port of a redirect target: enough to act on, nothing secret"
    if not location:
        return "nowhere"
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(base, location))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"[:200]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        import time

        return max(0.0, when.timestamp() - time.time())


def _int(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None
