"""The order pipeline: signals become orders, orders become fills, fills become positions.

Buy: preflight (unreconciled symbols are BLOCKed before any broker call) -> broker truth ->
``evaluate_buy`` -> ``size_position`` -> order limits -> intent + client order id in the
ledger -> commit -> send. Sell: a position exists -> a two-phase exit intent (planned:
executed in the next session's window with a limit order; immediate: a market order now).

Idempotent submission: the intent is committed before the order leaves. After any
ambiguous outcome (timeout, lost response, server error, "already exists") the pipeline
looks the order up by its client order id; it never sends the same intent twice. On
restart, ``recover`` settles every intent left in flight the same way, before
reconciliation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

import attrs

from tradekit.broker.errors import (
    BrokerError,
    BrokerUnavailable,
    FractionalNotSupported,
    OrderRejected,
)
from tradekit.broker.protocol import AssetInfo, Broker, OrderEvent
from tradekit.config.settings import Settings
from tradekit.decision.context import (
    AccountLimits,
    MarketSnapshot,
    OrderCounters,
    PendingOrder,
    ScalingContext,
    TierState,
)
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.verdict import BuyDecision
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Fill, Order, OrderStatus, OrderType
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side, Signal, Urgency
from tradekit.domain.values import ZERO
from tradekit.execution.limits import apply_limits
from tradekit.exits.calendar import TradingCalendar
from tradekit.exits.intent import ExitIntent, ExitState
from tradekit.guard.control import OrderGate, TradingGuard
from tradekit.ledger.errors import DuplicateIntentError
from tradekit.ledger.records import IntentPurpose, IntentState, LedgerOrderStatus, OrderIntent
from tradekit.ledger.store import Ledger, LedgerTx
from tradekit.plugins import HookError, Plugins
from tradekit.strategy.base import Strategy

log = logging.getLogger(__name__)

_RANK = {
    LedgerOrderStatus.SUBMITTING: 0,
    LedgerOrderStatus.AMBIGUOUS: 1,
    LedgerOrderStatus.NEW: 2,
    LedgerOrderStatus.ACCEPTED: 3,
    LedgerOrderStatus.PARTIALLY_FILLED: 4,
}
_TERMINAL_RANK = 9


def _as_order_status(status: LedgerOrderStatus | None) -> OrderStatus:
    # tradekit's own in-flight states (submitting, ambiguous) are "new" to a buy rule.
    if status is None or status in (LedgerOrderStatus.SUBMITTING, LedgerOrderStatus.AMBIGUOUS):
        return OrderStatus.NEW
    return OrderStatus.FILLED if status is LedgerOrderStatus.NOT_FOUND else OrderStatus(status.value)


def _rank(status: LedgerOrderStatus | None) -> int:
    if status is None:
        return -1
    return _TERMINAL_RANK if status.is_terminal else _RANK[status]


@attrs.frozen
class BuyOutcome:
    """What became of one buy signal."""

    decision: BuyDecision | None
    intent: OrderIntent | None = None
    order: Order | None = None
    note: str = ""


@attrs.frozen
class ExitOutcome:
    intent: ExitIntent | None
    order: Order | None = None
    note: str = ""


@attrs.frozen
class BrokerTruth:
    """What the broker said, read once for a decision (never for a preflight-blocked symbol)."""

    account: AccountSnapshot
    positions: dict[str, BrokerPosition]
    open_orders: tuple[Order, ...]


class OrderPipeline:
    """Turns signals into orders against one broker and one ledger.

    ``clock`` gives "now" (a replay passes the simulated time). Hooks for tests may observe
    each step through ``on_step`` (called with a step name after it is durable). ``guard``
    is the trading-state guard's gate (default: a ``TradingGuard`` on this ledger).
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        broker: Broker,
        settings: Settings,
        plugins: Plugins,
        calendar: TradingCalendar,
        clock: Callable[[], datetime],
        on_step: Callable[[str], None] | None = None,
        guard: OrderGate | None = None,
    ) -> None:
        self.ledger = ledger
        self.broker = broker
        self.settings = settings
        self.plugins = plugins
        self.calendar = calendar
        self.clock = clock
        self.limits = AccountLimits.from_settings(settings)
        self._on_step = on_step or (lambda step: None)
        # Trading-state guard (issue #13): decisions read its state, every send re-checks it.
        self.guard: OrderGate = (
            guard
            if guard is not None
            else TradingGuard(ledger=ledger, settings=settings.guard, calendar=calendar, plugins=plugins)
        )
        self._assets: dict[str, AssetInfo] = {}
        # Whether a planned exit may exist. Only trusted when this process is the ledger's
        # only writer; otherwise the ledger is always asked.
        self._exits_may_be_planned = True

    # --- buys --------------------------------------------------------------------------------

    def process_buy(self, signal: Signal, strategy: type[Strategy], market: MarketSnapshot) -> BuyOutcome:
        """Judge one buy signal, record the decision and, if it allows, place the order."""
        now = self.clock()
        symbol = signal.symbol
        key_prefix = f"{strategy.name}|{symbol}|{signal.signal_id}|buy"
        preflight_blocked = symbol in self.ledger.unreconciled_symbols()
        truth: BrokerTruth | None = None
        asset: AssetInfo | None = None
        broker_error = ""
        if not preflight_blocked:
            try:
                truth = self._broker_truth()
                asset = self._asset(symbol)
            except BrokerError as exc:
                broker_error = f"broker unavailable: {exc}"
                log.warning("buy %s: %s", symbol, broker_error)
        with self.ledger.transaction(lock_symbol=symbol) as tx:
            if tx.intents_with_prefix(key_prefix):
                return BuyOutcome(None, note=f"signal {signal.signal_id} was already acted on")
            ctx = self._context(tx, signal, strategy, market, now, truth, asset)
            decision = evaluate_buy(ctx, plugins=self.plugins)
            sizing, sizing_error = None, None
            if decision.allows_order:
                try:
                    sizing = self.plugins.size_position(ctx, decision)
                except HookError as exc:
                    sizing_error = str(exc)
                    log.error("buy %s blocked: %s", symbol, exc, exc_info=exc.__cause__)
            sized = apply_limits(ctx, decision, sizing, error=sizing_error)
            decision = sized.decision
            tx.record_decision(decision)
            self._on_step("decision")
            intent = None
            if decision.allows_order:
                intent = OrderIntent(
                    intent_key=f"{key_prefix}|{ctx.entry_count + 1}",
                    symbol=symbol,
                    side=Side.BUY,
                    purpose=IntentPurpose.SCALE_IN if ctx.is_scale_in else IntentPurpose.ENTRY,
                    created_at=now,
                    strategy=strategy.name,
                    qty=sized.qty,
                    decision_id=decision.decision_id,
                    confidence=signal.confidence,
                )
                tx.record_intent(intent)
                tx.record_order_event(intent.client_order_id, LedgerOrderStatus.SUBMITTING, now)
        if intent is None:
            return BuyOutcome(decision, note=broker_error)
        self._on_step("intent")
        order = self._submit(intent)
        return BuyOutcome(decision, intent, order)

    def _broker_truth(self) -> BrokerTruth:
        account = self.broker.get_account()
        positions = {p.symbol: p for p in self.broker.get_positions()}
        return BrokerTruth(account=account, positions=positions, open_orders=tuple(self.broker.get_open_orders()))

    def _asset(self, symbol: str) -> AssetInfo:
        if symbol not in self._assets:
            self._assets[symbol] = self.broker.get_asset(symbol)
        return self._assets[symbol]

    def _context(
        self,
        tx: LedgerTx,
        signal: Signal,
        strategy: type[Strategy],
        market: MarketSnapshot,
        now: datetime,
        truth: BrokerTruth | None,
        asset: AssetInfo | None,
    ) -> ScalingContext:
        symbol = signal.symbol
        counts = tx.order_counts(symbol, day_start=self.calendar.day_start(now))
        pending = [
            PendingOrder(
                client_order_id=s.intent.client_order_id,
                side=s.intent.side,
                status=_as_order_status(s.status),
                qty=s.intent.qty,
                notional=s.intent.notional,
            )
            for s in tx.pending_intents(symbol)
        ]
        known = {p.client_order_id for p in pending}
        account: AccountSnapshot
        if truth is not None:
            account = truth.account
            pending += [
                PendingOrder(
                    client_order_id=o.client_order_id, side=o.side, status=o.status, qty=o.qty, notional=o.notional
                )
                for o in truth.open_orders
                if o.symbol == symbol and o.client_order_id not in known
            ]
        else:
            # Preflight-blocked or broker unreachable: no broker truth, so no buy can pass.
            account = AccountSnapshot(equity=ZERO, cash=ZERO, buying_power=ZERO, as_of=now)
        return ScalingContext(
            signal=signal,
            strategy=strategy.name,
            policy=strategy.policy(),
            limits=self.limits,
            account=account,
            market=market,
            now=now,
            position=tx.position(symbol),
            broker_position=truth.positions.get(symbol) if truth is not None else None,
            broker_checked=truth is not None,
            pending_orders=tuple(pending),
            unreconciled_symbols=tx.unreconciled_symbols(),
            counters=OrderCounters(
                orders_today=counts.orders_today,
                last_order_at=counts.last_order_at,
                acted_on_symbol_today=counts.acted_on_symbol_today,
            ),
            tier=self._tier(symbol, truth, market),
            exit_pending=tx.exit_pending(symbol),
            asset=asset,
            trading_states=self.guard.trading_states(tx),  # trading-state guard (issue #13)
        )

    def _tier(self, symbol: str, truth: BrokerTruth | None, market: MarketSnapshot) -> TierState | None:
        allocation = self.settings.allocation
        name = allocation.tier_of(symbol) if allocation.tiered else None
        if name is None:
            return None
        tier = allocation.tiers[name]
        exposure = ZERO
        if truth is not None:
            exposure = sum(
                (p.market_value() for s, p in truth.positions.items() if s in tier.symbols and not p.is_short), ZERO
            )
        return TierState(
            tier=name,
            exposure=exposure,
            cap_pct=tier.effective_cap_pct,
            allocation_pct=tier.allocation_pct,
            symbol_count=len(tier.symbols),
        )

    # --- sending ---------------------------------------------------------------------------------

    def _send(self, intent: OrderIntent) -> Order | None:
        """Send inside the guard's account lock; None when the guard refused (recorded as not sent).

        Trading-state guard (issue #13): a halt that committed after the decision still stops
        the order here, and no halt commits while an order it would stop is on its way.
        """
        with self.guard.sending(intent, self.clock()) as refusal:
            if refusal is None:
                return self.broker.submit_order(intent.to_request())
        self._record_status(intent, LedgerOrderStatus.NOT_SENT, detail=f"not sent: {refusal}")
        log.warning("order %s for %s not sent: %s", intent.client_order_id, intent.symbol, refusal)
        return None

    def _submit(self, intent: OrderIntent) -> Order | None:
        try:
            order = self._send(intent)  # trading-state guard (issue #13)
        except FractionalNotSupported as exc:
            self._record_status(intent, LedgerOrderStatus.REJECTED, detail=f"fractional refused: {exc}")
            return self._whole_share_fallback(intent, str(exc))
        except OrderRejected as exc:
            self._record_status(intent, LedgerOrderStatus.REJECTED, detail=f"rejected: {exc}")
            log.warning("order %s for %s rejected: %s", intent.client_order_id, intent.symbol, exc)
            return None
        except BrokerError as exc:
            # Timeout, lost response, server error, duplicate id: it may exist. Look it up.
            self._record_status(intent, LedgerOrderStatus.AMBIGUOUS, detail=f"{type(exc).__name__}: {exc}")
            self._on_step("ambiguous")
            return self.resolve(intent, final=False)
        if order is None:
            return None  # the trading-state guard refused it (issue #13)
        self._on_step("sent")
        self._record_order(intent, order)
        return order

    def _whole_share_fallback(self, intent: OrderIntent, why: str) -> Order | None:
        qty = intent.qty
        if qty is None and intent.notional is not None and intent.limit_price is not None:
            qty = intent.notional / intent.limit_price
        whole = (qty or ZERO).to_integral_value(ROUND_DOWN)
        if whole <= 0:
            with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
                tx.record_order_event(
                    intent.client_order_id,
                    LedgerOrderStatus.REJECTED,
                    self.clock(),
                    detail=f"whole-share fallback skipped (zero_quantity): {qty} rounds down to 0 shares",
                )
            return None
        fallback = OrderIntent(
            intent_key=intent.intent_key + "|whole",
            symbol=intent.symbol,
            side=intent.side,
            purpose=intent.purpose,
            created_at=self.clock(),
            strategy=intent.strategy,
            order_type=intent.order_type,
            qty=whole,
            limit_price=intent.limit_price,
            decision_id=intent.decision_id,
            exit_intent_id=intent.exit_intent_id,
            replaces=intent.client_order_id,
            confidence=intent.confidence,
        )
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            tx.record_intent(fallback)
            tx.record_order_event(
                fallback.client_order_id,
                LedgerOrderStatus.SUBMITTING,
                self.clock(),
                detail=f"whole-share fallback for {intent.client_order_id} ({why}): {qty} -> {whole}",
            )
        try:
            order = self._send(fallback)  # trading-state guard (issue #13)
        except OrderRejected as exc:
            self._record_status(fallback, LedgerOrderStatus.REJECTED, detail=f"whole-share fallback rejected: {exc}")
            return None
        except BrokerError as exc:
            self._record_status(fallback, LedgerOrderStatus.AMBIGUOUS, detail=f"{type(exc).__name__}: {exc}")
            return self.resolve(fallback, final=False)
        if order is None:
            return None  # the trading-state guard refused it (issue #13)
        self._record_order(fallback, order)
        return order

    def resolve(self, intent: OrderIntent, *, final: bool) -> Order | None:
        """Settle an intent whose outcome is unknown by asking the broker for it by client id.

        ``final`` (on restart): an order the broker does not know was never placed, and the
        intent is closed as NOT_FOUND. Otherwise it stays ambiguous (and blocks further buys
        of the symbol) until a later lookup or the next restart settles it.
        """
        try:
            order = self.broker.get_order_by_client_id(intent.client_order_id)
        except BrokerError as exc:
            log.warning("lookup of %s failed, stays unsettled: %s", intent.client_order_id, exc)
            return None
        if order is None:
            if final:
                self._record_status(intent, LedgerOrderStatus.NOT_FOUND, detail="the broker has no such order")
                if intent.exit_intent_id:
                    self._exit_order_gone(intent, "exit order never reached the broker")
            return None
        self._record_order(intent, order)
        return order

    def _record_order(self, intent: OrderIntent, order: Order) -> None:
        fills: Sequence[Fill] = ()
        if order.filled_qty > 0:
            try:
                fills = self.broker.get_fills(intent.client_order_id)
            except BrokerError as exc:
                log.warning("fills of %s could not be read now: %s", intent.client_order_id, exc)
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            for fill in fills:
                tx.record_fill(fill)
            self._advance_status(tx, intent, order)
        self._on_step("recorded")

    def _advance_status(self, tx: LedgerTx, intent: OrderIntent, order: Order) -> None:
        state = tx.intent_state(intent.client_order_id)
        current = state.status if state is not None else None
        new = LedgerOrderStatus.from_broker(order.status)
        if _rank(new) > _rank(current) or (new.is_terminal and current is not None and not current.is_terminal):
            tx.record_order_event(
                intent.client_order_id,
                new,
                self.clock(),
                broker_order_id=order.broker_order_id,
                filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                detail=order.reject_reason,
            )
        if intent.exit_intent_id:
            self._follow_exit(tx, intent, order)

    def _record_status(self, intent: OrderIntent, status: LedgerOrderStatus, *, detail: str) -> None:
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            tx.record_order_event(intent.client_order_id, status, self.clock(), detail=detail)
            if intent.exit_intent_id and status.is_terminal:
                self._exit_failed(tx, intent.exit_intent_id, detail)

    # --- broker events -----------------------------------------------------------------------------

    def apply_events(self, events: Sequence[OrderEvent] | None = None) -> int:
        """Record order events (fills deduplicated by execution id); return fills applied."""
        batch = self.broker.drain_events() if events is None else events
        applied = 0
        for event in batch:
            with self.ledger.transaction(lock_symbol=event.order.symbol) as tx:
                intent = tx.intent(event.order.client_order_id)
                if event.fill is not None and tx.record_fill(event.fill):
                    applied += 1
                if intent is not None:
                    self._advance_status(tx, intent, event.order)
        if applied:
            self._on_step("events")
        return applied

    def recover(self) -> list[IntentState]:
        """Settle every intent left in flight by a crash or restart (call before reconciling)."""
        with self.ledger.reading() as tx:
            pending = tx.pending_intents()
        for state in pending:
            self.resolve(state.intent, final=True)
        with self.ledger.reading() as tx:
            return tx.pending_intents()

    # --- exits -----------------------------------------------------------------------------------------

    def plan_exit(self, signal: Signal, strategy: type[Strategy] | None = None) -> ExitOutcome:
        """Record an exit decided now; immediate exits are sent at once as market orders."""
        now = self.clock()
        symbol = signal.symbol
        intent_id = "exit-" + hashlib.sha256(f"{symbol}|{signal.signal_id}".encode()).hexdigest()[:20]
        with self.ledger.transaction(lock_symbol=symbol) as tx:
            position = tx.position(symbol)
            if position is None:
                return ExitOutcome(None, note=f"no open {symbol} position to exit")
            if tx.exit_intent(intent_id) is not None or tx.exit_pending(symbol):
                return ExitOutcome(tx.exit_intent(intent_id), note=f"an exit for {symbol} is already planned")
            immediate = signal.urgency is Urgency.IMMEDIATE or not self.settings.exits.two_phase_enabled
            window = None
            if not immediate:
                window = self.calendar.execution_window(
                    now, self.settings.exits.window_start_minutes, self.settings.exits.window_end_minutes
                )
            intent = ExitIntent(
                intent_id=intent_id,
                symbol=symbol,
                strategy=position.strategy,
                qty=position.qty,
                urgency=Urgency.IMMEDIATE if immediate else Urgency.PLANNED,
                order_type=OrderType.MARKET if immediate else OrderType.LIMIT,
                reason=signal.reason or f"sell signal from {signal.source or 'strategy'}",
                decided_at=now,
                window_opens_at=window.opens_at if window else None,
                window_closes_at=window.closes_at if window else None,
            )
            intent = self.plugins.on_exit_intent(intent)
            tx.record_exit_intent(intent)
            self._exits_may_be_planned = True
        log.info("exit planned for %s: %s (%s)", symbol, intent.reason, intent.urgency)
        if immediate:
            return self.execute_exit(intent, price=None)
        return ExitOutcome(intent)

    def execute_due_exits(self, prices: dict[str, Decimal]) -> list[ExitOutcome]:
        """Execute planned exits whose window is open; expire (and report) those it passed."""
        now = self.clock()
        if self.ledger.exclusive and not self._exits_may_be_planned:
            return []
        with self.ledger.reading() as tx:
            planned = tx.exit_intents(states=[ExitState.PLANNED])
        self._exits_may_be_planned = bool(planned)
        outcomes = []
        for intent in planned:
            if intent.window_opens_at is not None and now < intent.window_opens_at:
                continue
            if intent.window_closes_at is not None and now > intent.window_closes_at:
                with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
                    expired = tx.transition_exit(
                        intent.intent_id,
                        ExitState.EXPIRED,
                        now,
                        note=f"execution window closed at {intent.window_closes_at.isoformat()} before execution",
                    )
                log.warning(
                    "exit intent %s for %s expired unexecuted: %s", intent.intent_id, intent.symbol, expired.note
                )
                outcomes.append(ExitOutcome(expired, note=expired.note))
                continue
            outcomes.append(self.execute_exit(intent, price=prices.get(intent.symbol)))
        return outcomes

    def execute_exit(self, intent: ExitIntent, *, price: Decimal | None) -> ExitOutcome:
        """Send the exit order once: the intent moves to SUBMITTED in the same transaction
        that records the order intent, so a second call finds nothing to do."""
        now = self.clock()
        if intent.order_type is OrderType.LIMIT and price is None:
            return ExitOutcome(intent, note=f"no current price for {intent.symbol}: exit waits")
        planned = intent if intent.order_type is OrderType.MARKET else attrs.evolve(intent, limit_price=price)
        planned = self.plugins.on_exit_intent(planned)
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            current = tx.exit_intent(intent.intent_id)
            if current is None or current.state is not ExitState.PLANNED:
                return ExitOutcome(current, note="exit already executed or closed")
            position = tx.position(intent.symbol)
            if position is None:
                closed = tx.transition_exit(intent.intent_id, ExitState.CANCELLED, now, note="position already flat")
                return ExitOutcome(closed, note=closed.note)
            # Trading-state guard (issue #13): while HALTED the exit stays planned and waits.
            blocker = self.guard.trading_states(tx).exit_blocker(strategy=intent.strategy, symbol=intent.symbol, at=now)
            if blocker is not None:
                return ExitOutcome(current, note=f"exit waits: {blocker.describe()}")
            order_intent = OrderIntent(
                intent_key=f"exit|{intent.intent_id}",
                symbol=intent.symbol,
                side=Side.SELL,
                purpose=IntentPurpose.EXIT,
                created_at=now,
                strategy=intent.strategy,
                order_type=planned.order_type,
                qty=min(planned.qty, position.qty),
                limit_price=planned.limit_price if planned.order_type is OrderType.LIMIT else None,
                exit_intent_id=intent.intent_id,
            )
            try:
                tx.record_intent(order_intent)
            except DuplicateIntentError:
                return ExitOutcome(current, note="exit order already recorded")
            tx.record_order_event(order_intent.client_order_id, LedgerOrderStatus.SUBMITTING, now)
            submitted = tx.transition_exit(
                intent.intent_id,
                ExitState.SUBMITTED,
                now,
                note=f"{planned.order_type} sell {order_intent.qty} {intent.symbol}",
                client_order_id=order_intent.client_order_id,
                limit_price=order_intent.limit_price,
            )
        self._on_step("exit_intent")
        order = self._submit(order_intent)
        return ExitOutcome(submitted, order)

    def _follow_exit(self, tx: LedgerTx, intent: OrderIntent, order: Order) -> None:
        assert intent.exit_intent_id is not None
        current = tx.exit_intent(intent.exit_intent_id)
        if current is None or current.state is not ExitState.SUBMITTED:
            return
        if order.status is OrderStatus.FILLED:
            tx.transition_exit(
                intent.exit_intent_id, ExitState.EXECUTED, self.clock(), note=f"filled at {order.filled_avg_price}"
            )
        elif order.status.is_terminal:
            self._exit_failed(tx, intent.exit_intent_id, f"exit order {order.status}: {order.reject_reason}")

    def _exit_failed(self, tx: LedgerTx, exit_intent_id: str, why: str) -> None:
        current = tx.exit_intent(exit_intent_id)
        if current is not None and current.state is ExitState.SUBMITTED:
            tx.transition_exit(exit_intent_id, ExitState.EXPIRED, self.clock(), note=why)
            log.warning("exit %s not executed: %s", exit_intent_id, why)

    def _exit_order_gone(self, intent: OrderIntent, why: str) -> None:
        assert intent.exit_intent_id is not None
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            self._exit_failed(tx, intent.exit_intent_id, why)

    # --- startup ---------------------------------------------------------------------------------------

    def check_fractional_support(self) -> bool:
        """Ask the broker whether the account trades fractional shares (logged at startup)."""
        try:
            account = self.broker.get_account()
        except BrokerUnavailable as exc:
            log.warning("fractional support unknown (account unreadable): %s", exc)
            return False
        if self.settings.allocation.fractional_shares and not account.fractional_trading:
            log.warning("fractional shares are enabled in settings but not on the account: whole shares will be used")
        return account.fractional_trading
