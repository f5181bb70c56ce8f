import pytest

from plexcache.simulator import Simulator

SIM_TOKEN = "test-token-Ab_c-9"


@pytest.fixture
def sim_factory():
    "Start simulators with custom arguments: sim_factory(tracks=2000, latency_ms=5); all stopped at teardown"
    started = []

    def make(**kwargs):
        kwargs.setdefault("tracks", 500)
        kwargs.setdefault("seed", 1)
        kwargs.setdefault("token", SIM_TOKEN)
        s = Simulator(**kwargs).start(host="127.0.0.1", port=0)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def sim(sim_factory):
    "A started in-process Plex simulator: 500 tracks, seed 1, token SIM_TOKEN"
    return sim_factory()
