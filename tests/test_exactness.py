"""The cache is exact on every kind of server the simulator plays (issue #12).

Every test compares a cache with the simulator's own ground truth (``sim.expected_cache()``,
computed from its model with the README's column rules, never through plexcache's code), through
``truth.diff_cache``: zero differences, per table and column. They run on every profile in
``ALL_PROFILES``. The property test draws random libraries and random mutation sequences; a
failure names its seed. ``PLEXCACHE_SOAK=N`` runs N seeds per profile instead of a few.
"""

from __future__ import annotations

import os
import random
import sqlite3
import xml.etree.ElementTree as ET

import pytest
import requests
from syncutil import config_for, edit_parent, snapshot

from plexcache.simulator import Simulator
from plexcache.simulator.profiles import ALL_PROFILES, CLASSIC, LEGACY, PROFILES, REALISTIC
from plexcache.simulator.truth import diff_cache
from plexcache.sync import sync
from plexcache.sync.learn import TagFacts

TOKEN = "exact-Tok_en-12"
NO_DIFF = {"tracks": {}, "albums": {}, "artists": {}}
SOAK = int(os.environ.get("PLEXCACHE_SOAK") or 0)
SEEDS = list(range(1, (SOAK or 2) + 1))
GENRES = ["Rock", "Jazz", "Ambient", "Folk", "Pop", "Soul", "Techno", "Dub", "Noise"]


def simulator(profile: str, tracks: int = 1200, seed: int = 5, sections: int = 2) -> Simulator:
    return Simulator(
        tracks=tracks, seed=seed, token=TOKEN, profile=profile, music_sections=sections
    )


def sim_machine_id(sim) -> str:
    return ET.fromstring(requests.get(sim.url + "/identity", timeout=10).content).get(
        "machineIdentifier"
    )


def facts(db) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "select server_id, version, item_type, tag, cap, max_shown from listing_facts order by version"
        ).fetchall()
    finally:
        conn.close()


def mutate(sim, rng: random.Random, steps: int) -> list[str]:
    """Random edits, additions, deletions, plays and ratings, the kinds that change what a cache
    holds, including track genres (1-5 of them: more than some listings show) and a track
    artist set to the album artist. Returns what it did, for failure messages."""
    lib = sim.library
    done = []
    for _ in range(steps):
        keys = lib.track_keys()
        key = rng.choice(keys)
        t = lib.track(key)
        op = rng.choice(
            ["title", "genres", "artist", "add", "delete", "play", "rate", "album", "artist_edit"]
        )
        done.append(f"{op} {key}")
        if op == "title":
            sim.edit_track(key, title=f"{t['title']} ({rng.randint(1, 999)})")
        elif op == "genres":
            sim.edit_track(key, genres=rng.sample(GENRES, rng.randint(0, 5)))
        elif op == "artist":  # the track artist tag names the album artist, or someone else
            sim.edit_track(
                key, originalTitle=rng.choice([t["grandparentTitle"], "Guest Star", None])
            )
        elif op == "add":
            sim.add_tracks(rng.randint(1, 4), section_id=t["librarySectionID"],
                           album_key=rng.choice([None, t["parentRatingKey"]]))  # fmt: skip
        elif op == "delete":
            sim.delete_tracks(rng.sample(keys, rng.randint(1, 3)))
        elif op == "play":
            sim.play_track(key, times=rng.randint(1, 3))
        elif op == "rate":
            sim.rate_track(key, rng.choice([None, 2.0, 7.0, 10.0]))
        else:
            edit_parent(sim, rng, t, "album" if op == "album" else "artist", GENRES)
        if rng.random() < 0.3:
            sim.advance_clock(rng.randint(1, 90))
    sim.advance_clock(1)
    return done


# -- the rule learned from comparisons -------------------------------------------------------------


def test_tag_facts_rule():
    f = TagFacts()
    assert f.read_in_full_from == 0  # nothing learned: every listed track is read in full
    f.observe(0, 0)
    assert (f.cap, f.max_shown, f.read_in_full_from) == (None, 0, 0)  # an empty list proves nothing
    f.observe(3, 3)
    f.observe(1, 1)
    assert (f.cap, f.max_shown, f.read_in_full_from) == (None, 3, 3)  # lists of 0-2 were never cut
    f.observe(2, 5)
    assert (f.cap, f.max_shown, f.read_in_full_from, f.compared) == (2, 3, 2, 4)  # a cut at 2 wins
    f.observe(4, 1)  # the item lost genres between the listing and the read: proves nothing
    f.observe(3, 4)
    assert (f.cap, f.read_in_full_from) == (2, 2)  # the smallest cut seen
    f.observe(0, 2)  # a listing that shows no genres of a track that has some
    assert (f.cap, f.read_in_full_from) == (0, 0)


# -- a full sync equals the ground truth -----------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_full_sync_equals_ground_truth(tmp_path, profile):
    with simulator(profile) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF
        # learned and kept: a second full sync, reading in full only what the facts say, is exact too
        sim.reset_counts()
        sync(db, config_for(sim), full=True)
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF
        assert not sim.unknown_filters, sim.unknown_filters
        # the library exercises the rules that differ between servers
        expected = sim.expected_cache()["tracks"]
        lib = sim.library
        assert any(lib.track(k)["genres"] for k in expected)
        assert any(len(lib.track(k)["genres"]) > 3 for k in expected)
        assert any(r["track_artist"] for r in expected.values())
        assert any(r["is_live"] for r in expected.values())


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_full_reads_in_a_reader_process_are_exact(tmp_path, profile, monkeypatch):
    "What a big library does (plex/reader.py), forced on a small one"
    monkeypatch.setenv("PLEXCACHE_READER_MIN_KEYS", "0")
    with simulator(profile) as sim:
        db = tmp_path / "c.db"
        sim.reset_counts()
        result = sync(db, config_for(sim), full=True)
        assert result.requests == sim.total_requests
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF
        rng = random.Random(11)
        done = mutate(sim, rng, 40)
        sim.advance_clock(60)
        sync(db, config_for(sim))
        sync(tmp_path / "full.db", config_for(sim), full=True)
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF, done
        assert diff_cache(tmp_path / "full.db", sim.expected_cache()) == NO_DIFF


def test_what_is_learned_per_profile(tmp_path):
    "The facts each kind of server's listings give (docs: README, How a sync works)"
    learned = {}
    for profile in ALL_PROFILES:
        with simulator(profile, tracks=600, sections=1) as sim:
            db = tmp_path / f"{profile}.db"
            sync(db, config_for(sim))
            rows = facts(db)
            assert [r[1:4] for r in rows] == [(PROFILES[profile].version, "track", "Genre")]
            assert rows[0][0] == sim_machine_id(sim)
            learned[profile] = rows[0][4:]
    assert learned == {
        REALISTIC: (0, 0),  # no genres in track listings: every track is read in full
        CLASSIC: (2, 2),
        LEGACY: (None, 0),  # no track genres anywhere: nothing to show, nothing proves a cap
        "listing-1tag": (1, 1),
        "listing-3tags": (3, 3),
        "listing-alltags": (None, 4),  # never cut: tracks showing 4 (the most seen) are still read
        "leafcount-listings": (0, 0),
        "ignores-exclude": (0, 0),
        "listing-subformats": (0, 0),
    }


# -- incremental == full == ground truth -----------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_incremental_after_random_changes_equals_full(tmp_path, profile):
    with simulator(profile) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        rng = random.Random(f"{profile}-1")
        for round_ in range(2):
            done = mutate(sim, rng, 25)
            result = sync(db, config_for(sim))
            assert result.mode == "incremental"
            assert diff_cache(db, sim.expected_cache()) == NO_DIFF, (round_, done)
        full = tmp_path / "full.db"
        sync(full, config_for(sim), full=True)
        assert snapshot(db) == snapshot(full)


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_plays_and_ratings_alone_keep_every_column(tmp_path, profile):
    """Nothing but plays and ratings: the sync asks nothing but the play-state deltas (no GET /,
    no learned fact trusted) and reads those tracks in full, so a track with genres of its own
    keeps them whatever the listing showed."""
    with simulator(profile, tracks=800) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        lib = sim.library
        own = [k for k in lib.track_keys() if len(lib.track(k)["genres"]) > 1][:4]
        plain = [k for k in lib.track_keys() if not lib.track(k)["genres"]][:4]
        sim.advance_clock(5)
        for k in own + plain:
            sim.play_track(k)
        sim.rate_track(own[0], 4.0)
        sim.advance_clock(1)
        sim.reset_counts()
        result = sync(db, config_for(sim))
        assert (result.mode, result.added, result.removed) == ("incremental", 0, 0)
        assert result.updated == len(own + plain)
        counts = sim.request_counts
        assert "root" not in counts and counts["metadata"] == 1, counts
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF


# -- random libraries, random mutation sequences ------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_random_libraries_and_mutations(tmp_path, profile, seed):
    rng = random.Random(seed * 7919 + ALL_PROFILES.index(profile))
    tracks, sections = rng.randint(150, 700), rng.randint(1, 3)
    where = f"profile {profile}, seed {seed} ({tracks} tracks, {sections} sections)"
    print(f"exactness: {where}")  # shown by pytest on failure
    with simulator(profile, tracks=tracks, seed=seed, sections=sections) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF, where
        for round_ in range(rng.randint(2, 4)):
            done = mutate(sim, rng, rng.randint(1, 30))
            sync(db, config_for(sim))
            assert diff_cache(db, sim.expected_cache()) == NO_DIFF, (
                f"{where}, round {round_}: {done}"
            )


# -- another server version: learned again -------------------------------------------------------------


def test_a_new_server_version_is_learned_again(tmp_path):
    "Facts are per version: an upgrade re-reads the library in full and learns its listings anew"
    with simulator("listing-alltags", tracks=900, sections=1) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        assert [r[1:] for r in facts(db)] == [
            (PROFILES["listing-alltags"].version, "track", "Genre", None, 4)
        ]
        # the same server, now cutting track listings at one genre
        sim.set_profile("listing-1tag")
        sim.reset_counts()
        quiet = sync(db, config_for(sim))  # nothing changed: the version is not even asked
        assert (
            quiet.mode == "incremental"
            and sim.total_requests <= 5
            and "root" not in sim.request_counts
        )
        key = sim.library.track_keys()[10]
        sim.advance_clock(5)
        sim.edit_track(key, genres=["Rock", "Jazz", "Dub"])  # listed as ["Rock"] now
        sim.advance_clock(1)
        result = sync(db, config_for(sim))
        assert result.mode == "full"
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF
        assert [r[1:] for r in facts(db)] == [  # by version: 1.40.1 (1 tag), 1.42.1 (all)
            (PROFILES["listing-1tag"].version, "track", "Genre", 1, 1),
            (PROFILES["listing-alltags"].version, "track", "Genre", None, 4),
        ]
        # learned: the next changes are incremental and exact
        sim.edit_track(sim.library.track_keys()[20], genres=["Soul", "Pop"])
        sim.advance_clock(1)
        assert sync(db, config_for(sim)).mode == "incremental"
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF


def test_an_upgrade_that_brings_track_genres(tmp_path):
    "PMS 1.29 -> 1.41: tracks get genres of their own; the first sync that sees the new version has them all"
    with simulator(LEGACY, tracks=700, sections=1) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF
        sim.set_profile(REALISTIC)
        sim.edit_track(sim.library.track_keys()[3], title="A change")
        sim.advance_clock(1)
        assert sync(db, config_for(sim)).mode == "full"
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF


def test_a_version_is_learned_once_every_library_was_read_under_it(tmp_path):
    "A sync limited to one library reads it in full but leaves the version new: the others were not read"
    with simulator(REALISTIC, tracks=900, sections=2) as sim:
        db = tmp_path / "c.db"
        second = [s for s in sim.library.sections() if s["type"] == "artist"][1]["title"]
        assert sync(db, config_for(sim), section=second).mode == "full"
        assert facts(db) == []
        result = sync(db, config_for(sim))
        assert result.mode == "full"
        assert [r[1] for r in facts(db)] == [PROFILES[REALISTIC].version]
        assert diff_cache(db, sim.expected_cache()) == NO_DIFF
