"""Real-browser tests of the overview, the tracks page's first screen and the
progress page's chart: headless Chromium at 1280x900 against `plexcache serve`
on a cache synced from the simulator.

Every request a page makes is recorded; each test ends by checking that all
of them went to the server under test on 127.0.0.1 (the charts' library is
vendored: a local music tool works offline and leaks nothing).
"""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

# pytestmark: the browser tests' marks (browser; skipped without Chromium); browser: a fixture
from test_browser import Serve, Sim, browser, cli_sync, expect, pytestmark  # noqa: F401

VIEWPORT = {"width": 1280, "height": 900}
TRACKS = 2500
CHARTS = ["decades", "genres", "added", "artists", "plays"]
PLAYS = [  # (rating_key, viewed_at): the listening chart's data
    ("1", "2025-11-03T20:15:00Z"),
    ("2", "2025-11-04T08:00:00Z"),
    ("3", "2025-12-24T18:30:00Z"),
    ("1", "2026-01-01T00:05:00Z"),
    ("4", "2026-01-15T12:00:00Z"),
    ("5", "2026-01-20T12:00:00Z"),
]
ALL_DRAWN = (
    "() => [...document.querySelectorAll('figure.plexcache-chart')]"
    ".every(f => f.dataset.chartState === 'drawn' || f.dataset.chartRows === '0')"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "One synced cache (with a plays table, as the history sync will add), served for the module"
    db = tmp_path_factory.mktemp("overview") / "library_cache.db"
    sim = Sim(tracks=TRACKS, seed=11)
    try:
        cli_sync(db, sim, "--no-history")  # the plays below are the listening chart's data
        with sqlite3.connect(db) as conn:
            conn.execute(
                "create table if not exists plays (history_id INTEGER PRIMARY KEY, rating_key TEXT, account_id INTEGER, "
                "device_id INTEGER, viewed_at TEXT, section_id INTEGER, title TEXT, artist TEXT, album TEXT)"
            )
            conn.executemany(
                "insert into plays (rating_key, account_id, device_id, viewed_at, section_id, title, artist, album) "
                "values (?, 1, 1, ?, 1, 'Song', 'Artist', 'Album')",
                PLAYS,
            )
        srv = Serve(db, sim, sync_on_start=False)
    except BaseException:
        sim.stop()
        raise
    srv.db, srv.sim = db, sim
    yield srv
    srv.stop()
    sim.stop()


@pytest.fixture
def page(request, server):
    "A 1280x900 page; every request it makes must go to the server under test"
    chromium = request.getfixturevalue("browser")  # test_browser's module-scoped Chromium
    context = chromium.new_context(viewport=VIEWPORT, locale="en-US")
    pg = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors
    assert requests, "no request recorded"
    origin = server.url.rstrip("/")
    assert origin.startswith("http://127.0.0.1:")
    foreign = [u for u in requests if not (u == origin or u.startswith(origin + "/"))]
    assert foreign == [], foreign


def query(db, sql, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def open_overview(page, server):
    page.goto(server.url + "/")
    page.wait_for_function(ALL_DRAWN, timeout=20000)


def bars(page, chart_id):
    return page.locator(f"#chart-{chart_id} svg [aria-roledescription='bar']")


def rows_shown(page) -> int:
    "The row count a Datasette table or query page reports"
    heading = page.locator("h3").filter(has_text=re.compile(r"[\d,]+ rows?")).first
    return int(re.search(r"([\d,]+) rows?", heading.inner_text()).group(1).replace(",", ""))


def test_overview_draws_its_charts_from_the_cache(page, server):
    open_overview(page, server)
    db = server.db
    figures = page.locator(".plexcache-figures li")
    assert figures.all_inner_texts() == [
        f"{TRACKS:,}\ntracks",
        f"{query(db, 'select count(*) from albums')[0][0]:,}\nalbums",
        f"{query(db, 'select count(*) from artists')[0][0]:,}\nartists",
        f"{query(db, 'select sum(duration_ms) / 3600000.0 from tracks')[0][0]:,.0f}\nhours of music",
    ]
    ids = page.locator("figure.plexcache-chart").evaluate_all("fs => fs.map(f => f.id)")
    assert ids == [f"chart-{c}" for c in CHARTS]
    decades = query(
        db,
        "select (year / 10) * 10 as d, count(*) from tracks where year is not null group by d order by d",
    )
    months = query(
        db, "select count(distinct substr(added_at, 1, 7)) from tracks where added_at is not null"
    )[0][0]
    expected_bars = {
        "decades": len(decades),
        "genres": 15,
        "added": months,
        "artists": 15,
        "plays": 3,
    }
    for chart_id, n in expected_bars.items():
        expect(bars(page, chart_id)).to_have_count(n)
    # the bars carry the cache's numbers (Vega's ARIA labels: "decade: 1990s; tracks: 312")
    labels = bars(page, "decades").evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
    for (decade, n), label in zip(decades, labels, strict=True):
        assert f"decade: {decade}s" in label and f"tracks: {n:,}" in label, label
    plays = bars(page, "plays").evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
    assert [re.search(r"plays: (\d+)", p).group(1) for p in plays] == ["2", "1", "3"]
    # the stock index is still there, below
    expect(page.locator("#plexcache-databases")).to_have_text("All databases and tables")
    expect(page.locator("a[href='/library_cache']").first).to_be_visible()


def test_each_charts_link_leads_to_rows(page, server):
    open_overview(page, server)
    links = page.locator("a.plexcache-chart-link").evaluate_all(
        "as => as.map(a => [a.closest('figure').id, a.getAttribute('href')])"
    )
    assert [chart for chart, _ in links] == [f"chart-{c}" for c in CHARTS]
    for chart, href in links:
        page.goto(server.url + href)
        table = page.locator("table.rows-and-columns tbody tr")
        expect(table.first).to_be_visible()
        assert table.count() > 0, chart
        if "#facet-" in href:  # a facet of the tracks table: its box is on the page
            expect(page.locator(href[href.index("#") :])).to_be_visible()


def test_a_click_on_a_bar_shows_its_rows(page, server):
    open_overview(page, server)
    bar = bars(page, "decades").first
    label = bar.get_attribute("aria-label")
    count = int(re.search(r"tracks: ([\d,]+)", label).group(1).replace(",", ""))
    decade = int(re.search(r"decade: (\d+)s", label).group(1))
    with page.expect_navigation():
        bar.click()
    args = parse_qs(urlsplit(page.url).query)
    assert args == {"year__gte": [str(decade)], "year__lt": [str(decade + 10)]}
    assert rows_shown(page) == count
    open_overview(page, server)
    with page.expect_navigation():
        bars(page, "plays").first.click()
    assert parse_qs(urlsplit(page.url).query) == {"viewed_at__startswith": ["2025-11"]}
    assert rows_shown(page) == 2


@pytest.mark.parametrize("where", ["table", "facet click"])
def test_tracks_page_shows_rows_on_the_first_screen(page, server, where):
    page.goto(server.url + "/library_cache/tracks")
    if where == "facet click":
        with page.expect_navigation():
            page.locator("#facet-artist li a").first.click()
        assert "artist=" in page.url
    first_row = page.locator("table.rows-and-columns tbody tr").first
    expect(first_row).to_be_visible()
    box = first_row.bounding_box()
    assert box["y"] + box["height"] <= VIEWPORT["height"], box
    # the descriptions are there, one click away
    details = page.locator("details.plexcache-coldesc")
    expect(details.locator("dd").first).to_be_hidden()
    details.locator("summary").click()
    columns = [r[1] for r in query(server.db, "pragma table_info(tracks)")]
    assert sorted(details.locator("dt").all_inner_texts()) == sorted(columns)
    expect(details.locator("dd").first).to_be_visible()
    expect(page.locator("dl.column-descriptions")).to_be_hidden()


def test_progress_page_charts_the_last_syncs(page, server):
    page.goto(server.url + "/-/plexcache")
    page.wait_for_function(ALL_DRAWN, timeout=20000)
    runs = query(server.db, "select count(*) from sync_runs where duration_ms is not null")[0][0]
    # a duration bar per run, and added/updated/removed per run
    expect(bars(page, "runs")).to_have_count(4 * runs)
    expect(page.locator("table.plexcache-runs tbody tr")).to_have_count(runs)
    link = page.locator("#chart-runs a.plexcache-chart-link")
    with page.expect_navigation():
        link.click()
    assert rows_shown(page) == runs


def test_progress_chart_follows_a_new_sync(page, server):
    "A sync from the command line while the page is open: one more run in the chart, no reload"
    page.goto(server.url + "/-/plexcache")
    page.wait_for_function(ALL_DRAWN, timeout=20000)
    runs = query(server.db, "select count(*) from sync_runs where duration_ms is not null")[0][0]
    expect(bars(page, "runs")).to_have_count(4 * runs)
    page.evaluate("() => { window.notReloaded = true; }")
    cli_sync(server.db, server.sim, "--no-history")
    expect(bars(page, "runs")).to_have_count(4 * (runs + 1), timeout=30000)
    assert page.evaluate("() => window.notReloaded") is True
    expect(page.locator("table.plexcache-runs tbody tr")).to_have_count(runs + 1)
