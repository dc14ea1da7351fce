"""Orders as requested, as the broker reports them, and their fills."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import attrs

from tradekit.domain.signals import Side
from tradekit.domain.values import (
    ZERO,
    non_negative,
    optional_finite,
    optional_positive,
    optional_to_utc,
    optional_utc,
    positive,
    to_utc,
    utc,
)

MAX_CLIENT_ORDER_ID_LEN = 128


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    CLS = "cls"  # market on close: executes at the session's closing price


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


def _client_order_id(_inst: object, _attr: object, value: str) -> None:
    if not value or len(value) > MAX_CLIENT_ORDER_ID_LEN:
        raise ValueError(f"client_order_id must be 1..{MAX_CLIENT_ORDER_ID_LEN} characters, got {len(value)}")


@attrs.frozen(kw_only=True)
class OrderRequest:
    """An order to send: exactly one of ``qty`` or ``notional``; a limit price for limits."""

    client_order_id: str = attrs.field(validator=_client_order_id)
    symbol: str
    side: Side
    order_type: OrderType = OrderType.MARKET
    qty: Decimal | None = attrs.field(default=None, validator=optional_positive)
    notional: Decimal | None = attrs.field(default=None, validator=optional_positive)
    limit_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    time_in_force: TimeInForce = TimeInForce.DAY

    def __attrs_post_init__(self) -> None:
        if (self.qty is None) == (self.notional is None):
            raise ValueError(f"order {self.client_order_id}: give exactly one of qty or notional")
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError(f"order {self.client_order_id}: a limit order needs limit_price")
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError(f"order {self.client_order_id}: a market order takes no limit_price")

    @property
    def is_fractional(self) -> bool:
        return self.notional is not None or (self.qty is not None and self.qty != self.qty.to_integral_value())


@attrs.frozen(kw_only=True)
class Order:
    """An order as the broker reports it."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    qty: Decimal | None = attrs.field(default=None, validator=optional_positive)
    notional: Decimal | None = attrs.field(default=None, validator=optional_positive)
    limit_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    filled_qty: Decimal = attrs.field(default=ZERO, validator=non_negative)
    filled_avg_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    submitted_at: datetime = attrs.field(converter=to_utc, validator=utc)
    updated_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    reject_reason: str = ""


@attrs.frozen(kw_only=True)
class Fill:
    """One execution: ``qty`` is this execution's own quantity, never a cumulative total."""

    execution_id: str = attrs.field(validator=attrs.validators.min_len(1))
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: Decimal = attrs.field(validator=positive)
    price: Decimal = attrs.field(validator=positive)
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    commission: Decimal = attrs.field(default=ZERO, validator=non_negative)
    position_qty_after: Decimal | None = attrs.field(default=None, validator=optional_finite)

    @property
    def notional(self) -> Decimal:
        return self.qty * self.price
