"""plexcache: keep a Plex music library as a local, queryable SQLite dataset.

The public library API lives here; the click CLI (``plexcache.cli``) and the
Datasette plugin (``datasette_plexcache``) are thin adapters over it.
"""

__version__ = "0.1.0"
