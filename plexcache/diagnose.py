"""What answers at a URL that turned out not to be a Plex Media Server.

``sync`` and ``status`` ask different first questions (``/library/sections``
and ``/``), so a web server that is not Plex fails them differently (a 404,
an HTML page). Both then describe the server the same way, from one look at
its ``/`` made without the token: the page title or kind of content, and the
software it names in its ``Server`` header. A server whose ``/`` answers with
Plex's ``X-Plex-*`` headers is Plex (every PMS answer carries
``X-Plex-Protocol``, its 401 included), and garbage on a later request is
named as such, not as "not Plex".
"""

from __future__ import annotations

import re
import urllib.parse

from .errors import display_url, server_text

PROBE_BYTES = 64 * 1024
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_ROOT_TAG = re.compile(rb"<([A-Za-z][\w:.-]*)")


FIRST_REQUESTS = ("/", "/library/sections")  # what sync and status ask first; every PMS has both


def not_plex_message(
    base_url: str, timeout: float = 5.0, path: str = "/", got: str | bytes = "something else"
) -> str:
    """The one message for 'this URL answers, but not as Plex', for sync and
    status alike; ``got`` (what ``path`` answered) names garbage from a server
    that is Plex after all, or on a later request"""
    if path in FIRST_REQUESTS:
        is_plex, what = identify(base_url, timeout)
        if not is_plex:
            return (
                f"{display_url(base_url)} does not look like a Plex Media Server: {what}; "
                "check the address and port (Plex listens on 32400)"
            )
    if isinstance(got, bytes):  # the start of the body
        head = got.lstrip()[:16].lower()
        got = (
            "an HTML page"
            if head.startswith((b"<html", b"<!doctype"))
            else "something that is not XML"
        )
    return (
        f"Plex at {display_url(base_url)} answered {path} with {server_text(got, 60)}, not Plex XML"
    )


def identify(base_url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(is it Plex, what it is in a few words), from its ``/`` asked without
    the token"""
    import requests

    try:
        response = requests.get(
            base_url.rstrip("/") + "/",
            timeout=min(timeout, 5.0),
            allow_redirects=False,
            stream=True,
            headers={"Accept": "*/*", "User-Agent": "plexcache"},
        )
    except requests.RequestException:
        return False, "it answers, but not as Plex"
    try:
        body = response.raw.read(PROBE_BYTES, decode_content=True) or b""
    except Exception:
        body = b""
    finally:
        response.close()
    is_plex = any(name.lower().startswith("x-plex-") for name in response.headers)
    what = _describe(response, body)
    software = server_text(response.headers.get("Server"), limit=60)
    return is_plex, f"{what} (server software: {software})" if software else what


def _describe(response, body: bytes) -> str:
    status = response.status_code
    if 300 <= status < 400:
        target = urllib.parse.urljoin(response.url, response.headers.get("Location") or "")
        parts = urllib.parse.urlsplit(target)
        return f"its / redirects to {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if status != 200:
        return f"its / answers {status} {server_text(response.reason, limit=40)}"
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    head = body.lstrip()[:512].lower()
    if "html" in kind or head.startswith((b"<!doctype html", b"<html")):
        title = _TITLE.search(body)
        if title:
            return f"its / is a web page titled {server_text(title.group(1).decode('utf-8', 'replace'), 60)!r}"
        return "its / is a web page"
    if "json" in kind or head[:1] in (b"{", b"["):
        return "its / answers JSON"
    if head.startswith(b"<"):
        tag = _ROOT_TAG.search(
            body.lstrip().split(b"?>", 1)[-1] if head.startswith(b"<?xml") else body
        )
        name = tag.group(1).decode("ascii", "replace")[:40] if tag else "?"
        return f"its / answers XML without a MediaContainer (<{name}>)"
    if not body.strip():
        return "its / answers an empty page"
    return f"its / answers {server_text(kind, 40) or 'something'}"
