"""The simulator's listening history, /accounts and /devices, over real HTTP (requests and plexapi)."""

import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests
from plexapi.exceptions import BadRequest, Unauthorized
from plexapi.server import PlexServer

from plexcache.simulator.library import BASE_TIME

SIM_TOKEN = "test-token-Ab_c-9"  # conftest.SIM_TOKEN

HIST = "/status/sessions/history/all"
LIVE_ATTRS = ["historyKey", "key", "ratingKey", "librarySectionID", "parentKey", "grandparentKey", "title",
              "grandparentTitle", "parentTitle", "type", "thumb", "parentThumb", "grandparentThumb",
              "grandparentArt", "index", "parentIndex", "viewedAt", "accountID", "deviceID"]  # fmt: skip
GONE_ATTRS = ["historyKey", "librarySectionID", "title", "grandparentTitle", "parentTitle", "type", "index",
              "parentIndex", "viewedAt", "accountID", "deviceID"]  # fmt: skip


def get(sim, path, params=None, headers=None, token=SIM_TOKEN):
    h = {"X-Plex-Token": token} if token else {}
    h.update(headers or {})
    return requests.get(sim.url + path, params=params, headers=h, timeout=30)


def entries(sim, params=None, token=SIM_TOKEN):
    r = get(sim, HIST, params, token=token)
    assert r.status_code == 200, r.status_code
    root = ET.fromstring(r.content)
    assert all(e.tag == ("Video" if e.get("type") == "movie" else "Track") for e in root)
    return root, [dict(e.attrib) for e in root]


def hid(e):
    return int(e["historyKey"].rsplit("/", 1)[1])


@pytest.fixture
def hsim(sim_factory):
    return sim_factory(tracks=800, history=1500)


def test_shape_paging_and_order(hsim):
    root, everything = entries(hsim)
    assert dict(root.attrib) == {"size": "1500"}  # unpaged: size only, like the captured answer
    assert [hid(e) for e in everything] == list(range(1, 1501))  # default order: ascending id
    assert [int(e["viewedAt"]) for e in everything] == sorted(
        int(e["viewedAt"]) for e in everything
    )
    assert all(int(e["viewedAt"]) <= BASE_TIME for e in everything)
    movies = [e for e in everything if e["type"] == "movie"]
    assert len(movies) == 15 and {e["librarySectionID"] for e in movies} == {
        "3"
    }  # every section's plays
    assert list(movies[0])[:6] == [
        "historyKey",
        "key",
        "ratingKey",
        "librarySectionID",
        "title",
        "type",
    ]
    live = [e for e in everything if "ratingKey" in e and e["type"] == "track"]
    for e in live:
        assert list(e) == [a for a in LIVE_ATTRS if a in e]
        assert e["key"] == f"/library/metadata/{e['ratingKey']}" and e["type"] == "track"
        assert set(LIVE_ATTRS) - set(e) <= {"deviceID", "index"}
    gone = [e for e in everything if "ratingKey" not in e]
    assert (
        0 < len(gone) < len(everything) // 10
    )  # plays of tracks deleted before the simulator started
    for e in gone:
        assert list(e) == [a for a in GONE_ATTRS if a in e] and e["title"]
    assert 0 < sum("deviceID" not in e for e in everything) < 60
    # paging: headers and query parameters alike, totalSize/offset and the response headers
    for how in ("headers", "params"):
        paging = {"X-Plex-Container-Start": "1400", "X-Plex-Container-Size": "70"}
        r = get(
            hsim,
            HIST,
            paging if how == "params" else None,
            headers=paging if how == "headers" else None,
        )
        root = ET.fromstring(r.content)
        assert dict(root.attrib) == {"size": "70", "totalSize": "1500", "offset": "1400"}
        assert (
            r.headers["X-Plex-Container-Start"] == "1400"
            and r.headers["X-Plex-Container-Total-Size"] == "1500"
        )
        assert [dict(e.attrib) for e in root] == everything[1400:1470]
    root, page = entries(hsim, {"X-Plex-Container-Start": 1490, "X-Plex-Container-Size": 50})
    assert root.get("size") == "10" and page == everything[1490:]
    root, page = entries(hsim, {"X-Plex-Container-Start": 5000, "X-Plex-Container-Size": 50})
    assert dict(root.attrib) == {"size": "0", "totalSize": "1500", "offset": "5000"} and page == []
    assert get(hsim, HIST, {"X-Plex-Container-Start": "x"}).status_code == 400
    assert get(hsim, HIST, token="wrong").status_code == 401
    assert hsim.request_counts["history"] >= 6


def test_filters_and_sorts_match_the_full_list(hsim):
    _, everything = entries(hsim)
    vt = sorted({int(e["viewedAt"]) for e in everything})
    t = vt[len(vt) // 2]
    cases = {
        ("viewedAt>", t): lambda e: (
            int(e["viewedAt"]) >= t
        ),  # what plexapi's mindate sends: viewedAt>=T
        ("viewedAt>>", t): lambda e: int(e["viewedAt"]) > t,
        ("viewedAt<", t): lambda e: int(e["viewedAt"]) <= t,
        ("viewedAt<<", t): lambda e: int(e["viewedAt"]) < t,
        ("librarySectionID", 2): lambda e: e["librarySectionID"] == "2",
        ("librarySectionID", "1,2"): lambda e: e["librarySectionID"] in ("1", "2"),
        ("accountID", 1): lambda e: e["accountID"] == "1",
        ("accountID!", 1): lambda e: e["accountID"] != "1",
        ("deviceID", 2): lambda e: e.get("deviceID") == "2",
    }
    for (k, v), want in cases.items():
        _, got = entries(hsim, {k: v})
        assert got == [e for e in everything if want(e)], k
        assert got, k
    # the raw operator spelling too: viewedAt>=T as it appears on the wire
    r = requests.get(
        f"{hsim.url}{HIST}?viewedAt>={t}&librarySectionID=1", headers={"X-Plex-Token": SIM_TOKEN}
    )
    assert [dict(e.attrib) for e in ET.fromstring(r.content)] == [
        e for e in everything if int(e["viewedAt"]) >= t and e["librarySectionID"] == "1"
    ]
    # metadataItemID: the track, or any track of an album or artist (plays of gone tracks never match)
    track = Counter(e["ratingKey"] for e in everything if "ratingKey" in e).most_common(1)[0][0]
    rec = hsim.library.track(track)
    for item, field in ((track, "ratingKey"), (rec["parentRatingKey"], "parentKey"),
                        (rec["grandparentRatingKey"], "grandparentKey")):  # fmt: skip
        _, got = entries(hsim, {"metadataItemID": item})
        want = [e for e in everything if e.get(field, "").rsplit("/", 1)[-1] == item]
        assert got == want and got
    # sorts; ties by ascending history id
    _, desc = entries(hsim, {"sort": "viewedAt:desc"})
    assert desc == sorted(everything, key=lambda e: (-int(e["viewedAt"]), hid(e)))
    _, asc = entries(hsim, {"sort": "viewedAt"})
    assert asc == sorted(everything, key=lambda e: (int(e["viewedAt"]), hid(e)))
    _, two = entries(hsim, {"sort": "viewedAt:desc,accountID"})
    assert two == sorted(
        everything, key=lambda e: (-int(e["viewedAt"]), int(e["accountID"]), hid(e))
    )
    _, acct = entries(hsim, {"sort": "accountID:desc,viewedAt:desc"})
    assert acct == sorted(
        everything, key=lambda e: (-int(e["accountID"]), -int(e["viewedAt"]), hid(e))
    )
    # filter + sort + paging together, the incremental recipe
    _, page = entries(hsim, {"sort": "viewedAt:desc", "viewedAt>": t, "librarySectionID": 1,
                             "X-Plex-Container-Start": 5, "X-Plex-Container-Size": 20})  # fmt: skip
    assert (
        page == [e for e in desc if int(e["viewedAt"]) >= t and e["librarySectionID"] == "1"][5:25]
    )
    # unknown filters are ignored (the whole list) and counted, as for listings
    hsim.reset_counts()
    _, got = entries(hsim, {"viewdAt>": t})
    assert got == everything and hsim.unknown_filters == Counter({"viewdAt>": 1})
    assert get(hsim, HIST, {"viewedAt>": "soon"}).status_code == 400


def test_json_carries_the_same_entries(hsim):
    _, xml_entries = entries(hsim, {"X-Plex-Container-Start": 0, "X-Plex-Container-Size": 40})
    r = get(hsim, HIST, {"X-Plex-Container-Start": 0, "X-Plex-Container-Size": 40},
            headers={"Accept": "application/json"})  # fmt: skip
    assert r.headers["Content-Type"] == "application/json"
    mc = r.json()["MediaContainer"]
    assert (mc["size"], mc["totalSize"], mc["offset"]) == (40, 1500, 0)
    for j, x in zip(mc["Metadata"], xml_entries, strict=True):
        assert isinstance(j["viewedAt"], int) and isinstance(j["accountID"], int)
        assert isinstance(j["librarySectionID"], str)  # a string in the PMS API spec
        assert {k: str(v) for k, v in j.items()} == x


def test_owner_plays_agree_with_the_owners_play_state(hsim):
    _, everything = entries(hsim)
    owner = {}
    for e in everything:
        if e["accountID"] == "1" and "ratingKey" in e and e["type"] == "track":
            owner.setdefault(e["ratingKey"], []).append(int(e["viewedAt"]))
    assert len(owner) > 20
    for key, times in owner.items():
        t = hsim.library.track(key)
        assert len(times) <= t["viewCount"]
        assert max(times) == t["lastViewedAt"]
    accounts = Counter(e["accountID"] for e in everything)
    assert accounts.most_common(1)[0][0] == "1" and len(accounts) == 4  # the owner listens most
    tracks = Counter(e.get("ratingKey") for e in everything)
    top = sum(n for _, n in tracks.most_common(len(tracks) // 10))
    assert top > 0.3 * len(everything)  # skewed: a tenth of the tracks holds over 30 % of the plays
    hours = Counter(datetime.fromtimestamp(int(e["viewedAt"]), UTC).hour for e in everything)
    assert sum(hours[h] for h in (18, 19, 20, 21)) > 3 * sum(hours[h] for h in (2, 3, 4, 5))


def test_backfill_is_deterministic_and_sized(sim_factory):
    a = sim_factory(tracks=300, history=200, seed=7)
    b = sim_factory(tracks=300, history=200, seed=7)
    c = sim_factory(tracks=300, history=200, seed=8)
    assert entries(a)[1] == entries(b)[1] != entries(c)[1]
    assert len(entries(a)[1]) == 200
    none = sim_factory(tracks=300, history=0)
    assert entries(none)[1] == [] and none.history.count() == 0
    key = none.library.track_keys()[0]
    none.play_track(key)
    assert [hid(e) for e in entries(none)[1]] == [1]


def test_plays_add_entries_and_deleted_tracks_keep_theirs(hsim):
    lib = hsim.library
    key = lib.track_keys(1)[3]
    before = lib.track(key)
    other = [a["id"] for a in hsim.history.accounts() if a["id"] > 1][0]
    hsim.advance_clock(3600)
    hsim.play_track(key)  # the owner: play state moves
    after = lib.track(key)
    assert after["viewCount"] == before["viewCount"] + 1 and after["lastViewedAt"] == hsim.now()
    hsim.play_track(
        key, account_id=other, device_id=3
    )  # another account: the owner's play state stays
    assert lib.track(key) == after
    hsim.edit_track(key, title="Renamed later")
    _, new = entries(hsim, {"viewedAt>": hsim.now() - 10})
    assert [(hid(e), e["accountID"], e.get("deviceID"), e["title"]) for e in new] == [
        (1501, "1", str(hsim.history.device_for(1)["id"]), before["title"]),
        (1502, str(other), "3", before["title"]),
    ]
    assert int(new[0]["viewedAt"]) == hsim.now()
    # an offline play uploaded later: a new id, an old viewedAt (an incremental by viewedAt alone misses it)
    r = requests.post(hsim.url + "/__sim__/mutate", headers={"X-Plex-Token": SIM_TOKEN},
                      json={"op": "add_play", "args": {"key": key, "viewed_at": 1600000000}})  # fmt: skip
    assert r.json() == {"result": 1503}
    _, mine = entries(hsim, {"metadataItemID": key})
    # the track is deleted: its entries stay, titles kept, keys gone
    hsim.delete_tracks([key])
    _, kept = entries(hsim, {"viewedAt>": hsim.now() - 10})
    assert [list(e) for e in kept] == [[a for a in GONE_ATTRS if a in e] for e in kept]
    assert [e["title"] for e in kept] == [before["title"]] * 2
    gone_ids = {hid(e) for e in mine}
    _, everything = entries(hsim)
    assert {hid(e) for e in everything if hid(e) in gone_ids and "ratingKey" not in e} == gone_ids
    assert entries(hsim, {"metadataItemID": key})[1] == []
    with pytest.raises(KeyError):
        hsim.play_track(key)


def test_single_entry_and_delete(hsim):
    r = get(hsim, "/status/sessions/history/17")
    assert [dict(e.attrib) for e in ET.fromstring(r.content)] == [entries(hsim)[1][16]]
    d = requests.delete(
        hsim.url + "/status/sessions/history/17", headers={"X-Plex-Token": SIM_TOKEN}
    )
    assert d.status_code == 200 and ET.fromstring(d.content).get("size") == "0"
    assert requests.delete(hsim.url + "/status/sessions/history/17",
                           headers={"X-Plex-Token": SIM_TOKEN}).status_code == 404  # fmt: skip
    assert get(hsim, "/status/sessions/history/17").status_code == 404
    root, everything = entries(hsim)
    assert root.get("size") == "1499" and 17 not in {hid(e) for e in everything}
    # plexapi: PlexHistory.delete()
    plex = PlexServer(hsim.url, SIM_TOKEN)
    first = plex.history(maxresults=1)[0]
    first.delete()
    assert hsim.history.count() == 1498 and first.historyKey not in {
        e["historyKey"] for e in entries(hsim)[1]
    }


def test_plexapi_history(hsim):
    plex = PlexServer(hsim.url, SIM_TOKEN)
    _, desc = entries(hsim, {"sort": "viewedAt:desc"})
    got = plex.history()  # pages through everything, sort=viewedAt:desc
    assert [h.historyKey for h in got] == [e["historyKey"] for e in desc]
    assert {type(h).__name__ for h in got} == {"TrackHistory", "MovieHistory"}
    live = next(h for h in got if h.ratingKey and h.type == "track")
    assert live.source().ratingKey == live.ratingKey and live.accountID in {
        a.id for a in plex.systemAccounts()
    }
    gone = next(h for h in got if not h.key)
    assert gone.source() is None and gone.title  # python-plexapi #1267/#1269
    mindate = datetime.fromtimestamp(int(desc[100]["viewedAt"]), UTC)
    assert [h.historyKey for h in plex.history(mindate=mindate)] == [
        e["historyKey"] for e in desc if int(e["viewedAt"]) >= int(desc[100]["viewedAt"])
    ]
    assert {h.accountID for h in plex.history(accountID=1, maxresults=50)} == {1}
    assert {h.librarySectionID for h in plex.history(librarySectionID=2, maxresults=50)} == {2}
    key = live.ratingKey
    assert {h.ratingKey for h in plex.history(ratingKey=key)} == {key}


def test_accounts_and_devices(hsim):
    r = get(hsim, "/accounts")
    root = ET.fromstring(r.content)
    assert dict(root.attrib) == {
        "size": "5",
        "identifier": "com.plexapp.system.accounts",
    }  # system + 4
    system, owner = (dict(e.attrib) for e in list(root)[:2])
    assert system == {
        "id": "0",
        "key": "/accounts/0",
        "name": "",
        "defaultAudioLanguage": "en",
        "autoSelectAudio": "1",
        "defaultSubtitleLanguage": "en",
        "subtitleMode": "1",
        "thumb": "",
    }
    assert owner["id"] == "1" and owner["name"] and owner["key"] == "/accounts/1"
    r = get(hsim, "/devices")
    root = ET.fromstring(r.content)
    assert dict(root.attrib) == {"size": "6", "identifier": "com.plexapp.system.devices"}
    for e in root:
        assert list(e.attrib) == ["id", "name", "platform", "clientIdentifier", "createdAt"]
    plex = PlexServer(hsim.url, SIM_TOKEN)
    accounts = plex.systemAccounts()
    assert [a.id for a in accounts][:2] == [0, 1] and accounts[0].name == ""
    devices = plex.systemDevices()
    assert [d.id for d in devices] == [1, 2, 3, 4, 5, 6] and all(d.createdAt for d in devices)
    _, everything = entries(hsim)
    assert {e["accountID"] for e in everything} <= {str(a.id) for a in accounts}
    assert {e["deviceID"] for e in everything if "deviceID" in e} <= {str(d.id) for d in devices}
    # new accounts and devices over the admin API
    post = {"headers": {"X-Plex-Token": SIM_TOKEN}}
    a = requests.post(
        hsim.url + "/__sim__/mutate", json={"op": "add_account", "args": {"name": "Guest"}}, **post
    )
    d = requests.post(hsim.url + "/__sim__/mutate", json={"op": "add_device", "args": {
        "name": "Phone", "platform": "Android", "account_id": a.json()["result"]["id"]}}, **post)  # fmt: skip
    aid, did = a.json()["result"]["id"], d.json()["result"]["id"]
    assert did == 7
    hsim.play_track(hsim.library.track_keys()[0], account_id=aid)
    assert entries(hsim, {"accountID": aid})[1][0]["deviceID"] == "7"
    q = requests.post(hsim.url + "/__sim__/query", json={"op": "accounts"}, **post).json()["result"]
    assert q[-1]["name"] == "Guest" and len(q) == 6
    assert requests.post(hsim.url + "/__sim__/query", json={"op": "count"}, **post).json() == {
        "result": 1501
    }


def test_managed_tokens(sim_factory):
    s = sim_factory(tracks=600, history=800)
    other = [a["id"] for a in s.history.accounts() if a["id"] > 1][0]
    s.add_managed_token("MANAGED", other)
    _, everything = entries(s)
    _, mine = entries(s, token="MANAGED")
    assert mine == [e for e in everything if e["accountID"] == str(other)] and mine
    assert entries(s, {"accountID": 1}, token="MANAGED")[1] == []
    assert [e.get("id") for e in ET.fromstring(get(s, "/accounts", token="MANAGED").content)] == [
        str(other)
    ]
    # the library still works with it; the admin endpoint does not
    assert (
        get(
            s, "/library/sections/1/all", {"type": 10, "X-Plex-Container-Size": 5}, token="MANAGED"
        ).status_code
        == 200
    )
    assert get(s, "/status/sessions/history/1", token="MANAGED").status_code == 401
    assert (
        requests.get(s.url + "/__sim__/stats", headers={"X-Plex-Token": "MANAGED"}).status_code
        == 401
    )
    plex = PlexServer(s.url, "MANAGED")
    assert {h.accountID for h in plex.history()} == {other}
    for code in ("401", "403"):
        r = sim_factory(tracks=300, history=100, managed_tokens={"M": other}, managed_history=code)
        assert get(r, HIST, token="M").status_code == int(code)
        assert get(r, "/accounts", token="M").status_code == int(code)
        assert get(r, "/library/sections", token="M").status_code == 200
        assert get(r, HIST).status_code == 200
        with pytest.raises(Unauthorized if code == "401" else BadRequest, match=f"^\\({code}\\)"):
            PlexServer(r.url, "M").history()
    with pytest.raises(ValueError, match="managed token needs a non-owner account, got 1"):
        s.add_managed_token("X", 1)
