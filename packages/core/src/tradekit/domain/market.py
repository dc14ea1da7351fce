"""Market data: daily (or intraday) bars."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from tradekit.domain.values import non_negative, positive, to_utc, utc


@attrs.frozen(kw_only=True)
class Bar:
    """One OHLCV bar; ``time`` is the bar's close time in UTC."""

    symbol: str
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    open: Decimal = attrs.field(validator=positive)
    high: Decimal = attrs.field(validator=positive)
    low: Decimal = attrs.field(validator=positive)
    close: Decimal = attrs.field(validator=positive)
    volume: Decimal = attrs.field(validator=non_negative)

    def __attrs_post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"bar {self.symbol} {self.time:%Y-%m-%d}: high {self.high} < low {self.low}")
