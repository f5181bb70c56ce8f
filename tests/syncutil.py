"""Helpers shared by the sync tests: snapshots of a cache, CLI runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from plexcache.config import PlexConfig

DATA_TABLES = ("tracks", "albums", "artists")


def config_for(sim) -> PlexConfig:
    return PlexConfig(url=sim.url, token=sim.token, timeout=10)


def snapshot(db_path, tables=DATA_TABLES) -> dict:
    "Every row of the data tables, sorted: equal snapshots mean equal caches"
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        out = {}
        for table in tables:
            try:
                out[table] = sorted(conn.execute(f"select * from {table}").fetchall(), key=repr)
            except sqlite3.OperationalError:
                out[table] = None
        return out
    finally:
        conn.close()


def runs(db_path) -> list[dict]:
    "Rows of sync_runs, oldest first ([] while the cache is still being created)"
    if not os.path.exists(db_path):
        return []
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("select * from sync_runs order by id")]
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        conn.close()


def run_cli(args, sim=None, env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    "Run `python -m plexcache ...` as a real process"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PLEX_", "PLEXAPI_"))}
    full_env["PLEXAPI_CONFIG_PATH"] = "/nonexistent/plexapi.ini"
    if sim is not None:
        full_env["PLEX_URL"] = sim.url
        full_env["PLEX_TOKEN"] = sim.token
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "plexcache", *map(str, args)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=kwargs.pop("cwd", Path(__file__).parent.parent),
        **kwargs,
    )


def make_db(path, *statements) -> Path:
    "A SQLite file at ``path`` after running ``statements`` (for databases that are not caches)"
    conn = sqlite3.connect(path)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()
    return Path(path)


def edit_parent(sim, rng, track: dict, kind: str, genres: list[str]) -> None:
    """A random edit of the track's album (title, genres, live flag, year, or no year) or of its
    artist (name, genres): they change derived track columns without touching the track"""
    if kind == "album":
        album = track["parentRatingKey"]
        change = rng.choice(["title", "genres", "live", "year"])
        if change == "title":
            sim.edit_album(album, title=f"Renamed {rng.randint(1, 99)}")
        elif change == "genres":
            sim.edit_album(album, genres=rng.sample(genres, rng.randint(0, min(4, len(genres)))))
        elif change == "live":
            sim.edit_album(album, subformats=rng.choice([["Live"], [], ["Compilation", "Live"]]))
        else:
            sim.edit_album(album, year=rng.choice([None, rng.randint(1960, 2024)]))
    else:
        artist = track["grandparentRatingKey"]
        if rng.random() < 0.5:
            sim.edit_artist(artist, title=f"Artist {rng.randint(1, 999)}")
        else:
            sim.edit_artist(artist, genres=rng.sample(genres, rng.randint(0, min(3, len(genres)))))
