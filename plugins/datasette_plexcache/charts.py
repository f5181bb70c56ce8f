"""The overview's and the progress page's charts, as Vega-Lite specifications.

Each chart is data: a Vega-Lite spec with its rows inline, built here from
``plexcache.overview.read`` (or ``sync_runs``) and drawn in the page by the
vendored vega-embed (``static/vendor``, ``static/plexcache-charts.js``).
Every chart carries ``link``, the Datasette table, facet or SQL query behind
it, and each bar an ``href`` to its rows. No Datasette import: plain functions
of data and a ``urls`` object (``datasette.urls``).
"""

from __future__ import annotations

from urllib.parse import urlencode

# SQL behind the charts that are not a facet of the tracks table. Each is
# what the chart draws, so following the link shows the same numbers as rows.
DECADES_SQL = (
    "select (year / 10) * 10 as decade, count(*) as tracks from tracks\n"
    "where year is not null group by decade order by decade"
)
ADDED_SQL = (
    "select substr(added_at, 1, 7) as month, count(*) as tracks from tracks\n"
    "where added_at is not null group by month order by month"
)
PLAYS_SQL = (
    "select substr(viewed_at, 1, 7) as month, count(*) as plays from plays\n"
    "where viewed_at is not null group by month order by month"
)
HOURS_SQL = "select round(sum(duration_ms) / 3600000.0, 1) as hours, count(*) as tracks from tracks"

ACCENT = "#3b6ea5"
WIDTH = 460
HEIGHT = 200


def overview_context(data: dict, database: str, urls) -> dict:
    "The template's ``plexcache_overview``: the size figures and the charts"
    table = urls.table(database, "tracks")

    def sql(query: str) -> str:
        return urls.database(database) + "?" + urlencode({"sql": query})

    def rows(**args) -> str:
        return table + "?" + urlencode(args)

    charts = [
        _bar_chart(
            "decades",
            "Tracks by decade",
            "Tracks with a year, by the decade of that year.",
            sql(DECADES_SQL),
            [
                {"decade": f"{d}s", "tracks": n, "href": rows(year__gte=d, year__lt=d + 10)}
                for d, n in data["decades"]
            ],
            x="decade",
            y="tracks",
            ordinal=True,
        ),
        _bar_chart(
            "genres",
            "Top genres",
            "Tracks per genre (a track with two genres counts in both).",
            table + "#facet-genres",
            [
                {"genre": g, "tracks": n, "href": rows(genres__arraycontains=g)}
                for g, n in data["genres"]
            ],
            x="genre",
            y="tracks",
            horizontal=True,
        ),
        _bar_chart(
            "added",
            "Library growth",
            "Tracks added to Plex per month.",
            sql(ADDED_SQL),
            [
                {
                    "month": m,
                    "tracks": n,
                    "href": rows(added_at__startswith=m, _sort_desc="added_at"),
                }
                for m, n in data["added_months"]
            ],
            x="month",
            y="tracks",
            temporal=True,
        ),
        _bar_chart(
            "artists",
            "Top artists",
            "Artists with the most tracks.",
            table + "#facet-artist",
            [{"artist": a, "tracks": n, "href": rows(artist=a)} for a, n in data["artists_top"]],
            x="artist",
            y="tracks",
            horizontal=True,
        ),
    ]
    if data["plays_months"]:
        charts.append(
            _bar_chart(
                "plays",
                "Listening over time",
                "Plays per month, from the play history.",
                sql(PLAYS_SQL),
                [
                    {
                        "month": m,
                        "plays": n,
                        "href": urls.table(database, "plays")
                        + "?"
                        + urlencode({"viewed_at__startswith": m}),
                    }
                    for m, n in data["plays_months"]
                ],
                x="month",
                y="plays",
                temporal=True,
            )
        )
    return {
        "figures": [
            {"label": "tracks", "value": f"{data['tracks']:,}", "href": table},
            {
                "label": "albums",
                "value": f"{data['albums']:,}",
                "href": urls.table(database, "albums"),
            },
            {
                "label": "artists",
                "value": f"{data['artists']:,}",
                "href": urls.table(database, "artists"),
            },
            {"label": "hours of music", "value": f"{data['hours']:,.0f}", "href": sql(HOURS_SQL)},
        ],
        "charts": charts,
        "empty": data["tracks"] == 0,
        "precounted": data["precounted"],
        "database": database,
    }


def runs_chart(runs: list[dict], database: str, urls) -> dict | None:
    """The progress page's picture of the last syncs: duration and changes per run.

    ``runs``: ``sync_runs`` rows, newest first. None when no run finished yet.
    """
    done = [r for r in reversed(runs) if r.get("duration_ms") is not None]
    if not done:
        return None
    values = []
    for r in done:
        run = f"#{r['id']}"
        href = urls.table(database, "sync_runs") + "?" + urlencode({"id": r["id"]})
        base = {
            "run": run,
            "started": r.get("started_at") or "",
            "status": r.get("status") or "",
            "href": href,
        }
        values.append(
            {
                **base,
                "measure": "seconds",
                "what": "duration",
                "value": round(r["duration_ms"] / 1000, 1),
            }
        )
        for key, label in (
            ("tracks_added", "added"),
            ("tracks_updated", "updated"),
            ("tracks_removed", "removed"),
        ):
            values.append({**base, "measure": "changes", "what": label, "value": r.get(key) or 0})
    order = [v["run"] for v in values if v["what"] == "duration"]
    x = {
        "field": "run",
        "type": "ordinal",
        "sort": order,
        "title": "sync run (oldest first)",
        "axis": {"labelAngle": 0},
    }
    tooltip = [
        {"field": "run"},
        {"field": "started", "title": "started"},
        {"field": "status"},
        {"field": "what"},
        {"field": "value", "format": ","},
    ]
    layer = {
        "mark": {"type": "bar", "tooltip": True, "cursor": "pointer"},
        "encoding": {"x": x, "tooltip": tooltip, "href": {"field": "href"}},
    }
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "description": "Duration and changes of the last sync runs",
        "data": {"values": values},
        "vconcat": [
            {
                **layer,
                "transform": [{"filter": "datum.measure === 'seconds'"}],
                "width": WIDTH,
                "height": 110,
                "encoding": {
                    **layer["encoding"],
                    "x": {**x, "title": None, "axis": {"labels": False, "ticks": False}},
                    "y": {"field": "value", "type": "quantitative", "title": "seconds"},
                    "color": {
                        "field": "status",
                        "type": "nominal",
                        "scale": _status_colors(),
                        "legend": None,
                    },
                },
            },
            {
                **layer,
                "transform": [{"filter": "datum.measure === 'changes'"}],
                "width": WIDTH,
                "height": 110,
                "encoding": {
                    **layer["encoding"],
                    # side by side on a symlog scale: a first full sync's 18,000
                    # and a later sync's 12 both show (stacking would distort them)
                    "xOffset": {"field": "what", "sort": ["added", "updated", "removed"]},
                    "y": {
                        "field": "value",
                        "type": "quantitative",
                        "title": "tracks changed",
                        "stack": None,
                        "scale": {"type": "symlog"},
                        "axis": {
                            "values": [0, 10, 100, 1000, 10000, 100000, 1000000],
                            "labelExpr": "format(datum.value, ',')",
                        },
                    },
                    "color": {
                        "field": "what",
                        "type": "nominal",
                        "title": None,
                        "scale": {
                            "domain": ["added", "updated", "removed"],
                            "range": ["#4c9a5f", ACCENT, "#c0504d"],
                        },
                        "legend": {"orient": "top"},
                    },
                },
            },
        ],
        # each part keeps its own colours: run status above, kind of change below
        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
        "config": _config(),
    }
    return {
        "id": "runs",
        "title": "Last syncs",
        "description": "Seconds per run (red: failed) and tracks added, updated and removed.",
        "link": urls.table(database, "sync_runs") + "?" + urlencode({"_sort_desc": "id"}),
        "spec": spec,
        "rows": len(done),
    }


def _status_colors() -> dict:
    return {
        "domain": ["succeeded", "failed", "interrupted", "running"],
        "range": [ACCENT, "#c0504d", "#d9a441", "#999999"],
    }


def _bar_chart(
    chart_id: str,
    title: str,
    description: str,
    link: str,
    values: list[dict],
    *,
    x: str,
    y: str,
    ordinal: bool = False,
    temporal: bool = False,
    horizontal: bool = False,
) -> dict:
    tooltip = [{"field": x, "title": x}, {"field": y, "title": y, "format": ","}]
    category = {"field": x, "type": "ordinal" if ordinal else "nominal", "title": None}
    if temporal:
        category = {
            "field": x,
            "type": "temporal",
            "timeUnit": "utcyearmonth",
            "title": None,
            "axis": {"format": "%Y", "tickCount": "year"},
        }
        tooltip[0] = {
            "field": x,
            "title": x,
            "type": "temporal",
            "timeUnit": "utcyearmonth",
            "format": "%B %Y",
        }
    elif horizontal:
        category = {**category, "sort": None, "axis": {"labelLimit": 180}}
    else:
        category = {**category, "axis": {"labelAngle": 0}}
    measure = {
        "field": y,
        "type": "quantitative",
        "title": y,
        "axis": {"format": ",d", "tickCount": 5},
    }
    encoding = {
        "tooltip": tooltip,
        "href": {"field": "href"},
        **({"y": category, "x": measure} if horizontal else {"x": category, "y": measure}),
    }
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "description": title,
        "data": {"values": values},
        "mark": {"type": "bar", "tooltip": True, "cursor": "pointer", "color": ACCENT},
        "encoding": encoding,
        "width": "container",
        "height": {"step": 16} if horizontal else HEIGHT,
        "config": _config(),
    }
    return {
        "id": chart_id,
        "title": title,
        "description": description,
        "link": link,
        "spec": spec,
        "rows": len(values),
    }


def _config() -> dict:
    return {
        "view": {"stroke": None},
        "axis": {"labelFontSize": 11, "titleFontSize": 11, "grid": False},
        "font": "Helvetica, Arial, sans-serif",
    }
