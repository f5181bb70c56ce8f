"""PlexSource against the simulator over real HTTP: keyset paging with the
lookahead (the next page is asked for from the raw bytes of the previous
one, before it is parsed), metadata batches, and the fast row and timestamp
conversions checked against the straightforward versions they replaced."""

from __future__ import annotations

import json
import math
import random
import re
import time
import xml.etree.ElementTree as ET

import pytest
from relutil import RawServer, http_response

from plexcache.config import PlexConfig
from plexcache.errors import PlexError
from plexcache.plex import LISTING_TRIM, METADATA_TRIM, TRACK, PlexSource, _next_after
from plexcache.plex.rows import BadItem, track_row
from plexcache.timeutil import MAX_EPOCH, epoch_to_iso

PAGES_OF_SECTION_1 = r"/library/sections/1/all\?.*sort=id"


def source(sim, **kwargs) -> PlexSource:
    kwargs.setdefault("retries", 3)
    return PlexSource(PlexConfig(url=sim.url, token=sim.token, timeout=10), **kwargs)


def listed(src: PlexSource, section_id: int = 1, **kwargs) -> list[str]:
    keys = []
    for items, _total in src.pages(section_id, TRACK, **kwargs):
        keys.extend(el.get("ratingKey") for el in items)
    return keys


def expected_keys(sim, section_id: int = 1) -> list[str]:
    return sorted(sim.library.track_keys(section_id), key=int)


# -- keyset paging with the lookahead -------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 64, 1000])
def test_pages_list_every_track_once_in_order(sim_factory, page_size):
    sim = sim_factory(tracks=500)
    want = expected_keys(sim)
    with source(sim, page_size=page_size) as src:
        sim.reset_counts()
        assert listed(src) == want
        # A final partial page ends the listing: no request wasted past it.
        assert sim.request_counts == {"all": math.ceil(len(want) / page_size)}
        assert src.requests == sim.total_requests


def test_pages_whose_size_divides_the_section(sim_factory):
    """The last page is full and says nothing is left: the lookahead stops
    there, and ``complete`` checks the end with one count."""
    sim = sim_factory(tracks=500)
    want = expected_keys(sim)
    size = next(d for d in range(len(want) // 3, 0, -1) if len(want) % d == 0)
    with source(sim, page_size=size) as src:
        sim.reset_counts()
        assert listed(src) == want
        assert sim.request_counts == {"all": len(want) // size}
        sim.reset_counts()
        before = src.requests
        assert listed(src, complete=True) == want
        assert sim.request_counts == {"all": len(want) // size + 1}  # + the count
        assert src.requests - before == sim.total_requests


def test_next_page_is_asked_for_while_the_caller_holds_the_previous(sim_factory):
    """The chain is broken: the request for page n+1 reaches Plex while the
    caller still has page n (and nothing after the last page)."""
    sim = sim_factory(tracks=500)
    want = expected_keys(sim)
    size = 60
    pages = math.ceil(len(want) / size)
    with source(sim, page_size=size) as src:
        sim.reset_counts()
        got = []
        for n, (items, _) in enumerate(src.pages(1, TRACK), start=1):
            got.extend(el.get("ratingKey") for el in items)
            if n < pages:
                deadline = time.monotonic() + 10
                while sim.request_counts.get("all", 0) < n + 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                # (up to two pages ahead: one waiting for us, one being fetched)
                assert n + 1 <= sim.request_counts.get("all", 0) <= n + 2, (
                    f"page {n + 1} not asked for during page {n}"
                )
        assert got == want
        time.sleep(0.1)
        assert sim.request_counts == {"all": pages}


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "truncate", "nth": 3},
        {"kind": "malformed", "nth": 3},
        {"kind": "malformed", "nth": 1},
        {"kind": "truncate", "nth": 8},  # the last page
        {"kind": "malformed", "nth": 8},
        {"kind": "malformed", "nth": 2, "times": 3},  # three attempts in a row
        {"kind": "drop", "nth": 4},
        {"kind": "status", "nth": 5, "status": 503},
    ],
    ids=lambda f: "-".join(str(v) for v in f.values()),
)
def test_pages_with_a_faulty_page(sim_factory, fault):
    sim = sim_factory(tracks=500)
    want = expected_keys(sim)
    size = 60
    assert math.ceil(len(want) / size) == 8
    sim.inject_fault(path=PAGES_OF_SECTION_1, **fault)
    with source(sim, page_size=size) as src:
        sim.reset_counts()
        assert listed(src) == want
        assert sim.faults[0]["fired"] == fault.get("times", 1)
        # every request the lookahead made is over and counted on both sides
        assert src.requests == sim.total_requests
        # the retries, and no request on a guess from a broken body
        assert sim.total_requests == 8 + fault.get("times", 1)


def test_a_fault_that_outlasts_the_retries_fails_the_listing(sim_factory):
    sim = sim_factory(tracks=500)
    sim.inject_fault("malformed", path=PAGES_OF_SECTION_1, nth=2, times=10)
    with source(sim, page_size=60, retries=2) as src:
        with pytest.raises(PlexError, match="malformed"):
            listed(src)
        assert sim.faults[0]["fired"] == 3
        assert src.requests == sim.total_requests


def test_a_wrong_guess_is_thrown_away(sim_factory):
    """A page whose last item is not its highest key (a server that does not
    sort): the raw-bytes guess is wrong, the parse corrects it, and paging
    goes on after the real last key as if there had been no lookahead."""
    sim = sim_factory(tracks=500)
    want = expected_keys(sim)
    size = 60
    with source(sim, page_size=size) as src:
        page2 = src.session.get(
            sim.url + "/library/sections/1/all",
            params={"type": TRACK, "sort": "id", **LISTING_TRIM, "track.id>>": want[size - 1]},
            headers={"X-Plex-Container-Start": "0", "X-Plex-Container-Size": str(size)},
        ).content
        items = re.findall(rb"<Track .*?</Track>", page2, re.S)
        assert len(items) == size
        shuffled = page2.replace(items[-1], b"").replace(items[-2], items[-1] + b"\n" + items[-2])
        guess = _next_after(shuffled)
        assert guess == int(want[2 * size - 2])  # the second-highest key: wrong
        sim.inject_fault("body", path=PAGES_OF_SECTION_1, nth=2, body=shuffled)
        sim.reset_counts()
        got = listed(src)
        assert (
            got
            == want[:size]
            + want[size : 2 * size - 2]
            + [want[2 * size - 1], want[2 * size - 2]]
            + want[2 * size :]
        )
        # the request(s) sent on the wrong guess (one, or two if the
        # lookahead went on before the parse caught it) are waited for and counted
        assert sim.request_counts["all"] - math.ceil(len(want) / size) in (1, 2)
        assert src.requests == sim.total_requests


def test_a_server_that_never_sorts_pages_stops_the_guessing():
    """Every page ends on its second-highest key: after a couple of wrong
    guesses the lookahead stops guessing (each cost a request or two), and
    the listing is still complete. Not Plex: a loopback server that pages
    by key but shuffles each page."""
    keys = list(range(1, 201))
    size = 10
    served = []

    def handler(conn, request, stop):
        line = request.split(b"\r\n", 1)[0].decode()
        after = re.search(r"track\.id%3E%3E=(\d+)", line)
        rest = [k for k in keys if after is None or k > int(after.group(1))]
        page = rest[:size]
        if len(page) > 1:
            page[-1], page[-2] = page[-2], page[-1]
        served.append(after and int(after.group(1)))
        items = "".join(f'<Track ratingKey="{k}" title="t{k}"/>' for k in page)
        body = (
            f'<MediaContainer size="{len(page)}" totalSize="{len(rest)}">{items}</MediaContainer>'
        )
        conn.sendall(http_response(body.encode(), headers={"Content-Type": "text/xml"}))

    with RawServer(handler) as server:
        src = PlexSource(PlexConfig(url=server.url, token="t", timeout=10), page_size=size)
        got = listed(src)
    pages = len(keys) // size
    assert sorted(map(int, got)) == keys and len(got) == len(keys)
    assert src.requests == len(served)
    assert pages <= len(served) <= pages + 2 * 2, served  # MAX_WRONG_GUESSES, one or two each


def test_empty_section(sim_factory):
    sim = sim_factory(tracks=500)
    sim.delete_tracks(sim.library.track_keys(2))
    with source(sim) as src:
        sim.reset_counts()
        assert list(src.pages(2, TRACK)) == [([], 0)]
        assert sim.request_counts == {"all": 1}
        assert [(items, total) for items, total in src.pages(2, TRACK, complete=True)] == [([], 0)]
        assert sim.request_counts == {"all": 3}  # + the count that confirms it
        assert src.requests == sim.total_requests


def test_listing_with_a_filter_and_other_types(sim_factory):
    """The lookahead carries filters and extra parameters along, and works
    for album listings (``<Directory>`` items) too."""
    sim = sim_factory(tracks=500)
    with source(sim, page_size=9) as src:
        sim.reset_counts()
        albums = []
        for items, _ in src.pages(1, 9):
            albums.extend(el.get("ratingKey") for el in items)
        assert albums == sorted(sim.library.album_keys(1), key=int)
        assert sim.request_counts == {"all": math.ceil(len(albums) / 9)}
        some = albums[:5]
        tracks = listed(src, filters={"album.id": ",".join(some)}, page_size=4)
        want = sorted((k for a in some for k in sim.library.album_track_keys(int(a))), key=int)
        assert tracks == [str(k) for k in want]
        assert src.requests == sim.total_requests
        assert not sim.unknown_filters


def test_closing_the_listing_early_leaves_nothing_in_flight(sim_factory):
    sim = sim_factory(tracks=500)
    with source(sim, page_size=50) as src:
        sim.reset_counts()
        pages = src.pages(1, TRACK)
        next(pages)
        next(pages)
        pages.close()
        # what the lookahead asked for (pages 3 and maybe 4) was waited for: both sides agree
        assert src.requests == sim.total_requests
        assert sim.total_requests in (3, 4)


# -- metadata batches -----------------------------------------------------------------


def test_metadata_batches_in_order_with_faults(sim_factory):
    sim = sim_factory(tracks=500)
    keys = sim.library.album_keys() + sim.library.artist_keys()
    gone = [str(k) for k in range(999_990, 1_000_000)]  # a batch of keys nobody has: 404, skipped
    asked = keys[:20] + gone + keys[20:]
    sim.inject_fault("status", path=r"/library/metadata/", nth=2, status=500)
    # Batches go out up to three at a time, so "the 5th request" is not a fixed batch: a
    # malformed 200 landing on the 404 batch would be an HTML page (not Plex). Name the batch.
    sim.inject_fault("malformed", path=re.escape(f"/library/metadata/{asked[40]},"))
    with source(sim, batch_size=10) as src:
        sim.reset_counts()
        got = [el.get("ratingKey") for batch in src.metadata(asked) for el in batch]
        assert got == keys
        batches = math.ceil(len(asked) / 10)
        assert sim.request_counts == {"metadata": batches + 2}
        assert src.requests == sim.total_requests
        assert list(src.metadata([])) == []


# -- the raw-bytes guess --------------------------------------------------------------


def page(total, keys, tag="Track") -> bytes:
    items = "".join(
        f'<{tag} ratingKey="{k}" title="t&lt;{k}&gt;" parentRatingKey="7"><Media bitrate="1"/></{tag}>\n'
        for k in keys
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<MediaContainer size="{len(keys)}" totalSize="{total}" '
        f'offset="0" title1="a &gt; b">\n{items}</MediaContainer>\n'
    ).encode()


def test_next_after_reads_the_last_key():
    assert _next_after(page(10, [3, 5, 8])) == 8
    assert _next_after(page(10, [3, 5, 8], tag="Directory")) == 8
    assert _next_after(page(3, [3, 5, 8])) is None  # everything announced is here
    assert _next_after(page(2, [3, 5, 8])) is None
    assert _next_after(page(0, [])) is None
    assert _next_after(page(5, [])) is None  # empty: nothing to go on from
    assert _next_after(page(10, [3, 5, "08"])) is None  # not a canonical key
    assert _next_after(page(10, [3, 5, "1" * 19])) is None  # too long to trust
    assert _next_after(page(10, [3, 5, "x"])) is None
    assert _next_after(page(10, [3, 5, 8]).replace(b' totalSize="10"', b"")) is None
    assert _next_after(b"") is None
    assert _next_after(b"<html><body>Welcome</body></html>") is None
    assert (
        _next_after(b'{"MediaContainer": {"totalSize": 10, "Metadata": [{"ratingKey": "8"}]}}')
        is None
    )
    body = page(10, [3, 5, 8])
    cut = body[: body.rindex(b'ratingKey="8"') + len(b'ratingKey="8')]
    assert _next_after(cut) is None  # a truncated body that ends inside the key
    cut = body[: body.index(b"</Track>", body.index(b'ratingKey="5"')) + 8]
    assert _next_after(cut) is None  # a cut body: no guess
    assert _next_after(cut + b"</MediaContainer>") == 5
    assert _next_after(body.rstrip() + b"\r\n\n  ") == 8


def test_next_after_on_real_pages(sim_factory):
    sim = sim_factory(tracks=500)
    want = expected_keys(sim)
    with source(sim) as src:
        for size, expected in ((100, int(want[99])), (len(want), None)):
            for encoding in ("gzip", "identity"):
                response = src.session.get(
                    sim.url + "/library/sections/1/all",
                    params={"type": TRACK, "sort": "id", **LISTING_TRIM},
                    headers={
                        "X-Plex-Container-Start": "0",
                        "X-Plex-Container-Size": str(size),
                        "Accept-Encoding": encoding,
                    },
                )
                assert _next_after(response.content) == expected, (size, encoding)


# -- track_row and epoch_to_iso against the versions they replaced ---------------------


def reference_epoch_to_iso(value):
    "plexcache.timeutil.epoch_to_iso before it was made faster"
    if value in (None, "", 0, "0"):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        try:
            seconds = int(float(value))
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds <= 0 or seconds > 32503680000:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def epoch_values() -> list:
    rng = random.Random(7)
    values = [None, "", 0, "0", "00", "-0", 1, "1", -1, "-1", 59, 60, 86399, 86400, 86401, 951782400,
              951868799, 951868800, 4107456000, 4107542400, 2**31 - 1, 2**31, 2**32, MAX_EPOCH - 1,
              MAX_EPOCH, MAX_EPOCH + 1, 10**20, "1e9", "1.5", "1770287400.9", " 1770287400 ", "+1770287400",
              "1_770_287_400", "١٧٧٠٢٨٧٤٠٠", "nan", "inf", "-inf", "abc", "0x10", 1.5, 1770287400.0,
              float("nan"), True, False, b"1770287400", [], "01770287400", "9" * 30]  # fmt: skip
    # every second of two days (one of them a leap day), and random ones over the whole range
    values += range(951782400 - 5, 951782400 + 2 * 86400 + 5, 7)
    values += [rng.randint(1, MAX_EPOCH) for _ in range(50_000)]
    values += [str(rng.randint(1, 2_000_000_000)) for _ in range(50_000)]
    return values


def test_epoch_to_iso_is_byte_identical_to_strftime():
    for value in epoch_values():
        try:
            want = reference_epoch_to_iso(value)
        except Exception as e:  # noqa: BLE001 - the same failure is expected
            with pytest.raises(type(e)):
                epoch_to_iso(value)
            continue
        assert epoch_to_iso(value) == want, value
    with pytest.raises(OverflowError):  # as before: int(inf) is not caught
        epoch_to_iso(float("inf"))


def reference_track_row(el, section_id):
    "plexcache.rows.track_row before it was made faster, with its helpers (listed_genres: the count shown)"

    def text(value):
        if value is None:
            return None
        value = value.strip()
        return value[:2000] if value else None

    def int_or_none(value, lo=0, hi=None):
        if value is None or value == "":
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            try:
                number = int(float(value))
            except (TypeError, ValueError, OverflowError):
                return None
        if lo is not None and number < lo:
            return None
        if hi is not None and number > hi:
            return None
        if not -(2**63 - 1) <= number <= 2**63 - 1:
            return None
        return number

    def tags(el, tag):
        seen = []
        for child in el.findall(tag):
            name = text(child.get("tag"))
            if name and name not in seen:
                seen.append(name)
        return seen

    def user_rating(value):
        if value in (None, ""):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not 0 <= number <= 10:
            return None
        return int(round(number))

    def rating_key(value):
        if value is None:
            return None
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or value[0] == "0" or int(value) > 2**63 - 1:
            return None
        return value

    a = el.attrib
    key = rating_key(a.get("ratingKey"))
    if key is None:
        raise BadItem("track without a valid ratingKey")
    title = text(a.get("title"))
    if title is None:
        raise BadItem(f"track {key} has no title")
    own_genres = tags(el, "Genre")
    media = el.find("Media")
    section = int_or_none(a.get("librarySectionID")) or section_id
    return (
        key, title, text(a.get("originalTitle")), text(a.get("grandparentTitle")), text(a.get("parentTitle")),
        int_or_none(a.get("parentYear"), 1, 3000), int_or_none(a.get("year"), 1, 3000),
        json.dumps(own_genres, ensure_ascii=False) if own_genres else None, len(own_genres),
        int_or_none(a.get("duration"), 1, 10**10), user_rating(a.get("userRating")),
        reference_epoch_to_iso(a.get("updatedAt")), int_or_none(a.get("index"), 0, 100000),
        int_or_none(a.get("parentIndex"), 0, 100000), int_or_none(a.get("viewCount"), 0) or 0,
        int_or_none(a.get("skipCount"), 0) or 0, reference_epoch_to_iso(a.get("lastViewedAt")),
        reference_epoch_to_iso(a.get("lastRatedAt")), reference_epoch_to_iso(a.get("addedAt")),
        text(media.get("audioCodec")) if media is not None else None,
        int_or_none(media.get("bitrate"), 0) if media is not None else None,
        rating_key(a.get("parentRatingKey")), rating_key(a.get("grandparentRatingKey")), section,
    )  # fmt: skip


def same_row(el, section_id=1):
    try:
        want = reference_track_row(el, section_id)
    except BadItem as e:
        with pytest.raises(BadItem) as got:
            track_row(el, section_id)
        assert str(got.value) == str(e)
        return
    assert track_row(el, section_id) == want, ET.tostring(el)


def test_track_row_matches_the_reference_on_simulated_tracks(sim_factory):
    sim = sim_factory(tracks=3000)
    with source(sim) as src:
        n = 0
        for sid in (1, 2):
            for trim in (LISTING_TRIM, {}):
                root = src.get(f"/library/sections/{sid}/all", {"type": TRACK, **trim})
                for el in root:
                    same_row(el, sid)
                    same_row(el, None)
                    n += 1
        keys = sim.library.track_keys()[::7]
        for batch in src.metadata(keys):
            for el in batch:
                same_row(el, None)
                n += 1
        assert n > 6000


ODD_VALUES = ["", " ", "0", "00", "007", "-3", "+3", " 12 ", "1_000", "8.0", "8.6", "1e3", "1e400", "nan", "inf",
              "-inf", "١٢٣", "²", "x", "3000", "3001", "10000000000", "10000000001", "100000", "100001",
              "9223372036854775807", "9223372036854775808", "99999999999999999999", "32503680000", "32503680001",
              "1770287400", "10.5", "-0.4", "\u00a0", "\t5\n"]  # fmt: skip
TRACK_ATTRS = ["ratingKey", "title", "originalTitle", "grandparentTitle", "parentTitle", "parentYear", "year",
               "duration", "userRating", "updatedAt", "index", "parentIndex", "viewCount", "skipCount",
               "lastViewedAt", "lastRatedAt", "addedAt", "parentRatingKey", "grandparentRatingKey",
               "librarySectionID"]  # fmt: skip


def test_track_row_matches_the_reference_on_odd_values():
    rng = random.Random(5)
    base = {
        "ratingKey": "12",
        "title": "Song",
        "grandparentTitle": "Artist",
        "parentTitle": "Album",
    }
    for attr in TRACK_ATTRS:
        for value in ODD_VALUES + ["a" * 2500, "  padded  "]:
            same_row(ET.Element("Track", {**base, attr: value}))
    children = [
        [],
        [("Media", {"audioCodec": " flac ", "bitrate": "1411"})],
        [("Media", {"bitrate": "-1"})],
        [("Media", {}), ("Media", {"audioCodec": "mp3"})],
        [("Genre", {"tag": "Rock"})],
        [("Genre", {"tag": " "})],
        [("Genre", {"tag": "Rock"}), ("Genre", {"tag": "Rock"})],
        [("Media", {"audioCodec": "aac"}), ("Genre", {"tag": "Pop"})],
        [("Genre", {"tag": "Jazz"}), ("Media", {"audioCodec": "aac"}), ("Genre", {"tag": "Blues"})],
        [("Guid", {"id": "x"})],
        [("Mood", {"tag": "Calm"}), ("Genre", {"tag": "Ambient"})],
    ]
    for kids in children:
        el = ET.Element("Track", base)
        for tag, attrs in kids:
            ET.SubElement(el, tag, attrs)
        same_row(el)
    for _ in range(3000):
        attrs = {
            a: rng.choice(ODD_VALUES)
            for a in rng.sample(TRACK_ATTRS, rng.randint(0, len(TRACK_ATTRS)))
        }
        el = ET.Element("Track", attrs)
        for tag, child in rng.choice(children):
            ET.SubElement(el, tag, child)
        same_row(el, rng.choice([None, 1, 7]))


def test_metadata_trim_still_has_what_rows_need(sim_factory):
    "guard for the trims: a full album keeps its Genre and Subformat tags"
    sim = sim_factory(tracks=500)
    with source(sim) as src:
        albums = sim.library.album_keys()[:50]
        root = src.get("/library/metadata/" + ",".join(albums), METADATA_TRIM)
        assert [el.get("ratingKey") for el in root] == albums
        assert any(el.find("Genre") is not None for el in root)


# -- the metadata fetch pool ----------------------------------------------------------


def test_fetch_pool_keeps_a_few_requests_in_flight_in_order_and_holds_after_a_failure():
    """Up to IN_FLIGHT fetches at once, results in order; a failure worth a
    retry starts nothing new until the consumer has taken it"""
    import threading
    import time

    from plexcache.plex.pipeline import IN_FLIGHT, FetchPool

    lock = threading.Lock()
    active, peak, started = [0], [0], []

    def fetch(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            started.append(i)
        if i == 7:  # fails at once, while the consumer is still a few items behind
            with lock:
                active[0] -= 1
            raise ConnectionError("reset")
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return f"body {i}"

    pool = FetchPool(fetch, list(range(20)), IN_FLIGHT)
    try:
        got = []
        for i in range(20):
            body, error = pool.get(i)
            if i == 7:
                assert isinstance(error, ConnectionError)
                time.sleep(0.1)  # the consumer retries it: nothing after it started meanwhile
                with lock:
                    assert max(started) == 7, started
                continue
            got.append(body)
    finally:
        pool.close()
    assert got == [f"body {i}" for i in range(20) if i != 7]
    assert peak[0] == IN_FLIGHT == 3
    assert sorted(started) == list(range(20))
