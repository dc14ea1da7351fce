"""The broker account as last seen."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from tradekit.domain.values import finite, non_negative, to_utc, utc


@attrs.frozen(kw_only=True)
class AccountSnapshot:
    """Equity, buying power and the flags that forbid trading, at one moment."""

    equity: Decimal = attrs.field(validator=finite)
    cash: Decimal = attrs.field(validator=finite)
    buying_power: Decimal = attrs.field(validator=non_negative)
    as_of: datetime = attrs.field(converter=to_utc, validator=utc)
    currency: str = "USD"
    trading_blocked: bool = False
    account_blocked: bool = False
    pattern_day_trader: bool = False
    fractional_trading: bool = True
