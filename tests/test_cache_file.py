"""The cache file: whose database it is (the application_id marker), what
reset may touch, and the sync lock's file (issue #13). Real SQLite files,
real processes for the lock."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from syncutil import config_for, make_db, snapshot

from plexcache.db import APPLICATION_ID, inspect_cache, open_cache, reset
from plexcache.errors import CacheError, SyncAlreadyRunning
from plexcache.lock import SyncLock, is_locked, lock_path_for
from plexcache.status import get_status
from plexcache.sync import sync


def app_id(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("pragma application_id").fetchone()[0]
    finally:
        conn.close()


def unmark(db) -> None:
    "Make a cache look like one written before the marker existed"
    make_db(db, "pragma application_id = 0")


# ---- the marker ------------------------------------------------------------------------


def test_a_new_cache_is_marked_before_its_first_table(tmp_path):
    db = tmp_path / "c.db"
    open_cache(db).close()
    assert app_id(db) == APPLICATION_ID
    assert db.read_bytes()[68:72] == b"PlxC"
    assert inspect_cache(db).kind == "cache"


def test_caches_made_before_the_marker_are_adopted(tmp_path, sim):
    db = tmp_path / "old.db"
    sync(db, config_for(sim))
    before = snapshot(db)
    unmark(db)
    assert app_id(db) == 0
    assert get_status(db, None)["track_count"] == sim.library.track_count()  # readable as it is
    result = sync(db, config_for(sim))
    assert result.mode == "incremental" and snapshot(db) == before
    assert app_id(db) == APPLICATION_ID


def test_an_unfinished_old_cache_and_one_with_the_users_own_table_are_adopted(tmp_path, sim):
    partial = make_db(
        tmp_path / "partial.db",
        "create table sections (id integer primary key)",
        "create table artists (rating_key text primary key)",
    )
    assert inspect_cache(partial).kind == "cache"
    sync(partial, config_for(sim))
    assert app_id(partial) == APPLICATION_ID

    extra = tmp_path / "extra.db"
    sync(extra, config_for(sim))
    unmark(extra)
    make_db(extra, "create table my_playlists (name text)")
    sync(extra, config_for(sim))
    assert app_id(extra) == APPLICATION_ID


def test_foreign_databases_are_never_written(tmp_path, sim):
    cases = {
        "photos.db": ["create table photos (id integer primary key)"],
        "view-only.db": ["create view v as select 1"],
        "tracks-only.db": [
            "create table tracks (id integer)",
            "create table playlists (id integer)",
        ],
        "other-app.db": ["pragma application_id = 42"],
    }
    for name, statements in cases.items():
        db = make_db(tmp_path / name, *statements)
        before = db.read_bytes()
        with pytest.raises(
            CacheError, match=r"is not a plexcache cache: .*plexcache leaves it alone"
        ):
            sync(db, config_for(sim))
        with pytest.raises(CacheError, match="refusing to reset it"):
            reset(db)
        with pytest.raises(CacheError, match="is not a plexcache cache"):
            get_status(db, None)
        assert db.read_bytes() == before, name
        assert inspect_cache(db).kind == "foreign"
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob("*-stage"))


def test_inspect_cache(tmp_path, sim):
    (tmp_path / "dir").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "zero.db").touch()
    sync(tmp_path / "c.db", config_for(sim))
    kinds = {
        name: inspect_cache(tmp_path / name).kind
        for name in ("none.db", "dir", "notes.txt", "zero.db", "c.db")
    }
    assert kinds == {
        "none.db": "missing",
        "dir": "directory",
        "notes.txt": "foreign",
        "zero.db": "empty",
        "c.db": "cache",
    }
    assert inspect_cache(tmp_path / "c.db").tracks == sim.library.track_count()
    assert not (tmp_path / "none.db").exists()


# ---- reset ---------------------------------------------------------------------------


def test_reset_empties_in_place_and_says_so(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    inode = db.stat().st_ino
    result = reset(db)
    assert (result.action, result.tracks) == ("emptied", sim.library.track_count())
    assert result.message == (
        f"Emptied the cache at {db}: removed {sim.library.track_count():,} tracks; the next sync is a full one"
    )
    assert db.stat().st_ino == inode and app_id(db) == APPLICATION_ID
    assert (
        reset(db).message
        == f"Emptied the cache at {db}: removed 0 tracks; the next sync is a full one"
    )


def test_reset_refuses_while_a_sync_runs(tmp_path, sim):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    with SyncLock(db):
        with pytest.raises(SyncAlreadyRunning):
            reset(db)
    assert get_status(db, None)["track_count"] == sim.library.track_count()


# ---- the lock file ---------------------------------------------------------------------


def test_the_lock_file_exists_only_while_held(tmp_path):
    db = tmp_path / "c.db"
    assert not is_locked(db)
    lock = SyncLock(db).acquire()
    assert lock_path_for(db).exists() and is_locked(db)
    lock.release()
    assert not lock_path_for(db).exists() and not is_locked(db)


def _contend(db: str, log: str, rounds: int) -> None:
    for _ in range(rounds):
        lock = SyncLock(db).acquire(timeout=60)
        with open(log, "a") as f:
            f.write(f"in {os.getpid()}\n")
        time.sleep(0.001)
        with open(log, "a") as f:
            f.write(f"out {os.getpid()}\n")
        lock.release()


def test_holders_that_unlink_never_let_two_processes_in(tmp_path):
    """Six processes take and release the lock 40 times each: the holder
    unlinks the file as it lets go, a waiter then finds the path renamed
    under it and starts over. Nobody is ever inside with somebody else."""
    db, log = str(tmp_path / "c.db"), str(tmp_path / "log")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_contend, args=(db, log, 40)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = Path(log).read_text().splitlines()
    assert len(lines) == 6 * 40 * 2
    for i in range(0, len(lines), 2):
        assert lines[i].startswith("in ") and lines[i + 1] == "out " + lines[i][3:], lines[
            i : i + 2
        ]
    assert not lock_path_for(db).exists()


def test_a_killed_holders_lock_file_is_reused_and_then_removed(tmp_path):
    db = tmp_path / "c.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from plexcache.lock import SyncLock; import time; SyncLock({str(db)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert is_locked(db)
    with pytest.raises(SyncAlreadyRunning):
        SyncLock(db).acquire(timeout=0.1)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert lock_path_for(db).exists() and not is_locked(db)  # left behind, but free
    SyncLock(db).acquire(timeout=1).release()
    assert not lock_path_for(db).exists()
