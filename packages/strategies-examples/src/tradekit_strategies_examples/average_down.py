"""Averaging down into a pullback within an uptrend, with a risk budget as the brake."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from tradekit.domain.signals import Side, Signal
from tradekit.strategy import PriceStructure, Strategy, StrategyScalingPolicy, StrategyView
from tradekit_strategies_examples.breakout import make_signal
from tradekit_strategies_examples.indicators import sma

BAND = Decimal("0.95")


class AverageDown(Strategy):
    """Buy a close 5% under the 20-day average while the 50-day average is above the 200-day;
    the policy allows up to three entries, each at least 4% under the last one, and stops
    adding once 1% of equity is at risk (10% stop distance). Exit at the 20-day average."""

    name = "average-down"
    description = "buys pullbacks in an uptrend, averaging down 4% apart, risk-budgeted"
    scaling_policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=3,
        min_time_between_entries=timedelta(days=2),
        price_structure=PriceStructure.AVERAGE_DOWN,
        price_step_pct=Decimal(4),
        max_allocation_pct=Decimal(5),
        risk_budget_pct=Decimal(1),
        stop_distance_pct=Decimal(10),
        min_confidence=5,
        min_entry_confidence=4,
    )

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        mid = sma(view.history, 20)
        trend_fast, trend_slow = sma(view.history, 50), sma(view.history, 200)
        if mid is None or trend_fast is None or trend_slow is None:
            return []
        if view.position is not None and bar.close >= mid:
            return [make_signal(self.name, view, Side.SELL, 5, f"close {bar.close} back at the 20-day average")]
        if trend_fast > trend_slow and bar.close < mid * BAND:
            confidence = 5 if view.position is not None else 4
            return [make_signal(self.name, view, Side.BUY, confidence, f"pullback: close {bar.close} < 95% of SMA20")]
        return []
