"""The simulator's notification websocket, over real sockets: the `websockets` client (what a
watcher would use, token in a header) and plexapi's AlertListener (websocket-client, token in the URL)."""

import json
import threading
import time

import pytest
import requests
from plexapi.server import PlexServer
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

SIM_TOKEN = "test-token-Ab_c-9"  # conftest.SIM_TOKEN
LIB = "com.plexapp.plugins.library"


def ws_url(sim, path="/:/websockets/notifications", query=""):
    return sim.url.replace("http://", "ws://") + path + query


def open_ws(sim, token=SIM_TOKEN, **kw):
    ws = connect(
        ws_url(sim, **kw),
        additional_headers={"X-Plex-Token": token} if token else {},
        open_timeout=5,
    )
    ws.sim = sim
    return ws


def wait_connected(sim, n=1):
    deadline = time.monotonic() + 5
    while sim.notify.stats()["connections"] < n:
        assert time.monotonic() < deadline, "client never registered"
        time.sleep(0.01)


def recv_all(ws, quiet=0.4, raw=False):
    "every message until none arrives for `quiet` seconds, once the simulator's queues are empty"
    sim = ws.sim
    deadline = time.monotonic() + 10
    while sim.notify.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.01)
    out = []
    while True:
        try:
            m = ws.recv(timeout=quiet)
        except TimeoutError:
            return out
        out.append(m if raw else json.loads(m)["NotificationContainer"])


def admin(sim, **body):
    r = requests.post(
        sim.url + "/__sim__/notify", json=body, headers={"X-Plex-Token": SIM_TOKEN}, timeout=10
    )
    assert r.status_code == 200, r.text
    return r.json()


def timeline(rec, state, metadata_state=None, kind=10, updated=None):
    e = {
        "identifier": LIB,
        "sectionID": str(rec["librarySectionID"]),
        "itemID": str(rec["ratingKey"]),
    }
    if kind in (9, 10):
        e["parentItemID"] = str(rec["parentRatingKey"])
        e["rootItemID"] = str(rec["grandparentRatingKey"] if kind == 10 else rec["parentRatingKey"])
    e.update({"type": kind, "title": rec["title"], "state": state})
    if metadata_state:
        e["metadataState"] = metadata_state
    e["updatedAt"] = updated if updated is not None else rec["updatedAt"]
    return {"type": "timeline", "size": 1, "TimelineEntry": [e]}


def activity(msg, event, type_, title, subtitle, progress, context):
    uuid = msg["ActivityNotification"][0]["uuid"]
    act = {"uuid": uuid, "type": type_, "cancellable": False, "userID": 1, "title": title, "subtitle": subtitle,
           "progress": progress, "Context": context}  # fmt: skip
    return {
        "type": "activity",
        "size": 1,
        "ActivityNotification": [{"event": event, "uuid": uuid, "Activity": act}],
    }


def test_each_mutation_sends_what_pms_sends(sim):
    lib = sim.library
    key = lib.track_keys(1)[4]
    with open_ws(sim) as ws:
        wait_connected(sim)
        # an edit: a refresh activity around a timeline state 5
        rec = sim.edit_track(key, title="Edited")
        got = recv_all(ws)
        ctx = {"accessible": True, "analyzed": False, "exists": True, "key": f"/library/metadata/{key}",
               "refreshed": True}  # fmt: skip
        assert got == [
            activity(got[0], "started", "library.refresh.items", "Refreshing Edited", "", 0, ctx),
            timeline(rec, 5),
            activity(got[0], "ended", "library.refresh.items", "Refreshing Edited", "", 100, ctx),
        ]
        album = sim.edit_album(rec["parentRatingKey"], title="Album Edited")
        got = recv_all(ws)
        assert got[1] == timeline(album, 5, kind=9) and len(got) == 3
        # a rating: one timeline state 5, updatedAt unchanged
        rated = sim.rate_track(key, 8)
        assert rated["updatedAt"] == rec["updatedAt"]
        assert recv_all(ws) == [timeline(rated, 5)]
        # a play: playing, then stopped; the history entry exists once stopped arrives
        played = sim.play_track(key)
        got = ws.recv(timeout=2), ws.recv(timeout=2)
        assert sim.history.entries(metadataItemID=key)[-1]["viewedAt"] == played["lastViewedAt"]
        dev = sim.history.device_for(1)["clientIdentifier"]
        states = [json.loads(m)["NotificationContainer"] for m in got]
        base = {"sessionKey": "1", "clientIdentifier": dev, "guid": "", "ratingKey": key, "url": "",
                "key": f"/library/metadata/{key}"}  # fmt: skip
        assert states == [
            {"type": "playing", "size": 1, "PlaySessionStateNotification": [
                dict(base, viewOffset=0, playQueueItemID=1, state="playing")]},
            {"type": "playing", "size": 1, "PlaySessionStateNotification": [
                dict(base, viewOffset=played["duration"], playQueueItemID=1, state="stopped")]}]  # fmt: skip
        # additions: a scan activity; the new artist, album, tracks created (0) then processed (5)
        sim.advance_clock(60)
        new = sim.add_tracks(2, section_id=2)
        got = recv_all(ws)
        t1, t2 = lib.track(new[0]), lib.track(new[1])
        artist, album = lib.artist(t1["grandparentRatingKey"]), lib.album(t1["parentRatingKey"])
        items = [(artist, 8), (album, 9), (t1, 10), (t2, 10)]
        scan = ("library.update.section", "Scanning Classical")
        assert got == [activity(got[0], "started", *scan, "", 0, {"librarySectionID": "2"})] + [
            timeline(dict(r, librarySectionID=2), 0, "created", kind=k) for r, k in items] + [
            activity(got[0], "updated", *scan, t2["title"], 50, {"librarySectionID": "2"})] + [
            timeline(dict(r, librarySectionID=2), 5, kind=k) for r, k in items] + [
            activity(got[0], "ended", *scan, "", 100, {"librarySectionID": "2"})]  # fmt: skip
        # deletions: state 9, and the album and artist left empty go too
        sim.delete_tracks(new)
        got = recv_all(ws)
        entries = [m["TimelineEntry"][0] for m in got if m["type"] == "timeline"]
        assert [(e["itemID"], e["type"], e["state"], e["metadataState"]) for e in entries] == [
            (new[0], 10, 9, "deleted"), (new[1], 10, 9, "deleted"), (album["ratingKey"], 9, 9, "deleted"),
            (artist["ratingKey"], 8, 9, "deleted")]  # fmt: skip
        assert [m["ActivityNotification"][0]["event"] for m in got if m["type"] == "activity"] == [
            "started",
            "ended",
        ]
    stats = sim.notify.stats()
    assert (
        stats["published"] == {"activity": 9, "timeline": 15, "playing": 2}
        and stats["messages"] == 26
    )
    assert stats["frames_sent"] == 26 and stats["connects"] == 1


def test_plexapi_alert_listener_receives_the_same(sim):
    got, errors = [], []
    plex = PlexServer(sim.url, SIM_TOKEN)
    listener = plex.startAlertListener(callback=got.append, callbackError=errors.append)
    try:
        with open_ws(sim) as ws:
            wait_connected(sim, 2)
            key = sim.library.track_keys(1)[0]
            rec = sim.rate_track(key, 4)
            sim.edit_track(key, title="Listened")
            sim.play_track(key)
            new = sim.add_tracks(1)
            sim.delete_tracks(new)
            want = recv_all(ws)
        deadline = time.monotonic() + 5
        while len(got) < len(want) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got[0] == timeline(rec, 5) and errors == []
        assert got == want and len(want) == 1 + 3 + 2 + 9 + 5
    finally:
        listener.stop()


def test_token_header_or_query_and_401_before_upgrade(sim):
    with connect(ws_url(sim, query=f"?X-Plex-Token={SIM_TOKEN}")) as ws:
        ws.sim = sim
        wait_connected(sim)
        sim.rate_track(sim.library.track_keys()[0], 2)
        assert recv_all(ws)[0]["type"] == "timeline"
    for token in ("wrong", None):
        with pytest.raises(InvalidStatus) as e:
            open_ws(sim, token=token)
        assert e.value.response.status_code == 401
    # the path the PMS API spec names works too
    with open_ws(sim, path="/:/websocket/notifications"):
        pass
    # a plain GET (no upgrade) on the path is no websocket: 404 like any unknown page
    r = requests.get(sim.url + "/:/websockets/notifications", headers={"X-Plex-Token": SIM_TOKEN})
    assert r.status_code == 404
    # an upgrade that is no websocket handshake (no Sec-WebSocket-Key) is a 400
    r = requests.get(sim.url + "/:/websockets/notifications", headers={
        "X-Plex-Token": SIM_TOKEN, "Upgrade": "websocket", "Connection": "Upgrade"})  # fmt: skip
    assert r.status_code == 400
    assert sim.request_counts["notifications"] >= 6


def test_notifications_off_answers_404(sim):
    admin(sim, op="disable")
    with pytest.raises(InvalidStatus) as e:
        open_ws(sim)
    assert e.value.response.status_code == 404
    sim.rate_track(sim.library.track_keys()[0], 2)
    assert sim.notify.stats()["messages"] == 0  # nothing is built while off
    admin(sim, op="enable")
    with open_ws(sim) as ws:
        wait_connected(sim)
        sim.rate_track(sim.library.track_keys()[0], 4)
        assert len(recv_all(ws)) == 1


def test_off_while_connected_closes_with_going_away(sim_factory):
    s = sim_factory(notifications=True)
    with open_ws(s) as ws:
        wait_connected(s)
        s.notify.set_enabled(False)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=3)
        assert e.value.rcvd.code == 1001


def test_admin_drop_and_close(sim):
    with open_ws(sim) as ws:
        wait_connected(sim)
        assert admin(sim, op="drop")["dropped"] == 1
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=3)
        assert e.value.rcvd is None  # no close frame: the connection just went away
    with open_ws(sim) as ws:
        wait_connected(sim)
        admin(sim, op="close", code=1011)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=3)
        assert e.value.rcvd.code == 1011
    # reconnecting works, and changes made while disconnected were never announced
    sim.rate_track(sim.library.track_keys()[1], 6)
    with open_ws(sim) as ws:
        wait_connected(sim)
        assert recv_all(ws) == []
    assert sim.notify.stats()["connects"] == 3


def test_admin_delay_reorder_malformed(sim):
    keys = sim.library.track_keys()
    with open_ws(sim) as ws:
        wait_connected(sim)
        admin(sim, op="delay", seconds=0.6)
        t0 = time.monotonic()
        sim.rate_track(keys[0], 2)
        ws.recv(timeout=3)
        assert time.monotonic() - t0 >= 0.55
        admin(sim, op="delay", seconds=0)
        admin(sim, op="reorder", n=3)
        for k, r in zip(keys[:3], (2, 4, 6), strict=True):
            sim.rate_track(k, r)
        got = [m["TimelineEntry"][0]["itemID"] for m in recv_all(ws)]
        assert got == keys[:3][::-1]
        for kind in ("not_json", "unknown_type", "missing_fields", "no_container", "wrong_types"):
            admin(sim, op="malformed", kind=kind)
        admin(sim, op="malformed", text="hello")
        admin(sim, op="malformed", kind="binary")
        raw = recv_all(ws, raw=True)
        assert raw[0] == '{"NotificationContainer": {"type": "timeline", '
        assert json.loads(raw[1])["NotificationContainer"]["type"] == "plexcache.unknown"
        assert json.loads(raw[2])["NotificationContainer"]["TimelineEntry"] == [{"identifier": LIB}]
        assert raw[5:] == ["hello", b"\x00\xffnot text"]
        # the connection survives all of it
        sim.rate_track(keys[0], 8)
        assert recv_all(ws)[0]["type"] == "timeline"
    r = requests.post(
        sim.url + "/__sim__/notify", json={"op": "explode"}, headers={"X-Plex-Token": SIM_TOKEN}
    )
    assert r.status_code == 400 and r.json()["error"].startswith("unknown notify op 'explode'")
    stats = requests.get(
        sim.url + "/__sim__/notify-stats", headers={"X-Plex-Token": SIM_TOKEN}
    ).json()
    assert stats["published"]["malformed"] == 7 and stats["published"]["timeline"] == 5


def test_ids_as_ints_batches_and_filters(sim):
    admin(sim, op="configure", ids="int", timeline_batch=10)
    with open_ws(sim) as ws, open_ws(sim, query="?filters=activity") as only_activity:
        wait_connected(sim, 2)
        new = sim.add_tracks(3)
        got = recv_all(ws)
        created = [m for m in got if m["type"] == "timeline"][0]
        assert created["size"] == 5 and len(created["TimelineEntry"]) == 5
        assert [e["itemID"] for e in created["TimelineEntry"]][2:] == [int(k) for k in new]
        assert all(isinstance(e["sectionID"], int) for e in created["TimelineEntry"])
        assert {m["type"] for m in recv_all(only_activity)} == {"activity"}
    admin(sim, op="configure", ids="mixed", timeline_batch=1)
    with open_ws(sim) as ws:
        wait_connected(sim)
        sim.rate_track(new[0], 2)
        sim.rate_track(new[0], 4)
        ids = [m["TimelineEntry"][0]["itemID"] for m in recv_all(ws)]
        assert sorted(map(type, ids), key=str) == [int, str]


def test_pings_keep_the_socket_alive_and_client_pings_are_answered(sim_factory):
    s = sim_factory(ping_interval=0.2)
    with open_ws(s) as ws:
        wait_connected(s)
        time.sleep(0.9)
        assert s.notify.stats()["pings_sent"] >= 2
        ws.ping(b"hi").wait(timeout=3)  # the server answers a client's ping with a pong
        ws.send("client chatter is ignored")
        s.rate_track(s.library.track_keys()[0], 2)
        assert len(recv_all(ws)) == 1


def test_stop_closes_websockets(sim_factory):
    s = sim_factory()
    with open_ws(s) as ws:
        wait_connected(s)
        threading.Timer(0.2, s.stop).start()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    deadline = time.monotonic() + 3
    while s.notify.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.notify.stats()["connections"] == 0


def test_restart_on_the_same_port_accepts_reconnects(sim_factory):
    s = sim_factory()
    port = s.port
    with open_ws(s) as ws:
        wait_connected(s)
        s.stop()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    with pytest.raises(OSError):
        open_ws(s)
    s.start(port=port)
    with open_ws(s) as ws:
        wait_connected(s)
        s.rate_track(s.library.track_keys()[0], 2)
        assert [m["type"] for m in recv_all(ws)] == ["timeline"]
