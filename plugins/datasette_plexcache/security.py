"""Who may do what, and which requests are refused for where they come from.

- Permissions: the ``plexcache-sync`` action (``sync_allowed``: root, an
  ``allow_sync`` block, or everyone when Datasette listens on localhost
  only) and checks that work on Datasette 0.65 and on the 1.0 alphas
  (``can_sync``, ``can_view``). 0.65 asks the ``permission_allowed`` hook;
  1.0a20+ registers actions and answers through ``permission_resources_sql``;
  each line ignores the hook it does not know, so ``__init__`` implements
  both and this module hides which one is asked.
- Cross-site requests (CSRF): ``cross_origin_reason``, Datasette 1.0's
  ``Sec-Fetch-Site``/``Origin`` check, applied on 0.65 too.
- DNS rebinding: ``foreign_host_reason``, for servers whose permission rests
  on "localhost only".

``settings`` arguments are ``service.PluginSettings`` (not imported here:
service imports this module).
"""

from __future__ import annotations

import ipaddress
import urllib.parse

SYNC_ACTION = "plexcache-sync"


def is_loopback_host(host: str | None) -> bool:
    "True for 127.0.0.1, ::1, localhost: an address only this machine can reach"
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sync_allowed(settings, actor: dict | None) -> bool:
    """The ``plexcache-sync`` permission, before Datasette's own rules.

    The root actor always may. With an ``allow_sync`` allow block, it decides;
    without one, everyone may when Datasette listens on localhost only.
    """
    from datasette.utils import actor_matches_allow

    if actor and actor.get("id") == "root":
        return True
    if settings.allow_sync is not None:
        return bool(actor_matches_allow(actor, settings.allow_sync))
    return settings.local_only


def cross_origin_reason(headers: dict, scheme: str, host: str | None) -> str | None:
    """Why a state-changing request looks cross-site, or None when it is fine.

    The check Datasette 1.0 does in middleware (``Sec-Fetch-Site``, then
    ``Origin`` against ``Host``), applied in the view so that 0.65, whose
    token-based CSRF waves through requests without cookies, refuses them too.
    ``headers`` has lower-case names.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = headers.get("origin")
    if origin is None:
        return None  # not a browser: curl, scripts
    try:
        if _origin_tuple(origin) == _origin_tuple(f"{scheme}://{host or ''}"):
            return None
    except ValueError:
        pass
    return f"cross-site request refused (Origin {origin!r} does not match this server)"


def foreign_host_reason(settings, actor: dict | None, host: str | None) -> str | None:
    """Why a sync request must be refused for the name it used, or None.

    "Listens on localhost only" makes everyone a local user, but a web page
    whose host name is re-pointed at 127.0.0.1 (DNS rebinding) reaches the
    server same-origin, with its own name in ``Host``. So when permission
    rests on the loopback rule alone, the request must also name the server
    by a loopback name or address (``localhost``, ``*.localhost``,
    ``127.0.0.1``, ``[::1]``). Root and ``allow_sync`` decide for themselves.
    """
    if actor and actor.get("id") == "root":
        return None
    if settings.allow_sync is not None or not settings.local_only:
        return None
    try:
        name = urllib.parse.urlsplit(f"//{host or ''}").hostname or ""
    except ValueError:
        name = ""
    if is_loopback_host(name) or name.endswith(".localhost"):
        return None
    return (
        f"refused: this server listens on localhost only and starts syncs only for requests "
        f"addressed to localhost, not {host!r}"
    )


def _origin_tuple(value: str):
    parts = urllib.parse.urlsplit(value)
    scheme = (parts.scheme or "").lower()
    if not scheme or not parts.hostname:
        raise ValueError(value)
    return scheme, parts.hostname.lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


# -- permission checks on both Datasette lines ------------------------------


def is_datasette_1(datasette) -> bool:
    return hasattr(datasette, "allowed")


async def can_sync(datasette, actor) -> bool:
    "May ``actor`` start a sync (the ``plexcache-sync`` action)?"
    if is_datasette_1(datasette):
        return await datasette.allowed(action=SYNC_ACTION, actor=actor)
    return await datasette.permission_allowed(actor, SYNC_ACTION, default=False)


async def can_view(datasette, actor, database: str | None) -> bool:
    "May ``actor`` see the instance and the cache database (so its status)?"
    if is_datasette_1(datasette):
        if not await datasette.allowed(action="view-instance", actor=actor):
            return False
        if database is None:
            return True
        from datasette.resources import DatabaseResource

        return await datasette.allowed(
            action="view-database", actor=actor, resource=DatabaseResource(database)
        )
    if not await datasette.permission_allowed(actor, "view-instance", default=True):
        return False
    if database is None:
        return True
    return await datasette.permission_allowed(
        actor, "view-database", resource=database, default=True
    )
