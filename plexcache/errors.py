"""Exceptions raised by the plexcache library.

Every message is a single line meant for a person, and never contains the
Plex token: adapters (CLI, Datasette plugin) print ``str(exc)`` as it is.
"""


class PlexcacheError(Exception):
    "Base class: something the user can act on, with a one-line message"


class ConfigError(PlexcacheError):
    "Plex URL or token missing or malformed"


class PlexError(PlexcacheError):
    "Talking to the Plex Media Server failed"


class PlexUnreachable(PlexError):
    "Connection refused, DNS failure or timeout"


class PlexAuthError(PlexError):
    "The server rejected the token (401)"


class PlexNotFound(PlexError):
    "The server answered 404"


class PlexBadResponse(PlexError):
    "The server answered something that is not a valid Plex response"


class NotPlexServer(PlexBadResponse):
    "The URL answers, but not as a Plex Media Server"


class NoMusicSection(PlexError):
    "The server has no music library (or not the one asked for)"


class CacheError(PlexcacheError):
    "The cache database cannot be opened, read or written"


class SyncAlreadyRunning(PlexcacheError):
    "Another sync holds the lock for this cache"

    def __init__(self, message="a sync is already running for this cache"):
        super().__init__(message)
