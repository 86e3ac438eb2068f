"""Session phases: table-driven against fixed sessions, and against the real XHKG calendar
for a full day, a half day, a holiday and a weekend."""

from __future__ import annotations

import datetime as dt

import pytest

from marketflow.core.session import DayKind, Phase, SessionTimes, day_kind, market_phase, phase_at
from marketflow.core.timeutil import HKT
from marketflow.observe.calendar import CalendarOutOfRange, CalendarUnavailable, ExchangeCalendar


def hkt(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=HKT)


FULL = SessionTimes(open=hkt("2025-11-24 09:30"), close=hkt("2025-11-24 16:00"),
                    break_start=hkt("2025-11-24 12:00"), break_end=hkt("2025-11-24 13:00"))
HALF = SessionTimes(open=hkt("2025-12-24 09:30"), close=hkt("2025-12-24 12:00"))


@pytest.mark.parametrize(("session", "at", "phase"), [
    (FULL, "2025-11-24 08:59:59", Phase.CLOSED),
    (FULL, "2025-11-24 09:00", Phase.PRE_OPEN),
    (FULL, "2025-11-24 09:29:59", Phase.PRE_OPEN),
    (FULL, "2025-11-24 09:30", Phase.MORNING),
    (FULL, "2025-11-24 11:59:59", Phase.MORNING),
    (FULL, "2025-11-24 12:00", Phase.LUNCH),
    (FULL, "2025-11-24 12:59:59", Phase.LUNCH),
    (FULL, "2025-11-24 13:00", Phase.AFTERNOON),
    (FULL, "2025-11-24 15:59:59", Phase.AFTERNOON),
    (FULL, "2025-11-24 16:00", Phase.CLOSING_AUCTION),
    (FULL, "2025-11-24 16:09:59", Phase.CLOSING_AUCTION),
    (FULL, "2025-11-24 16:10", Phase.CLOSED),
    (HALF, "2025-12-24 09:15", Phase.PRE_OPEN),
    (HALF, "2025-12-24 11:00", Phase.MORNING),
    (HALF, "2025-12-24 12:05", Phase.CLOSING_AUCTION),
    (HALF, "2025-12-24 12:30", Phase.CLOSED),
    (HALF, "2025-12-24 14:00", Phase.CLOSED),
    (None, "2025-12-25 10:00", Phase.CLOSED),
])
def test_phase_at(session: SessionTimes | None, at: str, phase: Phase) -> None:
    assert phase_at(hkt(at), session) is phase


def test_day_kind() -> None:
    assert day_kind(dt.date(2025, 11, 24), FULL) is DayKind.FULL
    assert day_kind(dt.date(2025, 12, 24), HALF) is DayKind.HALF
    assert day_kind(dt.date(2025, 12, 25), None) is DayKind.HOLIDAY
    assert day_kind(dt.date(2025, 11, 22), None) is DayKind.WEEKEND


@pytest.fixture(scope="module")
def xhkg() -> ExchangeCalendar:
    return ExchangeCalendar("XHKG")


@pytest.mark.parametrize(("at", "phase", "kind"), [
    ("2025-11-24 09:10", Phase.PRE_OPEN, DayKind.FULL),
    ("2025-11-24 10:00", Phase.MORNING, DayKind.FULL),
    ("2025-11-24 12:30", Phase.LUNCH, DayKind.FULL),
    ("2025-11-24 14:00", Phase.AFTERNOON, DayKind.FULL),
    ("2025-11-24 16:05", Phase.CLOSING_AUCTION, DayKind.FULL),
    ("2025-11-24 20:00", Phase.CLOSED, DayKind.FULL),
    ("2025-12-24 11:00", Phase.MORNING, DayKind.HALF),       # Christmas Eve: morning only
    ("2025-12-24 13:30", Phase.CLOSED, DayKind.HALF),
    ("2025-12-25 10:00", Phase.CLOSED, DayKind.HOLIDAY),     # Christmas Day
    ("2026-02-17 10:00", Phase.CLOSED, DayKind.HOLIDAY),     # Lunar New Year
    ("2025-11-22 10:00", Phase.CLOSED, DayKind.WEEKEND),
])
def test_xhkg(xhkg: ExchangeCalendar, at: str, phase: Phase, kind: DayKind) -> None:
    assert market_phase(hkt(at), xhkg) == (phase, kind)


def test_utc_time_uses_the_hong_kong_date(xhkg: ExchangeCalendar) -> None:
    # 2025-11-23 18:00 UTC is Monday 02:00 in Hong Kong: a trading day, closed at that hour
    at = dt.datetime(2025, 11, 23, 18, 0, tzinfo=dt.UTC)
    assert market_phase(at, xhkg) == (Phase.CLOSED, DayKind.FULL)


def test_a_calendar_that_cannot_load_says_so_at_its_lookups() -> None:
    """(it loads on a thread: a worker starts without waiting for pandas)"""
    unknown = ExchangeCalendar("NO-SUCH")
    for _ in range(2):
        with pytest.raises(CalendarUnavailable, match=r"NO-SUCH.*InvalidCalendarName"):
            unknown.session(dt.date(2025, 11, 24))


def test_outside_the_calendar_raises(xhkg: ExchangeCalendar) -> None:
    with pytest.raises(CalendarOutOfRange, match="upgrade exchange-calendars"):
        xhkg.session(dt.date(1990, 1, 2))
