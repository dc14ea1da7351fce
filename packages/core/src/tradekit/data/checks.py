"""What makes a bar, or a symbol's series of bars, unfit to trade on.

One set of rules for every way bars come in: a bar file's rows (``bar_files``), a broker
plugin's market data (the Alpaca plugin's bars), and the series a live trader hands its
strategy (``tradekit.execution.live``), so a bar a replay refuses is one a live run refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from tradekit.domain.market import Bar


def ohlc_problem(open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> str | None:
    """What makes these four prices impossible for one bar, or None: a high below the open,
    the close or the low, or a low above the open or the close."""
    if high < max(open_, close, low):
        which, value = ("close", close) if high < close else ("open", open_) if high < open_ else ("low", low)
        return f"high {high} is below the {which} {value}"
    if low > min(open_, close):
        which, value = ("close", close) if low > close else ("open", open_)
        return f"low {low} is above the {which} {value}"
    return None


def series_problem(symbol: str, bars: Sequence[Bar], now: datetime) -> str | None:
    """What makes ``bars`` unfit to be ``symbol``'s history at ``now``, or None.

    The series must be that symbol's, oldest first, one bar per time, none stamped after
    ``now`` (a bar is stamped at its session's close, so a later one is of a session still
    trading, or from a clock that is wrong), every bar's open and close within its range.
    """
    previous: Bar | None = None
    for bar in bars:
        where = f"bar of {symbol} at {bar.time.isoformat()}"
        if bar.symbol != symbol:
            return f"{where}: the bar is {bar.symbol}'s"
        if bar.time > now:
            return f"{where}: stamped after now ({now.isoformat()})"
        if previous is not None and bar.time <= previous.time:
            order = "a second bar for that time" if bar.time == previous.time else "out of time order"
            return f"{where}: {order}, after the bar at {previous.time.isoformat()}"
        problem = ohlc_problem(bar.open, bar.high, bar.low, bar.close)
        if problem is not None:
            return f"{where}: {problem}"
        previous = bar
    return None
