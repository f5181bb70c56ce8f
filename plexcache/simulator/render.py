"""Build PMS-shaped element trees and serialise them as XML (default) or JSON.

An element is ``(tag, attrs: dict, children: list)``.  Attribute values keep their Python
type: ints/floats become JSON numbers, ``bool`` becomes "1"/"0" in XML and true/false in JSON,
strings stay strings (ratingKeys are strings on items, as PMS sends them).  ``None``/""/0 values
are dropped by the builders, never by the serialisers.
"""

from __future__ import annotations

import json
import re

from .library import ALBUM, ARTIST, MOVIE, TRACK, TRACK_PARENT_FIELDS, TYPE_NAMES, tag_id
from .profiles import ORIGINAL_DISTINCT, ORIGINAL_TAGGED, Profile, get_profile

MEDIA_TAG_PREFIX = "/system/bundle/media/flags/"
MEDIA_TAG_VERSION = 1740148659
ITEM_TAGS = {"Track", "Directory", "Video", "Photo"}

_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;",
                      "\t": "&#9;"})  # fmt: skip


_SPECIAL = re.compile(r'[&<>"\n\r\t]')


def _xml_value(v) -> str:
    t = type(v)
    if t is str:
        return v.translate(_ESC) if _SPECIAL.search(v) else v
    if t is int:
        return str(v)
    if t is bool:
        return "1" if v else "0"
    if t is float:
        return f"{v:.1f}" if v == round(v, 1) else repr(v)
    return _xml_value(str(v))


def _emit(elem, out: list) -> None:
    tag, attrs, children = elem
    parts = ["<", tag]
    search = _SPECIAL.search
    for k, v in attrs.items():
        t = type(v)
        if t is str:
            if search(v):
                v = v.translate(_ESC)
        elif t is bool:
            v = "1" if v else "0"
        elif t is not int:
            v = _xml_value(v)
        parts.append(f' {k}="{v}"')
    out.append("".join(parts))
    if children:
        out.append(">\n")
        for c in children:
            if c.__class__ is str:  # an item rendered by xml_item()
                out.append(c)
            else:
                _emit(c, out)
        out.append(f"</{tag}>\n")
    else:
        out.append(" />\n")


def to_xml(root) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _emit(root, out)
    # encoded piece by piece: one CJK or emoji title would make the joined page a 4-byte-per-
    # character string, slower to build and to encode than the (mostly ASCII) pieces
    return b"".join([s.encode("utf-8") for s in out])


def _json_obj(elem, item_key: str, top: bool):
    tag, attrs, children = elem
    d = dict(attrs)
    for c in children:
        ctag = c[0]
        if top and ctag in ITEM_TAGS:
            d.setdefault(item_key, []).append(_json_obj(c, item_key, False))
        elif ctag == "Meta":
            d["Meta"] = _json_obj(c, item_key, False)
        else:
            d.setdefault(ctag, []).append(_json_obj(c, item_key, False))
    return d


def to_json(root, item_key: str = "Metadata") -> bytes:
    return json.dumps({"MediaContainer": _json_obj(root, item_key, True)}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")  # fmt: skip


def _put(attrs: dict, name: str, value) -> None:
    if value is None or value == "" or value == 0 or value == []:
        return
    attrs[name] = value


class Options:
    "rendering options derived from the request"

    __slots__ = ("include_guids", "excl_elements", "excl_fields", "detail", "profile", "key")

    def __init__(self, include_guids=False, excl_elements=(), excl_fields=(), detail=False,
                 profile: Profile | str | None = None):  # fmt: skip
        self.include_guids = include_guids
        self.excl_elements = set(excl_elements)
        self.excl_fields = set(excl_fields)
        self.detail = detail
        self.profile = get_profile(profile)
        self.key = (bool(include_guids), bool(detail), frozenset(self.excl_elements), frozenset(self.excl_fields),
                    self.profile)  # fmt: skip

    def listed(self, limit: int | None) -> bool:
        "Whether a tag kind listed at most `limit` per item appears at all (full items: always)"
        return self.detail or limit != 0


def original_title(rec: dict, mode: str):
    "The originalTitle a server with this Profile.original_title mode sends for a track record"
    v = rec.get("originalTitle")
    if mode == ORIGINAL_TAGGED:
        return v or rec.get("_artist_tag")
    if mode == ORIGINAL_DISTINCT:
        return _unequal(v, rec.get("grandparentTitle"))
    return v


def _unequal(value, other):
    return None if value == other else value


def _trim(attrs: dict, opts: Options) -> dict:
    if opts.excl_fields:
        for f in opts.excl_fields:
            if f not in ("ratingKey", "key", "type"):
                attrs.pop(f, None)
    return attrs


def _section_attrs(attrs: dict, sec: dict) -> None:
    attrs["librarySectionTitle"] = sec["title"]
    attrs["librarySectionID"] = sec["id"]
    attrs["librarySectionKey"] = f"/library/sections/{sec['id']}"


def _tags(tag: str, values: list[str], ids, opts: Options, limit: int | None = 2) -> list:
    if tag in opts.excl_elements or not values:
        return []
    if opts.detail:
        field = tag.lower()
        out = []
        for v in values:
            i = tag_id(field, v)
            a = {"id": i, "filter": f"{field}={i}", "tag": v}
            out.append((tag, a, []))
        return out
    return [(tag, {"tag": v}, []) for v in values[:limit]]


def _guids(rec: dict, opts: Options) -> list:
    if "Guid" in opts.excl_elements or not (opts.detail or opts.include_guids):
        return []
    return [("Guid", {"id": g}, []) for g in rec.get("guids") or []]


_TRACK_A = ("parentGuid", "grandparentGuid", "parentStudio")
_TRACK_B = ("index", "parentIndex", "ratingCount", "userRating", "viewCount", "skipCount", "lastViewedAt",
            "lastRatedAt", "parentYear", "thumb", "art", "parentThumb", "grandparentThumb", "grandparentArt",
            "duration")  # fmt: skip
_TRACK_C = ("updatedAt", "musicAnalysisVersion")


def track_element(rec: dict, sec: dict, opts: Options):
    from .library import GENRE_IDS

    get = rec.get
    prof = opts.profile
    a: dict = {
        "ratingKey": rec["ratingKey"],
        "key": rec["key"],
        "parentRatingKey": rec["parentRatingKey"],
        "grandparentRatingKey": rec["grandparentRatingKey"],
        "guid": rec["guid"],
    }
    for name in _TRACK_A:
        v = get(name)
        if v:
            a[name] = v
    a["type"] = "track"
    a["title"] = rec["title"]
    v = get("titleSort")
    if v:
        a["titleSort"] = v
    a["grandparentKey"] = rec["grandparentKey"]
    a["parentKey"] = rec["parentKey"]
    if opts.detail:
        _section_attrs(a, sec)
    a["grandparentTitle"] = rec["grandparentTitle"]
    a["parentTitle"] = rec["parentTitle"]
    v = original_title(rec, prof.original_title)
    if v:
        a["originalTitle"] = v
    a["summary"] = get("summary") or ""
    for name in _TRACK_B:
        v = get(name)
        if v:
            a[name] = v
    a["addedAt"] = rec["addedAt"]
    for name in _TRACK_C:
        v = get(name)
        if v:
            a[name] = v
    _trim(a, opts)
    children = []
    if "Media" not in opts.excl_elements:
        m = rec["media"]
        ma = {"id": m["id"]}
        _put(ma, "duration", rec.get("duration"))
        ma.update(bitrate=m["bitrate"], audioChannels=m["audioChannels"], audioCodec=m["audioCodec"],
                  container=m["container"])  # fmt: skip
        disc = rec.get("parentIndex") or 1
        fname = f"{disc}-{(rec.get('index') or 0):02d} {rec['title']}.{m['ext']}".replace("/", "_")
        artist = rec["grandparentTitle"].replace("/", "_")
        album = rec["parentTitle"].replace("/", "_")
        pa = {}
        if opts.detail:
            pa["accessible"] = True
            pa["exists"] = True
        pa["id"] = m["part_id"]
        pa["key"] = f"/library/parts/{m['part_id']}/{m['ts']}/file.{m['ext']}"
        _put(pa, "duration", rec.get("duration"))
        pa["file"] = f"{sec['location']}/{artist}/{album}/{fname}"
        pa["size"] = m["size"]
        pa["container"] = m["container"]
        pa["hasThumbnail"] = "1"
        streams = []
        if opts.detail and "Stream" not in opts.excl_elements:
            codec = m["audioCodec"]
            title = f"{codec.upper()} (Stereo)"
            streams.append(("Stream", {
                "id": m["part_id"] + 500000, "streamType": 2, "selected": True, "codec": codec, "index": 0,
                "channels": 2, "bitrate": m["bitrate"], "audioChannelLayout": "stereo",
                "samplingRate": m["samplingRate"], "displayTitle": title, "extendedDisplayTitle": title,
            }, []))  # fmt: skip
        parts = [] if "Part" in opts.excl_elements else [("Part", pa, streams)]
        children.append(("Media", ma, parts))
    # tracks carry Genre only when they have their own (PMS >= 1.40); listings truncate them
    if prof.track_genres:
        children.extend(
            _tags("Genre", rec.get("genres") or [], GENRE_IDS, opts, prof.track_tags_listed)
        )
    children.extend(_guids(rec, opts))
    return ("Track", a, children)


def album_element(rec: dict, sec: dict, opts: Options):
    from .library import FORMAT_IDS, GENRE_IDS, SUBFORMAT_IDS

    a: dict = {}
    a["ratingKey"] = rec["ratingKey"]
    a["key"] = rec["key"]
    a["parentRatingKey"] = rec["parentRatingKey"]
    a["guid"] = rec["guid"]
    _put(a, "parentGuid", rec.get("parentGuid"))
    _put(a, "studio", rec.get("studio"))
    a["type"] = "album"
    a["title"] = rec["title"]
    _put(a, "titleSort", rec.get("titleSort"))
    a["parentKey"] = rec["parentKey"]
    if opts.detail:
        _section_attrs(a, sec)
    a["parentTitle"] = rec["parentTitle"]
    a["summary"] = rec.get("summary") or ""
    _put(a, "index", rec.get("index"))
    _put(a, "userRating", rec.get("userRating"))
    _put(a, "viewCount", rec.get("viewCount"))
    _put(a, "lastViewedAt", rec.get("lastViewedAt"))
    _put(a, "lastRatedAt", rec.get("lastRatedAt"))
    _put(a, "year", rec.get("year"))
    _put(a, "thumb", rec.get("thumb"))
    _put(a, "art", rec.get("art"))
    _put(a, "parentThumb", rec.get("parentThumb"))
    _put(a, "originallyAvailableAt", rec.get("originallyAvailableAt"))
    if opts.detail or opts.profile.leaf_count_listed:
        _put(a, "leafCount", rec.get("leafCount"))
    a["addedAt"] = rec["addedAt"]
    _put(a, "updatedAt", rec.get("updatedAt"))
    a["loudnessAnalysisVersion"] = "2"
    a["musicAnalysisVersion"] = "1"
    _trim(a, opts)
    limit = opts.profile.album_tags_listed
    children = _tags("Genre", rec.get("genres") or [], GENRE_IDS, opts, limit)
    if (
        opts.detail or opts.profile.album_subformats_listed
    ):  # Format/Subformat: usually full albums only
        children += _tags("Format", rec.get("formats") or [], FORMAT_IDS, opts, limit)
        children += _tags("Subformat", rec.get("subformats") or [], SUBFORMAT_IDS, opts, limit)
    children += _guids(rec, opts)
    return ("Directory", a, children)


def artist_element(rec: dict, sec: dict, opts: Options):
    from .library import GENRE_IDS

    a: dict = {}
    a["ratingKey"] = rec["ratingKey"]
    a["key"] = rec["key"]
    a["guid"] = rec["guid"]
    a["type"] = "artist"
    a["title"] = rec["title"]
    _put(a, "titleSort", rec.get("titleSort"))
    if opts.detail:
        _section_attrs(a, sec)
    a["summary"] = rec.get("summary") or ""
    _put(a, "index", rec.get("index"))
    _put(a, "userRating", rec.get("userRating"))
    _put(a, "viewCount", rec.get("viewCount"))
    _put(a, "lastViewedAt", rec.get("lastViewedAt"))
    _put(a, "lastRatedAt", rec.get("lastRatedAt"))
    _put(a, "thumb", rec.get("thumb"))
    _put(a, "art", rec.get("art"))
    a["addedAt"] = rec["addedAt"]
    _put(a, "updatedAt", rec.get("updatedAt"))
    _trim(a, opts)
    children = _tags(
        "Genre", rec.get("genres") or [], GENRE_IDS, opts, opts.profile.artist_tags_listed
    )
    children += _tags(
        "Country", rec.get("countries") or [], None, opts, opts.profile.artist_countries_listed
    )
    children += _guids(rec, opts)
    return ("Directory", a, children)


def movie_element(rec: dict, sec: dict, opts: Options):
    a: dict = {"ratingKey": rec["ratingKey"], "key": rec["key"], "guid": rec["guid"]}
    _put(a, "studio", rec.get("studio"))
    a["type"] = "movie"
    a["title"] = rec["title"]
    if opts.detail:
        _section_attrs(a, sec)
    a["summary"] = rec.get("summary") or ""
    _put(a, "year", rec.get("year"))
    _put(a, "thumb", rec.get("thumb"))
    _put(a, "duration", rec.get("duration"))
    a["addedAt"] = rec["addedAt"]
    _put(a, "updatedAt", rec.get("updatedAt"))
    _trim(a, opts)
    return ("Video", a, _tags("Genre", rec.get("genres") or [], None, opts))


def item_element(rec: dict, sec: dict, opts: Options):
    t = rec["type"]
    if t == "track":
        return track_element(rec, sec, opts)
    if t == "album":
        return album_element(rec, sec, opts)
    if t == "artist":
        return artist_element(rec, sec, opts)
    return movie_element(rec, sec, opts)


# ---------------------------------------------------------------------------------------------
# items straight to XML text
#
# xml_item(rec, sec, opts) is the text _emit writes for item_element(rec, sec, opts), byte for byte,
# without building the element first. Per item type and set of options (a sync asks the same
# excludeFields/excludeElements on every page) the attribute writer is generated once, holding only
# the attributes those options keep, in the builders' order and with their rules:
#   req     always written (rec[name])          truthy  written when rec.get(name) is truthy
#   put     written unless None/""/0/[] (_put)  empty   rec.get(name) or "" (always written)
#   const   a fixed value                       sec     librarySection* (full metadata only)
# Children (Media/Part/Stream, tags, Guid) are written by the hand-written functions below.
# tests/test_simulator.py checks this path against item_element + _emit and pins both.

_REQ, _TRUTHY, _PUT, _EMPTY, _CONST, _SEC = "req", "truthy", "put", "empty", "const", "sec"
_SECTION_SPEC = (
    ("librarySectionTitle", _SEC, 'sec["title"]'),
    ("librarySectionID", _SEC, 'sec["id"]'),
    ("librarySectionKey", _SEC, "f\"/library/sections/{sec['id']}\""),
)
_ITEM_SPECS = {
    "track": ("Track", (
        ("ratingKey", _REQ), ("key", _REQ), ("parentRatingKey", _REQ), ("grandparentRatingKey", _REQ),
        ("guid", _REQ), *((n, _TRUTHY) for n in _TRACK_A), ("type", _CONST, "track"), ("title", _REQ),
        ("titleSort", _TRUTHY), ("grandparentKey", _REQ), ("parentKey", _REQ), *_SECTION_SPEC,
        ("grandparentTitle", _REQ), ("parentTitle", _REQ), ("originalTitle", _TRUTHY), ("summary", _EMPTY),
        *((n, _TRUTHY) for n in _TRACK_B), ("addedAt", _REQ), *((n, _TRUTHY) for n in _TRACK_C),
    )),
    "album": ("Directory", (
        ("ratingKey", _REQ), ("key", _REQ), ("parentRatingKey", _REQ), ("guid", _REQ), ("parentGuid", _PUT),
        ("studio", _PUT), ("type", _CONST, "album"), ("title", _REQ), ("titleSort", _PUT), ("parentKey", _REQ),
        *_SECTION_SPEC, ("parentTitle", _REQ), ("summary", _EMPTY),
        *((n, _PUT) for n in ("index", "userRating", "viewCount", "lastViewedAt", "lastRatedAt", "year", "thumb",
                              "art", "parentThumb", "originallyAvailableAt", "leafCount")),
        ("addedAt", _REQ), ("updatedAt", _PUT), ("loudnessAnalysisVersion", _CONST, "2"),
        ("musicAnalysisVersion", _CONST, "1"),
    )),
    "artist": ("Directory", (
        ("ratingKey", _REQ), ("key", _REQ), ("guid", _REQ), ("type", _CONST, "artist"), ("title", _REQ),
        ("titleSort", _PUT), *_SECTION_SPEC, ("summary", _EMPTY),
        *((n, _PUT) for n in ("index", "userRating", "viewCount", "lastViewedAt", "lastRatedAt", "thumb", "art")),
        ("addedAt", _REQ), ("updatedAt", _PUT),
    )),
}  # fmt: skip
_NEVER_TRIMMED = ("ratingKey", "key", "type")
# Written without _s() when they have the expected type (the check stays: any value still comes out
# as _emit writes it): usually ints, and strings that cannot need escaping (built from integer keys,
# never editable).
_INTISH = {"index", "parentIndex", "ratingCount", "viewCount", "skipCount", "lastViewedAt", "lastRatedAt",
           "parentYear", "duration", "addedAt", "updatedAt", "year", "leafCount", "librarySectionID"}  # fmt: skip
_SAFE_STR = {"ratingKey", "key", "parentRatingKey", "grandparentRatingKey", "parentKey", "grandparentKey",
             "librarySectionKey"}  # fmt: skip
_search = _SPECIAL.search


def _s(v) -> str:
    "An attribute value as _emit writes it"
    t = v.__class__
    if t is str:  # (what _SPECIAL matches; `in` scans faster than the regex)
        if "&" in v or "<" in v or ">" in v or '"' in v or "\n" in v or "\r" in v or "\t" in v:
            return v.translate(_ESC)
        return v
    if t is int:
        return str(v)
    if t is bool:
        return "1" if v else "0"
    return _xml_value(v)


def _value(name: str, var: str) -> str:
    "The expression writing attribute `name` held in `var`"
    if name in _INTISH:
        return f"{var} if {var}.__class__ is int else _s({var})"
    if name in _SAFE_STR:
        return f"{var} if {var}.__class__ is str else _s({var})"
    return f"_s({var})"


def _item_writer(
    tag: str, spec, detail: bool, excl_fields, children: list, shared=frozenset(), row=None
):
    """Generate write(rec, sec) -> the item's XML text: the attributes these options keep, each
    optional one as a piece ("" when left out), all joined by one f-string; then the children,
    written by the functions in `children` (None when none can be written).

    Attributes named in `shared` take their values from the record's parent (a track's album and
    artist): records carrying the same "_render_key" object have the same values for them, so their
    text is written once per key (one entry, atomically replaced: pages list an album's tracks in a
    row).

    With `row` (the dict writer), the function writes rows (Library.records(rows=True): tuples of
    an unedited track's values, see TRACK_ROW) and hands anything else to the dict writer. A row's
    values have known types (no checks), its shared attributes come from row[0]."""
    body, cached = [], []  # lines (cached: lines of the shared attributes, run once per key)
    head = []  # the f-string of the start tag
    segments = []  # f-strings of runs of shared attributes
    run: list = []
    n = 0

    def close_run():
        if run:
            segments.append("".join(run))
            head.append(f"{{sg{len(segments) - 1}}}")
            run.clear()

    for name, rule, *src in spec:
        if name in excl_fields and name not in _NEVER_TRIMMED:
            continue
        if rule == _SEC and not detail:
            continue
        lines, out = (cached, run) if name in shared else (body, head)
        if name not in shared:
            close_run()
        if rule == _CONST:
            text = _s(src[0])
            assert not set(text) & set("{}'\\"), text
            out.append(f' {name}="{text}"')
            continue
        if row is not None and name not in shared:  # a row's own value
            text = _row_attr(name, rule, lines, f"a{n}", src)
            if text is not None:
                out.append(text)
            n += 1
            continue
        if rule in (_REQ, _EMPTY, _SEC):
            expr = {_REQ: f'rec["{name}"]', _EMPTY: f'get("{name}") or ""', _SEC: src and src[0]}[
                rule
            ]
            lines.append(f"a{n} = {expr}")
            out.append(f' {name}="{{{_value(name, f"a{n}")}}}"')
        else:
            lines.append(f"v = {src[0]}" if src else f'v = get("{name}")')
            # _put's test, short-cut: a truthy value is never None, "", 0 or []
            cond = (
                "v" if rule == _TRUTHY else 'v or not (v is None or v == "" or v == 0 or v == [])'
            )
            lines.append(f"""a{n} = f' {name}="{{{_value(name, "v")}}}"' if {cond} else ''""")
            out.append(f"{{a{n}}}")
        n += 1
    close_run()
    if row is None:
        code = ["def write(rec, sec):", "    get = rec.get"]
    else:  # the shared attributes read the row's parent fields
        code = ["def write(row, sec):", "    if row.__class__ is not tuple:", "        return _write_dict(row, sec)",
                "    rec = row[0]", "    get = rec.get"]  # fmt: skip
        code += ["    " + line for line in _ROW_UNPACK]
    if segments:
        names = "".join(f"sg{i}, " for i in range(len(segments)))
        code += ['    key = get("_render_key")', "    m = _memo[0]", "    if key is not None and m[0] is key:",
                 f"        {names}= m[1]", "    else:"]  # fmt: skip
        code += ["        " + line for line in cached]
        code += [f"        sg{i} = f'{seg}'" for i, seg in enumerate(segments)]
        code += ["        if key is not None:", f"            _memo[0] = (key, ({names}))"]
    code += ["    " + line for line in body]
    start = f"<{tag}" + "".join(head)
    if row is not None:  # the row versions of the children, inline
        kids = [_ROW_CHILDREN[c] for c in children]
        for i, kid_lines in enumerate(kids):
            code += [
                "    " + (line.replace("kids =", "kids +=", 1) if i else line) for line in kid_lines
            ]
        if kids:
            code.append(
                f"    return f'{start}>\\n{{kids}}</{tag}>\\n' if kids else f'{start} />\\n'"
            )
        else:
            code.append(f"    return f'{start} />\\n'")
        children = []
    elif not children:
        code.append(f"    return f'{start} />\\n'")
    else:
        code.append(f"    head = f'{start}'")
        code.append("    kids = " + " + ".join(f"c{i}(rec, sec)" for i in range(len(children))))
        code.append(f"    return f'{{head}}>\\n{{kids}}</{tag}>\\n' if kids else head + ' />\\n'")
    namespace = {"_s": _s, "_tags_xml": _tags_xml, "_unequal": _unequal, "_memo": [(None, ())], "_write_dict": row,
                 **{f"c{i}": c for i, c in enumerate(children)}}  # fmt: skip
    exec("\n".join(code), namespace)  # noqa: S102 (generated from the fixed specs above)
    return namespace["write"]


# Rows (Library.records(rows=True)): an unedited base track's values, drawn without the tail.
# Each attribute a track writer may write from a row: its value and how it is written. Values
# have the types the generator gives them (ints, str, a float rating, None when absent).
_ROW_UNPACK = ["(_, k, title, original, index, disc, rating, views, skips, viewed, rated, duration, added, updated,"
               " genres, bitrate, codec, container) = row"]  # fmt: skip
_ROW_ATTRS = {
    "ratingKey": ("k", "int"), "key": ("k", "key"), "title": ("title", "str"), "titleSort": (None, "none"),
    "originalTitle": ("original", "str?"), "summary": ("", "empty"), "index": ("index", "int?"),
    "parentIndex": ("disc", "int?"), "userRating": ("rating", "str?"), "viewCount": ("views", "int?"),
    "skipCount": ("skips", "int?"), "lastViewedAt": ("viewed", "int?"), "lastRatedAt": ("rated", "int?"),
    "duration": ("duration", "int?"), "addedAt": ("added", "int"), "updatedAt": ("updated", "int?"),
    "musicAnalysisVersion": ("1", "const?"),
}  # fmt: skip


def _row_attr(name: str, rule: str, lines: list, var: str, spec_src=()) -> str | None:
    """The start tag's text for attribute `name` of a row (None: never written), adding lines.
    `spec_src`: the spec's (dict expression, row line) of an attribute whose value is derived."""
    src, kind = _ROW_ATTRS[name]  # a KeyError here: a row cannot write this attribute
    if spec_src:
        lines.append(spec_src[1])
    if kind == "none":  # absent from every unedited track (rule: written only when truthy)
        assert rule == _TRUTHY, name
        return None
    if kind == "empty":
        assert rule == _EMPTY, name
        return f' {name}=""'
    if kind == "const?":
        assert rule == _TRUTHY, name
        return f' {name}="{src}"'
    if kind == "int":
        assert rule == _REQ, name
        return f' {name}="{{{src}}}"'
    if kind == "key":
        assert rule == _REQ, name
        return f' {name}="/library/metadata/{{{src}}}"'
    if kind == "str":
        assert rule == _REQ, name
        return f' {name}="{{_s({src})}}"'
    assert rule == _TRUTHY, name
    value = src if kind == "int?" else f"_s({src})"
    lines.append(f"""{var} = f' {name}="{{{value}}}"' if {src} else ''""")
    return f"{{{var}}}"


# the row versions of children, as lines of the generated writer setting (or adding to) `kids`:
# the listing's Media element (_media_only) and Genre tags (_tags_xml), from the row's values
_ROW_MEDIA = [
    """dm = f' duration="{duration}"' if duration else ''""",
    """kids = f'<Media id="{k + 1000000}"{dm} bitrate="{bitrate}" audioChannels="2" audioCodec="{_s(codec)}"'"""
    """ f' container="{_s(container)}" />\\n'""",
]


def _tags_xml(tag: str, field: str, values, detail: bool, limit: int | None) -> str:
    "The text of _tags(tag, values, ...): full <Tag id filter tag> on full items, else the first `limit`"
    if detail:
        out = []
        for v in values:
            i = tag_id(field, v)
            out.append(f'<{tag} id="{i}" filter="{_s(f"{field}={i}")}" tag="{_s(v)}" />\n')
        return "".join(out)
    return "".join([f'<{tag} tag="{_s(v)}" />\n' for v in values[:limit]])


def _media_writer(part: bool, detail: bool, stream: bool):
    "write(rec, sec) -> a track's Media element, with its Part (and Stream) when kept"
    if not part:
        return _media_only
    return lambda rec, sec: _media_with_part(rec, sec, detail, stream)


def _media_only(rec: dict, sec: dict) -> str:
    return _media_head(rec)[0] + " />\n"


def _media_head(rec: dict) -> tuple[str, str]:
    "The Media start tag (unclosed) and the duration attribute it and the Part carry"
    m = rec["media"]
    d = rec.get("duration")
    if d is None or d == "" or d == 0 or d == []:
        dur = ""
    else:
        dur = f' duration="{d if d.__class__ is int else _s(d)}"'
    i, b = m["id"], m["bitrate"]
    return (f'<Media id="{i if i.__class__ is int else _s(i)}"{dur} bitrate="{b if b.__class__ is int else _s(b)}"'
            f' audioChannels="{_s(m["audioChannels"])}" audioCodec="{_s(m["audioCodec"])}"'
            f' container="{_s(m["container"])}"'), dur  # fmt: skip


def _media_with_part(rec: dict, sec: dict, detail: bool, stream: bool) -> str:
    out, dur = _media_head(rec)
    m = rec["media"]
    disc = rec.get("parentIndex") or 1
    fname = f"{disc}-{(rec.get('index') or 0):02d} {rec['title']}.{m['ext']}".replace("/", "_")
    artist = rec["grandparentTitle"].replace("/", "_")
    album = rec["parentTitle"].replace("/", "_")
    pid = m["part_id"]
    key = f"/library/parts/{pid}/{m['ts']}/file.{m['ext']}"
    path = f"{sec['location']}/{artist}/{album}/{fname}"
    p = '<Part accessible="1" exists="1"' if detail else "<Part"
    p += (f' id="{_s(pid)}" key="{_s(key)}"{dur} file="{_s(path)}" size="{_s(m["size"])}"'
          f' container="{_s(m["container"])}" hasThumbnail="1"')  # fmt: skip
    if detail and stream:
        codec = m["audioCodec"]
        title = _s(f"{codec.upper()} (Stereo)")
        p += (f'>\n<Stream id="{_s(pid + 500000)}" streamType="2" selected="1" codec="{_s(codec)}" index="0"'
              f' channels="2" bitrate="{_s(m["bitrate"])}" audioChannelLayout="stereo"'
              f' samplingRate="{_s(m["samplingRate"])}" displayTitle="{title}" extendedDisplayTitle="{title}"'
              " />\n</Part>\n")  # fmt: skip
    else:
        p += " />\n"
    return f"{out}>\n{p}</Media>\n"


# a track's originalTitle under the Profile.original_title modes that derive it (original_title()):
# the dict writer's expression, the line a row writer runs first (`original`: the row's value,
# `get`: its album's fields)
_ORIGINAL_SOURCES = {
    ORIGINAL_TAGGED: ('get("originalTitle") or get("_artist_tag")', 'original = original or get("_artist_tag")'),
    ORIGINAL_DISTINCT: ('_unequal(get("originalTitle"), get("grandparentTitle"))',
                        'original = _unequal(original, get("grandparentTitle"))'),
}  # fmt: skip


class _ItemWriter:
    "Writes items of one type for one set of options: write(rec, sec) -> text (see xml_item)"

    __slots__ = ("write", "keys_only", "rows", "tag", "key_suffix", "type_name")

    def __init__(self, type_name: str, opts: Options):
        tag, spec = _ITEM_SPECS[type_name]
        ex, detail, prof = opts.excl_elements, bool(opts.detail), opts.profile
        excl_fields = opts.excl_fields
        # the children these options keep, in the builders' order
        parts = []
        if type_name == "track":
            if "Media" not in ex:
                parts.append(_media_writer("Part" not in ex, detail, "Stream" not in ex))
            tags = (
                (("Genre", "genre", "genres", prof.track_tags_listed),) if prof.track_genres else ()
            )
            if prof.original_title in _ORIGINAL_SOURCES:  # originalTitle derived from the record
                spec = tuple((*entry, *_ORIGINAL_SOURCES[prof.original_title]) if entry[0] == "originalTitle"
                             else entry for entry in spec)  # fmt: skip
        elif type_name == "album":
            limit = prof.album_tags_listed
            tags = (("Genre", "genre", "genres", limit),)
            if detail or prof.album_subformats_listed:  # Format/Subformat: usually full albums only
                tags += (
                    ("Format", "format", "formats", limit),
                    ("Subformat", "subformat", "subformats", limit),
                )
            if not (detail or prof.leaf_count_listed):
                excl_fields = excl_fields | {"leafCount"}
        else:
            tags = (("Genre", "genre", "genres", prof.artist_tags_listed),
                    ("Country", "country", "countries", prof.artist_countries_listed))  # fmt: skip
        for tag_name, field, name, limit in tags:
            if tag_name not in ex and opts.listed(limit):
                parts.append(_tag_child(tag_name, field, name, detail, limit))
        if "Guid" not in ex and (detail or opts.include_guids):
            parts.append(_guid_child)
        shared = TRACK_PARENT_FIELDS if type_name == "track" else frozenset()
        self.write = _item_writer(tag, spec, detail, excl_fields, parts, shared)
        kept = [n for n, rule, *_ in spec
                if (detail or rule != _SEC) and (n in _NEVER_TRIMMED or n not in excl_fields)]  # fmt: skip
        # keys-only listings (every field but the key trimmed, no children): no record needed
        self.keys_only = not parts and kept == ["ratingKey", "key", "type"]
        # track listings that write nothing of a track's tail (guid, ratingCount, Guid, Part) and
        # nothing of a full item: rows will do (Library.records(rows=True))
        self.rows = type_name == "track" and not detail and all(
            n in shared or n in _ROW_ATTRS or n == "type" for n in kept) and all(c in _ROW_CHILDREN for c in parts)  # fmt: skip
        if self.rows:
            self.write = _item_writer(tag, spec, detail, excl_fields, parts, shared, row=self.write)
        self.tag, self.type_name = tag, type_name
        self.key_suffix = "" if type_name == "track" else "/children"

    def from_key(self, key: int) -> str:
        "The item of a keys-only writer, from its ratingKey alone (the key and type follow from it)"
        return f'<{self.tag} ratingKey="{key}" key="/library/metadata/{key}{self.key_suffix}" type="{self.type_name}" />\n'


def _tag_child(tag: str, field: str, name: str, detail: bool, limit: int):
    key = (tag, field, name, detail, limit)
    write = _TAG_CHILDREN.get(key)
    if write is None:

        def write(rec: dict, sec: dict) -> str:
            values = rec.get(name)
            return _tags_xml(tag, field, values, detail, limit) if values else ""

        write = _TAG_CHILDREN[key] = write
        if tag == "Genre" and not detail:  # a track listing's Genre, also written from rows
            _ROW_CHILDREN[write] = [
                f'kids = _tags_xml("Genre", "genre", genres, False, {limit!r}) if genres else \'\''
            ]
    return write


_TAG_CHILDREN: dict = {}
# the children a row writer can write: the dict writer's child -> its row version (listed Genre
# children are added by _tag_child)
_ROW_CHILDREN = {_media_only: _ROW_MEDIA}


def _guid_child(rec: dict, sec: dict) -> str:
    guids = rec.get("guids")
    return "".join([f'<Guid id="{_s(g)}" />\n' for g in guids]) if guids else ""


_WRITERS: dict = {}


def item_writer(type_name: str, opts: Options):
    "The writer of items of this type for these options, or None (movies: use item_element)"
    key = (type_name, opts.key)
    w = _WRITERS.get(key)
    if w is None:
        if type_name not in _ITEM_SPECS:
            return None
        if len(_WRITERS) > 512:  # options come from clients: keep the cache bounded
            _WRITERS.clear()
        w = _WRITERS[key] = _ItemWriter(type_name, opts)
    return w


def xml_item(rec: dict, sec: dict, opts: Options) -> str:
    "The XML text of item_element(rec, sec, opts), as to_xml writes it"
    w = item_writer(rec["type"], opts)
    if w is None:
        out: list = []
        _emit(item_element(rec, sec, opts), out)
        return "".join(out)
    return w.write(rec, sec)


# ---------------------------------------------------------------------------------------------
# containers


def listing_container(sec: dict, items: list, size_attrs: dict, t: int) -> tuple:
    a: dict = {}
    a.update(size_attrs)
    music = sec["type"] == "artist"
    a["allowSync"] = True
    a["art"] = sec["art"]
    a["identifier"] = "com.plexapp.plugins.library"
    a["librarySectionID"] = sec["id"]
    a["librarySectionTitle"] = sec["title"]
    a["librarySectionUUID"] = sec["uuid"]
    a["mediaTagPrefix"] = MEDIA_TAG_PREFIX
    a["mediaTagVersion"] = MEDIA_TAG_VERSION
    a["nocache"] = True
    a["thumb"] = sec["thumb"]
    a["title1"] = sec["title"]
    if music:
        a["title2"] = {ALBUM: "All Albums"}.get(t, "All Artists")
        a["viewGroup"] = {ALBUM: "album", TRACK: "artist"}.get(t, "artist")
        a["viewMode"] = 65592
    else:
        a["title2"] = "All Movies"
        a["viewGroup"] = "movie"
        a["viewMode"] = 65592
    return ("MediaContainer", a, items)


def _op(key, title):
    return ("Operator", {"key": key, "title": title}, [])


FIELD_TYPES = [
    ("FieldType", {"type": "tag"}, [_op("=", "is"), _op("!=", "is not")]),
    ("FieldType", {"type": "integer"}, [_op("=", "is"), _op("!=", "is not"), _op(">>=", "is greater than"),
                                        _op("<<=", "is less than")]),
    ("FieldType", {"type": "string"}, [_op("=", "contains"), _op("!=", "does not contain"), _op("==", "is"),
                                       _op("!==", "is not"), _op("<=", "begins with"), _op(">=", "ends with")]),
    ("FieldType", {"type": "boolean"}, [_op("=", "is true"), _op("!=", "is false")]),
    ("FieldType", {"type": "date"}, [_op("=", "is"), _op("!=", "is not"), _op(">>=", "is after"),
                                     _op("<<=", "is before")]),
]  # fmt: skip

_TYPE_META = {
    ARTIST: {
        "title": "Artists",
        "filters": [("genre", "string", "Genre"), ("mood", "string", "Mood"), ("style", "string", "Style"),
                    ("country", "string", "Country")],
        "sorts": [("titleSort", "asc", "Title"), ("userRating", "desc", "Rating"), ("addedAt", "desc", "Date Added"),
                  ("lastViewedAt", "desc", "Last Played"), ("viewCount", "desc", "Plays")],
        "fields": [("artist.title", "Artist Title", "string"), ("artist.userRating", "Artist Rating", "integer"),
                   ("artist.genre", "Artist Genre", "tag"), ("artist.mood", "Artist Mood", "tag"),
                   ("artist.style", "Artist Style", "tag"), ("artist.country", "Country", "tag"),
                   ("artist.addedAt", "Date Artist Added", "date"),
                   ("artist.lastViewedAt", "Artist Last Played", "date"),
                   ("artist.viewCount", "Artist Plays", "integer")],
    },
    ALBUM: {
        "title": "Albums",
        "filters": [("genre", "string", "Genre"), ("mood", "string", "Mood"), ("style", "string", "Style"),
                    ("format", "string", "Format"), ("subformat", "string", "Type"), ("year", "integer", "Year"),
                    ("decade", "integer", "Decade")],
        "sorts": [("titleSort", "asc", "Album"), ("artist.titleSort", "asc", "Album Artist"),
                  ("year", "desc", "Year"), ("originallyAvailableAt", "desc", "Release Date"),
                  ("userRating", "desc", "Rating"), ("addedAt", "desc", "Date Added"),
                  ("lastViewedAt", "desc", "Last Played"), ("viewCount", "desc", "Plays")],
        "fields": [("album.title", "Album Title", "string"), ("album.year", "Album Year", "integer"),
                   ("album.decade", "Album Decade", "integer"), ("album.genre", "Album Genre", "tag"),
                   ("album.style", "Album Style", "tag"), ("album.mood", "Album Mood", "tag"),
                   ("album.format", "Album Format", "tag"), ("album.subformat", "Album Type", "tag"),
                   ("album.studio", "Record Label", "string"), ("album.userRating", "Album Rating", "integer"),
                   ("album.addedAt", "Date Album Added", "date"),
                   ("album.lastViewedAt", "Album Last Played", "date"),
                   ("album.viewCount", "Album Plays", "integer")],
    },
    TRACK: {
        "title": "Tracks",
        "filters": [("genre", "string", "Genre"), ("mood", "string", "Mood")],
        "sorts": [("titleSort", "asc", "Title"), ("originalTitle", "asc", "Track Artist"),
                  ("userRating", "desc", "Rating"), ("ratingCount", "desc", "Popularity"),
                  ("viewCount", "desc", "Plays"), ("skipCount", "desc", "Skips"),
                  ("lastViewedAt", "desc", "Last Played"), ("lastRatedAt", "desc", "Last Rated"),
                  ("addedAt", "desc", "Date Added"), ("duration", "desc", "Duration")],
        "fields": [("track.title", "Track Title", "string"), ("track.userRating", "Track Rating", "integer"),
                   ("track.viewCount", "Track Plays", "integer"), ("track.skipCount", "Track Skips", "integer"),
                   ("track.lastViewedAt", "Track Last Played", "date"),
                   ("track.lastSkippedAt", "Track Last Skipped", "date"),
                   ("track.addedAt", "Date Track Added", "date"), ("track.genre", "Track Genre", "tag"),
                   ("track.mood", "Track Mood", "tag")],
    },
    MOVIE: {
        "title": "Movies",
        "filters": [("genre", "string", "Genre"), ("year", "integer", "Year")],
        "sorts": [("titleSort", "asc", "Title"), ("year", "desc", "Year"), ("addedAt", "desc", "Date Added")],
        "fields": [("title", "Title", "string"), ("year", "Year", "integer"), ("genre", "Genre", "tag"),
                   ("addedAt", "Date Added", "date")],
    },
}  # fmt: skip


def meta_element(sec: dict, collections: bool = False):
    sid = sec["id"]
    types = []
    if collections:
        sorts = [("Sort", {"defaultDirection": "asc", "descKey": "titleSort:desc", "key": "titleSort",
                           "title": "Title"}, [])]  # fmt: skip
        fields = [("Field", {"key": "collection.title", "title": "Title", "type": "string"}, [])]
        types.append(("Type", {"key": f"/library/sections/{sid}/collections", "type": "collection",
                               "title": "Collections", "active": False}, sorts + fields))  # fmt: skip
    else:
        kinds = (ARTIST, ALBUM, TRACK) if sec["type"] == "artist" else (MOVIE,)
        for i, t in enumerate(kinds):
            m = _TYPE_META[t]
            kids = []
            for f, ftype, title in m["filters"]:
                kids.append(("Filter", {"filter": f, "filterType": ftype,
                                        "key": f"/library/sections/{sid}/{f}?type={t}", "title": title,
                                        "type": "filter"}, []))  # fmt: skip
            for key, d, title in m["sorts"]:
                attrs = {"active": False, "defaultDirection": d, "descKey": f"{key}:desc", "key": key,
                         "title": title}  # fmt: skip
                kids.append(("Sort", attrs, []))
            for key, title, ftype in m["fields"]:
                kids.append(("Field", {"key": key, "title": title, "type": ftype}, []))
            types.append(("Type", {"key": f"/library/sections/{sid}/all?type={t}", "type": TYPE_NAMES[t],
                                   "title": m["title"], "active": i == 0}, kids))  # fmt: skip
    return ("Meta", {}, types + list(FIELD_TYPES))
