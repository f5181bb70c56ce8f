"""plexcache benchmark suite (issue #6).

    .venv/bin/python benchmarks/run.py                 # the full suite (~15 min on 2 cores)
    .venv/bin/python benchmarks/run.py --smoke         # small library, one repetition (< 60 s)
    .venv/bin/python benchmarks/run.py --cases 1,2,3   # some cases only
    .venv/bin/python benchmarks/run.py --skip-big      # no 1,000,000-track cases (6, 7b)
    .venv/bin/python benchmarks/run.py --cases 8       # listening history: 100,000 plays
    .venv/bin/python benchmarks/run.py --cases 9       # the live cache only (benchmarks/live.py)
    .venv/bin/python benchmarks/run.py --cases 10      # every simulator profile: exact?, requests, naive ratio

Each case runs in fresh processes: the simulator (``plexcache simulate``), one ``benchmarks/worker.py`` per measurement (so peak
RSS is that measurement's alone), ``plexcache serve`` for the web cases. This
process only orchestrates, polls and reads the simulator's request counters
(``/__sim__/stats``, reset before every measurement).

Prints a table of medians with the machine, versions and library size, and
writes everything (every run, not only medians) as JSON. Exits non-zero when a
case crashes, never because a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import psutil
import requests
from goals import Goals, render_goals

from plexcache.simulator.profiles import ALL_PROFILES, CLASSIC, REALISTIC

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
TOKEN = "benchmark-token"
DB_NAME = "library_cache.db"  # Datasette serves it as /library_cache
LATENCY_MS = 20
CHANGE_FRACTION = 0.01
DEFAULT_FACETS = ("artist", "year", "genres", "is_live")  # the plugin's metadata for tracks


# --------------------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p: float):
    "nearest-rank percentile"
    values = sorted(values)
    if not values:
        return None
    k = max(0, min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


class CaseError(Exception):
    pass


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # as on a user's machine: compiled modules are kept (the sync's reader process
    # would otherwise compile plexcache from source each time it starts)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PLEXAPI_PLEXAPI_AUTORELOAD", None)
    env.pop("PLEX_URL", None)
    env.pop("PLEX_TOKEN", None)
    return env


def run_worker(argv: list[str], timeout: float, sample_every: float = 0.2, nice: int = 0) -> dict:
    """Run ``worker.py argv`` in a fresh process, sample its RSS, return its JSON result"""
    cmd = [PY, str(HERE / "worker.py"), *argv]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=out_f, stderr=err_f, env=_env(), cwd=str(ROOT))
    peak, timeline, next_tick = 0.0, [], 0.0
    try:
        while proc.poll() is None:
            now = time.perf_counter() - start
            if now > timeout:
                proc.kill()
                proc.wait()
                raise CaseError(f"worker {argv[0]} timed out after {timeout:.0f}s")
            with contextlib.suppress(psutil.Error):
                # the worker and its children (a sync's reader process) together
                rss = (
                    sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
                )
                peak = max(peak, rss)
                if now >= next_tick:
                    timeline.append((round(now, 1), round(rss, 1)))
                    next_tick = now + 1.0
            time.sleep(sample_every)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - start
    out_f.seek(0)
    err_f.seek(0)
    out = out_f.read().decode(errors="replace")
    err = err_f.read().decode(errors="replace")
    if proc.returncode != 0:
        lines = err.strip().splitlines() or ["(no output)"]
        log("worker stderr:\n" + "\n".join(lines[-15:]))
        raise CaseError(f"worker {argv[0]} exited {proc.returncode}: {lines[-1]}")
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise CaseError(f"worker {argv[0]} printed no result")
    result = json.loads(lines[-1])
    result["process_wall_s"] = wall
    result["sampled_peak_rss_mb"] = peak
    if result.get("reader_peak_rss_mb"):
        # a sync with a reader process: both processes' RSS at once (sampled every
        # `sample_every` s), never below the sync process's own exact peak (VmHWM)
        result["peak_rss_mb"] = max(result["peak_rss_mb"], peak)
    result["rss_timeline"] = timeline
    return result


def read_url_line(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    "Read the child's stdout until a line matches ``pattern``; return group 1"
    found: dict = {}
    lines: list[str] = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            m = re.search(pattern, line)
            if m and "url" not in found:
                found["url"] = m.group(1)
        found.setdefault("eof", True)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "url" not in found:
        if "eof" in found or proc.poll() is not None:
            break
        time.sleep(0.05)
    if "url" not in found:
        err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
        raise CaseError(f"{proc.args[1:4]} did not start: {''.join(lines)[-500:]} {err[-800:]}")
    return found["url"]


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------------------
# the simulator, in its own process


class Sim:
    def __init__(self, tracks: int, seed: int = 1, latency_ms: int = 0, history: int | None = None,
                 profile: str | None = None):  # fmt: skip
        self.tracks = tracks
        self.history = history
        self.seed = seed
        self.latency_ms = latency_ms
        self.profile = profile
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.http = requests.Session()

    def __enter__(self) -> Sim:
        cmd = [PY, "-m", "plexcache", "simulate", "--port", "0", "--tracks", str(self.tracks), "--seed", str(self.seed),
               "--token", TOKEN, "--latency-ms", str(self.latency_ms)]  # fmt: skip
        cmd += ["--profile", self.profile] if self.profile else []
        if self.history is not None:
            cmd += ["--history", str(self.history)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=str(ROOT)
        )
        self.url = read_url_line(self.proc, r"simulator on (http://\S+)", 120)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get(self.url + "/identity", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise CaseError("simulator did not answer /identity")
            time.sleep(0.1)
        self.ps = psutil.Process(self.proc.pid)
        return self

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)

    def admin(self, name: str, data: dict | None = None, method: str = "POST"):
        r = self.http.request(method, f"{self.url}/__sim__/{name}", json=data if method == "POST" else None,
                              headers={"X-Plex-Token": TOKEN}, timeout=120)  # fmt: skip
        if r.status_code != 200:
            raise CaseError(f"simulator admin {name}: {r.status_code} {r.text[:200]}")
        return r.json()

    def stats(self) -> dict:
        return self.admin("stats", method="GET")

    def reset_stats(self) -> None:
        self.admin("reset-stats")

    def set_latency(self, ms: float) -> None:
        self.admin("latency", {"ms": ms})

    def advance_clock(self, seconds: float) -> None:
        self.admin("advance-clock", {"seconds": seconds})

    def mutate(self, op: str, **args):
        return self.admin("mutate", {"op": op, "args": args})["result"]

    def query(self, op: str, **args):
        return self.admin("query", {"op": op, "args": args})["result"]

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system


# --------------------------------------------------------------------------------------
# the web server (plexcache serve, or plain Datasette when the plugin is not there)


class Web:
    def __init__(self, db: Path, sim_url: str | None):
        self.db = db
        self.sim_url = sim_url
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.plugin = True
        self.http = requests.Session()

    @property
    def name(self) -> str:
        return self.db.stem

    def __enter__(self) -> Web:
        cmd = [PY, "-m", "plexcache", "serve", "--db", str(self.db), "--port", "0"]
        if self.sim_url:
            cmd += ["--url", self.sim_url, "--token", TOKEN]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=str(ROOT)
        )
        try:
            self.url = read_url_line(self.proc, r"at (http://\S+?)/?\s*$", 60).rstrip("/")
            self._wait(self.url + "/api/library/status")
        except CaseError as e:
            log(f"plexcache serve did not start ({e}); falling back to plain Datasette")
            stop_process(self.proc)
            self.plugin = False
            port = free_port()
            cmd = [PY, "-m", "datasette", "serve", str(self.db), "--port", str(port),
                   "--setting", "suggest_facets", "off"]  # fmt: skip
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env()
            )
            self.url = f"http://127.0.0.1:{port}"
            self._wait(self.url + "/-/versions.json")
        return self

    def _wait(self, url: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get(url, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise CaseError(f"web server did not answer {url}")

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)

    def tracks_path(self, extra: str = "", fmt: str = "") -> str:
        qs = []
        if not self.plugin:  # the plugin's metadata: default facets and sort
            qs.append(
                "_facet=artist&_facet=year&_facet_array=genres&_facet=is_live&_sort_desc=added_at"
            )
        if extra:
            qs.append(extra)
        return f"/{self.name}/tracks{fmt}" + ("?" + "&".join(qs) if qs else "")

    def timed_get(
        self, path: str, session: requests.Session | None = None
    ) -> tuple[float, requests.Response]:
        t0 = time.perf_counter()
        r = (session or self.http).get(self.url + path, timeout=120)
        _ = r.content
        return (time.perf_counter() - t0) * 1000, r

    def status(self, session: requests.Session | None = None) -> tuple[float, dict]:
        if self.plugin:
            ms, r = self.timed_get("/api/library/status", session)
            if r.status_code != 200:
                raise CaseError(f"status endpoint answered {r.status_code}")
            return ms, r.json()
        from plexcache.config import PlexConfig
        from plexcache.status import get_status

        t0 = time.perf_counter()
        data = get_status(self.db, PlexConfig(self.sim_url, TOKEN) if self.sim_url else None)
        return (time.perf_counter() - t0) * 1000, data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# the suite


class Suite:
    def __init__(self, args):
        self.args = args
        self.rows: dict[str, dict] = {}
        self.errors: list[dict] = []
        self.work = (
            Path(args.workdir)
            if args.workdir
            else Path(tempfile.mkdtemp(prefix="plexcache-bench-"))
        )
        self.work.mkdir(parents=True, exist_ok=True)
        self.keep_work = bool(args.workdir)
        self.base_db: Path | None = None
        self.rng = random.Random(args.seed)
        self.goals: list[dict] = []  # issue #17's goals (goals.py)

    # -- bookkeeping

    def row(self, key: str, case: str, what: str, runs: list[dict], **extra) -> dict:
        med = {}
        for k in ("seconds", "requests", "tracks_per_s", "peak_rss_mb", "client_cpu_s", "sim_cpu_s",
                  "rss_after_import_mb", "tracks"):  # fmt: skip
            vals = [r.get(k) for r in runs if isinstance(r.get(k), int | float)]
            med[k] = median(vals) if vals else None
        secs = [r["seconds"] for r in runs if isinstance(r.get("seconds"), int | float)]
        row = {"case": case, "what": what, "runs": runs, "median": med,
               "min_s": min(secs) if secs else None, "max_s": max(secs) if secs else None, **extra}  # fmt: skip
        self.rows[key] = row
        if med.get("seconds") is not None:
            log(f"  {key}: {what}: median {med['seconds']:.3f}s, requests {med.get('requests')}, "
                f"peak RSS {fmt_num(med.get('peak_rss_mb'))} MB")  # fmt: skip
        return row

    def guarded(self, key: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a crashed case is reported, the others still run
            log(f"case {key} FAILED: {e}")
            self.errors.append({"case": key, "error": str(e), "traceback": traceback.format_exc()})

    def measure(self, sim: Sim, argv: list[str], timeout: float) -> dict:
        sim.reset_stats()
        cpu0 = sim.cpu_s()
        result = run_worker(argv, timeout)
        stats = sim.stats()
        result["sim_cpu_s"] = sim.cpu_s() - cpu0
        result["requests"] = stats["total_requests"]
        result["request_counts"] = stats["request_counts"]
        n = result.get("tracks") or 0
        if result.get("seconds") and n:
            result["tracks_per_s"] = n / result["seconds"]
        return result

    def sync_argv(self, sim: Sim, db: Path, full: bool = False, history: bool = True) -> list[str]:
        argv = [
            "sync",
            "--url",
            sim.url,
            "--token",
            TOKEN,
            "--db",
            str(db),
            "--page-size",
            str(self.args.page_size),
        ]
        return argv + (["--full"] if full else []) + ([] if history else ["--no-history"])

    def fresh_db(self, tag: str) -> Path:
        d = self.work / tag
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d / DB_NAME

    # -- cases 1-5 (one simulator of --tracks tracks)

    def full_syncs(self, sim: Sim, key: str, case: str, what: str, repeat: int) -> Path:
        runs, db = [], None
        for i in range(repeat):
            db = self.fresh_db(f"{key}-{i}")
            runs.append(self.measure(sim, self.sync_argv(sim, db), self.args.timeout))
        self.row(key, case, what, runs)
        return db

    def reader_ab(self, sim: Sim, n: int, repeat: int) -> None:
        """The same first sync with the reader process (plexcache/plex/reader.py) and without
        it, run by turns: the wall time, and the CPU of the sync's own process, which is what
        bounds the wall when the server has cores of its own"""
        on, off = [], []
        for i in range(repeat):
            for runs, extra in ((on, []), (off, ["--no-reader"])):
                db = self.fresh_db(f"1b-{len(extra)}-{i}")
                runs.append(self.measure(sim, self.sync_argv(sim, db) + extra, self.args.timeout))
        for key, runs, label in (("1b-on", on, "on"), ("1b-off", off, "off")):
            main_cpu = median(r["client_cpu_s"] - r.get("reader_cpu_s", 0) for r in runs)
            reader_cpu = median(r.get("reader_cpu_s", 0) for r in runs)
            self.row(key, "1b", f"Full sync, {n:,} tracks, reader process {label} (by turns); CPU "
                     f"{main_cpu:.2f} s in the sync's process + {reader_cpu:.2f} s in the reader",
                     runs, main_cpu_s=main_cpu)  # fmt: skip

    def incremental_nothing(
        self, sim: Sim, db: Path, key: str, case: str, what: str, repeat: int
    ) -> None:
        runs = []
        for _ in range(repeat):
            sim.advance_clock(600)  # previous changes fall outside the 2-minute overlap
            runs.append(self.measure(sim, self.sync_argv(sim, db), self.args.timeout))
        self.row(key, case, what, runs)

    def incremental_changed(
        self, sim: Sim, db: Path, key: str, case: str, what: str, repeat: int
    ) -> None:
        runs = []
        for _ in range(repeat):
            applied = self.change_library(sim)
            sim.advance_clock(600)
            r = self.measure(sim, self.sync_argv(sim, db), self.args.timeout)
            r["changes"] = applied
            runs.append(r)
        self.row(key, case, what, runs)

    def change_library(self, sim: Sim) -> dict:
        "1% of tracks edited, 1% added, 1% removed, 1% played (distinct tracks)"
        keys = sim.query("track_keys")
        n = max(1, round(len(keys) * CHANGE_FRACTION))
        chosen = self.rng.sample(keys, 3 * n)
        edit, delete, play = chosen[:n], chosen[n : 2 * n], chosen[2 * n :]
        for k in edit:
            sim.mutate("edit_track", key=k, title=f"Edited {k} {self.rng.randrange(10**6)}")
        for k in play:
            sim.mutate("play_track", key=k)
        sim.mutate("add_tracks", n=n)
        sim.mutate("delete_tracks", keys=delete)
        return {"edited": n, "played": n, "added": n, "removed": n}

    def naive(self, sim: Sim, key: str, case: str, what: str, repeat: int, limit: int = 0) -> None:
        runs = []
        for _ in range(repeat):
            argv = ["naive", "--url", sim.url, "--token", TOKEN]
            if limit:
                argv += ["--limit", str(limit)]
            r = self.measure(sim, argv, self.args.naive_timeout)
            if limit:
                # Linear extrapolation to the whole library, clearly labelled.
                scale = r["library_tracks"] / max(1, r["tracks"])
                r["measured_seconds"] = r["seconds"]
                r["measured_requests"] = r["requests"]
                r["measured_tracks"] = r["tracks"]
                r["seconds"] = r["seconds"] * scale
                r["requests"] = round(r["requests"] * scale)
                r["sim_cpu_s"] = r["sim_cpu_s"] * scale
                r["client_cpu_s"] = r["client_cpu_s"] * scale
                r["tracks"] = r["library_tracks"]
                r["tracks_per_s"] = r["tracks"] / r["seconds"]
                r["peak_rss_mb"] = None  # does not extrapolate
                r["extrapolated_from"] = r["measured_tracks"]
            runs.append(r)
        extra = {"extrapolated_from": limit} if limit else {}
        self.row(key, case, what, runs, **extra)

    def plexapi_best(self, sim: Sim, key: str, case: str, what: str, repeat: int) -> None:
        runs = []
        for _ in range(repeat):
            argv = ["plexapi-best", "--url", sim.url, "--token", TOKEN, "--container-size",
                    str(self.args.plexapi_container_size)]  # fmt: skip
            runs.append(self.measure(sim, argv, self.args.timeout))
        self.row(key, case, what, runs)

    def cases_small(self) -> None:
        a, cases = self.args, self.args.cases
        n = a.tracks
        with Sim(n, seed=a.seed, profile=a.profile) as sim:
            log(f"simulator: {n:,} tracks at {sim.url}")
            if "1" in cases:
                self.guarded("1", lambda: setattr(self, "base_db", self.full_syncs(
                    sim, "1", "1", f"Full sync, {n:,} tracks", a.repeat)))  # fmt: skip
                self.guarded("1b", lambda: self.reader_ab(sim, n, a.repeat))
            if "2" in cases:
                self.guarded("2", lambda: self.naive(sim, "2", "2", "plexapi naive (defaults, autoreload)",
                                                     a.naive_repeat))  # fmt: skip
            if "3" in cases:
                self.guarded("3", lambda: self.plexapi_best(
                    sim, "3", "3", f"plexapi best (container_size={a.plexapi_container_size}, autoreload off)",
                    a.repeat))  # fmt: skip
            if "4" in cases or "7" in cases:
                if self.base_db is None or not self.base_db.exists():
                    self.guarded(
                        "setup", lambda: setattr(self, "base_db", self._setup_sync(sim, "base"))
                    )
            if "4" in cases and self.base_db:
                self.guarded("4a", lambda: self.incremental_nothing(
                    sim, self.base_db, "4a", "4", "Incremental, nothing changed", a.repeat))  # fmt: skip
                self.guarded("4b", lambda: self.incremental_changed(
                    sim, self.base_db, "4b", "4", "Incremental, 1% edited/added/removed/played", a.repeat))  # fmt: skip
            if "7" in cases and self.base_db:
                self.guarded("7a", lambda: self.web_during_sync(sim, self.base_db))
            if "5" in cases:
                self.guarded("5", lambda: self.cases_latency(sim))
            if "9" in cases:
                self.guarded("9", lambda: self.live_cache(sim))

    def live_cache(self, sim: Sim) -> None:
        "Case 9 (benchmarks/live.py): change on the server -> readable in the cache, with `plexcache watch`"
        from live import KINDS, Live

        sim.set_latency(0)
        db = self._setup_sync(sim, "live")
        live = Live(self, sim, db, self.args.live_changes, random.Random(self.args.seed))
        try:
            live.start(PY, TOKEN, _env(), ROOT)
            results = live.run()
        finally:
            live.stop()
        for kind in KINDS:
            r = results[kind]
            times = r["times_ms"]
            self.row(f"9-{kind}", "9", f"Live: {kind} -> readable in the cache", [], samples=len(times),
                     p50_ms=percentile(times, 50), p99_ms=percentile(times, 99), max_ms=max(times),
                     requests_per_change=r["requests"] / len(times), syncs=r["syncs"], live_syncs=r["live_syncs"],
                     request_counts=r["request_counts"])  # fmt: skip
            log(f"  9-{kind}: p50 {fmt_num(percentile(times, 50))} ms, p99 {fmt_num(percentile(times, 99))} ms, "
                f"{r['requests'] / len(times):.2f} requests per change")  # fmt: skip

    def _setup_sync(self, sim: Sim, tag: str) -> Path:
        db = self.fresh_db(tag)
        run_worker(self.sync_argv(sim, db), self.args.timeout)
        return db

    def cases_latency(self, sim: Sim) -> None:
        a = self.args
        sim.set_latency(LATENCY_MS)
        try:
            lat = f"@{LATENCY_MS} ms"
            db = self.full_syncs(sim, "5a", "5", f"Full sync {lat}", a.repeat)
            self.guarded(
                "5c", lambda: self.plexapi_best(sim, "5c", "5", f"plexapi best {lat}", a.repeat)
            )
            limit = a.naive_latency_tracks
            label = f"plexapi naive {lat}" + (
                f" (first {limit:,} tracks, extrapolated)" if limit else ""
            )
            self.guarded("5b", lambda: self.naive(sim, "5b", "5", label, 1, limit=limit))
            self.guarded("5d", lambda: self.incremental_nothing(sim, db, "5d", "5", f"Incremental, nothing changed {lat}",
                                                                a.repeat))  # fmt: skip
            self.guarded("5e", lambda: self.incremental_changed(sim, db, "5e", "5", f"Incremental, 1% changes {lat}",
                                                                a.repeat))  # fmt: skip
        finally:
            sim.set_latency(0)

    # -- case 10: every server profile

    def cases_profiles(self) -> None:
        """Per simulator profile (issue #12), same library: a first full sync, a sync with
        nothing changed, a 1% change, each cache checked row by row against the simulator's
        ground truth, and (on --profile-naive) the naive plexapi loop on the same server."""
        from plexcache.simulator.truth import diff_cache

        a = self.args
        for profile in a.profiles:

            def one(profile=profile):
                with Sim(a.tracks, seed=a.seed, profile=profile) as sim:
                    db = self.fresh_db(f"10-{profile}")
                    full = self.measure(sim, self.sync_argv(sim, db), a.timeout)
                    exact_full = not any(diff_cache(db, sim.query("expected_cache")).values())
                    sim.advance_clock(600)
                    nothing = self.measure(sim, self.sync_argv(sim, db), a.timeout)
                    changes = self.change_library(sim)
                    sim.advance_clock(600)
                    changed = self.measure(sim, self.sync_argv(sim, db), a.timeout)
                    changed["changes"] = changes
                    diff = diff_cache(db, sim.query("expected_cache"))
                    naive = None
                    if profile in a.profile_naive:
                        naive = self.measure(
                            sim, ["naive", "--url", sim.url, "--token", TOKEN], a.naive_timeout
                        )
                    self.rows[f"10-{profile}"] = {
                        "case": "10", "what": f"profile {profile}", "profile": profile, "p10": True,
                        "runs": [full, nothing, changed] + ([naive] if naive else []),
                        "full": full, "nothing": nothing, "changed": changed, "naive": naive,
                        "exact": exact_full and not any(diff.values()), "diff": diff, "median": {},
                    }  # fmt: skip
                    log(f"  9 {profile}: full {full['seconds']:.2f}s/{full['requests']} req, nothing "
                        f"{nothing['requests']} req, 1% {changed['seconds']:.2f}s/{changed['requests']} req, "
                        f"exact {exact_full and not any(diff.values())}"
                        + (f", naive {naive['seconds']:.1f}s" if naive else ""))  # fmt: skip

            self.guarded(f"10-{profile}", one)

    # -- case 7a: the web front while a full sync runs

    def web_during_sync(self, sim: Sim, db: Path) -> None:
        """Status and tracks-page latency while full syncs run (in their own process).

        Round A polls only the status endpoint (keep-alive, and a new
        connection per request); round B adds a browser-like load: the tracks
        page (default facets) requested back to back, with status polled too.
        """
        a = self.args
        with Web(db, sim.url) as web:
            tracks_path = web.tracks_path()
            idle_status = [web.status()[0] for _ in range(a.idle_samples)]
            idle_fresh = [web.status(requests.Session())[0] if web.plugin else web.status()[0]
                          for _ in range(a.idle_samples)]  # fmt: skip
            idle_page = [web.timed_get(tracks_path)[0] for _ in range(max(3, a.idle_samples // 10))]
            errors: list[str] = []

            def status_poller(fresh: bool):
                def poll(done: threading.Event, out: list) -> None:
                    session = requests.Session()
                    while not done.is_set():
                        try:
                            t = time.monotonic()
                            if fresh and web.plugin:
                                session = requests.Session()  # new connection, like curl/urllib
                            ms, body = web.status(session)
                            out.append((t, ms, bool(body.get("is_syncing"))))
                        except Exception as e:  # noqa: BLE001
                            errors.append(f"status: {e}")
                        done.wait(a.status_interval)

                return poll

            def page_poller(done: threading.Event, out: list) -> None:
                session = requests.Session()
                while not done.is_set():
                    try:
                        t = time.monotonic()
                        ms, r = web.timed_get(tracks_path, session)
                        if r.status_code != 200:
                            errors.append(f"tracks page: HTTP {r.status_code}")
                        out.append((t, ms, None))
                    except Exception as e:  # noqa: BLE001
                        errors.append(f"tracks page: {e}")
                    done.wait(0.1)

            def during_syncs(pollers: dict) -> tuple[dict, list]:
                samples = {name: [] for name in pollers}
                runs = []
                for _ in range(a.repeat):
                    done = threading.Event()
                    threads = [
                        threading.Thread(target=f, args=(done, samples[name]))
                        for name, f in pollers.items()
                    ]
                    for t in threads:
                        t.start()
                    try:
                        sim.reset_stats()
                        runs.append(
                            run_worker(
                                self.sync_argv(sim, db, full=True), a.timeout, nice=a.sync_nice
                            )
                        )
                    finally:
                        done.set()
                        for t in threads:
                            t.join()
                # "during a sync": answers of the first status poller that said
                # is_syncing, and other requests started inside those windows
                first = samples[next(iter(pollers))]
                windows, current = [], None
                for t, _, flag in first:
                    if flag:
                        current = [t, t] if current is None else [current[0], t]
                    elif current is not None:
                        windows.append(current)
                        current = None
                if current is not None:
                    windows.append(current)
                inside = {
                    name: [ms for t, ms, _ in got if any(w0 <= t <= w1 for w0, w1 in windows)]
                    for name, got in samples.items()
                }
                inside["_all"] = len(first)
                return inside, runs

            quiet, runs_a = during_syncs(
                {"status": status_poller(False), "fresh": status_poller(True)}
            )
            busy, runs_b = during_syncs({"status": status_poller(False), "page": page_poller})

        def stats(values, **extra):
            return dict(samples=len(values), p50_ms=percentile(values, 50), p99_ms=percentile(values, 99),
                        max_ms=max(values) if values else None, plugin=web.plugin, **extra)  # fmt: skip

        how = "" if web.plugin else " (get_status in-process, no plugin)"
        syncs = [r["seconds"] for r in runs_a + runs_b]
        self.row("7a-status", "7", f"Status endpoint during a full sync, keep-alive (as a browser){how}", [],
                 **stats(quiet["status"], idle_p50_ms=percentile(idle_status, 50),
                         idle_p99_ms=percentile(idle_status, 99), all_samples=quiet["_all"],
                         is_syncing_fraction=len(quiet["status"]) / max(1, quiet["_all"]), sync_seconds=syncs,
                         errors=errors[:20], error_count=len(errors)))  # fmt: skip
        if web.plugin:
            self.row("7a-status-fresh", "7", "Status endpoint during a full sync, new connection per request", [],
                     **stats(quiet["fresh"], idle_p50_ms=percentile(idle_fresh, 50),
                             idle_p99_ms=percentile(idle_fresh, 99)))  # fmt: skip
        self.row("7a-status-busy", "7", "Status endpoint during a full sync while the tracks page is browsed", [],
                 **stats(busy["status"]))  # fmt: skip
        self.row("7a-page", "7", "Tracks page (default facets) during a full sync", [],
                 **stats(busy["page"], idle_p50_ms=percentile(idle_page, 50)))  # fmt: skip
        log(
            f"  7a: status p50 {fmt_num(percentile(quiet['status'], 50))} ms p99 "
            f"{fmt_num(percentile(quiet['status'], 99))} ms ({len(quiet['status'])} samples); fresh p99 "
            f"{fmt_num(percentile(quiet.get('fresh', []), 99))} ms; while browsing p99 "
            f"{fmt_num(percentile(busy['status'], 99))} ms; page p50 {fmt_num(percentile(busy['page'], 50))} ms"
        )

    # -- case 8: the listening history

    def case_history(self) -> None:
        """8a: a first sync with a backfill of --history-plays plays (and the
        same sync with --no-history: the difference is the history's cost);
        8b: an incremental sync after --history-new plays (60% the owner's,
        40% other accounts'); 8c: an incremental sync with nothing new"""
        a = self.args
        n, plays, new = a.tracks, a.history_plays, a.history_new
        with Sim(n, seed=a.seed, history=plays) as sim:
            listed = sim.query("count")  # generates the backfill before anything is timed
            log(f"simulator: {n:,} tracks, {listed:,} plays at {sim.url}")
            with_history, without, db = [], [], None
            for i in range(a.repeat):
                db = self.fresh_db(f"8a-{i}")
                with_history.append(self.history_measure(sim, self.sync_argv(sim, db)))
                without.append(self.measure(sim, self.sync_argv(sim, self.fresh_db(f"8a0-{i}"), history=False),
                                            a.timeout))  # fmt: skip
            self.row("8a", "8", f"First sync with the listening history: {n:,} tracks + {plays:,} plays",
                     with_history)  # fmt: skip
            self.row("8a0", "8", f"The same first sync with --no-history ({n:,} tracks)", without)
            accounts = [x["id"] for x in sim.query("accounts") if x["id"] > 1]
            keys = sim.query("track_keys")
            runs = []
            for _ in range(a.repeat):
                for i in range(new):
                    account = 1 if i < new * 0.6 or not accounts else self.rng.choice(accounts)
                    sim.mutate("play_track", key=self.rng.choice(keys), account_id=account)
                sim.advance_clock(600)
                runs.append(self.history_measure(sim, self.sync_argv(sim, db)))
            self.row("8b", "8", f"Incremental after {new:,} new plays (60% the owner's)", runs)
            runs = []
            for _ in range(a.repeat):
                sim.advance_clock(600)
                runs.append(self.history_measure(sim, self.sync_argv(sim, db)))
            self.row("8c", "8", "Incremental, nothing played or changed (with the history)", runs)

    def history_measure(self, sim: Sim, argv: list[str]) -> dict:
        r = self.measure(sim, argv, self.args.timeout)
        r["history_requests"] = r["request_counts"].get("history", 0)
        r["history_seconds"] = (r.get("phase_seconds") or {}).get("history")
        log(
            f"    {r['plays_added']:,} plays added; {r['history_requests']} history requests, "
            f"history phase {fmt_num(r['history_seconds'])} s; requests {r['request_counts']}"
        )
        return r

    # -- cases 6 and 7b: the big library

    def cases_big(self) -> None:
        a, cases = self.args, self.args.cases
        n = a.big
        big_db = self.work / f"big-{n}" / DB_NAME
        if "6" in cases:

            def case6():
                with Sim(n, seed=a.seed, profile=a.profile) as sim:
                    log(f"simulator: {n:,} tracks at {sim.url}")
                    # G3/G4: the sync with its requests recorded, then a raw replay of them
                    Goals(self, Sim, TOKEN, log).big(sim, self.fresh_db(f"big-{n}"), n)

            self.guarded("6", case6)
        if "7" in cases:

            def case7b():
                if not big_db.exists():
                    raise CaseError(
                        f"no {n:,}-track cache at {big_db} (run case 6 or pass --workdir of an earlier run)"
                    )
                self.web_big(big_db, n)

            self.guarded("7b", case7b)

    def web_big(self, db: Path, n: int) -> None:
        a = self.args
        word = search_word(db)
        with Web(db, None) as web:
            urls = {
                "7b-page": (f"Tracks page (default facets), {n:,} tracks", web.tracks_path()),
                "7b-search": (
                    f"Full-text search ?_search={word}, {n:,} tracks",
                    web.tracks_path(f"_search={word}"),
                ),
                "7b-json": (
                    f"tracks.json (default facets), {n:,} tracks",
                    web.tracks_path(fmt=".json"),
                ),
                # the library overview (#16): the home page with its figures and charts
                "7b-overview": (f"Library overview (home page /), {n:,} tracks", "/"),
                "7b-status": (f"Status endpoint, {n:,}-track cache, idle, keep-alive", None),
            }
            for key, (what, path) in urls.items():
                samples, first = [], None
                for i in range(a.web_repeat + 1):
                    if path is None:
                        ms, _ = web.status()
                        r = None
                    else:
                        ms, r = web.timed_get(path)
                        if r.status_code != 200:
                            raise CaseError(f"{path}: HTTP {r.status_code}")
                    if i == 0:
                        first = ms  # cold: first query after start
                    else:
                        samples.append(ms)
                extra = {}
                if key == "7b-overview" and "plexcache-overview" not in r.text:
                    raise CaseError("/ did not render the library overview")
                if key == "7b-json":
                    # 0.65 leaves a timed-out facet out of facet_results (1.0 also lists it)
                    body = r.json()
                    returned = sorted((body.get("facet_results") or {}).keys())
                    timed_out = body.get("facets_timed_out")
                    if timed_out is None:
                        timed_out = [f for f in DEFAULT_FACETS if f not in returned]
                    extra["facets_timed_out"] = timed_out
                    extra["facets_returned"] = returned
                    extra["count"] = body.get("filtered_table_rows_count", body.get("count"))
                self.row(key, "7", what, [], samples=len(samples), p50_ms=percentile(samples, 50),
                         max_ms=max(samples), first_ms=first, path=path, plugin=web.plugin, **extra)  # fmt: skip
                log(
                    f"  {key}: p50 {fmt_num(percentile(samples, 50))} ms, first {fmt_num(first)} ms {extra}"
                )
        # Datasette's array facet SQL (0.65.5 ArrayFacet.facet_results) on its own
        facet_sql = (
            "with inner as (select * from tracks), deduped_array_items as (select distinct j.value, inner.* "
            "from json_each([inner].genres) j join inner) select value as value, count(*) as count "
            "from deduped_array_items group by value order by count(*) desc, value limit 31"
        )
        times = []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for _ in range(a.web_repeat):
                t0 = time.perf_counter()
                conn.execute(facet_sql).fetchall()
                times.append((time.perf_counter() - t0) * 1000)
                if times[-1] > 1000:  # seconds per run: one is enough
                    break
        finally:
            conn.close()
        self.row("7b-genres", "7", f"genres array facet SQL alone (Datasette 0.65 ArrayFacet), {n:,} tracks", [],
                 samples=len(times), p50_ms=percentile(times, 50), max_ms=max(times))  # fmt: skip
        log(f"  7b-genres: p50 {fmt_num(percentile(times, 50))} ms")

    # -- run

    def run(self) -> int:
        meta = machine_info()
        meta["args"] = {k: v for k, v in vars(self.args).items()}
        meta["library_tracks"] = self.args.tracks
        meta["big_tracks"] = None if self.args.skip_big else self.args.big
        meta["load_before"] = os.getloadavg()
        t0 = time.perf_counter()
        log(f"work dir {self.work}; cases {','.join(sorted(self.args.cases))}")
        try:
            if "g" in self.args.cases:
                Goals(self, Sim, TOKEN, log).run_small()
            if self.args.cases & {"1", "2", "3", "4", "5", "7", "9"}:
                self.cases_small()
            if not self.args.skip_big and self.args.cases & {"6", "7"}:
                self.cases_big()
            if "8" in self.args.cases:
                self.guarded("8", self.case_history)
            if "10" in self.args.cases:
                self.cases_profiles()
        finally:
            if not self.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        meta["load_after"] = os.getloadavg()
        meta["suite_seconds"] = time.perf_counter() - t0
        targets = evaluate_targets(self.rows, self.args)
        report = {
            "meta": meta,
            "rows": self.rows,
            "targets": targets,
            "goals": self.goals,
            "errors": self.errors,
        }
        table = render_markdown(report)
        print(table)
        if self.args.json:
            path = Path(self.args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1, default=str))
            log(f"wrote {path}")
        if self.args.markdown:
            Path(self.args.markdown).parent.mkdir(parents=True, exist_ok=True)
            Path(self.args.markdown).write_text(table)
            log(f"wrote {self.args.markdown}")
        if self.errors:
            log(f"{len(self.errors)} case(s) crashed: {', '.join(e['case'] for e in self.errors)}")
            return 1
        return 0


def search_word(db: Path) -> str:
    "A deterministic, fairly common word of the library for the full-text search case"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        titles = [
            r[0] for r in conn.execute("select title from tracks order by rating_key limit 2000")
        ]
    finally:
        conn.close()
    counts: dict[str, int] = {}
    for t in titles:
        for w in re.findall(r"[A-Za-z]{4,}", t or ""):
            counts[w.lower()] = counts.get(w.lower(), 0) + 1
    return max(sorted(counts), key=lambda w: counts[w]) if counts else "love"


# --------------------------------------------------------------------------------------
# machine, targets, table


def machine_info() -> dict:
    import datasette
    import plexapi

    import plexcache

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        if dirty:
            commit += "+dirty"
    from plexcache.simulator import server as sim_server

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "plexapi": plexapi.VERSION,
        "datasette": datasette.__version__,
        "sqlite": sqlite3.sqlite_version,
        "plexcache": f"{plexcache.__version__} ({commit})" if commit else plexcache.__version__,
        "sim_tcp_nodelay": "simulator's own"
        if getattr(sim_server.Handler, "disable_nagle_algorithm", False)
        else "not set",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _m(rows, key, field="seconds"):
    row = rows.get(key)
    if not row:
        return None
    if field in row and not isinstance(row.get(field), dict):
        return row.get(field)
    return (row.get("median") or {}).get(field)


def evaluate_targets(rows: dict, args) -> list[dict]:
    "The issue's targets against the medians; ``met`` is None when not measured"
    out = []

    def add(text, value, met, shown):
        out.append({"target": text, "value": value, "met": met, "shown": shown})

    full = _m(rows, "1")
    naive = _m(rows, "2")
    best = _m(rows, "3")
    if full and naive:
        add(
            "Full sync >= 20x faster than plexapi naive",
            naive / full,
            naive / full >= 20,
            f"{naive / full:.0f}x",
        )
    if _m(rows, "1", "requests") is not None:
        req = _m(rows, "1", "requests")
        add("Full sync in <= 40 HTTP requests", req, req <= 40, f"{req:.0f}")
    if full and best:
        add(
            "Full sync >= 2x faster than plexapi best",
            best / full,
            best / full >= 2,
            f"{best / full:.1f}x",
        )
    full_lat, naive_lat = _m(rows, "5a"), _m(rows, "5b")
    if full_lat and naive_lat:
        add(f"@{LATENCY_MS} ms: full sync >= 100x faster than plexapi naive", naive_lat / full_lat,
            naive_lat / full_lat >= 100, f"{naive_lat / full_lat:.0f}x")  # fmt: skip
    nothing = _m(rows, "4a")
    if nothing is not None:
        req = _m(rows, "4a", "requests")
        add("Incremental, nothing changed: <= 5 requests", req, req <= 5, f"{req:.0f}")
        add("Incremental, nothing changed: < 0.5 s", nothing, nothing < 0.5, f"{nothing:.2f} s")
    changed = _m(rows, "4b")
    if changed is not None and full:
        add("Incremental, 1% changes: < 1/4 of a full sync", changed / full, changed / full < 0.25,
            f"{changed / full:.2f} of full")  # fmt: skip
    if rows.get("8c"):
        req = _m(rows, "8c", "requests")
        add(
            "With the listening history, nothing changed: <= 5 requests",
            req,
            req <= 5,
            f"{req:.0f}",
        )
    for r in (r for r in rows.values() if r.get("p10")):
        name, full_s = r["profile"], r["full"].get("seconds")
        add(
            f"`{name}`: every row equals the ground truth",
            r["exact"],
            r["exact"],
            "yes" if r["exact"] else "no",
        )
        req = r["nothing"].get("requests")
        add(
            f"`{name}`: nothing changed in <= 5 requests",
            req,
            req is not None and req <= 5,
            f"{req}",
        )
        if r.get("naive") and full_s:
            ratio = r["naive"]["seconds"] / full_s
            add(
                f"`{name}`: full sync >= 20x faster than plexapi naive",
                ratio,
                ratio >= 20,
                f"{ratio:.0f}x",
            )
    big = rows.get("6")
    if big:
        secs, rss = _m(rows, "6"), _m(rows, "6", "peak_rss_mb")
        n = args.big
        if secs is not None:
            add(f"{n:,} tracks: full sync < 120 s", secs, secs < 120, f"{secs:.0f} s")
        if rss is not None:
            add(f"{n:,} tracks: peak RSS < 300 MB", rss, rss < 300, f"{rss:.0f} MB")
        small_rss = _m(rows, "1", "peak_rss_mb")
        if rss is not None and small_rss:
            add(f"Memory does not grow with library size (peak RSS {n:,} vs {args.tracks:,})", rss / small_rss,
                rss / small_rss < 1.5, f"{rss:.0f} vs {small_rss:.0f} MB")  # fmt: skip
    st = rows.get("7a-status")
    if st and st.get("p99_ms") is not None:
        add("Status endpoint p99 < 25 ms during a sync (keep-alive)", st["p99_ms"], st["p99_ms"] < 25,
            f"{st['p99_ms']:.1f} ms")  # fmt: skip
    fr = rows.get("7a-status-fresh")
    if fr and fr.get("p99_ms") is not None:
        add("Status endpoint p99 < 25 ms during a sync (new connection per request)", fr["p99_ms"],
            fr["p99_ms"] < 25, f"{fr['p99_ms']:.1f} ms")  # fmt: skip
    pg = rows.get("7b-page")
    if pg and pg.get("p50_ms") is not None:
        add(f"Tracks page (default facets) < 300 ms at {args.big:,} tracks", pg["p50_ms"], pg["p50_ms"] < 300,
            f"{pg['p50_ms']:.0f} ms")  # fmt: skip
    ov = rows.get("7b-overview")
    if ov and ov.get("p50_ms") is not None:
        add(f"Library overview (home page) <= 300 ms at {args.big:,} tracks", ov["p50_ms"], ov["p50_ms"] <= 300,
            f"{ov['p50_ms']:.0f} ms")  # fmt: skip
    live = [r for k, r in rows.items() if k.startswith("9-") and r.get("p50_ms") is not None]
    if live:
        p50 = max(r["p50_ms"] for r in live)
        p99 = max(r["p99_ms"] for r in live)
        add(
            "Live: change -> readable p50 <= 1 s (every kind)",
            p50,
            p50 <= 1000,
            f"{p50:.0f} ms at worst",
        )
        add(
            "Live: change -> readable p99 <= 3 s (every kind)",
            p99,
            p99 <= 3000,
            f"{p99:.0f} ms at worst",
        )
        for r in live:
            per = r["requests_per_change"]
            add(f"Live: <= 2 requests per change ({r['what'].split(': ')[1].split(' ->')[0]})", per, per <= 2,
                f"{per:.2f}")  # fmt: skip
    js = rows.get("7b-json")
    if js and js.get("facets_timed_out") is not None:
        timed_out = js["facets_timed_out"]
        add(f"All default facets computed at {args.big:,} tracks (none timed out)", len(timed_out), not timed_out,
            ", ".join(timed_out) + " timed out" if timed_out else "all computed")  # fmt: skip
    return out


def fmt_num(v, digits=None) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or digits == 0:
        return f"{v:,.0f}"
    if digits is not None:
        return f"{v:,.{digits}f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def render_profiles(rows: dict) -> list[str]:
    "Case 10: one line per simulator profile"
    p10 = [r for r in rows.values() if r.get("p10")]
    if not p10:
        return []
    lines = ["", "| profile | full sync s | full sync requests | no-change requests | 1% change s | 1% change requests "
             "| every row = ground truth | naive plexapi s | naive / full sync |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in p10:
        full, nothing, changed, naive = r["full"], r["nothing"], r["changed"], r.get("naive")
        ratio = (
            f"{naive['seconds'] / full['seconds']:.1f}x" if naive and full.get("seconds") else "-"
        )
        lines.append(
            f"| `{r['profile']}` | {fmt_num(full['seconds'])} | {full['requests']} | {nothing['requests']} | "
            f"{fmt_num(changed['seconds'])} | {changed['requests']} | {'yes' if r['exact'] else 'NO ' + str(r['diff'])} | "
            f"{fmt_num(naive['seconds']) if naive else '-'} | {ratio} |"
        )
    return lines


def render_markdown(report: dict) -> str:
    meta, rows = report["meta"], report["rows"]
    full = _m(rows, "1")
    full_lat = _m(rows, "5a")
    lines = [
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['ram_gb']} GB RAM, {meta['os']}; "
        f"load average {meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after",
        f"Versions: Python {meta['python']}, plexapi {meta['plexapi']}, datasette {meta['datasette']}, "
        f"SQLite {meta['sqlite']}, plexcache {meta['plexcache']}",
        f"Library: {meta['library_tracks']:,} tracks (seed {meta['args']['seed']})"
        + (f"; big library {meta['big_tracks']:,} tracks" if meta.get("big_tracks") else "")
        + f"; medians of {meta['args']['repeat']} runs unless noted; suite took {meta['suite_seconds']:.0f} s; "
        f"{meta['date']}",
        "",
        "| case | measurement | median s (min-max) | HTTP requests | tracks/s | peak RSS MB | vs full sync | runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = {k: i for i, k in enumerate(rows)}
    by_case = sorted(rows, key=lambda k: (rows[k]["case"], order[k]))
    for key in by_case:
        row = rows[key]
        if "p50_ms" in row or row.get("p10"):
            continue
        med = row["median"]
        secs = med.get("seconds")
        spread = (
            f"{fmt_num(secs)} ({fmt_num(row['min_s'])}-{fmt_num(row['max_s'])})"
            if len(row["runs"]) > 1
            else fmt_num(secs)
        )
        ref = full_lat if key.startswith("5") else full
        if key.endswith("-naive") or key.endswith("-raw"):  # goal rows compare with their own sync
            ref = _m(rows, key.rsplit("-", 1)[0])
        elif key.startswith("g"):
            ref = None
        vs = ""
        if secs and ref and key not in ("1", "5a", "6"):
            vs = f"{secs / ref:.1f}x slower" if secs >= ref else f"{secs / ref:.2f} of it"
        what = row["what"]
        if row.get("extrapolated_from"):
            what += f" [measured {row['extrapolated_from']:,} tracks, extrapolated linearly]"
        if key in ("3", "5c"):
            r0 = row["runs"][0] if row["runs"] else {}
            if r0.get("tracks"):
                what += (f"; data read: genres on {r0['with_genres'] / r0['tracks']:.0%}, "
                         f"year on {r0['with_year'] / r0['tracks']:.0%} of tracks")  # fmt: skip
        if key in ("8a", "8b", "8c"):
            what += (f"; history phase {fmt_num(median([r.get('history_seconds') for r in row['runs']]))} s, "
                     f"{fmt_num(median([r.get('history_requests') for r in row['runs']]), 0)} history requests, "
                     f"{fmt_num(median([r.get('plays_added') for r in row['runs']]), 0)} plays added")  # fmt: skip
        lines.append(
            f"| {row['case']} | {what} | {spread} | {fmt_num(med.get('requests'), 0)} | "
            f"{fmt_num(med.get('tracks_per_s'), 0)} | {fmt_num(med.get('peak_rss_mb'), 0)} | {vs} | {len(row['runs'])} |"
        )
    lines += render_profiles(rows)
    web = [(k, rows[k]) for k in by_case if "p50_ms" in rows[k]]
    if web:
        lines += [
            "",
            "| case | measurement | p50 ms | p99 ms | max ms | samples | notes |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for key, r in web:
            notes = []
            if r.get("idle_p50_ms") is not None:
                notes.append(f"idle p50 {fmt_num(r['idle_p50_ms'])} ms")
            if r.get("first_ms") is not None:
                notes.append(f"first (cold) {fmt_num(r['first_ms'])} ms")
            if r.get("facets_timed_out"):
                notes.append("facets timed out: " + ", ".join(r["facets_timed_out"]))
            elif key == "7b-json":
                notes.append("no facet timed out")
            if r.get("is_syncing_fraction") is not None and r.get("all_samples"):
                notes.append(
                    f"only answers given while is_syncing ({r['samples']} of {r.get('all_samples')})"
                )
            if r.get("idle_p99_ms") is not None:
                notes[0] = (
                    f"idle p50 {fmt_num(r['idle_p50_ms'])} ms, p99 {fmt_num(r['idle_p99_ms'])} ms"
                )
            if r.get("error_count"):
                notes.append(f"{r['error_count']} errors")
            if r.get("plugin") is False:
                notes.append("plain Datasette, no plugin")
            if r.get("requests_per_change") is not None:
                notes.append(f"{r['requests_per_change']:.2f} requests per change ({r['syncs']} syncs, "
                             f"{r['live_syncs']} live)")  # fmt: skip
            lines.append(f"| {r['case']} | {r['what']} | {fmt_num(r.get('p50_ms'))} | {fmt_num(r.get('p99_ms'))} | "
                         f"{fmt_num(r.get('max_ms'))} | {r.get('samples')} | {'; '.join(notes)} |")  # fmt: skip
    if report.get("goals"):
        lines += render_goals(report["goals"])
    if report["targets"]:
        lines.append("")
        if meta["args"].get("smoke"):
            lines.append(
                "Smoke run: the goals and targets are for the full sizes; shown for information only."
            )
        lines += ["| target (issue #6) | result | met |", "| --- | --- | --- |"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {t['shown']} | {'yes' if t['met'] else 'NO'} |")
    if report["errors"]:
        lines += [
            "",
            "Crashed cases: " + "; ".join(f"{e['case']}: {e['error']}" for e in report["errors"]),
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tracks", type=int, default=18432, help="library size for cases 1-5 and 7a")
    p.add_argument("--repeat", type=int, default=3, help="runs per case (medians)")
    p.add_argument(
        "--naive-repeat", type=int, default=3, help="runs of case 2 (~18k requests each)"
    )
    p.add_argument(
        "--naive-latency-tracks",
        type=int,
        default=1000,
        help="case 5 naive: measure the first N tracks and extrapolate (0: the whole library)",
    )
    p.add_argument(
        "--cases",
        default="g,1,2,3,4,5,6,7,8,9,10",
        help="comma-separated case numbers; g: issue #17's goals (G1, G2, G5; G3/G4 run with case 6)",
    )
    p.add_argument(
        "--profile", default=REALISTIC, help="simulator profile for every case but G1's others"
    )
    p.add_argument(
        "--goal-profiles",
        default="all",
        help="G1: comma-separated simulator profiles, or 'all' (every profile the simulator has)",
    )
    p.add_argument(
        "--naive-profiles",
        default=f"{REALISTIC},{CLASSIC}",
        help="G1: profiles whose naive loop runs on the whole library (others: --naive-sample tracks)",
    )
    p.add_argument(
        "--naive-sample",
        type=int,
        default=2000,
        help="G1: naive loop on the first N tracks, extrapolated, for the other profiles",
    )
    p.add_argument(
        "--start-repeat", type=int, default=9, help="G5: no-change sync processes (median)"
    )
    p.add_argument(
        "--history-plays",
        type=int,
        default=100_000,
        help="case 8: plays in the simulator's history",
    )
    p.add_argument(
        "--history-new",
        type=int,
        default=1000,
        help="case 8: new plays before the incremental sync",
    )
    p.add_argument("--live-changes", type=int, default=100, help="case 9: changes of each kind")
    p.add_argument(
        "--profiles", default=",".join(ALL_PROFILES), help="simulator profiles of case 10"
    )
    p.add_argument(
        "--profile-naive",
        default="pms-1.41,classic,ignores-exclude",
        help="case 10 profiles that also run the naive plexapi loop (~30-70 s each)",
    )
    p.add_argument("--big", type=int, default=1_000_000, help="library size for cases 6 and 7b")
    p.add_argument("--big-repeat", type=int, default=1)
    p.add_argument("--skip-big", action="store_true", help="skip cases 6 and 7b")
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--plexapi-container-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--status-interval", type=float, default=0.05, help="seconds between status polls (7a)"
    )
    p.add_argument("--idle-samples", type=int, default=50)
    p.add_argument(
        "--sync-nice",
        type=int,
        default=10,
        help="case 7a: run the sync under `nice -n N` (10: as the plugin runs the syncs it starts)",
    )
    p.add_argument("--web-repeat", type=int, default=5)
    p.add_argument("--timeout", type=float, default=600, help="per measurement, seconds")
    p.add_argument("--naive-timeout", type=float, default=1800)
    p.add_argument("--big-timeout", type=float, default=1800)
    p.add_argument("--workdir", help="keep caches here (default: a temp dir, removed at the end)")
    p.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    p.add_argument("--markdown", default=str(HERE / "results" / "latest.md"))
    p.add_argument(
        "--smoke",
        action="store_true",
        help="CI: 500 tracks, one run each, 3,000-track 'big' library, short web sampling",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.tracks = min(args.tracks, 500)
        args.repeat = 1
        args.naive_repeat = 1
        args.naive_latency_tracks = 50
        args.profile_naive = (
            ""  # case 10: no naive loop, three profiles (tests/test_exactness.py runs all)
        )
        if args.profiles == ",".join(ALL_PROFILES):
            args.profiles = "pms-1.41,classic,ignores-exclude"
        args.big = min(args.big, 3000)
        args.history_plays = min(args.history_plays, 3000)
        args.history_new = min(args.history_new, 100)
        args.idle_samples = 5
        args.web_repeat = 2
        args.live_changes = min(args.live_changes, 5)
        args.timeout = args.naive_timeout = args.big_timeout = 120
        args.naive_sample = 100
        args.start_repeat = 3
        if args.goal_profiles == "all":
            args.goal_profiles = f"{REALISTIC},{CLASSIC}"
        if args.json == str(HERE / "results" / "latest.json"):
            args.json = str(HERE / "results" / "smoke.json")
        if args.markdown == str(HERE / "results" / "latest.md"):
            args.markdown = str(HERE / "results" / "smoke.md")
    args.cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    args.goal_profiles = (
        ALL_PROFILES if args.goal_profiles == "all" else args.goal_profiles.split(",")
    )
    args.naive_profiles = args.naive_profiles.split(",")
    args.profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    args.profile_naive = {p.strip() for p in args.profile_naive.split(",") if p.strip()}
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    return Suite(args).run()


if __name__ == "__main__":
    sys.exit(main())
