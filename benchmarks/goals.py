"""Issue #17's goals, each measured as a ratio inside one run of ``run.py``.

- **G1** full sync vs the naive plexapi loop, same simulator, same run, on
  every profile: the naive loop on the whole library for ``--naive-profiles``
  (realistic and classic by default), on its first ``--naive-sample`` tracks
  (extrapolated, labelled) for the other profiles; every cache checked against
  the simulator's ground truth (``truth.diff_cache``).
- **G2** the same at ``GOAL_LATENCY_MS`` per request (realistic profile).
- **G3** the big library (case 6): the full sync's wall time against a raw
  client replaying exactly the requests the sync made (recorded by the sync's
  worker), with as many requests in flight as the sync had, bodies discarded.
- **G4** the peak RSS of that sync (and of the small library's, for growth).
- **G5** a no-change ``plexcache sync`` as a whole process, imports included,
  and which heavy modules a sync imports (``python -X importtime``).

``Goals(suite)`` adds rows to ``suite.rows`` and verdicts to ``suite.goals``.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_LATENCY_MS = 5
NAIVE_RATIO = 30  # G1
LATENCY_RATIO = 100  # G2
RAW_RATIO = 1.3  # G3
PEAK_RSS_MB = 150  # G4
START_SECONDS = 0.25  # G5
UNWANTED_MODULES = (
    "pandas",
    "numpy",
    "sqlite_utils",
    "tenacity",
)  # a sync that changes nothing needs none


def verdict(goal: str, measured, target, met, shown: str, detail: str = "") -> dict:
    return {
        "goal": goal,
        "measured": measured,
        "target": target,
        "met": met,
        "shown": shown,
        "detail": detail,
    }


class Goals:
    def __init__(self, suite, sim_cls, token: str, log):
        self.suite = suite
        self.args = suite.args
        self.Sim = sim_cls
        self.token = token
        self.log = log

    # -- helpers

    def exactness(self, sim, db: Path) -> dict:
        "rows that differ from the simulator's ground truth, per table and column"
        from plexcache.simulator.truth import diff_cache

        diff = diff_cache(db, sim.query("expected_cache"))
        return {table: counts for table, counts in diff.items() if counts}

    def full_sync(self, sim, key: str, what: str, repeat: int, check: bool = True) -> dict:
        s = self.suite
        runs, db = [], None
        for i in range(repeat):
            db = s.fresh_db(f"{key}-{i}")
            r = s.measure(sim, s.sync_argv(sim, db), self.args.timeout)
            if check:
                r["diff"] = self.exactness(sim, db)
            runs.append(r)
        row = s.row(key, "G", what, runs)
        row["db"] = str(db)
        row["diff"] = next((r["diff"] for r in runs if r.get("diff")), {}) if check else None
        return row

    # -- G1 and G2

    def g1(self, sim, profiles: list[str]) -> None:
        a = self.args
        for profile in profiles:
            sim.admin("profile", {"name": profile})
            whole = profile in a.naive_profiles
            sync = self.full_sync(
                sim,
                f"g1-{profile}",
                f"G1 full sync, {a.tracks:,} tracks, profile {profile}",
                a.repeat,
            )
            limit = 0 if whole else a.naive_sample
            label = f"G1 plexapi naive, profile {profile}" + (
                f" (first {limit:,} tracks, extrapolated)" if limit else ""
            )
            self.suite.naive(sim, f"g1-{profile}-naive", "G", label, 1, limit=limit)
            naive = self.suite.rows[f"g1-{profile}-naive"]["median"]["seconds"]
            full = sync["median"]["seconds"]
            ratio = naive / full
            diff = sync["diff"]
            met = ratio >= NAIVE_RATIO and not diff
            shown = f"{ratio:.1f}x ({full:.2f} s vs {naive:.1f} s{', naive extrapolated' if limit else ''})"
            shown += "; exact" if not diff else f"; NOT exact: {diff}"
            self.suite.goals.append(verdict(f"G1 >= {NAIVE_RATIO}x naive plexapi, {a.tracks:,} tracks, {profile}",
                                            ratio, NAIVE_RATIO, met, shown))  # fmt: skip
            sync["naive_ratio"] = ratio

    def g2(self, sim, profile: str) -> None:
        a = self.args
        sim.admin("profile", {"name": profile})
        sim.set_latency(GOAL_LATENCY_MS)
        try:
            lat = f"@{GOAL_LATENCY_MS} ms/request"
            sync = self.full_sync(sim, "g2", f"G2 full sync {lat}, profile {profile}", a.repeat)
            limit = a.naive_latency_tracks
            label = f"G2 plexapi naive {lat}" + (
                f" (first {limit:,} tracks, extrapolated)" if limit else ""
            )
            self.suite.naive(sim, "g2-naive", "G", label, 1, limit=limit)
        finally:
            sim.set_latency(0)
        naive = self.suite.rows["g2-naive"]["median"]["seconds"]
        full = sync["median"]["seconds"]
        ratio = naive / full
        diff = sync["diff"]
        shown = (
            f"{ratio:.0f}x ({full:.2f} s vs {naive:.0f} s{', naive extrapolated' if limit else ''})"
        )
        shown += "; exact" if not diff else f"; NOT exact: {diff}"
        self.suite.goals.append(verdict(f"G2 >= {LATENCY_RATIO}x naive at {GOAL_LATENCY_MS} ms per request, {profile}",
                                        ratio, LATENCY_RATIO, ratio >= LATENCY_RATIO and not diff, shown))  # fmt: skip

    # -- G3 and G4 (run from case 6)

    def big(self, sim, db: Path, n: int) -> None:
        "The big full sync with its requests recorded, then the raw replay, same simulator"
        a, s = self.args, self.suite
        record = db.parent / "requests.jsonl"
        runs = []
        for _ in range(a.big_repeat):
            if db.exists():
                for p in db.parent.glob(db.name + "*"):
                    p.unlink()
            argv = s.sync_argv(sim, db) + ["--record", str(record)]
            runs.append(s.measure(sim, argv, a.big_timeout))
        sync = s.row("6", "6", f"Full sync, {n:,} tracks (requests recorded)", runs)
        raws = []
        for _ in range(a.big_repeat):
            argv = [
                "raw",
                "--replay",
                str(record),
                "--connections",
                str(runs[-1].get("max_in_flight") or 1),
            ]
            raws.append(s.measure(sim, argv, a.big_timeout))
        raw = s.row("6-raw", "6", f"Raw client: the same {sync['runs'][-1].get('recorded', 0):,} requests, bodies discarded",
                    raws)  # fmt: skip
        full, dl = sync["median"]["seconds"], raw["median"]["seconds"]
        ratio = full / dl
        r0 = raws[-1]
        shown = (f"{ratio:.2f}x ({full:.1f} s vs {dl:.1f} s; {r0.get('connections')} connections, "
                 f"{r0.get('bytes', 0) / 2**20:,.0f} MB)")  # fmt: skip
        s.goals.append(verdict(f"G3 full sync <= {RAW_RATIO}x a raw download of its requests, {n:,} tracks",
                               ratio, RAW_RATIO, ratio <= RAW_RATIO, shown))  # fmt: skip
        peak = sync["median"]["peak_rss_mb"]
        small = next((r["median"]["peak_rss_mb"] for k, r in s.rows.items() if k.startswith("g1-") and
                      not k.endswith("-naive") and r["median"].get("peak_rss_mb")), None)  # fmt: skip
        if small is None and s.rows.get("1"):
            small = s.rows["1"]["median"].get("peak_rss_mb")
        shown = f"{peak:.0f} MB" + (f" (small library {small:.0f} MB)" if small else "")
        s.goals.append(verdict(f"G4 peak RSS <= {PEAK_RSS_MB} MB at {n:,} tracks", peak, PEAK_RSS_MB,
                               peak <= PEAK_RSS_MB, shown))  # fmt: skip

    # -- G5

    def g5(self, sim, db: Path) -> None:
        a, s = self.args, self.suite
        exe = Path(sys.executable).with_name("plexcache")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "plexcache"]
        cmd += ["sync", "--db", str(db), "--url", sim.url, "--token", self.token, "-q"]
        env = dict(os.environ)
        # What a user's second run sees: bytecode cached (a dev shell may forbid writing it)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PLEX_URL", None)
        env.pop("PLEX_TOKEN", None)
        subprocess.run(
            cmd, env=env, check=True, capture_output=True, timeout=120
        )  # warm: .pyc written
        walls, cpus = [], []
        for _ in range(a.start_repeat):
            before = os.times()
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
            walls.append(time.perf_counter() - t0)
            after = os.times()
            cpus.append(
                after.children_user
                + after.children_system
                - before.children_user
                - before.children_system
            )
        imported = self.heavy_imports(
            [sys.executable, "-X", "importtime", "-m", "plexcache", *cmd[-8:]], env
        )
        fresh = s.fresh_db("g5-fresh")
        fresh_cmd = [sys.executable, "-X", "importtime", "-m", "plexcache", "sync", "--db", str(fresh), "--url",
                     sim.url, "--token", self.token, "-q"]  # fmt: skip
        imported_fresh = self.heavy_imports(fresh_cmd, env)
        wall = statistics.median(walls)
        s.rows["g5"] = {
            "case": "G", "what": "G5 `plexcache sync`, nothing changed, whole process (imports included)",
            "runs": [{"seconds": w, "cpu_s": c} for w, c in zip(walls, cpus, strict=True)],
            "median": {"seconds": wall, "client_cpu_s": statistics.median(cpus)},
            "min_s": min(walls), "max_s": max(walls), "imported": imported, "imported_first_sync": imported_fresh,
        }  # fmt: skip
        self.log(f"  g5: median {wall:.3f}s wall, {statistics.median(cpus):.3f}s CPU; heavy imports: "
                 f"{imported or 'none'} (first sync: {imported_fresh or 'none'})")  # fmt: skip
        shown = f"{wall:.3f} s (CPU {statistics.median(cpus):.3f} s, min {min(walls):.3f} s)"
        heavy = sorted(set(imported) | set(imported_fresh))
        shown += (
            "; imports none of " + "/".join(UNWANTED_MODULES)
            if not heavy
            else f"; imports {', '.join(heavy)}"
        )
        s.goals.append(verdict(f"G5 no-change `plexcache sync` <= {START_SECONDS} s as a process, no heavy imports",
                               wall, START_SECONDS, wall <= START_SECONDS and not heavy, shown))  # fmt: skip

    @staticmethod
    def heavy_imports(cmd: list[str], env: dict) -> list[str]:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        found = set()
        for line in out.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", line)
            if m and m.group(1).split(".")[0] in UNWANTED_MODULES:
                found.add(m.group(1).split(".")[0])
        return sorted(found)

    # -- the small-library goals, on one simulator

    def run_small(self) -> None:
        a = self.args
        with self.Sim(a.tracks, seed=a.seed, profile=a.profile) as sim:
            self.log(f"goals: simulator {a.tracks:,} tracks at {sim.url}")
            try:
                self.suite.guarded("g1", lambda: self.g1(sim, a.goal_profiles))
                self.suite.guarded("g2", lambda: self.g2(sim, a.profile))
                sim.admin("profile", {"name": a.profile})
                db = self.suite.rows.get(f"g1-{a.profile}", {}).get("db")
                if db and Path(db).exists():
                    sim.advance_clock(600)
                    self.suite.guarded("g5", lambda: self.g5(sim, Path(db)))
            finally:
                sim.admin("profile", {"name": a.profile})


def render_goals(goals: list[dict]) -> list[str]:
    if not goals:
        return []
    lines = ["", "| goal (issue #17) | measured | met |", "| --- | --- | --- |"]
    for g in goals:
        lines.append(f"| {g['goal']} | {g['shown']} | {'met' if g['met'] else 'MISSED'} |")
    return lines
