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

Listing pages and metadata batches are fetched by a lookahead thread
(``_Lookahead``) that sends the next request as soon as the previous body is
in, before anything parses it: for keyset paging the key to continue after is
read straight from the raw bytes (``_next_after``), and the parse, which
checks that guess, runs while Plex renders the next page.

The token travels only in the ``X-Plex-Token`` header; error messages carry
the server URL and path, never the token.
"""

from __future__ import annotations

import email.utils
import logging
import operator
import platform
import queue
import re
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
from .config import PlexConfig
from .diagnose import not_plex_message
from .errors import (
    ConfigError,
    NotPlexServer,
    PlexAuthError,
    PlexBadResponse,
    PlexError,
    PlexNotFound,
    PlexUnreachable,
    describe_request_error,
    server_text,
    unauthorized_message,
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
    "guid,parentGuid,grandparentGuid,parentKey,grandparentKey,musicAnalysisVersion,ratingCount,"
    "parentStudio,titleSort",
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
# An album listing cut to its keys and track counts (`leafCount`), for
# finding which albums lost tracks without listing every track key.
ALBUM_COUNTS_ONLY = {
    "excludeElements": "Genre,Guid,Image,Country,Style,Mood,Format,Subformat,Director,Collection,Label",
    "excludeFields": "key,parentRatingKey,guid,parentGuid,studio,type,title,titleSort,parentKey,"
    "parentTitle,summary,index,rating,userRating,viewCount,skipCount,lastViewedAt,lastRatedAt,year,"
    "thumb,art,parentThumb,originallyAvailableAt,viewedLeafCount,addedAt,updatedAt,"
    "loudnessAnalysisVersion,musicAnalysisVersion,parentYear",
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
        self._requests_lock = threading.Lock()  # the lookahead thread counts too
        self.server_time: int | None = None  # PMS clock, from the Date header
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
        self.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
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
        headers = _paging(start, size)
        return self._retrying(lambda: self._get_once(path, params, headers))

    def _retrying(self, attempt_fn):
        "``attempt_fn()`` with up to ``retries`` retries of transient failures"
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=_wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return attempt_fn()
        except TransientError as e:
            # Out of retries: a plain PlexError for the caller.
            raise PlexError(str(e)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_fetched(self, path: str, params: dict | None, headers: dict, fetched: tuple) -> ET.Element:
        """``get``, whose first attempt already happened: ``fetched`` is the
        ``(body, error)`` the lookahead thread got. A body is parsed here; a
        transient failure of either is retried like any other attempt."""
        first = [fetched]

        def attempt() -> ET.Element:
            if first:
                body, error = first.pop()
                if error is not None:
                    raise error
                return self._parse(body, f"Plex at {self.base_url}", path)
            return self._get_once(path, params, headers)

        return self._retrying(attempt)

    def _get_once(self, path, params, headers) -> ET.Element:
        return self._parse(self._fetch_once(path, params, headers), f"Plex at {self.base_url}", path)

    def _fetch_once(self, path, params, headers) -> bytes:
        "One attempt: the body of a 200 answer, read in full but not parsed"
        url = self.base_url + path
        where = f"Plex at {self.base_url}"
        with self._requests_lock:
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
            response.reason = server_text(response.reason, limit=60)  # hardening: server text is untrusted
            status = response.status_code
            if status == 401:
                raise PlexAuthError(unauthorized_message(where, self.config.token))  # hardening
            if status == 404 and path in ("/", "/library/sections"):  # hardening: every PMS has these
                raise NotPlexServer(not_plex_message(self.base_url, self.timeout, path, "404 Not Found"))
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
        return body

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
            raise NotPlexServer(not_plex_message(self.base_url, self.timeout, path, head))  # hardening
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
            parser = ET.XMLParser()
            view = memoryview(body)
            for i in range(0, len(view), PARSE_CHUNK):
                parser.feed(view[i : i + PARSE_CHUNK])
            root = parser.close()
        except ET.ParseError as e:
            raise TransientError(f"{where} sent malformed XML for {path} ({e})") from None
        if root.tag != "MediaContainer":
            raise NotPlexServer(not_plex_message(self.base_url, self.timeout, path, f"<{root.tag[:40]}>"))  # hardening
        return root

    def _note_date(self, value: str | None) -> None:
        if not value:
            return
        try:
            self.server_time = int(email.utils.parsedate_to_datetime(value).timestamp())
        except (TypeError, ValueError):
            pass

    def _clean(self, e: Exception) -> str:
        return describe_request_error(e, self.base_url)  # hardening: errors.py words it

    def _reason(self, e: Exception) -> str:
        return describe_request_error(e, self.base_url)  # hardening: errors.py words it

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

        The paging is a chain (page n+1 needs page n's last key), so a
        lookahead thread asks for page n+1 as soon as page n's bytes are in,
        with the key it reads from them (``_next_after``), while page n is
        parsed here. The parsed page decides: when its real last key is not
        the one the lookahead went on with (or the lookahead could not tell,
        or stopped on an error), that request is thrown away and paging
        goes on from the real key, as if there had been no lookahead.

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
        path = f"/library/sections/{section_id}/all"
        base = {"type": libtype, "sort": "id", **LISTING_TRIM, **(filters or {}), **(extra or {})}
        headers = _paging(0, size)

        def params_for(after: int | None) -> dict:
            return base if after is None else {**base, f"{prefix}.id>>": after}

        def follow(after, body, error):
            guess = None if body is None or wrong_guesses >= MAX_WRONG_GUESSES else _next_after(body)
            return END if guess is None else guess

        last_key = None
        recounts = 0
        announced = None  # items the previous page said were still to come
        wrong_guesses = 0
        ahead = None
        try:
            while True:
                if ahead is None:
                    ahead = _Lookahead(lambda after: self._fetch_once(path, params_for(after), headers), last_key, follow)
                after, body, error, guess = ahead.take()
                if after != last_key:  # pragma: no cover - it is restarted whenever it guessed wrong
                    raise AssertionError(f"lookahead fetched the page after {after}, not {last_key}")
                root = self._get_fetched(path, params_for(last_key), headers, (body, error))
                items = [el for el in root if el.tag in ITEM_TAGS]
                total = _int(root.get("totalSize"))
                if total is None:
                    total = len(items)
                yield items, total
                keys = list(filter(None, map(rating_key, map(_GET_RATING_KEY, items))))
                if keys:
                    new_last = max(map(int, keys))
                    if last_key is not None and new_last <= last_key:
                        raise PlexBadResponse(
                            f"Plex at {self.base_url} ignored key paging (sort=id) for section {section_id}"
                        )
                    last_key = new_last
                    if total > len(items):
                        announced = total - len(items)
                        if guess != last_key:  # the lookahead is not fetching that page
                            if guess is not END:
                                wrong_guesses += 1  # e.g. a server that does not sort pages
                            ahead.close()
                            ahead = None
                        continue
                ahead.close()  # nothing in flight unless it guessed wrong
                ahead = None
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
        finally:
            if ahead is not None:
                ahead.close()

    def metadata(self, keys: list[str]) -> Iterator[list[ET.Element]]:
        """Full items for ``keys``, one list per batch; keys the server no longer has are skipped.

        Batches are fetched by a lookahead thread, one request after the
        other, while the previous batch is parsed and used."""
        batches = [keys[i : i + self.batch_size] for i in range(0, len(keys), self.batch_size)]

        def request(i: int) -> tuple[str, dict]:
            return "/library/metadata/" + ",".join(batches[i]), _paging(0, len(batches[i]))

        def fetch(i: int) -> bytes:
            path, headers = request(i)
            return self._fetch_once(path, METADATA_TRIM, headers)

        def follow(i, body, error):
            # Stop at any failure but "none of these exists": the retries
            # (and their waits) happen in the caller, one request at a time.
            if i + 1 >= len(batches) or (error is not None and not isinstance(error, PlexNotFound)):
                return END
            return i + 1

        ahead = None
        try:
            for i in range(len(batches)):
                if ahead is None:
                    ahead = _Lookahead(fetch, i, follow)
                _, body, error, following = ahead.take()
                if following != i + 1:
                    ahead.close()
                    ahead = None
                path, headers = request(i)
                try:
                    root = self._get_fetched(path, METADATA_TRIM, headers, (body, error))
                except PlexNotFound:
                    continue  # none of them exists any more
                yield list(root)
        finally:
            if ahead is not None:
                ahead.close()


ITEM_TAGS = ("Track", "Directory", "Metadata")
# A listing whose pages keep ending on a key other than their highest
# (a server that does not sort them) stops being guessed at: each wrong
# guess costs a request or two.
MAX_WRONG_GUESSES = 2
# Bodies are parsed in pieces so the lookahead thread, which needs the GIL
# to send the next request, never waits for a whole page's parse.
PARSE_CHUNK = 64 * 1024
_GET_RATING_KEY = operator.methodcaller("get", "ratingKey")
# In a listing's opening tag: <MediaContainer size="1000" totalSize="16220" ...>
_TOTAL_SIZE = re.compile(rb'\stotalSize="(\d+)"')
_RATING_KEY_ATTR = b' ratingKey="'


def _next_after(body: bytes) -> int | None:
    """The key to ask the next listing page after, read from a page's raw
    bytes before any parse: its last item's ``ratingKey`` (pages come in key
    order), or None when the page looks like the last one or when the bytes
    are not what Plex usually sends. A cheap guess (a few passes of
    ``bytes.find``/``count``, ~0.3 ms per 1,000 tracks) that the parse
    checks; a wrong one costs a wasted request, never a wrong listing.
    The body is already decompressed (urllib3 undoes gzip)."""
    start = body.find(b"<MediaContainer")
    if start < 0 or not body[-64:].rstrip().endswith(b"</MediaContainer>"):
        return None  # not a listing, or a cut one
    # "<" never occurs raw inside an attribute value: the next one opens the
    # first item (or closes an empty container).
    first = body.find(b"<", start + 1)
    if first < 0 or body[first + 1 : first + 2] in (b"/", b""):
        return None
    found = _TOTAL_SIZE.search(body, start, first)
    if found is None:
        return None
    name_end = body.find(b" ", first, first + 64)
    if name_end < 0:
        return None
    # "<Track " counts the items: "<" is escaped in attribute values.
    if int(found.group(1)) <= body.count(body[first : name_end + 1], first):
        return None  # everything announced is on this page: the last one
    at = body.rfind(_RATING_KEY_ATTR, first)
    if at < 0:
        return None
    at += len(_RATING_KEY_ATTR)
    end = body.find(b'"', at, at + 20)
    key = body[at:end]
    if end < 0 or not key.isdigit() or key[:1] == b"0" or len(key) > 18:
        return None
    return int(key)


END = object()  # what a lookahead's ``follow`` returns to stop it
_STOPPED = object()


class _Lookahead:
    """A thread that fetches one request after another, ahead of the caller.

    It starts with ``first``; after each fetch, ``follow(request, body,
    error)`` names the next request (``END``: stop), so the next request goes
    out as soon as the previous body is in, whatever the caller is doing.
    ``take()`` returns ``(request, body, error, next_request)`` in order.
    At most one fetched body waits for the caller and one more is fetched,
    so memory stays flat. ``close()`` stops it and waits for a request in
    flight (bounded by the request timeouts), so every request it made is
    over, and counted, when the caller goes on.
    """

    def __init__(self, fetch, first, follow):
        self._fetch = fetch
        self._follow = follow
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first,), name="plexcache-fetch", daemon=True)
        self._thread.start()

    def _run(self, request) -> None:
        while request is not END and not self._stop.is_set():
            body = error = None
            try:
                body = self._fetch(request)
            except BaseException as e:  # handed to the caller, which retries or raises
                error = e
            try:
                following = self._follow(request, body, error)
            except Exception:  # pragma: no cover - a guess gone wrong must not hang the caller
                following = END
            if not self._put((request, body, error, following)):
                return
            request = following
        self._put(_STOPPED)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def take(self) -> tuple:
        item = self._queue.get()
        if item is _STOPPED:  # pragma: no cover - callers never take past the last request
            raise AssertionError("lookahead taken past its last request")
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(0.05)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass


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


def _paging(start: int | None, size: int | None) -> dict:
    "Paging headers (Plex reads them as well as the query parameters)"
    if start is None:
        return {}
    return {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": str(size)}


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
