"""The order pipeline: signals become orders, orders become fills, fills become positions.

Buy: preflight (unreconciled symbols are BLOCKed before any broker call) -> broker truth ->
``evaluate_buy`` -> ``size_position`` -> order limits -> intent + client order id in the
ledger -> commit -> send. Sell: a position exists -> a two-phase exit intent (planned:
executed in the next session's window with a limit order; immediate: a market order now).

Idempotent submission: the intent is committed before the order leaves. After any
ambiguous outcome (timeout, lost response, server error, "already exists") the pipeline
looks the order up by its client order id; it never sends the same intent twice. On
restart, ``recover`` settles every intent left in flight the same way, before
reconciliation. The one order sent again is an exit sell given up on as lost (never seen at
the broker): the exit's next attempt goes out under its client order id, whatever kind of
order that attempt is, so that the lost request, should it still arrive, is refused by the
broker as a duplicate (``OrderPipeline.execute_exit``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import attrs

from tradekit.broker.errors import (
    BrokerError,
    BrokerUnavailable,
    FractionalNotSupported,
    OrderRejected,
)
from tradekit.broker.protocol import AssetInfo, Broker, OrderEvent
from tradekit.config.settings import MissedWindow, Settings
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
from tradekit.domain.orders import Fill, Order, OrderStatus, OrderType, TimeInForce
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side, Signal, Urgency
from tradekit.domain.values import ZERO
from tradekit.execution.limits import apply_limits, whole_share_refusal
from tradekit.exits.calendar import ExecutionWindow, TradingCalendar
from tradekit.exits.intent import ExitIntent, ExitState
from tradekit.guard.control import OrderGate, TradingGuard
from tradekit.ledger.errors import DuplicateIntentError
from tradekit.ledger.records import (
    FillResult,
    IntentPurpose,
    IntentState,
    LedgerOrderStatus,
    OrderIntent,
    client_order_id_for,
)
from tradekit.ledger.store import Ledger, LedgerTx
from tradekit.plugins import HookError, Plugins
from tradekit.reconcile.reconciler import Reconciler
from tradekit.reconcile.report import ReconcileReport
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
# The key suffix of the DAY order that sells the fraction of a split exit attempt (see
# ``OrderPipeline.execute_exit``): the attempt's other order has the key without it.
_DAY_FRACTION = "|fraction"
_SPLIT_NOTE = " (the broker takes fractional orders as DAY orders only)"


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
    # The window closed with the exit unexecuted and it moved to the next session's window.
    rolled: bool = False


@attrs.frozen
class _Basis:
    """What a buy was decided on, kept while it is sent: a whole-share fallback is judged again."""

    signal: Signal
    strategy: type[Strategy]
    market: MarketSnapshot
    price: Decimal


def _attempt_in_flight(tx: LedgerTx, attempt: OrderIntent) -> ExitIntent | None:
    """The exit ``attempt`` belongs to, if that attempt is (one of) the exit's order(s) in
    flight now: the one the exit names, or the DAY order selling its fraction."""
    assert attempt.exit_intent_id is not None
    current = tx.exit_intent(attempt.exit_intent_id)
    if current is None or current.state is not ExitState.SUBMITTED:
        return None
    if current.client_order_id == attempt.client_order_id:
        return current
    lead_key = attempt.intent_key.removesuffix(_DAY_FRACTION)
    if lead_key != attempt.intent_key and client_order_id_for(lead_key) == current.client_order_id:
        return current
    return None


def _attempt_orders(tx: LedgerTx, current: ExitIntent) -> list[OrderIntent]:
    """The order(s) of the exit's attempt in flight: the one it names and, when the attempt
    was split, the DAY order selling the fraction."""
    assert current.client_order_id is not None
    lead = tx.intent(current.client_order_id)
    if lead is None:
        return []
    if lead.intent_key.endswith(_DAY_FRACTION):
        return [lead]  # less than one share: the DAY order alone
    # Looked for whatever the lead's time in force: a split attempt lost and sent again in a
    # window goes out as two DAY limit orders under its two client order ids.
    fraction = tx.intent(client_order_id_for(lead.intent_key + _DAY_FRACTION))
    return [lead] if fraction is None else [lead, fraction]


def _last_attempt(earlier: Sequence[OrderIntent]) -> list[OrderIntent]:
    """The order(s) of the last attempt among an exit's ``earlier`` orders (oldest first)."""
    last = earlier[-1]
    lead_key = last.intent_key.removesuffix(_DAY_FRACTION)
    if lead_key != last.intent_key and len(earlier) > 1 and earlier[-2].intent_key == lead_key:
        return [earlier[-2], last]
    return [last]


def _lost_orders(tx: LedgerTx, attempts: Sequence[OrderIntent]) -> list[OrderIntent]:
    """The exit's orders given up on as lost, whichever attempt sent them (``NOT_FOUND``: never
    seen at the broker, nothing filled): a request of each may still reach the broker. A lost
    order's re-send that the broker refuses, or the guard stops, stays ``NOT_FOUND``."""
    lost = []
    for attempt in attempts:
        state = tx.intent_state(attempt.client_order_id)
        if (
            state is not None
            and state.status is LedgerOrderStatus.NOT_FOUND
            and state.broker_order_id is None
            and state.filled_qty == 0
        ):
            lost.append(state.intent)
    return lost


def _resend_quantities(lost: Sequence[OrderIntent], qty: Decimal) -> list[Decimal] | None:
    """What each lost order sells when sent again under its client order id, ``qty`` in all
    (0: not sent again, it stays lost); None when no such split is known to be safe.

    Whichever copy of an id reaches the broker first is the one it takes: a late request or
    the re-send. The most the exit could then sell is, for each id, the larger of what its
    re-send asks and what any of its requests still on the way asks. A safe split keeps that
    at the larger of ``qty`` and what the lost requests alone could sell: one lost order takes
    all of ``qty``; several each ask at most what their intents state (the last request of
    each that may be at the broker; what an earlier one asked is not recorded), so that late
    requests sell no more than they could have anyway. Several asking less, together, than
    ``qty`` (the broker now holds more free to sell than when they were sent) have no safe
    split: each would have to ask at least what any of its requests asked.
    """
    if len(lost) == 1:
        return [qty]
    asked = [order.qty or ZERO for order in lost]
    if qty > sum(asked, ZERO):
        return None
    # The last ones (a split's fraction) first, so that the whole shares of a split keep their
    # time in force when shares were sold meanwhile.
    quantities, left = [], qty
    for each in reversed(asked):
        part = min(each, left)
        quantities.append(part)
        left -= part
    return quantities[::-1]


def _buys_in_flight(tx: LedgerTx, symbol: str) -> list[IntentState]:
    """The buys of ``symbol`` tradekit sent whose order has not settled (they may still fill)."""
    return [s for s in tx.pending_intents(symbol) if s.intent.side is Side.BUY]


def _unfilled_value(
    qty: Decimal | None, notional: Decimal | None, filled: Decimal, price: Decimal | None, paid: Decimal | None = None
) -> Decimal | None:
    """What an order has yet to buy, in money (None when it is sized in shares and no price
    is known). An order sized in money has left what its fills did not cost (``paid``, when
    the broker says; valued at ``price`` otherwise), and counts whole while neither is known."""
    if qty is not None:
        left = max(qty - filled, ZERO)
        if left == 0:
            return ZERO
        return left * price if price is not None else None
    if notional is None:
        return ZERO
    if paid is None:
        if price is None:
            return notional
        paid = filled * price
    return max(notional - paid, ZERO)


def _paid(order: Order | None, filled: Decimal) -> Decimal | None:
    """What the broker says the ``filled`` shares of ``order`` cost (None when it does not)."""
    if order is None or order.filled_avg_price is None or order.filled_qty != filled:
        return None
    return filled * order.filled_avg_price


def _order_kind(order: OrderIntent) -> str:
    if order.time_in_force is TimeInForce.CLS:
        return "market-on-close"
    return (
        str(order.order_type) if order.time_in_force is TimeInForce.DAY else f"{order.order_type} {order.time_in_force}"
    )


def _order_sell(order: OrderIntent) -> str:
    price = f" at {order.limit_price}" if order.limit_price is not None else ""
    return f"{_order_kind(order)} sell {order.qty} {order.symbol}{price}"


def _window_text(intent: ExitIntent) -> str:
    if intent.window_opens_at is None or intent.window_closes_at is None:
        return "(none)"
    return f"{intent.window_opens_at.isoformat()} .. {intent.window_closes_at.isoformat()}"


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
        self._last_truth: tuple[object, object, object, BrokerTruth] | None = None
        # A fill the ledger could not apply, or an unresolved order settled: the positions of
        # their symbols are re-derived from the broker (reconcile_if_due).
        self._reconcile_due = False
        # Exit orders whose window closed while they rested: cancel requested once per process.
        self._cancel_requested: set[str] = set()
        # Lost exit orders this process sent again (under their own client order id), and when:
        # the grace before one is given up on again runs from then, not from its intent.
        self._resent_at: dict[str, datetime] = {}
        # When this process last sent an exit's lost order(s) again market-on-close, by exit:
        # one market-on-close a session, even when its intent went back to the lost request.
        self._resent_on_close: dict[str, datetime] = {}
        # The price each buy still in flight was decided at, for a tier's cap (``_unfilled_buys``):
        # its value when nothing else prices it (no fill, no position). Kept by this process
        # only, while it is in flight; after a restart such a buy takes its tier as full.
        self._decided_prices: dict[str, Decimal] = {}
        # Whether a planned exit may exist. Only trusted when this process is the ledger's
        # only writer; otherwise the ledger is always asked.
        self._exits_may_be_planned = True

    def trading_guard(self) -> TradingGuard:
        """The trading-state guard this pipeline's orders pass through (issue #13): its own
        gate when that is one, else one on the same ledger, settings and calendar."""
        if isinstance(self.guard, TradingGuard):
            return self.guard
        return TradingGuard(
            ledger=self.ledger, settings=self.settings.guard, calendar=self.calendar, plugins=self.plugins
        )

    # --- buys --------------------------------------------------------------------------------

    def process_buy(
        self, signal: Signal, strategy: type[Strategy], market: MarketSnapshot, *, queued: bool = False
    ) -> BuyOutcome:
        """Judge one buy signal, record the decision and, if it allows, place the order.

        ``queued``: the signal waited in the ledger's queue of buys for the open; it leaves
        the queue in the transaction that records its decision.
        """
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
        # The account's buy lock too: the daily order limit and a tier's cap span symbols, and
        # another process may be deciding a buy of another symbol right now (PostgreSQL).
        with self.ledger.transaction(lock_symbol=symbol, lock_buys=True) as tx:
            if tx.intents_with_prefix(key_prefix):
                note = f"signal {signal.signal_id} was already acted on"
                if queued:
                    tx.settle_queued_buy(signal.signal_id, now, decision_id=None, note=note)
                return BuyOutcome(None, note=note)
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
            if queued:
                tx.settle_queued_buy(signal.signal_id, now, decision_id=decision.decision_id)
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
                if ctx.tier is not None and sized.price is not None:
                    self._decided_prices[intent.client_order_id] = sized.price
        if intent is None:
            return BuyOutcome(decision, note=broker_error)
        self._on_step("intent")
        assert sized.price is not None
        order = self._submit(intent, fallback=_Basis(signal, strategy, market, sized.price))
        return BuyOutcome(decision, intent, order)

    def _broker_truth(self) -> BrokerTruth:
        account = self.broker.get_account()
        listed = self.broker.get_positions()
        open_orders = self.broker.get_open_orders()
        # A broker that answers with the very same objects as last time (the paper broker
        # between two changes of its book) gets the same truth back, not a rebuilt one.
        last = self._last_truth
        if last is not None and last[0] is account and last[1] is listed and last[2] is open_orders:
            return last[3]
        truth = BrokerTruth(account=account, positions={p.symbol: p for p in listed}, open_orders=tuple(open_orders))
        self._last_truth = (account, listed, open_orders, truth)
        return truth

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
            tier=self._tier(tx, symbol, truth, market),
            exit_pending=tx.exit_pending(symbol),
            asset=asset,
            trading_states=self.guard.trading_states(tx),  # trading-state guard (issue #13)
        )

    def _tier(self, tx: LedgerTx, symbol: str, truth: BrokerTruth | None, market: MarketSnapshot) -> TierState | None:
        allocation = self.settings.allocation
        name = allocation.tier_of(symbol) if allocation.tiered else None
        if name is None:
            return None
        tier = allocation.tiers[name]
        members = frozenset(tier.symbols)
        exposure = ZERO
        if truth is not None:
            exposure = self._tier_held(tx, members, truth, symbol, market)
            # What buys still working on the tier's symbols have yet to buy counts as held: the
            # cap would otherwise be overrun by orders filling after this one is decided.
            in_flight = self._unfilled_buys(tx, members, truth, symbol, market)
            if in_flight is None:
                exposure = max(exposure, truth.account.equity * tier.effective_cap_pct / 100)
            else:
                exposure += in_flight
        return TierState(
            tier=name,
            exposure=exposure,
            cap_pct=tier.effective_cap_pct,
            allocation_pct=tier.allocation_pct,
            symbol_count=len(tier.symbols),
        )

    def _tier_held(
        self, tx: LedgerTx, members: frozenset[str], truth: BrokerTruth, symbol: str, market: MarketSnapshot
    ) -> Decimal:
        """What the tier's symbols are worth held: per symbol, the broker's position or the
        ledger's, whichever is larger. The broker was read before this transaction began: a
        buy another process filled and recorded since (PostgreSQL) is in the ledger only, and
        no longer in flight."""
        held = ZERO
        recorded = tx.open_positions(members)
        for of in members:
            at_broker = truth.positions.get(of)
            value = at_broker.market_value() if at_broker is not None and not at_broker.is_short else ZERO
            position = recorded.get(of)
            if position is not None and position.is_open:
                price = at_broker.current_price if at_broker is not None else None
                price = price or self._price_of(tx, of, truth, symbol, market, None) or position.last_entry_price
                value = max(value, position.market_value(price))
            held += value
        return held

    def _unfilled_buys(
        self, tx: LedgerTx, members: frozenset[str], truth: BrokerTruth, symbol: str, market: MarketSnapshot
    ) -> Decimal | None:
        """What the buys in flight on ``members`` are still to buy, at the best price known for
        each: tradekit's own (the ledger's unsettled intents: a request whose answer was lost may
        be at the broker) and any other working at the broker. None when one of them cannot be
        valued: the tier is then taken as full rather than guessed at."""
        working = {
            o.client_order_id: o
            for o in truth.open_orders
            if o.symbol in members and o.side is Side.BUY and not o.status.is_terminal
        }
        total = ZERO
        pending = tx.pending_intents()
        settled = self._decided_prices.keys() - {p.intent.client_order_id for p in pending}
        for coid in settled:
            del self._decided_prices[coid]
        for state in pending:
            intent = state.intent
            if intent.side is not Side.BUY or intent.symbol not in members:
                continue
            order = working.pop(intent.client_order_id, None)
            filled = max(state.filled_qty, order.filled_qty if order is not None else ZERO)
            price = self._price_of(tx, intent.symbol, truth, symbol, market, intent.limit_price)
            if price is None:
                price = self._decided_prices.get(intent.client_order_id)
            value = _unfilled_value(intent.qty, intent.notional, filled, price, _paid(order, filled))
            if value is None:
                log.warning(
                    "buy %s: its tier is taken as full: the buy %s of %s in flight has no price",
                    symbol,
                    intent.client_order_id,
                    intent.symbol,
                )
                return None
            total += value
        for order in working.values():  # placed outside tradekit
            price = self._price_of(tx, order.symbol, truth, symbol, market, order.limit_price) or order.filled_avg_price
            value = _unfilled_value(order.qty, order.notional, order.filled_qty, price, _paid(order, order.filled_qty))
            if value is None:
                log.warning(
                    "buy %s: its tier is taken as full: the buy %s of %s working at the broker has no price",
                    symbol,
                    order.client_order_id,
                    order.symbol,
                )
                return None
            total += value
        return total

    @staticmethod
    def _price_of(
        tx: LedgerTx,
        of: str,
        truth: BrokerTruth,
        symbol: str,
        market: MarketSnapshot,
        limit_price: Decimal | None,
    ) -> Decimal | None:
        """The price an order on ``of`` is valued at: the market's now when known, else its
        limit, else what the ledger last paid."""
        if of == symbol and market.price is not None:
            return market.price
        position = truth.positions.get(of)
        if position is not None and position.current_price is not None:
            return position.current_price
        if limit_price is not None:
            return limit_price
        held = tx.position(of)
        return held.last_entry_price if held is not None else None

    # --- sending ---------------------------------------------------------------------------------

    def _send(self, intent: OrderIntent, *, lost: OrderIntent | None = None) -> Order | None:
        """Send inside the guard's account lock; None when the guard refused (recorded as not sent;
        a lost exit order's re-send stays not found, its intent ``lost`` again: the lost
        request may still arrive).

        Trading-state guard (issue #13): a halt that committed after the decision still stops
        the order here, and no halt commits while an order it would stop is on its way.
        """
        with self.guard.sending(intent, self.clock()) as refusal:
            if refusal is None:
                return self.broker.submit_order(intent.to_request())
        if lost is not None:
            detail = f"re-send not sent: {refusal}; the lost request may still reach the broker"
            self._record_status(intent, LedgerOrderStatus.NOT_FOUND, detail=detail, revert=lost)
        else:
            self._record_status(intent, LedgerOrderStatus.NOT_SENT, detail=f"not sent: {refusal}")
        log.warning("order %s for %s not sent: %s", intent.client_order_id, intent.symbol, refusal)
        return None

    def _submit(
        self, intent: OrderIntent, *, fallback: _Basis | None = None, lost: OrderIntent | None = None
    ) -> Order | None:
        """Send a recorded intent and record what became of it. ``lost``: the intent is a lost
        exit order sent again, and this its intent as it was; refused, it stays given up on as
        not found and its intent states ``lost`` again (the lost request may still reach the
        broker, and the next attempt keeps its client order id)."""
        try:
            order = self._send(intent, lost=lost)  # trading-state guard (issue #13)
        except OrderRejected as exc:
            if lost is not None:
                detail = f"re-send refused: {exc}; the lost request may still reach the broker"
                self._record_status(intent, LedgerOrderStatus.NOT_FOUND, detail=detail, revert=lost)
                log.warning("order %s for %s: %s", intent.client_order_id, intent.symbol, detail)
                return None
            if isinstance(exc, FractionalNotSupported):
                if fallback is not None:
                    # The refusal is recorded with the whole-share order that replaces it, in
                    # one transaction: the symbol never looks free of a buy in between.
                    return self._whole_share_fallback(intent, fallback, str(exc))
                self._record_status(intent, LedgerOrderStatus.REJECTED, detail=f"fractional refused: {exc}")
                return None
            self._record_status(intent, LedgerOrderStatus.REJECTED, detail=f"rejected: {exc}")
            # An error, not a warning: an order the decision allowed did not happen, and
            # notifications relay errors by default (``notifications.error_level``).
            log.error("order %s for %s rejected: %s", intent.client_order_id, intent.symbol, exc)
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

    def _whole_share_fallback(self, intent: OrderIntent, basis: _Basis, why: str) -> Order | None:
        """Record the refusal of a fractional buy and send it again as whole shares, if that
        order passes the same limits as any other: the minimum notional, the caps and the daily
        order limit (and no other order of the symbol works)."""
        qty = intent.qty
        if qty is None and intent.notional is not None:
            qty = intent.notional / basis.price
        whole = (qty or ZERO).to_integral_value(ROUND_DOWN)
        now = self.clock()
        truth: BrokerTruth | None = None
        try:
            truth = self._broker_truth()
        except BrokerError as exc:
            log.warning("whole-share fallback for %s: broker unavailable: %s", intent.symbol, exc)
        with self.ledger.transaction(lock_symbol=intent.symbol, lock_buys=True) as tx:
            tx.record_order_event(
                intent.client_order_id, LedgerOrderStatus.REJECTED, now, detail=f"fractional refused: {why}"
            )
            self._reconcile_if_held_back(tx, intent.symbol)
            ctx = self._context(
                tx, basis.signal, basis.strategy, basis.market, now, truth, self._assets.get(intent.symbol)
            )
            refusal = whole_share_refusal(ctx, qty or ZERO, whole, basis.price, replaced=intent.client_order_id)
            if refusal:
                tx.record_order_event(
                    intent.client_order_id,
                    LedgerOrderStatus.REJECTED,
                    now,
                    detail=f"whole-share fallback not sent ({why}): {refusal}",
                )
                log.warning("buy %s: whole-share fallback not sent: %s", intent.symbol, refusal)
                return None
            replacement = OrderIntent(
                intent_key=intent.intent_key + "|whole",
                symbol=intent.symbol,
                side=intent.side,
                purpose=intent.purpose,
                created_at=now,
                strategy=intent.strategy,
                order_type=intent.order_type,
                qty=whole,
                limit_price=intent.limit_price,
                decision_id=intent.decision_id,
                exit_intent_id=intent.exit_intent_id,
                replaces=intent.client_order_id,
                confidence=intent.confidence,
            )
            tx.record_intent(replacement)
            if ctx.tier is not None:
                self._decided_prices[replacement.client_order_id] = basis.price
            tx.record_order_event(
                replacement.client_order_id,
                LedgerOrderStatus.SUBMITTING,
                now,
                detail=f"whole-share fallback for {intent.client_order_id} ({why}): {qty} -> {whole}",
            )
        try:
            order = self._send(replacement)  # trading-state guard (issue #13)
        except OrderRejected as exc:
            self._record_status(replacement, LedgerOrderStatus.REJECTED, detail=f"whole-share fallback rejected: {exc}")
            return None
        except BrokerError as exc:
            self._record_status(replacement, LedgerOrderStatus.AMBIGUOUS, detail=f"{type(exc).__name__}: {exc}")
            return self.resolve(replacement, final=False)
        if order is None:
            return None  # the trading-state guard refused it (issue #13)
        self._record_order(replacement, order)
        return order

    def resolve(self, intent: OrderIntent, *, final: bool) -> Order | None:
        """Settle an intent whose outcome is unknown by asking the broker for it by client id.

        An order the broker does not know is given up on (NOT_FOUND; an exit is then tried
        again) only when ``final`` and the intent is older than
        ``orders.lost_order_grace_seconds``: a request still on its way (a slow broker,
        another process sending it) is not taken for lost. Until then it stays unresolved and
        its symbol deferred by reconciliation.
        """
        try:
            order = self.broker.get_order_by_client_id(intent.client_order_id)
        except BrokerError as exc:
            log.warning("lookup of %s failed, stays unsettled: %s", intent.client_order_id, exc)
            return None
        if order is None:
            grace = timedelta(seconds=self.settings.orders.lost_order_grace_seconds)
            # A lost order sent again by this process waits its grace from the re-send (after a
            # restart, from its intent: given up on sooner, it is re-sent under the same id).
            sent_at = self._resent_at.get(intent.client_order_id, intent.created_at)
            if final and self.clock() - sent_at >= grace:
                self._record_status(intent, LedgerOrderStatus.NOT_FOUND, detail="the broker has no such order")
                self._resent_at.pop(intent.client_order_id, None)
            return None
        self._resent_at.pop(intent.client_order_id, None)
        self._record_order(intent, order)
        return order

    def _record_order(self, intent: OrderIntent, order: Order) -> None:
        fills: Sequence[Fill] = ()
        if order.filled_qty > 0:
            with self.ledger.reading() as tx:
                known = tx.filled_qty(intent.client_order_id)
            if order.filled_qty > known:
                try:
                    fills = self.broker.get_fills(intent.client_order_id)
                except BrokerError as exc:
                    log.warning("fills of %s could not be read now: %s", intent.client_order_id, exc)
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            applied = [fill for fill in fills if self._record_fill(tx, fill) is FillResult.APPLIED]
            self._advance_status(tx, intent, order)
        for fill in applied:
            self.plugins.on_fill(fill, intent)  # committed: announced (notifications)
        self._on_step("recorded")

    def _record_fill(self, tx: LedgerTx, fill: Fill) -> FillResult:
        result = tx.record_fill(fill)
        if result is FillResult.UNAPPLIED:
            self._reconcile_due = True
            log.warning(
                "fill %s of %s could not be applied as expected; %s is re-derived from the broker",
                fill.execution_id,
                fill.client_order_id,
                fill.symbol,
            )
        return result

    def _advance_status(self, tx: LedgerTx, intent: OrderIntent, order: Order) -> None:
        state = tx.intent_state(intent.client_order_id)
        current = state.status if state is not None else None
        detail = order.reject_reason
        if order.status.is_terminal and order.filled_qty > 0:
            known = tx.filled_qty(intent.client_order_id)
            if known < order.filled_qty:
                # The broker says it is done, but not every fill it reports is in the ledger
                # (its fills could not be read, a stream event was lost): the order stays
                # unsettled, its symbol deferred by reconciliation, until they are. Taken
                # as settled, the position would be adopted from the broker and then
                # counted again when the fills arrive.
                detail = f"the broker reports {order.status} with {order.filled_qty} filled, {known} recorded"
                log.warning("order %s: %s; its fills are read again", intent.client_order_id, detail)
                order = attrs.evolve(order, status=OrderStatus.PARTIALLY_FILLED)
        new = LedgerOrderStatus.from_broker(order.status)
        # NOT_FOUND was tradekit's guess, not the broker's word: whatever the broker reports
        # later replaces it.
        overrides = current is LedgerOrderStatus.NOT_FOUND and new is not current
        if (
            overrides
            or _rank(new) > _rank(current)
            or (new.is_terminal and current is not None and not current.is_terminal)
        ):
            tx.record_order_event(
                intent.client_order_id,
                new,
                self.clock(),
                broker_order_id=order.broker_order_id,
                filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                detail=detail,
            )
            if new.is_terminal:
                self._reconcile_if_held_back(tx, intent.symbol)
        if intent.exit_intent_id:
            self._follow_exit(tx, intent, order)

    def _reconcile_if_held_back(self, tx: LedgerTx, symbol: str) -> None:
        # An order of a symbol reconciliation held back (deferred while the order worked) has
        # finished, whichever way the news came (a lookup, a stream event, a refusal): the
        # symbol is reconciled at the next chance, not left blocked until a restart.
        if not self._reconcile_due and symbol in tx.unreconciled_symbols():
            self._reconcile_due = True

    def _record_status(
        self, intent: OrderIntent, status: LedgerOrderStatus, *, detail: str, revert: OrderIntent | None = None
    ) -> None:
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            if revert is not None:
                tx.revise_intent(revert)  # a refused re-send: the intent states the lost request again
            tx.record_order_event(intent.client_order_id, status, self.clock(), detail=detail)
            if status.is_terminal:
                self._reconcile_if_held_back(tx, intent.symbol)
            if intent.exit_intent_id and status.is_terminal:
                self._exit_attempt_failed(tx, intent, detail)

    # --- broker events -----------------------------------------------------------------------------

    def apply_events(self, events: Sequence[OrderEvent] | None = None) -> int:
        """Record order events (fills deduplicated by execution id); return fills applied."""
        batch = self.broker.drain_events() if events is None else events
        applied = 0
        for event in batch:
            with self.ledger.transaction(lock_symbol=event.order.symbol) as tx:
                intent = tx.intent(event.order.client_order_id)
                fill = event.fill
                if fill is not None and self._record_fill(tx, fill) is not FillResult.APPLIED:
                    fill = None
                if intent is not None:
                    self._advance_status(tx, intent, event.order)
                elif event.order.status.is_terminal:
                    # An order placed outside tradekit ended: reconciliation deferred its
                    # symbol while it worked, and adopts what it left now.
                    self._reconcile_if_held_back(tx, event.order.symbol)
            if fill is not None and intent is not None:
                applied += 1
                self.plugins.on_fill(fill, intent)  # committed: announced (notifications)
        if applied:
            self._on_step("events")
        return applied

    def settle_pending(self) -> int:
        """Look every unfinished order up at the broker (a lost answer, a lost event, a crash
        between recording and sending): record what the broker says; return how many changed."""
        with self.ledger.reading() as tx:
            pending = tx.pending_intents()
        changed = 0
        for state in pending:
            self.resolve(state.intent, final=True)
            with self.ledger.reading() as tx:
                after = tx.intent_state(state.intent.client_order_id)
            if after is not None and after.status is not state.status:
                changed += 1
                if after.status is not None and after.status.is_terminal:
                    # Its symbol was deferred while the order was unsettled: reconcile it now.
                    self._reconcile_due = True
        return changed

    def recover(self) -> list[IntentState]:
        """Settle every intent left in flight by a crash or restart, and look again for the
        orders recently given up on as not found (call before reconciling)."""
        self.settle_pending()
        self._recheck_not_found()
        with self.ledger.reading() as tx:
            return tx.pending_intents()

    def _recheck_not_found(self) -> None:
        days = self.settings.reconciliation.recheck_not_found_days
        if days == 0:
            return
        with self.ledger.reading() as tx:
            given_up = tx.intents_with_status(LedgerOrderStatus.NOT_FOUND, since=self.clock() - timedelta(days=days))
        for intent in given_up:
            try:
                order = self.broker.get_order_by_client_id(intent.client_order_id)
            except BrokerError as exc:
                log.warning("second lookup of %s (not found before) failed: %s", intent.client_order_id, exc)
                continue
            if order is not None:
                log.warning(
                    "order %s, given up on as not found, is at the broker: %s", intent.client_order_id, order.status
                )
                self._record_order(intent, order)
                self._reconcile_due = True

    def reconcile(self) -> ReconcileReport:
        """Reconcile the ledger with the broker now (see ``tradekit.reconcile``). One that
        could not read the broker (or raised) is due again: the next ``reconcile_if_due``
        tries it, so that a startup that found the broker down does not leave the ledger
        unreconciled, and its symbols blocked, until the next restart."""
        self._reconcile_due = True
        report = Reconciler(self.ledger, self.broker, self.settings.reconciliation, self.plugins).run(self.clock())
        self._reconcile_due = not report.broker_ok
        return report

    def reconcile_if_due(self) -> ReconcileReport | None:
        """Reconcile when a fill could not be applied, an unresolved order was settled, or an
        order of a symbol reconciliation held back finished (by a lookup or a broker event)
        since the last reconciliation; otherwise do nothing."""
        return self.reconcile() if self._reconcile_due else None

    # --- exits -----------------------------------------------------------------------------------------

    def plan_exit(self, signal: Signal, strategy: type[Strategy] | None = None) -> ExitOutcome:
        """Record an exit decided now; immediate exits are sent at once as market orders."""
        now = self.clock()
        symbol = signal.symbol
        intent_id = "exit-" + hashlib.sha256(f"{symbol}|{signal.signal_id}".encode()).hexdigest()[:20]
        with self.ledger.transaction(lock_symbol=symbol) as tx:
            position = tx.position(symbol)
            # A buy still in flight adds to the position after this decision (no buy starts
            # while an exit is pending): the exit covers what it may still buy, and waits for
            # it to settle before it sells (``execute_exit``).
            buying = _buys_in_flight(tx, symbol)
            qty = (position.qty if position is not None else ZERO) + sum(
                (max((s.intent.qty or ZERO) - s.filled_qty, ZERO) for s in buying), ZERO
            )
            if qty <= 0:
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
                strategy=position.strategy if position is not None else buying[0].intent.strategy,
                qty=qty,
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
        """Carry every unfinished exit on: send those whose window is open (again, after an
        attempt that did not execute), cancel the limit orders a closed window left resting,
        and escalate those whose window closed unexecuted (``exits.on_missed_window``)."""
        now = self.clock()
        if self.ledger.exclusive and not self._exits_may_be_planned:
            return []
        with self.ledger.reading() as tx:
            active = tx.exit_intents(states=[ExitState.PLANNED, ExitState.SUBMITTED])
        self._exits_may_be_planned = bool(active)
        outcomes = []
        for intent in active:
            window_closed = intent.window_closes_at is not None and now > intent.window_closes_at
            if intent.state is ExitState.SUBMITTED:
                if window_closed:
                    self._cancel_resting_exit(intent)
                continue
            if intent.window_opens_at is not None and now < intent.window_opens_at:
                continue
            if window_closed:
                outcomes.append(self._escalate(intent, now))
            elif intent.attempts < self.settings.exits.max_attempts_per_window:
                outcomes.append(self.execute_exit(intent, price=prices.get(intent.symbol)))
            elif intent.window_closes_at is None:
                # An immediate exit has no window to wait for the close of: its budget spent,
                # it waits for the next session instead of being stuck here for good.
                why = f"{intent.attempts} attempt(s) did not execute"
                outcomes.append(self._retry_next_session(intent, now, why))
        return outcomes

    def execute_exit(
        self, intent: ExitIntent, *, price: Decimal | None, time_in_force: TimeInForce = TimeInForce.DAY
    ) -> ExitOutcome:
        """Send one attempt at the exit: the intent moves to SUBMITTED in the same transaction
        that records the attempt's order intent, so a second call finds nothing to do.

        Each attempt has its own deterministic client order id; before a new attempt goes
        out, the previous one is looked up once more, so an order that reached the broker
        after all is followed instead of doubled. An attempt sells what the exit still has
        to sell, never more than the ledger holds.

        While orders of the exit are given up on as lost (not found at the broker once
        ``orders.lost_order_grace_seconds`` passed: a request may still arrive), the next
        attempt is no new order: it goes out under their client order ids, all of them, and
        nothing else. The broker takes one order per client order id, whatever its kind, so
        whichever copy of an id arrives second is refused as a duplicate, and the one the
        broker has is followed. The attempt keeps its own kind (a market-on-close after a lost
        limit sell; a limit sell, today's price, in the window after a lost market-on-close)
        and what it sells now (the quantity the exit still has to sell, the ledger holds and
        the broker holds free to sell) is split across the lost ids (``_resend_quantities``)
        so that, whatever late requests arrive, the exit never sells more than that quantity,
        nor more than the lost requests alone could have: one lost order takes all of it; a
        lost split (whole shares and the DAY fraction) keeps its two ids, each asking no more
        than it asked before (the fraction's first: shares sold meanwhile come off the whole
        shares, which keep their time in force). A re-sent
        order of a fractional quantity that the broker takes as a DAY order only goes out as
        a DAY order of the attempt's type (the lost id carries one order: a market-on-close
        of 33.33 shares is sold as a DAY market order, not split). When no split is known to
        be safe (several lost ids asking less than the exit now has to sell: the broker holds
        more free to sell than when they were sent), the exit waits, with a note, until the
        broker shows them.

        Each re-sent order's intent is revised to state what is sent (type, quantity, limit
        price, time in force) and a new ``SUBMITTING`` event of its client order id (after its
        ``NOT_FOUND``) names what was sent and what the lost request was, both committed with
        the exit's move to SUBMITTED before the order leaves: the follow-up (a resting limit
        canceled when its window closes, a split executed once both filled) reads the order
        sent. A re-send the broker refuses, or the guard stops, stays ``NOT_FOUND`` and its
        intent states the lost request again: that request may still arrive, and the next
        attempt keeps the id.

        A broker that takes fractional quantities as DAY orders only
        (``AssetInfo.fractional_day_only``, Alpaca) would refuse a market-on-close (or any
        other non-DAY) order of a fractional quantity, and the exit would roll to the next
        day against the trader's setting. Such an attempt is split: the whole shares go out
        with the asked time in force, the fraction as a DAY order of the same type at the
        same moment (less than one share: the DAY order alone). Both orders are recorded,
        with their own deterministic client order ids (the fraction's key is the attempt's
        plus ``|fraction``), in the transaction that submits the exit, before either is
        sent; together they sell exactly the attempt's quantity. The exit is executed once
        both filled; if either ends otherwise, once both ended, it is planned again for what
        is still held. Split rather than all of it as a DAY market order before the close:
        the trader asked for the closing price, and all but the fraction gets it.
        """
        now = self.clock()
        market = intent.order_type is OrderType.MARKET or time_in_force is TimeInForce.CLS
        if not market and price is None:
            return ExitOutcome(intent, note=f"no current price for {intent.symbol}: exit waits")
        planned = intent if market else attrs.evolve(intent, limit_price=price)
        planned = self.plugins.on_exit_intent(planned)
        prefix = f"exit|{intent.intent_id}"
        with self.ledger.reading() as tx:
            earlier = tx.intents_with_prefix(prefix)
            buying = _buys_in_flight(tx, intent.symbol)
        grace = timedelta(seconds=self.settings.orders.lost_order_grace_seconds)
        waited_for = [s.intent.client_order_id for s in buying if now - s.intent.created_at < grace]
        if waited_for:
            # Sold now, the exit would sell what the buy filled so far and leave the rest of it
            # held. A buy still unsettled once the grace is over does not hold the exit back.
            note = f"exit waits: the buy {', '.join(waited_for)} of {intent.symbol} is still in flight"
            log.info("exit %s: %s", intent.intent_id, note)
            return ExitOutcome(intent, note=note)
        if earlier:
            with self.ledger.reading() as tx:
                lost_before = _lost_orders(tx, earlier)
            looked_up = {o.client_order_id: o for o in [*_last_attempt(earlier), *lost_before]}
            if any([self._follow_earlier_attempt(order) for order in looked_up.values()]):
                return ExitOutcome(intent, note="an earlier attempt reached the broker after all: followed, not resent")
        try:
            sellable = self._sellable(intent.symbol)
        except BrokerError as exc:
            # Never a sell larger than the broker holds: unread, it is not guessed at.
            note = f"exit waits: what the broker holds of {intent.symbol} cannot be read: {exc}"
            log.warning("exit %s: %s", intent.intent_id, note)
            return ExitOutcome(intent, note=note)
        fractions_day_only = time_in_force is not TimeInForce.DAY and self._fractions_day_only(intent.symbol)
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            current = tx.exit_intent(intent.intent_id)
            if current is None or current.state is not ExitState.PLANNED:
                return ExitOutcome(current, note="exit already executed or closed")
            position = tx.position(intent.symbol)
            attempts = tx.intents_with_prefix(prefix)
            sold = sum((tx.filled_qty(a.client_order_id) for a in attempts), ZERO)
            qty = min(planned.qty - sold, position.qty) if position is not None else ZERO
            if position is None or qty <= 0:
                done = ExitState.EXECUTED if sold > 0 else ExitState.CANCELLED
                closed = tx.transition_exit(intent.intent_id, done, now, note="position already flat")
                return ExitOutcome(closed, note=closed.note)
            if sellable < qty:
                # The broker holds less than the ledger (or some of it is already being sold):
                # a sell of the ledger's quantity would be refused, every time, or open a
                # short. Only what the broker holds is sold; the rest is reconciliation's (a
                # symbol it already holds back is reconciled again once this sell finishes).
                if intent.symbol not in tx.unreconciled_symbols():
                    self._reconcile_due = True
                if sellable <= 0:
                    note = f"exit waits: the broker holds no {intent.symbol} to sell (the ledger {qty}); reconciling"
                    log.warning("exit %s: %s", intent.intent_id, note)
                    return ExitOutcome(current, note=note)
                log.warning(
                    "exit %s: the broker holds %s %s free to sell, the ledger %s: selling %s, reconciling the rest",
                    intent.intent_id,
                    sellable,
                    intent.symbol,
                    qty,
                    sellable,
                )
                qty = sellable
            # Trading-state guard (issue #13): while HALTED the exit stays planned and waits.
            states = self.guard.trading_states(tx)
            blocker = states.exit_blocker(strategy=intent.strategy, symbol=intent.symbol, at=now)
            if blocker is not None:
                return ExitOutcome(current, note=f"exit waits: {blocker.describe()}")
            order_type = OrderType.MARKET if market else planned.order_type
            number = len({a.intent_key.removesuffix(_DAY_FRACTION) for a in attempts}) + 1
            limit_price = planned.limit_price if order_type is OrderType.LIMIT else None
            lost = _lost_orders(tx, attempts)
            if lost:
                quantities = _resend_quantities(lost, qty)
                if quantities is None:
                    note = (
                        f"exit waits: its lost orders {', '.join(o.client_order_id for o in lost)} may still reach "
                        f"the broker and it now has {qty} {intent.symbol} to sell, more than they asked: sent "
                        "again, they could sell more than that; it goes on once the broker shows them"
                    )
                    log.warning("exit %s: %s", intent.intent_id, note)
                    return ExitOutcome(current, note=note)
                resends = [
                    (
                        old,
                        attrs.evolve(
                            old,
                            order_type=order_type,
                            qty=part_qty,
                            limit_price=limit_price,
                            time_in_force=(
                                TimeInForce.DAY
                                if fractions_day_only and part_qty != part_qty.to_integral_value()
                                else time_in_force
                            ),
                        ),
                    )
                    for old, part_qty in zip(lost, quantities, strict=True)
                    if part_qty > 0
                ]
                for old, part_qty in zip(lost, quantities, strict=True):
                    if part_qty == 0:
                        log.warning(
                            "exit %s: the lost order %s is not sent again (the others take all %s %s): its "
                            "request may still reach the broker",
                            intent.intent_id,
                            old.client_order_id,
                            qty,
                            intent.symbol,
                        )
                orders, submitted = self._record_resend(tx, intent, resends, number, time_in_force, now)
            else:
                key = prefix if not attempts else f"{prefix}|{len(attempts) + 1}"
                whole = qty.to_integral_value(ROUND_DOWN) if fractions_day_only else qty
                parts = [(key, whole, time_in_force)] if whole > 0 else []
                if qty > whole:  # the fraction of a split attempt: a DAY order, sent with the rest
                    parts.append((key + _DAY_FRACTION, qty - whole, TimeInForce.DAY))
                orders, submitted = self._record_attempt(
                    tx, intent, parts, order_type, limit_price, number, time_in_force, now
                )
                resends = []
                if not orders:
                    return ExitOutcome(current, note="exit order already recorded")
        if resends:
            for order_intent in orders:
                self._resent_at[order_intent.client_order_id] = now
                self._cancel_requested.discard(order_intent.client_order_id)
            if time_in_force is TimeInForce.CLS:
                self._resent_on_close[intent.intent_id] = now
            log.warning("exit %s: %s", intent.intent_id, submitted.note)
        elif submitted.note.endswith(_SPLIT_NOTE):
            log.warning("exit %s: %s", intent.intent_id, submitted.note)
        lost_as_was = {new.client_order_id: old for old, new in resends}
        self._on_step("exit_intent")
        order = self._submit(orders[0], lost=lost_as_was.get(orders[0].client_order_id))
        for fraction in orders[1:]:
            self._submit(fraction, lost=lost_as_was.get(fraction.client_order_id))
        return ExitOutcome(submitted, order)

    def _record_attempt(
        self,
        tx: LedgerTx,
        intent: ExitIntent,
        parts: Sequence[tuple[str, Decimal, TimeInForce]],
        order_type: OrderType,
        limit_price: Decimal | None,
        number: int,
        time_in_force: TimeInForce,
        now: datetime,
    ) -> tuple[list[OrderIntent], ExitIntent]:
        """Record a new attempt's order intent(s) and the exit's move to SUBMITTED (in
        ``execute_exit``'s transaction); no orders when another process recorded them first."""
        orders = [
            OrderIntent(
                intent_key=part_key,
                symbol=intent.symbol,
                side=Side.SELL,
                purpose=IntentPurpose.EXIT,
                created_at=now,
                strategy=intent.strategy,
                order_type=order_type,
                qty=part_qty,
                limit_price=limit_price,
                exit_intent_id=intent.intent_id,
                time_in_force=part_time_in_force,
            )
            for part_key, part_qty, part_time_in_force in parts
        ]
        if any(tx.intent(o.client_order_id) is not None for o in orders):
            return [], intent
        try:
            for order_intent in orders:
                tx.record_intent(order_intent)
        except DuplicateIntentError:
            return [], intent
        for order_intent in orders:
            tx.record_order_event(order_intent.client_order_id, LedgerOrderStatus.SUBMITTING, now)
        what = " and ".join(f"{_order_kind(o)} sell {o.qty} {intent.symbol}" for o in orders)
        if len(orders) > 1 or orders[0].time_in_force is not time_in_force:
            what += _SPLIT_NOTE
        submitted = tx.transition_exit(
            intent.intent_id,
            ExitState.SUBMITTED,
            now,
            note=f"attempt {number}: {what}",
            client_order_id=orders[0].client_order_id,
            limit_price=orders[0].limit_price,
        )
        return orders, submitted

    def _record_resend(
        self,
        tx: LedgerTx,
        intent: ExitIntent,
        resends: Sequence[tuple[OrderIntent, OrderIntent]],
        number: int,
        time_in_force: TimeInForce,
        now: datetime,
    ) -> tuple[list[OrderIntent], ExitIntent]:
        """Record the re-send of lost orders under their own client order ids (``execute_exit``,
        in its transaction): each (lost, sent) order's intent revised to what is sent, and a
        ``SUBMITTING`` event naming what is sent and what the lost request was; then the
        exit's move to SUBMITTED."""
        for old, new in resends:
            tx.revise_intent(new)
            tx.record_order_event(
                new.client_order_id,
                LedgerOrderStatus.SUBMITTING,
                now,
                detail=(
                    f"the lost request sent again under the same client order id: {_order_sell(new)} "
                    f"(the lost request: {_order_sell(old)})"
                ),
            )
        orders = [new for _old, new in resends]
        what = " and ".join(_order_sell(o) for o in orders)
        if any(o.time_in_force is not time_in_force for o in orders):
            what += _SPLIT_NOTE
        submitted = tx.transition_exit(
            intent.intent_id,
            ExitState.SUBMITTED,
            now,
            note=f"attempt {number}: the lost order(s) sent again under their client order ids: {what}",
            client_order_id=orders[0].client_order_id,
            limit_price=orders[0].limit_price,
        )
        return orders, submitted

    def _fractions_day_only(self, symbol: str) -> bool:
        """Whether the broker takes fractional quantities of ``symbol`` as DAY orders only;
        when that cannot be read, taken as so (a split order is valid at any broker)."""
        try:
            return self._asset(symbol).fractional_day_only
        except BrokerError as exc:
            log.warning("what the broker allows for %s cannot be read, fractions sent as DAY orders: %s", symbol, exc)
            return True

    def _sellable(self, symbol: str) -> Decimal:
        """How much of ``symbol`` the broker holds long and is not already selling: the most
        one exit attempt may sell (raises ``BrokerError`` when the broker cannot be read).
        Only the positions and open orders are read: not the account, which an exit does not
        need."""
        position = next((p for p in self.broker.get_positions() if p.symbol == symbol), None)
        held = position.qty if position is not None and not position.is_short else ZERO
        selling = sum(
            (
                (o.qty - o.filled_qty) if o.qty is not None else held
                for o in self.broker.get_open_orders()
                if o.symbol == symbol and o.side is Side.SELL and not o.status.is_terminal
            ),
            ZERO,
        )
        return max(held - selling, ZERO)

    def _retry_next_session(self, intent: ExitIntent, now: datetime, why: str) -> ExitOutcome:
        """Move an immediate exit whose attempts ran out to the next session, all of it, with
        a fresh budget of attempts (a market order again): tried as often as it takes, never
        expired, whatever ``exits.on_missed_window`` says of planned exits."""
        session = self.calendar.session_of_open(self.calendar.next_open(now))
        window = ExecutionWindow(opens_at=session.open, closes_at=session.close)
        note = (
            f"{why}; tried again in the next session, {window.opens_at.isoformat()} .. {window.closes_at.isoformat()}"
        )
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            current = tx.exit_intent(intent.intent_id)
            if current is None or current.state is not ExitState.PLANNED or current.attempts != intent.attempts:
                return ExitOutcome(current, note="exit moved on since it was read")  # another attempt, or done
            rolled = tx.transition_exit(intent.intent_id, ExitState.PLANNED, now, note=note, window=window)
        log.warning("immediate exit %s for %s: %s", intent.intent_id, intent.symbol, note)
        return ExitOutcome(rolled, note=note, rolled=True)

    def _follow_earlier_attempt(self, earlier: OrderIntent) -> bool:
        """Look an earlier attempt given up on as not found up once more before resending;
        True when the broker has it after all (it is then recorded and followed)."""
        with self.ledger.reading() as tx:
            state = tx.intent_state(earlier.client_order_id)
        if state is None or state.status is not LedgerOrderStatus.NOT_FOUND:
            return False
        try:
            order = self.broker.get_order_by_client_id(earlier.client_order_id)
        except BrokerError as exc:
            log.warning(
                "exit %s: earlier attempt cannot be checked, not resending now: %s", earlier.exit_intent_id, exc
            )
            return True
        if order is None:
            return False
        self._record_order(earlier, order)
        self._reconcile_due = True
        return True

    def _cancel_resting_exit(self, intent: ExitIntent) -> None:
        if intent.client_order_id is None:
            return
        with self.ledger.reading() as tx:
            # Every limit order of the attempt still working: a lost split sent again in a
            # window is two limit sells.
            resting = [
                order
                for order in _attempt_orders(tx, intent)
                if order.order_type is OrderType.LIMIT  # a market (on close) order is left to execute
                and order.client_order_id not in self._cancel_requested
                and (state := tx.intent_state(order.client_order_id)) is not None
                and state.is_pending
            ]
        for order in resting:
            coid = order.client_order_id
            try:
                self.broker.cancel_order(coid)
            except BrokerError as exc:
                log.warning(
                    "exit %s: cancel of %s at the window's close failed, retried: %s", intent.intent_id, coid, exc
                )
                return
            self._cancel_requested.add(coid)
            log.info("exit %s: window closed, resting order %s canceled", intent.intent_id, coid)

    def _escalate(self, intent: ExitIntent, now: datetime) -> ExitOutcome:
        """What a planned exit does once its window closed unexecuted."""
        rule = self.settings.exits.on_missed_window
        missed = f"window {_window_text(intent)} closed unexecuted after {intent.attempts} attempt(s)"
        if intent.urgency is Urgency.IMMEDIATE:
            return self._retry_next_session(intent, now, missed)
        if rule is MissedWindow.MARKET_AT_CLOSE:
            opens = self.calendar.last_open(now)
            if opens is not None and now < self.calendar.session_of_open(opens).close:
                if not self._sent_on_close_since(intent, opens):
                    log.warning("exit %s: %s; sending it market-on-close", intent.intent_id, missed)
                    return self.execute_exit(intent, price=None, time_in_force=TimeInForce.CLS)
                missed += "; the market-on-close order did not execute"
        if rule is MissedWindow.EXPIRE:
            with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
                expired = tx.transition_exit(intent.intent_id, ExitState.EXPIRED, now, note=missed)
            log.warning("exit intent %s for %s expired unexecuted: %s", intent.intent_id, intent.symbol, missed)
            return ExitOutcome(expired, note=expired.note)
        window = self._window_from(now)
        note = f"{missed}; moved to the window {window.opens_at.isoformat()} .. {window.closes_at.isoformat()}"
        with self.ledger.transaction(lock_symbol=intent.symbol) as tx:
            rolled = tx.transition_exit(intent.intent_id, ExitState.PLANNED, now, note=note, window=window)
        log.warning("exit %s for %s: %s", intent.intent_id, intent.symbol, note)
        return ExitOutcome(rolled, note=note, rolled=True)

    def _sent_on_close_since(self, intent: ExitIntent, opens: datetime) -> bool:
        """Whether a market-on-close attempt at this exit went out in the session that opened
        at ``opens`` (one per session: a refused one is not sent again and again), its
        fraction split off as a DAY order or, for less than one share, only that order."""
        resent = self._resent_on_close.get(intent.intent_id)
        if resent is not None and resent >= opens:
            return True  # lost orders sent again market-on-close (their intents may state the lost requests again)
        with self.ledger.reading() as tx:
            attempts = tx.intents_with_prefix(f"exit|{intent.intent_id}")
        return any(
            (a.time_in_force is TimeInForce.CLS or a.intent_key.endswith(_DAY_FRACTION)) and a.created_at >= opens
            for a in attempts
        )

    def _window_from(self, now: datetime) -> ExecutionWindow:
        """The first exit window that has not closed by ``now``: today's if still open."""
        exits = self.settings.exits
        opens = self.calendar.last_open(now)
        if opens is not None:
            today = self.calendar.execution_window(
                opens - timedelta(microseconds=1), exits.window_start_minutes, exits.window_end_minutes
            )
            if now <= today.closes_at:
                return today
        return self.calendar.execution_window(now, exits.window_start_minutes, exits.window_end_minutes)

    def _follow_exit(self, tx: LedgerTx, intent: OrderIntent, order: Order) -> None:
        assert intent.exit_intent_id is not None
        current = _attempt_in_flight(tx, intent)
        if current is None:
            return  # an earlier attempt's news: the intent has moved on
        split = _attempt_orders(tx, current)
        if len(split) > 1:
            self._follow_split_attempt(tx, current, split)
            return
        if order.status is OrderStatus.FILLED:
            tx.transition_exit(
                intent.exit_intent_id, ExitState.EXECUTED, self.clock(), note=f"filled at {order.filled_avg_price}"
            )
        elif order.status.is_terminal:
            self._exit_attempt_failed(tx, intent, f"exit order {order.status}: {order.reject_reason}")

    def _exit_attempt_failed(self, tx: LedgerTx, intent: OrderIntent, why: str) -> None:
        """An attempt that did not (fully) execute: the exit is planned again, to be retried
        while its window is open and escalated when it closes."""
        assert intent.exit_intent_id is not None
        current = _attempt_in_flight(tx, intent)
        if current is None:
            return
        split = _attempt_orders(tx, current)
        if len(split) > 1:
            self._follow_split_attempt(tx, current, split)
            return
        note = f"attempt {intent.client_order_id} did not execute ({why}); planned again"
        tx.transition_exit(intent.exit_intent_id, ExitState.PLANNED, self.clock(), note=note)
        self._exits_may_be_planned = True
        log.warning("exit %s: %s", intent.exit_intent_id, note)

    def _follow_split_attempt(self, tx: LedgerTx, current: ExitIntent, orders: Sequence[OrderIntent]) -> None:
        """An attempt split into whole shares and a DAY fraction: executed once both filled;
        once both ended otherwise, planned again (a later attempt sells what is still held)."""
        states = [tx.intent_state(o.client_order_id) for o in orders]
        statuses = [state.status if state is not None else None for state in states]
        if any(status is None or not status.is_terminal for status in statuses):
            return  # the other order still works
        if all(status is LedgerOrderStatus.FILLED for status in statuses):
            filled = " and ".join(f"{_order_kind(o)} {o.qty}" for o in orders)
            tx.transition_exit(current.intent_id, ExitState.EXECUTED, self.clock(), note=f"filled: {filled}")
            return
        ended = ", ".join(f"{o.client_order_id} {status}" for o, status in zip(orders, statuses, strict=True))
        note = f"attempt did not execute in full ({ended}); planned again"
        tx.transition_exit(current.intent_id, ExitState.PLANNED, self.clock(), note=note)
        self._exits_may_be_planned = True
        log.warning("exit %s: %s", current.intent_id, note)

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
