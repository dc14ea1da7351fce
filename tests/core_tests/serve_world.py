"""A ledger a live trader has really traded, for the status page and notification tests.

The trader runs its cycles on the paper broker with a daily-bar feed (``BarsBroker``) and an
injected clock: it adopts a position the broker holds (MSFT, a reconciliation finding), buys
KO at Tuesday's open and adds to it at Wednesday's, skips PFE (its price gapped), and after
Wednesday's close plans to sell KO in Thursday's window. An operator halts PFE. Every cycle
leaves its heartbeat.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs

from tradekit import Strategy, StrategyScalingPolicy, StrategyView, hookimpl
from tradekit.broker.protocol import MarketClock
from tradekit.config import Settings
from tradekit.domain import Side, Signal
from tradekit.execution.live import LiveTrader
from tradekit.guard.control import TradingGuard
from tradekit.guard.state import Scope
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

from .test_live_trader import BarsBroker
from .test_pipeline import Trading, make_trading

MONDAY_CLOSE = datetime(2024, 3, 4, 21, tzinfo=UTC)
TUESDAY_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
DAY = timedelta(days=1)
CLOSES = [MONDAY_CLOSE - 3 * DAY, MONDAY_CLOSE, MONDAY_CLOSE + DAY, MONDAY_CLOSE + 2 * DAY]
# After the world is built: Wednesday evening, the trader's last cycle 5 minutes before.
AFTER = MONDAY_CLOSE + 2 * DAY + timedelta(minutes=10)


class AddEachClose(Strategy):
    """Buys KO and PFE at every close (KO is added to, up to three entries); sells KO from
    Wednesday's close on."""

    name = "add_each_close"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=3)

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        side = Side.SELL if view.symbol == "KO" and bar.time >= MONDAY_CLOSE + 2 * DAY else Side.BUY
        return [
            Signal(
                symbol=view.symbol,
                side=side,
                confidence=5,
                generated_at=bar.time,
                reference_price=bar.close,
                source=self.name,
            )
        ]


@hookimpl
def register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    register(AddEachClose)


def world_plugins() -> Plugins:
    """The built-ins and this world's strategy (so a page can read its scaling policy)."""
    return Plugins(load_entrypoints=False, env={}, extra=[("serve_world", sys.modules[__name__])])


@attrs.frozen
class World:
    url: str
    trading: Trading
    trader: LiveTrader
    guard: TradingGuard


def at(trading: Trading, now: datetime, *, is_open: bool) -> None:
    trading.clock.now = now
    trading.broker.set_clock(MarketClock(now=now, is_open=is_open, next_open=now + DAY, next_close=now + DAY))


def build_world(tmp_path: Path, *, plugins: Plugins | None = None, settings: Settings | None = None) -> World:
    """Trade the story of the module's docstring into a ledger at ``tmp_path``; the trader stays open."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    manager = plugins or world_plugins()
    broker = BarsBroker(CLOSES)
    broker.seed_position("MSFT", Decimal(5), Decimal(400), opened_at=MONDAY_CLOSE - DAY)
    trading = make_trading(
        tmp_path,
        paper=broker,
        plugins=manager,
        settings=settings,
        ledger=Ledger.open(url, for_trading=True),
    )
    trader = LiveTrader(trading.pipeline, AddEachClose, ["KO", "PFE"])
    guard = trading.pipeline.trading_guard()
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    broker.set_price("KO", Decimal(60), MONDAY_CLOSE)
    broker.set_price("PFE", Decimal(28), MONDAY_CLOSE)  # the feed's close is 60: a gap, skipped
    broker.set_price("MSFT", Decimal(410), MONDAY_CLOSE)
    trader.startup()
    trader.cycle()
    for day in (0, 1):
        at(trading, TUESDAY_OPEN + day * DAY + timedelta(minutes=6), is_open=True)
        trader.cycle()
        broker.set_price("KO", Decimal(61) + day, TUESDAY_OPEN + day * DAY + timedelta(minutes=7))
        at(trading, MONDAY_CLOSE + (day + 1) * DAY + timedelta(minutes=5), is_open=False)
        trader.cycle()
    guard.halt(Scope.symbol("PFE"), reason="earnings tomorrow", actor="user:ops", at=trading.clock.now)
    return World(url=url, trading=trading, trader=trader, guard=guard)
