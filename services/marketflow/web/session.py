"""The Hong Kong trading session's phase and how far behind the data is (pure).

The regular HKEX timetable for securities: pre-opening session 09:00-09:30, morning
continuous trading 09:30-12:00, lunch break 12:00-13:00, afternoon 13:00-16:00, closing
auction session 16:00-16:10 (random close within its last two minutes), closed otherwise
and at weekends. Holidays and half days (Christmas, New Year's and Lunar New Year's eves:
no afternoon) are not known here: on those days the phase follows the regular timetable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marketflow.core.timeutil import HKT

# (start, phase, label) in order; the phase runs until the next start.
TIMETABLE: tuple[tuple[dt.time, str, str], ...] = (
    (dt.time(0, 0), "closed", "Closed (before the open)"),
    (dt.time(9, 0), "pre-opening", "Pre-opening session"),
    (dt.time(9, 30), "morning", "Morning session"),
    (dt.time(12, 0), "lunch", "Lunch break"),
    (dt.time(13, 0), "afternoon", "Afternoon session"),
    (dt.time(16, 0), "closing-auction", "Closing auction"),
    (dt.time(16, 10), "closed", "Closed"),
)
TRADING_PHASES = frozenset({"pre-opening", "morning", "afternoon", "closing-auction"})


def session_phase(moment: dt.datetime) -> tuple[str, str]:
    """(phase, label) of the regular timetable at an aware moment (converted to HKT)."""
    local = moment.astimezone(HKT)
    if local.weekday() >= 5:
        return "closed", "Closed (weekend)"
    clock = local.time()
    phase, label = TIMETABLE[0][1], TIMETABLE[0][2]
    for start, name, text in TIMETABLE:
        if clock >= start:
            phase, label = name, text
    return phase, label


def board_status(now: dt.datetime, data_ts: str | None, trading_date: str | None,
                 ) -> dict[str, Any]:
    """What the page's header shows: the session now, the data's time and delay.

    `live` is true when the data is of today's Hong Kong date: then `delay_s` (wall clock
    minus the newest event time) is the feed's delay. Otherwise the board is showing an
    earlier day (a replay or last session's close) and the phase of the data's own time is
    given as `data_phase`."""
    now_hk = now.astimezone(HKT)
    phase, label = session_phase(now_hk)
    status: dict[str, Any] = {
        "now": now_hk.isoformat(timespec="milliseconds"), "phase": phase,
        "phase_label": label, "trading_date": trading_date, "data_ts": data_ts,
        "delay_s": None, "live": False, "data_phase": None, "data_phase_label": None,
    }
    if data_ts is None:
        return status
    data_time = dt.datetime.fromisoformat(data_ts)
    status["delay_s"] = round((now_hk - data_time).total_seconds(), 3)
    status["live"] = trading_date == now_hk.date().isoformat()
    status["data_phase"], status["data_phase_label"] = session_phase(data_time)
    return status
