"""Traders for the stale-stream tests: each trades the account through its own pipeline and
broker, whose trade-update stream the test sets healthy or stale, on a ledger it shares with
the others. ``observe_and_buy`` runs one trader's cycle in another process (the PostgreSQL
test's second trader). Not a test module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradekit import Strategy, StrategyView
from tradekit.broker.paper import PaperBroker
from tradekit.broker.protocol import StreamHeartbeat
from tradekit.config import GuardSettings, OrderGuardSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Side, Signal
from tradekit.execution.pipeline import BuyOutcome, OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

# Monday 2024-03-04, five minutes into the XNYS session.
START = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)
STALE_AFTER_S = 60
SETTINGS = Settings(
    orders=OrderGuardSettings(daily_order_limit=10_000, order_cooldown_minutes=0),
    guard=GuardSettings(stream_stale_after_seconds=STALE_AFTER_S),
)


class Buyer(Strategy):
    name = "buyer"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class StreamingPaper(PaperBroker):
    """The paper broker with a trade-update stream whose health the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.heartbeat: StreamHeartbeat | None = StreamHeartbeat(connected=True, last_heard_at=START)

    def stream_heartbeat(self) -> StreamHeartbeat | None:
        return self.heartbeat

    def healthy(self, at: datetime) -> None:
        self.heartbeat = StreamHeartbeat(connected=True, last_heard_at=at)

    def lost(self, at: datetime) -> None:
        """The stream dropped at ``at`` (stale ``STALE_AFTER_S`` later)."""
        self.heartbeat = StreamHeartbeat(connected=False, last_heard_at=at)


class Trader:
    """One trader of the shared account: its broker, its pipeline, its clock (set by the test).

    ``name``: the trader identity its guard places and lifts per-trader holds under (None:
    the pipeline's own guard, which goes by this process)."""

    def __init__(self, ledger: Ledger, *, name: str | None = None) -> None:
        self.ledger = ledger
        self.now = START
        self.broker = StreamingPaper()
        guard = None
        if name is not None:
            guard = TradingGuard(ledger=ledger, settings=SETTINGS.guard, calendar=TradingCalendar(), trader=name)
        self.pipeline = OrderPipeline(
            ledger=ledger,
            broker=self.broker,
            settings=SETTINGS,
            plugins=Plugins(load_entrypoints=False, env={}),
            calendar=TradingCalendar(),
            clock=lambda: self.now,
            guard=guard,
        )
        self.guard = self.pipeline.trading_guard()

    def observe(self) -> list[str]:
        """The guard's observation of this trader's cycle (what ``SessionDriver.observe`` runs)."""
        return [t.one_line() for t in self.guard.observe_broker(now=self.now, broker=self.broker)]

    def buy(self, symbol: str) -> BuyOutcome:
        self.broker.set_price(symbol, Decimal(50), self.now - timedelta(minutes=1))
        signal = Signal(
            symbol=symbol, side=Side.BUY, confidence=5, generated_at=self.now - timedelta(minutes=30), source="test"
        )
        return self.pipeline.process_buy(signal, Buyer, MarketSnapshot(price=Decimal(50), as_of=self.now))


def outcome(result: BuyOutcome) -> dict[str, Any]:
    decision = result.decision
    return {
        "action": decision.action.value if decision is not None else None,
        "reasons": [r.value for r in decision.reasons] if decision is not None else [],
        "sent": result.order is not None,
    }


_TRADERS: dict[tuple[str, str], Trader] = {}


def observe_and_buy(url: str, schema: str, at: str, symbol: str | None) -> dict[str, Any]:
    """One cycle of a trader whose stream is healthy, in this (worker) process: observe, then
    buy ``symbol`` if given. The trader (its ledger, broker and guard) lives on between calls."""
    trader = _TRADERS.get((url, schema))
    if trader is None:
        trader = _TRADERS[(url, schema)] = Trader(Ledger.open(url, schema=schema))
    trader.now = datetime.fromisoformat(at)
    trader.broker.healthy(trader.now)
    made = trader.observe()
    bought = outcome(trader.buy(symbol)) if symbol is not None else None
    return {"transitions": made, "buy": bought}


def close_all() -> None:
    for trader in _TRADERS.values():
        trader.ledger.close()
    _TRADERS.clear()
