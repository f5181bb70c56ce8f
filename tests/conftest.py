"""The fixtures every test module shares.

Simulators (real HTTP on 127.0.0.1, port 0):

- ``sim_factory``: start simulators with custom arguments, all stopped at
  the end of the test;
- ``sim``: a started simulator. By default a fresh one per test (500
  tracks, seed 1, token ``SIM_TOKEN``). A module that sets ``SIM = {...}``
  (``tracks``, ``seed``, ``token``, ...) shares one simulator with those
  arguments across its tests instead (``module_sim``), as module-scoped
  fixtures need.

Cache helpers that are not fixtures (``config_for``, ``runs``,
``snapshot``, ``run_cli``) are in ``syncutil.py``.
"""

import pytest

from plexcache.simulator import Simulator

SIM_TOKEN = "test-token-Ab_c-9"
SIM_DEFAULTS = {"tracks": 500, "seed": 1, "token": SIM_TOKEN}


@pytest.fixture
def sim_factory():
    "Start simulators with custom arguments: sim_factory(tracks=2000, latency_ms=5); all stopped at teardown"
    started = []

    def make(**kwargs):
        s = Simulator(**{**SIM_DEFAULTS, **kwargs}).start(host="127.0.0.1", port=0)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def module_sim(request):
    "One simulator for the whole module, with the module's ``SIM`` arguments"
    kwargs = {**SIM_DEFAULTS, **getattr(request.module, "SIM", {})}
    with Simulator(**kwargs) as s:
        yield s


@pytest.fixture
def sim(request):
    "A started simulator: the module's shared one when it sets ``SIM``, else a fresh one (500 tracks, seed 1)"
    if hasattr(request.module, "SIM"):
        return request.getfixturevalue("module_sim")
    return request.getfixturevalue("sim_factory")()
