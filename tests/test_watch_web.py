"""Issue #15, web half: `plexcache serve` keeps the cache live with a `plexcache watch`
child, `/-/plexcache/live.json` and the progress page show its state, the `watch`
setting turns it off. Real `plexcache serve` processes, the simulator over HTTP and
its notification websocket, real SQLite files."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import requests
from datasette_plexcache import service
from relutil import ROOT, SecretScanner, cli_env
from syncutil import runs

from plexcache.config import PlexConfig
from plexcache.sync import sync

psutil = pytest.importorskip("psutil")

LIVE_KEYS = {
    "enabled",
    "running",
    "state",
    "since",
    "detail",
    "last_event_at",
    "last_change_at",
    "text",
}


class Served:
    "`plexcache serve` on a synced cache, with the simulator configured"

    def __init__(self, tmp_path, sim, *args, **env):
        self.db = tmp_path / "library_cache.db"
        sync(self.db, PlexConfig(url=sim.url, token=sim.token, timeout=10))
        self.env = cli_env(tmp_path, sim, PLEXCACHE_SYNC_ON_START="0", **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plexcache", "serve", "--db", str(self.db), "--port", "0", *args],
            env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines = []
        deadline = time.monotonic() + 60
        self.url = None
        while self.url is None:
            line = self.proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(self.lines)
            self.lines.append(line)
            if " at http://" in line:
                self.url = line.split(" at ", 1)[1].strip().rstrip("/")

    def get(self, path):
        r = requests.get(self.url + path, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def watchers(self):
        return [
            p
            for p in psutil.Process(self.proc.pid).children(recursive=True)
            if "watch" in p.cmdline()
        ]

    def stop(self, sig=signal.SIGINT) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return "".join(self.lines) + out


def wait_for(check, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_serve_keeps_the_cache_live(sim, tmp_path):
    served = Served(tmp_path, sim)
    scanner = SecretScanner(sim.token)
    try:
        live = wait_for(lambda: (s := served.get("/-/plexcache/live.json"))["state"] == "connected" and s,
                        "the watcher to connect")  # fmt: skip
        assert set(live) == LIVE_KEYS
        assert live["enabled"] is True and live["running"] is True
        assert live["text"] == "Live: changes in Plex show up here within seconds"
        watchers = served.watchers()
        assert len(watchers) == 1
        cmdline = " ".join(watchers[0].cmdline())
        assert sim.token not in cmdline  # the token travels in the environment
        wait_for(lambda: runs(served.db)[-1]["trigger"] == "watch" and runs(served.db)[-1]["status"] == "succeeded",
                 "the watcher's first sync")  # fmt: skip
        before = served.get("/api/library/status")["track_count"]
        key = sim.library.track_keys(1)[3]
        sim.advance_clock(2)
        sim.rate_track(key, 9)
        sim.add_tracks(2)
        wait_for(
            lambda: served.get("/api/library/status")["track_count"] == before + 2,
            "the added tracks",
        )
        wait_for(lambda: served.get(f"/library_cache/tracks/{key}.json?_shape=array")[0]["user_rating"] == 9,
                 "the rating")  # fmt: skip
        page = served.get("/-/plexcache.json")
        assert page["live"]["state"] == "connected" and page["live"]["last_change_at"]
        assert "live" in [r["mode"] for r in page["runs"]]
        html = requests.get(served.url + "/-/plexcache", timeout=10).text
        assert '<dd data-plexcache="live" class="plexcache-live-connected"' in html
        assert "Live: changes in Plex show up here within seconds" in html
        scanner.add("live.json", str(page))
        scanner.add("progress page", html)
    finally:
        output = served.stop()
    assert served.proc.returncode == 0, output
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in watchers),
             "the watcher to stop with the server")  # fmt: skip
    scanner.add("serve output", output)
    scanner.add_path(tmp_path)
    assert scanner.check() > 0


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_watch_setting_turns_it_off(sim, tmp_path, how):
    served = (
        Served(tmp_path, sim, "--no-watch")
        if how == "flag"
        else Served(tmp_path, sim, PLEXCACHE_WATCH="0")
    )
    try:
        time.sleep(1.0)
        live = served.get("/-/plexcache/live.json")
        assert live == {"enabled": False, "running": False, "state": "stopped", "since": None, "detail": None,
                        "last_event_at": None, "last_change_at": None,
                        "text": "Off: syncs run on start, on Refresh, or from `plexcache sync`"}  # fmt: skip
        assert served.watchers() == []
    finally:
        served.stop()


def test_watch_setting_values():
    for value, on in [
        (None, True),
        (True, True),
        (False, False),
        ("off", False),
        ("0", False),
        ("yes", True),
    ]:
        config = {} if value is None else {"watch": value}
        assert service.settings_from_config(config, {}).watch is on, value
    settings = service.settings_from_config({"watch": "sometimes"}, {})
    assert settings.config_error == (
        "Invalid value for watch (plexcache plugin config): expected 1 or 0 (or true/false, yes/no, on/off), "
        "got 'sometimes'"
    )
