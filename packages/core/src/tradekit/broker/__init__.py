"""The broker interface that every broker and venue plugin implements."""

from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerDataError,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    FractionalNotSupported,
    OrderRejected,
)
from tradekit.broker.protocol import AssetInfo, Broker, MarketClock, OrderEvent, OrderEventKind
from tradekit.broker.spec import BrokerFactory, BrokerSpec

__all__ = [
    "AmbiguousSubmission",
    "AssetInfo",
    "Broker",
    "BrokerDataError",
    "BrokerError",
    "BrokerFactory",
    "BrokerSpec",
    "BrokerUnavailable",
    "DuplicateClientOrderId",
    "FractionalNotSupported",
    "MarketClock",
    "OrderEvent",
    "OrderEventKind",
    "OrderRejected",
]
