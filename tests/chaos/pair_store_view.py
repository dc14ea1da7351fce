"""A direct read of the pair store's tables (next to the ledger's), for the pairs campaign's
invariants: not through ``PairStore``, which is under test."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from chaos.ledger_view import connect

ZERO = Decimal(0)


@dataclass(frozen=True)
class LegOrderRow:
    """A leg order as the store recorded it before sending it."""

    client_order_id: str
    pair_id: str
    entry_no: int
    leg: str
    purpose: str
    venue: str
    symbol: str
    side: str
    qty: Decimal


@dataclass(frozen=True)
class PairRow:
    """One pair's events, folded: entries planned, opened and failed, how it ended."""

    pair_id: str
    planned: frozenset[int]
    opened: dict[int, Decimal]  # entry number -> its notional
    failed: frozenset[int]
    exit_reason: str | None
    closed_reason: str | None


@dataclass(frozen=True)
class PairStoreView:
    """What the store holds: leg orders, the fills it recorded per venue and symbol, pairs."""

    leg_orders: list[LegOrderRow]
    # (venue, symbol) -> signed quantity the recorded fills add up to (buys +, sells -)
    held: dict[tuple[str, str], Decimal]
    pairs: list[PairRow]


def read_pair_store(url: str, schema: str | None = None) -> PairStoreView:
    """Read the pair tables at ``url`` (with ``schema`` as the PostgreSQL search path)."""
    with connect(url, schema) as conn:
        orders = conn.execute(
            sa.text(
                "SELECT client_order_id, pair_id, entry_no, leg, purpose, venue, symbol, side, qty "
                "FROM tkx_ccxt_leg_orders ORDER BY created_at, client_order_id"
            )
        ).all()
        fills = conn.execute(sa.text("SELECT venue, client_order_id, symbol, side, qty FROM tkx_ccxt_leg_fills")).all()
        pair_ids = [r.pair_id for r in conn.execute(sa.text("SELECT pair_id FROM tkx_ccxt_pairs ORDER BY opened_at"))]
        events = conn.execute(sa.text("SELECT pair_id, kind, payload FROM tkx_ccxt_pair_events ORDER BY id")).all()
    leg_orders = [
        LegOrderRow(
            client_order_id=r.client_order_id,
            pair_id=r.pair_id,
            entry_no=int(r.entry_no),
            leg=r.leg,
            purpose=r.purpose,
            venue=r.venue,
            symbol=r.symbol,
            side=r.side,
            qty=Decimal(r.qty),
        )
        for r in orders
    ]
    known = {o.client_order_id for o in leg_orders}
    held: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for fill in fills:
        if fill.client_order_id in known:
            qty = Decimal(fill.qty)
            held[(fill.venue, fill.symbol)] += qty if fill.side == "buy" else -qty
    by_pair: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for event in events:
        by_pair[event.pair_id].append((event.kind, json.loads(event.payload)))
    return PairStoreView(
        leg_orders=leg_orders, held=dict(held), pairs=[_fold(pair_id, by_pair[pair_id]) for pair_id in pair_ids]
    )


def _fold(pair_id: str, events: list[tuple[str, dict[str, Any]]]) -> PairRow:
    planned: set[int] = set()
    opened: dict[int, Decimal] = {}
    failed: set[int] = set()
    exit_reason = closed_reason = None
    for kind, payload in events:
        if kind == "entry_planned":
            planned.add(int(payload["entry_no"]))
        elif kind == "entry_opened":
            notional = Decimal(payload["qty"]) * Decimal(payload["long_price"]) * Decimal(payload["contract_size"])
            opened[int(payload["entry_no"])] = notional
        elif kind == "entry_failed":
            failed.add(int(payload["entry_no"]))
        elif kind == "exit_started" and exit_reason is None:
            exit_reason = str(payload["reason"])
        elif kind == "closed":
            closed_reason = str(payload["reason"])
    return PairRow(
        pair_id=pair_id,
        planned=frozenset(planned),
        opened=opened,
        failed=frozenset(failed),
        exit_reason=exit_reason,
        closed_reason=closed_reason,
    )
