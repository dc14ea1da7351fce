"""Reconciliation on Alpaca while orders are still working: a hand order half filled at a
restart, tradekit's own order half filled while it was down, an answer missing a field.

The failures these prevent: adopting the part of a position a hand order has bought so far
and then finding it mismatched for good; counting a fill twice when the stream (or the
recovery poll) reports again what the restart's lookup already recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.config import Settings
from tradekit.decision.context import MarketSnapshot
from tradekit.domain import Side, Signal
from tradekit.execution.pipeline import OrderPipeline
from tradekit.execution.session import startup
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.plugins import Plugins
from tradekit.reconcile import ReconcileAction
from tradekit_broker_alpaca.execution import AlpacaBroker
from tradekit_strategies_examples.breakout import SingleEntryBreakout

from .conftest import MakeBroker, wait_for_stream_delivery

# Tuesday 2024-03-05, five minutes after the open.
IN_SESSION = datetime(2024, 3, 5, 14, 35, tzinfo=UTC)


class Crash(Exception):
    """Stands in for the process dying at a chosen step."""


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def market(emu: AlpacaEmulator) -> AlpacaEmulator:
    """KO trades at 60 in an open session; market orders rest until the test fills them."""
    emu.set_time(IN_SESSION)
    emu.set_asset("KO", name="Coca-Cola")
    emu.set_price("KO", Decimal(60))
    emu.set_fill_policy(auto_fill_market=False)
    return emu


def pipeline_on(
    ledger: Ledger,
    broker: AlpacaBroker,
    emu: AlpacaEmulator,
    plugins: Plugins,
    on_step: Callable[[str], None] | None = None,
) -> OrderPipeline:
    return OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=Settings(),
        plugins=plugins,
        calendar=TradingCalendar(),
        clock=lambda: emu.now,
        on_step=on_step,
    )


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(ledger_url)
    yield opened
    opened.close()


def events_until_idle(pipeline: OrderPipeline, broker: AlpacaBroker, emu: AlpacaEmulator) -> None:
    """Apply every trade update the emulator delivered so far."""
    wait_for_stream_delivery(broker, emu)
    pipeline.apply_events()


def stream_received(broker: AlpacaBroker, count: int) -> None:
    """Wait (on a condition, bounded) until the broker's stream received ``count`` trade updates."""
    pause = threading.Event()
    received = 0
    for _ in range(1000):
        status = broker.stream_status()
        assert status is not None, "the broker's stream is switched off"
        received = status.updates_received
        if received >= count:
            return
        pause.wait(0.005)
    raise AssertionError(f"the stream received {received} of {count} trade updates")


def test_a_hand_order_half_filled_at_startup_is_adopted_whole_once_it_ends(
    market: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    placed = market.submit_dashboard_order("KO", "buy", qty=Decimal(10))
    market.fill_order(placed["id"], qty=Decimal(4))  # 4 of 10 bought by hand so far
    pipeline = pipeline_on(ledger, broker, market, tradekit_plugins)

    report = startup(pipeline)

    assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.DEFERRED)]
    assert placed["client_order_id"] in report.findings[0].reason
    assert ledger.position("KO") is None
    assert "KO" in ledger.unreconciled_symbols()

    market.fill_order(placed["id"])  # the other 6
    events_until_idle(pipeline, broker, market)
    again = pipeline.reconcile_if_due()

    assert again is not None
    assert [(f.symbol, f.action, f.broker_qty) for f in again.findings] == [
        ("KO", ReconcileAction.BACKFILLED, Decimal(10))
    ]
    assert ledger.unreconciled_symbols() == frozenset()
    assert market.order_post_count == 0  # reconciliation never trades


def test_fills_of_tradekits_order_missed_while_down_are_counted_once_when_reported_again(
    market: AlpacaEmulator, make_broker: MakeBroker, ledger_url: str, tradekit_plugins: Plugins
) -> None:
    def die_once_sent(step: str) -> None:
        if step == "sent":
            raise Crash(step)

    first = make_broker(stream=False)
    ledger = Ledger.open(ledger_url)
    signal = Signal(
        symbol="KO",
        side=Side.BUY,
        confidence=5,
        generated_at=IN_SESSION - timedelta(minutes=1),
        reference_price=Decimal(60),
        source=SingleEntryBreakout.name,
    )
    with pytest.raises(Crash):
        pipeline_on(ledger, first, market, tradekit_plugins, on_step=die_once_sent).process_buy(
            signal, SingleEntryBreakout, MarketSnapshot(price=Decimal(60), as_of=IN_SESSION)
        )
    with ledger.reading() as tx:
        (in_flight,) = tx.pending_intents()
    coid = in_flight.intent.client_order_id
    qty = in_flight.intent.qty
    assert qty is not None
    assert qty > 2
    first.close()
    ledger.close()
    (sent,) = market.orders_with_client_id(coid)
    market.fill_order(sent["id"], qty=Decimal(2))  # while tradekit is down

    ledger = Ledger.open(ledger_url)
    broker = make_broker(poll_interval_seconds=0)  # the stream, and a recovery poll at every drain
    delivered_before = len(market.trade_updates())
    pipeline = pipeline_on(ledger, broker, market, tradekit_plugins)
    try:
        report = startup(pipeline)  # the lookup finds it half filled and reads its fill
        assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.DEFERRED)]
        assert ledger.position("KO") is not None

        with ledger.reading() as tx:
            (recorded,) = [f.execution_id for f, _ in tx.fills_with_purpose(["KO"])]
        market.fill_order(sent["id"])  # the rest: the stream and the poll report the order's executions
        stream_received(broker, len(market.trade_updates()) - delivered_before)
        reported = broker.drain_events()
        assert recorded in {e.fill.execution_id for e in reported if e.fill is not None}  # a replay
        pipeline.apply_events(reported)
        pipeline.settle_pending()
        pipeline.apply_events()
        pipeline.reconcile_if_due()

        with ledger.reading() as tx:
            state = tx.intent_state(coid)
            fills = [f for f, _ in tx.fills_with_purpose(["KO"])]
        assert state is not None
        assert (state.status, state.filled_qty) == (LedgerOrderStatus.FILLED, qty)
        assert sum((f.qty for f in fills), Decimal(0)) == qty  # each execution once
        ko = ledger.position("KO")
        assert ko is not None
        assert ko.qty == qty == Decimal(market.positions()[0]["qty"])
        assert ledger.unreconciled_symbols() == frozenset()
        assert market.order_post_count == 1
    finally:
        ledger.close()


def test_positions_missing_a_field_leave_the_ledger_as_it_was_and_say_which_field(
    market: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    market.set_position("KO", Decimal(10), Decimal(60))
    market.set_position("PFE", Decimal(20), Decimal(28))
    pipeline = pipeline_on(ledger, broker, market, tradekit_plugins)
    startup(pipeline)
    market.set_position("PFE", Decimal(0), Decimal(28))  # sold by hand
    market.arm_malformed_response(endpoint="GET /v2/positions", drop_fields=["avg_entry_price"])

    report = pipeline.reconcile()

    assert not report.broker_ok
    assert "avg_entry_price" in (report.error or "")
    assert set(ledger.open_positions()) == {"KO", "PFE"}  # nothing closed on a broken answer
    assert {"KO", "PFE"} <= ledger.unreconciled_symbols()  # and no buy on them meanwhile
    again = pipeline.reconcile_if_due()  # the next cycle tries again
    assert again is not None
    assert [(f.symbol, f.action) for f in again.externally_closed] == [("PFE", ReconcileAction.EXTERNAL_CLOSE)]
    assert ledger.unreconciled_symbols() == frozenset()
