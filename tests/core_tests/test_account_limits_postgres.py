"""Account-wide limits hold across processes sharing one PostgreSQL ledger.

The daily order limit and a tier's cap span symbols, so the symbol's lock that serializes two
buys of one symbol does not serialize two buys of different symbols: another process may be
between its checks and its commit, or may have bought and recorded since this process read
the broker. Neither may let the account past a limit.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tradekit import ReasonCode, Strategy, StrategyView
from tradekit.broker.paper import Fault, PaperBroker, ReceiptOutcome
from tradekit.config import AllocationSettings, OrderGuardSettings, Settings
from tradekit.config.settings import TierSettings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Side, Signal
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

from .conftest import PG_URL, require_postgres
from .limits_worker import NOW, buy, buy_pausing_in_decision, pipeline_for

WAIT_S = 60


def _a_session_waits_for_a_lock() -> bool:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            query = sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
            )
            return bool(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_buying_different_symbols_at_once_never_pass_the_daily_order_limit() -> None:
    require_postgres()
    schema = f"tk_limits_{uuid.uuid4().hex[:10]}"
    ledger = Ledger.open(PG_URL, schema=schema)
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    events = {name: manager.Event() for name in ("decided", "may_commit")}
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            # Process A has checked its S1 buy against the limit (one order a day, none sent)
            # and not yet committed it.
            first = pool.submit(buy_pausing_in_decision, PG_URL, schema, "S1", events)
            assert events["decided"].wait(WAIT_S), "the other process never decided its buy"
            # This process buys S2 meanwhile: it must wait for A's decision, not overtake it.
            second_pipeline, second_ledger, _ = pipeline_for(PG_URL, schema)
            result: list[str] = []
            done = threading.Event()

            def second_buy() -> None:
                try:
                    result.append(buy(second_pipeline, "S2"))
                finally:
                    done.set()

            worker = threading.Thread(target=second_buy)
            worker.start()
            deadline = time.monotonic() + WAIT_S
            while not done.wait(0.02) and not _a_session_waits_for_a_lock():
                assert time.monotonic() < deadline, "the second buy neither finished nor waited"
            events["may_commit"].set()
            worker.join(WAIT_S)
            first_action = first.result(timeout=WAIT_S)
            second_ledger.close()
        with ledger.reading() as tx:
            intents = tx.order_intents()
            decisions = tx.decisions()
        assert len(intents) == 1, [i.symbol for i in intents]
        assert sorted([first_action, *result]) == ["enter_new", "skip"]
        skipped = [d for d in decisions if d.action == "skip"]
        assert [d.symbol for d in skipped] == ["S2"]
        assert ReasonCode.DAILY_ORDER_LIMIT.value in skipped[0].reasons
    finally:
        manager.shutdown()
        ledger.drop_schema()
        ledger.close()


class Tiered(Strategy):
    name = "tiered"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


TIER_SETTINGS = Settings(
    allocation=AllocationSettings(
        tiered=True,
        # Each symbol's share is 5 % of equity, and so is the whole tier's cap: one buy fills it.
        tiers={"core": TierSettings(allocation_pct=Decimal(10), cap_pct=Decimal(5), symbols=("PFE", "XOM"))},
    ),
    orders=OrderGuardSettings(daily_order_limit=100, order_cooldown_minutes=0),
)
TIER_PRICES = {"PFE": Decimal(28), "XOM": Decimal(100)}


class BoughtMeanwhile:
    """The shared broker, as one process sees it: while it reads the broker (its positions
    already read), another process buys and records a fill (``meanwhile``)."""

    def __init__(self, inner: PaperBroker, meanwhile: Any) -> None:
        self.inner = inner
        self.meanwhile = meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_open_orders(self) -> Any:
        if self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        return self.inner.get_open_orders()


def _tier_pipeline(ledger: Ledger, broker: Any) -> OrderPipeline:
    return OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=TIER_SETTINGS,
        plugins=Plugins(load_entrypoints=False, env={}),
        calendar=TradingCalendar(),
        clock=lambda: NOW,
    )


def _tier_buy(pipeline: OrderPipeline, symbol: str) -> Any:
    price = TIER_PRICES[symbol]
    signal = Signal(
        symbol=symbol,
        side=Side.BUY,
        confidence=5,
        generated_at=NOW - timedelta(hours=1),
        reference_price=price,
        source=f"{symbol}-source",
    )
    return pipeline.process_buy(signal, Tiered, MarketSnapshot(price=price, as_of=NOW))


@pytest.mark.postgres
def test_a_tier_buy_bought_and_recorded_by_another_process_since_the_broker_was_read_fills_the_tier() -> None:
    require_postgres()
    schema = f"tk_limits_{uuid.uuid4().hex[:10]}"
    paper = PaperBroker()
    for symbol, price in TIER_PRICES.items():
        paper.set_price(symbol, price, NOW - timedelta(minutes=1))
    first_ledger = Ledger.open(PG_URL, schema=schema)
    second_ledger = Ledger.open(PG_URL, schema=schema)
    try:
        first = _tier_pipeline(first_ledger, paper)
        bought: list[Any] = []
        second = _tier_pipeline(second_ledger, BoughtMeanwhile(paper, lambda: bought.append(_tier_buy(first, "PFE"))))
        outcome = _tier_buy(second, "XOM")

        (pfe,) = bought
        assert pfe.order is not None
        with second_ledger.reading() as tx:
            assert tx.pending_intents() == []  # PFE's buy filled and settled before XOM's was judged
        held = sum((p.market_value() for p in paper.get_positions()), Decimal(0))
        assert held <= paper.get_account().equity * Decimal("0.05")
        assert outcome.intent is None  # the tier is full (PFE's 4,999.99...: no share of XOM fits)
        assert outcome.decision is not None
        assert any(c.rule == "cap:tier core cap" for c in outcome.decision.checks)
    finally:
        first_ledger.drop_schema()
        first_ledger.close()
        second_ledger.close()


class Single(Strategy):
    name = "single"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


FALLBACK_SETTINGS = Settings(
    # Each buy is 2 % of equity, a symbol's cap 5 %: the caps alone would let a second entry in.
    orders=OrderGuardSettings(daily_order_limit=100, order_cooldown_minutes=0, one_signal_per_symbol_per_day=False),
)


class BuysAfterARefusal:
    """The shared broker as one process sees it: once it refused this process's fractional
    order, another process buys the same symbol (``meanwhile``) while this one reads the
    broker again (its positions already read)."""

    def __init__(self, inner: PaperBroker, meanwhile: Any) -> None:
        self.inner = inner
        self.meanwhile = meanwhile
        self.refused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_order(self, request: Any) -> Any:
        try:
            return self.inner.submit_order(request)
        except Exception:
            self.refused = True
            raise

    def get_open_orders(self) -> Any:
        if self.refused and self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        return self.inner.get_open_orders()


@pytest.mark.postgres
def test_no_other_buy_of_the_symbol_slips_in_between_a_fractional_refusal_and_its_whole_share_order() -> None:
    require_postgres()
    schema = f"tk_limits_{uuid.uuid4().hex[:10]}"
    paper = PaperBroker()
    paper.set_price("KO", Decimal(60), NOW - timedelta(minutes=1))
    first_ledger = Ledger.open(PG_URL, schema=schema)
    second_ledger = Ledger.open(PG_URL, schema=schema)

    def pipeline(ledger: Ledger, broker: Any) -> OrderPipeline:
        return OrderPipeline(
            ledger=ledger,
            broker=broker,
            settings=FALLBACK_SETTINGS,
            plugins=Plugins(load_entrypoints=False, env={}),
            calendar=TradingCalendar(),
            clock=lambda: NOW,
        )

    def buy_ko(on: OrderPipeline, source: str) -> Any:
        signal = Signal(
            symbol="KO",
            side=Side.BUY,
            confidence=5,
            generated_at=NOW - timedelta(hours=1),
            reference_price=Decimal(60),
            source=source,
        )
        return on.process_buy(signal, Single, MarketSnapshot(price=Decimal(60), as_of=NOW))

    try:
        second = pipeline(second_ledger, paper)
        meanwhile: list[Any] = []
        first = pipeline(first_ledger, BuysAfterARefusal(paper, lambda: meanwhile.append(buy_ko(second, "b"))))
        paper.faults.arm(Fault.FRACTIONAL_REFUSED, symbol="KO")
        buy_ko(first, "a")

        held = sum((p.market_value() for p in paper.get_positions()), Decimal(0))
        bought = [r.request for r in paper.received_orders if r.outcome is ReceiptOutcome.ACCEPTED]
        assert len(bought) == 1, [(r.client_order_id, r.qty) for r in bought]
        assert held <= paper.get_account().equity * Decimal("0.05")
        position = first_ledger.position("KO")
        assert position is not None
        assert position.entry_count == 1
        (other,) = meanwhile  # it came while the refused order was being replaced: held back
        assert ReasonCode.PENDING_ORDER_CONFLICT in other.decision.reasons
    finally:
        first_ledger.drop_schema()
        first_ledger.close()
        second_ledger.close()
