"""The order pipeline with the paper broker and a real ledger: one order per intent, always."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from tradekit import BuyAction, ReasonCode, Strategy, StrategyScalingPolicy, StrategyView, hookimpl
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, ReceiptOutcome
from tradekit.config import ExitSettings, MissedWindow, NotificationSettings, ReconciliationSettings, Settings
from tradekit.decision import MarketSnapshot
from tradekit.domain import OrderRequest, OrderType, Side, Signal, Urgency
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits import ExitIntent, ExitState
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.ledger.buffered import BufferedLedger
from tradekit.notify.hooks import ErrorRelay
from tradekit.notify.messages import Message
from tradekit.notify.notifier import Notifier
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler

# Monday 2024-03-04: the session opens 14:30 UTC and closes 21:00 UTC.
OPEN = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)


class Single(Strategy):
    name = "single"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class Pyramid(Strategy):
    name = "pyr"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4)

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


@attrs.define
class Clock:
    now: datetime = OPEN

    def __call__(self) -> datetime:
        return self.now


@attrs.define
class Trading:
    pipeline: OrderPipeline
    broker: PaperBroker
    ledger: Ledger
    clock: Clock

    def signal(
        self,
        symbol: str = "KO",
        *,
        price: str = "60",
        confidence: int = 5,
        side: Side = Side.BUY,
        age: timedelta = timedelta(hours=17),
        urgency: Urgency = Urgency.PLANNED,
    ) -> Signal:
        return Signal(
            symbol=symbol,
            side=side,
            confidence=confidence,
            generated_at=self.clock.now - age,
            reference_price=Decimal(price),
            source="test",
            urgency=urgency,
        )

    def market(self, symbol: str = "KO") -> MarketSnapshot:
        price = self.broker.last_price(symbol)
        return MarketSnapshot(price=price, as_of=self.clock.now)

    def reconcile(self, settings: ReconciliationSettings | None = None) -> None:
        Reconciler(self.ledger, self.broker, settings or ReconciliationSettings(), self.pipeline.plugins).run(
            self.clock.now
        )

    def accepted(self, coid: str | None = None) -> list[OrderRequest]:
        return [
            r.request
            for r in self.broker.received_orders
            if r.outcome is ReceiptOutcome.ACCEPTED and (coid is None or r.request.client_order_id == coid)
        ]


class CountingBroker:
    """Wraps the paper broker and records every call (to prove what was never asked)."""

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if callable(attr):

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)

            return wrapped
        return attr


def make_trading(
    tmp_path: Path,
    *,
    settings: Settings | None = None,
    plugins: Plugins | None = None,
    config: PaperBrokerConfig | None = None,
    broker: Any = None,
    ledger: Ledger | None = None,
    paper: PaperBroker | None = None,
) -> Trading:
    clock = Clock()
    paper = paper or PaperBroker(config or PaperBrokerConfig())
    for symbol, price in (("KO", "60"), ("PFE", "28"), ("BRK.A", "600000")):
        if paper.last_price(symbol) is None:
            paper.set_price(symbol, Decimal(price), OPEN - timedelta(minutes=5))
    ledger = ledger or Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker or paper,
        settings=settings or Settings(),
        plugins=plugins or Plugins(load_entrypoints=False, env={}),
        calendar=TradingCalendar(),
        clock=clock,
    )
    return Trading(pipeline, paper, ledger, clock)


@pytest.fixture(params=["committing", "buffered"])
def trading(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Trading]:
    # Every pipeline behaviour holds on the committing ledger live trading uses and on the
    # buffered one replays use.
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    t = make_trading(
        tmp_path, ledger=(BufferedLedger if request.param == "buffered" else Ledger).open(url, for_trading=True)
    )
    t.reconcile()
    yield t
    t.ledger.close()


def test_a_buy_is_recorded_as_an_intent_before_it_is_sent(tmp_path: Path) -> None:
    seen: list[LedgerOrderStatus | None] = []
    paper = PaperBroker()
    t = make_trading(tmp_path, paper=paper)

    class Inspecting(CountingBroker):
        def submit_order(self, request: OrderRequest) -> Any:
            with t.ledger.reading() as tx:
                state = tx.intent_state(request.client_order_id)
            seen.append(state.status if state else None)
            return self.inner.submit_order(request)

    t.pipeline.broker = Inspecting(paper)
    t.reconcile()
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.ENTER_NEW
    assert seen == [LedgerOrderStatus.SUBMITTING]
    pos = t.ledger.position("KO")
    assert pos is not None
    assert pos.entry_count == 1
    # 2% of 100,000 at 60 = 33.333333333 shares (fractional allowed)
    assert pos.qty == Decimal("33.333333333")


def test_buy_on_unreconciled_symbol_is_blocked_before_any_broker_call(tmp_path: Path) -> None:
    paper = PaperBroker()
    paper.seed_position("KO", Decimal(100), Decimal(55))
    counting = CountingBroker(paper)
    t = make_trading(tmp_path, paper=paper, broker=counting)
    t.reconcile(ReconciliationSettings(backfill_enabled=False))
    counting.calls.clear()
    outcome = t.pipeline.process_buy(t.signal(), Pyramid, t.market())
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert outcome.decision.reasons[0] is ReasonCode.UNRECONCILED_BROKER_POSITION
    assert counting.calls == []
    with t.ledger.reading() as tx:
        assert [d.action for d in tx.decisions()] == ["block"]


def test_timeout_after_acceptance_is_looked_up_not_resent(trading: Trading) -> None:
    trading.broker.faults.arm(Fault.TIMEOUT_AFTER_ACCEPT)
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert outcome.intent is not None
    assert len(trading.accepted()) == 1
    with trading.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.FILLED
    pos = trading.ledger.position("KO")
    assert pos is not None
    assert pos.qty == outcome.intent.qty


def test_a_lost_request_blocks_the_symbol_until_settled_then_is_closed_as_not_found(trading: Trading) -> None:
    trading.broker.faults.arm(Fault.LOST_REQUEST)
    first = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert first.intent is not None
    assert first.order is None
    again = trading.pipeline.process_buy(
        trading.signal(price="60.1", age=timedelta(hours=16)), Single, trading.market()
    )
    assert again.decision is not None
    assert again.decision.action is BuyAction.BLOCK
    assert ReasonCode.PENDING_ORDER_CONFLICT in again.decision.reasons
    # A restart right away: the broker does not know the order yet, but it may still be on
    # its way, so it is not given up on before the grace period.
    (still,) = trading.pipeline.recover()
    assert still.status is LedgerOrderStatus.AMBIGUOUS
    trading.clock.now += timedelta(seconds=trading.pipeline.settings.orders.lost_order_grace_seconds)
    assert trading.pipeline.recover() == []  # past the grace, the lookup settles it
    with trading.ledger.reading() as tx:
        state = tx.intent_state(first.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.NOT_FOUND
    assert trading.accepted() == []


def test_the_same_signal_processed_twice_sends_one_order(trading: Trading) -> None:
    signal = trading.signal()
    trading.pipeline.process_buy(signal, Single, trading.market())
    second = trading.pipeline.process_buy(signal, Single, trading.market())
    assert second.decision is None
    assert "already acted on" in second.note
    assert len(trading.accepted()) == 1


def test_a_refused_fractional_order_falls_back_to_whole_shares(tmp_path: Path) -> None:
    t = make_trading(tmp_path, config=PaperBrokerConfig(non_fractionable_symbols=frozenset()))
    t.reconcile()
    t.broker.faults.arm(Fault.FRACTIONAL_REFUSED)
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    assert outcome.order is not None
    assert outcome.order.qty == Decimal(33)
    requests = t.accepted()
    assert [r.qty for r in requests] == [Decimal(33)]
    with t.ledger.reading() as tx:
        fallback = tx.intent(requests[0].client_order_id)
    assert fallback is not None
    assert outcome.intent is not None
    assert fallback.replaces == outcome.intent.client_order_id


def test_whole_share_fallback_of_zero_shares_is_skipped_with_a_reason(tmp_path: Path) -> None:
    t = make_trading(tmp_path)
    t.reconcile()
    t.broker.faults.arm(Fault.FRACTIONAL_REFUSED)
    # 2% of 100,000 = 2,000; one BRK.A costs 600,000: 0.0033 shares, 0 whole shares.
    t.pipeline.settings = attrs.evolve(
        t.pipeline.settings,
        allocation=attrs.evolve(t.pipeline.settings.allocation, min_order_notional=Decimal(1)),
    )
    t.pipeline.limits = attrs.evolve(t.pipeline.limits, min_order_notional=Decimal(1))
    outcome = t.pipeline.process_buy(t.signal("BRK.A", price="600000"), Single, t.market("BRK.A"))
    assert outcome.order is None
    assert t.accepted() == []
    assert outcome.intent is not None
    with t.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.REJECTED


def test_non_fractionable_asset_is_sized_in_whole_shares(tmp_path: Path) -> None:
    t = make_trading(tmp_path, config=PaperBrokerConfig(non_fractionable_symbols=frozenset({"KO"})))
    t.reconcile()
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    assert outcome.intent is not None
    assert outcome.intent.qty == Decimal(33)


def test_second_entry_of_a_scaling_strategy_is_a_scale_in_and_respects_the_cap(trading: Trading) -> None:
    trading.pipeline.process_buy(trading.signal(), Pyramid, trading.market())
    trading.clock.now += timedelta(days=1)
    trading.broker.set_price("KO", Decimal(61), trading.clock.now)
    second = trading.pipeline.process_buy(trading.signal(price="61"), Pyramid, trading.market())
    assert second.decision is not None
    assert second.decision.action is BuyAction.SCALE_IN
    trading.clock.now += timedelta(days=1)
    trading.broker.set_price("KO", Decimal(62), trading.clock.now)
    third = trading.pipeline.process_buy(trading.signal(price="62"), Pyramid, trading.market())
    assert third.decision is not None
    assert third.decision.action is BuyAction.SCALE_IN
    # 5% cap: the third add is clipped so the position stays at or under 5% of equity at 62.
    pos = trading.ledger.position("KO")
    assert pos is not None
    assert pos.entry_count == 3
    equity = trading.broker.get_account().equity
    assert pos.qty * Decimal(62) <= equity * Decimal("0.05")
    assert pos.qty * Decimal(62) > equity * Decimal("0.0499")
    assert any(c.rule == "cap:allocation cap" for c in third.decision.checks)


def test_order_counters_come_back_after_a_restart(tmp_path: Path) -> None:
    settings = Settings(orders=attrs.evolve(Settings().orders, daily_order_limit=1))
    t = make_trading(tmp_path, settings=settings)
    t.reconcile()
    t.pipeline.process_buy(t.signal("KO"), Single, t.market("KO"))
    t.ledger.close()
    restarted = make_trading(tmp_path, settings=settings, paper=t.broker)
    outcome = restarted.pipeline.process_buy(restarted.signal("PFE", price="28"), Single, restarted.market("PFE"))
    assert outcome.decision is not None
    assert outcome.decision.reasons == (ReasonCode.DAILY_ORDER_LIMIT,)
    restarted.ledger.close()


def test_duplicate_and_out_of_order_fill_events_leave_the_exact_position(tmp_path: Path) -> None:
    t = make_trading(tmp_path, config=PaperBrokerConfig(fill_slices=3))
    t.reconcile()
    t.broker.faults.arm(Fault.DUPLICATE_FILL_EVENTS, times=3)
    t.broker.faults.arm(Fault.OUT_OF_ORDER_EVENTS)
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())
    t.pipeline.apply_events()
    t.pipeline.apply_events()
    assert outcome.intent is not None
    broker_qty = {p.symbol: p.qty for p in t.broker.get_positions()}["KO"]
    pos = t.ledger.position("KO")
    assert pos is not None
    assert pos.qty == broker_qty == outcome.intent.qty
    assert pos.entry_count == 1
    t.ledger.close()


# --- exits --------------------------------------------------------------------------------------


def hold(trading: Trading) -> None:
    trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    trading.pipeline.apply_events()


def test_planned_exit_waits_for_the_next_sessions_window_and_sells_with_a_limit(trading: Trading) -> None:
    hold(trading)
    trading.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)  # after the close
    planned = trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0)))
    assert planned.intent is not None
    assert planned.intent.state is ExitState.PLANNED
    assert planned.intent.order_type is OrderType.LIMIT
    assert planned.intent.window_opens_at == datetime(2024, 3, 5, 14, 35, tzinfo=UTC)
    assert planned.intent.window_closes_at == datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    assert trading.pipeline.execute_due_exits({"KO": Decimal(60)}) == []  # not yet
    trading.clock.now = datetime(2024, 3, 5, 14, 40, tzinfo=UTC)
    trading.broker.set_price("KO", Decimal("59.5"), trading.clock.now)
    assert len(trading.pipeline.execute_due_exits({"KO": Decimal("59.5")})) == 1
    trading.pipeline.apply_events()
    sells = [r for r in trading.accepted() if r.side is Side.SELL]
    assert [(r.order_type, r.limit_price) for r in sells] == [(OrderType.LIMIT, Decimal("59.5"))]
    with trading.ledger.reading() as tx:
        (executed,) = tx.exit_intents()
    assert executed.state is ExitState.EXECUTED
    assert trading.ledger.position("KO") is None


def test_executing_exits_twice_executes_once(trading: Trading, tmp_path: Path) -> None:
    hold(trading)
    trading.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
    trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0)))
    trading.clock.now = datetime(2024, 3, 5, 14, 40, tzinfo=UTC)
    trading.broker.faults.arm(Fault.TIMEOUT_AFTER_ACCEPT)  # the first attempt's answer is lost
    trading.pipeline.execute_due_exits({"KO": Decimal(60)})
    trading.pipeline.execute_due_exits({"KO": Decimal(60)})
    restarted = make_trading(tmp_path, ledger=trading.ledger, paper=trading.broker)
    restarted.clock.now = trading.clock.now
    restarted.pipeline.recover()
    restarted.pipeline.execute_due_exits({"KO": Decimal(60)})
    assert len([r for r in trading.accepted() if r.side is Side.SELL]) == 1
    with trading.ledger.reading() as tx:
        (intent,) = tx.exit_intents()
    assert intent.state is ExitState.EXECUTED


def test_an_exit_whose_window_passed_expires_when_configured_so(tmp_path: Path) -> None:
    trading = make_trading(tmp_path, settings=Settings(exits=ExitSettings(on_missed_window=MissedWindow.EXPIRE)))
    trading.reconcile()
    hold(trading)
    trading.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
    trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0)))
    trading.clock.now = datetime(2024, 3, 5, 16, 0, tzinfo=UTC)  # the process was down all morning
    (outcome,) = trading.pipeline.execute_due_exits({"KO": Decimal(61)})
    assert outcome.intent is not None
    assert outcome.intent.state is ExitState.EXPIRED
    assert "closed unexecuted" in outcome.note
    assert [r for r in trading.accepted() if r.side is Side.SELL] == []


def test_an_immediate_exit_goes_out_at_once_as_a_market_order(trading: Trading) -> None:
    hold(trading)
    outcome = trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    assert outcome.intent is not None
    sells = [r for r in trading.accepted() if r.side is Side.SELL]
    assert [r.order_type for r in sells] == [OrderType.MARKET]
    assert trading.ledger.position("KO") is None


def test_planned_exits_survive_a_restart_and_a_planned_exit_blocks_buys(tmp_path: Path) -> None:
    t = make_trading(tmp_path)
    t.reconcile()
    hold(t)
    t.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    t.ledger.close()
    again = make_trading(tmp_path, paper=t.broker)
    again.clock.now = datetime(2024, 3, 5, 14, 36, tzinfo=UTC)
    blocked = again.pipeline.process_buy(again.signal(age=timedelta(hours=1)), Single, again.market())
    assert blocked.decision is not None
    assert ReasonCode.EXIT_PENDING in blocked.decision.reasons
    (done,) = again.pipeline.execute_due_exits({"KO": Decimal(60)})
    assert done.intent is not None
    assert done.intent.state is ExitState.SUBMITTED
    again.ledger.close()


class TightenExits:
    @hookimpl
    def on_exit_intent(self, intent: ExitIntent) -> ExitIntent | None:
        if intent.limit_price is None:
            return None
        return attrs.evolve(intent, limit_price=intent.limit_price - Decimal("0.10"))


def test_on_exit_intent_plugins_adjust_the_limit_price(tmp_path: Path) -> None:
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("tighten", TightenExits())])
    t = make_trading(tmp_path, plugins=plugins)
    t.reconcile()
    hold(t)
    t.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    t.clock.now = datetime(2024, 3, 5, 14, 40, tzinfo=UTC)
    t.pipeline.execute_due_exits({"KO": Decimal(60)})
    (sell,) = [r for r in t.accepted() if r.side is Side.SELL]
    assert sell.limit_price == Decimal("59.90")
    t.ledger.close()


def test_exit_window_on_a_half_day_ends_at_the_early_close(trading: Trading) -> None:
    settings = attrs.evolve(Settings(), exits=ExitSettings(window_start_minutes=5, window_end_minutes=300))
    trading.pipeline.settings = settings
    hold(trading)
    trading.clock.now = datetime(2024, 11, 27, 21, 15, tzinfo=UTC)  # day before Thanksgiving
    planned = trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0)))
    assert planned.intent is not None
    # Thanksgiving is skipped; Friday the 29th closes at 13:00 New York (18:00 UTC).
    assert planned.intent.window_opens_at == datetime(2024, 11, 29, 14, 35, tzinfo=UTC)
    assert planned.intent.window_closes_at == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)


class BrokenSizer:
    @hookimpl(tryfirst=True)
    def size_position(self, context: Any, decision: Any) -> None:
        raise ArithmeticError("sizer bug")


class DeferringSizer:
    @hookimpl(tryfirst=True)
    def size_position(self, context: Any, decision: Any) -> None:
        return None  # defers to the next sizer


def test_a_sizer_plugin_that_raises_blocks_the_buy_with_a_reason_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = Plugins(
        load_entrypoints=False, env={}, extra=[("broken_sizer", BrokenSizer()), ("deferring", DeferringSizer())]
    )
    t = make_trading(tmp_path, plugins=plugins)
    t.reconcile()
    with caplog.at_level("ERROR", logger="tradekit.execution.pipeline"):
        outcome = t.pipeline.process_buy(t.signal(), Single, t.market())

    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert outcome.decision.reasons == (ReasonCode.RULE_ERROR,)
    (check,) = [c for c in outcome.decision.checks if c.reason is ReasonCode.RULE_ERROR]
    assert check.detail == "size_position plugin broken_sizer raised ArithmeticError: sizer bug"
    assert outcome.order is None
    assert t.accepted() == []
    assert "sizer bug" in caplog.text
    with t.ledger.reading() as tx:
        (stored,) = tx.decisions()
    assert stored.reasons == ("rule_error",)
    t.ledger.close()


class BrokenExitAdjuster:
    @hookimpl
    def on_exit_intent(self, intent: ExitIntent) -> ExitIntent | None:
        raise KeyError("no such level")


def test_an_exit_plugin_that_raises_leaves_the_exit_unadjusted_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("broken_exits", BrokenExitAdjuster())])
    t = make_trading(tmp_path, plugins=plugins)
    t.reconcile()
    hold(t)
    t.clock.now = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
    with caplog.at_level("ERROR", logger="tradekit.plugins"):
        planned = t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    t.clock.now = datetime(2024, 3, 5, 14, 40, tzinfo=UTC)
    t.pipeline.execute_due_exits({"KO": Decimal(60)})

    assert planned.intent is not None
    assert planned.intent.reason.endswith(
        "[not adjusted: on_exit_intent plugin broken_exits raised KeyError: 'no such level']"
    )
    (sell,) = [r for r in t.accepted() if r.side is Side.SELL]
    assert sell.limit_price == Decimal(60)  # tradekit's own plan: a limit at the current price
    assert "on_exit_intent plugin broken_exits raised" in caplog.text
    with t.ledger.reading() as tx:
        stored = tx.exit_intent(planned.intent.intent_id)
    assert stored is not None
    assert stored.reason == planned.intent.reason
    t.ledger.close()


class Sizer:
    def __init__(self, broken: bool) -> None:
        self.broken = broken

    @hookimpl(tryfirst=True)
    def size_position(self, context: Any, decision: Any) -> None:
        if self.broken:
            raise ArithmeticError("sizer bug")


class WrappingSizer:
    @hookimpl(wrapper=True)
    def size_position(self, context: Any, decision: Any) -> Iterator[None]:
        # A wrapper is a generator; this one fails before it wraps anything.
        if context is not None:
            raise LookupError("wrapper bug")
        yield


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        # Two instances share their method's code: the error is pinned on the right one.
        ([("a_broken", Sizer(True)), ("b_fine", Sizer(False))], "a_broken raised ArithmeticError: sizer bug"),
        # A wrapper is not called on its own again: it is found from the traceback.
        ([("wrapping_sizer", WrappingSizer())], "wrapping_sizer raised LookupError: wrapper bug"),
    ],
    ids=["instances_of_one_class", "wrapper"],
)
def test_the_raising_sizer_is_the_one_named(tmp_path: Path, extra: list[tuple[str, object]], named: str) -> None:
    t = make_trading(tmp_path, plugins=Plugins(load_entrypoints=False, env={}, extra=extra))
    t.reconcile()
    outcome = t.pipeline.process_buy(t.signal(), Single, t.market())

    assert outcome.decision is not None
    (check,) = [c for c in outcome.decision.checks if c.reason is ReasonCode.RULE_ERROR]
    assert check.detail == f"size_position plugin {named}"
    t.ledger.close()


class _Told:
    """A notifier that keeps what it is asked to send (the relay's side of ``Notifier``)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> bool:
        self.messages.append(message)
        return True


def test_an_order_the_broker_rejects_is_told_at_the_default_error_level(trading: Trading) -> None:
    # A rejection means an order the strategy was allowed to place did not happen: the trader is
    # told (notifications relay errors by default, not warnings).
    told = _Told()
    relay = ErrorRelay(cast(Notifier, told), NotificationSettings())
    logger = logging.getLogger("tradekit.execution.pipeline")
    logger.addHandler(relay)
    try:
        trading.broker.faults.arm(Fault.REJECT)
        outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    finally:
        logger.removeHandler(relay)
    assert outcome.intent is not None
    with trading.ledger.reading() as tx:
        state = tx.intent_state(outcome.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.REJECTED
    rejected = [m.body for m in told.messages if outcome.intent.client_order_id in m.body]
    assert len(rejected) == 1
    assert rejected[0].startswith(f"order {outcome.intent.client_order_id} for KO rejected: ")
