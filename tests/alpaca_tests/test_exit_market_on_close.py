"""A missed exit window escalated to market-on-close, against the Alpaca emulator.

Alpaca takes fractional orders as DAY orders only: the escalation of a fractional position
goes out as its whole shares on close plus the fraction as a DAY market order, and the exit
is executed that day instead of being refused and held overnight. A limit sell in the window
whose POST got no answer goes out market-on-close under its own client order id: the lost POST,
arriving later, is refused as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import DuplicateClientOrderId
from tradekit.config import ExitSettings, MissedWindow, ReconciliationSettings, Settings
from tradekit.domain import OrderRequest, OrderType, Side, Signal, TimeInForce, Urgency
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits import ExitState
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile.reconciler import Reconciler
from tradekit_broker_alpaca.execution import AlpacaBroker

# Monday 2026-03-02 after the close; Tuesday's exit window (14:35-15:00 UTC) closes unexecuted.
MONDAY_EVENING = datetime(2026, 3, 2, 21, 15, tzinfo=UTC)
TUESDAY_WINDOW = datetime(2026, 3, 3, 14, 36, tzinfo=UTC)
TUESDAY_AFTERNOON = datetime(2026, 3, 3, 16, 0, tzinfo=UTC)
TUESDAY_AFTER_CLOSE = datetime(2026, 3, 3, 21, 5, tzinfo=UTC)
HELD = Decimal("33.333333333")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


def held(emu: AlpacaEmulator, ledger: Ledger) -> tuple[Decimal, Decimal]:
    position = ledger.position("AAPL")
    at_alpaca = {p["symbol"]: Decimal(p["qty"]) for p in emu.positions()}
    return (position.qty if position is not None else Decimal(0), at_alpaca.get("AAPL", Decimal(0)))


def test_a_fractional_position_missing_its_window_is_sold_on_alpaca_that_day(
    emu: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    emu.set_time(MONDAY_EVENING)
    emu.set_position("AAPL", HELD, Decimal(150))
    emu.set_fill_policy(auto_fill_market=False)  # the test says when each order executes
    settings = Settings(exits=ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=settings,
        plugins=tradekit_plugins,
        calendar=TradingCalendar(),
        clock=lambda: emu.now,
    )
    Reconciler(ledger, broker, ReconciliationSettings(), tradekit_plugins).run(MONDAY_EVENING)
    assert held(emu, ledger) == (HELD, HELD)
    sell = Signal(
        symbol="AAPL",
        side=Side.SELL,
        confidence=5,
        generated_at=MONDAY_EVENING,
        reference_price=Decimal(150),
        source="test",
        urgency=Urgency.PLANNED,
    )
    pipeline.plan_exit(sell)

    emu.set_time(TUESDAY_AFTERNOON)  # the process was down through the window
    (outcome,) = pipeline.execute_due_exits({"AAPL": Decimal(150)})

    assert outcome.intent is not None
    assert outcome.intent.state is ExitState.SUBMITTED
    orders = [o for o in emu.orders() if o["side"] == "sell"]
    assert [(o["time_in_force"], o["type"], Decimal(o["qty"])) for o in orders] == [
        ("cls", "market", Decimal(33)),
        ("day", "market", Decimal("0.333333333")),
    ]
    whole, fraction = orders
    emu.fill_order(fraction["id"], price=Decimal(151))  # the fraction executes at once
    pipeline.settle_pending()
    assert held(emu, ledger) == (Decimal(33), Decimal(33))
    with ledger.reading() as tx:
        waiting = tx.exit_intent(outcome.intent.intent_id)
    assert waiting is not None
    assert waiting.state is ExitState.SUBMITTED  # the whole shares wait for the close

    emu.set_time(TUESDAY_AFTER_CLOSE)
    emu.fill_order(whole["id"], price=Decimal(152))  # the closing auction
    pipeline.settle_pending()

    with ledger.reading() as tx:
        exit_intent = tx.exit_intent(outcome.intent.intent_id)
    assert exit_intent is not None
    assert exit_intent.state is ExitState.EXECUTED
    assert held(emu, ledger) == (Decimal(0), Decimal(0))
    assert len([o for o in emu.orders() if o["side"] == "sell"]) == 2


def test_a_lost_limit_sell_escalated_on_alpaca_goes_out_under_its_client_order_id_and_sells_once(
    emu: AlpacaEmulator, broker: AlpacaBroker, ledger: Ledger, tradekit_plugins: Plugins
) -> None:
    emu.set_time(MONDAY_EVENING)
    emu.set_account(shorting_enabled=True)  # a second sell would open a short, not be refused
    emu.set_position("AAPL", Decimal(10), Decimal(150))
    emu.set_fill_policy(auto_fill_market=False)
    settings = Settings(exits=ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=settings,
        plugins=tradekit_plugins,
        calendar=TradingCalendar(),
        clock=lambda: emu.now,
    )
    Reconciler(ledger, broker, ReconciliationSettings(), tradekit_plugins).run(MONDAY_EVENING)
    sell = Signal(
        symbol="AAPL",
        side=Side.SELL,
        confidence=5,
        generated_at=MONDAY_EVENING,
        reference_price=Decimal(150),
        source="test",
        urgency=Urgency.PLANNED,
    )
    pipeline.plan_exit(sell)
    emu.set_time(TUESDAY_WINDOW)
    emu.arm_error(504)  # the limit sell's POST: a gateway timeout before Alpaca stored it
    (lost,) = pipeline.execute_due_exits({"AAPL": Decimal(150)})
    assert lost.intent is not None
    coid = lost.intent.client_order_id
    assert coid is not None
    emu.set_time(TUESDAY_AFTERNOON)  # the window closed; the lost limit sell is given up on
    pipeline.settle_pending()

    (escalated,) = pipeline.execute_due_exits({"AAPL": Decimal(150)})  # market-on-close
    emu.set_time(TUESDAY_AFTER_CLOSE)
    (on_close,) = [o for o in emu.orders() if o["side"] == "sell"]
    emu.fill_order(on_close["id"], price=Decimal(152))  # the closing auction
    pipeline.settle_pending()
    with pytest.raises(DuplicateClientOrderId):  # the lost POST reaches Alpaca now: refused
        broker.submit_order(
            OrderRequest(
                client_order_id=coid,
                symbol="AAPL",
                side=Side.SELL,
                order_type=OrderType.LIMIT,
                qty=Decimal(10),
                limit_price=Decimal(150),
            )
        )

    assert escalated.intent is not None
    assert escalated.intent.client_order_id == coid == on_close["client_order_id"]
    assert (on_close["type"], on_close["time_in_force"], Decimal(on_close["qty"])) == ("market", "cls", Decimal(10))
    posts = [
        (r.body["client_order_id"], r.body["type"], r.body["time_in_force"], r.status)
        for r in emu.requests("POST /v2/orders")
        if isinstance(r.body, dict)
    ]
    assert posts == [(coid, "limit", "day", 504), (coid, "market", "cls", 200), (coid, "limit", "day", 422)]
    assert held(emu, ledger) == (Decimal(0), Decimal(0))
    with ledger.reading() as tx:
        exit_intent = tx.exit_intent(escalated.intent.intent_id)
        intent = tx.intent(coid)
    assert exit_intent is not None
    assert exit_intent.state is ExitState.EXECUTED
    assert intent is not None
    assert (intent.order_type, intent.time_in_force, intent.limit_price) == (OrderType.MARKET, TimeInForce.CLS, None)
