"""A classic single-entry 20-day breakout: no scaling policy, so it never scales in."""

from __future__ import annotations

from collections.abc import Sequence

from tradekit.domain.signals import Side, Signal
from tradekit.strategy import Strategy, StrategyView
from tradekit_strategies_examples.indicators import highest_close, lowest_close

ENTRY_LOOKBACK = 20
EXIT_LOOKBACK = 10


class SingleEntryBreakout(Strategy):
    """Buy a close above the prior 20-day high; sell a close below the prior 10-day low.

    It declares no ``scaling_policy``: repeated breakouts while it holds the position are
    BLOCKed by tradekit's default policy (one entry per position).
    """

    name = "breakout"
    description = "single-entry 20-day breakout, 10-day low exit (no scaling policy)"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        high = highest_close(view.history, ENTRY_LOOKBACK)
        low = lowest_close(view.history, EXIT_LOOKBACK)
        if view.position is not None and low is not None and bar.close < low:
            return [
                make_signal(
                    self.name,
                    view,
                    Side.SELL,
                    5,
                    f"close {bar.close} < {EXIT_LOOKBACK}-day low {low}",
                )
            ]
        if high is not None and bar.close > high:
            return [
                make_signal(
                    self.name,
                    view,
                    Side.BUY,
                    4,
                    f"close {bar.close} > {ENTRY_LOOKBACK}-day high {high}",
                )
            ]
        return []


def make_signal(source: str, view: StrategyView, side: Side, confidence: int, reason: str) -> Signal:
    return Signal(
        symbol=view.symbol,
        side=side,
        confidence=confidence,
        generated_at=view.bar.time,
        reference_price=view.bar.close,
        source=source,
        reason=reason,
    )
