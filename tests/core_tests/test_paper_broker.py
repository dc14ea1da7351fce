"""The paper broker: execution, the cash account, faults on demand, restarts and threads."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit.broker import (
    AmbiguousSubmission,
    Broker,
    BrokerUnavailable,
    DuplicateClientOrderId,
    Fault,
    FractionalNotSupported,
    MarketClock,
    OrderEventKind,
    OrderRejected,
    PaperBroker,
    PaperBrokerConfig,
    PaperRejectCode,
    PaperStateError,
    ReceiptOutcome,
    SliceTiming,
    weekday_session_clock,
)
from tradekit.broker.paper_archive import ArchiveError
from tradekit.broker.paper_plugin import make_paper_broker
from tradekit.config.settings import Settings, SettingsError
from tradekit.domain import Bar, Fill, InvalidValueError, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradekit.plugins import Plugins
from tradekit.serialization import unstructure

D = Decimal
# Monday 2024-03-04, 10:00 New York: the session clock says the market is open.
T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
MONDAY_CLOSE = datetime(2024, 3, 4, 21, 0, tzinfo=UTC)
TUESDAY_MIDDAY = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
TUESDAY_CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
START_CASH = D(100_000)

MakePaper = Callable[..., PaperBroker]


def order(
    client_order_id: str,
    side: Side = Side.BUY,
    qty: Decimal | None = None,
    *,
    notional: Decimal | None = None,
    limit: Decimal | None = None,
    symbol: str = "AAPL",
    tif: TimeInForce = TimeInForce.DAY,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        qty=qty if qty is not None or notional is not None else D(1),
        notional=notional,
        limit_price=limit,
        time_in_force=tif,
    )


@pytest.fixture
def make_paper() -> MakePaper:
    """Build a paper broker from config fields, with AAPL at 100 during Monday's session."""

    def make(state_path: Path | None = None, **config: Any) -> PaperBroker:
        paper = PaperBroker(PaperBrokerConfig(**config), state_path=state_path)
        paper.set_price("AAPL", D(100), T0)
        return paper

    return make


@pytest.fixture
def paper(make_paper: MakePaper) -> PaperBroker:
    return make_paper()


def kinds(paper: PaperBroker) -> list[OrderEventKind]:
    return [event.kind for event in paper.drain_events()]


def position_qty(paper: PaperBroker, symbol: str = "AAPL") -> Decimal:
    return sum((p.qty for p in paper.get_positions() if p.symbol == symbol), D(0))


def reject_code(excinfo: pytest.ExceptionInfo[OrderRejected]) -> str | None:
    return excinfo.value.code


# --------------------------------------------------------------------------- execution


def test_paper_broker_implements_the_broker_protocol(paper: PaperBroker) -> None:
    assert isinstance(paper, Broker)
    assert paper.name == "paper"


def test_market_orders_fill_at_the_current_price_moved_against_the_trader(make_paper: MakePaper) -> None:
    paper = make_paper(slippage_bps=D(10))
    bought = paper.submit_order(order("b", Side.BUY, D(10)))
    sold = paper.submit_order(order("s", Side.SELL, D(4)))
    assert bought.status is OrderStatus.FILLED
    assert bought.filled_avg_price == D("100.1")
    assert sold.filled_avg_price == D("99.9")


def test_slipped_prices_round_to_the_tick_against_the_trader(make_paper: MakePaper) -> None:
    paper = make_paper(slippage_bps=D(1))
    paper.set_price("AAPL", D("33.33"), T0)
    # 33.33 * 1 bp = 0.003333: the buyer pays 33.3334 (not 33.3333), the seller gets 33.3266.
    assert paper.submit_order(order("b", Side.BUY, D(2))).filled_avg_price == D("33.3334")
    assert paper.submit_order(order("s", Side.SELL, D(1))).filled_avg_price == D("33.3266")


def test_slippage_never_pushes_a_limit_order_past_its_limit(make_paper: MakePaper) -> None:
    paper = make_paper(slippage_bps=D(10))
    paper.seed_position("AAPL", D(1), D(90))
    assert paper.submit_order(order("lb", limit=D("100.05"))).filled_avg_price == D("100.05")
    assert paper.submit_order(order("ls", Side.SELL, limit=D("99.95"))).filled_avg_price == D("99.95")


def test_commission_per_order_is_charged_once_and_per_share_on_every_execution(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=2, commission_per_order=D(1), commission_per_share=D("0.01"))
    paper.submit_order(order("b", Side.BUY, D(10)))
    assert [fill.commission for fill in paper.get_fills("b")] == [D("1.05"), D("0.05")]
    assert paper.get_account().cash == START_CASH - D(1000) - D("1.10")


def test_limit_buy_rests_until_the_price_reaches_it_and_fills_at_the_limit_or_better(paper: PaperBroker) -> None:
    assert paper.submit_order(order("lb", limit=D(95))).status is OrderStatus.ACCEPTED
    paper.set_price("AAPL", D(96), T0 + timedelta(minutes=1))
    assert paper.get_order_by_client_id("lb") == paper.get_open_orders()[0]
    paper.set_price("AAPL", D(94), T0 + timedelta(minutes=2))
    filled = paper.get_order_by_client_id("lb")
    assert filled is not None
    assert filled.status is OrderStatus.FILLED
    assert filled.filled_avg_price == D(94)


def test_limit_sell_fills_once_the_price_rises_to_it(paper: PaperBroker) -> None:
    paper.seed_position("AAPL", D(5), D(90))
    paper.submit_order(order("ls", Side.SELL, D(5), limit=D(105)))
    paper.set_price("AAPL", D("104.99"), T0 + timedelta(minutes=1))
    assert paper.get_open_orders()
    paper.set_price("AAPL", D(105), T0 + timedelta(minutes=2))
    assert [fill.price for fill in paper.get_fills("ls")] == [D(105)]
    assert position_qty(paper) == 0


def test_marketable_limit_order_fills_at_submission_at_the_better_price(paper: PaperBroker) -> None:
    assert paper.submit_order(order("lb", limit=D(110))).filled_avg_price == D(100)


def bar(low: str, high: str, *, open_: str, close: str, time: datetime = MONDAY_CLOSE) -> Bar:
    return Bar(symbol="AAPL", time=time, open=D(open_), high=D(high), low=D(low), close=D(close), volume=D(1000))


def test_bar_that_opens_below_a_buy_limit_fills_it_at_the_open(paper: PaperBroker) -> None:
    paper.submit_order(order("lb", limit=D(95)))
    paper.on_bar(bar("90", "99", open_="92", close="97"))
    assert [fill.price for fill in paper.get_fills("lb")] == [D(92)]
    assert paper.last_price("AAPL") == D(97)


def test_bar_whose_low_reaches_a_buy_limit_fills_it_at_the_limit(paper: PaperBroker) -> None:
    paper.submit_order(order("lb", limit=D(95)))
    paper.on_bar(bar("94", "101", open_="99", close="100"))
    assert [fill.price for fill in paper.get_fills("lb")] == [D(95)]


def test_bar_that_stays_above_a_buy_limit_leaves_it_resting(paper: PaperBroker) -> None:
    paper.submit_order(order("lb", limit=D(95), tif=TimeInForce.GTC))
    paper.on_bar(bar("95.01", "101", open_="99", close="100"))
    assert paper.get_fills("lb") == ()
    assert [o.client_order_id for o in paper.get_open_orders()] == ["lb"]


def test_bar_that_opens_above_a_sell_limit_fills_it_at_the_open(paper: PaperBroker) -> None:
    paper.seed_position("AAPL", D(2), D(90))
    paper.submit_order(order("ls", Side.SELL, D(2), limit=D(105)))
    paper.on_bar(bar("104", "110", open_="107", close="108"))
    assert [fill.price for fill in paper.get_fills("ls")] == [D(107)]


def test_partial_fills_at_once_split_the_order_into_deterministic_executions(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=3)
    paper.drain_events()
    filled = paper.submit_order(order("b", Side.BUY, D(10)))
    assert filled.status is OrderStatus.FILLED
    assert [fill.qty for fill in paper.get_fills("b")] == [D(3), D(3), D(4)]
    events = paper.drain_events()
    assert [e.kind for e in events] == [
        OrderEventKind.ACCEPTED,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.FILL,
    ]
    assert [e.order.status for e in events] == [
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert [e.order.filled_qty for e in events] == [D(0), D(3), D(6), D(10)]


def test_partial_fills_per_price_update_fill_one_slice_at_each_new_price(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=3, slice_timing=SliceTiming.PER_PRICE_UPDATE)
    first = paper.submit_order(order("b", Side.BUY, D(10)))
    assert first.status is OrderStatus.PARTIALLY_FILLED
    assert first.filled_qty == D(3)
    paper.set_price("AAPL", D(101), T0 + timedelta(minutes=1))
    paper.set_price("AAPL", D(102), T0 + timedelta(minutes=2))
    fills = paper.get_fills("b")
    assert [(fill.qty, fill.price) for fill in fills] == [(D(3), D(100)), (D(3), D(101)), (D(4), D(102))]
    done = paper.get_order_by_client_id("b")
    assert done is not None
    assert done.status is OrderStatus.FILLED
    assert done.filled_avg_price == D("101.1")
    assert paper.get_positions()[0].avg_entry_price == D("101.1")


def test_notional_buy_spends_the_notional_on_fractional_shares(paper: PaperBroker) -> None:
    filled = paper.submit_order(order("n", notional=D(50)))
    assert filled.filled_qty == D("0.5")
    assert paper.get_account().cash == START_CASH - D(50)


def test_notional_buy_in_slices_spends_no_more_than_the_notional(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=3)
    paper.set_price("AAPL", D(30), T0)
    paper.submit_order(order("n", notional=D(50)))
    fills = paper.get_fills("n")
    spent = sum((fill.qty * fill.price for fill in fills), D(0))
    assert len(fills) == 3
    assert D(50) - D(30) * D("0.000000001") < spent <= D(50)
    assert paper.get_account().cash == START_CASH - spent


def test_fills_have_unique_execution_ids_and_the_position_after_each(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=2)
    paper.submit_order(order("b1", Side.BUY, D(4)))
    paper.submit_order(order("s1", Side.SELL, D(3)))
    fills = [*paper.get_fills("b1"), *paper.get_fills("s1")]
    assert len({fill.execution_id for fill in fills}) == 4
    assert [fill.position_qty_after for fill in fills] == [D(2), D(4), D(3), D(1)]


def test_equity_marks_positions_at_the_last_price(paper: PaperBroker) -> None:
    paper.submit_order(order("b", Side.BUY, D(10)))
    paper.set_price("AAPL", D(110), T0 + timedelta(minutes=1))
    account = paper.get_account()
    assert account.cash == START_CASH - D(1000)
    assert account.equity == START_CASH + D(100)
    assert account.as_of == T0 + timedelta(minutes=1)
    assert paper.get_positions()[0].current_price == D(110)


# --------------------------------------------------------------------------- the cash account


def test_buy_beyond_buying_power_is_rejected_and_does_not_exist(make_paper: MakePaper) -> None:
    paper = make_paper(starting_cash=D(1000))
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("big", Side.BUY, D(11)))
    assert reject_code(excinfo) == PaperRejectCode.INSUFFICIENT_BUYING_POWER
    assert paper.get_order_by_client_id("big") is None
    assert paper.get_account().cash == D(1000)


def test_open_buy_orders_hold_buying_power_until_canceled(make_paper: MakePaper) -> None:
    paper = make_paper(starting_cash=D(10_000))
    paper.submit_order(order("resting", Side.BUY, D(60), limit=D(95)))
    assert paper.get_account().buying_power == D(10_000) - D(5700)
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("second", Side.BUY, D(50)))
    assert reject_code(excinfo) == PaperRejectCode.INSUFFICIENT_BUYING_POWER
    paper.cancel_order("resting")
    assert paper.get_account().buying_power == D(10_000)
    assert paper.submit_order(order("second", Side.BUY, D(50))).status is OrderStatus.FILLED


def test_market_order_filling_over_rising_prices_never_overdraws_the_cash_account(make_paper: MakePaper) -> None:
    paper = make_paper(starting_cash=D(1000), fill_slices=2, slice_timing=SliceTiming.PER_PRICE_UPDATE)
    paper.submit_order(order("b", qty=D(10)))
    paper.set_price("AAPL", D(120), T0 + timedelta(minutes=1))
    # 5 shares at 100 leave 500, which pays for 4 shares at 120; the last share is canceled.
    assert [(f.qty, f.price) for f in paper.get_fills("b")] == [(D(5), D(100)), (D(4), D(120))]
    canceled = paper.get_order_by_client_id("b")
    assert canceled is not None
    assert (canceled.status, canceled.filled_qty) == (OrderStatus.CANCELED, D(9))
    assert paper.get_account().cash == D(20)


def test_rejected_client_order_id_may_be_sent_again_because_the_order_never_existed(make_paper: MakePaper) -> None:
    paper = make_paper(starting_cash=D(1000))
    with pytest.raises(OrderRejected):
        paper.submit_order(order("retry", Side.BUY, D(20)))
    assert paper.submit_order(order("retry", Side.BUY, D(5))).status is OrderStatus.FILLED
    assert [r.outcome for r in paper.received_orders] == [ReceiptOutcome.REJECTED, ReceiptOutcome.ACCEPTED]


def test_selling_more_than_held_is_rejected(paper: PaperBroker) -> None:
    paper.seed_position("AAPL", D(2), D(90))
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("s", Side.SELL, D(3)))
    assert reject_code(excinfo) == PaperRejectCode.INSUFFICIENT_QTY
    assert position_qty(paper) == D(2)


def test_shares_promised_to_an_open_sell_cannot_be_sold_twice(paper: PaperBroker) -> None:
    paper.seed_position("AAPL", D(8), D(90))
    paper.submit_order(order("take-profit", Side.SELL, D(5), limit=D(150)))
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("s4", Side.SELL, D(4)))
    assert reject_code(excinfo) == PaperRejectCode.INSUFFICIENT_QTY
    assert paper.submit_order(order("s3", Side.SELL, D(3))).status is OrderStatus.FILLED


def test_short_selling_when_allowed_opens_a_short_at_the_fill_price(make_paper: MakePaper) -> None:
    paper = make_paper(allow_short_selling=True)
    paper.seed_position("AAPL", D(2), D(90))
    paper.submit_order(order("s", Side.SELL, D(5)))
    position = paper.get_positions()[0]
    assert (position.qty, position.avg_entry_price, position.opened_at) == (D(-3), D(100), T0)
    assert paper.get_fills("s")[0].position_qty_after == D(-3)
    paper.submit_order(order("cover", Side.BUY, D(3)))
    assert paper.get_positions() == ()


# --------------------------------------------------------------------------- symbols and fractions


def test_order_on_a_symbol_never_priced_is_rejected_as_unknown(paper: PaperBroker) -> None:
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("x", symbol="NOPE", limit=D(10)))
    assert reject_code(excinfo) == PaperRejectCode.UNKNOWN_SYMBOL
    assert not paper.get_asset("NOPE").tradable


def test_tradable_symbols_limit_what_may_be_traded(make_paper: MakePaper) -> None:
    paper = make_paper(tradable_symbols=frozenset({"MSFT"}))
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("aapl", symbol="AAPL"))
    assert reject_code(excinfo) == PaperRejectCode.UNKNOWN_SYMBOL
    # A listed symbol without a price takes a resting limit order but not a market order.
    assert paper.submit_order(order("lim", symbol="MSFT", limit=D(300))).status is OrderStatus.ACCEPTED
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("mkt", symbol="MSFT"))
    assert reject_code(excinfo) == PaperRejectCode.NO_MARKET_PRICE


def test_fractional_orders_are_refused_when_the_account_does_not_trade_fractions(make_paper: MakePaper) -> None:
    paper = make_paper(fractional_trading=False)
    with pytest.raises(FractionalNotSupported) as excinfo:
        paper.submit_order(order("f", qty=D("0.5")))
    assert reject_code(excinfo) == PaperRejectCode.FRACTIONAL_NOT_ALLOWED
    assert paper.get_account().fractional_trading is False
    assert paper.submit_order(order("whole", qty=D(1))).status is OrderStatus.FILLED


def test_fractional_orders_on_a_non_fractionable_symbol_are_refused(make_paper: MakePaper) -> None:
    paper = make_paper(non_fractionable_symbols=frozenset({"AAPL"}))
    for request in (order("q", qty=D("0.5")), order("n", notional=D(50))):
        with pytest.raises(FractionalNotSupported) as excinfo:
            paper.submit_order(request)
        assert reject_code(excinfo) == PaperRejectCode.ASSET_NOT_FRACTIONABLE
    asset = paper.get_asset("AAPL")
    assert (asset.tradable, asset.fractionable, asset.qty_increment) == (True, False, D(1))
    assert paper.submit_order(order("whole", qty=D(2))).status is OrderStatus.FILLED


def test_fractional_orders_below_the_minimum_notional_are_rejected(paper: PaperBroker) -> None:
    for request in (order("q", qty=D("0.005")), order("n", notional=D("0.50"))):
        with pytest.raises(OrderRejected) as excinfo:
            paper.submit_order(request)
        assert reject_code(excinfo) == PaperRejectCode.BELOW_MIN_NOTIONAL
    assert paper.submit_order(order("ok", qty=D("0.01"))).status is OrderStatus.FILLED


def test_notional_limit_orders_are_rejected(paper: PaperBroker) -> None:
    request = OrderRequest(
        client_order_id="nl",
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        notional=D(50),
        limit_price=D(99),
    )
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(request)
    assert reject_code(excinfo) == PaperRejectCode.INVALID_ORDER


# --------------------------------------------------------------------------- order lifecycle


def test_duplicate_client_order_id_raises_and_leaves_one_order(paper: PaperBroker) -> None:
    first = paper.submit_order(order("dup", qty=D(2)))
    with pytest.raises(DuplicateClientOrderId):
        paper.submit_order(order("dup", qty=D(2)))
    assert paper.get_order_by_client_id("dup") == first
    assert position_qty(paper) == D(2)
    assert [r.outcome for r in paper.received_orders] == [ReceiptOutcome.ACCEPTED, ReceiptOutcome.DUPLICATE]


def test_market_buy_reports_acceptance_then_its_fill(paper: PaperBroker) -> None:
    paper.submit_order(order("b", qty=D(3)))
    accepted, filled = paper.drain_events()
    assert (accepted.kind, accepted.order.status, accepted.fill) == (
        OrderEventKind.ACCEPTED,
        OrderStatus.ACCEPTED,
        None,
    )
    assert (filled.kind, filled.order.status) == (OrderEventKind.FILL, OrderStatus.FILLED)
    assert filled.fill == paper.get_fills("b")[0]
    assert paper.drain_events() == ()


def test_cancel_keeps_what_was_filled_and_releases_the_rest(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=2, slice_timing=SliceTiming.PER_PRICE_UPDATE)
    paper.submit_order(order("b", qty=D(10)))
    paper.drain_events()
    paper.cancel_order("b")
    canceled = paper.get_order_by_client_id("b")
    assert canceled is not None
    assert (canceled.status, canceled.filled_qty) == (OrderStatus.CANCELED, D(5))
    assert kinds(paper) == [OrderEventKind.CANCELED]
    paper.set_price("AAPL", D(100), T0 + timedelta(minutes=1))
    assert position_qty(paper) == D(5)
    assert paper.get_account().buying_power == START_CASH - D(500)


def test_cancel_of_a_terminal_or_unknown_order_changes_nothing(paper: PaperBroker) -> None:
    paper.submit_order(order("b"))
    paper.drain_events()
    paper.cancel_order("b")
    paper.cancel_order("never-sent")
    filled = paper.get_order_by_client_id("b")
    assert filled is not None
    assert filled.status is OrderStatus.FILLED
    assert paper.drain_events() == ()


def test_day_order_expires_when_its_symbol_reaches_the_session_close(paper: PaperBroker) -> None:
    paper.submit_order(order("day", limit=D(90)))
    paper.set_price("AAPL", D(95), MONDAY_CLOSE - timedelta(minutes=1))
    assert paper.get_open_orders()
    paper.drain_events()
    paper.set_price("AAPL", D(95), MONDAY_CLOSE)
    expired = paper.get_order_by_client_id("day")
    assert expired is not None
    assert expired.status is OrderStatus.EXPIRED
    assert kinds(paper) == [OrderEventKind.EXPIRED]


def test_day_order_fills_on_the_closing_bar_before_it_would_expire(paper: PaperBroker) -> None:
    paper.submit_order(order("day", limit=D(90)))
    paper.on_bar(bar("89", "101", open_="99", close="95"))
    assert [fill.price for fill in paper.get_fills("day")] == [D(90)]


def test_day_order_placed_after_the_close_lives_through_the_next_session(paper: PaperBroker) -> None:
    paper.set_price("AAPL", D(100), MONDAY_CLOSE)
    paper.submit_order(order("next-day", limit=D(90)))
    paper.set_price("AAPL", D(95), TUESDAY_MIDDAY)
    assert [o.client_order_id for o in paper.get_open_orders()] == ["next-day"]
    paper.set_price("AAPL", D(95), TUESDAY_CLOSE)
    assert paper.get_open_orders() == ()


def test_gtc_order_survives_the_close(paper: PaperBroker) -> None:
    paper.submit_order(order("gtc", limit=D(90), tif=TimeInForce.GTC))
    paper.set_price("AAPL", D(95), TUESDAY_CLOSE)
    assert [o.client_order_id for o in paper.get_open_orders()] == ["gtc"]


def test_the_close_of_one_symbol_does_not_expire_another_symbols_orders(paper: PaperBroker) -> None:
    paper.set_price("GOOG", D(150), T0)
    paper.submit_order(order("goog", symbol="GOOG", limit=D(140)))
    paper.on_bar(bar("99", "101", open_="100", close="100"))
    assert [o.client_order_id for o in paper.get_open_orders()] == ["goog"]
    paper.set_price("GOOG", D(150), MONDAY_CLOSE)
    assert paper.get_open_orders() == ()


def test_ioc_order_cancels_what_does_not_fill_at_once(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=2, slice_timing=SliceTiming.PER_PRICE_UPDATE)
    missed = paper.submit_order(order("ioc-limit", limit=D(90), tif=TimeInForce.IOC))
    assert (missed.status, missed.filled_qty) == (OrderStatus.CANCELED, D(0))
    half = paper.submit_order(order("ioc-market", qty=D(10), tif=TimeInForce.IOC))
    assert (half.status, half.filled_qty) == (OrderStatus.CANCELED, D(5))


# --------------------------------------------------------------------------- market feed and clock


def test_market_time_of_a_symbol_may_not_go_backwards(paper: PaperBroker) -> None:
    paper.set_price("AAPL", D(101), T0)
    with pytest.raises(ValueError, match="backwards"):
        paper.set_price("AAPL", D(101), T0 - timedelta(seconds=1))
    paper.set_price("GOOG", D(150), T0 - timedelta(days=1))
    assert paper.get_clock().now == T0


@pytest.mark.parametrize(
    ("price", "time"),
    [
        (1.5, T0),
        (D("NaN"), T0),
        (D(0), T0),
        (D(100), datetime(2024, 3, 4, 15, 0)),  # noqa: DTZ001 - the naive time under test
    ],
)
def test_unsafe_market_data_is_refused(paper: PaperBroker, price: Any, time: datetime) -> None:
    with pytest.raises(InvalidValueError):
        paper.set_price("AAPL", price, time)


def test_clock_follows_the_market_time_and_can_be_pinned(paper: PaperBroker) -> None:
    assert paper.get_clock() == weekday_session_clock(T0)
    assert paper.get_clock().is_open
    pinned = MarketClock(now=TUESDAY_MIDDAY, is_open=False, next_open=TUESDAY_CLOSE, next_close=TUESDAY_CLOSE)
    paper.set_clock(pinned)
    assert paper.get_clock() == pinned
    assert paper.submit_order(order("b")).submitted_at == TUESDAY_MIDDAY
    paper.set_clock(None)
    assert paper.get_clock().now == T0


@pytest.mark.parametrize(
    ("now", "is_open", "next_open", "next_close"),
    [
        # Monday 08:00 New York (EST): opens at 09:30 the same day.
        (
            datetime(2024, 3, 4, 13, 0, tzinfo=UTC),
            False,
            datetime(2024, 3, 4, 14, 30, tzinfo=UTC),
            datetime(2024, 3, 4, 21, 0, tzinfo=UTC),
        ),
        # Monday 10:00: open, closes at 16:00, next opens Tuesday.
        (T0, True, datetime(2024, 3, 5, 14, 30, tzinfo=UTC), datetime(2024, 3, 4, 21, 0, tzinfo=UTC)),
        # Friday 16:30, before the switch to daylight saving time: opens Monday 09:30 EDT.
        (
            datetime(2024, 3, 8, 21, 30, tzinfo=UTC),
            False,
            datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
            datetime(2024, 3, 11, 20, 0, tzinfo=UTC),
        ),
        # Saturday.
        (
            datetime(2024, 3, 9, 15, 0, tzinfo=UTC),
            False,
            datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
            datetime(2024, 3, 11, 20, 0, tzinfo=UTC),
        ),
    ],
)
def test_weekday_session_clock_knows_weekends_and_new_york_time(
    now: datetime, is_open: bool, next_open: datetime, next_close: datetime
) -> None:
    clock = weekday_session_clock(now)
    assert clock.is_open is is_open
    assert clock.next_open == next_open
    assert clock.next_close == next_close


# --------------------------------------------------------------------------- faults


def test_reject_fault_refuses_the_next_order_only(paper: PaperBroker) -> None:
    paper.faults.arm(Fault.REJECT)
    with pytest.raises(OrderRejected) as excinfo:
        paper.submit_order(order("r1"))
    assert reject_code(excinfo) == PaperRejectCode.INJECTED
    assert paper.get_order_by_client_id("r1") is None
    assert paper.submit_order(order("r2")).status is OrderStatus.FILLED
    assert paper.faults.armed == ()


def test_fault_armed_for_a_symbol_spares_other_symbols(paper: PaperBroker) -> None:
    paper.set_price("GOOG", D(150), T0)
    paper.faults.arm(Fault.REJECT, symbol="GOOG")
    assert paper.submit_order(order("aapl")).status is OrderStatus.FILLED
    with pytest.raises(OrderRejected):
        paper.submit_order(order("goog", symbol="GOOG"))


def test_reject_after_accept_reports_acceptance_then_rejection(paper: PaperBroker) -> None:
    paper.drain_events()
    paper.faults.arm(Fault.REJECT_AFTER_ACCEPT)
    answer = paper.submit_order(order("late-reject", qty=D(5)))
    assert answer.status is OrderStatus.ACCEPTED
    rejected = paper.get_order_by_client_id("late-reject")
    assert rejected is not None
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.reject_reason
    assert kinds(paper) == [OrderEventKind.ACCEPTED, OrderEventKind.REJECTED]
    assert paper.get_fills("late-reject") == ()
    assert paper.get_account().buying_power == START_CASH


@pytest.mark.parametrize("fault", [Fault.TIMEOUT_AFTER_ACCEPT, Fault.LOST_RESPONSE])
def test_ambiguous_answer_after_acceptance_leaves_an_order_that_fills(paper: PaperBroker, fault: Fault) -> None:
    paper.faults.arm(fault)
    with pytest.raises(AmbiguousSubmission) as excinfo:
        paper.submit_order(order("amb", qty=D(3)))
    assert not isinstance(excinfo.value, DuplicateClientOrderId)
    found = paper.get_order_by_client_id("amb")
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert position_qty(paper) == D(3)
    with pytest.raises(DuplicateClientOrderId):
        paper.submit_order(order("amb", qty=D(3)))
    assert position_qty(paper) == D(3)


def test_lost_request_is_ambiguous_and_the_order_does_not_exist(paper: PaperBroker) -> None:
    paper.faults.arm(Fault.LOST_REQUEST)
    with pytest.raises(AmbiguousSubmission):
        paper.submit_order(order("lost"))
    assert paper.get_order_by_client_id("lost") is None
    assert paper.received_orders == ()
    assert paper.submit_order(order("lost")).status is OrderStatus.FILLED


def test_duplicate_fill_events_repeat_the_same_fill(make_paper: MakePaper) -> None:
    paper = make_paper(fill_slices=2)
    paper.drain_events()
    paper.faults.arm(Fault.DUPLICATE_FILL_EVENTS, times=2)
    paper.submit_order(order("b", qty=D(4)))
    events = paper.drain_events()
    fills = [e.fill for e in events if e.fill is not None]
    assert [e.kind for e in events].count(OrderEventKind.PARTIAL_FILL) == 2
    assert [e.kind for e in events].count(OrderEventKind.FILL) == 2
    assert len(fills) == 4
    unique = {fill.execution_id: fill for fill in fills}
    assert sum((fill.qty for fill in unique.values()), D(0)) == D(4) == position_qty(paper)


def test_out_of_order_events_deliver_the_fill_before_the_acceptance_once(paper: PaperBroker) -> None:
    paper.drain_events()
    paper.faults.arm(Fault.OUT_OF_ORDER_EVENTS)
    paper.submit_order(order("b1"))
    assert kinds(paper) == [OrderEventKind.FILL, OrderEventKind.ACCEPTED]
    paper.submit_order(order("b2"))
    assert kinds(paper) == [OrderEventKind.ACCEPTED, OrderEventKind.FILL]


def test_out_of_order_fault_waits_for_a_batch_it_can_reorder(paper: PaperBroker) -> None:
    paper.set_price("GOOG", D(150), T0)
    paper.drain_events()
    paper.faults.arm(Fault.OUT_OF_ORDER_EVENTS, symbol="GOOG")
    paper.submit_order(order("a1"))
    assert kinds(paper) == [OrderEventKind.ACCEPTED, OrderEventKind.FILL]
    paper.submit_order(order("a2"))
    paper.submit_order(order("g1", symbol="GOOG"))
    events = paper.drain_events()
    assert [(e.order.client_order_id, e.kind) for e in events] == [
        ("a2", OrderEventKind.ACCEPTED),
        ("a2", OrderEventKind.FILL),
        ("g1", OrderEventKind.FILL),
        ("g1", OrderEventKind.ACCEPTED),
    ]


def test_disconnect_fails_reads_while_the_market_fills_and_holds_events_until_reconnected(paper: PaperBroker) -> None:
    paper.submit_order(order("dip", limit=D(95)))
    paper.drain_events()
    paper.faults.arm(Fault.DISCONNECT, times=3)
    paper.set_price("AAPL", D(94), T0 + timedelta(minutes=1))
    for read in (paper.get_account, paper.drain_events, lambda: paper.get_order_by_client_id("dip")):
        with pytest.raises(BrokerUnavailable):
            read()
    assert not paper.faults.disconnected
    events = paper.drain_events()
    assert [(e.kind, e.order.client_order_id) for e in events] == [(OrderEventKind.FILL, "dip")]


def test_submit_and_cancel_during_a_disconnect_fail_without_touching_the_order(paper: PaperBroker) -> None:
    paper.submit_order(order("resting", limit=D(95)))
    paper.faults.arm(Fault.DISCONNECT, times=2)
    with pytest.raises(AmbiguousSubmission):
        paper.submit_order(order("during"))
    with pytest.raises(BrokerUnavailable):
        paper.cancel_order("resting")
    assert paper.get_order_by_client_id("during") is None
    assert [o.client_order_id for o in paper.get_open_orders()] == ["resting"]
    assert [r.request.client_order_id for r in paper.received_orders] == ["resting"]


def test_fractional_refused_fault_spares_whole_share_orders(paper: PaperBroker) -> None:
    paper.faults.arm(Fault.FRACTIONAL_REFUSED)
    assert paper.submit_order(order("whole", qty=D(1))).status is OrderStatus.FILLED
    with pytest.raises(FractionalNotSupported):
        paper.submit_order(order("fraction", qty=D("0.5")))
    assert paper.get_order_by_client_id("fraction") is None
    assert paper.submit_order(order("fraction-again", qty=D("0.5"))).status is OrderStatus.FILLED


def test_a_fault_fires_the_number_of_times_it_was_armed_for(paper: PaperBroker) -> None:
    paper.faults.arm(Fault.REJECT, times=2)
    for client_order_id in ("r1", "r2"):
        with pytest.raises(OrderRejected):
            paper.submit_order(order(client_order_id))
    assert paper.submit_order(order("r3")).status is OrderStatus.FILLED


def test_clearing_faults_reconnects_and_disarms_everything(paper: PaperBroker) -> None:
    paper.faults.arm(Fault.REJECT, times=2)
    paper.faults.arm(Fault.DISCONNECT)
    assert paper.faults.disconnected
    paper.faults.clear()
    assert paper.faults.armed == ()
    assert paper.get_account().cash == START_CASH
    assert paper.submit_order(order("after-clear")).status is OrderStatus.FILLED


@pytest.mark.parametrize(("times", "symbol"), [(0, None), (-1, None), (1, "AAPL")])
def test_arming_a_fault_checks_its_arguments(paper: PaperBroker, times: int, symbol: str | None) -> None:
    fault = Fault.DISCONNECT if symbol is not None else Fault.REJECT
    with pytest.raises(ValueError, match=r"times|disconnect"):
        paper.faults.arm(fault, times=times, symbol=symbol)


# --------------------------------------------------------------------------- restarts


def test_restart_from_the_state_file_restores_the_whole_account(make_paper: MakePaper, tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    config: dict[str, Any] = {"fill_slices": 2, "commission_per_share": D("0.01")}
    before = make_paper(state_path=state, **config)
    before.seed_position("GOOG", D(7), D(140))
    before.submit_order(order("b", qty=D(10)))
    before.submit_order(order("tp", Side.SELL, D(5), limit=D(120), tif=TimeInForce.GTC))
    snapshot = (
        before.get_account(),
        before.get_positions(),
        before.get_open_orders(),
        before.get_fills("b"),
        before.received_orders,
        before.get_clock(),
    )

    after = PaperBroker(PaperBrokerConfig(**config), state_path=state)
    assert (
        after.get_account(),
        after.get_positions(),
        after.get_open_orders(),
        after.get_fills("b"),
        after.received_orders,
        after.get_clock(),
    ) == snapshot
    assert after.last_price("AAPL") == D(100)
    assert [e.kind for e in after.drain_events()] == [
        OrderEventKind.ACCEPTED,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.FILL,
        OrderEventKind.ACCEPTED,
    ]
    with pytest.raises(DuplicateClientOrderId):
        after.submit_order(order("b", qty=D(10)))
    after.set_price("AAPL", D(121), T0 + timedelta(minutes=1))
    execution_ids = [f.execution_id for f in (*after.get_fills("b"), *after.get_fills("tp"))]
    assert len(set(execution_ids)) == 4
    assert position_qty(after) == D(5)


def test_events_drained_before_a_restart_are_not_delivered_again(make_paper: MakePaper, tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    before = make_paper(state_path=state)
    before.submit_order(order("b"))
    assert len(before.drain_events()) == 2
    assert PaperBroker(state_path=state).drain_events() == ()


def test_state_file_is_replaced_whole_and_leaves_no_temporary_file(make_paper: MakePaper, tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    paper = make_paper(state_path=state)
    paper.submit_order(order("b"))
    paper.drain_events()
    # The state file and its archive of terminal orders and received requests, nothing else.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper.json", "paper.json.orders.db"]


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"format_version": 99}', "[]", '{"format_version": 1, "cash": "lots"}'],
)
def test_unusable_state_file_is_an_error_not_a_fresh_account(tmp_path: Path, content: str) -> None:
    state = tmp_path / "paper.json"
    state.write_text(content)
    with pytest.raises(PaperStateError, match=r"paper\.json"):
        PaperBroker(state_path=state)


# --------------------------------------------------------------------------- the order archive


def test_terminal_orders_leave_the_book_and_are_still_answered(make_paper: MakePaper, tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    paper = make_paper(state_path=state, starting_cash=D(1_000_000))
    sizes = []
    for i in range(40):
        paper.submit_order(order(f"b{i}"))
        paper.submit_order(order(f"s{i}", Side.SELL))
        paper.drain_events()  # as a trader does (undelivered events stay in the book)
        sizes.append(state.stat().st_size)
    resting = paper.submit_order(order("rest", limit=D(50), tif=TimeInForce.GTC))
    book = json.loads(state.read_text())
    # The state file holds what is open, not the 80 filled orders: it does not grow with them.
    assert list(book["orders"]) == ["rest"]
    assert book["received"] == []
    assert max(sizes) - min(sizes) < 100
    first = paper.get_order_by_client_id("b0")
    assert first is not None
    assert (first.status, first.filled_qty) == (OrderStatus.FILLED, D(1))
    assert [f.qty for f in paper.get_fills("s39")] == [D(1)]
    assert [r.request.client_order_id for r in paper.received_orders][:3] == ["b0", "s0", "b1"]
    assert len(paper.received_orders) == 81
    with pytest.raises(DuplicateClientOrderId):
        paper.submit_order(order("b0"))
    paper.cancel_order("b0")  # terminal, archived: nothing happens
    restarted = PaperBroker(state_path=state)
    assert restarted.get_order_by_client_id("b17") == paper.get_order_by_client_id("b17")
    assert restarted.get_fills("s3") == paper.get_fills("s3")
    assert restarted.received_orders == paper.received_orders
    assert restarted.get_open_orders() == (resting,)
    with pytest.raises(DuplicateClientOrderId):
        restarted.submit_order(order("s39", Side.SELL))


def test_an_account_without_saves_answers_for_orders_whose_rows_still_wait_in_memory() -> None:
    """The archive hands its rows to SQLite in batches: an order that left the recent few, and
    every received request, are answered all the same before any save or commit."""
    paper = PaperBroker(PaperBrokerConfig(starting_cash=D(1_000_000)))
    paper.set_price("AAPL", D(100), T0)
    for i in range(300):  # more than the archive keeps as objects
        paper.submit_order(order(f"b{i}"))
    first = paper.get_order_by_client_id("b0")
    assert first is not None
    assert (first.status, first.filled_qty) == (OrderStatus.FILLED, D(1))
    assert [f.qty for f in paper.get_fills("b1")] == [D(1)]
    assert [r.request.client_order_id for r in paper.received_orders] == [f"b{i}" for i in range(300)]
    with pytest.raises(DuplicateClientOrderId):
        paper.submit_order(order("b2"))


def test_a_failed_archive_write_keeps_every_waiting_row_and_writes_each_once_later() -> None:
    paper = PaperBroker(PaperBrokerConfig(starting_cash=D(1_000_000)))
    paper.set_price("AAPL", D(100), T0)
    paper.submit_order(order("b0"))
    assert len(paper.received_orders) == 1  # the file exists now; what follows waits in memory
    for i in range(1, 4):
        paper.submit_order(order(f"b{i}"))
    archive = paper._archive
    assert archive._conn is not None
    real: sqlite3.Connection = archive._conn

    class FailsOnce:
        """The connection, but the first batch of received requests fails once its rows went in
        (as a failure at its last row would): the orders' batch before it went in too."""

        failed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def executemany(self, sql: str, rows: Any) -> Any:
            done = real.executemany(sql, rows)
            if "received" in sql and not self.failed:
                self.failed = True
                raise sqlite3.OperationalError("disk I/O error")
            return done

    archive._conn = FailsOnce()  # type: ignore[assignment]
    with pytest.raises(ArchiveError, match="cannot be written: disk I/O error"):
        archive.commit()
    archive._conn = real
    archive.commit()
    assert real.execute("SELECT count(*) FROM orders").fetchone() == (4,)
    assert [r.request.client_order_id for r in paper.received_orders] == ["b0", "b1", "b2", "b3"]


def test_archive_rows_newer_than_the_state_file_are_dropped_on_restart(
    make_paper: MakePaper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive is committed before the state file is written: a crash in between leaves
    rows the state file does not know, and the restarted account must not see them."""
    state = tmp_path / "paper.json"
    paper = make_paper(state_path=state)
    paper.submit_order(order("kept"))
    paper.submit_order(order("rest", limit=D(90), tif=TimeInForce.GTC))
    cash = paper.get_account().cash

    def no_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(AmbiguousSubmission):
        paper.submit_order(order("lost"))  # filled and archived, but the save failed
    with pytest.raises(OSError, match="disk full"):
        paper.set_price("AAPL", D(89), T0 + timedelta(minutes=1))  # fills "rest"; the save fails
    monkeypatch.undo()
    assert paper.get_order_by_client_id("rest") is not None
    assert paper.get_order_by_client_id("rest").status is OrderStatus.FILLED  # type: ignore[union-attr]

    restarted = PaperBroker(state_path=state)
    assert restarted.get_order_by_client_id("lost") is None
    assert [r.request.client_order_id for r in restarted.received_orders] == ["kept", "rest"]
    assert [o.client_order_id for o in restarted.get_open_orders()] == ["rest"]
    assert restarted.get_account().cash == cash
    assert restarted.get_order_by_client_id("kept") is not None
    restarted.submit_order(order("lost"))  # the id was never used, as far as this account knows
    assert position_qty(restarted) == D(2)


def test_a_state_file_without_its_archive_is_an_error(make_paper: MakePaper, tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    paper = make_paper(state_path=state)
    paper.submit_order(order("b"))
    (tmp_path / "paper.json.orders.db").unlink()
    with pytest.raises(PaperStateError, match=r"paper\.json\.orders\.db.*missing"):
        PaperBroker(state_path=state)


def test_a_state_file_from_before_the_archive_is_read_and_moved_over(
    make_paper: MakePaper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "paper.json"
    paper = make_paper(state_path=state)
    paper.submit_order(order("done"))
    paper.submit_order(order("rest", limit=D(90), tif=TimeInForce.GTC))
    done = paper.get_order_by_client_id("done")
    # Rewrite it the way tradekit wrote it before the archive: every order and every received
    # request in the book, no generation, no archive file.
    archive = paper._archive
    book = json.loads(state.read_text())
    archived = archive.order("done")
    assert archived is not None
    book["orders"]["done"] = {
        **book["orders"]["rest"],
        "order": unstructure(archived[0]),
        "fills": unstructure(list(archived[1])),
    }
    book["received"] = archive.received_docs()
    del book["generation"]
    archive.close()
    (tmp_path / "paper.json.orders.db").unlink()
    state.write_text(json.dumps(book))

    restored = PaperBroker(state_path=state)
    assert restored.get_order_by_client_id("done") == done
    assert [r.request.client_order_id for r in restored.received_orders] == ["done", "rest"]
    assert [o.client_order_id for o in restored.get_open_orders()] == ["rest"]
    restored.set_price("AAPL", D(101), T0 + timedelta(minutes=1))  # a change: the book is saved
    assert list(json.loads(state.read_text())["orders"]) == ["rest"]
    assert PaperBroker(state_path=state).get_fills("done") == archived[1]
    # The same old file, and an archive that cannot be made: the load fails, saying so,
    # instead of the first save failing later.
    (tmp_path / "paper.json.orders.db").unlink()
    state.write_text(json.dumps(book))

    def cannot_open(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", cannot_open)  # the archive calls sqlite3.connect
    with pytest.raises(PaperStateError, match=r"paper\.json\.orders\.db cannot be opened"):
        PaperBroker(state_path=state)


def test_an_account_in_memory_keeps_its_archive_in_a_temporary_file_removed_with_it() -> None:
    paper = PaperBroker()
    paper.set_price("AAPL", D(100), T0)
    paper.submit_order(order("b"))
    # Its rows wait in memory until something reads the file (or a save commits them).
    assert paper._archive._conn is None
    assert [r.request.client_order_id for r in paper.received_orders] == ["b"]
    path = paper._archive.path
    assert path is not None
    assert path.exists()
    assert paper.get_order_by_client_id("b") is not None
    del paper
    gc.collect()
    assert not path.parent.exists()


KILLED_CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from decimal import Decimal

    from tradekit.broker import PaperBroker
    from tradekit.domain import OrderRequest, Side

    paper = PaperBroker(state_path=sys.argv[1])
    paper.set_price("AAPL", Decimal(100), datetime(2024, 3, 4, 15, tzinfo=UTC))
    paper.submit_order(OrderRequest(client_order_id="before-kill", symbol="AAPL", side=Side.BUY, qty=Decimal(3)))
    print("submitted", flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")
def test_a_killed_process_restarts_to_the_state_of_its_last_completed_call(tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "submitted"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    paper = PaperBroker(state_path=state)
    restored = paper.get_order_by_client_id("before-kill")
    assert restored is not None
    assert restored.status is OrderStatus.FILLED
    assert position_qty(paper) == D(3)
    assert len(paper.received_orders) == 1


# --------------------------------------------------------------------------- registration


def test_paper_is_registered_as_a_builtin_broker() -> None:
    spec = Plugins(load_entrypoints=False, env={}).brokers()["paper"]
    assert not spec.live_capable
    broker = spec.factory(Settings(), {})
    assert isinstance(broker, PaperBroker)
    assert broker.config == PaperBrokerConfig()
    assert broker.state_path is None


def test_paper_factory_reads_the_plugins_paper_table(tmp_path: Path) -> None:
    state = tmp_path / "paper.json"
    table = {
        "starting_cash": "25000",
        "slippage_bps": "5",
        "non_fractionable_symbols": "BRK.A, BF.B",
        "tradable_symbols": ["AAPL", "BRK.A"],
        "state_file": str(state),
    }
    broker = make_paper_broker(Settings(plugins={"paper": table}), {})
    assert isinstance(broker, PaperBroker)
    assert broker.config == PaperBrokerConfig(
        starting_cash=D(25_000),
        slippage_bps=D(5),
        non_fractionable_symbols=frozenset({"BRK.A", "BF.B"}),
        tradable_symbols=frozenset({"AAPL", "BRK.A"}),
    )
    assert broker.state_path == state
    assert state.exists()


@pytest.mark.parametrize(
    ("table", "key"),
    [({"slippage_bps": 1.5}, "slippage_bps"), ({"slipage_bps": "1"}, "slipage_bps"), ({"state_file": 3}, "state_file")],
)
def test_paper_factory_names_the_bad_setting(table: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        make_paper_broker(Settings(plugins={"paper": table}), {})


# --------------------------------------------------------------------------- threads


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond, so a missing lock shows up as a race."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_submits_of_the_same_client_order_ids_create_exactly_one_order_each(paper: PaperBroker) -> None:
    client_order_ids = [f"c-{i}" for i in range(40)]
    threads = 8
    barrier = threading.Barrier(threads)

    def submit_all(_: int) -> Counter[str]:
        accepted: Counter[str] = Counter()
        barrier.wait(timeout=60)
        for client_order_id in client_order_ids:
            try:
                paper.submit_order(order(client_order_id, qty=D(1)))
            except DuplicateClientOrderId:
                continue
            accepted[client_order_id] += 1
        return accepted

    with ThreadPoolExecutor(threads) as pool:
        accepted = sum(pool.map(submit_all, range(threads)), Counter[str]())
    assert accepted == Counter(dict.fromkeys(client_order_ids, 1))
    assert position_qty(paper) == D(40)
    assert paper.get_account().cash == START_CASH - D(4000)
    outcomes = Counter(r.outcome for r in paper.received_orders)
    assert outcomes == {ReceiptOutcome.ACCEPTED: 40, ReceiptOutcome.DUPLICATE: 40 * (threads - 1)}


def all_fills(paper: PaperBroker) -> list[Fill]:
    return [fill for r in paper.received_orders for fill in paper.get_fills(r.request.client_order_id)]


def assert_books_balance(paper: PaperBroker, starting_cash: Decimal = START_CASH) -> None:
    fills = list({fill.execution_id: fill for fill in all_fills(paper)}.values())
    cash = starting_cash
    held: dict[str, Decimal] = {}
    for fill in fills:
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        cash -= signed * fill.price + fill.commission
        held[fill.symbol] = held.get(fill.symbol, D(0)) + signed
    account = paper.get_account()
    assert account.cash == cash
    assert {p.symbol: p.qty for p in paper.get_positions()} == {s: q for s, q in held.items() if q != 0}
    for received in paper.received_orders:
        placed = paper.get_order_by_client_id(received.request.client_order_id)
        if placed is None:
            continue
        executed = sum((f.qty for f in paper.get_fills(placed.client_order_id)), D(0))
        assert placed.filled_qty == executed
        assert placed.qty is None or executed <= placed.qty


@pytest.mark.usefixtures("frequent_thread_switches")
def test_concurrent_market_updates_and_orders_keep_the_books_balanced(paper: PaperBroker) -> None:
    def feed_prices() -> None:
        for step in range(1, 400):
            paper.set_price("AAPL", D(100) + D(step % 11) - D(5), T0 + timedelta(seconds=step))

    def trade(worker: int) -> None:
        for n in range(30):
            client_order_id = f"w{worker}-{n}"
            request = (
                order(client_order_id, Side.BUY, D(2), limit=D(97) + D(n % 5), tif=TimeInForce.GTC)
                if n % 3
                else order(client_order_id, Side.BUY, D(1))
            )
            paper.submit_order(request)
            if n % 4 == 0:
                try:
                    paper.submit_order(order(f"{client_order_id}-sell", Side.SELL, D(1)))
                except OrderRejected:
                    continue  # nothing free to sell yet: a cash account refuses

    with ThreadPoolExecutor(5) as pool:
        feeder = pool.submit(feed_prices)
        traders = [pool.submit(trade, worker) for worker in range(4)]
        for future in [feeder, *traders]:
            future.result(timeout=120)
    assert_books_balance(paper)


# --------------------------------------------------------------------------- invariants

operation = st.one_of(
    st.tuples(st.just("buy"), st.integers(1, 30)),
    st.tuples(st.just("notional"), st.integers(1, 3000)),
    st.tuples(st.just("sell"), st.integers(1, 30)),
    st.tuples(st.just("limit_buy"), st.integers(1, 30), st.integers(-10, 10)),
    st.tuples(st.just("limit_sell"), st.integers(1, 30), st.integers(-10, 10)),
    st.tuples(st.just("price"), st.integers(-15, 15)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
)


@given(
    operations=st.lists(operation, max_size=40),
    slices=st.integers(1, 3),
    timing=st.sampled_from(SliceTiming),
)
def test_books_always_balance_and_a_cash_account_never_overdraws_or_goes_short(
    operations: list[tuple[Any, ...]], slices: int, timing: SliceTiming
) -> None:
    starting_cash = D(5000)
    paper = PaperBroker(
        PaperBrokerConfig(
            starting_cash=starting_cash,
            fill_slices=slices,
            slice_timing=timing,
            slippage_bps=D(7),
            commission_per_order=D("0.5"),
            commission_per_share=D("0.01"),
            commission_pct=D("0.1"),
        )
    )
    price = D(100)
    now = T0
    paper.set_price("AAPL", price, now)
    sent: list[str] = []
    for number, (kind, *args) in enumerate(operations):
        client_order_id = f"o{number}"
        if kind == "price":
            price = max(D(50), price + D(args[0]))
            now += timedelta(minutes=1)
            paper.set_price("AAPL", price, now)
            continue
        if kind == "cancel":
            if sent:
                paper.cancel_order(sent[args[0] % len(sent)])
            continue
        side = Side.BUY if kind in ("buy", "notional", "limit_buy") else Side.SELL
        limit = price + D(args[1]) if kind.startswith("limit") else None
        request = (
            order(client_order_id, side, notional=D(args[0]) / 10)
            if kind == "notional"
            else order(client_order_id, side, D(args[0]), limit=limit, tif=TimeInForce.GTC)
        )
        try:
            paper.submit_order(request)
        except OrderRejected:
            continue
        sent.append(client_order_id)
        assert all(p.qty > 0 for p in paper.get_positions())
    assert_books_balance(paper, starting_cash)
    assert paper.get_account().cash >= 0
    delivered = {e.fill.execution_id for e in paper.drain_events() if e.fill is not None}
    assert delivered == {fill.execution_id for fill in all_fills(paper)}


def test_a_change_to_one_holding_reports_that_position_anew_and_the_others_as_they_were(paper: PaperBroker) -> None:
    paper.set_price("MSFT", D(200), T0)
    paper.submit_order(order("a1", qty=D(3)))
    paper.submit_order(order("m1", qty=D(2), symbol="MSFT"))
    aapl, msft = paper.get_positions()

    paper.submit_order(order("a2", qty=D(1)))  # AAPL only
    again_aapl, again_msft = paper.get_positions()
    assert again_msft is msft  # nothing it shows changed: the very same record
    assert (again_aapl.qty, again_aapl.avg_entry_price) == (D(4), D(100))
    assert again_aapl is not aapl

    later = T0 + timedelta(minutes=5)
    paper.set_prices({"AAPL": D(101), "MSFT": D(200)}, later)  # a new moment: every position anew
    moved_aapl, moved_msft = paper.get_positions()
    assert (moved_aapl.current_price, moved_aapl.as_of) == (D(101), later)
    assert (moved_msft.qty, moved_msft.as_of) == (D(2), later)
    assert moved_msft is not msft

    paper.submit_order(order("m2", Side.SELL, qty=D(2), symbol="MSFT"))  # flat: no longer reported
    (left,) = paper.get_positions()
    assert left is moved_aapl


SYMBOLS = ("AAPL", "IBM", "MSFT", "GOOG")


@given(
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("buy"), st.sampled_from(SYMBOLS), st.integers(1, 5)),
            st.tuples(st.just("sell"), st.sampled_from(SYMBOLS), st.integers(1, 5)),
            st.tuples(st.just("price"), st.sampled_from(SYMBOLS), st.integers(-9, 9)),
            st.tuples(st.just("prices"), st.booleans(), st.integers(-9, 9)),
            st.tuples(st.just("seed"), st.sampled_from(SYMBOLS), st.integers(0, 4)),
        ),
        max_size=40,
    )
)
def test_positions_and_equity_worked_out_from_what_changed_equal_a_full_pass(operations: list[tuple[Any, ...]]) -> None:
    """The broker works positions and marks out again only for the symbols whose holding or
    quote was written since it last did; after any sequence of orders, fills, price moves
    (one symbol, or all at a new moment) and seeded positions, what it reports is what a
    pass over every holding gives, in the same order, with the equity summing each
    holding at its last price."""
    paper = PaperBroker(PaperBrokerConfig(starting_cash=D(1_000_000), allow_short_selling=True))
    prices = {symbol: D(100 + 10 * n) for n, symbol in enumerate(SYMBOLS)}
    now = T0
    paper.set_prices(prices, now)
    for number, (kind, first, amount) in enumerate(operations):
        if kind in ("buy", "sell"):
            side = Side.BUY if kind == "buy" else Side.SELL
            with contextlib.suppress(OrderRejected):  # a refused order changes nothing
                paper.submit_order(order(f"o{number}", side, D(amount), symbol=first))
        elif kind == "price":
            prices[first] = max(D(1), prices[first] + amount)
            paper.set_price(first, prices[first], now)  # the same moment: positions kept where unchanged
        elif kind == "prices":
            now += timedelta(minutes=1) if first else timedelta(0)
            prices = {symbol: max(D(1), price + amount) for symbol, price in prices.items()}
            paper.set_prices(prices, now)
        else:
            paper.seed_position(first, D(amount), prices[first])
        positions = paper.get_positions()
        account = paper.get_account()
        assert [p.symbol for p in positions] == sorted(p.symbol for p in positions)
        assert account.equity == account.cash + sum(
            (p.qty * (p.current_price if p.current_price is not None else p.avg_entry_price) for p in positions), D(0)
        )
        # The same broker's pass over every holding (forget what changed: everything did).
        paper._stale_positions = paper._stale_marks = None
        assert paper._positions() == positions
        assert paper._account() == account


def _book_figures(paper: PaperBroker) -> tuple[list[tuple[Any, ...]], Decimal]:
    """Each holding and the equity, read straight from the book (the reference)."""
    book = paper._book
    held: list[tuple[Any, ...]] = []
    total = D(0)
    for symbol, holding in sorted(book.holdings.items()):
        quote = book.quotes.get(symbol)
        price = quote.price if quote is not None else None
        held.append((symbol, holding.qty, holding.avg_entry_price, price, holding.opened_at))
        total += holding.qty * (price if price is not None else holding.avg_entry_price)
    return held, book.cash + total


@given(
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("buy"), st.sampled_from((*SYMBOLS, "NEW")), st.integers(1, 5)),
            st.tuples(st.just("sell"), st.sampled_from((*SYMBOLS, "NEW")), st.integers(1, 5)),
            st.tuples(st.just("limit"), st.sampled_from(SYMBOLS), st.integers(-5, 5)),
            st.tuples(st.just("price"), st.sampled_from((*SYMBOLS, "NEW")), st.integers(-9, 9)),
            st.tuples(st.just("bar"), st.sampled_from(SYMBOLS), st.integers(-9, 9)),
            st.tuples(st.just("prices"), st.booleans(), st.integers(-9, 9)),
            st.tuples(st.just("seed"), st.sampled_from((*SYMBOLS, "NEW")), st.integers(-4, 4)),
            st.tuples(st.just("reload"), st.just(""), st.just(0)),
            st.tuples(st.just("read"), st.just(""), st.just(0)),
        ),
        max_size=40,
    ),
    short=st.booleans(),
)
def test_positions_and_equity_equal_the_book_whatever_was_quoted_held_resting_or_reloaded(
    operations: list[tuple[Any, ...]], short: bool
) -> None:
    """Only a held symbol's quote changes what the broker reports (the quotes of symbols
    not held move without a second look). After any mix of orders, resting limits that a
    bar or a price reaches, quotes of held and unheld symbols (one never quoted before),
    seeded positions (short ones included), reloads from the state file and reads between
    some steps only, the positions and the equity are those read straight from the book."""
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory) / "paper.json"
        config = PaperBrokerConfig(starting_cash=D(1_000_000), allow_short_selling=short)
        paper = PaperBroker(config, state_path=state)
        prices = {symbol: D(100 + 10 * n) for n, symbol in enumerate((*SYMBOLS, "NEW"))}
        now = T0
        paper.set_prices({s: p for s, p in prices.items() if s != "NEW"}, now)  # NEW: no quote yet
        for number, (kind, symbol, amount) in enumerate(operations):
            if kind in ("buy", "sell", "limit"):
                side = Side.BUY if kind == "buy" or (kind == "limit" and amount >= 0) else Side.SELL
                limit = None if kind != "limit" else prices[symbol] + (-3 if side is Side.BUY else 3)
                with contextlib.suppress(OrderRejected):  # a refused order changes nothing
                    paper.submit_order(
                        order(
                            f"o{number}",
                            side,
                            D(1) if limit else D(amount),
                            symbol=symbol,
                            limit=limit,
                            tif=TimeInForce.GTC,
                        )
                    )
            elif kind == "price":
                prices[symbol] = max(D(1), prices[symbol] + amount)
                paper.set_price(symbol, prices[symbol], now)
            elif kind == "bar":
                now += timedelta(seconds=amount % 2)
                close = max(D(5), prices[symbol] + amount)
                low, high = max(D("0.5"), min(close, prices[symbol]) - 2), max(close, prices[symbol]) + 2
                paper.on_bar(
                    Bar(symbol=symbol, time=now, open=prices[symbol], high=high, low=low, close=close, volume=D(1000))
                )
                prices[symbol] = close
            elif kind == "prices":
                now += timedelta(minutes=1) if symbol else timedelta(0)
                prices = {s: max(D(1), p + amount) for s, p in prices.items()}
                paper.set_prices(prices, now)
            elif kind == "seed":
                paper.seed_position(symbol, D(amount), prices[symbol] + 1)
            elif kind == "reload":
                paper.close()
                paper = PaperBroker(config, state_path=state)
            if kind in ("read", "reload") or number == len(operations) - 1:
                held, equity = _book_figures(paper)
                positions = paper.get_positions()
                assert [(p.symbol, p.qty, p.avg_entry_price, p.current_price, p.opened_at) for p in positions] == held
                assert paper.get_account().equity == equity
        paper.close()
