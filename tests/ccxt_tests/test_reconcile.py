"""Venue positions go through tradekit's core reconciler like any broker's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ccxt_tests.venues import BTC, ETH, VENUES, new_emulator, set_book, sync_venue
from emulators._perp_book import PerpVenueEmulator
from tradekit.config.settings import ReconciliationSettings
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile.reconciler import Reconciler
from tradekit.reconcile.report import ReconcileAction

NOW = datetime(2025, 1, 6, tzinfo=UTC)


@pytest.fixture(params=VENUES)
def emulator(request: pytest.FixtureRequest) -> Iterator[tuple[str, PerpVenueEmulator]]:
    with new_emulator(str(request.param)) as emulator:
        set_book(emulator, ETH, Decimal(3000))
        set_book(emulator, BTC, Decimal(60000))
        yield str(request.param), emulator


def test_long_is_adopted_short_is_blocked_and_a_second_run_changes_nothing(
    emulator: tuple[str, PerpVenueEmulator], tmp_path: Path
) -> None:
    venue_name, emu = emulator
    emu.seed_position(ETH, "0.5", 2950)
    emu.seed_position(BTC, "-0.01", 61000)
    venue = sync_venue(emu, venue_name)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", for_trading=True)
    try:
        reconciler = Reconciler(ledger, venue, ReconciliationSettings(), Plugins(load_entrypoints=False, env={}))
        report = reconciler.run(NOW)
        again = reconciler.run(NOW)
        position = ledger.position(ETH)
    finally:
        ledger.close()
        venue.close()

    assert report.broker == f"ccxt-{venue_name}"
    assert [(f.symbol, f.broker_qty, f.price) for f in report.backfilled] == [(ETH, Decimal("0.5"), Decimal(2950))]
    assert report.unreconciled_broker_symbols == {BTC}
    assert position is not None
    assert position.qty == Decimal("0.5")
    assert not again.changed_ledger
    assert {f.symbol: f.action for f in again.findings}[ETH] is ReconcileAction.IN_SYNC


def test_unreachable_venue_blocks_everything_and_closes_nothing(
    emulator: tuple[str, PerpVenueEmulator], tmp_path: Path
) -> None:
    venue_name, emu = emulator
    emu.seed_position(ETH, "0.5", 2950)
    venue = sync_venue(emu, venue_name)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", for_trading=True)
    try:
        reconciler = Reconciler(ledger, venue, ReconciliationSettings(), Plugins(load_entrypoints=False, env={}))
        reconciler.run(NOW)
        emu.stop()
        report = reconciler.run(NOW)
        position = ledger.position(ETH)
    finally:
        ledger.close()
        venue.close()

    assert not report.broker_ok
    assert ETH in report.unreconciled_broker_symbols
    assert position is not None
    assert position.qty == Decimal("0.5")
