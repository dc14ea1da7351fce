"""The Type B pair trader: signals in; entries, rescue scale-ins and exits out.

One ``run_cycle(now)`` does, in order:

1. **Recover.** Leg orders whose outcome is not known yet are looked up by client id (never
   sent again, and not taken for absent while ``lost_order_grace_seconds`` says the request
   may still land); an entry whose legs do not match — one leg filled, the other failed, never
   sent, or lost in a crash — is matched on a step both venues trade, the unmatched part
   unwound with reduce-only orders. A leg that cannot be unwound is recorded as naked and
   worked on again every cycle; a remainder below what its venue trades is recorded as dust
   and settled. Exits in progress are carried on (a close takes all both legs hold).
2. **Watch.** Funding payments are attributed to their pair. The funding hard-stop (net
   funding paid beyond the limit) and the max-hold force-close need no prices and are judged
   every cycle, whatever the books and even while an entry is being matched. A settled pair
   is also valued on both books, all entries and both legs together, and closed on the
   take-profit (PnL of the whole pair against a target anchored to the *first* entry's
   notional) and — only when scale-in is off — the mechanical stop-loss. Only books no older
   than ``max_book_age_seconds`` (by ``book_clock``) value a pair: with an older, unreadable
   or one-sided book the price rails wait for the next cycle, the last mark stays as it was,
   and the cycle report says why (``CycleReport.unpriced``).
3. **Decide.** Every signal still worth considering — pending, or skipped while its event is
   open or within ``closed_event_window`` — goes through ``tradekit.evaluate_buy`` with a
   ``ScalingContext`` built from the pair config's policy, both venues' accounts and
   positions, the ledger, and the pair's figures as market features, which the pair rule
   (``pairs.rules``) judges next to tradekit's built-in rules — among them the age of both
   books by the venue's clock (``book_clock``, ``max_book_age_seconds``) and the pair key's
   wait after failed entries in a row, read from its audit trail. An approved entry is swept
   on both books, confirmed by a second decision on fresh books, then sent: a market order
   on the long leg, then on the short leg for what the long leg filled; a failed short leg
   is retried or unwound per ``leg_failure_policy``.

Every leg order is recorded (this package's tables, then the core ledger's intent and a
``submitting`` event) before it is sent, under a deterministic client order id; every
decision is recorded in the core ledger with its trace; every entry, unwind, naked leg and
exit is an event in the pair's audit trail. Run one trader per database.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import attrs

import tradekit_venue_ccxt.pairs.features as f
from tradekit.broker.errors import BrokerError, OrderRejected
from tradekit.decision.context import (
    AccountLimits,
    MarketSnapshot,
    OrderCounters,
    PendingOrder,
    ScalingContext,
)
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.reasons import BuyAction
from tradekit.decision.verdict import BuyDecision
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Order, OrderRequest, OrderStatus
from tradekit.domain.positions import BrokerPosition, Position, PositionEntry
from tradekit.domain.signals import Side, Signal
from tradekit.domain.values import ZERO
from tradekit.guard.control import Refusal, TradingGuard, read_trading_states, refusal_for
from tradekit.ledger.records import IntentPurpose, LedgerOrderStatus, OrderIntent, client_order_id_for
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit_venue_ccxt.pairs.config import BookClock, LegFailurePolicy, PairTradingConfig
from tradekit_venue_ccxt.pairs.models import (
    CloseResult,
    EntryFailure,
    EntryResult,
    EntrySnapshot,
    ExitNote,
    ExitReason,
    Leg,
    LegNote,
    LegOrder,
    LegPurpose,
    PairEventKind,
    PairHeader,
    PairMark,
    PairPosition,
    PairSignal,
    PairStatus,
    SignalStatus,
    leg_side,
)
from tradekit_venue_ccxt.pairs.rules import PAIR_RULES
from tradekit_venue_ccxt.pairs.spread import fmt_bps, next_trigger, spread_of
from tradekit_venue_ccxt.pairs.store import PairStore
from tradekit_venue_ccxt.pairs.venue import PerpVenue, VenueClock
from tradekit_venue_ccxt.providers import OrderBook, PerpMarket, Sweep

_HUNDRED = Decimal(100)
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)


class PairSetupError(ValueError):
    """A signal names a pair that cannot be traded as configured (venue, market, contract size)."""


class PairRuleMissing(RuntimeError):
    """A pair decision came back without the pair rule's checks: the rule plugin is not loaded."""


@attrs.frozen(kw_only=True)
class PairPlan:
    """What an entry would trade now, and the figures it is judged on."""

    signal: PairSignal
    pair: PairPosition | None
    conflicts: int
    long_market: PerpMarket
    short_market: PerpMarket
    qty: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    """The largest market order both venues take (None: neither lists a limit)."""
    long_sweep: Sweep
    short_sweep: Sweep
    long_ask: Decimal
    short_bid: Decimal
    spread: Decimal
    initial_spread: Decimal | None
    trigger: Decimal | None
    add_notional: Decimal
    account: AccountSnapshot
    long_position: BrokerPosition | None
    short_position: BrokerPosition | None
    long_book_age: timedelta
    short_book_age: timedelta
    failed_entries: int
    """Entries of the pair key that failed in a row since its last entry that opened."""
    entry_cooldown: timedelta
    cooldown_left: timedelta

    @property
    def long_vwap(self) -> Decimal:
        return self.long_sweep.vwap if self.long_sweep.vwap is not None else self.long_ask

    @property
    def short_vwap(self) -> Decimal:
        return self.short_sweep.vwap if self.short_sweep.vwap is not None else self.short_bid


@attrs.frozen(kw_only=True)
class LegOutcome:
    """Where one leg order stands after sending or looking it up."""

    order: LegOrder
    status: LedgerOrderStatus
    filled: Decimal
    detail: str = ""

    @property
    def settled(self) -> bool:
        return self.status.is_terminal


@attrs.frozen(kw_only=True)
class SignalOutcome:
    event_id: str
    signal_id: str
    status: SignalStatus
    action: BuyAction | None
    reasons: tuple[str, ...]
    detail: str


@attrs.frozen(kw_only=True)
class CycleReport:
    """What one cycle did."""

    time: datetime
    signals: tuple[SignalOutcome, ...]
    entries_opened: tuple[tuple[str, int], ...]
    entries_failed: tuple[tuple[str, int], ...]
    exits_started: tuple[tuple[str, ExitReason], ...]
    closed: tuple[str, ...]
    unpriced: tuple[tuple[str, str], ...] = ()
    """Open pairs the take-profit and stop-loss could not judge this cycle, and why (pair id, reason)."""


@attrs.define
class _Log:
    signals: list[SignalOutcome] = attrs.field(factory=list)
    opened: list[tuple[str, int]] = attrs.field(factory=list)
    failed: list[tuple[str, int]] = attrs.field(factory=list)
    exits: list[tuple[str, ExitReason]] = attrs.field(factory=list)
    closed: list[str] = attrs.field(factory=list)
    unpriced: list[tuple[str, str]] = attrs.field(factory=list)


class PairTrader:
    """Trades Type B pairs on the venues it is given; see the module doc for one cycle."""

    def __init__(
        self,
        *,
        config: PairTradingConfig,
        venues: Mapping[str, PerpVenue],
        ledger: Ledger,
        store: PairStore,
        limits: AccountLimits,
        plugins: Plugins | None = None,
        order_poll_attempts: int = 5,
        order_poll_interval_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._venues = dict(venues)
        self._ledger = ledger
        self._store = store
        self._limits = limits
        self._plugins = plugins
        self._poll_attempts = max(1, order_poll_attempts)
        self._poll_interval_s = order_poll_interval_s
        self._sleep = sleep
        # tradekit's trading-state guard: decisions see its holds, every leg order asks it again.
        self._guard = TradingGuard(ledger=ledger, plugins=plugins)

    @property
    def config(self) -> PairTradingConfig:
        return self._config

    # --- signals ---------------------------------------------------------------------------

    def submit_signal(self, signal: PairSignal, now: datetime) -> None:
        """Take in a watchlist event's latest state; a newer update replaces the older one.

        An event whose pair has been closed (take-profit or a rail) is done: its updates are
        recorded as expired, and a new pair needs a new event.
        """
        history = self._store.signal_history(signal.event_id)
        latest = history[-1] if history else None
        if latest is None or signal.generated_at > latest.signal.generated_at:
            finished = self._finished_events([signal.event_id]).get(signal.event_id)
            if finished is not None:
                self._store.record_signal(signal, SignalStatus.EXPIRED, now, detail=finished)
                return
            self._store.record_signal(signal, SignalStatus.PENDING, now, detail="received")
            return
        if signal.generated_at < latest.signal.generated_at:
            return
        if latest.signal.event_open and not signal.event_open and latest.status.is_retried:
            self._store.record_signal(signal, latest.status, now, decision_id=latest.decision_id, detail="event closed")

    # --- the cycle -------------------------------------------------------------------------

    def run_cycle(self, now: datetime) -> CycleReport:
        log = _Log()
        self._recover(now, log)
        for pair in self._store.live_pairs():
            self._sync_funding(pair)
            refreshed = self._store.pair(pair.pair_id)
            if refreshed is not None and refreshed.status is PairStatus.OPEN:
                self._watch(refreshed, now, log)
        self._process_signals(now, log)
        return CycleReport(
            time=now,
            signals=tuple(log.signals),
            entries_opened=tuple(log.opened),
            entries_failed=tuple(log.failed),
            exits_started=tuple(log.exits),
            closed=tuple(log.closed),
            unpriced=tuple(log.unpriced),
        )

    def recover(self, now: datetime) -> CycleReport:
        """Settle what a crash or an ambiguous answer left open (the first step of every cycle)."""
        log = _Log()
        self._recover(now, log)
        return CycleReport(
            time=now,
            signals=(),
            entries_opened=tuple(log.opened),
            entries_failed=tuple(log.failed),
            exits_started=(),
            closed=tuple(log.closed),
        )

    def _recover(self, now: datetime, log: _Log) -> None:
        for pair in self._store.live_pairs():
            statuses = self._ledger_statuses(pair.leg_orders)
            for order in pair.leg_orders:
                if order.client_order_id not in statuses:
                    self._close_unsent(pair.header, order, now)
                    continue
                status = statuses[order.client_order_id]
                if status is None or not status.is_terminal:
                    self._settle(order, None, now, may_be_absent=True)
            current = self._refresh(pair)
            if current.status is PairStatus.CLOSING:
                # The close takes all both legs hold, an entry's unmatched part included:
                # unwinding that part as well would race the close for the same contracts.
                self._work_exit(current, now, log)
                continue
            for entry_no in current.in_progress:
                self._finalize_entry(
                    current.pair_id, entry_no, now, log, context="after a restart or an unknown outcome"
                )

    # --- leg orders --------------------------------------------------------------------------

    def _venue(self, name: str) -> PerpVenue:
        venue = self._venues.get(name)
        if venue is None:
            raise PairSetupError(f"venue {name!r} is not configured for pair trading (have: {sorted(self._venues)})")
        return venue

    def _refresh(self, pair: PairPosition) -> PairPosition:
        current = self._store.pair(pair.pair_id)
        assert current is not None
        return current

    def _ledger_statuses(self, orders: Sequence[LegOrder]) -> dict[str, LedgerOrderStatus | None]:
        """The core ledger's latest status of each leg order; absent when it has no intent for it."""
        with self._ledger.reading() as tx:
            states = {o.client_order_id: tx.intent_state(o.client_order_id) for o in orders}
        return {cid: state.status for cid, state in states.items() if state is not None}

    def _unsettled(self, pair: PairPosition) -> list[LegOrder]:
        statuses = self._ledger_statuses(pair.leg_orders)
        unsettled = []
        for order in pair.leg_orders:
            if order.client_order_id not in statuses:
                continue  # never sent: ``_close_unsent`` records it on the next recovery
            status = statuses[order.client_order_id]
            if status is None or not status.is_terminal:
                unsettled.append(order)
        return unsettled

    def _close_unsent(self, header: PairHeader, order: LegOrder, now: datetime) -> None:
        """Record a leg order the process stopped before sending (its intent was never written)."""
        with self._ledger.transaction(lock_symbol=header.symbol) as tx:
            tx.record_intent(_intent(header, order, None, None))
            tx.record_order_event(
                order.client_order_id,
                LedgerOrderStatus.NOT_FOUND,
                now,
                detail="never sent: the process stopped after planning this leg order, before its intent",
            )

    def _send_leg(
        self,
        pair: PairPosition,
        *,
        entry_no: int,
        leg: Leg,
        purpose: LegPurpose,
        qty: Decimal,
        attempt: int,
        now: datetime,
        decision: BuyDecision | None = None,
        confidence: int | None = None,
        rebalancing: bool = False,
    ) -> LegOutcome:
        """Send one leg order, recorded first, if the trading-state guard lets it leave.

        ``rebalancing``: the order takes the pair back to matching legs (an entry's unmatched
        part, the close of a leg the other no longer hedges); a halt lets it out as it lets
        exits out (``_gate``).
        """
        header = pair.header
        venue_name = header.long_venue if leg is Leg.LONG else header.short_venue
        venue = self._venue(venue_name)
        side = leg_side(leg, purpose)
        order = LegOrder(
            client_order_id=client_order_id_for(_intent_key(header.pair_id, entry_no, leg, purpose, attempt)),
            pair_id=header.pair_id,
            entry_no=entry_no,
            leg=leg,
            purpose=purpose,
            attempt=attempt,
            venue=venue_name,
            symbol=header.symbol,
            side=side,
            qty=qty,
            created_at=now,
        )
        intent = _intent(header, order, decision.decision_id if decision is not None else None, confidence)
        # The leg row first, then the core intent, then the order: a crash between any two
        # leaves a record saying how far it got (see ``_close_unsent``).
        self._store.record_leg_order(order)
        with self._ledger.transaction(lock_symbol=header.symbol) as tx:
            tx.record_intent(intent)
            tx.record_order_event(
                order.client_order_id,
                LedgerOrderStatus.SUBMITTING,
                now,
                detail=f"{venue_name} {leg.value} leg {purpose.value} of pair {header.pair_id}",
            )
        request = OrderRequest(client_order_id=order.client_order_id, symbol=header.symbol, side=side, qty=qty)
        placed: Order | None = None
        failure: BrokerError | None = None
        # The trading-state guard is asked under the account's send lock, as the core pipeline
        # does, for the instrument and for the pair (the symbol its decisions are made on).
        with self._gate(intent, now, also=(header.key,), rebalancing=rebalancing) as (refusal, passed):
            if refusal is None:
                try:
                    placed = venue.submit_order(request, reduce_only=order.reduce_only)
                except BrokerError as exc:
                    failure = exc
        if refusal is not None:
            detail = f"not sent: {refusal}"
            self._record_status(order, LedgerOrderStatus.NOT_SENT, now, detail=detail)
            return LegOutcome(order=order, status=LedgerOrderStatus.NOT_SENT, filled=ZERO, detail=detail)
        through = f"sent through a halt, to match the pair's legs again ({passed})" if passed is not None else ""
        if isinstance(failure, OrderRejected):
            detail = _joined(str(failure), through)
            self._record_status(order, LedgerOrderStatus.REJECTED, now, detail=detail)
            return LegOutcome(order=order, status=LedgerOrderStatus.REJECTED, filled=ZERO, detail=detail)
        if failure is not None:
            # It may exist: record that, then look it up — never send it again.
            detail = _joined(str(failure), through)
            self._record_status(order, LedgerOrderStatus.AMBIGUOUS, now, detail=detail)
            return self._settle(order, None, now, may_be_absent=False, note=detail)
        return self._settle(order, placed, now, may_be_absent=False, note=through)

    @contextlib.contextmanager
    def _gate(
        self, intent: OrderIntent, at: datetime, *, also: Sequence[str], rebalancing: bool
    ) -> Iterator[tuple[Refusal | None, Refusal | None]]:
        """The guard's ``sending`` (the account's send lock held while the order leaves): yield
        why the order may not leave, and the halt it leaves through.

        A halt stops new exposure, and exits unless it allows them; but once one leg of an
        entry or a close has gone, what matches the legs again (``rebalancing``: an exit,
        reduce-only) is judged as if the halt allowed exits. Holding it back would leave a
        leg without its hedge for as long as the halt lasts — naked exposure nobody chose.
        """
        if not rebalancing:
            with self._guard.sending(intent, at, also=also) as refusal:
                yield refusal, None
            return
        if intent.purpose is not IntentPurpose.EXIT:
            raise ValueError(f"{intent.intent_key}: only an exit can match a pair's legs through a halt")
        with self._ledger.sending() as tx:
            states = self._guard.trading_states(tx)
            refusal = refusal_for(states.letting_exits_out(), intent, at, also=also)
            passed = refusal_for(states, intent, at, also=also) if refusal is None else None
            yield refusal, passed

    def _record_status(
        self,
        order: LegOrder,
        status: LedgerOrderStatus,
        now: datetime,
        *,
        detail: str = "",
        venue_order: Order | None = None,
    ) -> None:
        with self._ledger.transaction(lock_symbol=order.symbol) as tx:
            tx.record_order_event(
                order.client_order_id,
                status,
                now,
                broker_order_id=venue_order.broker_order_id if venue_order is not None else None,
                filled_qty=venue_order.filled_qty if venue_order is not None else None,
                filled_avg_price=venue_order.filled_avg_price if venue_order is not None else None,
                detail=detail,
            )

    def _settle(
        self,
        order: LegOrder,
        placed: Order | None,
        now: datetime,
        *,
        may_be_absent: bool,
        note: str = "",
    ) -> LegOutcome:
        """Follow a leg order to a final state and record its fills (looked up by client id).

        Only a lookup the venue answered can say an order is absent: one that failed says
        nothing, and the order stays unsettled until a lookup answers. Nor does an answer
        while the order may still be on its way (``lost_order_grace_seconds`` from its
        creation): a late request landing after its partner was unwound, or after a close was
        sent again, would be a lone leg.
        """
        venue = self._venue(order.venue)
        current = placed
        absent = False
        for attempt in range(self._poll_attempts):
            if current is not None and current.status.is_terminal:
                break
            if attempt:
                self._sleep(self._poll_interval_s)
            try:
                current = venue.find_order(order.client_order_id, order.symbol)
            except BrokerError as exc:
                note = str(exc)
                continue
            absent = current is None
            if absent and may_be_absent:
                break
        if current is None:
            if may_be_absent and absent:
                grace = self._config.lost_order_grace
                if now - order.created_at < grace:
                    detail = (
                        f"not found at {order.venue} by client id yet; sent at {order.created_at.isoformat()}, "
                        f"it may still arrive until {(order.created_at + grace).isoformat()}"
                    )
                    return LegOutcome(order=order, status=LedgerOrderStatus.AMBIGUOUS, filled=ZERO, detail=detail)
                detail = f"not found at {order.venue} by client id: it was never placed"
                self._record_status(order, LedgerOrderStatus.NOT_FOUND, now, detail=detail)
                return LegOutcome(order=order, status=LedgerOrderStatus.NOT_FOUND, filled=ZERO, detail=detail)
            return LegOutcome(order=order, status=LedgerOrderStatus.AMBIGUOUS, filled=ZERO, detail=note)
        if current.filled_qty > 0:
            try:
                fills = venue.venue_fills(order.client_order_id, order.symbol)
            except BrokerError as exc:
                # Not final until its fills are recorded: the next cycle reads them again.
                return LegOutcome(
                    order=order, status=LedgerOrderStatus.AMBIGUOUS, filled=current.filled_qty, detail=str(exc)
                )
            self._store.record_fills(fills)
        status = LedgerOrderStatus.from_broker(current.status)
        self._record_status(order, status, now, venue_order=current, detail=current.reject_reason or note)
        return LegOutcome(order=order, status=status, filled=current.filled_qty, detail=note)

    # --- entries -------------------------------------------------------------------------------

    def _open_entry(self, plan: PairPlan, decision: BuyDecision, now: datetime, log: _Log) -> str:
        signal = plan.signal
        pair = plan.pair
        if pair is None:
            header = PairHeader(
                pair_id=self._store.next_pair_id(signal.pair_key),
                symbol=signal.symbol,
                long_venue=signal.long_venue,
                short_venue=signal.short_venue,
                strategy=self._config.strategy,
                opened_at=now,
                max_hold=self._config.max_hold,
                take_profit_pct=self._config.take_profit_pct,
                contract_size=plan.long_market.contract_size,
            )
            self._store.create_pair(header)
            pair = self._store.pair(header.pair_id)
            assert pair is not None
        entry_no = len(pair.snapshots) + 1
        snapshot = EntrySnapshot(
            entry_no=entry_no,
            signal_id=signal.signal_id,
            event_id=signal.event_id,
            decision_id=decision.decision_id,
            spread=plan.spread,
            initial_spread=plan.initial_spread,
            trigger=plan.trigger,
            trigger_multiplier=self._config.trigger_multiplier,
            qty=plan.qty,
            add_notional=plan.add_notional,
            total_notional_before=pair.total_notional,
            max_total_notional=self._config.max_total_notional,
            funding_paid=pair.funding_paid,
            long_vwap=plan.long_vwap,
            short_vwap=plan.short_vwap,
            long_slippage_bps=plan.long_sweep.slippage_bps or ZERO,
            short_slippage_bps=plan.short_sweep.slippage_bps or ZERO,
        )
        self._store.append_event(pair.pair_id, PairEventKind.ENTRY_PLANNED, now, snapshot)
        long = self._send_leg(
            pair,
            entry_no=entry_no,
            leg=Leg.LONG,
            purpose=LegPurpose.OPEN,
            qty=plan.qty,
            attempt=0,
            now=now,
            decision=decision,
            confidence=signal.confidence,
        )
        if long.settled and long.filled > 0:
            self._open_short(pair, entry_no, long.filled, now, decision, signal.confidence)
        elif long.settled:
            self._store.append_event(
                pair.pair_id,
                PairEventKind.LEG_FAILED,
                now,
                LegNote(
                    leg=Leg.LONG,
                    entry_no=entry_no,
                    client_order_id=long.order.client_order_id,
                    qty=plan.qty,
                    reason=f"long leg {long.status.value}: {long.detail or 'nothing filled'}",
                ),
            )
        return self._finalize_entry(pair.pair_id, entry_no, now, log, context="at entry")

    def _open_short(
        self,
        pair: PairPosition,
        entry_no: int,
        wanted: Decimal,
        now: datetime,
        decision: BuyDecision,
        confidence: int,
    ) -> None:
        retries = (
            self._config.leg_retries if self._config.leg_failure_policy is LegFailurePolicy.RETRY_THEN_UNWIND else 0
        )
        long_market = self._venue(pair.header.long_venue).market(pair.symbol)
        short_market = self._venue(pair.header.short_venue).market(pair.symbol)
        assert long_market is not None
        assert short_market is not None
        step = _common_step(long_market, short_market)
        filled = ZERO
        for attempt in range(retries + 1):
            # On the step both venues trade, so the short is a quantity the long venue can match;
            # any rest of the long leg is unwound after (``_finalize_entry``).
            remaining = _floor(wanted - filled, step)
            if remaining <= 0:
                return
            if attempt:
                ok, why = self._short_book_still_ok(pair, remaining, now)
                if not ok:
                    self._store.append_event(
                        pair.pair_id,
                        PairEventKind.LEG_FAILED,
                        now,
                        LegNote(leg=Leg.SHORT, entry_no=entry_no, qty=remaining, reason=f"no retry: {why}"),
                    )
                    return
                self._store.append_event(
                    pair.pair_id,
                    PairEventKind.LEG_RETRIED,
                    now,
                    LegNote(
                        leg=Leg.SHORT, entry_no=entry_no, qty=remaining, reason=f"retry {attempt} of {retries}: {why}"
                    ),
                )
            short = self._send_leg(
                pair,
                entry_no=entry_no,
                leg=Leg.SHORT,
                purpose=LegPurpose.OPEN,
                qty=remaining,
                attempt=attempt,
                now=now,
                decision=decision,
                confidence=confidence,
            )
            if not short.settled:
                return  # unknown outcome: recovery settles it, then matches the legs
            filled += short.filled
            if filled >= wanted:
                return
            self._store.append_event(
                pair.pair_id,
                PairEventKind.LEG_FAILED,
                now,
                LegNote(
                    leg=Leg.SHORT,
                    entry_no=entry_no,
                    client_order_id=short.order.client_order_id,
                    qty=remaining - short.filled,
                    reason=f"short leg {short.status.value} with {short.filled} of {remaining} filled"
                    + (f": {short.detail}" if short.detail else ""),
                ),
            )

    def _short_book_still_ok(self, pair: PairPosition, qty: Decimal, now: datetime) -> tuple[bool, str]:
        venue = self._venue(pair.header.short_venue)
        try:
            book = venue.order_book(pair.symbol, self._config.order_book_depth)
            age = self._book_age(venue, book, now)
        except BrokerError as exc:
            return False, f"short book unreadable ({exc})"
        if age > self._config.max_book_age:
            return False, f"short book {_seconds(age)}s old, at most {self._config.max_book_age_seconds}s allowed"
        sweep = book.sweep(Side.SELL, qty)
        slippage = sweep.slippage_bps
        if not sweep.complete or slippage is None or slippage > self._config.max_slippage_bps:
            return False, f"short book cannot take {qty} within {self._config.max_slippage_bps} bps"
        return True, f"short book takes {qty} at {slippage:.2f} bps slippage"

    def _finalize_entry(self, pair_id: str, entry_no: int, now: datetime, log: _Log, *, context: str) -> str:
        """Match an entry's legs: unwind what one leg holds beyond the other, then record the entry.

        The legs are matched at the largest quantity on the pair's common step (one both venues
        trade) from which each leg's unwind is an order its venue accepts (a multiple of its step,
        at least its minimum). A short that filled 0.325 on a 0.001-step venue against a 0.33 long
        on a 0.01-step venue is matched at 0.32 — 0.01 of the long and 0.005 of the short unwound —
        never by a 0.005 unwind the long venue would refuse for ever.

        What no order can take back — a leg holding less than its venue's minimum, with nothing
        lower to match at — is *dust*: recorded once as ``LEG_DUST``, and the entry is settled on
        what both legs hold. Retrying could never succeed, and an entry left in progress would
        keep the pair from adding for good. The dust stays in its leg, so the legs differ and the
        pair takes no add; the close takes it with the rest of the leg. A pair that never opened
        leaves it at the venue, named in the close, for someone to close by hand.
        """
        pair = self._store.pair(pair_id)
        assert pair is not None
        if entry_no not in pair.in_progress:
            return "already settled"
        entry_orders = pair.orders_of(entry_no)
        if {o.client_order_id for o in entry_orders} & {o.client_order_id for o in self._unsettled(pair)}:
            return "waiting for a leg order's outcome"
        books = {leg: _leg_entry_book(pair, entry_no, leg) for leg in Leg}
        nets = {leg: books[leg].net for leg in Leg}
        dust: dict[Leg, Decimal] = {}
        if nets[Leg.LONG] != nets[Leg.SHORT]:
            unwinds, dust = self._matching(pair, nets)
            why = f"entry {entry_no} {context}: long holds {nets[Leg.LONG]}, short holds {nets[Leg.SHORT]}"
            for leg, qty in unwinds.items():
                if not self._unwind(
                    pair, entry_no, leg, qty, now, why=f"{why}; {qty} of the {leg.value} leg unmatched"
                ):
                    return "naked leg"
            if unwinds:
                return self._finalize_entry(pair_id, entry_no, now, log, context=context)
            for leg, qty in dust.items():
                venue = pair.header.long_venue if leg is Leg.LONG else pair.header.short_venue
                self._store.append_event(
                    pair_id,
                    PairEventKind.LEG_DUST,
                    now,
                    LegNote(
                        leg=leg,
                        entry_no=entry_no,
                        qty=qty,
                        reason=f"{why}: {qty} of the {leg.value} leg is below what {venue} trades; "
                        "kept in the leg and closed with it, no add while the legs differ",
                    ),
                )
        matched = min(nets.values())
        left = ", ".join(f"{leg.value} {qty}" for leg, qty in dust.items())
        if matched > 0:
            long_book, short_book = books[Leg.LONG], books[Leg.SHORT]
            long_price = long_book.cost / long_book.opened
            short_price = short_book.cost / short_book.opened
            notes = [context]
            if left:
                notes.append(f"dust kept: {left}")
            shortfall = _trigger_shortfall(pair, entry_no, spread_of(long_price, short_price))
            if shortfall:
                notes.append(shortfall)
            result = EntryResult(
                entry_no=entry_no,
                qty=matched,
                long_price=long_price,
                short_price=short_price,
                contract_size=pair.header.contract_size,
                note="; ".join(notes),
            )
            self._store.append_event(pair_id, PairEventKind.ENTRY_OPENED, now, result)
            log.opened.append((pair_id, entry_no))
            return f"entry {entry_no} opened: {matched} at spread {fmt_bps(result.spread)}"
        reason = f"entry {entry_no} {context}: " + (
            f"nothing both legs hold, dust kept: {left}" if left else "no leg holds anything"
        )
        self._store.append_event(
            pair_id, PairEventKind.ENTRY_FAILED, now, EntryFailure(entry_no=entry_no, reason=reason)
        )
        log.failed.append((pair_id, entry_no))
        pair = self._refresh(pair)
        if not pair.entries and not pair.in_progress:
            self._store.append_event(
                pair_id,
                PairEventKind.CLOSED,
                now,
                CloseResult(
                    reason=ExitReason.FIRST_ENTRY_FAILED,
                    realized_pnl=pair.long.realized + pair.short.realized,
                    funding_net=pair.funding_net,
                    fees=pair.fees,
                    note=f"dust left at the venues, to close by hand: {left}" if left else "",
                ),
            )
            log.closed.append(pair_id)
        return reason

    def _unwind(self, pair: PairPosition, entry_no: int, leg: Leg, qty: Decimal, now: datetime, *, why: str) -> bool:
        """Send one unwind and record it: unwound, or a naked leg worked on again next cycle."""
        attempt = len([o for o in pair.orders_of(entry_no, leg) if o.purpose is LegPurpose.UNWIND])
        # An entry's unmatched part goes through a halt: the other leg never came (or not all of it).
        outcome = self._send_leg(
            pair,
            entry_no=entry_no,
            leg=leg,
            purpose=LegPurpose.UNWIND,
            qty=qty,
            attempt=attempt,
            now=now,
            rebalancing=True,
        )
        unwound = outcome.settled and outcome.filled == qty
        if unwound:
            kind, left, reason = PairEventKind.LEG_UNWOUND, qty, f"{why}: unwound"
        else:
            kind, left = PairEventKind.LEG_NAKED, qty - (outcome.filled if outcome.settled else ZERO)
            reason = (
                f"{why}: unwind {outcome.status.value}"
                + (f" ({outcome.detail})" if outcome.detail else "")
                + "; retried every cycle"
            )
        self._store.append_event(
            pair.pair_id,
            kind,
            now,
            LegNote(leg=leg, entry_no=entry_no, client_order_id=outcome.order.client_order_id, qty=left, reason=reason),
        )
        return unwound

    def _matching(
        self, pair: PairPosition, nets: Mapping[Leg, Decimal]
    ) -> tuple[dict[Leg, Decimal], dict[Leg, Decimal]]:
        """What each leg of an entry unwinds to match the other, and what is left as dust."""
        markets = self._leg_markets(pair)
        low = min(nets.values())
        if markets is None:
            # The venues' rules cannot be read now: unwind the plain excess; a refusal is
            # recorded as a naked leg and matched again next cycle.
            return {leg: nets[leg] - low for leg in Leg if nets[leg] > low}, {}
        step = _common_step(markets[Leg.LONG], markets[Leg.SHORT])
        target = _floor(low, step)
        # Each step down grows both unwinds by a step, so a few are enough to clear the minimums.
        for _ in range(int(max(m.min_qty for m in markets.values()) / step) + 2):
            if target <= 0 or all(_tradable(nets[leg] - target, markets[leg]) for leg in Leg):
                break
            target -= step
        else:
            target = ZERO
        target = max(target, ZERO)
        unwinds: dict[Leg, Decimal] = {}
        dust: dict[Leg, Decimal] = {}
        for leg in Leg:
            excess = nets[leg] - target
            if excess <= 0:
                continue
            sendable = _floor(excess, markets[leg].amount_step)
            if sendable < markets[leg].min_qty:
                sendable = ZERO
            if sendable > 0:
                unwinds[leg] = sendable
            if excess > sendable:
                dust[leg] = excess - sendable
        return unwinds, dust

    def _leg_markets(self, pair: PairPosition) -> dict[Leg, PerpMarket] | None:
        try:
            long_market = self._venue(pair.header.long_venue).market(pair.symbol)
            short_market = self._venue(pair.header.short_venue).market(pair.symbol)
            if long_market is None or short_market is None:
                return None
            _common_step(long_market, short_market)
        except (BrokerError, PairSetupError):
            return None
        return {Leg.LONG: long_market, Leg.SHORT: short_market}

    # --- watching and exits --------------------------------------------------------------------

    def _sync_funding(self, pair: PairPosition) -> None:
        since = pair.funding_since
        if since is None:
            return
        for venue_name in (pair.header.long_venue, pair.header.short_venue):
            try:
                payments = self._venue(venue_name).funding_payments(pair.symbol, since)
            except BrokerError:
                continue  # read again next cycle; funding is never assumed to be zero
            self._store.record_funding(pair.pair_id, [p for p in payments if p.time >= since])

    def _books(self, pair: PairPosition, now: datetime) -> tuple[OrderBook, OrderBook] | str:
        """Both books to value the pair on, or why it cannot be valued this cycle.

        A book is aged as an entry's is (``_book_age``): a frozen feed's last book would close
        the pair on a price that is gone, or keep it open past a real stop.
        """
        books: list[OrderBook] = []
        for leg, venue_name in ((Leg.LONG, pair.header.long_venue), (Leg.SHORT, pair.header.short_venue)):
            venue = self._venue(venue_name)
            try:
                book = venue.order_book(pair.symbol, self._config.order_book_depth)
                age = self._book_age(venue, book, now)
            except BrokerError as exc:
                return f"the {leg.value} book ({venue_name}) is unreadable: {exc}"
            if book.best_bid is None or book.best_ask is None:
                return f"the {leg.value} book ({venue_name}) is one-sided"
            if age > self._config.max_book_age:
                return (
                    f"the {leg.value} book ({venue_name}) is {_seconds(age)}s old, "
                    f"at most {self._config.max_book_age_seconds}s allowed"
                )
            books.append(book)
        return books[0], books[1]

    def valuation(self, pair: PairPosition, long_book: OrderBook, short_book: OrderBook, now: datetime) -> PairMark:
        """Value the whole pair — every entry, both legs — at the prices that would close it."""
        long_bid, short_ask = long_book.best_bid, short_book.best_ask
        long_ask, short_bid = long_book.best_ask, short_book.best_bid
        assert long_bid is not None
        assert short_ask is not None
        assert long_ask is not None
        assert short_bid is not None
        size = pair.header.contract_size
        unrealized = ZERO
        if pair.long.average_price is not None:
            unrealized += pair.long.held * (long_bid - pair.long.average_price) * size
        if pair.short.average_price is not None:
            unrealized += pair.short.held * (pair.short.average_price - short_ask) * size
        pnl = unrealized + pair.long.realized + pair.short.realized + pair.funding_net - pair.fees
        return PairMark(
            pair_id=pair.pair_id,
            time=now,
            spread=spread_of(long_bid, short_ask),
            open_spread=spread_of(long_ask, short_bid),
            pnl=pnl,
            funding_paid=pair.funding_paid,
        )

    def _watch(self, pair: PairPosition, now: datetime, log: _Log) -> None:
        """Close the pair when a rail fires.

        The funding hard-stop and max hold need no prices: they are judged on every cycle, even
        with a book unreadable or one-sided and even while an entry's legs are still being
        matched, and a hit closes all both legs hold (``_work_exit``, tried again every cycle
        until done). The leg check and the price rails wait for a settled pair (an entry in
        flight would look like a mismatch) and for both books, each readable, two-sided and no
        older than ``max_book_age_seconds``; until then the pair's mark is left as it was.
        """
        if not pair.entries and not pair.in_progress:
            return
        mark: PairMark | None = None
        if pair.in_progress:
            unpriced = f"entry {', '.join(map(str, pair.in_progress))} still being matched"
        else:
            broken = self._check_legs(pair, now)
            if broken is not None:
                self._start_exit(pair, broken, now, log)
                return
            books = self._books(pair, now)
            if isinstance(books, str):
                unpriced = books
            else:
                unpriced = ""
                mark = self.valuation(pair, books[0], books[1], now)
                self._store.save_mark(mark)
        if unpriced:
            log.unpriced.append((pair.pair_id, unpriced))
        note = self._hard_rail(pair, mark, unpriced, now)
        if note is None and mark is not None:
            note = self._price_rail(pair, mark)
        if note is not None:
            self._start_exit(pair, note, now, log)

    def _venue_legs(self, pair: PairPosition) -> tuple[Decimal, Decimal] | None:
        """Signed quantities the two venues hold in the pair's symbol, or None if unreadable."""
        try:
            long_positions = self._venue(pair.header.long_venue).get_positions()
            short_positions = self._venue(pair.header.short_venue).get_positions()
        except BrokerError:
            return None
        long_position = _position_in(long_positions, pair.symbol)
        short_position = _position_in(short_positions, pair.symbol)
        return (
            long_position.qty if long_position is not None else ZERO,
            short_position.qty if short_position is not None else ZERO,
        )

    def _check_legs(self, pair: PairPosition, now: datetime) -> ExitNote | None:
        """Compare the venues with the pair's legs; a leg gone at its venue breaks the pair."""
        legs = self._venue_legs(pair)
        if legs is None:
            return None
        venue_long, venue_short = legs
        if venue_long == pair.long.held and venue_short == -pair.short.held:
            return None
        reason = (
            f"{pair.header.long_venue} holds {venue_long} and {pair.header.short_venue} holds {venue_short} "
            f"{pair.symbol}; the pair's legs are {pair.long.held} long and {pair.short.held} short"
        )
        if pair.last_mismatch is None or pair.last_mismatch.reason != reason:
            leg = Leg.LONG if venue_long != pair.long.held else Leg.SHORT
            self._store.append_event(
                pair.pair_id,
                PairEventKind.LEG_MISMATCH,
                now,
                LegNote(leg=leg, reason=reason, qty=venue_long if leg is Leg.LONG else venue_short),
            )
        if max(venue_long, ZERO) < pair.long.held or max(-venue_short, ZERO) < pair.short.held:
            return ExitNote(
                reason=ExitReason.LEG_MISMATCH,
                detail=f"{reason}: a leg was closed outside tradekit or liquidated, the other is closed too",
            )
        # The venues hold more than the pair: unknown exposure, never "fixed" by guessing;
        # the pair is reported unreconciled and takes no add until someone looks.
        return None

    def _hard_rail(
        self, pair: PairPosition, mark: PairMark | None, unpriced_why: str, now: datetime
    ) -> ExitNote | None:
        """The funding hard-stop, then max hold: the rails that need no prices."""
        config = self._config
        funding_paid = pair.funding_paid
        figures: dict[str, Decimal | None] = {"funding_paid": funding_paid}
        unpriced = f" (unpriced: {unpriced_why})" if unpriced_why else ""
        if mark is not None:
            figures.update(pnl=mark.pnl, spread=mark.spread)
        if funding_paid >= config.funding_hard_stop:
            return ExitNote(
                reason=ExitReason.FUNDING_HARD_STOP,
                detail=f"funding paid {funding_paid:.2f} reached the hard stop {config.funding_hard_stop}" + unpriced,
                **figures,
            )
        if now >= pair.header.force_close_at:
            return ExitNote(
                reason=ExitReason.MAX_HOLD,
                detail=f"held since {pair.header.opened_at.isoformat()}, max hold {config.max_hold_days} days"
                + unpriced,
                **figures,
            )
        return None

    def _price_rail(self, pair: PairPosition, mark: PairMark) -> ExitNote | None:
        """The take-profit, then (scale-in off) the mechanical stop-loss."""
        config = self._config
        common = {"pnl": mark.pnl, "funding_paid": mark.funding_paid, "spread": mark.spread}
        target = pair.take_profit_target
        if target is not None and mark.pnl >= target:
            return ExitNote(
                reason=ExitReason.TAKE_PROFIT,
                detail=f"pair PnL {mark.pnl:.2f} reached the take-profit {target:.2f} "
                f"({pair.header.take_profit_pct}% of the first entry's notional)",
                **common,
            )
        if config.mechanical_stop_active and config.stop_loss_pct is not None:
            limit = pair.total_notional * config.stop_loss_pct / _HUNDRED
            if mark.pnl <= -limit:
                return ExitNote(
                    reason=ExitReason.STOP_LOSS,
                    detail=f"pair PnL {mark.pnl:.2f} reached the stop-loss -{limit:.2f}",
                    **common,
                )
        return None

    def _start_exit(self, pair: PairPosition, note: ExitNote, now: datetime, log: _Log) -> None:
        self._store.append_event(pair.pair_id, PairEventKind.EXIT_STARTED, now, note)
        log.exits.append((pair.pair_id, note.reason))
        self._work_exit(self._refresh(pair), now, log)

    def _work_exit(self, pair: PairPosition, now: datetime, log: _Log) -> None:
        if self._unsettled(pair):
            return
        legs = self._venue_legs(pair)
        if legs is None:
            return  # the venues are read again next cycle
        venue_held = {Leg.LONG: max(legs[0], ZERO), Leg.SHORT: max(-legs[1], ZERO)}
        # Never close more than the venue holds: a reduce-only order beyond it is refused.
        closable = {
            Leg.LONG: min(pair.long.held, venue_held[Leg.LONG]),
            Leg.SHORT: min(pair.short.held, venue_held[Leg.SHORT]),
        }
        for leg in Leg:
            qty = closable[leg]
            if qty <= 0:
                continue
            other = closable[Leg.SHORT if leg is Leg.LONG else Leg.LONG]
            # A leg the other no longer hedges (its close went, or it is gone at its venue) is
            # closed through a halt.
            filled, outcome = self._close_leg(pair, leg, qty, now, rebalancing=other <= 0)
            left = qty - filled
            if outcome.status is LedgerOrderStatus.NOT_SENT and 0 < other < left:
                # A halt that stops exits holds a hedged pair as it is, both closes waiting for
                # the resume; not what this leg holds beyond the other (a close that filled in part).
                markets = self._leg_markets(pair)
                if markets is not None and _tradable(left - other, markets[leg]):
                    more, outcome = self._close_leg(pair, leg, left - other, now, rebalancing=True)
                    filled += more
            closable[leg] -= filled
        pair = self._refresh(pair)
        if self._unsettled(pair):
            return
        legs = self._venue_legs(pair)
        if legs is None:
            return
        venue_held = {Leg.LONG: max(legs[0], ZERO), Leg.SHORT: max(-legs[1], ZERO)}
        remaining = {Leg.LONG: pair.long.held, Leg.SHORT: pair.short.held}
        if any(remaining[leg] > 0 and venue_held[leg] > 0 for leg in Leg):
            return
        outside = [f"{leg.value} {remaining[leg]}" for leg in Leg if remaining[leg] > 0]
        assert pair.exit is not None
        self._store.append_event(
            pair.pair_id,
            PairEventKind.CLOSED,
            now,
            CloseResult(
                reason=pair.exit.reason,
                realized_pnl=pair.long.realized + pair.short.realized,
                funding_net=pair.funding_net,
                fees=pair.fees,
                note=f"closed outside tradekit: {', '.join(outside)}" if outside else "",
            ),
        )
        log.closed.append(pair.pair_id)

    def _close_leg(
        self, pair: PairPosition, leg: Leg, qty: Decimal, now: datetime, *, rebalancing: bool
    ) -> tuple[Decimal, LegOutcome]:
        """Close ``qty`` of ``leg`` in orders no larger than its venue's largest market order.

        A leg that several entries built can hold more than its venue takes in one market
        order, while the other venue closes its leg at once: sent whole, the close would be
        refused every cycle and the leg left alone. The last order is never left below the
        venue's minimum. Stops at the first order that does not fill in full (tried again next
        cycle); returns what the orders filled and the last one's outcome.
        """
        markets = self._leg_markets(pair)
        market = markets[leg] if markets is not None else None
        largest = _largest_order(market) if market is not None else None
        filled = ZERO
        while True:
            remaining = qty - filled
            part = remaining
            if market is not None and largest is not None and remaining > largest:
                part = largest
                if remaining - part < market.min_qty:
                    part = _floor(remaining - market.min_qty, market.amount_step)
                    if part <= 0:
                        part = largest
            outcome = self._close_order(pair, leg, part, now, rebalancing=rebalancing)
            if outcome.settled:
                filled += outcome.filled
            if not outcome.settled or outcome.filled < part or filled >= qty:
                return filled, outcome

    def _close_order(
        self, pair: PairPosition, leg: Leg, qty: Decimal, now: datetime, *, rebalancing: bool
    ) -> LegOutcome:
        """Send one close of ``qty`` of ``leg``; what it did not fill is recorded, tried again next cycle."""
        attempt = len([o for o in self._refresh(pair).orders_of(0, leg) if o.purpose is LegPurpose.CLOSE])
        outcome = self._send_leg(
            pair,
            entry_no=0,
            leg=leg,
            purpose=LegPurpose.CLOSE,
            qty=qty,
            attempt=attempt,
            now=now,
            rebalancing=rebalancing,
        )
        if outcome.settled and outcome.filled < qty:
            self._store.append_event(
                pair.pair_id,
                PairEventKind.LEG_FAILED,
                now,
                LegNote(
                    leg=leg,
                    client_order_id=outcome.order.client_order_id,
                    qty=qty - outcome.filled,
                    reason=f"closing the {leg.value} leg: {outcome.status.value} with {outcome.filled} of {qty}"
                    + (f" ({outcome.detail})" if outcome.detail else "")
                    + "; tried again next cycle",
                ),
            )
        return outcome

    # --- decisions -------------------------------------------------------------------------------

    def _finished_events(self, event_ids: Sequence[str]) -> dict[str, str]:
        """Which of these events traded a pair to its close, and why (a failed first entry does not count)."""
        finished: dict[str, str] = {}
        for event_id, closed_pairs in self._store.closed_pairs_of_events(event_ids).items():
            for pair in closed_pairs:
                if pair.closed is None or pair.closed.reason is ExitReason.FIRST_ENTRY_FAILED:
                    continue
                finished[event_id] = (
                    f"event {event_id} already traded pair {pair.pair_id} to its close "
                    f"({pair.closed.reason.value}); a new pair needs a new event"
                )
        return finished

    def _process_signals(self, now: datetime, log: _Log) -> None:
        retried = self._store.latest_signals([SignalStatus.PENDING, SignalStatus.SKIPPED])
        finished = self._finished_events([record.signal.event_id for record in retried])
        for record in retried:
            signal = record.signal
            if signal.event_id in finished:
                detail = finished[signal.event_id]
                self._store.record_signal(
                    signal, SignalStatus.EXPIRED, now, decision_id=record.decision_id, detail=detail
                )
                log.signals.append(_outcome(signal, SignalStatus.EXPIRED, None, detail))
                continue
            if not signal.event_open and now - signal.generated_at > self._config.closed_event_window:
                detail = f"event closed and older than {self._config.closed_event_window}: no longer retried"
                self._store.record_signal(
                    signal, SignalStatus.EXPIRED, now, decision_id=record.decision_id, detail=detail
                )
                log.signals.append(_outcome(signal, SignalStatus.EXPIRED, None, detail))
                continue
            log.signals.append(self._consider(signal, now, log))

    def _consider(self, signal: PairSignal, now: datetime, log: _Log) -> SignalOutcome:
        try:
            plan = self._plan(signal, now)
        except PairSetupError as exc:
            self._store.record_signal(signal, SignalStatus.BLOCKED, now, detail=str(exc))
            return _outcome(signal, SignalStatus.BLOCKED, None, str(exc))
        except BrokerError as exc:
            detail = f"market data unavailable: {exc}"
            self._store.record_signal(signal, SignalStatus.SKIPPED, now, detail=detail)
            return _outcome(signal, SignalStatus.SKIPPED, None, detail)
        decision = self._decide(plan, now)
        if not decision.allows_order:
            return self._refused(signal, decision, now, "")
        try:
            confirm_plan = self._plan(signal, now, base=plan)
        except (BrokerError, PairSetupError) as exc:
            detail = f"confirmation failed, books unreadable: {exc}"
            self._store.record_signal(
                signal, SignalStatus.SKIPPED, now, decision_id=decision.decision_id, detail=detail
            )
            return _outcome(signal, SignalStatus.SKIPPED, decision, detail)
        confirm = self._decide(confirm_plan, now)
        if not confirm.allows_order:
            return self._refused(signal, confirm, now, "on confirmation: ")
        # Acted on before any order goes out: a crash mid-entry must not act on it twice.
        self._store.record_signal(
            signal, SignalStatus.ACTED, now, decision_id=confirm.decision_id, detail="entry being opened"
        )
        result = self._open_entry(confirm_plan, confirm, now, log)
        self._store.record_signal(signal, SignalStatus.ACTED, now, decision_id=confirm.decision_id, detail=result)
        return _outcome(signal, SignalStatus.ACTED, confirm, result)

    def _refused(self, signal: PairSignal, decision: BuyDecision, now: datetime, prefix: str) -> SignalOutcome:
        status = SignalStatus.BLOCKED if decision.action is BuyAction.BLOCK else SignalStatus.SKIPPED
        stops = [c for c in decision.checks if c.stops_buy]
        detail = prefix + "; ".join(f"{c.reason}: {c.detail}" for c in stops)
        self._store.record_signal(signal, status, now, decision_id=decision.decision_id, detail=detail)
        return _outcome(signal, status, decision, detail)

    def _plan(self, signal: PairSignal, now: datetime, *, base: PairPlan | None = None) -> PairPlan:
        long_venue, short_venue = self._venue(signal.long_venue), self._venue(signal.short_venue)
        symbol = signal.symbol
        long_market, short_market = long_venue.market(symbol), short_venue.market(symbol)
        for name, market in ((signal.long_venue, long_market), (signal.short_venue, short_market)):
            if market is None:
                raise PairSetupError(f"{symbol} is not a linear perpetual on {name}")
        assert long_market is not None
        assert short_market is not None
        if long_market.contract_size != short_market.contract_size:
            raise PairSetupError(
                f"{symbol}: contract sizes differ ({signal.long_venue} {long_market.contract_size}, "
                f"{signal.short_venue} {short_market.contract_size}); the legs could not match"
            )
        step = _common_step(long_market, short_market)
        pair = self._store.live_pair(signal.pair_key)
        conflicts = len([p for p in self._store.live_pairs() if p.symbol == symbol and p.key != signal.pair_key])
        long_book = long_venue.order_book(symbol, self._config.order_book_depth)
        long_book_age = self._book_age(long_venue, long_book, now)
        short_book = short_venue.order_book(symbol, self._config.order_book_depth)
        short_book_age = self._book_age(short_venue, short_book, now)
        long_ask, short_bid = long_book.best_ask, short_book.best_bid
        if long_ask is None or short_bid is None:
            raise _EmptyBook(f"{symbol}: the long venue has no ask or the short venue no bid")
        size = long_market.contract_size
        qty = base.qty if base is not None else _floor(self._config.entry_notional / (long_ask * size), step)
        min_qty = max(
            long_market.min_qty,
            short_market.min_qty,
            _ceil(long_market.min_notional / (long_ask * size), step),
            _ceil(short_market.min_notional / (short_bid * size), step),
        )
        limits = [m for m in map(_largest_order, (long_market, short_market)) if m is not None]
        long_sweep = long_book.sweep(Side.BUY, qty) if qty > 0 else long_book.sweep(Side.BUY, step)
        short_sweep = short_book.sweep(Side.SELL, qty) if qty > 0 else short_book.sweep(Side.SELL, step)
        spread = spread_of(long_sweep.vwap or long_ask, short_sweep.vwap or short_bid)
        initial = pair.initial_spread if pair is not None else None
        trigger = (
            next_trigger(initial, self._config.trigger_multiplier, pair.entry_count)
            if pair is not None and initial is not None
            else None
        )
        if base is not None:
            account, long_position, short_position = base.account, base.long_position, base.short_position
        else:
            account = _combined_account(long_venue.get_account(), short_venue.get_account(), now)
            long_position = _position_in(long_venue.get_positions(), symbol)
            short_position = _position_in(short_venue.get_positions(), symbol)
        failures = self._store.entry_failures(signal.pair_key)
        cooldown = self._config.entry_failure_cooldown(len(failures))
        cooldown_left = max(failures[0] + cooldown - now, timedelta(0)) if failures else timedelta(0)
        return PairPlan(
            signal=signal,
            pair=pair,
            conflicts=conflicts,
            long_market=long_market,
            short_market=short_market,
            qty=qty,
            min_qty=min_qty,
            max_qty=min(limits) if limits else None,
            long_sweep=long_sweep,
            short_sweep=short_sweep,
            long_ask=long_ask,
            short_bid=short_bid,
            spread=spread,
            initial_spread=initial,
            trigger=trigger,
            add_notional=long_market.notional(qty, long_sweep.vwap or long_ask),
            account=account,
            long_position=long_position,
            short_position=short_position,
            long_book_age=long_book_age,
            short_book_age=short_book_age,
            failed_entries=len(failures),
            entry_cooldown=cooldown,
            cooldown_left=cooldown_left,
        )

    def _book_age(self, venue: PerpVenue, book: OrderBook, now: datetime) -> timedelta:
        """How old ``book`` is by the venue's clock (``book_clock``); a book stamped ahead of it counts as new.

        The server time is read after the book, so the age is never understated by the read.
        """
        clock = now
        if self._config.book_clock is BookClock.VENUE and isinstance(venue, VenueClock):
            clock = venue.server_time()
        return max(clock - book.as_of, timedelta(0))

    def scaling_context(self, plan: PairPlan, now: datetime) -> ScalingContext:
        """The context ``evaluate_buy`` judges a pair entry on (exposed for audits and tests).

        Quantities reach the core in base units (contracts x contract size), as its prices are
        per base unit: the core values a position as quantity x price, so its allocation cap
        and max position size see the leg's notional whatever a contract holds. The pair's own
        figures (``features``) stay in contracts, as its orders are sent.
        """
        signal, pair, config = plan.signal, plan.pair, self._config
        key = signal.pair_key
        size = plan.long_market.contract_size
        position: Position | None = None
        unreconciled: set[str] = set()
        pending: list[PendingOrder] = []
        held_long = held_short = ZERO
        if pair is not None:
            held_long, held_short = pair.long.held, pair.short.held
            if pair.entries:
                position = Position(
                    symbol=key,
                    strategy=pair.header.strategy,
                    entries=[
                        PositionEntry(time=at, price=entry.long_price, qty=entry.qty * entry.contract_size)
                        for entry, at in zip(pair.entries, pair.entry_times, strict=True)
                    ],
                )
            pending = [
                PendingOrder(
                    client_order_id=o.client_order_id, side=o.side, status=OrderStatus.ACCEPTED, qty=o.qty * size
                )
                for o in self._unsettled(pair)
            ]
            if pair.in_progress or pair.naked is not None or not pair.legs_match:
                unreconciled.add(key)
        venue_long = plan.long_position.qty if plan.long_position is not None else ZERO
        venue_short = plan.short_position.qty if plan.short_position is not None else ZERO
        if venue_long != held_long or venue_short != -held_short:
            unreconciled.add(key)
        broker_position = None
        if plan.long_position is not None:
            broker_position = BrokerPosition(
                symbol=key,
                qty=plan.long_position.qty * size,
                avg_entry_price=plan.long_position.avg_entry_price,
                as_of=plan.long_position.as_of,
                current_price=plan.long_ask,
                asset_class=plan.long_position.asset_class,
            )
        with self._ledger.reading() as tx:
            counts = tx.order_counts(signal.symbol, day_start=now.replace(hour=0, minute=0, second=0, microsecond=0))
            trading_states = read_trading_states(tx)
        age = max(now - signal.generated_at, timedelta(0))
        features: dict[str, Decimal] = {
            f.SPREAD: plan.spread,
            f.TRIGGER_MULTIPLIER: config.trigger_multiplier,
            f.TOTAL_NOTIONAL: pair.total_notional if pair is not None else ZERO,
            f.ADD_NOTIONAL: plan.add_notional,
            f.MAX_TOTAL_NOTIONAL: config.max_total_notional,
            f.SIGNAL_AGE_SECONDS: Decimal(int(age / _SECOND)),
            f.SIGNAL_MAX_AGE_SECONDS: Decimal(int(config.signal_max_age / _SECOND)),
            f.LONG_SLIPPAGE_BPS: plan.long_sweep.slippage_bps or ZERO,
            f.SHORT_SLIPPAGE_BPS: plan.short_sweep.slippage_bps or ZERO,
            f.MAX_SLIPPAGE_BPS: config.max_slippage_bps,
            f.LONG_BOOK_FILL: _fill_ratio(plan.long_sweep),
            f.SHORT_BOOK_FILL: _fill_ratio(plan.short_sweep),
            f.ORDER_QTY: plan.qty,
            f.MIN_ORDER_QTY: plan.min_qty,
            f.FUNDING_PAID: pair.funding_paid if pair is not None else ZERO,
            f.CONFLICTING_PAIRS: Decimal(plan.conflicts),
            f.LONG_BOOK_AGE_SECONDS: _seconds(plan.long_book_age),
            f.SHORT_BOOK_AGE_SECONDS: _seconds(plan.short_book_age),
            f.MAX_BOOK_AGE_SECONDS: _seconds(config.max_book_age),
            f.FAILED_ENTRIES: Decimal(plan.failed_entries),
            f.ENTRY_COOLDOWN_SECONDS: _seconds(plan.entry_cooldown),
            f.ENTRY_COOLDOWN_LEFT_SECONDS: _seconds(plan.cooldown_left),
        }
        if plan.initial_spread is not None:
            features[f.INITIAL_SPREAD] = plan.initial_spread
        if plan.trigger is not None:
            features[f.TRIGGER] = plan.trigger
        if plan.max_qty is not None:
            features[f.MAX_ORDER_QTY] = plan.max_qty
        return ScalingContext(
            signal=Signal(
                symbol=key,
                side=Side.BUY,
                confidence=signal.confidence,
                generated_at=signal.generated_at,
                source=signal.source,
                reason=f"pair event {signal.event_id}",
                payload={"event_id": signal.event_id, "symbol": signal.symbol},
                signal_id=signal.signal_id,
            ),
            strategy=config.strategy,
            policy=config.scaling_policy(),
            limits=self._limits,
            account=plan.account,
            market=MarketSnapshot(price=plan.long_ask, as_of=now, features=features),
            now=now,
            position=position,
            broker_position=broker_position,
            broker_checked=True,
            pending_orders=tuple(pending),
            unreconciled_symbols=frozenset(unreconciled),
            counters=OrderCounters(
                orders_today=counts.orders_today,
                last_order_at=counts.last_order_at,
                acted_on_symbol_today=counts.acted_on_symbol_today,
            ),
            exit_pending=pair is not None and pair.status is PairStatus.CLOSING,
            trading_states=trading_states,
        )

    def _decide(self, plan: PairPlan, now: datetime) -> BuyDecision:
        context = self.scaling_context(plan, now)
        decision = evaluate_buy(context, plugins=self._plugins)
        with self._ledger.transaction(lock_symbol=context.symbol) as tx:
            tx.record_decision(decision)
        missing = set(PAIR_RULES) - {c.rule for c in decision.checks}
        if missing:
            raise PairRuleMissing(
                f"decision {decision.decision_id} for {context.symbol} has no {', '.join(sorted(missing))} check: "
                "the tradekit-venue-ccxt rule plugin is not loaded in this plugin manager; no pair order is sent "
                "without it"
            )
        return decision


class _EmptyBook(BrokerError):
    """A book side needed to price the pair is empty."""


@attrs.frozen
class _LegEntryBook:
    opened: Decimal
    unwound: Decimal
    cost: Decimal

    @property
    def net(self) -> Decimal:
        return self.opened - self.unwound


def _leg_entry_book(pair: PairPosition, entry_no: int, leg: Leg) -> _LegEntryBook:
    """What one leg of one entry opened and unwound, from its recorded fills."""
    orders = {o.client_order_id: o for o in pair.orders_of(entry_no, leg)}
    opened = unwound = cost = ZERO
    for fill in pair.fills:
        order = orders.get(fill.client_order_id)
        if order is None:
            continue
        if order.purpose is LegPurpose.OPEN:
            opened += fill.qty
            cost += fill.qty * fill.price
        else:
            unwound += fill.qty
    return _LegEntryBook(opened=opened, unwound=unwound, cost=cost)


def _trigger_shortfall(pair: PairPosition, entry_no: int, realised: Decimal) -> str:
    """Say so when an add's legs filled at a spread below the trigger it was decided on."""
    planned = [s for s in pair.snapshots if s.entry_no == entry_no]
    trigger = planned[-1].trigger if planned else None
    if trigger is None or realised >= trigger:
        return ""
    return (
        f"filled at spread {fmt_bps(realised)}, short of its trigger {fmt_bps(trigger)} by "
        f"{fmt_bps(trigger - realised)} (decided at {fmt_bps(planned[-1].spread)})"
    )


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _intent_key(pair_id: str, entry_no: int, leg: Leg, purpose: LegPurpose, attempt: int) -> str:
    return f"ccxt-pair|{pair_id}|{entry_no}|{leg.value}|{purpose.value}|{attempt}"


def _intent(header: PairHeader, order: LegOrder, decision_id: str | None, confidence: int | None) -> OrderIntent:
    if order.purpose is LegPurpose.OPEN:
        purpose = IntentPurpose.ENTRY if order.entry_no == 1 else IntentPurpose.SCALE_IN
    else:
        purpose = IntentPurpose.EXIT
    return OrderIntent(
        intent_key=_intent_key(header.pair_id, order.entry_no, order.leg, order.purpose, order.attempt),
        symbol=header.symbol,
        side=order.side,
        purpose=purpose,
        created_at=order.created_at,
        strategy=header.strategy,
        qty=order.qty,
        decision_id=decision_id,
        confidence=confidence,
    )


def _outcome(signal: PairSignal, status: SignalStatus, decision: BuyDecision | None, detail: str) -> SignalOutcome:
    return SignalOutcome(
        event_id=signal.event_id,
        signal_id=signal.signal_id,
        status=status,
        action=decision.action if decision is not None else None,
        reasons=tuple(str(r) for r in decision.reasons) if decision is not None else (),
        detail=detail,
    )


def _common_step(a: PerpMarket, b: PerpMarket) -> Decimal:
    coarse, fine = (a.amount_step, b.amount_step) if a.amount_step >= b.amount_step else (b.amount_step, a.amount_step)
    if coarse % fine != 0:
        raise PairSetupError(
            f"{a.symbol}: quantity steps {a.amount_step} and {b.amount_step} have no common multiple both accept"
        )
    return coarse


def _largest_order(market: PerpMarket) -> Decimal | None:
    """The largest market order the venue takes, on its step (None: it lists no limit)."""
    limit = market.max_market_qty if market.max_market_qty is not None else market.max_qty
    if limit is None:
        return None
    largest = _floor(limit, market.amount_step)
    return largest if largest > 0 and largest >= market.min_qty else None


def _tradable(qty: Decimal, market: PerpMarket) -> bool:
    """Whether an order of ``qty`` (nothing, or a multiple of the step at least the minimum) can be sent."""
    return qty == 0 or (qty % market.amount_step == 0 and qty >= market.min_qty)


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _ceil(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _seconds(span: timedelta) -> Decimal:
    """A duration in seconds, to the millisecond, without going through float."""
    return Decimal(span // _MILLISECOND) / 1000


def _fill_ratio(sweep: Sweep) -> Decimal:
    if sweep.wanted <= 0:
        return ZERO
    return min(sweep.filled / sweep.wanted, Decimal(1))


def _position_in(positions: Sequence[BrokerPosition], symbol: str) -> BrokerPosition | None:
    found = [p for p in positions if p.symbol == symbol and p.qty != 0]
    return found[0] if found else None


def _combined_account(long: AccountSnapshot, short: AccountSnapshot, now: datetime) -> AccountSnapshot:
    """Both venues as one account: equity and cash add up; each leg needs its own venue's margin."""
    if long.currency != short.currency:
        raise PairSetupError(f"the venues settle in different currencies ({long.currency}, {short.currency})")
    return AccountSnapshot(
        equity=long.equity + short.equity,
        cash=long.cash + short.cash,
        buying_power=min(long.buying_power, short.buying_power),
        as_of=now,
        currency=long.currency,
        trading_blocked=long.trading_blocked or short.trading_blocked,
        account_blocked=long.account_blocked or short.account_blocked,
    )
