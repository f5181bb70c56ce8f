"""The sync's plan on plain data: which sections, same server?, full or
incremental per section. No server, no HTTP: ``plexcache.sync.plan`` decides
from ``Section`` values and what the cache remembers."""

from __future__ import annotations

import sqlite3

import pytest

from plexcache.errors import NoMusicSection
from plexcache.plex import Section
from plexcache.schema import ensure_shape
from plexcache.sync.plan import (
    OVERLAP_SECONDS,
    CachedSection,
    CacheState,
    ServerInfo,
    choose_sections,
    needs_server_check,
    plan_sync,
    read_cache_state,
)
from plexcache.timeutil import epoch_to_iso, iso_to_epoch

URL = "http://plex.test:32400"
MUSIC = Section(1, "uuid-1", "Music", "artist", 1000)
JAZZ = Section(2, "uuid-2", "Jazz", "artist", 2000)
MOVIES = Section(3, "uuid-3", "Movies", "movie", 3000)
SYNCED_AT = "2026-02-05T10:30:00Z"


def state(
    server_id="server-a",
    *,
    sections=(MUSIC, JAZZ),
    synced_at=SYNCED_AT,
    has_tracks=True,
    learned=(("server-a", ""),),
) -> CacheState:
    return CacheState(
        server_id=server_id,
        sections={
            s.id: CachedSection(s.id, s.uuid, s.content_changed_at, synced_at) for s in sections
        },
        has_tracks=has_tracks,
        learned=frozenset(learned),  # (server, version) pairs with listing facts (sync/learn.py)
    )


def modes(plan) -> dict[str, bool]:
    return {p.section.title: p.incremental for p in plan.sections}


def test_choose_sections_keeps_music_libraries_only():
    assert choose_sections([MUSIC, MOVIES, JAZZ], None, URL) == [MUSIC, JAZZ]


def test_choose_sections_by_name_ignores_case():
    assert choose_sections([MUSIC, MOVIES, JAZZ], "jAZZ", URL) == [JAZZ]


def test_choose_sections_errors():
    with pytest.raises(NoMusicSection) as e:
        choose_sections([MUSIC, MOVIES, JAZZ], "Movies", URL)
    assert str(e.value) == (
        "no music library named 'Movies' on Plex at http://plex.test:32400 (music libraries: 'Music', 'Jazz')"
    )
    with pytest.raises(NoMusicSection) as e:
        choose_sections([MOVIES], "Music", URL)
    assert (
        str(e.value)
        == "no music library named 'Music' on Plex at http://plex.test:32400 (music libraries: none)"
    )
    with pytest.raises(NoMusicSection) as e:
        choose_sections([MOVIES], None, URL)
    assert str(e.value) == "Plex at http://plex.test:32400 has no music library"


def test_same_server_needs_no_server_check():
    assert not needs_server_check([MUSIC, JAZZ], state(), full=False)
    assert needs_server_check([MUSIC, JAZZ], state(), full=True)
    assert needs_server_check([MUSIC, JAZZ], state(server_id=None), full=False)
    assert needs_server_check([MUSIC, JAZZ], state(sections=(MUSIC,)), full=False)  # a new section
    assert needs_server_check([MUSIC], state(synced_at=None), full=False)  # never finished a sync
    recreated = Section(1, "uuid-new", "Music", "artist", 1000)
    assert needs_server_check([recreated], state(), full=False)
    # something changed: the sync reads listings, so it asks the server's version
    assert needs_server_check(
        [Section(1, "uuid-1", "Music", "artist", 1001), JAZZ], state(), full=False
    )
    assert needs_server_check([Section(1, "uuid-1", "Music", "artist", None)], state(), full=False)


def test_a_server_version_new_to_the_cache_is_read_in_full():
    known = ServerInfo("server-a", version="1.41.8")
    plan = plan_sync(
        [MUSIC, JAZZ],
        state(learned={("server-a", "1.41.8")}),
        full=False,
        server=known,
        server_time=1,
    )
    assert modes(plan) == {"Music": True, "Jazz": True} and not plan.relearn
    upgraded = ServerInfo("server-a", version="1.42.1")
    plan = plan_sync([MUSIC, JAZZ], state(learned={("server-a", "1.41.8")}), full=False, server=upgraded,
                     server_time=1)  # fmt: skip
    assert modes(plan) == {"Music": False, "Jazz": False} and plan.relearn and plan.mode == "full"
    assert not plan.replacing and plan.warnings == ()
    # a cache written before listing facts existed: learned once, in full
    plan = plan_sync([MUSIC], state(learned=()), full=False, server=known, server_time=1)
    assert modes(plan) == {"Music": False} and plan.relearn


def test_incremental_when_everything_is_known():
    plan = plan_sync([MUSIC, JAZZ], state(), full=False, server=None, server_time=5000)
    assert modes(plan) == {"Music": True, "Jazz": True}
    assert plan.mode == "incremental"
    assert plan.server_id == "server-a"
    assert not plan.replacing and plan.warnings == ()
    assert plan.server_time == 5000
    assert plan.section_ids == [1, 2]


def test_full_sync_asked_for():
    plan = plan_sync(
        [MUSIC, JAZZ], state(), full=True, server=ServerInfo("server-a"), server_time=5000
    )
    assert modes(plan) == {"Music": False, "Jazz": False}
    assert plan.mode == "full"
    assert not plan.replacing


def test_a_new_or_recreated_section_is_read_in_full_the_others_not():
    recreated = Section(2, "uuid-2-new", "Jazz", "artist", 2000)
    plan = plan_sync(
        [MUSIC, recreated], state(), full=False, server=ServerInfo("server-a"), server_time=1
    )
    assert modes(plan) == {"Music": True, "Jazz": False}
    assert plan.mode == "full"  # any full section makes the run full
    plan = plan_sync(
        [MUSIC, JAZZ],
        state(sections=(MUSIC,)),
        full=False,
        server=ServerInfo("server-a"),
        server_time=1,
    )
    assert modes(plan) == {"Music": True, "Jazz": False}


def test_another_server_replaces_the_cache():
    plan = plan_sync(
        [MUSIC], state(), full=False, server=ServerInfo("server-b", "Den"), server_time=1
    )
    assert plan.replacing
    assert plan.server_id == "server-b"
    assert modes(plan) == {"Music": False}
    assert plan.warnings == (
        "this cache held another Plex server's library (server-a); replacing it with Den (server-b)",
    )
    unnamed = plan_sync([MUSIC], state(), full=False, server=ServerInfo("server-b"), server_time=1)
    assert unnamed.warnings[0].endswith("replacing it with this server (server-b)")


def test_another_server_on_an_empty_cache_replaces_nothing():
    plan = plan_sync(
        [MUSIC], state(has_tracks=False), full=False, server=ServerInfo("server-b"), server_time=1
    )
    assert not plan.replacing and plan.warnings == ()
    assert plan.server_id == "server-b"


def test_first_sync():
    empty = CacheState(server_id=None, sections={}, has_tracks=False)
    plan = plan_sync([MUSIC], empty, full=False, server=ServerInfo("server-a"), server_time=1)
    assert modes(plan) == {"Music": False}
    assert plan.server_id == "server-a" and not plan.replacing


def test_incremental_window_and_change_marker():
    plan = plan_sync([MUSIC], state(), full=False, server=None, server_time=1)
    (p,) = plan.sections
    assert p.since == iso_to_epoch(SYNCED_AT) - OVERLAP_SECONDS
    assert not p.content_changed
    moved = Section(1, "uuid-1", "Music", "artist", 1001)
    assert (
        plan_sync([moved], state(), full=False, server=None, server_time=1)
        .sections[0]
        .content_changed
    )
    unknown = Section(
        1, "uuid-1", "Music", "artist", None
    )  # a server without the marker: always look
    assert (
        plan_sync([unknown], state(), full=False, server=None, server_time=1)
        .sections[0]
        .content_changed
    )
    early = state(synced_at=epoch_to_iso(60))
    assert plan_sync([MUSIC], early, full=False, server=None, server_time=1).sections[0].since == 0


def test_read_cache_state():
    conn = sqlite3.connect(":memory:")
    ensure_shape(conn)
    assert read_cache_state(conn) == CacheState(server_id=None, sections={}, has_tracks=False)
    conn.execute(
        "insert into listing_facts (server_id, version, item_type, tag) values ('server-a', '1.2', 'track', 'Genre')"
    )
    conn.execute("insert into sync_state (id, plex_server_id) values (1, 'server-a')")
    conn.execute(
        "insert into sections (id, uuid, title, content_changed_at, synced_at) values (1, 'uuid-1', 'Music', 1000, ?)",
        (SYNCED_AT,),
    )
    conn.execute(
        "insert into tracks (rating_key, title, artist, album, section_id) values ('5', 't', 'a', 'b', 1)"
    )
    got = read_cache_state(conn)
    assert got == CacheState(
        server_id="server-a",
        sections={1: CachedSection(1, "uuid-1", 1000, SYNCED_AT)},
        has_tracks=True,
        learned=frozenset({("server-a", "1.2")}),
    )
    assert got.knows([MUSIC]) and not got.knows([MUSIC, JAZZ])
