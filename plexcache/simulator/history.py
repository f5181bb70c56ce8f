"""Listening history, accounts and devices of the simulated PMS.

``GET /status/sessions/history/all`` (paged, filtered, sorted), ``GET``/``DELETE
/status/sessions/history/{id}``, ``/accounts`` and ``/devices``, in the shapes a real PMS sends
(docs/simulator.md, "Listening history", has the evidence for each choice).

The backfill is a pure function of the library's base data and ``(seed, plays)``: generated on
first use (a simulator that never serves history pays nothing), history ids 1..plays in time
order, like an autoincrement table filled as people listened. Plays added at run time
(``add_play``, ``Simulator.play_track``) get the next ids.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from random import Random

from . import names as N
from .library import BASE_TIME, EPOCH_START, QueryError

OWNER = 1  # the server owner's local account id (plexapi docs; captured /accounts)
SYSTEM = 0  # a system account with an empty name
HISTORY_PATH = "/status/sessions/history"
DAY = 86400

# (name, platform): names and the mix of empty and set platforms as in a captured /devices
_DEVICES = (("Plex Web (Firefox)", ""), ("iPhone", "iOS"), ("Plexamp", "Android"), ("Desktop", ""),
            ("Living Room", "Sonos"), ("Plex for Windows", "Windows"), ("Kitchen", ""), ("Car", "Android"),
            ("MacBook", "macOS"), ("Roku 3", ""))  # fmt: skip
# listening by hour of day (local = UTC here): low at night, peaks in the evening
_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 6, 7, 6, 5, 5, 6, 6, 5, 5, 6, 8, 10, 12, 12, 10, 7, 4)
_HOURS_CUM = []
_acc = 0
for _w in _HOUR_WEIGHTS:
    _acc += _w
    _HOURS_CUM.append(_acc)
del _acc, _w

FILTER_FIELDS = ("viewedAt", "accountID", "deviceID", "librarySectionID", "metadataItemID")
SORT_FIELDS = ("viewedAt", "accountID", "deviceID", "librarySectionID", "id")
_FILTER_KEY = re.compile(r"([A-Za-z]+)([!<>]*)")
_OPS = {"": "eq", "!": "ne", ">": "ge", ">>": "gt", "<": "le", "<<": "lt"}


def _skew_hour(rng: Random, t: int) -> int:
    "t moved to the same day at an hour drawn from _HOUR_WEIGHTS (a random minute and second)"
    day = t - t % DAY
    hour = bisect_right(_HOURS_CUM, rng.random() * _HOURS_CUM[-1])
    return day + hour * 3600 + int(rng.random() * 3600)


class History:
    """The play-event table, accounts and devices. Thread-safe under the library's lock."""

    def __init__(
        self, library, clock, plays: int = 1000, seed: int = 1, accounts: int = 4, devices: int = 6
    ):
        if plays < 0:
            raise ValueError("history plays must be >= 0")
        if accounts < 1:
            raise ValueError("history accounts must be >= 1 (the owner)")
        self.lib = library
        self._clock = clock
        self.n_backfill = int(plays)
        self.seed = seed
        self.version = 0
        self._built = False
        # one entry per play, index i is history id i + 1
        self._viewed = array("q")
        self._rk = array("q")  # 0: a track that was gone before the simulator started
        self._acct = array("q")
        self._dev = array("q")  # 0: no deviceID attribute
        self._sec = array("q")
        self._snap: dict[
            int, tuple
        ] = {}  # index -> (title, grandparentTitle, parentTitle, index, parentIndex)
        self._base_snap: dict[int, tuple] = {}  # the same for the backfill's tracks, by ratingKey
        self._gone: set[int] = set()  # DELETEd history ids
        self._cache: OrderedDict = OrderedDict()
        rng = Random(f"plexcache-accounts-{seed}")
        self._accounts: dict[int, dict] = {}
        self._devices: dict[int, dict] = {}
        self._account_devices: dict[int, list[int]] = {}
        self._account(SYSTEM, "", auto=True)
        self._account(OWNER, "plexcache")
        for _ in range(accounts - 1):
            self._account(1_000_000 + rng.randrange(9_000_000), f"{rng.choice(N.FIRST)}")
        for i in range(max(1, devices)):
            name, platform = _DEVICES[i % len(_DEVICES)]
            self._device(i + 1, name, platform, EPOCH_START + int(rng.random() * (BASE_TIME - EPOCH_START - 400 * DAY)),
                         rng)  # fmt: skip
        ids = sorted(self._devices)
        for aid in self._accounts:
            if aid == SYSTEM:
                continue
            k = min(len(ids), 4 if aid == OWNER else 1 + rng.randrange(2))
            self._account_devices[aid] = rng.sample(ids, k)

    # -----------------------------------------------------------------------------------------
    # accounts and devices

    def _account(self, aid: int, name: str, auto: bool = False) -> dict:
        a = {"id": aid, "key": f"/accounts/{aid}", "name": name, "defaultAudioLanguage": "en",
             "autoSelectAudio": auto, "defaultSubtitleLanguage": "en", "subtitleMode": 1 if auto else 0,
             "thumb": ""}  # fmt: skip
        self._accounts[aid] = a
        return a

    def _device(self, did: int, name: str, platform: str, created: int, rng: Random) -> dict:
        if platform == "Android":
            ident = f"{rng.getrandbits(64):016x}-com-plexapp-android"
        elif platform in ("iOS", "Windows", "macOS", ""):
            h = f"{rng.getrandbits(128):032X}"
            ident = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        else:
            ident = f"{rng.getrandbits(52):x}"[:11]
        d = {
            "id": did,
            "name": name,
            "platform": platform,
            "clientIdentifier": ident,
            "createdAt": created,
        }
        self._devices[did] = d
        return d

    def accounts(self) -> list[dict]:
        with self.lib.lock:
            return [dict(a) for a in sorted(self._accounts.values(), key=lambda a: a["id"])]

    def devices(self) -> list[dict]:
        with self.lib.lock:
            return [dict(d) for d in sorted(self._devices.values(), key=lambda d: d["id"])]

    def add_account(self, name: str, id: int | None = None) -> dict:  # noqa: A002
        with self.lib.lock:
            aid = int(id) if id is not None else max(self._accounts) + 1
            if aid in self._accounts:
                raise ValueError(f"account {aid} exists")
            a = self._account(aid, str(name))
            self._account_devices[aid] = sorted(self._devices)[:1]
            self.version += 1
            self._cache.clear()
            return dict(a)

    def add_device(self, name: str, platform: str = "", client_identifier: str | None = None,
                   account_id: int | None = None) -> dict:  # fmt: skip
        with self.lib.lock:
            did = max(self._devices) + 1
            d = self._device(did, str(name), str(platform), self._clock(), Random(f"device-{did}"))
            if client_identifier:
                d["clientIdentifier"] = str(client_identifier)
            if account_id is not None:
                self._account_devices.setdefault(int(account_id), []).insert(0, did)
            self.version += 1
            self._cache.clear()
            return dict(d)

    def device_for(self, account_id: int) -> dict:
        ids = self._account_devices.get(int(account_id)) or sorted(self._devices)
        return self._devices[ids[0]]

    # -----------------------------------------------------------------------------------------
    # the backfill

    def _build(self) -> None:
        "Generate the backfill (once). Caller holds the library lock."
        if self._built:
            return
        self._built = True
        n = self.n_backfill
        if n == 0:
            return
        lib = self.lib
        rng = Random(f"plexcache-history-{self.seed}-{n}")
        music = set(lib.music_section_ids())
        # a pool of whole albums (people play albums), about one track for every two plays
        albums = [j for j in range(len(lib._alb_key)) if lib._art_sec[lib._alb_art[j]] in music]
        rng.shuffle(albums)
        target = min(60_000, max(200, n // 2))
        pool = []  # (key, album idx, pos, viewCount, lastViewedAt, addedAt, duration)
        for j in albums:
            ak = lib._alb_key[j]
            names = (lib._artist_base(lib._alb_art[j])["title"], lib._album_base(j)["title"])
            for pos in range(1, lib._alb_n[j] + 1):
                t = lib._track_base(ak + pos, j, pos)
                pool.append(
                    (
                        ak + pos,
                        j,
                        pos,
                        t["viewCount"],
                        t["lastViewedAt"],
                        t["addedAt"],
                        t["duration"],
                    )
                )
                self._base_snap[ak + pos] = (t["title"], *names, t["index"], t["parentIndex"])
            if len(pool) >= target:
                break
        plays = []  # (viewedAt, key, account, device, section, snapshot or None)
        others = [a for a in self._accounts if a not in (SYSTEM, OWNER)]
        n_ghost = n // 50 if pool else n
        n_owner = round((n - n_ghost) * (0.6 if others else 1.0))
        # the owner: a track's plays never outnumber its viewCount, and its newest is its lastViewedAt
        played = [p for p in pool if p[3] > 0]
        if played and n_owner:
            picks = Counter(
                rng.choices(range(len(played)), weights=[p[3] for p in played], k=n_owner)
            )
            for i, c in sorted(picks.items()):
                key, j, _pos, vc, last, added, _dur = played[i]
                c = min(c, vc)
                times = [last] + sorted(min(last, max(added, _skew_hour(rng, added + int(rng.random() * (last - added)))))
                                        for _ in range(c - 1))  # fmt: skip
                for t in times:
                    plays.append(
                        (t, key, OWNER, self._pick_device(rng, OWNER), self._section(j), None)
                    )
        # other accounts: sessions of consecutive tracks of an album, each account with its own taste
        rest = n - n_ghost - len(plays)
        if pool and rest > 0:
            if not others:
                others = [OWNER]
            tastes = {}
            for a in others:
                order = list(range(len(pool)))
                Random(f"taste-{self.seed}-{a}").shuffle(order)
                cum, total = [], 0.0
                for r in range(len(order)):  # Zipf-like: an account plays its favourites most
                    total += 1.0 / (r + 1) ** 0.9
                    cum.append(total)
                tastes[a] = (order, cum)
            acct_weights = [1.0 / (i + 1) for i in range(len(others))]
            while rest > 0:
                a = rng.choices(others, weights=acct_weights)[0]
                order, cum = tastes[a]
                i = order[min(len(order) - 1, bisect_left(cum, rng.random() * cum[-1]))]
                key, j, pos, _vc, _last, added, _dur = pool[i]
                span = BASE_TIME - added
                t = _skew_hour(
                    rng, added + int(span * rng.random() ** 0.6)
                )  # more plays in later years
                dev = self._pick_device(rng, a)
                ak, count = lib._alb_key[j], lib._alb_n[j]
                for p in range(pos, min(count, pos + 1 + int(rng.random() * 8)) + 1):
                    if rest <= 0 or t > BASE_TIME:
                        break
                    plays.append((t, ak + p, a, dev, self._section(j), None))
                    rest -= 1
                    t += 200 + int(rng.random() * 120)
        # a few movie plays: the history holds every section's plays (filter by librarySectionID)
        for _ in range(min(n - len(plays), n // 100)):
            key = rng.choice(lib.movie_keys)
            movie = lib._movies[key]
            t = _skew_hour(
                rng, movie["addedAt"] + int(rng.random() * (BASE_TIME - movie["addedAt"]))
            )
            plays.append((t, key, OWNER, self._pick_device(rng, OWNER), lib.movie_section,
                          (movie["title"], None, None, None, None)))  # fmt: skip
        # tracks deleted before the simulator started: entries with titles and no keys
        for _ in range(n - len(plays)):
            t = _skew_hour(
                rng, EPOCH_START + int(rng.random() * (BASE_TIME - EPOCH_START - 200 * DAY))
            )
            a = rng.choice([OWNER] + others)
            title = " ".join(rng.choice(N.WORDS).title() for _ in range(1 + rng.randrange(3)))
            snap = (title, f"{rng.choice(N.FIRST)} {rng.choice(N.LAST)}", f"{rng.choice(N.ADJ)} {rng.choice(N.NOUN)}",
                    1 + rng.randrange(12), 1)  # fmt: skip
            plays.append((t, 0, a, self._pick_device(rng, a), min(music), snap))
        plays.sort(key=lambda p: (p[0], p[1], p[2]))
        for i, (t, key, a, dev, sec, snap) in enumerate(plays):
            self._append(t, key, a, dev, sec)
            if snap is not None:
                self._snap[i] = snap

    def _section(self, album_idx: int) -> int:
        return self.lib._art_sec[self.lib._alb_art[album_idx]]

    def _pick_device(self, rng: Random, account: int) -> int:
        if rng.random() < 0.01:  # older entries in a captured history carry no deviceID
            return 0
        ids = self._account_devices.get(account) or [1]
        return ids[min(len(ids) - 1, int(rng.random() ** 2 * len(ids)))]

    def _append(self, t, key, account, device, section) -> int:
        self._viewed.append(int(t))
        self._rk.append(int(key))
        self._acct.append(int(account))
        self._dev.append(int(device))
        self._sec.append(int(section))
        return len(self._viewed)

    # -----------------------------------------------------------------------------------------
    # mutations

    def add_play(self, key, account_id: int = OWNER, device_id: int | None = None,
                 viewed_at: int | None = None) -> int:  # fmt: skip
        """Record a play of a live track; returns its history id. ``viewed_at`` may lie in the
        past (an offline Plexamp play uploaded later). Does not touch the track's play state:
        ``Simulator.play_track`` does that for the owner."""
        with self.lib.lock:
            self._build()
            account_id = int(account_id)
            if account_id not in self._accounts:
                raise KeyError(f"no account {account_id}")
            if device_id is None:
                device_id = self.device_for(account_id)["id"]
            elif int(device_id) not in self._devices:
                raise KeyError(f"no device {device_id}")
            rec = self.lib.record(int(key))
            if rec is None or rec["type"] != "track":
                raise KeyError(f"no live track with ratingKey {key}")
            t = self._clock() if viewed_at is None else int(viewed_at)
            hid = self._append(t, int(key), account_id, int(device_id), rec["librarySectionID"])
            self._snap[hid - 1] = (rec["title"], rec["grandparentTitle"], rec["parentTitle"], rec["index"],
                                   rec["parentIndex"])  # fmt: skip
            self.version += 1
            self._cache.clear()
            return hid

    def delete(self, history_id) -> bool:
        with self.lib.lock:
            self._build()
            hid = int(history_id)
            if not 1 <= hid <= len(self._viewed) or hid in self._gone:
                return False
            self._gone.add(hid)
            self.version += 1
            self._cache.clear()
            return True

    # -----------------------------------------------------------------------------------------
    # reading

    def count(self) -> int:
        with self.lib.lock:
            self._build()
            return len(self._viewed) - len(self._gone)

    def _live_fields(self, key: int) -> dict | None:
        """The fields of a live track an entry shows (key, ratingKey, parent keys, thumbs): read
        from its album's cached record, without generating the track. None when it is gone."""
        lib = self.lib
        if not key or key in lib._deleted:
            return None
        if key in lib._added or key in lib._movies:
            rec = lib.record(key)
            return rec if rec is not None and rec["type"] in ("track", "movie") else None
        kind = lib._base_kind(key)
        if kind is None or kind[0] != "track":
            return None
        album = lib._album_rec(lib._alb_key[kind[1]])
        ctx = album.get("_track_fields")
        if ctx is None:
            ctx = album["_track_fields"] = lib._track_fields(album)
        return dict(ctx, key=f"/library/metadata/{key}", ratingKey=str(key))

    def entry(self, i: int) -> dict:
        """The attributes of the entry at index i, in PMS order. A played item that is gone keeps
        its entry with titles but without key, ratingKey, parent keys or thumbs."""
        key = self._rk[i]
        rec = self._live_fields(key)
        title, artist, album, index, disc = self._snap.get(i) or self._base_snap[key]
        movie = self._sec[i] == self.lib.movie_section  # a <Video>, as in the captured history
        a = {"historyKey": f"{HISTORY_PATH}/{i + 1}"}
        if rec is not None:
            a["key"] = rec["key"]
            a["ratingKey"] = rec["ratingKey"]
        a["librarySectionID"] = str(self._sec[i])
        if rec is not None and not movie:
            a["parentKey"] = rec["parentKey"]
            a["grandparentKey"] = rec["grandparentKey"]
        a["title"] = title
        if movie:
            a["type"] = "movie"
            if rec is not None:
                a["thumb"] = rec["thumb"]
                a["originallyAvailableAt"] = f"{rec['year']}-01-01"
        else:
            a["grandparentTitle"] = artist
            a["parentTitle"] = album
            a["type"] = "track"
            if rec is not None:
                for f in ("thumb", "parentThumb", "grandparentThumb", "grandparentArt"):
                    if rec.get(f):
                        a[f] = rec[f]
            if index:
                a["index"] = index
            if disc:
                a["parentIndex"] = disc
        a["viewedAt"] = self._viewed[i]
        a["accountID"] = self._acct[i]
        if self._dev[i]:
            a["deviceID"] = self._dev[i]
        return a

    def entries(self, **params) -> list[dict]:
        "Ground truth for tests: every entry (attributes as served), oldest id first; params filter like the endpoint"
        with self.lib.lock:
            _, idx = self.query(list(params.items()), None, None, None)
            return [self.entry(i) for i in idx]

    def query(self, params, scope_account, start, size):
        """(total, indices of the page) for the endpoint's query parameters; ``scope_account``
        restricts to one account (a managed user's token)."""
        with self.lib.lock:
            self._build()
            qs = [
                (k, v)
                for k, v in params
                if not k.startswith(("X-Plex-", "x-plex-", "include", "exclude"))
            ]
            ck = (tuple(qs), scope_account, self.version, self.lib.version)
            idx = self._cache.get(ck)
            if idx is None:
                idx = self._select(qs, scope_account)
                self._cache[ck] = idx
                while len(self._cache) > 8:
                    self._cache.popitem(last=False)
            s = start or 0
            e = len(idx) if size is None else min(len(idx), s + size)
            return len(idx), idx[s:e]

    def _select(self, qs, scope_account) -> list[int]:
        now = self._clock()
        tests = []
        sort = None
        for k, v in qs:
            if k == "sort":
                sort = v
                continue
            m = _FILTER_KEY.fullmatch(k)
            if not m or m.group(1) not in FILTER_FIELDS or m.group(2) not in _OPS:
                self.lib.unknown_filters[k] += 1
                continue
            field, op = m.group(1), _OPS[m.group(2)]
            if field == "viewedAt":
                vals = [self.lib.parse_date(x, now) for x in v.split(",")]
            elif field == "metadataItemID":
                vals = self._item_tracks(v)
            else:
                try:
                    vals = [int(x) for x in v.split(",")]
                except ValueError:
                    raise QueryError(f"bad {field} value {v!r}") from None
            tests.append((field, op, vals))
        if scope_account is not None:
            tests.append(("accountID", "eq", [scope_account]))
        cols = {"viewedAt": self._viewed, "accountID": self._acct, "deviceID": self._dev,
                "librarySectionID": self._sec, "metadataItemID": self._rk}  # fmt: skip
        idx = [i for i in range(len(self._viewed)) if i + 1 not in self._gone]
        for field, op, vals in tests:
            col = cols[field]
            if op in ("eq", "ne"):
                want = set(vals)
                idx = [i for i in idx if (col[i] in want) == (op == "eq")]
            else:
                x = vals[0]
                if op == "ge":
                    idx = [i for i in idx if col[i] >= x]
                elif op == "gt":
                    idx = [i for i in idx if col[i] > x]
                elif op == "le":
                    idx = [i for i in idx if col[i] <= x]
                else:
                    idx = [i for i in idx if col[i] < x]
        if sort:
            # ties break by ascending history id (the list is in id order and sorts are stable)
            for part in reversed([p.strip() for p in sort.split(",") if p.strip()]):
                name, _, direction = part.partition(":")
                if name not in SORT_FIELDS:
                    continue
                col = None if name == "id" else cols[name]
                idx.sort(
                    key=(lambda i: i) if col is None else col.__getitem__,
                    reverse=direction == "desc",
                )
        return idx

    def _item_tracks(self, value: str) -> list[int]:
        "metadataItemID=K: the track (or movie) K, or the live tracks of album or artist K"
        out = []
        for part in value.split(","):
            try:
                k = int(part)
            except ValueError:
                raise QueryError(f"bad metadataItemID {part!r}") from None
            rec = self.lib.record(k)
            if rec is None:
                continue
            if rec["type"] in ("track", "movie"):
                out.append(k)
            elif rec["type"] == "album":
                out.extend(self.lib.album_track_keys(k))
            elif rec["type"] == "artist":
                for ak in self.lib.artist_album_keys(k):
                    out.extend(self.lib.album_track_keys(ak))
        return out


# ---------------------------------------------------------------------------------------------
# the HTTP side (called from server.Handler._route)


def _element(attrs: dict) -> tuple:
    return ("Video" if attrs["type"] == "movie" else "Track", attrs, [])


def route(handler, path: str, params):
    """Answer /status/sessions/history..., /accounts and /devices, or None for other paths.
    ``handler`` is the server's request handler (token, paging, output helpers)."""
    p = path.rstrip("/")
    m = re.fullmatch(r"/status/sessions/history/(all|\d+)", p)
    if not m and p not in ("/accounts", "/devices"):
        return None
    sim = handler.server.sim
    account = handler._token_account(params)
    if account is None:
        return handler._unauthorized()
    hist: History = sim.history
    managed = account != OWNER
    if managed and sim.managed_history != "own":
        return (
            int(sim.managed_history),
            handler._html_error(int(sim.managed_history)),
            "text/html",
            {},
        )
    method = handler.command
    if m and m.group(1) != "all":
        if managed:  # a single entry (GET, DELETE) is for admins (PMS API spec)
            return handler._unauthorized()
        hid = int(m.group(1))
        if method == "DELETE":
            if not hist.delete(hid):
                return handler._not_found()
            return handler._out(("MediaContainer", {"size": 0}, []))
        if method not in ("GET", "HEAD"):
            return handler._not_found()
        with sim.library.lock:
            hist._build()
            if not 1 <= hid <= len(hist._viewed) or hid in hist._gone:
                return handler._not_found()
            item = _element(hist.entry(hid - 1))
        return handler._out(("MediaContainer", {"size": 1}, [item]))
    if method not in ("GET", "HEAD"):
        return handler._not_found()
    if p == "/accounts":
        with sim.library.lock:
            accts = [a for a in hist.accounts() if not managed or a["id"] == account]
        items = [("Account", a, []) for a in accts]
        return handler._out(("MediaContainer", {"size": len(items), "identifier": "com.plexapp.system.accounts"},
                             items))  # fmt: skip
    if p == "/devices":
        with sim.library.lock:
            devs = hist.devices()
            if managed:
                mine = set(hist._account_devices.get(account, ()))
                devs = [d for d in devs if d["id"] in mine]
        items = [("Device", d, []) for d in devs]
        return handler._out(("MediaContainer", {"size": len(items), "identifier": "com.plexapp.system.devices"},
                             items))  # fmt: skip
    start, size = handler._paging(params)
    with sim.library.lock:
        total, page = hist.query(params, account if managed else None, start, size)
        items = [_element(hist.entry(i)) for i in page]
    paged = start is not None or size is not None
    size_attrs, extra = handler._size_attrs(len(items), total, start, paged)
    return handler._out(("MediaContainer", size_attrs, items), "Metadata", extra)


__all__ = ["History", "OWNER", "SYSTEM", "route"]
