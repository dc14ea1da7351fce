"""The trading-state guard's invariants, with triggers, manual commands, trades, halts that land
between a decision and its send, and restarts interleaved at random (a hypothesis state machine
over the real pipeline, ledger and paper broker):

- no order ever leaves while a HALTED hold (without allowed exits) applies to it;
- no buy ever leaves while any hold applies to it;
- the persisted state after a restart equals the state before it;
- the holds are always exactly what the appended transitions leave.

The broker checks the first two at the moment each order reaches it, from the ledger's rows
read on a connection of its own — not through the guard's own code.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tradekit import Strategy, StrategyScalingPolicy, StrategyView
from tradekit.broker.paper import PaperBroker
from tradekit.config import AllocationSettings, GuardSettings, OrderGuardSettings, ScaleInSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import Order, OrderRequest, Side, Signal, Urgency
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.guard import Scope, TradingStates, fold_transitions
from tradekit.guard.control import ResumeRefused, TradingGuard
from tradekit.ledger import Ledger
from tradekit.ledger import schema as t
from tradekit.plugins import Plugins

START = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)
SYMBOLS = ("KO", "PFE")
SCOPES = ("account", "strategy:alpha", "strategy:beta", "symbol:KO", "symbol:PFE")
SETTINGS = Settings(
    guard=GuardSettings(
        max_drawdown_pct=Decimal(3),
        daily_loss_limit_pct=Decimal("1.5"),
        losing_streak_exits=2,
        losing_streak_cooldown_minutes=180,
        exit_cooldown_minutes=60,
    ),
    # Let the guard, not the order counters, decide whether buys go out.
    orders=OrderGuardSettings(daily_order_limit=100_000, order_cooldown_minutes=0, one_signal_per_symbol_per_day=False),
    scale_in=ScaleInSettings(min_time_between_entries_minutes=0),
    # Large positions, so price moves reach the equity triggers.
    allocation=AllocationSettings(
        position_size_pct=Decimal(20),
        max_allocation_per_symbol_pct=Decimal(60),
        max_position_pct_of_account=Decimal(60),
    ),
)


class Alpha(Strategy):
    name = "alpha"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4)

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class Beta(Alpha):
    name = "beta"


STRATEGIES: dict[str, type[Strategy]] = {"alpha": Alpha, "beta": Beta}


class Witness:
    """The paper broker, asserting at each order it receives that the ledger allowed it then."""

    def __init__(self, inner: PaperBroker, url: str, clock: Any) -> None:
        self.inner = inner
        self.clock = clock
        self.engine = sa.create_engine(url)
        self.sent: list[OrderRequest] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_order(self, request: OrderRequest) -> Order:
        now = self.clock()
        with self.engine.connect() as conn:
            owner = conn.execute(
                sa.select(t.order_intents.c.strategy).where(
                    t.order_intents.c.client_order_id == request.client_order_id
                )
            ).scalar_one()
            scopes = {"account", f"symbol:{request.symbol}", f"strategy:{owner}"}
            applying = [
                h
                for h in conn.execute(sa.select(t.trading_state_holds))
                if h.scope in scopes and (h.needs_resume or h.until is None or now < h.until)
            ]
        stopping = [h for h in applying if h.state == "halted" and not h.allow_exits]
        assert not stopping, f"{request.side} {request.symbol} sent while HALTED: {stopping}"
        if request.side is Side.BUY:
            assert not applying, f"buy of {request.symbol} by {owner} sent while held: {applying}"
        self.sent.append(request)
        return self.inner.submit_order(request)

    def close(self) -> None:
        self.engine.dispose()


class GuardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="tk-guard-"))
        self.url = f"sqlite:///{self.folder / 'ledger.db'}"
        self.now = START
        self.signals = 0
        self.paper = PaperBroker()
        self.prices = {"KO": Decimal(60), "PFE": Decimal(28)}
        for symbol, price in self.prices.items():
            self.paper.set_price(symbol, price, START - timedelta(minutes=1))
        self.witness = Witness(self.paper, self.url, lambda: self.now)
        # The operator's commands come through a connection of their own, as the CLI's do.
        self.operator_ledger = Ledger.open(self.url, durable=False)
        self.operator = TradingGuard(ledger=self.operator_ledger, settings=SETTINGS.guard)
        self._start()

    def _start(self) -> None:
        self.ledger = Ledger.open(self.url, for_trading=True, durable=False)
        self.pipeline = OrderPipeline(
            ledger=self.ledger,
            broker=self.witness,
            settings=SETTINGS,
            plugins=Plugins(load_entrypoints=False, env={}),
            calendar=TradingCalendar(),
            clock=lambda: self.now,
        )
        self.guard = self.pipeline.trading_guard()
        self.pipeline.recover()

    def teardown(self) -> None:
        self.ledger.close()
        self.operator_ledger.close()
        self.witness.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _signal(self, symbol: str, side: Side, urgency: Urgency = Urgency.PLANNED) -> Signal:
        self.signals += 1
        return Signal(
            symbol=symbol,
            side=side,
            confidence=5,
            generated_at=self.now - timedelta(minutes=1),
            reference_price=self.prices[symbol],
            source=f"s{self.signals}",
            urgency=urgency,
        )

    def _persisted(self) -> tuple[TradingStates, dict[str, Any]]:
        with self.ledger.reading() as tx:
            return tx.trading_states(), tx.trading_state_marks()

    # --- the market and the clock ------------------------------------------------------------

    @rule(minutes=st.integers(min_value=1, max_value=36 * 60))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(symbol=st.sampled_from(SYMBOLS), move_pct=st.integers(min_value=-8, max_value=8))
    def price_moves_and_the_driver_observes(self, symbol: str, move_pct: int) -> None:
        self.prices[symbol] = (self.prices[symbol] * (100 + move_pct) / 100).quantize(Decimal("0.01"))
        self.paper.set_price(symbol, self.prices[symbol], self.now)
        self.the_driver_observes()

    # --- trading ------------------------------------------------------------------------------

    @rule(symbol=st.sampled_from(SYMBOLS), strategy=st.sampled_from(sorted(STRATEGIES)))
    def buy(self, symbol: str, strategy: str) -> None:
        market = MarketSnapshot(price=self.prices[symbol], as_of=self.now)
        self.pipeline.process_buy(self._signal(symbol, Side.BUY), STRATEGIES[strategy], market)
        self.pipeline.apply_events()

    @rule(symbol=st.sampled_from(SYMBOLS))
    def sell_now(self, symbol: str) -> None:
        self.pipeline.plan_exit(self._signal(symbol, Side.SELL, Urgency.IMMEDIATE))
        self.pipeline.apply_events()

    @rule()
    def waiting_exits_go(self) -> None:
        self.pipeline.execute_due_exits(dict(self.prices))
        self.pipeline.apply_events()

    @rule(symbol=st.sampled_from(SYMBOLS), strategy=st.sampled_from(sorted(STRATEGIES)), scope=st.sampled_from(SCOPES))
    def halt_lands_between_decision_and_send(self, symbol: str, strategy: str, scope: str) -> None:
        def halt(step: str) -> None:
            if step == "intent":
                self.operator.halt(Scope.parse(scope), reason="mid-send", actor="user:ops", at=self.now)

        self.pipeline._on_step = halt
        try:
            self.buy(symbol, strategy)
        finally:
            self.pipeline._on_step = lambda step: None

    # --- the guard ----------------------------------------------------------------------------

    @rule()
    def the_driver_observes(self) -> None:
        self.guard.observe_broker(now=self.now, broker=self.paper)

    @rule(command=st.sampled_from(["halt", "halt_allowing_exits", "reduce_only"]), scope=st.sampled_from(SCOPES))
    def the_operator_restricts(self, command: str, scope: str) -> None:
        where, by = Scope.parse(scope), "user:ops"
        if command == "reduce_only":
            self.operator.reduce_only(where, reason=command, actor=by, at=self.now)
        else:
            allow = command == "halt_allowing_exits"
            self.operator.halt(where, reason=command, actor=by, at=self.now, allow_exits=allow)

    @rule(scope=st.sampled_from(SCOPES), force=st.booleans())
    def the_operator_resumes(self, scope: str, force: bool) -> None:
        try:
            self.operator.resume(Scope.parse(scope), reason="resume", actor="user:ops", at=self.now, force=force)
        except ResumeRefused:
            assert not force, "a forced resume is never refused"

    @precondition(lambda self: self.signals > 0)
    @rule()
    def restart(self) -> None:
        before = self._persisted()
        seen_by_guard = self.guard.states()
        self.ledger.close()
        self._start()
        assert self._persisted() == before
        assert self.guard.states() == seen_by_guard

    @invariant()
    def holds_are_what_the_transitions_leave(self) -> None:
        with self.ledger.reading() as tx:
            placed = fold_transitions(tx.trading_state_transitions())
            holds = tx.trading_states().holds
        assert {(h.scope, h.trigger): h for h in holds} == {
            key: hold for key, transition in placed.items() if (hold := transition.hold()) is not None
        }


# Each example opens ledgers and trades through the pipeline (~0.5 s): half the profile's
# example count keeps the suite's time in bounds while CI still runs 150 random histories.
GuardMachine.TestCase.settings = settings(
    max_examples=max(10, settings().max_examples // 2), stateful_step_count=25, deadline=None
)
test_the_guard_holds_across_random_triggers_commands_and_restarts = GuardMachine.TestCase
