"""Issue #15 in headless Chromium: with `plexcache serve` keeping the cache live, the
footer says so, a table page reloads with the new count when a change lands on the
(simulated) Plex server, and the progress page shows the connection state and the
live syncs in its history without a reload."""

from __future__ import annotations

import pytest

# pytestmark: the browser tests' marks (browser; skipped without Chromium); browser: a fixture
from test_browser import Serve, Sim, browser, cli_sync, expect, pytestmark  # noqa: F401
from test_browser import page as page  # noqa: F401, PLC0414 (the fixture: 1100x760, no page errors)

TRACKS = 1500


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "A synced cache served with the live cache on"
    db = tmp_path_factory.mktemp("live") / "library_cache.db"
    sim = Sim(tracks=TRACKS, seed=5)
    try:
        cli_sync(db, sim)
        srv = Serve(db, sim, sync_on_start=False, watch=True)
    except BaseException:
        sim.stop()
        raise
    srv.db, srv.sim = db, sim
    yield srv
    srv.stop()
    sim.stop()


def mutate(server, op, **args):
    return server.sim.admin("mutate", {"op": op, "args": args})["result"]


def test_a_table_page_reloads_when_a_change_lands(server, page):
    page.goto(server.url + "/library_cache/tracks")
    live = page.locator("#plexcache-live")
    expect(live).to_have_text("● Live", timeout=20000)
    expect(live).to_have_attribute("title", "Live: changes in Plex show up here within seconds")
    expect(page.locator("h3").first).to_contain_text(f"{TRACKS:,} rows")
    page.evaluate("window.plexcacheBeforeChange = true")
    mutate(server, "add_tracks", n=3)
    expect(page.locator("h3").first).to_contain_text(f"{TRACKS + 3:,} rows", timeout=20000)
    assert page.evaluate("window.plexcacheBeforeChange") is None  # a fresh page: it reloaded
    expect(page.locator("#plexcache-footer")).to_contain_text(f"{TRACKS + 3:,} tracks")


def test_a_page_with_a_focused_input_does_not_reload(server, page):
    page.goto(server.url + "/library_cache/tracks")
    expect(page.locator("#plexcache-live")).to_have_text("● Live", timeout=20000)
    page.evaluate("window.plexcacheBeforeChange = true")
    search = page.locator("input#_search")
    search.click()
    search.type("half-typed")
    before = page.locator("#plexcache-footer .plexcache-count").inner_text()
    mutate(server, "add_tracks", n=1)
    expect(page.locator("#plexcache-footer .plexcache-count")).not_to_have_text(
        before, timeout=20000
    )
    assert page.evaluate("window.plexcacheBeforeChange") is True  # the reader's typing is safe
    assert search.input_value() == "half-typed"


def test_the_progress_page_shows_the_connection_and_live_syncs(server, page):
    page.goto(server.url + "/-/plexcache")
    field = page.locator("[data-plexcache=live]")
    expect(field).to_have_text("Live: changes in Plex show up here within seconds", timeout=20000)
    page.evaluate("window.plexcacheBeforeChange = true")
    rows = page.locator("tbody[data-plexcache=runs] tr")
    key = server.sim.admin("query", {"op": "track_keys"})["result"][11]
    mutate(server, "edit_track", key=key, title="Renamed while you look")
    expect(rows.first).to_contain_text("live", timeout=20000)
    expect(rows.first).to_contain_text("watch")
    expect(rows.first).to_contain_text("succeeded")
    assert page.evaluate("window.plexcacheBeforeChange") is True  # updated in place
