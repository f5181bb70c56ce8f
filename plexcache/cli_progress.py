"""Showing a sync's progress in a terminal (part of the CLI, not of the library).

On a terminal: one redrawn line with a bar, tracks/s and an ETA. Otherwise
(cron, CI, pipes): the spec's plain log lines (``Starting sync, total tracks:
N``, ``Synced 1000/N tracks``, ``Sync complete in Nms``) on stderr.
"""

from __future__ import annotations

import logging
import sys
import time

import click

from .sync import SyncProgress

LOG_FORMAT = "%(levelname)s:%(name)s:%(message)s"


class CliProgress:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = None
        self.drawn = False
        self._handler = None

    def __enter__(self) -> CliProgress:
        self.started = time.monotonic()
        level = logging.WARNING if (self.quiet or self.tty) else logging.INFO
        self._handler = logging.StreamHandler(self.stream)
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        # The CLI prints a failure itself, once, as its one-line error.
        self._handler.addFilter(lambda record: record.levelno < logging.ERROR)
        logger = logging.getLogger("plexcache")
        logger.addHandler(self._handler)
        logger.setLevel(level)
        if self.quiet:
            # errors are reported by the CLI itself, once
            logger.setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        logging.getLogger("plexcache").removeHandler(self._handler)

    def __call__(self, p: SyncProgress) -> None:
        if self.quiet or not self.tty:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = p.current / elapsed
        width = 30
        if p.total:
            done = int(width * min(p.current, p.total) / p.total)
            bar = "#" * done + "-" * (width - done)
            eta = (p.total - p.current) / rate if rate > 0 and p.current < p.total else 0
            line = f"[{bar}] {p.current:,}/{p.total:,} tracks  {rate:,.0f}/s  ETA {eta:.0f}s  {p.phase}"
        else:
            line = f"{p.current:,} tracks  {rate:,.0f}/s  {p.phase}"
        self.stream.write("\r" + click.style(line.ljust(90)[:120], fg=None))
        self.stream.flush()
        self.drawn = True
