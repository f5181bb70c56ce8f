"""What a cache of the simulated library must hold: the README's column rules applied to the
simulator's model (what the server knows), never to what a listing shows and never through
plexcache's own code. ``expected_cache(library)`` / ``Simulator.expected_cache()``.

The one server fact that changes the answer is whether the server has track genres at all
(PMS >= 1.40); every other profile difference is only in what listings show."""

from __future__ import annotations

import time

from .library import ALBUM, ARTIST, TRACK


def iso(epoch) -> str | None:
    "An epoch as the cache writes it (README: ISO-8601 UTC, `2026-02-05T10:30:00Z`); None when absent"
    if not epoch:  # the server omits empty and zero attributes
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def _is_live(subformats) -> int:
    return 1 if any(str(s).casefold() == "live" for s in subformats or ()) else 0


def track_row(rec: dict, album: dict, artist: dict, track_genres: bool = True) -> dict:
    "The cache row of one track record (Library.record) of this album and artist"
    album_artist = rec["grandparentTitle"]
    own = rec.get("originalTitle") or None  # the track artist the server holds (tagged: equal)
    media = rec.get("media") or {}
    rating = rec.get("userRating")
    genres = (
        (rec.get("genres") if track_genres else None)
        or album.get("genres")
        or artist.get("genres")
        or []
    )
    return {
        "rating_key": rec["ratingKey"],
        "title": rec["title"],
        "artist": own or album_artist,
        "album": rec["parentTitle"],
        "duration_ms": rec.get("duration") or None,
        "year": rec.get("year") or rec.get("parentYear") or None,
        "genres": list(genres),
        "user_rating": int(round(float(rating))) if rating else None,
        "is_live": _is_live(album.get("subformats")),
        "updated_at": iso(rec.get("updatedAt")),
        "album_artist": album_artist,
        "track_artist": own if own != album_artist else None,
        "track_number": rec.get("index") or None,
        "disc_number": rec.get("parentIndex") or None,
        "play_count": rec.get("viewCount") or 0,
        "skip_count": rec.get("skipCount") or 0,
        "last_played_at": iso(rec.get("lastViewedAt")),
        "last_rated_at": iso(rec.get("lastRatedAt")),
        "added_at": iso(rec.get("addedAt")),
        "codec": media.get("audioCodec"),
        "bitrate": media.get("bitrate"),
        "album_rating_key": rec["parentRatingKey"],
        "artist_rating_key": rec["grandparentRatingKey"],
        "section_id": rec["librarySectionID"],
    }


def album_row(album: dict) -> dict:
    return {
        "rating_key": album["ratingKey"],
        "title": album["title"],
        "artist": album["parentTitle"],
        "year": album.get("year") or None,
        "genres": list(album.get("genres") or []),
        "subformats": list(album.get("subformats") or []),
        "is_live": _is_live(album.get("subformats")),
        "studio": album.get("studio") or None,
        "added_at": iso(album.get("addedAt")),
        "updated_at": iso(album.get("updatedAt")),
        "artist_rating_key": album["parentRatingKey"],
        "section_id": album["librarySectionID"],
    }


def artist_row(artist: dict) -> dict:
    return {
        "rating_key": artist["ratingKey"],
        "name": artist["title"],
        "genres": list(artist.get("genres") or []),
        "added_at": iso(artist.get("addedAt")),
        "updated_at": iso(artist.get("updatedAt")),
        "section_id": artist["librarySectionID"],
    }


def expected_cache(lib, track_genres: bool = True) -> dict[str, dict[str, dict]]:
    """{"tracks"|"albums"|"artists": {rating_key: row}} for every live item of the music sections.
    Rows use the cache's column names; ``genres``/``subformats`` are lists (the cache holds their
    JSON text)."""
    out: dict[str, dict[str, dict]] = {"tracks": {}, "albums": {}, "artists": {}}
    with lib.lock:
        for sid in lib.music_section_ids():
            live = lib._live[sid]
            for rec in lib.records(list(live[TRACK])):
                album = lib.record(int(rec["parentRatingKey"]))
                artist = lib.record(int(rec["grandparentRatingKey"]))
                out["tracks"][rec["ratingKey"]] = track_row(rec, album, artist, track_genres)
            for k in live[ALBUM]:
                out["albums"][str(k)] = album_row(lib.record(k))
            for k in live[ARTIST]:
                out["artists"][str(k)] = artist_row(lib.record(k))
    return out


def diff_cache(db_path, expected: dict[str, dict[str, dict]]) -> dict[str, dict[str, int]]:
    """How a cache file differs from ``expected`` (expected_cache()): per table, the number of
    rows missing, extra, and wrong in each column ({} for a table that matches). JSON list
    columns are compared as lists. Reads the file read-only."""
    import json
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        out: dict[str, dict[str, int]] = {}
        for table, want in expected.items():
            counts: dict[str, int] = {}
            rows = {r["rating_key"]: dict(r) for r in conn.execute(f"select * from {table}")}  # noqa: S608
            if rows.keys() - want.keys():
                counts["extra"] = len(rows.keys() - want.keys())
            for key, row in want.items():
                got = rows.get(key)
                if got is None:
                    counts["missing"] = counts.get("missing", 0) + 1
                    continue
                for column, value in row.items():
                    have = got.get(column)
                    if isinstance(value, list) and isinstance(have, str):
                        have = json.loads(have)
                    if have != value:
                        counts[column] = counts.get(column, 0) + 1
            out[table] = counts
        return out
    finally:
        conn.close()
