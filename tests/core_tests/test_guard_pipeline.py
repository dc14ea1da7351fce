"""The trading-state guard in the order pipeline: one rule judges every buy, and the order is
asked about again right before it leaves — on the committing and the buffered ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradekit import BuyAction, ReasonCode
from tradekit.broker.errors import FractionalNotSupported
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig
from tradekit.config import GuardSettings, Settings
from tradekit.decision.reasons import CheckOutcome
from tradekit.domain import OrderRequest, Side, Urgency
from tradekit.exits import ExitState
from tradekit.guard import ACCOUNT, Scope, TradingState, Trigger
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.plugins import PluginLoadError, Plugins

from .conftest import LedgerFactory
from .guard_kit import account, store_unreadable_hold
from .test_pipeline import OPEN, CountingBroker, Pyramid, Single, Trading, hold, make_trading

# The committing and the buffered pipeline, as test_pipeline runs them.
from .test_pipeline import trading as trading

KO = Scope.symbol("KO")


def guard_of(trading: Trading) -> TradingGuard:
    return trading.pipeline.trading_guard()


def sells(trading: Trading) -> list[OrderRequest]:
    return [r for r in trading.accepted() if r.side is Side.SELL]


def buys(trading: Trading) -> list[OrderRequest]:
    return [r for r in trading.accepted() if r.side is Side.BUY]


def test_a_halted_account_blocks_a_new_position_and_the_check_names_scope_and_trigger(trading: Trading) -> None:
    guard_of(trading).halt(ACCOUNT, reason="fed decision at 14:00", actor="user:ana", at=OPEN - timedelta(hours=1))
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert outcome.decision.reasons == (ReasonCode.TRADING_HALTED,)
    (check,) = [c for c in outcome.decision.checks if c.rule == "trading_state"]
    assert check.outcome is CheckOutcome.BLOCK
    assert "account is HALTED by manual" in check.detail
    assert "by user:ana: fed decision at 14:00" in check.detail
    assert buys(trading) == []


def test_reduce_only_blocks_a_scale_in_exactly_as_it_blocks_a_new_entry(trading: Trading) -> None:
    first = trading.pipeline.process_buy(trading.signal(), Pyramid, trading.market())
    assert first.decision is not None
    assert first.decision.action is BuyAction.ENTER_NEW
    trading.pipeline.apply_events()
    guard_of(trading).reduce_only(Scope.strategy("pyr"), reason="review", actor="user:ana", at=OPEN)
    trading.clock.now = OPEN + timedelta(days=2)
    later = timedelta(hours=1)
    add_on = trading.pipeline.process_buy(trading.signal(age=later), Pyramid, trading.market())
    other = trading.pipeline.process_buy(trading.signal("PFE", price="28", age=later), Pyramid, trading.market("PFE"))
    for outcome, what in ((add_on, "a scale-in to KO"), (other, "a new position in PFE")):
        assert outcome.decision is not None
        assert outcome.decision.action is BuyAction.BLOCK
        assert outcome.decision.reasons == (ReasonCode.REDUCE_ONLY,)
        (check,) = [c for c in outcome.decision.checks if c.rule == "trading_state"]
        assert "strategy:pyr is REDUCE_ONLY by manual" in check.detail
        assert what in check.detail
    assert len(buys(trading)) == 1
    # Another strategy is not held by pyr's scope.
    single = trading.pipeline.process_buy(trading.signal("PFE", price="28", age=later), Single, trading.market("PFE"))
    assert single.decision is not None
    assert single.decision.action is BuyAction.ENTER_NEW


def test_the_most_restrictive_state_that_applies_wins(trading: Trading) -> None:
    guard = guard_of(trading)
    guard.reduce_only(ACCOUNT, reason="quiet day", actor="user:ana", at=OPEN)
    guard.halt(KO, reason="halted at the exchange", actor="user:ana", at=OPEN)
    ko = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    pfe = trading.pipeline.process_buy(trading.signal("PFE", price="28"), Single, trading.market("PFE"))
    assert ko.decision is not None
    assert pfe.decision is not None
    assert ko.decision.reasons == (ReasonCode.TRADING_HALTED,)
    assert pfe.decision.reasons == (ReasonCode.REDUCE_ONLY,)


def test_a_halt_landing_between_decision_and_send_stops_the_order_before_any_broker_call(tmp_path: Path) -> None:
    paper = PaperBroker()
    counting = CountingBroker(paper)
    trading = make_trading(tmp_path, paper=paper, broker=counting)
    trading.reconcile()
    # Another process (the CLI, a second bot) halts the account right after the intent is
    # committed and before the order leaves.
    other = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")

    def halt_now(step: str) -> None:
        if step == "intent":
            TradingGuard(ledger=other).halt(ACCOUNT, reason="kill switch", actor="user:ops", at=trading.clock.now)
            counting.calls.clear()

    trading.pipeline._on_step = halt_now
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    other.close()
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.ENTER_NEW  # decided while still ACTIVE
    assert outcome.order is None
    assert counting.calls == []  # nothing reached the broker after the halt
    assert outcome.intent is not None
    with trading.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
        assert tx.pending_intents() == []  # not sent is final: the symbol is not left blocked
    assert state is not None
    assert state.status is LedgerOrderStatus.NOT_SENT
    with trading.ledger.reading() as tx:
        assert tx.guard_blocked_buys() == 1


def test_exits_keep_working_in_reduce_only(trading: Trading) -> None:
    hold(trading)
    guard_of(trading).reduce_only(ACCOUNT, reason="wind down", actor="user:ana", at=OPEN)
    trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    trading.pipeline.apply_events()
    assert len(sells(trading)) == 1
    assert trading.ledger.position("KO") is None


def test_a_halt_keeps_a_planned_exit_waiting_until_resumed(trading: Trading) -> None:
    hold(trading)
    trading.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
    trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0)))
    guard = guard_of(trading)
    guard.halt(ACCOUNT, reason="broker incident", actor="user:ana", at=trading.clock.now)
    trading.clock.now = datetime(2024, 3, 5, 14, 40, tzinfo=UTC)
    (waiting,) = trading.pipeline.execute_due_exits({"KO": Decimal(60)})
    assert waiting.intent is not None
    assert waiting.intent.state is ExitState.PLANNED
    assert waiting.note.startswith("exit waits: account is HALTED")
    assert sells(trading) == []
    guard.resume(ACCOUNT, reason="incident over", actor="user:ana", at=trading.clock.now)
    trading.clock.now = datetime(2024, 3, 5, 14, 45, tzinfo=UTC)
    (done,) = trading.pipeline.execute_due_exits({"KO": Decimal(60)})
    assert done.intent is not None
    assert done.intent.state is ExitState.SUBMITTED
    assert len(sells(trading)) == 1


def test_a_halt_that_allows_exits_lets_them_out_and_nothing_else(trading: Trading) -> None:
    hold(trading)
    guard_of(trading).halt(ACCOUNT, reason="stop adding", actor="user:ana", at=OPEN, allow_exits=True)
    blocked = trading.pipeline.process_buy(trading.signal("PFE", price="28"), Single, trading.market("PFE"))
    assert blocked.decision is not None
    assert blocked.decision.reasons == (ReasonCode.TRADING_HALTED,)
    trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    assert len(sells(trading)) == 1


def test_an_exit_halted_after_its_intent_was_recorded_is_not_sent(tmp_path: Path) -> None:
    trading = make_trading(tmp_path)
    trading.reconcile()
    hold(trading)

    def halt_now(step: str) -> None:
        if step == "exit_intent":
            guard_of(trading).halt(KO, reason="exchange halt", actor="user:ops", at=trading.clock.now)

    trading.pipeline._on_step = halt_now
    outcome = trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    assert outcome.order is None
    assert sells(trading) == []
    with trading.ledger.reading() as tx:
        (exit_intent,) = tx.exit_intents()
    # Not sent, and planned again (it is tried once the halt is lifted), with the reason kept.
    assert exit_intent.state is ExitState.PLANNED
    assert "not sent: symbol:KO is HALTED" in exit_intent.note
    assert trading.ledger.position("KO") is not None


class HaltOnFractionalRefusal(CountingBroker):
    """Refuses the fractional order; a halt lands before the whole-share retry is sent."""

    def __init__(self, inner: PaperBroker, halt: Any) -> None:
        super().__init__(inner)
        self.halt = halt

    def submit_order(self, request: OrderRequest) -> Any:
        self.calls.append("submit_order")
        self.halt()
        raise FractionalNotSupported("fractional orders are not enabled on this account")


def test_the_whole_share_fallback_is_asked_about_again_before_it_leaves(tmp_path: Path) -> None:
    paper = PaperBroker(PaperBrokerConfig(non_fractionable_symbols=frozenset()))
    trading = make_trading(tmp_path, paper=paper)
    trading.reconcile()
    broker = HaltOnFractionalRefusal(
        paper, lambda: guard_of(trading).halt(KO, reason="circuit breaker", actor="user:ops", at=OPEN)
    )
    trading.pipeline.broker = broker
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert outcome.order is None
    assert broker.calls.count("submit_order") == 1  # the fractional try only
    with trading.ledger.reading() as tx:
        states = [tx.intent_state(i.client_order_id) for i in tx.intents_with_prefix("single|KO|")]
    assert [(s.intent.replaces is not None, s.status) for s in states if s is not None] == [
        (False, LedgerOrderStatus.REJECTED),
        (True, LedgerOrderStatus.NOT_SENT),
    ]


def test_a_restart_resumes_the_last_state(ledger_factory: LedgerFactory, tmp_path: Path) -> None:
    first = ledger_factory()
    TradingGuard(ledger=first).halt(ACCOUNT, reason="weekend maintenance", actor="user:ana", at=OPEN)
    first.close()
    trading = make_trading(tmp_path, ledger=ledger_factory())
    trading.reconcile()
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert outcome.decision is not None
    assert outcome.decision.reasons == (ReasonCode.TRADING_HALTED,)


def test_a_state_that_cannot_be_read_is_reduce_only_never_active(ledger: Ledger, tmp_path: Path) -> None:
    trading = make_trading(tmp_path, ledger=ledger)
    trading.reconcile()
    hold(trading)
    store_unreadable_hold(ledger, state="paused")
    blocked = trading.pipeline.process_buy(trading.signal("PFE", price="28"), Single, trading.market("PFE"))
    assert blocked.decision is not None
    assert blocked.decision.reasons == (ReasonCode.REDUCE_ONLY,)
    (check,) = [c for c in blocked.decision.checks if c.rule == "trading_state"]
    assert "cannot be read" in check.detail
    assert "'paused'" in check.detail
    # Exits still go out: REDUCE_ONLY, not HALTED.
    trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    assert len(sells(trading)) == 1


def test_the_pipelines_own_guard_runs_the_triggers_the_settings_turn_on(tmp_path: Path) -> None:
    trading = make_trading(tmp_path, settings=Settings(guard=GuardSettings(max_drawdown_pct=Decimal(3))))
    guard = guard_of(trading)
    assert guard is trading.pipeline.guard
    assert guard.observe(now=OPEN, account=account(100_000)) == []
    (halted,) = guard.observe(now=OPEN + timedelta(hours=1), account=account(96_900))
    assert (halted.trigger, halted.to_state) == (Trigger.MAX_DRAWDOWN, TradingState.HALTED)


@pytest.mark.parametrize("scope", ["account", "strategy:single", "symbol:KO"])
def test_every_scope_blocks_the_buys_it_covers(trading: Trading, scope: str) -> None:
    guard_of(trading).halt(Scope.parse(scope), reason="test", actor="user:ana", at=OPEN)
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert outcome.decision is not None
    assert outcome.decision.reasons == (ReasonCode.TRADING_HALTED,)
    assert buys(trading) == []


def test_the_guard_rule_cannot_be_switched_off_or_removed() -> None:
    with pytest.raises(PluginLoadError, match="cannot be switched off"):
        Plugins(load_entrypoints=False, env={"TRADEKIT_DISABLED_PLUGINS": "tradekit.guard.rule"})
    with pytest.raises(PluginLoadError, match="cannot be removed"):
        Plugins(load_entrypoints=False, env={}).unregister("tradekit.guard.rule")
