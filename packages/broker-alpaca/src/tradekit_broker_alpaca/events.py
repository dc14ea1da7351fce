"""Turn Alpaca's trade updates and polled order states into tradekit order events, each execution once.

An execution is named by its order and the order's cumulative filled quantity after it
(``providers.execution_id_for``), which both the ``trade_updates`` stream (``order.filled_qty``)
and the FILL account activities (``cum_qty``) report. So:

- a duplicated stream message has the same id and is dropped;
- out-of-order messages carry different ids, each execution counts once, in any order;
- an execution the stream never delivered is found by polling the order (its cumulative
  ``filled_qty`` is ahead of what was reported) and read from the account activities with
  the id the stream would have given it, so a late stream copy is still a duplicate;
- nothing is ever invented: quantity the activities do not show yet stays missing and is
  asked for again on the next poll, rather than synthesized in one lump that a later,
  finer report could count a second time.

Each fill's ``position_qty`` (the position after it) is checked against the previous fill in
that symbol; a mismatch means something moved the position unseen (a missed fill, a trade
by hand), is logged, kept in ``position_mismatches``, and asks for a recovery poll.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from tradekit.broker.errors import BrokerDataError
from tradekit.broker.protocol import OrderEvent, OrderEventKind
from tradekit.domain.orders import Fill, Order, OrderStatus
from tradekit.domain.signals import Side
from tradekit.domain.values import ZERO, to_utc, utc
from tradekit_broker_alpaca.providers import (
    event_kind_from_alpaca,
    fill_from_alpaca_trade_update,
    order_from_alpaca,
)

log = logging.getLogger(__name__)

_FILL_KINDS = frozenset({OrderEventKind.PARTIAL_FILL, OrderEventKind.FILL})
_TERMINAL_KINDS = {
    OrderStatus.CANCELED: OrderEventKind.CANCELED,
    OrderStatus.EXPIRED: OrderEventKind.EXPIRED,
    OrderStatus.REJECTED: OrderEventKind.REJECTED,
}


@attrs.frozen(kw_only=True)
class PositionMismatch:
    """A fill whose reported position does not follow from the previous fill in that symbol."""

    symbol: str
    execution_id: str
    expected_qty: Decimal
    reported_qty: Decimal
    time: datetime = attrs.field(converter=to_utc, validator=utc)


@attrs.frozen(kw_only=True)
class RecoveredExecution:
    """One execution read back from Alpaca, with the order's filled quantity after it."""

    cumulative_qty: Decimal
    fill: Fill


@attrs.define
class _OrderTrack:
    client_order_id: str
    symbol: str
    submitted_at: datetime
    status: OrderStatus
    updated_at: datetime | None
    filled_qty: Decimal = ZERO
    reported: dict[str, Decimal] = attrs.Factory(dict)
    accepted_reported: bool = False
    terminal_reported: bool = False

    @property
    def reported_qty(self) -> Decimal:
        return sum(self.reported.values(), ZERO)

    @property
    def missing_qty(self) -> Decimal:
        return self.filled_qty - self.reported_qty

    @property
    def is_settled(self) -> bool:
        """Nothing more can happen to it and every execution was reported."""
        return self.status.is_terminal and self.missing_qty <= 0


class OrderEventTracker:
    """Remember what was reported per order; emit only what is new. Not thread-safe."""

    def __init__(self) -> None:
        self._orders: dict[str, _OrderTrack] = {}
        self._positions: dict[str, Decimal] = {}
        self._mismatches: list[PositionMismatch] = []
        self.recovery_requested = False

    # ------------------------------------------------------------------ queries

    @property
    def position_mismatches(self) -> tuple[PositionMismatch, ...]:
        return tuple(self._mismatches)

    def unsettled_order_ids(self) -> set[str]:
        """Broker ids of tracked orders that may still fill or still miss reported executions."""
        return {order_id for order_id, track in self._orders.items() if not track.is_settled}

    def missing_qty(self, order: Order) -> Decimal:
        """Filled quantity of ``order`` not yet reported as executions."""
        track = self._orders.get(order.broker_order_id)
        reported = track.reported_qty if track is not None else ZERO
        return order.filled_qty - reported

    def request_recovery(self) -> None:
        self.recovery_requested = True

    # ------------------------------------------------------------------ updates

    def track(self, order: Order) -> None:
        """Start following an order (e.g. one just submitted) so a gap in the stream is noticed."""
        self._track(order)

    def on_trade_update(self, update: Mapping[str, Any]) -> list[OrderEvent]:
        """Return the events one ``trade_updates`` message adds (none for a repeat)."""
        event = update.get("event")
        if not isinstance(event, str):
            raise BrokerDataError(f"Alpaca trade update: field 'event' is missing or not a string: {event!r}")
        raw_order = update.get("order")
        if not isinstance(raw_order, Mapping):
            raise BrokerDataError(f"Alpaca trade update ({event}): field 'order' is missing")
        order = order_from_alpaca(raw_order)
        track = self._track(order)
        kind = event_kind_from_alpaca(event)
        if kind is None:
            log.debug("trade update %s for order %s changes nothing tradekit tracks", event, order.client_order_id)
            return []
        if kind in _FILL_KINDS:
            fill = fill_from_alpaca_trade_update(update, order)
            return self._stream_fill(kind, order, fill, track)
        time = order.updated_at or order.submitted_at
        if kind is OrderEventKind.ACCEPTED:
            return self._accepted(order, track, time)
        return self._terminal(kind, order, track, time)

    def on_poll(self, order: Order, executions: Iterable[RecoveredExecution], *, now: datetime) -> list[OrderEvent]:
        """Return the events a polled order state and its executions add (none if all were seen)."""
        track = self._track(order)
        events: list[OrderEvent] = []
        recovered = [e for e in executions if e.fill.execution_id not in track.reported]
        if recovered:
            # The fills that arrive next on the stream follow ones it never delivered, so
            # their position is no baseline for a cross-check until a fresh one arrives.
            self._positions.pop(order.symbol, None)
        for execution in sorted(recovered, key=lambda e: e.cumulative_qty):
            complete = order.status is OrderStatus.FILLED and execution.cumulative_qty == order.filled_qty
            kind = OrderEventKind.FILL if complete else OrderEventKind.PARTIAL_FILL
            track.reported[execution.fill.execution_id] = execution.fill.qty
            log.info(
                "recovered fill %s of order %s (%s %s) missed by the stream",
                execution.fill.execution_id,
                order.client_order_id,
                execution.fill.qty,
                order.symbol,
            )
            events.append(OrderEvent(kind=kind, order=order, fill=execution.fill, time=execution.fill.time))
        if track.missing_qty > 0:
            log.warning(
                "order %s reports %s filled but Alpaca's fill activities show %s so far; asking again on the next poll",
                order.client_order_id,
                track.filled_qty,
                track.reported_qty,
            )
        time = order.updated_at or now
        if order.status in _TERMINAL_KINDS:
            events.extend(self._terminal(_TERMINAL_KINDS[order.status], order, track, time))
        elif not order.status.is_terminal:
            events.extend(self._accepted(order, track, time))
        return events

    # ------------------------------------------------------------------ helpers

    def _track(self, order: Order) -> _OrderTrack:
        track = self._orders.get(order.broker_order_id)
        if track is None:
            track = _OrderTrack(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                submitted_at=order.submitted_at,
                status=order.status,
                updated_at=order.updated_at,
                filled_qty=order.filled_qty,
            )
            self._orders[order.broker_order_id] = track
            return track
        # Messages may arrive out of order: only a newer state replaces the status, and the
        # filled quantity only ever grows.
        track.filled_qty = max(track.filled_qty, order.filled_qty)
        newer = order.updated_at is not None and (track.updated_at is None or order.updated_at >= track.updated_at)
        if newer or order.status.is_terminal:
            track.status = order.status
            track.updated_at = order.updated_at
        return track

    def _stream_fill(self, kind: OrderEventKind, order: Order, fill: Fill, track: _OrderTrack) -> list[OrderEvent]:
        if fill.execution_id in track.reported:
            log.debug("dropping a repeated fill %s of order %s", fill.execution_id, order.client_order_id)
            return []
        reported_before = track.reported_qty
        track.reported[fill.execution_id] = fill.qty
        starts_at = order.filled_qty - fill.qty
        if starts_at > reported_before:
            # Executions before this one were not seen: out of order, or lost in a gap.
            log.info(
                "fill %s of order %s arrived before earlier executions (%s reported of %s); recovering by polling",
                fill.execution_id,
                order.client_order_id,
                reported_before,
                starts_at,
            )
            self.recovery_requested = True
            self._positions.pop(order.symbol, None)
        elif starts_at == reported_before and order.filled_qty == track.filled_qty:
            self._cross_check_position(fill)
        else:
            # A late execution filling an earlier hole: the position it reports is stale.
            self._positions.pop(order.symbol, None)
        return [OrderEvent(kind=kind, order=order, fill=fill, time=fill.time)]

    def _cross_check_position(self, fill: Fill) -> None:
        reported = fill.position_qty_after
        if reported is None:
            return
        previous = self._positions.get(fill.symbol)
        self._positions[fill.symbol] = reported
        if previous is None:
            return
        expected = previous + (fill.qty if fill.side is Side.BUY else -fill.qty)
        if expected == reported:
            return
        mismatch = PositionMismatch(
            symbol=fill.symbol,
            execution_id=fill.execution_id,
            expected_qty=expected,
            reported_qty=reported,
            time=fill.time,
        )
        self._mismatches.append(mismatch)
        self.recovery_requested = True
        log.warning(
            "position cross-check failed for %s after fill %s: expected %s, Alpaca reports %s; "
            "something moved the position unseen, recovering by polling",
            fill.symbol,
            fill.execution_id,
            expected,
            reported,
        )

    def _accepted(self, order: Order, track: _OrderTrack, time: datetime) -> list[OrderEvent]:
        # An acceptance that arrives after fills or the end of the order is stale news.
        if track.accepted_reported or track.reported or track.terminal_reported:
            return []
        track.accepted_reported = True
        return [OrderEvent(kind=OrderEventKind.ACCEPTED, order=order, time=time)]

    def _terminal(self, kind: OrderEventKind, order: Order, track: _OrderTrack, time: datetime) -> list[OrderEvent]:
        if track.terminal_reported:
            return []
        track.terminal_reported = True
        if order.filled_qty > track.reported_qty:
            self.recovery_requested = True
        return [OrderEvent(kind=kind, order=order, time=time)]


def executions_by_order(executions: Sequence[RecoveredExecution]) -> dict[str, list[RecoveredExecution]]:
    """Group executions by their broker order id."""
    grouped: dict[str, list[RecoveredExecution]] = {}
    for execution in executions:
        grouped.setdefault(execution.fill.broker_order_id, []).append(execution)
    return grouped
