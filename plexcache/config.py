"""Where the cache lives and which Plex server to talk to: every setting is
read and checked here, where it enters.

Precedence for the server: explicit arguments, then ``PLEX_URL``/``PLEX_TOKEN``,
then plexapi's own settings (``PLEXAPI_AUTH_SERVER_BASEURL``,
``PLEXAPI_AUTH_SERVER_TOKEN`` or its ``config.ini``).

A bad value raises ``ConfigError`` with one line that names the setting, says
what it accepts and what it got, never echoing a secret::

    Invalid value for PLEXCACHE_TIMEOUT: expected a number of seconds above 0
    (like 30), got 'abc'
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, display_url, looks_like_token, redact, register_secret

DEFAULT_DB_PATH = Path("data") / "library_cache.db"
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
URL_EXAMPLE = "http://192.168.1.10:32400"

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_TIMEOUT",
    "PlexConfig",
    "check_db_path",
    "check_url",
    "env_flag",
    "env_int",
    "invalid",
    "parse_flag",
    "parse_int",
    "parse_number",
    "redact",
    "resolve_db_path",
    "resolve_plex_config",
]


def invalid(setting: str, expected: str, got: object = None, *, hint: str = "") -> ConfigError:
    """The one shape of a bad-setting message:
    ``Invalid value for SETTING: expected WHAT, got 'VALUE'[; HINT]``"""
    message = f"Invalid value for {setting}: expected {expected}"
    if got is not None:
        text = str(got)
        if looks_like_token(text):  # a token pasted into the wrong setting
            message += ", got a value that looks like a token"
        else:
            message += f", got {text if len(text) <= 120 else text[:117] + '...'!r}"
    return ConfigError(f"{message}; {hint}" if hint else message)


# ---- plain values -------------------------------------------------------------


def parse_number(
    value, setting: str, *, above: float = 0.0, at_most: float, unit: str, example: str
) -> float:
    "A finite number in (above, at_most]"
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not above < number <= at_most:
        raise invalid(
            setting,
            f"a number of {unit} above {above:g} and at most {at_most:g} (like {example})",
            value,
        )
    return number


def parse_timeout(value, setting: str = "PLEXCACHE_TIMEOUT") -> float:
    return parse_number(value, setting, at_most=MAX_TIMEOUT, unit="seconds", example="30")


def parse_int(value, setting: str, lo: int, hi: int | None = None) -> int:
    "A whole number in [lo, hi] (no upper bound when ``hi`` is None)"
    text = str(value).strip().replace("_", "") if not isinstance(value, int) else str(value)
    if (
        isinstance(value, bool)
        or not re.fullmatch(r"[+-]?\d+", text)
        or len(text.lstrip("+-")) > 19
    ):
        number = None
    else:
        number = int(text)
    if number is None or number < lo or (hi is not None and number > hi):
        bounds = f"from {lo:,} to {hi:,}" if hi is not None else f"of at least {lo:,}"
        raise invalid(setting, f"a whole number {bounds}", value)
    return number


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_flag(value, setting: str) -> bool:
    "true/false, yes/no, on/off, 1/0 (any case)"
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise invalid(setting, "1 or 0 (or true/false, yes/no, on/off)", value)


def env_flag(name: str, default: bool) -> bool:
    "A yes/no environment variable; unset or empty means ``default``"
    value = os.environ.get(name, "")
    return default if not value.strip() else parse_flag(value, name)


def env_int(name: str, default: int, lo: int, hi: int | None = None) -> int:
    "A whole-number environment variable; unset or empty means ``default``"
    value = os.environ.get(name, "")
    return default if not value.strip() else parse_int(value, name, lo, hi)


# ---- the cache file -----------------------------------------------------------


def check_db_path(value, setting: str = "--db") -> Path:
    """A path the cache can live at: not empty, not a directory, not inside a file"""
    text = os.fspath(value) if value is not None else ""
    if not str(text).strip():
        raise invalid(setting, "the path of a database file (like data/library_cache.db)", text)
    path = Path(
        text
    ).expanduser()  # PLEXCACHE_DB="~/music.db" (quoted, so the shell did not expand it)
    if path.is_dir() or str(text).endswith(("/", os.sep)):
        raise ConfigError(
            f"Invalid value for {setting}: {str(text)!r} is a directory; expected a database file, "
            f"like {str(path / 'library_cache.db')!r}"
        )
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"Invalid value for {setting}: {str(text)!r} is not a regular file (a device, a pipe...); "
            "expected a database file, like 'data/library_cache.db'"
        )
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ConfigError(
                    f"Invalid value for {setting}: {str(parent)!r} is a file, not a folder, so "
                    f"{str(text)!r} cannot be created"
                )
            break
    return path


def resolve_db_path(db: str | os.PathLike | None = None) -> Path:
    "``--db``, then ``PLEXCACHE_DB``, then ``data/library_cache.db``; checked"
    if db is not None:
        return check_db_path(db, "--db")
    env = os.environ.get("PLEXCACHE_DB", "")
    if env.strip():
        return check_db_path(env, "PLEXCACHE_DB")
    return DEFAULT_DB_PATH


# ---- the Plex server ----------------------------------------------------------


def check_url(value: str, setting: str = "--url") -> str:
    """The server's base address, like http://192.168.1.10:32400: http or
    https, a host, maybe a port; no path, query, user or password (the token
    travels in its own setting). Returns it without a trailing slash."""
    url = str(value).strip()
    # what the message may echo: never a query or user info (secrets travel there)
    got = url if not re.search(r"[@?#]", url) else display_url(url)
    alone = f"the server's address alone, like {URL_EXAMPLE}"

    def bad(expected: str, hint: str = "") -> ConfigError:
        return invalid(setting, expected, got, hint=hint)

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad(f"the server's address with a port from 1 to 65535, like {URL_EXAMPLE}") from None
    if parts.scheme.lower() not in ("http", "https"):
        hint = ""
        if re.fullmatch(r"[\w.-]+(:\d+)?/?", url) and not looks_like_token(url):
            hint = f"did you mean 'http://{url.rstrip('/')}'?"
        raise bad(f"an address starting with http:// or https://, like {URL_EXAMPLE}", hint)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise bad(
            "the server's address without a user name or password",
            "Plex authenticates with a token: pass it with --token or PLEX_TOKEN",
        )
    host = parts.hostname or ""
    if not host or not re.fullmatch(r"[\w.~%:-]+", host) or host.startswith((".", "-")):
        raise bad(f"an address with a host name or IP address, like {URL_EXAMPLE}")
    if port == 0:
        raise bad(f"the server's address with a port from 1 to 65535, like {URL_EXAMPLE}")
    if parts.query or parts.fragment:
        if re.search(r"x-plex-token", parts.query + parts.fragment, re.IGNORECASE):
            raise bad(alone, "pass the token with --token or PLEX_TOKEN, not in the URL")
        raise bad(alone, "drop the '?...' part" if parts.query else "drop the '#...' part")
    if parts.path.strip("/"):
        path = parts.path if len(parts.path) <= 60 else parts.path[:57] + "..."
        raise bad(alone, f"drop {path!r}: Plex answers at the root")
    return f"{parts.scheme.lower()}://{parts.netloc}"


def check_token(value: str | None, setting: str = "--token") -> str | None:
    """A Plex token: one word of printable characters. Surrounding whitespace
    (a newline from ``$(cat token.txt)``) is dropped; empty means no token."""
    if value is None:
        return None
    token = str(value).strip()
    if not token:
        return None
    if not all("!" <= ch <= "~" for ch in token):
        # never echo it: it is a secret, however malformed
        raise ConfigError(
            f"Invalid value for {setting}: expected a Plex token (one word of letters, digits and "
            "punctuation), got a value with spaces, line breaks or non-ASCII characters"
        )
    return token


@dataclass(frozen=True)
class PlexConfig:
    """How to reach one Plex Media Server. ``repr`` never shows the token.

    Checked when made: ``url`` is a base address (see ``check_url``) and
    ``timeout`` a number of seconds above 0. The token is registered with
    ``errors.register_secret``, so no error message can show it.
    """

    url: str | None
    token: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self):
        url = check_url(self.url, "the Plex URL") if self.url else None
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "token", check_token(self.token, "the Plex token"))
        object.__setattr__(self, "timeout", parse_timeout(self.timeout, "the Plex timeout"))
        register_secret(self.token)

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


def _plexapi_name(key: str) -> str:
    env = "PLEXAPI_" + key.upper().replace(".", "_")
    if os.environ.get(env):
        return env
    section, _, name = key.partition(".")
    return f"{name} in the [{section}] section of plexapi's config.ini"


def resolve_plex_config(
    url: str | None = None,
    token: str | None = None,
    timeout: float | str | None = None,
    *,
    url_setting: str = "--url",
    token_setting: str = "--token",
) -> PlexConfig:
    """Find the server's URL, token and timeout and check each; raises
    ``ConfigError`` naming the setting a bad value came from"""
    if url:
        url = check_url(url, url_setting)
    elif os.environ.get("PLEX_URL", "").strip():
        url = check_url(os.environ["PLEX_URL"], "PLEX_URL")
    elif value := _plexapi_setting("auth.server_baseurl"):
        url = check_url(value, _plexapi_name("auth.server_baseurl"))
    else:
        url = None
    if token is not None and str(token).strip():
        token = check_token(token, token_setting)
    elif os.environ.get("PLEX_TOKEN", "").strip():
        token = check_token(os.environ["PLEX_TOKEN"], "PLEX_TOKEN")
    else:
        token = check_token(
            _plexapi_setting("auth.server_token"), _plexapi_name("auth.server_token")
        )
    if timeout is None:
        env = os.environ.get("PLEXCACHE_TIMEOUT", "")
        timeout = parse_timeout(env) if env.strip() else DEFAULT_TIMEOUT
    else:
        timeout = parse_timeout(timeout, "the Plex timeout")
    return PlexConfig(url=url, token=token, timeout=timeout)
