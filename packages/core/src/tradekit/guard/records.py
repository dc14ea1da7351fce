"""The guard's rows in the ledger: built and read by the same functions for every ledger.

The committing ledger (``tradekit.ledger.store``) and the replay's buffered one
(``tradekit.ledger.buffered``) both write these rows, so a replay's ledger reads exactly like
a live one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import attrs

from tradekit.domain.values import ZERO, optional_to_utc, optional_utc
from tradekit.guard.state import ClosedTrade, Hold, Scope, TradingState, Transition, Trigger


@attrs.frozen
class Mark:
    """One remembered figure of the triggers: a value, a time, or both."""

    value: Decimal | None = None
    time: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)


def _hold_fields(change: Transition | Hold) -> dict[str, Any]:
    # What a transition and the hold it leaves both record.
    return {
        "scope": str(change.scope),
        "trigger": change.trigger.value,
        "reason": change.reason,
        "actor": change.actor,
        "until": change.until,
        "needs_resume": change.needs_resume,
        "allow_exits": change.allow_exits,
        "traders": traders_text(change.traders),
    }


def traders_text(traders: Sequence[str]) -> str | None:
    """A hold's traders as stored: a JSON list of names (NULL: none, as before schema 6)."""
    return json.dumps(list(traders), ensure_ascii=False) if traders else None


def traders_from_text(text: str | None) -> tuple[str, ...]:
    """Read stored traders; what is not a list of names raises ``ValueError`` (unreadable)."""
    if text is None:
        return ()
    names = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"the traders of a hold are not a list of names: {text!r}")
    return tuple(names)


def transition_row(transition: Transition) -> dict[str, Any]:
    return {
        "time": transition.time,
        "from_state": transition.from_state.value,
        "to_state": transition.to_state.value,
        **_hold_fields(transition),
    }


def transition_from_row(row: Mapping[Any, Any]) -> Transition:
    return Transition(
        time=row["time"],
        scope=Scope.parse(row["scope"]),
        trigger=Trigger(row["trigger"]),
        from_state=TradingState(row["from_state"]),
        to_state=TradingState(row["to_state"]),
        reason=row["reason"],
        actor=row["actor"],
        until=row["until"],
        needs_resume=bool(row["needs_resume"]),
        allow_exits=bool(row["allow_exits"]),
        traders=traders_from_text(row["traders"]),
    )


def hold_row(hold: Hold) -> dict[str, Any]:
    return {"state": hold.state.value, "since": hold.since, **_hold_fields(hold)}


def hold_from_row(row: Mapping[Any, Any]) -> Hold:
    """Read a stored hold; a value this tradekit does not know raises ``ValueError``."""
    return Hold(
        scope=Scope.parse(row["scope"]),
        trigger=Trigger(row["trigger"]),
        state=TradingState(row["state"]),
        since=row["since"],
        reason=row["reason"],
        actor=row["actor"],
        until=row["until"],
        needs_resume=bool(row["needs_resume"]),
        allow_exits=bool(row["allow_exits"]),
        traders=traders_from_text(row["traders"]),
    )


def mark_row(name: str, mark: Mark) -> dict[str, Any]:
    return {"name": name, "value": mark.value, "time": mark.time}


class PositionEventLike(Protocol):
    """The fields of a position event a closed trade is folded from."""

    @property
    def kind(self) -> str: ...
    @property
    def qty(self) -> Decimal: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def time(self) -> datetime: ...
    @property
    def strategy(self) -> str | None: ...


_REDUCING = ("reduction", "external_close")


def closed_trade(symbol: str, events: Sequence[PositionEventLike], fees: Decimal) -> ClosedTrade | None:
    """Fold one position lifecycle's events into a closed trade (None while it is still open).

    P&L = what the reductions sold for - what the entries cost - ``fees`` (the commissions of
    the lifecycle's fills); unknown (None) when a reduction has no price.
    """
    held, bought, sold = ZERO, ZERO, ZERO
    owner: str | None = None
    priced = True
    for ev in events:
        if ev.kind in _REDUCING:
            held -= ev.qty
            if ev.price is None:
                priced = False
            else:
                sold += ev.qty * ev.price
        else:
            held += ev.qty
            bought += ev.qty * (ev.price or ZERO)
            owner = owner or ev.strategy
    if not events or held > 0:
        return None
    return ClosedTrade(
        symbol=symbol,
        strategy=owner,
        closed_at=events[-1].time,
        pnl=sold - bought - fees if priced else None,
    )
