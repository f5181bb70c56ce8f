"""Deterministic synthetic Plex music library with a mutation overlay.

Only a compact per-album structure (a few ``array`` columns) is built up front; artist, album
and track records are generated lazily from ``random.Random`` seeded with (seed, ratingKey),
so a million-track library costs a few megabytes.  Mutations live in an overlay:

* ``_over[key]``      field overrides (edits, play state, ratings)
* ``_added[key]``     records of items created by ``add_tracks``
* ``_deleted``        keys that are gone
* ``_touched[type]``  keys whose record differs from the base data (overlay or added)

Every base timestamp is <= ``BASE_TIME`` (2025-06-01), independent of the wall clock, so a
time filter whose threshold is above it only has to look at ``_touched``.
"""

from __future__ import annotations

import _random
import hashlib
import re
import threading
import time
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from datetime import UTC, datetime
from functools import lru_cache
from random import Random

from . import names as N

BASE_TIME = 1748736000  # 2025-06-01T00:00:00Z: no base timestamp is later than this
EPOCH_START = 1388534400  # 2014-01-01T00:00:00Z
ARTIST, ALBUM, TRACK, MOVIE = 8, 9, 10, 1
TYPE_NAMES = {ARTIST: "artist", ALBUM: "album", TRACK: "track", MOVIE: "movie"}
TYPE_IDS = {v: k for k, v in TYPE_NAMES.items()}

# tag ids as PMS would report them in <Genre id=".." filter="genre=..">
GENRE_IDS = {g: 200 + 7 * i for i, g in enumerate(N.GENRES)}
FORMAT_IDS = {"Album": 90001, "EP": 90002, "Single": 90003}
SUBFORMAT_IDS = {
    "Live": 90101,
    "Compilation": 90102,
    "Soundtrack": 90103,
    "Remix": 90104,
    "Demo": 90105,
}
TAG_IDS = {"genre": GENRE_IDS, "format": FORMAT_IDS, "subformat": SUBFORMAT_IDS}


def tag_id(field: str, name: str) -> int:
    "Stable tag id for a tag name (names added by edits get a crc-derived id)"
    known = TAG_IDS.get(field)
    if known is not None and name in known:
        return known[name]
    return 100000 + zlib.crc32(f"{field}:{name}".encode()) % 900000


TRACK_EDITABLE = {
    "title", "titleSort", "originalTitle", "index", "parentIndex", "duration", "genres", "summary",
    "userRating", "viewCount", "skipCount", "lastViewedAt", "lastRatedAt", "ratingCount", "addedAt",
    "updatedAt", "guid", "guids", "musicAnalysisVersion",
}  # fmt: skip
ALBUM_EDITABLE = {
    "title", "titleSort", "year", "genres", "subformats", "formats", "studio", "summary",
    "originallyAvailableAt", "addedAt", "updatedAt", "guid", "guids", "userRating",
}  # fmt: skip
ARTIST_EDITABLE = {
    "title", "titleSort", "genres", "countries", "summary", "addedAt", "updatedAt", "guid", "guids",
    "userRating",
}  # fmt: skip

# ---------------------------------------------------------------------------------------------
# filter / sort vocabulary (PMS "Media Queries")

DATE_FIELDS = {
    "addedAt",
    "updatedAt",
    "lastViewedAt",
    "lastRatedAt",
    "lastSkippedAt",
    "originallyAvailableAt",
}
INT_FIELDS = {"id", "index", "parentIndex", "viewCount", "skipCount", "userRating", "duration", "ratingCount",
              "year", "decade", "leafCount", "absoluteIndex"}  # fmt: skip
STR_FIELDS = {"title", "titleSort", "originalTitle", "studio", "summary", "guid"}
TAG_FIELDS = {"genre", "mood", "style", "format", "subformat", "label", "collection", "country"}
KNOWN_FIELDS = {
    TRACK: {"id", "title", "titleSort", "originalTitle", "index", "absoluteIndex", "parentIndex", "duration",
            "addedAt", "updatedAt", "lastViewedAt", "lastRatedAt", "lastSkippedAt", "viewCount", "skipCount",
            "userRating", "ratingCount", "genre", "mood", "label", "collection", "guid", "year", "summary"},
    ALBUM: {"id", "title", "titleSort", "year", "decade", "studio", "addedAt", "updatedAt", "lastViewedAt",
            "lastRatedAt", "viewCount", "userRating", "genre", "style", "mood", "format", "subformat", "label",
            "collection", "guid", "leafCount", "originallyAvailableAt", "summary", "index"},
    ARTIST: {"id", "title", "titleSort", "addedAt", "updatedAt", "lastViewedAt", "lastRatedAt", "viewCount",
             "userRating", "genre", "style", "mood", "country", "label", "collection", "guid", "summary", "index"},
    MOVIE: {"id", "title", "titleSort", "year", "decade", "studio", "addedAt", "updatedAt", "lastViewedAt",
            "viewCount", "userRating", "genre", "label", "collection", "guid", "summary", "duration"},
}  # fmt: skip
TIME_FAST_FIELDS = {"addedAt", "updatedAt", "lastViewedAt", "lastRatedAt"}
SORT_FIELDS = {"id", "title", "titleSort", "addedAt", "updatedAt", "lastViewedAt", "lastRatedAt", "viewCount",
               "skipCount", "userRating", "index", "absoluteIndex", "parentIndex", "duration", "year",
               "originallyAvailableAt", "ratingCount", "guid", "summary", "originalTitle", "studio",
               "leafCount"}  # fmt: skip

# query parameters PMS understands that are not filters
NON_FILTER_PARAMS = {
    "type", "sort", "group", "limit", "resolveTags", "push", "pop", "or", "checkFiles", "asyncCheckFiles",
    "skipRefresh", "asyncRefreshLocalMediaAgent", "asyncRefreshAnalysis", "asyncAugmentMetadata",
    "augmentCount", "filters", "unwatched", "sectionID", "contentDirectoryID", "pinnedContentDirectoryID",
    "excludeAllLeaves", "mediaQuery", "hasMedia", "hasThumbnail", "pivot", "includeAdvanced", "save",
}  # fmt: skip
NON_FILTER_PREFIXES = ("include", "exclude", "X-Plex-", "x-plex-")

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mon": 2592000, "y": 31536000}
_FILTER_KEY = re.compile(r"(?:(track|album|artist|movie)\.)?([A-Za-z][A-Za-z0-9]*)([!<>]*)")
_RELATIVE = re.compile(r"^-?(\d+)(mon|[smhdwy])$")


# A listing row: an unedited base track's values as drawn without the tail (Library.records(rows=True)).
# "parent" is the dict of its album- and artist-derived fields (Library._track_fields), "key" its
# ratingKey as an int; the others are the values its record holds (the last three: its media's).
TRACK_ROW = ("parent", "key", "title", "originalTitle", "index", "parentIndex", "userRating", "viewCount",
             "skipCount", "lastViewedAt", "lastRatedAt", "duration", "addedAt", "updatedAt", "genres", "bitrate",
             "audioCodec", "container")  # fmt: skip
# a track's fields that come from its album and artist (never edited on the track itself)
TRACK_PARENT_FIELDS = frozenset((
    "parentRatingKey", "grandparentRatingKey", "parentGuid", "grandparentGuid", "parentStudio", "grandparentKey",
    "parentKey", "grandparentTitle", "parentTitle", "parentYear", "thumb", "parentThumb", "art", "grandparentArt",
    "grandparentThumb", "librarySectionID"))  # fmt: skip
TRACK_CACHE = 32768  # generated base tracks kept (only when the library has no more tracks)
PARENT_CACHE = 200_000  # generated base albums, and artists, kept at most (~2.4M tracks' worth)


class QueryError(ValueError):
    "A malformed query (bad number, bad date): PMS answers 400"


_new_random = Random.__new__
_seed_random = _random.Random.seed  # what Random(x) ends up calling for an int x


def _rng(x: int) -> Random:
    "Random(x), without the Python-level __init__/seed layers (same state, same draws)"
    rng = _new_random(Random)
    _seed_random(rng, x)
    rng.gauss_next = None
    return rng


_local = threading.local()


def _track_rng(x: int) -> Random:
    """Random(x) for _gen_track: one generator per thread, reseeded (no 2.5 KB allocation per
    track). Only _gen_track may use it, and it generates nothing else while it draws."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = _new_random(Random)
    _seed_random(rng, x)
    rng.gauss_next = None
    return rng


# picks of _gen_track: tuples, their lengths, title-cased words
_WORDS_T = tuple(w.title() for w in N.WORDS)
_MOVEMENTS, _ADJ, _NOUN, _CJK_WORDS, _FIRST, _LAST, _EMOJI = (
    tuple(N.MOVEMENTS), tuple(N.ADJ), tuple(N.NOUN), tuple(N.CJK_WORDS), tuple(N.FIRST), tuple(N.LAST),
    tuple(N.EMOJI))  # fmt: skip
_N_WORDS, _N_MOVEMENTS, _N_ADJ, _N_NOUN, _N_CJK_WORDS, _N_FIRST, _N_LAST, _N_EMOJI = map(
    len, (_WORDS_T, _MOVEMENTS, _ADJ, _NOUN, _CJK_WORDS, _FIRST, _LAST, _EMOJI))  # fmt: skip
_MP3_RATES = (128, 192, 256, 320)


def _h(seed: int, key: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + key * 7 + salt) & 0xFFFFFFFFFFFF


def _hex(rng: Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _uuid(rng: Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Library:
    """The simulated PMS database.  All public methods are thread-safe."""

    def __init__(self, tracks: int = 18432, seed: int = 1, music_sections: int = 2, clock=None):
        if tracks < 0:
            raise ValueError("tracks must be >= 0")
        if music_sections < 1:
            raise ValueError("music_sections must be >= 1")
        self.seed = seed
        self.n_tracks = tracks
        self._clock = clock or (lambda: int(time.time()))
        self.lock = threading.RLock()
        self.version = 0  # bumps on every mutation (query cache key)
        self.unknown_filters: Counter = Counter()
        self._build_structure(tracks, seed, music_sections)
        self._over: dict[int, dict] = {}
        self._added: dict[int, dict] = {}
        self._deleted: set[int] = set()
        self._touched: dict[int, set[int]] = {
            ARTIST: set(),
            ALBUM: set(),
            TRACK: set(),
            MOVIE: set(),
        }
        self._extra_tracks: dict[int, list[int]] = {}  # album key -> added track keys
        self._extra_albums: dict[int, list[int]] = {}  # artist key -> added album keys
        self._deleted_in_album: Counter = Counter()
        self._merged: dict[int, dict] = {}  # merged album/artist records, cleared on mutation
        self._query_cache: OrderedDict = OrderedDict()
        # generated base artists and albums are immutable too. A full sync lists every track (so
        # generates every album, in key order), then asks for every album and artist again: only a
        # cache holding them all saves generating them twice (1,000,000 tracks: 84k albums and 26k
        # artists, ~200 MB).
        self._artist_base = lru_cache(maxsize=min(len(self._art_key), PARENT_CACHE) or 1)(
            self._gen_artist
        )
        self._album_base = lru_cache(maxsize=min(len(self._alb_key), PARENT_CACHE) or 1)(
            self._gen_album
        )
        # generated base tracks are immutable (edits live in the overlay): cache them when the whole
        # library fits. A bigger library is listed in key order, which an LRU never hits: caching
        # would only cost (and keep the garbage collector busy with ~100k cached objects).
        self._tracks_cached = tracks <= TRACK_CACHE
        self._track_base = (
            lru_cache(maxsize=TRACK_CACHE)(self._gen_base_track)
            if self._tracks_cached
            else self._gen_base_track
        )

    # -----------------------------------------------------------------------------------------
    # structure

    def _build_structure(self, tracks: int, seed: int, music_sections: int) -> None:
        rng = Random(seed)
        self.machine_seed = hashlib.sha1(f"plexcache-sim-{seed}".encode()).hexdigest()
        # section plan: "Music" gets ~88% of tracks, the others share the rest
        if music_sections == 1:
            shares = [tracks]
        else:
            first = round(tracks * 0.88)
            rest = tracks - first
            k = music_sections - 1
            shares = [first] + [rest // k + (1 if i < rest % k else 0) for i in range(k)]
        titles = ["Music", "Classical", "Hi-Res"] + [
            f"Music {i}" for i in range(4, music_sections + 1)
        ]
        self._sections: dict[int, dict] = {}
        self.movie_keys = array("q", [1, 2, 3])
        self._movies = {}
        for i, (mk, title, year) in enumerate(
            zip(self.movie_keys, ("Amélie", "Spirited Away (千と千尋の神隠し)", "Stop Making Sense"),
                (2001, 2001, 1984), strict=True)
        ):  # fmt: skip
            added = EPOCH_START + 86400 * (30 + 40 * i)
            self._movies[mk] = {
                "ratingKey": str(mk), "key": f"/library/metadata/{mk}", "guid": f"plex://movie/{mk:024x}",
                "studio": "Studio", "type": "movie", "title": title, "titleSort": None, "summary": "",
                "year": year, "thumb": f"/library/metadata/{mk}/thumb/{added}", "duration": 5400000 + i,
                "addedAt": added, "updatedAt": added + 100, "genres": ["Comedy"], "guids": [],
            }  # fmt: skip
        alb_key, alb_art, alb_n = array("q"), array("l"), array("l")
        art_key, art_sec, art_alb0, art_nalb, art_va = (
            array("q"),
            array("l"),
            array("l"),
            array("l"),
            array("b"),
        )
        key = 10
        self._live: dict[int, dict[int, array]] = {}
        for si, budget in enumerate(shares):
            sid = si + 1
            classical = titles[si] == "Classical"
            va_albums = round(0.05 * budget / 12.5) if not classical else 0
            first_artist = len(art_key)
            first_album = len(alb_key)
            is_va = va_albums > 0
            while budget > 0:
                nalb = va_albums if is_va else min(60, int(rng.paretovariate(1.25)))
                art_key.append(key)
                art_sec.append(sid)
                art_alb0.append(len(alb_key))
                art_va.append(1 if is_va else 0)
                key += 1
                made = 0
                for _ in range(nalb):
                    if budget <= 0:
                        break
                    n = min(budget, int(rng.triangular(5, 21, 11)))
                    alb_key.append(key)
                    alb_art.append(len(art_key) - 1)
                    alb_n.append(n)
                    key += 1 + n
                    budget -= n
                    made += 1
                art_nalb.append(made)
                is_va = False
            live_tracks = array("q")
            for j in range(first_album, len(alb_key)):
                live_tracks.extend(range(alb_key[j] + 1, alb_key[j] + alb_n[j] + 1))
            self._live[sid] = {
                ARTIST: array("q", art_key[first_artist:]),
                ALBUM: array("q", alb_key[first_album:]),
                TRACK: live_tracks,
            }
            h = hashlib.sha1(f"{seed}-section-{sid}".encode()).hexdigest()
            self._sections[sid] = {
                "id": sid, "key": str(sid), "title": titles[si], "type": "artist",
                "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
                "agent": "tv.plex.agents.music", "scanner": "Plex Music", "language": "en-US",
                "location": f"/data/{titles[si].lower().replace(' ', '-')}", "location_id": sid + 10,
                "createdAt": EPOCH_START - 86400 + sid * 60, "updatedAt": BASE_TIME - 3600 * sid,
                "scannedAt": BASE_TIME - 600 * sid, "content_changed_at": 2004266 + 1117 * sid + seed % 1000,
                "classical": classical, "thumb": "/:/resources/artist.png",
                "art": "/:/resources/artist-fanart.jpg",
            }  # fmt: skip
        movie_sid = len(shares) + 1
        h = hashlib.sha1(f"{seed}-section-{movie_sid}".encode()).hexdigest()
        self._sections[movie_sid] = {
            "id": movie_sid, "key": str(movie_sid), "title": "Movies", "type": "movie",
            "uuid": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
            "agent": "tv.plex.agents.movie", "scanner": "Plex Movie", "language": "en-US",
            "location": "/data/movies", "location_id": movie_sid + 10,
            "createdAt": EPOCH_START, "updatedAt": BASE_TIME - 7200, "scannedAt": BASE_TIME - 7200,
            "content_changed_at": 1500000 + seed % 1000, "classical": False,
            "thumb": "/:/resources/movie.png", "art": "/:/resources/movie-fanart.jpg",
        }  # fmt: skip
        self._live[movie_sid] = {MOVIE: array("q", self.movie_keys)}
        self.movie_section = movie_sid
        self._alb_key, self._alb_art, self._alb_n = alb_key, alb_art, alb_n
        self._art_key, self._art_sec, self._art_alb0, self._art_nalb, self._art_va = (
            art_key, art_sec, art_alb0, art_nalb, art_va)  # fmt: skip
        self._next_key = key
        self._change_counter = max(s["content_changed_at"] for s in self._sections.values())

    # -----------------------------------------------------------------------------------------
    # lazy generators (base data; never mutated)

    def _artist_name(self, rng: Random, classical: bool) -> tuple[str, str | None]:
        if classical:
            return rng.choice(N.COMPOSERS), None
        r = rng.random()
        if r < 0.30:
            name = f"{rng.choice(N.ADJ)} {rng.choice(N.NOUN)}"
        elif r < 0.42:
            base = f"{rng.choice(N.ADJ)} {rng.choice(N.NOUN)}"
            return f"The {base}", base
        elif r < 0.66:
            name = f"{rng.choice(N.FIRST)} {rng.choice(N.LAST)}"
        elif r < 0.76:
            name = rng.choice(N.CJK_NAMES)
        elif r < 0.84:
            name = f"{rng.choice(N.FIRST)} & the {rng.choice(N.NOUN)}"
        elif r < 0.88:
            name = rng.choice(
                (f'The "{rng.choice(N.ADJ)}" {rng.choice(N.NOUN)}', f"<{rng.choice(N.NOUN)}>",
                 f"{rng.choice(N.NOUN)} > {rng.choice(N.NOUN)}", f"{rng.choice(N.FIRST)}'s {rng.choice(N.NOUN)}")
            )  # fmt: skip
        elif r < 0.89:
            name = f"{rng.choice(N.NOUN)} {rng.choice(N.EMOJI)}"
        else:
            name = rng.choice(N.NOUN)
        return name, None

    def _gen_artist(self, idx: int) -> dict:
        key = self._art_key[idx]
        sid = self._art_sec[idx]
        rng = _rng(_h(self.seed, key, 1))
        classical = self._sections[sid]["classical"]
        if self._art_va[idx]:
            title, title_sort = "Various Artists", None
            matched = True
        else:
            title, title_sort = self._artist_name(rng, classical)
            matched = rng.random() < 0.9
        added = EPOCH_START + int(rng.random() * (BASE_TIME - EPOCH_START - 200 * 86400))
        return self._artist_record(key, sid, rng, title, title_sort, matched, added, classical)

    def _artist_record(
        self, key, sid, rng, title, title_sort, matched, added, classical, updated=None
    ) -> dict:
        pool = N.CLASSICAL_GENRES if classical else N.POP_GENRES
        genres = rng.sample(pool, rng.randint(1, 4 if not classical else 2))
        if updated is None:
            updated = min(BASE_TIME, added + int(rng.random() * (BASE_TIME - added)))
        summary = f"{title} is an artist." if rng.random() < 0.3 else ""
        return {
            "ratingKey": str(key), "key": f"/library/metadata/{key}/children",
            "guid": f"plex://artist/{_hex(rng, 24)}" if matched else f"local://{key}",
            "type": "artist", "title": title, "titleSort": title_sort, "summary": summary, "index": 1,
            "thumb": f"/library/metadata/{key}/thumb/{updated}", "art": f"/library/metadata/{key}/art/{updated}",
            "addedAt": added, "updatedAt": updated, "genres": genres,
            "countries": [rng.choice(("United States", "United Kingdom", "Japan", "France", "Iceland"))]
            if matched and rng.random() < 0.6 else [],
            "guids": [f"mbid://{_uuid(rng)}"] if matched else [],
            "userRating": None, "viewCount": 0, "lastViewedAt": None, "lastRatedAt": None,
            "librarySectionID": sid, "_matched": matched, "_classical": classical,
        }  # fmt: skip

    def _album_title(self, rng: Random, classical: bool, compilation: bool, live: bool) -> str:
        if classical:
            form = rng.choice(N.FORMS)
            t = form.format(n=rng.randint(1, 9), k=rng.choice(N.KEYS), op=rng.randint(2, 130),
                            w=rng.choice(N.WORDS).title())  # fmt: skip
        elif compilation:
            t = rng.choice(N.COMPILATIONS).format(
                g=rng.choice(N.POP_GENRES), y=rng.randint(1970, 2024)
            )
        else:
            r = rng.random()
            if r < 0.45:
                t = f"{rng.choice(N.ADJ)} {rng.choice(N.NOUN)}"
            elif r < 0.65:
                t = " ".join(w.title() for w in rng.sample(N.WORDS, rng.randint(1, 3)))
            elif r < 0.75:
                t = "".join(rng.sample(N.CJK_WORDS, rng.randint(1, 3)))
            elif r < 0.82:
                t = f"{rng.choice(N.NOUN)} & {rng.choice(N.NOUN)}"
            elif r < 0.86:
                t = f'"{rng.choice(N.WORDS).title()}" <Deluxe Edition>'
            else:
                t = rng.choice(N.NOUN)
        if live:
            t = f"Live at {rng.choice(N.VENUES)}" if rng.random() < 0.7 else f"{t} (Live)"
        return t

    def _gen_album(self, idx: int) -> dict:
        key = self._alb_key[idx]
        art_idx = self._alb_art[idx]
        artist = self._artist_base(art_idx)
        rng = _rng(_h(self.seed, key, 2))
        compilation = bool(self._art_va[art_idx])
        classical = artist["_classical"]
        live = rng.random() < 0.1
        matched = artist["_matched"] and rng.random() < 0.92
        a_added = artist["addedAt"]
        added = a_added + int(rng.random() * max(1, BASE_TIME - 86400 - a_added))
        ntracks = self._alb_n[idx]
        rec = self._album_record(key, self._art_key[art_idx], artist["librarySectionID"], rng,
                                 compilation, classical, live, matched, added, ntracks)  # fmt: skip
        rec["_artist_title"] = artist["title"]
        return rec

    def _album_record(self, key, artist_key, sid, rng, compilation, classical, live, matched, added, ntracks,
                      updated=None) -> dict:  # fmt: skip
        title = self._album_title(rng, classical, compilation, live)
        year = None if rng.random() < 0.03 else rng.randint(1955, 2025)
        if classical:
            pool = N.CLASSICAL_GENRES
        else:
            pool = N.POP_GENRES
        r = rng.random()
        genres = [] if r < 0.08 else rng.sample(pool, min(len(pool), rng.randint(1, 5)))
        fmt = (
            "Single" if ntracks <= 3 else ("EP" if ntracks <= 6 and rng.random() < 0.5 else "Album")
        )
        subformats = []
        if live:
            subformats.append("Live")
        if compilation:
            subformats.append("Compilation")
        elif rng.random() < 0.02:
            subformats.append("Soundtrack")
        if updated is None:
            updated = min(BASE_TIME, added + int(rng.random() * (BASE_TIME - added)))
        studio = rng.choice(N.STUDIOS) if rng.random() < 0.8 else None
        oaa = f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if year else None
        two_discs = ntracks >= 14 and rng.random() < 0.2
        return {
            "ratingKey": str(key), "key": f"/library/metadata/{key}/children",
            "parentRatingKey": str(artist_key),
            "guid": f"plex://album/{_hex(rng, 24)}" if matched else f"local://{key}",
            "studio": studio, "type": "album", "title": title, "titleSort": None, "summary": "", "index": 1,
            "year": year, "originallyAvailableAt": oaa,
            "thumb": f"/library/metadata/{key}/thumb/{updated}", "addedAt": added, "updatedAt": updated,
            "genres": genres, "formats": [fmt], "subformats": subformats,
            "guids": [f"mbid://{_uuid(rng)}"] if matched else [],
            "userRating": None, "viewCount": 0, "lastViewedAt": None, "lastRatedAt": None,
            "librarySectionID": sid, "_matched": matched, "_compilation": compilation, "_classical": classical,
            "_two_discs": two_discs, "_ntracks": ntracks, "_artist_tagged": self._artist_tagged(key),
        }  # fmt: skip

    def _artist_tagged(self, key: int) -> bool:
        """Whether the album's files carry a track-artist tag on every track (1 album in 3, drawn
        from a hash: the library's draws stay as they were). PMS then holds an originalTitle equal
        to the album artist for tracks without one of their own, and some servers send it (§13)."""
        return zlib.crc32(f"{self.seed}:{key}:artist-tag".encode()) % 3 == 0

    def _gen_base_track(self, key: int, album_idx: int, pos: int) -> dict:
        return self._gen_track(key, self._album_base(album_idx), pos)

    def _gen_track(self, key: int, album: dict, pos: int, now: int | None = None, tail: bool = True,
                   parent: dict | None = None) -> dict:  # fmt: skip
        """Base fields of a track (no album/artist-derived fields). ``pos`` is 1-based in the album.

        The hot path of every listing: straight-line code, one draw after the other. The draws and
        their order ARE the library (same seed, same library), so any change here must keep them
        (tests/test_simulator.py pins the output). ``x[int(r() * n)]`` is a pick, ``lo + int(r() * k)``
        a randint. ``tail=False`` skips the last draws (``guid``, ``ratingCount``, ``guids``, the
        media ``size``) and returns a row (TRACK_ROW) whose parent fields are ``parent``."""
        rng = _track_rng(_h(self.seed, key, 3))
        r = rng.random
        classical = album["_classical"]
        if classical:
            title = _MOVEMENTS[int(r() * _N_MOVEMENTS)]
        else:
            x = r()
            if x < 0.55:  # 1 to 4 words (the picks are evaluated left to right)
                n = 1 + int(r() * 4)
                title = _WORDS_T[int(r() * _N_WORDS)]
                if n > 1:
                    title = f"{title} {_WORDS_T[int(r() * _N_WORDS)]}"
                    if n > 2:
                        title = f"{title} {_WORDS_T[int(r() * _N_WORDS)]}"
                        if n > 3:
                            title = f"{title} {_WORDS_T[int(r() * _N_WORDS)]}"
            elif x < 0.7:
                title = f"{_ADJ[int(r() * _N_ADJ)]} {_NOUN[int(r() * _N_NOUN)]}"
            elif x < 0.8:  # 1 to 4 CJK words
                n = 1 + int(r() * 4)
                title = _CJK_WORDS[int(r() * _N_CJK_WORDS)]
                for _ in range(n - 1):
                    title += _CJK_WORDS[int(r() * _N_CJK_WORDS)]
            elif x < 0.86:
                title = f"{_WORDS_T[int(r() * _N_WORDS)]} & {_WORDS_T[int(r() * _N_WORDS)]}"
            elif x < 0.89:
                title = f'Song for "{_FIRST[int(r() * _N_FIRST)]}"'
            elif x < 0.9:
                title = f"{_WORDS_T[int(r() * _N_WORDS)]} <interlude>"
            elif x < 0.905:
                title = f"{_WORDS_T[int(r() * _N_WORDS)]} {_EMOJI[int(r() * _N_EMOJI)]}"
            else:
                title = _WORDS_T[int(r() * _N_WORDS)]
        if "Live" in album["subformats"] and r() < 0.4:
            title += " (Live)"
        duration = None if r() < 0.01 else max(20000, min(1500000, int(rng.gauss(235000, 80000))))
        original = None
        if album["_compilation"]:
            original, _ = self._artist_name(rng, False)
        elif r() < 0.03:
            original = (
                f"{album.get('_artist_title', 'Artist')} feat. {_FIRST[int(r() * _N_FIRST)]} "
                f"{_LAST[int(r() * _N_LAST)]}"
            )
        if album["_two_discs"]:
            half = (album["_ntracks"] + 1) // 2
            disc, index = (1, pos) if pos <= half else (2, pos - half)
        else:
            disc, index = 1, pos
        if r() < 0.05:
            genres = rng.sample(N.CLASSICAL_GENRES if classical else N.POP_GENRES, 1 + int(r() * 4))
        else:
            genres = []
        if now is None:
            added = album["addedAt"] + int(r() * 41)
            if added > BASE_TIME:
                added = BASE_TIME
            if r() < 0.5:
                updated = added + int(r() * 121)
                if updated > BASE_TIME:
                    updated = BASE_TIME
            else:
                updated = added + int(r() * (BASE_TIME - added))
            if r() < 0.4:  # played
                view_count = min(2500, int(rng.paretovariate(1.1)))
                last_viewed = added + int(r() * (BASE_TIME - added))
                skip = 1 + int(r() * 6) if r() < 0.15 else 0
            else:
                view_count, last_viewed, skip = 0, None, 0
            if r() < 0.15:  # rated
                rating = float((1 + int(r() * 5)) * 2 if r() < 0.85 else 2 + int(r() * 8))
                last_rated = added + int(r() * (BASE_TIME - added))
            else:
                rating = last_rated = None
        else:
            added = updated = now
            view_count, last_viewed, skip, rating, last_rated = 0, None, 0, None, None
        matched = album["_matched"]
        codec = r()
        if classical or codec < 0.4:
            acodec, container, bitrate, ext = "flac", "flac", 700 + int(r() * 701), "flac"
        elif codec < 0.85:
            acodec, container, bitrate, ext = "mp3", "mp3", _MP3_RATES[int(r() * 4)], "mp3"
        elif codec < 0.95:
            acodec, container, bitrate, ext = "aac", "mp4", 256, "m4a"
        else:
            acodec, container, bitrate, ext = "alac", "mp4", 700 + int(r() * 401), "m4a"
        if not tail:  # a row (TRACK_ROW)
            return (parent, key, title, original, index, disc, rating, view_count, skip, last_viewed, last_rated,
                    duration, added, updated, genres, bitrate, acodec, container)  # fmt: skip
        size = int((duration or 180000) / 1000 * bitrate * 125) + 20000 + int(r() * 70001)
        if matched:
            guid = f"plex://track/{rng.getrandbits(96):024x}"
            rating_count = int(rng.paretovariate(0.7) * 40)
            guids = [f"mbid://{_uuid(rng)}"]
        else:
            guid, rating_count, guids = f"local://{key}", None, []
        return {
            "ratingKey": str(key), "key": f"/library/metadata/{key}", "guid": guid,
            "type": "track", "title": title, "titleSort": None, "originalTitle": original, "summary": "",
            "index": index, "parentIndex": disc, "ratingCount": rating_count,
            "userRating": rating, "viewCount": view_count, "skipCount": skip, "lastViewedAt": last_viewed,
            "lastRatedAt": last_rated, "duration": duration, "addedAt": added, "updatedAt": updated,
            "musicAnalysisVersion": "1", "genres": genres, "guids": guids,
            "media": {"id": key + 1_000_000, "bitrate": bitrate, "audioChannels": 2, "audioCodec": acodec,
                      "container": container, "part_id": key + 1_000_000, "size": size, "ext": ext,
                      "samplingRate": 96000 if acodec == "flac" and bitrate > 1200 else 44100,
                      "ts": album["addedAt"]},
        }  # fmt: skip

    # -----------------------------------------------------------------------------------------
    # locating and merging records

    def _base_kind(self, key: int):
        "('track', album_idx, pos) | ('album', idx) | ('artist', idx) | ('movie', key) | None for base keys"
        j = bisect_right(self._alb_key, key) - 1
        if j >= 0:
            ak = self._alb_key[j]
            if ak == key:
                return ("album", j)
            if key <= ak + self._alb_n[j]:
                return ("track", j, key - ak)
        i = bisect_left(self._art_key, key)
        if i < len(self._art_key) and self._art_key[i] == key:
            return ("artist", i)
        if key in self._movies:
            return ("movie", key)
        return None

    def _raw(self, key: int) -> dict | None:
        "The un-merged base record (added or generated), or None"
        rec = self._added.get(key)
        if rec is not None:
            return rec
        kind = self._base_kind(key)
        if kind is None:
            return None
        if kind[0] == "track":
            # generated from the RAW album so album edits never change a track's own fields
            return self._track_base(key, kind[1], kind[2])
        if kind[0] == "album":
            return self._album_base(kind[1])
        if kind[0] == "artist":
            return self._artist_base(kind[1])
        return self._movies[key]

    def _album_rec(self, key: int) -> dict:
        "merged album record incl. artist-derived fields (cached until the next mutation)"
        rec = self._merged.get(key)
        if rec is None:
            rec = self._raw(key).copy()
            over = self._over.get(key)
            if over:
                rec.update(over)
            artist = self._artist_rec(int(rec["parentRatingKey"]))
            rec["parentGuid"] = artist["guid"]
            rec["parentKey"] = f"/library/metadata/{artist['ratingKey']}"
            rec["parentTitle"] = artist["title"]
            rec["parentThumb"] = artist["thumb"]
            rec["art"] = artist["art"]
            rec["_artist_genres"] = artist["genres"]
            rec["leafCount"] = self._album_leaf_count(key, rec)
            rec["thumb"] = f"/library/metadata/{key}/thumb/{rec['updatedAt']}"
            if len(self._merged) > 20000:
                self._merged.clear()
            self._merged[key] = rec
        return rec

    def _artist_rec(self, key: int) -> dict:
        rec = self._merged.get(key)
        if rec is None:
            rec = self._raw(key).copy()
            over = self._over.get(key)
            if over:
                rec.update(over)
            if len(self._merged) > 20000:
                self._merged.clear()
            self._merged[key] = rec
        return rec

    def _track_rec(self, key: int, raw: dict | None = None, album_idx: int | None = None) -> dict:
        rec = raw if raw is not None else self._raw(key)
        rec = rec.copy()
        over = self._over.get(key)
        if over:
            rec.update(over)
        if "parentRatingKey" in rec:
            album = self._album_rec(int(rec["parentRatingKey"]))
        else:
            if album_idx is None:
                album_idx = self._base_kind(key)[1]
            album = self._album_rec(self._alb_key[album_idx])
        ctx = album.get("_track_fields")
        if ctx is None:
            ctx = album["_track_fields"] = self._track_fields(album)
        rec.update(ctx)
        return rec

    def _track_fields(self, album: dict) -> dict:
        """The album- and artist-derived fields of the album's tracks, in the order records carry
        them (TRACK_PARENT_FIELDS), and a "_render_key": a new object whenever they are computed
        again (after a mutation), so the renderer may reuse their text for records carrying it."""
        artist = self._artist_rec(int(album["parentRatingKey"]))
        akey, rkey = album["ratingKey"], artist["ratingKey"]
        return {
            "parentRatingKey": akey, "grandparentRatingKey": rkey, "parentGuid": album["guid"],
            "grandparentGuid": artist["guid"], "parentStudio": album["studio"],
            "grandparentKey": f"/library/metadata/{rkey}", "parentKey": f"/library/metadata/{akey}",
            "grandparentTitle": artist["title"], "parentTitle": album["title"], "parentYear": album["year"],
            "thumb": album["thumb"], "parentThumb": album["thumb"], "art": artist["art"],
            "grandparentArt": artist["art"], "grandparentThumb": artist["thumb"],
            "librarySectionID": album["librarySectionID"],
            "_artist_tag": artist["title"] if album.get("_artist_tagged") else None, "_render_key": object(),
        }  # fmt: skip

    def records(self, keys, rows: bool = False) -> list:
        """``record(k)`` of every live key (others left out), for a page of a listing: the tracks of
        an album come in runs, so the album is looked up once per run. ``rows=True``: unedited base
        tracks come as rows (TRACK_ROW) instead of records, for a writer that reads them."""
        out = []
        append = out.append
        deleted, added, overlay = self._deleted, self._added, self._over
        full = self._tracks_cached or not rows  # a cached record is complete and costs nothing
        lo, hi, j, ak, album, fields = (
            1,
            0,
            -1,
            0,
            None,
            None,
        )  # the current album and its key range
        for k in keys:
            if k in deleted:
                continue
            if not lo <= k <= hi or k in added:
                kind = None if k in added else self._base_kind(k)
                if kind is None or kind[0] != "track":
                    rec = self.record(k)
                    if rec is not None:
                        append(rec)
                    continue
                j = kind[1]
                ak = self._alb_key[j]
                lo, hi = ak + 1, ak + self._alb_n[j]
                album = self._album_base(j)
                merged = self._album_rec(ak)
                fields = merged.get("_track_fields")
                if fields is None:
                    fields = merged["_track_fields"] = self._track_fields(merged)
            if full or k in overlay:
                rec = self._track_base(k, j, k - ak).copy()
                over = overlay.get(k)
                if over:
                    rec.update(over)
                rec.update(fields)
                append(rec)
            else:
                append(self._gen_track(k, album, k - ak, tail=False, parent=fields))
        return out

    def record(self, key: int) -> dict | None:
        "The merged (server-visible) record of any live item, or None"
        if key in self._deleted:
            return None
        raw = self._added.get(key)
        if raw is None:
            kind = self._base_kind(key)
            if kind is None:
                return None
            if kind[0] == "track":
                return self._track_rec(key, self._track_base(key, kind[1], kind[2]), kind[1])
            raw = self._raw(key)
        t = raw["type"]
        if t == "track":
            return self._track_rec(key, raw)
        if t == "album":
            return self._album_rec(key)
        if t == "artist":
            return self._artist_rec(key)
        rec = raw.copy()
        rec["librarySectionID"] = self.movie_section
        rec.update(self._over.get(key, {}))
        return rec

    def _album_leaf_count(self, key: int, raw: dict) -> int:
        return raw["_ntracks"] + len(self._extra_tracks.get(key, ())) - self._deleted_in_album[key]

    def album_track_keys(self, akey: int) -> list[int]:
        raw = self._raw(akey)
        if raw is None or raw["type"] != "album" or akey in self._deleted:
            return []
        keys = []
        if akey not in self._added:
            keys = [
                k for k in range(akey + 1, akey + raw["_ntracks"] + 1) if k not in self._deleted
            ]
        keys.extend(k for k in self._extra_tracks.get(akey, ()) if k not in self._deleted)
        return keys

    def artist_album_keys(self, rkey: int) -> list[int]:
        raw = self._raw(rkey)
        if raw is None or raw["type"] != "artist" or rkey in self._deleted:
            return []
        keys = []
        if rkey not in self._added:
            i = bisect_left(self._art_key, rkey)
            a0, n = self._art_alb0[i], self._art_nalb[i]
            keys = [
                self._alb_key[j] for j in range(a0, a0 + n) if self._alb_key[j] not in self._deleted
            ]
        keys.extend(k for k in self._extra_albums.get(rkey, ()) if k not in self._deleted)
        return keys

    def children(self, key: int) -> list[int]:
        rec = self.record(key)
        if rec is None:
            return []
        if rec["type"] == "album":
            return self.album_track_keys(key)
        if rec["type"] == "artist":
            return self.artist_album_keys(key)
        return []

    # -----------------------------------------------------------------------------------------
    # public ground truth

    def sections(self) -> list[dict]:
        with self.lock:
            return [self._section_public(s) for s in self._sections.values()]

    def _section_public(self, s: dict) -> dict:
        d = {k: v for k, v in s.items() if k != "classical"}
        return d

    def section(self, sid: int) -> dict | None:
        s = self._sections.get(int(sid))
        return s

    def music_section_ids(self) -> list[int]:
        return [s["id"] for s in self._sections.values() if s["type"] == "artist"]

    def _keys(self, t: int, section_id) -> list[str]:
        with self.lock:
            sids = [int(section_id)] if section_id is not None else list(self._live)
            out: list[int] = []
            for sid in sids:
                arr = self._live.get(sid, {}).get(t)
                if arr is not None:
                    out.extend(arr)
            out.sort()
            return [str(k) for k in out]

    def track_keys(self, section_id=None) -> list[str]:
        return self._keys(TRACK, section_id)

    def album_keys(self, section_id=None) -> list[str]:
        return self._keys(ALBUM, section_id)

    def artist_keys(self, section_id=None) -> list[str]:
        return self._keys(ARTIST, section_id)

    def track_count(self, section_id=None) -> int:
        with self.lock:
            sids = [int(section_id)] if section_id is not None else list(self._live)
            return sum(len(self._live.get(sid, {}).get(TRACK, ())) for sid in sids)

    def album_count(self, section_id=None) -> int:
        with self.lock:
            sids = [int(section_id)] if section_id is not None else list(self._live)
            return sum(len(self._live.get(sid, {}).get(ALBUM, ())) for sid in sids)

    def artist_count(self, section_id=None) -> int:
        with self.lock:
            sids = [int(section_id)] if section_id is not None else list(self._live)
            return sum(len(self._live.get(sid, {}).get(ARTIST, ())) for sid in sids)

    @staticmethod
    def _public(rec: dict) -> dict:
        out = {
            k: (list(v) if isinstance(v, list) else v)
            for k, v in rec.items()
            if not k.startswith("_")
        }
        if "media" in out:
            out["media"] = dict(out["media"])
        return out

    def _get(self, key, kind: str) -> dict:
        with self.lock:
            rec = self.record(int(key))
            if rec is None or rec["type"] != kind:
                raise KeyError(f"no live {kind} with ratingKey {key}")
            return self._public(rec)

    def track(self, key) -> dict:
        """All fields of a live track as the server reports them.  Absent attributes are None,
        except viewCount/skipCount which are 0 (the server omits zeros).  ``genres`` are the
        track's OWN genres (usually empty: fall back to the album's, then the artist's)."""
        return self._get(key, "track")

    def album(self, key) -> dict:
        return self._get(key, "album")

    def artist(self, key) -> dict:
        return self._get(key, "artist")

    def item(self, key) -> dict | None:
        with self.lock:
            rec = self.record(int(key))
            return self._public(rec) if rec else None

    # -----------------------------------------------------------------------------------------
    # mutations (caller holds no lock; all bump version and clear caches)

    def _touch(self, sid: int) -> None:
        self._change_counter += 1
        self._sections[sid]["content_changed_at"] = self._change_counter
        self.version += 1
        self._merged.clear()
        self._query_cache.clear()

    def _require(self, key, kind: str) -> dict:
        rec = self.record(int(key))
        if rec is None or rec["type"] != kind:
            raise KeyError(f"no live {kind} with ratingKey {key}")
        return rec

    def _set(self, key: int, t: int, fields: dict) -> None:
        self._over.setdefault(key, {}).update(fields)
        self._touched[t].add(key)

    def edit_track(self, key, **fields) -> dict:
        bad = set(fields) - TRACK_EDITABLE
        if bad:
            raise ValueError(f"cannot edit track fields {sorted(bad)}")
        with self.lock:
            key = int(key)
            rec = self._require(key, "track")
            fields.setdefault("updatedAt", self._clock())
            self._set(key, TRACK, fields)
            self._touch(rec["librarySectionID"])
            return self.track(key)

    def edit_album(self, key, **fields) -> dict:
        bad = set(fields) - ALBUM_EDITABLE
        if bad:
            raise ValueError(f"cannot edit album fields {sorted(bad)}")
        with self.lock:
            key = int(key)
            rec = self._require(key, "album")
            fields.setdefault("updatedAt", self._clock())
            if "year" in fields and "originallyAvailableAt" not in fields:
                y = fields["year"]
                fields["originallyAvailableAt"] = f"{int(y):04d}-01-01" if y else None
            self._set(key, ALBUM, fields)
            self._touch(rec["librarySectionID"])
            return self.album(key)

    def edit_artist(self, key, **fields) -> dict:
        bad = set(fields) - ARTIST_EDITABLE
        if bad:
            raise ValueError(f"cannot edit artist fields {sorted(bad)}")
        with self.lock:
            key = int(key)
            rec = self._require(key, "artist")
            fields.setdefault("updatedAt", self._clock())
            self._set(key, ARTIST, fields)
            self._touch(rec["librarySectionID"])
            return self.artist(key)

    def play_track(self, key, times: int = 1) -> dict:
        "viewCount += times, lastViewedAt = now; no updatedAt / contentChangedAt bump (as PMS)"
        with self.lock:
            key = int(key)
            rec = self._require(key, "track")
            self._set(
                key,
                TRACK,
                {"viewCount": (rec["viewCount"] or 0) + int(times), "lastViewedAt": self._clock()},
            )
            self.version += 1
            self._query_cache.clear()
            return self.track(key)

    def rate_track(self, key, rating) -> dict:
        "userRating 0-10 (float) or None; lastRatedAt = now; no updatedAt bump"
        with self.lock:
            key = int(key)
            self._require(key, "track")
            if rating is not None:
                rating = float(rating)
                if not 0 <= rating <= 10:
                    raise ValueError("rating must be between 0 and 10")
                if rating == 0:
                    rating = None
            self._set(key, TRACK, {"userRating": rating, "lastRatedAt": self._clock()})
            self.version += 1
            self._query_cache.clear()
            return self.track(key)

    def add_tracks(self, n: int, section_id: int = 1, album_key=None) -> list[str]:
        """Add n tracks (keys larger than every existing key).  Without album_key a new artist
        and a new album holding all n tracks are created in the section."""
        n = int(n)
        if n < 1:
            return []
        with self.lock:
            now = self._clock()
            if album_key is not None:
                album = self._require(int(album_key), "album")
                akey = int(album_key)
                sid = album["librarySectionID"]
                existing = [self._track_rec(k) for k in self.album_track_keys(akey)]
                start_pos = max([t["index"] for t in existing if t["parentIndex"] == 1] or [0]) + 1
            else:
                sid = int(section_id)
                sec = self._sections.get(sid)
                if sec is None or sec["type"] != "artist":
                    raise KeyError(f"no music section {section_id}")
                rkey = self._next_key
                self._next_key += 1
                rng = Random(_h(self.seed, rkey, 1))
                title, title_sort = self._artist_name(rng, sec["classical"])
                artist = self._artist_record(
                    rkey, sid, rng, title, title_sort, True, now, sec["classical"], now
                )
                self._added[rkey] = artist
                self._live[sid][ARTIST].append(rkey)
                self._touched[ARTIST].add(rkey)
                akey = self._next_key
                self._next_key += 1
                rng = Random(_h(self.seed, akey, 2))
                album = self._album_record(akey, rkey, sid, rng, False, sec["classical"], False, True, now, 0,
                                           updated=now)  # fmt: skip
                album["_two_discs"] = False
                self._added[akey] = album
                self._extra_albums.setdefault(rkey, []).append(akey)
                self._live[sid][ALBUM].append(akey)
                self._touched[ALBUM].add(akey)
                start_pos = 1
            self._merged.clear()
            album_rec = self._album_rec(akey)
            album_base = dict(album_rec, _two_discs=False, _artist_title=album_rec["parentTitle"])
            new = []
            for i in range(n):
                tkey = self._next_key
                self._next_key += 1
                rec = self._gen_track(tkey, album_base, start_pos + i, now=now)
                rec["parentRatingKey"] = str(akey)
                rec["parentIndex"] = 1
                self._added[tkey] = rec
                self._extra_tracks.setdefault(akey, []).append(tkey)
                self._live[sid][TRACK].append(tkey)
                self._touched[TRACK].add(tkey)
                new.append(str(tkey))
            self._touch(sid)
            return new

    def _remove_live(self, sid: int, t: int, key: int) -> None:
        arr = self._live[sid][t]
        i = bisect_left(arr, key)
        if i < len(arr) and arr[i] == key:
            del arr[i]

    def delete_tracks(self, keys) -> int:
        "Remove tracks; albums left empty disappear, then artists left without albums. Returns count."
        with self.lock:
            touched_sections = set()
            count = 0
            for k in keys:
                k = int(k)
                rec = self.record(k)
                if rec is None or rec["type"] != "track":
                    continue
                sid = rec["librarySectionID"]
                akey = int(rec["parentRatingKey"])
                self._remove_live(sid, TRACK, k)
                self._deleted.add(k)
                self._deleted_in_album[akey] += 1
                self._merged.pop(akey, None)
                count += 1
                touched_sections.add(sid)
                if not self.album_track_keys(akey):
                    rkey = int(rec["grandparentRatingKey"])
                    self._remove_live(sid, ALBUM, akey)
                    self._deleted.add(akey)
                    if not self.artist_album_keys(rkey):
                        self._remove_live(sid, ARTIST, rkey)
                        self._deleted.add(rkey)
            for sid in touched_sections:
                self._touch(sid)
            return count

    # -----------------------------------------------------------------------------------------
    # queries: filters, sort, paging

    def parse_date(self, value: str, now: int) -> int:
        m = _RELATIVE.match(value)
        if m:
            return now - int(m.group(1)) * UNITS[m.group(2)]
        try:
            return int(float(value))
        except ValueError:
            pass
        try:
            return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
        except ValueError:
            raise QueryError(f"bad date value {value!r}") from None

    def _parse_filters(self, t: int, params: list[tuple[str, str]], now: int):
        resolve = any(k == "resolveTags" and v not in ("", "0") for k, v in params)
        filters = []
        for k, v in params:
            if k in NON_FILTER_PARAMS or k.startswith(NON_FILTER_PREFIXES):
                continue
            m = _FILTER_KEY.fullmatch(k)
            if not m:
                self.unknown_filters[k] += 1
                continue
            scope, field, op = m.groups()
            op = op + "="
            if v.startswith("=") and op in ("=", "!="):
                op += "="
                v = v[1:]
            st = TYPE_IDS.get(scope, t) if scope else t
            if t == MOVIE and scope not in (None, "movie"):
                st = None
            if st is None or field not in KNOWN_FIELDS.get(st, ()):
                self.unknown_filters[k] += 1
                continue
            if field in DATE_FIELDS:
                ftype = "date"
            elif field in INT_FIELDS:
                ftype = "int"
            elif field in TAG_FIELDS:
                ftype = "tag"
            else:
                ftype = "str"
            valid_ops = {
                "date": {"=", "!=", ">>=", "<<=", ">=", "<="},
                "int": {"=", "!=", ">>=", "<<=", ">=", "<="},
                "str": {"=", "!=", "==", "!==", "<=", ">="},
                "tag": {"=", "!="},
            }[ftype]
            if op not in valid_ops:
                self.unknown_filters[k] += 1
                continue
            values = v.split(",")
            if ftype == "date":
                values = [self.parse_date(x, now) for x in values]
            elif ftype == "int":
                try:
                    values = [float(x) if "." in x else int(x) for x in values]
                except ValueError:
                    raise QueryError(f"bad integer value {v!r} for {k}") from None
            elif ftype == "tag":
                values = [x.casefold() for x in values]
            else:
                values = [x.casefold() for x in values]
            filters.append((st, field, op, ftype, values, resolve))
        return filters

    @staticmethod
    def _field_value(rec: dict, field: str):
        if field == "id":
            return int(rec["ratingKey"])
        if field == "titleSort":
            return rec.get("titleSort") or rec.get("title")
        if field == "absoluteIndex":
            return rec.get("index")
        if field == "decade":
            y = rec.get("year")
            return y - y % 10 if y else None
        if field == "originallyAvailableAt":
            d = rec.get("originallyAvailableAt")
            if not d:
                return None
            return int(datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
        return rec.get(field)

    @staticmethod
    def _tags(rec: dict, field: str) -> list[str]:
        if field == "genre":
            return rec.get("genres") or []
        if field == "format":
            return rec.get("formats") or []
        if field == "subformat":
            return rec.get("subformats") or []
        if field == "country":
            return rec.get("countries") or []
        return []

    def _match_one(
        self, rec: dict, field: str, op: str, ftype: str, values: list, resolve: bool
    ) -> bool:
        if ftype == "tag":
            tags = self._tags(rec, field)
            cand = {str(tag_id(field, tg)) for tg in tags}
            if resolve:
                cand |= {tg.casefold() for tg in tags}
            hit = any(v in cand for v in values)
            return hit if op == "=" else not hit
        val = self._field_value(rec, field)
        if ftype == "str":
            s = (val or "").casefold()
            if op == "=":
                return any(v in s for v in values)
            if op == "!=":
                return not any(v in s for v in values)
            if op == "==":
                return any(v == s for v in values)
            if op == "!==":
                return not any(v == s for v in values)
            if op == "<=":
                return any(s.startswith(v) for v in values)
            return any(s.endswith(v) for v in values)  # >=
        if op == "=":
            return val is not None and any(val == v for v in values)
        if op == "!=":
            return val is None or all(val != v for v in values)
        if val is None:
            return False
        if op == ">>=":
            return any(val > v for v in values)
        if op == "<<=":
            return any(val < v for v in values)
        if op == ">=":
            return any(val >= v for v in values)
        return any(val <= v for v in values)  # <=

    def _related(self, rec: dict, t: int, st: int) -> list[dict]:
        "records at scope type st related to rec of type t"
        if st == t:
            return [rec]
        if t == TRACK:
            if st == ALBUM:
                return [self._album_rec(int(rec["parentRatingKey"]))]
            return [self._artist_rec(int(rec["grandparentRatingKey"]))]
        if t == ALBUM:
            if st == ARTIST:
                return [self._artist_rec(int(rec["parentRatingKey"]))]
            return [self._track_rec(k) for k in self.album_track_keys(int(rec["ratingKey"]))]
        if t == ARTIST:
            albums = [self._album_rec(k) for k in self.artist_album_keys(int(rec["ratingKey"]))]
            if st == ALBUM:
                return albums
            return [
                self._track_rec(k)
                for a in albums
                for k in self.album_track_keys(int(a["ratingKey"]))
            ]
        return []

    def _matches(self, rec: dict, t: int, filters) -> bool:
        for st, field, op, ftype, values, resolve in filters:
            rel = self._related(rec, t, st)
            if op in ("!=", "!=="):
                # negative filters on a related set: none of them may match the positive form
                if not all(self._match_one(r, field, op, ftype, values, resolve) for r in rel):
                    return False
            elif not any(self._match_one(r, field, op, ftype, values, resolve) for r in rel):
                return False
        return True

    def _parse_sort(self, t: int, value: str | None):
        out = []
        if not value:
            return out
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, direction = part.partition(":")
            scope, _, field = name.rpartition(".")
            st = TYPE_IDS.get(scope, t) if scope else t
            if field not in SORT_FIELDS:
                continue
            out.append((st, field, direction == "desc"))
        return out

    def _sort_value(self, rec: dict, t: int, st: int, field: str):
        if st != t:
            rel = self._related(rec, t, st) if st < t or t == MOVIE else [rec]
            rec = rel[0] if rel else {}
        v = self._field_value(rec, field)
        if isinstance(v, str):
            v = v.casefold()
        return v

    def query(self, section_id: int, t: int, params: list[tuple[str, str]], start: int | None,
              size: int | None) -> tuple[int, list[int]]:  # fmt: skip
        """Returns (total matching, keys of the requested page).  Default order: ascending ratingKey."""
        with self.lock:
            now = self._clock()
            live = self._live.get(section_id, {}).get(t)
            if live is None:
                return 0, []
            filters = self._parse_filters(t, params, now)
            sort_param = None
            limit = None
            for k, v in params:
                if k == "sort":
                    sort_param = v
                elif k == "limit":
                    try:
                        limit = max(0, int(v))
                    except ValueError:
                        raise QueryError("bad limit") from None
            sorts = self._parse_sort(t, sort_param)
            # -- narrow candidates
            lo, hi = None, None  # key bounds, inclusive
            explicit: set[int] | None = None
            remaining = []
            for f in filters:
                st, field, op, ftype, values, _ = f
                if (
                    st == t
                    and field == "id"
                    and len(values) == 1
                    and op in (">>=", ">=", "<<=", "<=")
                ):
                    v = values[0]
                    if op == ">>=":
                        b = int(v) + 1 if float(v) == int(v) else int(v) + 1
                        lo = b if lo is None else max(lo, b)
                    elif op == ">=":
                        b = int(v) if float(v) == int(v) else int(v) + 1
                        lo = b if lo is None else max(lo, b)
                    elif op == "<<=":
                        b = int(v) - 1 if float(v) == int(v) else int(v)
                        hi = b if hi is None else min(hi, b)
                    else:
                        b = int(v)
                        hi = b if hi is None else min(hi, b)
                    continue
                if field == "id" and op == "=" and st <= t and (st == t or t in (TRACK, ALBUM)):
                    ids = {int(v) for v in values if float(v) == int(v)}
                    if st == t:
                        cand = ids
                    else:
                        cand = set()
                        for i in ids:
                            if t == TRACK and st == ARTIST:
                                for a in self.artist_album_keys(i):
                                    cand.update(self.album_track_keys(a))
                            elif t == TRACK and st == ALBUM:
                                cand.update(self.album_track_keys(i))
                            elif t == ALBUM and st == ARTIST:
                                cand.update(self.artist_album_keys(i))
                    explicit = cand if explicit is None else explicit & cand
                    continue
                if (st == t and field in TIME_FAST_FIELDS and op in (">>=", ">=")
                        and all((v >= BASE_TIME if op == ">>=" else v > BASE_TIME) for v in values)):  # fmt: skip
                    cand = set(self._touched.get(t, ()))
                    explicit = cand if explicit is None else explicit & cand
                remaining.append(f)
            if explicit is not None:
                keys_iter = sorted(
                    k for k in explicit
                    if (lo is None or k >= lo) and (hi is None or k <= hi) and self._live_in(live, k)
                )  # fmt: skip
                i0, i1 = 0, len(keys_iter)
                src = keys_iter
            else:
                i0 = 0 if lo is None else bisect_left(live, lo)
                i1 = len(live) if hi is None else bisect_right(live, hi)
                src = live
            simple_order = not sorts or (len(sorts) == 1 and sorts[0][:2] == (t, "id"))
            desc = bool(sorts) and sorts[0][2]
            if not remaining and simple_order:
                total = max(0, i1 - i0)
                if limit is not None:
                    total = min(total, limit)
                s = start or 0
                e = total if size is None else min(total, s + size)
                if s >= e:
                    return total, []
                if desc:
                    return total, [src[i1 - 1 - j] for j in range(s, e)]
                return total, list(src[i0 + s : i0 + e])
            # -- materialise (cached per query)
            relative = any(_RELATIVE.match(v) for _, v in params)
            ckey = (section_id, t, tuple(p for p in params if not p[0].startswith(NON_FILTER_PREFIXES[2:])),
                    self.version, now if relative else 0)  # fmt: skip
            ordered = self._query_cache.get(ckey)
            if ordered is None:
                matched = []
                for j in range(i0, i1):
                    k = src[j]
                    rec = self.record(k)
                    if rec is None:
                        continue
                    if remaining and not self._matches(rec, t, remaining):
                        continue
                    if simple_order:
                        matched.append(k)
                    else:
                        matched.append((k, [self._sort_value(rec, t, st, f) for st, f, _ in sorts]))
                if simple_order:
                    ordered = matched if not desc else matched[::-1]
                else:
                    # stable multi-pass sort; ties broken by ascending ratingKey (input order)
                    for n in range(len(sorts) - 1, -1, -1):
                        rev = sorts[n][2]
                        matched.sort(key=lambda x, n=n: (x[1][n] is not None, x[1][n]) if x[1][n] is not None
                                     else (False, 0), reverse=rev)  # fmt: skip
                    ordered = [k for k, _ in matched]
                ordered = array("q", ordered)
                self._query_cache[ckey] = ordered
                while len(self._query_cache) > 6:
                    self._query_cache.popitem(last=False)
            total = len(ordered)
            if limit is not None:
                total = min(total, limit)
            s = start or 0
            e = total if size is None else min(total, s + size)
            return total, list(ordered[s:e]) if s < e else []

    @staticmethod
    def _live_in(arr: array, key: int) -> bool:
        i = bisect_left(arr, key)
        return i < len(arr) and arr[i] == key

    def tag_choices(self, section_id: int, t: int, field: str) -> list[tuple[int, str]]:
        "(id, tag) pairs used by items of type t in the section (sorted by name)"
        sec = self._sections.get(section_id)
        if sec is None or field not in TAG_IDS:
            return []
        if field == "genre":
            pool = N.CLASSICAL_GENRES if sec["classical"] else N.POP_GENRES
            names = set(pool)
            with self.lock:
                for k in self._touched.get(t, ()):
                    rec = self.record(k)
                    if rec and rec["librarySectionID"] == section_id:
                        names.update(rec.get("genres") or [])
        elif field == "format":
            names = set(FORMAT_IDS)
        else:
            names = {"Live", "Soundtrack"} | (set() if sec["classical"] else {"Compilation"})
        return sorted(((tag_id(field, n), n) for n in names), key=lambda x: x[1].casefold())

    def now(self) -> int:
        return self._clock()
