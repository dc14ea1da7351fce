"""Example tradekit strategies."""

from tradekit_strategies_examples.breakout import SingleEntryBreakout
from tradekit_strategies_examples.pyramid import PyramidBreakout

__all__ = ["PyramidBreakout", "SingleEntryBreakout"]
