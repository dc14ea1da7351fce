"""The acceptance scenario of the ledger issue: the bot crashed after buying KO and PFE.

The broker holds KO and PFE, the ledger is empty. Startup reconciliation backfills both with
one entry each; the next day the strategy signals KO again: SCALE_IN only if the policy
allows it and the cooldown has passed, SKIP otherwise, and with the default policy never
ENTER_NEW. With backfill disabled the same signal is BLOCKed as unreconciled. A ledger
position for TSLA that the broker no longer holds is closed as EXTERNAL_CLOSE.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit import BuyAction, ReasonCode, Strategy, StrategyScalingPolicy, StrategyView
from tradekit.broker.paper import PaperBroker
from tradekit.config import ReconciliationSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Fill, Side, Signal
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import IntentPurpose, Ledger, OrderIntent
from tradekit.plugins import Plugins
from tradekit.reconcile import ReconcileAction, Reconciler

STARTUP = datetime(2024, 3, 4, 14, 0, tzinfo=UTC)  # Monday, before the open
NEXT_DAY = datetime(2024, 3, 5, 14, 35, tzinfo=UTC)


class Pyramid(Strategy):
    name = "pyr"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4)

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class SingleEntry(Strategy):
    name = "single"  # declares no policy

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = STARTUP

    def __call__(self) -> datetime:
        return self.now


def crashed_bot(tmp_path: Path, reconciliation: ReconciliationSettings) -> tuple[OrderPipeline, Clock, PaperBroker]:
    broker = PaperBroker()
    broker.set_price("KO", Decimal("60.50"), STARTUP - timedelta(hours=17))
    broker.set_price("PFE", Decimal("28.20"), STARTUP - timedelta(hours=17))
    broker.seed_position("KO", Decimal(40), Decimal("60.10"))
    broker.seed_position("PFE", Decimal(70), Decimal("28.00"))
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    clock = Clock()
    settings = Settings(reconciliation=reconciliation)
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=settings,
        plugins=Plugins(load_entrypoints=False, env={}),
        calendar=TradingCalendar(),
        clock=clock,
    )
    pipeline.recover()
    Reconciler(ledger, broker, reconciliation, pipeline.plugins).run(clock.now)
    return pipeline, clock, broker


def ko_signal(at: datetime) -> Signal:
    return Signal(
        symbol="KO",
        side=Side.BUY,
        confidence=5,
        generated_at=at - timedelta(hours=17),
        reference_price=Decimal("60.50"),
        source="strategy",
    )


def test_startup_backfills_ko_and_pfe_with_one_entry_each(tmp_path: Path) -> None:
    pipeline, _, _ = crashed_bot(tmp_path, ReconciliationSettings())
    positions = pipeline.ledger.open_positions()
    assert {s: (p.entry_count, p.qty) for s, p in positions.items()} == {
        "KO": (1, Decimal(40)),
        "PFE": (1, Decimal(70)),
    }
    assert all(p.is_backfilled for p in positions.values())
    assert pipeline.ledger.unreconciled_symbols() == frozenset()


def test_next_day_ko_signal_scales_in_when_the_policy_allows_and_cooldown_passed(tmp_path: Path) -> None:
    pipeline, clock, broker = crashed_bot(tmp_path, ReconciliationSettings())
    clock.now = NEXT_DAY
    broker.set_price("KO", Decimal("60.50"), NEXT_DAY)
    outcome = pipeline.process_buy(ko_signal(NEXT_DAY), Pyramid, MarketSnapshot(price=Decimal("60.50"), as_of=NEXT_DAY))
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.SCALE_IN
    ko = pipeline.ledger.position("KO")
    assert ko is not None
    assert ko.entry_count == 2


def test_same_day_ko_signal_is_skipped_for_the_cooldown(tmp_path: Path) -> None:
    pipeline, clock, _ = crashed_bot(tmp_path, ReconciliationSettings())
    clock.now = STARTUP + timedelta(hours=1)
    outcome = pipeline.process_buy(
        ko_signal(clock.now), Pyramid, MarketSnapshot(price=Decimal("60.50"), as_of=clock.now)
    )
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.SKIP
    assert ReasonCode.ENTRY_COOLDOWN in outcome.decision.reasons


@pytest.mark.parametrize("when", [STARTUP + timedelta(hours=1), NEXT_DAY])
def test_with_the_default_policy_ko_is_never_entered_again(tmp_path: Path, when: datetime) -> None:
    pipeline, clock, broker = crashed_bot(tmp_path, ReconciliationSettings())
    clock.now = when
    outcome = pipeline.process_buy(ko_signal(when), SingleEntry, MarketSnapshot(price=Decimal("60.50"), as_of=when))
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert ReasonCode.SCALING_NOT_PERMITTED in outcome.decision.reasons
    assert broker.received_orders == ()


def test_with_backfill_disabled_the_ko_signal_is_blocked_as_unreconciled(tmp_path: Path) -> None:
    pipeline, clock, broker = crashed_bot(tmp_path, ReconciliationSettings(backfill_enabled=False))
    clock.now = NEXT_DAY
    outcome = pipeline.process_buy(ko_signal(NEXT_DAY), Pyramid, MarketSnapshot(price=Decimal("60.50"), as_of=NEXT_DAY))
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert outcome.decision.reasons[0] is ReasonCode.UNRECONCILED_BROKER_POSITION
    assert broker.received_orders == ()


def test_tsla_in_the_ledger_but_not_at_the_broker_is_closed_as_external_close(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    intent = OrderIntent(
        intent_key="old|TSLA",
        symbol="TSLA",
        side=Side.BUY,
        purpose=IntentPurpose.ENTRY,
        created_at=STARTUP - timedelta(days=5),
        strategy="pyr",
        qty=Decimal(5),
    )
    with ledger.transaction() as tx:
        tx.record_intent(intent)
        tx.record_fill(
            Fill(
                execution_id="x1",
                client_order_id=intent.client_order_id,
                broker_order_id="b1",
                symbol="TSLA",
                side=Side.BUY,
                qty=Decimal(5),
                price=Decimal(180),
                time=intent.created_at,
            )
        )
    ledger.close()
    pipeline, _, _ = crashed_bot(tmp_path, ReconciliationSettings())
    assert pipeline.ledger.position("TSLA") is None
    with pipeline.ledger.reading() as tx:
        report = tx.last_reconciliation()
    assert report is not None
    (closed,) = report.externally_closed
    assert (closed.symbol, closed.action, closed.ledger_qty) == ("TSLA", ReconcileAction.EXTERNAL_CLOSE, Decimal(5))
