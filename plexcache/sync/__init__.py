"""The sync engine: Plex -> staging -> one atomic apply into the cache.

How a sync runs (each step is a module of this package):

1. ``runs.start``: under the cache's lock (one sync at a time across
   processes), record a ``sync_runs`` row with status ``running``.
2. ``plan``: read ``/library/sections`` and decide, per music section, full
   or incremental. A section synced before whose ``contentChangedAt`` has
   not moved only needs the play-state deltas (``lastViewedAt``/
   ``lastRatedAt``: plays and ratings do not move ``updatedAt``). Otherwise
   ``GET /`` (server and version) and fetch what changed since the last sync
   (with an overlap for clock skew), or everything on the first or a
   ``full`` sync, or when the server's version is new to the cache.
   ``learn`` holds what the sync knows of that version's listings: which
   listed tracks may show a cut genre list and are read in full.
3. ``collect`` into ``stage``: everything fetched goes to a *staging*
   database next to the cache (``<db>-stage``), page by page, while
   ``sync_runs`` shows progress. Readers of the cache see nothing of it yet.
4. ``apply``: one write transaction applies the staged rows to the cache,
   removes deleted tracks, keeps facet_counts current, updates ``sections``
   and ``sync_state`` and marks the run ``succeeded``. Readers see the old
   cache or the new one, never a mix. Any failure before or during it leaves
   the cache untouched and the run marked ``failed`` (or ``interrupted``).

A *live* sync (``changes=``, from ``plexcache.watch``) takes the same path
with its own plan and collection: ``plan_live`` (no request: the cache's
sections are kept as they are) and ``Collector.read_live`` (the announced
items, read in full), plus the history step for the libraries of tracks whose
play stopped. Its run has mode ``live``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from ..config import PlexConfig
from ..db import BUSY_TIMEOUT_MS, describe_sqlite_error, make_folder, open_cache
from ..errors import CacheError, PlexcacheError
from ..lock import SyncLock
from ..plex import TRACK, PlexSource
from ..timeutil import epoch_to_iso, utc_now_iso
from . import apply, learn, runs
from .collect import Collector
from .history import HistoryStep
from .plan import (
    LiveChanges,
    ServerInfo,
    choose_sections,
    needs_server_check,
    plan_live,
    plan_sync,
    read_cache_state,
    sections_of_tracks,
)
from .runs import ProgressCallback, SyncProgress, SyncResult
from .stage import Stage

__all__ = ["sync", "sync_history", "SyncResult", "SyncProgress", "ProgressCallback", "LiveChanges"]

log = logging.getLogger(__name__)

# SQLite's page cache for the sync's connection. It also bounds each sorter
# that builds an index after a bulk load, so it is most of a big sync's peak
# memory: at 1,000,000 tracks 64 MB peaked at 168 MB in the apply and 32 MB
# at 111 MB (the apply measured alone), for ~10% more apply CPU (19.8 s
# against 17.7 s, one run each); a whole 1,000,000-track sync peaked at
# 146-156 MB with 32 MB, over the 150 MB goal (issue #17), so 24 MB.
SYNC_CACHE_KIB = 24 * 1024


def sync(
    db_path: str | os.PathLike,
    config: PlexConfig,
    *,
    full: bool = False,
    section: str | None = None,
    allow_mass_delete: bool = False,
    on_progress: ProgressCallback | None = None,
    trigger: str = "cli",
    lock: SyncLock | None = None,
    page_size: int = 1000,
    batch_size: int = 500,
    retries: int = 3,
    timeout: float | None = None,
    history: bool = True,
    tracks: bool = True,
    changes: LiveChanges | None = None,
) -> SyncResult:
    """Bring the cache at ``db_path`` up to date with the Plex server.

    Incremental when the cache already holds a sync of this server, full
    otherwise or with ``full=True``. ``section`` limits the sync to one music
    library (by name). ``history=False`` leaves the listening history out;
    ``tracks=False`` syncs only the history (``sync_history``). Raises ``SyncAlreadyRunning`` if another process is
    syncing this cache, and another ``PlexcacheError`` (with a one-line,
    token-free message) when the sync fails; the cache is then unchanged.

    ``changes``: apply only these announced items (a live sync); a cache that
    cannot take one (never synced, an unknown section) gets a normal sync.
    """
    db_path = Path(db_path)
    make_folder(db_path)  # hardening: a one-line CacheError saying why it cannot
    lock = lock or SyncLock(db_path)
    lock.acquire(timeout=0.25)  # status probes hold it for microseconds
    try:
        # Before opening anything: a missing server config is not a sync.
        source = PlexSource(
            config, timeout=timeout, retries=retries, page_size=page_size, batch_size=batch_size
        )
        conn = open_cache(db_path)
        # A bigger page cache than SQLite's 2 MB default halves the apply of
        # a million-track sync; its size is the sync's memory (SYNC_CACHE_KIB).
        conn.execute(f"pragma cache_size = -{SYNC_CACHE_KIB}")
        try:
            steps = {"history": history, "tracks": tracks, "changes": changes}
            return _recorded_run(
                conn, db_path, source, full, section, allow_mass_delete, on_progress, trigger, steps
            )
        finally:
            source.close()
            conn.close()
    finally:
        lock.release()


def sync_history(db_path: str | os.PathLike, config: PlexConfig, **kwargs) -> SyncResult:
    """Only the listening history (plays, accounts, devices), e.g. after a
    play stops: ``sync(..., tracks=False)``. The tracks and ``sync_state``
    stay as they are; the next library sync brings the play counts."""
    return sync(db_path, config, tracks=False, **kwargs)


def _run(
    conn,
    source: PlexSource,
    progress: runs.Progress,
    stage: Stage,
    *,
    full,
    section,
    allow_mass_delete,
    started,
    steps,
) -> SyncResult:
    "The steps of one sync, from the sections to the committed apply"
    progress("connecting", force=True)
    if steps["changes"] is not None and steps["tracks"]:
        result = _run_live(conn, source, progress, stage, steps, allow_mass_delete, started)
        if result is not None:
            return result
        log.info("the cache needs a sync before it can take live changes")
    every = source.sections()
    sections = choose_sections(every, section, source.base_url)
    server_time = source.server_time or int(time.time())
    state = read_cache_state(conn)
    server = None
    if needs_server_check(sections, state, full=full):
        info = source.server_info()
        server = ServerInfo(
            info["machineIdentifier"], info.get("friendlyName"), info.get("version") or ""
        )
    plan = plan_sync(sections, state, full=full, server=server, server_time=server_time)
    runs.record_plan(
        conn, progress.run_id, mode=plan.mode, server_id=plan.server_id, server_time=server_time
    )
    if plan.relearn and not full and state.has_tracks:
        log.info(
            "Plex version %s is new to this cache: reading the library in full", server.version
        )

    stage.open()
    # What this server version's listings show (learn.py); without a version
    # (nothing changed since the last sync, so no GET /) nothing is trusted.
    facts = learn.load(conn, plan.server_id, server.version) if server is not None else None
    collector = Collector(source, stage, progress, facts)
    try:
        plays = HistoryStep(conn, source, progress, plan, full=full, enabled=steps["history"])
        plays.collect()
        if not steps["tracks"]:
            return _apply_history_only(conn, plan, plays, progress, source, started, server_time)
        # Progress total: section sizes for full syncs; incremental totals grow
        # as the delta listings report their sizes.
        progress.total += sum(
            source.count(p.section.id, TRACK) for p in plan.sections if not p.incremental
        )
        log.info("Starting sync, total tracks: %d", progress.total)
        progress("tracks", force=True)
        scanned = []
        for p in plan.sections:
            if not p.incremental:
                collector.list_section(p.section)
                scanned.append(p.section.id)
            elif collector.list_changes(
                p.section, p.since, p.content_changed, viewed_since=plays.viewed_since(p)
            ):
                scanned.append(p.section.id)
        # A version counts as learned once every music library was read under
        # it: a sync limited to one library leaves the others for later.
        learned = server is not None and (
            not plan.relearn or len(sections) == sum(s.is_music for s in every)
        )
        return _collect_and_apply(conn, source, progress, plan, collector, plays, scanned, allow_mass_delete, started,
                                  section, version=server.version if learned else None)  # fmt: skip
    finally:
        collector.close()  # a shared read's workers, if a failure left them running


def _run_live(
    conn, source, progress, stage, steps, allow_mass_delete, started
) -> SyncResult | None:
    """A live sync of ``steps["changes"]``; None when the cache cannot take
    one. The history step reads only the libraries of tracks whose play stopped."""
    changes = steps["changes"]
    played_in = sections_of_tracks(conn, changes.played) if steps["history"] else set()
    plan = plan_live(
        read_cache_state(conn), changes, server_time=int(time.time()), history_sections=played_in
    )
    if plan is None:
        return None
    runs.record_plan(
        conn,
        progress.run_id,
        mode=plan.mode,
        server_id=plan.server_id,
        server_time=plan.server_time,
    )
    stage.open()
    collector = Collector(source, stage, progress)
    plays = HistoryStep(conn, source, progress, plan, full=False, enabled=bool(played_in))
    plays.collect()
    progress("tracks", force=True)
    collector.read_live(changes)
    return _collect_and_apply(
        conn, source, progress, plan, collector, plays, [], allow_mass_delete, started, None
    )


def _collect_and_apply(conn, source, progress, plan, collector, plays, scanned, allow_mass_delete, started,
                       section, version: str | None = None) -> SyncResult:  # fmt: skip
    """The full reads every sync needs, then the one-transaction apply and the run's record;
    ``version``: the server version whose listing facts (``collector.facts``) are kept"""
    collector.read_full_items()
    # nothing more to read in full: the reader exits (its memory is not held
    # through the apply) while the apply starts; the source's close reaps it
    source.close_reader(wait=False)
    server_time = plan.server_time
    progress("applying", force=True)
    warnings = list(plan.warnings)
    with apply.transaction(conn):
        changes = apply.apply_staged(
            conn,
            plan,
            scanned,
            allow_mass_delete=allow_mass_delete,
            synced_at=epoch_to_iso(server_time),
        )
        warnings += [changes.warning] if changes.warning else []
        # a live sync moves no play-count marker: it asked no lastViewedAt delta
        history = plays.apply(epoch_to_iso(server_time), tracks=not plan.live)
        warnings += history.warnings
        finished, duration_ms = utc_now_iso(), int((time.monotonic() - started) * 1000)
        track_count = apply.write_sync_state(conn, plan.server_id, finished, duration_ms)
        if version is not None:
            learn.save(conn, plan.server_id, version, collector.facts, finished)
        skipped = collector.skipped
        warning = "; ".join(
            warnings + ([f"skipped {skipped:,} malformed items"] if skipped else [])
        )
        runs.succeed(
            conn,
            progress,
            finished=finished,
            duration_ms=duration_ms,
            added=changes.added,
            updated=changes.updated,
            removed=changes.removed,
            warning=warning or None,
        )
    if skipped:
        warnings.append(f"skipped {skipped:,} malformed items from Plex")
    _checkpoint(conn)
    log.info("Sync complete in %dms", duration_ms)
    progress("done", force=True)
    return SyncResult(
        plays_added=history.added,
        run_id=progress.run_id,
        mode=plan.mode,
        status="succeeded",
        added=changes.added,
        updated=changes.updated,
        removed=changes.removed,
        requests=source.requests,
        duration_ms=duration_ms,
        track_count=track_count,
        skipped_items=skipped,
        warnings=warnings,
        synced_tracks=sum(
            apply.count_tracks(conn, p.section.id) for p in plan.sections
        ),  # hardening
        section=plan.sections[0].section.title if section else None,  # hardening
    )


def _recorded_run(
    conn, db_path, source, full, section, allow_mass_delete, on_progress, trigger, steps
) -> SyncResult:
    """``_run`` with its ``sync_runs`` row: started first, marked failed or
    interrupted (with a token-free message) on any error, the staging
    database removed either way"""
    started = time.monotonic()
    try:
        run_id = runs.start(conn, full=full, trigger=trigger, section=section)
    except sqlite3.Error as e:  # the first writes: a full disk or read-only file shows here
        raise CacheError(describe_sqlite_error(e, db_path)) from None
    progress = runs.Progress(conn, run_id, lambda: source.requests, on_progress)
    stage = Stage(conn, db_path)
    try:
        result = _run(
            conn,
            source,
            progress,
            stage,
            full=full,
            section=section,
            allow_mass_delete=allow_mass_delete,
            started=started,
            steps=steps,
        )
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt | SystemExit) else "failed"
        if isinstance(e, sqlite3.Error):
            error = CacheError(describe_sqlite_error(e, db_path))
        elif isinstance(e, PlexcacheError):
            error = e
        elif status == "interrupted":
            error = None
        else:
            error = PlexcacheError(f"unexpected {type(e).__name__}: {e}")
        message = source.config.redact(str(error)) if error else "interrupted"
        # Staging first: it may be what filled the disk, and a staging file
        # left broken by a failed write (journal off) would make every
        # statement on this connection fail, the failure record included.
        _rollback(conn)
        stage.drop()
        recorded = runs.fail(
            conn,
            run_id,
            status=status,
            message=message,
            duration_ms=int((time.monotonic() - started) * 1000),
            requests=source.requests,
            phase=progress.phase,
        )
        if recorded:
            log.error("Sync %s: %s", status, message)
        else:  # Ctrl-C after the apply's commit: the run succeeded and says so
            log.warning("Sync %s after its changes were saved", status)
        if error is not None and error is not e:
            raise error from None
        raise
    stage.drop()
    return result


def _apply_history_only(
    conn, plan, plays: HistoryStep, progress, source, started, server_time
) -> SyncResult:
    "The apply of a history-only sync: plays, accounts, devices; the tracks and sync_state as they were"
    progress("applying", force=True)
    with apply.transaction(conn):
        history = plays.apply(epoch_to_iso(server_time), tracks=False)
        finished, duration_ms = utc_now_iso(), int((time.monotonic() - started) * 1000)
        runs.succeed(
            conn,
            progress,
            finished=finished,
            duration_ms=duration_ms,
            added=0,
            updated=0,
            removed=0,
            warning="; ".join(history.warnings) or None,
        )
    progress("done", force=True)
    return SyncResult(
        run_id=progress.run_id,
        mode=plan.mode,
        status="succeeded",
        requests=source.requests,
        duration_ms=duration_ms,
        track_count=apply.count_tracks(conn),
        warnings=history.warnings,
        plays_added=history.added,
    )


def _rollback(conn) -> None:
    try:
        if conn.in_transaction:
            conn.execute("rollback")
    except sqlite3.Error as e:
        log.debug("rollback failed: %s", e)


def _checkpoint(conn) -> None:
    "Shrink the WAL if no reader is in the way; never wait for readers"
    try:
        conn.execute("pragma busy_timeout = 0")
        conn.execute("pragma main.wal_checkpoint(truncate)")
    except sqlite3.Error:
        pass
    finally:
        conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
