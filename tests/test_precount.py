"""``plexcache.precount``: the subtract/add/recount mechanism ``facet_counts``
and ``overview`` share, driven on its own with a third precount (tracks per
album and liveness) over a real cache file."""

from __future__ import annotations

import json
import sqlite3

import pytest

from plexcache.db import open_cache
from plexcache.precount import Precount


def _counts_sql(schema, keys_sql):
    where = "" if keys_sql is None else f" where rating_key in ({keys_sql})"
    return f"select album, is_live as live, count(*) as n from {schema}.tracks{where} group by album, is_live"


ALBUMS = Precount(
    "album_counts",
    counts="album_counts",
    state="album_counts_state",
    keys=("album", "live"),
    counts_sql=_counts_sql,
    stale_on=("album", "is_live"),
    prune="true",
    tables_sql={
        "album_counts": "CREATE TABLE album_counts (album TEXT, live INTEGER, n INTEGER NOT NULL, "
        "PRIMARY KEY (album, live))",
        "album_counts_state": "CREATE TABLE album_counts_state (id INTEGER PRIMARY KEY, status TEXT NOT NULL, "
        "total INTEGER NOT NULL, counted_at TEXT)",
    },
)
KEYS_SQL = "select value from json_each(?)"


@pytest.fixture
def conn(tmp_path):
    open_cache(tmp_path / "cache.db").close()
    conn = sqlite3.connect(tmp_path / "cache.db", isolation_level=None)
    for i in range(10):
        insert(conn, f"k{i}", album=f"A{i % 3}", is_live=i % 2)
    yield conn
    conn.close()


def insert(conn, key, album, is_live=0):
    conn.execute(
        "insert into tracks (rating_key, title, artist, album, is_live) values (?, ?, ?, ?, ?)",
        (key, f"t {key}", "Artist", album, is_live),
    )


def transaction(conn, fn):
    conn.execute("begin immediate")
    fn()
    conn.execute("commit")


def maintained(conn, keys, write):
    "subtract, write, add: one transaction, as the sync's apply does"
    params = (json.dumps(keys),)

    def apply():
        ALBUMS.subtract(conn, KEYS_SQL, params)
        write()
        ALBUMS.add(conn, KEYS_SQL, params)

    transaction(conn, apply)


def status(conn):
    return conn.execute("select status, total from album_counts_state").fetchone()


def marked(conn):
    return conn.execute(
        "select 1 from temp.sqlite_master where name = 'album_counts_applying'"
    ).fetchone()


def test_create_recount_and_deltas_keep_the_counts_right(conn):
    assert ALBUMS.create(conn) is True  # never counted: the caller recounts
    transaction(conn, lambda: ALBUMS.recount(conn))
    assert ALBUMS.create(conn) is False
    assert (
        ALBUMS.stored(conn)
        == ALBUMS.live(conn)
        == {
            ("A0", 0): 2,
            ("A0", 1): 2,
            ("A1", 0): 1,
            ("A1", 1): 2,
            ("A2", 0): 2,
            ("A2", 1): 1,
        }
    )
    assert status(conn) == ("current", 10)
    assert ALBUMS.read_state(conn)["counted_at"]

    def write():
        conn.execute("update tracks set album = 'B' where rating_key in ('k0', 'k1')")
        conn.execute("delete from tracks where album = 'A2'")  # its last tracks: its rows go
        insert(conn, "new", "B", 1)

    maintained(conn, ["k0", "k1", "k2", "k5", "k8", "new"], write)
    assert (
        ALBUMS.stored(conn)
        == ALBUMS.live(conn)
        == {
            ("A0", 0): 1,
            ("A0", 1): 2,
            ("A1", 0): 1,
            ("A1", 1): 1,
            ("B", 0): 1,
            ("B", 1): 2,
        }
    )
    assert status(conn) == ("current", 8)
    assert not marked(conn)


def test_a_write_behind_its_back_is_caught(conn):
    ALBUMS.create(conn)
    transaction(conn, lambda: ALBUMS.recount(conn))
    # a notebook (or an older plexcache) writes without the deltas: the triggers
    conn.execute("update tracks set is_live = 1 where rating_key = 'k0'")
    assert status(conn) == ("stale", 10)
    conn.execute("delete from album_counts_state")
    ALBUMS.recount(conn)
    insert(conn, "k99", "A0")
    assert status(conn) == ("stale", 10)
    # the next maintained apply does not trust them: subtract leaves them, add recounts
    maintained(
        conn, ["k3"], lambda: conn.execute("update tracks set album = 'C' where rating_key = 'k3'")
    )
    assert status(conn) == ("current", 11)
    assert ALBUMS.stored(conn) == ALBUMS.live(conn)


def test_a_rollback_keeps_the_counts_and_leaves_no_mark(conn):
    ALBUMS.create(conn)
    transaction(conn, lambda: ALBUMS.recount(conn))
    before = ALBUMS.stored(conn)
    conn.execute("begin immediate")
    ALBUMS.subtract(conn, KEYS_SQL, ('["k1", "k2"]',))
    assert status(conn)[0] == "applying" and marked(conn)
    conn.execute("delete from tracks where rating_key in ('k1', 'k2')")
    conn.execute("rollback")
    assert (ALBUMS.stored(conn), status(conn), marked(conn)) == (before, ("current", 10), None)
    # add without a subtract on this connection recounts instead of adding twice
    transaction(conn, lambda: (insert(conn, "x", "A0"), ALBUMS.add(conn, KEYS_SQL, ('["x"]',))))
    assert ALBUMS.stored(conn) == ALBUMS.live(conn) and status(conn) == ("current", 11)


def test_resetting_sync_state_marks_them_stale(conn):
    ALBUMS.create(conn)
    transaction(conn, lambda: ALBUMS.recount(conn))
    conn.execute("insert or ignore into sync_state (id) values (1)")
    assert status(conn)[0] == "current"
    conn.execute("delete from sync_state")  # what `plexcache reset` does
    assert status(conn)[0] == "stale"
