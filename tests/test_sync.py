"""The sync engine against the simulator over real HTTP: column rules,
request counts, incremental == full, failures, locking, secrets."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from syncutil import config_for, edit_parent, run_cli, runs, snapshot

from plexcache.config import PlexConfig
from plexcache.errors import (
    CacheError,
    NoMusicSection,
    PlexAuthError,
    PlexError,
    SyncAlreadyRunning,
)
from plexcache.lock import SyncLock
from plexcache.simulator import Simulator
from plexcache.simulator.profiles import CLASSIC, REALISTIC
from plexcache.status import get_status
from plexcache.sync import sync

TOKEN = "sync-Tok_en-42xYz"


SIM = {"tracks": 3000, "seed": 11, "token": TOKEN}  # one simulator for the module (conftest.sim)


@pytest.fixture
def fresh_sim():
    with Simulator(tracks=1200, seed=5, token=TOKEN) as s:
        yield s


def rows_by_key(db, table="tracks", key="rating_key"):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r[key]: dict(r) for r in conn.execute(f"select * from {table}")}
    finally:
        conn.close()


# -- column rules ------------------------------------------------------------


def test_every_column_follows_the_rules(tmp_path, sim):
    "Every row equals the simulator's ground truth (the README's column rules on its model)"
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    tracks = rows_by_key(db)
    expected = sim.expected_tracks()
    assert set(tracks) == set(expected)
    checked = {"compilation": 0, "own_genres": 0, "album_genres": 0, "artist_genres": 0, "live": 0, "no_year": 0,
               "no_duration": 0}  # fmt: skip
    for key, row in tracks.items():
        want = expected[key]
        assert {**row, "genres": json.loads(row["genres"])} == want, key
        t = sim.library.track(key)
        checked["compilation"] += want["track_artist"] is not None
        checked["own_genres"] += bool(t["genres"])
        checked["album_genres"] += not t["genres"] and bool(
            sim.library.album(want["album_rating_key"])["genres"]
        )
        checked["artist_genres"] += (
            not t["genres"] and not sim.library.album(want["album_rating_key"])["genres"]
        )
        checked["live"] += want["is_live"]
        checked["no_year"] += want["year"] is None
        checked["no_duration"] += want["duration_ms"] is None
    # the synthetic library exercises every rule
    for rule, n in checked.items():
        assert n > 0, f"no track exercised {rule}"


def test_unicode_and_xml_special_characters_survive(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    conn = sqlite3.connect(db)
    names = [r[0] for r in conn.execute("select artist || album || title from tracks")]
    assert any(any(ord(ch) > 0x3000 for ch in n) for n in names), "no CJK text"
    assert any("&" in n for n in names)
    assert any("<" in n or '"' in n for n in names)


def test_albums_and_artists_tables_link_by_foreign_keys(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    conn = sqlite3.connect(db)
    orphans = conn.execute(
        "select count(*) from tracks t left join albums a on a.rating_key = t.album_rating_key where a.rating_key is null"
    ).fetchone()[0]
    assert orphans == 0
    fks = conn.execute("pragma foreign_key_list(tracks)").fetchall()
    assert {fk[2] for fk in fks} >= {"albums", "artists"}
    # full-text search works
    title = conn.execute("select title from tracks limit 1").fetchone()[0]
    word = title.split()[0].strip('"&<>()')
    if word:
        hits = conn.execute(
            "select count(*) from tracks_fts where tracks_fts match ?", (f'"{word}"',)
        ).fetchone()[0]
        assert hits >= 1


def test_no_url_with_token_and_no_token_anywhere(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path
    conn = sqlite3.connect(db)
    for table in ("tracks", "albums", "artists", "sync_runs", "sections"):
        for row in conn.execute(f"select * from {table}"):
            assert not any(isinstance(v, str) and "X-Plex-Token" in v for v in row)


# -- requests ----------------------------------------------------------------


@pytest.mark.parametrize("profile", [REALISTIC, CLASSIC])
def test_full_sync_request_count(tmp_path, profile):
    """A first sync meets a server version the cache knows nothing about: a keys-only scan, one
    listing page to learn from and every track in full per section, then albums and artists in
    batches. A later full sync of the learned server lists the tracks and reads in full only
    those whose listed genres may be cut: every one where listings show no track genres
    (pms-1.41), those showing 2 (classic cuts at 2)."""
    with Simulator(tracks=3000, seed=11, token=TOKEN, profile=profile) as sim:
        db = tmp_path / "c.db"
        sections = [s for s in sim.library.sections() if s["type"] == "artist"]
        sizes = [sim.library.track_count(s["id"]) for s in sections]
        keys = sim.library.track_keys()
        parents = len({sim.library.track(k)["parentRatingKey"] for k in keys}) + len(
            {sim.library.track(k)["grandparentRatingKey"] for k in keys}
        )
        # the listening history: its pages per section, /accounts and /devices
        history = sum(math.ceil(max(1, len(sim.history.entries(librarySectionID=str(s["id"])))) / 1000)
                      for s in sections)  # fmt: skip
        fixed = (
            2 + len(sections) + history + 2
        )  # root, sections, one count per section, the history
        sim.reset_counts()
        result = sync(db, config_for(sim))
        assert result.requests == sim.total_requests
        assert sim.request_counts["history"] == history
        # keys (pages of 5,000, then a count proving the end), a sample page, full items
        in_full = sum(math.ceil(n / 5000) + 1 + 1 + math.ceil(n / 500) for n in sizes)
        assert sim.total_requests <= fixed + in_full + math.ceil(parents / 500) + 1, (
            sim.request_counts
        )
        assert not sim.unknown_filters, sim.unknown_filters

        sim.reset_counts()
        result = sync(db, config_for(sim), full=True)
        assert result.requests == sim.total_requests
        if profile == CLASSIC:
            cut = sum(1 for k in keys if len(sim.library.track(k)["genres"]) >= 2)
            listed = sum(math.ceil(n / 1000) for n in sizes) + math.ceil(cut / 500)
            assert (
                sim.request_counts["metadata"]
                <= math.ceil(parents / 500) + math.ceil(cut / 500) + 1
            )
        else:
            listed = in_full
        assert sim.total_requests <= fixed + listed + math.ceil(parents / 500) + 1, (
            sim.request_counts
        )
        assert not sim.unknown_filters, sim.unknown_filters


def test_nothing_changed_costs_a_few_requests(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    before = snapshot(db)
    sim.reset_counts()
    result = sync(db, config_for(sim))
    assert result.mode == "incremental"
    assert (result.added, result.updated, result.removed) == (0, 0, 0)
    assert sim.total_requests <= 5, sim.request_counts
    assert snapshot(db) == before
    assert not sim.unknown_filters, sim.unknown_filters


# -- incremental == full -----------------------------------------------------


def mutate_randomly(sim, rng: random.Random, steps: int):
    lib = sim.library
    for _ in range(steps):
        keys = lib.track_keys()
        op = rng.choice(
            ["edit", "edit", "add", "delete", "play", "play", "rate", "album", "artist"]
        )
        key = rng.choice(keys)
        t = lib.track(key)
        if op == "edit":
            sim.edit_track(key, title=f"{t['title']} (edit {rng.randint(1, 999)})")
        elif op == "add":
            sim.add_tracks(
                rng.randint(1, 5),
                section_id=t.get("librarySectionID", 1) or 1,
                album_key=rng.choice([None, t["parentRatingKey"]]),
            )
        elif op == "delete":
            sim.delete_tracks(rng.sample(keys, rng.randint(1, 3)))
        elif op == "play":
            sim.play_track(key, times=rng.randint(1, 3))
        elif op == "rate":
            sim.rate_track(key, rng.choice([None, 2.0, 6.0, 10.0]))
        elif op == "album":
            edit_parent(sim, rng, t, "album", ["Rock", "Jazz", "Ambient", "Folk", "Pop"])
        elif op == "artist":
            edit_parent(sim, rng, t, "artist", ["Electronic", "Metal", "Blues"])
        if rng.random() < 0.3:
            sim.advance_clock(rng.randint(1, 90))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_equals_full_after_random_mutations(tmp_path, fresh_sim, seed):
    sim = fresh_sim
    rng = random.Random(seed)
    inc_db = tmp_path / "inc.db"
    sync(inc_db, config_for(sim))
    for round_no in range(4):
        sim.advance_clock(5)
        mutate_randomly(sim, rng, steps=rng.randint(3, 25))
        sim.advance_clock(1)
        result = sync(inc_db, config_for(sim))
        assert result.mode == "incremental"
        full_db = tmp_path / f"full{round_no}.db"
        sync(full_db, config_for(sim), full=True)
        inc, full = snapshot(inc_db), snapshot(full_db)
        for table in inc:
            assert inc[table] == full[table], f"round {round_no}: {table} differs"


def test_bulk_loads_rebuild_every_index(tmp_path, fresh_sim):
    "A first sync drops the secondary indexes for speed: all come back, same SQL"
    from plexcache.db import init_cache

    def indexes(path):
        conn = sqlite3.connect(path)
        try:
            return sorted(
                conn.execute("select name, tbl_name, sql from sqlite_master where type = 'index'")
            )
        finally:
            conn.close()

    db = tmp_path / "c.db"
    sync(db, config_for(fresh_sim))
    init_cache(tmp_path / "empty.db")
    assert indexes(db) == indexes(tmp_path / "empty.db")
    # a full re-sync of a library mostly gone is a bulk load too
    fresh_sim.delete_tracks(fresh_sim.library.track_keys()[:400])
    sync(db, config_for(fresh_sim), full=True, allow_mass_delete=True)
    assert indexes(db) == indexes(tmp_path / "empty.db")
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    conn.close()


def test_full_flag_forces_full(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    result = sync(db, config_for(sim), full=True)
    assert result.mode == "full"
    assert (result.added, result.updated, result.removed) == (0, 0, 0)


def test_deletions_are_detected_and_mass_deletes_refused(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    gone = sim.library.track_keys()[:3]
    sim.delete_tracks(gone)
    result = sync(db, config_for(sim))
    assert result.removed == 3
    assert not set(gone) & set(rows_by_key(db))
    # now remove most of the library: refused without the flag
    keys = sim.library.track_keys()
    sim.delete_tracks(keys[: int(len(keys) * 0.7)])
    before = snapshot(db)
    result = sync(db, config_for(sim))
    assert result.removed == 0
    assert any("--allow-mass-delete" in w for w in result.warnings)
    assert snapshot(db)["tracks"] == before["tracks"]
    result = sync(db, config_for(sim), allow_mass_delete=True)
    assert result.removed == int(len(keys) * 0.7)


# The first request of a keys-only listing of a whole section (no `track.id` bound, no
# `album.id=` filter): the full key scan.
FULL_KEY_SCAN = r"^(?!.*(track|album)\.id).*type=10.*excludeFields=title%2C"


def deletions_without_key_scan(tmp_path, sim, db, gone: list[str]):
    """Delete ``gone``, add and edit a track: with the full key scan refused, an incremental sync
    removes exactly ``gone`` and the cache equals a full sync's. Returns the sync's request counts."""
    keys = sim.library.track_keys()
    sim.advance_clock(5)
    sim.delete_tracks(gone)
    sim.add_tracks(4, section_id=1, album_key=sim.library.track(keys[0])["parentRatingKey"])
    sim.edit_track(keys[1], title="Edited")
    sim.advance_clock(1)
    sim.inject_fault("status", path=FULL_KEY_SCAN, status=400, times=1000)
    sim.reset_counts()
    result = sync(db, config_for(sim))
    counts = sim.request_counts
    assert result.mode == "incremental"
    assert result.removed == len(gone)
    assert sim.faults[0]["fired"] == 0
    assert not set(gone) & set(rows_by_key(db))
    sim.clear_faults()
    full_db = tmp_path / "full.db"
    sync(full_db, config_for(sim), full=True)
    assert snapshot(db) == snapshot(full_db)
    return counts


@pytest.mark.parametrize("profile", [REALISTIC, "leafcount-listings"])
def test_a_deletion_is_found_from_key_range_counts_without_a_full_key_scan(tmp_path, profile):
    "Album listings without leafCount (every real one) or with it: the same few counts"
    with Simulator(
        tracks=15000, seed=5, token=TOKEN, profile=profile, music_sections=1, history=0
    ) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        counts = deletions_without_key_scan(tmp_path, sim, db, [sim.library.track_keys()[9876]])
        # 3 track deltas, album and artist deltas and their tracks, the count, 2 halvings, a page of keys
        assert counts["all"] <= 11, counts


@pytest.fixture
def leaf_sim():
    "A server whose album listings carry leafCount (no real capture does): the album-count path"
    # big enough that a dozen deletions are not worth key-range counts (small sections: one page of keys)
    with Simulator(tracks=12000, seed=5, token=TOKEN, profile="leafcount-listings", music_sections=1,
                   history=0) as s:  # fmt: skip
        yield s


def test_more_deletions_are_found_from_album_counts_where_listed(tmp_path, leaf_sim):
    db = tmp_path / "c.db"
    sync(db, config_for(leaf_sim))
    deletions_without_key_scan(
        tmp_path, leaf_sim, db, random.Random(7).sample(leaf_sim.library.track_keys(), 12)
    )


def test_deletions_fall_back_to_every_key_when_album_counts_do_not_explain_them(tmp_path, leaf_sim):
    sim = leaf_sim
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    victims = sim.library.track_keys()[5:25]
    # A cached track with no album cannot be found through album counts.
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "update tracks set album_rating_key = null where rating_key = ?", (victims[0],)
        )
    conn.close()
    key_scan_needed(sim, db, victims)


def test_many_deletions_list_every_key(tmp_path, fresh_sim):
    "When counting ranges would cost as many requests as listing every key, every key is listed"
    sim = fresh_sim
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    key_scan_needed(sim, db, random.Random(3).sample(sim.library.track_keys(), 30))


def key_scan_needed(sim, db, gone: list[str]) -> None:
    "Deleting ``gone``: the sync fails while the full key scan is refused, and removes them all once allowed"
    sim.advance_clock(5)
    sim.delete_tracks(gone)
    sim.advance_clock(1)
    sim.inject_fault("status", path=FULL_KEY_SCAN, status=400, times=1000)
    with pytest.raises(PlexError):
        sync(db, config_for(sim))
    assert sim.faults[0]["fired"] >= 1
    sim.clear_faults()
    result = sync(db, config_for(sim))
    assert result.removed == len(gone)
    assert not set(gone) & set(rows_by_key(db))


def test_section_limit_and_unknown_section(tmp_path, sim):
    db = tmp_path / "c.db"
    music = [s for s in sim.library.sections() if s["type"] == "artist"]
    assert len(music) >= 2
    target = music[1]
    result = sync(db, config_for(sim), section=target["title"].upper())
    assert result.track_count == sim.library.track_count(target["id"])
    with pytest.raises(NoMusicSection, match="no music library named 'Nope'"):
        sync(db, config_for(sim), section="Nope")


def test_other_server_replaces_cache(tmp_path, sim, fresh_sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    result = sync(db, config_for(fresh_sim))
    assert any("replacing it" in w for w in result.warnings)
    assert set(rows_by_key(db)) == set(fresh_sim.library.track_keys())
    conn = sqlite3.connect(db)
    assert (
        conn.execute("select plex_server_id from sync_state").fetchone()[0]
        == fresh_sim.machine_identifier
    )


def test_keyset_paging_survives_deletions_during_the_sync(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    keys = sim.library.track_keys()
    stop = threading.Event()
    deleted = []

    def deleter():
        rng = random.Random(9)
        while not stop.is_set():
            victims = rng.sample(sim.library.track_keys(), 2)
            sim.delete_tracks(victims)
            deleted.extend(victims)
            time.sleep(0.01)

    sim.set_latency(20)
    thread = threading.Thread(target=deleter)
    thread.start()
    try:
        sync(db, config_for(sim), page_size=100)
    finally:
        stop.set()
        thread.join()
        sim.set_latency(0)
    cached = set(rows_by_key(db))
    still_there = set(sim.library.track_keys())
    # every track that exists now and existed at the start was cached
    assert still_there & set(keys) <= cached
    assert len(deleted) > 10


# -- failures ------------------------------------------------------------------


def test_500_mid_sync_keeps_cache_and_records_failure(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    before = snapshot(db)
    sim.edit_track(sim.library.track_keys()[0], title="changed")
    sim.inject_fault("status", path=r"/all", nth=2, times=10, status=500)
    with pytest.raises(PlexError, match="500"):
        sync(db, config_for(sim), full=True, page_size=200, retries=1)
    assert snapshot(db) == before
    last = runs(db)[-1]
    assert last["status"] == "failed" and "500" in last["error"]
    sim.clear_faults()
    assert sync(db, config_for(sim)).status == "succeeded"


def test_transient_faults_are_retried(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    sim.inject_fault("status", path=r"/all", nth=2, times=1, status=429, retry_after=1)
    sim.inject_fault("drop", path=r"/library/metadata", nth=1, times=1)
    sim.inject_fault("truncate", path=r"/all", nth=4, times=1)
    result = sync(db, config_for(sim), page_size=200)
    assert result.status == "succeeded"
    assert result.track_count == sim.library.track_count()


def test_dropped_connection_keeps_cache(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    before = snapshot(db)
    sim.inject_fault("drop", path=r"/all", nth=1, times=20)
    with pytest.raises(PlexError, match="closed the connection|cannot reach"):
        sync(db, config_for(sim), full=True, retries=1)
    assert snapshot(db) == before
    assert runs(db)[-1]["status"] == "failed"


def test_bad_token_and_unreachable_server(tmp_path, sim):
    db = tmp_path / "c.db"
    with pytest.raises(PlexAuthError) as err:
        sync(db, PlexConfig(url=sim.url, token="wrong-token"))
    assert "wrong-token" not in str(err.value)
    done = run_cli(["sync", "--db", db], env={"PLEX_URL": sim.url, "PLEX_TOKEN": "wrong-token"})
    assert done.returncode == 1
    assert done.stderr.strip().startswith("Error:") and "401" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    done = run_cli(
        ["sync", "--db", db], env={"PLEX_URL": "http://127.0.0.1:9", "PLEX_TOKEN": TOKEN}
    )
    assert done.returncode == 1
    assert "cannot reach Plex at http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr + done.stdout

    done = run_cli(["sync", "--db", db], env={"PLEX_URL": "not a url"})
    # a bad setting is bad usage: exit 2, naming the setting (exact texts: tests/test_cli_errors.py)
    assert done.returncode == 2 and "Invalid value for PLEX_URL: expected an address" in done.stderr


def test_not_a_plex_server(tmp_path):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>hello</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = run_cli(
            ["sync", "--db", tmp_path / "c.db"],
            env={"PLEX_URL": f"http://127.0.0.1:{server.server_port}", "PLEX_TOKEN": "x"},
        )
    finally:
        server.shutdown()
    assert done.returncode == 1
    assert "does not look like a Plex Media Server" in done.stderr


def test_corrupt_and_readonly_cache(tmp_path, sim):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match="not a valid SQLite database"):
        sync(bad, config_for(sim))
    assert bad.read_bytes() == b"this is not sqlite" * 100
    done = run_cli(["sync", "--db", bad], sim=sim)
    assert done.returncode == 1 and "not a valid SQLite database" in done.stderr
    assert "Traceback" not in done.stderr

    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    sync(ro / "c.db", config_for(sim))
    os.chmod(ro / "c.db", 0o444)
    with pytest.raises(CacheError):
        sync(ro / "c.db", config_for(sim), full=True)


def test_one_sync_at_a_time(tmp_path, sim):
    db = tmp_path / "c.db"
    lock = SyncLock(db).acquire()
    try:
        with pytest.raises(SyncAlreadyRunning):
            sync(db, config_for(sim))
        done = run_cli(["sync", "--db", db], sim=sim)
        assert done.returncode == 1
        assert "a sync is already running" in done.stderr
        assert get_status(db, None)["is_syncing"] is True
    finally:
        lock.release()
    assert not db.exists() or runs(db) == []


def test_two_concurrent_cli_syncs_one_runs(tmp_path, fresh_sim):
    sim = fresh_sim
    sim.set_latency(150)  # each sync takes seconds, far longer than the lock wait
    db = tmp_path / "c.db"
    env = {"PLEX_URL": sim.url, "PLEX_TOKEN": sim.token}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "plexcache", "sync", "--db", str(db), "--page-size", "200"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = sorted(p.wait(timeout=120) for p in procs)
    sim.set_latency(0)
    assert outcomes == [0, 1]
    assert [r["status"] for r in runs(db)] == ["succeeded"]


def test_sigkill_mid_sync_leaves_cache_intact(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    before = snapshot(db)
    for key in sim.library.track_keys()[:50]:
        sim.edit_track(key, title="new title")
    sim.set_latency(40)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plexcache",
            "sync",
            "--db",
            str(db),
            "--full",
            "--page-size",
            "100",
            "--quiet",
        ],
        env={**os.environ, "PLEX_URL": sim.url, "PLEX_TOKEN": sim.token},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = runs(db)
        if rows and rows[-1]["status"] == "running" and rows[-1]["progress_current"] > 200:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sim.set_latency(0)
    assert snapshot(db) == before
    status = get_status(db, None)
    assert status["is_syncing"] is False
    assert "stopped before finishing" in status["error"]
    assert runs(db)[-1]["status"] == "interrupted"
    result = sync(db, config_for(sim))
    assert result.status == "succeeded"
    titles = {r["title"] for r in rows_by_key(db).values()}
    assert "new title" in titles


def test_sigterm_is_recorded_as_interrupted(tmp_path, fresh_sim):
    sim = fresh_sim
    db = tmp_path / "c.db"
    sim.set_latency(40)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plexcache",
            "sync",
            "--db",
            str(db),
            "--page-size",
            "100",
            "--quiet",
        ],
        env={**os.environ, "PLEX_URL": sim.url, "PLEX_TOKEN": sim.token},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = runs(db)
        if rows and rows[-1]["progress_current"] > 100:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    sim.set_latency(0)
    last = runs(db)[-1]
    assert last["status"] == "interrupted"
    assert get_status(db, None)["track_count"] == 0


def test_ctrl_c_after_the_commit_leaves_the_run_succeeded(tmp_path, fresh_sim, caplog):
    # Ctrl-C (or the watch command's SIGINT) can land after the apply committed,
    # e.g. while the WAL is checkpointed: the run must not be rewritten as interrupted.
    db = tmp_path / "c.db"
    sync(db, config_for(fresh_sim))
    fresh_sim.advance_clock(2)
    fresh_sim.edit_track(fresh_sim.library.track_keys(1)[0], title="Saved before the signal")

    def interrupt_when_done(p):
        if p.phase == "done":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync(db, config_for(fresh_sim), on_progress=interrupt_when_done)
    last = runs(db)[-1]
    assert (last["status"], last["error"], last["tracks_updated"]) == ("succeeded", None, 1)
    assert "Saved before the signal" in {r["title"] for r in rows_by_key(db).values()}
    assert "Sync interrupted after its changes were saved" in caplog.messages
    assert not any(m.startswith("Sync interrupted:") for m in caplog.messages)
    assert get_status(db, None)["error"] is None


def test_token_never_in_logs_or_output(tmp_path, sim, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    sim.inject_fault("status", path=r"/all", nth=1, times=5, status=503)
    with pytest.raises(PlexError) as err:
        sync(db, config_for(sim), full=True, retries=1)
    sim.clear_faults()
    assert TOKEN not in str(err.value)
    assert TOKEN not in caplog.text
    done = run_cli(["sync", "--db", db, "--full"], sim=sim, env={"PLEXCACHE_TIMEOUT": "5"})
    status = run_cli(["status", "--db", db, "--json"], sim=sim)
    for text in (done.stdout, done.stderr, status.stdout, status.stderr):
        assert TOKEN not in text
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes()


def test_server_settings_precedence(tmp_path, sim):
    "--url/--token, then PLEX_URL/PLEX_TOKEN, then plexapi's own settings"
    db = tmp_path / "c.db"
    plexapi_env = {"PLEXAPI_AUTH_SERVER_BASEURL": sim.url, "PLEXAPI_AUTH_SERVER_TOKEN": sim.token}
    done = run_cli(["sync", "--db", db, "--quiet"], env=plexapi_env)
    assert done.returncode == 0, done.stderr
    ini = tmp_path / "plexapi.ini"
    ini.write_text(f"[auth]\nserver_baseurl = {sim.url}\nserver_token = {sim.token}\n")
    done = run_cli(["status", "--db", db, "--json"], env={"PLEXAPI_CONFIG_PATH": str(ini)})
    assert json.loads(done.stdout)["plex_connected"] is True
    # explicit options beat the environment
    done = run_cli(
        ["status", "--db", db, "--json", "--url", sim.url, "--token", "wrong"],
        env={"PLEX_URL": "http://127.0.0.1:9", "PLEX_TOKEN": sim.token},
    )
    status = json.loads(done.stdout)
    assert status["plex_connected"] is False and "401" in status["error"]
    assert "wrong" not in done.stdout.replace("wrong-", "")
