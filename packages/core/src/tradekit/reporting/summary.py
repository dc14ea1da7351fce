"""What a run did, read back from the ledger: orders, entries per position, reasons, P&L."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import attrs

from tradekit.domain.orders import Fill
from tradekit.domain.positions import Position
from tradekit.domain.signals import Side
from tradekit.domain.values import ZERO
from tradekit.ledger.store import Ledger


@attrs.frozen
class RunSummary:
    orders_by_purpose: dict[str, int]
    positions_by_entry_count: dict[int, int]
    decisions_by_reason: dict[tuple[str, str], int]
    round_trips: int
    open_positions: int
    realized_pnl: Decimal
    starting_equity: Decimal
    final_equity: Decimal
    fills: int
    # Buys the trading-state guard stopped: BLOCKed decisions and orders it kept from leaving.
    guard_blocked_buys: int = 0

    @property
    def pnl(self) -> Decimal:
        return self.final_equity - self.starting_equity

    def as_json(self) -> dict[str, Any]:
        return {
            "orders_by_purpose": self.orders_by_purpose,
            "positions_by_entry_count": {str(k): v for k, v in sorted(self.positions_by_entry_count.items())},
            "decisions": [
                {"action": action, "reason": reason, "count": count}
                for (action, reason), count in sorted(self.decisions_by_reason.items())
            ],
            "round_trips": self.round_trips,
            "open_positions": self.open_positions,
            "fills": self.fills,
            "guard_blocked_buys": self.guard_blocked_buys,
            "realized_pnl": str(self.realized_pnl),
            "starting_equity": str(self.starting_equity),
            "final_equity": str(self.final_equity),
            "pnl": str(self.pnl),
        }


def summarize(ledger: Ledger, *, starting_equity: Decimal, final_equity: Decimal) -> RunSummary:
    # Positions and fills are read one at a time (a long run holds hundreds of thousands).
    by_entries: Counter[int] = Counter()
    lives = Counter[bool]()  # is_open -> how many

    def count_position(position: Position) -> None:
        by_entries[position.entry_count] += 1
        lives[position.is_open] += 1

    realized = ZERO
    fill_count = 0
    cost: dict[str, tuple[Decimal, Decimal]] = {}

    def add_fill(fill: Fill, _purpose: object) -> None:
        nonlocal realized, fill_count
        fill_count += 1
        qty, basis = cost.get(fill.symbol, (ZERO, ZERO))
        if fill.side is Side.BUY:
            cost[fill.symbol] = (qty + fill.qty, basis + fill.qty * fill.price)
        elif qty > 0:
            avg = basis / qty
            realized += (fill.price - avg) * fill.qty
            cost[fill.symbol] = (qty - fill.qty, basis - avg * fill.qty)
        realized -= fill.commission

    with ledger.reading() as tx:
        tx.each_position(count_position)
        tx.each_fill_with_purpose(add_fill)
        orders = tx.intent_counts()
        decisions = tx.decision_counts()
        guard_blocked = tx.guard_blocked_buys()
    return RunSummary(
        orders_by_purpose=orders,
        positions_by_entry_count=dict(by_entries),
        decisions_by_reason=decisions,
        round_trips=lives[False],
        open_positions=lives[True],
        realized_pnl=realized,
        starting_equity=starting_equity,
        final_equity=final_equity,
        fills=fill_count,
        guard_blocked_buys=guard_blocked,
    )
