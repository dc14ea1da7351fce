"""The trading calendar's own session lookups agree with exchange-calendars everywhere."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.exits import calendar as calendar_module
from tradekit.exits.calendar import TradingCalendar, _quiet

# hypothesis takes naive bounds and attaches the zone itself.
NAIVE_FIRST, NAIVE_LAST = datetime(1995, 1, 1), datetime(2027, 6, 30)  # noqa: DTZ001
moments = st.datetimes(min_value=NAIVE_FIRST, max_value=NAIVE_LAST, timezones=st.just(UTC)).map(
    lambda m: m.replace(second=0, microsecond=0)
)


@pytest.fixture(scope="module")
def reference() -> xcals.ExchangeCalendar:
    with _quiet():
        return xcals.get_calendar("XNYS", start="1990-01-01")


@settings(max_examples=300, deadline=None)
@given(moment=moments)
def test_next_open_and_its_session_match_exchange_calendars(
    reference: xcals.ExchangeCalendar, moment: datetime
) -> None:
    ours = TradingCalendar("XNYS")
    with _quiet():
        expected_open = reference.next_open(pd.Timestamp(moment)).to_pydatetime().astimezone(UTC)
        label = reference.minute_to_session(pd.Timestamp(expected_open), direction="next")
        expected_close = reference.session_close(label).to_pydatetime().astimezone(UTC)
    assert ours.next_open(moment) == expected_open
    session = ours.session_of_open(expected_open)
    assert session.day == label.date()
    assert session.open == expected_open
    assert session.close == expected_close


def test_windows_on_holidays_and_half_days() -> None:
    cal = TradingCalendar("XNYS")
    # Decided after the close on Wednesday 2023-07-03 (a half day, closes 17:00 UTC):
    # Independence Day is a holiday, so the window is on Wednesday the 5th.
    window = cal.execution_window(datetime(2023, 7, 3, 18, tzinfo=UTC), 5, 30)
    assert window.opens_at == datetime(2023, 7, 5, 13, 35, tzinfo=UTC)
    # Decided on the morning of the half day: its window ends at the early close.
    early = cal.execution_window(datetime(2023, 7, 3, 13, tzinfo=UTC), 5, 300)
    assert early.closes_at == datetime(2023, 7, 3, 17, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(moment=moments, start=st.integers(0, 120), length=st.integers(0, 600))
def test_a_sessions_own_window_is_the_window_decided_just_before_its_open(
    moment: datetime, start: int, length: int
) -> None:
    """The replay takes each session's exit window from the session it walks
    (``Session.execution_window``); it must be the calendar's window for an exit decided
    just before that open, half days (cut at the early close) included."""
    cal = TradingCalendar("XNYS")
    session = cal.session_of_open(cal.next_open(moment))
    listed = {s.day: s for s in cal.sessions(session.day, session.day)}[session.day]
    expected = cal.execution_window(session.open - timedelta(microseconds=1), start, start + length)
    assert session.execution_window(start, start + length) == expected
    assert listed.execution_window(start, start + length) == expected
    assert expected.closes_at <= session.close


@pytest.mark.parametrize("name", ["24/7", "CMES", "XNYS"])
@settings(max_examples=100, deadline=None)
@given(moment=moments, start=st.integers(0, 60), length=st.integers(1, 120))
def test_the_session_of_an_open_is_the_one_that_opens_then_even_where_sessions_abut(
    name: str, moment: datetime, start: int, length: int
) -> None:
    """On calendars whose sessions abut (a session's open is the previous one's close), the
    session of an open is the one that opens there, and an exit window decided before it is
    open + start .. open + end inside that session, not cut at the previous close (it closed
    before it opened: every planned exit would escalate). A window decided at a close that
    is also an open is that session's (``session_after``)."""
    cal = TradingCalendar(name)
    shared_boundary = cal.last_close(moment) == moment == cal.last_open(moment)
    opens = moment if shared_boundary else cal.next_open(moment)
    assert cal.session_after(moment).open == opens
    session = cal.session_of_open(opens)
    assert session.open == opens
    assert session.open < session.close
    window = cal.execution_window(moment, start, start + length)
    assert window.opens_at == opens + timedelta(minutes=start)
    assert window.closes_at == min(opens + timedelta(minutes=start + length), session.close)
    assert window.closes_at > opens


def test_a_moment_beyond_the_calendar_is_an_error_that_says_so() -> None:
    cal = TradingCalendar("XNYS")
    far = datetime(2200, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="beyond the XNYS calendar's last session"):
        cal.next_open(far)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.next_open(far.replace(tzinfo=None) - timedelta(days=1))


@settings(max_examples=300, deadline=None)
@given(moment=moments)
def test_last_close_matches_exchange_calendars(reference: xcals.ExchangeCalendar, moment: datetime) -> None:
    def close_of(label: pd.Timestamp) -> datetime:
        result: datetime = reference.session_close(label).to_pydatetime().astimezone(UTC)
        return result

    with _quiet():
        label = reference.minute_to_past_session(pd.Timestamp(moment), count=1)
        following = reference.next_session(label)
    # A session whose close is the moment itself has closed too.
    expected = close_of(following) if close_of(following) <= moment else close_of(label)
    assert TradingCalendar("XNYS").last_close(moment) == expected


def test_last_close_on_a_half_day_and_over_a_holiday_weekend() -> None:
    cal = TradingCalendar("XNYS")
    # The close of Monday 2023-07-03, a half day (17:00 UTC), is the last one through the
    # Independence Day holiday until Wednesday's close.
    assert cal.last_close(datetime(2023, 7, 3, 17, tzinfo=UTC)) == datetime(2023, 7, 3, 17, tzinfo=UTC)
    assert cal.last_close(datetime(2023, 7, 5, 19, tzinfo=UTC)) == datetime(2023, 7, 3, 17, tzinfo=UTC)
    assert cal.last_close(datetime(2023, 7, 3, 16, 59, tzinfo=UTC)) == datetime(2023, 6, 30, 20, tzinfo=UTC)


def test_a_daily_bar_is_of_the_session_it_closes_or_falls_in() -> None:
    xnys, always = TradingCalendar("XNYS"), TradingCalendar("24/7")
    wednesday = xnys.session_of_bar(datetime(2024, 11, 27, 21, tzinfo=UTC))  # at the close
    assert wednesday is not None
    assert wednesday.day == date(2024, 11, 27)
    # A half day's bar stamped at the regular close, three hours after the real one.
    friday = xnys.session_of_bar(datetime(2024, 11, 29, 21, tzinfo=UTC))
    assert friday is not None
    assert (friday.day, friday.close) == (date(2024, 11, 29), datetime(2024, 11, 29, 18, tzinfo=UTC))
    # Thanksgiving and a Saturday have no session: bad data, not Wednesday's or Friday's bar.
    assert xnys.session_of_bar(datetime(2024, 11, 28, 21, tzinfo=UTC)) is None
    assert xnys.session_of_bar(datetime(2024, 11, 30, 21, tzinfo=UTC)) is None
    # 24/7: the bar stamped at 00:00 on Sunday closes Saturday's session, which Sunday's opens
    # at that same instant; a bar stamped within a day (a date-only file's row) is that day's.
    sunday = datetime(2024, 3, 10, tzinfo=UTC)
    saturday = always.session_of_bar(sunday)
    assert saturday is not None
    assert (saturday.day, saturday.open, saturday.close) == (date(2024, 3, 9), sunday - timedelta(days=1), sunday)
    within = always.session_of_bar(sunday + timedelta(hours=21))
    assert within is not None
    assert within.day == date(2024, 3, 10)
    with pytest.raises(ValueError, match="bar 2099-01-02 is outside the XNYS calendar"):
        xnys.session_of_bar(datetime(2099, 1, 2, 21, tzinfo=UTC))


def test_what_is_decided_at_a_close_is_acted_on_in_the_session_opening_then_if_any() -> None:
    xnys, always = TradingCalendar("XNYS"), TradingCalendar("24/7")
    friday_close = datetime(2024, 3, 1, 21, tzinfo=UTC)
    monday = xnys.session_after(friday_close)
    assert monday.open == datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    # At an open that is no close (XNYS), or during a session: the next session.
    assert xnys.session_after(monday.open).day == date(2024, 3, 5)
    assert xnys.session_after(monday.open + timedelta(hours=2)).day == date(2024, 3, 5)
    # 24/7: Saturday's close is Sunday's open, and Sunday's session is the one after it.
    sunday = datetime(2024, 3, 10, tzinfo=UTC)
    assert always.session_after(sunday).open == sunday
    assert always.execution_window(sunday, 5, 30).opens_at == sunday + timedelta(minutes=5)
    assert always.session_after(sunday + timedelta(microseconds=1)).open == sunday + timedelta(days=1)
    assert always.session_after(sunday - timedelta(microseconds=1)).open == sunday
    # next_open keeps its meaning (strictly after): a live trader gives up on a missing bar there.
    assert always.next_open(sunday) == sunday + timedelta(days=1)


def test_a_moment_at_a_close_is_in_that_session_for_a_cooldowns_age() -> None:
    """A fill in the closing auction, or a daily bar stamped at the close, is of that session:
    the next session's open counts, as it does a minute before the close."""
    cal = TradingCalendar("XNYS")
    close = datetime(2000, 5, 1, 20, tzinfo=UTC)  # Monday's close (16:00 New York)
    for since in (close, close - timedelta(minutes=1)):
        assert cal.sessions_opened_since(since, datetime(2000, 5, 2, 13, 29, tzinfo=UTC)) == 0
        assert cal.sessions_opened_since(since, datetime(2000, 5, 2, 20, tzinfo=UTC)) == 1
    # A minute after it, the moment is between sessions: Tuesday's open does not count.
    assert cal.sessions_opened_since(close + timedelta(minutes=1), datetime(2000, 5, 2, 20, tzinfo=UTC)) == 0


@settings(max_examples=300, deadline=None)
@given(since=moments, days=st.integers(min_value=0, max_value=40), minutes=st.integers(min_value=0, max_value=1439))
def test_sessions_opened_since_counts_opens_after_the_session_since_falls_in(
    reference: xcals.ExchangeCalendar, since: datetime, days: int, minutes: int
) -> None:
    """A cooldown's age in sessions: opens strictly after ``since`` up to ``until``, where a
    moment between sessions belongs to the next one (its open does not count) and a moment at
    a session's close to that session."""
    until = since + timedelta(days=days, minutes=minutes)
    with _quiet():
        # The session ``since`` falls in, or the next one when it falls between sessions.
        # exchange-calendars puts a close's minute in no session; tradekit in the one closing.
        label = reference.minute_to_session(pd.Timestamp(since), direction="previous")
        if reference.session_close(label).to_pydatetime() != since:
            label = reference.minute_to_session(pd.Timestamp(since), direction="next")
        start = max(since, reference.session_open(label).to_pydatetime().astimezone(UTC))
        opens = reference.opens
    expected = int(((opens > pd.Timestamp(start)) & (opens <= pd.Timestamp(until))).sum())
    assert TradingCalendar("XNYS").sessions_opened_since(since, until) == expected


# --- the session table kept in the user's cache ------------------------------------------------

days = st.dates(min_value=NAIVE_FIRST.date(), max_value=NAIVE_LAST.date())


@settings(max_examples=200, deadline=None)
@given(start=days, length=st.integers(min_value=0, max_value=60))
def test_sessions_and_is_session_match_exchange_calendars(
    reference: xcals.ExchangeCalendar, start: date, length: int
) -> None:
    ours = TradingCalendar("XNYS")
    end = start + timedelta(days=length)
    with _quiet():
        labels = reference.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
        expected = [
            (
                label.date(),
                reference.session_open(label).to_pydatetime(),
                reference.session_close(label).to_pydatetime(),
            )
            for label in labels
        ]
        is_session = bool(reference.is_session(pd.Timestamp(start)))
    assert [(s.day, s.open, s.close) for s in ours.sessions(start, end)] == expected
    assert ours.is_session(start) is is_session


def test_days_outside_the_calendar_are_refused_with_its_bounds() -> None:
    ours = TradingCalendar("XNYS")
    with pytest.raises(ValueError, match=r"start 1989-12-29 is outside the XNYS calendar \(1990-01-02 to "):
        ours.sessions(date(1989, 12, 29), date(1990, 1, 5))
    with pytest.raises(ValueError, match="end 2099-01-02 is outside the XNYS calendar"):
        ours.sessions(date(2020, 1, 2), date(2099, 1, 2))
    with pytest.raises(ValueError, match="date 1980-01-02 is outside"):
        ours.is_session(date(1980, 1, 2))


def _kept(cache: Path) -> list[Path]:
    return sorted((cache / "tradekit" / "calendars").glob("*.npz"))


def test_a_calendar_read_from_the_cache_answers_as_the_one_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    built = TradingCalendar("XNYS", env=env)
    (kept,) = _kept(tmp_path)
    assert kept.name.startswith(f"XNYS@t1@{xcals.__version__}@{pd.__version__}@")
    # Another exchange, its own file; a name that is no file name is kept all the same.
    always = TradingCalendar("24/7", env=env)
    assert [p.name.split("@")[0] for p in _kept(tmp_path)] == ["24%2F7", "XNYS"]

    def no_build(name: str) -> None:
        raise AssertionError(f"{name} was built again instead of read")

    monkeypatch.setattr(calendar_module, "_build_table", no_build)
    read = TradingCalendar("XNYS", env=env)
    assert (read._days, read._open_ns, read._close_ns, read.tz) == (
        built._days,
        built._open_ns,
        built._close_ns,
        built.tz,
    )
    moment = datetime(2023, 7, 3, 15, tzinfo=UTC)  # a half day
    assert read.next_open(moment) == built.next_open(moment)
    assert read.last_close(moment) == built.last_close(moment) == datetime(2023, 6, 30, 20, tzinfo=UTC)
    assert TradingCalendar("24/7", env=env)._open_ns == always._open_ns


def test_a_damaged_or_stale_cached_table_is_built_again_and_replaced(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    reference = TradingCalendar("XNYS", env=env)
    (kept,) = _kept(tmp_path)
    whole = kept.read_bytes()
    # A table built on an earlier day: not read, and removed once today's is written.
    kept.rename(kept.with_name(kept.name.rsplit("@", 1)[0] + "@2001-01-01.npz"))
    # A compression method no reader knows, in the zip's directory (zipfile raises
    # NotImplementedError, which is neither an OSError nor a ValueError).
    entry = whole.index(b"PK\x01\x02")
    unknown_method = whole[: entry + 10] + b"\x63\x00" + whole[entry + 12 :]
    for damage in (None, b"", b"not a table", whole[:100], whole[:-10], unknown_method):
        if damage is not None:
            kept.write_bytes(damage)
        rebuilt = TradingCalendar("XNYS", env=env)
        assert (rebuilt._days, rebuilt._open_ns, rebuilt._close_ns) == (
            reference._days,
            reference._open_ns,
            reference._close_ns,
        )
        assert _kept(tmp_path) == [kept]
        assert kept.read_bytes() != damage


def test_a_cache_that_cannot_be_written_or_found_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("the cache's directory cannot be made under a file")
    friday_close, monday_open = datetime(2024, 3, 1, 22, tzinfo=UTC), datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    assert TradingCalendar("XNYS", env={"XDG_CACHE_HOME": str(blocked)}).next_open(friday_close) == monday_open

    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", homeless)
    for env in ({}, {"XDG_CACHE_HOME": "relative/cache"}):  # a relative one is not the XDG spec's
        assert TradingCalendar("XNYS", env=env).next_open(friday_close) == monday_open
    assert not (Path("relative") / "cache").exists()


def test_an_unknown_name_is_refused_whatever_the_cache_holds(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    TradingCalendar("24/7", env=env)
    with pytest.raises(ValueError, match="unknown exchange calendar '24_7'"):
        TradingCalendar("24_7", env=env)
