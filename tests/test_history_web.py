"""The listening history in a real Datasette: tables, facets, views and the
canned queries, checked against the same numbers computed in Python from a
cache synced from the simulator."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from datasette.app import Datasette
from datasette_plexcache.metadata import datasette_kwargs
from syncutil import config_for

from plexcache import overview
from plexcache.db import open_cache
from plexcache.lock import SyncLock
from plexcache.simulator import Simulator
from plexcache.sync import sync


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("web") / "library_cache.db"
    with Simulator(tracks=1500, seed=9, token="web-T0ken", history=3000) as sim:
        # a few recent plays, so "the last 180 days" holds something
        keys = sim.library.track_keys()
        for key in keys[:5]:
            sim.play_track(key, times=2)
        sync(path, config_for(sim))
    return path


@pytest.fixture(scope="module")
def data(cache):
    conn = sqlite3.connect(cache)
    conn.row_factory = sqlite3.Row
    plays = [dict(r) for r in conn.execute("select * from plays")]
    tracks = {r["rating_key"]: dict(r) for r in conn.execute("select * from tracks")}
    accounts = {r["id"]: r["name"] for r in conn.execute("select * from accounts")}
    conn.close()
    return plays, tracks, accounts


def datasette(cache) -> Datasette:
    return Datasette([str(cache)], **datasette_kwargs("library_cache"))


async def get_json(ds, path):
    response = await ds.client.get(path)
    assert response.status_code == 200, (path, response.text[:300])
    return response.json()


def facet_names(data) -> set:
    facets = data["facet_results"]
    return set(facets.get("results", facets))


@pytest.mark.asyncio
async def test_tables_and_views_are_browsable_with_facets(cache, data):
    plays, _, accounts = data
    ds = datasette(cache)
    page = await get_json(ds, "/library_cache/plays.json?_extra=facet_results&_extra=count")
    assert page.get("count", page.get("filtered_table_rows_count")) == len(plays)
    assert {"account_id", "device_id"} <= facet_names(page)
    html = (await ds.client.get("/library_cache/plays")).text
    assert "Every play Plex" in html and "Who played it" in html
    listening = await get_json(
        ds, "/library_cache/listening.json?_extra=facet_results&_extra=count"
    )
    assert listening.get("count", listening.get("filtered_table_rows_count")) == len(plays)
    assert {"account", "device", "year", "month"} <= facet_names(listening)
    acc = await get_json(ds, "/library_cache/accounts.json?_shape=array")
    assert {a["id"]: a["name"] for a in acc} == accounts
    per_month = await get_json(ds, "/library_cache/plays_per_month.json?_shape=array&_size=max")
    assert sum(m["plays"] for m in per_month) == len(plays)
    months = Counter(p["viewed_at"][:7] for p in plays)
    assert {m["month"]: m["plays"] for m in per_month} == months
    # the home page's "listening over time" chart reads the same table
    conn = sqlite3.connect(cache)
    assert overview.plays_by_month(conn) == sorted(months.items())
    conn.close()
    home = (await ds.client.get("/")).text
    assert 'id="chart-plays"' in home


@pytest.mark.asyncio
async def test_listening_joins_the_tracks_as_they_are_now(cache, data):
    plays, tracks, _ = data
    ds = datasette(cache)
    rows = await get_json(ds, "/library_cache/listening.json?_shape=array&_size=max")
    got = {r["history_id"]: r for r in rows}
    assert len(got) == min(len(plays), 1000)
    for p in plays:
        row = got.get(p["history_id"])
        if row is None:
            continue
        t = tracks.get(p["rating_key"])
        assert row["in_library"] == (t is not None)
        assert row["duration_ms"] == (t["duration_ms"] if t else None)
        assert row["genres"] == (t["genres"] if t else None)
        assert row["album"] == (t["album"] if t else p["album"])
        assert row["year"] == int(p["viewed_at"][:4]) and row["hour"] == int(p["viewed_at"][11:13])


@pytest.mark.asyncio
async def test_canned_queries_answer_what_people_ask(cache, data):
    plays, tracks, accounts = data
    ds = datasette(cache)
    year = Counter(p["viewed_at"][:4] for p in plays).most_common(1)[0][0]
    in_year = [p for p in plays if p["viewed_at"][:4] == year]

    top = await get_json(ds, f"/library_cache/top_tracks_of_year.json?year={year}&_shape=array")
    by_track = Counter(p["rating_key"] or f"{p['title']} / {p['artist']}" for p in in_year)
    assert [r["plays"] for r in top] == [n for _, n in by_track.most_common(len(top))]
    assert top[0]["plays"] == by_track.most_common(1)[0][1]

    artists = await get_json(
        ds, f"/library_cache/top_artists_of_year.json?year={year}&_shape=array"
    )
    by_artist = Counter(p["artist"] for p in in_year)
    assert [r["plays"] for r in artists] == [n for _, n in by_artist.most_common(len(artists))]
    assert all(by_artist[r["artist"]] == r["plays"] for r in artists)

    minutes = await get_json(
        ds, "/library_cache/minutes_per_month_per_account.json?_shape=array&_size=max"
    )
    want = defaultdict(float)
    for p in plays:
        t = tracks.get(p["rating_key"])
        want[(p["viewed_at"][:7], accounts.get(p["account_id"], p["account_id"]))] += (
            (t["duration_ms"] or 0) / 60000 if t else 0
        )
    got = {(r["month"], r["account"]): r["minutes"] for r in minutes}
    assert got.keys() == want.keys()
    assert all(abs(got[k] - v) <= 0.5 + 1e-9 for k, v in want.items())

    forgotten = await get_json(ds, "/library_cache/forgotten_favourites.json?_shape=array")
    cutoff = (datetime.now(UTC) - timedelta(days=180)).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts, last = Counter(), {}
    for p in plays:
        if p["rating_key"] in tracks:
            counts[p["rating_key"]] += 1
            last[p["rating_key"]] = max(last.get(p["rating_key"], ""), p["viewed_at"])
    expected = {k for k, n in counts.items() if n >= 5 and last[k] < cutoff}
    assert {r["rating_key"] for r in forgotten} <= expected
    assert [r["plays"] for r in forgotten] == sorted((counts[k] for k in expected), reverse=True)[
        :100
    ]
    recent = {p["rating_key"] for p in plays if p["viewed_at"] >= cutoff}
    assert recent and not recent & expected

    never = await get_json(ds, "/library_cache/never_played.json?_shape=array&_size=max")
    played = {p["rating_key"] for p in plays}
    unplayed = {k for k, t in tracks.items() if t["play_count"] == 0 and k not in played}
    got_never = {r["rating_key"] for r in never}
    assert got_never <= unplayed and len(got_never) == min(500, len(unplayed)) > 0


def test_queries_are_described(cache):
    meta = datasette_kwargs("library_cache")
    text = json.dumps(meta)
    for name in ("top_tracks_of_year", "top_artists_of_year", "minutes_per_month_per_account",
                 "forgotten_favourites", "never_played"):  # fmt: skip
        assert name in text


@pytest.mark.asyncio
async def test_progress_page_shows_the_history_phase(tmp_path):
    path = tmp_path / "library_cache.db"
    conn = open_cache(path)
    conn.execute(
        "insert into sync_runs (started_at, mode, status, phase, trigger, pid) "
        "values ('2026-01-01T00:00:00Z', 'full', 'running', 'history', 'cli', ?)",
        (os.getpid(),),
    )
    conn.close()
    with SyncLock(path):  # the run is alive
        html = (await datasette(path).client.get("/-/plexcache")).text
        runs = (await datasette(path).client.get("/-/plexcache/runs.json")).json()["runs"]
    assert "<td>history: 0 / 0</td>" in html  # the page; the script redraws rows from runs.json
    assert (runs[0]["status"], runs[0]["phase"]) == ("running", "history")
