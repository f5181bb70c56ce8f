"""A big full read shared by the reader process and a thread of the sync process
(plexcache/plex/shared_read.py), against the simulator over real HTTP: every key's
answer handed back once, per chunk, by both workers; the requests an in-process read
makes; a worker's error raised in the caller."""

from __future__ import annotations

import math
import time

import pytest
from syncutil import config_for

from plexcache.errors import PlexAuthError
from plexcache.plex import PlexSource
from plexcache.plex.shared_read import CHUNK_BATCHES
from plexcache.simulator import Simulator

TOKEN = "shared-Tok_en-31"


@pytest.fixture(scope="module")
def sim():
    with Simulator(tracks=6000, seed=8, token=TOKEN, music_sections=1) as s:
        yield s


@pytest.fixture
def source(sim, monkeypatch):
    monkeypatch.setenv("PLEXCACHE_READER_MIN_KEYS", "0")
    monkeypatch.delenv("PLEXCACHE_READER_PROCESS", raising=False)
    src = PlexSource(config_for(sim), batch_size=200)
    assert src.use_reader(0)  # the reader process is started
    yield src
    src.close()


def test_every_key_comes_back_once_from_one_of_the_two_workers(sim, source):
    keys = sorted(sim.library.track_keys(1), key=int)
    gone = [str(10**9 + i) for i in range(5)]  # keys no one has: not in any answer
    asked = keys[:2500] + gone + keys[2500:]
    sim.reset_counts()
    shared = source.shared_read()
    try:
        shared.add(asked)
        results = list(shared.results())
    finally:
        shared.close()
    chunk = CHUNK_BATCHES * 200
    returned = []
    for chunk_keys, batches in results:
        # a result is one or more whole chunks, and only keys asked in it came back
        assert len(chunk_keys) % chunk == 0 or chunk_keys[-1] == asked[-1]
        came = [key for batch in batches for key, _row in batch.tracks]
        assert set(came) <= set(chunk_keys)
        assert set(chunk_keys) - set(came) <= set(gone)
        returned += came
    assert sorted(returned, key=int) == keys  # each once
    assert shared.waiting == 0
    assert shared.taken["reader"] > 0 and shared.taken["local"] > 0
    assert shared.taken["reader"] + shared.taken["local"] == len(asked)
    # the batches an in-process read of the same keys would ask for, chunk by chunk
    expected = sum(math.ceil(len(asked[i : i + chunk]) / 200) for i in range(0, len(asked), chunk))
    assert sim.request_counts == {"metadata": expected}
    assert source.requests == sim.total_requests


def test_a_workers_error_is_raised_and_ends_the_read(sim, source):
    keys = sorted(sim.library.track_keys(1), key=int)
    sim.inject_fault("status", path=r"/library/metadata/", nth=3, status=401)
    shared = source.shared_read()
    try:
        shared.add(keys)
        with pytest.raises(PlexAuthError) as e:
            list(shared.results())
        assert str(e.value) == (
            f"Plex at {sim.url} rejected the token (401 Unauthorized): check PLEX_TOKEN / --token"
        )
    finally:
        sim.clear_faults()
        started = time.monotonic()
        shared.close()
    assert time.monotonic() - started < 5  # both workers stop between batches
    assert not any(worker.is_alive() for worker in shared._workers)
