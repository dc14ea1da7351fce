"""A trading process for the account-limit PostgreSQL tests: it buys one symbol and pauses
inside the transaction that decides the buy (its checks done, its intent not yet committed),
waiting for the test process to act. Not a test module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradekit import Strategy, StrategyView
from tradekit.broker.paper import PaperBroker
from tradekit.config import OrderGuardSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Side, Signal
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

NOW = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)
PRICE = Decimal(50)
# One order a day for the whole account: whichever process decides second must see the first.
SETTINGS = Settings(orders=OrderGuardSettings(daily_order_limit=1, order_cooldown_minutes=0))
WAIT_S = 60


class Buyer(Strategy):
    name = "buyer"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


def pipeline_for(url: str, schema: str, on_step: Any = None) -> tuple[OrderPipeline, Ledger, PaperBroker]:
    broker = PaperBroker()
    for symbol in ("S1", "S2"):
        broker.set_price(symbol, PRICE, NOW - timedelta(minutes=1))
    ledger = Ledger.open(url, schema=schema)
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=SETTINGS,
        plugins=Plugins(load_entrypoints=False, env={}),
        calendar=TradingCalendar(),
        clock=lambda: NOW,
        on_step=on_step,
    )
    return pipeline, ledger, broker


def buy(pipeline: OrderPipeline, symbol: str) -> str:
    signal = Signal(symbol=symbol, side=Side.BUY, confidence=5, generated_at=NOW - timedelta(hours=1), source=symbol)
    outcome = pipeline.process_buy(signal, Buyer, MarketSnapshot(price=PRICE, as_of=NOW))
    return outcome.decision.action.value if outcome.decision is not None else "none"


def buy_pausing_in_decision(url: str, schema: str, symbol: str, events: dict[str, Any]) -> str:
    """Buy ``symbol``, pausing after its checks ran, before its transaction commits."""

    def on_step(step: str) -> None:
        if step == "decision":
            events["decided"].set()
            if not events["may_commit"].wait(WAIT_S):
                raise TimeoutError("the test process never let the decision commit")

    pipeline, ledger, _broker = pipeline_for(url, schema, on_step)
    try:
        return buy(pipeline, symbol)
    finally:
        ledger.close()
