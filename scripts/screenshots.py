"""Regenerate the web front's screenshots in docs/images/ (README, docs/web.md).

Syncs a simulated library (the same deterministic one as ``plexcache demo``)
into a temporary cache with plexcache's own sync code, runs two incremental
syncs after edits so the progress page has a history, serves the cache with
``plexcache serve`` and photographs it in headless Chromium at 1280x900::

    python scripts/screenshots.py                  # 18,432 simulated tracks
    python scripts/screenshots.py --tracks 5000 --out /tmp/shots

Needs Playwright (``pip install -e '.[test]'``) and Debian's Chromium at
/usr/bin/chromium. Writes web-overview.png, web-tracks.png and
web-progress-chart.png.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
VIEWPORT = {"width": 1280, "height": 900}


def synced_cache(path: Path, tracks: int, seed: int) -> None:
    "A full sync, then two incremental ones after edits: a sync history to chart"
    import random

    from plexcache.config import PlexConfig
    from plexcache.simulator import Simulator
    from plexcache.sync import sync

    with Simulator(tracks=tracks, seed=seed, token="screenshots-token") as sim:
        config = PlexConfig(url=sim.url, token=sim.token)
        sync(path, config)
        rng = random.Random(seed)
        for n_added, n_deleted in ((120, 15), (40, 60)):
            sim.advance_clock(3600)
            keys = sim.library.track_keys()
            for key in rng.sample(keys, 200):
                sim.edit_track(key, title=f"Remastered {rng.randint(1, 99)}")
            sim.add_tracks(n_added)
            sim.delete_tracks(rng.sample(keys, n_deleted))
            sim.advance_clock(1)
            sync(path, config)


def serve(db: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PLEX_URL": "", "PLEX_TOKEN": "", "PLEXCACHE_SYNC_ON_START": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plexcache", "serve", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        match = re.search(r"Serving .* at (http://[^/\s]+)", line)
        if match:
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.terminate()
    raise SystemExit("plexcache serve did not start")


def photograph(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, locale="en-US")
        for name, path, wait_for in (
            ("web-overview", "/", "figure.plexcache-chart[data-chart-state=drawn]"),
            ("web-tracks", "/library_cache/tracks", "table.rows-and-columns"),
            (
                "web-progress-chart",
                "/-/plexcache",
                "figure.plexcache-chart[data-chart-state=drawn]",
            ),
        ):
            page.goto(url + path)
            page.wait_for_selector(wait_for)
            page.wait_for_function(
                "() => [...document.querySelectorAll('figure.plexcache-chart')]"
                ".every(f => f.dataset.chartState === 'drawn' || f.dataset.chartRows === '0')"
            )
            # the page script has read the status: relative times, not raw ISO
            page.wait_for_function(
                "() => (document.querySelector('#plexcache-footer') || {}).textContent?.includes('Synced')"
            )
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            written.append(target)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=18432)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "library_cache.db"
        started = time.monotonic()
        synced_cache(db, args.tracks, args.seed)
        print(f"synced {args.tracks:,} simulated tracks in {time.monotonic() - started:.1f} s")
        proc, url = serve(db)
        try:
            for path in photograph(url, args.out):
                print(f"wrote {path}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
