"""The original spec (the quickstart), checked against a simulated Plex
over real HTTP: schema, sync flow, status shape, log lines, reset."""

from __future__ import annotations

import json
import logging
import re
import sqlite3

import pytest
from syncutil import config_for, run_cli

from plexcache.db import reset_cache
from plexcache.status import get_status
from plexcache.sync import sync

SPEC_TRACKS = [
    ("rating_key", "TEXT", 0, 1),
    ("title", "TEXT", 1, 0),
    ("artist", "TEXT", 1, 0),
    ("album", "TEXT", 1, 0),
    ("duration_ms", "INTEGER", 0, 0),
    ("year", "INTEGER", 0, 0),
    ("genres", "TEXT", 0, 0),
    ("user_rating", "INTEGER", 0, 0),
    ("is_live", "BOOLEAN", 0, 0),
    ("updated_at", "TIMESTAMP", 0, 0),
]
SPEC_SYNC_STATE = [
    ("id", "INTEGER", 0, 1),
    ("plex_server_id", "TEXT", 0, 0),
    ("last_sync_at", "TIMESTAMP", 0, 0),
    ("track_count", "INTEGER", 0, 0),
    ("sync_duration_ms", "INTEGER", 0, 0),
]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


SIM = {
    "tracks": 1500,
    "seed": 3,
    "token": "spec-token-x_Y-1",
}  # one simulator for the module (conftest.sim)


@pytest.fixture
def synced(tmp_path, sim):
    db = tmp_path / "data" / "library_cache.db"
    result = sync(db, config_for(sim))
    return db, result


def columns(db, table):
    conn = sqlite3.connect(db)
    try:
        return [(r[1], r[2], r[3], r[5]) for r in conn.execute(f"pragma table_info({table})")]
    finally:
        conn.close()


def test_schema_has_the_spec_tables_exactly(synced):
    db, _ = synced
    assert columns(db, "tracks")[: len(SPEC_TRACKS)] == SPEC_TRACKS
    assert columns(db, "sync_state") == SPEC_SYNC_STATE
    conn = sqlite3.connect(db)
    sql = conn.execute("select sql from sqlite_master where name = 'sync_state'").fetchone()[0]
    assert "CHECK (id = 1)" in sql
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("insert into sync_state (id) values (2)")


def test_first_sync_fills_cache_and_state(synced, sim):
    db, result = synced
    assert result.status == "succeeded"
    assert result.mode == "full"
    conn = sqlite3.connect(db)
    count = conn.execute("select count(*) from tracks").fetchone()[0]
    assert count == sim.library.track_count() == result.track_count == result.added
    server_id, last_sync_at, track_count, duration = conn.execute(
        "select plex_server_id, last_sync_at, track_count, sync_duration_ms from sync_state"
    ).fetchone()
    assert server_id == sim.machine_identifier
    assert ISO.match(last_sync_at)
    assert track_count == count
    assert duration >= 0


def test_status_matches_spec_shape(synced, sim):
    db, _ = synced
    status = get_status(db, config_for(sim))
    assert list(status) == [
        "track_count",
        "synced_at",
        "is_syncing",
        "sync_progress",
        "error",
        "plex_connected",
    ]
    assert status["track_count"] == sim.library.track_count()
    assert ISO.match(status["synced_at"])
    assert status["is_syncing"] is False
    assert status["sync_progress"] is None
    assert status["error"] is None
    assert status["plex_connected"] is True


def test_status_of_missing_cache(tmp_path):
    status = get_status(tmp_path / "nope.db", None)
    assert status == {
        "track_count": 0,
        "synced_at": None,
        "is_syncing": False,
        "sync_progress": None,
        "error": None,
        "plex_connected": False,
    }
    assert not (tmp_path / "nope.db").exists()


def test_log_lines_as_in_spec(tmp_path, sim, caplog):
    caplog.set_level(logging.INFO, logger="plexcache")
    sync(tmp_path / "c.db", config_for(sim))
    messages = [r.getMessage() for r in caplog.records if r.name == "plexcache.sync"]
    total = sim.library.track_count()
    assert messages[0] == f"Starting sync, total tracks: {total}"
    assert f"Synced 1000/{total} tracks" in messages
    assert re.fullmatch(r"Sync complete in \d+ms", messages[-1])


def test_genres_are_json_arrays_and_ratings_integers(synced):
    db, _ = synced
    conn = sqlite3.connect(db)
    for genres, rating, live in conn.execute("select genres, user_rating, is_live from tracks"):
        assert isinstance(json.loads(genres), list)
        assert rating is None or (isinstance(rating, int) and 0 <= rating <= 10)
        assert live in (0, 1)


def test_reset_removes_cache_and_next_sync_is_full(synced, sim):
    db, _ = synced
    assert reset_cache(db) is True
    status = get_status(db, None)
    assert status["track_count"] == 0 and status["synced_at"] is None
    conn = sqlite3.connect(db)
    for table in ("tracks", "albums", "artists", "sync_state", "sync_runs"):
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0
    assert conn.execute("select count(*) from tracks_fts").fetchone()[0] == 0
    conn.close()
    result = sync(db, config_for(sim))
    assert result.mode == "full"


def test_cli_sync_status_reset(tmp_path, sim):
    db = tmp_path / "cli.db"
    done = run_cli(["sync", "--db", db], sim=sim)
    assert done.returncode == 0, done.stderr
    assert "Starting sync, total tracks:" in done.stderr
    assert re.search(r"Synced [\d,]+ tracks \(full\)", done.stdout)
    status = run_cli(["status", "--db", db, "--json"], sim=sim)
    assert status.returncode == 0
    assert json.loads(status.stdout)["track_count"] == sim.library.track_count()
    again = run_cli(["sync", "--db", db], sim=sim)
    assert "(incremental)" in again.stdout
    reset = run_cli(["reset", "--db", db, "--yes"])
    assert reset.returncode == 0 and "Emptied" in reset.stdout
    assert (
        json.loads(run_cli(["status", "--db", db, "--json", "--no-plex"]).stdout)["track_count"]
        == 0
    )
    # a file that is not SQLite is refused, --yes or not (issue #13); so is another SQLite database
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 50)
    refused = run_cli(["reset", "--db", junk, "--yes"])
    assert refused.returncode == 1 and "refusing to reset it" in refused.stderr
    assert junk.read_bytes() == b"not sqlite" * 50
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.close()
    refused = run_cli(["reset", "--db", other, "--yes"])
    assert refused.returncode == 1 and "not a plexcache cache" in refused.stderr
    assert other.exists()
