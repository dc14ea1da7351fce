"""A direct read of a tradekit ledger's tables (SQLite file or PostgreSQL schema), for the
campaign's invariants: not through tradekit's own ``Ledger`` API, which is under test."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

ZERO = Decimal(0)
_REDUCING = ("reduction", "external_close")


@dataclass(frozen=True)
class IntentRow:
    """An order intent with its head: what the ledger believes of one client order id."""

    client_order_id: str
    symbol: str
    side: str
    purpose: str
    decision_id: str | None
    exit_intent_id: str | None
    status: str | None
    broker_order_id: str | None
    terminal: bool


@dataclass(frozen=True)
class LedgerView:
    """What the ledger holds: open quantities, entries per position life, intents."""

    open_qty: dict[str, Decimal]
    entries_per_life: dict[tuple[str, int], int]
    intents: list[IntentRow]


@contextlib.contextmanager
def connect(url: str, schema: str | None = None) -> Iterator[sa.Connection]:
    """A connection to the database at ``url`` (with ``schema`` as the PostgreSQL search path)."""
    connect_args: dict[str, object] = {}
    if schema is not None:
        connect_args["options"] = f"-csearch_path={schema}"
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def read_ledger(url: str, schema: str | None = None) -> LedgerView:
    """Read the ledger at ``url`` (with ``schema`` as the PostgreSQL search path)."""
    with connect(url, schema) as conn:
        events = conn.execute(
            sa.text(
                "SELECT e.id, e.symbol, e.lifecycle, e.kind, e.qty, e.client_order_id, "
                "h.lifecycle AS current, h.is_open "
                "FROM tk_position_events e JOIN tk_position_heads h ON e.symbol = h.symbol ORDER BY e.id"
            )
        ).all()
        intents = conn.execute(
            sa.text(
                "SELECT i.client_order_id, i.symbol, i.side, i.purpose, i.decision_id, i.exit_intent_id, "
                "h.status, h.broker_order_id, h.terminal "
                "FROM tk_order_intents i LEFT JOIN tk_intent_heads h ON h.client_order_id = i.client_order_id "
                "ORDER BY i.id"
            )
        ).all()
    open_qty: dict[str, Decimal] = defaultdict(lambda: ZERO)
    # An entry is an order, not a fill: the fills of one order (a partial fill, then the
    # rest) are one entry, as the ledger counts them for the policy. A backfill is one each.
    entries: dict[tuple[str, int], set[str]] = defaultdict(set)
    for row in events:
        if row.kind == "entry":
            entries[(row.symbol, int(row.lifecycle))].add(f"order {row.client_order_id}")
        elif row.kind == "backfill":
            entries[(row.symbol, int(row.lifecycle))].add(f"backfill {row.id}")
        if bool(row.is_open) and int(row.lifecycle) == int(row.current):
            qty = Decimal(row.qty)
            open_qty[row.symbol] += -qty if row.kind in _REDUCING else qty
    return LedgerView(
        open_qty={s: q for s, q in open_qty.items() if q != 0},
        entries_per_life={life: len(orders) for life, orders in entries.items()},
        intents=[
            IntentRow(
                client_order_id=r.client_order_id,
                symbol=r.symbol,
                side=r.side,
                purpose=r.purpose,
                decision_id=r.decision_id,
                exit_intent_id=r.exit_intent_id,
                status=r.status,
                broker_order_id=r.broker_order_id,
                terminal=bool(r.terminal),
            )
            for r in intents
        ],
    )
