"""Where the cache lives and which Plex server to talk to.

Precedence for the server: explicit arguments, then ``PLEX_URL``/``PLEX_TOKEN``,
then plexapi's own settings (``PLEXAPI_AUTH_SERVER_BASEURL``,
``PLEXAPI_AUTH_SERVER_TOKEN`` or its ``config.ini``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_DB_PATH = Path("data") / "library_cache.db"
DEFAULT_TIMEOUT = 30.0


def resolve_db_path(db: str | os.PathLike | None = None) -> Path:
    "``--db``, then ``PLEXCACHE_DB``, then ``data/library_cache.db``"
    if db:
        return Path(db)
    env = os.environ.get("PLEXCACHE_DB")
    if env:
        return Path(env)
    return DEFAULT_DB_PATH


@dataclass(frozen=True)
class PlexConfig:
    "How to reach one Plex Media Server. ``repr`` never shows the token."

    url: str | None
    token: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def redact(self, text: str) -> str:
        "Remove the token from ``text`` (plain, URL-encoded or as a query value)"
        return redact(text, self.token)


def _plexapi_setting(key: str) -> str | None:
    # plexapi's CONFIG reads PLEXAPI_<SECTION>_<NAME> from the environment
    # first, then ~/.config/plexapi/config.ini (or PLEXAPI_CONFIG_PATH).
    try:
        from plexapi import CONFIG
    except Exception:  # pragma: no cover - plexapi is a dependency
        return None
    value = CONFIG.get(key)
    return value or None


def resolve_plex_config(
    url: str | None = None, token: str | None = None, timeout: float | None = None
) -> PlexConfig:
    "Find the server's URL and token; raises ConfigError on a malformed URL"
    url = url or os.environ.get("PLEX_URL") or _plexapi_setting("auth.server_baseurl")
    token = token or os.environ.get("PLEX_TOKEN") or _plexapi_setting("auth.server_token")
    if timeout is None:
        timeout = float(os.environ.get("PLEXCACHE_TIMEOUT") or DEFAULT_TIMEOUT)
    if url:
        url = url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"Plex URL must look like http://host:32400, got {redact(url, token)!r}"
            )
    return PlexConfig(url=url, token=token or None, timeout=timeout)


_TOKEN_PARAM = re.compile(r"(X-Plex-Token(?:=|%3D))[^&\s'\"<>]+", re.IGNORECASE)


def redact(text: str, token: str | None = None) -> str:
    "Strip a Plex token from a string: the literal value and any X-Plex-Token=... parameter"
    if not text:
        return text
    if token:
        from urllib.parse import quote

        for variant in {token, quote(token, safe="")}:
            text = text.replace(variant, "[token]")
    return _TOKEN_PARAM.sub(r"\1[token]", text)
