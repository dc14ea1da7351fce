"""Records the ledger stores and returns (beyond the domain model)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import attrs

from tradekit.domain.orders import OrderRequest, OrderStatus, OrderType, TimeInForce
from tradekit.domain.signals import Side
from tradekit.domain.values import optional_positive, to_utc, utc
from tradekit.exits.intent import ExitState

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
    time_in_force: TimeInForce = TimeInForce.DAY
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
            time_in_force=self.time_in_force,
        )


class FillResult(StrEnum):
    """What recording a fill did to the ledger."""

    APPLIED = "applied"  # a fill of one of our orders: the position moved
    DUPLICATE = "duplicate"  # its execution id was recorded before: nothing changed
    NOT_OURS = "not_ours"  # an order tradekit did not place: kept, reconciliation handles it
    UNAPPLIED = "unapplied"  # ours, but not as expected: kept, its symbol is re-derived from the broker


@attrs.frozen(kw_only=True)
class UnappliedFill:
    """A fill the ledger recorded but could not apply to a position as expected.

    It reduces more than the ledger holds (a position reconciliation already closed), or it
    belongs to an order the ledger had given up on (not found, refused). Its symbol is
    blocked until reconciliation re-derives it from the broker.
    """

    execution_id: str
    client_order_id: str
    symbol: str
    reason: str
    recorded_at: datetime = attrs.field(converter=to_utc, validator=utc)


@attrs.frozen(kw_only=True)
class OrderEventRecord:
    """One status an order went through, as the ledger recorded it (the broker's or tradekit's)."""

    client_order_id: str
    status: LedgerOrderStatus
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    detail: str = ""
    broker_order_id: str | None = None
    filled_qty: Decimal | None = None
    filled_avg_price: Decimal | None = None


@attrs.frozen(kw_only=True)
class OrderOutcome:
    """What became of one order an approved decision made: sent or not, and how it ended."""

    client_order_id: str
    qty: Decimal | None
    notional: Decimal | None
    status: LedgerOrderStatus | None
    filled_qty: Decimal
    detail: str  # the last recorded reason (a refusal, why it was not sent)
    replaces: str | None = None  # a whole-share fallback names the order it replaced

    def describe(self) -> str:
        asked = self.qty if self.qty is not None else f"${self.notional}"
        status = self.status.value if self.status is not None else "not recorded"
        text = f"{self.client_order_id} ({asked}): {status}"
        if self.filled_qty:
            text += f", filled {self.filled_qty}"
        if self.detail and self.status is not LedgerOrderStatus.FILLED:
            text += f" — {self.detail}"
        if self.replaces:
            text = f"whole-share fallback {text}"
        return text


def describe_outcome(orders: Sequence[OrderOutcome]) -> str:
    """One line: the orders a decision made and how each ended ("" when it made none)."""
    return "; ".join(o.describe() for o in orders)


@attrs.frozen(kw_only=True)
class ExitTransition:
    """One step of an exit intent's life: the state it moved to, when, and why."""

    intent_id: str
    state: ExitState
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    note: str
    client_order_id: str | None = None
    limit_price: Decimal | None = None
    window_opens_at: datetime | None = None
    window_closes_at: datetime | None = None


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
    """A buy decision as persisted: its row's columns and its full trace.

    ``stored_summary`` is the one-line summary as the row holds it: ledgers before schema 5
    stored it, later ones render it from the trace when read (``summary``).
    """

    decision_id: str
    symbol: str
    strategy: str
    signal_id: str
    action: str
    reasons: tuple[str, ...]
    trace: str
    evaluated_at: datetime = attrs.field(converter=to_utc, validator=utc)
    stored_summary: str = ""

    @property
    def summary(self) -> str:
        """The decision on one line (``BuyDecision.one_line``). A row whose trace cannot be
        read still lists, saying so (``explain`` names the error)."""
        if self.stored_summary:
            return self.stored_summary
        try:
            return self.summary_from(self.document())
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:  # TraceError is a ValueError
            return f"{self.action.upper()} {self.symbol} [{self.strategy}] — its stored trace cannot be read: {exc}"

    def summary_from(self, document: Mapping[str, Any]) -> str:
        """``summary``, given this row's ``document()`` already read."""
        from tradekit.decision.trace import summary_from_document

        return self.stored_summary or summary_from_document(document)

    def _row(self) -> dict[str, str]:
        # What a format-3 trace leaves to its row (tradekit.decision.trace.ROW_FIELDS).
        return {
            "decision_id": self.decision_id,
            "symbol": self.symbol,
            "strategy": self.strategy,
            "signal_id": self.signal_id,
            "action": self.action,
            "evaluated_at": self.evaluated_at.isoformat(),
        }

    def document(self) -> dict[str, Any]:
        """The full trace as a mapping (checks as objects), whatever format it was stored in."""
        from tradekit.decision.trace import decode_trace

        return decode_trace(self.trace, self._row())

    def decision(self) -> BuyDecision:
        """The ``BuyDecision`` this row records (rebuilt at each call: rows are read in bulk)."""
        from tradekit.decision.trace import decision_from_trace

        return decision_from_trace(self.trace, self._row())


@attrs.frozen(kw_only=True)
class EquityPoint:
    """The account's equity and cash at one moment (a replay records one at each close)."""

    time: datetime = attrs.field(converter=to_utc, validator=utc)
    equity: Decimal
    cash: Decimal


@attrs.frozen(kw_only=True)
class PositionEventRecord:
    """One stored change of exposure, as reports read it (``lifecycle`` numbers a symbol's
    positions from 1: a position runs from its first entry to flat)."""

    symbol: str
    lifecycle: int
    kind: str  # entry, backfill, reduction, external_close
    qty: Decimal
    price: Decimal | None
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    strategy: str | None = None
    client_order_id: str | None = None
    execution_id: str | None = None
    reason: str = ""


@attrs.frozen(kw_only=True)
class LifeEvent:
    """A position event with what the trade list shows beside it, read in the same query:
    its fill's commission, and its order's purpose, decision and exit intent (with that
    exit intent's reason). Each is None when the ledger has no such row."""

    event: PositionEventRecord
    commission: Decimal | None
    purpose: IntentPurpose | None
    decision_id: str | None
    exit_intent_id: str | None
    exit_reason: str | None


@attrs.frozen(kw_only=True)
class OrderCounts:
    """Ledger-derived counters for one symbol on one trading day."""

    orders_today: int
    last_order_at: datetime | None
    acted_on_symbol_today: bool
