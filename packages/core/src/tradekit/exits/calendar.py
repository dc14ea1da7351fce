"""The exchange's real trading calendar (holidays, half days) from exchange-calendars."""

from __future__ import annotations

import bisect
import contextlib
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import attrs
import exchange_calendars as xcals
import numpy as np
import numpy.typing as npt
import pandas as pd

_EARLIEST = "1990-01-01"


@attrs.frozen
class Session:
    """One trading session: its date and its open and close in UTC."""

    day: date
    open: datetime
    close: datetime

    def execution_window(self, start_minutes: int, end_minutes: int) -> ExecutionWindow:
        """This session's exit window: open + start .. open + end, cut at the close on a half day."""
        return ExecutionWindow(
            opens_at=self.open + timedelta(minutes=start_minutes),
            closes_at=min(self.open + timedelta(minutes=end_minutes), self.close),
        )


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
        # Session opens and closes as UTC nanoseconds in Python lists, for binary search with
        # the standard library's bisect: asking the calendar for "the next open" builds its
        # index of every trading minute since 1990 (~56 MB), and numpy's searchsorted costs
        # ~1.5 us a scalar call where bisect costs ~0.2 us (a replay asks on every decision).
        with _quiet():
            self._labels = self._cal.sessions
            # Each session's date as a Python date: indexing the pandas labels per call costs ~80 us.
            self._days: list[date] = [label.date() for label in self._labels]
            self._open_ns: list[int] = _utc_nanos(self._cal.opens).tolist()
            self._close_ns: list[int] = _utc_nanos(self._cal.closes).tolist()
        self._sessions: dict[int, Session] = {}

    def next_open(self, after: datetime) -> datetime:
        """The first session open strictly after ``after``."""
        return self._next_session(after).open

    def _next_session(self, after: datetime) -> Session:
        """The first session that opens strictly after ``after``."""
        return self._session(self._at(bisect.bisect_right(self._open_ns, _nanos(after)), after))

    def last_open(self, at: datetime) -> datetime | None:
        """The latest session open at or before ``at`` (None before the calendar's first)."""
        i = bisect.bisect_right(self._open_ns, _nanos(at)) - 1
        return None if i < 0 else self._session(i).open

    def opens_between(self, after: datetime, until: datetime) -> int:
        """How many sessions opened in ``(after, until]``: a daily signal's age in sessions."""
        first = bisect.bisect_right(self._open_ns, _nanos(after))
        last = bisect.bisect_right(self._open_ns, _nanos(until))
        return max(0, last - first)

    def sessions_opened_since(self, since: datetime, until: datetime) -> int:
        """How many sessions opened in ``(start, until]``, where ``start`` is ``since`` or, when
        ``since`` falls between sessions, the next session's open (that open does not count):
        a cooldown's age in sessions. One pass of binary searches (asked on every decision).

        A moment at a session's close is between sessions (that session has closed, as for
        ``last_close``)."""
        since_ns = _nanos(since)
        index = self._at(bisect.bisect_right(self._close_ns, since_ns), since)
        start_ns = max(since_ns, self._open_ns[index])
        opened = bisect.bisect_right(self._open_ns, _nanos(until)) - bisect.bisect_right(self._open_ns, start_ns)
        return max(0, opened)

    def session_of_open(self, opens: datetime) -> Session:
        """The session ``opens`` falls in, or the next one when it falls between sessions.

        The session that opens at ``opens`` when one does: on a calendar whose sessions abut
        (``24/7``, ``CMES``), a session's open is also the previous one's close."""
        at = _nanos(opens)
        i = bisect.bisect_right(self._open_ns, at) - 1
        if i < 0 or at > self._close_ns[i]:
            i += 1  # before the first session, or between two: the next one
        return self._session(self._at(i, opens))

    def last_close(self, at: datetime) -> datetime | None:
        """The latest session close at or before ``at`` (None before the calendar's first)."""
        i = bisect.bisect_right(self._close_ns, _nanos(at)) - 1
        return None if i < 0 else self._session(i).close

    def _at(self, index: int, moment: datetime) -> int:
        if index >= len(self._open_ns):
            raise ValueError(f"{moment.isoformat()} is beyond the {self.name} calendar's last session")
        return index

    def _session(self, index: int) -> Session:
        # Built once per session asked for (immutable): a replay asks for the same few.
        session = self._sessions.get(index)
        if session is None:
            session = self._sessions[index] = Session(
                day=self._days[index],
                open=_from_nanos(self._open_ns[index]),
                close=_from_nanos(self._close_ns[index]),
            )
        return session

    def execution_window(self, decided_at: datetime, start_minutes: int, end_minutes: int) -> ExecutionWindow:
        """The window in the next session after ``decided_at``: open + start .. open + end,
        cut at the session's close on a half day."""
        return self._next_session(decided_at).execution_window(start_minutes, end_minutes)

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _nanos(moment: datetime) -> int:
    """``moment`` as UTC nanoseconds since the epoch (what ``pd.Timestamp(moment).value`` gives,
    in integer arithmetic: a datetime holds whole microseconds)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"calendar times must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND * 1000


def _from_nanos(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _utc_nanos(series: pd.Series[pd.Timestamp]) -> npt.NDArray[np.int64]:
    stamps = pd.DatetimeIndex(series)
    stamps = stamps.tz_convert("UTC") if stamps.tz is not None else stamps.tz_localize("UTC")
    nanos: npt.NDArray[np.int64] = np.array(stamps.asi8, dtype=np.int64)
    return nanos


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
def trading_calendar(name: str = "XNYS") -> TradingCalendar:
    """The calendar of exchange ``name``, built once per process (it is immutable)."""
    return TradingCalendar(name)


@lru_cache(maxsize=8)
def _load(name: str) -> xcals.ExchangeCalendar:
    with _quiet():
        return xcals.get_calendar(name, start=_EARLIEST)
