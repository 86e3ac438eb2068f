"""The Hong Kong exchange calendar from exchange-calendars (XHKG), as a `TradingCalendar`.

XHKG is maintained upstream (holidays, typhoon-free half days on Christmas Eve, New Year's
Eve and Lunar New Year's Eve, the 12:00-13:00 lunch break). Its range ends about a year
after the package's release: a date past it raises `CalendarOutOfRange` rather than
guessing, and the worker then reports the phase as unknown (every phase 0).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from typing import Any

from marketflow.core.session import SessionTimes


class CalendarOutOfRange(LookupError):
    pass


class CalendarUnavailable(LookupError):
    """The calendar could not be loaded (an unknown code, the package missing): the
    worker reports the session phase as unknown, and says why once."""


class ExchangeCalendar:
    """`TradingCalendar` over an exchange_calendars calendar (XHKG by default); one
    session looked up per date, cached.

    Importing exchange_calendars (and pandas) and building the calendar takes a second or
    two of a worker's start: given no `calendar`, it is done on a thread started here, and
    the first lookup waits for it (by then the worker has usually joined its group). A
    failure to load is raised by the lookups as `CalendarUnavailable`."""

    def __init__(self, code: str = "XHKG", calendar: Any = None) -> None:
        self.code = code
        self.calendar = calendar
        self._error: CalendarUnavailable | None = None
        self._loader: threading.Thread | None = None
        if calendar is None:
            self._loader = threading.Thread(target=self._load, name=f"calendar-{code}",
                                            daemon=True)
            self._loader.start()
        self._cached = functools.lru_cache(maxsize=32)(self._session)

    def _load(self) -> None:
        try:
            import exchange_calendars

            self.calendar = exchange_calendars.get_calendar(self.code)
        except Exception as error:  # (raised by the lookups)
            self._error = CalendarUnavailable(
                f"the {self.code} calendar cannot be loaded: {type(error).__name__}: {error}")

    def session(self, date: dt.date) -> SessionTimes | None:
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        if self._error is not None:
            raise self._error
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
