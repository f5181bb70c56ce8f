"""What a sync costs before it starts (issue #17): the schema step writes the
same SQL sqlite-utils would, without importing it, and a `plexcache sync`
process imports nothing heavy it does not use. Real SQLite files, a real
simulator over HTTP, real processes."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys

import pytest
import sqlite_utils

from plexcache.db import open_cache
from plexcache.schema import FTS_COLUMNS, INDEXES, TABLES_SQL, VIEWS

HEAVY = (
    "pandas",
    "numpy",
    "sqlite_utils",
    "tenacity",
    "pickle",
    "subprocess",
)  # the last two: plex/reader.py


def shape(conn: sqlite3.Connection) -> set[tuple]:
    "Every index, FTS table, trigger and view sqlite-utils makes for the spec, as stored"
    names = {f"idx_{t}_{'_'.join(c)}" for t, cols in INDEXES.items() for c in cols}
    names |= {"tracks_fts", "tracks_ai", "tracks_ad", "tracks_au", *VIEWS}
    return {
        row
        for row in conn.execute("select type, name, tbl_name, sql from sqlite_master")
        if row[1] in names
    }


def test_the_schema_step_writes_what_sqlite_utils_writes(tmp_path):
    """ensure_shape no longer imports sqlite-utils (with pandas installed it
    costs ~0.4 s and ~40 MB); caches made either way must stay identical"""
    ours = open_cache(tmp_path / "ours.db")
    db = sqlite_utils.Database(tmp_path / "theirs.db")
    for sql in TABLES_SQL.values():
        db.conn.execute(sql)
    for table, index_list in INDEXES.items():
        for columns in index_list:
            db[table].create_index(columns, if_not_exists=True)
    db["tracks"].enable_fts(FTS_COLUMNS, create_triggers=True, tokenize="unicode61", replace=True)
    for name, sql in VIEWS.items():
        db.create_view(name, sql.strip(), replace=True)
    expected = shape(db.conn)
    assert len(expected) == sum(map(len, INDEXES.values())) + 4 + len(VIEWS)
    assert shape(ours) == expected
    ours.close()


SYNC_TWICE = """
import json, sys
from plexcache.cli import cli
for _ in range(2):
    try:
        cli(["sync", "--db", sys.argv[1], "--url", sys.argv[2], "--token", sys.argv[3], "-q"], standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[4].split(",")))))
"""


def test_a_sync_imports_nothing_heavy(tmp_path, sim):
    "A first sync and a no-change sync, in one process: no pandas, numpy, sqlite-utils, tenacity, nor the reader's pickle and subprocess"
    env = {k: v for k, v in os.environ.items() if k not in ("PLEX_URL", "PLEX_TOKEN")}
    out = subprocess.run(
        [sys.executable, "-c", SYNC_TWICE, str(tmp_path / "c.db"), sim.url, sim.token, ",".join(HEAVY)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    conn = sqlite3.connect(tmp_path / "c.db")
    assert (
        conn.execute("select count(*) from sync_runs where status = 'succeeded'").fetchone()[0] == 2
    )
    conn.close()


def test_the_command_freezes_the_heap_as_it_exits(tmp_path, monkeypatch):
    """``plexcache`` (console script and ``python -m``) is ``cli.main``: the
    exit code is click's, and the objects are frozen before the interpreter's
    last collections (a sixth of a no-change sync, docs/performance.md)"""
    from importlib.metadata import entry_points

    from plexcache.cli import main

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "plexcache"]
    assert script.value == "plexcache.cli:main"
    monkeypatch.setattr(
        sys, "argv", ["plexcache", "sync", "--db", str(tmp_path / "c.db"), "--url", "ftp://x"]
    )
    monkeypatch.delenv("PLEX_TOKEN", raising=False)
    assert gc.get_freeze_count() == 0
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 2
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this process goes on
