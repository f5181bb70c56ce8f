"""The Plex Media Server simulator, exercised over real HTTP with plexapi and requests."""

import math
import os
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
import requests
from plexapi.exceptions import BadRequest, NotFound, Unauthorized
from plexapi.server import PlexServer

from plexcache.simulator import BASE_TIME, Simulator
from plexcache.simulator.profiles import CLASSIC, REALISTIC


def plex(sim, **kw):
    return PlexServer(sim.url, sim.token, **kw)


def get(sim, path, params=None, headers=None, token=True, **kw):
    h = {"X-Plex-Token": sim.token} if token else {}
    h.update(headers or {})
    return requests.get(sim.url + path, params=params, headers=h, **kw)


def xml(sim, path, params=None, headers=None):
    r = get(sim, path, params, headers)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/xml;charset=utf-8"
    return ET.fromstring(r.content)


def keys_of(root):
    return [e.get("ratingKey") for e in root if e.get("ratingKey")]


# -- plexapi as the client ----------------------------------------------------------------------


def test_plexapi_server_and_sections(sim):
    server = plex(sim)
    assert server.machineIdentifier == sim.machine_identifier
    assert server.friendlyName == sim.friendly_name
    assert server.version.startswith("1.41.")
    sections = server.library.sections()
    truth = sim.library.sections()
    assert [s.title for s in sections] == [s["title"] for s in truth]
    assert [s.type for s in sections] == ["artist", "artist", "movie"]
    assert sections[0].uuid == truth[0]["uuid"]
    assert sections[0].agent == "tv.plex.agents.music" and sections[0].scanner == "Plex Music"
    assert sections[0].locations and sections[0].locations[0].startswith("/")
    assert server.identity().machineIdentifier == sim.machine_identifier


def test_plexapi_search_tracks_matches_ground_truth_and_request_count(sim):
    server = plex(sim)
    music = server.library.section("Music")
    sim.reset_counts()
    tracks = music.searchTracks()
    n = sim.library.track_count(1)
    assert sim.request_counts == {"all": math.ceil(n / 100)}
    assert [str(t.ratingKey) for t in tracks] == sim.library.track_keys(
        1
    )  # default order: ratingKey
    for t in tracks[:: max(1, len(tracks) // 60)]:
        truth = sim.library.track(t.ratingKey)
        assert t.title == truth["title"]
        assert t.grandparentTitle == truth["grandparentTitle"]
        assert t.parentTitle == truth["parentTitle"]
        assert t._data.attrib.get("parentYear") == (
            str(truth["parentYear"]) if truth["parentYear"] else None
        )
        assert "year" not in t._data.attrib
        assert t.librarySectionID == 1 and "librarySectionID" not in t._data.attrib
        assert int(t.addedAt.timestamp()) == truth["addedAt"]
        assert t._data.attrib.get("userRating") == (
            f"{truth['userRating']:.1f}" if truth["userRating"] else None
        )
        assert t.guids == [] or t.guids[0].id == truth["guids"][0]
    titles = {t.title for t in tracks} | {t.grandparentTitle for t in tracks}
    assert any(any("\u3040" <= c <= "\u9fff" for c in s) for s in titles), "expected CJK names"
    assert any("&" in s for s in titles) and any(set(s) & set("àéèöüøåñçëïłő") for s in titles)
    assert server.library.section("Classical").totalViewSize(
        libtype="track", includeCollections=False
    ) == (sim.library.track_count(2))


def test_plexapi_filtered_search_after_mutation(sim):
    server = plex(sim)
    music = server.library.section("Music")
    keys = sim.library.track_keys(1)
    since = datetime.now() - timedelta(hours=1)
    assert music.search(libtype="track", filters={"track.updatedAt>>": since}) == []
    sim.play_track(keys[1], times=3)
    sim.rate_track(keys[2], 8)
    sim.advance_clock(10)
    sim.edit_track(keys[3], title="Nouveau <titre> & “quotes”")
    sim.advance_clock(10)
    sim.edit_track(keys[4], title="Zweiter")
    found = music.search(libtype="track", filters={"track.updatedAt>>": since}, sort="addedAt:desc")
    assert {str(t.ratingKey) for t in found} == {keys[3], keys[4]}
    assert "Nouveau <titre> & “quotes”" in [t.title for t in found]
    played = music.search(libtype="track", filters={"track.lastViewedAt>>": since})
    assert [str(t.ratingKey) for t in played] == [keys[1]]
    assert played[0].viewCount == sim.library.track(keys[1])["viewCount"]
    rated = music.search(libtype="track", filters={"track.lastRatedAt>>": since})
    assert [(str(t.ratingKey), t.userRating) for t in rated] == [(keys[2], 8.0)]
    live = music.search(libtype="album", filters={"album.subformat": "Live"})
    assert live and all("Live" in sim.library.album(a.ratingKey)["subformats"] for a in live)


def test_plexapi_fetch_items_batches(sim):
    server = plex(sim)
    keys = sim.library.track_keys()[:150]
    items = server.fetchItems([int(k) for k in keys])  # pages by 100 with container headers
    assert [str(i.ratingKey) for i in items] == keys
    album_key = sim.library.track(keys[0])["parentRatingKey"]
    artist_key = sim.library.track(keys[0])["grandparentRatingKey"]
    mixed = server.fetchItems(f"/library/metadata/{keys[0]},{album_key},999999,{artist_key}")
    assert [i.TYPE for i in mixed] == ["track", "album", "artist"]
    album = mixed[1]
    truth = sim.library.album(album_key)
    assert [g.tag for g in album.genres] == truth["genres"]
    assert [s.tag for s in album.subformats] == truth["subformats"]
    assert album.year == truth["year"] and album.librarySectionID == truth["librarySectionID"]
    assert [g.tag for g in mixed[2].genres] == sim.library.artist(artist_key)["genres"]
    assert mixed[0].media[0].parts[0].file.endswith(".flac") or mixed[0].media[0].parts[0].file
    with pytest.raises(NotFound):
        server.fetchItems("/library/metadata/999998,999999")
    children = album.tracks()
    assert sorted(str(t.ratingKey) for t in children) == sorted(
        k for k in sim.library.track_keys() if sim.library.track(k)["parentRatingKey"] == album_key
    )


def test_plexapi_errors(sim):
    with pytest.raises(Unauthorized):
        PlexServer(sim.url, "wrong-token")
    server = plex(sim)
    with pytest.raises(NotFound):
        server.query("/library/sections/99/all")
    with pytest.raises(NotFound):
        server.query("/no/such/path")
    r = get(sim, "/library/sections", token=False)
    assert r.status_code == 401 and r.headers["Content-Type"] == "text/html"
    assert b"401 Unauthorized" in r.content
    assert (
        get(sim, "/library/sections", params={"X-Plex-Token": sim.token}, token=False).status_code
        == 200
    )


# -- listings -------------------------------------------------------------------------------------


def test_paging_headers_and_params_identical(sim):
    path = "/library/sections/1/all"
    total = sim.library.track_count(1)
    by_header, by_param = [], []
    for start in range(0, total + 50, 50):
        a = xml(
            sim,
            path,
            {"type": 10},
            {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": "50"},
        )
        b = xml(
            sim, path, {"type": 10, "X-Plex-Container-Start": start, "X-Plex-Container-Size": 50}
        )
        assert ET.tostring(a) == ET.tostring(b)
        assert a.get("totalSize") == str(total) and a.get("offset") == str(start)
        assert a.get("size") == str(len(keys_of(a)))
        by_header += keys_of(a)
        by_param += keys_of(b)
    assert by_header == by_param == sim.library.track_keys(1)
    r = get(sim, path, {"type": 10, "X-Plex-Container-Start": 0, "X-Plex-Container-Size": 0})
    root = ET.fromstring(r.content)
    assert root.get("size") == "0" and root.get("totalSize") == str(total) and len(root) == 0
    assert (
        r.headers["X-Plex-Container-Total-Size"] == str(total)
        and r.headers["X-Plex-Container-Start"] == "0"
    )
    far = xml(sim, path, {"type": 10, "X-Plex-Container-Start": 10**6, "X-Plex-Container-Size": 10})
    assert len(far) == 0 and far.get("totalSize") == str(total)
    everything = xml(sim, path, {"type": 10})
    assert (
        len(everything) == total
        and everything.get("totalSize") is None
        and everything.get("offset") is None
    )
    head = requests.head(
        sim.url + path, params={"type": 10, "X-Plex-Container-Size": 0, "X-Plex-Token": sim.token}
    )
    assert head.status_code == 200 and head.headers["X-Plex-Container-Total-Size"] == str(total)


@pytest.mark.parametrize("profile", [REALISTIC, CLASSIC])
def test_listing_shape_follows_pms(sim_factory, profile):
    sim = sim_factory(profile=profile)
    root = xml(sim, "/library/sections/1/all", {"type": 10})
    assert root.get("librarySectionID") == "1" and root.get("librarySectionUUID")
    assert root.get("identifier") == "com.plexapp.plugins.library"
    tracks = list(root)
    assert all(
        t.tag == "Track" and "librarySectionID" not in t.attrib and "year" not in t.attrib
        for t in tracks
    )
    assert all(
        t.find("Media/Part") is not None and t.find("Media/Part/Stream") is None for t in tracks
    )
    assert all(t.find("Guid") is None for t in tracks)  # only with includeGuids=1
    if profile == CLASSIC:  # the old simulator's habit: <= 2 Genre per listed track
        assert all(len(t.findall("Genre")) <= 2 for t in tracks)
        assert any(t.findall("Genre") for t in tracks)
    else:  # no real track listing shows Genre (plex-wire-format §13)
        assert not any(t.findall("Genre") for t in tracks)
    assert all(t.get("viewCount") != "0" and t.get("userRating") != "0" for t in tracks)
    assert any("viewCount" not in t.attrib for t in tracks) and any(
        "userRating" not in t.attrib for t in tracks
    )
    assert any("originalTitle" in t.attrib for t in tracks)
    assert list(tracks[0].attrib)[:5] == [
        "ratingKey",
        "key",
        "parentRatingKey",
        "grandparentRatingKey",
        "guid",
    ]
    for t in tracks[:50]:
        truth = sim.library.track(t.get("ratingKey"))
        if profile == CLASSIC or truth["originalTitle"]:
            assert t.get("originalTitle") == truth["originalTitle"]
        else:  # artist-tagged files: PMS sends the album artist (§13)
            assert t.get("originalTitle") in (None, t.get("grandparentTitle"))
        assert (t.get("viewCount") or "0") == str(truth["viewCount"])
    guided = xml(sim, "/library/sections/1/all", {"type": 10, "includeGuids": 1})
    assert any(t.find("Guid") is not None for t in guided)
    albums = xml(sim, "/library/sections/1/all", {"type": 9})
    assert len(albums) == len(sim.library.album_keys(1))
    assert all(a.find("Subformat") is None and len(a.findall("Genre")) <= 2 for a in albums)
    assert all(g.attrib == {"tag": g.get("tag")} for a in albums for g in a.findall("Genre"))
    artists = xml(sim, "/library/sections/1/all")  # no type: artists
    assert {a.get("type") for a in artists} == {"artist"} and len(artists) == len(
        sim.library.artist_keys(1)
    )
    slim = xml(
        sim,
        "/library/sections/1/all",
        {"type": 10, "excludeElements": "Media,Genre", "excludeFields": "summary,thumb"},
    )
    assert all(len(t) == 0 and "summary" not in t.attrib and "thumb" not in t.attrib for t in slim)
    full = xml(sim, f"/library/metadata/{tracks[0].get('ratingKey')}")
    item = full[0]
    assert item.get("librarySectionID") == "1" and item.find("Media/Part/Stream") is not None
    movies = xml(sim, "/library/sections/3/all")
    assert movies[0].tag == "Video" and movies[0].get("type") == "movie"


def test_json_and_xml_carry_the_same_data(sim):
    params = {"type": 10, "X-Plex-Container-Start": 0, "X-Plex-Container-Size": 40}
    x = xml(sim, "/library/sections/1/all", params)
    r = get(sim, "/library/sections/1/all", params, {"Accept": "application/json"})
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()["MediaContainer"]
    assert j["size"] == 40 and j["totalSize"] == sim.library.track_count(1) and j["offset"] == 0
    assert j["librarySectionID"] == 1 and j["allowSync"] is True
    for xe, je in zip(x, j["Metadata"], strict=True):
        assert isinstance(je["ratingKey"], str) and isinstance(je["addedAt"], int)
        assert {
            k: str(v) if not isinstance(v, float) else f"{v:.1f}"
            for k, v in je.items()
            if not isinstance(v, list)
        } == dict(xe.attrib)
        assert je["Media"][0]["Part"][0]["file"] == xe.find("Media/Part").get("file")
        assert [g["tag"] for g in je.get("Genre", [])] == [
            g.get("tag") for g in xe.findall("Genre")
        ]
    sections = get(sim, "/library/sections", headers={"Accept": "application/json"}).json()[
        "MediaContainer"
    ]
    assert [d["title"] for d in sections["Directory"]] == [
        s["title"] for s in sim.library.sections()
    ]
    assert sections["Directory"][0]["Location"][0]["path"]
    root = get(sim, "/", headers={"Accept": "application/json"}).json()["MediaContainer"]
    assert root["machineIdentifier"] == sim.machine_identifier and "Directory" in root


# -- filters and sorting --------------------------------------------------------------------------


def test_filters_match_ground_truth(sim):
    lib = sim.library
    all_tracks = {k: lib.track(k) for k in lib.track_keys(1)}
    base = "/library/sections/1/all"
    some_albums = sorted({t["parentRatingKey"] for t in all_tracks.values()})[:3]
    got = keys_of(xml(sim, base, {"type": 10, "album.id": ",".join(some_albums)}))
    assert got == [k for k, t in all_tracks.items() if t["parentRatingKey"] in some_albums]
    artist = next(iter(all_tracks.values()))["grandparentRatingKey"]
    got = keys_of(xml(sim, base, {"type": 10, "artist.id": artist}))
    assert got == [k for k, t in all_tracks.items() if t["grandparentRatingKey"] == artist]
    live_albums = [k for k in lib.album_keys(1) if "Live" in lib.album(k)["subformats"]]
    assert live_albums
    assert (
        keys_of(xml(sim, base, {"type": 9, "subformat": "Live", "resolveTags": 1})) == live_albums
    )
    assert keys_of(xml(sim, base, {"type": 9, "subformat": "90101"})) == live_albums  # tag id
    got = keys_of(xml(sim, base, {"type": 10, "album.subformat": "Live", "resolveTags": 1}))
    assert got == [k for k, t in all_tracks.items() if t["parentRatingKey"] in live_albums]
    word = "love"
    got = keys_of(xml(sim, base, {"type": 10, "title": word}))
    assert got == [k for k, t in all_tracks.items() if word in t["title"].casefold()]
    exact = all_tracks[got[0]]["title"]
    assert keys_of(xml(sim, base + f"?type=10&title=={exact.upper()}")) == [
        k for k, t in all_tracks.items() if t["title"].casefold() == exact.casefold()
    ]
    cut = sorted(t["addedAt"] for t in all_tracks.values())[len(all_tracks) // 2]
    got = keys_of(xml(sim, base + f"?type=10&track.addedAt>>={cut}"))
    assert got == [k for k, t in all_tracks.items() if t["addedAt"] > cut]
    got = keys_of(xml(sim, base + f"?type=10&addedAt<<={cut}"))
    assert got == [k for k, t in all_tracks.items() if t["addedAt"] < cut]
    assert keys_of(xml(sim, base + "?type=10&updatedAt>>=-30d")) == []  # base data ends 2025-06-01
    rows = xml(sim, base, {"type": 10, "sort": "track.addedAt:desc,id", "limit": 25})
    expected = sorted(all_tracks, key=lambda k: (-all_tracks[k]["addedAt"], int(k)))[:25]
    assert keys_of(rows) == expected and rows.get("size") == "25"
    by_title = keys_of(xml(sim, base, {"type": 10, "sort": "titleSort"}))
    titles = [all_tracks[k]["title"].casefold() for k in by_title]
    assert titles == sorted(titles)
    lv = keys_of(
        xml(
            sim,
            base,
            {
                "type": 10,
                "sort": "lastViewedAt:desc",
                "X-Plex-Container-Size": 5,
                "X-Plex-Container-Start": 0,
            },
        )
    )
    played = sorted((t["lastViewedAt"] or 0 for t in all_tracks.values()), reverse=True)[:5]
    assert [all_tracks[k]["lastViewedAt"] for k in lv] == played


def test_unknown_filters_are_ignored_and_counted(sim):
    base = "/library/sections/1/all"
    n = sim.library.track_count(1)
    sim.reset_counts()
    known = {"type": 10, "includeGuids": 1, "includeMeta": 0, "excludeAllLeaves": 1, "checkFiles": 1,
             "includeFields": "x", "resolveTags": 1, "sort": "id", "X-Plex-Product": "p"}  # fmt: skip
    assert len(xml(sim, base, known)) == n
    assert not sim.unknown_filters
    assert (
        len(xml(sim, base, {"type": 10, "updatedat>>": 5, "bogus": "1"})) == n
    )  # case-sensitive fields
    assert sim.unknown_filters == {"updatedat>>": 1, "bogus": 1}


def test_id_keyset_paging_walks_library_exactly_once(sim):
    seen, last = [], 0
    sim.reset_counts()
    while True:
        root = xml(sim, f"/library/sections/1/all?type=10&sort=id&id>>={last}",
                   headers={"X-Plex-Container-Start": "0", "X-Plex-Container-Size": "97"})  # fmt: skip
        keys = keys_of(root)
        assert root.get("totalSize") == str(
            sum(1 for k in sim.library.track_keys(1) if int(k) > last)
        )
        if not keys:
            break
        seen += keys
        last = int(keys[-1])
    assert seen == sim.library.track_keys(1)
    assert sim.request_counts["all"] == math.ceil(len(seen) / 97) + 1


def test_meta_block_and_filter_choices(sim):
    root = xml(sim, "/library/sections/1/all", {"includeMeta": 1, "X-Plex-Container-Size": 0})
    meta = root.find("Meta")
    assert {t.get("type") for t in meta.findall("Type")} == {"artist", "album", "track"}
    assert {f.get("type") for f in meta.findall("FieldType")} >= {
        "tag",
        "integer",
        "string",
        "date",
        "boolean",
    }
    coll = xml(sim, "/library/sections/1/collections", {"includeMeta": 1})
    assert coll.get("size") == "0" and coll.find("Meta") is not None
    genres = xml(sim, "/library/sections/1/genre", {"type": 9})
    assert genres[0].tag == "Directory" and genres[0].get("key").isdigit()


# -- mutations ------------------------------------------------------------------------------------


def section_changed(sim, sid=1):
    return next(s["content_changed_at"] for s in sim.library.sections() if s["id"] == sid)


def test_mutation_semantics(sim):
    lib = sim.library
    keys = lib.track_keys(1)
    k = keys[10]
    before = lib.track(k)
    assert before["updatedAt"] <= BASE_TIME
    cca = section_changed(sim)
    sim.advance_clock(100)
    # The clock is the wall clock plus an offset: a mutation may cross a
    # second boundary, so times are checked against the window around it.
    t0 = sim.now()
    sim.play_track(k, times=2)
    sim.rate_track(k, 6)
    after = lib.track(k)
    t1 = sim.now()
    assert after["viewCount"] == before["viewCount"] + 2 and t0 <= after["lastViewedAt"] <= t1
    assert after["userRating"] == 6.0 and t0 <= after["lastRatedAt"] <= t1
    assert after["updatedAt"] == before["updatedAt"] and section_changed(sim) == cca
    t0 = sim.now()
    sim.edit_track(k, title="New")
    assert t0 <= lib.track(k)["updatedAt"] <= sim.now() and section_changed(sim) > cca
    # album edit bumps the album only; tracks show the new album title and year
    album = before["parentRatingKey"]
    sib = [x for x in keys if lib.track(x)["parentRatingKey"] == album]
    sim.advance_clock(5)
    t0 = sim.now()
    sim.edit_album(
        album, title="Renamed Album", year=1999, subformats=["Live"], genres=["Jazz", "New Genre"]
    )
    assert t0 <= lib.album(album)["updatedAt"] <= sim.now()
    assert all(lib.track(x)["updatedAt"] < t0 for x in sib if x != k)
    listed = xml(sim, "/library/sections/1/all", {"type": 10, "album.id": album})
    assert {(t.get("parentTitle"), t.get("parentYear")) for t in listed} == {
        ("Renamed Album", "1999")
    }
    full = xml(sim, f"/library/metadata/{album}")[0]
    assert [g.get("tag") for g in full.findall("Genre")] == ["Jazz", "New Genre"]
    assert [s.get("tag") for s in full.findall("Subformat")] == ["Live"]
    # add: keys grow, addedAt = now
    cca = section_changed(sim)
    t0 = sim.now()
    new = sim.add_tracks(3, section_id=1)
    assert min(map(int, new)) > max(
        int(x) for s in lib.sections() for x in lib.track_keys(s["id"]) if x not in new
    )
    t1 = sim.now()
    assert all(t0 <= lib.track(x)["addedAt"] == lib.track(x)["updatedAt"] <= t1 for x in new)
    assert lib.track_keys(1)[-3:] == new and section_changed(sim) > cca
    more = sim.add_tracks(2, album_key=album)
    assert {lib.track(x)["parentRatingKey"] for x in more} == {album}
    got = keys_of(xml(sim, f"/library/sections/1/all?type=10&addedAt>>={sim.now() - 1}"))
    assert got == new + more
    # delete
    cca = section_changed(sim)
    sim.delete_tracks([keys[0], new[0]])
    assert keys[0] not in lib.track_keys(1) and lib.track_count(1) == len(keys) + 3
    assert get(sim, f"/library/metadata/{keys[0]}").status_code == 404
    assert section_changed(sim) > cca
    sections = xml(sim, "/library/sections")
    assert sections[0].get("contentChangedAt") == str(section_changed(sim))


def test_clock_drives_date_header(sim):
    sim.advance_clock(86400 * 365)
    r = get(sim, "/identity")
    from email.utils import parsedate_to_datetime

    assert abs(parsedate_to_datetime(r.headers["Date"]).timestamp() - sim.now()) < 3


# -- faults, latency, counters, admin -------------------------------------------------------------


def test_faults_fire_exactly_as_configured(sim):
    s = requests.Session()
    s.headers["X-Plex-Token"] = sim.token
    url = sim.url + "/library/sections/1/all?type=10"
    sim.inject_fault("status", path=r"/all", nth=2, times=2, status=503, retry_after=7)
    codes = [s.get(url).status_code for _ in range(4)]
    assert codes == [200, 503, 503, 200]
    r = s.get(url)  # fault exhausted
    sim.clear_faults()
    sim.inject_fault("status", path=r"/all", status=503, retry_after=7)
    r = s.get(url)
    assert r.headers["Retry-After"] == "7" and r.headers["Content-Type"] == "text/html"
    with pytest.raises(BadRequest):
        sim.inject_fault("status", path=r"^/$", status=500)
        plex(sim)
    sim.inject_fault("drop", path=r"/library/sections$")
    with pytest.raises(requests.ConnectionError):
        s.get(sim.url + "/library/sections")
    assert s.get(sim.url + "/library/sections").status_code == 200
    sim.inject_fault("stall", path="/identity", stall_seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        s.get(sim.url + "/identity", timeout=0.3)
    sim.inject_fault("truncate", path=r"/all")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        s.get(url, headers={"Accept-Encoding": "identity"})
    sim.inject_fault("malformed", path=r"/all")
    r = s.get(url)
    assert r.status_code == 200
    with pytest.raises(ET.ParseError):
        ET.fromstring(r.content)
    sim.inject_fault(
        "body",
        path=r"/all",
        body=b'<MediaContainer size="1"><Track title="\xff\xfe"/></MediaContainer>',
    )
    assert s.get(url).content.startswith(b"<MediaContainer")
    assert (
        s.get(url).status_code == 200
        and sim.faults
        and all(f["fired"] == f["times"] for f in sim.faults)
    )


def test_latency_and_counters(sim):
    s = requests.Session()
    s.headers["X-Plex-Token"] = sim.token
    sim.reset_counts()
    sim.set_latency(150)
    t = time.perf_counter()
    s.get(sim.url + "/library")
    assert time.perf_counter() - t >= 0.15
    sim.set_latency(0)
    s.get(sim.url + "/")
    s.get(sim.url + "/library/sections")
    s.get(sim.url + "/library/metadata/12,13")
    s.get(sim.url + "/library/metadata/11/children")
    s.get(sim.url + "/library/sections/1/all?type=10&X-Plex-Container-Size=1")
    assert sim.request_counts == {
        "library": 1,
        "root": 1,
        "sections": 1,
        "metadata": 1,
        "children": 1,
        "all": 1,
    }
    assert sim.total_requests == 6


def test_admin_endpoint(sim):
    s = requests.Session()
    s.headers["X-Plex-Token"] = sim.token
    sim.reset_counts()
    key = sim.library.track_keys()[0]
    admin = sim.url + "/__sim__/"
    assert requests.get(admin + "stats").status_code == 401
    r = s.post(
        admin + "mutate", json={"op": "edit_track", "args": {"key": key, "title": "From afar"}}
    )
    assert r.status_code == 200 and r.json()["result"]["title"] == "From afar"
    assert sim.library.track(key)["title"] == "From afar"
    new = s.post(
        admin + "mutate", json={"op": "add_tracks", "args": {"n": 2, "section_id": 2}}
    ).json()["result"]
    assert new == sim.library.track_keys(2)[-2:]
    assert s.post(admin + "mutate", json={"op": "nope"}).status_code == 400
    now = sim.now()
    assert s.post(admin + "advance-clock", json={"seconds": 3600}).json()["now"] >= now + 3600
    assert s.post(admin + "latency", json={"ms": 0}).status_code == 200
    s.post(admin + "fault", json={"kind": "status", "path": "/identity", "status": 500})
    assert s.get(sim.url + "/identity").status_code == 500
    s.post(admin + "clear-faults")
    q = s.post(admin + "query", json={"op": "track", "args": {"key": key}}).json()
    assert q["result"]["title"] == "From afar"
    stats = s.get(admin + "stats").json()
    assert stats["request_counts"] == {"identity": 1} and stats["total_requests"] == 1
    s.post(admin + "reset-stats")
    assert sim.total_requests == 0


def test_stop_closes_keepalive_connections(sim_factory):
    sim = sim_factory(tracks=50)
    s = requests.Session()
    assert s.get(sim.url + "/identity").status_code == 200
    sim.stop()
    with pytest.raises(requests.ConnectionError):
        s.get(sim.url + "/identity", timeout=2)


# -- scale and timings ----------------------------------------------------------------------------


def test_determinism_and_structure():
    a = Simulator(tracks=3000, seed=7, token="t").library
    b = Simulator(tracks=3000, seed=7, token="t").library
    c = Simulator(tracks=3000, seed=8, token="t").library
    keys = a.track_keys()
    assert keys == b.track_keys() and len(keys) == 3000
    assert [a.track(k) for k in keys[::97]] == [b.track(k) for k in keys[::97]]
    assert [a.track(k)["title"] for k in keys[:50]] != [
        c.track(k)["title"] for k in c.track_keys()[:50]
    ]
    tracks = [a.track(k) for k in keys]
    albums = {t["parentRatingKey"] for t in tracks}
    share = lambda pred, items: sum(1 for x in items if pred(x)) / len(items)  # noqa: E731
    assert 0.3 < share(lambda t: t["viewCount"] > 0, tracks) < 0.5
    assert 0.1 < share(lambda t: t["userRating"] is not None, tracks) < 0.2
    assert 0.02 < share(lambda t: t["genres"], tracks) < 0.09
    assert share(lambda t: t["duration"] is None, tracks) < 0.03
    assert 0.04 < share(lambda k: "Live" in a.album(k)["subformats"], albums) < 0.18
    assert all(t["updatedAt"] >= t["addedAt"] and t["updatedAt"] <= BASE_TIME for t in tracks)
    per_artist = {}
    for k in albums:
        per_artist.setdefault(a.album(k)["parentRatingKey"], []).append(k)
    sizes = sorted(map(len, per_artist.values()))
    assert sizes[len(sizes) // 2] <= 2 and sizes[-1] >= 8


def test_timings(sim_factory, capsys):
    t = time.perf_counter()
    sim = sim_factory(tracks=18432)
    build = time.perf_counter() - t
    s = requests.Session()
    s.headers["X-Plex-Token"] = sim.token
    url = sim.url + "/library/sections/1/all?type=10&includeGuids=1"
    s.get(url, headers={"X-Plex-Container-Start": "0", "X-Plex-Container-Size": "1"})
    t = time.perf_counter()
    r = s.get(url, headers={"X-Plex-Container-Start": "5000", "X-Plex-Container-Size": "1000"})
    page = time.perf_counter() - t
    assert len(ET.fromstring(r.content)) == 1000
    t = time.perf_counter()
    n = 0
    for sec in (1, 2):
        start = 0
        while True:
            root = ET.fromstring(s.get(sim.url + f"/library/sections/{sec}/all?type=10", headers={
                "X-Plex-Container-Start": str(start), "X-Plex-Container-Size": "1000"}).content)  # fmt: skip
            n += len(root)
            start += 1000
            if start >= int(root.get("totalSize")):
                break
    full = time.perf_counter() - t
    assert n == 18432
    msg = f"simulator: build 18,432 {build:.3f}s; 1,000-track page {page:.3f}s; full listing by 1000s {full:.2f}s"
    if os.environ.get("PLEXCACHE_SIM_BENCH"):
        server = plex(sim)
        t = time.perf_counter()
        got = sum(len(x.searchTracks()) for x in server.library.sections() if x.type == "artist")
        msg += f"; plexapi searchTracks() of {got} tracks {time.perf_counter() - t:.2f}s"
    with capsys.disabled():
        print("\n" + msg)
    assert build < 2 and page < 1.0


def test_strict_mode_requires_container_size(sim_factory):
    sim = sim_factory(tracks=100, strict=True)
    assert get(sim, "/library/sections/1/all", {"type": 10}).status_code == 400
    assert (
        get(sim, "/library/sections/1/all", {"type": 10, "X-Plex-Container-Size": 1001}).status_code
        == 400
    )
    r = get(sim, "/library/sections/1/all", {"type": 10}, {"X-Plex-Container-Size": "1000"})
    assert r.status_code == 200 and ET.fromstring(r.content).get("totalSize") == str(
        sim.library.track_count(1)
    )


def test_million_tracks_is_lazy_and_pages_cheaply(sim_factory, capsys):
    t = time.perf_counter()
    sim = sim_factory(tracks=1_000_000)
    build = time.perf_counter() - t
    assert sim.library.track_count() == 1_000_000
    s = requests.Session()
    s.headers["X-Plex-Token"] = sim.token
    timings = {}
    for name, query in [
        ("offset 800,000", "type=10&X-Plex-Container-Start=800000&X-Plex-Container-Size=500"),
        (
            "id keyset",
            "type=10&sort=id&id>>=950000&X-Plex-Container-Start=0&X-Plex-Container-Size=500",
        ),
        ("count", "type=10&X-Plex-Container-Start=0&X-Plex-Container-Size=0"),
        (
            "delta",
            f"type=10&track.updatedAt>>={BASE_TIME}&X-Plex-Container-Size=500&X-Plex-Container-Start=0",
        ),
    ]:
        t = time.perf_counter()
        root = ET.fromstring(s.get(sim.url + "/library/sections/1/all?" + query).content)
        timings[name] = time.perf_counter() - t
        assert root.get("totalSize")
        if name.startswith(("offset", "id")):
            assert len(root) == 500
    assert root.get("totalSize") == "0"
    with capsys.disabled():
        print(
            f"\nsimulator 1M: build {build:.2f}s; "
            + "; ".join(f"{k} {v:.3f}s" for k, v in timings.items())
        )
    assert build < 15 and max(timings.values()) < 3


# -- golden output: the responses are pinned byte for byte ------------------------------------------
#
# Hashes of the responses to every kind of request the sync and the tests make (listings trimmed as
# the sync trims them, keys-only pages, full listings, metadata batches, children, JSON, filters,
# errors), before and after mutations, on three libraries, recorded with the element-tree renderer
# at c59875c. Speed work on the simulator must not change what it sends: a changed hash names the
# request whose answer changed.

GOLDEN_T0 = 1_760_000_000  # a fixed clock for the mutations (after BASE_TIME)
LISTING_TRIM = {
    "excludeElements": "Part,Guid,Stream",
    "excludeFields": "summary,thumb,art,parentThumb,grandparentThumb,grandparentArt,"
    "guid,parentGuid,grandparentGuid,parentKey,grandparentKey,musicAnalysisVersion,ratingCount",
}
METADATA_TRIM = {
    "excludeElements": "Part,Stream,Guid,Mood,Style,Image,Similar,Location,Field,Extras,Related",
    "excludeFields": "summary",
}
KEYS_ONLY = {
    "excludeElements": "Media,Part,Stream,Genre,Guid,Mood,Image,Country,Style",
    "excludeFields": "title,titleSort,originalTitle,parentTitle,grandparentTitle,type,key,"
    "parentRatingKey,grandparentRatingKey,index,parentIndex,userRating,viewCount,skipCount,"
    "lastViewedAt,lastRatedAt,parentYear,year,duration,addedAt,updatedAt,parentStudio,summary,"
    "thumb,art,parentThumb,grandparentThumb,grandparentArt,guid,parentGuid,grandparentGuid,"
    "parentKey,grandparentKey,musicAnalysisVersion,ratingCount",
}
JSON = {"Accept": "application/json"}
GOLDEN_LIBRARIES = {
    "A": {"tracks": 600, "seed": 1, "music_sections": 2},
    "B": {"tracks": 2500, "seed": 7, "music_sections": 3},
    "C": {"tracks": 40, "seed": 3, "music_sections": 1},
}


def _paged(start, size):
    return {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": str(size)}


def _golden_requests(lib, after=False):
    "(name, path, params, headers) of every kind of request the sync and the tests make"
    out = []

    def add(name, path, params=None, headers=None):
        out.append((name, path, params or {}, headers or {}))

    music = lib.music_section_ids()
    movies = lib.movie_section
    if not after:
        add("root", "/")
        add("root.json", "/", headers=JSON)
        add("identity", "/identity")
        add("library", "/library")
        add("library.json", "/library", headers=JSON)
    add("sections", "/library/sections")
    add("sections.json", "/library/sections", headers=JSON)
    for sid in music:
        base = f"/library/sections/{sid}/all"
        tracks = lib.track_keys(sid)
        albums = lib.album_keys(sid)
        artists = lib.artist_keys(sid)
        mid = tracks[len(tracks) // 3]
        p = f"s{sid}."
        add(p + "section", f"/library/sections/{sid}")
        add(p + "count", base, {"type": 10}, _paged(0, 0))
        add(p + "count.above", base, {"type": 10, "track.id>>": mid}, _paged(0, 0))
        add(p + "trimmed.first", base, {"type": 10, "sort": "id", **LISTING_TRIM}, _paged(0, 1000))
        add(p + "trimmed.keyset", base, {"type": 10, "sort": "id", **LISTING_TRIM, "track.id>>": mid},
            _paged(0, 100))  # fmt: skip
        add(p + "trimmed.keyset.end", base, {"type": 10, "sort": "id", **LISTING_TRIM,
                                             "track.id>>": tracks[-1]}, _paged(0, 1000))  # fmt: skip
        add(
            p + "keys-only",
            base,
            {"type": 10, "sort": "id", **LISTING_TRIM, **KEYS_ONLY},
            _paged(0, 5000),
        )
        add(p + "keys-only.keyset", base, {"type": 10, "sort": "id", **KEYS_ONLY, "track.id>>": mid},
            _paged(0, 50))  # fmt: skip
        add(p + "full", base, {"type": 10})
        add(p + "full.params-paged.guids", base, {"type": 10, "includeGuids": 1, "X-Plex-Container-Start": 7,
                                                  "X-Plex-Container-Size": 50})  # fmt: skip
        add(p + "full.json", base, {"type": 10}, {**JSON, **_paged(3, 40)})
        add(
            p + "trimmed.json",
            base,
            {"type": 10, "sort": "id", **LISTING_TRIM},
            {**JSON, **_paged(0, 60)},
        )
        add(p + "excl.mixed", base, {"type": 10, "excludeElements": "Media,Genre", "excludeFields": "summary,thumb"},
            _paged(0, 80))  # fmt: skip
        add(p + "excl.part-only", base, {"type": 10, "excludeElements": "Part"}, _paged(10, 80))
        add(p + "excl.stream-guid", base, {"type": 10, "includeGuids": 1, "excludeElements": "Stream",
                                           "excludeFields": "key,type,ratingKey,title"}, _paged(0, 80))  # fmt: skip
        add(p + "albums", base, {"type": 9})
        add(p + "albums.trimmed", base, {"type": 9, "sort": "id", **LISTING_TRIM}, _paged(0, 1000))
        add(p + "albums.guids", base, {"type": 9, "includeGuids": 1}, _paged(0, 40))
        add(p + "albums.endpoint", f"/library/sections/{sid}/albums", {}, _paged(0, 30))
        add(p + "albums.json", base, {"type": 9}, {**JSON, **_paged(0, 30)})
        add(p + "artists", base)
        add(p + "artists.trimmed", base, {"type": 8, "sort": "id", **LISTING_TRIM}, _paged(0, 1000))
        add(
            p + "artists.guids.json",
            base,
            {"type": 8, "includeGuids": 1},
            {**JSON, **_paged(0, 30)},
        )
        add(p + "meta", base, {"includeMeta": 1}, _paged(0, 0))
        add(p + "meta.tracks", base, {"type": 10, "includeMeta": 1}, _paged(0, 5))
        add(p + "meta.json", base, {"type": 10, "includeMeta": 1}, {**JSON, **_paged(0, 2)})
        add(p + "live.tracks", base, {"type": 10, "album.subformat": "Live", "resolveTags": 1})
        add(p + "live.albums.id", base, {"type": 9, "subformat": "90101"})
        add(p + "genre.albums", base, {"type": 9, "genre": "Jazz,Rock", "resolveTags": 1})
        add(
            p + "genre.tracks",
            base,
            {"type": 10, "genre": "Rock,Pop,Jazz,Baroque,Opera", "resolveTags": 1},
            _paged(0, 20),
        )
        add(
            p + "genre.tracks.not",
            base,
            {"type": 10, "track.genre!": "Rock,Baroque", "resolveTags": 1},
            _paged(0, 20),
        )
        add(p + "title", base, {"type": 10, "title": "love"})
        add(p + "title.exact", base + "?type=10&title==Love")
        add(p + "sort.title.desc", base, {"type": 10, "sort": "titleSort:desc", "limit": 30})
        add(p + "sort.added", base, {"type": 10, "sort": "track.addedAt:desc,id"}, _paged(0, 25))
        add(
            p + "sort.artist",
            base,
            {"type": 9, "sort": "artist.titleSort,year:desc"},
            _paged(5, 25),
        )
        add(p + "sort.viewed", base, {"type": 10, "sort": "lastViewedAt:desc"}, _paged(0, 15))
        add(p + "delta.viewed", base, {"type": 10, "sort": "id", **LISTING_TRIM, "track.lastViewedAt>>": BASE_TIME - 86400 * 20}, _paged(0, 1000))  # noqa: E501  # fmt: skip
        add(p + "delta.updated", base, {"type": 10, "sort": "id", **LISTING_TRIM, "track.updatedAt>>": BASE_TIME - 86400 * 60}, _paged(0, 1000))  # noqa: E501  # fmt: skip
        add(p + "delta.recent", base, {"type": 10, "sort": "id", **LISTING_TRIM, "track.updatedAt>>": GOLDEN_T0 - 10}, _paged(0, 1000))  # noqa: E501  # fmt: skip
        add(p + "delta.rated", base, {"type": 10, "sort": "id", **LISTING_TRIM, "track.lastRatedAt>>": GOLDEN_T0 - 10}, _paged(0, 1000))  # noqa: E501  # fmt: skip
        add(p + "delta.albums", base, {"type": 9, "sort": "id", **LISTING_TRIM, "album.updatedAt>>": GOLDEN_T0 - 10}, _paged(0, 1000))  # noqa: E501  # fmt: skip
        add(p + "delta.artists", base, {"type": 8, "sort": "id", **LISTING_TRIM, "artist.updatedAt>>": GOLDEN_T0 - 10}, _paged(0, 1000))  # noqa: E501  # fmt: skip
        add(p + "relative", base + "?type=10&updatedAt>>=-30d")
        add(p + "rating", base, {"type": 10, "userRating>>": 5, "duration<<": 200000})
        add(p + "album.id", base, {"type": 10, "sort": "id", **LISTING_TRIM, "album.id": ",".join(albums[:3])},
            _paged(0, 1000))  # fmt: skip
        add(p + "artist.id", base, {"type": 10, "sort": "id", **LISTING_TRIM, "artist.id": artists[-1]},
            _paged(0, 1000))  # fmt: skip
        add(
            p + "track.id",
            base,
            {"type": 10, "track.id": ",".join(tracks[:: max(1, len(tracks) // 7)])},
        )
        add(p + "albums.year", base, {"type": 9, "year>>": 1990, "leafCount>": 10, "decade": 2000})
        add(p + "albums.track-title", base, {"type": 9, "track.title": "night"})
        add(p + "artists.country", base, {"type": 8, "country": "Japan", "resolveTags": 1})
        add(
            p + "id.range",
            base,
            {
                "type": 10,
                "id>=": tracks[5],
                "id<=": tracks[min(40, len(tracks) - 1)],
                "sort": "id:desc",
            },
        )
        add(p + "bad.value", base, {"type": 10, "id>>": "abc"})
        add(p + "unknown.filter", base, {"type": 10, "bogus": 1}, _paged(0, 3))
        add(p + "head", base, {"type": 10}, _paged(0, 0))
        for f, t in (
            ("genre", 10),
            ("genre", 9),
            ("subformat", 9),
            ("format", 9),
            ("country", 8),
            ("mood", 10),
        ):
            add(p + f"choices.{f}.{t}", f"/library/sections/{sid}/{f}", {"type": t})
        add(p + "collections", f"/library/sections/{sid}/collections", {"includeMeta": 1})
        add(
            p + "md.tracks",
            "/library/metadata/" + ",".join(tracks[:30]),
            METADATA_TRIM,
            _paged(0, 30),
        )
        add(p + "md.tracks.full", "/library/metadata/" + ",".join(tracks[-25:]))
        add(
            p + "md.albums",
            "/library/metadata/" + ",".join(albums[:500]),
            METADATA_TRIM,
            _paged(0, 500),
        )
        add(
            p + "md.artists",
            "/library/metadata/" + ",".join(artists[:500]),
            METADATA_TRIM,
            _paged(0, 500),
        )
        add(p + "md.albums.full", "/library/metadata/" + ",".join(albums[-20:]))
        add(
            p + "md.artists.full.guids",
            "/library/metadata/" + ",".join(artists[-20:]),
            {"includeGuids": 1},
        )
        add(p + "md.mixed.paged", "/library/metadata/" + ",".join([tracks[0], albums[0], "99999999", artists[0],
                                                                   tracks[0], "x"]), {}, _paged(1, 2))  # fmt: skip
        add(p + "md.mixed.json", "/library/metadata/" + ",".join([tracks[1], albums[1], artists[1]]),
            METADATA_TRIM, JSON)  # fmt: skip
        add(p + "md.excl", "/library/metadata/" + ",".join(tracks[2:6] + albums[2:6] + artists[2:6]),
            {"excludeElements": "Media,Genre,Subformat", "excludeFields": "title,updatedAt"})  # fmt: skip
        add(p + "children.album", f"/library/metadata/{albums[0]}/children")
        add(p + "children.album.json", f"/library/metadata/{albums[-1]}/children", {}, JSON)
        add(p + "children.artist", f"/library/metadata/{artists[0]}/children", LISTING_TRIM)
        add(p + "children.paged", f"/library/metadata/{albums[1]}/children", {}, _paged(2, 3))
    mk = ",".join(str(k) for k in lib.movie_keys)
    add("movies", f"/library/sections/{movies}/all")
    add("movies.json", f"/library/sections/{movies}/all", {"includeMeta": 1}, JSON)
    add("movies.md", f"/library/metadata/{mk}")
    add("movies.tracks", f"/library/sections/{movies}/all", {"type": 10})
    add("md.missing", "/library/metadata/99999998,99999999")
    add("no.section", "/library/sections/99/all")
    add("no.path", "/no/such/path")
    return out


def _golden_digest(r) -> str:
    import hashlib

    h = hashlib.sha256()
    h.update(f"{r.status_code} {r.headers.get('Content-Type')} {r.headers.get('X-Plex-Container-Start')} "
             f"{r.headers.get('X-Plex-Container-Total-Size')}\n".encode())  # fmt: skip
    h.update(r.content)
    return h.hexdigest()[:16]


def _golden_mutate(sim, clock):
    lib = sim.library
    s1 = lib.track_keys(1)
    a1 = lib.album_keys(1)
    r1 = lib.artist_keys(1)
    last = lib.music_section_ids()[-1]

    def album(i):
        return a1[i % len(a1)]

    clock[0] += 60
    sim.edit_track(s1[3], title='Nouveau <titre> & "quotes"', genres=["Jazz", "Brand New"])
    sim.edit_track(s1[4], userRating=7.3, index=None)
    sim.rate_track(s1[5], 8)
    sim.rate_track(s1[6], 0)
    sim.play_track(s1[7], times=3)
    clock[0] += 60
    sim.edit_album(
        album(1),
        title="Renamed <Album>",
        year=1999,
        subformats=["Live"],
        genres=["Jazz", "New Genre"],
    )
    sim.edit_album(album(2), year=None, studio="Label & Co")
    sim.edit_artist(r1[1 % len(r1)], title="Renamed & Co", genres=["Ambient"])
    clock[0] += 60
    new = sim.add_tracks(4, section_id=1)
    more = sim.add_tracks(2, album_key=album(3))
    sim.add_tracks(3, section_id=last)
    clock[0] += 60
    sim.play_track(new[0])
    whole_album = lib.album_track_keys(int(album(4)))
    sim.delete_tracks([s1[0], s1[8], new[1], more[0], *map(str, whole_album)])
    return new + more


def _golden_run(sim):
    "{request name: digest} for a fresh simulator: before mutations, after them, and ground truth"
    import json

    clock = [GOLDEN_T0]
    sim.library._clock = lambda: clock[0]
    s = requests.Session()
    s.headers.update({"X-Plex-Token": sim.token, "Accept-Encoding": "identity"})
    got = {}

    def run(prefix, after):
        for name, path, params, headers in _golden_requests(sim.library, after):
            method = s.head if name.endswith("head") else s.get
            got[prefix + name] = _golden_digest(
                method(sim.url + path, params=params, headers=headers)
            )

    run("", False)
    r = s.get(sim.url + "/library/sections/1/all", params={"type": 10, "sort": "id", **LISTING_TRIM},
              headers={**_paged(0, 1000), "Accept-Encoding": "gzip"}, stream=True)  # fmt: skip
    got["gzip.raw"] = hashlib_hex(r.raw.read(decode_content=False))
    got["no.token"] = _golden_digest(requests.get(sim.url + "/library/sections"))
    changed = _golden_mutate(sim, clock)
    run("after.", True)
    lib = sim.library
    keys = changed + lib.track_keys(1)[:12] + lib.album_keys(1)[:5] + lib.artist_keys(1)[:3]
    got["after.md.changed"] = _golden_digest(s.get(sim.url + "/library/metadata/" + ",".join(keys)))
    truth = [lib.item(k) for k in keys] + [lib.sections()]
    got["truth"] = hashlib_hex(json.dumps(truth, ensure_ascii=False, default=str).encode())
    return got


def hashlib_hex(b: bytes) -> str:
    import hashlib

    return hashlib.sha256(b).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(GOLDEN_LIBRARIES))
def test_golden_responses_unchanged(sim_factory, name):
    sim = sim_factory(**GOLDEN_LIBRARIES[name], profile=CLASSIC)  # the hashes are classic's bytes
    got = _golden_run(sim)
    expected = dict(line.split() for line in GOLDEN[name].strip().splitlines())
    assert len(got) == len(expected) > 100
    assert [k for k in got if got[k] != expected.get(k)] == []


def test_fast_xml_items_match_the_element_builders():
    "xml_item / item writers (the fast path) write exactly what item_element + _emit write"
    import random

    from plexcache.simulator import render as R

    sim = Simulator(tracks=700, seed=5, music_sections=2, token="t")
    lib = sim.library
    tracks = lib.track_keys()
    albums, artists = lib.album_keys(), lib.artist_keys()
    # odd values that edits can set: escaping, non-strings, empty and falsy values
    lib.edit_track(tracks[0], title='<a href="x">&amp;\t\n', originalTitle=0, index=None, userRating=7.25,
                   genres=["A & B", "C<D>", "E", "F"], guids=[], summary="line\r\nbreak")  # fmt: skip
    lib.edit_track(
        tracks[1], title=12, titleSort="", parentIndex=False, viewCount=3, duration=0, genres="Jazz"
    )
    lib.edit_track(
        tracks[2], userRating=10.0, ratingCount=0.0, lastViewedAt=True, guid="plex://t/<1>"
    )
    lib.edit_album(albums[0], title="Title/With/Slashes & <More>", year=None, studio="", genres=[],
                   subformats=["Live", "Demo"], formats=["EP"], summary="S")  # fmt: skip
    lib.edit_album(albums[1], titleSort="Sort", userRating=8.0, genres=["Rock", "Pop", "Jazz"])
    lib.edit_album(
        albums[2], studio={}, titleSort=[], summary=0
    )  # _put keeps {} (falsy, not "empty")
    lib.edit_artist(
        artists[0], title='Q "R" & S', genres=["Ambient"], countries=["Japan", "Iceland"]
    )
    lib.edit_artist(artists[1], titleSort=5, summary=None, countries=[])
    lib.add_tracks(3, section_id=2)
    keys = (
        tracks[:: max(1, len(tracks) // 150)]
        + tracks[:3]
        + albums[:60]
        + artists[:40]
        + lib.track_keys(2)[-3:]
    )
    recs = [lib.record(int(k)) for k in keys] + [lib.record(k) for k in lib.movie_keys]
    fields = sorted({k for r in recs for k in r if not k.startswith("_")} | {"librarySectionTitle",
                    "librarySectionID", "librarySectionKey", "loudnessAnalysisVersion"})  # fmt: skip
    elements = [
        "Media",
        "Part",
        "Stream",
        "Genre",
        "Guid",
        "Format",
        "Subformat",
        "Country",
        "Mood",
    ]
    rnd = random.Random(3)
    option_sets = [
        R.Options(),
        R.Options(detail=True),
        R.Options(include_guids=True),
        R.Options(excl_elements=LISTING_TRIM["excludeElements"].split(","),
                  excl_fields=LISTING_TRIM["excludeFields"].split(",")),
        R.Options(excl_elements=METADATA_TRIM["excludeElements"].split(","),
                  excl_fields=METADATA_TRIM["excludeFields"].split(","), detail=True),
        R.Options(excl_elements=KEYS_ONLY["excludeElements"].split(","), excl_fields=KEYS_ONLY["excludeFields"].split(",")),
        R.Options(excl_elements=elements, excl_fields=fields),
    ] + [
        R.Options(include_guids=rnd.random() < 0.5, detail=rnd.random() < 0.5,
                  excl_elements=rnd.sample(elements, rnd.randint(0, 4)), excl_fields=rnd.sample(fields, rnd.randint(0, 25)))
        for _ in range(40)
    ]  # fmt: skip
    checked = rows_checked = 0
    for opts in option_sets:
        for rec in recs:
            sec = lib.section(rec["librarySectionID"])
            out: list = []
            R._emit(R.item_element(rec, sec, opts), out)
            expected = "".join(out)
            assert R.xml_item(rec, sec, opts) == expected, (rec["ratingKey"], opts.key)
            writer = R.item_writer(rec["type"], opts)
            if writer is not None and writer.keys_only:
                assert writer.from_key(int(rec["ratingKey"])) == expected
            checked += 1
        # track listings that write nothing of a track's tail read rows of unedited tracks
        writer = R.item_writer("track", opts)
        if writer.rows:
            lib._tracks_cached = False  # as in a library too big for the track cache
            try:
                rows = lib.records([int(k) for k in tracks[::3]], rows=True)
            finally:
                lib._tracks_cached = True
            assert {r.__class__ for r in rows} == {tuple, dict}  # the edited tracks stay records
            full = lib.records([int(k) for k in tracks[::3]])
            sec = lib.section(1)
            assert [writer.write(r, sec) for r in rows] == [R.xml_item(r, sec, opts) for r in full]
            rows_checked += 1
    assert checked > 5000 and rows_checked >= 3


def test_records_match_record():
    lib = Simulator(tracks=3000, seed=9, music_sections=3, token="t").library
    lib.edit_track(lib.track_keys(1)[5], title="x")
    lib.add_tracks(2, section_id=1)
    lib.delete_tracks(lib.track_keys(1)[10:30])
    keys = [
        int(k) for k in lib.track_keys(1)[:300] + lib.album_keys()[:20] + lib.track_keys(1)[-5:]
    ]
    keys += [1, 999999, int(lib.track_keys(3)[0]), 15]
    expected = [r for r in (lib.record(k) for k in keys) if r is not None]
    assert lib.records(keys) == expected
    assert [list(r) for r in lib.records(keys)] == [list(r) for r in expected]


def test_client_hanging_up_leaves_no_traceback(sim_factory, capfd):
    import socket
    import struct

    sim = sim_factory(tracks=8000)
    capfd.readouterr()
    for path in (
        "/library/sections/1/all?type=10",
        "/library/metadata/" + ",".join(sim.library.track_keys()[:3000]),
    ):
        s = socket.create_connection((sim.host, sim.port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Plex-Token: {sim.token}\r\n\r\n".encode())
        s.recv(100)  # the answer has started; hang up with a reset
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    s = socket.create_connection((sim.host, sim.port))  # reset between keep-alive requests
    s.sendall(b"GET /identity HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(10000).startswith(b"HTTP/1.1 200")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(1.0)
    assert get(sim, "/library/sections").status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


# recorded with the element-tree renderer at c59875c (see above)
GOLDEN = {
    "A": """
root 976d96b500302357
root.json ed7f9fd54a846565
identity b433bf8d8f7843de
library f862597635a31485
library.json 830b778d78a7827c
sections 1685b9a3f926ea83
sections.json ecafd742490a9050
s1.section 4a3609eb92b1f2cc
s1.count c3e8255e2180bcf4
s1.count.above 371708930cf6177e
s1.trimmed.first 4882c23f53e4d513
s1.trimmed.keyset 5fa6d3d36e28b4e5
s1.trimmed.keyset.end 191a9ff4dd4d7f77
s1.keys-only 4e0a70a155c4c892
s1.keys-only.keyset 038d7352dd0a6b41
s1.full 09ae67a5c49f3e2d
s1.full.params-paged.guids 8a8bbedcf3ae8699
s1.full.json 0acd38a18bf7021d
s1.trimmed.json e831bb59c2b3661c
s1.excl.mixed 8a2fb9331e94a839
s1.excl.part-only 06b8ab7df8bda49b
s1.excl.stream-guid 28c2bfea5bcfda0f
s1.albums 18297ac3d20dfda8
s1.albums.trimmed 075a4d980a8287c7
s1.albums.guids 10bacbd9fdc83165
s1.albums.endpoint eaa99be67a67d811
s1.albums.json 3823b9b6f63c6a0f
s1.artists cf7cec0a15b340c0
s1.artists.trimmed 16c084ce88b60fc3
s1.artists.guids.json ff5a8760f6c1c7d6
s1.meta eeb19e4e1144f990
s1.meta.tracks 71a24a9352bee8d2
s1.meta.json f65a2c69ab4c1ea3
s1.live.tracks cc3d03abe1183174
s1.live.albums.id e78d47a492aebca2
s1.genre.albums b97b8720e15b04ed
s1.genre.tracks f888972867fe7695
s1.genre.tracks.not ebd315711aa1f662
s1.title 9e0c80b23f69b5d1
s1.title.exact 9808768c3f95c5e4
s1.sort.title.desc afcadd45b530997b
s1.sort.added 05d9ed911b7129bd
s1.sort.artist 9c8c674980142776
s1.sort.viewed 2795eab948aec92b
s1.delta.viewed 61b1c706cbb61344
s1.delta.updated cec7210670d450b6
s1.delta.recent 191a9ff4dd4d7f77
s1.delta.rated 191a9ff4dd4d7f77
s1.delta.albums 828de736618fc2c9
s1.delta.artists 191a9ff4dd4d7f77
s1.relative 682b774a9e4fbae7
s1.rating 6841994121de5146
s1.album.id 89b68aadf0ab69d6
s1.artist.id 39d73a62a8beb2aa
s1.track.id b227f4b10276f157
s1.albums.year d852e3d7ed67be8e
s1.albums.track-title 89fbc30edac20c4a
s1.artists.country 550e8687929d8027
s1.id.range 53038943a4a6bd69
s1.bad.value 0c1a96d9d3bc62ea
s1.unknown.filter 5ae1df905b8a4032
s1.head 21307721b2e69575
s1.choices.genre.10 b27d4cf1f522cf4b
s1.choices.genre.9 3da02f192d682ab9
s1.choices.subformat.9 58fbff641b997d34
s1.choices.format.9 72a56f5a6e47454a
s1.choices.country.8 906db89bf391b0f5
s1.choices.mood.10 57bbbfe83870a5ed
s1.collections afff3a43b0b4dc5a
s1.md.tracks 4cef7ba8113dde3b
s1.md.tracks.full a47865b9a6d5dc67
s1.md.albums aeddf51aaf33fdbc
s1.md.artists 54591a3384cb32a6
s1.md.albums.full 7479417e76f08500
s1.md.artists.full.guids c98edd77b6d1cf6a
s1.md.mixed.paged 46b6399f5628c6b5
s1.md.mixed.json 205be3b60c7a95bc
s1.md.excl 8f5da7f9029b6758
s1.children.album 5630eda376a1e83e
s1.children.album.json 80a0ccf8c8b280f0
s1.children.artist 3fc22fed69cc78d9
s1.children.paged d3921cd74dea5666
s2.section 3b709a85c321b9b5
s2.count c5001903a2c699be
s2.count.above bba4f2932d3ad356
s2.trimmed.first 8a99ff3f01131383
s2.trimmed.keyset 774a176df8c65428
s2.trimmed.keyset.end b2b3bedaadbcbdf9
s2.keys-only bc0db9b5bff205b6
s2.keys-only.keyset f7322b1bce7bc01e
s2.full 1898225ab10a69a5
s2.full.params-paged.guids 7d5c2556a144ae7a
s2.full.json 13312edc882b8361
s2.trimmed.json 76da5ff7d0d38994
s2.excl.mixed bbd77814af9207b2
s2.excl.part-only f44c49ab4e0e99ae
s2.excl.stream-guid 4e511fcc56e8c580
s2.albums 8e00b9c0f9a7d714
s2.albums.trimmed 5a0ff6709538e122
s2.albums.guids 65b002b457c168c3
s2.albums.endpoint 32e8df3178e2db32
s2.albums.json a3ab5f7d8e7e21fd
s2.artists fac75652e4ecef17
s2.artists.trimmed de3d03273ec25b97
s2.artists.guids.json f6a84ad37ccc6923
s2.meta 5a585882f6a6eb5e
s2.meta.tracks 10825964da76f32f
s2.meta.json aafb16e8284ce828
s2.live.tracks 5270fc8d62878b43
s2.live.albums.id 21f1617c402037c5
s2.genre.albums 21f1617c402037c5
s2.genre.tracks 92c40916a74a5985
s2.genre.tracks.not 2c7120ea03bebc2f
s2.title 5270fc8d62878b43
s2.title.exact 5270fc8d62878b43
s2.sort.title.desc e2e668b61f44f8e3
s2.sort.added 6cd09423a65bb726
s2.sort.artist 406d38ec07c32bbd
s2.sort.viewed fff227bbdbb25735
s2.delta.viewed 57e6bbe7da1b1874
s2.delta.updated 0df24b92bb3ff4a8
s2.delta.recent b2b3bedaadbcbdf9
s2.delta.rated b2b3bedaadbcbdf9
s2.delta.albums fc536602a1c211fc
s2.delta.artists b2b3bedaadbcbdf9
s2.relative 5270fc8d62878b43
s2.rating 30db8d3f45db9b78
s2.album.id 4a0e3de371140375
s2.artist.id 195b9328446a9416
s2.track.id 21344128cc568664
s2.albums.year 255abcffe1d9ad6a
s2.albums.track-title 21f1617c402037c5
s2.artists.country 73b3e9d737e030cc
s2.id.range af97289051a26659
s2.bad.value 0c1a96d9d3bc62ea
s2.unknown.filter e8b802f712372ede
s2.head 80855978c84a6692
s2.choices.genre.10 1781818615cd9959
s2.choices.genre.9 2b9984089a60df04
s2.choices.subformat.9 24d14f60b7dffabe
s2.choices.format.9 40e62f6045ab5869
s2.choices.country.8 79b53009ffcd4bc2
s2.choices.mood.10 c50f4f8074f182ad
s2.collections 6e08bd010a3dc4b7
s2.md.tracks 6a9a8a2c778a1ff4
s2.md.tracks.full 1c1bcb4d7e42b145
s2.md.albums c11ebdcd11f28b28
s2.md.artists 42905b3bd5f96dee
s2.md.albums.full ae72932047e25bdd
s2.md.artists.full.guids 25a658b9e69e8695
s2.md.mixed.paged b34f5abf1ce91d38
s2.md.mixed.json 70779f6cbceadebd
s2.md.excl 4f2768efaad80d6e
s2.children.album 4a3475d467cf85fa
s2.children.album.json 7758202451be8c80
s2.children.artist 3ad9c46cba759e69
s2.children.paged c3a83367ca15b32c
movies 42767dffa7d7d20c
movies.json 7d5e491a6569b022
movies.md 8e68a5e15ee4d1e9
movies.tracks 8ec8aecbeb157860
md.missing a1c65d1a4547544d
no.section a1c65d1a4547544d
no.path a1c65d1a4547544d
gzip.raw 61d8312ecd314bda
no.token 41d394c557c67dba
after.sections 7abcba6a615c0fce
after.sections.json 42a0aaac874de943
after.s1.section 4a3609eb92b1f2cc
after.s1.count 5ee7c417a3fcb0f3
after.s1.count.above c5fd2546f101a529
after.s1.trimmed.first 6b8100afeeaf9fc6
after.s1.trimmed.keyset 12181dedffede6f2
after.s1.trimmed.keyset.end 191a9ff4dd4d7f77
after.s1.keys-only 9b7fa03b14da871f
after.s1.keys-only.keyset 13e15c22b26fec69
after.s1.full b2179dbc68d32ff1
after.s1.full.params-paged.guids ccc5e6fe006cf754
after.s1.full.json baba3ebf74c829ee
after.s1.trimmed.json f8c63f251dbaad91
after.s1.excl.mixed c24fcf23524f151c
after.s1.excl.part-only 564b54ec61d5f434
after.s1.excl.stream-guid 913cd0318ff062bc
after.s1.albums 6a52a3ce09c5a787
after.s1.albums.trimmed e072e6409a99995d
after.s1.albums.guids 5b66587056322b7e
after.s1.albums.endpoint d204956f0a3a69d3
after.s1.albums.json ea5fce41be9a26e3
after.s1.artists 4e91b479227c2158
after.s1.artists.trimmed 7c8a0b072dbe115c
after.s1.artists.guids.json b73ba333c50027f4
after.s1.meta ea2ede82dbbde9ce
after.s1.meta.tracks a86aa136f5dd7ac3
after.s1.meta.json f70fd53cf32af4b3
after.s1.live.tracks 9766718dc7d6d895
after.s1.live.albums.id 87daf8e3bf2117cd
after.s1.genre.albums 8b6dfe38b39b07ea
after.s1.genre.tracks b84679c13d0dce86
after.s1.genre.tracks.not e50c5079b39ab2ec
after.s1.title 9e0c80b23f69b5d1
after.s1.title.exact 9808768c3f95c5e4
after.s1.sort.title.desc b38ba0f150c38208
after.s1.sort.added 2e41b814833f7c89
after.s1.sort.artist 341664ce351c8985
after.s1.sort.viewed 9cd72076d1c94b50
after.s1.delta.viewed 0234347070b21df8
after.s1.delta.updated 1eb943b9ebeeea15
after.s1.delta.recent d18d26f9842f34cf
after.s1.delta.rated cde1ff4f46cb8ec1
after.s1.delta.albums 0299e8af6cb28c6a
after.s1.delta.artists 5c4f428d11004611
after.s1.relative 0a79e5746b2f5ff7
after.s1.rating 2fc0d069ff88b7e1
after.s1.album.id 36dec6e180b8241b
after.s1.artist.id 3dea86130498be86
after.s1.track.id cdaf89047980a8b7
after.s1.albums.year d852e3d7ed67be8e
after.s1.albums.track-title df8ee18606e9ddee
after.s1.artists.country 550e8687929d8027
after.s1.id.range ddb3daa351a1d7e9
after.s1.bad.value 0c1a96d9d3bc62ea
after.s1.unknown.filter 3752f300927891e2
after.s1.head f89b8b0ac0fc7c7f
after.s1.choices.genre.10 52588c17fee02e16
after.s1.choices.genre.9 9e30f7c40d60a657
after.s1.choices.subformat.9 58fbff641b997d34
after.s1.choices.format.9 72a56f5a6e47454a
after.s1.choices.country.8 906db89bf391b0f5
after.s1.choices.mood.10 57bbbfe83870a5ed
after.s1.collections afff3a43b0b4dc5a
after.s1.md.tracks 7b5c50a796ec4b74
after.s1.md.tracks.full d881dbd7b55d10e4
after.s1.md.albums 409922a1b091011f
after.s1.md.artists 4ccc375e00a2d399
after.s1.md.albums.full afeb5191b47041ac
after.s1.md.artists.full.guids d4d337e579e12373
after.s1.md.mixed.paged 4192e559ca0056eb
after.s1.md.mixed.json 7134197064537718
after.s1.md.excl e9f308adb01e9305
after.s1.children.album 4d0a553363e41792
after.s1.children.album.json ede3b77627c67070
after.s1.children.artist 00cefe59434168e5
after.s1.children.paged 3314a3794cf67e09
after.s2.section 3b709a85c321b9b5
after.s2.count 254ca151a72779d4
after.s2.count.above 7ad8e6a277b5b9f3
after.s2.trimmed.first a03e18a63b0f5a8a
after.s2.trimmed.keyset 255cf567c6158827
after.s2.trimmed.keyset.end b2b3bedaadbcbdf9
after.s2.keys-only 92afbf87140d0570
after.s2.keys-only.keyset ad26e404c43fd3f9
after.s2.full 65024887c8b5c3dc
after.s2.full.params-paged.guids 6fefea8f0a573e61
after.s2.full.json de1b3861cf96bf18
after.s2.trimmed.json 9a254832d34dbbcc
after.s2.excl.mixed fc8b4bbd6bc92cfe
after.s2.excl.part-only 0dba061c52ec2c1c
after.s2.excl.stream-guid 2eca9ab3a3861c3b
after.s2.albums 61342c16b5d42133
after.s2.albums.trimmed d4bcb27bba944a08
after.s2.albums.guids 496b7952c84ce146
after.s2.albums.endpoint 1502baaa36395869
after.s2.albums.json 756b3e48cfd017e1
after.s2.artists 98677a673e37a3c4
after.s2.artists.trimmed 368b8e30bd09ce1f
after.s2.artists.guids.json 1b182ff047423e80
after.s2.meta 7b4ffee10adb3bab
after.s2.meta.tracks 089b0549aaafc3cc
after.s2.meta.json 9665484db8577f09
after.s2.live.tracks 5270fc8d62878b43
after.s2.live.albums.id 21f1617c402037c5
after.s2.genre.albums 21f1617c402037c5
after.s2.genre.tracks 92c40916a74a5985
after.s2.genre.tracks.not 447df28293187b5f
after.s2.title 5270fc8d62878b43
after.s2.title.exact 5270fc8d62878b43
after.s2.sort.title.desc e2e668b61f44f8e3
after.s2.sort.added 65171fd6dbc2f367
after.s2.sort.artist 0ce6c980ab90a883
after.s2.sort.viewed 3ff51811922d9902
after.s2.delta.viewed 57e6bbe7da1b1874
after.s2.delta.updated 1e4762651cdb0745
after.s2.delta.recent fc405ae059a5d157
after.s2.delta.rated b2b3bedaadbcbdf9
after.s2.delta.albums 67747486b5ec8b3c
after.s2.delta.artists 2c05f354ca962fa1
after.s2.relative 6f80a3fe1635206f
after.s2.rating 30db8d3f45db9b78
after.s2.album.id 4a0e3de371140375
after.s2.artist.id fc405ae059a5d157
after.s2.track.id 21344128cc568664
after.s2.albums.year 255abcffe1d9ad6a
after.s2.albums.track-title 21f1617c402037c5
after.s2.artists.country 73b3e9d737e030cc
after.s2.id.range 44aab55c3d8a5e05
after.s2.bad.value 0c1a96d9d3bc62ea
after.s2.unknown.filter cae4d6c141b75b2d
after.s2.head d4a432bb076bb1a3
after.s2.choices.genre.10 1781818615cd9959
after.s2.choices.genre.9 2b9984089a60df04
after.s2.choices.subformat.9 24d14f60b7dffabe
after.s2.choices.format.9 40e62f6045ab5869
after.s2.choices.country.8 79b53009ffcd4bc2
after.s2.choices.mood.10 c50f4f8074f182ad
after.s2.collections 6e08bd010a3dc4b7
after.s2.md.tracks 6a9a8a2c778a1ff4
after.s2.md.tracks.full 45a4203d476465a6
after.s2.md.albums 31cef95ad585980a
after.s2.md.artists faab530e44788378
after.s2.md.albums.full 2a4be04131c8dade
after.s2.md.artists.full.guids 706875dbba5369b9
after.s2.md.mixed.paged b34f5abf1ce91d38
after.s2.md.mixed.json 70779f6cbceadebd
after.s2.md.excl e257224962a5992f
after.s2.children.album 4a3475d467cf85fa
after.s2.children.album.json fa9ae805c0431b1a
after.s2.children.artist 3ad9c46cba759e69
after.s2.children.paged c3a83367ca15b32c
after.movies 42767dffa7d7d20c
after.movies.json 7d5e491a6569b022
after.movies.md 8e68a5e15ee4d1e9
after.movies.tracks 8ec8aecbeb157860
after.md.missing a1c65d1a4547544d
after.no.section a1c65d1a4547544d
after.no.path a1c65d1a4547544d
after.md.changed 300828179bfb0051
truth 7614834e8caa0f9d
""",
    "B": """
root 2df71d25911d7b60
root.json b39491711298b1cc
identity 4e1a25d3ddd7828e
library f862597635a31485
library.json 830b778d78a7827c
sections 4e1cb3afe3c5db65
sections.json ef2f1bcf49f5933d
s1.section 4a3609eb92b1f2cc
s1.count b8722f5543c3dade
s1.count.above dfe1f5f77f62080b
s1.trimmed.first e8d1f7f9d15d4870
s1.trimmed.keyset e4dae4d802386a08
s1.trimmed.keyset.end bd139dfaf99547fc
s1.keys-only 37488d36c2eed732
s1.keys-only.keyset 251505973c8edd17
s1.full eb581e7f40571f35
s1.full.params-paged.guids af1d9e86fd26acef
s1.full.json 4242e2da597d6455
s1.trimmed.json 325cb5e5deaaa5f5
s1.excl.mixed e694a5bee1c5ed68
s1.excl.part-only 290b93bc9e81179c
s1.excl.stream-guid e33004302e6d46be
s1.albums 4264a05c5e103ad5
s1.albums.trimmed 4220c9f0992034e1
s1.albums.guids a8257b92832e1db8
s1.albums.endpoint 0adf39ca4836588e
s1.albums.json fbae184e4edabc2c
s1.artists 10dbdd8f58d8e0bf
s1.artists.trimmed cf0abd2818a72100
s1.artists.guids.json 55f23fd1ebab91dc
s1.meta 3d5304fca540923c
s1.meta.tracks f656bd8ae73839b1
s1.meta.json c72a1c97447979bb
s1.live.tracks a3fb605022d6b3d2
s1.live.albums.id 05cf94fb7888ee84
s1.genre.albums d2d815cdb57b844f
s1.genre.tracks d92262711f2dfee5
s1.genre.tracks.not ee1b699142850bac
s1.title 513d97eebfd8147f
s1.title.exact 6ae4f0ffa1f9615f
s1.sort.title.desc 6c03b5d51921833f
s1.sort.added 3a2ff3e915a3c0a5
s1.sort.artist e18baad55724cc90
s1.sort.viewed 562d4131fddb1f4f
s1.delta.viewed 41a584e964bdd284
s1.delta.updated 24bd47b14a0e27a1
s1.delta.recent bd139dfaf99547fc
s1.delta.rated bd139dfaf99547fc
s1.delta.albums 4023f521fd4569d2
s1.delta.artists bd139dfaf99547fc
s1.relative 36fbc17b37a34673
s1.rating b9eaf59d7fcfac84
s1.album.id 0f06b3425413332b
s1.artist.id 17cd75fca26fd248
s1.track.id e2d4d560e84faff4
s1.albums.year fc60f3fe8d997f93
s1.albums.track-title a10f13f6f529ccc3
s1.artists.country 08f2d92e2a81de49
s1.id.range 4a9659f34b6ed733
s1.bad.value 0c1a96d9d3bc62ea
s1.unknown.filter 22e26d3aa9968e39
s1.head e25bed91de7d03ce
s1.choices.genre.10 b27d4cf1f522cf4b
s1.choices.genre.9 3da02f192d682ab9
s1.choices.subformat.9 58fbff641b997d34
s1.choices.format.9 72a56f5a6e47454a
s1.choices.country.8 906db89bf391b0f5
s1.choices.mood.10 57bbbfe83870a5ed
s1.collections 936e95c357a93a2c
s1.md.tracks 06619ed1cc61068b
s1.md.tracks.full 661b65dc590900fd
s1.md.albums 595cb0bfa27590f9
s1.md.artists 9999144010c9d3ff
s1.md.albums.full b12fd1c4db37a396
s1.md.artists.full.guids c399f9995b90aeb0
s1.md.mixed.paged 5eb92fb6e47af69c
s1.md.mixed.json 9ab9afe0383bbdcd
s1.md.excl d932355bc6eced3d
s1.children.album 2f1d5d620f62d1e0
s1.children.album.json 3da9c00493351084
s1.children.artist 33ccc30489d104e5
s1.children.paged 21eaac09055f0749
s2.section 3b709a85c321b9b5
s2.count 3e9896ccb3350e79
s2.count.above 9b3a4d7c4070cd38
s2.trimmed.first 66623bff0f795159
s2.trimmed.keyset e7a81c0d188e04b5
s2.trimmed.keyset.end 9ac8d90e539f52c1
s2.keys-only 711644433acf6c20
s2.keys-only.keyset 20c51a9401ef17ab
s2.full 3847b66851461712
s2.full.params-paged.guids 07ca44d8a6d6e64f
s2.full.json 0213abc1273cd2f2
s2.trimmed.json 7cb4aac999d9477b
s2.excl.mixed 2e247ebb000ad780
s2.excl.part-only 5e1274424ccd03b1
s2.excl.stream-guid 593b166f8ca8bb43
s2.albums dcbf19c053e5d7e8
s2.albums.trimmed f7bd8c421c701c22
s2.albums.guids 66e8dbfb818ba659
s2.albums.endpoint 148c56fc62cb9ecd
s2.albums.json 134aeee192763874
s2.artists 17d27ce5c0483519
s2.artists.trimmed d5db91b8c15db39f
s2.artists.guids.json dc10192c3a688fac
s2.meta 22d4fa3c34dacce3
s2.meta.tracks ae196127c77f2b2f
s2.meta.json 80203641803d36fd
s2.live.tracks 495c35cf61a12862
s2.live.albums.id 13445d8e861f34c0
s2.genre.albums cf465480a9f145a5
s2.genre.tracks 30f23073ef4df27b
s2.genre.tracks.not 5670503b6e4822f7
s2.title 3d7e5e98153ad9ff
s2.title.exact 3d7e5e98153ad9ff
s2.sort.title.desc 6ed9dcdc185da737
s2.sort.added bf5070ee2305c386
s2.sort.artist 1c56e3e1f6759b15
s2.sort.viewed ef31e711188141ad
s2.delta.viewed 2ee25d772a99ca84
s2.delta.updated 43c0a1d7b7e6e67e
s2.delta.recent 9ac8d90e539f52c1
s2.delta.rated 9ac8d90e539f52c1
s2.delta.albums c584153b00304e50
s2.delta.artists 9ac8d90e539f52c1
s2.relative 3d7e5e98153ad9ff
s2.rating d4a3fab61970ff62
s2.album.id a74be6010d810cbb
s2.artist.id ff27c9ebda5a4b63
s2.track.id 70dd4b04c8a852d9
s2.albums.year cf465480a9f145a5
s2.albums.track-title cf465480a9f145a5
s2.artists.country 3d7e5e98153ad9ff
s2.id.range 372c6703d1f8a8f4
s2.bad.value 0c1a96d9d3bc62ea
s2.unknown.filter edf187383b4d4678
s2.head 6cd1b46cf75b6702
s2.choices.genre.10 1781818615cd9959
s2.choices.genre.9 2b9984089a60df04
s2.choices.subformat.9 24d14f60b7dffabe
s2.choices.format.9 40e62f6045ab5869
s2.choices.country.8 79b53009ffcd4bc2
s2.choices.mood.10 c50f4f8074f182ad
s2.collections 7989fd444fb8117a
s2.md.tracks 0832f002a3e3a92a
s2.md.tracks.full 9b5cbc6f68a6224a
s2.md.albums 4594c70f891ac46f
s2.md.artists b78528ac0921cae2
s2.md.albums.full 6a955c5cfbdcd353
s2.md.artists.full.guids 6bf54a25fed48ea0
s2.md.mixed.paged bdf019a4f985efe3
s2.md.mixed.json fdda9691a2ef99e6
s2.md.excl f23a95ef5cdf399f
s2.children.album f9d2d17893da1380
s2.children.album.json 1a3b57752611b32d
s2.children.artist 7dc941ebf44c6ae8
s2.children.paged b832eefeaf38fb1c
s3.section cc6a1176d0113b19
s3.count 3595603e5c0a45fe
s3.count.above 6b0a0a8354d7c984
s3.trimmed.first a43eeb06fff8a177
s3.trimmed.keyset 47d09f1835cedde4
s3.trimmed.keyset.end ef0fa90a843e5f69
s3.keys-only 0c15bddfc860258f
s3.keys-only.keyset 8207f89be4c8f5f1
s3.full 87814870bc89534d
s3.full.params-paged.guids 9347d49c62a1b35b
s3.full.json 93337420c9422d6a
s3.trimmed.json 7105cf3d60c6388f
s3.excl.mixed e723df167e33dcfb
s3.excl.part-only b3a60b8f13eb41e2
s3.excl.stream-guid ab748e1db06657fe
s3.albums a55a6ff93c32ab94
s3.albums.trimmed cbe89b0440561112
s3.albums.guids 3018026418c0e347
s3.albums.endpoint 020846c420d3839c
s3.albums.json 9fa226e7498c677e
s3.artists 6e806e121b45e45e
s3.artists.trimmed f7ad1b25f3f6ed61
s3.artists.guids.json 29444d30d27d18fe
s3.meta d84497ed00079bbb
s3.meta.tracks be538e9bcc74716f
s3.meta.json 478cc469940ba38a
s3.live.tracks 29f9081617c36c7f
s3.live.albums.id 9302a6fa3d8f16c5
s3.genre.albums 8d9b350667c9ce77
s3.genre.tracks 6054ff6961307be4
s3.genre.tracks.not 53649f0573e3cc69
s3.title 4180db882654481f
s3.title.exact ac5adee70e8613bd
s3.sort.title.desc b6ed342d82595693
s3.sort.added d5a6d253073716d9
s3.sort.artist a4587e5ceb91da82
s3.sort.viewed f16728c64d0e8068
s3.delta.viewed 2408e358ad24fd1d
s3.delta.updated 8da6b94490b2647e
s3.delta.recent ef0fa90a843e5f69
s3.delta.rated ef0fa90a843e5f69
s3.delta.albums bfa592aedbcf5d3d
s3.delta.artists ef0fa90a843e5f69
s3.relative 29f9081617c36c7f
s3.rating d0a10e1732da2faf
s3.album.id 0b75efcc6a3fb7ad
s3.artist.id 264a7bcd8cd49a94
s3.track.id a5e112f3cc0a2ca6
s3.albums.year 9302a6fa3d8f16c5
s3.albums.track-title 855e497787e6e373
s3.artists.country 0ae6ce73ef70ddfa
s3.id.range 1d191c0c292a8e3d
s3.bad.value 0c1a96d9d3bc62ea
s3.unknown.filter c26d93e6c47b9666
s3.head 6cd1b46cf75b6702
s3.choices.genre.10 6a2de8ecee058f59
s3.choices.genre.9 a031a14b623ea85f
s3.choices.subformat.9 f095c5c7fda835e4
s3.choices.format.9 f7133087c17c276e
s3.choices.country.8 6db2235fd78ddbdf
s3.choices.mood.10 841d99dfc468e56a
s3.collections d148b671fbfbcc92
s3.md.tracks 86236bde9dd7e77d
s3.md.tracks.full c27e5b508e189392
s3.md.albums 05331742bb071715
s3.md.artists 0981cf3ca5136fd7
s3.md.albums.full a53c3fbc00ce8181
s3.md.artists.full.guids a7eb460e79e60a2e
s3.md.mixed.paged ad37e7eabf9a6846
s3.md.mixed.json 6d2ed841120613e1
s3.md.excl 3072ae0e581dc02f
s3.children.album 83ff75f5ab0cafb9
s3.children.album.json e7dbdada94972005
s3.children.artist fde3dcd5fe6d38cc
s3.children.paged a44016dfe457d15a
movies 6a6a44e42ce8dbc6
movies.json f8eadf27ef9c70af
movies.md 983baee0615042ae
movies.tracks 553f137928407a1f
md.missing a1c65d1a4547544d
no.section a1c65d1a4547544d
no.path a1c65d1a4547544d
gzip.raw ad7b47e12d99362a
no.token 41d394c557c67dba
after.sections 9bf16a0ed5c3326f
after.sections.json 7e0833f28ed2a414
after.s1.section 4a3609eb92b1f2cc
after.s1.count 8abef21fb31c3fd1
after.s1.count.above ea444d74e340b2e4
after.s1.trimmed.first 90d015846ee4ee02
after.s1.trimmed.keyset 174ab85566ff6065
after.s1.trimmed.keyset.end bd139dfaf99547fc
after.s1.keys-only 279897d9d13ca1b9
after.s1.keys-only.keyset 0f84d17ede80cc69
after.s1.full c5caa840595a72bf
after.s1.full.params-paged.guids f03cbb627dd2ca4d
after.s1.full.json 928670f9af254dcd
after.s1.trimmed.json f0ead87efed989a5
after.s1.excl.mixed 77a726c864b2871f
after.s1.excl.part-only 4f865d30e25e584f
after.s1.excl.stream-guid 0e7342a3619955d4
after.s1.albums 89c669bad80f3419
after.s1.albums.trimmed 7e52c59b2fd725a0
after.s1.albums.guids 167e96993b0130b6
after.s1.albums.endpoint 96b59a88ac542fbd
after.s1.albums.json eff3066a44da3a56
after.s1.artists b3f8203235759e65
after.s1.artists.trimmed 3f3fe61a69021e06
after.s1.artists.guids.json 97309a8abfa773f6
after.s1.meta dfae86d561e749d3
after.s1.meta.tracks 8665504c82c50ce6
after.s1.meta.json a3fd3d756d0ecd6b
after.s1.live.tracks 9b3d30b77b0480eb
after.s1.live.albums.id 9ee2e5d8c7050160
after.s1.genre.albums 54e269ceb3ed4ccd
after.s1.genre.tracks 65b45efce4d93750
after.s1.genre.tracks.not 90d6c9e1b8056497
after.s1.title 68b4a9e074aa0db9
after.s1.title.exact 6ae4f0ffa1f9615f
after.s1.sort.title.desc e23ded330a5d2fcb
after.s1.sort.added 582afbc4c2108972
after.s1.sort.artist e18baad55724cc90
after.s1.sort.viewed 0b50079a4fc3d5ea
after.s1.delta.viewed a031127f96d3013c
after.s1.delta.updated 427e42e38d0619d8
after.s1.delta.recent d7d8a99653fad936
after.s1.delta.rated 6c9e2f8c4c0460a6
after.s1.delta.albums f14c0113628faedf
after.s1.delta.artists c3dfc314750a9552
after.s1.relative 06c31e5a2b9ac0ba
after.s1.rating 96901e00046b8cad
after.s1.album.id 6a6e2cbe3d40fe19
after.s1.artist.id f465c9cab1a9d266
after.s1.track.id f93a9f6d99489138
after.s1.albums.year fc60f3fe8d997f93
after.s1.albums.track-title ed829bd2cfa0184e
after.s1.artists.country 08f2d92e2a81de49
after.s1.id.range c7be97cb3cb113f3
after.s1.bad.value 0c1a96d9d3bc62ea
after.s1.unknown.filter 1c6c6e32c1cfc0cd
after.s1.head aacab2cf82f4bd06
after.s1.choices.genre.10 52588c17fee02e16
after.s1.choices.genre.9 9e30f7c40d60a657
after.s1.choices.subformat.9 58fbff641b997d34
after.s1.choices.format.9 72a56f5a6e47454a
after.s1.choices.country.8 906db89bf391b0f5
after.s1.choices.mood.10 57bbbfe83870a5ed
after.s1.collections 936e95c357a93a2c
after.s1.md.tracks 9b716f3f2c26982f
after.s1.md.tracks.full f0d198c405c6a5ce
after.s1.md.albums 0f262ac31b565ed3
after.s1.md.artists a03b251be1443474
after.s1.md.albums.full e896267c3bebf711
after.s1.md.artists.full.guids d97835d4134f2776
after.s1.md.mixed.paged 8d0167b426e9d2e6
after.s1.md.mixed.json a37c21817c6fad68
after.s1.md.excl 0b07168ec18ff7f2
after.s1.children.album 9296f7951c7dba8c
after.s1.children.album.json afb585c03f6d0e34
after.s1.children.artist d82a2eb5484d599f
after.s1.children.paged fbc84b85aebc6cef
after.s2.section 3b709a85c321b9b5
after.s2.count 3e9896ccb3350e79
after.s2.count.above 9b3a4d7c4070cd38
after.s2.trimmed.first 66623bff0f795159
after.s2.trimmed.keyset e7a81c0d188e04b5
after.s2.trimmed.keyset.end 9ac8d90e539f52c1
after.s2.keys-only 711644433acf6c20
after.s2.keys-only.keyset 20c51a9401ef17ab
after.s2.full 3847b66851461712
after.s2.full.params-paged.guids 07ca44d8a6d6e64f
after.s2.full.json 0213abc1273cd2f2
after.s2.trimmed.json 7cb4aac999d9477b
after.s2.excl.mixed 2e247ebb000ad780
after.s2.excl.part-only 5e1274424ccd03b1
after.s2.excl.stream-guid 593b166f8ca8bb43
after.s2.albums dcbf19c053e5d7e8
after.s2.albums.trimmed f7bd8c421c701c22
after.s2.albums.guids 66e8dbfb818ba659
after.s2.albums.endpoint 148c56fc62cb9ecd
after.s2.albums.json 134aeee192763874
after.s2.artists 17d27ce5c0483519
after.s2.artists.trimmed d5db91b8c15db39f
after.s2.artists.guids.json dc10192c3a688fac
after.s2.meta 22d4fa3c34dacce3
after.s2.meta.tracks ae196127c77f2b2f
after.s2.meta.json 80203641803d36fd
after.s2.live.tracks 495c35cf61a12862
after.s2.live.albums.id 13445d8e861f34c0
after.s2.genre.albums cf465480a9f145a5
after.s2.genre.tracks 30f23073ef4df27b
after.s2.genre.tracks.not 5670503b6e4822f7
after.s2.title 3d7e5e98153ad9ff
after.s2.title.exact 3d7e5e98153ad9ff
after.s2.sort.title.desc 6ed9dcdc185da737
after.s2.sort.added bf5070ee2305c386
after.s2.sort.artist 1c56e3e1f6759b15
after.s2.sort.viewed ef31e711188141ad
after.s2.delta.viewed 2ee25d772a99ca84
after.s2.delta.updated 43c0a1d7b7e6e67e
after.s2.delta.recent 9ac8d90e539f52c1
after.s2.delta.rated 9ac8d90e539f52c1
after.s2.delta.albums c584153b00304e50
after.s2.delta.artists 9ac8d90e539f52c1
after.s2.relative 3d7e5e98153ad9ff
after.s2.rating d4a3fab61970ff62
after.s2.album.id a74be6010d810cbb
after.s2.artist.id ff27c9ebda5a4b63
after.s2.track.id 70dd4b04c8a852d9
after.s2.albums.year cf465480a9f145a5
after.s2.albums.track-title cf465480a9f145a5
after.s2.artists.country 3d7e5e98153ad9ff
after.s2.id.range 372c6703d1f8a8f4
after.s2.bad.value 0c1a96d9d3bc62ea
after.s2.unknown.filter edf187383b4d4678
after.s2.head 6cd1b46cf75b6702
after.s2.choices.genre.10 1781818615cd9959
after.s2.choices.genre.9 2b9984089a60df04
after.s2.choices.subformat.9 24d14f60b7dffabe
after.s2.choices.format.9 40e62f6045ab5869
after.s2.choices.country.8 79b53009ffcd4bc2
after.s2.choices.mood.10 c50f4f8074f182ad
after.s2.collections 7989fd444fb8117a
after.s2.md.tracks 0832f002a3e3a92a
after.s2.md.tracks.full 9b5cbc6f68a6224a
after.s2.md.albums 4594c70f891ac46f
after.s2.md.artists b78528ac0921cae2
after.s2.md.albums.full 6a955c5cfbdcd353
after.s2.md.artists.full.guids 6bf54a25fed48ea0
after.s2.md.mixed.paged bdf019a4f985efe3
after.s2.md.mixed.json fdda9691a2ef99e6
after.s2.md.excl f23a95ef5cdf399f
after.s2.children.album f9d2d17893da1380
after.s2.children.album.json 1a3b57752611b32d
after.s2.children.artist 7dc941ebf44c6ae8
after.s2.children.paged b832eefeaf38fb1c
after.s3.section cc6a1176d0113b19
after.s3.count e1217b0c6a441e3a
after.s3.count.above 970a17c194887f7e
after.s3.trimmed.first 7e2de26e4f2baae5
after.s3.trimmed.keyset 2f1b6405eba193ca
after.s3.trimmed.keyset.end ef0fa90a843e5f69
after.s3.keys-only 89658197224bfaaa
after.s3.keys-only.keyset 3a648bc9122c8ed2
after.s3.full 876d5687717a0780
after.s3.full.params-paged.guids 15338cebbf2594cb
after.s3.full.json 5e4ec16ddc2d2d86
after.s3.trimmed.json db30d5ec59c7e66f
after.s3.excl.mixed b8f9b045d7986836
after.s3.excl.part-only 6a1a02d7826921f4
after.s3.excl.stream-guid 2e44171141e6dea6
after.s3.albums ee43294e02b64b41
after.s3.albums.trimmed 3c5e493a23c62c1d
after.s3.albums.guids a8edbc9cc94fac79
after.s3.albums.endpoint b0ecde3208a12f93
after.s3.albums.json 24411154af309b6a
after.s3.artists 44fda49b40e44e59
after.s3.artists.trimmed 2a7add1ea4a42b3f
after.s3.artists.guids.json c403287bad881b9c
after.s3.meta 0cf4db140ae3aa65
after.s3.meta.tracks 9b28b92c9be4aad3
after.s3.meta.json ccc13c0737607254
after.s3.live.tracks 29f9081617c36c7f
after.s3.live.albums.id 9302a6fa3d8f16c5
after.s3.genre.albums 8d9b350667c9ce77
after.s3.genre.tracks 6054ff6961307be4
after.s3.genre.tracks.not 83daf485a2b2d4dd
after.s3.title 4180db882654481f
after.s3.title.exact ac5adee70e8613bd
after.s3.sort.title.desc deb10c315db05d78
after.s3.sort.added 1ae7a93272a7f67f
after.s3.sort.artist f86878f9a4084b3a
after.s3.sort.viewed 27d1f2ccd65ca3ee
after.s3.delta.viewed 2408e358ad24fd1d
after.s3.delta.updated 2f41a682bdcd818b
after.s3.delta.recent 6079cd4ad2a4b54c
after.s3.delta.rated ef0fa90a843e5f69
after.s3.delta.albums 54d0a931cd0ade1d
after.s3.delta.artists e8139f887e7d77c3
after.s3.relative f4f82a00963d5452
after.s3.rating d0a10e1732da2faf
after.s3.album.id 0b75efcc6a3fb7ad
after.s3.artist.id 6079cd4ad2a4b54c
after.s3.track.id a5e112f3cc0a2ca6
after.s3.albums.year 9302a6fa3d8f16c5
after.s3.albums.track-title 855e497787e6e373
after.s3.artists.country 0ae6ce73ef70ddfa
after.s3.id.range a1637a830ec5d196
after.s3.bad.value 0c1a96d9d3bc62ea
after.s3.unknown.filter 072f8562ce9504b4
after.s3.head ebb0e7aaa2f4946f
after.s3.choices.genre.10 6a2de8ecee058f59
after.s3.choices.genre.9 a031a14b623ea85f
after.s3.choices.subformat.9 f095c5c7fda835e4
after.s3.choices.format.9 f7133087c17c276e
after.s3.choices.country.8 6db2235fd78ddbdf
after.s3.choices.mood.10 841d99dfc468e56a
after.s3.collections d148b671fbfbcc92
after.s3.md.tracks 86236bde9dd7e77d
after.s3.md.tracks.full 6f710342cdefc88f
after.s3.md.albums e183882141d664ff
after.s3.md.artists 39e12b0ce3a8667e
after.s3.md.albums.full f113f17c89602a4d
after.s3.md.artists.full.guids c22ec997a348abbe
after.s3.md.mixed.paged ad37e7eabf9a6846
after.s3.md.mixed.json 6d2ed841120613e1
after.s3.md.excl 3072ae0e581dc02f
after.s3.children.album 83ff75f5ab0cafb9
after.s3.children.album.json 78961b608a9c4886
after.s3.children.artist fde3dcd5fe6d38cc
after.s3.children.paged a44016dfe457d15a
after.movies 6a6a44e42ce8dbc6
after.movies.json f8eadf27ef9c70af
after.movies.md 983baee0615042ae
after.movies.tracks 553f137928407a1f
after.md.missing a1c65d1a4547544d
after.no.section a1c65d1a4547544d
after.no.path a1c65d1a4547544d
after.md.changed 36edb73d2be1626f
truth 635bc864aff657c5
""",
    "C": """
root bc4633785c34dd60
root.json 8bb13531e79c5b6e
identity a96b7fde7001d5b8
library f862597635a31485
library.json 830b778d78a7827c
sections 75b3d20a80818617
sections.json 5cba37e413e1e8c9
s1.section 4a3609eb92b1f2cc
s1.count 227ebfca569c114a
s1.count.above d38c9acdf492cd58
s1.trimmed.first 8bb836622c6dda09
s1.trimmed.keyset 354f4b0bf4c5aca6
s1.trimmed.keyset.end 6166be37ec270073
s1.keys-only 6c4c5dc7a21641d1
s1.keys-only.keyset b1f15c0effdb59f4
s1.full cc7dc644cf3bb09a
s1.full.params-paged.guids e951f453e13f8178
s1.full.json 751cd60b4f2ae1af
s1.trimmed.json a0c9d26df8204db7
s1.excl.mixed 1ce35d3ae3705058
s1.excl.part-only b78c375669da54f5
s1.excl.stream-guid 14ab82579b72ceb6
s1.albums 350f3163c2d79a78
s1.albums.trimmed a28a7f8d6748f31e
s1.albums.guids fb758b70ff6823f7
s1.albums.endpoint 2159efb22d0af15c
s1.albums.json 9e6229c1980c88ff
s1.artists 5313a4597ff34cb4
s1.artists.trimmed c8de95ec30234904
s1.artists.guids.json 46d39b2a7c2e4647
s1.meta f5af74a5e57d92f5
s1.meta.tracks 88cd8dfaf9ce7740
s1.meta.json 1d9d97ec32535ce7
s1.live.tracks 169f8df1857263e2
s1.live.albums.id e5fae5086e777a20
s1.genre.albums e5fae5086e777a20
s1.genre.tracks 6166be37ec270073
s1.genre.tracks.not 6361114ea49f6ae3
s1.title 58ec6ece90af7312
s1.title.exact 169f8df1857263e2
s1.sort.title.desc db31cfd8c53ae86e
s1.sort.added 6da48909122d170c
s1.sort.artist b35dd4bc004b67d4
s1.sort.viewed 0e3517f2859fe9a5
s1.delta.viewed 096967d89a36c91d
s1.delta.updated da00744cf5cf7d78
s1.delta.recent 6166be37ec270073
s1.delta.rated 6166be37ec270073
s1.delta.albums fd89429dc7727f29
s1.delta.artists 6166be37ec270073
s1.relative 169f8df1857263e2
s1.rating c8f6d099149212c8
s1.album.id b5fde8fdc3dff142
s1.artist.id 59ee302fda1a7d6f
s1.track.id 3290f04555bcc508
s1.albums.year 5efbf373181e4e2d
s1.albums.track-title 933c3ccbd882a5fd
s1.artists.country 169f8df1857263e2
s1.id.range 2c4cd5d553724dca
s1.bad.value 0c1a96d9d3bc62ea
s1.unknown.filter d5fafa65c87a9f5e
s1.head 7d63a4542f016a16
s1.choices.genre.10 b27d4cf1f522cf4b
s1.choices.genre.9 3da02f192d682ab9
s1.choices.subformat.9 58fbff641b997d34
s1.choices.format.9 72a56f5a6e47454a
s1.choices.country.8 906db89bf391b0f5
s1.choices.mood.10 57bbbfe83870a5ed
s1.collections 019ce8d261a8004b
s1.md.tracks d24087bdb3171060
s1.md.tracks.full 7dafcda29ae05257
s1.md.albums 1b0ae248381b4484
s1.md.artists 634115c4dd7ddd3b
s1.md.albums.full ab85640069e21458
s1.md.artists.full.guids e414352147cc6c75
s1.md.mixed.paged 13dfe6287cc6313e
s1.md.mixed.json 0cc9e5593b7fac74
s1.md.excl e4cb2e80ee20d011
s1.children.album a992c1f770d80926
s1.children.album.json 49009f564b8bb0c6
s1.children.artist b1c5b94c407ede55
s1.children.paged bb471aec6152885b
movies d3e8c6c21e1d78e0
movies.json b8b8d661560139fa
movies.md 400e5650cde599b1
movies.tracks f65a64fe28c7bfee
md.missing a1c65d1a4547544d
no.section a1c65d1a4547544d
no.path a1c65d1a4547544d
gzip.raw 043998a86d2d1416
no.token 41d394c557c67dba
after.sections 8cf0b31159451a77
after.sections.json 8e6ccc1189713562
after.s1.section 4a3609eb92b1f2cc
after.s1.count ee545673958359e4
after.s1.count.above 0fb466d816650a33
after.s1.trimmed.first 7032e855b24ddaee
after.s1.trimmed.keyset 7f6aa1111c29f1d1
after.s1.trimmed.keyset.end 6166be37ec270073
after.s1.keys-only d05302818f31e846
after.s1.keys-only.keyset dca4abf3f52b12c2
after.s1.full b77097afa6e7c1b2
after.s1.full.params-paged.guids 0337d3e679aeae80
after.s1.full.json 436009d503a3a1db
after.s1.trimmed.json cfee17ab6288fa54
after.s1.excl.mixed 12b612421e143414
after.s1.excl.part-only 83c40ae42bdccb1c
after.s1.excl.stream-guid bce450a9a742eaca
after.s1.albums 08ca8322e26f2b25
after.s1.albums.trimmed fb655901faea3bda
after.s1.albums.guids 8f9b2d13772498da
after.s1.albums.endpoint 254ccdabec617b41
after.s1.albums.json 75a43c7100cf6515
after.s1.artists 4fe43c052b0489d5
after.s1.artists.trimmed 047cd8926a840684
after.s1.artists.guids.json 2be8823822fb06d4
after.s1.meta b34197a4d3aba7f6
after.s1.meta.tracks cfa8cbe3634af15d
after.s1.meta.json e85b248ea7dee627
after.s1.live.tracks e02a27688bf276f2
after.s1.live.albums.id b5e1d6e100b7c637
after.s1.genre.albums b5e1d6e100b7c637
after.s1.genre.tracks 0519b0c87bb34e7c
after.s1.genre.tracks.not c5e7a74154008344
after.s1.title 13b0733707a98351
after.s1.title.exact 169f8df1857263e2
after.s1.sort.title.desc 07a8045b4ef394dd
after.s1.sort.added 40520ecf35965cd0
after.s1.sort.artist 67752f7862c459f9
after.s1.sort.viewed 88e4ca5da2587d92
after.s1.delta.viewed 474788e483c22769
after.s1.delta.updated a914b510892a3815
after.s1.delta.recent 24ca4eb6568baac6
after.s1.delta.rated 7fab9708fabdcb85
after.s1.delta.albums 57977e3c44fab1ab
after.s1.delta.artists bd3eea638e8e5e18
after.s1.relative 7532e054333d95fb
after.s1.rating 9f2d06897d9abdb1
after.s1.album.id a192ab17fe66ebf3
after.s1.artist.id a33e9564eb02e8c8
after.s1.track.id e0c5708286038cfa
after.s1.albums.year e5fae5086e777a20
after.s1.albums.track-title 51d0cd69c3b1d458
after.s1.artists.country 43b834b412c1e3f9
after.s1.id.range 6363879c5fa38458
after.s1.bad.value 0c1a96d9d3bc62ea
after.s1.unknown.filter 2d0f78918d2ba11c
after.s1.head 76cf3f6a467b3ac4
after.s1.choices.genre.10 52588c17fee02e16
after.s1.choices.genre.9 9e30f7c40d60a657
after.s1.choices.subformat.9 58fbff641b997d34
after.s1.choices.format.9 72a56f5a6e47454a
after.s1.choices.country.8 906db89bf391b0f5
after.s1.choices.mood.10 57bbbfe83870a5ed
after.s1.collections 019ce8d261a8004b
after.s1.md.tracks 673e9100cdcdfa69
after.s1.md.tracks.full 4dcf49fa94e94414
after.s1.md.albums c1e3fcc1ff150b86
after.s1.md.artists 5a44230c8ffbb5a7
after.s1.md.albums.full 6f872510b8989e7b
after.s1.md.artists.full.guids 9fccad50c07bdabc
after.s1.md.mixed.paged 20350c14feb05b78
after.s1.md.mixed.json f752c6758aa5c221
after.s1.md.excl 3cc1a28999691b8d
after.s1.children.album 725b33ebe05c3fef
after.s1.children.album.json 9bd42ae4e328eeee
after.s1.children.artist 64db608391228817
after.s1.children.paged fe23de693a2bca18
after.movies d3e8c6c21e1d78e0
after.movies.json b8b8d661560139fa
after.movies.md 400e5650cde599b1
after.movies.tracks f65a64fe28c7bfee
after.md.missing a1c65d1a4547544d
after.no.section a1c65d1a4547544d
after.no.path a1c65d1a4547544d
after.md.changed 1f59a00f2ec4bcb4
truth bfa7e80ec19af947
""",
}
