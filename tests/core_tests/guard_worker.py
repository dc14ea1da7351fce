"""A trading process for the guard's two-process PostgreSQL test: it buys three symbols and
pauses where the test tells it to (inside a send, between a decision and its send), waiting
for the test process to act. Not a test module."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradekit import Strategy, StrategyView
from tradekit.broker.paper import PaperBroker
from tradekit.config import OrderGuardSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Order, OrderRequest, Side, Signal
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

NOW = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)
SETTINGS = Settings(orders=OrderGuardSettings(daily_order_limit=10_000, order_cooldown_minutes=0))
WAIT_S = 60


class Buyer(Strategy):
    name = "buyer"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class PausingBroker(PaperBroker):
    """Stops inside the send of ``symbol``: the order is on its way, the send lock held."""

    def __init__(self, symbol: str, in_send: threading.Event, go: threading.Event) -> None:
        super().__init__()
        self.pause_symbol, self.in_send, self.go = symbol, in_send, go

    def submit_order(self, request: OrderRequest) -> Order:
        if request.symbol == self.pause_symbol:
            self.in_send.set()
            if not self.go.wait(WAIT_S):
                raise TimeoutError("the test process never let the send finish")
        return super().submit_order(request)


def trade(url: str, schema: str, events: dict[str, Any]) -> list[dict[str, Any]]:
    """Buy S1 (pausing in its send), S2 (pausing between decision and send), then S3."""
    broker = PausingBroker("S1", events["in_send"], events["send_may_finish"])
    for symbol in ("S1", "S2", "S3"):
        broker.set_price(symbol, Decimal(50), NOW - timedelta(minutes=1))
    ledger = Ledger.open(url, schema=schema)

    def on_step(step: str) -> None:
        if step == "intent" and current == "S2":
            events["decided"].set()
            if not events["send_may_go_on"].wait(WAIT_S):
                raise TimeoutError("the test process never let the order go on")

    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=SETTINGS,
        plugins=Plugins(load_entrypoints=False, env={}),
        calendar=TradingCalendar(),
        clock=lambda: NOW,
        on_step=on_step,
    )
    results = []
    for current in ("S1", "S2", "S3"):
        signal = Signal(
            symbol=current, side=Side.BUY, confidence=5, generated_at=NOW - timedelta(hours=1), source="worker"
        )
        outcome = pipeline.process_buy(signal, Buyer, MarketSnapshot(price=Decimal(50), as_of=NOW))
        results.append(
            {
                "symbol": current,
                "action": outcome.decision.action.value if outcome.decision else None,
                "reasons": [r.value for r in outcome.decision.reasons] if outcome.decision else [],
                "client_order_id": outcome.intent.client_order_id if outcome.intent else None,
                "sent": outcome.order is not None,
            }
        )
    results.append({"broker_received": [r.request.symbol for r in broker.received_orders]})
    ledger.close()
    return results
