"""The docs keep up with the code: every CLI command and option is in the
README's command table, every column has a description, and the README's
schema section names every tracks column."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import click

from plexcache import columns
from plexcache.cli import cli
from plexcache.schema import ensure_shape

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def command_rows() -> dict[str, str]:
    "README's command table: command name -> its row"
    return {
        m.group(1): m.group(0) for m in re.finditer(r"^\| `plexcache (\S+)[^\n]*$", README, re.M)
    }


def visible_options(command: click.Command) -> list[list[str]]:
    "Each visible option's long forms (both sides of a --x/--no-x flag)"
    return [
        [o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden
    ]


def test_every_command_and_option_is_in_the_readme():
    rows = command_rows()
    missing = []
    for name, command in cli.commands.items():
        if command.hidden:
            continue
        if name not in rows:
            missing.append(f"plexcache {name}")
            continue
        missing += [
            f"plexcache {name} {'/'.join(forms)}"
            for forms in visible_options(command)
            if not any(re.search(re.escape(f) + r"\b(?!-)", rows[name]) for f in forms)
        ]
    assert missing == []
    assert set(rows) <= set(cli.commands), "the README lists a command that does not exist"


def test_every_column_has_a_description():
    for table in (*columns.TABLES, *columns.FACET_TABLES, *columns.OVERVIEW_TABLES):
        for column in table.columns:
            assert column.description.strip(), f"{table.name}.{column.name}"
    for view, described in columns.VIEW_COLUMNS.items():
        assert all(d.strip() for d in described.values()), view


def test_every_column_of_a_real_cache_is_in_the_spec():
    conn = sqlite3.connect(":memory:")
    ensure_shape(conn)
    described = columns.descriptions()
    names = [
        r[0]
        for r in conn.execute(
            "select name from sqlite_master where type in ('table', 'view') "
            "and name not like 'tracks_fts%' and name not like 'sqlite_%'"
        )
    ]
    assert set(names) == set(described)
    for name in names:
        cols = [r[1] for r in conn.execute(f"pragma table_info([{name}])")]
        assert cols == list(described[name]), name


def test_the_readme_names_every_tracks_column():
    schema = README[
        README.index("## The cache: schema and column rules") : README.index("## How a sync works")
    ]
    assert [
        c for c in columns.TRACKS.names if f"`{c}" not in schema and f" {c}," not in schema
    ] == []
