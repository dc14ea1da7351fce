"""Alpaca JSON to tradekit records: every field, Decimal exactness, and bad data named."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import BrokerDataError
from tradekit.domain import OrderStatus, OrderType, Side
from tradekit_broker_alpaca.providers import (
    account_from_alpaca,
    asset_from_alpaca,
    bar_from_alpaca,
    clock_from_alpaca,
    execution_id_for,
    fill_from_alpaca_activity,
    order_from_alpaca,
    position_from_alpaca,
    session_from_alpaca,
)

AS_OF = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def offline() -> AlpacaEmulator:
    """An emulator used for its JSON only (no servers)."""
    emu = AlpacaEmulator(cash=Decimal("25000.55"))
    emu.set_asset("AAPL")
    emu.set_asset("BRK.A", fractionable=False)
    emu.set_price("AAPL", Decimal("150.25"))
    return emu


CONFIGURATION: dict[str, Any] = {"fractional_trading": True, "suspend_trade": False}


def without(payload: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != field}


# ---------------------------------------------------------------------------- account


def test_account_maps_money_as_exact_decimals_and_the_flags(offline: AlpacaEmulator) -> None:
    offline.set_account(pattern_day_trader=True, daytrade_count=3)

    account = account_from_alpaca(offline.account(), CONFIGURATION, as_of=AS_OF)

    assert (account.equity, account.cash, account.buying_power) == (
        Decimal("25000.55"),
        Decimal("25000.55"),
        Decimal("25000.55"),
    )
    assert (account.currency, account.as_of) == ("USD", AS_OF)
    assert (account.trading_blocked, account.account_blocked) == (False, False)
    assert account.pattern_day_trader is True
    assert account.fractional_trading is True


@pytest.mark.parametrize(
    ("account_change", "configuration_change"),
    [
        ({"trading_blocked": True}, {}),
        ({"trade_suspended_by_user": True}, {}),
        ({"status": "ACCOUNT_UPDATED"}, {}),
        ({}, {"suspend_trade": True}),
    ],
)
def test_anything_that_stops_the_account_trading_reads_as_trading_blocked(
    offline: AlpacaEmulator, account_change: dict[str, Any], configuration_change: dict[str, Any]
) -> None:
    offline.set_account(**account_change)

    account = account_from_alpaca(offline.account(), {**CONFIGURATION, **configuration_change}, as_of=AS_OF)

    assert account.trading_blocked is True


def test_account_without_pdt_fields_or_configuration_reads_on_the_safe_side(offline: AlpacaEmulator) -> None:
    offline.set_account(account_blocked=True)

    account = account_from_alpaca(offline.account(), None, as_of=AS_OF)

    assert account.pattern_day_trader is False
    assert account.fractional_trading is False
    assert account.account_blocked is True


@pytest.mark.parametrize("field", ["equity", "cash", "buying_power", "status", "trading_blocked", "account_blocked"])
def test_account_missing_a_field_names_it(offline: AlpacaEmulator, field: str) -> None:
    with pytest.raises(BrokerDataError, match=f"Alpaca account: field '{field}' is missing"):
        account_from_alpaca(without(offline.account(), field), CONFIGURATION, as_of=AS_OF)


def test_account_with_a_non_number_is_refused_and_a_negative_buying_power_read_as_sent(
    offline: AlpacaEmulator,
) -> None:
    with pytest.raises(BrokerDataError, match="field 'cash' is not a number: 'lots'"):
        account_from_alpaca({**offline.account(), "cash": "lots"}, CONFIGURATION, as_of=AS_OF)
    # A margin deficit: Alpaca reports it so, and the account must stay readable for exits.
    deficit = account_from_alpaca({**offline.account(), "buying_power": "-1"}, CONFIGURATION, as_of=AS_OF)
    assert deficit.buying_power == Decimal(-1)
    with pytest.raises(BrokerDataError, match="field 'equity' is not a finite number"):
        account_from_alpaca({**offline.account(), "equity": "NaN"}, CONFIGURATION, as_of=AS_OF)


# ---------------------------------------------------------------------------- positions and assets


def test_long_and_short_positions_map_with_average_entry_price(offline: AlpacaEmulator) -> None:
    offline.set_position("AAPL", Decimal("12.5"), Decimal("140.123456789"))
    offline.set_position("BRK.A", Decimal(-2), Decimal(610))

    aapl, brk = (position_from_alpaca(p, as_of=AS_OF) for p in offline.positions())

    assert (aapl.symbol, aapl.qty, aapl.avg_entry_price, aapl.current_price) == (
        "AAPL",
        Decimal("12.5"),
        Decimal("140.123456789"),
        Decimal("150.25"),
    )
    assert (aapl.asset_class, aapl.as_of, aapl.is_short) == ("us_equity", AS_OF, False)
    assert (brk.qty, brk.is_short, brk.avg_entry_price) == (Decimal(-2), True, Decimal(610))


def test_short_position_reported_with_a_positive_qty_is_still_short(offline: AlpacaEmulator) -> None:
    offline.set_position("AAPL", Decimal(-3), Decimal(150))
    (payload,) = offline.positions()

    position = position_from_alpaca({**payload, "qty": "3"}, as_of=AS_OF)

    assert position.qty == Decimal(-3)


@pytest.mark.parametrize("field", ["qty", "avg_entry_price"])
def test_position_missing_a_field_names_the_symbol_and_field(offline: AlpacaEmulator, field: str) -> None:
    offline.set_position("AAPL", Decimal(1), Decimal(150))
    (payload,) = offline.positions()

    with pytest.raises(BrokerDataError, match=f"Alpaca position AAPL: field '{field}' is missing"):
        position_from_alpaca(without(payload, field), as_of=AS_OF)


def test_assets_map_fractional_rules(offline: AlpacaEmulator) -> None:
    offline.set_asset("OLD", status="inactive")
    assets = {a["symbol"]: a for a in offline.assets()}

    aapl = asset_from_alpaca(assets["AAPL"])
    brk = asset_from_alpaca(assets["BRK.A"])
    old = asset_from_alpaca(assets["OLD"])

    assert (aapl.tradable, aapl.fractionable, aapl.min_notional, aapl.qty_increment, aapl.min_qty) == (
        True,
        True,
        Decimal(1),
        Decimal("0.000000001"),
        Decimal("0.000000001"),
    )
    assert (brk.fractionable, brk.min_notional, brk.qty_increment, brk.min_qty) == (
        False,
        Decimal(0),
        Decimal(1),
        Decimal(1),
    )
    assert old.tradable is False


def test_asset_missing_or_mistyped_fractionable_names_it(offline: AlpacaEmulator) -> None:
    payload = without(offline.assets()[0], "fractionable")
    with pytest.raises(BrokerDataError, match="Alpaca asset AAPL: field 'fractionable' must be true or false"):
        asset_from_alpaca({**payload, "fractionable": "yes"})

    with pytest.raises(BrokerDataError, match="Alpaca asset AAPL: field 'fractionable' is missing"):
        asset_from_alpaca(payload)


# ---------------------------------------------------------------------------- orders and fills


def test_order_maps_every_field_with_exact_quantities(offline: AlpacaEmulator) -> None:
    placed = offline.submit_dashboard_order("AAPL", "buy", qty=Decimal("0.123456789"))
    stored = offline.orders()[0]

    order = order_from_alpaca(stored)

    assert (order.client_order_id, order.broker_order_id) == (placed["client_order_id"], placed["id"])
    assert (order.symbol, order.side, order.order_type, order.status) == (
        "AAPL",
        Side.BUY,
        OrderType.MARKET,
        OrderStatus.FILLED,
    )
    assert (order.qty, order.notional, order.limit_price) == (Decimal("0.123456789"), None, None)
    assert (order.filled_qty, order.filled_avg_price) == (Decimal("0.123456789"), Decimal("150.25"))
    assert order.submitted_at.tzinfo is not None
    assert order.updated_at is not None


def test_notional_and_limit_orders_map(offline: AlpacaEmulator) -> None:
    offline.submit_dashboard_order("AAPL", "buy", notional=Decimal("99.5"))
    offline.submit_dashboard_order("AAPL", "buy", qty=Decimal(1), type="limit", limit_price=Decimal("100.01"))

    notional, limit = (order_from_alpaca(o) for o in offline.orders())

    assert (notional.notional, notional.qty) == (Decimal("99.5"), None)
    assert (limit.order_type, limit.limit_price, limit.status) == (OrderType.LIMIT, Decimal("100.01"), OrderStatus.NEW)


@pytest.mark.parametrize(
    ("alpaca_status", "filled_qty", "expected"),
    [
        ("new", "0", OrderStatus.NEW),
        ("accepted", "0", OrderStatus.ACCEPTED),
        ("pending_new", "0", OrderStatus.ACCEPTED),
        ("partially_filled", "1", OrderStatus.PARTIALLY_FILLED),
        ("filled", "2", OrderStatus.FILLED),
        ("canceled", "0", OrderStatus.CANCELED),
        ("replaced", "0", OrderStatus.CANCELED),
        ("expired", "0", OrderStatus.EXPIRED),
        ("rejected", "0", OrderStatus.REJECTED),
        # Still working at Alpaca: never reported as finished.
        ("pending_cancel", "0", OrderStatus.ACCEPTED),
        ("pending_cancel", "1", OrderStatus.PARTIALLY_FILLED),
        ("pending_replace", "0", OrderStatus.ACCEPTED),
        ("done_for_day", "1", OrderStatus.PARTIALLY_FILLED),
        ("held", "0", OrderStatus.ACCEPTED),
        ("stopped", "0", OrderStatus.ACCEPTED),
        ("suspended", "0", OrderStatus.ACCEPTED),
        ("calculated", "1", OrderStatus.PARTIALLY_FILLED),
        ("accepted_for_bidding", "0", OrderStatus.ACCEPTED),
    ],
)
def test_every_alpaca_order_status_maps_and_working_orders_stay_open(
    offline: AlpacaEmulator, alpaca_status: str, filled_qty: str, expected: OrderStatus
) -> None:
    offline.submit_dashboard_order("AAPL", "buy", qty=Decimal(2))
    payload = {**offline.orders()[0], "status": alpaca_status, "filled_qty": filled_qty}

    assert order_from_alpaca(payload).status is expected


def test_stop_orders_map_to_what_they_become_once_triggered(offline: AlpacaEmulator) -> None:
    offline.submit_dashboard_order("AAPL", "buy", qty=Decimal(1))
    base = offline.orders()[0]

    assert order_from_alpaca({**base, "type": "stop"}).order_type is OrderType.MARKET
    assert order_from_alpaca({**base, "type": "trailing_stop"}).order_type is OrderType.MARKET
    assert order_from_alpaca({**base, "type": "stop_limit", "limit_price": "151"}).order_type is OrderType.LIMIT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "teleported"}, "unknown order status 'teleported'"),
        ({"type": "iceberg"}, "field 'type' is 'iceberg'"),
        ({"side": "borrow"}, "field 'side' is 'borrow'"),
        ({"id": None}, "field 'id' is missing"),
        ({"submitted_at": None, "created_at": None}, "field 'created_at' is missing"),
        ({"updated_at": "2026-03-02T10:00:00"}, "field 'updated_at' has no UTC offset"),
        ({"filled_qty": "-1"}, "filled_qty must not be negative"),
    ],
)
def test_order_with_bad_data_names_the_order_and_field(
    offline: AlpacaEmulator, change: dict[str, Any], message: str
) -> None:
    offline.submit_dashboard_order("AAPL", "buy", qty=Decimal(1))
    payload = {**offline.orders()[0], **change}

    with pytest.raises(BrokerDataError, match=message) as raised:
        order_from_alpaca(payload)

    assert payload["client_order_id"] in str(raised.value)


def test_fill_activity_maps_to_one_execution_named_by_order_and_cumulative_qty(offline: AlpacaEmulator) -> None:
    offline.set_fill_policy(partial_fills=2)
    placed = offline.submit_dashboard_order("AAPL", "buy", qty=Decimal("3.5"))
    first, second = offline.fill_activities()

    fill = fill_from_alpaca_activity(second, client_order_id="mine")

    assert fill.execution_id == execution_id_for(placed["id"], Decimal("3.5")) == f"{placed['id']}:3.5"
    assert (fill.client_order_id, fill.broker_order_id) == ("mine", placed["id"])
    assert (fill.symbol, fill.side) == ("AAPL", Side.BUY)
    assert (fill.qty, fill.price, fill.commission) == (Decimal("1.75"), Decimal("150.25"), Decimal(0))
    assert fill.time.tzinfo is not None
    assert fill_from_alpaca_activity(first, client_order_id="mine").execution_id == f"{placed['id']}:1.75"


def test_execution_id_does_not_depend_on_how_the_quantity_was_written() -> None:
    assert execution_id_for("o", Decimal("10")) == execution_id_for("o", Decimal("10.000")) == "o:10"
    assert execution_id_for("o", Decimal("1E+2")) == "o:100"


# ---------------------------------------------------------------------------- clock, calendar, bars


def test_clock_times_become_utc() -> None:
    clock = clock_from_alpaca(
        {
            "timestamp": "2026-03-02T10:00:00.123456789-05:00",
            "is_open": True,
            "next_open": "2026-03-03T09:30:00-05:00",
            "next_close": "2026-03-02T16:00:00-05:00",
        }
    )

    assert clock.now == datetime(2026, 3, 2, 15, 0, 0, 123456, tzinfo=UTC)
    assert clock.is_open is True
    assert (clock.next_open, clock.next_close) == (
        datetime(2026, 3, 3, 14, 30, tzinfo=UTC),
        datetime(2026, 3, 2, 21, 0, tzinfo=UTC),
    )


def test_calendar_day_becomes_a_session_in_utc_including_early_closes() -> None:
    session = session_from_alpaca({"date": "2026-11-27", "open": "09:30", "close": "13:00"})

    assert session.day == date(2026, 11, 27)
    assert (session.open, session.close) == (
        datetime(2026, 11, 27, 14, 30, tzinfo=UTC),
        datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
    )


def test_calendar_day_with_a_bad_time_names_it() -> None:
    with pytest.raises(BrokerDataError, match="calendar day 2026-03-02: field 'close' is not an HH:MM time"):
        session_from_alpaca({"date": "2026-03-02", "open": "09:30", "close": "late"})


def test_bar_is_stamped_at_the_new_york_close_with_exact_prices() -> None:
    bar = bar_from_alpaca(
        "AAPL", {"t": "2026-03-02T05:00:00Z", "o": 99.99, "h": 101.27, "l": 98.1, "c": 100.3, "v": 1234567}
    )

    assert bar.time == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("99.99"),
        Decimal("101.27"),
        Decimal("98.1"),
        Decimal("100.3"),
        Decimal(1234567),
    )


def test_bar_with_bad_data_names_symbol_day_and_problem() -> None:
    with pytest.raises(BrokerDataError, match="Alpaca bar of AAPL on 2026-03-02: field 'c' is missing"):
        bar_from_alpaca("AAPL", {"t": "2026-03-02T05:00:00Z", "o": 1, "h": 2, "l": 1, "v": 3})
    with pytest.raises(BrokerDataError, match="AAPL on 2026-03-02: high 1 is below the low 2"):
        bar_from_alpaca("AAPL", {"t": "2026-03-02T05:00:00Z", "o": 1, "h": 1, "l": 2, "c": 1, "v": 3})
