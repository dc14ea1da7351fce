"""The broker account as last seen."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from tradekit.domain.values import finite, to_utc, utc


@attrs.frozen(kw_only=True)
class AccountSnapshot:
    """Equity, buying power and the flags that forbid trading, at one moment.

    ``buying_power`` is the broker's figure as reported: it is negative in a margin deficit
    (Alpaca reports it so), and every buying decision reads a negative figure as no room at
    all. Selling never depends on it.
    """

    equity: Decimal = attrs.field(validator=finite)
    cash: Decimal = attrs.field(validator=finite)
    buying_power: Decimal = attrs.field(validator=finite)
    as_of: datetime = attrs.field(converter=to_utc, validator=utc)
    currency: str = "USD"
    trading_blocked: bool = False
    account_blocked: bool = False
    pattern_day_trader: bool = False
    fractional_trading: bool = True
