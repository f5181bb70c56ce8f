"""Plex access in three parts, and the rows made from its answers.

- ``http``: the connection (session, headers, retries, size and tag limits,
  the one mapping of HTTP statuses and exceptions to plexcache errors);
- ``source``: ``PlexSource``, what the sync asks (sections, counts, keyset
  pages, full items);
- ``pipeline``: how pages are fetched, parsed and used in three overlapping
  threads (documented there);
- ``rows``: Plex XML elements -> cache rows (pure functions).

May import ``config``, ``errors``, ``columns``, ``timeutil``; nothing of the
sync, the cache or the web side.
"""

from .http import PlexHTTP, TransientError
from .pipeline import next_after as _next_after  # noqa: F401 (tests check the guess directly)
from .pipeline import prefetch
from .source import (
    ALBUM,
    ALBUM_COUNTS_ONLY,
    ARTIST,
    KEYS_ONLY,
    LISTING_TRIM,
    METADATA_TRIM,
    TRACK,
    PlexSource,
    Section,
)

__all__ = [
    "ALBUM",
    "ALBUM_COUNTS_ONLY",
    "ARTIST",
    "KEYS_ONLY",
    "LISTING_TRIM",
    "METADATA_TRIM",
    "TRACK",
    "PlexHTTP",
    "PlexSource",
    "Section",
    "TransientError",
    "prefetch",
]
