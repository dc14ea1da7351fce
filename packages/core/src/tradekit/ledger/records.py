"""Records the ledger stores and returns (beyond the domain model)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import attrs

from tradekit.domain.orders import OrderRequest, OrderStatus, OrderType, TimeInForce
from tradekit.domain.signals import Side
from tradekit.domain.values import optional_positive, to_utc, utc

if TYPE_CHECKING:
    from tradekit.decision.verdict import BuyDecision


class IntentPurpose(StrEnum):
    ENTRY = "entry"
    SCALE_IN = "scale_in"
    EXIT = "exit"


class LedgerOrderStatus(StrEnum):
    """Order statuses as the ledger records them: the broker's, plus tradekit's own."""

    SUBMITTING = "submitting"  # written just before the request leaves
    AMBIGUOUS = "ambiguous"  # the request may or may not have reached the broker
    NOT_FOUND = "not_found"  # looked up after an ambiguous outcome: the broker has no such order
    NOT_SENT = "not_sent"  # the trading-state guard refused it at the last moment: never sent
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @classmethod
    def from_broker(cls, status: OrderStatus) -> LedgerOrderStatus:
        return cls(status.value)

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        LedgerOrderStatus.NOT_FOUND,
        LedgerOrderStatus.NOT_SENT,
        LedgerOrderStatus.FILLED,
        LedgerOrderStatus.CANCELED,
        LedgerOrderStatus.REJECTED,
        LedgerOrderStatus.EXPIRED,
    }
)


def client_order_id_for(intent_key: str) -> str:
    """The deterministic client order id of an intent: 35 characters, safe on every venue.

    Binance and Bybit allow 36 characters, Alpaca 128; a hash keeps it short and stable.
    """
    return "tk-" + hashlib.sha256(intent_key.encode()).hexdigest()[:32]


@attrs.frozen(kw_only=True)
class OrderIntent:
    """An order tradekit has decided to send, recorded before it is sent."""

    intent_key: str
    symbol: str
    side: Side
    purpose: IntentPurpose
    created_at: datetime = attrs.field(converter=to_utc, validator=utc)
    strategy: str | None = None
    order_type: OrderType = OrderType.MARKET
    qty: Decimal | None = attrs.field(default=None, validator=optional_positive)
    notional: Decimal | None = attrs.field(default=None, validator=optional_positive)
    limit_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    decision_id: str | None = None
    exit_intent_id: str | None = None
    replaces: str | None = None
    confidence: int | None = None
    client_order_id: str = attrs.field()

    @client_order_id.default
    def _derive(self) -> str:
        return client_order_id_for(self.intent_key)

    def to_request(self) -> OrderRequest:
        return OrderRequest(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            qty=self.qty,
            notional=self.notional,
            limit_price=self.limit_price,
            time_in_force=TimeInForce.DAY,
        )


@attrs.frozen(kw_only=True)
class IntentState:
    """An intent with the latest status the ledger knows for its order."""

    intent: OrderIntent
    status: LedgerOrderStatus | None
    broker_order_id: str | None
    filled_qty: Decimal

    @property
    def is_pending(self) -> bool:
        return self.status is None or not self.status.is_terminal


@attrs.frozen(kw_only=True)
class StoredDecision:
    """A buy decision as persisted: its summary and its full trace (JSON)."""

    decision_id: str
    symbol: str
    strategy: str
    signal_id: str
    action: str
    reasons: tuple[str, ...]
    summary: str
    trace: str
    evaluated_at: datetime = attrs.field(converter=to_utc, validator=utc)

    def document(self) -> dict[str, Any]:
        """The full trace as a mapping (checks as objects), whatever format it was stored in."""
        from tradekit.decision.trace import decode_trace

        return decode_trace(self.trace)

    def decision(self) -> BuyDecision:
        """The ``BuyDecision`` this row records."""
        from tradekit.decision.trace import decision_from_trace

        return decision_from_trace(self.trace)


@attrs.frozen(kw_only=True)
class OrderCounts:
    """Ledger-derived counters for one symbol on one trading day."""

    orders_today: int
    last_order_at: datetime | None
    acted_on_symbol_today: bool
