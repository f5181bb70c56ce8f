"""Big full reads in a reader process (plexcache/plex/reader.py): the same requests, rows and
errors as the in-process path, a one-line error when the process dies, and no token outside
the pipe. ``PLEXCACHE_READER_MIN_KEYS=0`` sends every full read to the process."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from syncutil import config_for, runs, snapshot

from plexcache.errors import ConfigError, PlexAuthError, PlexcacheError
from plexcache.plex.reader import ReaderProcess
from plexcache.simulator import Simulator
from plexcache.simulator.truth import diff_cache
from plexcache.sync import sync

TOKEN = "reader-Tok_en-77"
NO_DIFF = {"tracks": {}, "albums": {}, "artists": {}}


@pytest.fixture
def sim():
    with Simulator(tracks=1500, seed=3, token=TOKEN, music_sections=2) as s:
        yield s


@pytest.fixture
def always(monkeypatch):
    "Every full read in a reader process"
    monkeypatch.setenv("PLEXCACHE_READER_MIN_KEYS", "0")
    monkeypatch.delenv("PLEXCACHE_READER_PROCESS", raising=False)


def readers() -> list[int]:
    "This process's reader children"
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == os.getpid() and b"plexcache.plex.reader" in cmdline:
            found.append(int(pid))
    return found


def test_the_reader_process_reads_what_the_sync_reads_in_process(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("PLEXCACHE_READER_PROCESS", "0")
    sim.reset_counts()
    inline = sync(tmp_path / "inline.db", config_for(sim), full=True)
    inline_counts = sim.request_counts
    monkeypatch.setenv("PLEXCACHE_READER_PROCESS", "1")
    monkeypatch.setenv("PLEXCACHE_READER_MIN_KEYS", "0")
    sim.reset_counts()
    child = sync(tmp_path / "child.db", config_for(sim), full=True)
    assert child.requests == sim.total_requests  # the child's requests are counted
    assert sim.request_counts == inline_counts
    assert (child.requests, child.track_count) == (inline.requests, inline.track_count)
    assert diff_cache(tmp_path / "child.db", sim.expected_cache()) == NO_DIFF
    assert snapshot(tmp_path / "child.db") == snapshot(tmp_path / "inline.db")
    assert readers() == []  # closed with the sync


def test_a_failed_batch_is_retried_in_the_reader(sim, tmp_path, always):
    sim.inject_fault("status", path=r"/library/metadata/", nth=2, status=503)
    sim.reset_counts()
    result = sync(tmp_path / "c.db", config_for(sim), full=True)
    assert result.requests == sim.total_requests
    assert diff_cache(tmp_path / "c.db", sim.expected_cache()) == NO_DIFF


def test_the_readers_errors_are_the_syncs_own(sim, tmp_path, always, monkeypatch):
    db = tmp_path / "c.db"
    sync(db, config_for(sim))
    before = snapshot(db)
    messages = []
    for process in ("1", "0"):
        monkeypatch.setenv("PLEXCACHE_READER_PROCESS", process)
        sim.inject_fault("status", path=r"/library/metadata/", nth=2, status=401)
        with pytest.raises(PlexAuthError) as e:
            sync(db, config_for(sim), full=True)
        sim.clear_faults()
        messages.append(str(e.value))
        assert TOKEN not in str(e.value)
    assert messages[0] == messages[1]
    assert snapshot(db) == before
    assert [r["status"] for r in runs(db)] == ["succeeded", "failed", "failed"]


def test_a_reader_that_dies_is_a_one_line_error_and_changes_nothing(tmp_path, always, monkeypatch):
    # Observed, not changed: the reader's first batch is known to the sync (the
    # reader has answered, so a later death is an error, not "cannot run here").
    answered = threading.Event()
    read = ReaderProcess.read

    def observed(self, *args):
        for batch in read(self, *args):
            answered.set()
            yield batch

    monkeypatch.setattr(ReaderProcess, "read", observed)
    with Simulator(tracks=8000, seed=4, token=TOKEN, music_sections=1) as sim:
        db = tmp_path / "c.db"
        sync(db, config_for(sim))
        before = snapshot(db)
        # Every answer from the 5th on takes 3 s, so chunks of the shared read
        # (plex/shared_read.py) still wait, and the reader is mid-read, when it is killed.
        sim.inject_fault("stall", path=r"/library/metadata/", nth=5, times=1000, stall_seconds=3)
        failure = []
        answered.clear()  # the first sync's reader answered too

        def run():
            try:
                sync(db, config_for(sim), full=True)
            except Exception as e:  # noqa: BLE001 - checked below
                failure.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        assert answered.wait(30), "the reader never answered"
        (pid,) = readers()
        # the token travels through the pipe: not in the child's command line or environment
        for part in ("cmdline", "environ"):
            assert TOKEN.encode() not in Path(f"/proc/{pid}/{part}").read_bytes()
        os.kill(pid, signal.SIGKILL)
        thread.join(30)
        (error,) = failure
        assert type(error) is PlexcacheError
        assert str(error) == (
            f"the process reading full items from Plex at {sim.url} ended unexpectedly (exit code -9)"
        )
        assert snapshot(db) == before
        assert runs(db)[-1]["status"] == "failed"
        assert runs(db)[-1]["error"] == str(error)


@pytest.mark.parametrize("executable", ["/bin/false", "/nonexistent/python"])
def test_a_reader_that_cannot_run_here_leaves_the_read_in_process(
    sim, tmp_path, always, monkeypatch, executable
):
    "A frozen app's sys.executable cannot run `-m` (it ends at once), or there is none to start"
    monkeypatch.setattr(sys, "executable", executable)
    sim.reset_counts()
    result = sync(tmp_path / "c.db", config_for(sim), full=True)
    assert result.status == "succeeded"
    assert result.requests == sim.total_requests
    assert diff_cache(tmp_path / "c.db", sim.expected_cache()) == NO_DIFF


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PLEXCACHE_READER_MIN_KEYS", "lots", "PLEXCACHE_READER_MIN_KEYS"),
        ("PLEXCACHE_READER_MIN_KEYS", "-1", "PLEXCACHE_READER_MIN_KEYS"),
        ("PLEXCACHE_READER_PROCESS", "perhaps", "PLEXCACHE_READER_PROCESS"),
    ],
)
def test_reader_settings_are_checked(sim, tmp_path, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as e:
        sync(tmp_path / "c.db", config_for(sim))
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "c.db").exists()
