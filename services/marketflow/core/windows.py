"""Durations and the rolling windows of sector gains: one default, parsed in one place."""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_WINDOWS: tuple[str, ...] = ("1m", "5m", "15m", "60m")
DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"
_DURATION = re.compile(r"^([0-9]+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration(text: object) -> int:
    """`"90s"` -> 90000 ms; units ms, s, m, h."""
    match = _DURATION.match(str(text).strip()) if text is not None else None
    if match is None:
        raise ValueError(f"not a duration (number + ms|s|m|h): {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_windows(text: str | Iterable[str], frame_ms: int = 1000) -> tuple[str, ...]:
    """`"1m, 5m,15m"` (or an iterable of names) -> `("1m", "5m", "15m")`.

    Each window must be a positive duration that is a whole number of `frame_ms` frames,
    and named once; blanks between commas are ignored. Raises ValueError naming the window.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    windows: list[str] = []
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        try:
            ms = parse_duration(name)
        except ValueError:
            raise ValueError(f"window {name!r}: not a duration (number + ms|s|m|h)") from None
        if ms <= 0:
            raise ValueError(f"window {name!r}: must be longer than 0")
        if ms % frame_ms:
            raise ValueError(f"window {name} is not a multiple of the frame ({frame_ms} ms)")
        if name in windows:
            raise ValueError(f"window {name!r}: listed twice")
        windows.append(name)
    return tuple(windows)
