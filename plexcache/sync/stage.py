"""The staging database: everything a sync fetched, before the apply.

``<db>-stage`` is attached to the cache connection as ``stage`` (journal
off: it is scratch, dropped after every sync, failed or not). Readers of the
cache never see it. Its tables:

``stage.tracks``   track rows as listed (``STAGE_TRACK_COLUMNS``), completed
                   by full reads (genres), or read in full
``stage.albums``   album rows from full reads (the ``albums`` columns)
``stage.artists``  artist rows from full reads (the ``artists`` columns)
``stage.seen``     every key a complete listing (or key scan) of a section
                   showed: cached tracks of that section missing here are gone
``stage.wanted``   keys to read in full through ``/library/metadata``
``stage.gone``     cached tracks found deleted without a full key scan

Every query of those tables the collection makes is here; the apply reads
them in its own statements (``apply.py``).
"""

from __future__ import annotations

import logging
import sqlite3
from array import array
from collections.abc import Iterable
from pathlib import Path

from ..columns import ALBUMS, ARTISTS, STAGE_TRACK_COLUMNS

log = logging.getLogger("plexcache.sync")


def _keyed(columns) -> str:
    return ", ".join(f"{c} TEXT PRIMARY KEY" if c == "rating_key" else c for c in columns)


def _upsert_sql(table: str, columns) -> str:
    return (
        f"insert or replace into stage.{table} ({', '.join(columns)}) "
        f"values ({', '.join(':' + c for c in columns)})"
    )


_GENRES_AT = STAGE_TRACK_COLUMNS.index("own_genres")
_INSERT_TRACKS = (
    f"insert or replace into stage.tracks ({', '.join(STAGE_TRACK_COLUMNS)}) "
    f"values ({', '.join('?' for _ in STAGE_TRACK_COLUMNS)})"
)


class Stage:
    def __init__(self, conn: sqlite3.Connection, db_path):
        self.conn = conn
        self.path = Path(f"{db_path}-stage")

    # -- lifecycle ----------------------------------------------------------

    def open(self) -> None:
        self.drop()
        conn = self.conn
        conn.execute("attach database ? as stage", (str(self.path),))
        conn.execute("pragma stage.journal_mode = off")
        conn.execute("pragma stage.synchronous = off")
        conn.execute(f"create table stage.tracks ({_keyed(STAGE_TRACK_COLUMNS)})")
        conn.execute(f"create table stage.albums ({_keyed(ALBUMS.names)})")
        conn.execute(f"create table stage.artists ({_keyed(ARTISTS.names)})")
        conn.execute("create table stage.seen (rating_key TEXT PRIMARY KEY, section_id INTEGER)")
        conn.execute("create table stage.wanted (rating_key TEXT PRIMARY KEY)")
        conn.execute("create table stage.gone (rating_key TEXT PRIMARY KEY)")

    def drop(self) -> None:
        try:
            names = [r[1] for r in self.conn.execute("pragma database_list")]
            if "stage" in names:
                self.conn.execute("detach database stage")
        except sqlite3.Error:
            pass
        for path in (self.path, Path(f"{self.path}-journal")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove %s: %s", path, e)

    def _write(self, sql: str, rows: Iterable) -> None:
        "``executemany`` in a transaction of its own"
        with self.conn:
            self.conn.execute("begin")
            self.conn.executemany(sql, rows)

    # -- writes ---------------------------------------------------------------

    def add_tracks(self, rows: list[tuple]) -> None:
        if rows:
            self._write(_INSERT_TRACKS, rows)

    def mark_listed(self, section_id: int) -> None:
        """Every track staged for a section was seen by its complete listing:
        one sorted bulk insert, not a second write per track"""
        with self.conn:
            self.conn.execute("begin")
            self.conn.execute(
                "insert or ignore into stage.seen select rating_key, section_id from stage.tracks "
                "where section_id = ? order by rating_key",
                (section_id,),
            )

    def add_seen(self, keys: Iterable[str], section_id: int) -> None:
        self._write(
            "insert or ignore into stage.seen values (?, ?)", ((k, section_id) for k in keys)
        )

    def add_gone(self, keys: Iterable[str]) -> None:
        self._write("insert or ignore into stage.gone values (?)", ((k,) for k in keys))

    def want(self, keys: Iterable[str]) -> None:
        self._write("insert or ignore into stage.wanted values (?)", ((k,) for k in keys if k))

    def add_items(self, albums: list[dict], artists: list[dict]) -> None:
        with self.conn:
            self.conn.execute("begin")
            self.conn.executemany(_upsert_sql("albums", ALBUMS.names), albums)
            self.conn.executemany(_upsert_sql("artists", ARTISTS.names), artists)

    def complete_genres(self, rows: list[tuple]) -> None:
        "Full genre lists, from full track items, for tracks staged from listings"
        self._write(
            "update stage.tracks set own_genres = ?, listed_genres = null where rating_key = ?",
            ((row[_GENRES_AT], row[0]) for row in rows),
        )

    def drop_tracks(self, keys: Iterable[str]) -> None:
        gone = [(k,) for k in keys]
        with self.conn:
            self.conn.execute("begin")
            self.conn.executemany("delete from stage.seen where rating_key = ?", gone)
            self.conn.executemany("delete from stage.tracks where rating_key = ?", gone)

    def want_related(self, read_in_full_from: int) -> None:
        """Queue the full reads every sync needs: albums and artists of staged
        tracks that the cache lacks or that this sync re-reads anyway (full
        sections: everything), and listed tracks whose genre list may be cut:
        those showing at least ``read_in_full_from`` genres (``learn``)."""
        conn = self.conn
        for kind in ("album", "artist"):
            conn.execute(
                "insert or ignore into stage.wanted "
                f"select distinct {kind}_rating_key from stage.tracks st where {kind}_rating_key is not null "
                "and (st.rating_key in (select rating_key from stage.seen) or not exists "
                f"(select 1 from main.{kind}s a where a.rating_key = st.{kind}_rating_key)) "
                f"and not exists (select 1 from stage.{kind}s x where x.rating_key = st.{kind}_rating_key)"
            )
        conn.execute(
            "insert or ignore into stage.wanted select rating_key from stage.tracks where listed_genres >= ?",
            (read_in_full_from,),
        )

    # -- reads ----------------------------------------------------------------

    def listed_genres(self, keys: list[str]) -> dict[str, int | None]:
        "{key: Genre tags its listing showed (None: read in full)} for the staged tracks among ``keys``"
        out: dict[str, int | None] = {}
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]
            out.update(
                self.conn.execute(
                    "select rating_key, listed_genres from stage.tracks "
                    f"where rating_key in ({','.join('?' for _ in batch)})",
                    batch,
                )
            )
        return out

    def wanted(self) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "select rating_key from stage.wanted order by cast(rating_key as integer)"
            )
        ]

    def unknown_album_artists(self) -> list[str]:
        "Artists that staged albums name and nobody has (rare: tracks name them too)"
        return [
            r[0]
            for r in self.conn.execute(
                "select distinct artist_rating_key from stage.albums al where artist_rating_key is not null "
                "and not exists (select 1 from stage.artists s where s.rating_key = al.artist_rating_key) "
                "and not exists (select 1 from main.artists a where a.rating_key = al.artist_rating_key) "
                "and not exists (select 1 from stage.wanted w where w.rating_key = al.artist_rating_key)"
            )
        ]

    def unknown_parents(self) -> list[str]:
        "Albums and artists of staged tracks that neither the cache nor the stage has, and not queued"
        keys = [
            r[0]
            for r in self.conn.execute(
                "select album_rating_key from stage.tracks st where album_rating_key is not null and not exists "
                "(select 1 from main.albums a where a.rating_key = st.album_rating_key) and not exists "
                "(select 1 from stage.albums a where a.rating_key = st.album_rating_key) "
                "union select artist_rating_key from stage.tracks st where artist_rating_key is not null and not exists "
                "(select 1 from main.artists a where a.rating_key = st.artist_rating_key) and not exists "
                "(select 1 from stage.artists a where a.rating_key = st.artist_rating_key)"
            )
        ]
        wanted = {r[0] for r in self.conn.execute("select rating_key from stage.wanted")}
        return [k for k in keys if k not in wanted]

    def section_counts(self, section_id: int) -> tuple[int, int]:
        "(cached tracks of the section, staged tracks of it that the cache lacks)"
        local, new = self.conn.execute(
            "select (select count(*) from main.tracks where section_id = :s), "
            "(select count(*) from stage.tracks st where st.section_id = :s and not exists "
            "(select 1 from main.tracks t where t.rating_key = st.rating_key))",
            {"s": section_id},
        ).fetchone()
        return local, new

    def section_keys(self, section_id: int) -> array:
        "The keys the section will hold before deletions (cached, and staged new ones), sorted, as integers"
        return array(
            "q",
            (
                r[0]
                for r in self.conn.execute(
                    "select cast(rating_key as integer) k from main.tracks where section_id = :s "
                    "union select cast(st.rating_key as integer) from stage.tracks st where st.section_id = :s "
                    "and not exists (select 1 from main.tracks t where t.rating_key = st.rating_key) order by k",
                    {"s": section_id},
                )
            ),
        )

    def only_cached(self, keys: list[str]) -> list[str]:
        "Those of ``keys`` the cache holds and this sync did not stage"
        out = []
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]
            marks = ",".join("?" for _ in batch)
            out += [
                r[0]
                for r in self.conn.execute(
                    f"select rating_key from main.tracks t where rating_key in ({marks}) and not exists "
                    "(select 1 from stage.tracks st where st.rating_key = t.rating_key) order by cast(rating_key as integer)",
                    batch,
                )
            ]
        return out

    def unknown_seen(self, section_id: int) -> list[str]:
        "Keys a key scan saw that neither the cache nor the stage has"
        return [
            r[0]
            for r in self.conn.execute(
                "select s.rating_key from stage.seen s where s.section_id = ? "
                "and not exists (select 1 from main.tracks t where t.rating_key = s.rating_key) "
                "and not exists (select 1 from stage.tracks st where st.rating_key = s.rating_key)",
                (section_id,),
            )
        ]

    def album_track_counts(self, section_id: int) -> dict[str, int]:
        "Tracks per album of a section, as the cache will hold them (staged tracks under their staged album)"
        return dict(
            self.conn.execute(
                "select album_rating_key, count(*) from ("
                "select t.album_rating_key from main.tracks t where t.section_id = :s and not exists "
                "(select 1 from stage.tracks st where st.rating_key = t.rating_key) "
                "union all select st.album_rating_key from stage.tracks st where st.section_id = :s"
                ") where album_rating_key is not null group by album_rating_key",
                {"s": section_id},
            )
        )

    def compare_albums(
        self, section_id: int, albums: list[str], seen: set[str]
    ) -> tuple[list[str], list[str]]:
        """For ``albums`` whose listed keys are ``seen``: (cached tracks of those
        albums not seen and not staged, seen keys neither cached nor staged)"""
        conn = self.conn
        conn.execute("create temp table album_seen (rating_key TEXT PRIMARY KEY)")
        try:
            conn.executemany(
                "insert or ignore into temp.album_seen values (?)", ((k,) for k in seen)
            )
            conn.execute("create temp table suspect_albums (rating_key TEXT PRIMARY KEY)")
            conn.executemany("insert into temp.suspect_albums values (?)", ((a,) for a in albums))
            gone = [
                r[0]
                for r in conn.execute(
                    "select t.rating_key from main.tracks t where t.section_id = ? "
                    "and t.album_rating_key in (select rating_key from temp.suspect_albums) "
                    "and not exists (select 1 from temp.album_seen s where s.rating_key = t.rating_key) "
                    "and not exists (select 1 from stage.tracks st where st.rating_key = t.rating_key)",
                    (section_id,),
                )
            ]
            unknown = [
                r[0]
                for r in conn.execute(
                    "select s.rating_key from temp.album_seen s "
                    "where not exists (select 1 from main.tracks t where t.rating_key = s.rating_key) "
                    "and not exists (select 1 from stage.tracks st where st.rating_key = s.rating_key)"
                )
            ]
        finally:
            conn.execute("drop table if exists temp.album_seen")
            conn.execute("drop table if exists temp.suspect_albums")
        return gone, unknown

    def cached_tracks(self, keys: Iterable[str]) -> set[str]:
        "Which of ``keys`` are tracks in the cache"
        keys = list(keys)
        out: set[str] = set()
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]
            out.update(
                r[0]
                for r in self.conn.execute(
                    f"select rating_key from main.tracks where rating_key in ({','.join('?' for _ in batch)})",
                    batch,
                )
            )
        return out

    def cached_tracks_of(self, keys: Iterable[str]) -> set[str]:
        "The cached tracks of the albums and artists ``keys``"
        keys = list(keys)
        out: set[str] = set()
        for i in range(0, len(keys), 500):
            marks = ",".join("?" for _ in keys[i : i + 500])
            out.update(
                r[0]
                for r in self.conn.execute(
                    f"select rating_key from main.tracks where album_rating_key in ({marks}) "
                    f"or artist_rating_key in ({marks})",
                    keys[i : i + 500] * 2,
                )
            )
        return out

    def dependents(self, key: str) -> list[tuple[str, int | None]]:
        "(track key, section) of staged or seen tracks that are ``key`` or belong to it"
        return self.conn.execute(
            "select rating_key, section_id from stage.tracks where ? in (rating_key, album_rating_key, artist_rating_key) "
            "union select rating_key, section_id from stage.seen where rating_key = ?",
            (key, key),
        ).fetchall()
