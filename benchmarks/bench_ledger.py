"""Ledger throughput: durable appends per second, and reconciliation of 10,000 positions.

- Appends: one fill with its position update per committed transaction, the ledger opened
  durable (SQLite: WAL + synchronous=FULL, an fsync per commit; PostgreSQL: its default
  synchronous_commit=on).
- Reconciliation: 10,000 broker positions against a ledger of 10,000 positions with 1%
  mismatches (50 broker-only, 50 ledger-only), timed; then the same with 5x the history per
  position, to show memory does not grow with history (only each symbol's current
  lifecycle is read).

Run with ``nox -s bench`` or ``python benchmarks/bench_ledger.py [--pg URL]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from tradekit.broker import AssetInfo, BrokerUnavailable, MarketClock, OrderEvent
from tradekit.config import ReconciliationSettings
from tradekit.domain import AccountSnapshot, BrokerPosition, Fill, Order, OrderRequest, Side
from tradekit.ledger import IntentPurpose, Ledger, OrderIntent
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler

T0 = datetime(2024, 1, 2, 15, tzinfo=UTC)
PG_URL = os.environ.get("TRADEKIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class StaticBroker:
    """Serves a fixed list of positions (only what reconciliation reads)."""

    def __init__(self, positions: Sequence[BrokerPosition]) -> None:
        self._positions = list(positions)

    @property
    def name(self) -> str:
        return "static"

    def get_positions(self) -> Sequence[BrokerPosition]:
        return self._positions

    def get_asset(self, symbol: str) -> AssetInfo:
        return AssetInfo(symbol=symbol)

    def get_account(self) -> AccountSnapshot:
        raise BrokerUnavailable("not used")

    def submit_order(self, request: OrderRequest) -> Order:
        raise BrokerUnavailable("not used")

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        raise BrokerUnavailable("not used")

    def get_open_orders(self) -> Sequence[Order]:
        return []

    def cancel_order(self, client_order_id: str) -> None:
        raise BrokerUnavailable("not used")

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        return []

    def drain_events(self) -> Sequence[OrderEvent]:
        return []

    def get_clock(self) -> MarketClock:
        return MarketClock(now=T0, is_open=True, next_open=T0, next_close=T0)

    def close(self) -> None:
        return None


def appends(ledger: Ledger, n: int) -> float:
    intents = [
        OrderIntent(
            intent_key=f"bench|{i}",
            symbol=f"S{i % 200}",
            side=Side.BUY,
            purpose=IntentPurpose.ENTRY,
            created_at=T0,
            strategy="bench",
            qty=Decimal(1),
        )
        for i in range(n)
    ]
    with ledger.transaction() as tx:
        for intent in intents:
            tx.record_intent(intent)
    start = time.perf_counter()
    for i, intent in enumerate(intents):
        fill = Fill(
            execution_id=f"x{i}",
            client_order_id=intent.client_order_id,
            broker_order_id=f"b{i}",
            symbol=intent.symbol,
            side=Side.BUY,
            qty=Decimal(1),
            price=Decimal("10.5"),
            time=T0,
        )
        ledger.record_fill(fill)  # one committed transaction per fill
    return n / (time.perf_counter() - start)


def seed_positions(ledger: Ledger, n: int, history: int) -> None:
    with ledger.transaction() as tx:
        for i in range(n):
            symbol = f"S{i:05d}"
            # `history` earlier lifecycles, each opened and closed, then the open one.
            for _ in range(history - 1):
                tx.record_backfill(symbol, Decimal(5), Decimal(10), T0 - timedelta(days=30), "history")
                tx.record_external_close(symbol, Decimal(5), T0 - timedelta(days=29), "history")
            tx.record_backfill(symbol, Decimal(10), Decimal(10), T0 - timedelta(days=1), "seed")


def reconcile_case(url: str, n: int, history: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        ledger = Ledger.open(url.format(dir=d))
        seed_positions(ledger, n, history)
        mismatched = n // 100
        broker_positions = [
            BrokerPosition(symbol=f"S{i:05d}", qty=Decimal(10), avg_entry_price=Decimal(10), as_of=T0)
            for i in range(mismatched // 2, n)  # the first 50 are gone at the broker
        ] + [
            BrokerPosition(symbol=f"X{i:05d}", qty=Decimal(3), avg_entry_price=Decimal(7), as_of=T0)
            for i in range(mismatched // 2)  # 50 the ledger never saw
        ]
        reconciler = Reconciler(
            ledger, StaticBroker(broker_positions), ReconciliationSettings(), Plugins(load_entrypoints=False, env={})
        )
        start = time.perf_counter()
        report = reconciler.run(T0)
        elapsed = time.perf_counter() - start
        assert len(report.backfilled) == mismatched // 2
        assert len(report.externally_closed) == mismatched // 2
        # Memory is measured on a second run (in sync by then: nothing to change), traced
        # separately because tracing slows the code it measures.
        tracemalloc.start()
        second = reconciler.run(T0 + timedelta(minutes=1))
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        assert not second.changed_ledger
        ledger.close()
    return elapsed, peak


def main() -> None:
    # The reconciler logs every finding at WARNING; a benchmark measures, it does not read them.
    logging.getLogger("tradekit").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument("--pg", default=PG_URL)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as d, Ledger.open(f"sqlite:///{d}/bench.db") as ledger:
        rate = appends(ledger, args.appends)
    print(f"SQLite durable appends (fill + position, fsync per commit): {rate:,.0f}/s")
    try:
        engine = sa.create_engine(args.pg, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        schema = f"tk_bench_{uuid.uuid4().hex[:8]}"
        with Ledger.open(args.pg, schema=schema) as ledger:
            try:
                rate = appends(ledger, args.appends)
            finally:
                ledger.drop_schema()
        print(f"PostgreSQL durable appends (fill + position, one commit each): {rate:,.0f}/s")
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL appends: skipped, server unreachable ({str(exc).splitlines()[0]})")

    for history in (1, 5):
        elapsed, peak = reconcile_case("sqlite:///{dir}/rec.db", args.positions, history)
        print(
            f"reconcile {args.positions:,} broker vs {args.positions:,} ledger positions, 1% mismatched, "
            f"{history} lifecycle(s) of history each: {elapsed:.3f}s, peak traced memory {peak:.1f} MB"
        )


if __name__ == "__main__":
    main()
