"""Simulator server profiles over real HTTP (requests and plexapi), and the ground truth the
simulator derives from its model (``expected_cache``)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import fields, replace
from pathlib import Path

import pytest
import requests
from plexapi.server import PlexServer

from plexcache.simulator import Simulator
from plexcache.simulator import render as R
from plexcache.simulator.profiles import (
    ALL_PROFILES,
    CLASSIC,
    DEFAULT,
    LEGACY,
    ORIGINAL_DISTINCT,
    ORIGINAL_STORED,
    ORIGINAL_TAGGED,
    PROFILES,
    REALISTIC,
    Profile,
    get_profile,
)

TOKEN = "prof-Tok_en-7"
JSON_ACCEPT = {"Accept": "application/json"}
LIBRARY = {"tracks": 1500, "seed": 4, "music_sections": 2}


@pytest.fixture(scope="module")
def sims():
    "One started simulator per profile (same library), created on first use"
    started = {}

    def get(name):
        if name not in started:
            started[name] = Simulator(token=TOKEN, profile=name, **LIBRARY).start()
        return started[name]

    yield get
    for s in started.values():
        s.stop()


def fetch(sim, path, params=None, headers=None, token=True):
    h = {"X-Plex-Token": sim.token} if token else {}
    h.update(headers or {})
    r = requests.get(sim.url + path, params=params, headers=h, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return r


def xml(sim, path, params=None, headers=None):
    r = fetch(sim, path, params, headers)
    assert r.headers["Content-Type"] == "text/xml;charset=utf-8"
    return ET.fromstring(r.content)


def listing(sim, sid, t, **params):
    "Every item of a section listing, paged by 1000 as a sync would"
    items, start = [], 0
    while True:
        root = xml(sim, f"/library/sections/{sid}/all", {"type": t, **params},
                   {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": "1000"})  # fmt: skip
        items.extend(root)
        start += 1000
        if start >= int(root.get("totalSize")):
            return items


def full_items(sim, keys, **params):
    "Full items through /library/metadata batches of 500, by rating key"
    out = {}
    for i in range(0, len(keys), 500):
        root = xml(sim, "/library/metadata/" + ",".join(keys[i : i + 500]), params)
        out.update({e.get("ratingKey"): e for e in root})
    return out


def names(el, tag):
    return [c.get("tag") for c in el.findall(tag)]


def first(values, limit):
    return list(values)[:limit]  # limit None: all of them


def expected_original(rec, mode):
    "The originalTitle a profile's server sends for a model record, as docs/simulator.md says"
    own, album_artist = rec.get("originalTitle"), rec["grandparentTitle"]
    if mode == ORIGINAL_TAGGED:
        return own or rec["_artist_tag"]
    if mode == ORIGINAL_DISTINCT and own == album_artist:
        return None
    return own


# -- the profiles as data ------------------------------------------------------------------------


def test_profiles_are_data_with_distinct_real_looking_versions():
    assert ALL_PROFILES[0] == REALISTIC == "pms-1.41"
    assert sorted(ALL_PROFILES) == sorted(PROFILES) and len(set(ALL_PROFILES)) == len(ALL_PROFILES)
    assert {CLASSIC, LEGACY, "listing-1tag", "listing-3tags", "listing-alltags", "leafcount-listings",
            "ignores-exclude", "listing-subformats"} <= set(ALL_PROFILES)  # fmt: skip
    assert DEFAULT == REALISTIC  # the sync is exact on every profile (tests/test_exactness.py)
    versions = [PROFILES[n].version for n in ALL_PROFILES]
    assert len(set(versions)) == len(versions)  # the sync may remember behaviour per version
    for v in versions:
        assert re.fullmatch(r"1\.\d\d\.\d+\.\d{4,5}-[0-9a-f]{9}", v), v
    assert PROFILES[LEGACY].version.startswith("1.29.") and not PROFILES[LEGACY].track_genres
    assert all(PROFILES[n].track_genres for n in ALL_PROFILES if n != LEGACY)
    for name in ALL_PROFILES:
        p = PROFILES[name]
        assert p.name == name and p.evidence
        with pytest.raises(AttributeError):
            p.name = "x"  # frozen
    realistic = PROFILES[REALISTIC]
    assert (
        realistic.track_tags_listed,
        realistic.album_tags_listed,
        realistic.artist_tags_listed,
    ) == (0, 2, 2)
    assert not realistic.leaf_count_listed and realistic.original_title == ORIGINAL_TAGGED
    assert realistic.honours_excludes and not realistic.album_subformats_listed
    assert get_profile(None) is PROFILES[REALISTIC] and get_profile(realistic) is realistic
    with pytest.raises(ValueError) as e:
        get_profile("pms-9")
    assert (
        str(e.value)
        == f"unknown simulator profile 'pms-9'; expected one of {', '.join(ALL_PROFILES)}"
    )
    with pytest.raises(ValueError) as e:
        Simulator(tracks=10, profile="nope")
    assert str(e.value).startswith(
        "unknown simulator profile 'nope'; expected one of pms-1.41, classic"
    )
    with pytest.raises(ValueError) as e:
        replace(realistic, original_title="sometimes")
    assert (
        str(e.value)
        == "original_title must be one of ('stored', 'tagged', 'distinct'), not 'sometimes'"
    )
    with pytest.raises(ValueError) as e:
        replace(realistic, album_tags_listed=-1)
    assert str(e.value) == "album_tags_listed must be None or an int >= 0, not -1"


def test_every_profile_differs_from_the_realistic_one_by_what_its_name_says():
    realistic = PROFILES[REALISTIC]
    changed = {n: {f.name for f in fields(Profile) if getattr(PROFILES[n], f.name) != getattr(realistic, f.name)}
               - {"name", "version", "evidence"} for n in ALL_PROFILES}  # fmt: skip
    assert changed == {
        REALISTIC: set(),
        CLASSIC: {"track_tags_listed", "leaf_count_listed", "original_title"},
        LEGACY: {"track_genres", "original_title"},
        "listing-1tag": {"track_tags_listed", "album_tags_listed", "artist_tags_listed"},
        "listing-3tags": {"track_tags_listed", "album_tags_listed", "artist_tags_listed", "artist_countries_listed"},
        "listing-alltags": {"track_tags_listed", "album_tags_listed", "artist_tags_listed",
                            "artist_countries_listed"},
        "leafcount-listings": {"leaf_count_listed"},
        "ignores-exclude": {"honours_excludes"},
        "listing-subformats": {"album_subformats_listed"},
    }  # fmt: skip


def test_no_profile_is_the_realistic_one_byte_for_byte(sims):
    "Simulator() serves what Simulator(profile='pms-1.41') serves (the golden test pins classic)"
    default = Simulator(token=TOKEN, **LIBRARY).start()
    try:
        assert default.profile is PROFILES[REALISTIC]
        classic = sims(REALISTIC)
        lib = default.library
        some = ",".join(lib.track_keys()[:40] + lib.album_keys()[:20] + lib.artist_keys()[:10])
        for path, params, headers in [
            ("/", {}, {}), ("/identity", {}, {}), ("/library/sections/1/all", {"type": 10}, {}),
            ("/library/sections/1/all", {"type": 9}, JSON_ACCEPT), ("/library/sections/1/all", {"type": 8}, {}),
            ("/library/metadata/" + some, {}, {}), (f"/library/metadata/{lib.album_keys()[3]}/children", {}, {}),
        ]:  # fmt: skip
            a, b = fetch(default, path, params, headers), fetch(classic, path, params, headers)
            assert a.content == b.content and a.headers["Server"] == b.headers["Server"]
    finally:
        default.stop()


# -- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_version_in_root_identity_and_server_header(sims, name):
    sim = sims(name)
    version = PROFILES[name].version
    plex = PlexServer(sim.url, sim.token)
    assert plex.version == version
    assert plex.identity().version == version
    r = fetch(sim, "/identity", token=False)
    assert ET.fromstring(r.content).get("version") == version
    assert r.headers["Server"] == f"PlexMediaServer/{version}"
    assert fetch(sim, "/", headers=JSON_ACCEPT).json()["MediaContainer"]["version"] == version


# -- listings and full items ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_tags_in_listings_and_full_items(sims, name):
    sim, p = sims(name), PROFILES[name]
    lib = sim.library
    seen = {"track_genres": 0, "album_genres_over_2": 0, "artist_countries": 0}
    for sid in lib.music_section_ids():
        for el in listing(sim, sid, 10):
            rec = lib.record(int(el.get("ratingKey")))
            own = rec["genres"] if p.track_genres else []
            assert names(el, "Genre") == first(own, p.track_tags_listed), el.get("ratingKey")
            seen["track_genres"] += bool(rec["genres"])
        for el in listing(sim, sid, 9):
            rec = lib.record(int(el.get("ratingKey")))
            assert names(el, "Genre") == first(rec["genres"], p.album_tags_listed)
            listed = p.album_subformats_listed
            assert names(el, "Subformat") == (
                first(rec["subformats"], p.album_tags_listed) if listed else []
            )
            assert names(el, "Format") == (
                first(rec["formats"], p.album_tags_listed) if listed else []
            )
            assert el.get("leafCount") == (str(rec["leafCount"]) if p.leaf_count_listed else None)
            seen["album_genres_over_2"] += len(rec["genres"]) > 2
        for el in listing(sim, sid, 8):
            rec = lib.record(int(el.get("ratingKey")))
            assert names(el, "Genre") == first(rec["genres"], p.artist_tags_listed)
            assert names(el, "Country") == first(rec["countries"], p.artist_countries_listed)
            seen["artist_countries"] += bool(rec["countries"])
    assert min(seen.values()) > 10, seen  # the library exercises every limit
    # full items carry every tag, with ids, whatever the listings show
    keys = lib.track_keys(1)[:600] + lib.album_keys() + lib.artist_keys()
    for key, el in full_items(sim, keys).items():
        rec = lib.record(int(key))
        if rec["type"] == "track":
            assert names(el, "Genre") == (rec["genres"] if p.track_genres else [])
        elif rec["type"] == "album":
            assert (
                names(el, "Genre") == rec["genres"] and names(el, "Subformat") == rec["subformats"]
            )
            assert names(el, "Format") == rec["formats"] and el.get("leafCount") == str(
                rec["leafCount"]
            )
        else:
            assert names(el, "Genre") == rec["genres"] and names(el, "Country") == rec["countries"]
        assert all(g.get("id") and g.get("filter") for g in el.findall("Genre"))


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_album_children_are_listings_too(sims, name):
    sim, p = sims(name), PROFILES[name]
    lib = sim.library
    with_genres = [
        a
        for a in lib.album_keys(1)
        if any(lib.record(k)["genres"] for k in lib.album_track_keys(int(a)))
    ]
    for akey in with_genres[:5]:
        for el in xml(sim, f"/library/metadata/{akey}/children"):
            rec = lib.record(int(el.get("ratingKey")))
            assert names(el, "Genre") == first(
                rec["genres"] if p.track_genres else [], p.track_tags_listed
            )
            assert el.get("originalTitle") == expected_original(rec, p.original_title)


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_original_title_equal_to_the_album_artist(sims, name):
    sim, p = sims(name), PROFILES[name]
    lib = sim.library
    tracks = [lib.record(int(k)) for k in lib.track_keys(1)]
    # the model: a share of tracks whose files name the album artist as the track artist
    tagged = [t for t in tracks if not t["originalTitle"] and t["_artist_tag"]]
    distinct = [t for t in tracks if t["originalTitle"]]
    assert len(tagged) > len(tracks) // 5 and len(distinct) > 20
    assert all(t["_artist_tag"] == t["grandparentTitle"] for t in tagged)
    listed = {el.get("ratingKey"): el for el in listing(sim, 1, 10)}
    full = full_items(sim, [t["ratingKey"] for t in tagged[:50] + distinct[:50]])
    for t in tracks:
        want = expected_original(t, p.original_title)
        assert listed[t["ratingKey"]].get("originalTitle") == want
        if t["ratingKey"] in full:
            assert full[t["ratingKey"]].get("originalTitle") == want
    equal = sum(el.get("originalTitle") == el.get("grandparentTitle") for el in listed.values())
    assert (equal >= len(tagged)) if p.original_title == ORIGINAL_TAGGED else equal == 0
    # plexapi reads it from a full item
    plex = PlexServer(sim.url, sim.token)
    item = plex.fetchItem(int(tagged[0]["ratingKey"]))
    assert item.originalTitle == (
        tagged[0]["grandparentTitle"] if p.original_title == ORIGINAL_TAGGED else None
    )


def test_original_title_edited_to_the_album_artist(sim_factory):
    "An edit that names the album artist as the track artist: sent as stored, as tagged, or left out"
    out = {}
    for name in (CLASSIC, REALISTIC, LEGACY):
        sim = sim_factory(tracks=300, seed=2, profile=name)
        key = sim.library.track_keys()[5]
        artist = sim.library.track(key)["grandparentTitle"]
        sim.edit_track(key, originalTitle=artist)
        out[name] = xml(sim, f"/library/metadata/{key}")[0].get("originalTitle")
        assert (
            xml(sim, "/library/sections/1/all", {"type": 10, "id": key})[0].get("originalTitle")
            == out[name]
        )
        assert sim.expected_tracks()[key]["track_artist"] is None  # the README: NULL when equal
    assert out == {CLASSIC: artist, REALISTIC: artist, LEGACY: None}
    assert PROFILES[CLASSIC].original_title == ORIGINAL_STORED


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_exclude_fields_and_elements(sims, name):
    sim, p = sims(name), PROFILES[name]
    trim = {
        "excludeElements": "Media,Genre,Guid",
        "excludeFields": "title,summary,parentTitle,leafCount",
    }
    for t in (10, 9, 8):
        for el in xml(sim, "/library/sections/1/all", {"type": t, "includeGuids": 1, **trim},
                      {"X-Plex-Container-Size": "200"}):  # fmt: skip
            assert ("title" in el.attrib) == (not p.honours_excludes)
            assert el.get("ratingKey") and el.get("type")  # never trimmed
            if t == 10:
                assert (el.find("Media") is None) == p.honours_excludes
    # keys only, as a sync's deletion scan asks
    keys_only = {"excludeElements": "Media,Part,Stream,Genre,Guid,Mood,Image,Country,Style",
                 "excludeFields": "title,titleSort,originalTitle,parentTitle,grandparentTitle,type,key,parentRatingKey,"
                 "grandparentRatingKey,index,parentIndex,userRating,viewCount,skipCount,lastViewedAt,lastRatedAt,"
                 "parentYear,year,duration,addedAt,updatedAt,parentStudio,summary,thumb,art,parentThumb,"
                 "grandparentThumb,grandparentArt,guid,parentGuid,grandparentGuid,parentKey,grandparentKey,"
                 "musicAnalysisVersion,ratingCount"}  # fmt: skip
    root = xml(
        sim,
        "/library/sections/1/all",
        {"type": 10, "sort": "id", **keys_only},
        {"X-Plex-Container-Size": "50"},
    )
    assert [e.get("ratingKey") for e in root] == sim.library.track_keys(1)[:50]
    assert all((set(e.attrib) == {"ratingKey", "key", "type"}) == p.honours_excludes for e in root)
    full = xml(sim, "/library/metadata/" + ",".join(sim.library.album_keys(1)[:5]), trim)
    assert all(("leafCount" in e.attrib) == (not p.honours_excludes) for e in full)
    assert all(bool(e.findall("Subformat") or e.findall("Format")) for e in full)  # not excluded


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_live_subformat_and_its_filter(sims, name):
    sim, p = sims(name), PROFILES[name]
    lib = sim.library
    live = [k for k in lib.album_keys(1) if "Live" in lib.album(k)["subformats"]]
    assert len(live) > 3
    listed = {e.get("ratingKey"): e for e in listing(sim, 1, 9)}
    assert all(("Live" in names(listed[k], "Subformat")) == p.album_subformats_listed for k in live)
    full = full_items(sim, live)
    assert all("Live" in names(full[k], "Subformat") for k in live)
    # the filter finds them on every profile, whatever the listings show
    root = xml(sim, "/library/sections/1/all", {"type": 9, "subformat": "Live", "resolveTags": 1})
    assert [e.get("ratingKey") for e in root] == live
    tracks = xml(
        sim, "/library/sections/1/all", {"type": 10, "album.subformat": "Live", "resolveTags": 1}
    )
    assert [e.get("ratingKey") for e in tracks] == [
        str(k) for a in live for k in lib.album_track_keys(int(a))
    ]


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_json_on_request_xml_otherwise(sims, name):
    "Every profile negotiates: JSON only with Accept: application/json (§3.1), same data as the XML"
    sim, p = sims(name), PROFILES[name]
    lib = sim.library
    for path, params in [
        ("/library/sections/1/all", {"type": 10}), ("/library/sections/1/all", {"type": 9}),
        ("/library/sections/1/all", {"type": 8}),
        ("/library/metadata/" + ",".join(lib.track_keys(1)[:200] + lib.album_keys(1)[:30]), {}),
    ]:  # fmt: skip
        paging = {"X-Plex-Container-Start": "0", "X-Plex-Container-Size": "300"}
        r = fetch(sim, path, params, {**JSON_ACCEPT, **paging})
        assert r.headers["Content-Type"] == "application/json"
        items = r.json()["MediaContainer"]["Metadata"]
        root = xml(sim, path, params, paging)
        assert [i["ratingKey"] for i in items] == [e.get("ratingKey") for e in root]
        for i, e in zip(items, root, strict=True):
            for tag in ("Genre", "Subformat", "Format", "Country"):
                assert [g["tag"] for g in i.get(tag, [])] == names(e, tag), (i["ratingKey"], tag)
            for attr in ("leafCount", "originalTitle"):
                assert (str(i[attr]) if attr in i else None) == e.get(attr)
    # listing tags are bare in JSON, as in XML (§3.1)
    r = fetch(
        sim, "/library/sections/1/all", {"type": 9}, {**JSON_ACCEPT, "X-Plex-Container-Size": "50"}
    )
    genres = [g for i in r.json()["MediaContainer"]["Metadata"] for g in i.get("Genre", [])]
    assert genres and all(set(g) == {"tag"} for g in genres)
    assert all(len(i.get("Genre", [])) == len(first(lib.album(i["ratingKey"])["genres"], p.album_tags_listed))
               for i in r.json()["MediaContainer"]["Metadata"])  # fmt: skip


def test_plexapi_sees_partial_listings_and_full_items(sims):
    "plexapi on the realistic profile: listed tracks have no genres, fetched ones do; no leafCount in album listings"
    sim = sims(REALISTIC)
    lib = sim.library
    plex = PlexServer(sim.url, sim.token)
    section = plex.library.sectionByID(1)
    own = [k for k in lib.track_keys(1) if lib.track(k)["genres"]][:5]
    before = sim.total_requests
    listed = section.search(libtype="track", filters={"track.id": [int(k) for k in own]})
    assert [t.ratingKey for t in listed] == [int(k) for k in own]
    assert all(t._data.findall("Genre") == [] for t in listed)
    fetched = plex.fetchItems([int(k) for k in own])
    assert [[g.tag for g in t.genres] for t in fetched] == [lib.track(k)["genres"] for k in own]
    albums = section.search(libtype="album", maxresults=20)
    assert albums and all("leafCount" not in a._data.attrib for a in albums)
    full = plex.fetchItems([a.ratingKey for a in albums])
    assert [a.leafCount for a in full] == [lib.album(a.ratingKey)["leafCount"] for a in albums]
    assert sim.total_requests - before <= 8  # nothing reloaded item by item


# -- switching profile, admin, CLI -------------------------------------------------------------------


def test_set_profile_and_admin_endpoint(sim_factory):
    sim = sim_factory(tracks=200, seed=3, token=TOKEN)
    s = requests.Session()
    s.headers["X-Plex-Token"] = TOKEN
    admin = sim.url + "/__sim__/"
    stats = s.get(admin + "stats").json()
    assert (stats["profile"], stats["version"]) == (
        REALISTIC,
        PROFILES[REALISTIC].version,
    )  # the default
    r = s.post(admin + "profile", json={"name": LEGACY})
    assert r.status_code == 200 and r.json() == {
        "profile": LEGACY,
        "version": PROFILES[LEGACY].version,
    }
    assert (
        ET.fromstring(s.get(sim.url + "/identity").content).get("version")
        == PROFILES[LEGACY].version
    )
    r = s.post(admin + "profile", json={"name": "pms-0"})
    assert r.status_code == 400
    assert r.json() == {
        "error": f"unknown simulator profile 'pms-0'; expected one of {', '.join(ALL_PROFILES)}"
    }
    assert s.post(admin + "profile", json={}).json() == {"error": 'profile needs {"name": NAME}'}
    assert sim.profile.name == LEGACY
    truth = s.post(admin + "query", json={"op": "expected_tracks"}).json()["result"]
    assert truth == json.loads(json.dumps(sim.expected_tracks()))
    # same library, same machine: only what the server sends changed
    assert sim.set_profile(CLASSIC).name == CLASSIC
    assert PlexServer(sim.url, TOKEN).version == PROFILES[CLASSIC].version


def test_cli_simulate_profile():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLEX_", "PLEXAPI_"))}
    root = Path(__file__).parent.parent
    bad = subprocess.run([sys.executable, "-m", "plexcache", "simulate", "--profile", "pms-0", "--port", "0"],
                         capture_output=True, text=True, env=env, cwd=root, timeout=60)  # fmt: skip
    assert bad.returncode == 2  # bad usage (issue #13)
    assert (
        bad.stderr
        == f"Error: unknown simulator profile 'pms-0'; expected one of {', '.join(ALL_PROFILES)}\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "plexcache", "simulate", "--profile", REALISTIC, "--port", "0",
                             "--tracks", "50", "--token", TOKEN], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=root)  # fmt: skip
    try:
        line = proc.stdout.readline()
        version = PROFILES[REALISTIC].version
        m = re.fullmatch(rf"Plex Media Server simulator on (http://127\.0\.0\.1:\d+) \(50 tracks, seed 1, profile "
                         rf"pms-1\.41: PMS {re.escape(version)}\)\n", line)  # fmt: skip
        assert m, line
        r = requests.get(m.group(1) + "/identity", timeout=10)
        assert ET.fromstring(r.content).get("version") == version
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the fast writers and the element builders agree on every profile ---------------------------------


def test_writers_match_the_element_builders_on_every_profile():
    sim = Simulator(tracks=700, seed=5, music_sections=2, token="t")
    lib = sim.library
    tracks, albums, artists = lib.track_keys(), lib.album_keys(), lib.artist_keys()
    artist_of = lib.track(tracks[1])["grandparentTitle"]
    lib.edit_track(tracks[0], genres=["A & B", "C<D>", "E", "F"], originalTitle=0)
    lib.edit_track(tracks[1], originalTitle=artist_of)
    lib.edit_album(
        albums[0],
        subformats=["Live", "Demo", "Remix"],
        formats=["EP"],
        genres=["Rock", "Pop", "Jazz", "Soul"],
    )
    lib.edit_artist(
        artists[0], countries=["Japan", "Iceland", "France"], genres=["Ambient", "Noise", "Pop"]
    )
    lib.add_tracks(3, section_id=2)
    keys = tracks[::5] + tracks[:3] + albums[:60] + artists[:40] + lib.track_keys(2)[-3:]
    recs = [lib.record(int(k)) for k in keys]
    trims = [((), ()), (("Part", "Guid", "Stream"), ("summary", "thumb", "guid", "ratingCount")),
             (("Media", "Genre"), ("title",)), (("Country", "Subformat"), ("leafCount", "originalTitle"))]  # fmt: skip
    checked = rows_checked = 0
    for name in ALL_PROFILES:
        for elements, flds in trims:
            for detail in (False, True):
                opts = R.Options(
                    excl_elements=elements, excl_fields=flds, detail=detail, profile=name
                )
                for rec in recs:
                    sec = lib.section(rec["librarySectionID"])
                    out: list = []
                    R._emit(R.item_element(rec, sec, opts), out)
                    assert R.xml_item(rec, sec, opts) == "".join(out), (
                        name,
                        rec["ratingKey"],
                        opts.key,
                    )
                    checked += 1
                writer = R.item_writer("track", opts)
                if writer.rows:  # unedited tracks written from rows, as in a big library
                    lib._tracks_cached = False
                    try:
                        rows = lib.records([int(k) for k in tracks[::2]], rows=True)
                    finally:
                        lib._tracks_cached = True
                    full = lib.records([int(k) for k in tracks[::2]])
                    assert [writer.write(r, lib.section(1)) for r in rows] == [
                        R.xml_item(r, lib.section(1), opts) for r in full]  # fmt: skip
                    rows_checked += 1
    assert checked > 10000 and rows_checked >= len(ALL_PROFILES)


# -- ground truth from the model ------------------------------------------------------------------------


def truth_from_the_wire(sim) -> dict:
    """The README's column rules applied to full items read over HTTP (the server's own answer)"""
    lib = sim.library
    out = {}
    albums = full_items(sim, lib.album_keys())
    artists = full_items(sim, lib.artist_keys())
    for key, el in full_items(sim, lib.track_keys()).items():
        a = el.attrib
        album, artist = albums[a["parentRatingKey"]], artists[a["grandparentRatingKey"]]
        own = a.get("originalTitle")
        out[key] = {
            "artist": own or a["grandparentTitle"],
            "track_artist": own if own != a["grandparentTitle"] else None,
            "album": a["parentTitle"],
            "album_artist": a["grandparentTitle"],
            "year": int(a["parentYear"]) if "parentYear" in a else None,
            "genres": names(el, "Genre") or names(album, "Genre") or names(artist, "Genre"),
            "user_rating": round(float(a["userRating"])) if "userRating" in a else None,
            "is_live": int("Live" in names(album, "Subformat")),
            "play_count": int(a.get("viewCount", 0)),
            "track_number": int(a["index"]) if "index" in a else None,
        }
    return out


@pytest.mark.parametrize("name", [REALISTIC, LEGACY, CLASSIC])
def test_expected_cache_is_what_the_server_serves_in_full(sim_factory, name):
    sim = sim_factory(tracks=800, seed=12, profile=name)
    rnd = random.Random(1)
    lib = sim.library
    keys = lib.track_keys()
    for k in rnd.sample(keys, 20):
        sim.rate_track(k, rnd.choice([None, 0, 3, 7.0, 10]))
        sim.play_track(k)
    sim.edit_album(lib.album_keys()[2], genres=[], subformats=["Live"])
    sim.edit_artist(lib.artist_keys()[1], title="Renamed & Co")
    sim.delete_tracks(keys[30:45])
    sim.add_tracks(3, section_id=2)
    expected = sim.expected_tracks()
    assert set(expected) == set(lib.track_keys())
    wire = truth_from_the_wire(sim)
    assert set(wire) == set(expected)
    for key, want in wire.items():
        got = {k: expected[key][k] for k in want}
        assert got == want, key
    if name == LEGACY:  # no track genres on this server: never a track's own
        assert all(row["genres"] == (lib.album(row["album_rating_key"])["genres"]
                                     or lib.artist(row["artist_rating_key"])["genres"]) for row in expected.values())  # fmt: skip


def test_expected_cache_follows_the_column_rules(sim_factory):
    sim = sim_factory(tracks=3000, seed=11, profile=REALISTIC)
    lib = sim.library
    key = lib.track_keys()[7]
    sim.edit_track(key, originalTitle=lib.track(key)["grandparentTitle"])
    cache = sim.expected_cache()
    assert set(cache) == {"tracks", "albums", "artists"}
    assert set(cache["albums"]) == set(lib.album_keys()) and set(cache["artists"]) == set(
        lib.artist_keys()
    )
    seen = {"own_artist": 0, "equal_artist": 0, "own_genres": 0, "album_genres": 0, "artist_genres": 0, "live": 0,
            "no_year": 0, "rated": 0, "no_duration": 0}  # fmt: skip
    for key, row in cache["tracks"].items():
        t = lib.track(key)
        album, artist = lib.album(t["parentRatingKey"]), lib.artist(t["grandparentRatingKey"])
        assert list(row) == ["rating_key", "title", "artist", "album", "duration_ms", "year", "genres", "user_rating",
                             "is_live", "updated_at", "album_artist", "track_artist", "track_number", "disc_number",
                             "play_count", "skip_count", "last_played_at", "last_rated_at", "added_at", "codec",
                             "bitrate", "album_rating_key", "artist_rating_key", "section_id"]  # fmt: skip
        own = t["originalTitle"]
        assert (
            row["artist"] == (own or t["grandparentTitle"])
            and row["album_artist"] == t["grandparentTitle"]
        )
        assert row["track_artist"] == (own if own != t["grandparentTitle"] else None)
        seen["own_artist"] += row["track_artist"] is not None
        seen["equal_artist"] += own == t["grandparentTitle"]
        assert row["album"] == t["parentTitle"] == album["title"]
        assert row["year"] == album["year"]
        seen["no_year"] += row["year"] is None
        if t["genres"]:
            assert row["genres"] == t["genres"]
            seen["own_genres"] += 1
        elif album["genres"]:
            assert row["genres"] == album["genres"]
            seen["album_genres"] += 1
        else:
            assert row["genres"] == artist["genres"]
            seen["artist_genres"] += 1
        assert row["user_rating"] == (round(t["userRating"]) if t["userRating"] else None)
        seen["rated"] += row["user_rating"] is not None
        assert row["is_live"] == ("Live" in album["subformats"])
        seen["live"] += row["is_live"]
        assert row["duration_ms"] == t["duration"]
        seen["no_duration"] += row["duration_ms"] is None
        assert row["updated_at"] == iso(t["updatedAt"]) and row["added_at"] == iso(t["addedAt"])
        assert row["last_played_at"] == iso(t["lastViewedAt"]) and row["last_rated_at"] == iso(
            t["lastRatedAt"]
        )
        assert (row["play_count"], row["skip_count"]) == (t["viewCount"], t["skipCount"])
        assert (row["track_number"], row["disc_number"]) == (t["index"], t["parentIndex"])
        assert (row["codec"], row["bitrate"]) == (t["media"]["audioCodec"], t["media"]["bitrate"])
        assert (row["album_rating_key"], row["artist_rating_key"]) == (
            t["parentRatingKey"],
            t["grandparentRatingKey"],
        )
        assert row["section_id"] == t["librarySectionID"]
    assert min(seen.values()) > 0, seen
    album_key = lib.album_keys()[0]
    assert cache["albums"][album_key] == {
        "rating_key": album_key, "title": lib.album(album_key)["title"], "artist": lib.album(album_key)["parentTitle"],
        "year": lib.album(album_key)["year"], "genres": lib.album(album_key)["genres"],
        "subformats": lib.album(album_key)["subformats"], "is_live": int("Live" in lib.album(album_key)["subformats"]),
        "studio": lib.album(album_key)["studio"], "added_at": iso(lib.album(album_key)["addedAt"]),
        "updated_at": iso(lib.album(album_key)["updatedAt"]),
        "artist_rating_key": lib.album(album_key)["parentRatingKey"], "section_id": 1,
    }  # fmt: skip


def iso(epoch):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else None


def test_docs_list_every_profile_as_it_is():
    "docs/simulator.md's profile table: every profile, its version and its listing limits"
    text = (Path(__file__).parent.parent / "docs" / "simulator.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(
            r"\| `([a-z0-9.-]+)`[^|]* \| (\S+) \| (\w+) \| (\w+) / (\w+) \| (\w+) \| (\S+) \|", line
        )
        if m:
            rows[m.group(1)] = m.groups()[1:]

    def count(n):
        return "all" if n is None else str(n)

    assert sorted(rows) == sorted(ALL_PROFILES)
    for name, (version, tracks, albums, artists, countries, leaf) in rows.items():
        p = PROFILES[name]
        assert version == p.version
        assert (tracks, albums, artists, countries) == tuple(
            map(
                count,
                (
                    p.track_tags_listed,
                    p.album_tags_listed,
                    p.artist_tags_listed,
                    p.artist_countries_listed,
                ),
            )
        )
        assert leaf.strip("*") == ("yes" if p.leaf_count_listed else "no")


def test_diff_cache_counts_what_differs(tmp_path):
    "diff_cache on a real SQLite file written from the ground truth, then damaged"
    import sqlite3

    from plexcache.simulator.truth import diff_cache

    sim = Simulator(tracks=300, seed=6, token="t", profile=REALISTIC)
    expected = sim.expected_cache()
    db = tmp_path / "c.db"
    conn = sqlite3.connect(db)
    for table, rows in expected.items():
        cols = list(next(iter(rows.values())))
        conn.execute(f"create table {table} ({', '.join(cols)})")
        conn.executemany(f"insert into {table} values ({', '.join('?' * len(cols))})",
                         [[json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v for v in r.values()]
                          for r in rows.values()])  # fmt: skip
    conn.commit()
    assert diff_cache(db, expected) == {"tracks": {}, "albums": {}, "artists": {}}
    keys = sorted(expected["tracks"])
    conn.execute(
        "update tracks set genres = '[]', track_artist = artist where rating_key in (?, ?)",
        keys[:2],
    )
    conn.execute("delete from tracks where rating_key = ?", keys[2:3])
    conn.execute("insert into artists (rating_key, name) values ('999999', 'Gone')")
    conn.commit()
    conn.close()
    diff = diff_cache(db, expected)
    assert diff["artists"] == {"extra": 1} and diff["albums"] == {}
    assert diff["tracks"]["missing"] == 1 and set(diff["tracks"]) == {
        "missing",
        "genres",
        "track_artist",
    }
