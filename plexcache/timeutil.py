"Timestamps as the cache stores them: ISO-8601 UTC with a Z, second precision"

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_to_iso(value) -> str | None:
    "Plex epoch seconds (str or int) to '2026-02-05T10:30:00Z'; None for empty or zero"
    if value in (None, "", 0, "0"):
        return None
    try:
        seconds = int(float(value))
    except (TypeError, ValueError):
        return None
    if seconds <= 0 or seconds > 32503680000:  # beyond year 3000: garbage
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_to_epoch(value: str | None) -> int | None:
    if not value:
        return None
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
