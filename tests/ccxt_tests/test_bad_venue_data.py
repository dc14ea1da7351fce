"""Bad venue data — a missing field, NaN, a zero or negative price, an impossible timestamp —
is a ``BrokerDataError`` naming what is wrong, and no order goes out on it.

The pair trader treats such an error like an unreadable venue: the entry is skipped (with
the error in its detail), the pair is left unpriced for the cycle, and the rest of the cycle
— the other pairs, the funding stop and max hold — carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxt_tests.pair_world import START, PairWorld, only_outcome, pair_config
from ccxt_tests.venues import ETH
from tradekit.broker.errors import BrokerDataError
from tradekit.decision.reasons import BuyAction
from tradekit_venue_ccxt.pairs.models import ExitReason, PairStatus, SignalStatus
from tradekit_venue_ccxt.providers import (
    FundingPayment,
    FundingRate,
    OrderBook,
    VenueFill,
    ms_to_utc,
    order_from_ccxt,
    position_from_ccxt,
)

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2025, 1, 6, tzinfo=UTC)
STAMP = 1_736_121_600_000
ZERO = Decimal(0)
IMPOSSIBLE_MS = 10**17  # the year 3 170 843


# --- records from ccxt dicts ------------------------------------------------------------------


@pytest.mark.parametrize("stamp", [IMPOSSIBLE_MS, -(10**17), float("nan"), float("inf"), "soon"])
def test_a_timestamp_no_calendar_holds_is_a_data_error_naming_the_field(stamp: object) -> None:
    with pytest.raises(BrokerDataError, match="serverTime"):
        ms_to_utc(stamp, field="serverTime", what="bybit server time")


@pytest.mark.parametrize(
    ("level", "named"),
    [
        ([float("nan"), 1.0], "0.price"),
        ([0.0, 1.0], "invalid level"),
        ([-3000.0, 1.0], "invalid level"),
        ([3000.0, float("nan")], "0.qty"),
        ([3000.0, -1.0], "invalid level"),
        (["3000", None], "0.qty"),
    ],
)
def test_a_book_level_with_a_bad_price_or_size_is_refused_naming_it(level: list[object], named: str) -> None:
    raw = {"bids": [level], "asks": [[3000.5, 1.0]], "timestamp": STAMP}
    with pytest.raises(BrokerDataError, match="bids") as raised:
        OrderBook.from_ccxt(raw, symbol=ETH, received_at=NOW)
    assert named in str(raised.value)


def test_a_book_stamped_at_an_impossible_time_is_refused_naming_the_timestamp() -> None:
    raw = {"bids": [[2999.5, 1.0]], "asks": [[3000.5, 1.0]], "timestamp": IMPOSSIBLE_MS}
    with pytest.raises(BrokerDataError, match=r"order book ETH/USDT:USDT.*timestamp"):
        OrderBook.from_ccxt(raw, symbol=ETH, received_at=NOW)


@pytest.mark.parametrize("rate", [None, float("nan"), "n/a"])
def test_a_funding_rate_without_a_number_is_refused_naming_it(rate: object) -> None:
    with pytest.raises(BrokerDataError, match="fundingRate"):
        FundingRate.from_ccxt({"fundingRate": rate, "fundingTimestamp": STAMP}, symbol=ETH)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"amount": None}, "amount"),
        ({"amount": float("nan")}, "amount"),
        ({"timestamp": None}, "timestamp"),
        ({"timestamp": IMPOSSIBLE_MS}, "timestamp"),
        ({"id": ""}, "id"),
    ],
)
def test_a_funding_payment_with_a_bad_field_is_refused_naming_it(change: dict[str, Any], named: str) -> None:
    raw = {"id": "f-1", "symbol": ETH, "amount": -0.25, "code": "USDT", "timestamp": STAMP, **change}
    with pytest.raises(BrokerDataError, match=named):
        FundingPayment.from_ccxt(raw, venue="bybit", credit_sign=-1)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"price": 0.0}, "price"),
        ({"price": -1.0}, "price"),
        ({"price": float("nan")}, "price"),
        ({"amount": float("nan")}, "amount"),
        ({"amount": 0.0}, "qty"),
    ],
)
def test_a_fill_with_a_bad_price_or_size_is_refused_naming_it(change: dict[str, Any], named: str) -> None:
    raw = {
        "id": "t-1",
        "order": "o-1",
        "symbol": ETH,
        "side": "buy",
        "amount": 0.33,
        "price": 3000.0,
        "fee": {"cost": 0.5},
        "timestamp": STAMP,
        **change,
    }
    with pytest.raises(BrokerDataError, match=named):
        VenueFill.from_ccxt_trade(raw, venue="binanceusdm", client_order_id="tk-1")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"contracts": float("nan")}, "contracts"),
        ({"entryPrice": 0.0}, "avg_entry_price"),
        ({"entryPrice": None}, "entryPrice"),
        ({"side": "both"}, "side"),
    ],
)
def test_a_position_with_a_bad_field_is_refused_naming_it(change: dict[str, Any], named: str) -> None:
    raw = {"symbol": ETH, "contracts": 0.33, "side": "long", "entryPrice": 3000.0, "timestamp": STAMP, **change}
    with pytest.raises(BrokerDataError, match=named):
        position_from_ccxt(raw, received_at=NOW)


def test_an_order_filled_at_a_nan_average_is_refused_naming_it() -> None:
    raw = {
        "id": "o-1",
        "symbol": ETH,
        "side": "buy",
        "type": "market",
        "status": "closed",
        "amount": 0.33,
        "filled": 0.33,
        "average": float("nan"),
        "timestamp": STAMP,
    }
    with pytest.raises(BrokerDataError, match="average"):
        order_from_ccxt(raw, client_order_id="tk-1", received_at=NOW)


# --- the pair trader on bad data -------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PairWorld]:
    world = PairWorld.start(tmp_path, config=pair_config())
    yield world
    world.close()


def corrupt_books(world: PairWorld, venue: str, corrupt: Callable[[dict[str, Any]], None]) -> None:
    """Pass the venue's order books (as ccxt parsed them) through ``corrupt`` before tradekit reads them."""
    client = world.venues[venue]._client
    fetch = client.fetch_order_book

    def fetch_corrupted(*args: Any, **kwargs: Any) -> Any:
        raw = fetch(*args, **kwargs)
        corrupt(raw)
        return raw

    client.fetch_order_book = fetch_corrupted


def nan_best_bid(raw: dict[str, Any]) -> None:
    raw["bids"][0][0] = float("nan")


def zero_best_bid(raw: dict[str, Any]) -> None:
    raw["bids"][0][0] = 0.0


def negative_best_bid(raw: dict[str, Any]) -> None:
    raw["bids"][0][0] = -raw["bids"][0][0]


@pytest.mark.parametrize("corrupt", [nan_best_bid, zero_best_bid, negative_best_bid])
def test_an_entry_on_a_book_with_a_bad_price_is_skipped_naming_it_and_sends_nothing(
    world: PairWorld, corrupt: Callable[[dict[str, Any]], None]
) -> None:
    corrupt_books(world, world.short_venue, corrupt)

    outcome = only_outcome(world.cycle(START, 20))

    assert outcome.status is SignalStatus.SKIPPED
    assert outcome.action is None
    assert "market data unavailable" in outcome.detail
    assert f"order book {ETH} bids" in outcome.detail
    assert "0.price" in outcome.detail or "invalid level" in outcome.detail
    assert world.long_emu.create_order_request_count == 0
    assert world.short_emu.create_order_request_count == 0


def test_a_venue_clock_at_an_impossible_time_skips_the_entry_and_leaves_the_cycle_running(world: PairWorld) -> None:
    assert only_outcome(world.cycle(START, 20)).action is BuyAction.ENTER_NEW
    held = world.only_pair().long.held
    orders_before = (world.long_emu.create_order_request_count, world.short_emu.create_order_request_count)

    def impossible_stamp(raw: dict[str, Any]) -> None:
        raw["timestamp"] = IMPOSSIBLE_MS

    corrupt_books(world, world.short_venue, impossible_stamp)
    world.quote_spread(40)
    report = world.cycle(START + timedelta(minutes=90))

    ((pair_id, why),) = report.unpriced
    assert pair_id == world.only_pair().pair_id
    assert "short book (bybit) is unreadable" in why
    assert "timestamp" in why
    outcome = only_outcome(report)
    assert outcome.status is SignalStatus.SKIPPED
    assert "market data unavailable" in outcome.detail
    assert (world.long_emu.create_order_request_count, world.short_emu.create_order_request_count) == orders_before
    assert world.venue_qty() == (held, -held)

    # The rails need no book: a week on, max hold closes both legs, the stamps still garbled.
    world.cycle(START + timedelta(days=7, minutes=1), signal=False)
    pair = world.only_pair()
    assert pair.exit is not None
    assert pair.exit.reason is ExitReason.MAX_HOLD
    assert pair.status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)


@pytest.mark.parametrize("status", ["closed", "canceled", "expired"])
def test_a_finished_order_that_does_not_say_what_filled_is_refused_not_taken_as_unfilled(status: str) -> None:
    # Taken as "nothing filled", a leg that did fill would be left without its partner.
    raw = {"id": "o-1", "symbol": ETH, "side": "buy", "type": "market", "status": status, "amount": 0.33}
    with pytest.raises(BrokerDataError, match="filled"):
        order_from_ccxt(raw, client_order_id="tk-1", received_at=NOW)


def test_a_refused_or_working_order_without_a_filled_figure_has_filled_nothing() -> None:
    for status in ("rejected", "open"):
        raw = {"id": "o-1", "symbol": ETH, "side": "buy", "type": "market", "status": status, "amount": 0.33}
        assert order_from_ccxt(raw, client_order_id="tk-1", received_at=NOW).filled_qty == 0
