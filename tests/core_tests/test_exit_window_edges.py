"""Exit windows on the calendar's edges: half days, daylight-saving switches, holidays
between a decision and its session, a process down across sessions, and exit settings that
would leave an exit never sent (refused when the configuration loads, naming the key)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.broker.paper import Fault
from tradekit.config import ExitSettings, MissedWindow, Settings, SettingsError, load_settings
from tradekit.domain import Side, TimeInForce
from tradekit.exits import ExitIntent, ExitState
from tradekit.exits.calendar import TradingCalendar

from .test_pipeline import Trading, hold, make_trading
from .test_restarts import restart

WEDNESDAY_BEFORE_THANKSGIVING = datetime(2024, 11, 27, 21, 15, tzinfo=UTC)  # after the close
HALF_DAY_CLOSE = datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # Friday 13:00 New York
MONDAY_AFTER = datetime(2024, 12, 2, 14, 30, tzinfo=UTC)  # the next open


def holding(tmp_path: Path, exits: ExitSettings) -> Trading:
    t = make_trading(tmp_path, settings=Settings(exits=exits))
    t.reconcile()
    hold(t)
    return t


def decide_exit_at(t: Trading, moment: datetime) -> ExitIntent:
    t.clock.now = moment
    planned = t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    assert planned.intent is not None
    return planned.intent


def the_exit(t: Trading) -> ExitIntent:
    with t.ledger.reading() as tx:
        (intent,) = tx.exit_intents()
    return intent


def cycle(t: Trading, moment: datetime, price: str | None = "61") -> None:
    """One cycle of a running trader at ``moment``: KO trades at ``price`` (None: no market)."""
    t.clock.now = moment
    prices = {}
    if price is not None:
        t.broker.set_price("KO", Decimal(price), moment)
        prices["KO"] = Decimal(price)
    t.pipeline.execute_due_exits(prices)
    t.pipeline.apply_events()


# --- half days ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", list(MissedWindow))
def test_a_window_opening_after_a_half_days_close_is_the_next_full_sessions_not_a_missed_one(
    tmp_path: Path, rule: MissedWindow
) -> None:
    """Four hours after the open is after the 13:00 close of the day after Thanksgiving: that
    day has no exit window (the live trader and the replay send nothing that day). The exit's
    window is Monday's, so it is not escalated as missed on Friday: not expired unexecuted,
    never attempted, under ``on_missed_window = "expire"``."""
    t = holding(tmp_path, ExitSettings(window_start_minutes=240, window_end_minutes=300, on_missed_window=rule))
    intent = decide_exit_at(t, WEDNESDAY_BEFORE_THANKSGIVING)
    assert (intent.window_opens_at, intent.window_closes_at) == (
        MONDAY_AFTER + timedelta(minutes=240),
        MONDAY_AFTER + timedelta(minutes=300),
    )
    for moment in (HALF_DAY_CLOSE + timedelta(minutes=31), datetime(2024, 11, 29, 21, 5, tzinfo=UTC)):
        cycle(t, moment)
    assert the_exit(t).state is ExitState.PLANNED
    assert [r for r in t.accepted() if r.side is Side.SELL] == []

    cycle(t, MONDAY_AFTER + timedelta(minutes=241))
    assert the_exit(t).state is ExitState.EXECUTED
    assert t.ledger.position("KO") is None


def test_a_window_a_half_day_cuts_short_ends_at_its_13_00_close_and_escalates_after_it(tmp_path: Path) -> None:
    t = holding(tmp_path, ExitSettings(window_start_minutes=5, window_end_minutes=300))
    intent = decide_exit_at(t, WEDNESDAY_BEFORE_THANKSGIVING)
    assert (intent.window_opens_at, intent.window_closes_at) == (
        datetime(2024, 11, 29, 14, 35, tzinfo=UTC),
        HALF_DAY_CLOSE,
    )
    cycle(t, HALF_DAY_CLOSE + timedelta(minutes=1), price=None)  # no market all morning
    rolled = the_exit(t)
    assert (rolled.window_opens_at, rolled.window_closes_at) == (
        MONDAY_AFTER + timedelta(minutes=5),
        MONDAY_AFTER + timedelta(minutes=300),
    )


def test_a_missed_window_on_a_half_day_goes_out_market_on_close_before_its_13_00_close_once(
    tmp_path: Path,
) -> None:
    t = holding(tmp_path, ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    decide_exit_at(t, WEDNESDAY_BEFORE_THANKSGIVING)
    t.broker.faults.arm(Fault.REJECT, times=1)
    cycle(t, datetime(2024, 11, 29, 15, 1, tzinfo=UTC), price=None)  # the window closed unexecuted
    with t.ledger.reading() as tx:
        (on_close,) = [o for o in tx.order_intents() if o.time_in_force is TimeInForce.CLS]
    assert on_close.created_at < HALF_DAY_CLOSE
    assert the_exit(t).state is ExitState.PLANNED  # refused: planned again
    # A new process before the 13:00 close sends no second market-on-close order that day:
    # the exit waits for Monday's window.
    again = restart(t, tmp_path)
    cycle(again, datetime(2024, 11, 29, 16, 0, tzinfo=UTC), price=None)
    assert [r.request.time_in_force for r in again.broker.received_orders if r.request.side is Side.SELL] == [
        TimeInForce.CLS,
        TimeInForce.DAY,  # the fraction (test_exit_market_on_close)
    ]
    moved = the_exit(again)
    assert (moved.state, moved.window_opens_at) == (ExitState.PLANNED, MONDAY_AFTER + timedelta(minutes=5))


# --- holidays, weekends, daylight saving ------------------------------------------------------


@pytest.mark.parametrize(
    ("decided", "opens"),
    [
        # Friday, then Martin Luther King Day: Tuesday's window.
        (datetime(2024, 1, 12, 21, 15, tzinfo=UTC), datetime(2024, 1, 16, 14, 35, tzinfo=UTC)),
        # Friday in winter time, Monday in summer time (the US switched on Sunday 2024-03-10).
        (datetime(2024, 3, 8, 21, 15, tzinfo=UTC), datetime(2024, 3, 11, 13, 35, tzinfo=UTC)),
        # Friday in summer time, Monday in winter time (switched back Sunday 2024-11-03).
        (datetime(2024, 11, 1, 20, 15, tzinfo=UTC), datetime(2024, 11, 4, 14, 35, tzinfo=UTC)),
        # Good Friday between Thursday and Monday.
        (datetime(2024, 3, 28, 20, 15, tzinfo=UTC), datetime(2024, 4, 1, 13, 35, tzinfo=UTC)),
    ],
)
def test_a_planned_exit_waits_over_weekends_holidays_and_clock_changes_for_five_minutes_after_the_open(
    tmp_path: Path, decided: datetime, opens: datetime
) -> None:
    t = holding(tmp_path, ExitSettings())
    intent = decide_exit_at(t, decided)
    assert (intent.window_opens_at, intent.window_closes_at) == (opens, opens + timedelta(minutes=25))


def test_windows_follow_each_exchanges_own_clock_change_in_the_weeks_the_us_and_europe_differ() -> None:
    # 2024-03-11 .. 03-29: New York is on summer time, London not yet.
    xnys, xlon = TradingCalendar("XNYS"), TradingCalendar("XLON")
    tuesday = datetime(2024, 3, 18, 23, tzinfo=UTC)
    assert xnys.execution_window(tuesday, 5, 30).opens_at == datetime(2024, 3, 19, 13, 35, tzinfo=UTC)
    assert xlon.execution_window(tuesday, 5, 30).opens_at == datetime(2024, 3, 19, 8, 5, tzinfo=UTC)
    after = datetime(2024, 4, 1, 23, tzinfo=UTC)  # both on summer time (Easter Monday: XLON closed)
    assert xlon.execution_window(after, 5, 30).opens_at == datetime(2024, 4, 2, 7, 5, tzinfo=UTC)


# --- a process down across sessions ------------------------------------------------------------


def test_a_process_down_for_days_moves_the_exit_to_the_first_window_still_ahead_once(tmp_path: Path) -> None:
    t = holding(tmp_path, ExitSettings())
    decide_exit_at(t, datetime(2024, 3, 4, 21, 15, tzinfo=UTC))  # Monday: Tuesday's window
    # Down Tuesday and Wednesday; back Thursday at noon, after Thursday's window.
    cycle(t, datetime(2024, 3, 7, 17, 0, tzinfo=UTC), price=None)
    rolled = the_exit(t)
    assert (rolled.rolls, rolled.window_opens_at) == (1, datetime(2024, 3, 8, 14, 35, tzinfo=UTC))
    cycle(t, datetime(2024, 3, 7, 20, 0, tzinfo=UTC), price=None)
    assert the_exit(t).rolls == 1
    cycle(t, datetime(2024, 3, 8, 14, 36, tzinfo=UTC))
    assert the_exit(t).state is ExitState.EXECUTED


# --- settings that would never send an exit ----------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradekit.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # No length, or before the open.
        ("[exits]\nwindow_start_minutes = 30\nwindow_end_minutes = 30\n", r"window_end_minutes \(30\) must be after"),
        ("[exits]\nwindow_start_minutes = -5\n", r"window_start_minutes must be >= 0, got -5"),
        # Opens at or after the close of every session: no exit sent, no queued buy judged.
        (
            "[exits]\nwindow_start_minutes = 390\nwindow_end_minutes = 420\n",
            r"exits\.window_start_minutes \(390\) opens the exit window at or after the close of every XNYS session",
        ),
        (
            '[exits]\ncalendar = "24/7"\nwindow_start_minutes = 1440\nwindow_end_minutes = 1440\n',
            r"window_end_minutes \(1440\) must be after",
        ),
        (
            '[exits]\ncalendar = "XLON"\nwindow_start_minutes = 600\nwindow_end_minutes = 700\n',
            r"exits\.window_start_minutes \(600\) opens the exit window at or after the close of every XLON session",
        ),
        # Open until the close: a missed exit could never go out market-on-close.
        (
            '[exits]\nwindow_end_minutes = 390\non_missed_window = "market_at_close"\n',
            r"exits\.window_end_minutes \(390\) keeps the exit window open until the close of every XNYS session",
        ),
        # exchange-calendars knows the name but cannot build the calendar.
        (
            '[exits]\ncalendar = "XTAE"\n',
            r"exits\.calendar = 'XTAE' cannot be used: exchange calendar 'XTAE' cannot be built by exchange-calen",
        ),
    ],
)
def test_exit_settings_that_would_never_send_an_exit_are_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    "text",
    [
        "[exits]\nwindow_start_minutes = 389\nwindow_end_minutes = 420\n",  # one minute before the close
        '[exits]\nwindow_end_minutes = 389\non_missed_window = "market_at_close"\n',
        '[exits]\ncalendar = "24/7"\nwindow_start_minutes = 1439\nwindow_end_minutes = 1440\n',
        '[exits]\ncalendar = "XLON"\nwindow_start_minutes = 500\nwindow_end_minutes = 600\n',
    ],
)
def test_a_late_window_that_still_opens_before_the_close_loads(tmp_path: Path, text: str) -> None:
    load_settings(write(tmp_path, text), env={})


@pytest.mark.parametrize(("name", "first"), [("XTKS", date(1997, 1, 6)), ("XSHG", date(1991, 1, 2))])
def test_a_calendar_exchange_calendars_cannot_evaluate_back_to_1990_loads_and_trades(
    tmp_path: Path, name: str, first: date
) -> None:
    """Tokyo (named as an example in the error for an unknown calendar) and Shanghai hold
    holidays only from later years: the calendar starts where they do, instead of every
    replay and live run failing on an exchange-calendars error after ``config check`` passed."""
    loaded = load_settings(write(tmp_path, f'[exits]\ncalendar = "{name}"\n'), env={})
    calendar = TradingCalendar(loaded.settings.exits.calendar)
    assert calendar.sessions(first, first + timedelta(days=10))[0].day == first
    window = calendar.execution_window(datetime(2024, 3, 4, 12, tzinfo=UTC), 5, 30)
    assert window.opens_at == datetime(2024, 3, 5, 0, 5, tzinfo=UTC) + (
        timedelta(hours=1, minutes=30) if name == "XSHG" else timedelta(0)
    )


def test_a_calendar_that_cannot_be_built_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="exchange calendar 'XTAE' cannot be built"):
        TradingCalendar("XTAE")


def test_settings_made_in_code_are_checked_as_a_file_is() -> None:
    with pytest.raises(SettingsError, match="window_start_minutes"):
        ExitSettings(window_start_minutes=400, window_end_minutes=420)


@pytest.mark.parametrize(("end", "warned"), [(385, True), (380, False)])
def test_a_window_ending_too_late_for_a_market_on_close_order_is_warned_of(
    tmp_path: Path, end: int, warned: bool
) -> None:
    text = f'[exits]\nwindow_end_minutes = {end}\non_missed_window = "market_at_close"\n'
    loaded = load_settings(write(tmp_path, text), env={})
    assert any(w.startswith("exits.window_end_minutes: ") for w in loaded.warnings) is warned
