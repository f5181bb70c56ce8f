"""Precounted facets: ``plexcache.facet_counts`` and the plugin's facet classes.

Real SQLite files synced from the simulator, a real Datasette app through
``datasette.client``, on 0.65 and on 1.0a. The reference for every count is
the SQL Datasette's own facets run (``GROUP BY`` for a column, its
``json_each`` query for an array), or a second Datasette configured with the
builtin facets on the same file.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from urllib.parse import parse_qsl, urlsplit

import pytest
from datasette.app import Datasette
from datasette.version import __version__ as datasette_version
from datasette_plexcache import metadata as plexcache_metadata
from syncutil import config_for

from plexcache import facet_counts
from plexcache.config import PlexConfig
from plexcache.db import open_cache, reset_cache
from plexcache.schema import SCHEMA_VERSION, ensure_shape
from plexcache.serve import DATASETTE_SETTINGS, build_datasette
from plexcache.simulator import Simulator
from plexcache.sync import sync

DATASETTE_1 = not datasette_version.startswith("0.")
TOKEN = "facets-T0ken_xyz"
DB = "library_cache"
BUILTIN_FACETS = ["artist", "year", {"array": "genres"}, "is_live"]

# Datasette 0.65.5's ArrayFacet SQL (views the unfiltered table), counting
# every distinct value once per row
ARRAY_FACET_SQL = """
with inner as (select * from tracks),
deduped_array_items as (
    select distinct j.value, inner.* from json_each([inner].{col}) j join inner
)
select value, count(*) from deduped_array_items group by value
"""


# ---- fixtures and helpers ------------------------------------------------------


SIM = {"tracks": 800, "seed": 3, "token": TOKEN}  # one simulator for the module (conftest.sim)


@pytest.fixture(scope="module")
def synced_template(module_sim, tmp_path_factory):
    "A cache after a real full sync, counts recounted (whatever the sync did)"
    path = tmp_path_factory.mktemp("template") / f"{DB}.db"
    sync(path, config_for(module_sim))
    conn = open_cache(path)
    with_transaction(conn, facet_counts.recount)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    return path


@pytest.fixture
def cache(synced_template, tmp_path):
    "A private copy of the synced cache"
    path = tmp_path / f"{DB}.db"
    shutil.copy(synced_template, path)
    return path


def with_transaction(conn, fn, *args):
    conn.execute("begin immediate")
    try:
        result = fn(conn, *args)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return result


def connect(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma busy_timeout = 5000")
    return conn


def reference_counts(conn, where: str = "") -> dict:
    "What Datasette's builtin facets count on the whole table: {(facet, value): n}"
    counts = {}
    for col in facet_counts.COLUMN_FACETS:
        for value, n in conn.execute(
            f"select {col}, count(*) from tracks where {col} is not null group by {col}"
        ):
            counts[(col, value)] = n
    for col in facet_counts.ARRAY_FACETS:
        sql = ARRAY_FACET_SQL.replace("select * from tracks", f"select * from tracks {where}")
        for value, n in conn.execute(sql.format(col=col)):
            if value is not None:
                counts[(col, value)] = n
    return counts


def state(conn) -> dict:
    return facet_counts.state(conn)


def insert_track(conn, key: str, **values):
    row = {
        "rating_key": key,
        "title": f"Edge {key}",
        "artist": "Edge Artist",
        "album": "Edge Album",
        "year": 1999,
        "genres": '["Rock"]',
        "is_live": 0,
        **values,
    }
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"insert into tracks ({cols}) values ({marks})", list(row.values()))


def maintained(conn, keys: list[str], write):
    """Apply ``write(conn)`` to the tracks ``keys`` the way the sync engine
    does: subtract before, add after, one transaction"""
    keys_sql = "select value from json_each(?)"
    params = (json.dumps(keys),)

    def apply(conn):
        facet_counts.subtract(conn, keys_sql, params)
        write(conn)
        facet_counts.add(conn, keys_sql, params)

    with_transaction(conn, apply)


def builtin_datasette(path) -> Datasette:
    "The same metadata and settings, but Datasette's builtin facets on tracks"
    metadata = plexcache_metadata.build_metadata(DB)
    metadata["databases"][DB]["tables"]["tracks"]["facets"] = BUILTIN_FACETS
    kwargs = {"settings": dict(DATASETTE_SETTINGS)}
    if plexcache_metadata.uses_config_file():
        metadata, kwargs["config"] = plexcache_metadata.split_for_datasette_1(metadata)
    return Datasette([str(path)], metadata=metadata, **kwargs)


def plexcache_datasette(path) -> Datasette:
    "Datasette as `plexcache serve` builds it"
    return build_datasette(
        path, PlexConfig(url=None, token=None), plugin_extra={"sync_on_start": False}
    )


async def facets_of(ds, query: str = "") -> dict:
    "The page's facet results as JSON, on either Datasette line"
    sep = "&" if query else ""
    return await facets_at(ds, f"/{DB}/tracks.json?{query}{sep}_extra=facet_results")


async def facets_at(ds, path: str) -> dict:
    response = await ds.client.get(path)
    assert response.status_code == 200, response.text[:500]
    data = response.json()
    facets = data["facet_results"]
    if "results" in facets:  # 1.0a shape
        assert facets["timed_out"] == []
        facets = facets["results"]
    else:
        assert data.get("facets_timed_out", []) == []  # 0.65 JSON omits it
    return facets


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def tamper(path, facet: str, value, extra: int) -> None:
    "Change a stored count behind the state's back: shows where a page's numbers come from"
    conn = connect(path)
    conn.execute(
        "update facet_counts set n = n + ? where facet = ? and value = ?", (extra, facet, value)
    )
    conn.close()


# ---- the core: recount, subtract/add, staleness -----------------------------------


def test_recount_equals_datasettes_own_counts(cache):
    conn = connect(cache)
    stored = facet_counts.stored_counts(conn)
    assert stored == reference_counts(conn)
    assert {f for f, _ in stored} == set(facet_counts.FACETS)
    assert state(conn)["status"] == "current"
    assert state(conn)["total"] == conn.execute("select count(*) from tracks").fetchone()[0]
    assert facet_counts.is_current(conn)
    # the top values come in Datasette's facet order: count desc, then value
    top = facet_counts.top(conn, "genres", 1000)
    assert top == sorted(top, key=lambda r: (-r[1], r[0]))


def test_edge_values_count_like_datasette(cache):
    "NULL, '', duplicated genres, empty and NULL arrays; invalid JSON counts nowhere"
    conn = connect(cache)
    edges = {
        "e1": {"artist": "", "year": None, "genres": '["Rock", "Rock", "Dub"]'},
        "e2": {"genres": None, "is_live": None},
        "e3": {"genres": "[]", "year": 1850},
        "e4": {"genres": '["Dub", null]', "is_live": 1},
    }

    def write(conn):
        for key, values in edges.items():
            insert_track(conn, key, **values)

    maintained(conn, list(edges), write)
    stored = facet_counts.stored_counts(conn)
    assert stored == reference_counts(conn)
    assert stored[("genres", "Dub")] == 2
    assert stored[("artist", "")] == 1
    assert ("year", None) not in stored
    # Datasette's array facet fails on invalid JSON; the counts skip that array
    maintained(conn, ["e5"], lambda c: insert_track(c, "e5", genres="not json"))
    assert facet_counts.stored_counts(conn) == reference_counts(conn, "where json_valid(genres)")
    assert facet_counts.is_current(conn)


@pytest.mark.parametrize("seed", [1, 2])
def test_subtract_add_follow_random_changes(cache, seed):
    "Updates, inserts and deletes applied as the sync engine applies them"
    rng = random.Random(seed)
    conn = connect(cache)
    genres = ["Rock", "Jazz", "Dub", "Folk", "Ambient", "Brand New Genre"]
    for round_no in range(5):
        keys = [r[0] for r in conn.execute("select rating_key from tracks")]
        changed = rng.sample(keys, rng.randint(1, 40))
        deleted = rng.sample([k for k in keys if k not in changed], rng.randint(0, 10))
        added = [f"new-{round_no}-{i}" for i in range(rng.randint(0, 10))]

        def write(conn, changed=changed, deleted=deleted, added=added):
            for key in changed:
                conn.execute(
                    "update tracks set artist = ?, year = ?, genres = ?, is_live = ?, play_count = play_count + 1 "
                    "where rating_key = ?",
                    (
                        rng.choice(["Solo", "Duo", ""]),
                        rng.choice([None, 1977, 2001]),
                        json.dumps(rng.sample(genres, rng.randint(0, 3))),
                        rng.choice([0, 1]),
                        key,
                    ),
                )
            conn.executemany("delete from tracks where rating_key = ?", [(k,) for k in deleted])
            for key in added:
                insert_track(conn, key, genres=json.dumps(rng.sample(genres, rng.randint(0, 2))))

        maintained(conn, changed + deleted + added, write)
        assert state(conn)["status"] == "current", round_no
        assert facet_counts.stored_counts(conn) == reference_counts(conn), round_no
        assert state(conn)["total"] == conn.execute("select count(*) from tracks").fetchone()[0]
    # a value whose last track went is gone, not left at 0
    assert conn.execute("select count(*) from facet_counts where n <= 0").fetchone()[0] == 0


def test_subtract_may_be_called_twice(cache):
    "e.g. once for the rows to upsert, once for the rows to delete"
    conn = connect(cache)
    first, second = [r[0] for r in conn.execute("select rating_key from tracks limit 2")]

    def apply(conn):
        facet_counts.subtract(conn, "select ?", (first,))
        facet_counts.subtract(conn, "select ?", (second,))
        conn.execute("update tracks set artist = 'Twice' where rating_key = ?", (first,))
        conn.execute("delete from tracks where rating_key = ?", (second,))
        facet_counts.add(conn, "select ? union select ?", (first, second))

    with_transaction(conn, apply)
    assert state(conn)["status"] == "current"
    assert facet_counts.stored_counts(conn) == reference_counts(conn)


def test_writes_that_skip_the_counts_mark_them_stale(cache):
    conn = connect(cache)
    key = conn.execute("select rating_key from tracks limit 1").fetchone()[0]
    # columns no facet shows do not matter
    conn.execute(
        "update tracks set play_count = play_count + 1, title = 'x' where rating_key = ?", (key,)
    )
    assert state(conn)["status"] == "current"
    for sql in (
        "update tracks set year = 1901 where rating_key = ?",
        "update tracks set genres = '[\"Polka\"]' where rating_key = ?",
        "delete from tracks where rating_key = ?",
    ):
        with_transaction(conn, facet_counts.recount)
        assert state(conn)["status"] == "current"
        conn.execute(sql, (key,))
        assert state(conn)["status"] == "stale", sql
        assert not facet_counts.is_current(conn)
    with_transaction(conn, facet_counts.recount)
    insert_track(conn, "unmaintained")
    assert state(conn)["status"] == "stale"
    # a later maintained apply notices and recounts: right again
    maintained(conn, ["m1"], lambda c: insert_track(c, "m1", artist="Maintained"))
    assert state(conn)["status"] == "current"
    assert facet_counts.stored_counts(conn) == reference_counts(conn)


def test_total_mismatch_heals_at_the_next_maintained_apply(cache):
    "Counts left 'current' by a write with the triggers dropped (a bulk load) are not trusted"
    conn = connect(cache)
    for name in facet_counts.TRIGGERS_SQL:
        conn.execute(f"drop trigger {name}")
    conn.execute("delete from tracks where rowid % 5 = 0")
    facet_counts.create(conn)  # the triggers come back, as a bulk apply restores them
    assert state(conn)["status"] == "current" and not facet_counts.is_current(conn)
    maintained(conn, ["h1"], lambda c: insert_track(c, "h1"))
    assert facet_counts.is_current(conn)
    assert facet_counts.stored_counts(conn) == reference_counts(conn)


def test_add_without_subtract_recounts(cache):
    conn = connect(cache)

    def apply(conn):
        insert_track(conn, "lonely", artist="Lonely")
        facet_counts.add(conn, "select 'lonely'")

    with_transaction(conn, apply)
    assert state(conn)["status"] == "current"
    assert facet_counts.stored_counts(conn) == reference_counts(conn)


def test_rollback_keeps_the_counts(cache):
    conn = connect(cache)
    before = facet_counts.stored_counts(conn)
    conn.execute("begin immediate")
    facet_counts.subtract(conn, "select rating_key from tracks limit 50")
    conn.execute("delete from tracks where rating_key in (select rating_key from tracks limit 50)")
    conn.execute("rollback")
    assert state(conn)["status"] == "current"
    assert facet_counts.stored_counts(conn) == before
    # and no "applying" mark survives on the connection
    maintained(conn, ["r1"], lambda c: insert_track(c, "r1"))
    assert facet_counts.stored_counts(conn) == reference_counts(conn)


def test_reset_leaves_empty_current_counts(cache):
    reset_cache(cache)
    conn = connect(cache)
    assert conn.execute("select count(*) from tracks").fetchone()[0] == 0
    assert conn.execute("select count(*) from facet_counts").fetchone()[0] == 0
    assert state(conn)["status"] == "current"
    assert facet_counts.is_current(conn)


def test_ensure_shape_counts_a_cache_from_before(cache):
    "An older plexcache's cache: no facet tables, user_version 1"
    conn = connect(cache)
    for name in facet_counts.TRIGGERS_SQL:
        conn.execute(f"drop trigger {name}")
    conn.execute("drop table facet_counts")
    conn.execute("drop table facet_counts_state")
    conn.execute("pragma user_version = 1")
    assert state(conn) is None
    ensure_shape(conn)
    assert conn.execute("pragma user_version").fetchone()[0] == SCHEMA_VERSION
    assert state(conn)["status"] == "current"
    assert facet_counts.stored_counts(conn) == reference_counts(conn)


def test_ensure_shape_recounts_after_another_version_wrote(cache):
    "An older plexcache sets its user_version and may write tracks without the counts"
    conn = connect(cache)
    conn.execute("pragma user_version = 1")
    for name in facet_counts.TRIGGERS_SQL:  # as an old bulk sync runs with the triggers dropped
        conn.execute(f"drop trigger {name}")
    conn.execute("update tracks set artist = 'Old Writer' where rowid % 3 = 0")
    row = conn.execute(facet_counts.STATE_SQL).fetchone()
    assert row[0] == "current" and not facet_counts.counts_usable(*row)  # readers go live
    ensure_shape(conn)
    assert facet_counts.is_current(conn)
    assert facet_counts.stored_counts(conn) == reference_counts(conn)
    assert {
        r[0] for r in conn.execute("select name from sqlite_master where type = 'trigger'")
    } >= set(facet_counts.TRIGGERS_SQL)


def test_ensure_shape_fast_path_does_not_recount(cache):
    conn = connect(cache)
    conn.execute("update facet_counts_state set counted_at = 'sentinel'")
    ensure_shape(conn)
    assert state(conn)["counted_at"] == "sentinel"


def test_new_cache_starts_current_and_empty(tmp_path):
    conn = open_cache(tmp_path / "new.db")
    assert state(conn) == {"status": "current", "total": 0, "counted_at": state(conn)["counted_at"]}
    assert facet_counts.stored_counts(conn) == {}
    assert facet_counts.is_current(conn)


def test_counts_usable_rules():
    v = SCHEMA_VERSION
    assert facet_counts.counts_usable("current", 10, v)
    assert facet_counts.counts_usable("current", 10, v, 10)
    assert not facet_counts.counts_usable("current", 10, v, 11)
    assert not facet_counts.counts_usable("stale", 10, v, 10)
    assert not facet_counts.counts_usable("applying", 10, v, 10)
    assert not facet_counts.counts_usable("current", 10, v - 1, 10)
    assert not facet_counts.counts_usable(None, None, v)
    # Datasette 1.0 stops counting at count_limit + 1: that only says "at least"
    assert facet_counts.counts_usable("current", 50_000, v, 10_001, count_limit=10_000)
    assert not facet_counts.counts_usable("current", 9_000, v, 10_001, count_limit=10_000)
    assert not facet_counts.counts_usable("current", 9_000, v, 9_001, count_limit=10_000)


def test_real_syncs_keep_the_counts_current(tmp_path):
    "Full sync, then incremental syncs after edits, additions and deletions"
    with Simulator(tracks=600, seed=8, token=TOKEN) as sim:
        path = tmp_path / f"{DB}.db"
        sync(path, config_for(sim))
        conn = connect(path)
        assert facet_counts.is_current(conn)
        assert facet_counts.stored_counts(conn) == reference_counts(conn)
        lib = sim.library
        rng = random.Random(4)
        for round_no in range(3):
            sim.advance_clock(5)
            keys = lib.track_keys()
            for key in rng.sample(keys, 10):
                sim.edit_track(key, genres=rng.sample(["Rock", "Dub", "Zydeco"], rng.randint(0, 2)))
            album = lib.track(rng.choice(keys))["parentRatingKey"]
            sim.edit_album(
                album, year=rng.randint(1960, 2024), subformats=rng.choice([["Live"], []])
            )
            sim.add_tracks(3)
            sim.delete_tracks(rng.sample(keys, 4))
            sim.advance_clock(1)
            conn.execute("update facet_counts_state set counted_at = 'before'")
            assert sync(path, config_for(sim)).mode == "incremental"
            assert facet_counts.is_current(conn), round_no
            # maintained by subtract/add, not recounted
            assert state(conn)["counted_at"] == "before", round_no
            assert facet_counts.stored_counts(conn) == reference_counts(conn), round_no


# ---- the plugin --------------------------------------------------------------------


QUERIES = ["", "_facet_size=3", "_facet_size=max", "_sort=title", "_size=5"]


@pytest.mark.asyncio
@pytest.mark.parametrize("query", QUERIES)
async def test_unfiltered_page_equals_builtin_facets(cache, query):
    ours = await facets_of(plexcache_datasette(cache), query)
    builtin = await facets_of(builtin_datasette(cache), query)
    assert set(ours) == {"artist", "year", "genres", "is_live"}
    assert ours == builtin
    assert ours["genres"]["type"] == "array" and ours["artist"]["type"] == "column"
    if query == "":
        assert ours["artist"]["truncated"] and len(ours["artist"]["results"]) == 30
        assert not ours["is_live"]["truncated"]


@pytest.mark.asyncio
async def test_unfiltered_page_reads_the_stored_counts(cache):
    "A stored count changed behind the state's back shows on the unfiltered page only"
    conn = connect(cache)
    genre, n = facet_counts.top(conn, "genres", 1)[0]
    artist, artist_n = facet_counts.top(conn, "artist", 1)[0]
    tamper(cache, "genres", genre, 100_000)
    tamper(cache, "artist", artist, 100_000)
    ds = plexcache_datasette(cache)
    page = await facets_of(ds)
    assert page["genres"]["results"][0]["count"] == n + 100_000
    assert page["artist"]["results"][0]["count"] == artist_n + 100_000
    # a filtered page counts live
    filtered = await facets_of(ds, "is_live=0")
    assert filtered == await facets_of(builtin_datasette(cache), "is_live=0")
    assert all(r["count"] < 100_000 for f in filtered.values() for r in f["results"])


FILTERS = [
    "is_live=1",
    "year__gte=1990",
    "genres__arraycontains=Rock",
    "_search=the",
    "_where=year%20%3E%202000",
    "artist__not=",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("query", FILTERS)
async def test_filtered_pages_compute_live(cache, query):
    conn = connect(cache)
    for facet in facet_counts.FACETS:
        for value, _ in facet_counts.top(conn, facet, 5):
            tamper(cache, facet, value, 100_000)
    ours = await facets_of(plexcache_datasette(cache), query)
    assert ours == await facets_of(builtin_datasette(cache), query)
    assert all(r["count"] < 100_000 for f in ours.values() for r in f["results"])


@pytest.mark.asyncio
async def test_next_page_computes_live(cache):
    "Datasette facets a later page over the rows after the cursor; so do we"
    ds, builtin = plexcache_datasette(cache), builtin_datasette(cache)
    first = (await ds.client.get(f"/{DB}/tracks.json?_size=50")).json()
    next_query = urlsplit(first["next_url"]).query
    assert await facets_of(ds, next_query) == await facets_of(builtin, next_query)


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["stale", "old_version", "no_tables", "reset"])
async def test_falls_back_without_current_counts(cache, how):
    conn = connect(cache)
    genre, _ = facet_counts.top(conn, "genres", 1)[0]
    tamper(cache, "genres", genre, 100_000)
    if how == "stale":
        conn.execute("update tracks set year = 1234 where rowid % 7 = 0")
        assert state(conn)["status"] == "stale"
    elif how == "old_version":
        conn.execute("pragma user_version = 1")
    elif how == "no_tables":
        for name in facet_counts.TRIGGERS_SQL:
            conn.execute(f"drop trigger {name}")
        conn.execute("drop table facet_counts")
        conn.execute("drop table facet_counts_state")
        conn.execute("pragma user_version = 1")
    elif how == "reset":
        conn.close()
        reset_cache(cache)
    ours = await facets_of(plexcache_datasette(cache))
    assert ours == await facets_of(builtin_datasette(cache))
    assert all(r["count"] < 100_000 for f in ours.values() for r in f["results"])


@pytest.mark.asyncio
async def test_row_count_mismatch_falls_back(cache):
    "Counts marked current whose total is not the table's row count are not used"
    conn = connect(cache)
    for name in facet_counts.TRIGGERS_SQL:  # a bulk write with the triggers dropped
        conn.execute(f"drop trigger {name}")
    conn.execute("delete from tracks where rowid % 5 = 0")
    assert state(conn)["status"] == "current"
    ours = await facets_of(plexcache_datasette(cache))
    assert ours == await facets_of(builtin_datasette(cache))


@pytest.mark.asyncio
@pytest.mark.skipif(not DATASETTE_1, reason="Datasette 1.0 caps its row count")
async def test_capped_row_count_still_uses_counts(cache):
    "1.0 counts at most count_limit + 1 rows: the counts are still used above the cap"
    conn = connect(cache)
    genre, n = facet_counts.top(conn, "genres", 1)[0]
    tamper(cache, "genres", genre, 100_000)
    ds = plexcache_datasette(cache)
    ds.get_database(DB).count_limit = 100
    page = await facets_of(ds)
    assert page["genres"]["results"][0]["count"] == n + 100_000


@pytest.mark.asyncio
async def test_toggle_urls_filter_and_unfilter(cache):
    ds = plexcache_datasette(cache)
    conn = connect(cache)
    page = await facets_of(ds)
    # a column facet value: artist=...
    top_artist = page["artist"]["results"][0]
    assert not top_artist["selected"]
    assert ("artist", top_artist["value"]) in parse_qsl(urlsplit(top_artist["toggle_url"]).query)
    facets = await facets_at(ds, path_of(top_artist["toggle_url"]))
    selected = [r for r in facets["artist"]["results"] if r["selected"]]
    assert [r["value"] for r in selected] == [top_artist["value"]]
    assert selected[0]["count"] == top_artist["count"]
    assert (
        conn.execute(
            "select count(*) from tracks where artist = ?", (top_artist["value"],)
        ).fetchone()[0]
        == top_artist["count"]
    )
    # and back: the selected value's toggle removes the filter
    assert await facets_at(ds, path_of(selected[0]["toggle_url"])) == page
    # an array facet value: genres__arraycontains=...
    top_genre = page["genres"]["results"][0]
    assert ("genres__arraycontains", top_genre["value"]) in parse_qsl(
        urlsplit(top_genre["toggle_url"]).query
    )
    facets = await facets_at(ds, path_of(top_genre["toggle_url"]))
    selected = [r for r in facets["genres"]["results"] if r["selected"]]
    assert [(r["value"], r["count"]) for r in selected] == [
        (top_genre["value"], top_genre["count"])
    ]


@pytest.mark.asyncio
async def test_html_page_shows_facets_as_before(cache):
    ds = plexcache_datasette(cache)
    html = (await ds.client.get(f"/{DB}/tracks")).text
    builtin_html = (await builtin_datasette(cache).client.get(f"/{DB}/tracks")).text

    def facet_block(text):
        start = text.index('<div class="facet-results">')
        return text[start : text.index("\n</div>", start)]

    assert facet_block(html) == facet_block(builtin_html)
    assert "genres (array)" in html
    assert "precounted" not in facet_block(html)
    # metadata facets cannot be removed; "Facet by this" stays hidden for them (data-column)
    assert 'data-column="genres"' in html and 'class="cross"' not in facet_block(html)


@pytest.mark.asyncio
async def test_facets_added_from_the_ui_still_work(cache):
    ds = plexcache_datasette(cache)
    builtin = builtin_datasette(cache)
    for query in ["_facet=album", "_facet_array=genres&is_live=1", "_facet_date=added_at"]:
        ours = await facets_of(ds, query)
        assert ours == await facets_of(builtin, query)
    page = await facets_of(ds, "_facet=album")
    assert page["album"]["hideable"]
    back = urlsplit(page["album"]["toggle_url"]).query
    assert "_facet=album" not in back
    # this plugin's own types can be asked for, and removed, too
    page = await facets_of(ds, "_facet_precounted=codec")
    assert page["codec"]["type"] == "column" and page["codec"]["hideable"]
    assert "_facet_precounted" not in page["codec"]["toggle_url"]


@pytest.mark.asyncio
async def test_albums_and_artists_facets(cache):
    ds = plexcache_datasette(cache)
    for table, names in [("albums", {"year", "genres", "is_live"}), ("artists", {"genres"})]:
        data = (await ds.client.get(f"/{DB}/{table}.json?_extra=facet_results")).json()
        facets = data["facet_results"].get("results", data["facet_results"])
        assert set(facets) == names, table
        assert all(f["results"] for f in facets.values()), table


@pytest.mark.asyncio
async def test_facet_tables_are_hidden(cache):
    ds = plexcache_datasette(cache)
    html = (await ds.client.get(f"/{DB}")).text
    assert "/tracks" in html
    assert f"/{DB}/facet_counts" not in html
    assert (await ds.client.get(f"/{DB}/facet_counts.json")).status_code == 200
