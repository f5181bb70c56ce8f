"""Datasette plugin for plexcache: sync status, sync controls, a progress page
and the tracks table's precounted facets.

Hooks only; the handlers are in ``views``, the logic in ``service``,
permissions and request checks in ``security``, the facet classes in
``facets``, the Datasette metadata in ``metadata``.
Works on Datasette 0.65 and on the 1.0 alphas (see ``security``).
"""

from __future__ import annotations

import asyncio
import json
import logging

from datasette import hookimpl

from plexcache import __version__

from . import security, service, views
from .security import can_sync

log = logging.getLogger("datasette_plexcache")

STATIC_NAME = "plexcache"  # the distribution name: Datasette mounts static files under it


@hookimpl
def register_routes():
    return [
        (r"^/api/library/status$", views.status_view),
        (r"^/api/library/sync$", views.sync_view),
        (r"^/-/plexcache/status(\.json)?$", views.status_view),
        (r"^/-/plexcache/sync$", views.sync_view),
        (r"^/-/plexcache/runs\.json$", views.runs_view),
        (r"^/-/plexcache/overview\.json$", views.overview_view),
        (r"^/-/plexcache/live\.json$", views.live_view),
        (r"^/-/plexcache(\.(?P<format>json))?$", views.page_view),
    ]


@hookimpl(tryfirst=True)
def register_facet_classes():
    """precounted / precounted_array: the tracks table's default facets (see facets.py).

    First, so a facet also requested from the UI (``?_facet_array=genres``)
    comes second as ``genres_2``, as with Datasette's own facets.
    """
    from .facets import PrecountedArrayFacet, PrecountedColumnFacet

    return [PrecountedColumnFacet, PrecountedArrayFacet]


def _active(datasette) -> bool:
    "Is there a plexcache database? Without one the plugin adds nothing to pages"
    return views.get_settings(datasette).database is not None


@hookimpl
def menu_links(datasette):
    if not _active(datasette):
        return None
    return [{"href": datasette.urls.path("/-/plexcache"), "label": "Plex library sync"}]


@hookimpl
def extra_css_urls(datasette):
    if not _active(datasette):
        return None
    return [datasette.urls.static_plugins(STATIC_NAME, "plexcache.css") + f"?v={__version__}"]


@hookimpl
def extra_js_urls(datasette):
    if not _active(datasette):
        return None
    return [
        datasette.urls.static_plugins(STATIC_NAME, name) + f"?v={__version__}"
        for name in ("plexcache.js", "plexcache-live.js")
    ]


@hookimpl
def extra_template_vars(template, database, request, datasette):
    "The overview on the home page; collapsed column descriptions on the cache's tables"
    if not _active(datasette):
        return None
    if template == "index.html" and request is not None:

        async def inner():
            return {"plexcache_overview": await views.overview(datasette, request)}

        return inner
    if template and template.startswith("table") and database:
        return {
            "plexcache_collapse_descriptions": database == views.get_settings(datasette).database
        }
    return None


@hookimpl
def extra_body_script(template, request, datasette):
    if not _active(datasette):
        return None

    async def inner():
        settings = views.get_settings(datasette)
        token = ""
        csrftoken = request.scope.get("csrftoken") if request is not None else None
        if callable(csrftoken):
            token = csrftoken()
        config = {
            "statusUrl": datasette.urls.path("/api/library/status"),
            "syncUrl": datasette.urls.path("/api/library/sync"),
            "pageUrl": datasette.urls.path("/-/plexcache"),
            "runsUrl": datasette.urls.path("/-/plexcache/runs.json"),
            "liveUrl": datasette.urls.path("/-/plexcache/live.json"),
            "csrftoken": token,
            "staleAfterHours": settings.stale_after_hours,
            "canSync": await can_sync(datasette, request.actor if request else None),
            "progressPage": template == "plexcache.html",
        }
        # "<" escaped so no string in the config can close the script element
        payload = json.dumps(config).replace("<", "\\u003c")
        return f"window.plexcacheConfig = {payload};"

    return inner


@hookimpl
def startup(datasette):
    async def inner():
        settings = views.get_settings(datasette)
        db = datasette.databases.get(settings.database) if settings.database else None
        if db is None or not db.is_mutable:
            return
        # Spawning a process is safe here; an asyncio task is not: 0.65 runs
        # startup on a throwaway event loop.
        await asyncio.to_thread(on_server_start, settings)

    return inner


def on_server_start(settings: service.PluginSettings) -> None:
    """Mark runs orphaned by a dead process, start the watcher (the live
    cache), then sync if the cache is empty or stale"""
    from plexcache.errors import PlexcacheError, SyncAlreadyRunning
    from plexcache.sync.runs import recover_interrupted

    recover_interrupted(settings.db_path)
    if settings.plex.configured:
        settings.health.prefetch(settings.plex)
    try:
        watcher = service.start_watch(settings)
        if watcher is not None:
            service.wait_for_watcher(settings, watcher)
    except (PlexcacheError, OSError) as e:
        log.warning("plexcache: could not start the live cache: %s", settings.redact(str(e)))
    if not service.should_sync_on_start(settings):
        return
    try:
        service.start_sync(settings, trigger="startup")
        log.info("plexcache: cache empty or stale, started a background sync")
    except SyncAlreadyRunning:
        pass
    except PlexcacheError as e:
        log.warning("plexcache: could not start a sync: %s", settings.redact(str(e)))


# Permissions, both Datasette lines side by side. Each line ignores the hooks
# it does not define.


@hookimpl
def permission_allowed(datasette, actor, action):
    "Datasette 0.65"
    if action != security.SYNC_ACTION:
        return None
    # None, not False, when we do not grant it: other rules may still allow
    return True if security.sync_allowed(views.get_settings(datasette), actor) else None


@hookimpl
def register_actions(datasette):
    "Datasette 1.0a20+"
    from datasette.permissions import Action

    return [
        Action(
            name=security.SYNC_ACTION,
            abbr=None,
            description="Start a sync of the Plex library cache",
        )
    ]


@hookimpl
def permission_resources_sql(datasette, actor, action):
    "Datasette 1.0a20+"
    if action != security.SYNC_ACTION:
        return None
    if not security.sync_allowed(views.get_settings(datasette), actor):
        return None
    from datasette.permissions import PermissionSQL

    return PermissionSQL.allow(reason="plexcache: allow_sync / local-only server")
