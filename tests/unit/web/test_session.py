"""The Hong Kong session phase by the regular timetable, and the board's status."""

from __future__ import annotations

import datetime as dt

import pytest

from marketflow.core.timeutil import HKT
from marketflow.web.session import board_status, session_phase

MONDAY = dt.date(2025, 11, 24)


@pytest.mark.parametrize(("clock", "phase"), [
    ("00:00", "closed"), ("08:59:59", "closed"), ("09:00", "pre-opening"),
    ("09:29:59", "pre-opening"), ("09:30", "morning"), ("11:59:59", "morning"),
    ("12:00", "lunch"), ("13:00", "afternoon"), ("15:59:59", "afternoon"),
    ("16:00", "closing-auction"), ("16:09:59", "closing-auction"), ("16:10", "closed"),
    ("23:59", "closed"),
])
def test_phase_on_a_weekday(clock: str, phase: str) -> None:
    moment = dt.datetime.combine(MONDAY, dt.time.fromisoformat(clock), HKT)
    assert session_phase(moment)[0] == phase


def test_phase_at_weekends_and_in_utc() -> None:
    saturday = dt.datetime(2025, 11, 22, 10, 0, tzinfo=HKT)
    assert session_phase(saturday) == ("closed", "Closed (weekend)")
    # 02:00 UTC is 10:00 in Hong Kong
    assert session_phase(dt.datetime(2025, 11, 24, 2, 0, tzinfo=dt.UTC))[0] == "morning"


def test_status_live_and_replay() -> None:
    now = dt.datetime(2025, 11, 24, 14, 0, 1, 500_000, tzinfo=HKT)
    live = board_status(now, "2025-11-24T14:00:00.000+08:00", "2025-11-24")
    assert live["live"] is True and live["delay_s"] == 1.5 and live["phase"] == "afternoon"
    later = now + dt.timedelta(days=2)
    replay = board_status(later, "2025-11-24T14:00:00.000+08:00", "2025-11-24")
    assert replay["live"] is False and replay["data_phase"] == "afternoon"
    empty = board_status(now, None, None)
    assert empty["delay_s"] is None and empty["data_ts"] is None
