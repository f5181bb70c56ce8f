"""Plex's listening history, accounts and devices: the requests and the rows.

- ``history_page``: one page of ``GET /status/sessions/history/all`` for one
  library section, newest first (``sort=viewedAt:desc``), offset-paged like
  plexapi's ``server.history()``: returns the entries and ``totalSize``.
- ``accounts``, ``devices``: ``/accounts`` and ``/devices``.
- ``play_row``, ``account_row``, ``device_row``: elements -> cache rows (in
  the column order of ``columns.PLAYS``, ``ACCOUNTS``, ``DEVICES``).

An entry whose item was deleted keeps its ``historyKey``, titles and times
but has no ``key``/``ratingKey`` (python-plexapi #1267): its row has no
``rating_key``. Entries are ``<Track>`` for music; anything else is skipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..timeutil import epoch_to_iso
from .http import PlexHTTP, int_attr
from .rows import BadItem, int_or_none, rating_key, text

HISTORY_PATH = "/status/sessions/history/all"
# Fields an entry carries that the cache never reads (PMS treats these as a
# request, not a guarantee; the spec lists includeFields/excludeFields here).
HISTORY_TRIM = {
    "excludeFields": "thumb,parentThumb,grandparentThumb,grandparentArt,art,parentKey,grandparentKey"
}
ENTRY_TAGS = ("Track", "Metadata")


def history_page(
    http: PlexHTTP, section_id: int, start: int, size: int
) -> tuple[list[ET.Element], int | None]:
    "(entries, totalSize) of one page of a section's plays, newest first; totalSize None when Plex sends none"
    params = {"sort": "viewedAt:desc", "librarySectionID": section_id, **HISTORY_TRIM}
    root = http.get(HISTORY_PATH, params, start=start, size=size)
    items = [el for el in root if el.tag in ENTRY_TAGS]
    return items, int_attr(root.get("totalSize"))


def accounts(http: PlexHTTP) -> list[ET.Element]:
    return list(http.get("/accounts").iter("Account"))


def devices(http: PlexHTTP) -> list[ET.Element]:
    return list(http.get("/devices").iter("Device"))


def history_id(el: ET.Element) -> int | None:
    "The number at the end of ``historyKey`` (``/status/sessions/history/123``)"
    key = el.get("historyKey") or ""
    return int_or_none(rating_key(key.rstrip("/").rpartition("/")[2]), lo=1)


def play_row(el: ET.Element) -> tuple:
    """A ``plays`` row (``columns.PLAYS`` order). ``BadItem`` for entries that
    are not plays of a track: no history id, no ``viewedAt``, another type."""
    hid = history_id(el)
    if hid is None:
        raise BadItem("history entry without a historyKey")
    kind = el.get("type")
    if kind not in (None, "track"):
        raise BadItem(f"history entry {hid} is a {kind}")
    viewed = epoch_to_iso(el.get("viewedAt"))
    if viewed is None:
        raise BadItem(f"history entry {hid} has no viewedAt")
    key = rating_key(el.get("ratingKey"))
    if key is None:  # some servers send only key="/library/metadata/N"
        path = el.get("key") or ""
        key = rating_key(path.rpartition("/")[2]) if path.startswith("/library/metadata/") else None
    return (
        hid,
        key,
        int_or_none(el.get("accountID")),
        int_or_none(el.get("deviceID"), lo=1),
        viewed,
        int_or_none(el.get("librarySectionID")),
        text(el.get("title")),
        text(el.get("grandparentTitle")),
        text(el.get("parentTitle")),
        int_or_none(el.get("index")),
        int_or_none(el.get("parentIndex")),
    )


def account_row(el: ET.Element) -> tuple:
    aid = int_or_none(el.get("id"))
    if aid is None:
        raise BadItem("account without an id")
    return (
        aid,
        text(el.get("name")) or "",
        text(el.get("thumb")),
        text(el.get("defaultAudioLanguage")),
    )


def device_row(el: ET.Element) -> tuple:
    did = int_or_none(el.get("id"), lo=1)
    if did is None:
        raise BadItem("device without an id")
    return (
        did,
        text(el.get("name")) or "",
        text(el.get("platform")),
        text(el.get("clientIdentifier")),
        epoch_to_iso(el.get("createdAt")),
    )
