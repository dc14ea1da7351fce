"""Pyramiding into strength: the breakout entry, plus up to three add-ons as it rises."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from tradekit.domain.signals import Side, Signal
from tradekit.strategy import PriceStructure, Strategy, StrategyScalingPolicy, StrategyView
from tradekit_strategies_examples.breakout import ENTRY_LOOKBACK, make_signal
from tradekit_strategies_examples.indicators import highest_close, sma

TREND_LENGTH = 50
EXIT_LENGTH = 20


class PyramidBreakout(Strategy):
    """Enter on a 20-day breakout; add while the trend holds and price keeps rising.

    Add-on signals carry confidence 5 only when the close is above both moving averages and
    the 20-day average is above the 50-day one; the policy (and the account's
    add-on threshold) turns weaker add-on signals into SKIPs. Exits when the close falls
    below the 20-day average.
    """

    name = "pyramid"
    description = "20-day breakout that pyramids up to 4 entries, 3% apart, on strength"
    scaling_policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=4,
        min_time_between_entries=timedelta(days=1),
        min_bars_between_entries=3,
        price_structure=PriceStructure.PYRAMID,
        price_step_pct=Decimal(3),
        max_allocation_pct=Decimal(5),
        min_confidence=5,
        min_entry_confidence=3,
    )

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        fast = sma(view.history, EXIT_LENGTH)
        slow = sma(view.history, TREND_LENGTH)
        if view.position is not None:
            if fast is not None and bar.close < fast:
                return [
                    make_signal(
                        self.name,
                        view,
                        Side.SELL,
                        5,
                        f"close {bar.close} < {EXIT_LENGTH}-day average",
                    )
                ]
            if fast is not None and slow is not None and bar.close > fast > slow:
                return [make_signal(self.name, view, Side.BUY, 5, "trend intact: close > SMA20 > SMA50")]
            return []
        high = highest_close(view.history, ENTRY_LOOKBACK)
        if high is not None and bar.close > high:
            strong = slow is not None and bar.close > slow
            return [make_signal(self.name, view, Side.BUY, 4 if strong else 3, f"breakout above {high}")]
        return []
