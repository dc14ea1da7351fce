"""A bot process for the PostgreSQL concurrency test: on each round it waits at a barrier
shared with a second bot, then evaluates a buy for the round's symbol. Not a test module."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
# Many rounds in one day: lift the daily order limit so it is the lock that decides.
SETTINGS = Settings(orders=OrderGuardSettings(daily_order_limit=10_000))


class Entry(Strategy):
    name = "entry"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


def bot(name: str, url: str, schema: str, rounds: int, barrier: threading.Barrier) -> list[tuple[str, str]]:
    """Return (symbol, action) per round."""
    broker = PaperBroker()
    for r in range(rounds):
        broker.set_price(f"S{r}", Decimal(50), NOW - timedelta(minutes=1))
    ledger = Ledger.open(url, schema=schema)
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=SETTINGS,
        plugins=Plugins(load_entrypoints=False, env={}),
        calendar=TradingCalendar(),
        clock=lambda: NOW,
    )
    actions = []
    for r in range(rounds):
        symbol = f"S{r}"
        # Two different signals (two bots, two sources) for the same symbol at the same moment.
        signal = Signal(
            symbol=symbol,
            side=Side.BUY,
            confidence=5,
            generated_at=NOW - timedelta(hours=1),
            reference_price=Decimal(50),
            source=name,
        )
        barrier.wait(timeout=60)
        outcome = pipeline.process_buy(signal, Entry, MarketSnapshot(price=Decimal(50), as_of=NOW))
        actions.append((symbol, outcome.decision.action.value if outcome.decision else "none"))
    ledger.close()
    return actions
