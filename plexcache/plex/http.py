"""HTTP to a Plex Media Server: session, headers, retries, limits, errors.

``PlexHTTP`` is one server connection (a ``requests`` session with Plex's
client headers, the token only in the ``X-Plex-Token`` header). One request
is ``fetch_once`` (the body of a 200 answer, read in full under a size and
time limit) then ``parse`` (the MediaContainer, refusing DTDs and tag
bombs); ``get`` is both, with tenacity retrying ``TransientError`` (timeouts,
connection errors, 429, 5xx, cut or corrupt bodies) with exponential
backoff or the server's ``Retry-After``.

``error_for`` is the one place that turns an HTTP status or a ``requests``
exception into a plexcache error: error messages carry the server URL and
path, never the token; redirects are never followed (the token header would
go along).
"""

from __future__ import annotations

import email.utils
import platform
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .. import __version__
from ..config import PlexConfig
from ..diagnose import not_plex_message
from ..errors import (
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

# Bounds on what one response may cost. The largest answer a sync asks for
# (a 10,000-track page) is ~12 MB with ~50,000 tags; a parsed element costs
# ~100-400 bytes, so a few MB of tiny tags (or a 400 KB gzip bomb) would
# otherwise take gigabytes.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_XML_TAGS = 400_000
MAX_RETRY_AFTER = 30.0
# The request timeout bounds each wait for bytes; a server that trickles a
# byte at a time never trips it. A whole body gets this many timeouts.
BODY_TIMEOUTS = 4
# Bodies are parsed in pieces so the lookahead thread, which needs the GIL
# to send the next request, never waits for a whole page's parse.
PARSE_CHUNK = 64 * 1024
CLIENT_IDENTIFIER = (
    "plexcache-" + uuid.uuid5(uuid.NAMESPACE_DNS, platform.node() or "plexcache").hex[:12]
)


class TransientError(PlexError):
    "A failure worth retrying: connection error, timeout, 429, 5xx, truncated body"

    def __init__(self, message, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _wait(retry_state) -> float:
    from tenacity import wait_exponential

    exc = retry_state.outcome.exception() if retry_state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    return wait_exponential(multiplier=0.5, max=8)(retry_state)


class PlexHTTP:
    """One server connection. ``requests`` counts every HTTP attempt made."""

    def __init__(self, config: PlexConfig, *, timeout: float | None = None, retries: int = 3):
        if not config.url:
            raise ConfigError(
                "no Plex server configured: pass --url/--token or set PLEX_URL and PLEX_TOKEN"
            )
        self.config = config
        self.base_url = config.url.rstrip("/")
        self.timeout = timeout or config.timeout
        self.retries = retries
        self.requests = 0
        self._requests_lock = threading.Lock()  # the lookahead thread counts too
        self.server_time: int | None = None  # PMS clock, from the Date header
        self.session = requests.Session()
        self.session.mount(
            "http://", HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
        )
        self.session.mount(
            "https://", HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
        )
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

    @property
    def where(self) -> str:
        return f"Plex at {self.base_url}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(
        self,
        path: str,
        params: dict | None = None,
        start: int | None = None,
        size: int | None = None,
    ) -> ET.Element:
        "GET ``path`` and parse the MediaContainer, retrying transient failures"
        headers = paging(start, size)
        return self.retrying(lambda: self.parse(self.fetch_once(path, params, headers), path))

    def retrying(self, attempt_fn):
        """``attempt_fn()`` with up to ``retries`` retries of transient failures.

        The first attempt runs bare; only a failure brings in tenacity (its
        import, with asyncio and tornado when installed, is ~20 ms of every
        command's start-up otherwise). The failure is replayed as tenacity's
        first attempt, so waits and attempt counts are tenacity's own."""
        try:
            return attempt_fn()
        except TransientError as e:
            failed = [e]

        def replayed():
            if failed:
                raise failed.pop()
            return attempt_fn()

        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=_wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return replayed()
        except TransientError as e:
            # Out of retries: a plain PlexError for the caller.
            raise PlexError(str(e)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def get_fetched(
        self, path: str, params: dict | None, headers: dict, fetched: tuple
    ) -> ET.Element:
        """``get``, whose first attempt already happened: ``fetched`` is the
        ``(body, error)`` the lookahead thread got. A body is parsed here; a
        transient failure of either is retried like any other attempt."""
        first = [fetched]

        def attempt() -> ET.Element:
            if first:
                body, error = first.pop()
                if error is not None:
                    raise error
                return self.parse(body, path)
            return self.parse(self.fetch_once(path, params, headers), path)

        return self.retrying(attempt)

    def fetch_once(self, path, params, headers) -> bytes:
        "One attempt: the body of a 200 answer, read in full but not parsed"
        url = self.base_url + path
        with self._requests_lock:
            self.requests += 1
        try:
            # Never follow a redirect: requests would send the X-Plex-Token
            # header along to wherever it points.
            response = self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as e:
            raise self.error_for(path, exception=e) from None
        try:
            error = self.error_for(path, response=response)
            if error is not None:
                raise error
            body = self._read(response, path)
            self._note_date(response.headers.get("Date"))
        finally:
            response.close()
        return body

    def error_for(
        self,
        path: str,
        *,
        response=None,
        exception: BaseException | None = None,
        reading: bool = False,
    ):
        """The plexcache error for an answer's status (None for 200), for an
        exception of ``requests`` while connecting, or (``reading``) while
        reading the body. Transient ones are ``TransientError`` (retried)."""
        where = self.where
        if exception is not None and reading:
            if isinstance(
                exception, requests.exceptions.Timeout | urllib3.exceptions.ReadTimeoutError
            ):
                return TransientError(f"{where} stalled mid-response ({path})")
            if isinstance(
                exception, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError
            ):
                return TransientError(f"{where} sent a corrupt compressed body for {path}")
            return TransientError(f"{where} closed the connection mid-response ({path})")
        if exception is not None:
            if isinstance(exception, requests.exceptions.Timeout):
                return TransientError(f"{where} did not answer within {self.timeout:g}s ({path})")
            if isinstance(exception, requests.exceptions.SSLError):
                return PlexUnreachable(f"TLS error talking to {where}: {self._clean(exception)}")
            if isinstance(exception, requests.exceptions.ConnectionError):
                return TransientError(f"cannot reach {where}: {self._reason(exception)}")
            return PlexUnreachable(f"cannot reach {where}: {self._clean(exception)}")
        status = response.status_code
        if status == 200:
            return None
        response.reason = server_text(
            response.reason, limit=60
        )  # hardening: server text is untrusted
        if status == 401:
            return PlexAuthError(unauthorized_message(where, self.config.token))  # hardening
        if status == 404 and path in ("/", "/library/sections"):  # hardening: every PMS has these
            return NotPlexServer(
                not_plex_message(self.base_url, self.timeout, path, "404 Not Found")
            )
        if status == 404:
            return PlexNotFound(f"{where} has nothing at {path} (404 Not Found)")
        if status == 429 or status >= 500:
            return TransientError(
                f"{where} answered {status} {response.reason} for {path}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            return PlexBadResponse(
                f"{where} answered {status} {response.reason} for {path}, a redirect to "
                f"{_origin(self.base_url + path, response.headers.get('Location'))}; not following it (the "
                "token would go along): set the Plex URL to the server's own address"
            )
        return PlexBadResponse(f"{where} answered {status} {response.reason} for {path}")

    def _read(self, response, path) -> bytes:
        chunks, total = [], 0
        limit = self.timeout * BODY_TIMEOUTS
        deadline = time.monotonic() + limit
        try:
            for chunk in _chunks(response):
                total += len(chunk)
                if total > MAX_BODY_BYTES:
                    raise PlexBadResponse(
                        f"{self.where} sent more than {MAX_BODY_BYTES >> 20} MB for {path}; refusing it"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"{self.where} stalled mid-response ({path}): not finished after {limit:g}s"
                    )
        except (
            requests.exceptions.Timeout,
            requests.exceptions.ContentDecodingError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ConnectionError,
            urllib3.exceptions.HTTPError,
        ) as e:
            raise self.error_for(path, exception=e, reading=True) from None
        return b"".join(chunks)

    def parse(self, body: bytes, path: str) -> ET.Element:
        where = self.where
        if not body.strip():
            raise TransientError(f"{where} sent an empty response for {path}")
        head = body[:512].lstrip()
        if head[:1] != b"<" or head[:5].lower() == b"<html" or head[:9].lower() == b"<!doctype":
            raise NotPlexServer(
                not_plex_message(self.base_url, self.timeout, path, head)
            )  # hardening
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
            raise NotPlexServer(
                not_plex_message(self.base_url, self.timeout, path, f"<{root.tag[:40]}>")
            )  # hardening
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


def paging(start: int | None, size: int | None) -> dict:
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
        return max(0.0, when.timestamp() - time.time())


def int_attr(value) -> int | None:
    "An integer attribute of a PMS answer (``totalSize``, ``key``...), None when absent or not a number"
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None
