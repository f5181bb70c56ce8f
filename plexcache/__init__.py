"""plexcache: keep a Plex music library as a local, queryable SQLite dataset.

The public library API is what ``__all__`` lists; the click CLI
(``plexcache.cli``), the Datasette plugin (``datasette_plexcache``) and the
notebooks are thin adapters over it. The sync itself is
``from plexcache.sync import sync`` (``plexcache.sync`` is the package of its
stages, so a function of that name here would be shadowed by it)::

    from plexcache import PlexConfig, get_status
    from plexcache.sync import sync

    result = sync("data/library_cache.db", PlexConfig(url=..., token=...))
    print(result.summary(), get_status("data/library_cache.db", check_plex=False))

Names are imported when first used, so ``import plexcache`` stays cheap (the
CLI and the plugin import it at start). See docs/architecture.md.
"""

from importlib import import_module

__version__ = "0.1.0"

# name -> module that defines it
_API = {
    # settings
    "PlexConfig": "config",
    "resolve_plex_config": "config",
    "resolve_db_path": "config",
    # the sync's results (the sync: plexcache.sync.sync)
    "SyncResult": "sync",
    "SyncProgress": "sync",
    "list_runs": "sync.runs",
    # reading and managing the cache
    "get_status": "status",
    "init_cache": "db",
    "open_cache": "db",
    "reset_cache": "db",
    "ensure_shape": "schema",
    # Plex
    "PlexSource": "plex",
    "Simulator": "simulator",
    # errors: every one has a one-line, token-free message
    "PlexcacheError": "errors",
    "ConfigError": "errors",
    "CacheError": "errors",
    "PlexError": "errors",
    "PlexAuthError": "errors",
    "PlexUnreachable": "errors",
    "PlexNotFound": "errors",
    "PlexBadResponse": "errors",
    "NotPlexServer": "errors",
    "NoMusicSection": "errors",
    "SyncAlreadyRunning": "errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'plexcache' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
