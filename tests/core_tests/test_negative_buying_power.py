"""A negative buying power (a margin deficit, as Alpaca reports it) is a broker fact: it is
read, it leaves no room for any buy, and it never stands in the way of an exit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from tradekit import BuyAction, ReasonCode, Strategy, StrategyView, evaluate_buy
from tradekit.broker.paper import PaperBroker, ReceiptOutcome
from tradekit.config import ReconciliationSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Side, Signal, Urgency
from tradekit.domain.account import AccountSnapshot
from tradekit.execution.limits import apply_limits, room_under_caps
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler
from tradekit.sizing.result import SizingResult
from tradekit.testing import make_context

# Monday 2024-03-04: the session opens 14:30 UTC and closes 21:00 UTC.
OPEN = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)
DEFICIT = Decimal("-2500.00")


class Single(Strategy):
    name = "single"

    def on_bar(self, view: StrategyView) -> list[Signal]:
        return []


class DeficitBroker:
    """The paper broker, reporting a negative buying power once ``deficit`` is set."""

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner
        self.deficit: Decimal | None = None

    def get_account(self) -> AccountSnapshot:
        account = self.inner.get_account()
        return account if self.deficit is None else attrs.evolve(account, buying_power=self.deficit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@attrs.define
class Desk:
    pipeline: OrderPipeline
    paper: PaperBroker
    broker: DeficitBroker

    def signal(self, side: Side, *, urgency: Urgency = Urgency.PLANNED, age: timedelta = timedelta(hours=17)) -> Signal:
        return Signal(
            symbol="KO",
            side=side,
            confidence=5,
            generated_at=OPEN - age,
            reference_price=Decimal(60),
            source="test",
            urgency=urgency,
        )

    def market(self) -> MarketSnapshot:
        return MarketSnapshot(price=self.paper.last_price("KO"), as_of=OPEN)

    def accepted(self, side: Side) -> list[Any]:
        return [
            r.request
            for r in self.paper.received_orders
            if r.outcome is ReceiptOutcome.ACCEPTED and r.request.side is side
        ]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    paper = PaperBroker()
    paper.set_price("KO", Decimal(60), OPEN - timedelta(minutes=5))
    broker = DeficitBroker(paper)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    plugins = Plugins(load_entrypoints=False, env={})
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,  # a wrapper: the paper broker's methods, get_account changed
        settings=Settings(),
        plugins=plugins,
        calendar=TradingCalendar(),
        clock=lambda: OPEN,
    )
    Reconciler(ledger, broker, ReconciliationSettings(), plugins).run(OPEN)
    yield Desk(pipeline, paper, broker)
    ledger.close()


def test_an_account_snapshot_keeps_a_negative_buying_power_as_reported() -> None:
    account = AccountSnapshot(equity=Decimal(40_000), cash=Decimal(-5_000), buying_power=DEFICIT, as_of=OPEN)

    assert account.buying_power == DEFICIT


def test_a_buy_with_negative_buying_power_is_skipped_for_insufficient_buying_power(
    tradekit_plugins: Plugins,
) -> None:
    decision = evaluate_buy(make_context(buying_power=DEFICIT), plugins=tradekit_plugins)

    assert decision.action is BuyAction.SKIP
    assert ReasonCode.INSUFFICIENT_BUYING_POWER in decision.reasons


def test_a_negative_buying_power_is_no_room_for_the_sized_order_not_a_negative_cap(
    tradekit_plugins: Plugins,
) -> None:
    ctx = make_context(buying_power=DEFICIT)
    rooms = {name: room for name, room, _code in room_under_caps(ctx)}
    # Judged as if feasibility had let it through: the limits alone size it to nothing.
    allowed = evaluate_buy(make_context(), plugins=tradekit_plugins)
    sized = apply_limits(ctx, allowed, SizingResult(qty=Decimal(10), price=Decimal(60), method="fixed", detail=""))

    assert rooms["buying power"] == 0
    assert sized.qty == 0
    assert sized.price is None
    assert ReasonCode.INSUFFICIENT_BUYING_POWER in sized.decision.reasons


def test_with_negative_buying_power_no_buy_is_sent_and_a_stop_loss_exit_still_goes_out(desk: Desk) -> None:
    desk.pipeline.process_buy(desk.signal(Side.BUY), Single, desk.market())
    desk.pipeline.apply_events()
    held = desk.pipeline.ledger.position("KO")
    assert held is not None
    desk.broker.deficit = DEFICIT

    refused = desk.pipeline.process_buy(desk.signal(Side.BUY, age=timedelta(hours=1)), Single, desk.market())
    exit_outcome = desk.pipeline.plan_exit(desk.signal(Side.SELL, urgency=Urgency.IMMEDIATE, age=timedelta(0)))

    assert refused.decision is not None
    assert refused.decision.action is not BuyAction.ENTER_NEW
    assert refused.decision.action is not BuyAction.SCALE_IN
    assert len(desk.accepted(Side.BUY)) == 1  # the first buy only
    assert exit_outcome.order is not None
    assert [r.qty for r in desk.accepted(Side.SELL)] == [held.qty]
