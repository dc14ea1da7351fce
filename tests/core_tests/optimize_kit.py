"""A strategy with tunable parameters for the optimize tests, registered as a plugin, and a
worker process running it (``python -m core_tests.optimize_kit --study NAME``, the storage
URL in ``TRADEKIT_OPTIMIZE_STORAGE``) for the multi-process tests. Not a test module itself.

``Gated`` can hold one trial deterministically: with ``OPTIMIZE_KIT_GATE`` naming a
directory, the first replay with ``fast == OPTIMIZE_KIT_HOLD`` (in any process) creates
``held`` there (holding its pid) and waits for ``release`` (at most a minute, so a broken
test cannot hang); a later replay with the same parameters (the retry) finds ``held``
and runs straight through.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from tradekit import Strategy, StrategyScalingPolicy, StrategyView, hookimpl
from tradekit.domain import Side, Signal
from tradekit.optimize import worker
from tradekit.plugins import Plugins
from tradekit.strategy import PriceStructure
from tradekit.strategy.history import indicator, sma_column

GATE_ENV = "OPTIMIZE_KIT_GATE"
HOLD_ENV = "OPTIMIZE_KIT_HOLD"
HOLD_LIMIT_SECONDS = 60.0


class Gated(Strategy):
    """Buys above its fast average, adds while it stays above, sells below."""

    name = "optimize-kit"
    fast = 10
    search_space: ClassVar[dict[str, Any]] = {"strategy.fast": {"low": 5, "high": 20, "step": 5}}
    scaling_policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=3,
        min_bars_between_entries=2,
        price_structure=PriceStructure.PYRAMID,
        price_step_pct=Decimal(1),
        max_allocation_pct=Decimal(20),
    )

    def __init__(self) -> None:
        self._checked_gate = False

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        if not self._checked_gate:
            self._checked_gate = True
            hold_at_the_gate(self.fast)
        bar = view.bar
        average = indicator(view.history, ("sma", self.fast), sma_column(self.fast))
        if average is None:
            return []
        side = Side.BUY if bar.close > average else Side.SELL
        if side is Side.SELL and view.position is None:
            return []
        return [
            Signal(
                symbol=view.symbol,
                side=side,
                confidence=5,
                generated_at=bar.time,
                reference_price=bar.close,
                source=self.name,
                reason=f"close vs SMA{self.fast}",
            )
        ]


def hold_at_the_gate(fast: int) -> None:
    gate, hold = os.environ.get(GATE_ENV), os.environ.get(HOLD_ENV)
    if not gate or hold is None or int(hold) != fast:
        return
    # ``held`` appears with the pid already in it (written aside, then linked: the link is
    # both atomic and exclusive), so the test never reads it half written.
    aside = Path(gate) / f"held.{os.getpid()}"
    aside.write_text(str(os.getpid()))
    try:
        os.link(aside, Path(gate) / "held")
    except FileExistsError:
        return  # the retry of the held trial: run through
    finally:
        aside.unlink()
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while not (Path(gate) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class KitPlugin:
    @staticmethod
    @hookimpl
    def register_strategies(register: Callable[[type[Strategy]], None]) -> None:
        register(Gated)


def kit_plugins() -> Plugins:
    return Plugins(load_entrypoints=False, env={}, extra=[("optimize-kit", KitPlugin())])


if __name__ == "__main__":
    sys.exit(worker.main(sys.argv[1:], plugins=kit_plugins()))
