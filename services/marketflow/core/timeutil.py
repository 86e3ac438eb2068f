"""Event time: epoch milliseconds, Hong Kong trading dates, RFC 3339 rendering.

Hong Kong has kept UTC+8 without daylight saving since 1979, so a fixed offset is exact
for every date the monitor can see and avoids a tz database lookup on the hot path.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

HKT: Final = dt.timezone(dt.timedelta(hours=8), "HKT")
HKT_OFFSET_MS: Final = 8 * 3600 * 1000
DAY_MS: Final = 86_400_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS: Final = dt.timedelta(milliseconds=1)


def day_number(ts_ms: int) -> int:
    """Days since 1970-01-01 of the Asia/Hong_Kong date of an event time."""
    return (ts_ms + HKT_OFFSET_MS) // DAY_MS


def day_bounds(day: int) -> tuple[int, int]:
    """[start, end) in epoch ms of a Hong Kong trading date given by `day_number`."""
    start = day * DAY_MS - HKT_OFFSET_MS
    return start, start + DAY_MS


def trading_date(ts_ms: int) -> str:
    """The Asia/Hong_Kong date of an event time, as YYYY-MM-DD."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_number(ts_ms))).isoformat()


def from_datetime(value: dt.datetime) -> int:
    """Epoch ms of an aware datetime (exact, no float rounding); naive means Hong Kong."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=HKT)
    return (value - _EPOCH) // _MS


def to_datetime(ts_ms: int) -> dt.datetime:
    return _EPOCH.astimezone(HKT) + dt.timedelta(milliseconds=ts_ms)


def to_rfc3339(ts_ms: int) -> str:
    """RFC 3339 in +08:00 with milliseconds, e.g. 2025-11-24T14:05:00.000+08:00."""
    return to_datetime(ts_ms).isoformat(timespec="milliseconds")


def hkt_clock(ts_ms: int) -> str:
    """HH:MM:SS in Hong Kong time, for people."""
    return to_datetime(ts_ms).strftime("%H:%M:%S")


def day_clock(ts_ms: int, day_start_ms: int) -> str:
    """`THH:MM:SS.mmm+08:00` of an event time within the day starting at `day_start_ms`:
    with the date prefix, the same text as `to_rfc3339`, without datetime objects (the
    `THH:MM:SS` of each second of the day is formatted once)."""
    offset = ts_ms - day_start_ms
    seconds = offset // 1000  # (`//` and `%`: compiled, `divmod` is a generic call)
    text = _CLOCK_SECONDS.get(seconds)
    if text is None:
        if 0 <= seconds < 86_400:  # from tables (formatting a second was ~9k instructions)
            text = _CLOCK_SECONDS[seconds] = (
                _HOURS[seconds // 3600] + _MINUTES_SECONDS[seconds % 3600])
        else:
            hours, rest = divmod(seconds, 3600)
            text = f"T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return text + _MILLIS_HKT[offset % 1000]


_CLOCK_SECONDS: Final[dict[int, str]] = {}
_HOURS: Final = tuple(f"T{h:02d}:" for h in range(24))
_MINUTES_SECONDS: Final = tuple(f"{s // 60:02d}:{s % 60:02d}" for s in range(3600))
_MILLIS_HKT: Final = tuple(f".{m:03d}+08:00" for m in range(1000))
