"""tradekit's trading-state guard binds the Type B pair trader too: its decisions see the
holds, and every leg order is asked about again right before it leaves."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxt_tests.pair_world import LONG_VENUE, SHORT_VENUE, START, PairWorld
from ccxt_tests.venues import ETH
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit.guard import ACCOUNT, Scope
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit.ledger.records import LedgerOrderStatus
from tradekit_venue_ccxt.pairs.models import SignalStatus, pair_key
from tradekit_venue_ccxt.pairs.synthetic import SeriesPoint, SyntheticPairSeries

pytestmark = pytest.mark.timeout(120)

ZERO = Decimal(0)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PairWorld]:
    started = PairWorld.start(tmp_path)
    yield started
    started.close()


@pytest.fixture
def operator(world: PairWorld) -> Iterator[TradingGuard]:
    # The operator's command line: a connection of its own to the trader's ledger.
    ledger = Ledger.open(world.url)
    yield TradingGuard(ledger=ledger)
    ledger.close()


def points() -> tuple[SeriesPoint, ...]:
    return SyntheticPairSeries.generate(seed=11, start=START, steps=3).points


def test_a_halted_account_blocks_a_pair_entry_and_resume_lets_it_in(world: PairWorld, operator: TradingGuard) -> None:
    first, second, _ = points()
    operator.halt(ACCOUNT, reason="exchange incident", actor="user:ops", at=START)
    (blocked,) = world.step(first).signals
    assert blocked.status is SignalStatus.BLOCKED
    assert blocked.action is BuyAction.BLOCK
    assert ReasonCode.TRADING_HALTED in blocked.reasons
    assert world.venue_qty() == (ZERO, ZERO)
    operator.resume(ACCOUNT, reason="over", actor="user:ops", at=first.time)
    report = world.step(second, event_id="evt-2")
    assert [s.action for s in report.signals if s.status is SignalStatus.ACTED] == [BuyAction.ENTER_NEW]
    long_qty, short_qty = world.venue_qty()
    assert long_qty > 0
    assert short_qty == -long_qty


@pytest.mark.parametrize(
    "scope",
    [Scope.symbol(pair_key(ETH, LONG_VENUE, SHORT_VENUE)), Scope.symbol(ETH)],
    ids=["the pair", "its instrument"],
)
def test_a_halt_landing_before_the_first_leg_leaves_sends_no_leg(
    world: PairWorld, operator: TradingGuard, scope: Scope, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.store is not None
    record = world.store.record_leg_order

    def halt_then_record(order: Any) -> None:
        # The decision is made; the first leg is planned: the operator halts now.
        operator.halt(scope, reason="stop", actor="user:ops", at=START)
        record(order)

    monkeypatch.setattr(world.store, "record_leg_order", halt_then_record)
    first, _, _ = points()
    report = world.step(first)
    assert [s.action for s in report.signals] == [BuyAction.ENTER_NEW]
    assert report.entries_opened == ()
    assert world.venue_qty() == (ZERO, ZERO)
    pair = world.only_pair()
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        statuses = [tx.intent_state(o.client_order_id) for o in pair.leg_orders]
    assert [s.status for s in statuses if s is not None] == [LedgerOrderStatus.NOT_SENT]
