"""The broker contract suite: the behaviour tradekit relies on from every broker plugin.

Subclass ``BrokerContract`` in your plugin's tests, under a name pytest collects, and
implement its hooks; every test below then runs against your broker::

    from tradekit.testing.contract import BrokerContract

    class TestMyBrokerContract(BrokerContract):
        non_fractionable_symbol = "BRK.A"

        @pytest.fixture(autouse=True)
        def _venue(self, my_emulator):      # autouse fixtures run before ``broker``
            self.venue = my_emulator

        def make_broker(self) -> Broker:
            return MyBroker(base_url=self.venue.base_url)

        def set_market_price(self, symbol: str, price: Decimal) -> None:
            self.venue.set_price(symbol, price)

        def seed_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
            self.venue.set_position(symbol, qty, avg_entry_price)

        def advance(self) -> None:          # asynchronous brokers: let updates arrive
            self.venue.wait_for_stream_delivery()

The suite never measures time: it waits for a broker to reach a state by calling
``advance()`` between polls, at most ``max_advances`` times, and fails with the last state
seen. This module imports pytest, which tradekit itself does not depend on; import it from
test suites only.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import ClassVar

import pytest

from tradekit.broker.errors import DuplicateClientOrderId, FractionalNotSupported, OrderRejected
from tradekit.broker.protocol import Broker, OrderEventKind
from tradekit.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side

_CENT = Decimal("0.01")


def _is_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


class BrokerContract(abc.ABC):
    """Contract tests for a ``Broker``; a plugin subclasses it and implements the hooks.

    Class attributes describe the venue under test; override them where yours differs.
    """

    symbol: ClassVar[str] = "AAPL"
    """A tradable, fractionable symbol; the suite sets its price to ``reference_price``."""
    non_fractionable_symbol: ClassVar[str | None] = None
    """A tradable symbol that refuses fractional orders, or None where every symbol allows them."""
    unknown_symbol: ClassVar[str] = "NOSUCHSYMBOL"
    """A symbol the broker does not trade."""
    reference_price: ClassVar[Decimal] = Decimal(100)
    supports_fractional: ClassVar[bool] = True
    """Whether ``symbol`` trades in fractions of a share on this account."""
    allows_short_selling: ClassVar[bool] = False
    """Whether selling more than is held opens a short position instead of being rejected."""
    max_advances: ClassVar[int] = 50
    """How many times the suite calls ``advance()`` while waiting for one state."""
    price_tolerance: ClassVar[Decimal] = Decimal("0.0001")
    """How far a reported average price may differ from the fills it averages (rounding)."""

    # ------------------------------------------------------------------ hooks to implement

    @abc.abstractmethod
    def make_broker(self) -> Broker:
        """Return a connected broker on a fresh account (called once per test)."""

    @abc.abstractmethod
    def set_market_price(self, symbol: str, price: Decimal) -> None:
        """Move the venue's market: ``price`` becomes the current price of ``symbol``."""

    @abc.abstractmethod
    def seed_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        """Give the account a position held before the test, without an order through the broker."""

    def advance(self) -> None:  # noqa: B027 - optional hook: synchronous brokers need nothing
        """Let the venue execute what it will and let the broker see the results.

        Called between polls while the suite waits for a state. A broker that reports every
        change by the time a call returns needs nothing here, which is the default.
        """

    # ------------------------------------------------------------------ fixtures and helpers

    @pytest.fixture
    def broker(self) -> Iterator[Broker]:
        """Provide the broker under test, with the suite's symbols priced."""
        broker = self.make_broker()
        self.set_market_price(self.symbol, self.reference_price)
        if self.non_fractionable_symbol is not None:
            self.set_market_price(self.non_fractionable_symbol, self.reference_price)
        yield broker
        broker.close()

    def new_client_order_id(self, label: str) -> str:
        """Return a client order id no earlier run can have used."""
        return f"contract-{label}-{uuid.uuid4().hex[:16]}"

    def market_order(self, label: str, side: Side, qty: Decimal, symbol: str | None = None) -> OrderRequest:
        """Build a market order request for ``qty`` of ``symbol`` (default: the suite's symbol)."""
        return OrderRequest(
            client_order_id=self.new_client_order_id(label), symbol=symbol or self.symbol, side=side, qty=qty
        )

    def limit_buy(self, label: str, qty: Decimal, limit_price: Decimal) -> OrderRequest:
        """Build a limit buy of the suite's symbol, its limit rounded down to the cent."""
        return OrderRequest(
            client_order_id=self.new_client_order_id(label),
            symbol=self.symbol,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=qty,
            limit_price=limit_price.quantize(_CENT, rounding=ROUND_DOWN),
        )

    def wait_for_order(self, broker: Broker, client_order_id: str, reached: Callable[[Order], bool]) -> Order:
        """Poll the order, advancing the venue between polls, until ``reached`` holds."""
        order = None
        for _ in range(self.max_advances + 1):
            order = broker.get_order_by_client_id(client_order_id)
            if order is not None and reached(order):
                return order
            self.advance()
        pytest.fail(f"order {client_order_id} did not reach the expected state; last seen: {order!r}")

    def wait_for_status(self, broker: Broker, client_order_id: str, status: OrderStatus) -> Order:
        """Poll the order, advancing the venue between polls, until it has ``status``."""
        return self.wait_for_order(broker, client_order_id, lambda order: order.status is status)

    def position_qty(self, broker: Broker, symbol: str | None = None) -> Decimal:
        """Return the signed quantity held in ``symbol`` (zero when flat)."""
        position = self.position(broker, symbol or self.symbol)
        return position.qty if position is not None else Decimal(0)

    def position(self, broker: Broker, symbol: str) -> BrokerPosition | None:
        """Return the broker's position in ``symbol``, or None when flat."""
        matches = [p for p in broker.get_positions() if p.symbol == symbol]
        assert len(matches) <= 1, f"two positions reported for {symbol}: {matches}"
        return matches[0] if matches else None

    def assert_close(self, actual: Decimal, expected: Decimal) -> None:
        """Assert two prices agree within ``price_tolerance``."""
        assert abs(actual - expected) <= self.price_tolerance, (
            f"{actual} is not within {self.price_tolerance} of {expected}"
        )

    # ------------------------------------------------------------------ account, clock, assets

    def test_account_snapshot_has_decimal_money_and_a_utc_time(self, broker: Broker) -> None:
        account = broker.get_account()
        for name in ("equity", "cash", "buying_power"):
            value = getattr(account, name)
            assert isinstance(value, Decimal), f"{name} is {type(value).__name__}, not Decimal"
            assert value.is_finite(), f"{name} is {value}"
        assert account.buying_power >= 0
        assert account.equity > 0
        assert _is_utc(account.as_of)
        assert account.currency

    def test_clock_times_are_utc_and_in_order(self, broker: Broker) -> None:
        clock = broker.get_clock()
        assert all(_is_utc(t) for t in (clock.now, clock.next_open, clock.next_close))
        if clock.is_open:
            assert clock.now < clock.next_close < clock.next_open
        else:
            assert clock.now < clock.next_open < clock.next_close

    def test_asset_reports_whether_it_trades_in_fractions(self, broker: Broker) -> None:
        asset = broker.get_asset(self.symbol)
        assert asset.symbol == self.symbol
        assert asset.tradable
        assert asset.fractionable is self.supports_fractional
        if self.non_fractionable_symbol is not None:
            other = broker.get_asset(self.non_fractionable_symbol)
            assert other.tradable
            assert not other.fractionable

    # ------------------------------------------------------------------ positions

    def test_seeded_position_is_reported_with_its_quantity_and_average_price(self, broker: Broker) -> None:
        self.seed_position(self.symbol, Decimal(3), Decimal(95))
        position = self.position(broker, self.symbol)
        assert position is not None
        assert position.qty == Decimal(3)
        self.assert_close(position.avg_entry_price, Decimal(95))
        assert _is_utc(position.as_of)
        assert isinstance(position.avg_entry_price, Decimal)

    def test_market_buy_fills_and_opens_a_position_at_the_fill_price(self, broker: Broker) -> None:
        request = self.market_order("buy", Side.BUY, Decimal(2))
        submitted = broker.submit_order(request)
        assert submitted.client_order_id == request.client_order_id
        assert submitted.symbol == self.symbol
        assert submitted.side is Side.BUY
        assert submitted.qty == Decimal(2)
        assert submitted.status is not OrderStatus.REJECTED
        assert _is_utc(submitted.submitted_at)
        order = self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        assert order.filled_qty == Decimal(2)
        assert order.filled_avg_price is not None
        assert order.filled_avg_price > 0
        position = self.position(broker, self.symbol)
        assert position is not None
        assert position.qty == Decimal(2)
        self.assert_close(position.avg_entry_price, order.filled_avg_price)

    def test_selling_the_whole_position_closes_it(self, broker: Broker) -> None:
        self.seed_position(self.symbol, Decimal(4), self.reference_price)
        request = self.market_order("close", Side.SELL, Decimal(4))
        broker.submit_order(request)
        self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        assert self.position(broker, self.symbol) is None

    def test_selling_more_than_is_held_is_rejected_unless_shorting_is_supported(self, broker: Broker) -> None:
        self.seed_position(self.symbol, Decimal(2), self.reference_price)
        request = self.market_order("oversell", Side.SELL, Decimal(5))
        if self.allows_short_selling:
            broker.submit_order(request)
            self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
            assert self.position_qty(broker) == Decimal(-3)
            return
        try:
            broker.submit_order(request)
        except OrderRejected:
            assert broker.get_order_by_client_id(request.client_order_id) is None
        else:
            order = self.wait_for_order(broker, request.client_order_id, lambda o: o.status.is_terminal)
            assert order.status is OrderStatus.REJECTED
        assert self.position_qty(broker) == Decimal(2)

    def test_buy_beyond_buying_power_is_rejected_and_does_not_exist(self, broker: Broker) -> None:
        buying_power = broker.get_account().buying_power
        qty = (buying_power / self.reference_price * 2).to_integral_value(rounding=ROUND_DOWN) + 1
        request = self.market_order("too-big", Side.BUY, qty)
        with pytest.raises(OrderRejected):
            broker.submit_order(request)
        assert broker.get_order_by_client_id(request.client_order_id) is None
        assert self.position_qty(broker) == 0

    def test_order_on_an_unknown_symbol_is_rejected(self, broker: Broker) -> None:
        request = self.market_order("unknown", Side.BUY, Decimal(1), symbol=self.unknown_symbol)
        with pytest.raises(OrderRejected):
            broker.submit_order(request)
        assert broker.get_order_by_client_id(request.client_order_id) is None

    # ------------------------------------------------------------------ client order ids

    def test_order_is_found_by_its_client_order_id(self, broker: Broker) -> None:
        request = self.market_order("lookup", Side.BUY, Decimal(1))
        submitted = broker.submit_order(request)
        found = self.wait_for_order(broker, request.client_order_id, lambda order: True)
        assert found.broker_order_id == submitted.broker_order_id
        assert found.symbol == self.symbol

    def test_unknown_client_order_id_finds_nothing(self, broker: Broker) -> None:
        assert broker.get_order_by_client_id(self.new_client_order_id("never-sent")) is None

    def test_duplicate_client_order_id_raises_and_leaves_exactly_one_order(self, broker: Broker) -> None:
        request = self.market_order("dup", Side.BUY, Decimal(1))
        first = broker.submit_order(request)
        self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        with pytest.raises(DuplicateClientOrderId):
            broker.submit_order(request)
        self.advance()
        order = broker.get_order_by_client_id(request.client_order_id)
        assert order is not None
        assert order.broker_order_id == first.broker_order_id
        assert sum((fill.qty for fill in broker.get_fills(request.client_order_id)), Decimal(0)) == Decimal(1)
        assert self.position_qty(broker) == Decimal(1)

    # ------------------------------------------------------------------ limit orders and cancels

    def test_limit_buy_below_the_market_rests_until_canceled(self, broker: Broker) -> None:
        request = self.limit_buy("rest", Decimal(1), self.reference_price / 2)
        broker.submit_order(request)
        self.advance()
        order = broker.get_order_by_client_id(request.client_order_id)
        assert order is not None
        assert order.status in (OrderStatus.NEW, OrderStatus.ACCEPTED)
        open_orders = broker.get_open_orders()
        assert [o.client_order_id for o in open_orders].count(request.client_order_id) == 1
        assert all(not o.status.is_terminal for o in open_orders)
        broker.cancel_order(request.client_order_id)
        canceled = self.wait_for_status(broker, request.client_order_id, OrderStatus.CANCELED)
        assert canceled.filled_qty == 0
        assert request.client_order_id not in [o.client_order_id for o in broker.get_open_orders()]
        assert list(broker.get_fills(request.client_order_id)) == []
        assert self.position_qty(broker) == 0

    def test_limit_buy_fills_at_or_below_its_limit_once_the_price_comes_down(self, broker: Broker) -> None:
        request = self.limit_buy("dip", Decimal(1), self.reference_price * Decimal("0.95"))
        broker.submit_order(request)
        self.advance()
        resting = broker.get_order_by_client_id(request.client_order_id)
        assert resting is not None
        assert resting.filled_qty == 0
        self.set_market_price(self.symbol, self.reference_price * Decimal("0.90"))
        order = self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        assert request.limit_price is not None
        assert order.filled_avg_price is not None
        assert order.filled_avg_price <= request.limit_price
        assert self.position_qty(broker) == Decimal(1)

    def test_cancel_of_a_filled_order_is_not_an_error_and_changes_nothing(self, broker: Broker) -> None:
        request = self.market_order("filled", Side.BUY, Decimal(1))
        broker.submit_order(request)
        self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        broker.cancel_order(request.client_order_id)
        self.advance()
        order = broker.get_order_by_client_id(request.client_order_id)
        assert order is not None
        assert order.status is OrderStatus.FILLED
        assert self.position_qty(broker) == Decimal(1)

    def test_cancel_of_an_unknown_order_is_not_an_error(self, broker: Broker) -> None:
        broker.cancel_order(self.new_client_order_id("never-sent"))

    # ------------------------------------------------------------------ fills and events

    def test_fills_have_unique_execution_ids_and_add_up_to_the_filled_qty(self, broker: Broker) -> None:
        request = self.market_order("fills", Side.BUY, Decimal(3))
        broker.submit_order(request)
        order = self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        fills = list(broker.get_fills(request.client_order_id))
        assert fills
        assert len({fill.execution_id for fill in fills}) == len(fills)
        assert sum((fill.qty for fill in fills), Decimal(0)) == order.filled_qty == Decimal(3)
        for fill in fills:
            assert fill.client_order_id == request.client_order_id
            assert fill.broker_order_id == order.broker_order_id
            assert fill.symbol == self.symbol
            assert fill.side is Side.BUY
            assert fill.qty > 0
            assert fill.price > 0
            assert _is_utc(fill.time)
        notional = sum((fill.qty * fill.price for fill in fills), Decimal(0))
        assert order.filled_avg_price is not None
        self.assert_close(order.filled_avg_price, notional / order.filled_qty)

    def test_events_deliver_every_fill_and_deduplicate_to_the_position(self, broker: Broker) -> None:
        broker.drain_events()
        request = self.market_order("events", Side.BUY, Decimal(3))
        broker.submit_order(request)
        fills: dict[str, Fill] = {}
        for _ in range(self.max_advances + 1):
            for event in broker.drain_events():
                assert _is_utc(event.time)
                if event.kind in (OrderEventKind.PARTIAL_FILL, OrderEventKind.FILL):
                    assert event.fill is not None, f"{event.kind} event without its fill"
                if event.fill is not None and event.fill.client_order_id == request.client_order_id:
                    assert event.order.client_order_id == request.client_order_id
                    fills[event.fill.execution_id] = event.fill
            if sum((fill.qty for fill in fills.values()), Decimal(0)) >= Decimal(3):
                break
            self.advance()
        assert sum((fill.qty for fill in fills.values()), Decimal(0)) == Decimal(3)
        assert set(fills) == {fill.execution_id for fill in broker.get_fills(request.client_order_id)}
        assert self.position_qty(broker) == Decimal(3)

    # ------------------------------------------------------------------ fractional shares

    def test_fractional_buy_fills_on_a_fractionable_symbol(self, broker: Broker) -> None:
        if not self.supports_fractional:
            pytest.skip("this broker does not trade fractional shares")
        request = self.market_order("fraction", Side.BUY, Decimal("0.5"))
        broker.submit_order(request)
        order = self.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
        assert order.filled_qty == Decimal("0.5")
        assert self.position_qty(broker) == Decimal("0.5")

    def test_fractional_order_on_a_non_fractionable_symbol_is_refused(self, broker: Broker) -> None:
        symbol = self.non_fractionable_symbol
        if symbol is None:
            pytest.skip("every symbol of this broker trades in fractions")
        by_qty = self.market_order("frac-qty", Side.BUY, Decimal("0.5"), symbol=symbol)
        with pytest.raises(FractionalNotSupported):
            broker.submit_order(by_qty)
        by_notional = OrderRequest(
            client_order_id=self.new_client_order_id("frac-notional"),
            symbol=symbol,
            side=Side.BUY,
            notional=self.reference_price / 2,
        )
        with pytest.raises(FractionalNotSupported):
            broker.submit_order(by_notional)
        assert broker.get_order_by_client_id(by_qty.client_order_id) is None
        assert broker.get_order_by_client_id(by_notional.client_order_id) is None
        assert self.position_qty(broker, symbol) == 0
