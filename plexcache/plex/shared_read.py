"""A big full read shared by the reader process and this one.

A first sync reads every track in full (``/library/metadata``). A reader
process (``reader.py``) parses those answers and makes their rows on a core
of its own, but alone it set the pace: profiled on 18,432 tracks, it was busy
for the whole read while the sync process used about a third of its core
(it only stages rows). ``SharedRead`` gives the read two workers, each a
thread of the sync process that takes chunks of keys from one queue:

- the *reader worker* hands its chunks to the reader process (up to
  ``READER_TAKES`` full chunks at once, so that its three requests in flight
  stay busy);
- the *local worker* reads its chunk in this process (one request in flight,
  parse and rows in the worker thread).

Whichever is free takes the next chunk, so the split follows the speed of
each (about two thirds to the reader on this 2-core machine). The sync thread stages what
comes back (``results``), in any order: each result names the keys it was
asked for, so the keys that did not come back are known per chunk, as they
were per page before. Chunks are a multiple of the source's batch size and
only whole chunks are joined, so the requests are the ones an in-process
read of the same keys makes. Requests in flight at once: the reader's three,
the local worker's one, and the key scan's one.

A worker's error (after its retries) ends the read: ``results`` raises it,
the same error class and message as an in-process read (``reader.py``).
``close`` stops both workers between batches; a reader left mid-read is
marked broken and ended by ``PlexSource.close_reader``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing

from .rows import FullBatch, full_batch

CHUNK_BATCHES = 2  # a chunk: this many metadata requests (2 x 500 keys)
READER_TAKES = 2  # whole chunks the reader process takes at once, when they wait
LOCAL_IN_FLIGHT = 1  # the local worker's requests in flight (the reader has three)
_END = None  # what ends a worker's queue


class SharedRead:
    def __init__(self, source):
        self.source = source
        self.chunk = CHUNK_BATCHES * source.batch_size
        self.waiting = 0  # keys queued and not yet handed back
        self._todo: queue.Queue = queue.Queue()  # key lists
        self._done: queue.Queue = queue.Queue()  # (keys, batches) or the error that ended a worker
        self._stop = threading.Event()
        self.taken = {"reader": 0, "local": 0}  # keys each worker took
        self._workers = [
            threading.Thread(target=self._work, args=("reader", source.read_in_reader, READER_TAKES),
                             name="plexcache-reader-worker", daemon=True),
            threading.Thread(target=self._work, args=("local", self._read_here, 1),
                             name="plexcache-local-worker", daemon=True),
        ]  # fmt: skip
        for worker in self._workers:
            worker.start()

    def add(self, keys: Sequence[str]) -> None:
        "Queue ``keys`` to be read in full"
        for i in range(0, len(keys), self.chunk):
            chunk = keys[i : i + self.chunk]
            self._todo.put(chunk)
            self.waiting += len(chunk)

    def results(self, backlog: int = 0) -> Iterator[tuple[Sequence[str], list[FullBatch]]]:
        """``(keys, batches)`` as the workers hand them back, until at most
        ``backlog`` keys wait (0: all of them); a worker's error is raised here"""
        while self.waiting > backlog:
            item = self._done.get()
            if isinstance(item, BaseException):
                self.waiting = 0
                raise item
            keys, batches = item
            self.waiting -= len(keys)
            yield keys, batches

    def close(self) -> None:
        "Stop the workers (between batches) and wait for them"
        self._stop.set()
        self._todo.put(_END)
        for worker in self._workers:
            worker.join(30)

    def _read_here(self, keys: Sequence[str]) -> Iterator[FullBatch]:
        with closing(self.source.metadata(keys, in_flight=LOCAL_IN_FLIGHT)) as answers:
            for elements in answers:
                yield full_batch(elements)

    def _take(self, most: int) -> list[str] | None:
        "Up to ``most`` waiting chunks as one key list (a short chunk ends it); None: no more"
        keys = self._todo.get()
        if keys is _END:
            self._todo.put(_END)  # for the other worker
            return None
        for _ in range(most - 1):
            if len(keys) % self.chunk:
                break  # a short chunk: joined to the next it would change the batches
            try:
                more = self._todo.get_nowait()
            except queue.Empty:
                break
            if more is _END:
                self._todo.put(_END)
                break
            keys = keys + more
        return keys

    def _work(
        self, name: str, read: Callable[[Sequence[str]], Iterator[FullBatch]], most: int
    ) -> None:
        while not self._stop.is_set():
            keys = self._take(most)
            if keys is None:
                return
            self.taken[name] += len(keys)
            try:
                batches = []
                with closing(read(keys)) as answers:
                    for batch in answers:
                        if self._stop.is_set():
                            return
                        batches.append(batch)
            except Exception as e:  # raised in the sync thread
                self._done.put(e)
                return
            self._done.put((keys, batches))
