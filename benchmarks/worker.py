"""One measurement in a fresh process; prints one JSON object on its last stdout line.

``run.py`` starts this once per measurement so that peak RSS (``ru_maxrss``)
belongs to that measurement alone and the client never shares a GIL with the
simulator or the poller. Time is counted after the imports.

    python benchmarks/worker.py sync   --url U --token T --db PATH [--full] [--page-size N] [--no-history]
    python benchmarks/worker.py naive  --url U --token T [--limit N]
    python benchmarks/worker.py plexapi-best --url U --token T [--container-size N]
    python benchmarks/worker.py raw    --url U --token T --replay REQUESTS.jsonl

``sync --record FILE`` writes every request the sync sent (URL, headers, when
it started and when its response was closed) as JSON lines; ``raw`` replays
exactly those requests with as many in flight as the sync had, reading and
discarding the bodies (still compressed): the time to merely download what
the sync downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

FIELDS = (
    "title",
    "originalTitle",
    "grandparentTitle",
    "parentTitle",
    "duration",
    "year",
    "genres",
    "userRating",
)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM``, which starts afresh at exec.
    (``ru_maxrss`` survives fork+exec on Linux: a worker started by a big
    orchestrator would report the orchestrator's peak.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Recorder:
    "Every request a ``requests`` session sends in this process: URL, headers, start and end"

    def __init__(self):
        import requests

        self.entries: list[dict] = []
        self.lock = threading.Lock()
        send, close = requests.Session.send, requests.Response.close
        recorder = self

        def recording_send(session, request, **kwargs):
            entry = {
                "url": request.url,
                "headers": dict(request.headers),
                "t0": time.perf_counter(),
            }
            response = send(session, request, **kwargs)
            response._bench_entry = entry
            with recorder.lock:
                recorder.entries.append(entry)
            return response

        def recording_close(response):
            entry = getattr(response, "_bench_entry", None)
            if entry is not None and "t1" not in entry:
                entry["t1"] = time.perf_counter()
            return close(response)

        requests.Session.send = recording_send
        requests.Response.close = recording_close

    def max_in_flight(self) -> int:
        events = []
        for e in self.entries:
            events += [(e["t0"], 1), (e.get("t1", e["t0"]), -1)]
        most = now = 0
        for _, d in sorted(events, key=lambda x: (x[0], x[1])):
            now += d
            most = max(most, now)
        return max(1, most)

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            for e in sorted(self.entries, key=lambda e: e["t0"]):
                f.write(json.dumps({"url": e["url"], "headers": e["headers"]}) + "\n")


def do_sync(args) -> dict:
    if args.no_reader:
        os.environ["PLEXCACHE_READER_PROCESS"] = "0"
    recorder = Recorder() if args.record else None
    if recorder is not None:  # the reader process's requests too (childhook/sitecustomize.py)
        hook = os.path.join(os.path.dirname(os.path.abspath(__file__)), "childhook")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [hook, os.environ.get("PYTHONPATH")])
        )
        os.environ["BENCH_RECORD_CHILD"] = args.record + ".child"
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
        args.db,
        PlexConfig(url=args.url, token=args.token),
        full=args.full,
        page_size=args.page_size,
        on_progress=on_progress,
        history=not args.no_history,
    )
    seconds = time.perf_counter() - t0
    cpu = cpu_s() - c0
    # the reader process (plexcache/plex/reader.py), reaped when the sync ended
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    reader_cpu = child.ru_utime + child.ru_stime
    reader_rss = child.ru_maxrss / 1024
    phases[current[0]] = phases.get(current[0], 0.0) + seconds - current[1]
    phase_cpu[current[0]] = phase_cpu.get(current[0], 0.0) + cpu - current[2]
    return {
        "phase_seconds": {k: round(v, 3) for k, v in phases.items()},
        "phase_cpu_s": {k: round(v, 3) for k, v in phase_cpu.items()},
        "seconds": seconds,
        "client_cpu_s": cpu + reader_cpu,
        "reader_cpu_s": reader_cpu,
        "reader_peak_rss_mb": reader_rss,
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
        # this process's own; run.py adds the reader's, sampled together with it
        "peak_rss_mb": peak_rss_mb(),
        **(_recorded(recorder, args.record) if recorder else {}),
    }


def _recorded(recorder: Recorder, path: str) -> dict:
    import glob

    for name in glob.glob(glob.escape(path + ".child") + ".*"):
        with open(name) as f:
            recorder.entries += [json.loads(line) for line in f]
        os.unlink(name)
    recorder.write(path)
    return {"recorded": len(recorder.entries), "max_in_flight": recorder.max_in_flight()}


def do_raw(args) -> dict:
    """Replay the recorded requests, ``connections`` at a time (the sync's
    most in flight), in their order; bodies read raw (not decompressed) and
    thrown away"""
    import queue

    import requests

    with open(args.replay) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    connections = args.connections or 1
    todo: queue.Queue = queue.Queue()
    for e in entries:
        todo.put(e)
    total = [0, 0]
    lock = threading.Lock()
    errors = []

    def worker():
        session = requests.Session()
        got = n = 0
        try:
            while True:
                try:
                    e = todo.get_nowait()
                except queue.Empty:
                    return
                with session.get(e["url"], headers=e["headers"], stream=True, timeout=120) as r:
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} for {e['url'][:100]}")
                    while chunk := r.raw.read(1 << 16, decode_content=False):
                        got += len(chunk)
                n += 1
        finally:
            session.close()
            with lock:
                total[0] += got
                total[1] += n

    c0, t0 = cpu_s(), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"raw replay: {len(errors)} failed requests, e.g. {errors[0]}")
    return {"seconds": seconds, "client_cpu_s": cpu_s() - c0, "bytes": total[0], "client_requests": total[1],
            "connections": connections, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


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
    for name in ("sync", "naive", "plexapi-best", "raw"):
        s = sub.add_parser(name)
        s.add_argument("--url", required=name != "raw")
        s.add_argument("--token", required=name != "raw")
        if name == "sync":
            s.add_argument("--db", required=True)
            s.add_argument("--full", action="store_true")
            s.add_argument("--page-size", type=int, default=1000)
            s.add_argument("--no-history", action="store_true")
            s.add_argument("--record", help="write the requests the sync sent here (JSON lines)")
            s.add_argument("--no-reader", action="store_true", help="PLEXCACHE_READER_PROCESS=0")
        if name == "raw":
            s.add_argument("--replay", required=True, help="requests recorded by `sync --record`")
            s.add_argument(
                "--connections", type=int, default=0, help="in flight at once (default: the sync's)"
            )
        if name == "naive":
            s.add_argument(
                "--limit", type=int, default=0, help="only the first N tracks (extrapolate)"
            )
        if name == "plexapi-best":
            s.add_argument("--container-size", type=int, default=1000)
    args = p.parse_args(argv)
    fn = {"sync": do_sync, "naive": do_naive, "plexapi-best": do_plexapi_best, "raw": do_raw}[
        args.what
    ]
    result = fn(args)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
