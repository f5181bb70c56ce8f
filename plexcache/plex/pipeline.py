"""The fetch/parse pipeline: how a sync keeps Plex, the parser and SQLite busy at once.

A sync's time goes to three things: waiting for Plex to render and send a
page, parsing its XML, and writing rows to SQLite. They overlap in three
threads, connected by bounded queues (one item each, so memory stays flat):

    fetch thread            parse thread               sync (main) thread
    (``lookahead``)         (``prefetch``)
    GET page n+1   ---->    parse page n       ---->   rows of page n-1 -> stage
    raw bytes only          (XML -> elements,          (SQLite releases the GIL
                            checks the guess)          while it writes)

- The **fetch thread** sends the next request as soon as the previous body
  is in, before anything parses it. A listing is a chain (keyset paging:
  page n+1 asks for keys above page n's last key), so the key to continue
  after is read straight from the raw bytes (``next_after``, a few
  ``bytes.find`` calls), a guess the parse checks: when the parsed page's
  real last key differs, that request is thrown away and paging goes on
  from the real key (``PlexSource.pages``). Metadata batches need no guess.
- The **parse thread** runs ``PlexSource.pages``/``metadata`` themselves,
  so the parse of page n overlaps with the sync's writes of page n-1. The
  sync wraps the big listings and the full-item reads in ``prefetch``; the
  small delta listings run unwrapped. Bodies are parsed in pieces
  (``http.PARSE_CHUNK``) so the fetch thread, which needs the GIL to send,
  never waits for a whole parse.
- The **sync thread** turns elements into rows and stages them.

Metadata batches need no chain: a ``FetchPool`` keeps up to ``IN_FLIGHT``
of them in flight at once (a real PMS answers in parallel), handed to the
parse side in order.

Both background threads are ``Ahead``: one mechanism, an iterator run in a
daemon thread up to ``depth`` items ahead. Errors cross over as data: a
failed fetch is handed to the parse side, which retries it like any attempt
(``PlexHTTP.get_fetched``); an exception ending an iterator is raised in
the consumer. ``close()`` stops the thread and (for the fetch thread) waits
for a request in flight, so every request made is over, and counted, when
the caller goes on.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator

END = object()  # what a lookahead's ``follow`` returns to stop it
_DONE = object()
# Requests one fetch pool has in flight at most. A real PMS answers requests
# in parallel; a few at once hide the round trips without loading it much.
IN_FLIGHT = 3


class Ahead:
    """Iterate ``items`` in a daemon thread, up to ``depth`` items ahead.

    ``next()`` returns the items in order; an exception that ends ``items``
    is raised there. ``close()`` stops the thread: it returns once the
    thread is gone, or after ``wait`` seconds when given.
    """

    def __init__(self, items: Iterable, depth: int = 1, name: str = "plexcache-ahead"):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((_DONE, None))
        except BaseException as e:  # handed to the consumer
            self._put((_DONE, e))

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Ahead:
        return self

    def __next__(self):
        item, error = self._queue.get()
        if item is _DONE:
            self._queue.put((_DONE, None))  # later calls end too
            if error is not None:
                raise error
            raise StopIteration
        return item

    def close(self, wait: float | None = None) -> None:
        self._stop.set()
        if wait is not None:
            self._thread.join(wait)
            return
        while self._thread.is_alive():
            self._drain()
            self._thread.join(0.05)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass


def lookahead(fetch: Callable, first, follow: Callable) -> Ahead:
    """A fetch thread: ``fetch(first)``, then ``fetch`` of whatever
    ``follow(request, body, error)`` names (``END``: stop), each as soon as
    the previous body is in. Yields ``(request, body, error, next_request)``;
    a failed fetch is an ``error``, not the end."""

    def chain() -> Iterator[tuple]:
        request = first
        while request is not END:
            body = error = None
            try:
                body = fetch(request)
            except BaseException as e:  # handed to the caller, which retries or raises
                error = e
            try:
                following = follow(request, body, error)
            except Exception:  # pragma: no cover - a guess gone wrong must not hang the caller
                following = END
            yield request, body, error, following
            request = following

    return Ahead(chain(), depth=1, name="plexcache-fetch")


def prefetch(iterable: Iterable, depth: int = 1) -> Iterator:
    """Iterate ``iterable`` in a parse thread, ``depth`` items ahead.

    The sync spends most of a page's time waiting for the server; reading the
    next page while the current one is parsed into rows and written to SQLite
    overlaps the two. Exceptions are re-raised in the consumer; closing the
    generator early stops the producer.
    """
    ahead = Ahead(iterable, depth=depth, name="plexcache-prefetch")
    try:
        yield from ahead
    finally:
        ahead.close(wait=5)


# In a listing's opening tag: <MediaContainer size="1000" totalSize="16220" ...>
_TOTAL_SIZE = re.compile(rb'\stotalSize="(\d+)"')
_RATING_KEY_ATTR = b' ratingKey="'


def next_after(body: bytes) -> int | None:
    """The key to ask the next listing page after, read from a page's raw
    bytes before any parse: its last item's ``ratingKey`` (pages come in key
    order), or None when the page looks like the last one or when the bytes
    are not what Plex usually sends. A cheap guess (a few passes of
    ``bytes.find``/``count``, ~0.3 ms per 1,000 tracks) that the parse
    checks; a wrong one costs a wasted request, never a wrong listing.
    The body is already decompressed (urllib3 undoes gzip)."""
    start = body.find(b"<MediaContainer")
    if start < 0 or not body[-64:].rstrip().endswith(b"</MediaContainer>"):
        return None  # not a listing, or a cut one
    # "<" never occurs raw inside an attribute value: the next one opens the
    # first item (or closes an empty container).
    first = body.find(b"<", start + 1)
    if first < 0 or body[first + 1 : first + 2] in (b"/", b""):
        return None
    found = _TOTAL_SIZE.search(body, start, first)
    if found is None:
        return None
    name_end = body.find(b" ", first, first + 64)
    if name_end < 0:
        return None
    # "<Track " counts the items: "<" is escaped in attribute values.
    if int(found.group(1)) <= body.count(body[first : name_end + 1], first):
        return None  # everything announced is on this page: the last one
    at = body.rfind(_RATING_KEY_ATTR, first)
    if at < 0:
        return None
    at += len(_RATING_KEY_ATTR)
    end = body.find(b'"', at, at + 20)
    key = body[at:end]
    if end < 0 or not key.isdigit() or key[:1] == b"0" or len(key) > 18:
        return None
    return int(key)


class FetchPool:
    """Fetch ``items`` (independent requests, e.g. metadata batches) with up
    to ``in_flight`` at once, handed out in order by ``get(i)``.

    At most ``in_flight`` items are fetched or waiting to be taken, so memory
    stays at a few bodies. A fetch whose error ``pause(error)`` says is worth
    a retry stops new requests until the consumer has taken it (and retried
    it, one request at a time, as ``lookahead`` errors are). ``close()``
    waits for the requests in flight, so every request made is over, and
    counted, when the caller goes on.
    """

    def __init__(
        self, fetch: Callable, items: list, in_flight: int = IN_FLIGHT, pause: Callable = bool
    ):
        self._fetch = fetch
        self._items = items
        self._pause = pause
        self._window = max(1, in_flight)
        self._results: dict[int, tuple] = {}
        self._next = 0  # the next item to start
        self._taken = -1  # the item the consumer holds (those before it are done with)
        self._held_until = 0  # no new start until this many items are taken (after a failure)
        self._stopped = False
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name="plexcache-fetch", daemon=True)
            for _ in range(min(self._window, len(items)))
        ]
        for t in self._threads:
            t.start()

    def _may_start(self) -> bool:
        return (
            self._next < len(self._items)
            and self._next <= self._taken + self._window
            and (self._taken >= self._held_until)
        )

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and self._next < len(self._items) and not self._may_start():
                    self._cond.wait()
                if self._stopped or self._next >= len(self._items):
                    return
                i = self._next
                self._next += 1
            body = error = None
            try:
                body = self._fetch(self._items[i])
            except BaseException as e:  # handed to the consumer, which retries or raises
                error = e
            with self._cond:
                self._results[i] = (body, error)
                if error is not None and self._pause(error):
                    self._held_until = max(self._held_until, i + 1)
                self._cond.notify_all()

    def get(self, i: int) -> tuple:
        "``(body, error)`` of item ``i``; items are taken in order, each once"
        with self._cond:
            # Items before i are done with (a failure among them retried):
            # the window moves on, and a hold from a failure lifts.
            self._taken = i
            self._cond.notify_all()
            while i not in self._results:
                self._cond.wait()
            return self._results.pop(i)

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
