"""The Plex source: what the sync asks a Plex Media Server, the raw, fast way.

The sync reads listings as XML with ElementTree and never builds plexapi
objects: a partially loaded plexapi ``Track`` silently re-fetches itself when
an absent attribute (``genres``, ``userRating``, ``year``...) is read, which
turns a sync into one request per track. Here every request is explicit:

- ``sections``, ``server_info``: ``/library/sections`` and ``/``;
- ``count``: one ``X-Plex-Container-Size: 0`` request per section;
- ``pages``: keyset paging (``sort=id`` and ``track.id>>=<last key>``), so
  items deleted or added while we page cannot shift others out of a page;
- ``sample``: the first page of a listing, alone (to learn what listings show);
- ``metadata``: full items for up to ``batch_size`` keys per request through
  ``/library/metadata/k1,k2,...`` (complete genre lists, album subformats);
- ``full_batches``: the same, as rows (``rows.full_batch``), from a reader
  process when the read is big (``reader``).

HTTP (session, retries, limits, errors) is ``http.PlexHTTP``; how pages and
batches are fetched ahead of their parse is ``pipeline``.
"""

from __future__ import annotations

import logging
import operator
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..config import PlexConfig, env_flag, env_int
from ..errors import NotPlexServer, PlexBadResponse, PlexNotFound
from .http import PlexHTTP, int_attr, paging
from .pipeline import END, IN_FLIGHT, FetchPool, lookahead, next_after, prefetch
from .rows import FullBatch, full_batch, rating_key

log = logging.getLogger("plexcache.plex")

#: The smallest full read that goes to a reader process (reader.py): one costs ~0.15 s to start
READER_MIN_KEYS = 5000

TRACK, ALBUM, ARTIST = 10, 9, 8
TYPE_PREFIX = {TRACK: "track", ALBUM: "album", ARTIST: "artist"}
# Listing fields and elements the cache never reads. PMS treats these as
# requests, not guarantees; they cut a track listing to ~40% of its size.
LISTING_TRIM = {
    "excludeElements": "Part,Guid,Stream",
    "excludeFields": "summary,thumb,art,parentThumb,grandparentThumb,grandparentArt,"
    "guid,parentGuid,grandparentGuid,parentKey,grandparentKey,musicAnalysisVersion,ratingCount,"
    "parentStudio,titleSort",
}
# Full items are read for their complete Genre and Subformat tags (and a
# track's Media, when a key scan found a track we never listed); the
# heavy children (streams, parts, similar artists...) are not needed, nor
# the artwork, guid and key fields the rows never read: without them a full
# track is ~510 bytes instead of ~1,100, cheaper to render and to parse.
METADATA_TRIM = {
    "excludeElements": "Part,Stream,Guid,Mood,Style,Image,Similar,Location,Field,Extras,Related",
    "excludeFields": "summary,guid,parentGuid,grandparentGuid,thumb,art,parentThumb,grandparentThumb,"
    "grandparentArt,theme,parentTheme,grandparentTheme,key,parentKey,grandparentKey,librarySectionTitle,"
    "librarySectionKey,ratingCount,musicAnalysisVersion,loudnessAnalysisVersion,titleSort,parentStudio",
}
# A keys-only listing, for deletion checks: everything but ratingKey left out.
KEYS_ONLY = {
    "excludeElements": "Media,Part,Stream,Genre,Guid,Mood,Image,Country,Style",
    "excludeFields": "title,titleSort,originalTitle,parentTitle,grandparentTitle,type,key,"
    "parentRatingKey,grandparentRatingKey,index,parentIndex,userRating,viewCount,skipCount,"
    "lastViewedAt,lastRatedAt,parentYear,year,duration,addedAt,updatedAt,parentStudio,summary,"
    "thumb,art,parentThumb,grandparentThumb,grandparentArt,guid,parentGuid,grandparentGuid,"
    "parentKey,grandparentKey,musicAnalysisVersion,ratingCount",
}
# An album listing cut to its keys and track counts (`leafCount`), for
# finding which albums lost tracks without listing every track key.
ALBUM_COUNTS_ONLY = {
    "excludeElements": "Genre,Guid,Image,Country,Style,Mood,Format,Subformat,Director,Collection,Label",
    "excludeFields": "key,parentRatingKey,guid,parentGuid,studio,type,title,titleSort,parentKey,"
    "parentTitle,summary,index,rating,userRating,viewCount,skipCount,lastViewedAt,lastRatedAt,year,"
    "thumb,art,parentThumb,originallyAvailableAt,viewedLeafCount,addedAt,updatedAt,"
    "loudnessAnalysisVersion,musicAnalysisVersion,parentYear",
}


@dataclass(frozen=True)
class Section:
    id: int
    uuid: str | None
    title: str
    type: str
    content_changed_at: int | None

    @property
    def is_music(self) -> bool:
        return self.type == "artist"


class PlexSource(PlexHTTP):
    """One server connection (``PlexHTTP``) and the calls the sync makes.
    ``requests`` counts every HTTP attempt made."""

    def __init__(
        self,
        config: PlexConfig,
        *,
        timeout: float | None = None,
        retries: int = 3,
        page_size: int = 1000,
        batch_size: int = 500,
        in_flight: int = IN_FLIGHT,
        reader: bool = True,
    ):
        super().__init__(config, timeout=timeout, retries=retries)
        self.page_size = page_size
        self.batch_size = batch_size
        self.in_flight = in_flight  # metadata requests at once
        # Big full reads in a child process (reader.py): PLEXCACHE_READER_PROCESS
        # (default on) and PLEXCACHE_READER_MIN_KEYS (the smallest such read).
        self.reader_min_keys = (
            env_int("PLEXCACHE_READER_MIN_KEYS", READER_MIN_KEYS, 0)
            if reader and env_flag("PLEXCACHE_READER_PROCESS", True)
            else None
        )
        self._reader = None  # a reader.ReaderProcess, started by the first big read
        self._ending: list = []  # readers told to exit, not reaped yet

    def close(self) -> None:
        self.close_reader()
        for reader in self._ending:
            reader.close()
        self._ending = []
        super().close()

    def close_reader(self, wait: bool = True) -> None:
        """End the reader process, if any (a later big read starts another);
        ``wait=False``: tell it to exit and go on (``close`` reaps it)"""
        if self._reader is not None:
            if wait or self._reader.broken:  # a broken one is killed at once
                self._reader.close()
            else:
                self._reader.end()
                self._ending.append(self._reader)
            self._reader = None

    def use_reader(self, keys: int) -> bool:
        """Whether a read of ``keys`` keys goes to the reader process; if so it
        is started now, so that its start-up overlaps what comes before the read"""
        return self.reader_min_keys is not None and keys >= self.reader_min_keys and self._ready()

    def _ready(self) -> bool:
        "A reader process up (started, or restarted after a read that failed), or False: none here"
        if self._reader is not None and self._reader.broken:
            self.close_reader()
        if self._reader is None and self.reader_min_keys is not None:
            # imported here: pickle and subprocess are ~20 ms a sync need not import
            from .reader import ReaderProcess

            try:
                self._reader = ReaderProcess(
                    {"url": self.config.url, "token": self.config.token, "timeout": self.timeout,
                     "retries": self.retries, "batch_size": self.batch_size, "in_flight": self.in_flight}
                )  # fmt: skip
            except OSError as e:  # no child process here: read in this one
                log.debug("no reader process (%s): reading full items in-process", e)
                self.reader_min_keys = None
        return self._reader is not None

    def full_batches(
        self, keys: Sequence[str | int], in_reader: bool | None = None
    ) -> Iterator[FullBatch]:
        """``metadata(keys)`` as rows, one ``FullBatch`` per answer: read by the
        reader process when ``in_reader`` (by default: when ``keys`` is big
        enough, ``use_reader``), else by this process's parse thread"""
        if in_reader is None:
            in_reader = self.use_reader(len(keys))
        if in_reader and self._ready():
            return self._from_reader(keys)
        return self._in_process(keys)

    def read_in_reader(self, keys: Sequence[str | int]) -> Iterator[FullBatch]:
        """``keys`` read in full by the reader process that ``use_reader``
        started, or in this one when it could not run (``_from_reader``)"""
        if self._reader is None:
            return self._in_process(keys)
        return self._from_reader(keys)

    def shared_read(self):
        """A ``SharedRead`` (shared_read.py): a big read split between the
        reader process and a worker thread of this one; after ``use_reader``"""
        from .shared_read import SharedRead

        return SharedRead(self)

    def _in_process(self, keys: Sequence[str | int]) -> Iterator[FullBatch]:
        return prefetch(map(full_batch, self.metadata(keys)))

    def _from_reader(self, keys: Sequence[str | int]) -> Iterator[FullBatch]:
        from .reader import ReaderUnavailable

        try:
            yield from self._reader.read(keys, self.where, self._count)
        except ReaderUnavailable as e:  # it never answered: nothing of this read was used yet
            log.debug("the reader process cannot run here (%s): reading full items in-process", e)
            self.close_reader()
            self.reader_min_keys = None
            yield from self._in_process(keys)

    def _count(self, n: int) -> None:
        with self._requests_lock:
            self.requests += n

    # -- the calls the sync makes -----------------------------------------

    def server_info(self) -> dict:
        "``GET /``: machineIdentifier, friendlyName, version"
        root = self.get("/")
        if not root.get("machineIdentifier"):
            raise NotPlexServer(
                f"Plex at {self.base_url} sent no machineIdentifier: not a Plex Media Server?"
            )
        return dict(root.attrib)

    def sections(self) -> list[Section]:
        root = self.get("/library/sections")
        out = []
        for d in root.iter("Directory"):
            try:
                out.append(
                    Section(
                        id=int(d.get("key")),
                        uuid=d.get("uuid"),
                        title=d.get("title") or f"Section {d.get('key')}",
                        type=d.get("type") or "",
                        content_changed_at=int_attr(d.get("contentChangedAt")),
                    )
                )
            except (TypeError, ValueError):
                continue
        return out

    def count(self, section_id: int, libtype: int = TRACK, filters: dict | None = None) -> int:
        "How many items of ``libtype`` the section holds (one Size=0 request)"
        params = {"type": libtype, **(filters or {})}
        root = self.get(f"/library/sections/{section_id}/all", params, start=0, size=0)
        total = int_attr(root.get("totalSize"))
        if total is None:
            total = int_attr(root.get("size")) or 0
        return total

    def sample(self, section_id: int, libtype: int = TRACK, size: int = 1000) -> list[ET.Element]:
        "The first ``size`` items of a listing in key order, as ``pages`` lists them (one request)"
        params = {"type": libtype, "sort": "id", **LISTING_TRIM}
        root = self.get(f"/library/sections/{section_id}/all", params, start=0, size=size)
        return [el for el in root if el.tag in ITEM_TAGS]

    def pages(
        self,
        section_id: int,
        libtype: int = TRACK,
        filters: dict | None = None,
        page_size: int | None = None,
        extra: dict | None = None,
        complete: bool = False,
    ) -> Iterator[tuple[list[ET.Element], int]]:
        """Yield (items, remaining_total) pages in ascending rating-key order.

        Keyset paging: every request asks for keys above the last one seen,
        so concurrent deletions cannot make us skip a live item.

        The paging is a chain (page n+1 needs page n's last key), so a
        lookahead thread asks for page n+1 as soon as page n's bytes are in,
        with the key it reads from them (``pipeline.next_after``), while page n is
        parsed here. The parsed page decides: when its real last key is not
        the one the lookahead went on with (or the lookahead could not tell,
        or stopped on an error), that request is thrown away and paging
        goes on from the real key, as if there had been no lookahead.

        A well-formed but empty or short page from a confused server or
        proxy looks exactly like the end of the listing. So the end is
        checked with a count of the keys above the last one seen when the
        last page brings fewer items than the one before announced (free
        otherwise), and always with ``complete`` (listings whose absences
        become deletions). If Plex counts more, paging goes on (tracks added
        meanwhile are listed too); if it keeps contradicting itself,
        ``PlexBadResponse``.
        """
        size = page_size or self.page_size
        prefix = TYPE_PREFIX[libtype]
        path = f"/library/sections/{section_id}/all"
        base = {"type": libtype, "sort": "id", **LISTING_TRIM, **(filters or {}), **(extra or {})}
        headers = paging(0, size)

        def params_for(after: int | None) -> dict:
            return base if after is None else {**base, f"{prefix}.id>>": after}

        def follow(after, body, error):
            guess = None if body is None or wrong_guesses >= MAX_WRONG_GUESSES else next_after(body)
            return END if guess is None else guess

        last_key = None
        recounts = 0
        announced = None  # items the previous page said were still to come
        wrong_guesses = 0
        ahead = None
        try:
            while True:
                if ahead is None:
                    ahead = lookahead(
                        lambda after: self.fetch_once(path, params_for(after), headers),
                        last_key,
                        follow,
                    )
                after, body, error, guess = next(ahead)
                if (
                    after != last_key
                ):  # pragma: no cover - it is restarted whenever it guessed wrong
                    raise AssertionError(
                        f"lookahead fetched the page after {after}, not {last_key}"
                    )
                root = self.get_fetched(path, params_for(last_key), headers, (body, error))
                items = [el for el in root if el.tag in ITEM_TAGS]
                total = int_attr(root.get("totalSize"))
                if total is None:
                    total = len(items)
                yield items, total
                keys = list(filter(None, map(rating_key, map(_GET_RATING_KEY, items))))
                if keys:
                    new_last = max(map(int, keys))
                    if last_key is not None and new_last <= last_key:
                        raise PlexBadResponse(
                            f"Plex at {self.base_url} ignored key paging (sort=id) for section {section_id}"
                        )
                    last_key = new_last
                    if total > len(items):
                        announced = total - len(items)
                        if guess != last_key:  # the lookahead is not fetching that page
                            if guess is not END:
                                wrong_guesses += 1  # e.g. a server that does not sort pages
                            ahead.close()
                            ahead = None
                        continue
                ahead.close()  # nothing in flight unless it guessed wrong
                ahead = None
                if not complete and (announced is None or total >= announced):
                    return
                above = {f"{prefix}.id>>": last_key} if last_key is not None else {}
                left = self.count(section_id, libtype, {**(filters or {}), **above})
                if left <= 0:
                    return
                recounts += 1
                if recounts > 2:
                    raise PlexBadResponse(
                        f"Plex at {self.base_url} ended the listing of section {section_id} early: "
                        f"it counts {left:,} more items than it lists"
                    )
                log.debug("listing of section %s ended early; %d more counted", section_id, left)
        finally:
            if ahead is not None:
                ahead.close()

    def metadata(
        self, keys: Sequence[str | int], in_flight: int | None = None
    ) -> Iterator[list[ET.Element]]:
        """Full items for ``keys``, one list per batch; keys the server no longer has are skipped.

        ``keys``: rating keys as strings or integers (an ``array("q")`` of a
        million keys is 8 MB, a list of strings ~60 MB). Batches are fetched
        by a ``FetchPool``, up to ``in_flight`` (default ``self.in_flight``) at once, while the previous
        batch is parsed and used; any failure but "none of these exists"
        holds new requests back until it is retried here, one request at a
        time."""
        size = self.batch_size
        batches = range(0, len(keys), size)

        def request(i: int) -> tuple[str, dict]:
            batch = keys[batches[i] : batches[i] + size]
            return "/library/metadata/" + ",".join(map(str, batch)), paging(0, len(batch))

        def fetch(i: int) -> bytes:
            path, headers = request(i)
            return self.fetch_once(path, METADATA_TRIM, headers)

        if not batches:
            return
        pool = FetchPool(fetch, list(range(len(batches))), in_flight or self.in_flight,
                         pause=lambda e: not isinstance(e, PlexNotFound))  # fmt: skip
        try:
            for i in range(len(batches)):
                body, error = pool.get(i)
                path, headers = request(i)
                try:
                    root = self.get_fetched(path, METADATA_TRIM, headers, (body, error))
                except PlexNotFound:
                    continue  # none of them exists any more
                yield list(root)
        finally:
            pool.close()


ITEM_TAGS = ("Track", "Directory", "Metadata")
# A listing whose pages keep ending on a key other than their highest
# (a server that does not sort them) stops being guessed at: each wrong
# guess costs a request or two.
MAX_WRONG_GUESSES = 2
_GET_RATING_KEY = operator.methodcaller("get", "ratingKey")
