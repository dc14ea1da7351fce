"""Two-phase exits: an exit decided after the close and executed in the next window."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import attrs

from tradekit.domain.orders import OrderType
from tradekit.domain.signals import Urgency
from tradekit.domain.values import (
    optional_positive,
    optional_to_utc,
    optional_utc,
    positive,
    to_utc,
    utc,
)


class ExitState(StrEnum):
    PLANNED = "planned"
    SUBMITTED = "submitted"
    EXECUTED = "executed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in (ExitState.EXECUTED, ExitState.CANCELLED, ExitState.EXPIRED)


# Which states an intent may move to from each state; anything else is refused.
# PLANNED -> PLANNED moves the intent to a later window; SUBMITTED -> PLANNED follows an
# attempt that did not execute (refused, lost, canceled): it is tried again. PLANNED -> EXECUTED:
# an attempt given up on as not found reached the broker after all and sold what was held.
EXIT_TRANSITIONS: dict[ExitState, frozenset[ExitState]] = {
    ExitState.PLANNED: frozenset(
        {ExitState.PLANNED, ExitState.SUBMITTED, ExitState.EXECUTED, ExitState.CANCELLED, ExitState.EXPIRED}
    ),
    ExitState.SUBMITTED: frozenset({ExitState.PLANNED, ExitState.EXECUTED, ExitState.CANCELLED, ExitState.EXPIRED}),
    ExitState.EXECUTED: frozenset(),
    ExitState.CANCELLED: frozenset(),
    ExitState.EXPIRED: frozenset(),
}


@attrs.frozen(kw_only=True)
class ExitIntent:
    """A decision to close (part of) a position, persisted until it is carried out.

    Planned exits go out as a limit order at the then-current price inside the execution
    window; ``Urgency.IMMEDIATE`` exits go out at once as market orders. An attempt that does
    not execute is tried again while the window is open (``attempts`` counts the orders sent
    in the current window); a window that closes unexecuted escalates as configured
    (``exits.on_missed_window``), moving the intent to a later window (``rolls`` counts those).
    """

    intent_id: str
    symbol: str
    strategy: str | None
    qty: Decimal = attrs.field(validator=positive)
    urgency: Urgency
    reason: str
    decided_at: datetime = attrs.field(converter=to_utc, validator=utc)
    state: ExitState = ExitState.PLANNED
    order_type: OrderType = OrderType.LIMIT
    limit_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    window_opens_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    window_closes_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    client_order_id: str | None = None
    note: str = ""
    attempts: int = 0
    rolls: int = 0

    def __attrs_post_init__(self) -> None:
        if self.urgency is Urgency.IMMEDIATE and self.order_type is not OrderType.MARKET:
            raise ValueError(f"exit {self.intent_id}: an immediate exit goes out as a market order")
        if self.urgency is Urgency.PLANNED and self.order_type is not OrderType.LIMIT:
            raise ValueError(f"exit {self.intent_id}: a planned exit goes out as a limit order")
