"""The Binance USDⓈ-M and Bybit emulators driven by the real ccxt clients, sync and async.

Every test talks to an emulator on 127.0.0.1 through ``make_ccxt_client``; nothing leaves the
machine. Venue differences that ccxt passes through (response shapes, error classes, sign
conventions) are spelled out in :class:`Venue` so each test states one behaviour for both.

The folder is named ``ccxt_tests``, not ``ccxt``: with ``tests`` on ``sys.path`` a package
named ``ccxt`` would shadow the ccxt library. ccxt names are imported from their defining
submodules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import (
    AuthenticationError,
    BadRequest,
    DDoSProtection,
    ExchangeNotAvailable,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    NetworkError,
    OrderNotFillable,
    OrderNotFound,
    RateLimitExceeded,
    RequestTimeout,
)

from emulators import binance_usdm, bybit
from emulators._perp_book import Num, OrderStatus, PerpVenueEmulator

pytestmark = pytest.mark.timeout(60)

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
BTC_BIDS: list[tuple[Num, Num]] = [(59990, 2), (59980, 3)]
BTC_ASKS: list[tuple[Num, Num]] = [(60000, "0.5"), (60010, "1.5"), (60020, 2)]
START_BALANCE = Decimal(10000)
SHORT_TIMEOUT_MS = 1000
HELD_RESPONSE_S = 3.0


@dataclass(frozen=True)
class Venue:
    """What differs between the two venues as seen through ccxt."""

    name: str
    new_emulator: Callable[[], PerpVenueEmulator]
    make_client: Callable[[Any, bool], Any]
    taker_fee: Decimal
    maker_fee: Decimal
    min_cost: dict[str, float]
    amount_step: dict[str, float]
    fetch_params: dict[str, Any]
    """Extra params fetch_order needs (Bybit UTA: acknowledge the 500-order window)."""
    create_returns_full_order: bool
    """Binance answers the executed order; Bybit only ``{orderId, orderLinkId}``."""
    expired_status: str
    """Status of a market/IOC order whose remainder found no liquidity."""
    client_id_reusable_after_close: bool
    """Binance: "unique among open orders"; Bybit: unique among all orders."""
    balance_total_includes_upnl: bool
    """Binance's total is marginBalance; Bybit's is walletBalance."""
    notional_at_mark: bool
    """Binance's position notional is size x mark; Bybit's positionValue is size x entry."""
    funding_amount_sign: int
    """+1: ccxt reports the credit (Binance income); -1: the fee paid (Bybit execFee)."""
    lists_flat_positions: bool
    """Bybit answers a position (size 0) for a symbol asked by name; ccxt passes it through."""
    rate_limit_error: type[Exception]

    def fetch_order(self, client: Any, order_id: str, symbol: str) -> dict[str, Any]:
        """Fetch an order by exchange id."""
        result: dict[str, Any] = client.fetch_order(order_id, symbol, dict(self.fetch_params))
        return result

    def fetch_by_client_id(self, client: Any, client_order_id: str, symbol: str) -> dict[str, Any]:
        """Fetch an order by client order id the way each venue supports it."""
        if self.name == "binance":
            params: dict[str, Any] = {"clientOrderId": client_order_id}
            order_id: str | None = None
        else:
            # ccxt sends orderId=<id>; an empty id is dropped by Bybit, leaving orderLinkId.
            params = {"orderLinkId": client_order_id, **self.fetch_params}
            order_id = ""
        result: dict[str, Any] = client.fetch_order(order_id, symbol, params)
        return result


VENUES = {
    "binance": Venue(
        name="binance",
        new_emulator=binance_usdm.BinanceUsdmEmulator,
        make_client=binance_usdm.make_ccxt_client,
        taker_fee=Decimal("0.0005"),
        maker_fee=Decimal("0.0002"),
        min_cost={BTC: 100.0, ETH: 20.0},
        amount_step={BTC: 0.001, ETH: 0.001},
        fetch_params={},
        create_returns_full_order=True,
        expired_status="expired",
        client_id_reusable_after_close=True,
        balance_total_includes_upnl=True,
        notional_at_mark=True,
        funding_amount_sign=1,
        lists_flat_positions=False,
        rate_limit_error=DDoSProtection,
    ),
    "bybit": Venue(
        name="bybit",
        new_emulator=bybit.BybitEmulator,
        make_client=bybit.make_ccxt_client,
        taker_fee=Decimal("0.00055"),
        maker_fee=Decimal("0.0002"),
        min_cost={BTC: 5.0, ETH: 5.0},
        amount_step={BTC: 0.001, ETH: 0.01},
        fetch_params={"acknowledged": True},
        create_returns_full_order=False,
        expired_status="canceled",
        client_id_reusable_after_close=False,
        balance_total_includes_upnl=False,
        notional_at_mark=False,
        funding_amount_sign=-1,
        lists_flat_positions=True,
        rate_limit_error=RateLimitExceeded,
    ),
}


@pytest.fixture(params=sorted(VENUES))
def venue(request: pytest.FixtureRequest) -> Venue:
    return VENUES[request.param]


@pytest.fixture
def emulator(venue: Venue) -> Iterator[PerpVenueEmulator]:
    with venue.new_emulator() as emu:
        emu.set_order_book(BTC, bids=BTC_BIDS, asks=BTC_ASKS)
        yield emu


@pytest.fixture
def client(venue: Venue, emulator: PerpVenueEmulator) -> Iterator[Any]:
    exchange = venue.make_client(emulator, False)
    exchange.timeout = 5000
    try:
        exchange.load_markets()
        yield exchange
    finally:
        exchange.close()


def _approx(value: Decimal) -> Any:
    return pytest.approx(float(value), rel=1e-12, abs=1e-9)


# --------------------------------------------------------------------------------------------
# markets and market data
# --------------------------------------------------------------------------------------------


def test_load_markets_reports_venue_precision_and_limits(venue: Venue, client: Any) -> None:
    for symbol in (BTC, ETH):
        market = client.market(symbol)
        assert market["swap"] is True
        assert market["linear"] is True
        assert market["settle"] == "USDT"
        assert market["contractSize"] == 1.0
        assert market["precision"]["amount"] == venue.amount_step[symbol]
        assert market["limits"]["amount"]["min"] == venue.amount_step[symbol]
        assert market["limits"]["cost"]["min"] == venue.min_cost[symbol]
    assert client.market(BTC)["precision"]["price"] == 0.1
    assert client.market(ETH)["precision"]["price"] == 0.01
    assert set(client.markets) == {BTC, ETH}


def test_load_markets_only_calls_emulated_linear_endpoints(
    venue: Venue, emulator: PerpVenueEmulator, client: Any
) -> None:
    endpoints = [record.endpoint for record in emulator.requests()]
    if venue.name == "binance":
        assert endpoints == ["GET /fapi/v1/exchangeInfo"]
    else:
        assert endpoints == [
            "GET /v5/asset/coin/query-info",
            "GET /v5/market/instruments-info",
            "GET /v5/market/instruments-info",
        ]
        assert [r.params.get("category") for r in emulator.requests()[1:]] == ["linear"] * 2


def test_order_book_round_trips(client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.set_order_book(ETH, bids=[("3000.5", "1.2"), (2999, 4)], asks=[("3001.25", "0.3"), (3002, 5)])
    book = client.fetch_order_book(ETH)
    assert book["symbol"] == ETH
    assert book["bids"] == [[3000.5, 1.2], [2999.0, 4.0]]
    assert book["asks"] == [[3001.25, 0.3], [3002.0, 5.0]]


def test_ticker_reports_last_trade_and_book(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    client.create_order(BTC, "market", "buy", 0.6, None, {"clientOrderId": "tick-1"})
    ticker = client.fetch_ticker(BTC)
    assert ticker["symbol"] == BTC
    assert ticker["last"] == 60010.0
    if venue.name == "bybit":
        # Binance's 24hr ticker has no bid/ask; Bybit's carries the top of book.
        assert ticker["bid"] == 59990.0
        assert ticker["ask"] == 60010.0


def test_funding_rate_and_funding_history_round_trip(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    next_funding = 1_900_000_800_000
    emulator.set_funding_rate(BTC, "0.0003", next_funding)
    emulator.set_mark_price(BTC, 60000)
    rate = client.fetch_funding_rate(BTC)
    assert rate["fundingRate"] == 0.0003
    assert rate["fundingTimestamp"] == next_funding
    assert rate["markPrice"] == 60000.0

    emulator.seed_position(BTC, 2, 60000)
    credited = emulator.apply_funding(BTC)
    assert credited == Decimal("-36")  # a long pays 2 x 60000 x 0.0003
    assert emulator.wallet_balance == START_BALANCE - 36

    history = client.fetch_funding_history(BTC)
    assert len(history) == 1
    assert history[0]["symbol"] == BTC
    assert history[0]["code"] == "USDT"
    assert history[0]["amount"] == venue.funding_amount_sign * -36.0


# --------------------------------------------------------------------------------------------
# orders, positions, balances
# --------------------------------------------------------------------------------------------


def test_market_order_sweeps_book_and_updates_position_and_balance(
    venue: Venue, client: Any, emulator: PerpVenueEmulator
) -> None:
    created = client.create_order(BTC, "market", "buy", 1.0, None, {"clientOrderId": "mkt-1"})
    assert created["clientOrderId"] == "mkt-1"
    assert created["id"]
    order = created if venue.create_returns_full_order else venue.fetch_order(client, created["id"], BTC)
    assert order["status"] == "closed"
    assert order["filled"] == 1.0
    assert order["average"] == 60005.0  # VWAP of 0.5 @ 60000 and 0.5 @ 60010
    assert [o.client_order_id for o in emulator.orders()] == ["mkt-1"]

    fee = Decimal(60005) * venue.taker_fee
    assert emulator.wallet_balance == START_BALANCE - fee

    emulator.set_mark_price(BTC, 60100)
    (position,) = client.fetch_positions([BTC])
    assert position["symbol"] == BTC
    assert position["side"] == "long"
    assert position["contracts"] == 1.0
    assert position["contractSize"] == 1.0
    assert position["entryPrice"] == 60005.0
    assert position["unrealizedPnl"] == 95.0
    assert position["notional"] == (60100.0 if venue.notional_at_mark else 60005.0)

    balance = client.fetch_balance()["USDT"]
    wallet = START_BALANCE - fee
    expected_total = wallet + 95 if venue.balance_total_includes_upnl else wallet
    leverage = emulator.engine.leverage(BTC)
    assert balance["total"] == _approx(expected_total)
    assert balance["used"] == _approx(Decimal(60100) / leverage)


def test_market_order_with_thin_book_fills_partially(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.set_balance(100_000)
    created = client.create_order(BTC, "market", "buy", 5.0, None, {"clientOrderId": "thin-1"})
    order = venue.fetch_order(client, created["id"], BTC)
    assert order["filled"] == 4.0  # all three ask levels
    assert order["status"] == venue.expired_status
    assert emulator.position(BTC).qty == 4
    assert client.fetch_order_book(BTC)["asks"] == []


def test_limit_order_rests_then_fills_when_the_book_crosses(
    venue: Venue, client: Any, emulator: PerpVenueEmulator
) -> None:
    created = client.create_order(BTC, "limit", "buy", 0.1, 59950, {"clientOrderId": "lmt-1"})
    assert venue.fetch_order(client, created["id"], BTC)["status"] == "open"
    assert [o["clientOrderId"] for o in client.fetch_open_orders(BTC)] == ["lmt-1"]

    emulator.set_order_book(BTC, bids=[(59900, 1)], asks=[(59940, 1)])
    order = venue.fetch_order(client, created["id"], BTC)
    assert order["status"] == "closed"
    assert order["average"] == 59950.0  # a resting order trades at its own price
    assert client.fetch_open_orders(BTC) == []
    fee = Decimal(5995) * venue.maker_fee
    assert emulator.wallet_balance == START_BALANCE - fee
    # The crossing ask was partly consumed by the resting order.
    assert client.fetch_order_book(BTC)["asks"] == [[59940.0, 0.9]]


def test_cancel_order_and_cancel_unknown(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    created = client.create_order(BTC, "limit", "sell", 0.2, 61000, {"clientOrderId": "cxl-1"})
    assert [o["id"] for o in client.fetch_open_orders()] == [created["id"]]
    client.cancel_order(created["id"], BTC)
    assert venue.fetch_order(client, created["id"], BTC)["status"] == "canceled"
    assert client.fetch_open_orders(BTC) == []
    assert emulator.orders()[0].status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        client.cancel_order(created["id"], BTC)


def test_reduce_only_closes_a_seeded_short_and_realizes_pnl(
    venue: Venue, client: Any, emulator: PerpVenueEmulator
) -> None:
    emulator.seed_position(ETH, "-0.5", 3000)
    emulator.set_order_book(ETH, bids=[(2899, 10)], asks=[(2900, 10)])
    emulator.set_mark_price(ETH, 2900)
    (position,) = client.fetch_positions([ETH])
    assert position["side"] == "short"
    assert position["contracts"] == 0.5
    assert position["unrealizedPnl"] == 50.0

    client.create_order(ETH, "market", "buy", 0.5, None, {"reduceOnly": True})
    fee = Decimal("1450") * venue.taker_fee
    assert emulator.wallet_balance == START_BALANCE + 50 - fee
    assert emulator.position(ETH).qty == 0
    with pytest.raises(InvalidOrder):
        client.create_order(ETH, "market", "buy", 0.5, None, {"reduceOnly": True})


def test_flat_position_listing(venue: Venue, client: Any) -> None:
    positions = client.fetch_positions([ETH])
    if venue.lists_flat_positions:
        assert [(p["symbol"], p["contracts"], p["side"]) for p in positions] == [(ETH, 0.0, None)]
    else:
        assert positions == []
    assert client.fetch_positions() == []


def test_fill_through_zero_flips_the_position(client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.seed_position(BTC, 1, 59000)
    client.create_order(BTC, "market", "sell", 1.5, None, {"clientOrderId": "flip-1"})
    position = emulator.position(BTC)
    assert position.qty == Decimal("-0.5")
    assert position.entry_price == 59990  # 1.5 sold into the 59990 bid level
    assert position.realized_pnl == 990


def test_set_leverage_changes_position_margin(client: Any, emulator: PerpVenueEmulator) -> None:
    client.set_leverage(5, BTC)
    assert emulator.engine.leverage(BTC) == 5
    emulator.seed_position(BTC, 1, 60000)
    emulator.set_mark_price(BTC, 60000)
    (position,) = client.fetch_positions([BTC])
    assert position["initialMargin"] == 12000.0


# --------------------------------------------------------------------------------------------
# client order ids and venue rejections
# --------------------------------------------------------------------------------------------


def test_duplicate_client_order_id_of_an_open_order_is_rejected(client: Any, emulator: PerpVenueEmulator) -> None:
    client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "dup-1"})
    with pytest.raises(InvalidOrder) as raised:
        client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "dup-1"})
    assert raised.type is InvalidOrder  # -4116 on Binance, 110072 on Bybit
    assert len(emulator.orders_with_client_id("dup-1")) == 1
    assert emulator.create_order_request_count == 2


def test_client_order_id_reuse_after_the_order_closed(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "again-1"})
    if venue.client_id_reusable_after_close:
        # Binance only refuses ids of *open* orders: a retry after a fill trades again.
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "again-1"})
        assert len(emulator.orders_with_client_id("again-1")) == 2
        assert emulator.position(BTC).qty == Decimal("0.02")
    else:
        with pytest.raises(InvalidOrder):
            client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "again-1"})
        assert len(emulator.orders_with_client_id("again-1")) == 1


def test_client_order_id_longer_than_36_chars_is_rejected(client: Any, emulator: PerpVenueEmulator) -> None:
    client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "c" * 36})
    with pytest.raises(BadRequest):
        client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "c" * 37})
    assert [len(o.client_order_id) for o in emulator.orders()] == [36]


def test_injected_rejection_maps_to_insufficient_funds(client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.reject_next_order()
    with pytest.raises(InsufficientFunds):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "rej-1"})
    assert emulator.orders() == []
    client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "rej-1"})
    assert len(emulator.orders_with_client_id("rej-1")) == 1
    assert emulator.create_order_request_count == 2


def test_order_beyond_margin_is_rejected_as_insufficient_funds(client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.set_balance(100)
    with pytest.raises(InsufficientFunds):
        client.create_order(BTC, "market", "buy", 1.0, None, {"clientOrderId": "big-1"})
    assert emulator.orders() == []


def test_post_only_order_that_would_take(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    params = {"clientOrderId": "po-1", "postOnly": True}
    if venue.name == "binance":
        # GTX that would cross is refused outright (-5022) and never recorded.
        with pytest.raises(OrderNotFillable):
            client.create_order(BTC, "limit", "buy", 0.01, 60000, params)
        assert emulator.orders() == []
    else:
        # Bybit accepts the PostOnly order, then cancels it (EC_PostOnlyWillTakeLiquidity).
        created = client.create_order(BTC, "limit", "buy", 0.01, 60000, params)
        order = venue.fetch_order(client, created["id"], BTC)
        assert order["status"] == "canceled"
        assert order["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    assert emulator.position(BTC).qty == 0


def test_order_below_min_notional_is_rejected(client: Any, emulator: PerpVenueEmulator) -> None:
    with pytest.raises(InvalidOrder):
        client.create_order(BTC, "limit", "buy", 0.001, 1000, {"clientOrderId": "tiny-1"})
    assert emulator.orders() == []


def test_rate_limit_answer_executes_nothing(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.rate_limit_next(endpoint=emulator.create_order_endpoint)
    with pytest.raises(venue.rate_limit_error):
        client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "rl-1"})
    assert emulator.orders() == []
    assert emulator.pending_faults() == []


def test_bad_signature_and_stale_timestamp_are_refused(venue: Venue, emulator: PerpVenueEmulator) -> None:
    forger = venue.make_client(emulator, False)
    forger.secret = "not-the-secret"
    try:
        with pytest.raises(AuthenticationError):
            forger.fetch_balance()
    finally:
        forger.close()
    late = venue.make_client(emulator, False)
    late.options["timeDifference"] = 120_000  # signs timestamps two minutes in the past
    try:
        with pytest.raises(InvalidNonce):
            late.fetch_balance()
    finally:
        late.close()


# --------------------------------------------------------------------------------------------
# outcomes the client cannot see: timeouts, dropped connections, 5xx, malformed answers
# --------------------------------------------------------------------------------------------


def test_timeout_after_accept_then_order_is_found_by_client_id(
    venue: Venue, client: Any, emulator: PerpVenueEmulator
) -> None:
    client.timeout = SHORT_TIMEOUT_MS
    emulator.timeout_next_order(delay_s=HELD_RESPONSE_S)
    with pytest.raises(RequestTimeout):
        client.create_order(BTC, "market", "buy", 0.3, None, {"clientOrderId": "to-1"})
    (stored,) = emulator.orders_with_client_id("to-1")
    assert stored.status is OrderStatus.FILLED
    assert emulator.create_order_request_count == 1

    found = venue.fetch_by_client_id(client, "to-1", BTC)
    assert found["id"] == stored.order_id
    assert found["status"] == "closed"
    assert found["filled"] == 0.3


def test_dropped_connection_after_accept(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.disconnect_next_order()
    with pytest.raises(NetworkError):  # requests: NetworkError; aiohttp: ExchangeNotAvailable
        client.create_order(BTC, "market", "buy", 0.2, None, {"clientOrderId": "drop-1"})
    assert venue.fetch_by_client_id(client, "drop-1", BTC)["filled"] == 0.2
    assert len(emulator.orders_with_client_id("drop-1")) == 1


def test_server_error_after_accept(venue: Venue, client: Any, emulator: PerpVenueEmulator) -> None:
    emulator.server_error_next_order(status=502)
    with pytest.raises(ExchangeNotAvailable):
        client.create_order(BTC, "market", "buy", 0.2, None, {"clientOrderId": "5xx-1"})
    assert venue.fetch_by_client_id(client, "5xx-1", BTC)["status"] == "closed"


@pytest.mark.parametrize("truncated", [False, True], ids=["missing-fields", "truncated-json"])
def test_malformed_answer_yields_an_order_without_id(
    venue: Venue, client: Any, emulator: PerpVenueEmulator, truncated: bool
) -> None:
    emulator.malformed_next_order(truncated=truncated)
    # ccxt does not raise: it hands back an order with no id, which a caller must reconcile.
    order = client.create_order(BTC, "market", "buy", 0.2, None, {"clientOrderId": "bad-1"})
    assert order["id"] is None
    assert venue.fetch_by_client_id(client, "bad-1", BTC)["filled"] == 0.2


def test_bybit_client_id_lookups_cover_realtime_and_history() -> None:
    with bybit.BybitEmulator() as emu:
        emu.set_order_book(BTC, bids=BTC_BIDS, asks=BTC_ASKS)
        exchange = bybit.make_ccxt_client(emu)
        try:
            exchange.create_order(BTC, "market", "buy", 0.1, None, {"clientOrderId": "look-1"})
            realtime = exchange.fetch_open_orders(BTC, None, None, {"orderLinkId": "look-1"})
            history = exchange.fetch_canceled_and_closed_orders(BTC, None, None, {"orderLinkId": "look-1"})
            assert [o["status"] for o in realtime] == ["closed"]
            assert [o["clientOrderId"] for o in history] == ["look-1"]
            assert [r.endpoint for r in emu.requests()[-2:]] == [
                "GET /v5/order/realtime",
                "GET /v5/order/history",
            ]
        finally:
            exchange.close()


# --------------------------------------------------------------------------------------------
# ccxt.async_support
# --------------------------------------------------------------------------------------------


def test_async_client_trades_and_reads_the_account(venue: Venue) -> None:
    async def scenario(emu: PerpVenueEmulator) -> None:
        exchange = venue.make_client(emu, True)
        try:
            await exchange.load_markets()
            created = await exchange.create_order(BTC, "market", "buy", 0.5, None, {"clientOrderId": "async-1"})
            params = {"clientOrderId": "async-1"} if venue.name == "binance" else {}
            order_id = None if venue.name == "binance" else created["id"]
            order = await exchange.fetch_order(order_id, BTC, {**params, **venue.fetch_params})
            assert order["status"] == "closed"
            assert order["average"] == 60000.0
            positions = await exchange.fetch_positions([BTC])
            assert [p["contracts"] for p in positions] == [0.5]
            balance = await exchange.fetch_balance()
            assert balance["USDT"]["used"] > 0
            book = await exchange.fetch_order_book(BTC)
            assert book["asks"][0] == [60010.0, 1.5]
        finally:
            await exchange.close()

    with venue.new_emulator() as emu:
        emu.set_order_book(BTC, bids=BTC_BIDS, asks=BTC_ASKS)
        asyncio.run(scenario(emu))


def test_async_timeout_after_accept(venue: Venue) -> None:
    async def scenario(emu: PerpVenueEmulator) -> None:
        exchange = venue.make_client(emu, True)
        exchange.timeout = SHORT_TIMEOUT_MS
        try:
            await exchange.load_markets()
            emu.timeout_next_order(delay_s=HELD_RESPONSE_S)
            with pytest.raises(RequestTimeout):
                await exchange.create_order(BTC, "market", "sell", 0.4, None, {"clientOrderId": "async-to"})
            emu.disconnect_next_order()
            with pytest.raises(NetworkError):
                await exchange.create_order(BTC, "market", "sell", 0.1, None, {"clientOrderId": "async-drop"})
        finally:
            await exchange.close()

    with venue.new_emulator() as emu:
        emu.set_order_book(BTC, bids=BTC_BIDS, asks=BTC_ASKS)
        asyncio.run(scenario(emu))
        assert [o.client_order_id for o in emu.orders()] == ["async-to", "async-drop"]
        assert emu.position(BTC).qty == Decimal("-0.5")
