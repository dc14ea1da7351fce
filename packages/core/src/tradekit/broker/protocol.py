"""The broker protocol: what tradekit needs from any broker or venue.

Every method either returns data tradekit can trust or raises a ``BrokerError`` subclass
(see ``tradekit.broker.errors``). ``tradekit.testing.contract`` holds the contract suite a
plugin runs against its own implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

import attrs

from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Fill, Order, OrderRequest
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.values import ZERO, non_negative, optional_to_utc, optional_utc, positive, to_utc, utc


@attrs.frozen(kw_only=True)
class MarketClock:
    """The venue's clock: whether the market is open and when it next opens and closes."""

    now: datetime = attrs.field(converter=to_utc, validator=utc)
    is_open: bool
    next_open: datetime = attrs.field(converter=to_utc, validator=utc)
    next_close: datetime = attrs.field(converter=to_utc, validator=utc)


@attrs.frozen(kw_only=True)
class AssetInfo:
    """What the broker allows for one symbol.

    ``fractional_day_only``: a fractional quantity is taken on DAY orders only (Alpaca's
    rule); a market-on-close exit of a fractional position then goes out as its whole shares
    on close and the fraction as a DAY order (see ``OrderPipeline.execute_exit``).
    """

    symbol: str
    tradable: bool = True
    fractionable: bool = False
    min_notional: Decimal = attrs.field(default=ZERO, validator=non_negative)
    qty_increment: Decimal = attrs.field(default=Decimal(1), validator=positive)
    min_qty: Decimal = attrs.field(default=ZERO, validator=non_negative)
    fractional_day_only: bool = False


class OrderEventKind(StrEnum):
    ACCEPTED = "accepted"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class OrderEvent:
    """An order status change pushed (or polled) from the broker; fills carry a ``Fill``."""

    kind: OrderEventKind
    order: Order
    fill: Fill | None = None
    time: datetime = attrs.field(converter=to_utc, validator=utc)


@runtime_checkable
class Broker(Protocol):
    """A broker account tradekit can trade through."""

    @property
    def name(self) -> str: ...

    def get_account(self) -> AccountSnapshot:
        """Return the account snapshot; raise ``BrokerUnavailable`` if it cannot be read."""
        ...

    def get_positions(self) -> Sequence[BrokerPosition]:
        """Return every open position; raise rather than return an empty list on failure."""
        ...

    def get_asset(self, symbol: str) -> AssetInfo:
        """Return what the broker allows for ``symbol`` (fractionable, minimums)."""
        ...

    def submit_order(self, request: OrderRequest) -> Order:
        """Send an order carrying ``request.client_order_id``.

        Raise ``OrderRejected`` (or ``FractionalNotSupported``) when it was refused and does
        not exist; raise ``AmbiguousSubmission`` when it may exist (timeout, lost response,
        server error, duplicate client id). Never retry a submission internally.
        """
        ...

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """Return the order with this client order id, or None if the broker has none."""
        ...

    def get_open_orders(self) -> Sequence[Order]:
        """Return every order not yet in a terminal state."""
        ...

    def cancel_order(self, client_order_id: str) -> None:
        """Ask the broker to cancel; a terminal or unknown order is not an error."""
        ...

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        """Return every execution of the order, each with its own quantity (for recovery)."""
        ...

    def drain_events(self) -> Sequence[OrderEvent]:
        """Return order events received since the last call (stream or poll), oldest first.

        Events may repeat or arrive out of order; consumers deduplicate fills by
        ``execution_id``.
        """
        ...

    def get_clock(self) -> MarketClock:
        """Return the market clock."""
        ...

    def close(self) -> None:
        """Release connections and background threads."""
        ...


@attrs.frozen(kw_only=True)
class StreamHeartbeat:
    """How a broker's trade-update stream is doing, for the trading-state guard.

    ``last_heard_at``: the last moment the stream was known alive — its last update, its
    last login, or the moment it lost its connection (while connected, its own keepalive
    vouches for it). ``failure``: why it is failing (it stopped, or its logins are refused
    while it keeps trying), if it is; the trading-state guard reads either as a stale stream.
    """

    connected: bool
    last_heard_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    failure: str | None = None


@runtime_checkable
class StreamHealth(Protocol):
    """Optional: a broker whose order events come from a stream says how that stream is doing.

    The guard's ``stream_stale_after_seconds`` trigger puts the account in REDUCE_ONLY while
    the stream is down for longer than that (no fill it reports could be missed knowingly).
    """

    def stream_heartbeat(self) -> StreamHeartbeat | None:
        """Return the stream's health, or None when this broker runs without a stream."""
        ...
