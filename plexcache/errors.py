"""Exceptions raised by the plexcache library, and the one place that makes a
message safe to show.

Every message is a single line meant for a person. ``PlexcacheError`` runs
its message through ``redact`` when it is created, so no error of ours can
carry a secret, whoever built the text and from what: the Plex token (every
token a ``PlexConfig`` was made with is registered here), an
``X-Plex-Token=...`` parameter in any case, ``user:password@`` in a URL.
Adapters (CLI, Datasette plugin) print ``str(exc)`` as it is.

Text that comes from a server (a reason phrase, a page title) goes through
``server_text`` first: it may echo anything, so whatever merely looks like
a token is masked too.
"""

from __future__ import annotations

import errno
import re
import ssl
import threading
from urllib.parse import quote, quote_plus

MASK = "[token]"


class PlexcacheError(Exception):
    "Base class: something the user can act on, with a one-line message"

    #: the CLI's exit status for this kind of error (2: bad usage or settings)
    exit_code = 1

    def __init__(self, message: object = "", *args):
        super().__init__(one_line(redact(str(message))), *args)


class ConfigError(PlexcacheError):
    "A setting (option, environment variable, plugin config) is missing or malformed"

    exit_code = 2


class PlexError(PlexcacheError):
    "Talking to the Plex Media Server failed"


class PlexUnreachable(PlexError):
    "Connection refused, DNS failure, TLS failure or timeout"


class PlexAuthError(PlexError):
    "The server rejected the token (401)"


class PlexNotFound(PlexError):
    "The server answered 404"


class PlexBadResponse(PlexError):
    "The server answered something that is not a valid Plex response"


class NotPlexServer(PlexBadResponse):
    "The URL answers, but not as a Plex Media Server"


class NoMusicSection(PlexError):
    "The server has no music library (or not the one asked for)"


class CacheError(PlexcacheError):
    "The cache database cannot be opened, read or written, or is not a plexcache cache"


class SyncAlreadyRunning(PlexcacheError):
    "Another sync holds the lock for this cache"

    def __init__(self, message="a sync is already running for this cache"):
        super().__init__(message)


# ---- redaction --------------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Shorter values are not tokens (and masking them would mangle messages).
MIN_SECRET_LENGTH = 6

# X-Plex-Token as a query parameter, a header or an XML/JSON attribute, in any
# case: X-Plex-Token=v, x-plex-token%3Dv, X-Plex-Token: v, "X-Plex-Token": "v".
_PLEX_TOKEN = re.compile(
    r"""(x-plex-token["']?\s*(?:=|%3d|:)\s*["']?)(?!\[token\])[^\s&"'<>,;)\]}]+""", re.IGNORECASE
)
# Other secret-looking query parameters: ?token=, access_token=, password=...
_SECRET_PARAM = re.compile(
    r"""\b([\w.-]*(?:token|passw(?:or)?d|secret|api[_-]?key)(?:=|%3d))(?!\[token\])[^\s&"'<>,;)\]}]+""",
    re.IGNORECASE,
)
# user:password@ (or just user@) after a URL scheme
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@", re.IGNORECASE)
# Authorization header values
_AUTH_HEADER = re.compile(r"\b(basic|bearer)\s+[a-z0-9+/=._~-]{8,}", re.IGNORECASE)
# Anything shaped like a token: 16+ characters of letters, digits, '-' and
# '_' with both letters and digits, or three dot-separated base64url parts
# (a JWT). Only applied to text a server sent, where it also masks UUID-like
# ids: a fair price. Version numbers (1.41.6.9685-d301f511a) are left alone.
_TOKEN_LIKE = re.compile(
    r"(?<![\w.-])(?:[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}|(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{16,})(?![\w-])",
    re.IGNORECASE,
)


def register_secret(value: str | None) -> None:
    "Remember ``value`` (a token, a password) so no message ever shows it"
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    variants = {value, quote(value, safe=""), quote_plus(value, safe="")}
    with _secrets_lock:
        _secrets.update(variants)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` without secrets: the registered ones and ``secrets`` (plain or
    URL-encoded), token parameters in any case and credentials in URLs"""
    if not text:
        return text
    with _secrets_lock:
        known = set(_secrets)
    for secret in secrets:
        if secret:
            known.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
    # Longest first, so a secret never leaves the tail of a longer one behind.
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PLEX_TOKEN.sub(r"\1" + MASK, text)
    text = _SECRET_PARAM.sub(r"\1" + MASK, text)
    text = _USERINFO.sub(r"\1[credentials]@", text)
    return _AUTH_HEADER.sub(r"\1 " + MASK, text)


def looks_like_token(text: str) -> bool:
    "True when ``text`` is one word shaped like a token (letters and digits, 16+ long)"
    return bool(_TOKEN_LIKE.fullmatch(text.strip()))


def server_text(text: str | None, limit: int = 80) -> str:
    """Text a server sent (reason phrase, page title, server name), fit for a
    message: one line, short, with secrets and token-shaped words masked"""
    if not text:
        return ""
    text = " ".join(str(text).split())
    text = _TOKEN_LIKE.sub(MASK, redact(text))
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def one_line(text: str) -> str:
    "Messages are single lines: any line break becomes a space"
    if "\n" not in text and "\r" not in text:
        return text
    return " ".join(text.split())


def display_url(url: str | None) -> str:
    """What of a URL may be shown: scheme, host, port and path; no user info,
    query or fragment (where tokens and passwords travel)"""
    if not url:
        return ""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return redact(url.strip())
    shown = f"{parts.scheme}://{host}{parts.path}" if parts.scheme else host + parts.path
    if parts.netloc != host:
        shown = shown.replace("://", "://[credentials]@", 1)
    if parts.query:
        shown += "?..."
    if parts.fragment:
        shown += "#..."
    return redact(shown)


# ---- a file we cannot write ---------------------------------------------------

WHERE_TO = "keep the cache in a writable folder (--db or PLEXCACHE_DB)"


def why_unwritable(path) -> str | None:
    """Why nothing can be written at ``path`` (a file, or where one would be
    created; its folder must be writable too, for the journal and the lock),
    in words, or None when it looks writable"""
    import os
    from pathlib import Path

    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError:
        pass
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


def describe_os_error(e: OSError, path, doing: str) -> str:
    "``cannot DOING PATH: why``, with the fix when it is a read-only place"
    why = why_unwritable(path)
    if why:
        return f"cannot {doing} {path}: {why}; {WHERE_TO}"
    if e.errno == errno.ENOSPC:
        return f"cannot {doing} {path}: the disk is full"
    if e.errno == errno.ENOTDIR:
        return f"cannot {doing} {path}: part of that path is a file, not a folder"
    return f"cannot {doing} {path}: {e.strerror or e}"


def unauthorized_message(where: str, token: str | None) -> str:
    "A 401: a wrong token, or none at all"
    if not token:
        return (
            f"{where} needs a token (401 Unauthorized): pass --token or set PLEX_TOKEN "
            "(finding yours: https://support.plex.tv/articles/204059436)"
        )
    return f"{where} rejected the token (401 Unauthorized): check PLEX_TOKEN / --token"


# ---- a failed request, in the user's words ----------------------------------

_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused (is Plex running, and is this its port?)",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "the server closed the connection",
    errno.ETIMEDOUT: "timed out",
    errno.ECONNABORTED: "the connection was aborted",
}


def _chain(e: BaseException):
    "``e`` and everything it wraps: causes, contexts, urllib3 reasons, exception args"
    seen, todo = set(), [e]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        todo += [a for a in item.args if isinstance(a, BaseException)]


def describe_request_error(e: BaseException, url: str | None = None) -> str:
    """Why a request to the server failed, short and in the user's words:
    ``connection refused``, ``unknown host``, a TLS mismatch with its fix...
    never urllib3's ``HTTPConnectionPool(...): Max retries exceeded`` text."""
    import socket

    chain = list(_chain(e))
    https = bool(url and url.lower().startswith("https:"))
    shown = display_url(url) if url else "the server"
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            why = (item.verify_message or "").rstrip(".")
            lowered = why.lower()
            if "mismatch" in lowered or "not valid for" in lowered:
                return (
                    f"its TLS certificate is not for this address ({why}): Plex's certificates are "
                    "for its https://<id>.plex.direct:32400 address; use that, or http:// on your own network"
                )
            if "self-signed" in lowered or "self signed" in lowered:
                return "its TLS certificate is self-signed, so it cannot be trusted: use http:// on your own network"
            if "expired" in lowered:
                return "its TLS certificate has expired"
            return f"its TLS certificate cannot be trusted ({why or 'verification failed'})"
    for item in chain:
        if isinstance(item, ssl.SSLError):
            reason = (item.reason or "").upper()
            if https and (
                reason
                in (
                    "WRONG_VERSION_NUMBER",
                    "RECORD_LAYER_FAILURE",
                    "UNKNOWN_PROTOCOL",
                    "HTTP_REQUEST",
                )
                or "wrong version number" in str(item).lower()
            ):
                return f"it answers plain HTTP, not TLS: use {_swap_scheme(shown)} instead"
            return f"the TLS handshake failed ({reason.replace('_', ' ').lower() or 'no reason given'})"
    for item in chain:
        if isinstance(item, socket.gaierror):
            return "unknown host (the name does not resolve: check the address)"
    for item in chain:
        if isinstance(item, TimeoutError | socket.timeout) or "timed out" in str(item).lower():
            return "timed out"
    for item in chain:
        if isinstance(item, OSError) and item.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[item.errno]
    text = " ".join(str(item) for item in chain)
    for needle, reason in (
        ("Connection refused", _ERRNO_REASONS[errno.ECONNREFUSED]),
        (
            "Name or service not known",
            "unknown host (the name does not resolve: check the address)",
        ),
        ("nodename nor servname", "unknown host (the name does not resolve: check the address)"),
        ("No route to host", "no route to host"),
        ("Connection reset", "the server closed the connection"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("BadStatusLine", "the server does not speak HTTP"),
    ):
        if needle in text:
            return reason
    for item in reversed(chain):  # the innermost OSError says it best
        if isinstance(item, OSError) and item.strerror:
            return item.strerror[:1].lower() + item.strerror[1:]
    inner = chain[-1]
    detail = str(inner)
    if "Pool(" in detail or "object at 0x" in detail:  # urllib3's plumbing says nothing useful
        detail = ""
    return server_text(f"{type(inner).__name__}{': ' + detail if detail else ''}", limit=160)


def _swap_scheme(url: str) -> str:
    if url.lower().startswith("https://"):
        return "http://" + url[8:]
    return url
