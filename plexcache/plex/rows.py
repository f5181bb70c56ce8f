"""Turning Plex XML elements into cache rows. Pure functions, no I/O.

Listing items are *partial*: they omit empty attributes and truncate tag
lists, by how much depends on the server. These functions read exactly the
attributes present and never guess: a listed track row carries how many
Genre tags its listing showed (``listed_genres``), and the sync decides from
what it learned of the server whether that list may be cut
(``sync.learn``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ..columns import STAGE_TRACK_COLUMNS
from ..timeutil import epoch_to_iso

__all__ = [
    "STAGE_TRACK_COLUMNS",
    "BadItem",
    "FullBatch",
    "full_batch",
    "track_row",
    "album_row",
    "artist_row",
    "item_type",
    "rating_key",
]

MAX_TEXT = 2000  # longer titles are cut, not stored whole
MAX_INT = 2**63 - 1  # SQLite's INTEGER range; beyond it a number is garbage


class BadItem(ValueError):
    "An item that cannot be cached (no ratingKey, no title); skipped and counted"


def text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    return value[:MAX_TEXT]


def int_or_none(value, lo: int | None = 0, hi: int | None = None) -> int | None:
    "Parse an integer attribute; absurd (negative, out of range) values become None"
    if value is None or value == "":
        return None
    try:
        number = int(value)  # the common case: "227944"
    except (TypeError, ValueError):
        try:
            number = int(float(value))  # "8.0", "1e3"
        except (TypeError, ValueError, OverflowError):
            return None
    if lo is not None and number < lo:
        return None
    if hi is not None and number > hi:
        return None
    if not -MAX_INT <= number <= MAX_INT:  # would not even fit the column
        return None
    return number


def _bounded(value: str, lo: int, hi: int) -> int | None:
    "``int_or_none(value, lo, hi)`` for a str, cheaper when it is a plain integer"
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return int_or_none(value, lo, hi)
    return number if lo <= number <= hi else None


def tags(el: ET.Element, tag: str) -> list[str]:
    """Tag names of `<Genre tag="..."/>`-style children, de-duplicated, in order"""
    seen = []
    for child in el.findall(tag):
        name = text(child.get("tag"))
        if name and name not in seen:
            seen.append(name)
    return seen


def user_rating(value) -> int | None:
    "Plex's 0-10 float ('8.0') as an integer; None when unrated or absurd"
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 <= number <= 10:
        return None
    return int(round(number))


# The attributes track_row reads, in one C-level pass (``map(attrib.get, ...)``).
_TRACK_ATTRS = (
    "ratingKey",
    "title",
    "originalTitle",
    "grandparentTitle",
    "parentTitle",
    "parentYear",
    "year",
    "duration",
    "userRating",
    "updatedAt",
    "index",
    "parentIndex",
    "viewCount",
    "skipCount",
    "lastViewedAt",
    "lastRatedAt",
    "addedAt",
    "parentRatingKey",
    "grandparentRatingKey",
    "librarySectionID",
)


def track_row(el: ET.Element, section_id: int | None, full: bool = False) -> tuple:
    """A stage row (STAGE_TRACK_COLUMNS order) from a listed or (``full``) a full ``<Track>``

    This runs once per track of every sync, so it is written for speed: the
    attributes come out in one pass and absent ones (most of the optional
    ones, on most tracks) skip their conversion. Each value goes through the
    same rules as ``text``/``int_or_none``/``user_rating``/``epoch_to_iso``.
    """
    (
        key,
        title,
        original,
        album_artist,
        album,
        parent_year,
        year,
        duration,
        rating,
        updated,
        index,
        parent_index,
        views,
        skips,
        viewed,
        rated,
        added,
        album_key,
        artist_key,
        section,
    ) = map(el.attrib.get, _TRACK_ATTRS)
    key = rating_key(key)
    if key is None:
        raise BadItem("track without a valid ratingKey")
    title = title.strip()[:MAX_TEXT] or None if title is not None else None
    if title is None:
        raise BadItem(f"track {key} has no title")
    own_genres = tags(el, "Genre") if len(el) > 1 else (_one_tag(el, "Genre") if len(el) else ())
    media = el.find("Media") if len(el) else None
    if section is not None:
        section = int_or_none(section)
    return (
        key,
        title,
        original.strip()[:MAX_TEXT] or None if original is not None else None,
        album_artist.strip()[:MAX_TEXT] or None if album_artist is not None else None,
        album.strip()[:MAX_TEXT] or None if album is not None else None,
        _bounded(parent_year, 1, 3000) if parent_year is not None else None,
        _bounded(year, 1, 3000) if year is not None else None,
        json.dumps(own_genres, ensure_ascii=False) if own_genres else None,
        None if full else len(own_genres),
        _bounded(duration, 1, 10**10) if duration is not None else None,
        user_rating(rating) if rating is not None else None,
        epoch_to_iso(updated) if updated is not None else None,
        _bounded(index, 0, 100000) if index is not None else None,
        _bounded(parent_index, 0, 100000) if parent_index is not None else None,
        _bounded(views, 0, MAX_INT) or 0 if views is not None else 0,
        _bounded(skips, 0, MAX_INT) or 0 if skips is not None else 0,
        epoch_to_iso(viewed) if viewed is not None else None,
        epoch_to_iso(rated) if rated is not None else None,
        epoch_to_iso(added) if added is not None else None,
        text(media.get("audioCodec")) if media is not None else None,
        int_or_none(media.get("bitrate"), 0) if media is not None else None,
        rating_key(album_key),
        rating_key(artist_key),
        section or section_id,
    )


def _one_tag(el: ET.Element, tag: str) -> list[str] | tuple:
    "``tags(el, tag)`` for an element with exactly one child, without the search"
    child = el[0]
    if child.tag != tag:
        return ()
    name = text(child.get("tag"))
    return [name] if name else ()


def album_row(el: ET.Element) -> dict:
    "An ``albums`` row from a full album item (``/library/metadata``)"
    a = el.attrib
    key = rating_key(a.get("ratingKey"))
    if key is None:
        raise BadItem("album without a valid ratingKey")
    subformats = tags(el, "Subformat")
    genres = tags(el, "Genre")
    return {
        "rating_key": key,
        "title": text(a.get("title")) or "",
        "artist": text(a.get("parentTitle")),
        "year": int_or_none(a.get("year"), 1, 3000),
        "genres": json.dumps(genres, ensure_ascii=False),
        "subformats": json.dumps(subformats, ensure_ascii=False),
        "is_live": 1 if any(s.lower() == "live" for s in subformats) else 0,
        "studio": text(a.get("studio")),
        "added_at": epoch_to_iso(a.get("addedAt")),
        "updated_at": epoch_to_iso(a.get("updatedAt")),
        "artist_rating_key": rating_key(a.get("parentRatingKey")),
        "section_id": int_or_none(a.get("librarySectionID")),
    }


def artist_row(el: ET.Element) -> dict:
    "An ``artists`` row from a full artist item"
    a = el.attrib
    key = rating_key(a.get("ratingKey"))
    if key is None:
        raise BadItem("artist without a valid ratingKey")
    return {
        "rating_key": key,
        "name": text(a.get("title")) or "",
        "genres": json.dumps(tags(el, "Genre"), ensure_ascii=False),
        "added_at": epoch_to_iso(a.get("addedAt")),
        "updated_at": epoch_to_iso(a.get("updatedAt")),
        "section_id": int_or_none(a.get("librarySectionID")),
    }


@dataclass
class FullBatch:
    """The rows of one ``/library/metadata`` answer (picklable: a reader
    process sends it to the sync). ``tracks``: ``(key, row)`` per track item,
    ``row`` None for a malformed one; ``returned``: the keys that came back;
    ``skipped``: malformed albums and artists."""

    albums: list[dict] = field(default_factory=list)
    artists: list[dict] = field(default_factory=list)
    tracks: list[tuple[str | None, tuple | None]] = field(default_factory=list)
    returned: set = field(default_factory=set)
    skipped: int = 0


def full_batch(elements) -> FullBatch:
    "Rows from the full items of one metadata answer; other item types are ignored"
    batch = FullBatch()
    for el in elements:
        kind = item_type(el)
        if kind == "track":
            try:
                row = track_row(el, None, full=True)
                key = row[0]
            except BadItem:  # came back, but cannot be cached: counted by the sync
                row, key = None, rating_key(el.get("ratingKey"))
            batch.tracks.append((key, row))
            batch.returned.add(key)
        elif kind in ("album", "artist"):
            try:
                row = album_row(el) if kind == "album" else artist_row(el)
            except BadItem:
                batch.skipped += 1
                continue
            (batch.albums if kind == "album" else batch.artists).append(row)
            batch.returned.add(row["rating_key"])
    return batch


def item_type(el: ET.Element) -> str | None:
    return el.get("type") or {"Track": "track"}.get(el.tag)


def rating_key(value) -> str | None:
    """A Plex rating key in canonical form ("12345"), else None.

    ASCII digits only (``str.isdigit`` also accepts "١٢٣" and "²"), no
    leading zero (so one item cannot appear under two keys), and within
    SQLite's integer range (keys drive ``cast(... as integer)`` and paging).
    """
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or value[0] == "0":
        return None
    if len(value) > 18 and int(value) > MAX_INT:  # 18 digits always fit
        return None
    return value
