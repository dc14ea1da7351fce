"""Reconciliation at its edges: two processes at once, an order the ledger does not know, a
broker read that fails, a position listed at zero.

Each test sets up the situation on real components (a SQLite or PostgreSQL ledger, the paper
broker) and checks what a trader with real money would: nothing adopted or closed twice,
nothing adopted while an order may still change it, buys blocked until it is settled.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tradekit import hookimpl
from tradekit.broker.errors import BrokerUnavailable
from tradekit.broker.paper import PaperBroker
from tradekit.config import ReconciliationSettings
from tradekit.domain import BrokerPosition, Fill, Order, OrderRequest, OrderType, Side, TimeInForce
from tradekit.execution.session import startup
from tradekit.ledger import IntentPurpose, Ledger, LedgerOrderStatus, OrderIntent
from tradekit.plugins import HookError, Plugins
from tradekit.reconcile import ReconcileAction, ReconcileFinding, Reconciler, ReconcileReport

from .conftest import PG_URL, require_postgres
from .doubles import PositionsOnlyBroker
from .test_pipeline import make_trading
from .test_reconcile import hold_in_ledger

T0 = datetime(2024, 3, 4, 14, 0, tzinfo=UTC)
ON = ReconciliationSettings()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    schema = f"tk_rec_{uuid.uuid4().hex[:10]}"
    Ledger.open(PG_URL, schema=schema).close()
    yield schema
    with Ledger.open(PG_URL, schema=schema) as ledger:
        ledger.drop_schema()


# --- two processes on one PostgreSQL ledger ------------------------------------------------------


class Rendezvous:
    """Holds the first reconciliation between its reading the ledger and its writing, until
    the second either reached the same point or waits on a lock of the ledger's: without a
    lock, both decide on the same ledger and both write what they decided."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._arrived = 0
        self._guard = threading.Lock()
        self.second_arrived = threading.Event()

    def _second_waits_on_a_lock(self) -> bool:
        with self._engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).scalar_one()
        return bool(waiting)

    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding]:
        with self._guard:
            self._arrived += 1
            first = self._arrived == 1
        if not first:
            self.second_arrived.set()
            return []
        for _ in range(6000):  # a condition, not a sleep: each turn asks PostgreSQL once
            if self.second_arrived.wait(0.005) or self._second_waits_on_a_lock():
                return []
        raise AssertionError("the second reconciliation neither decided nor waited")


@pytest.mark.postgres
def test_two_processes_reconciling_at_once_adopt_and_close_each_position_once(pg_schema: str) -> None:
    seed = Ledger.open(PG_URL, schema=pg_schema)
    hold_in_ledger(seed, "TSLA", "5", "180")  # the broker no longer holds it
    hold_in_ledger(seed, "KO", "7", "55")  # an earlier KO position, long closed
    with seed.transaction() as tx:
        tx.record_external_close("KO", Decimal(7), T0 - timedelta(days=1), "sold by hand last week")
    seed.close()
    broker = PositionsOnlyBroker()
    broker.hold("KO", "100", "60.25")  # bought by hand: the ledger does not know it
    engine = sa.create_engine(PG_URL)
    rendezvous = Rendezvous(engine)
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("rendezvous", rendezvous)])
    ledgers = [Ledger.open(PG_URL, schema=pg_schema) for _ in range(2)]
    errors: list[BaseException] = []

    def reconcile(ledger: Ledger) -> None:
        try:
            Reconciler(ledger, broker, ON, plugins).run(T0)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=reconcile, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine.dispose()

    try:
        assert errors == []
        ko = ledgers[0].position("KO")
        assert ko is not None
        assert (ko.qty, ko.entry_count) == (Decimal(100), 1)  # not 200: the broker holds 100
        assert ledgers[0].position("TSLA") is None
        with ledgers[0].reading() as tx:
            events = [(e.symbol, e.kind) for e in tx.position_events()]
        assert events.count(("KO", "backfill")) == 1
        assert events.count(("TSLA", "external_close")) == 1
    finally:
        for ledger in ledgers:
            ledger.close()


class FillsMeanwhile(PositionsOnlyBroker):
    """Another process's buy fills while this one reads the broker's positions: the answer
    is the account before the fill, and the other process records its fill right after."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        super().__init__()
        self._meanwhile: Callable[[], None] | None = meanwhile

    def get_positions(self) -> Sequence[BrokerPosition]:
        before = super().get_positions()
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        return before


@pytest.mark.postgres
def test_a_fill_another_process_records_while_the_broker_is_read_is_not_closed_again(pg_schema: str) -> None:
    other = Ledger.open(PG_URL, schema=pg_schema)
    intent = OrderIntent(
        intent_key="other|KO|buy",
        symbol="KO",
        side=Side.BUY,
        purpose=IntentPurpose.ENTRY,
        created_at=T0 - timedelta(minutes=1),
        strategy="other-bot",
        qty=Decimal(10),
    )
    with other.transaction(lock_symbol="KO") as tx:
        tx.record_intent(intent)
        tx.record_order_event(intent.client_order_id, LedgerOrderStatus.SUBMITTING, T0 - timedelta(minutes=1))

    def other_bot_records_its_fill() -> None:
        with other.transaction(lock_symbol="KO") as tx:
            tx.record_fill(
                Fill(
                    execution_id="x-other-1",
                    client_order_id=intent.client_order_id,
                    broker_order_id="b-other-1",
                    symbol="KO",
                    side=Side.BUY,
                    qty=Decimal(10),
                    price=Decimal(60),
                    time=T0,
                )
            )
            tx.record_order_event(intent.client_order_id, LedgerOrderStatus.FILLED, T0)

    broker = FillsMeanwhile(other_bot_records_its_fill)
    ledger = Ledger.open(PG_URL, schema=pg_schema)
    try:
        report = Reconciler(ledger, broker, ON, Plugins(load_entrypoints=False, env={})).run(T0)

        # The broker was read as flat before the fill; the ledger read after it holds 10.
        # Closing them would lose a position the broker holds: the symbol waits instead.
        assert report.externally_closed == ()
        ko = ledger.position("KO")
        assert ko is not None
        assert ko.qty == Decimal(10)
        assert "KO" in ledger.unreconciled_symbols()
    finally:
        ledger.close()
        other.close()


# --- orders at the broker the ledger does not know ---------------------------------------------------


def hand_order(paper: PaperBroker, symbol: str, qty: str, *, limit: str | None = None) -> str:
    """Place an order as a human would, outside tradekit; return its client order id."""
    coid = f"hand-{uuid.uuid4().hex[:8]}"
    paper.submit_order(
        OrderRequest(
            client_order_id=coid,
            symbol=symbol,
            side=Side.BUY,
            order_type=OrderType.LIMIT if limit else OrderType.MARKET,
            time_in_force=TimeInForce.GTC if limit else TimeInForce.DAY,
            qty=Decimal(qty),
            limit_price=Decimal(limit) if limit else None,
        )
    )
    return coid


def test_a_position_a_working_hand_order_is_still_building_is_not_adopted_until_the_order_ends(
    tmp_path: Path,
) -> None:
    t = make_trading(tmp_path)
    t.broker.seed_position("KO", Decimal(4), Decimal(60))  # 4 of the hand order's 10 so far
    hand_order(t.broker, "KO", "6", limit="55")  # the rest still works at the broker

    report = startup(t.pipeline)

    (finding,) = report.findings
    assert (finding.symbol, finding.action) == ("KO", ReconcileAction.DEFERRED)
    assert "not placed by tradekit" in finding.reason
    assert t.ledger.position("KO") is None  # nothing adopted while it may still change
    assert "KO" in t.ledger.unreconciled_symbols()  # and no buy on it meanwhile


def test_once_the_hand_order_ends_its_symbol_is_reconciled_and_adopted_whole(tmp_path: Path) -> None:
    t = make_trading(tmp_path)
    coid = hand_order(t.broker, "KO", "10", limit="55")
    startup(t.pipeline)
    assert "KO" in t.ledger.unreconciled_symbols()

    t.broker.set_price("KO", Decimal(54), t.clock.now)  # the hand order fills
    t.pipeline.apply_events()  # its events, of an order the ledger does not know
    report = t.pipeline.reconcile_if_due()

    assert report is not None
    assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.BACKFILLED)]
    ko = t.ledger.position("KO")
    assert ko is not None
    assert ko.qty == Decimal(10)
    assert t.ledger.unreconciled_symbols() == frozenset()
    assert t.broker.get_order_by_client_id(coid) is not None


# --- a reconciliation that fails ----------------------------------------------------------------------


class PositionsDown(PaperBroker):
    positions_down = False

    def get_positions(self) -> Sequence[BrokerPosition]:
        if self.positions_down:
            raise BrokerUnavailable("GET /v2/positions timed out after 10s")
        return super().get_positions()


def test_a_startup_reconciliation_that_could_not_read_the_broker_is_tried_again_by_the_next_cycle(
    tmp_path: Path,
) -> None:
    paper = PositionsDown()
    t = make_trading(tmp_path, paper=paper)
    paper.seed_position("KO", Decimal(10), Decimal(60))  # bought by hand
    paper.positions_down = True

    failed = startup(t.pipeline)
    assert not failed.broker_ok
    assert "timed out" in (failed.error or "")

    paper.positions_down = False
    again = t.pipeline.reconcile_if_due()

    assert again is not None
    assert again.broker_ok
    assert [(f.symbol, f.action) for f in again.findings] == [("KO", ReconcileAction.BACKFILLED)]
    assert t.pipeline.reconcile_if_due() is None  # done: not again every cycle


# --- a position the broker lists at zero --------------------------------------------------------------


def at_zero(symbol: str) -> BrokerPosition:
    return BrokerPosition(symbol=symbol, qty=Decimal(0), avg_entry_price=Decimal("60"), as_of=T0)


def test_a_position_listed_at_zero_is_not_held_never_an_empty_adoption(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    hold_in_ledger(ledger, "PFE", "20", "28")
    broker = PositionsOnlyBroker([at_zero("KO"), at_zero("PFE")])
    plugins = Plugins(load_entrypoints=False, env={})

    first = Reconciler(ledger, broker, ON, plugins).run(T0)
    second = Reconciler(ledger, broker, ON, plugins).run(T0)

    assert [(f.symbol, f.action) for f in first.findings] == [("PFE", ReconcileAction.EXTERNAL_CLOSE)]
    assert second.findings == ()
    assert not second.changed_ledger
    with ledger.reading() as tx:
        assert [e.symbol for e in tx.position_events()].count("KO") == 0
    assert ledger.open_positions() == {}
    ledger.close()


class OpenOrdersDown(PositionsOnlyBroker):
    def get_open_orders(self) -> Sequence[Order]:
        raise BrokerUnavailable("GET /v2/orders?status=open: HTTP 503")


def test_open_orders_that_cannot_be_read_change_nothing_and_say_so(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "TSLA", "5", "180")
    broker = OpenOrdersDown()
    broker.hold("KO", "100", "60")

    report = Reconciler(ledger, broker, ON, Plugins(load_entrypoints=False, env={})).run(T0)

    assert not report.broker_ok
    assert "open orders could not be read" in (report.error or "")
    assert "HTTP 503" in (report.error or "")
    assert set(ledger.open_positions()) == {"TSLA"}  # nothing closed, nothing adopted
    assert ledger.unreconciled_symbols() == {"TSLA"}


def test_a_buy_in_flight_stays_blocked_when_the_broker_cannot_be_read(ledger: Ledger) -> None:
    intent = OrderIntent(
        intent_key="single|KO|sig-1|buy|1",
        symbol="KO",
        side=Side.BUY,
        purpose=IntentPurpose.ENTRY,
        created_at=T0 - timedelta(minutes=1),
        strategy="single",
        qty=Decimal(10),
    )
    with ledger.transaction() as tx:  # recorded, then the process died before the answer
        tx.record_intent(intent)
        tx.record_order_event(intent.client_order_id, LedgerOrderStatus.SUBMITTING, T0 - timedelta(minutes=1))
    broker = PositionsOnlyBroker()
    broker.fail_reads = True

    report = Reconciler(ledger, broker, ON, Plugins(load_entrypoints=False, env={})).run(T0)

    assert not report.broker_ok
    assert "KO" in report.unreconciled_broker_symbols
    assert "KO" in ledger.unreconciled_symbols()


# --- the broker holds another quantity than the ledger -------------------------------------------------


@pytest.mark.parametrize(
    ("at_broker", "action", "left"),
    [
        ("15", ReconcileAction.QUANTITY_MISMATCH, "10"),  # more
        ("5", ReconcileAction.QUANTITY_MISMATCH, "10"),  # less
        ("10.5", ReconcileAction.QUANTITY_MISMATCH, "10"),  # a fraction more (a reinvested dividend)
        ("-5", ReconcileAction.QUANTITY_MISMATCH, "10"),  # short: never taken for "flat"
        ("0", ReconcileAction.EXTERNAL_CLOSE, None),  # listed at zero: not held
        (None, ReconcileAction.EXTERNAL_CLOSE, None),  # not listed
    ],
)
def test_a_position_held_at_another_quantity_is_blocked_never_guessed(
    ledger: Ledger, at_broker: str | None, action: ReconcileAction, left: str | None
) -> None:
    hold_in_ledger(ledger, "KO", "10", "60")
    positions = [] if at_broker is None else [attrs_position("KO", at_broker)]
    broker = PositionsOnlyBroker(positions, fractionable=frozenset({"KO"}))
    plugins = Plugins(load_entrypoints=False, env={})

    report = Reconciler(ledger, broker, ON, plugins).run(T0)
    again = Reconciler(ledger, broker, ON, plugins).run(T0)

    assert [(f.symbol, f.action) for f in report.findings] == [("KO", action)]
    ko = ledger.position("KO")
    assert (ko.qty if ko is not None else None) == (Decimal(left) if left is not None else None)
    blocked = action is ReconcileAction.QUANTITY_MISMATCH
    assert ("KO" in ledger.unreconciled_symbols()) is blocked
    assert not again.changed_ledger


def attrs_position(symbol: str, qty: str) -> BrokerPosition:
    return BrokerPosition(symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal("61"), as_of=T0)


def test_a_renamed_symbol_closes_the_old_one_at_an_unknown_price_and_adopts_the_new(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "FB", "10", "300")
    broker = PositionsOnlyBroker()
    broker.hold("META", "10", "300")  # the broker renamed it; FB has no price any more

    report = Reconciler(ledger, broker, ON, Plugins(load_entrypoints=False, env={})).run(T0)

    (closed,) = report.externally_closed
    assert (closed.symbol, closed.ledger_qty, closed.price) == ("FB", Decimal(10), None)
    assert [(f.symbol, f.broker_qty) for f in report.backfilled] == [("META", Decimal(10))]
    with ledger.reading() as tx:
        (fb_close,) = [e for e in tx.position_events() if e.symbol == "FB" and e.kind == "external_close"]
    assert fb_close.price is None  # not a made-up price: the report shows it as unknown
    assert ledger.unreconciled_symbols() == frozenset()


# --- a plugin that raises ------------------------------------------------------------------------------


class Broken:
    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding]:
        raise KeyError("risk_table")


def test_a_raising_on_reconcile_plugin_is_named_changes_nothing_and_is_tried_again(tmp_path: Path) -> None:
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("house-rules", Broken())])
    t = make_trading(tmp_path, plugins=plugins)
    t.broker.seed_position("KO", Decimal(10), Decimal(60))

    with pytest.raises(HookError, match="on_reconcile plugin house-rules raised KeyError"):
        startup(t.pipeline)

    assert t.ledger.open_positions() == {}
    with t.ledger.reading() as tx:
        assert tx.last_reconciliation() is None
    with pytest.raises(HookError):  # the next cycle tries again, and says so again
        t.pipeline.reconcile_if_due()
