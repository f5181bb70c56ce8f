"""Request handlers: parse, check, call ``service``, answer.

JSON shapes follow the original spec (the quickstart)::

    GET  /api/library/status -> {track_count, synced_at, is_syncing,
                                 sync_progress, error, plex_connected}
    POST /api/library/sync   -> {started: true, blocking} | 409 {started: false, error}
"""

from __future__ import annotations

import asyncio
import json

from datasette.utils.asgi import Response

from plexcache.errors import ConfigError, PlexcacheError, SyncAlreadyRunning

from . import charts, security, service
from .security import can_sync, can_view


def get_settings(datasette) -> service.PluginSettings:
    "The plugin's settings for this Datasette instance, computed once"
    settings = getattr(datasette, "_plexcache_settings", None)
    if settings is None:
        settings = service.settings_from_config(
            datasette.plugin_config(service.PLUGIN_NAME), service.database_paths(datasette)
        )
        datasette._plexcache_settings = settings
    return settings


def _json_error(message: str, status: int, **extra) -> Response:
    return Response.json({**extra, "error": message}, status=status)


async def _view_check(datasette, request, settings) -> Response | None:
    if not await can_view(datasette, request.actor, settings.database):
        return _json_error("permission denied", 403)
    return None


async def status_view(datasette, request):
    "GET /api/library/status (and /-/plexcache/status.json)"
    settings = get_settings(datasette)
    if denied := await _view_check(datasette, request, settings):
        return denied
    status = await asyncio.to_thread(service.library_status, settings)
    return Response.json(status, headers={"cache-control": "no-store"})


async def sync_view(datasette, request):
    """POST /api/library/sync (and /-/plexcache/sync): start a background sync

    A JSON client gets the spec's JSON; the progress page's no-JavaScript form
    gets a redirect back with a message.
    """
    if request.method != "POST":
        return Response.json(
            {"started": False, "error": "use POST to start a sync"},
            status=405,
            headers={"allow": "POST"},
        )
    # Refused outright, before the body is read: a cross-site form gets a 403,
    # not a redirect that would leave a message in the victim's session.
    reason = security.cross_origin_reason(request.headers, request.scheme, request.host)
    reason = reason or security.foreign_host_reason(
        get_settings(datasette), request.actor, request.host
    )
    if reason:
        return _json_error(reason, 403, started=False)
    full, is_form = await _read_options(request)
    response = await _sync(datasette, request, full)
    if not is_form:
        return response
    body = json.loads(response.body)
    if body.get("started"):
        datasette.add_message(request, "Sync started", datasette.INFO)
    else:
        datasette.add_message(request, body.get("error", "Sync not started"), datasette.ERROR)
    return Response.redirect(datasette.urls.path("/-/plexcache"))


async def _sync(datasette, request, full: bool) -> Response:
    settings = get_settings(datasette)
    if not await can_sync(datasette, request.actor):
        return _json_error(
            f"permission denied: starting a sync needs the {security.SYNC_ACTION} permission",
            403,
            started=False,
        )
    db = datasette.databases.get(settings.database) if settings.database else None
    if db is None:
        return _json_error(
            settings.config_error or "no cache database is attached", 400, started=False
        )
    if not db.is_mutable:
        return _json_error(
            f"database {settings.database!r} is opened immutable (-i): serve it without -i to sync",
            400,
            started=False,
        )
    try:
        blocking = await asyncio.to_thread(_start, settings, full)
    except SyncAlreadyRunning:
        return _json_error("Sync already in progress", 409, started=False)
    except ConfigError as e:
        return _json_error(settings.redact(str(e)), 400, started=False)
    except PlexcacheError as e:
        return _json_error(settings.redact(str(e)), 500, started=False)
    return Response.json({"started": True, "blocking": blocking})


def _start(settings, full: bool) -> bool:
    "Start the child; True (blocking) when the cache was empty"
    before = service.library_status(settings, check_plex=False)
    service.start_sync(settings, full=full, trigger="web")
    return before["track_count"] == 0


async def _read_options(request) -> tuple[bool, bool]:
    '(full, is_form) from ?full=1, a JSON body {"full": true} or the page\'s form'
    content_type = request.headers.get("content-type") or ""
    is_form = content_type.startswith("application/x-www-form-urlencoded")
    full = request.args.get("full") in ("1", "true")
    if is_form:
        form = await request.post_vars()
        full = full or form.get("full") in ("1", "true", "on")
    elif "json" in content_type:
        try:
            body = json.loads((await request.post_body()) or b"{}")
        except (ValueError, UnicodeDecodeError):
            body = None
        full = full or (isinstance(body, dict) and body.get("full") is True)
    return full, is_form


async def runs_view(datasette, request):
    "GET /-/plexcache/runs.json: recent sync_runs rows"
    settings = get_settings(datasette)
    if denied := await _view_check(datasette, request, settings):
        return denied
    runs = await asyncio.to_thread(service.recent_runs, settings)
    chart = (
        charts.runs_chart(runs, settings.database, datasette.urls) if settings.database else None
    )
    # chart: the progress page redraws its picture when a run finishes
    return Response.json({"runs": runs, "chart": chart}, headers={"cache-control": "no-store"})


async def live_view(datasette, request):
    "GET /-/plexcache/live.json: what the live cache (``plexcache watch``) is doing"
    settings = get_settings(datasette)
    if denied := await _view_check(datasette, request, settings):
        return denied
    live = await asyncio.to_thread(service.live_state, settings)
    return Response.json(live, headers={"cache-control": "no-store"})


async def page_view(datasette, request):
    "GET /-/plexcache: state, live progress, sync history, Refresh (.json for data)"
    settings = get_settings(datasette)
    if denied := await _view_check(datasette, request, settings):
        return denied
    status, runs, live = await asyncio.gather(
        asyncio.to_thread(service.library_status, settings),
        asyncio.to_thread(service.recent_runs, settings),
        asyncio.to_thread(service.live_state, settings),
    )
    allowed = await can_sync(datasette, request.actor)
    data = {
        "database": settings.database,
        "status": status,
        "live": live,
        "runs": runs,
        "can_sync": allowed,
        "stale_after_hours": settings.stale_after_hours,
    }
    if request.url_vars.get("format") == "json":
        return Response.json(data, headers={"cache-control": "no-store"})
    return Response.html(
        await datasette.render_template(
            "plexcache.html",
            {
                **data,
                "plex_url": settings.redact(settings.plex.url) if settings.plex.url else None,
                "runs_view": [service.describe_run(r) for r in runs],
                "stale": service.is_stale(status["synced_at"], settings.stale_after_hours),
                "runs_chart": charts.runs_chart(runs, settings.database, datasette.urls)
                if settings.database
                else None,
            },
            request=request,
        )
    )


# ---- the library overview (#16) ------------------------------------------------


async def overview(datasette, request) -> dict | None:
    """The overview as the home page shows it (``charts.overview_context``), or
    None: no cache database, or the actor may not see it. Reads the
    precomputed numbers (``plexcache.overview``) on Datasette's read
    connection: a few small queries, whatever the library's size."""
    from plexcache import overview as core_overview

    settings = get_settings(datasette)
    db = datasette.databases.get(settings.database) if settings.database else None
    if db is None or not await can_view(datasette, request.actor, settings.database):
        return None
    data = await db.execute_fn(core_overview.read)
    return charts.overview_context(data, settings.database, datasette.urls)


async def overview_view(datasette, request):
    "GET /-/plexcache/overview.json: the overview's figures and chart specs"
    settings = get_settings(datasette)
    if denied := await _view_check(datasette, request, settings):
        return denied
    result = await overview(datasette, request)
    if result is None:
        return _json_error(settings.config_error or "no cache database is attached", 404)
    return Response.json(result, headers={"cache-control": "no-store"})
