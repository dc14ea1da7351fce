"""Indicator helpers over a strategy's bar history.

Each is a causal column from ``tradekit.strategy.history``: on a replay's ``History`` it is
computed once per series and looked up per bar; on a plain list of bars it is computed over
that list.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache

from tradekit.domain.market import Bar
from tradekit.strategy.history import indicator, prior_high_column, prior_low_column, sma_column

_sma = cache(sma_column)
_high = cache(prior_high_column)
_low = cache(prior_low_column)


def highest_close(history: Sequence[Bar], lookback: int) -> Decimal | None:
    """Highest close of the ``lookback`` bars before the current one."""
    return indicator(history, ("prior_high", lookback), _high(lookback))


def lowest_close(history: Sequence[Bar], lookback: int) -> Decimal | None:
    """Lowest close of the ``lookback`` bars before the current one."""
    return indicator(history, ("prior_low", lookback), _low(lookback))


def sma(history: Sequence[Bar], length: int) -> Decimal | None:
    """Simple moving average of the last ``length`` closes, current bar included."""
    return indicator(history, ("sma", length), _sma(length))
