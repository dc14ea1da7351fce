"""A restart never wedges and a decided exit is never silently dropped.

Each test plays one of the failures issue #19 and #11 describe on the paper broker and a
real ledger: a sell in flight when the process died, a fill that arrives for a position
reconciliation already closed, an order given up on as not found that reaches the broker
after all, an exit whose request was lost or refused, a window that closed unexecuted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit import BuyAction
from tradekit.broker.errors import BrokerUnavailable
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, SliceTiming
from tradekit.cli import cli
from tradekit.config import AllocationSettings, ExitSettings, MissedWindow, Settings
from tradekit.domain import Fill, Order, OrderType, Side, TimeInForce
from tradekit.execution.session import startup
from tradekit.exits import ExitState
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.reconcile import ReconcileAction

from .test_pipeline import OPEN, Pyramid, Single, Trading, make_trading

# Monday 2024-03-04 closes 21:00 UTC; Tuesday's exit window is 14:35-15:00 UTC.
MONDAY_EVENING = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
TUESDAY_WINDOW = datetime(2024, 3, 5, 14, 36, tzinfo=UTC)


class LookupsFail(PaperBroker):
    """The paper broker whose order lookups time out while ``lookups_down`` is set."""

    lookups_down = False

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        if self.lookups_down:
            raise BrokerUnavailable("GET /v2/orders:by_client_order_id timed out")
        return super().get_order_by_client_id(client_order_id)


class FillsFail(PaperBroker):
    """The paper broker whose fills (account activities) cannot be read while ``fills_down``."""

    fills_down = False

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        if self.fills_down:
            raise BrokerUnavailable("GET /v2/account/activities/FILL: HTTP 500")
        return super().get_fills(client_order_id)


def restart(t: Trading, tmp_path: Path, settings: Settings | None = None) -> Trading:
    """A new process on the same broker and ledger file, at the same moment."""
    t.ledger.close()
    again = make_trading(
        tmp_path, paper=t.broker, ledger=Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}"), settings=settings
    )
    again.clock.now = t.clock.now
    return again


def held(t: Trading, symbol: str = "KO") -> tuple[Decimal, Decimal]:
    """(ledger quantity, broker quantity) of ``symbol``."""
    position = t.ledger.position(symbol)
    at_broker = {p.symbol: p.qty for p in t.broker.get_positions()}
    return (position.qty if position is not None else Decimal(0), at_broker.get(symbol, Decimal(0)))


def in_the_window(t: Trading, price: str = "61", at: datetime = TUESDAY_WINDOW) -> None:
    """The exit window is open and KO trades at ``price``."""
    t.clock.now = at
    t.broker.set_price("KO", Decimal(price), at - timedelta(seconds=30))


def sells(t: Trading) -> list[Decimal | None]:
    return [r.qty for r in t.accepted() if r.side is Side.SELL]


def bought(tmp_path: Path, *, paper: PaperBroker | None = None, settings: Settings | None = None) -> Trading:
    t = make_trading(tmp_path, paper=paper, settings=settings)
    t.reconcile()
    t.pipeline.process_buy(t.signal(), Single, t.market())
    t.pipeline.apply_events()
    return t


def test_a_sell_in_flight_at_a_restart_defers_reconciliation_and_its_late_fill_closes_the_position(
    tmp_path: Path,
) -> None:
    # Issue #19: the exit sell was sent, the process died, the restart's lookup times out.
    t = bought(tmp_path, paper=LookupsFail())
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    in_the_window(t)
    broker = t.broker
    assert isinstance(broker, LookupsFail)
    broker.faults.arm(Fault.LOST_RESPONSE)  # the sell fills; its answer is lost
    broker.lookups_down = True
    t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.broker.drain_events()  # the fill's event went to the process that died

    t = restart(t, tmp_path)
    report = startup(t.pipeline)
    # Deferred: the broker is flat but a sell of KO is unresolved, so nothing is closed.
    assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.DEFERRED)]
    assert held(t) == (Decimal("33.333333333"), Decimal(0))

    broker.lookups_down = False
    t.clock.now += timedelta(minutes=5)
    t = restart(t, tmp_path)
    again = startup(t.pipeline)  # the lookup answers: the fill is applied once

    assert [(f.symbol, f.action) for f in again.findings] == []
    assert held(t) == (Decimal(0), Decimal(0))
    with t.ledger.reading() as tx:
        (exit_intent,) = tx.exit_intents()
        assert tx.pending_intents() == []
    assert exit_intent.state is ExitState.EXECUTED
    assert sells(t) == [Decimal("33.333333333")]


def test_a_fill_for_a_position_already_closed_is_kept_and_the_symbol_rederived_never_raised(
    tmp_path: Path,
) -> None:
    broker = LookupsFail()
    t = bought(tmp_path, paper=broker)
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    in_the_window(t)
    t.broker.faults.arm(Fault.LOST_RESPONSE)
    broker.lookups_down = True  # the sell filled, and nothing tells the ledger so yet
    t.pipeline.execute_due_exits({"KO": Decimal(61)})
    broker.lookups_down = False
    fill_events = [e for e in t.broker.drain_events() if e.fill is not None]
    # Meanwhile the ledger lost the position some other way (an older tradekit's reconciliation).
    with t.ledger.transaction() as tx:
        tx.record_external_close("KO", Decimal("33.333333333"), t.clock.now, "closed by hand in a test")

    t.pipeline.apply_events(fill_events)  # the late fill: no exception

    assert t.ledger.unreconciled_symbols() == frozenset({"KO"})
    with t.ledger.reading() as tx:
        (unapplied,) = tx.unapplied_fills()
        assert tx.fill(unapplied.execution_id) is not None  # kept, linked to its order
    assert "ledger holds 0" in unapplied.reason
    report = t.pipeline.reconcile_if_due()
    assert report is not None
    (finding,) = report.findings
    assert finding.action is ReconcileAction.REDERIVED
    assert "already counted" in finding.reason
    assert t.ledger.unreconciled_symbols() == frozenset()
    assert held(t) == (Decimal(0), Decimal(0))


def test_a_buy_given_up_as_not_found_that_fills_after_the_broker_was_adopted_is_counted_once(
    tmp_path: Path,
) -> None:
    t = make_trading(tmp_path)
    t.reconcile()
    t.broker.faults.arm(Fault.LOST_REQUEST)
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    assert outcome.intent is not None
    t.clock.now += timedelta(minutes=5)
    t.pipeline.settle_pending()  # past the grace: not found
    with t.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.NOT_FOUND
    # The request reaches the broker after all, and fills; reconciliation adopts the position.
    t.broker.submit_order(outcome.intent.to_request())
    late = [e for e in t.broker.drain_events() if e.fill is not None]
    startup(t.pipeline)
    assert held(t) == (outcome.intent.qty, outcome.intent.qty)
    # Then the late fill's event arrives: it must not be counted on top.
    t.pipeline.apply_events(late)
    t.pipeline.reconcile_if_due()

    assert held(t) == (outcome.intent.qty, outcome.intent.qty)
    with t.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
        assert tx.unapplied_fills() == []
    assert state is not None
    assert state.status is LedgerOrderStatus.FILLED  # the broker's word replaced the guess
    assert len(t.accepted(outcome.intent.client_order_id)) == 1


def test_an_order_given_up_as_not_found_and_filled_later_gets_its_status_and_fills_at_the_next_start(
    tmp_path: Path,
) -> None:
    t = make_trading(tmp_path)
    t.reconcile()
    t.broker.faults.arm(Fault.LOST_REQUEST)
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    assert outcome.intent is not None
    t.clock.now += timedelta(minutes=5)
    t.pipeline.settle_pending()
    t.broker.submit_order(outcome.intent.to_request())  # it reached the broker after all
    t.broker.drain_events()  # and its events were lost

    t = restart(t, tmp_path)
    report = startup(t.pipeline)

    with t.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
    assert state is not None
    assert (state.status, state.filled_qty) == (LedgerOrderStatus.FILLED, outcome.intent.qty)
    assert [f.action for f in report.findings] == [ReconcileAction.REDERIVED]
    position = t.ledger.position("KO")
    assert position is not None
    assert position.entries[0].client_order_id == outcome.intent.client_order_id  # the strategy's entry
    assert held(t) == (outcome.intent.qty, outcome.intent.qty)


def test_a_filled_order_whose_fills_cannot_be_read_stays_unsettled_and_is_never_adopted_and_counted_again(
    tmp_path: Path,
) -> None:
    # Campaign seed 100002: the restart's lookup said FILLED, reading the fills failed, the
    # order was taken as settled, reconciliation adopted the broker's 10 shares, and the fill
    # read later was counted on top: 20 in the ledger, 10 at the broker.
    broker = FillsFail()
    t = make_trading(tmp_path, paper=broker)
    t.reconcile()
    broker.faults.arm(Fault.LOST_RESPONSE)  # the buy fills; its answer and events are lost
    broker.fills_down = True
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    assert outcome.intent is not None
    coid, qty = outcome.intent.client_order_id, outcome.intent.qty
    broker.drain_events()

    t = restart(t, tmp_path)
    report = startup(t.pipeline)

    with t.ledger.reading() as tx:
        state = tx.intent_state(coid)
    assert state is not None
    assert state.status is LedgerOrderStatus.PARTIALLY_FILLED  # not settled: 0 of its fills recorded
    assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.DEFERRED)]
    assert held(t) == (Decimal(0), qty)  # nothing adopted
    assert "KO" in t.ledger.unreconciled_symbols()  # and no buy on it meanwhile

    broker.fills_down = False
    t.pipeline.settle_pending()  # the next cycle reads the fills: settled, reconciled, counted once
    t.pipeline.reconcile_if_due()

    assert held(t) == (qty, qty)
    with t.ledger.reading() as tx:
        state = tx.intent_state(coid)
        assert tx.pending_intents() == []
    assert state is not None
    assert (state.status, state.filled_qty) == (LedgerOrderStatus.FILLED, qty)
    assert t.ledger.unreconciled_symbols() == frozenset()
    position = t.ledger.position("KO")
    assert position is not None
    assert [e.client_order_id for e in position.entries] == [coid]  # the strategy's entry, not an adoption


def test_a_lost_exit_request_is_sent_again_in_its_window_under_the_lost_attempts_client_order_id(
    tmp_path: Path,
) -> None:
    t = bought(tmp_path)
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    in_the_window(t)
    t.broker.faults.arm(Fault.LOST_REQUEST)
    (first,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})
    assert sells(t) == []
    # Two minutes on (past the grace period), the next cycle looks it up, gives it up, resends.
    t.clock.now += timedelta(minutes=3)
    t.pipeline.settle_pending()
    (second,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.pipeline.apply_events()

    assert first.intent is not None
    assert second.intent is not None
    # The same order again: should the lost request still reach the broker, it is refused
    # there as a duplicate instead of selling a second time.
    lost = first.intent.client_order_id
    assert lost is not None
    assert second.intent.client_order_id == lost
    assert [r.request.client_order_id for r in t.broker.received_orders if r.request.side is Side.SELL] == [lost]
    with t.ledger.reading() as tx:
        assert len(tx.intents_with_prefix("exit|")) == 1  # no second order intent
        statuses = [e.status for e in tx.order_events(lost)]
    assert statuses[:4] == [
        LedgerOrderStatus.SUBMITTING,
        LedgerOrderStatus.AMBIGUOUS,
        LedgerOrderStatus.NOT_FOUND,
        LedgerOrderStatus.SUBMITTING,
    ]
    assert statuses[-1] is LedgerOrderStatus.FILLED
    assert second.intent.attempts == 2
    assert sells(t) == [Decimal("33.333333333")]
    with t.ledger.reading() as tx:
        (done,) = tx.exit_intents()
    assert done.state is ExitState.EXECUTED
    assert held(t) == (Decimal(0), Decimal(0))


def test_an_exit_refused_every_time_stops_after_its_attempts_and_moves_to_the_next_window(tmp_path: Path) -> None:
    t = bought(tmp_path)
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    t.broker.faults.arm(Fault.REJECT, times=10)
    in_the_window(t)
    tried = []
    for minute in range(36, 60, 4):  # cycles through Tuesday's window
        t.clock.now = datetime(2024, 3, 5, 14, minute, tzinfo=UTC)
        tried += t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.clock.now = datetime(2024, 3, 5, 15, 1, tzinfo=UTC)  # the window has closed
    (rolled,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.broker.faults.clear()
    in_the_window(t, "62", datetime(2024, 3, 6, 14, 36, tzinfo=UTC))  # Wednesday's window
    (executed,) = t.pipeline.execute_due_exits({"KO": Decimal(62)})
    t.pipeline.apply_events()

    assert len(tried) == t.pipeline.settings.exits.max_attempts_per_window
    assert rolled.rolled
    assert rolled.intent is not None
    assert rolled.intent.window_opens_at == datetime(2024, 3, 6, 14, 35, tzinfo=UTC)
    assert "closed unexecuted after 3 attempt(s)" in rolled.note
    assert executed.order is not None
    assert held(t) == (Decimal(0), Decimal(0))


def test_a_missed_window_can_escalate_to_a_market_on_close_order_filled_at_the_close(tmp_path: Path) -> None:
    settings = Settings(exits=ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    t = bought(tmp_path, settings=settings)
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    in_the_window(t, "61", datetime(2024, 3, 5, 16, 0, tzinfo=UTC))  # the process was down through the window
    (outcome,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})
    assert outcome.intent is not None
    assert outcome.intent.state is ExitState.SUBMITTED
    t.broker.set_price("KO", Decimal("60.50"), datetime(2024, 3, 5, 18, tzinfo=UTC))  # no fill mid-session
    assert held(t)[1] > 0
    t.broker.set_price("KO", Decimal("62.25"), datetime(2024, 3, 5, 21, tzinfo=UTC))  # the close
    t.pipeline.apply_events()

    # The fraction of the 33.333333333 shares went as a DAY order (test_exit_market_on_close).
    (sell,) = [r for r in t.accepted() if r.side is Side.SELL and r.time_in_force is TimeInForce.CLS]
    assert (sell.order_type, sell.qty) == (OrderType.MARKET, Decimal(33))
    with t.ledger.reading() as tx:
        history = tx.position_history()
    assert history[-1].reductions[-1].price == Decimal("62.25")
    assert held(t) == (Decimal(0), Decimal(0))


def test_a_whole_share_fallback_below_the_minimum_notional_is_not_sent_and_says_why(tmp_path: Path) -> None:
    # $6 stock, fractional refused: 1.9 shares round down to 1 share = $6 < the $10 minimum.
    config = PaperBrokerConfig(non_fractionable_symbols=frozenset())
    settings = Settings(allocation=AllocationSettings(position_size_pct=Decimal("0.0114")))
    t = make_trading(tmp_path, config=config, settings=settings)
    t.broker.set_price("CHEAP", Decimal(6), OPEN - timedelta(minutes=1))
    t.reconcile()
    t.broker.faults.arm(Fault.FRACTIONAL_REFUSED)
    outcome = t.pipeline.process_buy(t.signal("CHEAP", price="6"), Single, t.market("CHEAP"))

    assert outcome.intent is not None
    assert outcome.order is None
    assert t.accepted() == []
    with t.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
        events = tx.order_events(outcome.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.REJECTED
    assert "whole-share fallback not sent" in events[-1].detail
    assert "below the minimum order of 10" in events[-1].detail


@pytest.mark.parametrize("fault", [Fault.REJECT, Fault.LOST_REQUEST])
def test_a_planned_exit_is_never_left_without_a_record_of_why(tmp_path: Path, fault: Fault) -> None:
    settings = Settings(exits=ExitSettings(on_missed_window=MissedWindow.EXPIRE, max_attempts_per_window=1))
    t = bought(tmp_path, settings=settings)
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    in_the_window(t)
    t.broker.faults.arm(fault)
    t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.clock.now = datetime(2024, 3, 5, 15, 10, tzinfo=UTC)
    t.pipeline.settle_pending()
    (expired,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})

    assert held(t)[0] > 0
    assert expired.intent is not None
    assert expired.intent.state is ExitState.EXPIRED
    assert "closed unexecuted after 1 attempt(s)" in expired.intent.note
    with t.ledger.reading() as tx:
        history = tx.exit_transitions(expired.intent.intent_id)
    # planned -> submitted -> planned again (why the attempt failed) -> expired (why)
    assert [h.state for h in history] == [
        ExitState.PLANNED,
        ExitState.SUBMITTED,
        ExitState.PLANNED,
        ExitState.EXPIRED,
    ]


def test_decisions_and_explain_say_what_became_of_an_approved_buy(tmp_path: Path) -> None:
    # One buy filled; one refused as fractional whose whole-share fallback was sent and filled.
    config = PaperBrokerConfig(non_fractionable_symbols=frozenset())
    t = make_trading(tmp_path, config=config)
    t.reconcile()
    filled = t.pipeline.process_buy(t.signal(), Single, t.market())
    t.broker.faults.arm(Fault.FRACTIONAL_REFUSED)
    fallback = t.pipeline.process_buy(t.signal("PFE", price="28"), Single, t.market("PFE"))
    t.ledger.close()
    assert filled.decision is not None
    assert fallback.decision is not None
    assert fallback.intent is not None
    runner = CliRunner(env={"TRADEKIT_LOAD_PLUGINS": "", "TRADEKIT_CONFIG": ""})
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    listed = json.loads(runner.invoke(cli, ["decisions", "--ledger", url, "--json"]).output)
    explained = runner.invoke(cli, ["explain", fallback.decision.decision_id, "--ledger", url])

    orders = {d["symbol"]: d["orders"] for d in listed}
    assert [(o["status"], o["filled_qty"]) for o in orders["KO"]] == [("filled", "33.333333333")]
    refused, whole = orders["PFE"]
    assert (refused["client_order_id"], refused["status"]) == (fallback.intent.client_order_id, "rejected")
    assert "fractional refused" in refused["detail"]
    assert (whole["replaces"], whole["status"], whole["filled_qty"]) == (refused["client_order_id"], "filled", "71")
    assert "what became of it:" in explained.output
    assert "whole-share fallback tk-" in explained.output


def test_a_symbol_held_back_for_a_working_order_is_reconciled_once_its_events_finish_the_order(
    tmp_path: Path,
) -> None:
    paper = PaperBroker(PaperBrokerConfig(fill_slices=3, slice_timing=SliceTiming.PER_PRICE_UPDATE))
    t = make_trading(tmp_path, paper=paper)
    t.reconcile()
    t.pipeline.process_buy(t.signal(), Pyramid, t.market())  # a third fills, the rest rests
    t = restart(t, tmp_path)
    report = startup(t.pipeline)
    assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.DEFERRED)]

    for minute in (1, 2):  # the market moves: the rest fills, and the stream says so
        paper.set_price("KO", Decimal(60), OPEN + timedelta(minutes=minute))
    t.clock.now = OPEN + timedelta(minutes=5)
    t.pipeline.apply_events()
    with t.ledger.reading() as tx:
        assert tx.pending_intents() == []

    assert t.pipeline.reconcile_if_due() is not None  # not only at the next restart
    assert t.ledger.unreconciled_symbols() == frozenset()
    assert held(t) == (Decimal("33.333333333"), Decimal("33.333333333"))
    t.clock.now += timedelta(days=1)
    paper.set_price("KO", Decimal(61), t.clock.now)
    outcome = t.pipeline.process_buy(t.signal(price="61"), Pyramid, t.market())
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.SCALE_IN
    t.ledger.close()


def test_a_symbol_held_back_for_a_working_order_is_reconciled_once_an_event_says_it_was_rejected(
    tmp_path: Path,
) -> None:
    paper = LookupsFail()
    t = make_trading(tmp_path, paper=paper)
    t.reconcile()
    paper.faults.arm(Fault.REJECT_AFTER_ACCEPT)  # accepted now, rejected downstream a moment later
    t.pipeline.process_buy(t.signal(), Single, t.market())
    t = restart(t, tmp_path)
    paper.lookups_down = True  # the restart cannot look the order up: KO is held back
    report = startup(t.pipeline)
    assert [(f.symbol, f.action) for f in report.findings] == [("KO", ReconcileAction.DEFERRED)]

    t.pipeline.apply_events()  # the stream delivers the rejection
    with t.ledger.reading() as tx:
        assert tx.pending_intents() == []

    assert t.pipeline.reconcile_if_due() is not None
    assert t.ledger.unreconciled_symbols() == frozenset()
    t.ledger.close()
