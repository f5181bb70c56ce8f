"""Issue #15: the live cache (`plexcache watch`, plexcache/watch.py).

Against the simulator over real sockets (its notification websocket, real
HTTP), real SQLite files and real `python -m plexcache watch` processes: each
kind of change shows up in the cache and the cache then equals a full sync;
dropped connections, restarts, floods, malformed messages, changes made while
disconnected, a server without the websocket, a held lock and a SIGKILL all
end in the same place.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import threading
import time

import pytest
from relutil import SecretScanner, check_cache, cli, cli_env, fingerprint, spawn_cli, wait_unlocked
from syncutil import runs

from plexcache.config import PlexConfig
from plexcache.lock import SyncLock
from plexcache.simulator.truth import diff_cache
from plexcache.sync import sync
from plexcache.watch import Malformed, Notice, Watcher, WatchOptions, parse, read_state

FAST = dict(
    quiet=0.1,
    max_wait=1.0,
    scan_settle=0.5,
    scan_settle_max=3.0,
    poll_interval=1.0,
    backoff_initial=0.4,
    backoff_max=1.0,
    stable_after=2.0,
    ping_interval=5.0,
    open_timeout=5.0,
    lock_wait=0.1,
)


def config(sim) -> PlexConfig:
    return PlexConfig(url=sim.url, token=sim.token, timeout=10)


def wait_for(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def differences(db, sim) -> dict:
    return {t: d for t, d in diff_cache(db, sim.expected_cache()).items() if d}


def converge(db, sim, timeout: float = 15.0) -> None:
    "The cache matches the server's ground truth (within ``timeout``)"
    deadline = time.monotonic() + timeout
    while differences(db, sim):
        if time.monotonic() > deadline:
            pytest.fail(f"the cache never matched the server: {differences(db, sim)}")
        time.sleep(0.03)


def assert_like_full_sync(db, sim, tmp_path) -> None:
    "The cache equals the server's truth and a full sync into a fresh file, row for row"
    assert differences(db, sim) == {}
    full = tmp_path / f"full-{time.monotonic_ns()}.db"
    sync(full, config(sim), full=True)
    assert fingerprint(db) == fingerprint(full)
    # the listening history too; a deleted track's plays keep the key the cache knew (Plex drops it)
    fresh = plays(full)
    assert [p[:1] + p[2:] for p in plays(db)] == [p[:1] + p[2:] for p in fresh]
    assert all(
        mine[1] == theirs[1]
        for mine, theirs in zip(plays(db), fresh, strict=True)
        if theirs[1] is not None
    )
    check_cache(db)


def plays(db) -> list:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "select history_id, rating_key, account_id, device_id, viewed_at from plays order by 1"
        ).fetchall()
    finally:
        conn.close()


@contextlib.contextmanager
def watching(db, sim, **options):
    "A Watcher in a thread, connected and synced once; stopped (and checked) on exit"
    watcher = Watcher(db, config(sim), WatchOptions(**{**FAST, **options}))
    errors = []

    def run():
        try:
            watcher.run()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.synced_once or errors, "the first sync")
        assert not errors, errors
        yield watcher
    finally:
        watcher.stop()
        thread.join(10)
        assert not thread.is_alive(), "the watcher did not stop"
        assert not errors, errors


def settle(watcher, sim) -> None:
    "Everything the simulator sent has arrived and been applied"
    wait_for(lambda: sim.notify.stats()["queued"] == 0, "the simulator's queues to drain")
    time.sleep(0.15)
    wait_for(lambda: watcher.idle, "the watcher to be idle")


def new_runs(db, after: int) -> list[dict]:
    return [r for r in runs(db) if r["id"] > after]


def last_run_id(db) -> int:
    rows = runs(db)
    return rows[-1]["id"] if rows else 0


# ---- parsing --------------------------------------------------------------------------------


def test_parse_what_pms_sends():
    tl = '{"NotificationContainer":{"type":"timeline","size":3,"TimelineEntry":[' \
         '{"identifier":"com.plexapp.plugins.library","sectionID":"1","itemID":"101","type":10,"state":5},' \
         '{"identifier":"com.plexapp.plugins.library","sectionID":1,"itemID":102,"type":9,"state":0,"metadataState":"created"},' \
         '{"identifier":"com.plexapp.plugins.library","sectionID":"1","itemID":"103","type":10,"state":9,"metadataState":"deleted"}]}}'  # fmt: skip
    assert parse(tl) == Notice(
        changed={"101": "track", "102": "album"}, deleted={"103"}, sections={1}
    )
    # intermediate states, other types and other providers ask for nothing
    quiet = '{"NotificationContainer":{"type":"timeline","size":3,"TimelineEntry":[' \
            '{"identifier":"com.plexapp.plugins.library","sectionID":"1","itemID":"5","type":10,"state":3},' \
            '{"identifier":"com.plexapp.plugins.library","sectionID":"2","itemID":"6","type":1,"state":5},' \
            '{"identifier":"tv.plex.providers.epg","itemID":"7","type":10,"state":5}]}}'  # fmt: skip
    assert not parse(quiet)
    scan = '{"NotificationContainer":{"type":"activity","size":1,"ActivityNotification":[{"event":"ended",' \
           '"uuid":"u","Activity":{"uuid":"u","type":"library.update.section","progress":100,"Context":{"librarySectionID":"1"}}}]}}'  # fmt: skip
    assert parse(scan) == Notice(scan_ended=True)
    refresh = '{"NotificationContainer":{"type":"activity","size":1,"ActivityNotification":[{"event":"ended",' \
              '"uuid":"u","Activity":{"type":"library.refresh.items","Context":{"key":"/library/metadata/44"}}}]}}'  # fmt: skip
    assert parse(refresh) == Notice(changed={"44": "item"})
    started = refresh.replace('"ended"', '"started"')
    assert not parse(started)
    play = '{"NotificationContainer":{"type":"playing","size":1,"PlaySessionStateNotification":[' \
           '{"sessionKey":"3","ratingKey":"77","key":"/library/metadata/77","viewOffset":0,"state":"%s"}]}}'  # fmt: skip
    assert not parse(play % "playing")
    assert parse(play % "stopped") == Notice(changed={"77": "item"}, played={"77"})
    assert not parse('{"NotificationContainer":{"type":"reachability","size":1}}')


@pytest.mark.parametrize(
    "message, reason",
    [
        (b"\x00\xff", "a binary frame"),
        ('{"NotificationContainer": {"type": "timeline", ', "not JSON"),
        ('{"type": "timeline"}', "no NotificationContainer"),
        ('{"NotificationContainer": {"size": 1}}', "a notification without a type"),
        ('{"NotificationContainer": {"type": "timeline", "size": 1}}', "timeline notification without a TimelineEntry list"),
        ('{"NotificationContainer": {"type": "timeline", "TimelineEntry": [{"identifier": "com.plexapp.plugins.library"}]}}',
         "a timeline entry without a type"),
        ('{"NotificationContainer": {"type": "timeline", "TimelineEntry": {"itemID": null, "state": "five"}}}',
         "a timeline entry without an identifier"),
        ('{"NotificationContainer": {"type": "timeline", "TimelineEntry": [{"identifier": "com.plexapp.plugins.library", '
         '"type": 10, "itemID": "x", "state": 5}]}}', "a timeline entry without a valid itemID and state"),
        ('{"NotificationContainer": {"type": "activity", "ActivityNotification": [{"event": "ended"}]}}',
         "an activity without an Activity object"),
    ],
)  # fmt: skip
def test_parse_refuses_malformed(message, reason):
    with pytest.raises(Malformed) as e:
        parse(message)
    assert str(e.value) == reason


def test_pending_coalesces_announcements():
    from plexcache.watch import Pending

    p = Pending()
    p.add(Notice(changed={"5": "item"}, played={"5"}), now=1.0)
    p.add(
        Notice(changed={"5": "track", "6": "album"}, sections={1}), now=1.1
    )  # a known type beats "item"
    p.add(Notice(deleted={"6", "7"}), now=1.2)  # a deletion beats a change
    p.add(Notice(changed={"7": "track"}), now=1.3)  # ...even one announced later
    assert (p.first, p.last, len(p)) == (1.0, 1.3, 3)
    changes = p.take(10)
    assert (changes.tracks, changes.albums, changes.deleted, changes.played, changes.sections) == (
        {"5"}, set(), {"6", "7"}, {"5"}, {1})  # fmt: skip
    assert len(p) == 0 and p.first is None
    p.put_back(changes, now=2.0)  # a live sync that could not run: everything comes back
    assert p.take(2).deleted == {"6", "7"} and p.take(2).played == {"5"}


# ---- each kind of change ----------------------------------------------------------------------


def test_each_kind_of_change_is_applied_live(sim, tmp_path):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    rec = sim.library.track(keys[40])
    album, artist = rec["parentRatingKey"], rec["grandparentRatingKey"]
    changes = [
        (
            "edit",
            lambda: sim.edit_track(keys[3], title="Edited live", genres=["Blues", "Rock", "Jazz"]),
        ),
        ("play", lambda: sim.play_track(keys[4], times=2)),
        ("rating", lambda: sim.rate_track(keys[5], 8)),
        ("add", lambda: sim.add_tracks(3)),
        ("delete", lambda: sim.delete_tracks(keys[10:13])),
        (
            "album edit",
            lambda: sim.edit_album(album, title="Renamed live", year=1988, genres=["Jazz", "Soul"]),
        ),
        ("artist edit", lambda: sim.edit_artist(artist, title="Renamed artist")),
    ]
    with watching(db, sim) as watcher:
        assert runs(db)[0]["mode"] == "full" and runs(db)[0]["trigger"] == "watch"
        for kind, change in changes:
            before = last_run_id(db)
            played_before = [p for p in plays(db) if p[1] == keys[4]]
            sim.advance_clock(2)
            change()
            converge(db, sim)
            settle(watcher, sim)
            assert differences(db, sim) == {}, kind
            live = [r for r in new_runs(db, before) if r["mode"] == "live"]
            assert live, f"{kind}: no live sync: {new_runs(db, before)}"
            assert all(r["status"] == "succeeded" and r["trigger"] == "watch" for r in live), live
            # one /library/metadata request brings the item (and its album and artist, or the
            # tracks of an edited album or artist)
            assert sum(r["http_requests"] for r in live) <= 2, (kind, live)
            if kind == "play":  # the live sync ran the history step: the two plays are in `plays`
                assert len([p for p in plays(db) if p[1] == keys[4]]) == len(played_before) + 2
            others = [r for r in new_runs(db, before) if r["mode"] != "live"]
            if kind in (
                "add",
                "delete",
            ):  # a scan ended: one incremental sync catches what messages missed
                assert [(r["mode"], r["status"]) for r in others] == [
                    ("incremental", "succeeded")
                ], others
            else:
                assert others == [], (kind, others)
        state = read_state(db)
        assert state["state"] == "connected" and state["running"] is True
        assert state["events"] > 0 and state["last_change_at"] and state["last_event_at"]
    assert read_state(db)["state"] == "stopped"
    assert_like_full_sync(db, sim, tmp_path)


@pytest.mark.parametrize("ids, batch", [("int", 1), ("mixed", 7)])
def test_ids_as_numbers_and_batched_entries(sim, tmp_path, ids, batch):
    db = tmp_path / "cache.db"
    sim.notify.admin({"op": "configure", "ids": ids, "timeline_batch": batch})
    keys = sim.library.track_keys(1)
    with watching(db, sim) as watcher:
        sim.advance_clock(2)
        for i, key in enumerate(keys[:20]):
            sim.rate_track(key, i % 11)
        sim.add_tracks(12)
        sim.delete_tracks(keys[30:33])
        converge(db, sim)
        settle(watcher, sim)
    assert_like_full_sync(db, sim, tmp_path)


def test_a_scan_of_ten_thousand_items_costs_a_bounded_number_of_requests(sim, tmp_path):
    db = tmp_path / "cache.db"
    with watching(db, sim) as watcher:
        sim.reset_counts()
        before = last_run_id(db)
        sim.add_tracks(10_000)  # 20,000+ timeline messages, one scan
        converge(db, sim, timeout=120)
        settle(watcher, sim)
        total = sim.total_requests
        later = new_runs(db, before)
    assert sim.notify.stats()["published"]["timeline"] >= 20_000
    # 10,000 tracks in 500-key /library/metadata batches, read live at most twice
    # (created, then processed: ~40, plus one partial batch per live run), then one
    # incremental sync after the scan: its listings, and on a server whose track listings
    # show no genres (the default profile) the new tracks read in full once more (~20):
    # about one request per 100 items, never one per item.
    assert total <= 150, (total, sim.request_counts)
    assert sim.request_counts["metadata"] <= 3 * 10_000 / 500 + len(later) + 10, sim.request_counts
    assert sum(r["http_requests"] for r in later) == total
    assert len([r for r in later if r["mode"] == "live"]) <= 10, later
    assert_like_full_sync(db, sim, tmp_path)


# ---- the connection ---------------------------------------------------------------------------


def test_changes_made_while_disconnected_are_synced_after_reconnecting(sim, tmp_path):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    with watching(db, sim, backoff_initial=3.0, backoff_max=3.0, poll_interval=60) as watcher:
        wait_for(lambda: watcher.connected, "the connection")
        assert sim.notify.admin({"op": "drop"})["dropped"] == 1
        wait_for(lambda: not watcher.connected, "the watcher to notice")
        before = last_run_id(db)
        # announced to nobody: the watcher is waiting 1.5-3 s to reconnect
        sim.advance_clock(2)
        sim.edit_track(keys[1], title="Changed while away")
        sim.play_track(keys[2])
        sim.delete_tracks([keys[3]])
        assert sim.notify.stats()["connections"] == 0
        wait_for(lambda: watcher.connected, "the reconnect")
        converge(db, sim)
        settle(watcher, sim)
        assert sim.notify.stats()["connects"] == 2
        assert [(r["mode"], r["trigger"]) for r in new_runs(db, before)] == [
            ("incremental", "watch")
        ]
        assert read_state(db)["state"] == "connected"
    assert_like_full_sync(db, sim, tmp_path)


def test_server_restart(sim, tmp_path):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    port = sim.port
    with watching(db, sim) as watcher:
        wait_for(lambda: watcher.connected, "the connection")
        sim.stop()
        wait_for(lambda: read_state(db)["state"] == "disconnected", "the disconnected state")
        assert read_state(db)["detail"] == "Plex closed the notification websocket (code 1006)"
        wait_for(lambda: (read_state(db)["detail"] or "").startswith(f"cannot reach Plex at {sim.url}: "),
                 "a failed reconnect")  # fmt: skip
        sim.advance_clock(2)
        sim.edit_track(keys[7], title="Edited while down")  # nobody listens
        sim.start(port=port)
        wait_for(lambda: watcher.connected, "the reconnect", timeout=20)
        converge(db, sim)
        sim.rate_track(keys[8], 4)  # announced again
        converge(db, sim)
        settle(watcher, sim)
    assert_like_full_sync(db, sim, tmp_path)


def test_malformed_messages_are_logged_and_skipped(sim, tmp_path, caplog):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    caplog.set_level(logging.INFO, logger="plexcache.watch")
    with watching(db, sim) as watcher:
        for kind in (
            "not_json",
            "unknown_type",
            "missing_fields",
            "no_container",
            "wrong_types",
            "binary",
        ):
            sim.notify.malformed(kind)
        sim.notify.malformed(
            text='{"NotificationContainer": {"type": "timeline", "TimelineEntry": [7]}}'
        )
        sim.advance_clock(2)
        sim.edit_track(keys[2], title="After the garbage")
        converge(db, sim)
        settle(watcher, sim)
        assert watcher.malformed == 6  # an unknown type is no error: PMS sends many types
        assert watcher.connected and sim.notify.stats()["connects"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["skipped a malformed notification from Plex: not JSON"]  # one line per 10 s
    assert_like_full_sync(db, sim, tmp_path)


def test_reordered_and_delayed_messages(sim, tmp_path):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    with watching(db, sim) as watcher:
        sim.notify.admin({"op": "reorder", "n": 6})
        sim.advance_clock(2)
        new = sim.add_tracks(2)  # its messages arrive in reverse
        sim.notify.admin({"op": "delay", "seconds": 0.5})
        sim.edit_track(new[0], title="Edited just after it was added")
        sim.delete_tracks([keys[5]])
        converge(db, sim)
        sim.notify.admin({"op": "delay", "seconds": 0})
        settle(watcher, sim)
    assert_like_full_sync(db, sim, tmp_path)


def test_a_server_without_the_websocket_is_polled(sim_factory, tmp_path, caplog):
    sim = sim_factory(notifications=False)
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    caplog.set_level(logging.INFO, logger="plexcache.watch")
    with watching(db, sim, poll_interval=0.5) as watcher:
        wait_for(lambda: read_state(db)["state"] == "polling", "the polling state")
        before = last_run_id(db)
        sim.advance_clock(2)
        sim.edit_track(keys[1], title="Seen by polling")
        converge(db, sim)
        assert {(r["mode"], r["trigger"]) for r in new_runs(db, before)} == {
            ("incremental", "watch")
        }
        assert not watcher.connected
        detail = read_state(db)["detail"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = f"Plex at {sim.url} offers no notification websocket (HTTP 404); checking for changes every 0.5 s instead"
    assert warnings == [expected]
    assert detail == expected
    assert_like_full_sync(db, sim, tmp_path)


def test_changes_wait_for_a_running_sync(sim, tmp_path):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    with watching(db, sim) as watcher:
        settle(watcher, sim)
        lock = SyncLock(db).acquire()  # what a sync in another process holds
        try:
            before = fingerprint(db)
            sim.advance_clock(2)
            sim.edit_track(keys[1], title="Waits for the lock")
            sim.rate_track(keys[2], 10)
            before_runs = last_run_id(db)
            time.sleep(1.0)
            assert fingerprint(db) == before  # nothing written without the lock
        finally:
            lock.release()
        converge(db, sim)
        settle(watcher, sim)
        # nothing dropped: the announced keys waited and were applied live
        assert [r["mode"] for r in new_runs(db, before_runs)] == ["live"]
    assert_like_full_sync(db, sim, tmp_path)


def test_a_live_sync_is_atomic_when_plex_fails(sim, tmp_path):
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    with watching(db, sim, backoff_initial=0.3) as watcher:
        settle(watcher, sim)
        before = fingerprint(db)
        sim.inject_fault("status", path=r"/library/metadata/", status=500, times=8)
        sim.advance_clock(2)
        sim.edit_track(keys[1], title="After the failure")
        wait_for(lambda: any(r["status"] == "failed" for r in runs(db)), "the failed live sync")
        assert fingerprint(db) == before
        failed = [r for r in runs(db) if r["status"] == "failed"][0]
        assert failed["mode"] == "live" and "500" in failed["error"]
        converge(db, sim, timeout=20)  # kept, then retried with an incremental sync
        settle(watcher, sim)
    assert_like_full_sync(db, sim, tmp_path)


# ---- the command ------------------------------------------------------------------------------


def wait_connected_process(db, timeout=20.0):
    wait_for(lambda: (read_state(db) or {}).get("state") == "connected" and runs(db)
             and runs(db)[-1]["status"] == "succeeded", "the watch process to connect", timeout)  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_watch_command_runs_until_a_signal_and_exits_0(sim, tmp_path, sig):
    db = tmp_path / "cache.db"
    env = cli_env(tmp_path, sim)  # DEBUG logging of everything into cli-debug.log
    scanner = SecretScanner(sim.token)
    proc = spawn_cli(["watch", "--db", db], env)
    read: list[str] = []  # stderr, read as it comes: the signal waits for the live line

    def read_stderr() -> None:
        for line in proc.stderr:
            read.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()

    def live_line() -> bool:
        return any(
            line.startswith("Live: 0 added, 1 updated, 0 removed (1 requests,") for line in read
        )

    try:
        wait_connected_process(db)
        sim.advance_clock(2)
        sim.edit_track(sim.library.track_keys(1)[0], title="Seen by the command")
        converge(db, sim)
        # the cache converges at the apply's commit; the line is logged just after
        wait_for(live_line, "the live sync's line")
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=20)  # (the command writes nothing to stdout: no pipe to fill)
        out = proc.stdout.read()
        reader.join(timeout=20)
    err = "".join(read)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    lines = err.splitlines()
    ws_url = sim.url.replace("http://", "ws://") + "/:/websockets/notifications"
    assert f"Listening to Plex notifications at {ws_url}" in lines
    assert live_line(), err
    assert read_state(db)["state"] == "stopped"
    scanner.add("stdout", out)
    scanner.add("stderr", err)
    scanner.add_path(tmp_path / "cli-debug.log")
    scanner.add_path(db)
    assert scanner.check() > 0


def test_watch_command_one_line_errors(sim, tmp_path):
    db = tmp_path / "cache.db"
    env = cli_env(tmp_path)
    done = cli(["watch", "--db", db], env)
    assert done.returncode == 2  # a missing setting
    assert (
        done.stderr.strip()
        == "Error: no Plex server configured: pass --url/--token or set PLEX_URL and PLEX_TOKEN"
    )
    done = cli(["watch", "--db", db, "--poll-interval", "0.5"], cli_env(tmp_path, sim))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "Error: Invalid value for --poll-interval: expected a number of seconds from 1 to 86400 (like 60), got '0.5'"
    )
    done = cli(["watch", "--db", db], cli_env(tmp_path, sim, PLEX_TOKEN="wrong-token"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: Plex at ")
    assert "wrong-token" not in done.stderr
    # one watcher per cache
    proc = spawn_cli(["watch", "--db", db, "--quiet"], cli_env(tmp_path, sim))
    try:
        wait_connected_process(db)
        done = cli(["watch", "--db", db], cli_env(tmp_path, sim))
        assert done.returncode == 1
        assert done.stderr.strip() == f"Error: another plexcache watch is already following {db}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_sigkill_mid_live_sync_keeps_the_previous_cache(sim, tmp_path):
    db = tmp_path / "cache.db"
    proc = spawn_cli(["watch", "--db", db, "--quiet"], cli_env(tmp_path, sim))
    try:
        wait_connected_process(db)
        before = fingerprint(db)
        sim.set_latency(400)  # the live sync sits in its metadata read
        sim.advance_clock(2)
        sim.add_tracks(300)
        wait_for(
            lambda: any(r["status"] == "running" and r["mode"] == "live" for r in runs(db)),
            "a running live sync",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        sim.set_latency(0)
    wait_unlocked(db)
    assert fingerprint(db) == before
    check_cache(db)
    # the next watcher finds the run interrupted and catches up
    proc = spawn_cli(["watch", "--db", db, "--quiet"], cli_env(tmp_path, sim))
    try:
        wait_connected_process(db)
        converge(db, sim)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    statuses = [r["status"] for r in runs(db)]
    assert "interrupted" in statuses and "running" not in statuses
    assert_like_full_sync(db, sim, tmp_path)


def test_watch_state_reads_stopped_after_a_kill(sim, tmp_path):
    db = tmp_path / "cache.db"
    proc = spawn_cli(["watch", "--db", db, "--quiet"], cli_env(tmp_path, sim))
    try:
        wait_connected_process(db)
        assert read_state(db)["running"] is True
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        proc.communicate()
    state = read_state(db)
    assert state["running"] is False and state["state"] == "stopped"
    conn = sqlite3.connect(db)
    assert conn.execute("select state from watch_state").fetchone() == (
        "connected",
    )  # what it last wrote
    conn.close()


def test_a_web_watcher_waits_for_the_first_sync_and_needs_no_sync_of_its_own(sim, tmp_path):
    "What `plexcache serve` runs: the first-load flow makes the first sync, after the watcher listens"
    db = tmp_path / "cache.db"
    keys = sim.library.track_keys(1)
    watcher = Watcher(db, config(sim), WatchOptions(**FAST, wait_for_first_sync=True))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.connected, "the connection")
        sim.edit_track(keys[0], title="Before any sync")  # nothing to keep live yet
        time.sleep(0.5)
        assert runs(db) == []  # the watcher never fills the cache itself
        sync(db, config(sim), trigger="web")  # started after the watcher listened: covers it
        wait_for(lambda: watcher.synced_once, "the watcher to start following")
        sim.advance_clock(2)
        sim.rate_track(keys[1], 6)
        converge(db, sim)
        settle(watcher, sim)
        seen = [(r["mode"], r["trigger"]) for r in runs(db)]
        # The edit's notification may be read after the web's sync began (a loaded machine):
        # the watcher cannot know the sync covered it and re-reads it live; never a sync of its own.
        assert seen[0] == ("full", "web")
        assert seen[1:] in ([("live", "watch")], [("live", "watch")] * 2), seen
    finally:
        watcher.stop()
        thread.join(10)
    assert_like_full_sync(db, sim, tmp_path)


def test_an_incremental_sync_runs_every_resync_interval_while_connected(sim, tmp_path):
    db = tmp_path / "cache.db"
    with watching(db, sim, resync_interval=0.5) as watcher:
        wait_for(lambda: watcher.connected, "the connection")
        first = last_run_id(db)

        def finished():
            return [r for r in new_runs(db, first) if r["status"] != "running"]

        wait_for(lambda: len(finished()) >= 2, "two periodic syncs")
        assert {(r["mode"], r["trigger"], r["status"]) for r in finished()} == {
            ("incremental", "watch", "succeeded")
        }
        # nothing changed: the cheap probe
        assert all(r["http_requests"] <= 5 for r in finished()), finished()
