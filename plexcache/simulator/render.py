"""Build PMS-shaped element trees and serialise them as XML (default) or JSON.

An element is ``(tag, attrs: dict, children: list)``.  Attribute values keep their Python
type: ints/floats become JSON numbers, ``bool`` becomes "1"/"0" in XML and true/false in JSON,
strings stay strings (ratingKeys are strings on items, as PMS sends them).  ``None``/""/0 values
are dropped by the builders, never by the serialisers.
"""

from __future__ import annotations

import json
import re

from .library import ALBUM, ARTIST, MOVIE, TRACK, TYPE_NAMES, tag_id

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
            _emit(c, out)
        out.append(f"</{tag}>\n")
    else:
        out.append(" />\n")


def to_xml(root) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _emit(root, out)
    return "".join(out).encode("utf-8")


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

    __slots__ = ("include_guids", "excl_elements", "excl_fields", "detail")

    def __init__(self, include_guids=False, excl_elements=(), excl_fields=(), detail=False):
        self.include_guids = include_guids
        self.excl_elements = set(excl_elements)
        self.excl_fields = set(excl_fields)
        self.detail = detail


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


def _tags(tag: str, values: list[str], ids, opts: Options, limit: int = 2) -> list:
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
    v = get("originalTitle")
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
    # tracks carry Genre only when they have their own (PMS >= 1.40); listings truncate to 2
    children.extend(_tags("Genre", rec.get("genres") or [], GENRE_IDS, opts))
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
    _put(a, "leafCount", rec.get("leafCount"))
    a["addedAt"] = rec["addedAt"]
    _put(a, "updatedAt", rec.get("updatedAt"))
    a["loudnessAnalysisVersion"] = "2"
    a["musicAnalysisVersion"] = "1"
    _trim(a, opts)
    children = _tags("Genre", rec.get("genres") or [], GENRE_IDS, opts)
    if opts.detail:  # Format/Subformat only on full album metadata
        children += _tags("Format", rec.get("formats") or [], FORMAT_IDS, opts)
        children += _tags("Subformat", rec.get("subformats") or [], SUBFORMAT_IDS, opts)
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
    children = _tags("Genre", rec.get("genres") or [], GENRE_IDS, opts)
    children += _tags("Country", rec.get("countries") or [], None, opts, limit=1)
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
