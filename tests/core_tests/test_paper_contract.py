"""The paper broker passes the broker contract suite, in each of its execution modes.

The plain account runs on a state file, so every contract test also goes through the
save after each change; the sliced accounts show the suite holding with several fills per
order, slippage and commissions, and with fills that only come as the market moves on.
Brokers that break one rule each show that the suite catches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from tradekit.broker import (
    Broker,
    DuplicateClientOrderId,
    OrderEvent,
    OrderEventKind,
    PaperBroker,
    PaperBrokerConfig,
    SliceTiming,
)
from tradekit.domain import Order, OrderRequest, OrderStatus
from tradekit.testing.contract import BrokerContract

# A Monday at 10:00 New York: the session clock says the market is open.
SESSION_START = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


class PaperContract(BrokerContract):
    """Run the contract against a PaperBroker built from ``config``."""

    non_fractionable_symbol = "BRK.A"
    config = PaperBrokerConfig(non_fractionable_symbols=frozenset({"BRK.A"}))
    paper: PaperBroker
    market_time: datetime
    state_path: Path | None = None

    def make_broker(self) -> Broker:
        self.market_time = SESSION_START
        self.paper = PaperBroker(self.config, state_path=self.state_path)
        return self.paper

    def set_market_price(self, symbol: str, price: Decimal) -> None:
        self.market_time += timedelta(minutes=1)
        self.paper.set_price(symbol, price, self.market_time)

    def seed_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        self.paper.seed_position(symbol, qty, avg_entry_price)


class TestPaperBrokerOnAStateFile(PaperContract):
    @pytest.fixture(autouse=True)
    def _state_file(self, tmp_path: Path) -> None:
        self.state_path = tmp_path / "paper-state.json"


class TestPaperBrokerFillingInSlicesWithCosts(PaperContract):
    config = PaperBrokerConfig(
        non_fractionable_symbols=frozenset({"BRK.A"}),
        fill_slices=3,
        slippage_bps=Decimal(5),
        commission_per_order=Decimal("0.35"),
        commission_per_share=Decimal("0.005"),
    )


class TestPaperBrokerFillingOneSlicePerPriceUpdate(PaperContract):
    config = PaperBrokerConfig(
        non_fractionable_symbols=frozenset({"BRK.A"}),
        fill_slices=2,
        slice_timing=SliceTiming.PER_PRICE_UPDATE,
    )

    def advance(self) -> None:
        # The market moves on at the same prices, which executes the next slice of each order.
        for symbol in (self.symbol, "BRK.A"):
            price = self.paper.last_price(symbol)
            if price is not None:
                self.set_market_price(symbol, price)


# The suite must fail a broker that breaks the contract; these brokers each break one rule.


class _ResendingPaperBroker(PaperBroker):
    """Places a second order when a client order id is reused, instead of refusing it."""

    def submit_order(self, request: OrderRequest) -> Order:
        try:
            return super().submit_order(request)
        except DuplicateClientOrderId:
            return super().submit_order(attrs.evolve(request, client_order_id=request.client_order_id + "-again"))


class _FillDroppingPaperBroker(PaperBroker):
    """Loses the final fill event of every order."""

    def drain_events(self) -> Sequence[OrderEvent]:
        return [event for event in super().drain_events() if event.kind is not OrderEventKind.FILL]


class _BrokenPaperContract(PaperContract):
    broker_class: type[PaperBroker] = PaperBroker

    def make_broker(self) -> Broker:
        self.market_time = SESSION_START
        self.paper = self.broker_class(self.config)
        self.set_market_price(self.symbol, self.reference_price)
        self.set_market_price("BRK.A", self.reference_price)
        return self.paper


class _ResendingContract(_BrokenPaperContract):
    broker_class = _ResendingPaperBroker


class _FillDroppingContract(_BrokenPaperContract):
    broker_class = _FillDroppingPaperBroker
    max_advances = 3


class _FractionalEverywhereContract(_BrokenPaperContract):
    config = PaperBrokerConfig()


def test_contract_fails_a_broker_that_places_a_second_order_for_a_reused_client_order_id() -> None:
    suite = _ResendingContract()
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        suite.test_duplicate_client_order_id_raises_and_leaves_exactly_one_order(suite.make_broker())


def test_contract_fails_a_broker_that_loses_fill_events() -> None:
    suite = _FillDroppingContract()
    with pytest.raises(AssertionError):
        suite.test_events_deliver_every_fill_and_deduplicate_to_the_position(suite.make_broker())


def test_contract_fails_a_broker_that_buys_fractions_of_a_non_fractionable_symbol() -> None:
    suite = _FractionalEverywhereContract()
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        suite.test_fractional_order_on_a_non_fractionable_symbol_is_refused(suite.make_broker())


def test_contract_waits_a_bounded_number_of_advances_and_reports_the_last_state() -> None:
    suite = _FillDroppingContract()
    broker = suite.make_broker()
    request = suite.limit_buy("never", Decimal(1), suite.reference_price / 2)
    broker.submit_order(request)
    with pytest.raises(pytest.fail.Exception, match="did not reach the expected state"):
        suite.wait_for_status(broker, request.client_order_id, OrderStatus.FILLED)
