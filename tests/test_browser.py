"""Real-browser tests: headless Chromium against `plexcache serve` and the simulator.

Both servers run as subprocesses, as a user would run them, and syncs are real
`plexcache sync` children. The simulator's latency is raised while a test
watches a sync, so progress is visible for a few seconds, and lowered when a
test only needs a synced cache. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from syncutil import runs

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-Tok3n_zz-42"
TRACKS = 3000  # three 1000-track pages: progress moves in visible steps
SLOW_MS = 250  # simulator latency while a test watches a sync

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"
    ),
]

expect = playwright_api.expect
MODAL_VALUENOW = """() => {
  const bar = document.querySelector(".plexcache-modal [role=progressbar]");
  return bar ? bar.getAttribute("aria-valuenow") : "gone";
}"""
SYNCING = re.compile(r"Syncing( \d+%|…)")


# ---- processes ----------------------------------------------------------------


class Child:
    "A subprocess whose output is collected; .url is the first URL it prints that matches"

    def __init__(self, args, env=None, url_pattern=r"(http://127\.0\.0\.1:\d+)"):
        self.args = args
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            text=True,
        )
        self._found = threading.Event()
        self.url = None
        self._pattern = re.compile(url_pattern)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._found.wait(60):
            self.stop()
            raise RuntimeError(f"{args[3:5]} did not start:\n" + "".join(self.lines))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.url is None:
                match = self._pattern.search(line)
                if match:
                    self.url = match.group(1)
                    self._found.set()
        self._found.set()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def output(self) -> str:
        return "".join(self.lines)


def plexcache(*args) -> list[str]:
    return [sys.executable, "-m", "plexcache", *args]


class Sim(Child):
    def __init__(self, tracks=TRACKS, latency_ms=0, seed=7):
        super().__init__(
            plexcache(
                "simulate",
                "--port",
                "0",
                "--tracks",
                str(tracks),
                "--seed",
                str(seed),
                "--token",
                TOKEN,
                "--latency-ms",
                str(latency_ms),
            )
        )

    def admin(self, name, data=None):
        request = urllib.request.Request(
            f"{self.url}/__sim__/{name}",
            data=json.dumps(data or {}).encode(),
            headers={"X-Plex-Token": TOKEN, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def latency(self, ms):
        self.admin("latency", {"ms": ms})


def plex_env(sim: Sim | None) -> dict:
    return {"PLEX_URL": sim.url if sim else "", "PLEX_TOKEN": TOKEN if sim else ""}


def cli_sync(db, sim, *extra, wait=True):
    "Run `plexcache sync` as the CLI would"
    proc = subprocess.Popen(
        plexcache("sync", "--db", str(db), "--quiet", *extra),
        env={**os.environ, **plex_env(sim)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if wait:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve(Child):
    def __init__(self, db, sim, port=0, sync_on_start=True, watch=False):
        env = {**plex_env(sim), "PLEXCACHE_SYNC_ON_START": "1" if sync_on_start else "0",
               "PLEXCACHE_WATCH": "1" if watch else "0"}  # fmt: skip
        super().__init__(
            plexcache("serve", "--db", str(db), "--port", str(port)),
            env=env,
            url_pattern=r"Serving .* at (http://[^/\s]+)",
        )


@pytest.fixture
def children():
    "Everything started by a test, stopped at teardown (servers first)"
    started: list[Child] = []
    yield started
    for child in reversed(started):
        child.stop()


@pytest.fixture
def sim(children):
    s = Sim()
    children.append(s)
    return s


@pytest.fixture
def db(tmp_path):
    return tmp_path / "library_cache.db"


def serve(children, db, sim, **kw) -> Serve:
    server = Serve(db, sim, **kw)
    children.append(server)
    return server


def synced_cache(db, sim, synced_at: datetime | None = None):
    "A cache synced from the simulator (fast), optionally back-dated"
    sim.latency(0)
    cli_sync(db, sim)
    if synced_at is not None:
        with sqlite3.connect(db) as conn:
            conn.execute(
                "update sync_state set last_sync_at = ?",
                (synced_at.strftime("%Y-%m-%dT%H:%M:%SZ"),),
            )


def status_trigger(run: dict) -> tuple:
    return run["status"], run["trigger"]


def wait_for(predicate, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# ---- browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760}, locale="en-US")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


def shot(page, name, **kw):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **kw)
    return path


def footer(page):
    return page.locator("#plexcache-footer")


# ---- tests --------------------------------------------------------------------


def test_first_load_modal_progress_then_footer(children, sim, db, page):
    "Empty cache: blocking modal, progress advances, dismissed, footer shows the count"
    sim.latency(SLOW_MS)
    server = serve(children, db, sim, sync_on_start=False)
    page.goto(server.url + "/library_cache/tracks")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=10000)
    assert dialog.get_attribute("aria-modal") == "true"
    expect(dialog).to_contain_text("Syncing your Plex library")
    bar = dialog.get_by_role("progressbar")
    # progress advances: two different non-zero values before the modal goes
    seen = set()

    def progressed():
        try:
            value = page.evaluate(MODAL_VALUENOW)
        except playwright_api.Error:  # the page is reloading: the modal is done
            return True
        if value == "gone":
            return True
        if value and value != "0":
            seen.add(int(value))
        return len(seen) >= 2

    wait_for(lambda: bar.get_attribute("aria-valuenow") not in (None, "0"), timeout=30)
    expect(dialog).to_contain_text(re.compile(r"[\d,]+ / 3,000 tracks"))
    shot(page, "modal")
    wait_for(progressed, timeout=30, interval=0.1)
    assert seen and max(seen) <= TRACKS
    # the modal goes away by itself and the page reloads with the data
    expect(dialog).to_be_hidden(timeout=30000)
    expect(footer(page)).to_contain_text("3,000 tracks · Synced just now · Refresh", timeout=15000)
    expect(page.locator("table.rows-and-columns")).to_be_visible()
    assert status_trigger(runs(db)[-1]) == ("succeeded", "web")
    assert TOKEN not in page.content()
    shot_footer(page, "footer")


def shot_footer(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("footer.ft").screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_server_start_syncs_empty_cache(children, sim, db, page):
    "With a Plex server configured, starting on an empty cache starts the sync itself"
    sim.latency(SLOW_MS)
    server = serve(children, db, sim)
    page.goto(server.url + "/")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=10000)
    expect(dialog).to_be_hidden(timeout=40000)
    expect(footer(page)).to_contain_text("3,000 tracks", timeout=15000)
    assert [r["trigger"] for r in runs(db)] == ["startup"]


def test_refresh_from_footer(children, sim, db, page):
    synced_cache(db, sim)
    sim.latency(SLOW_MS)
    server = serve(children, db, sim, sync_on_start=False)
    page.goto(server.url + "/library_cache")
    f = footer(page)
    expect(f).to_contain_text("3,000 tracks · Synced just now · Refresh", timeout=10000)
    expect(page.get_by_role("dialog")).to_have_count(0)
    f.get_by_role("button", name="Refresh").click()
    expect(f).to_contain_text(SYNCING, timeout=10000)
    expect(f).to_contain_text("Synced just now · Refresh", timeout=40000)
    assert [status_trigger(r) for r in runs(db)] == [("succeeded", "cli"), ("succeeded", "web")]


def test_stale_cache_syncs_in_background(children, sim, db, page):
    synced_cache(db, sim, synced_at=datetime.now(UTC) - timedelta(days=3))
    sim.latency(SLOW_MS)
    server = serve(children, db, sim, sync_on_start=False)
    page.goto(server.url + "/library_cache/tracks")
    # data at once, no modal, and a background sync
    expect(page.locator("table.rows-and-columns")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    f = footer(page)
    expect(f).to_contain_text(SYNCING, timeout=10000)
    shot_footer(page, "footer-syncing")
    expect(f).to_contain_text("3,000 tracks · Synced just now · Refresh", timeout=40000)
    assert status_trigger(runs(db)[-1]) == ("succeeded", "web")


def test_stale_cache_synced_at_server_start(children, sim, db):
    synced_cache(db, sim, synced_at=datetime.now(UTC) - timedelta(days=3))
    serve(children, db, sim)
    wait_for(lambda: len(runs(db)) == 2 and runs(db)[-1]["status"] == "succeeded", timeout=40)
    assert runs(db)[-1]["trigger"] == "startup"


def test_plex_offline(children, sim, db, page):
    synced_cache(db, sim)
    server = serve(children, db, sim, sync_on_start=False)
    page.goto(server.url + "/")
    f = footer(page)
    expect(f).to_contain_text("Refresh", timeout=10000)
    sim.stop()
    # reachability is re-checked every few seconds; the page polls every 5 s
    expect(f).to_contain_text("Plex offline", timeout=40000)
    expect(f.locator(".plexcache-footer-error")).to_contain_text(re.compile(r"\S"))
    expect(f).to_contain_text("3,000 tracks")
    expect(f.get_by_role("button", name="Refresh")).to_have_count(0)
    assert TOKEN not in page.content()
    shot_footer(page, "footer-offline")


def test_cli_sync_shows_live(children, sim, db, page):
    "A sync started from the command line shows up in an open page"
    synced_cache(db, sim)
    server = serve(children, db, sim, sync_on_start=False)
    page.goto(server.url + "/-/plexcache")
    expect(page.locator("[data-plexcache=state]")).to_have_text("Idle", timeout=10000)
    sim.latency(SLOW_MS * 2)
    proc = cli_sync(db, sim, "--full", wait=False)
    try:
        f = footer(page)
        expect(f).to_contain_text(SYNCING, timeout=15000)
        expect(page.locator("[data-plexcache=state]")).to_contain_text("Syncing", timeout=5000)
        bar = page.locator(".plexcache-page .plexcache-progress")
        wait_for(lambda: (bar.get_attribute("aria-valuenow") or "0") != "0", timeout=30)
        shot(page, "progress-page", full_page=True)
        expect(f).to_contain_text("Synced just now", timeout=60000)
        # the history table picked up the CLI run
        expect(page.locator("tbody[data-plexcache=runs] tr").first).to_contain_text("full")
        expect(page.locator("tbody[data-plexcache=runs] tr").first).to_contain_text("succeeded")
        expect(page.locator("tbody[data-plexcache=runs] tr")).to_have_count(2)
    finally:
        proc.wait(60)


def test_modal_survives_server_restart(children, sim, db, page):
    "The server goes away mid-sync: the modal says Reconnecting… and finishes after a restart"
    sim.latency(SLOW_MS * 2)
    port = free_port()
    server = serve(children, db, sim, port=port)
    page.goto(server.url + "/")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=10000)
    server.stop()
    expect(dialog).to_contain_text("Reconnecting…", timeout=15000)
    sim.latency(SLOW_MS)
    serve(children, db, sim, port=port)
    expect(dialog).to_be_hidden(timeout=60000)
    expect(footer(page)).to_contain_text("3,000 tracks", timeout=15000)
    statuses = [r["status"] for r in runs(db)]
    assert statuses[-1] == "succeeded"
    assert "running" not in statuses


def test_formatting_helpers(children, sim, db, page):
    synced_cache(db, sim)
    server = serve(children, db, sim, sync_on_start=False)
    page.goto(server.url + "/-/plexcache")
    now = int(time.time() * 1000)

    def ago(seconds):
        iso = (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return page.evaluate("([iso, now]) => window.plexcache.relativeTime(iso, now)", [iso, now])

    assert ago(5) == "Just now"
    assert ago(61) == "1 min ago"
    assert ago(5 * 60 + 3) == "5 mins ago"
    assert ago(2 * 3600 + 10) == "2 hours ago"
    assert ago(3 * 86400 + 10) == "3 days ago"
    assert page.evaluate("window.plexcache.formatCount(18432)") == "18,432"
    assert page.evaluate("window.plexcache.progressText({current: 5000, total: 18432})") == (
        "5,000 / 18,432 tracks"
    )
    assert page.evaluate("window.plexcache.percent({current: 5000, total: 18432})") == 27


DOCS_IMAGES = {
    "demo-modal": "web-modal",
    "demo-footer": "web-footer",
    "demo-progress-page": "web-progress-page",
    "footer-offline": "web-footer-offline",
}


@pytest.fixture(scope="session", autouse=True)
def _copy_docs_images():
    "PLEXCACHE_UPDATE_DOCS_IMAGES=1: copy fresh screenshots to docs/images after the run"
    yield
    if not os.environ.get("PLEXCACHE_UPDATE_DOCS_IMAGES"):
        return
    target = ROOT / "docs" / "images"
    target.mkdir(parents=True, exist_ok=True)
    for source, name in DOCS_IMAGES.items():
        if (ARTIFACTS / f"{source}.png").exists():
            shutil.copy(ARTIFACTS / f"{source}.png", target / f"{name}.png")


def test_demo_first_load_and_ctrl_c(tmp_path, page):
    "`plexcache demo`: the spec's first-load flow at 18,432 tracks, then Ctrl-C stops everything"
    import signal

    psutil = pytest.importorskip("psutil")
    demo = Child(
        plexcache("demo", "--port", "0", "--db", str(tmp_path / "demo.db")),
        url_pattern=r"Serving .* at (http://[^/\s]+)",
    )
    try:
        children = psutil.Process(demo.proc.pid).children(recursive=True)
        assert any("simulate" in " ".join(c.cmdline()) for c in children)
        page.goto(demo.url + "/")
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible(timeout=15000)
        expect(dialog).to_contain_text(re.compile(r"[1-9][\d,]* / 18,432 tracks"), timeout=30000)
        shot(page, "demo-modal")
        expect(dialog).to_be_hidden(timeout=90000)
        f = footer(page)
        expect(f).to_contain_text("18,432 tracks · Synced just now · Refresh", timeout=15000)
        page.goto(demo.url + "/demo/tracks")
        expect(page.locator("table.rows-and-columns")).to_be_visible()
        shot_footer(page, "demo-footer")
        # the progress page's Refresh with "Full re-sync" ticked
        page.goto(demo.url + "/-/plexcache")
        rows = page.locator("tbody[data-plexcache=runs] tr")
        expect(rows).to_have_count(1)
        page.get_by_label("Full re-sync").check()
        page.locator("#plexcache-page").get_by_role("button", name="Refresh").click()
        bar = page.locator(".plexcache-page .plexcache-progress")
        wait_for(lambda: int(bar.get_attribute("aria-valuenow") or "0") >= 4000, timeout=60)
        expect(rows.first).to_contain_text("running")
        shot(page, "demo-progress-page", full_page=True)
        expect(page.locator("[data-plexcache=state]")).to_have_text("Idle", timeout=60000)
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("succeeded")
        expect(rows.first).to_contain_text("full")
        expect(rows.first).to_contain_text("web")
        children = psutil.Process(demo.proc.pid).children(recursive=True)
    finally:
        demo.proc.send_signal(signal.SIGINT)
        try:
            demo.proc.wait(20)
        finally:
            demo.stop()
    assert demo.proc.returncode == 0, demo.output
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [c.cmdline() for c in alive]
