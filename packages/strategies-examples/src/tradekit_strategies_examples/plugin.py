"""The entry-point plugin: registers the example strategies with tradekit."""

from __future__ import annotations

from collections.abc import Callable

from tradekit import hookimpl
from tradekit.strategy import Strategy
from tradekit_strategies_examples.average_down import AverageDown
from tradekit_strategies_examples.breakout import SingleEntryBreakout
from tradekit_strategies_examples.pyramid import PyramidBreakout
from tradekit_strategies_examples.tiered import TieredMomentum


@hookimpl
def register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    register(SingleEntryBreakout)
    register(PyramidBreakout)
    register(AverageDown)
    register(TieredMomentum)
