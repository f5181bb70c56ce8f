"""Collecting what changed on Plex into the staging database.

- ``list_section``: a full listing of a section's tracks (its absences
  become deletions); or, when listed genre lists may all be cut (nothing
  learned yet about this server version, or its listings show no track
  genres), every track read in full from a keys-only scan
  (``read_section_in_full``; a big read is shared by a reader process and
  a thread of this one, ``plex.shared_read``, and goes on while the next
  section is scanned; its albums and artists are queued on it as they
  appear);
- ``list_changes``: an incremental section: the tracks, albums and artists
  changed since the last sync, then, when the section's count says tracks
  disappeared, which ones (``deletions_by_album``, else a key scan);
- ``read_full_items``: full items (``/library/metadata``) for albums and
  artists the staged tracks need, tracks whose listed genres may be cut
  (``learn.TagFacts.read_in_full_from``), and keys only known from key
  scans; ``check_full_items`` makes sure every key asked for came back or is
  really gone.

Every listed track read in full is compared with its listing entry
(``facts.observe``): that is how the sync learns what this server's
listings show. Everything goes through ``Stage``; progress and the
malformed-item count through ``runs.Progress`` and ``skipped``.
"""

from __future__ import annotations

import json
import logging
import math
from bisect import bisect_left
from dataclasses import dataclass

from ..errors import PlexBadResponse
from ..plex import ALBUM, ALBUM_COUNTS_ONLY, ARTIST, KEYS_ONLY, TRACK, PlexSource, Section, prefetch
from ..plex.rows import (
    STAGE_TRACK_COLUMNS,
    BadItem,
    rating_key,
    track_row,
)
from .learn import TagFacts
from .plan import LiveChanges
from .runs import Progress
from .stage import Stage

log = logging.getLogger("plexcache.sync")

KEY_FILTER_BATCH = 200  # rating keys per `album.id=` / `artist.id=` filter
KEY_SCAN_PAGE = 5000
SAMPLE_SIZE = 1000  # listed tracks compared with their full items when a section is read in full


@dataclass(frozen=True)
class KeyCheck:
    "What counts found without a full key scan: deleted cached tracks, and keys never seen"

    gone: list[str]
    unknown: list[str]


class Collector:
    def __init__(
        self, source: PlexSource, stage: Stage, progress: Progress, facts: TagFacts | None = None
    ):
        self.source = source
        self.stage = stage
        self.progress = progress
        # what track listings show of genres; refined by every comparison (None: nothing trusted)
        self.facts = facts if facts is not None else TagFacts()
        self.skipped = 0  # malformed items left out
        self.missing: set[str] = (
            set()
        )  # keys asked through /library/metadata that did not come back
        self.shared = None  # a plex.SharedRead while a big read runs
        self.ahead: set[str] = set()  # album and artist keys of its tracks: queued on it, or soon
        self.related: list[str] = []  # those not queued yet

    # -- tracks -------------------------------------------------------------

    def _track_rows(self, items, section_id: int | None, full: bool = False) -> list[tuple]:
        rows = []
        for el in items:
            try:
                rows.append(track_row(el, section_id, full))
            except BadItem as e:
                rows.append(None)
                log.debug("skipping item: %s", e)
        return self._kept(rows)

    def _kept(self, rows: list[tuple | None]) -> list[tuple]:
        "``rows`` without malformed items (None) and repeated keys, each one counted as skipped"
        kept, dupes = [], set()
        for row in rows:
            if row is None or row[0] in dupes:
                self.skipped += 1
                continue
            dupes.add(row[0])
            kept.append(row)
        return kept

    def _stage_tracks(self, items, section_id: int | None, full: bool = False) -> None:
        rows = self._track_rows(items, section_id, full)
        self.stage.add_tracks(rows)
        self.progress.fetched += len(rows)

    def list_section(self, section: Section) -> None:
        "Every track of ``section``; all of them count as seen"
        if self.facts.read_in_full_from == 0:
            self.read_section_in_full(section)
            return
        for items, _remaining in prefetch(self.source.pages(section.id, TRACK, complete=True)):
            self._stage_tracks(items, section.id)
            self.progress()
        self.stage.mark_listed(section.id)

    def read_section_in_full(self, section: Section) -> None:
        """Every track of ``section`` from its full item, when any listed
        genre list may be cut (listing the tracks first would only add the
        listing's cost): the keys from a keys-only scan, each page of keys
        read in full while the next page is fetched. One listing page is
        staged first, so that its tracks are compared with their full items:
        what the next syncs learn from. A big read is shared (``_share``):
        it may still run when this returns; ``read_full_items`` waits for it."""
        # a big read goes to a reader process: started now, it is up by the first page of keys
        # (a shared read from an earlier section goes on: its reader is busy, not broken)
        in_reader = self.shared is not None or self.source.use_reader(self.progress.total)
        self._stage_tracks(self.source.sample(section.id, TRACK, SAMPLE_SIZE), section.id)
        for items, _ in prefetch(
            self.source.pages(
                section.id, TRACK, page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY, complete=True
            )
        ):
            keys = [k for k in map(rating_key, (el.get("ratingKey") for el in items)) if k]
            self.stage.add_seen(keys, section.id)
            if in_reader:
                self._share(keys)
            else:
                self._read(keys, in_reader=False)

    def _list_delta(self, section: Section, libtype: int, filters: dict) -> list[str]:
        "Stage (tracks) or return the keys of (albums, artists) items matching ``filters``"
        keys = []
        first = True
        for items, remaining in self.source.pages(section.id, libtype, filters):
            if libtype == TRACK:
                if first:
                    self.progress.total += remaining
                self._stage_tracks(items, section.id)
                self.progress()
            else:
                keys.extend(el.get("ratingKey") for el in items if el.get("ratingKey"))
            first = False
        return keys

    def list_changes(
        self, section: Section, since: int, changed: bool, viewed_since: int | None | bool = True
    ) -> bool:
        """Stage what changed in ``section`` since ``since``.

        ``viewed_since``: start of the play-count (``lastViewedAt``) delta;
        True: ``since``; None: skip it (the history showed no play).

        Returns True when it saw every key of the section (so deletions can
        be applied for it from ``stage.seen``).
        """
        if changed:
            self._list_delta(section, TRACK, {"track.updatedAt>>": since})
        if viewed_since is not None:
            viewed = since if viewed_since is True else viewed_since
            self._list_delta(section, TRACK, {"track.lastViewedAt>>": viewed})
        self._list_delta(section, TRACK, {"track.lastRatedAt>>": since})
        if not changed:
            return False
        albums = self._list_delta(section, ALBUM, {"album.updatedAt>>": since})
        artists = self._list_delta(section, ARTIST, {"artist.updatedAt>>": since})
        self.stage.want(albums + artists)
        # Album and artist edits change derived track columns (album title,
        # album artist, genre fallback, live): re-read their tracks.
        for field_name, keys in (("album.id", albums), ("artist.id", artists)):
            for i in range(0, len(keys), KEY_FILTER_BATCH):
                self._list_delta(
                    section, TRACK, {field_name: ",".join(keys[i : i + KEY_FILTER_BATCH])}
                )
        return self._find_deletions(section.id)

    # -- deletions ------------------------------------------------------------

    def _find_deletions(self, sid: int) -> bool:
        "The server's count tells whether anything disappeared; True when a key scan ran"
        server_total = self.source.count(sid, TRACK)
        local, new = self.stage.section_counts(sid)
        if server_total == local + new:
            return False
        self.progress("deletions", force=True)
        # few missing: key-range counts; more: album track counts, where album
        # listings carry them (no real capture does); else every key
        check = self.deletions_by_ranges(sid, server_total, local + new)
        if check is None:
            check = self.deletions_by_album(sid, server_total, local + new)
        if check is not None:
            self.stage.add_gone(check.gone)
            if check.unknown:
                self.stage.want(check.unknown)
            return False
        self._scan_keys(sid)
        # Keys Plex has that we have never seen (e.g. moved in with an old
        # updatedAt): read them in full.
        missing = self.stage.unknown_seen(sid)
        if missing:
            self.stage.want(missing)
        return True

    def deletions_by_ranges(self, sid: int, server_total: int, expected: int) -> KeyCheck | None:
        """Find the tracks that left section ``sid`` from counts over key ranges.

        The section's count disagrees with the cache's. Plex counts the
        tracks of any key range in one small request (``Size=0`` with
        ``track.id>>=a-1&track.id<<=b``, the filter keyset paging relies on).
        So halve the range of the cache's keys (and the tracks the delta
        listings just staged), count the lower half on the server (the upper
        half is the rest), and keep halving only the halves whose counts
        differ; list the keys of a range once it holds at most a page of
        them. One deletion among a million tracks costs ~log2(N/5,000)
        counts and one page of keys instead of every key of the section.
        Returns the deleted tracks and the unknown ones (to read in full);
        None, and the caller lists every key, as soon as this would cost as
        many requests as that scan, or when what it found does not explain
        the section's count (a deletion and an unknown track in the same
        range cancel out: the count equation catches what it can).
        """
        scan_cost = (
            -(-expected // KEY_SCAN_PAGE) + 1
        )  # pages of the full key scan, and its end count
        # Expected cost with `changed` tracks missing: level l of the halving
        # has at most min(2**l, changed) ranges to count, then a page of keys each.
        halvings = math.ceil(math.log2(max(1.0, expected / KEY_SCAN_PAGE)))
        changed = abs(expected - server_total)
        if (
            sum(min(2**level, changed) for level in range(halvings)) + min(changed, 2**halvings)
            >= scan_cost
        ):
            return None
        keys = self.stage.section_keys(sid)  # sorted; as many as `expected`

        def cached(lo: int, hi: int | None) -> tuple[int, int]:
            return bisect_left(keys, lo), (len(keys) if hi is None else bisect_left(keys, hi))

        todo = [
            (0, None, server_total)
        ]  # key ranges [lo, hi) whose server count differs from the cache's
        leaves: list[tuple[int, int | None]] = []
        counts = 0
        while todo:
            if (
                counts + len(leaves) + len(todo) >= scan_cost
            ):  # each needs one more request at least
                return None
            lo, hi, on_server = todo.pop()
            i, j = cached(lo, hi)
            if max(on_server, j - i) <= KEY_SCAN_PAGE:
                leaves.append((lo, hi))
                continue
            if j - i < 2:  # thousands of tracks Plex has and we never saw: list them all
                return None
            mid = keys[i + (j - i) // 2]  # halves by what the cache holds
            lower = self.source.count(sid, TRACK, _key_range(lo, mid))
            counts += 1
            for part in ((lo, mid, lower), (mid, hi, on_server - lower)):
                i, j = cached(*part[:2])
                if part[2] != j - i:
                    todo.append(part)
        listed, seen = set(), set()
        for lo, hi in leaves:
            i, j = cached(lo, hi)
            listed.update(keys[i:j])
            for items, _ in self.source.pages(
                sid, TRACK, _key_range(lo, hi), page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY
            ):
                seen.update(
                    int(k) for k in map(rating_key, (el.get("ratingKey") for el in items)) if k
                )
        gone = self.stage.only_cached([str(k) for k in sorted(listed - seen)])
        unknown = [str(k) for k in sorted(seen - listed)]
        if len(keys) - len(gone) + len(unknown) != server_total:
            log.debug(
                "key ranges do not explain section %s: %d cached+new, %d gone, %d unknown, Plex counts %d",
                sid, len(keys), len(gone), len(unknown), server_total,
            )  # fmt: skip
            return None
        log.debug(
            "section %s: %d counts and %d key pages found %d gone",
            sid,
            counts,
            len(leaves),
            len(gone),
        )
        return KeyCheck(gone=gone, unknown=unknown)

    def _scan_keys(self, sid: int) -> None:
        "Every track key of the section into ``stage.seen``"
        for items, _ in prefetch(
            self.source.pages(sid, TRACK, page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY, complete=True)
        ):
            self.stage.add_seen(
                (k for k in map(rating_key, (el.get("ratingKey") for el in items)) if k), sid
            )

    def deletions_by_album(self, sid: int, server_total: int, expected: int) -> KeyCheck | None:
        """Find the tracks that left section ``sid`` from per-album counts.

        Only servers whose album listings carry ``leafCount`` allow this (no
        real capture does: plex-wire-format §13); on the others the first
        page says so and this returns None. The section's count disagrees
        with the cache, so tracks were deleted
        (or appeared without a recent ``updatedAt``). Instead of listing every
        track key of the section, list its albums with their ``leafCount``,
        compare each with the cache's count for that album (staged tracks
        counted under the album they are staged with), and list the track
        keys of only the albums that differ. Returns what it found when that
        explains the whole difference: the deleted tracks and the unknown
        ones (to read in full); None when it does not, e.g. a server without
        ``leafCount`` or changes racing the sync, and the caller falls back
        to the full key scan.
        """
        server_albums: dict[str, int] = {}
        for items, _ in self.source.pages(
            sid, ALBUM, page_size=KEY_SCAN_PAGE, extra=ALBUM_COUNTS_ONLY
        ):
            for el in items:
                key, leaves = rating_key(el.get("ratingKey")), el.get("leafCount")
                if not key or leaves is None or not leaves.isdigit():
                    return None
                server_albums[key] = int(leaves)
        cached = self.stage.album_track_counts(sid)
        suspects = sorted(
            (
                a
                for a in server_albums.keys() | cached.keys()
                if server_albums.get(a, 0) != cached.get(a, 0)
            ),
            key=int,
        )
        seen: set[str] = set()
        for i in range(0, len(suspects), KEY_FILTER_BATCH):
            batch = suspects[i : i + KEY_FILTER_BATCH]
            for items, _ in self.source.pages(
                sid, TRACK, {"album.id": ",".join(batch)}, page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY
            ):
                seen.update(k for k in map(rating_key, (el.get("ratingKey") for el in items)) if k)
        gone, unknown = self.stage.compare_albums(sid, suspects, seen)
        if expected - len(gone) + len(unknown) != server_total:
            log.debug(
                "album counts do not explain section %s: %d cached+new, %d gone, %d unknown, Plex counts %d",
                sid,
                expected,
                len(gone),
                len(unknown),
                server_total,
            )
            return None
        return KeyCheck(gone=gone, unknown=unknown)

    # -- announced changes (live) ----------------------------------------------

    def read_live(self, changes: LiveChanges) -> None:
        """Stage what Plex announced: every announced key read in full (one
        ``/library/metadata`` request per ``batch_size`` keys), with the cached
        tracks of announced albums and artists (their derived columns follow
        the album or artist: album title, year, genre fallback, live flag,
        artist names), and cached tracks Plex no longer returns marked gone.

        A changed track missing from the answer is asked for once more before
        it counts as deleted, as in ``check_full_items``; one announced as
        deleted is not."""
        related = self.stage.cached_tracks_of(changes.albums | changes.artists)
        keys = sorted(set(changes.keys) | related, key=int)
        if not keys:
            return
        missing = self._read(keys)
        again = sorted(self.stage.cached_tracks(missing - changes.deleted), key=int)
        gone = (missing - set(again)) | (self._read(again) if again else set())
        # absent items are what deletions look like here, not a cut answer to check again
        self.missing -= gone
        self.stage.add_gone(sorted(gone, key=int))

    # -- full items -----------------------------------------------------------

    def read_full_items(self) -> None:
        """Full items for: albums and artists the staged tracks need, tracks
        whose listed genres may be truncated, and anything queued in ``wanted``."""
        self._stage_shared()  # all of it: what is still wanted below is known once it is staged
        self.close()
        self.progress("metadata", force=True)
        self.stage.want_related(self.facts.read_in_full_from)
        keys = [k for k in self.stage.wanted() if k not in self.ahead]
        if keys:
            self._read(keys)
        # Tracks staged from their full items (found by key scans) may belong
        # to albums and artists nobody has yet; albums may name artists we do
        # not have (rare: tracks name them too).
        for unknown in (self.stage.unknown_parents, self.stage.unknown_album_artists):
            extra = [k for k in unknown() if k not in self.missing]
            if extra:
                self._read(extra)
        self.check_full_items()

    def check_full_items(self) -> None:
        """Every key asked for in full must come back, or be gone for good.

        A metadata answer may leave keys out because they were deleted after
        we listed them, or because the answer was cut or wrong. Taking the
        latter for the former would cache tracks with no album or artist
        row, with an album's or artist's old title, genres and live flag, or
        with truncated genre lists, and the next incremental sync would not
        look again. So ask once more for what is missing; then, if Plex
        still lists the staged tracks that depend on a missing key, it is
        contradicting itself: fail, changing nothing. Otherwise those tracks
        are gone too, and are left out.
        """
        if not self.missing:
            return
        asked, self.missing = sorted(self.missing, key=int), set()
        missing = self._read(asked)
        if not missing:
            return
        dependents: dict = {}  # section -> staged track keys that need a missing key
        for key in missing:
            for track_key, sid in self.stage.dependents(key):
                dependents.setdefault(sid, set()).add(track_key)
        for sid, keys in dependents.items():
            keys = sorted(keys, key=int)
            for i in range(0, len(keys), KEY_FILTER_BATCH):
                batch = keys[i : i + KEY_FILTER_BATCH]
                if sid is not None and self.source.count(sid, TRACK, {"track.id": ",".join(batch)}):
                    raise PlexBadResponse(
                        f"Plex at {self.source.base_url} lists tracks whose album, artist or full "
                        f"details it does not return ({len(missing):,} items, e.g. {min(missing, key=int)}); "
                        "nothing was changed, try again"
                    )
        self.stage.drop_tracks(k for keys in dependents.values() for k in keys)

    def _read(self, keys: list[str], in_reader: bool | None = None) -> set[str]:
        """Read ``keys`` in full and stage what comes back; the keys that did
        not come back. ``in_reader``: see ``PlexSource.full_batches``."""
        return self._stage_batches(keys, self.source.full_batches(keys, in_reader))

    def _stage_batches(self, keys, batches) -> set[str]:
        "Stage the full-item ``batches`` read for ``keys``; the keys that did not come back"
        returned = set()
        for batch in batches:
            returned |= batch.returned
            self.skipped += batch.skipped
            self.stage.add_items(batch.albums, batch.artists)
            if batch.tracks:
                self._merge_full_tracks(batch.tracks)
            self.progress()
        missing = set(keys) - returned
        self.missing |= missing
        return missing

    # -- a big read, shared by the reader process and this one ---------------

    def _share(self, keys: list[str]) -> None:
        """Queue ``keys`` on the shared read (``plex.shared_read``), staging
        what came back while more than a page of keys waits"""
        if self.shared is None:
            self.shared = self.source.shared_read()
        self.shared.add(keys)
        self._stage_shared(backlog=KEY_SCAN_PAGE)

    def _stage_shared(self, backlog: int = 0) -> None:
        """Stage the shared read's answers until at most ``backlog`` keys wait
        (0: all, the last albums and artists included). The albums and
        artists of its tracks (whole sections: every one is read in full,
        ``Stage.want_related``) are queued on it as they appear, a batch at
        a time, instead of after the last track (``ahead``)."""
        if self.shared is None:
            return
        size = self.source.batch_size
        while True:
            for keys, batches in self.shared.results(backlog):
                self._stage_batches(keys, batches)
                for batch in batches:
                    for _, row in batch.tracks:
                        for key in (row[_ALBUM_AT], row[_ARTIST_AT]) if row else ():
                            if key and key not in self.ahead:
                                self.ahead.add(key)
                                self.related.append(key)
                while len(self.related) >= size:
                    self.shared.add(self.related[:size])
                    del self.related[:size]
            if backlog or not self.related:
                return
            self.shared.add(self.related)  # the last ones
            self.related = []

    def close(self) -> None:
        "Stop the shared read's workers, if any"
        if self.shared is not None:
            self.shared.close()
            self.shared = None

    def _merge_full_tracks(self, tracks: list[tuple]) -> None:
        """Full track rows (``(key, row)``, row None when malformed): complete
        genres for tracks staged from listings (each one compared with its
        listing entry: ``facts.observe``); tracks we only knew by key are
        staged whole."""
        listed = self.stage.listed_genres([k for k, _ in tracks if k])
        complete, new = [], []
        for key, row in tracks:
            if key not in listed:
                new.append(row)
                continue
            if row is None:
                self.skipped += 1
                continue
            complete.append(row)
            shown = listed[key]
            if shown is not None:
                self.facts.observe(
                    shown, len(json.loads(row[_GENRES_AT])) if row[_GENRES_AT] else 0
                )
        self.stage.complete_genres(complete)
        if new:
            rows = self._kept(new)
            self.stage.add_tracks(rows)  # full items carry their librarySectionID
            self.progress.fetched += len(rows)


_GENRES_AT = STAGE_TRACK_COLUMNS.index("own_genres")
_ALBUM_AT = STAGE_TRACK_COLUMNS.index("album_rating_key")
_ARTIST_AT = STAGE_TRACK_COLUMNS.index("artist_rating_key")


def _key_range(lo: int, hi: int | None) -> dict:
    "Filters for the track keys k with lo <= k < hi (hi None: no upper bound)"
    return {
        **({"track.id>>": lo - 1} if lo > 0 else {}),
        **({"track.id<<": hi} if hi is not None else {}),
    }
