"""One measurement in a fresh process; prints one JSON object on its last stdout line.

``run.py`` starts this once per measurement so that peak RSS (``ru_maxrss``)
belongs to that measurement alone and the client never shares a GIL with the
simulator or the poller. Time is counted after the imports.

    python benchmarks/worker.py sync   --url U --token T --db PATH [--full] [--page-size N] [--no-history]
    python benchmarks/worker.py naive  --url U --token T [--limit N]
    python benchmarks/worker.py plexapi-best --url U --token T [--container-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

FIELDS = ("title", "originalTitle", "grandparentTitle", "parentTitle", "duration", "year", "genres", "userRating")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def do_sync(args) -> dict:
    from plexcache.config import PlexConfig
    from plexcache.sync import sync

    phases: dict[str, float] = {}
    phase_cpu: dict[str, float] = {}
    current = ["start", 0.0, 0.0]

    def on_progress(p) -> None:
        # wall and CPU time per sync phase (connecting, history, tracks, metadata, deletions, applying)
        if p.phase != current[0]:
            now, cpu = time.perf_counter() - t0, cpu_s() - c0
            phases[current[0]] = phases.get(current[0], 0.0) + now - current[1]
            phase_cpu[current[0]] = phase_cpu.get(current[0], 0.0) + cpu - current[2]
            current[:] = [p.phase, now, cpu]

    base = rss_mb()
    c0, t0 = cpu_s(), time.perf_counter()
    res = sync(
        args.db, PlexConfig(url=args.url, token=args.token), full=args.full, page_size=args.page_size,
        on_progress=on_progress, history=not args.no_history,
    )
    seconds = time.perf_counter() - t0
    cpu = cpu_s() - c0
    phases[current[0]] = phases.get(current[0], 0.0) + seconds - current[1]
    phase_cpu[current[0]] = phase_cpu.get(current[0], 0.0) + cpu - current[2]
    return {
        "phase_seconds": {k: round(v, 3) for k, v in phases.items()},
        "phase_cpu_s": {k: round(v, 3) for k, v in phase_cpu.items()},
        "seconds": seconds,
        "client_cpu_s": cpu_s() - c0,
        "sync_duration_ms": res.duration_ms,
        "client_requests": res.requests,
        "mode": res.mode,
        "added": res.added,
        "updated": res.updated,
        "removed": res.removed,
        "tracks": res.track_count,
        "warnings": res.warnings,
        "plays_added": res.plays_added,
        "rss_after_import_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }


def _music_sections(server):
    return [s for s in server.library.sections() if s.type == "artist"]


def _read(track) -> tuple:
    # The attributes a typical app reads; genres as tag names.
    return (
        track.title,
        track.originalTitle,
        track.grandparentTitle,
        track.parentTitle,
        track.duration,
        track.year,
        [g.tag for g in track.genres],
        track.userRating,
    )


def _plexapi_run(args, search_kwargs: dict) -> dict:
    from plexapi.server import PlexServer

    base = rss_mb()
    c0, t0 = cpu_s(), time.perf_counter()
    server = PlexServer(args.url, args.token, timeout=60)
    rows = []
    limit = getattr(args, "limit", 0) or 0
    for section in _music_sections(server):
        kwargs = dict(search_kwargs)
        if limit:
            kwargs["maxresults"] = limit - len(rows)
        for track in section.searchTracks(**kwargs):
            rows.append(_read(track))
        if limit and len(rows) >= limit:
            break
    seconds = time.perf_counter() - t0
    total = 0
    if limit:  # what the whole library holds, for the linear extrapolation
        total = sum(s.totalViewSize(libtype="track") for s in _music_sections(server))
    return {
        "seconds": seconds,
        "client_cpu_s": cpu_s() - c0,
        "tracks": len(rows),
        "library_tracks": total or len(rows),
        "with_genres": sum(1 for r in rows if r[6]),
        "with_year": sum(1 for r in rows if r[5] is not None),
        "rss_after_import_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }


def do_naive(args) -> dict:
    # plexapi defaults: container size 100, autoreload on.
    os.environ.pop("PLEXAPI_PLEXAPI_AUTORELOAD", None)
    os.environ.pop("PLEXAPI_PLEXAPI_CONTAINER_SIZE", None)
    return _plexapi_run(args, {})


def do_plexapi_best(args) -> dict:
    # plexapi reads plexapi.autoreload from PLEXAPI_PLEXAPI_AUTORELOAD ("false",
    # lowercase) each time an object is built.
    os.environ["PLEXAPI_PLEXAPI_AUTORELOAD"] = "false"
    return _plexapi_run(args, {"container_size": args.container_size})


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("sync", "naive", "plexapi-best"):
        s = sub.add_parser(name)
        s.add_argument("--url", required=True)
        s.add_argument("--token", required=True)
        if name == "sync":
            s.add_argument("--db", required=True)
            s.add_argument("--full", action="store_true")
            s.add_argument("--page-size", type=int, default=1000)
            s.add_argument("--no-history", action="store_true")
        if name == "naive":
            s.add_argument("--limit", type=int, default=0, help="only the first N tracks (extrapolate)")
        if name == "plexapi-best":
            s.add_argument("--container-size", type=int, default=1000)
    args = p.parse_args(argv)
    fn = {"sync": do_sync, "naive": do_naive, "plexapi-best": do_plexapi_best}[args.what]
    result = fn(args)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
