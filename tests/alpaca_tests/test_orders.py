"""Submitting, finding and canceling orders through the real alpaca-py client on the emulator.

The money rule under test: an order is sent once. Whatever goes wrong on the way (a 504
after Alpaca stored it, a timeout, a reused client order id), the broker raises an error that
tells the caller to look the order up, and the emulator holds exactly one order.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerDataError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    FractionalNotSupported,
    OrderRejected,
)
from tradekit.domain import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradekit.ledger import client_order_id_for
from tradekit_broker_alpaca.execution import AlpacaBroker

from .conftest import MakeBroker


def buy(
    client_order_id: str,
    *,
    qty: str | None = None,
    notional: str | None = None,
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    limit_price: str | None = None,
    time_in_force: TimeInForce = TimeInForce.DAY,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET,
        qty=Decimal(qty) if qty is not None else None,
        notional=Decimal(notional) if notional is not None else None,
        limit_price=Decimal(limit_price) if limit_price is not None else None,
        time_in_force=time_in_force,
    )


# ---------------------------------------------------------------------------- what goes over the wire


def test_order_goes_out_with_its_client_order_id_and_exact_decimal_strings(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    client_order_id = client_order_id_for("KO|2024-03-04|entry")
    broker.submit_order(buy(client_order_id, qty="0.123456789"))
    broker.submit_order(buy("limit-1", qty="3", limit_price="149.99"))
    broker.submit_order(buy("notional-1", notional="1234.56"))

    bodies = [r.body for r in emu.requests("POST /v2/orders")]

    assert bodies[0] == {
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": client_order_id,
        "qty": "0.123456789",
    }
    assert (bodies[1]["qty"], bodies[1]["limit_price"], bodies[1]["type"]) == ("3", "149.99", "limit")
    assert bodies[2]["notional"] == "1234.56"
    assert "qty" not in bodies[2]
    assert all(isinstance(v, str) for body in bodies for k, v in body.items() if k in ("qty", "notional"))


def test_submitted_order_maps_every_field_alpaca_answers(broker: AlpacaBroker) -> None:
    order = broker.submit_order(buy("fields-1", qty="2", limit_price="140.5"))

    assert order.client_order_id == "fields-1"
    assert order.symbol == "AAPL"
    assert order.side is Side.BUY
    assert order.order_type is OrderType.LIMIT
    assert order.status is OrderStatus.ACCEPTED
    assert (order.qty, order.notional, order.limit_price) == (Decimal(2), None, Decimal("140.5"))
    assert (order.filled_qty, order.filled_avg_price) == (Decimal(0), None)
    assert len(order.broker_order_id) == 36
    assert order.submitted_at.utcoffset() is not None


def test_lookup_by_client_order_id_returns_the_order_with_its_fill_state(broker: AlpacaBroker) -> None:
    broker.submit_order(buy("lookup-1", qty="4"))

    found = broker.get_order_by_client_id("lookup-1")

    assert found is not None
    assert (found.status, found.filled_qty, found.filled_avg_price) == (OrderStatus.FILLED, Decimal(4), Decimal(150))
    assert broker.get_order_by_client_id("never-sent") is None


# ---------------------------------------------------------------------------- sent once, whatever happens


def test_reused_client_order_id_raises_duplicate_and_the_emulator_holds_one_order(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    first = broker.submit_order(buy("dup-1", qty="1"))

    with pytest.raises(DuplicateClientOrderId) as raised:
        broker.submit_order(buy("dup-1", qty="1"))

    assert "look it up" in str(raised.value)
    assert emu.order_post_count == 2
    assert len(emu.orders_with_client_id("dup-1")) == 1
    found = broker.get_order_by_client_id("dup-1")
    assert found is not None
    assert found.broker_order_id == first.broker_order_id


def test_504_after_alpaca_stored_the_order_is_ambiguous_not_retried_and_found_by_lookup(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.arm_error(504, after_processing=True)

    with pytest.raises(AmbiguousSubmission) as raised:
        broker.submit_order(buy("gw-1", qty="1"))

    assert not isinstance(raised.value, DuplicateClientOrderId)
    assert "HTTP 504" in str(raised.value)
    # alpaca-py alone would have sent the POST again; the order client never retries.
    assert emu.order_post_count == 1
    assert len(emu.orders_with_client_id("gw-1")) == 1
    found = broker.get_order_by_client_id("gw-1")
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert [p["qty"] for p in emu.positions()] == ["1"]


def test_504_before_alpaca_stored_the_order_is_ambiguous_and_lookup_finds_nothing_to_resend_safely(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.arm_error(504)

    with pytest.raises(AmbiguousSubmission):
        broker.submit_order(buy("gw-2", qty="1"))
    assert broker.get_order_by_client_id("gw-2") is None
    broker.submit_order(buy("gw-2", qty="1"))

    assert len(emu.orders_with_client_id("gw-2")) == 1
    assert [p["qty"] for p in emu.positions()] == ["1"]


def test_timeout_on_submit_is_ambiguous_and_the_stored_order_is_found_by_lookup(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(request_timeout_seconds=0.3)
    emu.arm_delay(3.0)

    with pytest.raises(AmbiguousSubmission) as raised:
        broker.submit_order(buy("slow-1", qty="2"))

    assert "no answer within 0.3 s" in str(raised.value)
    assert emu.order_post_count == 1
    found = broker.get_order_by_client_id("slow-1")
    assert found is not None
    assert found.filled_qty == Decimal(2)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_on_submit_is_ambiguous_and_not_retried(
    emu: AlpacaEmulator, broker: AlpacaBroker, status: int
) -> None:
    emu.arm_error(status, after_processing=True)

    with pytest.raises(AmbiguousSubmission):
        broker.submit_order(buy("srv-1", qty="1"))

    assert emu.order_post_count == 1
    assert len(emu.orders_with_client_id("srv-1")) == 1


def test_rate_limited_submit_is_ambiguous_and_not_retried(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.arm_rate_limit(endpoint="POST /v2/orders")

    with pytest.raises(AmbiguousSubmission) as raised:
        broker.submit_order(buy("rl-1", qty="1"))

    assert "HTTP 429" in str(raised.value)
    assert emu.order_post_count == 1
    assert emu.orders() == []


def test_unreadable_answer_to_an_accepted_order_is_ambiguous(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.arm_malformed_response(endpoint="POST /v2/orders", drop_fields=["id"])

    with pytest.raises(AmbiguousSubmission) as raised:
        broker.submit_order(buy("odd-1", qty="1"))

    assert "'id' is missing" in str(raised.value)
    assert len(emu.orders_with_client_id("odd-1")) == 1


# ---------------------------------------------------------------------------- refusals: the order does not exist


def test_buy_beyond_buying_power_is_rejected_with_alpacas_code(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    with pytest.raises(OrderRejected) as raised:
        broker.submit_order(buy("big-1", qty="1000"))

    assert not isinstance(raised.value, FractionalNotSupported)
    assert raised.value.code == "40310000"
    assert "insufficient buying power" in str(raised.value)
    assert emu.orders() == []


def test_order_on_a_blocked_account_is_rejected(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.set_account(trading_blocked=True)

    with pytest.raises(OrderRejected, match="not authorized to trade"):
        broker.submit_order(buy("blocked-1", qty="1"))


def test_sub_penny_limit_price_is_rejected(broker: AlpacaBroker) -> None:
    with pytest.raises(OrderRejected, match="sub-penny"):
        broker.submit_order(buy("penny-1", qty="1", limit_price="149.123"))


def test_quantity_with_more_than_nine_decimals_is_refused_before_anything_is_sent(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    with pytest.raises(OrderRejected, match="more than 9 decimal places") as raised:
        broker.submit_order(buy("prec-1", qty="0.1234567891"))

    assert not isinstance(raised.value, FractionalNotSupported)
    assert emu.order_post_count == 0


# ---------------------------------------------------------------------------- fractional shares


def test_fractional_qty_and_notional_fill_on_a_fractionable_asset(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.submit_order(buy("frac-1", qty="0.5"))
    broker.submit_order(buy("frac-2", notional="100"))

    by_notional = broker.get_order_by_client_id("frac-2")

    assert by_notional is not None
    assert (by_notional.notional, by_notional.qty) == (Decimal(100), None)
    assert by_notional.filled_qty == Decimal("0.666666666")
    assert [p["qty"] for p in emu.positions()] == ["1.166666666"]


@pytest.mark.parametrize(
    ("label", "request_"),
    [
        ("fractional qty on a whole-share asset", buy("nf-1", qty="0.5", symbol="BRK.A")),
        ("notional on a whole-share asset", buy("nf-2", notional="300", symbol="BRK.A")),
        ("fractional qty worth less than $1", buy("nf-3", qty="0.005")),
        ("fractional sell that would open a short", buy("nf-4", qty="0.5", side=Side.SELL)),
    ],
)
def test_alpacas_fractional_refusals_raise_fractional_not_supported(
    emu: AlpacaEmulator, broker: AlpacaBroker, label: str, request_: OrderRequest
) -> None:
    with pytest.raises(FractionalNotSupported):
        broker.submit_order(request_)

    assert emu.orders() == [], label
    assert broker.get_order_by_client_id(request_.client_order_id) is None


def test_fractional_order_on_an_account_without_fractional_trading_raises_fractional_not_supported(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.set_account_configuration(fractional_trading=False)

    assert broker.get_account().fractional_trading is False
    with pytest.raises(FractionalNotSupported):
        broker.submit_order(buy("acct-1", qty="0.5"))
    with pytest.raises(FractionalNotSupported):
        broker.submit_order(buy("acct-2", notional="50"))
    broker.submit_order(buy("acct-3", qty="1"))

    assert [o["client_order_id"] for o in emu.orders()] == ["acct-3"]


@pytest.mark.parametrize(
    ("label", "request_"),
    [
        ("notional below Alpaca's $1 minimum", buy("loc-1", notional="0.99")),
        ("notional on a limit order", buy("loc-2", notional="100", limit_price="140")),
        ("fractional good-till-canceled order", buy("loc-3", qty="0.5", time_in_force=TimeInForce.GTC)),
    ],
)
def test_fractional_orders_alpaca_never_takes_are_refused_before_anything_is_sent(
    emu: AlpacaEmulator, broker: AlpacaBroker, label: str, request_: OrderRequest
) -> None:
    with pytest.raises(FractionalNotSupported):
        broker.submit_order(request_)

    assert emu.order_post_count == 0, label


def test_whole_share_fallback_after_a_fractional_refusal_buys_once(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    # What the core pipeline does on FractionalNotSupported: the same amount in whole shares.
    try:
        broker.submit_order(buy("fb-1", notional="1300", symbol="BRK.A"))
    except FractionalNotSupported:
        broker.submit_order(buy("fb-1-whole", qty="2", symbol="BRK.A"))

    assert [(o["client_order_id"], o["status"]) for o in emu.orders()] == [("fb-1-whole", "filled")]
    assert [(p["symbol"], p["qty"]) for p in emu.positions()] == [("BRK.A", "2")]


def test_whole_share_short_sale_is_not_a_fractional_refusal(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    with pytest.raises(OrderRejected) as raised:
        broker.submit_order(buy("short-1", qty="1", side=Side.SELL))

    assert not isinstance(raised.value, FractionalNotSupported)
    assert "not allowed to short" in str(raised.value)


# ---------------------------------------------------------------------------- open orders and cancels


def test_open_orders_list_resting_orders_only_and_cancel_ends_them(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.submit_order(buy("rest-1", qty="1", limit_price="100"))
    broker.submit_order(buy("rest-2", qty="2", limit_price="101", time_in_force=TimeInForce.GTC))
    broker.submit_order(buy("done-1", qty="1"))

    assert [o.client_order_id for o in broker.get_open_orders()] == ["rest-1", "rest-2"]
    broker.cancel_order("rest-1")

    assert [o.client_order_id for o in broker.get_open_orders()] == ["rest-2"]
    canceled = broker.get_order_by_client_id("rest-1")
    assert canceled is not None
    assert canceled.status is OrderStatus.CANCELED


def test_open_orders_include_orders_placed_by_hand(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.set_position("AAPL", Decimal(10), Decimal(120))
    emu.submit_dashboard_order("AAPL", "sell", qty=Decimal(5), type="stop", stop_price=Decimal(100))

    (order,) = broker.get_open_orders()

    # A stop becomes a market order once triggered, which is how tradekit sees it.
    assert (order.side, order.order_type, order.qty, order.status) == (
        Side.SELL,
        OrderType.MARKET,
        Decimal(5),
        OrderStatus.NEW,
    )


def test_cancel_of_a_filled_or_unknown_order_does_nothing(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.submit_order(buy("filled-1", qty="1"))

    broker.cancel_order("filled-1")
    broker.cancel_order("never-sent")

    assert emu.requests("DELETE /v2/orders/*") == []


def test_cancel_of_an_order_that_finished_meanwhile_is_not_an_error(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.submit_order(buy("race-1", qty="1", limit_price="100"))
    emu.arm_error(
        422,
        endpoint="DELETE /v2/orders/*",
        body='{"code": 42210000, "message": "order is already in \\"filled\\" state"}',
    )

    broker.cancel_order("race-1")

    assert [r.status for r in emu.requests("DELETE /v2/orders/*")] == [422]


def test_cancel_that_fails_on_the_server_raises_broker_unavailable(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.submit_order(buy("cx-1", qty="1", limit_price="100"))
    emu.arm_error(500, endpoint="DELETE /v2/orders/*")

    with pytest.raises(BrokerUnavailable, match="cancel of order cx-1 failed: HTTP 500"):
        broker.cancel_order("cx-1")


# ---------------------------------------------------------------------------- reads


def test_rate_limited_read_is_retried_within_the_configured_bound(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker(read_retries=2)
    emu.arm_rate_limit(endpoint="GET /v2/positions", times=2)

    assert broker.get_positions() == ()

    emu.arm_rate_limit(endpoint="GET /v2/positions", times=3)
    with pytest.raises(BrokerUnavailable, match="HTTP 429"):
        broker.get_positions()
    assert len(emu.requests("GET /v2/positions")) == 6


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_error_on_a_read_is_broker_unavailable_never_an_empty_answer(
    emu: AlpacaEmulator, broker: AlpacaBroker, status: int
) -> None:
    emu.set_position("KO", Decimal(10), Decimal(60))
    emu.arm_error(status, endpoint="GET /v2/positions")

    with pytest.raises(BrokerUnavailable, match=f"positions could not be read: HTTP {status}"):
        broker.get_positions()


def test_slow_read_times_out_as_broker_unavailable(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker(request_timeout_seconds=0.3)
    emu.arm_delay(3.0, endpoint="GET /v2/account", after_processing=False)

    with pytest.raises(BrokerUnavailable, match=r"no answer within 0\.3 s"):
        broker.get_account()


def test_unreachable_broker_is_broker_unavailable(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker(base_url="http://127.0.0.1:9", stream=False)

    with pytest.raises(BrokerUnavailable, match=re.escape("cannot reach 127.0.0.1:9: the connection was refused")):
        broker.get_clock()
    with pytest.raises(AmbiguousSubmission, match=re.escape("cannot reach 127.0.0.1:9: the connection was refused")):
        broker.submit_order(buy("down-1", qty="1"))


def test_read_missing_a_field_is_broker_data_error_naming_it(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.set_position("KO", Decimal(10), Decimal(60))
    emu.arm_malformed_response(endpoint="GET /v2/positions", drop_fields=["avg_entry_price"])

    with pytest.raises(BrokerDataError, match="Alpaca position KO: field 'avg_entry_price' is missing"):
        broker.get_positions()


def test_wrong_credentials_on_a_read_are_broker_unavailable(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    from tradekit_broker_alpaca import AlpacaCredentials

    broker = make_broker(credentials=AlpacaCredentials(key_id="PKWRONG", secret_key="wrong"), stream=False)

    with pytest.raises(BrokerUnavailable, match="HTTP 401, code 40110000"):
        broker.get_account()
