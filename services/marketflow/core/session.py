"""Hong Kong market session phases (pure: the calendar and the time are passed in).

HKEX securities market, a full day (times Hong Kong):

    09:00-09:30  pre-opening session (order input, matching at 09:20)
    09:30-12:00  morning continuous trading
    12:00-13:00  lunch break
    13:00-16:00  afternoon continuous trading
    16:00-16:10  closing auction session

A half day (Christmas Eve, New Year's Eve, Lunar New Year's Eve) has the morning only,
with the closing auction at 12:00-12:10. Holidays and weekends are closed all day. The
session open, break and close come from a maintained exchange calendar (the
`TradingCalendar` protocol; `marketflow.observe.calendar` adapts exchange-calendars'
XHKG); the pre-opening and closing-auction lengths are HKEX rules, fixed here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from marketflow.core.timeutil import HKT

PRE_OPEN = dt.timedelta(minutes=30)
CLOSING_AUCTION = dt.timedelta(minutes=10)


class Phase(StrEnum):
    PRE_OPEN = "pre_open"
    MORNING = "morning"
    LUNCH = "lunch"
    AFTERNOON = "afternoon"
    CLOSING_AUCTION = "closing_auction"
    CLOSED = "closed"


TRADING_PHASES = frozenset({Phase.MORNING, Phase.AFTERNOON})


class DayKind(StrEnum):
    FULL = "full_day"
    HALF = "half_day"
    HOLIDAY = "holiday"  # a weekday without a session
    WEEKEND = "weekend"


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """One trading day's continuous-trading times (timezone-aware); a half day has no
    break."""

    open: dt.datetime
    close: dt.datetime
    break_start: dt.datetime | None = None
    break_end: dt.datetime | None = None


class TradingCalendar(Protocol):
    def session(self, date: dt.date) -> SessionTimes | None:
        """The session of a Hong Kong date, or None when the market does not open."""
        ...


def day_kind(date: dt.date, session: SessionTimes | None) -> DayKind:
    if session is not None:
        return DayKind.FULL if session.break_start is not None else DayKind.HALF
    return DayKind.WEEKEND if date.weekday() >= 5 else DayKind.HOLIDAY


def phase_at(now: dt.datetime, session: SessionTimes | None) -> Phase:
    """The phase at `now` (aware) given that Hong Kong date's session (None: closed)."""
    if session is None:
        return Phase.CLOSED
    if now < session.open - PRE_OPEN:
        return Phase.CLOSED
    if now < session.open:
        return Phase.PRE_OPEN
    if session.break_start is not None and session.break_end is not None:
        if now < session.break_start:
            return Phase.MORNING
        if now < session.break_end:
            return Phase.LUNCH
        if now < session.close:
            return Phase.AFTERNOON
    elif now < session.close:
        return Phase.MORNING
    if now < session.close + CLOSING_AUCTION:
        return Phase.CLOSING_AUCTION
    return Phase.CLOSED


def market_phase(now: dt.datetime, calendar: TradingCalendar) -> tuple[Phase, DayKind]:
    """Phase and kind of day at `now` (aware), by the Hong Kong date of `now`."""
    date = now.astimezone(HKT).date()
    session = calendar.session(date)
    return phase_at(now, session), day_kind(date, session)
