"""The analysis notebooks run top to bottom on a freshly synced simulated library.

A deterministic simulated Plex library is synced into a temporary cache with
plexcache's own sync code; the simulator is stopped, then every notebook in
``notebooks/`` is executed against the cache with nbclient (cwd ``notebooks/``,
``PLEXCACHE_DB`` pointing at the cache, per-cell timeout). A cell that raises
fails the test. An empty library runs too, so every "nothing to show yet" branch
is exercised, and the notebooks' conventions (stripped outputs, a ``parameters``
cell, read-only access) are checked without running anything.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from plexcache.config import PlexConfig
from plexcache.simulator import Simulator
from plexcache.sync import sync

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120
TOKEN = "t"

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def synced_cache(directory: Path, tracks: int, seed: int = 7) -> Path:
    "A cache synced from a simulated library; the simulator is stopped on return"
    db_path = directory / "library_cache.db"
    with Simulator(tracks=tracks, seed=seed, token=TOKEN) as sim:
        sync(db_path, PlexConfig(url=sim.url, token=TOKEN))
    return db_path


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    "2,000 simulated tracks, seed 7"
    return synced_cache(tmp_path_factory.mktemp("library"), tracks=2000)


@pytest.fixture(scope="module")
def empty_library(tmp_path_factory) -> Path:
    "A synced library with no tracks at all: no plays, ratings, genres or years"
    return synced_cache(tmp_path_factory.mktemp("empty"), tracks=0)


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    "Run every cell in a fresh python3 kernel; nbclient raises CellExecutionError on the first error"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def images(nb) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


@pytest.fixture
def no_plex(monkeypatch):
    "Notebooks never talk to Plex: give the kernel no server to talk to"
    for name in (
        "PLEX_URL",
        "PLEX_TOKEN",
        "PLEXAPI_AUTH_SERVER_BASEURL",
        "PLEXAPI_AUTH_SERVER_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@by_name
def test_notebook_runs_on_simulated_library(path, library, no_plex):
    no_plex.setenv("PLEXCACHE_DB", str(library))
    before = sha256(library)
    nb = execute(path, cwd=NOTEBOOK_DIR)
    assert images(nb) > 0, f"{path.name} drew no figure"
    assert sha256(library) == before, f"{path.name} changed the cache"


def printed(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))


def test_listening_notebooks_read_the_plays(library, no_plex):
    "The listening notebooks work from the plays the sync kept, not only the per-track counters"
    import sqlite3

    no_plex.setenv("PLEXCACHE_DB", str(library))
    conn = sqlite3.connect(f"file:{library}?mode=ro", uri=True)
    plays, accounts, first, last = conn.execute(
        "select count(*), count(distinct account_id), min(viewed_at), max(viewed_at) from plays"
    ).fetchone()
    played = conn.execute("select count(*) from tracks t where exists "
                          "(select 1 from plays p where p.rating_key = t.rating_key)").fetchone()[0]  # fmt: skip
    tracks = conn.execute("select count(*) from tracks").fetchone()[0]
    conn.close()
    assert plays > 500
    text = printed(execute(NOTEBOOK_DIR / "03-listening-habits.ipynb", cwd=NOTEBOOK_DIR))
    assert f"{plays:,} plays from {first[:10]} to {last[:10]} by {accounts} accounts" in text
    text = printed(execute(NOTEBOOK_DIR / "05-library-and-listening.ipynb", cwd=NOTEBOOK_DIR))
    assert (
        f"{played:,} of {tracks:,} tracks ({played / tracks:.0%}) have at least one play in the history"
        in text
    )


@by_name
def test_notebook_runs_on_empty_library(path, empty_library, no_plex):
    no_plex.setenv("PLEXCACHE_DB", str(empty_library))
    execute(path, cwd=NOTEBOOK_DIR)


def test_default_path_resolves_from_the_repo_root(tmp_path, library, no_plex):
    "Without PLEXCACHE_DB, data/library_cache.db is found from notebooks/ via the repo root"
    no_plex.delenv("PLEXCACHE_DB", raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'copy'\n")
    (tmp_path / "data").mkdir()
    shutil.copy(library, tmp_path / "data" / "library_cache.db")
    (tmp_path / "notebooks").mkdir()
    copy = tmp_path / "notebooks" / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], copy)
    nb = execute(copy, cwd=copy.parent)
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert str((tmp_path / "data" / "library_cache.db").resolve()) in printed


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


def test_outputs_are_stripped():
    "The same check CI runs: nbstripout --verify exits non-zero if it would change anything"
    nbstripout = shutil.which("nbstripout", path=str(Path(sys.executable).parent)) or shutil.which(
        "nbstripout"
    )
    if nbstripout is None:
        pytest.skip("nbstripout is not installed (it is in the [test] extra)")
    result = subprocess.run(
        [nbstripout, "--verify", *map(str, NOTEBOOKS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@by_name
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), (
        "outputs must be stripped"
    )
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert "plexcache sync" in first_md.source and "plexcache demo" in first_md.source
    parameters = code[0]
    assert "parameters" in parameters.metadata.get("tags", [])
    assert 'os.environ.get("PLEXCACHE_DB", "data/library_cache.db")' in parameters.source
    source = "\n".join(c.source for c in code)
    assert "mode=ro" in source, "open the cache read-only"
    for talks_to_plex in ("plexapi", "requests", "PlexServer", "PLEX_TOKEN"):
        assert talks_to_plex not in source, f"{path.name} mentions {talks_to_plex}"
