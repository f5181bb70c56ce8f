"""Helpers for the reliability and web-security tests (tests/test_reliability.py,
tests/test_web_security.py): cache invariants, a secret scanner, real CLI
processes with DEBUG logging, tiny hostile HTTP servers.

Everything here drives real parts: the simulator over HTTP, SQLite files,
``python -m plexcache`` processes. Nothing of plexcache is mocked.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import quote

from syncutil import runs, snapshot  # noqa: F401 (runs: for the importers)

from plexcache.config import PlexConfig

ROOT = Path(__file__).resolve().parent.parent

# Newer Plex tokens contain "-" and "_" (perf-reliability.md B9): a scrubber
# that only knows [a-zA-Z0-9] leaks most of such a token.
TOKEN = "Zkfs-Rel_t0ken-9x_Q"

# `PLEXCACHE_SOAK=1` runs the long randomized variants (marked slow).
SOAK = os.environ.get("PLEXCACHE_SOAK") == "1"


def config(sim, timeout: float = 1.0) -> PlexConfig:
    return PlexConfig(url=sim.url, token=sim.token, timeout=timeout)


def report_line(config, text: str) -> None:
    "A line in pytest's terminal output, even while output is captured"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)
    else:
        reporter.write_line(text)


# ---- the cache's invariants -----------------------------------------------------


def ro(db) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def fingerprint(db) -> dict:
    """Full contents of the data tables plus the section rows (minus sync times):
    two caches with equal fingerprints hold the same library."""
    out = snapshot(db)
    conn = ro(db)
    try:
        out["sections"] = sorted(
            conn.execute("select id, uuid, title, track_count from sections").fetchall()
        )
    except sqlite3.OperationalError:
        out["sections"] = None
    finally:
        conn.close()
    return out


def check_cache(db, orphans_ok: bool = False) -> None:
    """What must hold for any cache at rest, whatever happened before:
    SQLite and FTS integrity, sync_state and sections agree with the rows,
    no track pointing at a missing album."""
    conn = ro(db)
    try:
        assert conn.execute("pragma integrity_check").fetchall() == [("ok",)]
        names = {r[0] for r in conn.execute("select name from sqlite_master")}
        if "tracks" not in names:
            return
        # FTS5 external-content index must match the tracks table exactly
        # (the check is spelled as an INSERT, so it needs a writable handle)
        rw = sqlite3.connect(db, timeout=30)
        try:
            rw.execute("insert into tracks_fts(tracks_fts) values('integrity-check')")
            rw.rollback()
        finally:
            rw.close()
        triggers = {
            r[0]
            for r in conn.execute(
                "select name from sqlite_master where type = 'trigger' and tbl_name = 'tracks'"
            )
        }
        assert {"tracks_ai", "tracks_ad", "tracks_au"} <= triggers, triggers
        count = conn.execute("select count(*) from tracks").fetchone()[0]
        state = conn.execute("select track_count from sync_state where id = 1").fetchone()
        assert (state[0] if state else 0) == count, (state, count)
        per_section = dict(conn.execute("select section_id, count(*) from tracks group by 1"))
        for sid, n in conn.execute("select id, track_count from sections"):
            assert per_section.get(sid, 0) == n, (sid, n, per_section)
        if orphans_ok:
            return
        orphans = conn.execute(
            "select count(*) from tracks t where t.album_rating_key is not null and not exists "
            "(select 1 from albums a where a.rating_key = t.album_rating_key)"
        ).fetchone()[0]
        assert orphans == 0, f"{orphans} tracks point at missing albums"
    finally:
        conn.close()


# ---- secrets ------------------------------------------------------------------------


class SecretScanner:
    """Collects everything a user or another program could see, then checks
    that the token (plain, URL-encoded, or its tail after a partial mask)
    appears in none of it."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.needles = {token, quote(token, safe=""), token[4:]}
        self.texts: list[tuple[str, str]] = []
        self.paths: list[Path] = []

    def add(self, label: str, text) -> None:
        if text is None:
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.texts.append((label, str(text)))

    def add_path(self, path) -> None:
        self.paths.append(Path(path))

    def check(self) -> int:
        "Raise AssertionError naming where the token showed up; returns how much was scanned"
        scanned = 0
        for label, text in self.texts:
            scanned += len(text)
            for needle in self.needles:
                assert needle not in text, f"token leaked into {label}"
        for root in self.paths:
            files = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
            for path in files:
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                scanned += len(data)
                for needle in self.needles:
                    assert needle.encode() not in data, f"token leaked into file {path}"
        return scanned


class CaptureAll(logging.Handler):
    "Every record of every logger, formatted, with tracebacks"

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []
        self.lock_ = threading.Lock()

    def emit(self, record):
        try:
            text = self.format(record)
        except Exception as e:  # a broken log call is a finding too
            text = f"<unformattable record {record.name}: {e}>"
        with self.lock_:
            self.lines.append(text)

    @property
    def text(self) -> str:
        with self.lock_:
            return "\n".join(self.lines)


DEBUG_LOGGERS = (
    "",
    "urllib3",
    "requests",
    "plexcache",
    "tenacity",
    "datasette",
    "httpx",
    "asyncio",
)


def capture_all_logs():
    "Root and the named loggers at DEBUG into one handler; returns (handler, undo)"
    handler = CaptureAll()
    saved = []
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)

    def undo():
        logging.getLogger().removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)

    return handler, undo


# ---- real CLI processes ------------------------------------------------------------

SITECUSTOMIZE = textwrap.dedent(
    """
    # Test hook for `python -m plexcache` processes started by the tests.
    import logging, os, sys
    # The CLI as installed without the notebook extras: sqlite-utils imports
    # pandas and numpy when present, which costs a second per process here.
    sys.modules.setdefault("pandas", None)
    sys.modules.setdefault("numpy", None)
    # Every logger at DEBUG into $RELTEST_LOG (urllib3 included), so the
    # secret scanner sees what a debugging user would.
    _path = os.environ.get("RELTEST_LOG")
    if _path:
        _h = logging.FileHandler(_path)
        _h.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        _h.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(_h)
        logging.getLogger().setLevel(logging.DEBUG)
        for _name in ("urllib3", "requests", "tenacity"):
            logging.getLogger(_name).setLevel(logging.DEBUG)
    """
)


def cli_env(tmp_path, sim=None, url=None, token=None, **extra) -> dict:
    """Environment for `python -m plexcache`: the server, no plexapi config,
    and a sitecustomize that logs everything at DEBUG into tmp_path/cli-debug.log"""
    hook = Path(tmp_path) / "_sitecustomize"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLEX_", "PLEXAPI_", "PLEXCACHE_"))
    }
    env["PLEXAPI_CONFIG_PATH"] = "/nonexistent/plexapi.ini"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    env["RELTEST_LOG"] = str(Path(tmp_path) / "cli-debug.log")
    if sim is not None:
        env["PLEX_URL"], env["PLEX_TOKEN"] = sim.url, sim.token
    if url is not None:
        env["PLEX_URL"] = url
    if token is not None:
        env["PLEX_TOKEN"] = token
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(
    args, env, timeout=120, scanner: SecretScanner | None = None
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "plexcache", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if scanner is not None:
        scanner.add(f"stdout of plexcache {args}", done.stdout)
        scanner.add(f"stderr of plexcache {args}", done.stderr)
    return done


def cli_many(
    jobs, timeout=120, scanner: SecretScanner | None = None
) -> list[subprocess.CompletedProcess]:
    "Run several `python -m plexcache ...` (args, env) at once; results in order"
    procs = [spawn_cli(args, env) for args, env in jobs]
    results = []
    for (args, _), proc in zip(jobs, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
        if scanner is not None:
            scanner.add(f"stdout of plexcache {args}", out)
            scanner.add(f"stderr of plexcache {args}", err)
    return results


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """The CLI failed with exactly one `Error: ...` line containing every needle.
    Progress lines (INFO, the spec's log lines when stderr is not a terminal)
    may precede it; warnings and tracebacks may not."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = [
        line for line in done.stderr.splitlines() if line.strip() and not line.startswith("INFO:")
    ]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def spawn_cli(args, env, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "plexcache", *map(str, args)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_unlocked(db, timeout=30.0) -> None:
    from plexcache.lock import is_locked

    deadline = time.monotonic() + timeout
    while is_locked(db):
        assert time.monotonic() < deadline, "the sync lock is still held"
        time.sleep(0.02)


# ---- hostile HTTP servers (not Plex: raw sockets on loopback) -------------------------


class RawServer:
    """A loopback TCP server that answers every connection with ``handler(conn)``.
    For what the simulator cannot do: trickled bodies, gzip bombs."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop_event = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _loop(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.handler(conn, data, self.stop_event)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop_event.set()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sock.close()
        self.thread.join(timeout=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_response(body: bytes, status="200 OK", headers=None) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
