"""A trading process for the crash-safety test: runs a fixed script, SIGKILLs itself at a
chosen pipeline step, and is started again to recover. Not a test module itself.

Usage: python -m core_tests.crash_worker WORKDIR SEED [KILL_STEP KILL_OCCURRENCE]
"""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tradekit import Strategy, StrategyScalingPolicy, StrategyView
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, SliceTiming
from tradekit.config import Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Side, Signal
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler

D1 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday


class Pyramid(Strategy):
    name = "crash-pyramid"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4)

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = D1

    def __call__(self) -> datetime:
        return self.now


def main(argv: list[str]) -> None:
    workdir, seed = Path(argv[0]), int(argv[1])
    kill_step, kill_at = (argv[2], int(argv[3])) if len(argv) > 3 else (None, 0)
    rnd = random.Random(seed)
    seen: dict[str, int] = {}

    def on_step(step: str) -> None:
        seen[step] = seen.get(step, 0) + 1
        if step == kill_step and seen[step] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    slices = rnd.choice([1, 2, 3])
    timing = rnd.choice([SliceTiming.AT_ONCE, SliceTiming.PER_PRICE_UPDATE]) if slices > 1 else SliceTiming.AT_ONCE
    config = PaperBrokerConfig(fill_slices=slices, slice_timing=timing)
    paper = PaperBroker(config, state_path=workdir / "paper.json")
    if kill_step == "ambiguous" or (kill_step is not None and rnd.random() < 0.5):
        paper.faults.arm(rnd.choice([Fault.TIMEOUT_AFTER_ACCEPT, Fault.LOST_RESPONSE, Fault.LOST_REQUEST]))
    clock = Clock()
    ledger = Ledger.open(f"sqlite:///{workdir / 'ledger.db'}", for_trading=True)
    plugins = Plugins(load_entrypoints=False, env={})
    settings = Settings()
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=paper,
        settings=settings,
        plugins=plugins,
        calendar=TradingCalendar(),
        clock=clock,
        on_step=on_step,
    )
    clock.now = D1 + timedelta(hours=14)
    pipeline.recover()
    Reconciler(ledger, paper, settings.reconciliation, plugins).run(clock.now)

    def price(value: str, at: datetime) -> Decimal:
        try:
            paper.set_price("KO", Decimal(value), at)
        except ValueError as exc:  # a restarted script replays times the market has passed
            if "went backwards" not in str(exc):
                raise
        return Decimal(value)

    def buy(day: int, ref: str) -> None:
        clock.now = D1 + timedelta(days=day, hours=14, minutes=35)
        market = MarketSnapshot(price=paper.last_price("KO"), as_of=clock.now)
        signal_time = D1 + timedelta(days=day - 1, hours=21)
        sig = Signal(
            symbol="KO",
            side=Side.BUY,
            confidence=5,
            generated_at=signal_time,
            reference_price=Decimal(ref),
            source="crash",
        )
        pipeline.process_buy(sig, Pyramid, market)
        pipeline.apply_events()
        for minute in range(1, 4):  # later trades in the morning fill what is still working
            price(str(market.price), clock.now + timedelta(minutes=minute))
            pipeline.apply_events()

    price("60", D1 + timedelta(hours=14, minutes=30))
    buy(0, "60")
    price("61.5", D1 + timedelta(hours=21))
    price("62", D1 + timedelta(days=1, hours=14, minutes=30))
    buy(1, "61.5")
    clock.now = D1 + timedelta(days=1, hours=21)
    price("62.5", clock.now)
    pipeline.apply_events()
    pipeline.plan_exit(Signal(symbol="KO", side=Side.SELL, confidence=5, generated_at=clock.now, source="crash"))
    clock.now = D1 + timedelta(days=2, hours=14, minutes=40)
    current = price("63", D1 + timedelta(days=2, hours=14, minutes=36))
    pipeline.execute_due_exits({"KO": current})
    pipeline.apply_events()
    # The market trades on: slices still working fill, and their events arrive.
    for minute in range(1, 5):
        price("63", D1 + timedelta(days=2, hours=14, minutes=40 + minute))
        pipeline.apply_events()
    # Later cycles look up whatever is still unresolved (a lost request is given up on once
    # the grace period has passed; an exit it belonged to would be retried).
    clock.now = D1 + timedelta(days=2, hours=15)
    pipeline.settle_pending()
    pipeline.reconcile_if_due()
    ledger.close()


if __name__ == "__main__":
    main(sys.argv[1:])
