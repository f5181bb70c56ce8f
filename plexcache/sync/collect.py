"""Collecting what changed on Plex into the staging database.

- ``list_section``: a full listing of a section's tracks (its absences
  become deletions);
- ``list_changes``: an incremental section: the tracks, albums and artists
  changed since the last sync, then, when the section's count says tracks
  disappeared, which ones (``deletions_by_album``, else a key scan);
- ``read_full_items``: full items (``/library/metadata``) for albums and
  artists the staged tracks need, tracks whose listed genres may be cut,
  and keys only known from key scans; ``check_full_items`` makes sure every
  key asked for came back or is really gone.

Everything goes through ``Stage``; progress and the malformed-item count
through ``runs.Progress`` and ``skipped``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import PlexBadResponse
from ..plex import ALBUM, ALBUM_COUNTS_ONLY, ARTIST, KEYS_ONLY, TRACK, PlexSource, Section, prefetch
from ..plex.rows import BadItem, album_row, artist_row, item_type, rating_key, track_row
from .plan import LiveChanges
from .runs import Progress
from .stage import Stage

log = logging.getLogger("plexcache.sync")

KEY_FILTER_BATCH = 200  # rating keys per `album.id=` / `artist.id=` filter
KEY_SCAN_PAGE = 5000


@dataclass(frozen=True)
class AlbumCheck:
    "What per-album track counts found: deleted cached tracks, and keys never seen"

    gone: list[str]
    unknown: list[str]


class Collector:
    def __init__(self, source: PlexSource, stage: Stage, progress: Progress):
        self.source = source
        self.stage = stage
        self.progress = progress
        self.skipped = 0  # malformed items left out
        self.asked: set[str] = set()  # keys requested through /library/metadata
        self.returned: set[str] = set()  # keys those answers brought back

    # -- tracks -------------------------------------------------------------

    def _track_rows(self, items, section_id: int | None) -> list[tuple]:
        rows, dupes = [], set()
        for el in items:
            try:
                row = track_row(el, section_id)
            except BadItem as e:
                self.skipped += 1
                log.debug("skipping item: %s", e)
                continue
            if row[0] in dupes:
                self.skipped += 1
                continue
            dupes.add(row[0])
            rows.append(row)
        return rows

    def _stage_tracks(self, items, section_id: int | None) -> None:
        rows = self._track_rows(items, section_id)
        self.stage.add_tracks(rows)
        self.progress.fetched += len(rows)

    def list_section(self, section: Section) -> None:
        "Every track of ``section``; all of them count as seen"
        for items, _remaining in prefetch(self.source.pages(section.id, TRACK, complete=True)):
            self._stage_tracks(items, section.id)
            self.progress()
        self.stage.mark_listed(section.id)

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

    def list_changes(self, section: Section, since: int, changed: bool, viewed_since: int | None | bool = True) -> bool:
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
                self._list_delta(section, TRACK, {field_name: ",".join(keys[i : i + KEY_FILTER_BATCH])})
        return self._find_deletions(section.id)

    # -- deletions ------------------------------------------------------------

    def _find_deletions(self, sid: int) -> bool:
        "The server's count tells whether anything disappeared; True when a key scan ran"
        server_total = self.source.count(sid, TRACK)
        local, new = self.stage.section_counts(sid)
        if server_total == local + new:
            return False
        self.progress("deletions", force=True)
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

    def _scan_keys(self, sid: int) -> None:
        "Every track key of the section into ``stage.seen``"
        for items, _ in prefetch(
            self.source.pages(sid, TRACK, page_size=KEY_SCAN_PAGE, extra=KEYS_ONLY, complete=True)
        ):
            self.stage.add_seen(
                (k for k in map(rating_key, (el.get("ratingKey") for el in items)) if k), sid
            )

    def deletions_by_album(self, sid: int, server_total: int, expected: int) -> AlbumCheck | None:
        """Find the tracks that left section ``sid`` from per-album counts.

        The section's count disagrees with the cache, so tracks were deleted
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
        for items, _ in self.source.pages(sid, ALBUM, page_size=KEY_SCAN_PAGE, extra=ALBUM_COUNTS_ONLY):
            for el in items:
                key, leaves = rating_key(el.get("ratingKey")), el.get("leafCount")
                if not key or leaves is None or not leaves.isdigit():
                    return None
                server_albums[key] = int(leaves)
        cached = self.stage.album_track_counts(sid)
        suspects = sorted(
            (a for a in server_albums.keys() | cached.keys() if server_albums.get(a, 0) != cached.get(a, 0)),
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
                sid, expected, len(gone), len(unknown), server_total,
            )
            return None
        return AlbumCheck(gone=gone, unknown=unknown)

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
        self._read(keys)
        missing = {k for k in keys if k not in self.returned}
        again = sorted(self.stage.cached_tracks(missing - changes.deleted), key=int)
        if again:
            self._read(again)
        gone = {k for k in missing if k not in self.returned}
        # absent items are what deletions look like here, not a cut answer to check again
        self.asked -= gone
        self.stage.add_gone(sorted(gone, key=int))

    # -- full items -----------------------------------------------------------

    def read_full_items(self) -> None:
        """Full items for: albums and artists the staged tracks need, tracks
        whose listed genres may be truncated, and anything queued in ``wanted``."""
        self.progress("metadata", force=True)
        self.stage.want_related()
        keys = self.stage.wanted()
        if not keys:
            return
        self._read(keys)
        # Albums may name artists we do not have yet (rare: tracks name them too).
        extra = self.stage.unknown_album_artists()
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
        missing = self.asked - self.returned
        if not missing:
            return
        self._read(sorted(missing, key=int))
        missing -= self.returned
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

    def _read(self, keys: list[str]) -> None:
        "Read ``keys`` in full and stage what comes back"
        self.asked.update(keys)
        for elements in prefetch(self.source.metadata(keys)):
            tracks_full, albums, artists = [], [], []
            for el in elements:
                kind = item_type(el)
                try:
                    if kind == "album":
                        albums.append(album_row(el))
                    elif kind == "artist":
                        artists.append(artist_row(el))
                    elif kind == "track":
                        tracks_full.append(el)
                    else:
                        continue
                    self.returned.add(rating_key(el.get("ratingKey")))
                except BadItem:
                    self.skipped += 1
            self.stage.add_items(albums, artists)
            if tracks_full:
                self._merge_full_tracks(tracks_full)
            self.progress()

    def _merge_full_tracks(self, elements) -> None:
        """Full track items: complete genres for staged tracks; tracks we
        only knew by key (found by a key scan) are staged whole."""
        staged, new = [], []
        for el in elements:
            (staged if self.stage.is_staged(el.get("ratingKey")) else new).append(el)
        rows = []
        for el in staged:
            try:
                rows.append(track_row(el, None))
            except BadItem:
                self.skipped += 1
        self.stage.complete_genres(rows)
        for el in new:
            sid = el.get("librarySectionID")
            self._stage_tracks([el], int(sid) if sid and sid.isdigit() else None)
        if new:
            self.stage.genres_complete(rating_key(el.get("ratingKey")) for el in new)  # full items
            # their albums/artists may be unknown too
            keys = self.stage.unknown_parents()
            if keys:
                self.stage.want(keys)
                self._read(keys)
