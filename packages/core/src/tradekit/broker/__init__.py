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
from tradekit.broker.paper import (
    ArmedFault,
    Fault,
    FaultInjector,
    PaperBroker,
    PaperBrokerConfig,
    PaperRejectCode,
    PaperStateError,
    ReceiptOutcome,
    ReceivedOrder,
    SessionClock,
    SliceTiming,
    weekday_session_clock,
)
from tradekit.broker.protocol import AssetInfo, Broker, MarketClock, OrderEvent, OrderEventKind
from tradekit.broker.spec import BrokerFactory, BrokerSpec

__all__ = [
    "AmbiguousSubmission",
    "ArmedFault",
    "AssetInfo",
    "Broker",
    "BrokerDataError",
    "BrokerError",
    "BrokerFactory",
    "BrokerSpec",
    "BrokerUnavailable",
    "DuplicateClientOrderId",
    "Fault",
    "FaultInjector",
    "FractionalNotSupported",
    "MarketClock",
    "OrderEvent",
    "OrderEventKind",
    "OrderRejected",
    "PaperBroker",
    "PaperBrokerConfig",
    "PaperRejectCode",
    "PaperStateError",
    "ReceiptOutcome",
    "ReceivedOrder",
    "SessionClock",
    "SliceTiming",
    "weekday_session_clock",
]
