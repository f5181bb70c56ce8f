"""Measure the web side: status latency during a sync, table pages on a synced cache.

    python -m datasette_plexcache.bench [--tracks 18432] [--latency-ms 0] [--json]

Starts the simulator and ``plexcache serve`` as subprocesses (as a user
would), lets the server-start sync run in its own process, and polls
``/api/library/status`` as fast as it answers while the sync runs. Then
times table pages on the synced cache. Nothing here runs in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .app import start_simulator, stop_process


def _get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return (time.perf_counter() - start) * 1000, body


def _summary(samples: list[float]) -> dict:
    if not samples:
        return {}
    ordered = sorted(samples)

    def pct(p):
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)

    slowest = sorted(range(len(samples)), key=samples.__getitem__)[-3:]
    return {
        "slowest_at": [(i, round(samples[i], 1)) for i in reversed(slowest)],
        "n": len(samples),
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": round(ordered[-1], 1),
    }


def run(tracks: int, latency_ms: int) -> dict:
    token = secrets.token_urlsafe(12)
    sim, sim_url = start_simulator(tracks=tracks, seed=1, token=token, latency_ms=latency_ms)
    tmp = tempfile.TemporaryDirectory()
    db = Path(tmp.name) / "library_cache.db"
    env = {**os.environ, "PLEX_URL": sim_url, "PLEX_TOKEN": token}
    serve = subprocess.Popen(
        [sys.executable, "-m", "plexcache", "serve", "--db", str(db), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        for line in serve.stdout:
            match = re.search(r"Serving .* at (http://[^/\s]+)", line)
            if match:
                url = match.group(1)
                break
        if url is None:
            raise RuntimeError("plexcache serve did not start")
        status_url = url + "/api/library/status"
        idle, during = [], []
        sync_started = time.perf_counter()
        saw_sync = False
        while True:
            ms, body = _get(status_url)
            status = json.loads(body)
            if status["is_syncing"]:
                saw_sync = True
                during.append(ms)
            elif saw_sync or time.perf_counter() - sync_started > 10:
                break
        sync_seconds = time.perf_counter() - sync_started
        for _ in range(50):
            idle.append(_get(status_url)[0])
        pages = {}
        for path in (
            "/library_cache/tracks",
            "/library_cache/tracks.json?_size=100",
            "/library_cache/tracks?_facet=artist",
            "/library_cache/tracks?_search=love",
            "/library_cache/tracks?_sort=year",
            "/library_cache/track_details",
            "/library_cache/top_artists_by_hours",
            "/library_cache/genres_by_decade",
            "/-/plexcache",
        ):
            _get(url + path)  # warm
            pages[path] = round(statistics.median(_get(url + path)[0] for _ in range(5)), 1)
        return {
            "tracks": status["track_count"],
            "sync_seconds_seen_by_poller": round(sync_seconds, 1),
            "status_ms_during_sync": _summary(during),
            "status_ms_idle": _summary(idle),
            "page_ms_median_of_5": pages,
        }
    finally:
        serve.terminate()
        serve.wait(20)
        stop_process(sim)
        tmp.cleanup()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=18432)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.tracks, args.latency_ms)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['tracks']:,} tracks; sync seen for {result['sync_seconds_seen_by_poller']} s")
    for key in ("status_ms_during_sync", "status_ms_idle"):
        print(f"{key}: {result[key]}")
    for path, ms in result["page_ms_median_of_5"].items():
        print(f"  {ms:8.1f} ms  {path}")


if __name__ == "__main__":
    main()
