"Timestamps as the cache stores them: ISO-8601 UTC with a Z, second precision"

from __future__ import annotations

import time
from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_EPOCH = 32503680000  # 3000-01-01T00:00:00Z; anything later is garbage

# epoch_to_iso runs four times per synced track, and time.strftime is most of
# its cost. POSIX time has exactly 86,400 seconds a day (no leap seconds), so
# the day part ("2026-02-05T") comes from a small cache and the time of day
# from two tables; the result is byte-identical to strftime's.
_DAYS: dict[int, str] = {}
_DAYS_MAX = 8192  # a library's timestamps cluster on a few thousand days
_HOURS_MINUTES = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECONDS = tuple(f"{s:02d}Z" for s in range(60))


def utc_now_iso() -> str:
    return time.strftime(_FORMAT, time.gmtime())


def _format(seconds: int) -> str:
    "``time.strftime(_FORMAT, time.gmtime(seconds))`` for 0 <= seconds <= MAX_EPOCH, faster"
    day, rest = divmod(seconds, 86400)
    prefix = _DAYS.get(day)
    if prefix is None:
        if len(_DAYS) >= _DAYS_MAX:
            _DAYS.clear()
        prefix = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    return prefix + _HOURS_MINUTES[rest // 60] + _SECONDS[rest % 60]


def epoch_to_iso(value) -> str | None:
    "Plex epoch seconds (str or int) to '2026-02-05T10:30:00Z'; None for empty or zero"
    if value.__class__ is str and value.isdigit() and value.isascii():
        # what Plex sends ("1770287400"): the general path below gives the same
        seconds = int(value)
        if 0 < seconds <= MAX_EPOCH:
            day, rest = divmod(seconds, 86400)
            prefix = _DAYS.get(day)
            if prefix is not None:
                return prefix + _HOURS_MINUTES[rest // 60] + _SECONDS[rest % 60]
            return _format(seconds)
        return None
    if value in (None, "", 0, "0"):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        try:
            seconds = int(float(value))
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds <= 0 or seconds > MAX_EPOCH:  # beyond year 3000: garbage
        return None
    return _format(seconds)


def iso_to_epoch(value: str | None) -> int | None:
    "'2026-02-05T10:30:00Z' (``_FORMAT``, what the cache stores) to epoch seconds; None for empty"
    if not value:
        return None
    # fromisoformat, not strptime: a no-change sync need not import _strptime
    # (and locale) for a format this fixed
    if len(value) != 20 or value[10] != "T" or value[19] != "Z":
        raise ValueError(f"time data {value!r} does not match format {_FORMAT!r}")
    return int(datetime.fromisoformat(value[:19]).replace(tzinfo=UTC).timestamp())
