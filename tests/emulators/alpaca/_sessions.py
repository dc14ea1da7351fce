"""Market sessions of the emulated exchange: real NYSE sessions, or the days a test configured.

The emulator's simulated clock derives ``GET /v2/clock``, order expiry and the data API's
horizon from these sessions. They come from exchange-calendars directly, not from tradekit's
own calendar: the emulator must not share code with the trader it checks.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class SessionTimes:
    """One trading session: its day and its regular open and close, in UTC."""

    day: date
    open: datetime
    close: datetime


@lru_cache(maxsize=1)
def _nyse() -> tuple[SessionTimes, ...]:
    with warnings.catch_warnings():
        # exchange-calendars reads .values of tz-aware pandas data, which recent pandas
        # deprecates; the values are right and the warning is not the emulator's to act on.
        warnings.filterwarnings("ignore", message=r"(Series|DatetimeIndex)\.values returning")
        calendar = xcals.get_calendar("XNYS", start="2015-01-01")
        schedule = calendar.schedule
        opens = pd.DatetimeIndex(schedule["open"])
        closes = pd.DatetimeIndex(schedule["close"])
        labels = pd.DatetimeIndex(schedule.index)
    if opens.tz is None:
        opens = opens.tz_localize("UTC")
        closes = closes.tz_localize("UTC")
    return tuple(
        SessionTimes(label.date(), o.to_pydatetime().astimezone(UTC), c.to_pydatetime().astimezone(UTC))
        for label, o, c in zip(labels, opens, closes, strict=True)
    )


class Sessions:
    """An ordered list of sessions with the lookups the simulated clock needs."""

    def __init__(self, sessions: Iterable[SessionTimes]) -> None:
        self._sessions = sorted(sessions, key=lambda s: s.open)
        self._opens = [s.open for s in self._sessions]
        self._closes = [s.close for s in self._sessions]

    @classmethod
    def nyse(cls) -> Sessions:
        """Return the real NYSE sessions (holidays and half days included)."""
        return cls(_nyse())

    def at(self, moment: datetime) -> SessionTimes | None:
        """Return the session open at ``moment`` (open <= moment < close), or None."""
        index = bisect.bisect_right(self._opens, moment) - 1
        if index >= 0 and moment < self._closes[index]:
            return self._sessions[index]
        return None

    def next_open(self, moment: datetime) -> datetime:
        """Return the first session open strictly after ``moment``."""
        index = bisect.bisect_right(self._opens, moment)
        if index >= len(self._opens):
            raise ValueError(f"no session opens after {moment.isoformat()} in the emulator's calendar")
        return self._opens[index]

    def next_close(self, moment: datetime) -> datetime:
        """Return the first session close strictly after ``moment``."""
        index = bisect.bisect_right(self._closes, moment)
        if index >= len(self._closes):
            raise ValueError(f"no session closes after {moment.isoformat()} in the emulator's calendar")
        return self._closes[index]

    def last_closed(self, moment: datetime) -> SessionTimes | None:
        """Return the latest session whose close is at or before ``moment``."""
        index = bisect.bisect_right(self._closes, moment) - 1
        return self._sessions[index] if index >= 0 else None

    def by_day(self, day: date) -> SessionTimes | None:
        """Return the session of a calendar day, if the exchange trades that day."""
        moment = datetime.combine(day, datetime.min.time(), NEW_YORK).astimezone(UTC)
        index = bisect.bisect_left(self._opens, moment)
        if index < len(self._sessions) and self._sessions[index].day == day:
            return self._sessions[index]
        return None

    def boundaries(self, after: datetime, until: datetime) -> list[tuple[datetime, bool]]:
        """Return the opens (True) and closes (False) in (after, until], in time order."""
        found: list[tuple[datetime, bool]] = []
        start = bisect.bisect_right(self._opens, after - timedelta(days=1))
        for session in self._sessions[start:]:
            if session.open > until:
                break
            if after < session.open <= until:
                found.append((session.open, True))
            if after < session.close <= until:
                found.append((session.close, False))
        return sorted(found)

    def between(self, first: date, last: date) -> list[SessionTimes]:
        """Return the sessions whose day is within first..last inclusive."""
        return [s for s in self._sessions if first <= s.day <= last]
