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


def test_listing_shape_follows_pms(sim):
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
    assert all(len(t.findall("Genre")) <= 2 for t in tracks)
    assert any(t.findall("Genre") for t in tracks)
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
        assert t.get("originalTitle") == truth["originalTitle"]
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
    sim.play_track(k, times=2)
    sim.rate_track(k, 6)
    after = lib.track(k)
    assert after["viewCount"] == before["viewCount"] + 2 and after["lastViewedAt"] == sim.now()
    assert after["userRating"] == 6.0 and after["lastRatedAt"] == sim.now()
    assert after["updatedAt"] == before["updatedAt"] and section_changed(sim) == cca
    sim.edit_track(k, title="New")
    assert lib.track(k)["updatedAt"] == sim.now() and section_changed(sim) > cca
    # album edit bumps the album only; tracks show the new album title and year
    album = before["parentRatingKey"]
    sib = [x for x in keys if lib.track(x)["parentRatingKey"] == album]
    sim.advance_clock(5)
    sim.edit_album(
        album, title="Renamed Album", year=1999, subformats=["Live"], genres=["Jazz", "New Genre"]
    )
    assert lib.album(album)["updatedAt"] == sim.now()
    assert all(lib.track(x)["updatedAt"] < sim.now() for x in sib if x != k)
    listed = xml(sim, "/library/sections/1/all", {"type": 10, "album.id": album})
    assert {(t.get("parentTitle"), t.get("parentYear")) for t in listed} == {
        ("Renamed Album", "1999")
    }
    full = xml(sim, f"/library/metadata/{album}")[0]
    assert [g.get("tag") for g in full.findall("Genre")] == ["Jazz", "New Genre"]
    assert [s.get("tag") for s in full.findall("Subformat")] == ["Live"]
    # add: keys grow, addedAt = now
    cca = section_changed(sim)
    new = sim.add_tracks(3, section_id=1)
    assert min(map(int, new)) > max(
        int(x) for s in lib.sections() for x in lib.track_keys(s["id"]) if x not in new
    )
    assert all(lib.track(x)["addedAt"] == lib.track(x)["updatedAt"] == sim.now() for x in new)
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
