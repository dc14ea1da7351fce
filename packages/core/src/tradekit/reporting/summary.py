"""What a run did, read back from the ledger: orders, entries per position, reasons, P&L.

The P&L is split as the run statistics split it (``tradekit.reporting.statistics``):
``realized_pnl`` is the closed positions' P&L after all their fees (the sum of the closed
trades' P&L), ``open_pnl`` the open positions' at the last close after the fees paid on
them; together they are ``pnl``, final less starting equity -- when every position's P&L is
known. A position with an exit of unknown price (closed by reconciliation, the broker no
longer holding it) is in neither and is counted in ``unknown_pnl_closed`` or
``unknown_pnl_open``: ``pnl`` (from the equity) then also holds what those positions made,
which the ledger cannot know.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import attrs

from tradekit.domain.orders import Fill
from tradekit.domain.positions import Position
from tradekit.ledger.store import Ledger
from tradekit.reporting.statistics import TradeStatistics


@attrs.frozen
class RunSummary:
    orders_by_purpose: dict[str, int]
    positions_by_entry_count: dict[int, int]
    decisions_by_reason: dict[tuple[str, str], int]
    round_trips: int
    open_positions: int
    realized_pnl: Decimal  # closed positions of known P&L, after all their fees
    starting_equity: Decimal
    final_equity: Decimal
    fills: int
    # Buys the trading-state guard stopped: BLOCKed decisions and orders it kept from leaving.
    guard_blocked_buys: int = 0
    # Open positions at the last close, after the fees paid on them (None: one had no price).
    open_pnl: Decimal | None = None
    # Positions of unknown P&L (an exit of unknown price), left out of realized and open P&L.
    unknown_pnl_closed: int = 0
    unknown_pnl_open: int = 0

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
            "open_pnl": None if self.open_pnl is None else str(self.open_pnl),
            "unknown_pnl_closed": self.unknown_pnl_closed,
            "unknown_pnl_open": self.unknown_pnl_open,
            "starting_equity": str(self.starting_equity),
            "final_equity": str(self.final_equity),
            "pnl": str(self.pnl),
        }


def summarize(
    ledger: Ledger, *, starting_equity: Decimal, final_equity: Decimal, trades: TradeStatistics
) -> RunSummary:
    """The run's counts, read from the ledger, and its P&L: ``trades`` (the run statistics'
    trade figures, read from the same ledger) give the realized and the open P&L."""
    # Positions and fills are read one at a time (a long run holds hundreds of thousands).
    by_entries: Counter[int] = Counter()
    lives = Counter[bool]()  # is_open -> how many

    def count_position(position: Position) -> None:
        by_entries[position.entry_count] += 1
        lives[position.is_open] += 1

    fill_count = 0

    def add_fill(_fill: Fill, _purpose: object) -> None:
        nonlocal fill_count
        fill_count += 1

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
        realized_pnl=trades.realized_pnl,
        open_pnl=trades.open_pnl,
        unknown_pnl_closed=trades.unknown_pnl_closed,
        unknown_pnl_open=trades.unknown_pnl_open,
        starting_equity=starting_equity,
        final_equity=final_equity,
        fills=fill_count,
        guard_blocked_buys=guard_blocked,
    )
