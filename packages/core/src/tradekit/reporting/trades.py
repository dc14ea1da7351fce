"""The trade list: one row per position, read back from the ledger.

A position (a "trade") runs from its first entry to flat. Each carries its entries (time,
price, quantity, fees, the decision that allowed it, whether it was the first entry or an
add-on), its exits (time, price, quantity, fees, why), the notional-weighted average entry,
the realized P&L and return of what it sold, and how long it was held. Fills of one order
are one entry or one exit, priced notional-weighted, as the ledger folds positions. (The
run's figures count a position as realized once it is closed, and an open one's P&L at the
last close apart: ``tradekit.reporting.statistics``.)

An exit may have no price: reconciliation closes a position the broker no longer holds
(EXTERNAL_CLOSE) without knowing what it went for. Such a position's P&L is unknown, never
taken as break-even: ``pnl_known`` is false, ``unknown_pnl_reason`` says why, and every
figure that needs the exit price (average exit, return, marked P&L, each entry's share) is
None; the run's figures leave the position out and count it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from tradekit.domain.values import HUNDRED, ZERO
from tradekit.ledger.records import IntentPurpose, LifeEvent
from tradekit.ledger.store import LedgerTx


@attrs.frozen(kw_only=True)
class TradeEntry:
    """One buy order that added to the position."""

    time: datetime
    price: Decimal
    qty: Decimal
    fees: Decimal
    kind: str  # "entry", "add-on" or "backfill"
    decision_id: str | None
    client_order_id: str | None

    @property
    def notional(self) -> Decimal:
        return self.price * self.qty


@attrs.frozen(kw_only=True)
class TradeExit:
    """One sell order (or an external close) that reduced the position."""

    time: datetime
    price: Decimal | None
    qty: Decimal
    fees: Decimal
    reason: str


@attrs.frozen(kw_only=True)
class Trade:
    """One position from its first entry to flat (or still open)."""

    symbol: str
    strategy: str | None
    number: int
    entries: tuple[TradeEntry, ...]
    exits: tuple[TradeExit, ...]

    @property
    def entered_qty(self) -> Decimal:
        return sum((e.qty for e in self.entries), ZERO)

    @property
    def exited_qty(self) -> Decimal:
        return sum((x.qty for x in self.exits), ZERO)

    @property
    def is_open(self) -> bool:
        return self.exited_qty < self.entered_qty

    @property
    def average_entry(self) -> Decimal:
        """Notional-weighted average entry price."""
        return sum((e.notional for e in self.entries), ZERO) / self.entered_qty

    @property
    def unknown_price_exits(self) -> tuple[TradeExit, ...]:
        """The exits whose price is unknown (closed by reconciliation, say)."""
        return tuple(x for x in self.exits if x.price is None)

    @property
    def pnl_known(self) -> bool:
        """Whether every exit's price is known: else the position's P&L is unknown."""
        return all(x.price is not None for x in self.exits)

    @property
    def unknown_pnl_reason(self) -> str | None:
        """Why the position's P&L is unknown (None when it is known): each exit of unknown
        price, its quantity and why it left."""
        unknown = self.unknown_price_exits
        if not unknown:
            return None
        return "; ".join(f"{plain_number(x.qty)} exited at an unknown price ({x.reason})" for x in unknown)

    @property
    def average_exit(self) -> Decimal | None:
        """Quantity-weighted average exit price; None without exits or with one of unknown price."""
        qty = self.exited_qty
        if not qty or not self.pnl_known:
            return None
        return sum((x.qty * x.price for x in self.exits if x.price is not None), ZERO) / qty

    @property
    def fees(self) -> Decimal:
        return sum((e.fees for e in self.entries), ZERO) + sum((x.fees for x in self.exits), ZERO)

    @property
    def realized_pnl(self) -> Decimal:
        """Exits against the average entry, less exit fees and the exited share of entry fees.

        Only the exits of known price count: when ``pnl_known`` is false this is not the
        position's P&L (which is unknown) and is no figure to show or add up."""
        gross = sum(
            (x.qty * (x.price - self.average_entry) for x in self.exits if x.price is not None),
            ZERO,
        )
        entry_fees = sum((e.fees for e in self.entries), ZERO) * self.exited_qty / self.entered_qty
        return gross - sum((x.fees for x in self.exits), ZERO) - entry_fees

    def marked_pnl(self, mark: Decimal) -> Decimal | None:
        """The position's P&L with what it still holds valued at ``mark``, after every fee it
        paid (all of its entry fees, whatever share is still held): an open position's P&L
        at the last close. A closed position's is its ``realized_pnl``, whatever ``mark``.
        None when an exit's price is unknown."""
        if not self.pnl_known:
            return None
        average = self.average_entry
        sold = sum((x.qty * (x.price - average) for x in self.exits if x.price is not None), ZERO)
        held = (self.entered_qty - self.exited_qty) * (mark - average)
        return sold + held - self.fees

    @property
    def return_pct(self) -> Decimal | None:
        """Realized P&L as a percentage of what the exited quantity cost (None when unknown)."""
        cost = self.average_entry * self.exited_qty
        return None if cost <= 0 or not self.pnl_known else self.realized_pnl * HUNDRED / cost

    @property
    def opened_at(self) -> datetime:
        return self.entries[0].time

    @property
    def closed_at(self) -> datetime | None:
        return None if self.is_open or not self.exits else self.exits[-1].time

    @property
    def holding_time(self) -> timedelta | None:
        closed = self.closed_at
        return None if closed is None else closed - self.opened_at

    @property
    def close_reason(self) -> str:
        return "" if self.is_open or not self.exits else self.exits[-1].reason

    def entry_pnl(self) -> list[Decimal]:
        """Each entry's share of a closed trade's P&L: its quantity sold at the average exit,
        less its own fees and its share of the exit fees (none when the exit price is unknown)."""
        exit_price = self.average_exit
        if self.is_open or exit_price is None:
            return []
        exit_fees = sum((x.fees for x in self.exits), ZERO)
        return [e.qty * (exit_price - e.price) - e.fees - exit_fees * e.qty / self.entered_qty for e in self.entries]

    def as_json(self) -> dict[str, Any]:
        """The trade as JSON-ready data: stored figures exact, derived ones to 6 places; a
        P&L that is unknown is null, and ``unknown_pnl`` says why."""
        holding = self.holding_time
        average_exit = self.average_exit
        return_pct = self.return_pct
        known = self.pnl_known
        return {
            "symbol": self.symbol,
            "strategy": self.strategy,
            "number": self.number,
            "open": self.is_open,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "entry_count": len(self.entries),
            "qty": plain_number(self.entered_qty),
            "average_entry": plain_number(self.average_entry, 6),
            "average_exit": None if average_exit is None else plain_number(average_exit, 6),
            "realized_pnl": plain_number(self.realized_pnl, 6) if known else None,
            "unknown_pnl": self.unknown_pnl_reason,
            "return_pct": None if return_pct is None else plain_number(return_pct, 4),
            "fees": plain_number(self.fees, 6),
            "holding_days": None if holding is None else round(holding.total_seconds() / 86400, 4),
            "close_reason": self.close_reason,
            "entries": [
                {
                    "time": e.time.isoformat(),
                    "kind": e.kind,
                    "price": plain_number(e.price),
                    "qty": plain_number(e.qty),
                    "fees": plain_number(e.fees, 6),
                    "decision_id": e.decision_id,
                }
                for e in self.entries
            ],
            "exits": [
                {
                    "time": x.time.isoformat(),
                    "price": None if x.price is None else plain_number(x.price),
                    "qty": plain_number(x.qty),
                    "fees": plain_number(x.fees, 6),
                    "reason": x.reason,
                }
                for x in self.exits
            ],
        }


def plain_number(value: Decimal, places: int | None = None) -> str:
    """Fixed-point text without exponent or trailing zeros: ``0E-13`` -> ``0``, ``12.5000`` -> ``12.5``."""
    if places is not None:
        value = round(value, places)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def read_trades(tx: LedgerTx) -> list[Trade]:
    """Every position in the ledger as a trade, in the order they opened."""
    trades: list[Trade] = []
    each_trade(tx, trades.append)
    return sorted(trades, key=lambda trade: (trade.opened_at, trade.symbol, trade.number))


def each_trade(tx: LedgerTx, visit: Callable[[Trade], None]) -> None:
    """Every position in the ledger as a trade, handed to ``visit`` one at a time as it is
    read: by symbol, then in the order the symbol's positions opened. Only the trade being
    built is held (a million-bar replay has tens of thousands)."""
    tx.each_position_life(lambda events: visit(_trade(events)))


def _trade(events: Sequence[LifeEvent]) -> Trade:
    entries: list[TradeEntry] = []
    exits: list[TradeExit] = []
    head = events[0].event
    strategy = next((e.event.strategy for e in events if e.event.strategy), None)
    for group in _by_order(events):
        first = group[0]
        event = first.event
        qty = sum((e.event.qty for e in group), ZERO)
        paid = sum((e.commission for e in group if e.commission is not None), ZERO)
        if event.kind in ("entry", "backfill"):
            kind = "backfill" if event.kind == "backfill" else "add-on" if entries else "entry"
            if first.purpose is IntentPurpose.SCALE_IN:
                kind = "add-on"
            entries.append(
                TradeEntry(
                    time=event.time,
                    price=_weighted_price(group),
                    qty=qty,
                    fees=paid,
                    kind=kind,
                    decision_id=first.decision_id,
                    client_order_id=event.client_order_id,
                )
            )
        else:
            reason = event.reason
            if first.exit_intent_id is not None:
                reason = first.exit_reason if first.exit_reason is not None else reason
            elif event.kind == "external_close":
                reason = f"closed outside tradekit: {event.reason}" if event.reason else "closed outside tradekit"
            priced = all(e.event.price is not None for e in group)
            exits.append(
                TradeExit(
                    time=event.time,
                    price=_weighted_price(group) if priced else None,
                    qty=qty,
                    fees=paid,
                    reason=reason,
                )
            )
    return Trade(
        symbol=head.symbol, strategy=strategy, number=head.lifecycle, entries=tuple(entries), exits=tuple(exits)
    )


def _by_order(events: Iterable[LifeEvent]) -> list[list[LifeEvent]]:
    # Fills of one order make one entry or exit; events without an order stand alone.
    groups: list[list[LifeEvent]] = []
    index: dict[tuple[str, str], int] = {}
    for event in events:
        side = "in" if event.event.kind in ("entry", "backfill") else "out"
        key = (side, event.event.client_order_id) if event.event.client_order_id else None
        if key is not None and key in index:
            groups[index[key]].append(event)
            continue
        if key is not None:
            index[key] = len(groups)
        groups.append([event])
    return groups


def _weighted_price(group: Sequence[LifeEvent]) -> Decimal:
    qty = sum((e.event.qty for e in group), ZERO)
    return sum((e.event.qty * (e.event.price or ZERO) for e in group), ZERO) / qty
