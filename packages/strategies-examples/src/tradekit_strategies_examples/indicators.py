"""Small indicator helpers over a strategy's bar history."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tradekit.domain.market import Bar


def highest_close(history: Sequence[Bar], lookback: int) -> Decimal | None:
    """Highest close of the ``lookback`` bars before the current one."""
    if len(history) <= lookback:
        return None
    return max(b.close for b in history[-lookback - 1 : -1])


def lowest_close(history: Sequence[Bar], lookback: int) -> Decimal | None:
    """Lowest close of the ``lookback`` bars before the current one."""
    if len(history) <= lookback:
        return None
    return min(b.close for b in history[-lookback - 1 : -1])


def sma(history: Sequence[Bar], length: int) -> Decimal | None:
    """Simple moving average of the last ``length`` closes, current bar included."""
    if len(history) < length:
        return None
    return sum((b.close for b in history[-length:]), Decimal(0)) / length
