"""The exchange's real trading calendar (holidays, half days) from exchange-calendars.

Building an exchange's calendar with exchange-calendars costs ~0.3-0.4 s of pandas work, paid
by every process that trades, replays or answers a command. What tradekit reads of it is a
small table (each session's day, open and close), so that table is kept in the user's cache
(``$XDG_CACHE_HOME/tradekit/calendars``, ``~/.cache`` when unset) under a name that says which
exchange-calendars version built it and on which day (exchange-calendars extends every
calendar one year past the day it is built). A process finds it there and reads it in a few
milliseconds; a table that is missing, from another day or version, or unreadable is built
again and written over (a cache that cannot be written is simply not kept).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import tempfile
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import exchange_calendars as xcals
import numpy as np
import numpy.typing as npt
import pandas as pd

from tradekit.broker.protocol import MarketClock
from tradekit.user_cache import NoCacheDirectory, user_cache_dir

_EARLIEST = "1990-01-01"
# The layout of a kept session table (the cache's file names carry it).
_TABLE_FORMAT = 1
# How much of exchange-calendars' reason a calendar cannot be built for is repeated (some
# list every special date they reject).
_MAX_REASON = 200


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


class TradingCalendar:
    """Sessions of one exchange (``XNYS`` by default), holidays and half days included."""

    def __init__(self, name: str = "XNYS", *, env: Mapping[str, str] | None = None) -> None:
        table = _session_table(name, os.environ if env is None else env)
        self.name = name
        self.tz = ZoneInfo(table.tz)
        # Session opens and closes as UTC nanoseconds in Python lists, for binary search with
        # the standard library's bisect: asking the calendar for "the next open" builds its
        # index of every trading minute since 1990 (~56 MB), and numpy's searchsorted costs
        # ~1.5 us a scalar call where bisect costs ~0.2 us (a replay asks on every decision).
        self._days: list[date] = [date.fromordinal(d) for d in table.days.tolist()]
        self._open_ns: list[int] = table.opens.tolist()
        self._close_ns: list[int] = table.closes.tolist()
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

        A moment at a session's close is in that session (a fill in the closing auction, a
        daily bar stamped at the close): the next session's open counts."""
        since_ns = _nanos(since)
        index = self._at(bisect.bisect_left(self._close_ns, since_ns), since)
        start_ns = max(since_ns, self._open_ns[index])
        opened = bisect.bisect_right(self._open_ns, _nanos(until)) - bisect.bisect_right(self._open_ns, start_ns)
        return max(0, opened)

    def open_sessions_back(self, at: datetime, count: int) -> datetime:
        """The open of the session ``count`` sessions before the last one to open at or before
        ``at`` (the calendar's first open when there are fewer): where ``count`` sessions of
        daily bars before ``at`` start."""
        i = bisect.bisect_right(self._open_ns, _nanos(at)) - 1 - count
        return self._session(max(0, i)).open

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

    def market_clock(self, now: datetime) -> MarketClock:
        """The market's clock at ``now``, as a broker reports it (the paper broker's session
        clock in every run, so its DAY orders expire and its market-on-close orders fill at
        the closes the session driver works to).

        Open when a session contains ``now`` (its open included, its close not: on a calendar
        whose sessions abut, ``24/7``, the session opening at ``now``); ``next_open`` the first
        session open strictly after ``now``; ``next_close`` the close of the session ``now`` is
        in or, when the market is closed, of the next one."""
        at = _nanos(now)
        following = bisect.bisect_right(self._open_ns, at)  # the first session opening after now
        current = following - 1
        is_open = current >= 0 and at < self._close_ns[current]
        upcoming = self._session(self._at(following, now))
        return MarketClock(
            now=now,
            is_open=is_open,
            next_open=upcoming.open,
            next_close=self._session(current).close if is_open else upcoming.close,
        )

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

    def session_after(self, decided_at: datetime) -> Session:
        """The session in which what was decided at ``decided_at`` is acted on: the first to
        open after it, or the one opening at that very moment when it is also a session's
        close. On a calendar whose sessions abut (``24/7``), a signal made at day D's close,
        00:00 UTC of D+1, is acted on in D+1's session, which opens then, not a day later."""
        return self._session(self._index_after(decided_at))

    def _index_after(self, decided_at: datetime) -> int:
        at = _nanos(decided_at)
        i = bisect.bisect_right(self._open_ns, at)  # the first session opening strictly after
        if i >= 2 and self._open_ns[i - 1] == at and self._close_ns[i - 2] == at:
            i -= 1
        return self._at(i, decided_at)

    def execution_window(self, decided_at: datetime, start_minutes: int, end_minutes: int) -> ExecutionWindow:
        """The exit window for what was decided at ``decided_at``: open + start .. open + end,
        cut at the close on a half day, in the session after it (``session_after``) or, when
        the window would open only once that session has closed (a late window on a half
        day), in the first session after it where it opens before the close. A session
        without a window is no window missed: the live trader and the replay send nothing
        in it, and an exit waits for the next window instead of being escalated (expired,
        under ``exits.on_missed_window = "expire"``) without ever being tried."""
        i = self._index_after(decided_at)
        start = start_minutes * 60_000_000_000
        while self._open_ns[i] + start >= self._close_ns[i]:
            i = self._at(i + 1, decided_at)
        return self._session(i).execution_window(start_minutes, end_minutes)

    def longest_session(self) -> timedelta:
        """How long the calendar's longest session lasts, open to close (an exit window
        opening this long after the open or later never opens in any session)."""
        longest = max(close - opened for opened, close in zip(self._open_ns, self._close_ns, strict=True))
        return timedelta(microseconds=longest // 1000)

    def sessions(self, start: date, end: date) -> list[Session]:
        """Every session from ``start`` to ``end`` inclusive (both within the calendar)."""
        self._check_day("start", start)
        self._check_day("end", end)
        first, stop = bisect.bisect_left(self._days, start), bisect.bisect_right(self._days, end)
        return [self._session(i) for i in range(first, stop)]

    def session_of_bar(self, stamped: datetime) -> Session | None:
        """The session of the daily bar stamped at ``stamped``; None for a bar on a day the
        exchange had no session (bad data).

        A bar is stamped at its session's close: at it, or within the session, the bar is that
        session's. On a calendar whose sessions abut (``24/7``: midnight to midnight UTC, the
        way a crypto venue's daily candle is stamped), a close is also the next session's open,
        and the bar is the session's that closes then. A bar stamped after its session's close
        but before the next open is that session's when it is of the same day in the
        exchange's time zone: a half day's bar stamped at the regular close. The replay and the
        live trader both match bars to sessions by this rule."""
        at = _nanos(stamped)
        self._check_day("bar", stamped.astimezone(self.tz).date())
        i = bisect.bisect_left(self._open_ns, at) - 1  # the last session open strictly before
        if i < 0:
            return None
        if at <= self._close_ns[i]:
            return self._session(i)
        session = self._session(i)
        same_day = session.close.astimezone(self.tz).date() == stamped.astimezone(self.tz).date()
        return session if same_day else None

    def is_session(self, day: date) -> bool:
        self._check_day("date", day)
        i = bisect.bisect_left(self._days, day)
        return i < len(self._days) and self._days[i] == day

    def _check_day(self, what: str, day: date) -> None:
        first, last = self._days[0], self._days[-1]
        if not first <= day <= last:
            raise ValueError(
                f"{what} {day.isoformat()} is outside the {self.name} calendar "
                f"({first.isoformat()} to {last.isoformat()})"
            )

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


@attrs.frozen
class _SessionTable:
    """What tradekit reads of an exchange's calendar: each session's day (a proleptic
    ordinal), open and close (UTC nanoseconds), and the exchange's time zone."""

    days: npt.NDArray[np.int64]
    opens: npt.NDArray[np.int64]
    closes: npt.NDArray[np.int64]
    tz: str


def _session_table(name: str, env: Mapping[str, str]) -> _SessionTable:
    """The calendar's table from the cache when it holds this day's, else built and kept."""
    path = _table_path(name, env)
    table = None if path is None or not path.exists() else _read_table(path)
    if table is None:
        table = _build_table(name)
        if path is not None:
            _write_table(path, table)
    return table


def _table_path(name: str, env: Mapping[str, str]) -> Path | None:
    """Where this process's table of ``name`` is kept (None: no cache directory to be had).

    The name says all that makes the table what it is: the exchange (quoted, so no two names
    share a file), the table's layout, the versions of exchange-calendars, pandas and the
    time-zone data that computed it, and the last day exchange-calendars builds calendars to
    in this process (a year after the day it was imported)."""
    try:
        directory = user_cache_dir("calendars", env=env)
    except NoCacheDirectory:
        return None  # the table is built in every process instead
    stamp = "@".join(
        (
            f"t{_TABLE_FORMAT}",
            xcals.__version__,
            pd.__version__,
            _tzdata_version(),
            _EARLIEST,
            _default_end().isoformat(),
        )
    )
    return directory / f"{urllib.parse.quote(name, safe='')}@{stamp}.npz"


def _default_end() -> date:
    from exchange_calendars.exchange_calendar import GLOBAL_DEFAULT_END

    end: date = GLOBAL_DEFAULT_END.date()
    return end


@lru_cache(maxsize=1)
def _tzdata_version() -> str:
    try:
        return metadata.version("tzdata")
    except metadata.PackageNotFoundError:
        return "system"


def _build_table(name: str) -> _SessionTable:
    try:
        cal = _load(name)
    except xcals.errors.InvalidCalendarName:
        raise ValueError(f"unknown exchange calendar {name!r}; e.g. XNYS, XNAS, XLON") from None
    except Exception as exc:  # noqa: BLE001 -- whatever exchange-calendars raises building it
        what = " ".join(f"{type(exc).__name__}: {exc}".split())
        if len(what) > _MAX_REASON:
            what = what[: _MAX_REASON - 3] + "..."
        raise ValueError(
            f"exchange calendar {name!r} cannot be built by exchange-calendars {xcals.__version__} ({what})"
        ) from None
    with _quiet():
        days = np.array([label.date().toordinal() for label in cal.sessions], dtype=np.int64)
        return _SessionTable(days=days, opens=_utc_nanos(cal.opens), closes=_utc_nanos(cal.closes), tz=str(cal.tz))


def _read_table(path: Path) -> _SessionTable | None:
    """The table kept at ``path``; None when it cannot be trusted (the file is then removed: it
    is built again and written over)."""
    table = _load_table(path)
    if table is None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    return table


def _load_table(path: Path) -> _SessionTable | None:
    try:
        with path.open("rb") as file:  # closed here whatever np.load makes of it
            kept = np.load(file, allow_pickle=False)
            if not isinstance(kept, np.lib.npyio.NpzFile):
                return None
            with kept:
                table = _SessionTable(days=kept["days"], opens=kept["opens"], closes=kept["closes"], tz=str(kept["tz"]))
        ZoneInfo(table.tz)
    except Exception:  # noqa: BLE001 -- whatever a damaged file raises (zip, numpy, zoneinfo): built again
        return None
    arrays = (table.days, table.opens, table.closes)
    n = len(table.days)
    if n == 0 or any(a.dtype != np.int64 or a.shape != (n,) for a in arrays):
        return None
    if not (np.all(np.diff(table.days) > 0) and np.all(table.opens < table.closes)):
        return None
    return table


def _write_table(path: Path, table: _SessionTable) -> None:
    """Keep ``table`` at ``path`` (written whole, then renamed into place) and drop the
    calendar's older tables; a cache that cannot be written is left alone."""
    written: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as out:
            written = out.name
            np.savez(out, days=table.days, opens=table.opens, closes=table.closes, tz=np.array(table.tz))
        os.replace(written, path)
        stem = path.name.split("@", 1)[0]  # the quoted name holds no "@"
        for older in path.parent.glob(f"{stem}@*.npz"):
            if older != path:
                older.unlink(missing_ok=True)
    except OSError:
        if written is not None:
            with contextlib.suppress(OSError):
                os.unlink(written)


@lru_cache(maxsize=8)
def _load(name: str) -> xcals.ExchangeCalendar:
    """The calendar ``name`` from 1990, or, when exchange-calendars cannot evaluate it that
    far back (XTKS from 1997, AIXK, XSAU; XSHG's holidays from 1991), from the earliest day it
    declares it can (else from its own default start, twenty years back)."""
    with _quiet():
        try:
            return xcals.get_calendar(name, start=_EARLIEST)
        except xcals.errors.InvalidCalendarName:
            raise
        except ValueError:
            recent = xcals.get_calendar(name)
        earliest = type(recent).bound_min()
        if earliest is None or earliest >= recent.first_session:
            return recent
        try:
            return xcals.get_calendar(name, start=earliest)
        except ValueError:
            return recent
