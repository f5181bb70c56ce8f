"Timestamps as the cache stores them: ISO-8601 UTC with a Z, second precision"

from __future__ import annotations

import time
from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now_iso() -> str:
    return time.strftime(_FORMAT, time.gmtime())


def epoch_to_iso(value) -> str | None:
    "Plex epoch seconds (str or int) to '2026-02-05T10:30:00Z'; None for empty or zero"
    if value in (None, "", 0, "0"):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        try:
            seconds = int(float(value))
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds <= 0 or seconds > 32503680000:  # beyond year 3000: garbage
        return None
    return time.strftime(_FORMAT, time.gmtime(seconds))


def iso_to_epoch(value: str | None) -> int | None:
    if not value:
        return None
    return int(datetime.strptime(value, _FORMAT).replace(tzinfo=UTC).timestamp())
