"""The market snapshot a buy decision is made on, built one way for the replay and live.

A queued buy is judged at a session's open from the symbol's *completed* bars (those of the
sessions before today) and the price now: how many completed bars passed since the last
entry, and the volatility of the returns up to yesterday's close. A replay hands over a
``History`` view of the series that ends at yesterday's bar; a live trader the bars its
feed returned. Both give the same numbers for the same bars.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import numpy as np

from tradekit.decision.context import MarketSnapshot
from tradekit.domain.market import Bar
from tradekit.domain.positions import Position
from tradekit.strategy.history import FloatColumn, History, indicator

VOLATILITY_LOOKBACK = 20


def volatility_column(bars: Sequence[Bar]) -> Sequence[float | None]:
    """Standard deviation of the 20 daily returns up to each bar's close, in percent (causal).

    The value at index ``i`` uses the closes of bars ``i-20 .. i``. A statistic for a regime
    filter, not money: computed in float (numpy, once per series, 8 bytes a bar) and handed
    to the decision as a Decimal rounded to 6 places.
    """
    out = np.full(len(bars), np.nan)
    if len(bars) > VOLATILITY_LOOKBACK:
        closes = np.array([float(b.close) for b in bars])
        returns = np.diff(closes) / closes[:-1]  # returns[k]: from close k to close k+1
        windows = np.lib.stride_tricks.sliding_window_view(returns, VOLATILITY_LOOKBACK)
        # windows[j] holds returns j .. j+19, i.e. closes j .. j+20: known at bar j+20's close.
        out[VOLATILITY_LOOKBACK:] = windows.std(axis=1, ddof=1)
    return FloatColumn(out)


def volatility_pct(completed: Sequence[Bar]) -> Decimal | None:
    """The volatility known at the close of the last completed bar (None with too few bars)."""
    if not completed:
        return None
    value = indicator(completed, ("volatility_pct", VOLATILITY_LOOKBACK), volatility_column)
    return None if value is None else Decimal(str(round(value * 100, 6)))


def bars_since(completed: Sequence[Bar], moment: datetime) -> int:
    """How many of the completed bars were stamped at or after ``moment``.

    An entry filled at a session's open is counted from that session's bar (stamped at its
    close), so the entry's own session counts as one bar once it has closed.
    """
    if isinstance(completed, History):
        return completed.count_since(moment)  # the whole series' times, bisected within the view
    return len(completed) - bisect.bisect_left(completed, moment, key=_time)


def market_snapshot(
    completed: Sequence[Bar] | None, price: Decimal | None, now: datetime, position: Position | None
) -> MarketSnapshot:
    """What a buy decision knows of the market: the price now and the completed bars' facts."""
    if not completed:
        return MarketSnapshot(price=price, as_of=now)
    return MarketSnapshot(
        price=price,
        as_of=now,
        volatility_pct=volatility_pct(completed),
        bars_since_last_entry=None if position is None else bars_since(completed, position.last_entry_time),
    )


def _time(bar: Bar) -> datetime:
    return bar.time
