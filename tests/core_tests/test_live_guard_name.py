"""The live trader's guard goes by the trader's name (its strategy and broker, as its
heartbeats do), so that a restarted trader takes over the part of a stale-stream hold its
previous process placed, on whichever host it starts again.

Before, the pipeline's own guard went by its process (``pid N on HOST``): a trader whose
stream went stale and that was restarted on another host (or whose host was renamed) never
lifted its own part, and the account stayed REDUCE_ONLY until ``tradekit resume``.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta

import pytest

from tradekit.broker.paper import PAPER_BROKER_NAME
from tradekit.broker.protocol import MarketClock
from tradekit.execution.live import LiveTrader
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.guard import ACCOUNT, Hold, TradingState, Trigger
from tradekit.guard.control import TradingGuard
from tradekit.health.heartbeat import trader_name
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

from .conftest import LedgerFactory
from .guard_stream_worker import SETTINGS, STALE_AFTER_S, START, Buyer, StreamingPaper

NAME = trader_name(Buyer.name, PAPER_BROKER_NAME)


class Trader:
    """One process of the live trader: its broker, its pipeline (with the pipeline's own
    guard, as ``tradekit live`` builds it), its clock, on host ``host``."""

    def __init__(
        self, ledger: Ledger, host: str, monkeypatch: pytest.MonkeyPatch, *, guard: TradingGuard | None = None
    ) -> None:
        monkeypatch.setattr(socket, "gethostname", lambda: host)
        self.now = START
        self.broker = StreamingPaper()
        self.pipeline = OrderPipeline(
            ledger=ledger,
            broker=self.broker,
            settings=SETTINGS,
            plugins=Plugins(load_entrypoints=False, env={}),
            calendar=TradingCalendar(),
            clock=lambda: self.now,
            guard=guard,
        )
        self.live = LiveTrader(self.pipeline, Buyer, [])

    def cycle(self, at: datetime) -> None:
        """A live cycle mid-session: the guard observes the broker's stream (``maintain``)."""
        self.now = at
        self.broker.set_clock(
            MarketClock(now=at, is_open=True, next_open=at + timedelta(days=1), next_close=at + timedelta(hours=6))
        )
        self.live.driver.maintain({})


def stale_stream_hold(ledger: Ledger) -> Hold | None:
    with ledger.reading() as tx:
        return next((h for h in tx.trading_states().holds if h.trigger is Trigger.STALE_STREAM), None)


def test_a_live_trader_restarted_on_another_host_lifts_its_own_stale_stream_part(
    ledger_factory: LedgerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Trader(ledger_factory(), "host-a", monkeypatch)
    first.broker.lost(START - timedelta(seconds=STALE_AFTER_S))
    first.cycle(START)
    hold = stale_stream_hold(first.pipeline.ledger)
    assert hold is not None
    assert (hold.scope, hold.state, hold.traders) == (ACCOUNT, TradingState.REDUCE_ONLY, (NAME,))
    # The trader is restarted on another host (host-a is gone); its stream is stale at first,
    # then healthy: its own observation keeps its part, then takes it off.
    again = Trader(ledger_factory(), "host-b", monkeypatch)
    assert again.live.driver.guard.trader == NAME
    later = START + timedelta(minutes=5)
    again.broker.lost(later - timedelta(seconds=STALE_AFTER_S))
    again.cycle(later)
    kept = stale_stream_hold(again.pipeline.ledger)
    assert kept is not None
    assert kept.traders == (NAME,)
    again.broker.healthy(later + timedelta(minutes=1))
    again.cycle(later + timedelta(minutes=1))
    assert stale_stream_hold(again.pipeline.ledger) is None


def test_a_guard_given_its_own_name_keeps_it(ledger_factory: LedgerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ledger_factory()
    mine = TradingGuard(ledger=ledger, settings=SETTINGS.guard, calendar=TradingCalendar(), trader="desk 3")
    trader = Trader(ledger, "host-a", monkeypatch, guard=mine)
    assert trader.live.driver.guard is mine
    assert mine.trader == "desk 3"
    trader.broker.lost(START - timedelta(seconds=STALE_AFTER_S))
    trader.cycle(START)
    hold = stale_stream_hold(ledger)
    assert hold is not None
    assert hold.traders == ("desk 3",)
