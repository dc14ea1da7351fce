"""Example tradekit strategies."""

from tradekit_strategies_examples.average_down import AverageDown
from tradekit_strategies_examples.breakout import SingleEntryBreakout
from tradekit_strategies_examples.pyramid import PyramidBreakout
from tradekit_strategies_examples.tiered import TieredMomentum

__all__ = ["AverageDown", "PyramidBreakout", "SingleEntryBreakout", "TieredMomentum"]
