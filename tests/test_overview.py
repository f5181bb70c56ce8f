"""The library overview: ``plexcache.overview`` (precomputed numbers) and the
plugin's home page, overview JSON and progress-page chart.

Real SQLite files synced from the simulator over HTTP, a real Datasette app
through ``datasette.client`` (0.65 and 1.0a). The reference for every number
is plain SQL over ``tracks``, run here.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from syncutil import config_for
from test_facets import connect, with_transaction
from test_facets import insert_track as facets_insert_track

from plexcache import overview
from plexcache.config import PlexConfig
from plexcache.db import open_cache, reset_cache
from plexcache.serve import build_datasette
from plexcache.simulator import Simulator
from plexcache.sync import sync

TOKEN = "overview-T0ken_abc"
DB = "library_cache"


# ---- fixtures and helpers ------------------------------------------------------


SIM = {"tracks": 700, "seed": 5, "token": TOKEN}  # one simulator for the module (conftest.sim)


@pytest.fixture(scope="module")
def synced_template(module_sim, tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / f"{DB}.db"
    sync(path, config_for(module_sim), history=False)  # no plays: the listening cases add their own
    conn = open_cache(path)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    return path


@pytest.fixture
def cache(synced_template, tmp_path):
    path = tmp_path / f"{DB}.db"
    shutil.copy(synced_template, path)
    return path


def reference(conn) -> dict:
    "What the overview numbers must be, from plain SQL over tracks"
    counts = {
        ("tracks", ""): conn.execute("select count(*) from tracks").fetchone()[0],
        ("duration_ms", ""): conn.execute(
            "select coalesce(sum(duration_ms), 0) from tracks"
        ).fetchone()[0],
    }
    for month, n in conn.execute(
        "select substr(added_at, 1, 7), count(*) from tracks where added_at is not null group by 1"
    ):
        counts[("added_month", month)] = n
    return counts


def insert_track(conn, key: str, **values):
    "test_facets' track, with a duration and an added_at"
    facets_insert_track(
        conn, key, **{"duration_ms": 200_000, "added_at": "2019-04-02T10:00:00Z", **values}
    )


def maintained(conn, keys: list[str], write):
    "``write(conn)`` applied as the sync engine applies it: subtract, write, add"
    keys_sql = "select value from json_each(?)"
    params = (json.dumps(keys),)

    def apply(conn):
        overview.subtract(conn, keys_sql, params)
        write(conn)
        overview.add(conn, keys_sql, params)

    with_transaction(conn, apply)


def add_plays(conn, rows):
    conn.execute(
        "create table if not exists plays (history_id INTEGER PRIMARY KEY, rating_key TEXT, account_id INTEGER, "
        "device_id INTEGER, viewed_at TEXT, section_id INTEGER, title TEXT, artist TEXT, album TEXT)"
    )
    conn.executemany(
        "insert into plays (rating_key, account_id, device_id, viewed_at, section_id, title, artist, album) "
        "values (?, 1, 1, ?, 1, 't', 'a', 'b')",
        rows,
    )


def datasette_for(path):
    "Datasette as `plexcache serve` builds it"
    return build_datasette(
        path, PlexConfig(url=None, token=None), plugin_extra={"sync_on_start": False}
    )


def path_of(url: str) -> str:
    parts = urlsplit(unescape(url))
    return parts.path + (f"?{parts.query}" if parts.query else "")


# ---- the core ---------------------------------------------------------------------


def test_a_sync_leaves_current_numbers(cache):
    conn = connect(cache)
    assert overview.stored(conn) == reference(conn) == overview.live(conn)
    assert overview.state(conn)["status"] == "current"
    names = {r[0] for r in conn.execute("select name from sqlite_master")}
    assert set(overview.NAMES) <= names


def test_read_matches_plain_sql(cache):
    conn = connect(cache)
    data = overview.read(conn)
    assert data["precounted"] is True
    assert data["tracks"] == conn.execute("select count(*) from tracks").fetchone()[0] == 700
    assert data["albums"] == conn.execute("select count(*) from albums").fetchone()[0]
    assert data["artists"] == conn.execute("select count(*) from artists").fetchone()[0]
    hours = conn.execute("select sum(duration_ms) / 3600000.0 from tracks").fetchone()[0]
    assert data["hours"] == round(hours, 1)
    assert (
        data["decades"]
        == conn.execute(
            "select (year / 10) * 10 as d, count(*) from tracks where year is not null group by d order by d"
        ).fetchall()
    )
    assert (
        data["artists_top"]
        == conn.execute(
            "select artist, count(*) as n from tracks group by artist order by n desc, artist limit 15"
        ).fetchall()
    )
    assert (
        data["genres"]
        == conn.execute(
            "select j.value, count(*) as n from tracks, json_each(tracks.genres) j "
            "group by j.value order by n desc, j.value limit 15"
        ).fetchall()
    )
    assert (
        data["added_months"]
        == conn.execute(
            "select substr(added_at, 1, 7) as m, count(*) from tracks where added_at is not null group by m order by m"
        ).fetchall()
    )
    assert len(data["added_months"]) > 1 and len(data["decades"]) > 1
    assert data["plays_months"] is None


def test_subtract_add_follow_random_changes(cache):
    rng = random.Random(11)
    conn = connect(cache)
    for round_no in range(4):
        keys = [r[0] for r in conn.execute("select rating_key from tracks")]
        changed = rng.sample(keys, rng.randint(1, 30))
        deleted = rng.sample([k for k in keys if k not in changed], rng.randint(0, 8))
        added = [f"new-{round_no}-{i}" for i in range(rng.randint(0, 8))]

        def write(conn, changed=changed, deleted=deleted, added=added):
            for key in changed:
                conn.execute(
                    "update tracks set duration_ms = ?, added_at = ? where rating_key = ?",
                    (
                        rng.choice([None, 1000, 345_000]),
                        rng.choice([None, "2001-02-03T00:00:00Z"]),
                        key,
                    ),
                )
            conn.executemany("delete from tracks where rating_key = ?", [(k,) for k in deleted])
            for key in added:
                insert_track(conn, key, added_at=rng.choice([None, "2030-12-31T23:59:59Z"]))

        conn.execute("update overview_state set counted_at = 'before'")
        maintained(conn, changed + deleted + added, write)
        assert overview.state(conn) == {
            "status": "current",
            "total": len(keys) - len(deleted) + len(added),
            "counted_at": "before",
        }, round_no
        assert overview.stored(conn) == reference(conn), round_no
    # a month whose last track went is gone, not left at 0
    assert (
        conn.execute(
            "select count(*) from overview_counts where n <= 0 and metric = 'added_month'"
        ).fetchone()[0]
        == 0
    )


def test_writes_that_skip_the_numbers_mark_them_stale(cache):
    conn = connect(cache)
    key = conn.execute("select rating_key from tracks limit 1").fetchone()[0]
    conn.execute(
        "update tracks set play_count = play_count + 1, title = 'x' where rating_key = ?", (key,)
    )
    assert overview.state(conn)["status"] == "current"
    for sql in (
        "update tracks set duration_ms = 1 where rating_key = ?",
        "update tracks set added_at = '1999-01-01T00:00:00Z' where rating_key = ?",
        "delete from tracks where rating_key = ?",
    ):
        with_transaction(conn, overview.recount)
        conn.execute(sql, (key,))
        assert overview.state(conn)["status"] == "stale", sql
        # a reader computes live and is still right
        data = overview.read(conn)
        assert data["precounted"] is False
        assert data["added_months"] == sorted(
            (k, n) for (m, k), n in reference(conn).items() if m == "added_month"
        )
    insert_track(conn, "unmaintained")
    maintained(conn, ["m1"], lambda c: insert_track(c, "m1"))
    assert overview.state(conn)["status"] == "current"
    assert overview.stored(conn) == reference(conn)


def test_add_without_subtract_recounts(cache):
    conn = connect(cache)

    def apply(conn):
        insert_track(conn, "lonely", added_at="1970-01-05T00:00:00Z")
        overview.add(conn, "select 'lonely'")

    with_transaction(conn, apply)
    assert overview.state(conn)["status"] == "current"
    assert overview.stored(conn)[("added_month", "1970-01")] == 1
    assert overview.stored(conn) == reference(conn)


def test_reset_then_sync_counts_again(cache, sim):
    reset_cache(cache)
    conn = connect(cache)
    data = overview.read(conn)
    assert (data["tracks"], data["hours"], data["added_months"], data["decades"]) == (0, 0, [], [])
    sync(cache, config_for(sim))
    assert overview.state(conn)["status"] == "current"
    assert overview.stored(conn) == reference(conn)
    assert overview.read(conn)["tracks"] == 700


def test_ensure_shape_adds_the_numbers_to_an_older_cache(cache):
    from plexcache.schema import ensure_shape

    conn = connect(cache)
    for name in overview.TRIGGERS_SQL:
        conn.execute(f"drop trigger {name}")
    for name in overview.TABLES_SQL:
        conn.execute(f"drop table {name}")
    ensure_shape(conn)
    assert overview.state(conn)["status"] == "current"
    assert overview.stored(conn) == reference(conn)
    names = {r[0] for r in conn.execute("select name from sqlite_master")}
    assert set(overview.NAMES) <= names


def test_real_syncs_keep_the_numbers_current(tmp_path):
    "Full sync, then incremental syncs after edits, additions and deletions: maintained, not recounted"
    with Simulator(tracks=500, seed=9, token=TOKEN) as sim:
        path = tmp_path / f"{DB}.db"
        sync(path, config_for(sim))
        conn = connect(path)
        assert overview.stored(conn) == reference(conn)
        lib = sim.library
        rng = random.Random(2)
        for round_no in range(2):
            sim.advance_clock(5)
            keys = lib.track_keys()
            for key in rng.sample(keys, 5):
                sim.edit_track(key, title=f"edited {round_no}")
            sim.add_tracks(4)
            sim.delete_tracks(rng.sample(keys, 3))
            sim.advance_clock(1)
            conn.execute("update overview_state set counted_at = 'before'")
            assert sync(path, config_for(sim)).mode == "incremental"
            assert overview.state(conn)["status"] == "current", round_no
            assert overview.state(conn)["counted_at"] == "before", round_no
            assert overview.stored(conn) == reference(conn), round_no


def test_plays_by_month(cache):
    conn = connect(cache)
    assert overview.plays_by_month(conn) is None
    add_plays(conn, [])
    assert overview.plays_by_month(conn) is None  # a table, but no plays yet
    add_plays(
        conn,
        [
            ("1", "2024-01-03T10:00:00Z"),
            ("2", "2024-01-31T23:00:00Z"),
            ("1", "2024-03-01T00:00:00Z"),
        ],
    )
    assert overview.plays_by_month(conn) == [("2024-01", 2), ("2024-03", 1)]
    assert overview.read(conn)["plays_months"] == [("2024-01", 2), ("2024-03", 1)]


# ---- the plugin -------------------------------------------------------------------


def overview_figures(html: str) -> dict:
    return {
        label: value
        for value, label in re.findall(r"<strong>([\d,]+)</strong> ([a-z ]+)</a>", html)
    }


def chart_specs(html: str) -> dict:
    "chart id -> (link, spec) from the page"
    found = {}
    for chart_id, body in re.findall(
        r'<figure class="plexcache-chart" id="chart-([a-z]+)"(.*?)</figure>', html, re.S
    ):
        link = re.search(r'class="plexcache-chart-link" href="([^"]+)"', body).group(1)
        spec = re.search(
            r'<script type="application/json" class="plexcache-chart-spec">(.*?)</script>',
            body,
            re.S,
        )
        found[chart_id] = (unescape(link), json.loads(spec.group(1)))
    return found


@pytest.mark.asyncio
async def test_home_page_is_the_overview(cache):
    ds = datasette_for(cache)
    response = await ds.client.get("/")
    assert response.status_code == 200
    html = response.text
    conn = connect(cache)
    hours = conn.execute("select sum(duration_ms) / 3600000.0 from tracks").fetchone()[0]
    assert overview_figures(html) == {
        "tracks": "700",
        "albums": f"{conn.execute('select count(*) from albums').fetchone()[0]:,}",
        "artists": f"{conn.execute('select count(*) from artists').fetchone()[0]:,}",
        "hours of music": f"{hours:,.0f}",
    }
    specs = chart_specs(html)
    assert list(specs) == [
        "decades",
        "genres",
        "added",
        "artists",
    ]  # no plays table: no listening chart
    decades = specs["decades"][1]["data"]["values"]
    assert [(v["decade"], v["tracks"]) for v in decades] == [
        (f"{d}s", n) for d, n in overview.read(conn)["decades"]
    ]
    # the stock index stays, below the overview
    assert 'id="plexcache-databases"' in html
    assert f'href="/{DB}"' in html
    # the vendored chart library, from this server only
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', html)
    assert "/-/static-plugins/plexcache/vendor/vega.min.js" in scripts
    assert all(s.startswith("/") and not s.startswith("//") for s in scripts), scripts


@pytest.mark.asyncio
async def test_each_chart_link_and_bar_leads_to_rows(cache):
    ds = datasette_for(cache)
    conn = connect(cache)
    add_plays(conn, [("1", "2024-01-03T10:00:00Z"), ("2", "2024-02-01T00:00:00Z")])
    html = (await ds.client.get("/")).text
    specs = chart_specs(html)
    assert list(specs) == ["decades", "genres", "added", "artists", "plays"]
    for chart_id, (link, spec) in specs.items():
        response = await ds.client.get(path_of(link))
        if response.status_code == 302:  # 1.0a: /db?sql= moved to /db/-/query?sql=
            response = await ds.client.get(path_of(response.headers["location"]))
        assert response.status_code == 200, (chart_id, link)
        assert "<td" in response.text, (chart_id, link)  # rows, not an error page
        # the first bar's rows: as many as the bar says
        bar = spec["data"]["values"][0]
        measure = "plays" if chart_id == "plays" else "tracks"
        url = urlsplit(bar["href"])
        rows = await ds.client.get(url.path + ".json?" + url.query + "&_size=0&_extra=count")
        assert rows.status_code == 200, bar["href"]
        body = rows.json()
        count = body.get("count", body.get("filtered_table_rows_count"))
        assert count == bar[measure], (chart_id, bar)
    assert parse_qs(urlsplit(specs["genres"][1]["data"]["values"][0]["href"]).query).keys() == {
        "genres__arraycontains"
    }


@pytest.mark.asyncio
async def test_overview_json(cache):
    ds = datasette_for(cache)
    response = await ds.client.get("/-/plexcache/overview.json")
    assert response.status_code == 200
    data = response.json()
    assert data["precounted"] is True
    assert [f["label"] for f in data["figures"]] == [
        "tracks",
        "albums",
        "artists",
        "hours of music",
    ]
    assert [c["id"] for c in data["charts"]] == ["decades", "genres", "added", "artists"]


@pytest.mark.asyncio
async def test_empty_cache_says_so(tmp_path):
    from plexcache.db import init_cache

    path = tmp_path / f"{DB}.db"
    init_cache(path)
    ds = datasette_for(path)
    html = (await ds.client.get("/")).text
    assert "The library cache is empty: nothing has been synced from Plex yet." in html
    assert "plexcache-chart-spec" not in html and "vega.min.js" not in html


@pytest.mark.asyncio
async def test_without_a_cache_the_home_page_is_datasettes(tmp_path):
    from datasette.app import Datasette

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.close()
    ds = Datasette([str(other)])
    html = (await ds.client.get("/")).text
    assert "plexcache-overview" not in html
    assert 'href="/other"' in html


@pytest.mark.asyncio
async def test_tracks_page_collapses_the_column_descriptions(cache):
    ds = datasette_for(cache)
    html = (await ds.client.get(f"/{DB}/tracks?artist__not=x")).text
    details = re.search(r'<details class="plexcache-coldesc">(.*?)</details>', html, re.S)
    assert details, "no collapsed descriptions"
    assert "<summary>Column descriptions (" in details.group(1)
    # every description is still on the page, in the collapsed list
    stock = re.search(r'<dl class="column-descriptions">(.*?)</dl>', html, re.S).group(1)
    assert re.findall(r"<dt>(.*?)</dt>", stock) == re.findall(r"<dt>(.*?)</dt>", details.group(1))


@pytest.mark.asyncio
async def test_progress_page_has_the_runs_chart(cache):
    ds = datasette_for(cache)
    html = (await ds.client.get("/-/plexcache")).text
    specs = chart_specs(html)
    assert list(specs) == ["runs"]
    link, spec = specs["runs"]
    assert link == f"/{DB}/sync_runs?_sort_desc=id"
    conn = connect(cache)
    run_id, added, duration_ms = conn.execute(
        "select id, tracks_added, duration_ms from sync_runs order by id desc limit 1"
    ).fetchone()
    values = {(v["run"], v["what"]): v["value"] for v in spec["data"]["values"]}
    assert values[(f"#{run_id}", "added")] == added == 700
    assert values[(f"#{run_id}", "duration")] == round(duration_ms / 1000, 1)


@pytest.mark.asyncio
async def test_overview_hidden_from_who_may_not_see_the_cache(cache):
    from datasette.version import __version__ as datasette_version
    from datasette_test import Datasette, actor_cookie

    blocks = {"databases": {DB: {"allow": {"id": "root"}}}}
    key = "metadata" if datasette_version.startswith("0.") else "config"
    ds = Datasette(
        [str(cache)], plugin_config={"plexcache": {"sync_on_start": False}}, **{key: blocks}
    )
    html = (await ds.client.get("/")).text
    assert "plexcache-overview" not in html and "plexcache-chart" not in html
    denied = await ds.client.get("/-/plexcache/overview.json")
    assert (denied.status_code, denied.json()) == (403, {"error": "permission denied"})
    root = {"ds_actor": actor_cookie(ds, {"id": "root"})}
    assert "plexcache-overview" in (await ds.client.get("/", cookies=root)).text
    assert (await ds.client.get("/-/plexcache/overview.json", cookies=root)).status_code == 200


@pytest.mark.asyncio
async def test_overview_json_without_a_cache(tmp_path):
    from datasette.app import Datasette

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.close()
    ds = Datasette([str(other)])
    response = await ds.client.get("/-/plexcache/overview.json")
    assert (response.status_code, response.json()) == (
        404,
        {"error": "no cache database is attached"},
    )
