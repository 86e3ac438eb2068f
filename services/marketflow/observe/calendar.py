"""The Hong Kong exchange calendar from exchange-calendars (XHKG), as a `TradingCalendar`.

XHKG is maintained upstream (holidays, typhoon-free half days on Christmas Eve, New Year's
Eve and Lunar New Year's Eve, the 12:00-13:00 lunch break). Its range ends about a year
after the package's release: a date past it raises `CalendarOutOfRange` rather than
guessing, and the worker then reports the phase as unknown (every phase 0).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from marketflow.core.session import SessionTimes


class CalendarOutOfRange(LookupError):
    pass


class ExchangeCalendar:
    """`TradingCalendar` over an exchange_calendars calendar (XHKG by default); one
    session looked up per date, cached."""

    def __init__(self, code: str = "XHKG", calendar: Any = None) -> None:
        if calendar is None:
            import exchange_calendars

            calendar = exchange_calendars.get_calendar(code)
        self.calendar = calendar
        self.code = code
        self._cached = functools.lru_cache(maxsize=32)(self._session)

    def session(self, date: dt.date) -> SessionTimes | None:
        return self._cached(date)

    def _session(self, date: dt.date) -> SessionTimes | None:
        import pandas as pd

        cal = self.calendar
        day = pd.Timestamp(date)
        if not cal.first_session <= day <= cal.last_session:
            raise CalendarOutOfRange(
                f"{date} is outside the {self.code} calendar "
                f"({cal.first_session.date()} .. {cal.last_session.date()}); "
                "upgrade exchange-calendars")
        if not cal.is_session(day):
            return None
        break_start, break_end = cal.session_break_start(day), cal.session_break_end(day)
        return SessionTimes(
            open=cal.session_open(day).to_pydatetime(),
            close=cal.session_close(day).to_pydatetime(),
            break_start=None if pd.isna(break_start) else break_start.to_pydatetime(),
            break_end=None if pd.isna(break_end) else break_end.to_pydatetime(),
        )
