"""The exchange's real trading calendar (holidays, half days) from exchange-calendars."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import attrs
import exchange_calendars as xcals
import pandas as pd

_EARLIEST = "1990-01-01"


@attrs.frozen
class Session:
    """One trading session: its date and its open and close in UTC."""

    day: date
    open: datetime
    close: datetime


@attrs.frozen
class ExecutionWindow:
    opens_at: datetime
    closes_at: datetime

    def contains(self, moment: datetime) -> bool:
        return self.opens_at <= moment <= self.closes_at


def _utc(ts: pd.Timestamp) -> datetime:
    result: datetime = ts.to_pydatetime().astimezone(UTC)
    return result


class TradingCalendar:
    """Sessions of one exchange (``XNYS`` by default), holidays and half days included."""

    def __init__(self, name: str = "XNYS") -> None:
        try:
            self._cal = _load(name)
        except xcals.errors.InvalidCalendarName:
            raise ValueError(f"unknown exchange calendar {name!r}; e.g. XNYS, XNAS, XLON") from None
        self.name = name
        self.tz = ZoneInfo(str(self._cal.tz))

    def next_open(self, after: datetime) -> datetime:
        """The first session open strictly after ``after``."""
        with _quiet():
            return _utc(self._cal.next_open(pd.Timestamp(after)))

    def session_of_open(self, opens: datetime) -> Session:
        with _quiet():
            session = self._cal.minute_to_session(pd.Timestamp(opens), direction="next")
            return self._session(session)

    def _session(self, label: pd.Timestamp) -> Session:
        return Session(
            day=label.date(),
            open=_utc(self._cal.session_open(label)),
            close=_utc(self._cal.session_close(label)),
        )

    def execution_window(self, decided_at: datetime, start_minutes: int, end_minutes: int) -> ExecutionWindow:
        """The window in the next session after ``decided_at``: open + start .. open + end,
        cut at the session's close on a half day."""
        opens = self.next_open(decided_at)
        session = self.session_of_open(opens)
        return ExecutionWindow(
            opens_at=opens + timedelta(minutes=start_minutes),
            closes_at=min(opens + timedelta(minutes=end_minutes), session.close),
        )

    def sessions(self, start: date, end: date) -> list[Session]:
        """Every session from ``start`` to ``end`` inclusive."""
        with _quiet():
            labels = self._cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
            opens = self._cal.opens[labels]
            closes = self._cal.closes[labels]
        return [
            Session(day=label.date(), open=_utc(o), close=_utc(c))
            for label, o, c in zip(labels, opens, closes, strict=True)
        ]

    def is_session(self, day: date) -> bool:
        with _quiet():
            return bool(self._cal.is_session(pd.Timestamp(day)))

    def day_start(self, moment: datetime) -> datetime:
        """Midnight, in the exchange's time zone, of the trading day containing ``moment``."""
        local = moment.astimezone(self.tz)
        return datetime.combine(local.date(), time(0), tzinfo=self.tz).astimezone(UTC)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # exchange-calendars still reads .values of tz-aware pandas data, which pandas 3.1
        # deprecates; the values it gets are correct and the warning is not ours to act on.
        warnings.filterwarnings(
            "ignore", message=r"(Series|DatetimeIndex)\.values returning an ndarray that drops timezone"
        )
        yield


@lru_cache(maxsize=8)
def _load(name: str) -> xcals.ExchangeCalendar:
    with _quiet():
        return xcals.get_calendar(name, start=_EARLIEST)
