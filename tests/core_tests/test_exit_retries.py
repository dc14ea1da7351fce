"""An exit always has a way forward, and never sells more than the broker holds.

An immediate exit (a stop-loss, or any exit while two-phase exits are off) has no window: once
its attempts run out it waits for the next session, where it is tried again with a fresh
budget, as often as it takes. Every attempt has its own client order id, and no request is
ever sent twice. An attempt sells the smaller of what the ledger and the broker hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.broker.paper import Fault, ReceiptOutcome
from tradekit.config import ExitSettings, MissedWindow, Settings
from tradekit.domain import OrderRequest, OrderType, Side, Urgency
from tradekit.execution.pipeline import ExitOutcome
from tradekit.exits import ExitIntent, ExitState
from tradekit.ledger import Ledger
from tradekit.ledger.buffered import BufferedLedger

from .test_pipeline import OPEN, Single, Trading, make_trading

# Monday 2024-03-04's session: 14:30-21:00 UTC; Tuesday opens 14:30 UTC, Wednesday too.
TUESDAY_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
TUESDAY_CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
WEDNESDAY_OPEN = datetime(2024, 3, 6, 14, 30, tzinfo=UTC)


Open = Callable[..., Trading]


@pytest.fixture
def open_trading(tmp_path: Path) -> Iterator[Open]:
    """Open a trader holding KO on the paper broker, on a committing or a buffered ledger;
    its ledger is closed at the end of the test, whatever the test did."""
    opened: list[Trading] = []

    def open_(kind: str = "committing", settings: Settings | None = None) -> Trading:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        ledger = (BufferedLedger if kind == "buffered" else Ledger).open(url, for_trading=True)
        t = make_trading(tmp_path, ledger=ledger, settings=settings)
        opened.append(t)
        t.reconcile()
        t.pipeline.process_buy(t.signal(), Single, t.market())
        t.pipeline.apply_events()
        return t

    yield open_
    for t in opened:
        t.ledger.close()


@pytest.fixture(params=["committing", "buffered"])
def holding(request: pytest.FixtureRequest, open_trading: Open) -> Trading:
    # Live trading commits every step; a replay buffers them: both behave alike.
    return open_trading(request.param)


def stop_loss(t: Trading) -> ExitOutcome:
    return t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))


def the_exit(t: Trading) -> ExitIntent:
    with t.ledger.reading() as tx:
        (intent,) = tx.exit_intents()
    return intent


def sell_receipts(t: Trading) -> list[tuple[str, Decimal | None, ReceiptOutcome]]:
    return [
        (r.request.client_order_id, r.request.qty, r.outcome)
        for r in t.broker.received_orders
        if r.request.side is Side.SELL
    ]


def cycles(t: Trading, until: datetime, every: timedelta = timedelta(minutes=30)) -> list[ExitOutcome]:
    """Live cycles from now to ``until``: look orders up, carry the exits on, apply events."""
    outcomes: list[ExitOutcome] = []
    while t.clock.now < until:
        t.clock.now = min(t.clock.now + every, until)
        t.pipeline.settle_pending()
        outcomes += t.pipeline.execute_due_exits({"KO": Decimal(60)})
        t.pipeline.apply_events()
    return outcomes


def test_an_immediate_exit_refused_max_attempts_times_is_sent_again_in_the_next_session(holding: Trading) -> None:
    t = holding
    budget = t.pipeline.settings.exits.max_attempts_per_window
    t.broker.faults.arm(Fault.REJECT, times=budget, symbol="KO")  # e.g. three transient refusals
    stop_loss(t)
    for _ in range(budget - 1):
        t.clock.now += timedelta(minutes=1)
        t.pipeline.execute_due_exits({"KO": Decimal(60)})
    assert t.broker.faults.armed == ()  # the broker accepts orders again from here on
    assert len(sell_receipts(t)) == budget

    # The budget is spent: the exit waits for the next session instead of being stuck.
    t.clock.now += timedelta(minutes=1)
    (deferred,) = t.pipeline.execute_due_exits({"KO": Decimal(60)})
    assert deferred.rolled
    assert deferred.intent is not None
    assert deferred.intent.state is ExitState.PLANNED
    assert deferred.intent.attempts == 0
    assert (deferred.intent.window_opens_at, deferred.intent.window_closes_at) == (TUESDAY_OPEN, TUESDAY_CLOSE)
    assert cycles(t, TUESDAY_OPEN - timedelta(minutes=1)) == []  # nothing more today, nor overnight
    assert len(sell_receipts(t)) == budget

    cycles(t, TUESDAY_OPEN + timedelta(minutes=5))
    receipts = sell_receipts(t)
    assert [outcome for _, _, outcome in receipts] == [ReceiptOutcome.REJECTED] * budget + [ReceiptOutcome.ACCEPTED]
    assert len({coid for coid, _, _ in receipts}) == len(receipts)  # one client order id per attempt
    assert [r.order_type for r in t.accepted() if r.side is Side.SELL] == [OrderType.MARKET]
    assert the_exit(t).state is ExitState.EXECUTED
    assert t.ledger.position("KO") is None
    # Later cycles send nothing more.
    cycles(t, TUESDAY_CLOSE + timedelta(hours=1))
    assert len(sell_receipts(t)) == budget + 1


@pytest.mark.parametrize("missed", list(MissedWindow))
def test_an_immediate_exit_refused_in_its_retry_session_moves_on_to_the_next_one_whatever_the_missed_window_rule(
    open_trading: Open, missed: MissedWindow
) -> None:
    # exits.on_missed_window is about planned exits: a stop-loss is never expired or left behind.
    t = open_trading(settings=Settings(exits=ExitSettings(on_missed_window=missed)))
    budget = t.pipeline.settings.exits.max_attempts_per_window
    t.broker.faults.arm(Fault.REJECT, times=2 * budget, symbol="KO")
    stop_loss(t)
    outcomes = cycles(t, TUESDAY_CLOSE + timedelta(minutes=30))
    assert the_exit(t).state is ExitState.PLANNED
    assert (the_exit(t).window_opens_at, the_exit(t).window_closes_at) == (
        WEDNESDAY_OPEN,
        datetime(2024, 3, 6, 21, 0, tzinfo=UTC),
    )
    assert sum(o.rolled for o in outcomes) == 2
    assert len(sell_receipts(t)) == 2 * budget
    assert {r.request.order_type for r in t.broker.received_orders if r.request.side is Side.SELL} == {OrderType.MARKET}

    cycles(t, WEDNESDAY_OPEN + timedelta(minutes=5))
    assert the_exit(t).state is ExitState.EXECUTED
    assert t.ledger.position("KO") is None
    receipts = sell_receipts(t)
    assert len({coid for coid, _, _ in receipts}) == len(receipts) == 2 * budget + 1


def test_an_immediate_exit_sent_again_after_a_restart_keeps_its_attempts_apart(
    tmp_path: Path, open_trading: Open
) -> None:
    t = open_trading()
    budget = t.pipeline.settings.exits.max_attempts_per_window
    t.broker.faults.arm(Fault.REJECT, times=budget, symbol="KO")
    stop_loss(t)
    cycles(t, OPEN + timedelta(hours=2))
    t.ledger.close()
    again = make_trading(tmp_path, paper=t.broker)  # a new process on the same ledger and broker
    again.clock.now = t.clock.now
    again.pipeline.recover()
    cycles(again, TUESDAY_OPEN + timedelta(minutes=5))
    receipts = sell_receipts(again)
    state = the_exit(again).state
    again.ledger.close()
    assert len({coid for coid, _, _ in receipts}) == len(receipts) == budget + 1
    assert state is ExitState.EXECUTED


def test_a_new_sell_signal_on_a_deferred_immediate_exit_sends_nothing_twice(holding: Trading) -> None:
    t = holding
    t.broker.faults.arm(Fault.REJECT, times=t.pipeline.settings.exits.max_attempts_per_window, symbol="KO")
    stop_loss(t)
    cycles(t, OPEN + timedelta(hours=1))
    sent = len(sell_receipts(t))
    again = stop_loss(t)
    assert again.order is None  # the exit already planned is the one carried on
    assert len(sell_receipts(t)) == sent


@pytest.mark.parametrize("seen", [False, True], ids=["mismatch_unseen", "mismatch_held_back"])
def test_an_exit_sells_no_more_than_the_broker_holds(holding: Trading, seen: bool) -> None:
    t = holding
    position = t.ledger.position("KO")
    assert position is not None
    # The broker holds a hair less than the ledger (a broker-side fractional correction).
    broker_qty = position.qty - Decimal("0.000000001")
    t.broker.seed_position("KO", broker_qty, Decimal(60))
    if seen:
        t.pipeline.reconcile()  # the mismatch holds KO back from buys; exits still go out
        assert t.ledger.unreconciled_symbols() == {"KO"}
    outcome = stop_loss(t)
    t.pipeline.apply_events()

    assert outcome.order is not None
    assert [(qty, result) for _, qty, result in sell_receipts(t)] == [(broker_qty, ReceiptOutcome.ACCEPTED)]
    assert the_exit(t).state is ExitState.EXECUTED
    assert "KO" not in {p.symbol for p in t.broker.get_positions()}
    # The hair the ledger still holds is reconciliation's to settle, and it is due.
    report = t.pipeline.reconcile_if_due()
    assert report is not None
    assert t.ledger.position("KO") is None
    assert t.ledger.unreconciled_symbols() == frozenset()


def test_an_exit_leaves_room_for_sells_already_working_at_the_broker(holding: Trading) -> None:
    t = holding
    position = t.ledger.position("KO")
    assert position is not None
    # A sell of 10 KO placed outside tradekit rests at the broker.
    t.broker.submit_order(
        OrderRequest(
            client_order_id="manual-1",
            symbol="KO",
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            qty=Decimal(10),
            limit_price=Decimal(99),
        )
    )
    stop_loss(t)
    sells = [(qty, result) for coid, qty, result in sell_receipts(t) if coid != "manual-1"]
    assert sells == [(position.qty - 10, ReceiptOutcome.ACCEPTED)]


def test_an_exit_of_a_position_the_broker_does_not_hold_sends_nothing_and_waits_for_reconciliation(
    holding: Trading,
) -> None:
    t = holding
    t.broker.seed_position("KO", Decimal(0), Decimal(60))  # sold outside tradekit
    outcome = stop_loss(t)
    assert outcome.order is None
    assert sell_receipts(t) == []  # never a sell the broker would reject, or take as a short
    assert the_exit(t).state is ExitState.PLANNED
    assert t.pipeline.reconcile_if_due() is not None  # closes the ledger's position
    assert t.ledger.position("KO") is None
    cycles(t, OPEN + timedelta(hours=1))
    assert the_exit(t).state is ExitState.CANCELLED
    assert sell_receipts(t) == []


def test_an_exit_waits_when_the_broker_cannot_say_what_it_holds(holding: Trading) -> None:
    t = holding
    t.broker.faults.arm(Fault.DISCONNECT)
    outcome = stop_loss(t)
    assert outcome.order is None
    assert the_exit(t).state is ExitState.PLANNED
    assert the_exit(t).attempts == 0
    t.broker.faults.clear()
    cycles(t, OPEN + timedelta(minutes=30))
    assert [result for _, _, result in sell_receipts(t)] == [ReceiptOutcome.ACCEPTED]
    assert the_exit(t).state is ExitState.EXECUTED
