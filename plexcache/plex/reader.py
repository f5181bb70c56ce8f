"""Full items read in a helper process: the fetch, parse and rows of a big
read off the sync's GIL.

A first sync reads every track in full (``sync.collect.read_section_in_full``).
In one Python process the fetch threads, the XML parse, the rows and the
staging writes all take turns on one GIL, and the client, not the server,
sets the pace (docs/performance.md). So a read of at least
``PLEXCACHE_READER_MIN_KEYS`` keys (``source.READER_MIN_KEYS``, 5,000) runs in a child
process, ``python -m plexcache.plex.reader``: the same
``PlexSource.metadata`` (same requests, same retries, at most ``IN_FLIGHT``
in flight), the same ``rows.full_batch``, each batch's rows sent back in
order while the sync stages the previous one. Same requests, rows and
errors as the in-process path; the tests run both.

The protocol is pickled frames over the child's stdin and stdout, so the
token travels through a pipe, never argv or the environment:

- parent -> child: the settings (a dict), then ``("read", keys)`` per read
  (``keys``: an ``array("q")``'s bytes); end of input ends the child;
- child -> parent, per read: ``("batch", FullBatch, requests)`` per batch,
  then ``("done", requests)``, or ``("error", class name, message,
  requests)``; ``requests``: those made since the last frame.

The child's stderr is discarded (a crash must not print a traceback, or
anything else, on the sync's terminal); a child that dies once it has
answered is a one-line error, and one that cannot start, or ends before
it ever answers (an interpreter that cannot run ``-m``, e.g. a frozen
app), makes the read run in-process.
``PLEXCACHE_READER_PROCESS=0`` turns the child off.
"""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence

from .. import errors
from ..errors import PlexcacheError, PlexError
from .rows import FullBatch


class ReaderUnavailable(Exception):
    "The child ended before it ever answered (it cannot run here): read in-process instead"


class ReaderProcess:
    """One child process reading full items for one ``PlexSource``; started
    at once (its start-up overlaps whatever the sync does next), closed with
    the source"""

    def __init__(self, settings: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plexcache.plex.reader"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self.broken = False
        self.answered = False  # a frame ever came back: a later death is an error, not a fallback
        try:
            self._send(settings)
        except OSError:
            self.broken = True

    def _send(self, obj) -> None:
        pickle.dump(obj, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def read(
        self, keys: Sequence[str | int], where: str, count: Callable[[int], None]
    ) -> Iterator[FullBatch]:
        """The batches of ``keys``, in order; ``count(n)``: the child made
        ``n`` more requests. The child's errors are raised here as the same
        plexcache error."""
        self.broken = True  # until this read ends cleanly: an abandoned read leaves frames behind
        try:
            self._send(("read", array("q", map(int, keys)).tobytes()))
        except OSError:
            raise self._died(where) from None
        while True:
            try:
                message = pickle.load(self.proc.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                raise self._died(where) from None
            self.answered = True
            kind = message[0]
            count(message[-1])
            if kind == "batch":
                yield message[1]
            elif kind == "done":
                self.broken = False
                return
            else:
                _, name, text, _ = message
                cls = getattr(errors, name, None)
                if not (isinstance(cls, type) and issubclass(cls, PlexcacheError)):
                    cls = PlexError
                raise cls(text)

    def _died(self, where: str) -> Exception:
        try:
            code = self.proc.wait(1)
        except subprocess.TimeoutExpired:
            code = None
        if not self.answered:
            return ReaderUnavailable(f"exit code {code}")
        return PlexcacheError(
            f"the process reading full items from {where} ended unexpectedly"
            + (f" (exit code {code})" if code is not None else "")
        )

    def end(self) -> None:
        "Tell the child to exit (end of input) without waiting for it; ``close`` reaps it"
        if not self.broken and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def close(self) -> None:
        proc = self.proc
        try:
            if not self.broken and proc.poll() is None:
                self.end()  # end of input: the child exits
                proc.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


def serve(stdin, stdout) -> None:
    "The child's side: settings, then reads until end of input"
    from ..config import PlexConfig
    from .rows import full_batch
    from .source import PlexSource

    settings = pickle.load(stdin)
    config = PlexConfig(url=settings["url"], token=settings["token"], timeout=settings["timeout"])
    with PlexSource(
        config,
        timeout=settings["timeout"],
        retries=settings["retries"],
        batch_size=settings["batch_size"],
        in_flight=settings["in_flight"],
        reader=False,
    ) as source:
        while True:
            try:
                request = pickle.load(stdin)
            except EOFError:
                return
            keys = array("q")
            keys.frombytes(request[1])
            counted = source.requests
            try:
                for elements in source.metadata(keys):
                    batch = full_batch(elements)
                    made = source.requests  # read once: the fetch threads go on counting
                    _send(stdout, ("batch", batch, made - counted))
                    counted = made
                _send(stdout, ("done", source.requests - counted))
            except PlexcacheError as e:
                _send(stdout, ("error", type(e).__name__, str(e), source.requests - counted))
            except Exception as e:  # noqa: BLE001 - a bug must reach the sync as one line
                message = f"unexpected {type(e).__name__}: {e}"
                _send(stdout, ("error", "PlexError", message, source.requests - counted))


def _send(stdout, obj) -> None:
    pickle.dump(obj, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


def main() -> None:
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):  # the sync went away: nothing to tell
        pass
    finally:
        # exiting: skip the last garbage collections' walk over every object
        # (as ``plexcache.cli.main``); the sync's apply runs meanwhile
        gc.freeze()


if __name__ == "__main__":
    main()
