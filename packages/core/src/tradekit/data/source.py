"""Where bars come from: the shipped files, or a broker's market-data API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from tradekit.domain.market import Bar


@runtime_checkable
class BarSource(Protocol):
    """Daily bars for symbols over a period (a broker plugin may implement this too)."""

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """Return each symbol's bars with ``start <= time <= end``, oldest first.

        A daily bar's ``time`` is no earlier than its session's close (the close itself, or a
        fixed time of day such as 16:00 New York even on a half day), so a session still in
        progress at ``end`` has no bar yet: a live trader relies on that to run its strategy
        on completed sessions only.
        """
        ...
