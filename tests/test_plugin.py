"""The Datasette plugin through ``datasette.client``, on 0.65 and on 1.0a.

No network and no real sync: Plex reachability is faked and ``spawn_sync``
is replaced by a stand-in that takes the real lock, as the child would.
One test at the end runs a real ``plexcache sync`` against the simulator
when the core has it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import datasette_plexcache
import pytest
import sqlite_utils
from datasette.version import __version__ as datasette_version
from datasette_plexcache import metadata as plexcache_metadata
from datasette_plexcache import security, service
from datasette_test import Datasette, actor_cookie

from plexcache import serve as plexcache_app
from plexcache.lock import SyncLock
from plexcache.schema import ensure_shape
from plexcache.status import INTERRUPTED_MESSAGE

DATASETTE_1 = not datasette_version.startswith("0.")
TOKEN = "Zkfs-SECRET_tok3n-xyz"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- fixtures ---------------------------------------------------------------


@pytest.fixture
def cache(tmp_path):
    "An empty cache with the full schema, like a first `plexcache serve`"
    path = tmp_path / "library_cache.db"
    db = sqlite_utils.Database(path)
    db.enable_wal()
    ensure_shape(db)
    db.close()
    return path


def add_tracks(path, n: int, synced_at: str | None = None):
    db = sqlite_utils.Database(path)
    rows = [
        {
            "rating_key": str(1000 + i),
            "title": f"Song {i}",
            "artist": f"Artist {i % 7}",
            "album": f"Album {i % 11}",
            "duration_ms": 180000 + i,
            "year": 1970 + i % 50,
            "genres": json.dumps(["Rock", "Indie"] if i % 2 else ["Jazz"]),
            "is_live": i % 5 == 0,
            "play_count": i % 3,
            "added_at": iso(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i)),
        }
        for i in range(n)
    ]
    db["tracks"].insert_all(rows)
    db["sync_state"].upsert(
        {
            "id": 1,
            "last_sync_at": synced_at or iso(datetime.now(UTC) - timedelta(hours=2)),
            "track_count": n,
            "sync_duration_ms": 1234,
        },
        pk="id",
    )
    db.close()


def add_run(path, status: str, *, current=0, total=0, error=None, mode="full"):
    db = sqlite_utils.Database(path)
    db["sync_runs"].insert(
        {
            "started_at": iso(datetime.now(UTC) - timedelta(minutes=5)),
            "finished_at": None if status == "running" else iso(datetime.now(UTC)),
            "mode": mode,
            "status": status,
            "phase": "tracks",
            "progress_current": current,
            "progress_total": total,
            "tracks_added": 3,
            "tracks_updated": 2,
            "tracks_removed": 1,
            "duration_ms": None if status == "running" else 2500,
            "error": error,
            "trigger": "cli",
        }
    )
    db.close()


class FakePlex:
    "Stands in for plexcache.status.plex_reachable"

    def __init__(self):
        self.connected = True
        self.error = None
        self.calls = 0

    def __call__(self, config, ttl=None):
        self.calls += 1
        return self.connected, self.error


@pytest.fixture
def plex(monkeypatch):
    fake = FakePlex()
    monkeypatch.setattr("plexcache.status.plex_reachable", fake)
    monkeypatch.setenv("PLEXCACHE_TEST_TOKEN", TOKEN)
    return fake


class FakeChild:
    "What spawn_sync returns, holding the real lock like the sync child does"

    def __init__(self, lock):
        self.lock = lock
        self.pid = 0

    def poll(self):
        return None if self.lock.held else 0

    def terminate(self):
        self.lock.release()

    def wait(self, timeout=None):
        return 0

    kill = terminate


@pytest.fixture
def spawned(monkeypatch):
    "Replace spawn_sync: take the cache's lock (SyncAlreadyRunning if taken), record the call"
    calls = []

    def fake_spawn_sync(db_path, config, *, full=False, trigger="web", log_path=None, **kw):
        lock = SyncLock(db_path).acquire(timeout=0.1)
        calls.append({"db_path": db_path, "full": full, "trigger": trigger, "url": config.url})
        child = FakeChild(lock)
        return child

    monkeypatch.setattr("plexcache.process.spawn_sync", fake_spawn_sync)
    yield calls
    service.stop_children()


def make_ds(cache, *, plugin=None, immutable=False, metadata=None, settings=None, permissions=None):
    plugin_config = {
        "plex_url": "http://plex.invalid:32400",
        "plex_token": {"$env": "PLEXCACHE_TEST_TOKEN"},
        "bind_host": "127.0.0.1",
        "sync_on_start": False,
        "watch": False,  # no `plexcache watch` child for a fake server
        **(plugin or {}),
    }
    kwargs = {"plugin_config": {"plexcache": plugin_config}}
    if metadata:
        kwargs["metadata"] = metadata
    if settings:
        kwargs["settings"] = settings
    if permissions:
        kwargs["permissions"] = permissions
    if immutable:
        return Datasette([], immutables=[str(cache)], **kwargs)
    return Datasette([str(cache)], **kwargs)


async def csrf_cookies_and_token(ds, extra_cookies=None):
    "Load a page like a browser: the ds_csrftoken cookie (0.65) and the token in the page"
    response = await ds.client.get("/", cookies=extra_cookies or {})
    config = page_config(response.text)
    cookies = dict(extra_cookies or {})
    if "ds_csrftoken" in response.cookies:
        cookies["ds_csrftoken"] = response.cookies["ds_csrftoken"]
    return cookies, config["csrftoken"]


def page_config(html: str) -> dict:
    match = re.search(r"window\.plexcacheConfig = (\{.*?\});", html)
    assert match, "plexcacheConfig missing from the page"
    return json.loads(match.group(1))


# ---- packaging ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_plugins_json_has_static_and_templates(cache, plex):
    ds = make_ds(cache)
    response = await ds.client.get("/-/plugins.json")
    plugin = next(p for p in response.json() if p["name"] == "plexcache")
    assert plugin["static"] is True
    assert plugin["templates"] is True
    for hook in ("register_routes", "extra_body_script", "startup", "menu_links"):
        assert hook in plugin["hooks"]


@pytest.mark.asyncio
async def test_static_files_served(cache, plex):
    ds = make_ds(cache)
    page = (await ds.client.get("/")).text
    for name in ("plexcache.js", "plexcache.css"):
        url = re.search(r'"(/-/static-plugins/[^"]*' + re.escape(name) + r'[^"]*)"', page).group(1)
        response = await ds.client.get(url.split("?")[0])
        assert response.status_code == 200, url


# ---- status -------------------------------------------------------------------

STATUS_KEYS = {"track_count", "synced_at", "is_syncing", "sync_progress", "error", "plex_connected"}


@pytest.mark.asyncio
async def test_status_empty(cache, plex):
    ds = make_ds(cache)
    response = await ds.client.get("/api/library/status")
    assert response.status_code == 200
    assert response.json() == {
        "track_count": 0,
        "synced_at": None,
        "is_syncing": False,
        "sync_progress": None,
        "error": None,
        "plex_connected": True,
    }


@pytest.mark.asyncio
async def test_status_synced(cache, plex):
    add_tracks(cache, 25, synced_at="2026-02-05T10:30:00Z")
    add_run(cache, "succeeded")
    data = (await make_ds(cache).client.get("/api/library/status")).json()
    assert set(data) == STATUS_KEYS
    assert data["track_count"] == 25
    assert data["synced_at"] == "2026-02-05T10:30:00Z"
    assert data["is_syncing"] is False
    assert data["sync_progress"] is None
    assert data["error"] is None


@pytest.mark.asyncio
async def test_status_syncing_with_progress(cache, plex):
    add_tracks(cache, 25)
    add_run(cache, "running", current=5000, total=18432)
    with SyncLock(cache):
        data = (await make_ds(cache).client.get("/api/library/status")).json()
    assert data["is_syncing"] is True
    assert data["sync_progress"] == {"current": 5000, "total": 18432}
    assert data["track_count"] == 25


@pytest.mark.asyncio
async def test_status_failed_run_reports_error(cache, plex):
    add_tracks(cache, 3)
    add_run(cache, "failed", error="Plex answered 500 on page 3")
    data = (await make_ds(cache).client.get("/api/library/status")).json()
    assert data["error"] == "Plex answered 500 on page 3"
    assert data["is_syncing"] is False


@pytest.mark.asyncio
async def test_status_interrupted_run_recovers(cache, plex):
    "A run left 'running' by a dead process is reported and marked interrupted"
    add_run(cache, "running", current=10, total=100)
    data = (await make_ds(cache).client.get("/api/library/status")).json()
    assert data["is_syncing"] is False
    assert data["sync_progress"] is None
    assert data["error"] == INTERRUPTED_MESSAGE
    status = sqlite3.connect(cache).execute("select status from sync_runs").fetchone()[0]
    assert status == "interrupted"


@pytest.mark.asyncio
async def test_startup_recovers_interrupted_runs(cache, plex):
    add_run(cache, "running", current=10, total=100)
    ds = make_ds(cache)
    await ds.invoke_startup()
    status = sqlite3.connect(cache).execute("select status from sync_runs").fetchone()[0]
    assert status == "interrupted"


@pytest.mark.asyncio
async def test_status_plex_offline(cache, plex):
    add_tracks(cache, 3)
    plex.connected = False
    plex.error = "cannot reach the Plex server at http://plex.invalid:32400: connection refused"
    data = (await make_ds(cache).client.get("/api/library/status")).json()
    assert data["plex_connected"] is False
    assert "connection refused" in data["error"]


@pytest.mark.asyncio
async def test_status_no_plex_configured(cache, plex, monkeypatch):
    for var in (
        "PLEX_URL",
        "PLEX_TOKEN",
        "PLEXAPI_AUTH_SERVER_BASEURL",
        "PLEXAPI_AUTH_SERVER_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("plexcache.config._plexapi_setting", lambda key: None)
    ds = Datasette([str(cache)], plugin_config={"plexcache": {"sync_on_start": False}})
    data = (await ds.client.get("/api/library/status")).json()
    assert data["plex_connected"] is False
    assert plex.calls == 0


@pytest.mark.asyncio
async def test_status_reflects_cli_sync_through_the_database(cache, plex):
    "Progress written by another process's sync row shows up on the next poll"
    ds = make_ds(cache)
    assert (await ds.client.get("/api/library/status")).json()["is_syncing"] is False
    with SyncLock(cache):
        add_run(cache, "running", current=0, total=18432)
        first = (await ds.client.get("/api/library/status")).json()
        with sqlite3.connect(cache) as conn:
            conn.execute("update sync_runs set progress_current = 9000")
        second = (await ds.client.get("/api/library/status")).json()
    assert first["sync_progress"] == {"current": 0, "total": 18432}
    assert second["sync_progress"] == {"current": 9000, "total": 18432}


@pytest.mark.asyncio
async def test_status_alias_and_not_cached(cache, plex):
    ds = make_ds(cache)
    a = await ds.client.get("/api/library/status")
    b = await ds.client.get("/-/plexcache/status.json")
    assert a.json() == b.json()
    assert a.headers["cache-control"] == "no-store"


@pytest.mark.asyncio
async def test_status_respects_view_permissions(cache, plex):
    allow = {"allow": {"id": "root"}}
    ds = make_ds(cache, metadata=allow)
    assert (await ds.client.get("/api/library/status")).status_code == 403
    cookies = {"ds_actor": actor_cookie(ds, {"id": "root"})}
    assert (await ds.client.get("/api/library/status", cookies=cookies)).status_code == 200


# ---- sync: method, 409, blocking ----------------------------------------------


@pytest.mark.asyncio
async def test_get_never_starts_a_sync(cache, plex, spawned):
    ds = make_ds(cache)
    for path in ("/api/library/sync", "/-/plexcache/sync"):
        response = await ds.client.get(path)
        assert response.status_code == 405
        assert response.json()["started"] is False
    assert spawned == []


@pytest.mark.asyncio
async def test_post_starts_sync_blocking_when_empty(cache, plex, spawned):
    ds = make_ds(cache)
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 200
    assert response.json() == {"started": True, "blocking": True}
    assert spawned[0]["trigger"] == "web"
    assert spawned[0]["full"] is False
    status = (await ds.client.get("/api/library/status")).json()
    assert status["is_syncing"] is True


@pytest.mark.asyncio
async def test_post_not_blocking_when_cache_has_tracks(cache, plex, spawned):
    add_tracks(cache, 5)
    ds = make_ds(cache)
    response = await ds.client.post("/-/plexcache/sync", json={"full": True})
    assert response.json() == {"started": True, "blocking": False}
    assert spawned[0]["full"] is True


@pytest.mark.asyncio
async def test_second_post_gets_409(cache, plex, spawned):
    ds = make_ds(cache)
    assert (await ds.client.post("/api/library/sync", json={})).status_code == 200
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 409
    assert response.json()["started"] is False
    assert response.json()["error"]
    assert len(spawned) == 1


@pytest.mark.asyncio
async def test_409_when_another_process_syncs(cache, plex, spawned):
    "The CLI holds the lock: the web refuses, whoever asks"
    ds = make_ds(cache)
    with SyncLock(cache):
        response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 409
    assert response.json() == {"started": False, "error": "Sync already in progress"}


@pytest.mark.asyncio
async def test_concurrent_posts_start_exactly_one(cache, plex, spawned):
    ds = make_ds(cache)
    responses = await asyncio.gather(
        *[ds.client.post("/api/library/sync", json={}) for _ in range(10)]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1
    assert codes.count(409) == 9


@pytest.mark.asyncio
async def test_refuses_immutable_database(cache, plex, spawned):
    ds = make_ds(cache, immutable=True)
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 400
    assert "immutable" in response.json()["error"]
    assert response.json()["started"] is False
    assert spawned == []


@pytest.mark.asyncio
async def test_no_plex_server_is_a_clear_400(cache, plex, monkeypatch):
    for var in (
        "PLEX_URL",
        "PLEX_TOKEN",
        "PLEXAPI_AUTH_SERVER_BASEURL",
        "PLEXAPI_AUTH_SERVER_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("plexcache.config._plexapi_setting", lambda key: None)
    ds = Datasette(
        [str(cache)],
        plugin_config={"plexcache": {"sync_on_start": False, "bind_host": "127.0.0.1"}},
    )
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 400
    assert "Plex" in response.json()["error"]


# ---- CSRF ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_post_without_cookies(cache, plex, spawned):
    ds = make_ds(cache)
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_post_with_cookies_and_csrf_token(cache, plex, spawned):
    "What the page's fetch() sends: cookies, the token header, JSON"
    ds = make_ds(cache)
    unrelated = {"username-localhost-8888": "jupyter-cookie"}
    cookies, token = await csrf_cookies_and_token(ds, unrelated)
    assert token
    response = await ds.client.post(
        "/api/library/sync",
        json={},
        cookies=cookies,
        headers={"x-csrftoken": token, "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["started"] is True


@pytest.mark.asyncio
async def test_post_with_cookies_without_token(cache, plex, spawned):
    "0.65 refuses a cookie-carrying POST without the token; 1.0a relies on Sec-Fetch-Site"
    ds = make_ds(cache)
    response = await ds.client.post(
        "/api/library/sync", json={}, cookies={"username-localhost-8888": "x"}
    )
    if DATASETTE_1:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert spawned == []


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {"origin": "http://localhost:8888"},
    ],
)
@pytest.mark.asyncio
async def test_cross_site_post_refused(cache, plex, spawned, headers):
    ds = make_ds(cache)
    response = await ds.client.post("/api/library/sync", json={}, headers=headers)
    assert response.status_code == 403
    assert spawned == []


@pytest.mark.asyncio
async def test_same_origin_header_accepted(cache, plex, spawned):
    ds = make_ds(cache)
    response = await ds.client.post(
        "/api/library/sync", json={}, headers={"origin": "http://localhost"}
    )
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_progress_page_form_post(cache, plex, spawned):
    "The no-JavaScript Refresh button: a form POST with the csrftoken field"
    ds = make_ds(cache)
    page = await ds.client.get("/-/plexcache")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    cookies = {}
    if "ds_csrftoken" in page.cookies:
        cookies["ds_csrftoken"] = page.cookies["ds_csrftoken"]
    response = await ds.client.post(
        "/-/plexcache/sync",
        data={"csrftoken": token, "full": "1"},
        cookies=cookies,
        headers={"sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/-/plexcache"
    assert spawned[0]["full"] is True


# ---- permissions ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_local_only_server_lets_anyone_sync(cache, plex, spawned):
    ds = make_ds(cache, plugin={"bind_host": "127.0.0.1"})
    assert (await ds.client.post("/api/library/sync", json={})).status_code == 200


@pytest.mark.parametrize("bind_host", ["0.0.0.0", "192.168.1.20", None])
@pytest.mark.asyncio
async def test_public_server_only_root_syncs(cache, plex, spawned, bind_host):
    ds = make_ds(cache, plugin={"bind_host": bind_host})
    anonymous = await ds.client.post("/api/library/sync", json={})
    assert anonymous.status_code == 403
    assert "plexcache-sync" in anonymous.json()["error"]
    cookies = {"ds_actor": actor_cookie(ds, {"id": "root"})}
    _, token = await csrf_cookies_and_token(ds, cookies)
    page = await ds.client.get("/", cookies=cookies)
    if "ds_csrftoken" in page.cookies:
        cookies["ds_csrftoken"] = page.cookies["ds_csrftoken"]
        token = page_config(page.text)["csrftoken"]
    response = await ds.client.post(
        "/api/library/sync", json={}, cookies=cookies, headers={"x-csrftoken": token}
    )
    assert response.status_code == 200, response.text


@pytest.mark.asyncio
async def test_allow_sync_block(cache, plex, spawned):
    ds = make_ds(cache, plugin={"bind_host": "0.0.0.0", "allow_sync": {"id": ["alice"]}})

    async def post_as(actor_id):
        cookies = {"ds_actor": actor_cookie(ds, {"id": actor_id})}
        page = await ds.client.get("/", cookies=cookies)
        if "ds_csrftoken" in page.cookies:
            cookies["ds_csrftoken"] = page.cookies["ds_csrftoken"]
        token = page_config(page.text)["csrftoken"]
        return await ds.client.post(
            "/api/library/sync", json={}, cookies=cookies, headers={"x-csrftoken": token}
        )

    assert (await post_as("bob")).status_code == 403
    assert (await post_as("alice")).status_code == 200


@pytest.mark.asyncio
async def test_allow_sync_false_even_on_localhost(cache, plex, spawned):
    ds = make_ds(cache, plugin={"allow_sync": False})
    assert (await ds.client.post("/api/library/sync", json={})).status_code == 403


@pytest.mark.asyncio
async def test_datasette_permissions_config_can_grant(cache, plex, spawned):
    "Datasette's own permission config (or another plugin) can still grant the action"
    ds = make_ds(
        cache, plugin={"bind_host": "0.0.0.0"}, permissions={"plexcache-sync": {"id": "carol"}}
    )
    cookies = {"ds_actor": actor_cookie(ds, {"id": "carol"})}
    page = await ds.client.get("/", cookies=cookies)
    if "ds_csrftoken" in page.cookies:
        cookies["ds_csrftoken"] = page.cookies["ds_csrftoken"]
    token = page_config(page.text)["csrftoken"]
    response = await ds.client.post(
        "/api/library/sync", json={}, cookies=cookies, headers={"x-csrftoken": token}
    )
    assert response.status_code == 200, response.text


@pytest.mark.asyncio
async def test_page_config_reports_can_sync(cache, plex):
    public = make_ds(cache, plugin={"bind_host": "0.0.0.0"})
    local = make_ds(cache, plugin={"bind_host": "localhost"})
    assert page_config((await public.client.get("/")).text)["canSync"] is False
    assert page_config((await local.client.get("/")).text)["canSync"] is True


# ---- token never leaks --------------------------------------------------------


@pytest.mark.asyncio
async def test_token_absent_from_every_response(cache, plex, spawned):
    add_tracks(cache, 5)
    # The core never stores a token; this row pretends it did, to check that the
    # plugin's own pages redact anyway (raw table pages show the row as stored).
    add_run(cache, "failed", error=f"request to /library?X-Plex-Token={TOKEN} failed")
    plex.connected = False
    plex.error = f"cannot reach http://plex.invalid:32400 (token {TOKEN})"
    ds = make_ds(cache, plugin={"plex_url": "http://plex.invalid:32400"})
    paths = [
        "/",
        "/library_cache",
        "/library_cache/tracks",
        "/api/library/status",
        "/-/plexcache",
        "/-/plexcache.json",
        "/-/plexcache/runs.json",
        "/-/plexcache/status.json",
        "/-/metadata.json",
        "/-/plugins.json",
        "/-/settings.json",
        "/-/config.json",
        "/-/static-plugins/plexcache/plexcache.js",
    ]
    bodies = [(await ds.client.get(p)).text for p in paths]
    bodies.append((await ds.client.post("/api/library/sync", json={})).text)
    bodies.append((await ds.client.post("/api/library/sync", json={})).text)  # 409
    for path, body in zip(paths + ["POST", "POST 409"], bodies, strict=True):
        assert TOKEN not in body, path
    status = json.loads(bodies[3])
    assert "[token]" in status["error"]


@pytest.mark.asyncio
async def test_sync_log_and_errors_are_redacted(cache, plex, monkeypatch):
    from plexcache.errors import PlexError

    def failing_spawn(*a, **kw):
        raise PlexError(f"something with {TOKEN} inside")

    monkeypatch.setattr("plexcache.process.spawn_sync", failing_spawn)
    ds = make_ds(cache)
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 500
    assert TOKEN not in response.text


# ---- pages, menu, base_url -----------------------------------------------------


@pytest.mark.asyncio
async def test_progress_page_shows_state_and_history(cache, plex):
    add_tracks(cache, 1234)
    add_run(cache, "succeeded")
    add_run(cache, "failed", error="Plex went away")
    ds = make_ds(cache)
    html = (await ds.client.get("/-/plexcache")).text
    assert 'id="plexcache-page"' in html
    assert "1,234" in html
    assert "Plex went away" in html
    assert "Refresh" in html
    assert 'role="progressbar"' in html
    data = (await ds.client.get("/-/plexcache.json")).json()
    assert data["status"]["track_count"] == 1234
    assert [r["status"] for r in data["runs"]] == ["failed", "succeeded"]
    assert data["can_sync"] is True


@pytest.mark.asyncio
async def test_progress_page_while_syncing(cache, plex):
    add_run(cache, "running", current=5000, total=18432)
    with SyncLock(cache):
        html = (await make_ds(cache).client.get("/-/plexcache")).text
    assert "5,000 / 18,432 tracks" in html
    assert 'aria-valuenow="5000"' in html


@pytest.mark.asyncio
async def test_menu_link(cache, plex):
    html = (await make_ds(cache).client.get("/")).text
    assert 'href="/-/plexcache"' in html
    assert "Plex library sync" in html


@pytest.mark.asyncio
async def test_every_page_gets_script_and_config(cache, plex):
    add_tracks(cache, 3)
    ds = make_ds(cache)
    for path in ("/", "/library_cache", "/library_cache/tracks", "/-/plexcache"):
        html = (await ds.client.get(path)).text
        assert "plexcache.js" in html, path
        assert "plexcache.css" in html, path
        config = page_config(html)
        assert config["statusUrl"] == "/api/library/status"
        assert config["syncUrl"] == "/api/library/sync"
        assert config["staleAfterHours"] == 24
    assert page_config((await ds.client.get("/-/plexcache")).text)["progressPage"] is True


@pytest.mark.asyncio
async def test_stale_after_hours_config(cache, plex):
    ds = make_ds(cache, plugin={"stale_after_hours": 6})
    assert page_config((await ds.client.get("/")).text)["staleAfterHours"] == 6


@pytest.mark.asyncio
async def test_base_url(cache, plex, spawned):
    ds = make_ds(cache, settings={"base_url": "/music/"})
    # datasette.client puts base_url in front of every path itself
    status = await ds.client.get("/api/library/status")
    assert str(status.url).endswith("/music/api/library/status")
    assert status.status_code == 200
    assert status.json()["track_count"] == 0
    html = (await ds.client.get("/")).text
    config = page_config(html)
    assert config["statusUrl"] == "/music/api/library/status"
    assert config["syncUrl"] == "/music/api/library/sync"
    assert config["pageUrl"] == "/music/-/plexcache"
    assert "/music/-/static-plugins/plexcache/plexcache.js" in html
    assert 'href="/music/-/plexcache"' in html
    page = await ds.client.get("/-/plexcache")
    assert page.status_code == 200
    assert 'action="/music/-/plexcache/sync"' in page.text
    response = await ds.client.post("/api/library/sync", json={})
    assert response.status_code == 200


# ---- metadata and settings --------------------------------------------------------


def serve_like_ds(cache, **plugin):
    "A Datasette configured as `plexcache serve` configures it"
    from plexcache.config import PlexConfig

    ds = plexcache_app.build_datasette(
        cache,
        PlexConfig(url="http://plex.invalid:32400", token=None),
        host="127.0.0.1",
        plugin_extra={"sync_on_start": False, "watch": False, **plugin},
    )
    return ds


@pytest.mark.asyncio
async def test_serve_settings_and_metadata(cache, plex):
    add_tracks(cache, 60)
    ds = serve_like_ds(cache)
    assert ds.setting("suggest_facets") is False
    html = (await ds.client.get("/library_cache/tracks")).text
    assert "One row per music track" in html
    assert "Track artist" in html  # a column description
    data = (await ds.client.get("/library_cache/tracks.json?_extra=facet_results")).json()
    facets = data["facet_results"]
    if "results" in facets:  # 1.0a shape
        facets = facets["results"]
    assert {"artist", "year", "genres", "is_live"} <= set(facets)
    genre_values = {v["value"] for v in facets["genres"]["results"]}
    assert genre_values == {"Rock", "Indie", "Jazz"}
    # default sort: newest additions first
    rows = (await ds.client.get("/library_cache/tracks.json?_shape=array")).json()
    added = [r["added_at"] for r in rows]
    assert added == sorted(added, reverse=True)


@pytest.mark.asyncio
async def test_search_and_views_and_queries(cache, plex):
    add_tracks(cache, 30)
    ds = serve_like_ds(cache)
    found = (await ds.client.get("/library_cache/tracks.json?_search=Song&_shape=array")).json()
    assert len(found) == 30
    details = (await ds.client.get("/library_cache/track_details.json?_shape=array")).json()
    assert re.fullmatch(r"\d+:\d\d", details[0]["duration"])
    for name in plexcache_metadata.QUERIES:
        response = await ds.client.get(f"/library_cache/{name}.json?_shape=array")
        assert response.status_code == 200, (name, response.text[:300])
    genres = (await ds.client.get("/library_cache/genres_by_decade.json?_shape=array")).json()
    assert {g["genre"] for g in genres} == {"Rock", "Indie", "Jazz"}
    html = (await ds.client.get("/library_cache/sync_runs")).text
    assert "Every sync, newest first" in html


@pytest.mark.asyncio
async def test_label_columns(cache, plex):
    db = sqlite_utils.Database(cache)
    db["artists"].insert({"rating_key": "1", "name": "Björk"})
    db["albums"].insert({"rating_key": "2", "title": "Homogenic", "artist_rating_key": "1"})
    db["tracks"].insert(
        {
            "rating_key": "3",
            "title": "Jóga",
            "artist": "Björk",
            "album": "Homogenic",
            "album_rating_key": "2",
        }
    )
    db.close()
    ds = serve_like_ds(cache)
    html = (await ds.client.get("/library_cache/tracks/3")).text
    assert "Homogenic" in html
    html = (await ds.client.get("/library_cache/albums")).text
    assert "Björk" in html


def test_metadata_has_every_column_described(cache):
    meta = plexcache_metadata.build_metadata("library_cache")
    tables = meta["databases"]["library_cache"]["tables"]
    db = sqlite_utils.Database(cache)
    for name in ("tracks", "albums", "artists", "sections", "sync_state", "sync_runs", "plays", "accounts", "devices",
                 "history_sync"):  # fmt: skip
        missing = set(db[name].columns_dict) - set(tables[name]["columns"])
        assert not missing, (name, missing)
    for name in (
        "track_details",
        "artist_summary",
        "album_summary",
        "listening",
        "plays_per_month",
    ):
        missing = {c.name for c in db[name].columns} - set(tables[name]["columns"])
        assert not missing, (name, missing)


def test_split_for_datasette_1():
    meta = plexcache_metadata.build_metadata("db")
    meta["plugins"] = {"plexcache": {"x": 1}}
    metadata, config = plexcache_metadata.split_for_datasette_1(meta)
    assert config["plugins"] == {"plexcache": {"x": 1}}
    assert "queries" in config["databases"]["db"]
    assert config["databases"]["db"]["tables"]["tracks"]["facets"]
    assert "facets" not in metadata["databases"]["db"]["tables"]["tracks"]
    assert metadata["databases"]["db"]["tables"]["tracks"]["columns"]["title"]


# ---- plain functions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host,expected",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("example.com", False),
        (None, False),
    ],
)
def test_is_loopback_host(host, expected):
    assert security.is_loopback_host(host) is expected


def test_cross_origin_reason():
    check = security.cross_origin_reason
    assert check({}, "http", "localhost:5765") is None
    assert check({"sec-fetch-site": "same-origin"}, "http", "localhost:5765") is None
    assert check({"sec-fetch-site": "none"}, "http", "x") is None
    assert check({"sec-fetch-site": "cross-site"}, "http", "x")
    assert check({"origin": "http://localhost:5765"}, "http", "localhost:5765") is None
    assert check({"origin": "http://localhost:5766"}, "http", "localhost:5765")
    assert check({"origin": "https://localhost:5765"}, "http", "localhost:5765")
    assert check({"origin": "null"}, "http", "localhost:5765")


def test_is_stale():
    now = datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
    assert service.is_stale(None, 24, now)
    assert not service.is_stale("2026-02-05T10:30:00Z", 24, now)
    assert service.is_stale("2026-02-04T11:59:00Z", 24, now)
    assert service.is_stale("2026-02-05T10:30:00Z", 1, now)
    assert service.is_stale("garbage", 24, now)


def test_format_duration():
    assert service.format_duration(None) == ""
    assert service.format_duration(1234) == "1.2 s"
    assert service.format_duration(95432) == "1 min 35 s"
    assert service.format_duration(2 * 3600 * 1000 + 60000) == "2 h 1 min"


def test_pick_cache_database(tmp_path, cache):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (id integer)").connection.close()
    assert service.pick_cache_database({"library_cache": str(cache)}) == "library_cache"
    assert service.pick_cache_database({"other": str(other), "mine": str(cache)}) == "mine"
    assert service.pick_cache_database({"other": str(other)}) is None
    assert service.pick_cache_database({"_memory": None}) is None


@pytest.mark.asyncio
async def test_dormant_without_a_cache(tmp_path, plex, spawned):
    "Installed next to unrelated databases, the plugin adds nothing and syncs nothing"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (id integer)").connection.close()
    ds = Datasette(
        [str(other)],
        plugin_config={"plexcache": {"plex_url": "http://plex.invalid:32400", "bind_host": "::1"}},
    )
    await ds.invoke_startup()
    html = (await ds.client.get("/")).text
    assert "plexcacheConfig" not in html
    assert "plexcache.js" not in html
    assert "/-/plexcache" not in html
    status = await ds.client.get("/api/library/status")
    assert status.json()["error"]
    assert (await ds.client.post("/api/library/sync", json={})).status_code == 400
    assert spawned == []
    assert sqlite3.connect(other).execute("select name from sqlite_master").fetchall() == [("t",)]


def test_sync_allowed_policy():
    from plexcache.config import PlexConfig

    def settings(**kw):
        return service.PluginSettings(database="d", db_path=None, plex=PlexConfig(url=None), **kw)

    assert security.sync_allowed(settings(bind_host="127.0.0.1"), None)
    assert not security.sync_allowed(settings(bind_host="0.0.0.0"), None)
    assert security.sync_allowed(settings(bind_host="0.0.0.0"), {"id": "root"})
    assert not security.sync_allowed(settings(bind_host=None), {"id": "alice"})
    assert security.sync_allowed(settings(bind_host="0.0.0.0", allow_sync=True), None)
    assert not security.sync_allowed(settings(bind_host="127.0.0.1", allow_sync=False), None)
    assert security.sync_allowed(settings(allow_sync={"id": "alice"}), {"id": "alice"})


def test_should_sync_on_start(cache, plex):
    from plexcache.config import PlexConfig

    configured = PlexConfig(url="http://plex.invalid:32400")
    s = service.PluginSettings(database="library_cache", db_path=cache, plex=configured)
    assert service.should_sync_on_start(s)  # empty
    add_tracks(cache, 3, synced_at=iso(datetime.now(UTC) - timedelta(minutes=1)))
    assert not service.should_sync_on_start(s)  # fresh
    s.stale_after_hours = 0.01
    assert service.should_sync_on_start(s)  # stale
    s.plex = PlexConfig(url=None)
    assert not service.should_sync_on_start(s)  # no server
    s.plex, s.sync_on_start = configured, False
    assert not service.should_sync_on_start(s)


@pytest.mark.asyncio
async def test_startup_spawns_sync_for_empty_cache(cache, plex, spawned):
    ds = make_ds(cache, plugin={"sync_on_start": True})
    await ds.invoke_startup()
    assert [c["trigger"] for c in spawned] == ["startup"]


@pytest.mark.asyncio
async def test_startup_does_not_sync_fresh_cache(cache, plex, spawned):
    add_tracks(cache, 3, synced_at=iso(datetime.now(UTC)))
    ds = make_ds(cache, plugin={"sync_on_start": True})
    await ds.invoke_startup()
    assert spawned == []


def test_plex_health_never_waits_after_first_answer(monkeypatch):
    "A slow Plex costs the first status call only; later calls get the last answer at once"
    import threading
    import time

    from plexcache.config import PlexConfig

    release = threading.Event()
    answers = [(True, None), (False, "Plex stopped answering")]

    def slow_check(config, ttl=None):
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer[0] is False:
            release.wait(5)
        return answer

    monkeypatch.setattr("plexcache.status.plex_reachable", slow_check)
    health = service.PlexHealth(ttl=0.05)
    config = PlexConfig(url="http://plex.invalid:32400")
    assert health.get(config) == (True, None)
    time.sleep(0.06)
    start = time.monotonic()
    assert health.get(config) == (True, None)  # stale answer, re-check started
    assert health.get(config) == (True, None)  # only one re-check in flight
    assert time.monotonic() - start < 0.5
    release.set()
    for _ in range(100):
        if health.get(config)[0] is False:
            break
        time.sleep(0.02)
    assert health.get(config)[1] == "Plex stopped answering"


def test_demo_refuses_real_cache(tmp_path, monkeypatch):
    from plexcache.errors import ConfigError

    real = tmp_path / "real.db"
    monkeypatch.setenv("PLEXCACHE_DB", str(real))
    with pytest.raises(ConfigError):
        plexcache_app.check_demo_path(real)
    plexcache_app.check_demo_path(tmp_path / "demo.db")


def test_plugin_config_for_serve_keeps_token_out(tmp_path):
    from plexcache.config import PlexConfig

    config = plexcache_app.plugin_config_for(
        tmp_path / "library_cache.db", PlexConfig(url="http://h:32400", token=TOKEN), "0.0.0.0"
    )
    assert TOKEN not in json.dumps(config)
    assert config["plex_token"] == {"$env": "PLEX_TOKEN"}
    assert config["bind_host"] == "0.0.0.0"
    assert config["database"] == "library_cache"


def test_hooks_module_is_a_package():
    "Datasette finds static/ and templates/ only for a package on Python 3.11"
    assert datasette_plexcache.__file__.endswith("__init__.py")
