"""Momentum across allocation tiers, trading only what the scanner ranks highest."""

from __future__ import annotations

from collections.abc import Sequence

from tradekit.domain.signals import Side, Signal
from tradekit.strategy import Strategy, StrategyView
from tradekit_strategies_examples.breakout import make_signal
from tradekit_strategies_examples.indicators import sma


class TieredMomentum(Strategy):
    """Hold symbols trading above their 50-day average; exit below it.

    Meant to run with ``[allocation] tiered = true`` and ``[scanner] enabled = true``: the
    sizer gives each symbol its tier's share, tier caps stop drift, and only the scanner's
    candidates (plus baseline symbols) are bought. Single entry: no scaling policy.
    """

    name = "tiered-momentum"
    description = "50-day trend following over allocation tiers, scanner candidates only"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        trend = sma(view.history, 50)
        if trend is None:
            return []
        if view.position is not None:
            if bar.close < trend:
                return [make_signal(self.name, view, Side.SELL, 5, f"close {bar.close} < SMA50 {trend:.4f}")]
            return []
        if bar.close > trend:
            return [make_signal(self.name, view, Side.BUY, 4, f"close {bar.close} > SMA50 {trend:.4f}")]
        return []
