"""Planning a sync: which sections, the same server as before?, full or
incremental per section. Pure decisions on plain data; the only I/O is
``read_cache_state`` (one read of the cache).

A section synced before, on the same server, with the same UUID, is synced
incrementally; anything else (first sync, ``full=True``, another server, a
section recreated under a new UUID, a server version the cache has learned
nothing about: ``learn``) is read in full. Section UUIDs are unique per
server, so an unchanged set of UUIDs proves "same server" without the extra
``GET /``; it is asked only when something changed (``needs_server_check``),
for the server's version.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..errors import NoMusicSection
from ..plex import Section
from ..timeutil import iso_to_epoch
from .learn import learned_versions

OVERLAP_SECONDS = 120  # incremental windows reach back this far (clock skew)


@dataclass(frozen=True)
class CachedSection:
    "What the cache remembers of a section (a ``sections`` row)"

    id: int
    uuid: str | None
    content_changed_at: int | None
    synced_at: str | None


@dataclass(frozen=True)
class CacheState:
    "What the cache knows before the sync: the server it holds and its sections"

    server_id: str | None
    sections: dict[int, CachedSection]
    has_tracks: bool
    learned: frozenset[tuple[str, str]] = (
        frozenset()
    )  # (server id, version) pairs with listing facts

    def knows(self, sections: list[Section]) -> bool:
        "Were all these sections synced from this cache's server before?"
        return bool(self.server_id) and all(
            (c := self.sections.get(s.id)) is not None and c.uuid == s.uuid and bool(c.synced_at)
            for s in sections
        )


@dataclass(frozen=True)
class ServerInfo:
    "The answer to ``GET /`` that matters here"

    machine_id: str
    name: str | None = None
    version: str = ""  # "" when the server does not say


@dataclass(frozen=True)
class SectionPlan:
    section: Section
    incremental: bool
    previous: CachedSection | None

    @property
    def since(self) -> int:
        "Incremental window start: the last sync time minus the overlap"
        synced = iso_to_epoch(self.previous.synced_at) if self.previous else None
        return max(0, (synced or 0) - OVERLAP_SECONDS)

    @property
    def content_changed(self) -> bool:
        """Did Plex's change marker move? When it did not, only play-state
        deltas (plays and ratings do not move ``updatedAt``) are fetched"""
        changed_at = self.section.content_changed_at
        return (
            changed_at is None
            or self.previous is None
            or changed_at != self.previous.content_changed_at
        )


@dataclass(frozen=True)
class SyncPlan:
    sections: tuple[SectionPlan, ...]
    server_id: str | None
    replacing: bool  # the cache held another server's library: replace it whole
    server_time: int  # the server's clock at the start (epoch seconds)
    warnings: tuple[str, ...] = ()
    relearn: bool = (
        False  # a server version the cache knows nothing about: read in full, learn again
    )
    live: bool = False  # applies announced items only (``plan_live``)

    @property
    def mode(self) -> str:
        if self.live:
            return "live"
        return "incremental" if all(p.incremental for p in self.sections) else "full"

    @property
    def section_ids(self) -> list[int]:
        return [p.section.id for p in self.sections]


def choose_sections(sections: list[Section], name: str | None, base_url: str) -> list[Section]:
    "The music sections to sync: all, or the one called ``name`` (case-insensitive)"
    music = [s for s in sections if s.is_music]
    if name:
        wanted = name.casefold()
        chosen = [s for s in music if s.title.casefold() == wanted]
        if not chosen:
            names = ", ".join(repr(s.title) for s in music) or "none"
            raise NoMusicSection(
                f"no music library named {name!r} on Plex at {base_url} (music libraries: {names})"
            )
        music = chosen
    if not music:
        raise NoMusicSection(f"Plex at {base_url} has no music library")
    return music


def read_cache_state(conn: sqlite3.Connection) -> CacheState:
    row = conn.execute("select plex_server_id from sync_state where id = 1").fetchone()
    sections = {
        r[0]: CachedSection(*r)
        for r in conn.execute("select id, uuid, content_changed_at, synced_at from sections")
    }
    has_tracks = bool(conn.execute("select exists(select 1 from tracks)").fetchone()[0])
    return CacheState(
        server_id=row[0] if row else None,
        sections=sections,
        has_tracks=has_tracks,
        learned=learned_versions(conn),
    )


def needs_server_check(sections: list[Section], state: CacheState, *, full: bool) -> bool:
    """Must the sync ask ``GET /`` which server (and version) this is? Not when
    the sections are known and none changed: that sync only fetches play-state
    deltas, and reads their tracks in full, trusting no learned fact"""
    return (
        full
        or not state.knows(sections)
        or any(s.content_changed_at is None or s.content_changed_at != state.sections[s.id].content_changed_at
               for s in sections)
    )  # fmt: skip


def plan_sync(
    sections: list[Section],
    state: CacheState,
    *,
    full: bool,
    server: ServerInfo | None,
    server_time: int,
) -> SyncPlan:
    """Decide full or incremental per section. ``server`` is the ``GET /``
    answer when ``needs_server_check`` said so, else None (same server)."""
    server_id = state.server_id
    replacing = False
    relearn = False
    warnings: tuple[str, ...] = ()
    if server is not None:
        relearn = (server.machine_id, server.version) not in state.learned
        server_id = server.machine_id
        if state.server_id and state.server_id != server_id and state.has_tracks:
            replacing = True
            warnings = (
                f"this cache held another Plex server's library ({state.server_id}); "
                f"replacing it with {server.name or 'this server'} ({server_id})",
            )
    plans = []
    for s in sections:
        prev = state.sections.get(s.id)
        incremental = not (
            full
            or replacing
            or relearn
            or prev is None
            or not prev.synced_at
            or prev.uuid != s.uuid
        )
        plans.append(SectionPlan(section=s, incremental=incremental, previous=prev))
    return SyncPlan(
        sections=tuple(plans),
        server_id=server_id,
        replacing=replacing,
        server_time=server_time,
        warnings=warnings,
        relearn=relearn,
    )


@dataclass(frozen=True)
class LiveChanges:
    """Items Plex announced (the notification websocket, ``plexcache.watch``):
    read these again, remove those.

    ``tracks``, ``albums``, ``artists``: keys reported created or changed;
    ``items``: keys of unknown type (a refreshed item, a play);
    ``deleted``: keys reported deleted (removed unless Plex still has them);
    ``sections``: the library sections the announcements named."""

    tracks: frozenset[str] = frozenset()
    albums: frozenset[str] = frozenset()
    artists: frozenset[str] = frozenset()
    items: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()
    sections: frozenset[int] = frozenset()
    played: frozenset[str] = (
        frozenset()
    )  # of those, items whose play stopped (a history step's cue)

    @property
    def keys(self) -> list[str]:
        "Every key to read, in key order"
        return sorted(self.tracks | self.albums | self.artists | self.items | self.deleted, key=int)

    def __len__(self) -> int:
        return len(self.keys)


def plan_live(
    state: CacheState,
    changes: LiveChanges,
    *,
    server_time: int,
    history_sections: set[int] = frozenset(),
) -> SyncPlan | None:
    """A plan that applies only ``changes``, or None when the cache cannot
    take one (never synced, or a section it does not know): then a normal
    sync must run. A live apply keeps every section's change marker and sync
    time, so the next incremental sync still looks at everything since the
    last one (a live apply only knows what was announced). Its sections are
    ``history_sections`` (the libraries whose listening history to read), as
    the cache knows them."""
    known = {sid for sid, c in state.sections.items() if c.synced_at}
    if not state.server_id or not known or not changes.sections <= known:
        return None
    sections = tuple(
        SectionPlan(
            section=Section(
                id=sid,
                uuid=c.uuid,
                title="",
                type="artist",
                content_changed_at=c.content_changed_at,
            ),
            incremental=True,
            previous=c,
        )
        for sid, c in sorted(state.sections.items())
        if sid in history_sections and sid in known
    )
    return SyncPlan(
        sections=sections,
        server_id=state.server_id,
        replacing=False,
        server_time=server_time,
        live=True,
    )


def sections_of_tracks(conn: sqlite3.Connection, keys) -> set[int]:
    "The sections the cached tracks ``keys`` are in"
    keys = list(keys)
    if not keys:
        return set()
    marks = ",".join("?" for _ in keys)
    return {
        r[0]
        for r in conn.execute(
            f"select distinct section_id from main.tracks where rating_key in ({marks})", keys
        )
        if r[0] is not None
    }
