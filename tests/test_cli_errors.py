"""Every user error of the CLI: its exact `Error: ...` line and exit status (issue #13).

Exit 2 is bad usage (an option or environment variable that is malformed, a
confirmation that cannot be asked); exit 1 is everything else the user can
act on. Each test names the mistake a newcomer made. Most run the CLI
in-process with click's CliRunner; server cases use the simulator over real
HTTP, a closed port, a tiny non-Plex web server or https against the
simulator's plain http. README's error table lists these same messages.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from syncutil import make_db, run_cli

from plexcache.cli import cli
from plexcache.db import APPLICATION_ID

# the messages' shared tails
WRITABLE = "keep the cache in a writable folder (--db or PLEXCACHE_DB)"
OTHER_FILE = "choose another file with --db or PLEXCACHE_DB"
TIMEOUT_EXPECTED = "expected a number of seconds above 0 and at most 3600 (like 30)"
EXAMPLE = "like http://192.168.1.10:32400"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """``run(*args, env={...}, input=...)`` -> click Result, in tmp_path, with
    no Plex or plexcache settings from the environment of the test process"""
    for name in list(os.environ):
        if name.startswith(("PLEX_", "PLEXAPI_", "PLEXCACHE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PLEXAPI_CONFIG_PATH", "/nonexistent/plexapi.ini")
    monkeypatch.chdir(tmp_path)
    previous = signal.getsignal(signal.SIGTERM)  # `sync` installs its own handler
    runner = CliRunner()

    def invoke(*args, env=None, input=None):
        return runner.invoke(cli, [str(a) for a in args], env=env, input=input)

    yield invoke
    signal.signal(signal.SIGTERM, previous)


def error_line(result, code: int) -> str:
    "The one `Error: ...` line of a failed command (nothing else on stderr)"
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def locks_in(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob("*.lock"))


# ---- settings: validated where they enter, exit 2 -----------------------------------------


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan", "1e9", "30s"])
@pytest.mark.parametrize("command", [["sync"], ["status"], ["serve", "--port", "0"]])
def test_plexcache_timeout(run, sim, command, value):
    result = run(*command, "--url", sim.url, env={"PLEXCACHE_TIMEOUT": value})
    assert error_line(result, 2) == (
        f"Error: Invalid value for PLEXCACHE_TIMEOUT: {TIMEOUT_EXPECTED}, got {value!r}"
    )


def test_plexcache_timeout_never_becomes_a_failed_run(run, sim, tmp_path):
    db = tmp_path / "c.db"
    result = run("sync", "--db", db, "--url", sim.url, env={"PLEXCACHE_TIMEOUT": "0"})
    assert result.exit_code == 2
    assert not db.exists() and locks_in(tmp_path) == []
    # empty means unset; a good value is used
    for value in ("", " ", "2.5"):
        result = run(
            "sync",
            "-q",
            "--db",
            db,
            "--url",
            sim.url,
            "--token",
            sim.token,
            env={"PLEXCACHE_TIMEOUT": value},
        )
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "value, expected",
    [
        ("abc", "'abc'"),
        ("0", "'0'"),
        ("10001", "'10001'"),
        ("1.5", "'1.5'"),
        ("", "''"),
    ],
)
def test_page_size(run, value, expected):
    result = run("sync", "--page-size", value)
    assert error_line(result, 2) == (
        f"Error: Invalid value for --page-size: expected a whole number from 1 to 10,000, got {expected}"
    )


URL_CASES = [
    (
        "http://127.0.0.1:9/?X-Plex-Token=SECRET1",
        f"expected the server's address alone, {EXAMPLE}, got 'http://127.0.0.1:9/?...'; "
        "pass the token with --token or PLEX_TOKEN, not in the URL",
    ),
    (
        "http://127.0.0.1:9?x-plex-token=SECRET1&a=b",
        f"expected the server's address alone, {EXAMPLE}, got 'http://127.0.0.1:9?...'; "
        "pass the token with --token or PLEX_TOKEN, not in the URL",
    ),
    (
        "http://user:PASSWORD1@127.0.0.1:9",
        "expected the server's address without a user name or password, got "
        "'http://[credentials]@127.0.0.1:9'; Plex authenticates with a token: pass it with --token or PLEX_TOKEN",
    ),
    (
        "http://host.example:32400/web",
        f"expected the server's address alone, {EXAMPLE}, got 'http://host.example:32400/web'; "
        "drop '/web': Plex answers at the root",
    ),
    (
        "http://host.example:32400/web/index.html#!/",
        f"expected the server's address alone, {EXAMPLE}, got 'http://host.example:32400/web/index.html#...'; "
        "drop the '#...' part",
    ),
    (
        "http://host.example:32400/?a=b",
        f"expected the server's address alone, {EXAMPLE}, got 'http://host.example:32400/?...'; drop the '?...' part",
    ),
    (
        "192.168.1.10:32400",
        f"expected an address starting with http:// or https://, {EXAMPLE}, got '192.168.1.10:32400'; "
        "did you mean 'http://192.168.1.10:32400'?",
    ),
    (
        "plex.local:32400",
        f"expected an address starting with http:// or https://, {EXAMPLE}, got 'plex.local:32400'; "
        "did you mean 'http://plex.local:32400'?",
    ),
    (
        "ftp://host.example",
        f"expected an address starting with http:// or https://, {EXAMPLE}, got 'ftp://host.example'",
    ),
    (
        "not a url",
        f"expected an address starting with http:// or https://, {EXAMPLE}, got 'not a url'",
    ),
    ("http://", f"expected an address with a host name or IP address, {EXAMPLE}, got 'http://'"),
    (
        "http://my host:32400",
        f"expected an address with a host name or IP address, {EXAMPLE}, got 'http://my host:32400'",
    ),
    (
        "http://host.example:0",
        f"expected the server's address with a port from 1 to 65535, {EXAMPLE}, got 'http://host.example:0'",
    ),
    (
        "http://host.example:99999",
        f"expected the server's address with a port from 1 to 65535, {EXAMPLE}, got 'http://host.example:99999'",
    ),
    (
        "http://host.example:abc",
        f"expected the server's address with a port from 1 to 65535, {EXAMPLE}, got 'http://host.example:abc'",
    ),
    # the token pasted where the URL goes: not echoed
    (
        "Zkfs-Rel_t0ken-9x_QQ",
        f"expected an address starting with http:// or https://, {EXAMPLE}, got a value that looks like a token",
    ),
]


@pytest.mark.parametrize("url, expected", URL_CASES)
def test_url_shape(run, url, expected):
    for command in (["sync"], ["status"], ["serve", "--port", "0"]):
        result = run(*command, "--url", url, "--token", "tok-ABCDEFGH")
        assert error_line(result, 2) == f"Error: Invalid value for --url: {expected}", command
    result = run("sync", env={"PLEX_URL": url})
    assert error_line(result, 2) == f"Error: Invalid value for PLEX_URL: {expected}"


def test_plexapi_settings_are_named(run):
    result = run("status", env={"PLEXAPI_AUTH_SERVER_BASEURL": "http://h.example:32400/web"})
    assert error_line(result, 2) == (
        f"Error: Invalid value for PLEXAPI_AUTH_SERVER_BASEURL: expected the server's address alone, "
        f"{EXAMPLE}, got 'http://h.example:32400/web'; drop '/web': Plex answers at the root"
    )


def test_url_with_spaces_and_trailing_slash_is_accepted(run, sim, tmp_path):
    result = run(
        "sync", "-q", "--db", tmp_path / "c.db", "--url", f"  {sim.url}/  ", "--token", sim.token
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("token", ["two words", "tab\there", "line\nbreak", "nön-ascii"])
def test_malformed_token_is_refused_without_echoing_it(run, token):
    result = run("status", "--url", "http://127.0.0.1:9", "--token", token)
    line = error_line(result, 2)
    assert line == (
        "Error: Invalid value for --token: expected a Plex token (one word of letters, digits and "
        "punctuation), got a value with spaces, line breaks or non-ASCII characters"
    )
    result = run("status", env={"PLEX_URL": "http://127.0.0.1:9", "PLEX_TOKEN": token})
    assert error_line(result, 2).startswith(
        "Error: Invalid value for PLEX_TOKEN: expected a Plex token"
    )


def test_token_with_a_trailing_newline_works(run, sim, tmp_path):
    "PLEX_TOKEN=$(cat token.txt) keeps the file's newline"
    result = run(
        "sync",
        "-q",
        "--db",
        tmp_path / "c.db",
        env={"PLEX_URL": sim.url, "PLEX_TOKEN": sim.token + "\n"},
    )
    assert result.exit_code == 0, result.output


def test_db_setting(run, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    cases = [
        (
            ["--db", "folder"],
            {},
            "Invalid value for --db: 'folder' is a directory; expected a database file, like 'folder/library_cache.db'",
        ),
        (
            [],
            {"PLEXCACHE_DB": "folder"},
            "Invalid value for PLEXCACHE_DB: 'folder' is a directory; expected a database file, like 'folder/library_cache.db'",
        ),
        (
            [],
            {"PLEXCACHE_DB": "new/"},
            "Invalid value for PLEXCACHE_DB: 'new/' is a directory; expected a database file, like 'new/library_cache.db'",
        ),
        (
            ["--db", "notes.txt/c.db"],
            {},
            "Invalid value for --db: 'notes.txt' is a file, not a folder, so 'notes.txt/c.db' cannot be created",
        ),
        (
            ["--db", ""],
            {},
            "Invalid value for --db: expected the path of a database file (like data/library_cache.db), got ''",
        ),
    ]
    for command in (["status"], ["sync"], ["reset", "--yes"], ["serve", "--port", "0"]):
        for args, env, expected in cases:
            result = run(*command, *args, env=env)
            assert error_line(result, 2) == f"Error: {expected}", (command, args, env)
    assert not (tmp_path / "new").exists() and not (tmp_path / "data").exists()
    assert locks_in(tmp_path) == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["serve", "--port", "70000"],
            "Invalid value for --port: expected a whole number from 0 to 65,535, got '70000'",
        ),
        (
            ["serve", "--port", "http"],
            "Invalid value for --port: expected a whole number from 0 to 65,535, got 'http'",
        ),
        (
            ["serve", "--host", "http://0.0.0.0"],
            "Invalid value for --host: expected a host name or IP address to listen on, like 127.0.0.1 or 0.0.0.0, got 'http://0.0.0.0'",
        ),
        (
            ["serve", "--host", ""],
            "Invalid value for --host: expected a host name or IP address to listen on, like 127.0.0.1 or 0.0.0.0, got ''",
        ),
        (
            ["demo", "--tracks", "-5"],
            "Invalid value for --tracks: expected a whole number from 0 to 10,000,000, got '-5'",
        ),
        (
            ["demo", "--port", "-1"],
            "Invalid value for --port: expected a whole number from 0 to 65,535, got '-1'",
        ),
        (
            ["simulate", "--latency-ms", "fast"],
            "Invalid value for --latency-ms: expected a whole number from 0 to 60,000, got 'fast'",
        ),
        (["sync", "--section", " "], "Invalid value for --section: expected a name, got ' '"),
    ],
)
def test_other_options(run, args, expected):
    assert error_line(run(*args), 2) == f"Error: {expected}"


def test_environment_flags_and_numbers(run, tmp_path):
    result = run("serve", "--port", "0", env={"PLEXCACHE_SYNC_ON_START": "maybe"})
    assert error_line(result, 2) == (
        "Error: Invalid value for PLEXCACHE_SYNC_ON_START: expected 1 or 0 (or true/false, yes/no, on/off), got 'maybe'"
    )
    result = run("demo", "--port", "0", env={"PLEXCACHE_DEMO_LATENCY_MS": "40ms"})
    assert error_line(result, 2) == (
        "Error: Invalid value for PLEXCACHE_DEMO_LATENCY_MS: expected a whole number from 0 to 60,000, got '40ms'"
    )
    assert not (tmp_path / "data").exists()


def test_no_server_configured(run, tmp_path):
    result = run("sync", "--db", tmp_path / "c.db")
    assert error_line(result, 2) == (
        "Error: no Plex server configured: pass --url/--token or set PLEX_URL and PLEX_TOKEN"
    )
    assert locks_in(tmp_path) == []


# ---- servers that are not what they should be ------------------------------------------------


class TinyWeb(http.server.BaseHTTPRequestHandler):
    "A web server that is not Plex: a home page, 404 elsewhere"

    def version_string(self):
        return "TinyWeb/1.0"

    def do_GET(self):
        if self.path.split("?")[0] == "/":
            body, status = b"<html><head><title>My NAS</title></head><body>hi</body></html>", 200
        else:
            body, status = b"<html><head><title>404</title></head></html>", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tinyweb():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TinyWeb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_not_a_plex_server_one_message_for_sync_and_status(run, tinyweb, tmp_path):
    expected = (
        f"{tinyweb} does not look like a Plex Media Server: its / is a web page titled 'My NAS' "
        "(server software: TinyWeb/1.0); check the address and port (Plex listens on 32400)"
    )
    sync = run("sync", "--db", tmp_path / "c.db", "--url", tinyweb, "--token", "tok-ABCDEFGH")
    assert error_line(sync, 1) == f"Error: {expected}"
    status = run(
        "status", "--json", "--db", tmp_path / "c.db", "--url", tinyweb, "--token", "tok-ABCDEFGH"
    )
    assert status.exit_code == 0
    assert json.loads(status.stdout)["error"] == expected
    text = run("status", "--db", tmp_path / "c.db", "--url", tinyweb)
    assert f"Error:          {expected}" in text.stdout


def test_https_against_plain_http(run, sim, tmp_path):
    url = sim.url.replace("http://", "https://")
    result = run("sync", "--db", tmp_path / "c.db", "--url", url, "--token", sim.token)
    assert error_line(result, 1) == (
        f"Error: TLS error talking to Plex at {url}: it answers plain HTTP, not TLS: use {sim.url} instead"
    )
    status = run("status", "--json", "--db", tmp_path / "c.db", "--url", url, "--token", sim.token)
    assert json.loads(status.stdout)["error"] == (
        f"TLS error talking to Plex at {url}: it answers plain HTTP, not TLS: use {sim.url} instead"
    )


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_closed_port(run, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    result = run("sync", "--db", tmp_path / "c.db", "--url", url, "--token", "tok-ABCDEFGH")
    assert error_line(result, 1) == (
        f"Error: cannot reach Plex at {url}: connection refused (is Plex running, and is this its port?)"
    )


def test_unknown_host(run, tmp_path):
    result = run(
        "sync",
        "--db",
        tmp_path / "c.db",
        "--url",
        "http://plex.invalid:32400",
        "--token",
        "tok-ABCDEFGH",
    )
    assert error_line(result, 1) == (
        "Error: cannot reach Plex at http://plex.invalid:32400: unknown host (the name does not resolve: check the address)"
    )


# ---- the cache file ------------------------------------------------------------------------


def test_sync_refuses_a_foreign_database_and_leaves_it_as_it_was(run, sim, tmp_path):
    photos = make_db(
        tmp_path / "photos.db",
        "create table photos (id integer primary key, path text)",
        "insert into photos (path) values ('a.jpg')",
    )
    before = photos.read_bytes()
    expected = (
        f"Error: {photos} is not a plexcache cache: it is another SQLite database (holding photos); "
        f"plexcache leaves it alone: {OTHER_FILE}"
    )
    for command in (
        ["sync", "--url", sim.url, "--token", sim.token],
        ["status", "--no-plex"],
        ["serve", "--port", "0"],
    ):
        assert error_line(run(*command, "--db", photos), 1) == expected, command
    assert error_line(run("reset", "--yes", "--db", photos), 1) == (
        f"Error: {photos} is not a plexcache cache: it is another SQLite database (holding photos); refusing to reset it"
    )
    assert photos.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos.db"]


def test_sync_refuses_another_programs_application_id(run, sim, tmp_path):
    other = make_db(tmp_path / "other.db", "pragma application_id = 1234")
    result = run("sync", "--db", other, "--url", sim.url, "--token", sim.token)
    assert error_line(result, 1) == (
        f"Error: {other} is not a plexcache cache: it belongs to another program (SQLite application_id 0x4d2); "
        f"plexcache leaves it alone: {OTHER_FILE}"
    )


def test_text_file_is_never_recommended_for_reset_nor_reset(run, sim, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n" * 20)
    result = run("sync", "--db", notes, "--url", sim.url, "--token", sim.token)
    line = error_line(result, 1)
    assert line == (
        f"Error: {notes} is not a valid SQLite database (another kind of file, or a damaged one); "
        f"plexcache leaves it alone: {OTHER_FILE}"
    )
    assert "reset" not in line
    result = run("reset", "--yes", "--db", notes)
    assert (
        error_line(result, 1)
        == f"Error: {notes} is not a plexcache cache: it is not a SQLite database; refusing to reset it"
    )
    assert notes.read_text() == "my notes\n" * 20
    assert locks_in(tmp_path) == []


def test_empty_sqlite_file_becomes_a_cache(run, sim, tmp_path):
    for name in ("zero.db", "blank.db"):
        db = tmp_path / name
        if name == "zero.db":
            db.touch()
        else:  # SQLite, with a page but nothing in it
            make_db(db, "pragma user_version = 1")
            assert db.stat().st_size > 0
        assert (
            run("reset", "--db", db).stdout
            == f"{db} is an empty database, not yet a cache: nothing to reset\n"
        )
        result = run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token)
        assert result.exit_code == 0, result.output
        conn = sqlite3.connect(db)
        assert conn.execute("pragma application_id").fetchone()[0] == APPLICATION_ID
        conn.close()


def test_reset_needs_a_terminal_or_yes(run, sim, tmp_path):
    db = tmp_path / "c.db"
    assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0
    n = sim.library.track_count()
    expected = (
        f"Error: refusing to empty the plexcache cache at {db} ({n:,} tracks) without confirmation: "
        "stdin is not a terminal, so nobody can answer; pass --yes to empty it"
    )
    assert error_line(run("reset", "--db", db), 2) == expected  # < /dev/null
    assert error_line(run("reset", "--db", db, input="n\n"), 2) == expected  # echo n |
    assert (
        error_line(run("reset", "--db", db, input="y\n"), 2) == expected
    )  # echo y | : still not a person
    assert count_tracks(db) == n
    result = run("reset", "--db", db, "--yes")
    assert result.exit_code == 0 and result.stderr == ""
    assert (
        result.stdout
        == f"Emptied the cache at {db}: removed {n:,} tracks; the next sync is a full one\n"
    )
    assert count_tracks(db) == 0
    assert locks_in(tmp_path) == []


def test_reset_asks_on_a_terminal_and_no_means_no(sim, tmp_path):
    "A real terminal (a pty): the question names what would go; 'n' keeps it"
    import pty

    db = tmp_path / "c.db"
    done = run_cli(["sync", "-q", "--db", db], sim=sim)
    assert done.returncode == 0, done.stderr
    n = sim.library.track_count()
    for answer, code, tracks in (("n", 1, n), ("", 1, n), ("y", 0, 0)):
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "plexcache", "reset", "--db", str(db)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
            env={k: v for k, v in os.environ.items() if not k.startswith(("PLEX_", "PLEXCACHE_"))},
        )
        os.close(slave)
        out = read_until(master, b"[y/N]: ")
        assert f"Empty the plexcache cache at {db} ({n:,} tracks)? [y/N]: " in out
        os.write(master, answer.encode() + b"\n")
        out += read_until(master, None)
        assert proc.wait(timeout=30) == code, out
        os.close(master)
        if code:
            assert f"Nothing changed: {db} is as it was." in out
        else:
            assert (
                f"Emptied the cache at {db}: removed {n:,} tracks; the next sync is a full one"
                in out
            )
        assert count_tracks(db) == tracks


def read_until(fd: int, marker: bytes | None, timeout: float = 30.0) -> str:
    import select
    import time

    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and (marker is None or marker not in data):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def count_tracks(db) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("select count(*) from tracks").fetchone()[0]
    finally:
        conn.close()


def test_reset_of_a_path_with_no_cache(run, tmp_path):
    result = run("reset", "--db", tmp_path / "nothing.db")
    assert result.exit_code == 0
    assert result.stdout == f"No cache at {tmp_path / 'nothing.db'}: nothing to reset\n"
    assert list(tmp_path.iterdir()) == []


def test_damaged_cache_is_named_and_reset_removes_it(run, sim, tmp_path):
    db = tmp_path / "c.db"
    assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0
    conn = sqlite3.connect(db)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (
        4096 - 100
    )  # the schema page, after the header: SQLite cannot read it
    db.write_bytes(bytes(data))
    result = run("status", "--no-plex", "--db", db)
    assert error_line(result, 1) == (
        f"Error: {db} is a damaged plexcache cache (database disk image is malformed): "
        f"`plexcache reset --db {db}` removes it and the next sync builds it again"
    )
    result = run("reset", "--db", db, "--yes")
    assert result.stdout == f"Removed the damaged cache at {db}; the next sync builds a new one\n"
    assert not db.exists()
    assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0


def test_read_only_location(run, sim, tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        db = mnt / "c.db"
        assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)]).returncode == 0
        expected = f"Error: cannot write to {db}: {mnt} is on a read-only file system; {WRITABLE}"
        assert (
            error_line(run("sync", "--db", db, "--url", sim.url, "--token", sim.token), 1)
            == expected
        )
        assert error_line(run("reset", "--yes", "--db", db), 1) == expected
        assert error_line(run("sync", "--db", mnt / "new" / "c.db", "--url", sim.url), 1) == (
            f"Error: cannot create {mnt / 'new' / 'c.db'}: {mnt} is on a read-only file system; {WRITABLE}"
        )
        # reading still works there, and says so
        status = run("status", "--json", "--no-plex", "--db", db)
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["track_count"] == sim.library.track_count()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_unwritable_folder(run, sim, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    db = folder / "c.db"
    assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("root, and no chattr here")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        result = run("sync", "--db", db, "--url", sim.url, "--token", sim.token)
        assert (
            error_line(result, 1)
            == f"Error: cannot write to {db}: the folder {folder} is not writable; {WRITABLE}"
        )
    finally:
        subprocess.run(undo)


# ---- what commands say when they succeed ---------------------------------------------------


def test_section_full_summary_counts_what_the_run_did(run, sim, tmp_path):
    db = tmp_path / "c.db"
    assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0
    music = [s for s in sim.library.sections() if s["type"] == "artist"]
    section = music[1]
    n, total = sim.library.track_count(section["id"]), sim.library.track_count()
    assert n < total
    result = run(
        "sync",
        "--db",
        db,
        "--url",
        sim.url,
        "--token",
        sim.token,
        "--section",
        section["title"],
        "--full",
    )
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf"Synced {n:,} tracks \(full\) from '{re.escape(section['title'])}': 0 added, 0 updated, 0 removed; "
        rf"the cache holds {total:,}; \d+ requests in [\d.]+s\n",
        result.stdout,
    ), result.stdout


def test_status_without_plex_says_it_was_not_checked(run, sim, tmp_path):
    db = tmp_path / "c.db"
    assert run("sync", "-q", "--db", db, "--url", sim.url, "--token", sim.token).exit_code == 0
    text = run("status", "--no-plex", "--db", db, "--url", sim.url).stdout
    assert "Plex connected: not checked (--no-plex)\n" in text
    data = json.loads(run("status", "--no-plex", "--json", "--db", db, "--url", sim.url).stdout)
    assert data["plex_connected"] is False  # the spec's boolean
    assert (
        "Plex connected: no server configured (--url or PLEX_URL)\n"
        in run("status", "--db", db).stdout
    )
    assert (
        "Plex connected: yes\n"
        in run("status", "--db", db, "--url", sim.url, "--token", sim.token).stdout
    )


def test_help_documents_every_option(run):
    for command in ("sync", "status", "reset", "serve", "demo", "simulate"):
        text = run(command, "--help").stdout.split("Options:", 1)[1]
        options = re.findall(r"^\s+(-\w, )?(--[\w-]+)", text, re.MULTILINE)
        assert options, command
        for _, option in options:
            line = next(line for line in text.splitlines() if option in line)
            described = line.split(option, 1)[1].split(maxsplit=1)
            assert len(described) == 2 or option == "--help", (command, option, line)
    serve = run("serve", "--help").stdout
    assert "--host" in serve and "Address to listen on" in serve
    assert "--port" in serve and "Port to listen on" in serve


def test_no_lock_files_after_failures_or_successes(run, sim, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    run("sync", "--db", tmp_path / "notes.txt", "--url", sim.url, "--token", sim.token)
    run(
        "sync",
        "--db",
        tmp_path / "c.db",
        "--url",
        f"http://127.0.0.1:{closed_port()}",
        "--token",
        "tok-ABCDEFGH",
    )
    run("reset", "--db", tmp_path / "none.db", "--yes")
    run("status", "--db", tmp_path / "none.db")
    run("sync", "-q", "--db", tmp_path / "ok.db", "--url", sim.url, "--token", sim.token)
    run("reset", "--yes", "--db", tmp_path / "ok.db")
    run("status", "--db", tmp_path / "ok.db")
    assert locks_in(tmp_path) == []


def test_garbage_from_a_real_plex_is_not_called_not_plex(run, sim, tmp_path):
    "Plex (its / carries X-Plex-Protocol) sending an HTML page where XML belongs: named as such"
    sim.inject_fault(
        "body",
        path=r"^/library/sections$",
        times=50,
        body=b"<html><title>Maintenance</title></html>",
    )
    result = run("sync", "--db", tmp_path / "c.db", "--url", sim.url, "--token", sim.token)
    assert error_line(result, 1) == (
        f"Error: Plex at {sim.url} answered /library/sections with an HTML page, not Plex XML"
    )


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"PLEXCACHE_TIMEOUT": "0"},
            f"Invalid value for PLEXCACHE_TIMEOUT: {TIMEOUT_EXPECTED}, got '0'",
        ),
        (
            {"PLEXCACHE_TIMEOUT": "abc"},
            f"Invalid value for PLEXCACHE_TIMEOUT: {TIMEOUT_EXPECTED}, got 'abc'",
        ),
        (
            {"PLEX_URL": "http://h.example:32400/web"},
            f"Invalid value for PLEX_URL: expected the server's address alone, {EXAMPLE}, got 'http://h.example:32400/web'; drop '/web': Plex answers at the root",
        ),
    ],
)
def test_web_status_names_the_bad_setting(tmp_path, monkeypatch, sim, env, expected):
    "The plugin reads the same settings: its status says which one is wrong (never `cannot check the Plex server: ValueError`)"
    from datasette_plexcache import service

    from plexcache.db import init_cache

    for name in list(os.environ):
        if name.startswith(("PLEX_", "PLEXAPI_", "PLEXCACHE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PLEXAPI_CONFIG_PATH", "/nonexistent/plexapi.ini")
    monkeypatch.setenv("PLEX_URL", sim.url)
    monkeypatch.setenv("PLEX_TOKEN", sim.token)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    db = init_cache(tmp_path / "library_cache.db")
    settings = service.settings_from_config({}, {"library_cache": str(db)})
    status = service.library_status(settings)
    assert status["error"] == expected
    with pytest.raises(Exception, match=re.escape(expected)):
        service.start_sync(settings)


@pytest.mark.parametrize(
    "plugin, expected",
    [
        (
            {"stale_after_hours": "soon"},
            "Invalid value for stale_after_hours (plexcache plugin config): expected a number of hours above 0 and at most 8760 (like 24), got 'soon'",
        ),
        (
            {"sync_on_start": "sometimes"},
            "Invalid value for sync_on_start (plexcache plugin config): expected 1 or 0 (or true/false, yes/no, on/off), got 'sometimes'",
        ),
        (
            {"plex_url": "plex.local:32400"},
            f"Invalid value for plex_url (plexcache plugin config): expected an address starting with http:// or https://, {EXAMPLE}, got 'plex.local:32400'; did you mean 'http://plex.local:32400'?",
        ),
    ],
)
def test_plugin_config_is_checked_too(tmp_path, plugin, expected):
    from datasette_plexcache import service

    settings = service.settings_from_config(
        {"plex_url": "http://h.example:32400", **plugin}, {"library_cache": str(tmp_path / "c.db")}
    )
    assert settings.config_error == expected


def test_more_bad_inputs(run, sim, tmp_path, monkeypatch):
    "Found trying more mistakes than the issue lists"
    result = run("sync", "--db", "/dev/null", "--url", sim.url, "--token", sim.token)
    assert error_line(result, 2) == (
        "Error: Invalid value for --db: '/dev/null' is not a regular file (a device, a pipe...); "
        "expected a database file, like 'data/library_cache.db'"
    )
    result = run("sync", "--db", tmp_path / "c.db", "--url", sim.url)
    assert error_line(result, 1) == (
        f"Error: Plex at {sim.url} needs a token (401 Unauthorized): pass --token or set PLEX_TOKEN "
        "(finding yours: https://support.plex.tv/articles/204059436)"
    )
    result = run("sync", "--db", tmp_path / "c.db", "--url", sim.url, "--token", "wrong-token-123")
    assert error_line(result, 1) == (
        f"Error: Plex at {sim.url} rejected the token (401 Unauthorized): check PLEX_TOKEN / --token"
    )
    long = "http://h.example:32400/" + "x" * 5000
    line = error_line(run("sync", "--url", long), 2)
    assert len(line) < 400 and line.endswith("...': Plex answers at the root")
    # "~" in a quoted PLEXCACHE_DB means the home folder, not a folder named "~"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = run(
        "sync", "-q", "--url", sim.url, "--token", sim.token, env={"PLEXCACHE_DB": "~/music.db"}
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "music.db").exists() and not (tmp_path / "~").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run("serve", "--db", tmp_path / "c.db", "--port", port)
        assert (
            error_line(result, 1)
            == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
        )


def test_a_busy_port_creates_nothing(run, tmp_path):
    """`serve` and `demo` on a busy port fail before they create a cache (or
    its folder), reset a demo cache or start a simulator: exit 1, the
    environment's problem, not a bad option"""
    demo_db = tmp_path / "demo.db"
    demo_db.write_bytes(b"")  # an existing demo cache is left as it is
    before = sorted(p.name for p in tmp_path.iterdir())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        message = f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
        assert (
            error_line(run("serve", "--db", tmp_path / "new" / "cache.db", "--port", port), 1)
            == message
        )
        assert (
            error_line(run("serve", "--port", port), 1) == message
        )  # the default data/library_cache.db
        assert (
            error_line(run("demo", "--db", demo_db, "--port", port, "--tracks", 10), 1) == message
        )
        assert error_line(run("demo", "--port", port, "--tracks", 10), 1) == message  # data/demo.db
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert demo_db.read_bytes() == b""


@pytest.fixture
def tls_server(tmp_path):
    "An HTTPS server with a self-signed certificate for plex.example (needs the openssl command)"
    import shutil
    import ssl

    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=plex.example",
            "-addext",
            "subjectAltName=DNS:plex.example",
        ],
        capture_output=True,
    )
    if made.returncode:
        pytest.skip("openssl could not make a certificate here")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TinyWeb)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_port}", cert
    server.shutdown()
    server.server_close()


def test_tls_certificates_in_the_users_words(run, tls_server, tmp_path):
    url, cert = tls_server
    result = run("sync", "--db", tmp_path / "c.db", "--url", url, "--token", "tok-ABCDEFGH")
    assert error_line(result, 1) == (
        f"Error: TLS error talking to Plex at {url}: its TLS certificate is self-signed, so it cannot be "
        "trusted: use http:// on your own network"
    )
    # trusted, but for another name: what https://192.168.1.10:32400 gives with Plex's own certificate
    result = run(
        "sync",
        "--db",
        tmp_path / "c.db",
        "--url",
        url,
        "--token",
        "tok-ABCDEFGH",
        env={"REQUESTS_CA_BUNDLE": str(cert)},
    )
    assert error_line(result, 1) == (
        f"Error: TLS error talking to Plex at {url}: its TLS certificate is not for this address (IP address "
        "mismatch, certificate is not valid for '127.0.0.1'): Plex's certificates are for its "
        "https://<id>.plex.direct:32400 address; use that, or http:// on your own network"
    )
