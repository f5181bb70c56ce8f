"""The listening history in the sync, against the simulator over real HTTP
and real SQLite files: backfill == Plex, incremental == full, request
counts, permissions, failures, kills, --no-history, reset."""

from __future__ import annotations

import random
import sqlite3
import time

import pytest
from relutil import cli_env, fingerprint, ro, spawn_cli
from syncutil import config_for, run_cli, runs

from plexcache.config import PlexConfig
from plexcache.db import reset_cache
from plexcache.errors import PlexError
from plexcache.simulator import Simulator
from plexcache.status import get_status
from plexcache.sync import sync, sync_history
from plexcache.timeutil import epoch_to_iso

TOKEN = "hist-Tok_en-77aBc"
PLAY_COLUMNS = ("history_id", "rating_key", "account_id", "device_id", "viewed_at", "section_id", "title", "artist",
                "album", "track_number", "disc_number")  # fmt: skip


SIM = {
    "tracks": 2500,
    "seed": 21,
    "token": TOKEN,
    "history": 4000,
}  # the module's shared simulator (conftest)


def fresh(sim_factory, **kwargs) -> Simulator:
    "A simulator of its own (stopped at the test's end), for tests that change it"
    return sim_factory(**{"tracks": 1200, "seed": 4, "token": TOKEN, "history": 1500, **kwargs})


def music_sections(sim) -> list[int]:
    return [s["id"] for s in sim.library.sections() if s["type"] == "artist"]


def expected_plays(sim) -> dict[int, dict]:
    "Every music play the simulator lists, as a plays row"
    out = {}
    for sid in music_sections(sim):
        for e in sim.history.entries(librarySectionID=str(sid)):
            hid = int(e["historyKey"].rsplit("/", 1)[1])
            out[hid] = dict(zip(PLAY_COLUMNS, (
                hid, e.get("ratingKey"), e["accountID"], e.get("deviceID"), epoch_to_iso(e["viewedAt"]),
                int(e["librarySectionID"]), e["title"], e.get("grandparentTitle"), e.get("parentTitle"),
                e.get("index"), e.get("parentIndex"),
            ), strict=True))  # fmt: skip
    return out


def rows(db, table: str, key: str = "id") -> dict:
    conn = ro(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r[key]: dict(r) for r in conn.execute(f"select * from {table}")}
    finally:
        conn.close()


def plays(db) -> dict[int, dict]:
    return rows(db, "plays", "history_id")


def people(sim):
    accounts = {a["id"]: {"id": a["id"], "name": a["name"], "thumb": a["thumb"] or None,
                          "default_audio_language": a["defaultAudioLanguage"]}
                for a in sim.history.accounts()}  # fmt: skip
    devices = {d["id"]: {"id": d["id"], "name": d["name"], "platform": d["platform"] or None,
                         "client_identifier": d["clientIdentifier"], "created_at": epoch_to_iso(d["createdAt"])}
               for d in sim.history.devices()}  # fmt: skip
    return accounts, devices


def copy_db(src, dst) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


# -- the backfill ----------------------------------------------------------------------------


def test_backfill_equals_the_servers_history(tmp_path, sim):
    db = tmp_path / "c.db"
    result = sync(db, config_for(sim))
    cached = plays(db)
    expected = expected_plays(sim)
    assert cached == expected
    assert result.plays_added == len(expected) > 3000
    # the simulator's history holds every kind of entry the sync must handle
    assert any(p["rating_key"] is None for p in cached.values()), "no play of a long-gone track"
    assert any(p["device_id"] is None for p in cached.values()), "no play without a device"
    assert len({p["account_id"] for p in cached.values()}) >= 3
    assert len(sim.history.entries()) > sum(1 for _ in expected), "no movie plays left out"
    accounts, devices = people(sim)
    assert rows(db, "accounts") == accounts
    assert rows(db, "devices") == devices
    state = rows(db, "history_sync", "section_id")
    assert {sid: s["listed"] for sid, s in state.items()} == {
        sid: len(sim.history.entries(librarySectionID=str(sid))) for sid in music_sections(sim)
    }
    assert result.warnings == []


def test_nothing_played_costs_no_extra_request(tmp_path, sim):
    """A sync with nothing new asks: the sections, one history page per music
    section (instead of the lastViewedAt delta), the lastRatedAt delta per section"""
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    before = plays(db)
    sim.reset_counts()
    result = sync(db, config_for(sim))
    sections = len(music_sections(sim))
    assert sections == 2
    assert sim.request_counts == {"sections": 1, "history": sections, "all": sections}
    assert result.requests == sim.total_requests <= 5
    assert plays(db) == before
    assert not sim.unknown_filters, sim.unknown_filters


# -- incremental == full -------------------------------------------------------------------------


def mutate_history(sim, rng: random.Random, steps: int) -> None:
    "Plays by every account, late (offline) uploads, deleted tracks and entries, new accounts and devices"
    h = sim.history
    for _ in range(steps):
        keys = sim.library.track_keys()
        others = [a["id"] for a in h.accounts() if a["id"] not in (0, 1)]
        op = rng.choice(["play", "play", "other", "other", "late", "delete_track", "account", "device",
                         "delete_entry"])  # fmt: skip
        key = rng.choice(keys)
        if op == "play":
            sim.play_track(key, times=rng.randint(1, 2))
        elif op == "other":
            sim.play_track(key, account_id=rng.choice(others))
        elif op == "late":
            # an offline play uploaded late: recent, or among the oldest plays (far below the first page)
            when = rng.choice(
                [sim.now() - rng.randint(1, 400) * 86400, rng.randint(1_400_000_000, 1_600_000_000)]
            )
            sim.add_play(key, account_id=rng.choice([1, *others]), viewed_at=when)
        elif op == "delete_track":
            played = [
                e["ratingKey"] for e in h.entries(sort="viewedAt:desc")[:200] if e.get("ratingKey")
            ]
            sim.delete_tracks(rng.sample(played, min(len(played), rng.randint(1, 3))))
        elif op == "account":
            account = sim.add_account(f"Guest {rng.randint(1, 9999)}")
            sim.play_track(key, account_id=account["id"])
        elif op == "device":
            device = sim.add_device(
                f"Speaker {rng.randint(1, 99)}", "Sonos", account_id=rng.choice(others)
            )
            sim.play_track(key, account_id=rng.choice(others), device_id=device["id"])
        else:
            sim.delete_history(
                rng.choice(h.entries(sort="viewedAt:desc")[:300])["historyKey"].rsplit("/", 1)[1]
            )
        if rng.random() < 0.3:
            sim.advance_clock(rng.randint(1, 900))


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_equals_full_after_random_changes(tmp_path, sim_factory, seed):
    sim = fresh(sim_factory, seed=seed)
    cfg = config_for(sim)
    db = tmp_path / "inc.db"
    sync(db, cfg)
    rng = random.Random(seed)
    keys_seen = {hid: p["rating_key"] for hid, p in plays(db).items()}
    for step in range(4):
        mutate_history(sim, rng, rng.randint(6, 20))
        sim.advance_clock(rng.randint(1, 120))
        result = sync(db, cfg)
        assert result.mode == "incremental"
        ref = tmp_path / f"full-{step}.db"
        copy_db(db, ref)
        sync(ref, cfg, full=True)
        for table, key in (("plays", "history_id"), ("accounts", "id"), ("devices", "id")):
            assert rows(db, table, key) == rows(ref, table, key), (step, table)
        # and the cache holds every play Plex lists, keys it once knew kept
        cached = plays(db)
        for hid, want in expected_plays(sim).items():
            if want["rating_key"] is None and keys_seen.get(hid):
                want = {**want, "rating_key": keys_seen[hid]}
            assert cached[hid] == want, (step, hid)
        assert set(keys_seen) <= set(cached), "a play Plex dropped left the archive"
        keys_seen.update({hid: p["rating_key"] for hid, p in cached.items() if p["rating_key"]})
        accounts, devices = people(sim)
        assert rows(db, "accounts").keys() >= accounts.keys()
        assert rows(db, "devices").keys() >= devices.keys()


def test_other_accounts_plays_and_late_uploads_are_found(tmp_path, sim_factory):
    """Neither moves the owner's lastViewedAt: the history window and its
    count check find them"""
    sim = fresh(sim_factory)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    other = sim.add_account("Lodger")
    key = sim.library.track_keys()[7]
    sim.play_track(key, account_id=other["id"])
    when = sim.now() - 90 * 86400
    late = sim.add_play(sim.library.track_keys()[8], viewed_at=when)
    sim.advance_clock(5)
    before = sim.library.track(key)["viewCount"]
    result = sync(db, cfg)
    cached = plays(db)
    assert cached[late]["viewed_at"] == epoch_to_iso(when)
    assert [p["account_id"] for p in cached.values() if p["rating_key"] == key].count(
        other["id"]
    ) == 1
    assert rows(db, "accounts")[other["id"]]["name"] == "Lodger"
    assert result.plays_added == 2
    assert rows(db, "tracks", "rating_key")[key]["play_count"] == before  # not the owner's play


def test_owner_plays_update_play_counts(tmp_path, sim_factory):
    sim = fresh(sim_factory)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    key = sim.library.track_keys()[3]
    sim.play_track(key, times=2)
    sim.advance_clock(3)
    sync(db, cfg)
    track = rows(db, "tracks", "rating_key")[key]
    assert track["play_count"] == sim.library.track(key)["viewCount"]
    assert track["last_played_at"] == epoch_to_iso(sim.library.track(key)["lastViewedAt"])


def test_marked_played_waits_for_the_next_play(tmp_path, sim_factory):
    """The documented limit: a play count changed without a play (PMS 1.40+
    writes no history entry for "mark as played") shows at the next sync
    after any play in that library, and not before"""
    sim = fresh(sim_factory)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    keys = [k for k in sim.library.track_keys() if sim.library.track(k)["librarySectionID"] == 1]
    marked, played = keys[10], keys[11]
    sim.library.play_track(marked)  # play state only, no history entry
    sim.advance_clock(300)
    sync(db, cfg)
    assert (
        rows(db, "tracks", "rating_key")[marked]["play_count"]
        != sim.library.track(marked)["viewCount"]
    )
    sim.advance_clock(300)
    sim.play_track(played, account_id=[a["id"] for a in sim.history.accounts() if a["id"] > 1][0])
    sim.advance_clock(3)
    sync(db, cfg)
    assert (
        rows(db, "tracks", "rating_key")[marked]["play_count"]
        == sim.library.track(marked)["viewCount"]
    )


def test_a_deleted_track_keeps_its_plays_and_their_key(tmp_path, sim_factory):
    sim = fresh(sim_factory)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    key = next(e["ratingKey"] for e in sim.history.entries(sort="viewedAt:desc") if e.get("ratingKey")
               and e["librarySectionID"] == "1")  # fmt: skip
    mine = {hid for hid, p in plays(db).items() if p["rating_key"] == key}
    sim.delete_tracks([key])
    sim.advance_clock(3)
    sync(db, cfg)
    sync(db, cfg, full=True)
    cached = plays(db)
    assert mine and all(cached[hid]["rating_key"] == key for hid in mine)
    assert key not in rows(db, "tracks", "rating_key")
    assert all(e.get("ratingKey") is None for e in sim.history.entries() if e["historyKey"].endswith(
        tuple(f"/{h}" for h in mine)))  # fmt: skip


# -- permissions -------------------------------------------------------------------------------


def _managed(sim, mode: str) -> PlexConfig:
    account = sim.add_account("Kid", id=5000)
    sim.add_managed_token("kid-Tok_en-55", account["id"])
    for key in sim.library.track_keys()[:3]:
        sim.play_track(key, account_id=5000)
    sim.managed_history = mode
    return PlexConfig(url=sim.url, token="kid-Tok_en-55", timeout=10)


@pytest.mark.parametrize("mode,status", [("401", "401 Unauthorized"), ("403", "403 Forbidden")])
def test_a_refused_history_leaves_the_tracks_syncing(tmp_path, sim_factory, mode, status):
    sim = fresh(sim_factory)
    cfg = _managed(sim, mode)
    db = tmp_path / "c.db"
    result = sync(db, cfg)
    warning = (
        f"listening history not synced: Plex at {sim.url} refused it to this token ({status}); "
        "only the server owner's token may read every account's plays"
    )
    assert result.warnings == [warning]
    assert result.track_count == len(sim.library.track_keys())
    assert plays(db) == {}
    run = runs(db)[-1]
    assert (run["status"], run["warning"], run["error"]) == ("succeeded", warning, None)
    status_obj = get_status(db, check_plex=False)
    assert status_obj == {"track_count": result.track_count, "synced_at": status_obj["synced_at"],
                          "is_syncing": False, "sync_progress": None, "error": None,
                          "plex_connected": False}  # fmt: skip
    # and later syncs keep working (with the play-count delta, since the history is unknown)
    key = sim.library.track_keys()[5]
    sim.library.play_track(key)
    sim.advance_clock(3)
    assert sync(db, cfg).warnings == [warning]
    assert (
        rows(db, "tracks", "rating_key")[key]["play_count"] == sim.library.track(key)["viewCount"]
    )


def test_a_managed_token_keeps_its_own_plays_with_a_warning(tmp_path, sim_factory):
    sim = fresh(sim_factory)
    cfg = _managed(sim, "own")
    db = tmp_path / "c.db"
    result = sync(db, cfg)
    warning = (
        "listening history: this token only sees the plays of account 'Kid' (id 5000), "
        "not the server owner's view; other accounts' plays were not synced"
    )
    assert result.warnings == [warning]
    cached = plays(db)
    assert cached == {hid: p for hid, p in expected_plays(sim).items() if p["account_id"] == 5000}
    assert len(cached) >= 3
    assert set(rows(db, "accounts")) == {5000}
    sim.advance_clock(5)
    again = sync(db, cfg)
    assert again.warnings == [warning]
    assert plays(db) == cached
    assert runs(db)[-1]["warning"] == warning
    assert get_status(db, check_plex=False)["error"] is None


# -- failures --------------------------------------------------------------------------------


def test_a_history_page_failing_midway_fails_the_run(tmp_path, sim_factory):
    sim = fresh(sim_factory)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    before = fingerprint(db), plays(db)
    sim.play_track(sim.library.track_keys()[1])
    sim.edit_track(sim.library.track_keys()[2], title="Never Applied")
    sim.advance_clock(3)
    sim.inject_fault("status", path=r"^/status/sessions/history", nth=3, times=50, status=500)
    with pytest.raises(PlexError) as e:
        sync(db, cfg, full=True, page_size=200, retries=1)
    assert (
        str(e.value)
        == f"Plex at {sim.url} answered 500 Internal Server Error for /status/sessions/history/all"
    )
    assert (fingerprint(db), plays(db)) == before
    run = runs(db)[-1]
    assert (run["status"], run["phase"]) == ("failed", "history")


def test_a_sync_killed_in_the_history_phase_loses_nothing(tmp_path, sim_factory):
    sim = fresh(sim_factory, history=4000)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    before = fingerprint(db), plays(db)
    for key in sim.library.track_keys()[:20]:
        sim.play_track(key)
    sim.advance_clock(3)
    sim.set_latency(40)
    proc = spawn_cli(
        ["sync", "--db", db, "--full", "--page-size", "50", "-q"], cli_env(tmp_path, sim)
    )
    deadline = time.monotonic() + 60
    phase = None
    while proc.poll() is None and time.monotonic() < deadline and phase != "history":
        try:
            conn = ro(db)
            phase = conn.execute("select phase from sync_runs where status = 'running'").fetchone()
            phase = phase and phase[0]
            conn.close()
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    assert phase == "history", "the sync never reached the history phase"
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=30)
    assert (fingerprint(db), plays(db)) == before
    sim.set_latency(0)
    sync(db, cfg)
    assert plays(db) == expected_plays(sim)
    assert runs(db)[-2]["status"] == "interrupted"


# -- options -----------------------------------------------------------------------------------


def test_no_history_then_history_then_reset(tmp_path, sim):
    db = tmp_path / "c.db"
    sim.reset_counts()
    out = run_cli(["sync", "--db", db, "--no-history", "-q"], sim)
    assert out.returncode == 0, out.stderr
    assert "history" not in sim.request_counts and "accounts" not in sim.request_counts
    assert plays(db) == {} and rows(db, "history_sync", "section_id").keys() == set(
        music_sections(sim)
    )
    assert all(s["listed"] is None for s in rows(db, "history_sync", "section_id").values())
    out = run_cli(["sync", "--db", db], sim)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.splitlines()[-1]
        == f"{len(expected_plays(sim)):,} new plays in the listening history"
    )
    assert runs(db)[-1]["mode"] == "incremental" and plays(db) == expected_plays(sim)
    assert reset_cache(db)
    conn = ro(db)
    for table in ("plays", "accounts", "devices", "history_sync", "tracks"):
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0, table
    conn.close()


def test_history_only_sync_leaves_the_tracks_alone(tmp_path, sim_factory):
    sim = fresh(sim_factory)
    cfg = config_for(sim)
    db = tmp_path / "c.db"
    sync(db, cfg)
    state = rows(db, "sync_state")
    key = sim.library.track_keys()[4]
    sim.play_track(key)
    sim.edit_track(key, title="Not Yet")
    sim.advance_clock(3)
    before = fingerprint(db)
    result = sync_history(db, cfg)
    assert result.plays_added == 1 and result.added == result.updated == 0
    assert fingerprint(db) == before and rows(db, "sync_state") == state
    assert plays(db) == expected_plays(sim)
    sync(db, cfg)  # the play count follows with the next full-library sync
    assert (
        rows(db, "tracks", "rating_key")[key]["play_count"] == sim.library.track(key)["viewCount"]
    )


def test_malformed_entries_are_skipped_and_counted(tmp_path, sim_factory):
    "An entry without a history id or a time is left out with a warning; another library's is not ours"
    sim = fresh(sim_factory, history=0)
    key = sim.library.track_keys()[0]
    good = (f'<Track historyKey="/status/sessions/history/7" key="/library/metadata/{key}" ratingKey="{key}" '
            'librarySectionID="1" title="Good &amp; Plenty" grandparentTitle="A" parentTitle="B" type="track" '
            'index="3" viewedAt="1700000000" accountID="1" deviceID="2"/>')  # fmt: skip
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><MediaContainer size="4" totalSize="4" offset="0">'
        + good
        + '<Track key="/library/metadata/5" ratingKey="5" librarySectionID="1" title="No id" type="track" '
        'viewedAt="1700000001" accountID="1"/>'
        + '<Track historyKey="/status/sessions/history/9" ratingKey="6" librarySectionID="1" title="No time" '
        'type="track" accountID="1"/>'
        + '<Video historyKey="/status/sessions/history/8" ratingKey="99" librarySectionID="3" title="A film" '
        'type="movie" viewedAt="1700000002" accountID="1"/>'
        "</MediaContainer>"
    )
    sim.inject_fault("body", path=r"^/status/sessions/history/all", nth=1, times=1, body=body)
    result = sync(tmp_path / "c.db", config_for(sim))
    assert result.warnings == ["skipped 2 malformed history entries"]
    cached = plays(tmp_path / "c.db")
    assert list(cached) == [7]
    assert cached[7] == dict(zip(PLAY_COLUMNS, (7, key, 1, 2, "2023-11-14T22:13:20Z", 1, "Good & Plenty", "A", "B", 3,
                                                None), strict=True))  # fmt: skip
