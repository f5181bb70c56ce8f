"""No secret in any output or record, whatever form it came in (issue #13).

Secrets are planted in every form a user or a server can bring them:

- the token setting (``--token``, ``PLEX_TOKEN``), used for real against the simulator;
- ``X-Plex-Token=...`` in the Plex URL's query, in three cases of the name;
- ``user:password@`` in the Plex URL (options, environment, plexapi's config.ini,
  the plugin config);
- token-looking strings a server sends back: in a reason phrase, an error
  body, a page title, a ``Server`` header, and our own token echoed by a
  hostile proxy.

Then sync, status, reset and serve fail in every way they can with them, a
sync started from the web fails against the hostile server, and the plugin's
status and progress pages are fetched. Every stdout and stderr, every log
record (DEBUG, urllib3 included, in the test process and in every CLI child),
every file left behind (databases with their -wal, -shm and -stage files,
the web sync's log) and every web response is scanned for each secret,
plain, URL-encoded, or with its head cut off.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from relutil import (
    RawServer,
    SecretScanner,
    capture_all_logs,
    cli,
    cli_env,
    http_response,
    runs,
    wait_unlocked,
)

from plexcache.config import PlexConfig
from plexcache.simulator import Simulator

TOKEN = "Sec-Tok3n_plant-A1b2"  # the token setting
QUERY = "Qry-Tok3n_plant-C3d4"  # in ?X-Plex-Token=
PASSWORD = "Pa55-w0rd_plant-E5f6"  # in user:password@
BODY = "Bdy7Tok3nPlantG7h8J9k0"  # sent by a server, in its error texts
SECRETS = (TOKEN, QUERY, PASSWORD, BODY)


class Scanner(SecretScanner):
    "relutil's scanner, for several secrets at once"

    def __init__(self, secrets):
        super().__init__(secrets[0])
        self.needles = {n for s in secrets for n in (s, quote(s, safe=""), s[4:], s[:-4])}


def hostile(mode: str) -> RawServer:
    """A server that is not Plex and talks back with secrets: ``403`` answers
    every API path with a reason phrase and body holding its own token-looking
    key, the X-Plex-Token it was sent, and an X-Plex-Token parameter; ``html``
    answers everything with a login page whose title holds one."""

    def handler(conn, data, stop):
        text = data.decode("latin-1")
        path = text.split(" ", 2)[1] if " " in text else "/"
        echoed = re.search(r"(?im)^x-plex-token:\s*(\S+)", text)
        echoed = echoed.group(1) if echoed else "none"
        body = f"<html><head><title>Login {BODY}</title></head><body>key={BODY} you sent {echoed}</body></html>"
        headers = {"Content-Type": "text/html", "Server": f"EvilProxy/1.0 {BODY}"}
        if mode == "403" and path.split("?")[0] != "/":
            status = f"403 Denied {echoed} X-Plex-Token={BODY} {BODY}"
        else:
            status = "200 OK"
        conn.sendall(http_response(body.encode(), status=status, headers=headers))

    return RawServer(handler)


def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


@pytest.fixture
def scanner(tmp_path):
    handler, undo = capture_all_logs()
    s = Scanner(SECRETS)
    yield s
    undo()
    s.add("log records of the test process", handler.text)
    s.add_path(tmp_path / "work")
    assert s.check() > 0


def test_secrets_in_every_form_stay_out_of_every_output(tmp_path, scanner, monkeypatch):
    work = tmp_path / "work"  # everything plexcache writes: scanned
    work.mkdir()
    inputs = tmp_path / "inputs"  # what the user wrote, secrets included: not scanned
    inputs.mkdir()
    sim = Simulator(tracks=300, seed=5, token=TOKEN).start(host="127.0.0.1", port=0)
    refusing, html, listening = hostile("403"), hostile("html"), busy_port()
    host = sim.url.split("://", 1)[1]
    secret_urls = [
        f"http://{host}/?X-Plex-Token={QUERY}",
        f"http://{host}/?x-plex-token={QUERY}&foo=bar",
        f"http://{host}?X-PLEX-TOKEN={QUERY}",
        f"http://plexuser:{PASSWORD}@{host}",
        f"http://plexuser:{PASSWORD}@{host}/?X-Plex-Token={QUERY}",
        f"https://:{PASSWORD}@{host}/web#X-Plex-Token={QUERY}",
    ]
    ini = inputs / "plexapi.ini"
    ini.write_text(f"[auth]\nserver_baseurl = {secret_urls[4]}\nserver_token = {TOKEN}\n")
    db = work / "library_cache.db"
    env = cli_env(work, url=sim.url, token=TOKEN)
    codes = {}
    try:
        # a real cache first, synced with the token
        done = cli(["sync", "--db", db], env, scanner=scanner)
        assert done.returncode == 0, done.stderr
        # the URL brings the secret: options, environment, plexapi's config
        for i, url in enumerate(secret_urls):
            for command in (
                ["sync", "--db", db],
                ["status", "--db", db],
                ["status", "--json", "--db", db],
            ):
                done = cli([*command, "--url", url, "--token", TOKEN], env, scanner=scanner)
                codes[f"--url {i} {command[0]}"] = done.returncode
            done = cli(["sync", "--db", db], {**env, "PLEX_URL": url}, scanner=scanner)
            codes[f"PLEX_URL {i}"] = done.returncode
            done = cli(["serve", "--db", db, "--port", "0", "--url", url], env, scanner=scanner)
            codes[f"serve {i}"] = done.returncode
        plexapi_env = {k: v for k, v in env.items() if k not in ("PLEX_URL", "PLEX_TOKEN")}
        done = cli(
            ["status", "--db", db],
            {**plexapi_env, "PLEXAPI_CONFIG_PATH": str(ini)},
            scanner=scanner,
        )
        codes["plexapi config.ini"] = done.returncode
        done = cli(
            ["sync", "--db", db],
            {**plexapi_env, "PLEXAPI_AUTH_SERVER_BASEURL": secret_urls[3]},
            scanner=scanner,
        )
        codes["PLEXAPI_AUTH_SERVER_BASEURL"] = done.returncode
        # the server talks back with secrets; failed runs are recorded in the cache
        for url in (
            refusing.url,
            html.url,
            sim.url.replace("http://", "https://"),
            "http://127.0.0.1:9",
        ):
            for command in (
                ["sync", "--db", db],
                ["sync", "--full", "--db", db],
                ["status", "--json", "--db", db],
            ):
                done = cli([*command, "--url", url], env, scanner=scanner)
                codes[f"{url} {command}"] = done.returncode
        # serve failing to listen, reset refusing and succeeding, with the token about
        port = listening.getsockname()[1]
        done = cli(
            ["serve", "--db", db, "--port", port, "--url", refusing.url], env, scanner=scanner
        )
        codes["serve busy port"] = done.returncode
        (work / "notes.txt").write_text("notes")
        for args in (["reset", "--db", work / "notes.txt", "--yes"], ["reset", "--db", db]):
            codes[" ".join(map(str, args))] = cli(args, env, scanner=scanner).returncode
        # the web front: a sync started from the page fails against the hostile
        # server (its child logs at DEBUG too); the plugin's pages show the result
        asyncio.run(web_pages(db, refusing.url, env, scanner, monkeypatch))
        fresh = work / "fresh" / "library_cache.db"
        assert cli(["sync", "-q", "--db", fresh], env, scanner=scanner).returncode == 0
        asyncio.run(plugin_config_with_secrets(fresh, secret_urls[4], scanner, monkeypatch))
    finally:
        sim.stop()
        refusing.close()
        html.close()
        listening.close()
    # every failure above failed (and cleanly: one Error line each, scanned)
    assert codes.pop("reset --db " + str(db)) == 2  # not on a terminal
    assert all(
        code in (1, 2) or "status" in name and "--url" not in name for name, code in codes.items()
    ), codes
    errors = [r["error"] for r in runs(db) if r["status"] == "failed"]
    assert len(errors) >= 8, errors
    assert any("answered 403" in e for e in errors) and any(
        "does not look like a Plex" in e for e in errors
    )
    assert (work / "library_cache.db.sync.log").exists()


async def web_pages(db: Path, url: str, env: dict, scanner, monkeypatch):
    from plexcache.serve import build_datasette

    for name in ("PYTHONPATH", "RELTEST_LOG", "PLEXAPI_CONFIG_PATH"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("PLEX_TOKEN", TOKEN)  # build_datasette sets it; restored afterwards
    ds = build_datasette(
        db,
        PlexConfig(url=url, token=TOKEN, timeout=5),
        # no watcher: its own sync against this server could hold the lock when the page's starts
        plugin_extra={"sync_on_start": False, "watch": False, "bind_host": "127.0.0.1"},
    )
    started = await ds.client.post("/api/library/sync", json={})
    scanner.add("POST /api/library/sync", started.text)
    assert started.status_code == 200, started.text
    await asyncio.sleep(0.2)
    wait_unlocked(db)
    deadline = time.monotonic() + 30
    while runs(db)[-1]["status"] == "running" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert runs(db)[-1]["trigger"] == "web" and runs(db)[-1]["status"] == "failed", runs(db)[-1]
    await scan_pages(ds, scanner, "web sync")
    status = (await ds.client.get("/api/library/status")).json()
    # status asks / (a login page there), the sync asked /library/sections (a 403)
    assert status["plex_connected"] is False and "titled 'Login [token]'" in status["error"], status
    assert (
        "answered 403 Denied [token] X-Plex-Token=[token] [token] for /library/sections"
        in runs(db)[-1]["error"]
    )


async def plugin_config_with_secrets(db: Path, url: str, scanner, monkeypatch):
    "plex_url from the plugin config ($env, so Datasette's own /-/metadata shows only the reference)"
    from datasette.app import Datasette
    from datasette_plexcache.metadata import datasette_kwargs

    monkeypatch.setenv("PLEXCACHE_TEST_URL", url)
    monkeypatch.setenv("PLEXCACHE_TEST_TOKEN", TOKEN)
    plugin = {
        "plex_url": {"$env": "PLEXCACHE_TEST_URL"},
        "plex_token": {"$env": "PLEXCACHE_TEST_TOKEN"},
        "sync_on_start": False,
        "bind_host": "127.0.0.1",
    }
    ds = Datasette([str(db)], **datasette_kwargs("library_cache", plugin_config=plugin))
    await scan_pages(ds, scanner, "plugin config")
    status = (await ds.client.get("/api/library/status")).json()
    assert status["error"].startswith("Invalid value for plex_url (plexcache plugin config): "), (
        status
    )
    refused = await ds.client.post("/api/library/sync", json={})
    scanner.add("POST with a bad plugin config", refused.text)
    assert refused.status_code == 400


async def scan_pages(ds, scanner, label: str):
    for path in (
        "/",
        "/api/library/status",
        "/-/plexcache",
        "/-/plexcache.json",
        "/-/plexcache/runs.json",
        "/-/plexcache/status.json",
        "/library_cache/sync_runs",
        "/library_cache/sync_runs.json?_shape=array",
        "/-/metadata.json",
        "/-/plugins.json",
        "/-/config.json",
    ):
        response = await ds.client.get(path)
        scanner.add(f"{label}: GET {path}", response.text)
        scanner.add(f"{label}: headers of {path}", str(dict(response.headers)))
