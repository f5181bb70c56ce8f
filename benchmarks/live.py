"""Case 9 (issue #15): the live cache. How long from a change on the simulated Plex server
to the change being readable in the cache, with `plexcache watch` running, and how many
requests each change costs.

A `plexcache watch` process (default settings) follows the simulator's notification
websocket; this process makes one change at a time through the simulator's admin API
(not counted, no latency) and polls the cache file read-only every few milliseconds
until the change shows. Per kind of change: p50, p99 and max of those times, and the
requests the watcher made for the whole series (its live syncs and the incremental
syncs that scans trigger, waited for at the end) divided by the number of changes.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
from pathlib import Path

KINDS = ("edit", "play", "rating", "add", "delete", "album edit", "artist edit")
POLL_S = 0.005


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def _one(db: Path, sql: str, args=()):
    conn = _ro(db)
    try:
        return conn.execute(sql, args).fetchone()
    finally:
        conn.close()


class Live:
    def __init__(self, suite, sim, db: Path, changes: int, rng: random.Random):
        self.suite, self.sim, self.db, self.changes, self.rng = suite, sim, db, changes, rng
        self.proc: subprocess.Popen | None = None

    def start(self, py: str, token: str, env: dict, root: Path, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [py, "-m", "plexcache", "watch", "--db", str(self.db), "--url", self.sim.url, "--token", token, "--quiet"],
            env=env, cwd=str(root), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            row = (
                _one(self.db, "select state from watch_state where id = 1")
                if self.db.exists()
                else None
            )
            runs = _one(
                self.db,
                "select count(*) from sync_runs where trigger = 'watch' and status = 'succeeded'",
            )
            if row and row[0] == "connected" and runs and runs[0]:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"plexcache watch did not connect: {self.proc.stderr.read().decode()[-500:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def last_run(self) -> int:
        return _one(self.db, "select coalesce(max(id), 0) from sync_runs")[0]

    def scan_sync(self, after: int, timeout: float = 90.0) -> None:
        "The incremental sync a scan leads to (10 s after the last scan ended), finished"
        deadline = time.monotonic() + timeout
        sql = ("select count(*) from sync_runs where id > ? and mode = 'incremental' and trigger = 'watch' "
               "and status != 'running'")  # fmt: skip
        while not (_one(self.db, sql, (after,))[0] and not _one(
                self.db, "select count(*) from sync_runs where status = 'running'")[0]):  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError("the incremental sync after a scan never came")
            time.sleep(0.1)

    def wait(self, check, timeout: float = 30.0) -> float:
        t0 = time.perf_counter()
        while not check():
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError("a change never reached the cache")
            time.sleep(POLL_S)
        return time.perf_counter()

    # -- one change of each kind: (make it, is it readable?) -------------------------------

    def change(self, kind: str, i: int):
        sim, db = self.sim, self.db
        if kind == "edit":
            key = self.rng.choice(self.keys)
            title = f"Live edit {i} {self.rng.randrange(10**6)}"
            return (
                lambda: sim.mutate("edit_track", key=key, title=title),
                lambda: (
                    _one(db, "select title from tracks where rating_key = ?", (key,)) == (title,)
                ),
            )
        if kind == "play":
            key = self.rng.choice(self.keys)
            before = _one(db, "select play_count from tracks where rating_key = ?", (key,))[0]
            return (
                lambda: sim.mutate("play_track", key=key),
                lambda: (
                    _one(db, "select play_count from tracks where rating_key = ?", (key,))
                    == (before + 1,)
                ),
            )
        if kind == "rating":
            key = self.rng.choice(self.keys)
            old = _one(db, "select user_rating from tracks where rating_key = ?", (key,))[0]
            value = self.rng.choice([v for v in (2, 4, 6, 8, 10) if v != old])
            return (
                lambda: sim.mutate("rate_track", key=key, rating=value),
                lambda: (
                    _one(db, "select user_rating from tracks where rating_key = ?", (key,))
                    == (value,)
                ),
            )
        if kind == "add":
            box = {}
            return (lambda: box.setdefault("keys", sim.mutate("add_tracks", n=1)),
                    lambda: "keys" in box and _one(db, "select count(*) from tracks where rating_key = ?",
                                                   (str(box["keys"][0]),)) == (1,))  # fmt: skip
        if kind == "delete":
            key = self.keys.pop(self.rng.randrange(len(self.keys)))
            return (
                lambda: sim.mutate("delete_tracks", keys=[key]),
                lambda: (
                    _one(db, "select count(*) from tracks where rating_key = ?", (key,)) == (0,)
                ),
            )
        if kind == "album edit":
            album = self.rng.choice(self.albums)
            title = f"Live album {i} {self.rng.randrange(10**6)}"
            return (lambda: sim.mutate("edit_album", key=album, title=title),
                    lambda: _one(db, "select count(*) from tracks where album_rating_key = ? and album != ?",
                                 (album, title)) == (0,) and _one(db, "select title from albums where rating_key = ?",
                                                                   (album,)) == (title,))  # fmt: skip
        if kind == "artist edit":
            artist = self.rng.choice(self.artists)
            name = f"Live artist {i} {self.rng.randrange(10**6)}"
            return (lambda: sim.mutate("edit_artist", key=artist, title=name),
                    lambda: _one(db, "select name from artists where rating_key = ?", (artist,)) == (name,)
                    and _one(db, "select count(*) from tracks where artist_rating_key = ? and album_artist != ?",
                             (artist, name)) == (0,))  # fmt: skip
        raise ValueError(kind)

    def load(self) -> None:
        conn = _ro(self.db)
        try:
            self.keys = [r[0] for r in conn.execute("select rating_key from tracks")]
            self.albums = [r[0] for r in conn.execute("select rating_key from albums")]
            self.artists = [r[0] for r in conn.execute("select rating_key from artists")]
        finally:
            conn.close()

    def run(self) -> dict:
        out = {}
        for kind in KINDS:
            self.load()
            self.sim.advance_clock(5)
            self.sim.reset_stats()
            first = self.last_run()
            times = []
            for i in range(self.changes):
                make, done = self.change(kind, i)
                before_last = self.last_run()
                t0 = time.perf_counter()
                make()
                times.append((self.wait(done) - t0) * 1000)
            if kind in (
                "add",
                "delete",
            ):  # each change was a scan: count the incremental sync after it too
                self.scan_sync(before_last)
            time.sleep(0.3)
            stats = self.sim.stats()
            runs = _one(
                self.db, "select count(*), sum(mode = 'live') from sync_runs where id > ?", (first,)
            )
            out[kind] = {"times_ms": times, "requests": stats["total_requests"], "request_counts": stats["request_counts"],
                         "syncs": runs[0], "live_syncs": runs[1] or 0}  # fmt: skip
        return out
