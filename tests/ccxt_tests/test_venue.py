"""The ccxt venues' own behaviour against the Binance USDⓈ-M and Bybit emulators.

What matters for money: an order whose outcome was unknown is found by its client id and
never sent twice; a refused order does not exist; quantities and prices are rounded the safe
way before they leave; funding has one sign on both venues; keys never show.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ccxt_tests.venues import BTC, ETH, VENUES, BlockingAsyncVenue, new_emulator, set_book, sync_venue
from emulators._perp_book import PerpVenueEmulator
from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerDataError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    OrderRejected,
)
from tradekit.config.settings import Settings, SettingsError
from tradekit.domain.orders import OrderRequest, OrderStatus, OrderType
from tradekit.domain.signals import Side
from tradekit_venue_ccxt import plugin
from tradekit_venue_ccxt.config import CcxtVenueConfig, VenueCredentials, credential_env_vars
from tradekit_venue_ccxt.execution import CcxtVenue
from tradekit_venue_ccxt.providers import CCXT_TICK_SIZE, OrderBook, PerpMarket
from tradekit_venue_ccxt.venues import build_client

pytestmark = pytest.mark.timeout(60)

PRICE = Decimal(3000)


@pytest.fixture(params=VENUES)
def venue_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emulator(venue_name: str) -> Iterator[PerpVenueEmulator]:
    with new_emulator(venue_name) as emulator:
        set_book(emulator, ETH, PRICE)
        set_book(emulator, BTC, Decimal(60000))
        yield emulator


@pytest.fixture(params=["sync", "async"])
def venue(request: pytest.FixtureRequest, emulator: PerpVenueEmulator, venue_name: str) -> Iterator[Any]:
    built: Any = (
        sync_venue(emulator, venue_name, timeout_ms=1000)
        if request.param == "sync"
        else BlockingAsyncVenue(emulator, venue_name, timeout_ms=1000)
    )
    try:
        yield built
    finally:
        built.close()


def buy(label: str, qty: str, symbol: str = ETH) -> OrderRequest:
    return OrderRequest(client_order_id=f"tk-test-{label}", symbol=symbol, side=Side.BUY, qty=Decimal(qty))


# --------------------------------------------------------------------------------------------
# ambiguous outcomes: looked up by client id, never sent again
# --------------------------------------------------------------------------------------------


def test_timeout_after_accept_is_resolved_by_client_id_with_exactly_one_order(
    venue: Any, emulator: PerpVenueEmulator
) -> None:
    emulator.timeout_next_order(delay_s=3.0)
    order = venue.submit_order(buy("timeout", "0.5"))

    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == Decimal("0.5")
    assert len(emulator.orders_with_client_id("tk-test-timeout")) == 1
    assert emulator.create_order_request_count == 1


@pytest.mark.parametrize("fault", ["disconnect", "server_error"])
def test_lost_answer_after_accept_is_resolved_by_client_id(venue: Any, emulator: PerpVenueEmulator, fault: str) -> None:
    if fault == "disconnect":
        emulator.disconnect_next_order()
    else:
        emulator.server_error_next_order(status=502)
    order = venue.submit_order(buy(fault, "0.2"))

    assert order.filled_qty == Decimal("0.2")
    assert emulator.create_order_request_count == 1
    assert len(emulator.orders_with_client_id(f"tk-test-{fault}")) == 1


@pytest.mark.parametrize("truncated", [False, True], ids=["missing-fields", "truncated-json"])
def test_malformed_answer_is_looked_up_by_client_id(venue: Any, emulator: PerpVenueEmulator, truncated: bool) -> None:
    emulator.malformed_next_order(truncated=truncated)
    order = venue.submit_order(buy("malformed", "0.2"))

    assert order.client_order_id == "tk-test-malformed"
    assert order.broker_order_id == emulator.orders_with_client_id("tk-test-malformed")[0].order_id
    assert order.status is OrderStatus.FILLED
    assert emulator.create_order_request_count == 1


def test_rate_limited_submission_is_ambiguous_and_never_resent(venue: Any, emulator: PerpVenueEmulator) -> None:
    emulator.rate_limit_next(endpoint=emulator.create_order_endpoint)
    with pytest.raises(AmbiguousSubmission, match="never send it again"):
        venue.submit_order(buy("throttled", "0.2"))

    assert emulator.orders() == []
    assert emulator.create_order_request_count == 1
    assert venue.get_order_by_client_id("tk-test-throttled") is None


def test_client_id_of_a_filled_order_is_refused_after_a_restart(emulator: PerpVenueEmulator, venue_name: str) -> None:
    first = sync_venue(emulator, venue_name)
    first.submit_order(buy("once", "0.1"))
    first.close()
    restarted = sync_venue(emulator, venue_name)
    try:
        with pytest.raises(DuplicateClientOrderId):
            restarted.submit_order(buy("once", "0.1"))
    finally:
        restarted.close()

    # Binance would have accepted the id of a filled order: it was looked up before sending.
    assert len(emulator.orders_with_client_id("tk-test-once")) == 1
    assert emulator.position(ETH).qty == Decimal("0.1")


def test_refused_order_does_not_exist(venue: Any, emulator: PerpVenueEmulator) -> None:
    emulator.reject_next_order()
    with pytest.raises(OrderRejected):
        venue.submit_order(buy("refused", "0.2"))

    assert emulator.orders() == []
    assert venue.get_order_by_client_id("tk-test-refused") is None


# --------------------------------------------------------------------------------------------
# precision and limits
# --------------------------------------------------------------------------------------------


def test_quantity_is_rounded_down_to_the_venue_step(venue: Any, emulator: PerpVenueEmulator, venue_name: str) -> None:
    order = venue.submit_order(buy("round", "0.0159"))

    expected = Decimal("0.015") if venue_name == "binanceusdm" else Decimal("0.01")
    assert order.qty == expected
    assert emulator.position(ETH).qty == expected


def test_limit_price_is_rounded_to_the_tick_never_to_a_worse_price(venue: Any, emulator: PerpVenueEmulator) -> None:
    bid = OrderRequest(
        client_order_id="tk-test-bid",
        symbol=ETH,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.1"),
        limit_price=Decimal("2500.019"),
    )
    offer = OrderRequest(
        client_order_id="tk-test-offer",
        symbol=ETH,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.1"),
        limit_price=Decimal("3500.011"),
    )
    venue.submit_order(bid)
    venue.submit_order(offer)

    prices = {o.client_order_id: o.price for o in emulator.open_orders(ETH)}
    assert prices == {"tk-test-bid": Decimal("2500.01"), "tk-test-offer": Decimal("3500.02")}


def test_quantity_smaller_than_one_step_is_refused_before_sending(venue: Any, emulator: PerpVenueEmulator) -> None:
    with pytest.raises(OrderRejected, match="rounds to nothing at step"):
        venue.submit_order(buy("tiny", "0.0009"))
    assert emulator.create_order_request_count == 0


def test_quantity_below_the_minimum_quantity_is_refused_naming_it() -> None:
    market = PerpMarket(
        symbol="XYZ/USDT:USDT",
        venue_symbol="XYZUSDT",
        base="XYZ",
        quote="USDT",
        settle="USDT",
        contract_size=Decimal(1),
        amount_step=Decimal("0.001"),
        price_step=Decimal("0.01"),
        min_qty=Decimal("0.01"),
        max_market_qty=Decimal(5),
    )
    with pytest.raises(OrderRejected, match=r"below the minimum 0\.01"):
        market.check_order(market.round_qty(Decimal("0.0099")), None, market_order=True, reduce_only=False)
    with pytest.raises(OrderRejected, match="above the maximum 5"):
        market.check_order(Decimal(6), None, market_order=True, reduce_only=False)
    market.check_order(Decimal("0.01"), None, market_order=True, reduce_only=False)


def test_notional_below_the_minimum_is_refused_naming_it(
    venue: Any, emulator: PerpVenueEmulator, venue_name: str
) -> None:
    minimum = "100" if venue_name == "binanceusdm" else "5"
    cheap = OrderRequest(  # 0.001 BTC at 1000 is worth 1 USDT
        client_order_id="tk-test-cheap",
        symbol=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.001"),
        limit_price=Decimal(1000),
    )
    with pytest.raises(OrderRejected, match=f"below the minimum {minimum}"):
        venue.submit_order(cheap)
    assert emulator.create_order_request_count == 0


def test_market_reports_precision_limits_and_contract_size(venue: Any, venue_name: str) -> None:
    market = venue.market(ETH)
    assert market is not None
    assert market.contract_size == Decimal(1)
    assert market.price_step == Decimal("0.01")
    assert market.amount_step == (Decimal("0.001") if venue_name == "binanceusdm" else Decimal("0.01"))
    assert market.min_notional == (Decimal(20) if venue_name == "binanceusdm" else Decimal(5))
    # The largest market order: Binance's MARKET_LOT_SIZE, Bybit's maxMktOrderQty (not its maxOrderQty).
    assert market.max_market_qty == (Decimal(2000) if venue_name == "binanceusdm" else Decimal(724))
    assert venue.market("DOGE/USDT:USDT") is None


def test_market_order_above_the_venues_market_maximum_is_refused_before_sending(
    venue: Any, emulator: PerpVenueEmulator, venue_name: str
) -> None:
    set_book(emulator, ETH, Decimal(3000), depth=Decimal(5000))
    too_big = Decimal(2001) if venue_name == "binanceusdm" else Decimal(725)
    request = OrderRequest(client_order_id="tk-too-big", symbol=ETH, side=Side.BUY, qty=too_big)
    with pytest.raises(OrderRejected, match="maximum"):
        venue.submit_order(request)
    assert emulator.create_order_request_count == 0


def test_market_missing_fields_are_named() -> None:
    raw = {"symbol": ETH, "id": "ETHUSDT", "swap": True, "linear": True, "base": "ETH", "quote": "USDT"}
    with pytest.raises(BrokerDataError) as raised:
        PerpMarket.from_ccxt_market(raw, precision_mode=CCXT_TICK_SIZE)
    message = str(raised.value)
    for field in ("settle", "contractSize", "precision.amount", "precision.price"):
        assert field in message


def test_crossed_order_book_is_refused() -> None:
    raw = {"bids": [[101.0, 1.0]], "asks": [[100.0, 1.0]], "timestamp": 1_700_000_000_000}
    with pytest.raises(BrokerDataError, match="crossed"):
        OrderBook.from_ccxt(raw, symbol=ETH, received_at=datetime.now(UTC))


def test_book_sweep_reports_depth_and_slippage(venue: Any) -> None:
    book = venue.order_book(ETH, 10)
    sweep = book.sweep(Side.BUY, Decimal(75))

    assert book.best_ask == Decimal("3000.01")
    assert sweep.complete
    assert sweep.vwap == (Decimal("3000.01") * 50 + Decimal("3000.02") * 25) / 75
    assert sweep.slippage_bps is not None
    assert sweep.slippage_bps > 0
    assert not book.sweep(Side.BUY, Decimal(1000)).complete


# --------------------------------------------------------------------------------------------
# positions, balances, funding
# --------------------------------------------------------------------------------------------


def test_short_position_is_reported_with_a_negative_quantity(venue: Any, emulator: PerpVenueEmulator) -> None:
    emulator.seed_position(ETH, "-0.7", 3100)
    (position,) = venue.get_positions()

    assert position.symbol == ETH
    assert position.qty == Decimal("-0.7")
    assert position.is_short
    assert position.avg_entry_price == Decimal(3100)
    assert position.current_price == PRICE
    assert position.as_of.utcoffset() == timedelta(0)


def test_account_equity_includes_open_pnl_and_buying_power_follows_leverage(
    emulator: PerpVenueEmulator, venue_name: str
) -> None:
    emulator.seed_position(ETH, 1, 2900)  # 100 USDT in the money at 3000
    venue = sync_venue(emulator, venue_name, leverage=3)
    try:
        account = venue.get_account()
        balance = venue.balance()
    finally:
        venue.close()

    assert account.cash == Decimal(10000)
    assert account.equity == Decimal(10100)
    assert account.currency == "USDT"
    assert account.buying_power == balance.free * 3


def test_leverage_is_set_before_the_first_order(emulator: PerpVenueEmulator, venue_name: str) -> None:
    venue = sync_venue(emulator, venue_name, leverage=2)
    try:
        venue.submit_order(buy("lev", "0.1"))
        venue.submit_order(buy("lev-2", "0.1"))
    finally:
        venue.close()
    assert emulator.engine.leverage(ETH) == 2


@pytest.mark.parametrize(("held", "paid"), [("0.5", True), ("-0.5", False)], ids=["long-pays", "short-receives"])
def test_funding_history_has_one_sign_on_both_venues(
    venue: Any, emulator: PerpVenueEmulator, held: str, paid: bool
) -> None:
    emulator.seed_position(ETH, held, 3000)
    emulator.set_funding_rate(ETH, "0.0002")
    credited = emulator.apply_funding(ETH)
    (payment,) = venue.funding_payments(ETH)

    assert payment.amount == credited
    assert (payment.amount < 0) is paid
    assert abs(payment.amount) == Decimal("0.3")  # 0.5 x 3000 x 0.0002
    assert payment.currency == "USDT"
    assert payment.funding_id


def test_funding_rate_is_a_decimal_with_the_next_settlement(venue: Any, emulator: PerpVenueEmulator) -> None:
    emulator.set_funding_rate(ETH, "0.000125", 1_900_000_800_000)
    rate = venue.funding_rate(ETH)
    assert rate.rate == Decimal("0.000125")
    assert rate.next_funding_at is not None
    assert int(rate.next_funding_at.timestamp() * 1000) == 1_900_000_800_000


def test_server_time_is_the_venues_clock_not_this_machines(venue: Any, emulator: PerpVenueEmulator) -> None:
    simulated = datetime(2024, 3, 4, 14, 30, 15, 250000, tzinfo=UTC)
    emulator.set_time(simulated)

    assert venue.server_time() == simulated


def test_unreachable_venue_is_unavailable_not_flat(emulator: PerpVenueEmulator, venue_name: str) -> None:
    venue = sync_venue(emulator, venue_name)
    emulator.stop()
    try:
        with pytest.raises(BrokerUnavailable):
            venue.get_positions()
    finally:
        venue.close()


# --------------------------------------------------------------------------------------------
# credentials and registration
# --------------------------------------------------------------------------------------------


def test_credentials_never_show() -> None:
    credentials = VenueCredentials(api_key="key-abc123", secret="secret-xyz789")
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert "key-abc123" not in text
        assert "secret-xyz789" not in text
    assert credentials.scrub("sign error origin key-abc123 secret-xyz789") == "sign error origin <hidden> <hidden>"


def test_missing_credentials_name_the_variables_not_the_values() -> None:
    key_var, secret_var = credential_env_vars("bybit")
    with pytest.raises(SettingsError) as raised:
        VenueCredentials.from_env("bybit", {key_var: "present-key"})
    assert secret_var in str(raised.value)
    assert "present-key" not in str(raised.value)


def test_venue_errors_are_scrubbed_of_the_api_key(emulator: PerpVenueEmulator, venue_name: str) -> None:
    wrong = VenueCredentials(api_key=emulator.api_key, secret="not-the-secret")
    config = CcxtVenueConfig(venue=venue_name, api_url=emulator.base_url, rate_limit=False, timeout_ms=2000)
    venue = CcxtVenue(build_client(config, wrong, async_=False), config, credentials=wrong)
    try:
        with pytest.raises(BrokerUnavailable) as raised:
            venue.get_account()
    finally:
        venue.close()
    assert emulator.api_key not in str(raised.value)
    assert "not-the-secret" not in str(raised.value)


def test_registered_broker_builds_a_venue_from_settings_and_environment(
    emulator: PerpVenueEmulator, venue_name: str
) -> None:
    specs: dict[str, Any] = {}
    plugin.register_brokers(register=lambda spec: specs.__setitem__(spec.name, spec))
    assert set(specs) == {"ccxt-binanceusdm", "ccxt-bybit"}
    spec = specs[f"ccxt-{venue_name}"]
    assert spec.live_capable
    settings = Settings(
        plugins={
            "ccxt": {"venues": {venue_name: {"api_url": emulator.base_url, "rate_limit": False, "symbols": [ETH]}}}
        }
    )
    key_var, secret_var = credential_env_vars(venue_name)
    broker = spec.factory(settings, {key_var: emulator.api_key, secret_var: emulator.api_secret})
    try:
        assert broker.name == f"ccxt-{venue_name}"
        assert broker.get_account().equity == Decimal(10000)
        order = broker.submit_order(buy("factory", "0.1"))
        assert broker.get_order_by_client_id("tk-test-factory") == order
    finally:
        broker.close()
