"""Run the analysis notebooks on a cache, time them and save their README figures.

By default this syncs a simulated library (the same deterministic one as
``plexcache demo``) into a temporary cache with plexcache's own sync code, runs
every notebook in ``notebooks/`` against it and writes each figure whose cell is
tagged ``figure:NAME`` to ``docs/images/NAME.png``::

    python scripts/render_notebook_plots.py                      # 18,432 simulated tracks
    python scripts/render_notebook_plots.py --db data/library_cache.db --no-figures

The notebooks in ``notebooks/`` are never modified (their outputs stay stripped);
pass ``--executed DIR`` to keep executed copies for reading.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from base64 import b64decode
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURE_TAG = "figure:"
# Crisper PNGs for the docs; the notebooks themselves keep Jupyter's defaults.
HIDPI_CELL = '%config InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", "dpi": 144}'


def simulated_cache(tracks: int, seed: int, directory: Path) -> Path:
    "Sync a simulated library into a fresh cache with the project's own sync code"
    from plexcache.config import PlexConfig
    from plexcache.simulator import Simulator
    from plexcache.sync import sync

    db_path = directory / "library_cache.db"
    token = "render-notebooks"
    started = time.perf_counter()
    with Simulator(tracks=tracks, seed=seed, token=token) as sim:
        sync(db_path, PlexConfig(url=sim.url, token=token))
    print(
        f"synced {tracks:,} simulated tracks (seed {seed}) in {time.perf_counter() - started:.1f}s"
    )
    return db_path


def cell_seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def execute(path: Path, db_path: Path, timeout: int, hidpi: bool):
    "Execute one notebook against ``db_path``; return it with the wall time in seconds"
    nb = nbformat.read(path, as_version=4)
    if hidpi:
        nb.cells.insert(0, nbformat.v4.new_code_cell(HIDPI_CELL))
    os.environ["PLEXCACHE_DB"] = str(db_path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - started
    if hidpi:
        nb.cells.pop(0)
    return nb, wall


def save_figures(nb, out: Path) -> list[Path]:
    saved = []
    for cell in nb.cells:
        names = [
            t[len(FIGURE_TAG) :] for t in cell.metadata.get("tags", []) if t.startswith(FIGURE_TAG)
        ]
        images = [
            o["data"]["image/png"]
            for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})
        ]
        for name in names:
            if not images:
                raise SystemExit(f"cell tagged {FIGURE_TAG}{name} drew no figure")
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"{name}.png"
            target.write_bytes(b64decode(images[0]))
            saved.append(target)
    return saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument(
        "--db", type=Path, help="run on this existing cache instead of a simulated one"
    )
    parser.add_argument(
        "--tracks", type=int, default=18432, help="simulated library size (default 18432)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="simulator seed (default 1, as plexcache demo)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "images", help="where figures go"
    )
    parser.add_argument("--no-figures", action="store_true", help="only run and time the notebooks")
    parser.add_argument(
        "--executed", type=Path, help="also write the executed notebooks to this directory"
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="per-cell timeout in seconds (default 600)"
    )
    args = parser.parse_args(argv)

    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    with ExitStack() as stack:
        if args.db:
            db_path = args.db.resolve()
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plexcache-nb-")))
            db_path = simulated_cache(args.tracks, args.seed, tmp)
        print(f"cache: {db_path}")
        total = 0.0
        for path in paths:
            nb, wall = execute(path, db_path, args.timeout, hidpi=not args.no_figures)
            total += wall
            cells = [(cell_seconds(c), i) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
            slowest, index = max(cells)
            print(
                f"{path.name:32} {wall:6.1f}s wall, {sum(s for s, _ in cells):6.1f}s in cells"
                f" (slowest: cell {index}, {slowest:.1f}s)"
            )
            if args.executed:
                args.executed.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, args.executed / path.name)
            if not args.no_figures:
                for target in save_figures(nb, args.out):
                    print(
                        f"  wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}"
                    )
        print(f"{'all notebooks':32} {total:6.1f}s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
