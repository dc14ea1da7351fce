"""Alpaca positions through tradekit's reconciler: positions opened by hand are adopted or blocked.

The failure this prevents: the bot restarts, does not see a position a human opened in the
Alpaca dashboard, and buys it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.config import ReconciliationSettings
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit.domain import EntryOrigin
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile import ReconcileAction, ReconcileReport
from tradekit.reconcile.reconciler import Reconciler
from tradekit.testing import make_context
from tradekit_broker_alpaca.execution import AlpacaBroker

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


@pytest.fixture
def hand_opened(emu: AlpacaEmulator) -> AlpacaEmulator:
    """An account where a human bought KO, PFE and some AAPL and shorted TSLA by hand."""
    for symbol, price in (("KO", "60.25"), ("PFE", "28.10"), ("TSLA", "180")):
        emu.set_asset(symbol)
        emu.set_price(symbol, Decimal(price))
    emu.set_position("KO", Decimal(100), Decimal("60.25"))
    emu.set_position("AAPL", Decimal("0.5"), Decimal("149.5"))
    emu.set_position("BRK.A", Decimal("0.25"), Decimal("590"))
    emu.set_position("TSLA", Decimal(-5), Decimal(180))
    emu.submit_dashboard_order("PFE", "buy", qty=Decimal(200))
    return emu


def reconcile(ledger: Ledger, broker: AlpacaBroker, plugins: Plugins) -> ReconcileReport:
    return Reconciler(ledger, broker, ReconciliationSettings(), plugins).run(NOW)


def test_positions_opened_by_hand_are_backfilled_at_alpacas_average_price(
    hand_opened: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    report = reconcile(ledger, broker, tradekit_plugins)

    assert report.broker_ok
    assert {f.symbol: f.price for f in report.backfilled} == {
        "AAPL": Decimal("149.5"),
        "KO": Decimal("60.25"),
        "PFE": Decimal("28.1"),
    }
    ko = ledger.position("KO")
    assert ko is not None
    assert (ko.qty, ko.entry_count, ko.average_price, ko.strategy) == (Decimal(100), 1, Decimal("60.25"), None)
    assert ko.entries[0].origin is EntryOrigin.BACKFILL


def test_short_and_odd_lot_positions_opened_by_hand_are_left_unreconciled(
    hand_opened: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    report = reconcile(ledger, broker, tradekit_plugins)

    unreconciled = {f.symbol: f.reason for f in report.findings if f.action is ReconcileAction.UNRECONCILED}
    assert set(unreconciled) == {"TSLA", "BRK.A"}
    assert "short position" in unreconciled["TSLA"]
    assert "odd lot" in unreconciled["BRK.A"]
    assert report.unreconciled_broker_symbols == frozenset({"TSLA", "BRK.A"})
    assert ledger.position("TSLA") is None


def test_reconciling_twice_changes_nothing_the_second_time(
    hand_opened: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    reconcile(ledger, broker, tradekit_plugins)

    again = reconcile(ledger, broker, tradekit_plugins)

    assert not again.changed_ledger
    assert {f.symbol for f in again.findings if f.action is ReconcileAction.IN_SYNC} == {"AAPL", "KO", "PFE"}
    assert again.unreconciled_broker_symbols == frozenset({"TSLA", "BRK.A"})


def test_a_buy_signal_on_a_hand_opened_position_is_never_a_new_entry(
    hand_opened: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    report = reconcile(ledger, broker, tradekit_plugins)
    at_alpaca = {p.symbol: p for p in broker.get_positions()}

    decisions = {
        symbol: evaluate_buy(
            make_context(
                symbol=symbol,
                position=ledger.position(symbol),
                broker_qty=at_alpaca[symbol].qty,
                price=at_alpaca[symbol].current_price,
                unreconciled=report.unreconciled_broker_symbols,
                now=NOW,
            ),
            plugins=tradekit_plugins,
        )
        for symbol in ("KO", "PFE", "TSLA", "BRK.A")
    }

    assert {symbol: d.action for symbol, d in decisions.items()} == dict.fromkeys(decisions, BuyAction.BLOCK)
    assert ReasonCode.UNRECONCILED_BROKER_POSITION in decisions["TSLA"].reasons
    assert all(d.entry_count == 1 for d in (decisions["KO"], decisions["PFE"]))


def test_positions_that_cannot_be_read_are_never_taken_as_flat(
    hand_opened: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    reconcile(ledger, broker, tradekit_plugins)
    hand_opened.arm_error(503, endpoint="GET /v2/positions")

    report = reconcile(ledger, broker, tradekit_plugins)

    assert not report.broker_ok
    assert report.error is not None
    assert "HTTP 503" in report.error
    assert report.findings == ()
    assert {"KO", "PFE", "AAPL"} <= report.unreconciled_broker_symbols
    assert set(ledger.open_positions()) == {"AAPL", "KO", "PFE"}
