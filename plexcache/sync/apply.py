"""Applying the staging database to the cache: one write transaction.

``transaction(conn)`` is that transaction; inside it ``apply_staged`` runs
these named steps, in this order:

1. ``find_deletions``: the cached tracks gone from Plex (``temp.doomed``):
   tracks of fully scanned sections that no listing saw, tracks found gone
   by album counts, or everything not staged when replacing another
   server's library;
2. ``mass_delete_guard``: refuse to remove more than half of the cache, or a
   whole section Plex suddenly lists as empty, without ``allow_mass_delete``
   (a warning instead; those sections are checked again next time);
3. ``upsert``: artists, then albums, then tracks, with derived columns
   (album artist, genre fallback, live flag) computed from the rows they
   come from; ``delete_doomed``;
4. ``delete_orphans``: albums and artists no track refers to any more;
5. facet counts and the overview's numbers: ``facet_counts.subtract`` /
   ``overview.subtract`` before the writes and ``add`` after (or a
   ``recount`` after a bulk load);
6. ``write_sections`` and ``write_sync_state``.

A bulk load (an empty cache, or a change touching more than half of it)
drops the tracks' secondary indexes and FTS triggers first and rebuilds them
afterwards, sorted, in one pass each: ~30% less time than maintaining them
row by row at 1,000,000 tracks. Rows are inserted in key order so the
primary-key index writes stay sequential. The index builds and the recounts
run with a smaller page cache (``SORT_CACHE_KIB``): SQLite sizes a sorter's
in-memory runs by the page cache, so with the sync's 24 MB cache each sort
held another 24 MB on top of it (a big sync's peak memory). The FTS rebuild,
which needs the cache, gets it back.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from .. import facet_counts, overview
from ..columns import ALBUMS, ARTISTS, TRACKS, Table
from .plan import SyncPlan

#: The page cache of a bulk apply's index builds and recounts (KiB). SQLite
#: sizes a sorter's in-memory runs by the page cache: at 1,000,000 tracks the
#: apply's SQLite memory peaked at 63.5 MB with the sync's 24 MB cache (cache
#: plus a 24 MB sorter, more in the genre recount's GROUP BY), 31 MB with
#: this, in the same time (docs/performance.md, session 7).
SORT_CACHE_KIB = 8 * 1024

#: Every track written or deleted by this apply: what the facet deltas follow
CHANGED_KEYS_SQL = "select rating_key from stage.tracks union select rating_key from temp.doomed"


@dataclass(frozen=True)
class Changes:
    "What an apply did to the cache"

    added: int
    updated: int
    removed: int
    warning: str | None = None  # the mass-delete guard held deletions back


@dataclass(frozen=True)
class Guard:
    "Deletions the mass-delete guard held back"

    warning: str
    sections: frozenset[int]  # whose change marker is forgotten


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    "``begin immediate`` ... ``commit``; rolled back (and temp tables dropped) on any error"
    conn.execute("begin immediate")
    try:
        yield
        conn.execute("drop table if exists temp.doomed")
        conn.execute("commit")
    except BaseException:
        if conn.in_transaction:
            conn.execute("rollback")
        with contextlib.suppress(sqlite3.Error):
            conn.execute("drop table if exists temp.doomed")
        raise


def apply_staged(
    conn: sqlite3.Connection,
    plan: SyncPlan,
    scanned: list[int],
    *,
    allow_mass_delete: bool,
    synced_at: str,
) -> Changes:
    """Steps 1-6 but ``write_sync_state``; call inside ``transaction``.

    ``scanned``: the sections whose every key was seen (``stage.seen``), so
    whose unseen cached tracks are deleted."""
    cache_total = count_tracks(conn)
    added = conn.execute(
        "select count(*) from stage.tracks st where not exists "
        "(select 1 from main.tracks t where t.rating_key = st.rating_key)"
    ).fetchone()[0]
    doomed = find_deletions(conn, replacing=plan.replacing, scanned=scanned)
    guard = None
    if doomed and not plan.replacing and not allow_mass_delete:
        guard = mass_delete_guard(conn, plan, scanned, doomed, cache_total)
        if guard is not None:
            doomed = 0
    bulk = cache_total == 0 or (added + doomed) > cache_total // 2
    fts_triggers = _drop_fts_triggers(conn) if bulk else []
    track_indexes = _drop_indexes(conn, "tracks") if bulk else []
    if not bulk:
        # Facet counts follow the change: out with the rows about to be
        # written or deleted now, in with what they become afterwards.
        facet_counts.subtract(conn, CHANGED_KEYS_SQL)
        overview.subtract(conn, CHANGED_KEYS_SQL)
    changed = upsert(conn)
    removed = delete_doomed(conn) if doomed else 0
    with page_cache(conn, SORT_CACHE_KIB) if bulk else contextlib.nullcontext():
        for sql in track_indexes:
            conn.execute(sql)
        if bulk:
            facet_counts.recount(conn)
        else:
            facet_counts.add(conn, CHANGED_KEYS_SQL)
        # after a bulk apply (no subtract before it) this recounts
        overview.add(conn, CHANGED_KEYS_SQL)
    delete_orphans(conn)
    if plan.replacing:
        ids = plan.section_ids
        conn.execute(
            f"delete from main.sections where id not in ({','.join('?' for _ in ids)})", ids
        )
    if fts_triggers:
        conn.execute("insert into tracks_fts(tracks_fts) values('rebuild')")
        for sql in fts_triggers:
            conn.execute(sql)
    write_sections(conn, plan, guard.sections if guard else frozenset(), synced_at)
    return Changes(
        added=added,
        updated=max(0, changed - added),
        removed=removed,
        warning=guard.warning if guard else None,
    )


@contextlib.contextmanager
def page_cache(conn: sqlite3.Connection, kib: int) -> Iterator[None]:
    "The main database's page cache at most ``kib`` KiB inside, as it was afterwards"
    before = conn.execute("pragma main.cache_size").fetchone()[0]  # pages, or -KiB
    page_kib = conn.execute("pragma main.page_size").fetchone()[0] / 1024
    now_kib = -before if before < 0 else int(before * page_kib)
    conn.execute(f"pragma main.cache_size = -{min(kib, now_kib)}")
    try:
        yield
    finally:
        conn.execute(f"pragma main.cache_size = {before}")


def count_tracks(conn: sqlite3.Connection, section_id: int | None = None) -> int:
    if section_id is None:
        return conn.execute("select count(*) from main.tracks").fetchone()[0]
    return conn.execute(
        "select count(*) from main.tracks where section_id = ?", (section_id,)
    ).fetchone()[0]


def find_deletions(conn: sqlite3.Connection, *, replacing: bool, scanned: list[int]) -> int:
    "Fill ``temp.doomed`` with the cached tracks gone from Plex; return how many"
    conn.execute("create temp table doomed (rating_key TEXT PRIMARY KEY)")
    if replacing:
        conn.execute(
            "insert into temp.doomed select rating_key from main.tracks t where not exists "
            "(select 1 from stage.tracks st where st.rating_key = t.rating_key)"
        )
    elif scanned:
        marks = ",".join("?" for _ in scanned)
        conn.execute(
            f"insert into temp.doomed select rating_key from main.tracks t where t.section_id in ({marks}) "
            "and not exists (select 1 from stage.seen s where s.rating_key = t.rating_key)",
            scanned,
        )
    if not replacing:
        conn.execute(
            "insert or ignore into temp.doomed select g.rating_key from stage.gone g "
            "where exists (select 1 from main.tracks t where t.rating_key = g.rating_key)"
        )
    return conn.execute("select count(*) from temp.doomed").fetchone()[0]


def mass_delete_guard(
    conn: sqlite3.Connection, plan: SyncPlan, scanned: list[int], doomed: int, cache_total: int
) -> Guard | None:
    """Hold back ``doomed`` deletions that empty a section Plex listed as
    empty, or remove more than half of the cache: None when they may go,
    else the warning (``temp.doomed`` is emptied)"""
    emptied = [
        p.section.title
        for p in plan.sections
        if p.section.id in scanned
        and not conn.execute(
            "select exists(select 1 from stage.seen where section_id = ?)", (p.section.id,)
        ).fetchone()[0]
        and conn.execute(
            "select exists(select 1 from main.tracks where section_id = ?)", (p.section.id,)
        ).fetchone()[0]
    ]
    if not emptied and doomed * 2 <= cache_total:
        return None
    why = (
        f"Plex returned no tracks for {', '.join(repr(t) for t in emptied)}"
        if emptied
        else f"that is more than half of the cache ({cache_total:,} tracks)"
    )
    # Forget these sections' change marker so the next sync checks for
    # deletions again instead of trusting it.
    sections = frozenset(
        r[0]
        for r in conn.execute(
            "select distinct t.section_id from main.tracks t join temp.doomed d using (rating_key)"
        )
    )
    conn.execute("delete from temp.doomed")
    return Guard(
        warning=f"not removing {doomed:,} tracks: {why}; run again with --allow-mass-delete if this is intended",
        sections=sections,
    )


def upsert(conn: sqlite3.Connection) -> int:
    """Artists, then albums (their artist name follows the artist row), then
    tracks (derived columns from their album and artist rows); returns the
    tracks inserted or changed"""
    _upsert(conn, ARTISTS, "stage.artists s")
    _upsert(
        conn,
        ALBUMS,
        "stage.albums s left join main.artists ar on ar.rating_key = s.artist_rating_key",
    )
    conn.execute(
        "update main.albums set artist = (select name from main.artists ar where ar.rating_key = albums.artist_rating_key) "
        "where artist_rating_key in (select rating_key from stage.artists)"
    )
    _upsert(
        conn,
        TRACKS,
        "stage.tracks s left join main.albums al on al.rating_key = s.album_rating_key "
        "left join main.artists ar on ar.rating_key = s.artist_rating_key",
        order_by="rating_key",
    )
    return conn.execute("select changes()").fetchone()[0]


def _upsert(
    conn, table: Table, source: str, order_by: str | None = None, keep_known: bool = False
) -> None:
    """Insert or update ``table`` from ``table.apply_select(source)``, by name
    (the first column is the key); rows whose values did not change are not
    written. ``keep_known``: a NULL in the new row keeps the cached value."""
    key, *rest = table.names
    cols = ", ".join(table.names)
    value = {
        c: f"coalesce(excluded.{c}, {table.name}.{c})" if keep_known else f"excluded.{c}"
        for c in rest
    }
    updates = ", ".join(f"{c} = {value[c]}" for c in rest)
    old = ", ".join(f"{table.name}.{c}" for c in rest)
    new = ", ".join(value[c] for c in rest)
    conn.execute(
        f"insert into main.{table.name} ({cols}) select {cols} from ({table.apply_select(source)}) where true "
        + (f"order by {order_by} " if order_by else "")
        + f"on conflict({key}) do update set {updates} where ({old}) is not ({new})"
    )


def delete_doomed(conn: sqlite3.Connection) -> int:
    return conn.execute(
        "delete from main.tracks where rating_key in (select rating_key from temp.doomed)"
    ).rowcount


def delete_orphans(conn: sqlite3.Connection) -> None:
    "Albums and artists nobody refers to any more"
    conn.execute(
        "delete from main.albums where not exists "
        "(select 1 from main.tracks t where t.album_rating_key = albums.rating_key)"
    )
    conn.execute(
        "delete from main.artists where not exists "
        "(select 1 from main.tracks t where t.artist_rating_key = artists.rating_key) and not exists "
        "(select 1 from main.albums a where a.artist_rating_key = artists.rating_key)"
    )


def write_sections(
    conn: sqlite3.Connection, plan: SyncPlan, guarded: frozenset[int], synced_at: str
) -> None:
    """Each synced section's row: its UUID, title, change marker, track count
    and sync time. A live apply updates only the track counts (and forgets
    the change marker of guarded sections)."""
    if plan.live:
        conn.execute(
            "update main.sections set track_count = (select count(*) from main.tracks t where t.section_id = sections.id)"
        )
        conn.executemany(
            "update main.sections set content_changed_at = null where id = ?",
            ((s,) for s in guarded),
        )
        return
    for p in plan.sections:
        s, prev = p.section, p.previous
        # A guarded section may have listed nothing at all (Plex said
        # "empty"): keep its last sync time, so the next incremental
        # window still covers edits made before this sync.
        section_synced_at = (
            prev.synced_at if s.id in guarded and prev and prev.synced_at else synced_at
        )
        conn.execute(
            "insert into main.sections (id, uuid, title, content_changed_at, track_count, synced_at) "
            "values (?, ?, ?, ?, ?, ?) on conflict(id) do update set uuid = excluded.uuid, "
            "title = excluded.title, content_changed_at = excluded.content_changed_at, "
            "track_count = excluded.track_count, synced_at = excluded.synced_at",
            (
                s.id,
                s.uuid,
                s.title,
                None if s.id in guarded else s.content_changed_at,
                count_tracks(conn, s.id),
                section_synced_at,
            ),
        )


def write_sync_state(
    conn: sqlite3.Connection, server_id: str | None, finished: str, duration_ms: int
) -> int:
    "The ``sync_state`` row of a successful sync; returns the cache's track count"
    track_count = count_tracks(conn)
    conn.execute(
        "insert into main.sync_state (id, plex_server_id, last_sync_at, track_count, sync_duration_ms) "
        "values (1, ?, ?, ?, ?) on conflict(id) do update set plex_server_id = excluded.plex_server_id, "
        "last_sync_at = excluded.last_sync_at, track_count = excluded.track_count, "
        "sync_duration_ms = excluded.sync_duration_ms",
        (server_id, finished, track_count, duration_ms),
    )
    return track_count


def _drop_indexes(conn, table: str) -> list[str]:
    "Drop ``table``'s non-unique secondary indexes; return the SQL that recreates them"
    rows = conn.execute(
        "select name, sql from main.sqlite_master where type = 'index' and tbl_name = ? and sql is not null",
        (table,),
    ).fetchall()
    rows = [
        (name, sql) for name, sql in rows if not sql.lstrip().upper().startswith("CREATE UNIQUE")
    ]
    for name, _ in rows:
        conn.execute(f'drop index main."{name}"')
    return [
        sql.replace("CREATE INDEX ", "CREATE INDEX main.", 1) if " main." not in sql else sql
        for _, sql in rows
    ]


def _drop_fts_triggers(conn) -> list[str]:
    rows = conn.execute(
        "select name, sql from main.sqlite_master where type = 'trigger' and tbl_name = 'tracks'"
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'drop trigger main."{name}"')
    return [sql for _, sql in rows]
