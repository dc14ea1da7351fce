"""tradekit's domain model: frozen attrs records, Decimal money, UTC times."""

from tradekit.domain.account import AccountSnapshot
from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType, TimeInForce
from tradekit.domain.positions import (
    BrokerPosition,
    EntryOrigin,
    Position,
    PositionEntry,
    PositionReduction,
)
from tradekit.domain.signals import Side, Signal, Urgency
from tradekit.domain.values import InvalidValueError

__all__ = [
    "AccountSnapshot",
    "Bar",
    "BrokerPosition",
    "EntryOrigin",
    "Fill",
    "InvalidValueError",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "PositionEntry",
    "PositionReduction",
    "Side",
    "Signal",
    "TimeInForce",
    "Urgency",
]
