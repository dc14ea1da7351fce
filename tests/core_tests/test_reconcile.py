"""Reconciliation: the broker is the source of truth, and a failed read is never "flat"."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit import hookimpl
from tradekit.config import ReconciliationSettings
from tradekit.domain import EntryOrigin, Fill, Side
from tradekit.ledger import IntentPurpose, Ledger, LedgerOrderStatus, OrderIntent
from tradekit.plugins import Plugins
from tradekit.reconcile import ReconcileAction, ReconcileFinding, Reconciler, ReconcileReport

from .conftest import LedgerFactory
from .doubles import PositionsOnlyBroker

T0 = datetime(2024, 3, 4, 14, 0, tzinfo=UTC)
PLUGINS = Plugins(load_entrypoints=False, env={})
ON = ReconciliationSettings()


def hold_in_ledger(ledger: Ledger, symbol: str, qty: str, price: str, *, key: str | None = None) -> None:
    intent = OrderIntent(
        intent_key=key or f"seed|{symbol}",
        symbol=symbol,
        side=Side.BUY,
        purpose=IntentPurpose.ENTRY,
        created_at=T0 - timedelta(days=3),
        strategy="pyr",
        qty=Decimal(qty),
    )
    with ledger.transaction() as tx:
        tx.record_intent(intent)
        tx.record_order_event(intent.client_order_id, LedgerOrderStatus.FILLED, T0 - timedelta(days=3))
        tx.record_fill(
            Fill(
                execution_id=f"x-{intent.client_order_id}",
                client_order_id=intent.client_order_id,
                broker_order_id="b",
                symbol=symbol,
                side=Side.BUY,
                qty=Decimal(qty),
                price=Decimal(price),
                time=T0 - timedelta(days=3),
            )
        )


def reconcile(ledger: Ledger, broker: PositionsOnlyBroker, settings: ReconciliationSettings = ON) -> ReconcileReport:
    return Reconciler(ledger, broker, settings, PLUGINS).run(T0)


def test_broker_only_positions_are_backfilled_with_one_entry(ledger: Ledger) -> None:
    broker = PositionsOnlyBroker()
    broker.hold("KO", "100", "60.25")
    broker.hold("PFE", "200", "28.10")
    report = reconcile(ledger, broker)
    assert {f.symbol for f in report.backfilled} == {"KO", "PFE"}
    assert report.unreconciled_broker_symbols == frozenset()
    ko = ledger.position("KO")
    assert ko is not None
    assert (ko.entry_count, ko.qty, ko.average_price, ko.strategy) == (1, Decimal(100), Decimal("60.25"), None)
    assert ko.entries[0].origin is EntryOrigin.BACKFILL
    assert ko.entries[0].confidence is None
    assert ko.last_entry_time == T0  # unknown entry time: the moment it was adopted


def test_ledger_position_missing_at_the_broker_is_closed_as_external_close(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "TSLA", "5", "180")
    report = reconcile(ledger, PositionsOnlyBroker())
    (closed,) = report.externally_closed
    assert (closed.symbol, closed.ledger_qty) == ("TSLA", Decimal(5))
    assert ledger.position("TSLA") is None
    with ledger.reading() as tx:
        stored = tx.last_reconciliation()
    assert stored is not None
    assert [(f.symbol, f.action) for f in stored.findings] == [("TSLA", ReconcileAction.EXTERNAL_CLOSE)]


def test_backfill_disabled_leaves_the_symbol_unreconciled(ledger: Ledger) -> None:
    broker = PositionsOnlyBroker()
    broker.hold("KO", "100", "60")
    report = reconcile(ledger, broker, ReconciliationSettings(backfill_enabled=False))
    assert report.unreconciled_broker_symbols == {"KO"}
    assert ledger.position("KO") is None
    assert ledger.unreconciled_symbols() == {"KO"}


def test_short_and_odd_lot_positions_are_not_adopted(ledger: Ledger) -> None:
    broker = PositionsOnlyBroker(fractionable=frozenset({"AAPL"}))
    broker.hold("GME", "-10", "20")
    broker.hold("BRK.A", "0.5", "600000")
    broker.hold("AAPL", "0.5", "180")
    report = reconcile(ledger, broker)
    assert report.unreconciled_broker_symbols == {"GME", "BRK.A"}
    assert {f.symbol for f in report.backfilled} == {"AAPL"}


def test_quantity_mismatch_is_reported_and_blocked_not_guessed(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "KO", "100", "60")
    broker = PositionsOnlyBroker()
    broker.hold("KO", "150", "61")
    report = reconcile(ledger, broker)
    (mismatch,) = report.quantity_mismatches
    assert (mismatch.broker_qty, mismatch.ledger_qty) == (Decimal(150), Decimal(100))
    assert ledger.unreconciled_symbols() == {"KO"}
    pos = ledger.position("KO")
    assert pos is not None
    assert pos.qty == Decimal(100)


def test_a_failed_broker_read_is_never_taken_as_flat(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "KO", "100", "60")
    broker = PositionsOnlyBroker()
    broker.fail_reads = True
    report = reconcile(ledger, broker)
    assert not report.broker_ok
    assert report.error is not None
    assert "timed out" in report.error
    assert report.externally_closed == ()
    pos = ledger.position("KO")
    assert pos is not None  # not closed
    assert ledger.unreconciled_symbols() == {"KO"}  # and buys on it are blocked


def test_a_failed_read_keeps_earlier_blocks(ledger: Ledger) -> None:
    broker = PositionsOnlyBroker()
    broker.hold("GME", "-1", "20")
    reconcile(ledger, broker)
    broker.fail_reads = True
    reconcile(ledger, broker)
    assert ledger.unreconciled_symbols() == {"GME"}


def test_a_later_successful_reconciliation_clears_blocks(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "KO", "100", "60")
    broker = PositionsOnlyBroker()
    broker.hold("KO", "100", "60")
    broker.fail_reads = True
    reconcile(ledger, broker)
    broker.fail_reads = False
    reconcile(ledger, broker)
    assert ledger.unreconciled_symbols() == frozenset()


def test_mark_unknown_closed_off_blocks_instead_of_closing(ledger: Ledger) -> None:
    hold_in_ledger(ledger, "TSLA", "5", "180")
    report = reconcile(ledger, PositionsOnlyBroker(), ReconciliationSettings(mark_unknown_closed=False))
    assert report.externally_closed == ()
    assert ledger.unreconciled_symbols() == {"TSLA"}


class BlockMemeStocks:
    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding]:
        return [
            ReconcileFinding(symbol=f.symbol, action=ReconcileAction.UNRECONCILED, reason="house rule", source="memes")
            for f in report.findings
            if f.symbol == "GME"
        ]


def test_a_plugin_can_add_blocks_through_on_reconcile(ledger: Ledger) -> None:
    broker = PositionsOnlyBroker()
    broker.hold("GME", "10", "20")
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("memes", BlockMemeStocks())])
    report = Reconciler(ledger, broker, ON, plugins).run(T0)
    assert "GME" in report.unreconciled_broker_symbols
    assert ledger.unreconciled_symbols() == {"GME"}


class AdoptEverything:
    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding]:
        return [ReconcileFinding(symbol="X", action=ReconcileAction.BACKFILLED, reason="?", broker_qty=Decimal(1))]


def test_a_plugin_cannot_change_the_ledger_through_on_reconcile(ledger: Ledger) -> None:
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("adopt", AdoptEverything())])
    with pytest.raises(ValueError, match="only add UNRECONCILED"):
        Reconciler(ledger, PositionsOnlyBroker(), ON, plugins).run(T0)
    assert ledger.open_positions() == {}


_EXAMPLE = itertools.count()
symbols = st.sampled_from(["KO", "PFE", "TSLA", "AAPL", "GME", "IBM"])
quantities = st.sampled_from(["-5", "0.5", "1", "10", "100"])
holdings = st.dictionaries(symbols, quantities, max_size=6)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], max_examples=40)
@given(broker_holds=holdings, ledger_holds=holdings, backfill=st.booleans(), close_unknown=st.booleans())
def test_reconciling_twice_changes_nothing_the_second_time(
    ledger_factory: LedgerFactory,
    broker_holds: dict[str, str],
    ledger_holds: dict[str, str],
    backfill: bool,
    close_unknown: bool,
) -> None:
    ledger = ledger_factory()
    run = next(_EXAMPLE)
    with ledger.transaction() as tx:  # start each example from a flat ledger
        for symbol, pos in tx.open_positions().items():
            tx.record_external_close(symbol, pos.qty, T0, "reset between examples")
    for symbol, qty in ledger_holds.items():
        if Decimal(qty) > 0:
            hold_in_ledger(ledger, symbol, qty, "10", key=f"seed|{symbol}|{run}")
    broker = PositionsOnlyBroker(fractionable=frozenset({"AAPL"}))
    for symbol, qty in broker_holds.items():
        broker.hold(symbol, qty, "10")
    settings_ = ReconciliationSettings(backfill_enabled=backfill, mark_unknown_closed=close_unknown)
    reconcile(ledger, broker, settings_)
    positions, blocked = ledger.open_positions(), ledger.unreconciled_symbols()
    second = reconcile(ledger, broker, settings_)
    assert not second.changed_ledger
    assert ledger.open_positions() == positions
    assert ledger.unreconciled_symbols() == blocked


def test_warm_and_cold_restarts_end_in_the_same_positions_and_blocks(ledger_factory: LedgerFactory) -> None:
    broker = PositionsOnlyBroker()
    broker.hold("KO", "100", "60")
    broker.hold("PFE", "200", "28")
    broker.hold("GME", "-3", "20")
    warm = ledger_factory()
    hold_in_ledger(warm, "KO", "100", "60")
    hold_in_ledger(warm, "TSLA", "5", "180")
    reconcile(warm, broker)
    cold = Ledger.open("sqlite:///:memory:")
    reconcile(cold, broker)
    quantities = {s: p.qty for s, p in warm.open_positions().items()}
    assert quantities == {s: p.qty for s, p in cold.open_positions().items()} == {"KO": 100, "PFE": 200}
    assert warm.unreconciled_symbols() == cold.unreconciled_symbols() == {"GME"}
    cold.close()


def test_reconciliation_never_sends_or_cancels_orders(ledger: Ledger) -> None:
    broker = PositionsOnlyBroker()
    broker.hold("KO", "1", "1")
    reconcile(ledger, broker)  # PositionsOnlyBroker fails the test on any order call
    assert broker.calls == 1
