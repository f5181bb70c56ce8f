"""The apply on plain data: staged rows written into a real SQLite cache
(a temporary file), no server. Derived columns, deletions and the
mass-delete guard, orphans, facet counts, sections and sync_state, each
checked with exact values."""

from __future__ import annotations

import pytest

from plexcache import facet_counts
from plexcache.columns import ALBUMS, ARTISTS, STAGE_TRACK_COLUMNS
from plexcache.db import open_cache
from plexcache.plex import Section
from plexcache.sync import apply
from plexcache.sync.plan import CachedSection, SectionPlan, SyncPlan
from plexcache.sync.stage import Stage

MUSIC = Section(1, "uuid-1", "Music", "artist", 1000)
JAZZ = Section(2, "uuid-2", "Jazz", "artist", 2000)
SYNCED_AT = "2026-02-05T10:30:00Z"
LATER = "2026-02-06T08:00:00Z"
FINISHED = "2026-02-06T08:01:00Z"


class Cache:
    "A cache file with a staging database attached, filled with plain rows"

    def __init__(self, path):
        self.path = path
        self.conn = open_cache(path)
        self.stage = Stage(self.conn, path)

    def begin(self):
        "A fresh staging database, as a sync opens it"
        self.stage.open()
        return self

    def track(self, key: int, *, section=1, album_key=100, artist_key=10, **values):
        row = dict.fromkeys(STAGE_TRACK_COLUMNS)
        row.update(
            rating_key=str(key),
            title=f"Track {key}",
            album_rating_key=str(album_key) if album_key else None,
            artist_rating_key=str(artist_key) if artist_key else None,
            section_id=section,
            play_count=0,
            skip_count=0,
            listed_genres=None,  # as staged from a full item
        )
        row.update(values)
        self.stage.add_tracks([tuple(row[c] for c in STAGE_TRACK_COLUMNS)])
        return self

    def album(self, key: int, *, artist_key=10, section=1, **values):
        row = dict.fromkeys(ALBUMS.names)
        row.update(
            rating_key=str(key),
            title=f"Album {key}",
            artist_rating_key=str(artist_key),
            section_id=section,
        )
        row.update(genres="[]", subformats="[]", is_live=0)
        row.update(values)
        self.stage.add_items([row], [])
        return self

    def artist(self, key: int, name: str, *, section=1, **values):
        row = dict.fromkeys(ARTISTS.names)
        row.update(rating_key=str(key), name=name, genres="[]", section_id=section)
        row.update(values)
        self.stage.add_items([], [row])
        return self

    def apply(
        self,
        *sections,
        scanned=(),
        previous=None,
        replacing=False,
        allow_mass_delete=False,
        server_id="server-a",
    ):
        "One apply, committed, as the sync runs it: returns its Changes"
        plans = tuple(
            SectionPlan(section=s, incremental=False, previous=(previous or {}).get(s.id))
            for s in sections
        )
        plan = SyncPlan(sections=plans, server_id=server_id, replacing=replacing, server_time=0)
        with apply.transaction(self.conn):
            changes = apply.apply_staged(
                self.conn, plan, list(scanned), allow_mass_delete=allow_mass_delete, synced_at=LATER
            )
            apply.write_sync_state(self.conn, server_id, FINISHED, 1234)
        self.stage.drop()
        return changes

    def rows(self, sql, *params):
        return [tuple(r) for r in self.conn.execute(sql, params)]

    def keys(self, table="tracks"):
        return [
            r[0]
            for r in self.rows(
                f"select rating_key from {table} order by cast(rating_key as integer)"
            )
        ]


@pytest.fixture
def cache(tmp_path):
    c = Cache(tmp_path / "library_cache.db")
    yield c
    c.stage.drop()
    c.conn.close()


def ten_tracks(cache: Cache) -> Cache:
    "10 tracks in 'Music', all listed (a first full sync)"
    cache.begin().artist(10, "Björk", genres='["Electronic"]').album(
        100, title="Homogenic", year=1997
    )
    for key in range(1, 11):
        cache.track(key)
    cache.stage.mark_listed(1)
    cache.apply(MUSIC, scanned=[1])
    return cache


def test_first_apply_derives_columns_from_albums_and_artists(cache):
    cache.begin()
    cache.artist(10, "Björk", genres='["Electronic"]')
    cache.album(
        100, title="Homogenic", year=1997, genres='["Art Pop"]', is_live=1, artist="(listed name)"
    )
    cache.album(101, title="Debut", year=1993)
    cache.track(1, album_title="listed album", album_artist="listed artist", own_year=1998)
    cache.track(2, album_key=101, own_genres='["Dance"]', track_artist="Guest")
    cache.track(
        3,
        album_key=None,
        artist_key=None,
        album_title="Loose",
        album_artist="Someone",
        parent_year=2001,
    )
    cache.stage.mark_listed(1)
    changes = cache.apply(MUSIC, scanned=[1])
    assert changes == apply.Changes(added=3, updated=0, removed=0, warning=None)
    assert cache.rows(
        "select rating_key, artist, album, year, genres, is_live, album_artist, track_artist from tracks order by rating_key"
    ) == [
        ("1", "Björk", "Homogenic", 1998, '["Art Pop"]', 1, "Björk", None),
        ("2", "Guest", "Debut", 1993, '["Dance"]', 0, "Björk", "Guest"),
        ("3", "Someone", "Loose", 2001, "[]", 0, "Someone", None),
    ]
    # the album's artist name follows the artist row
    assert cache.rows("select rating_key, artist from albums order by rating_key") == [
        ("100", "Björk"),
        ("101", "Björk"),
    ]
    assert cache.rows(
        "select id, uuid, title, content_changed_at, track_count, synced_at from sections"
    ) == [(1, "uuid-1", "Music", 1000, 3, LATER)]
    assert cache.rows(
        "select id, plex_server_id, last_sync_at, track_count, sync_duration_ms from sync_state"
    ) == [(1, "server-a", FINISHED, 3, 1234)]
    assert facet_counts.is_current(cache.conn)
    assert facet_counts.stored_counts(cache.conn) == facet_counts.live_counts(cache.conn)


def test_unchanged_rows_are_not_counted_as_updated(cache):
    ten_tracks(cache)
    cache.begin().track(1).track(2).track(3, title="Renamed")
    assert cache.apply(MUSIC) == apply.Changes(added=0, updated=1, removed=0)
    assert cache.rows("select title from tracks where rating_key = '3'") == [("Renamed",)]


def test_unseen_tracks_of_a_scanned_section_are_deleted(cache):
    ten_tracks(cache)
    cache.begin()
    cache.stage.add_seen([str(k) for k in range(1, 8)], 1)
    assert cache.apply(MUSIC, scanned=[1]) == apply.Changes(added=0, updated=0, removed=3)
    assert cache.keys() == [str(k) for k in range(1, 8)]
    assert cache.rows("select track_count from sections") == [(7,)]


def test_a_section_not_scanned_loses_only_what_was_found_gone(cache):
    ten_tracks(cache)
    cache.begin()
    cache.stage.add_gone(["4", "99"])  # 99: never cached
    assert cache.apply(MUSIC).removed == 1
    assert "4" not in cache.keys() and len(cache.keys()) == 9


def test_mass_delete_guard_more_than_half(cache):
    ten_tracks(cache)
    previous = {1: CachedSection(1, "uuid-1", 1000, SYNCED_AT)}
    cache.begin()
    cache.stage.add_seen(["1", "2", "3", "4"], 1)
    changes = cache.apply(MUSIC, scanned=[1], previous=previous)
    assert changes == apply.Changes(
        added=0,
        updated=0,
        removed=0,
        warning="not removing 6 tracks: that is more than half of the cache (10 tracks); "
        "run again with --allow-mass-delete if this is intended",
    )
    assert len(cache.keys()) == 10
    # its change marker is forgotten (the next sync looks again); its sync time kept
    assert cache.rows("select content_changed_at, synced_at from sections") == [(None, SYNCED_AT)]


def test_mass_delete_guard_half_is_allowed(cache):
    ten_tracks(cache)
    cache.begin()
    cache.stage.add_seen([str(k) for k in range(1, 6)], 1)
    changes = cache.apply(MUSIC, scanned=[1])
    assert changes.removed == 5 and changes.warning is None


def test_mass_delete_guard_section_listed_empty(cache):
    ten_tracks(cache)
    cache.begin()
    for key in range(11, 31):  # plenty of tracks elsewhere: the guard is about Music
        cache.track(key, section=2)
    cache.stage.mark_listed(2)
    changes = cache.apply(MUSIC, JAZZ, scanned=[1, 2])
    assert changes.warning == (
        "not removing 10 tracks: Plex returned no tracks for 'Music'; "
        "run again with --allow-mass-delete if this is intended"
    )
    assert changes.added == 20 and changes.removed == 0
    assert len(cache.keys()) == 30


def test_allow_mass_delete(cache):
    ten_tracks(cache)
    cache.begin()
    cache.stage.add_seen(["1"], 1)
    changes = cache.apply(MUSIC, scanned=[1], allow_mass_delete=True)
    assert changes.removed == 9 and changes.warning is None
    assert cache.keys() == ["1"]


def test_orphaned_albums_and_artists_go(cache):
    cache.begin()
    cache.artist(10, "Björk").artist(20, "Sade").artist(30, "Album-only artist")
    cache.album(100).album(200, artist_key=20).album(300, artist_key=30)
    cache.track(1).track(2, album_key=200, artist_key=20).track(3, album_key=300, artist_key=10)
    cache.stage.mark_listed(1)
    cache.apply(MUSIC, scanned=[1])
    assert cache.keys("albums") == ["100", "200", "300"]
    cache.begin()
    cache.stage.add_seen(["1", "3"], 1)
    assert cache.apply(MUSIC, scanned=[1]).removed == 1
    # album 200 lost its only track; Sade has neither tracks nor albums;
    # artist 30 has no track of its own but still has an album
    assert cache.keys("albums") == ["100", "300"]
    assert cache.keys("artists") == ["10", "30"]


def test_facet_counts_follow_an_incremental_apply(cache):
    ten_tracks(cache)
    cache.begin()
    cache.track(1, own_genres='["Rock", "Dub"]', own_year=1999)
    cache.track(11, own_genres='["Rock"]', track_artist="Guest")
    cache.stage.add_gone(["5"])
    changes = cache.apply(MUSIC)
    assert changes == apply.Changes(added=1, updated=1, removed=1)
    assert facet_counts.is_current(cache.conn)
    stored = facet_counts.stored_counts(cache.conn)
    assert stored == facet_counts.live_counts(cache.conn)
    assert stored[("genres", "Rock")] == 2
    assert stored[("genres", "Electronic")] == 8  # the album artist's genres for the other 8
    assert stored[("artist", "Guest")] == 1 and stored[("artist", "Björk")] == 9
    assert stored[("year", 1999)] == 1 and stored[("year", 1997)] == 9


def test_replacing_another_server(cache):
    ten_tracks(cache)
    cache.begin()
    cache.artist(50, "Other").album(500, artist_key=50)
    cache.track(1, section=2, album_key=500, artist_key=50).track(
        77, section=2, album_key=500, artist_key=50
    )
    changes = cache.apply(JAZZ, replacing=True, server_id="server-b")
    assert changes == apply.Changes(added=1, updated=1, removed=9)
    assert cache.keys() == ["1", "77"]
    assert cache.keys("albums") == ["500"] and cache.keys("artists") == ["50"]
    assert cache.rows("select id, title, track_count from sections") == [(2, "Jazz", 2)]
    assert cache.rows("select plex_server_id, track_count from sync_state") == [("server-b", 2)]
    assert facet_counts.stored_counts(cache.conn) == facet_counts.live_counts(cache.conn)


def test_a_failed_apply_changes_nothing(cache):
    ten_tracks(cache)
    before = cache.rows("select * from tracks order by rating_key")
    cache.begin()
    cache.track(1, title="Changed")
    cache.stage.add_gone(["2"])
    plan = SyncPlan(
        sections=(SectionPlan(MUSIC, False, None),), server_id="s", replacing=False, server_time=0
    )
    with pytest.raises(RuntimeError), apply.transaction(cache.conn):
        apply.apply_staged(cache.conn, plan, [], allow_mass_delete=False, synced_at=LATER)
        raise RuntimeError("the run record failed")
    assert cache.rows("select * from tracks order by rating_key") == before
    assert cache.rows("select name from temp.sqlite_master where name = 'doomed'") == []
    assert facet_counts.is_current(cache.conn)


def test_a_bulk_apply_sorts_with_a_smaller_page_cache_and_gives_it_back(cache):
    # SQLite sizes a sorter's runs by the page cache: the index builds and
    # recounts of a bulk apply run with SORT_CACHE_KIB, the rest with the sync's
    cache.conn.execute("pragma cache_size = -24576")
    sizes = []  # the page cache in force at each CREATE INDEX / FTS rebuild
    cache.conn.set_trace_callback(
        lambda sql: sizes.append((sql.split()[1], cache.conn.execute("pragma main.cache_size").fetchone()[0]))
        if sql.startswith(("CREATE INDEX", "insert into tracks_fts")) else None
    )  # fmt: skip
    try:
        ten_tracks(cache)
    finally:
        cache.conn.set_trace_callback(None)
    assert {size for what, size in sizes if what == "INDEX"} == {-apply.SORT_CACHE_KIB}
    assert len([what for what, _ in sizes if what == "INDEX"]) == 12
    assert [size for what, size in sizes if what == "into"] == [-24576]  # the FTS rebuild
    assert cache.conn.execute("pragma cache_size").fetchone()[0] == -24576


def test_page_cache_never_grows_the_cache_and_restores_it_on_error(cache):
    conn = cache.conn
    conn.execute("pragma cache_size = 1000")  # pages (4 KiB): 4,000 KiB
    with apply.page_cache(conn, 8192):
        assert conn.execute("pragma cache_size").fetchone()[0] == -4000
    assert conn.execute("pragma cache_size").fetchone()[0] == 1000
    with pytest.raises(RuntimeError), apply.page_cache(conn, 1024):
        assert conn.execute("pragma cache_size").fetchone()[0] == -1024
        raise RuntimeError("an index build failed")
    assert conn.execute("pragma cache_size").fetchone()[0] == 1000
