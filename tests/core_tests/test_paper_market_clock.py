"""The paper broker's market clock is the run's exchange calendar.

Its DAY orders expire, and its market-on-close orders fill, at the close of the session the
calendar says: a 24/7 market's Saturday closes at midnight UTC (not at Monday's New York
close), an XNYS half day at 13:00 New York (not 16:00), and a holiday has no session at all.
The replay (``run_paper_replay``) and the live paper broker (``make_paper_broker``) both
build the paper broker with that clock; a ``PaperBroker`` built bare keeps the weekday
09:30-16:00 New York clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit import Strategy, StrategyView, hookimpl
from tradekit.broker.errors import OrderRejected
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig, weekday_session_clock
from tradekit.broker.paper_plugin import make_paper_broker
from tradekit.config import ExitSettings, MissedWindow, Settings
from tradekit.domain import Bar, Order, OrderRequest, OrderStatus, OrderType, Side, Signal, TimeInForce
from tradekit.execution.paper_run import run_paper_replay
from tradekit.exits import ExitIntent
from tradekit.exits.calendar import TradingCalendar, trading_calendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

D = Decimal
XNYS = TradingCalendar()
ALWAYS = TradingCalendar("24/7")
THANKSGIVING_NOON = datetime(2024, 11, 28, 17, 0, tzinfo=UTC)  # Thursday 12:00 New York: no session
HALF_DAY_OPEN = datetime(2024, 11, 29, 14, 30, tzinfo=UTC)  # Friday 09:30 New York
HALF_DAY_CLOSE = datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # 13:00 New York
HALF_DAY_REGULAR_CLOSE = datetime(2024, 11, 29, 21, 0, tzinfo=UTC)  # 16:00 New York
MONDAY_OPEN = datetime(2024, 12, 2, 14, 30, tzinfo=UTC)
MONDAY_CLOSE = datetime(2024, 12, 2, 21, 0, tzinfo=UTC)
SATURDAY = datetime(2021, 1, 9, tzinfo=UTC)  # 24/7: the session opens at midnight UTC
SUNDAY = SATURDAY + timedelta(days=1)


# --- the calendar's market clock ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calendar", "now", "is_open", "next_open", "next_close"),
    [
        # A holiday: closed all day; the next session is the half day after it.
        (XNYS, THANKSGIVING_NOON, False, HALF_DAY_OPEN, HALF_DAY_CLOSE),
        # A half day: open until 13:00 New York, then closed until Monday.
        (XNYS, HALF_DAY_OPEN, True, MONDAY_OPEN, HALF_DAY_CLOSE),
        (XNYS, HALF_DAY_CLOSE - timedelta(microseconds=1), True, MONDAY_OPEN, HALF_DAY_CLOSE),
        (XNYS, HALF_DAY_CLOSE, False, MONDAY_OPEN, MONDAY_CLOSE),
        (XNYS, HALF_DAY_REGULAR_CLOSE, False, MONDAY_OPEN, MONDAY_CLOSE),
        # 24/7: a session's close is the next one's open, and at that instant the market is
        # open in the session that opens then; weekends trade.
        (ALWAYS, SATURDAY, True, SUNDAY, SUNDAY),
        (ALWAYS, SATURDAY + timedelta(hours=15), True, SUNDAY, SUNDAY),
    ],
)
def test_the_calendars_market_clock_knows_holidays_half_days_and_sessions_that_abut(
    calendar: TradingCalendar, now: datetime, is_open: bool, next_open: datetime, next_close: datetime
) -> None:
    clock = calendar.market_clock(now)
    assert (clock.now, clock.is_open, clock.next_open, clock.next_close) == (now, is_open, next_open, next_close)


@given(
    calendar=st.sampled_from([XNYS, ALWAYS, trading_calendar("CMES")]),
    now=st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)),  # noqa: DTZ001 - bounds of an aware strategy
)
def test_the_calendars_market_clock_agrees_with_its_sessions(calendar: TradingCalendar, now: datetime) -> None:
    sessions = calendar.sessions(now.date() - timedelta(days=10), now.date() + timedelta(days=10))
    current = [s for s in sessions if s.open <= now < s.close]
    following = [s for s in sessions if s.open > now]
    clock = calendar.market_clock(now)
    assert clock.is_open is bool(current)
    assert clock.next_open == following[0].open
    assert clock.next_close == (current[-1] if current else following[0]).close


# --- the paper broker on the calendar's clock -----------------------------------------------------


def day_order(client_order_id: str, limit: str) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol="KO",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=D(1),
        limit_price=D(limit),
        time_in_force=TimeInForce.DAY,
    )


def test_a_day_order_placed_on_a_half_day_expires_at_its_13_00_close() -> None:
    paper = PaperBroker(session_clock=XNYS.market_clock)
    paper.set_price("KO", D(60), HALF_DAY_OPEN + timedelta(minutes=30))
    paper.submit_order(day_order("half-day", "50"))

    paper.set_price("KO", D(61), HALF_DAY_CLOSE)

    order = paper.get_order_by_client_id("half-day")
    assert order is not None
    assert order.status is OrderStatus.EXPIRED
    assert order.updated_at == HALF_DAY_CLOSE


def test_a_bare_paper_broker_keeps_the_weekday_clock() -> None:
    # Built without a calendar (tests, scripts): 09:30-16:00 New York on every weekday.
    paper = PaperBroker()
    paper.set_price("KO", D(60), THANKSGIVING_NOON)
    assert paper.get_clock() == weekday_session_clock(THANKSGIVING_NOON)


@pytest.mark.parametrize(
    ("calendar", "now", "is_open"),
    [
        ("XNYS", THANKSGIVING_NOON, False),  # the weekday clock says open
        ("XNYS", HALF_DAY_CLOSE + timedelta(hours=1), False),  # the weekday clock says open
        ("24/7", SATURDAY + timedelta(hours=12), True),  # the weekday clock says closed
    ],
)
def test_the_paper_broker_plugin_keeps_the_clock_of_the_configured_calendar(
    calendar: str, now: datetime, is_open: bool
) -> None:
    paper = make_paper_broker(Settings(exits=ExitSettings(calendar=calendar)), {})
    assert isinstance(paper, PaperBroker)
    paper.set_price("KO", D(60), now)
    assert paper.get_clock() == trading_calendar(calendar).market_clock(now)
    assert paper.get_clock().is_open is is_open


def test_a_restored_paper_account_keeps_the_expiry_it_was_given(tmp_path: Path) -> None:
    # What is persisted is the expiry worked out when the order was accepted, not the clock:
    # the account restored on its calendar expires the order at that same 13:00 close.
    settings = Settings(plugins={"paper": {"state_file": str(tmp_path / "paper.json")}})
    paper = make_paper_broker(settings, {})
    assert isinstance(paper, PaperBroker)
    paper.set_price("KO", D(60), HALF_DAY_OPEN)
    paper.submit_order(day_order("kept", "50"))
    paper.close()

    restored = make_paper_broker(settings, {})
    assert isinstance(restored, PaperBroker)
    assert [o.client_order_id for o in restored.get_open_orders()] == ["kept"]
    restored.set_price("KO", D(61), HALF_DAY_CLOSE)
    order = restored.get_order_by_client_id("kept")
    assert order is not None
    assert order.status is OrderStatus.EXPIRED


# --- replays: a missed exit escalated to market-on-close fills at that session's close -----------


class ExitLimitsOutOfReach:
    """Every planned exit's limit ten times the price: nothing sells in the window; the
    resting order is canceled when the window closes, and the exit escalated at the replay's
    next moment, the close (on a 24/7 calendar, also the next session's open)."""

    @hookimpl
    def on_exit_intent(self, intent: ExitIntent) -> ExitIntent | None:
        if intent.limit_price is None:
            return None
        return attrs.evolve(intent, limit_price=intent.limit_price * 10)


class RefusesLimitSells(PaperBroker):
    """The paper account refusing every limit sell (a venue rule): an exit is not sent in its
    window, and is escalated the minute the window closes."""

    def submit_order(self, request: OrderRequest) -> Order:
        if request.side is Side.SELL and request.order_type is OrderType.LIMIT:
            raise OrderRejected(f"order {request.client_order_id}: limit sells refused", code="test")
        return super().submit_order(request)


class Scripted(Strategy):
    """Signals on the bars its ``plan`` names: {bar number: BUY or SELL}."""

    name = "scripted"
    plan: ClassVar[dict[int, Side]] = {}

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        side = self.plan.get(len(view.history) - 1)
        if side is None:
            return []
        bar = view.bar
        return [
            Signal(
                symbol=view.symbol,
                side=side,
                confidence=5,
                generated_at=bar.time,
                reference_price=bar.close,
                source=self.name,
                reason=f"planned {side}",
            )
        ]


def bars_at(times: Sequence[datetime]) -> list[Bar]:
    """Rising daily bars stamped at ``times``: bar i opens at 99.5 + i and closes at 100 + i
    (an opening price is never the close before it)."""
    bars: list[Bar] = []
    for i, time in enumerate(times):
        close = D(100 + i)
        opened = close - D("0.5")
        bars.append(Bar(symbol="KO", time=time, open=opened, high=close, low=opened, close=close, volume=D(10**6)))
    return bars


Sell = tuple[TimeInForce, datetime, datetime, Decimal]


def replay_exit(tmp_path: Path, calendar: str, bars: list[Bar], plan: dict[int, Side], plugins: Plugins) -> list[Sell]:
    """Replay ``plan`` over ``bars`` with missed exits sent market-on-close. Return the sells:
    (time in force, when sent, when filled, fill price)."""
    strategy = type("Planned", (Scripted,), {"name": "scripted", "plan": plan})
    settings = Settings(exits=ExitSettings(calendar=calendar, on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    run = run_paper_replay(
        strategy=strategy,
        settings=settings,
        plugins=plugins,
        bars={"KO": bars},
        out_dir=tmp_path / "replay",
        # One market-on-close order, not whole shares on close and the fraction as a DAY order.
        broker_config=PaperBrokerConfig(fractional_day_only=False),
        chart=False,
    )
    with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
        sent = {i.client_order_id: (i.time_in_force, i.created_at) for i in tx.order_intents()}
        return [(*sent[f.client_order_id], f.time, f.price) for f, _ in tx.fills_with_purpose() if f.side is Side.SELL]


PLAIN = Plugins(load_entrypoints=False, env={})
OUT_OF_REACH = Plugins(load_entrypoints=False, env={}, extra=[("out-of-reach", ExitLimitsOutOfReach())])
# Bar i is stamped at midnight UTC of 2021-01-01 + i days, the close of the 24/7 session of
# the day before: bar 8 (Saturday 00:00) closes Friday's session, bar 9 Saturday's.
EVERY_DAY = bars_at([datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(14)])


def test_a_24_7_exit_refused_in_its_saturday_window_fills_market_on_close_at_saturdays_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tradekit.execution.paper_run.PaperBroker", RefusesLimitSells)
    assert (EVERY_DAY[8].time, EVERY_DAY[9].time) == (SATURDAY, SUNDAY)

    sells = replay_exit(tmp_path, "24/7", EVERY_DAY, {2: Side.BUY, 8: Side.SELL}, PLAIN)

    # Sent the minute Saturday's window closed; filled at Saturday's close, at its closing
    # price: not at Monday's New York close, two sessions later.
    assert sells == [(TimeInForce.CLS, SATURDAY + timedelta(minutes=31), SUNDAY, EVERY_DAY[9].close)]


def test_a_24_7_exit_whose_limit_rests_through_fridays_window_fills_market_on_close_at_fridays_close(
    tmp_path: Path,
) -> None:
    # Friday's window (00:05-00:30 UTC) left the limit sell resting: as the live trader's
    # cycles after it, the replay cancels it at 00:31 and, the cancel confirmed, sends the
    # market-on-close at 00:32, filled at Friday's close (Saturday 00:00). It used to escalate
    # only at that close, into Saturday's market-on-close: a session late.
    sells = replay_exit(tmp_path, "24/7", EVERY_DAY, {2: Side.BUY, 7: Side.SELL}, OUT_OF_REACH)

    friday = SATURDAY - timedelta(days=1)
    assert sells == [(TimeInForce.CLS, friday + timedelta(minutes=32), SATURDAY, EVERY_DAY[8].close)]


@pytest.mark.parametrize(
    "half_day_stamp",
    [HALF_DAY_CLOSE, HALF_DAY_REGULAR_CLOSE],
    ids=["stamped-at-13:00", "stamped-at-16:00"],
)
def test_an_exit_sent_market_on_close_on_a_half_day_fills_at_that_days_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, half_day_stamp: datetime
) -> None:
    # Daily bars of half days come stamped at the 13:00 close or at the regular 16:00 close
    # (the shipped data): either way the bar is the half day's, and so is the closing fill.
    monkeypatch.setattr("tradekit.execution.paper_run.PaperBroker", RefusesLimitSells)
    days = [date(2024, 11, 18) + timedelta(days=i) for i in range(20)]
    times = [
        half_day_stamp if day == HALF_DAY_CLOSE.date() else datetime(day.year, day.month, day.day, 21, tzinfo=UTC)
        for day in days
        if XNYS.is_session(day)
    ][:12]
    bars = bars_at(times)
    assert bars[8].time == half_day_stamp  # bar 7 is Wednesday's: Thursday is Thanksgiving

    sells = replay_exit(tmp_path, "XNYS", bars, {2: Side.BUY, 7: Side.SELL}, PLAIN)

    # Sent when the window (09:35-10:00 New York) closed; filled at the half day's close.
    assert sells == [(TimeInForce.CLS, datetime(2024, 11, 29, 15, 1, tzinfo=UTC), half_day_stamp, bars[8].close)]
