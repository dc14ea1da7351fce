"""An exit never sells twice, nor more than is held, and never leaves a later buy fill unsold.

While an earlier sell attempt of the same exit could still sell, no new sell goes beyond what
the broker holds minus what that attempt could still sell. The paper broker here takes short
sales, so a sell past the position would show as a short instead of being refused for us.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit.broker.errors import AmbiguousSubmission, BrokerError, DuplicateClientOrderId
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, ReceiptOutcome, SliceTiming
from tradekit.config import AllocationSettings, ExitSettings, MissedWindow, Settings
from tradekit.domain import Order, OrderRequest, Side, Urgency
from tradekit.execution.pipeline import ExitOutcome
from tradekit.exits import ExitIntent, ExitState
from tradekit.ledger import LedgerOrderStatus

from .test_pipeline import Single, Trading, make_trading

SHORTABLE = PaperBrokerConfig(allow_short_selling=True)
PRICES = {"KO": Decimal(60)}


class LateArrivals(PaperBroker):
    """The paper broker whose lost requests are kept, to reach it later (``land``)."""

    def __init__(self, config: PaperBrokerConfig) -> None:
        super().__init__(config)
        self.in_flight: list[OrderRequest] = []

    def submit_order(self, request: OrderRequest) -> Order:
        try:
            return super().submit_order(request)
        except AmbiguousSubmission:
            if self.get_order_by_client_id(request.client_order_id) is None:
                self.in_flight.append(request)  # it never arrived: it may still
            raise

    def land(self) -> None:
        """Every request still on its way reaches the broker now."""
        arriving, self.in_flight = self.in_flight, []
        for request in arriving:
            with contextlib.suppress(DuplicateClientOrderId):
                super().submit_order(request)


def bought(tmp_path: Path, paper: PaperBroker | None = None) -> Trading:
    t = make_trading(tmp_path, paper=paper or LateArrivals(SHORTABLE))
    t.reconcile()
    t.pipeline.process_buy(t.signal(), Single, t.market())
    t.pipeline.apply_events()
    return t


def stop_loss(t: Trading) -> ExitOutcome:
    return t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))


def the_exit(t: Trading) -> ExitIntent:
    with t.ledger.reading() as tx:
        (intent,) = tx.exit_intents()
    return intent


def at_broker(t: Trading, symbol: str = "KO") -> Decimal:
    return {p.symbol: p.qty for p in t.broker.get_positions()}.get(symbol, Decimal(0))


def sold(t: Trading) -> Decimal:
    return sum(
        (
            r.request.qty or Decimal(0)
            for r in t.broker.received_orders
            if r.request.side is Side.SELL and r.outcome is ReceiptOutcome.ACCEPTED
        ),
        Decimal(0),
    )


def cycle(t: Trading, step: timedelta = timedelta(minutes=1)) -> None:
    """One live cycle: look orders up, carry exits on, apply events (a step the broker fails is
    left for the next cycle, as the live loop does)."""
    t.clock.now += step
    for step_of_cycle in (
        t.pipeline.settle_pending,
        lambda: t.pipeline.execute_due_exits(PRICES),
        t.pipeline.apply_events,
        t.pipeline.reconcile_if_due,
    ):
        with contextlib.suppress(BrokerError):
            step_of_cycle()


# ---------------------------------------------------------------------------- (a) earlier attempts


def test_an_earlier_attempt_that_reaches_the_broker_after_a_later_one_was_refused_is_never_sold_over(
    tmp_path: Path,
) -> None:
    # Attempt 1's request is lost and given up on; attempt 2 is refused; then attempt 1 reaches
    # the broker after all and fills. Attempt 3 (whose last attempt is 2, not 1) sells nothing.
    t = bought(tmp_path)
    broker = t.broker
    assert isinstance(broker, LateArrivals)
    held = at_broker(t)
    broker.faults.arm(Fault.LOST_REQUEST, symbol="KO")
    stop_loss(t)
    t.clock.now += timedelta(seconds=t.pipeline.settings.orders.lost_order_grace_seconds)
    t.pipeline.settle_pending()
    assert the_exit(t).state is ExitState.PLANNED  # attempt 1 given up on as not found
    broker.faults.arm(Fault.REJECT, symbol="KO")
    t.pipeline.execute_due_exits(PRICES)  # attempt 2: refused
    assert the_exit(t).state is ExitState.PLANNED
    broker.land()  # attempt 1 arrives after all, and fills at once

    (third,) = t.pipeline.execute_due_exits(PRICES)

    assert third.order is None
    assert sold(t) == held
    assert at_broker(t) == 0  # flat, not short
    t.pipeline.apply_events()
    cycle(t)
    assert the_exit(t).state is ExitState.EXECUTED
    assert t.ledger.position("KO") is None
    assert sold(t) == held


_FAULTS = st.sampled_from(
    [
        None,
        Fault.LOST_REQUEST,
        Fault.TIMEOUT_AFTER_ACCEPT,
        Fault.LOST_RESPONSE,
        Fault.REJECT,
        Fault.REJECT_AFTER_ACCEPT,
        Fault.DISCONNECT,
    ]
)
_STEPS = st.lists(st.tuples(_FAULTS, st.booleans(), st.integers(min_value=1, max_value=4)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS)
def test_sells_never_exceed_what_is_held_whatever_attempts_are_ambiguous(
    steps: Sequence[tuple[Fault | None, bool, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = bought(Path(tmp))
        broker = t.broker
        assert isinstance(broker, LateArrivals)
        held = at_broker(t)
        try:
            stop_loss(t)
            for fault, land, minutes in steps:
                if fault is not None:
                    broker.faults.arm(fault, symbol=None if fault is Fault.DISCONNECT else "KO")
                if land:
                    broker.land()  # lost requests reach the broker between two cycles
                cycle(t, timedelta(minutes=minutes))
                broker.faults.clear()
                assert at_broker(t) >= 0
                assert sold(t) <= held
            broker.faults.clear()
            broker.land()
            for _ in range(6):  # everything settles: the exit is carried out, once
                cycle(t, timedelta(minutes=3))
            assert at_broker(t) == 0
            assert sold(t) == held
        finally:
            t.ledger.close()


# ---------------------------------------------------------------------------- (b) another kind of order next

# Monday 2024-03-04 after the close; Tuesday's exit window is 14:35-15:00 UTC, its close 21:00.
MONDAY_EVENING = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
BEFORE_TUESDAY_WINDOW = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
_PLANNED_FAULTS = st.sampled_from(
    [
        None,
        Fault.LOST_REQUEST,
        Fault.TIMEOUT_AFTER_ACCEPT,
        Fault.LOST_RESPONSE,
        Fault.REJECT,
        Fault.REJECT_AFTER_ACCEPT,
    ]
)
_PLANNED_STEPS = st.lists(
    st.tuples(_PLANNED_FAULTS, st.integers(min_value=1, max_value=2), st.booleans(), st.integers(1, 150)),
    min_size=1,
    max_size=14,
)


def priced_cycle(t: Trading, step: timedelta) -> None:
    """One live cycle, the market trading KO at 60 meanwhile (a limit sell at 60 fills at once,
    a market-on-close fills at the first price at or after the close)."""
    t.clock.now += step
    t.broker.set_price("KO", Decimal(60), t.clock.now)
    cycle(t, timedelta(0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_PLANNED_STEPS, whole_shares=st.booleans())
def test_a_planned_exit_never_sells_more_than_is_held_across_escalation_and_splits_whatever_is_lost(
    steps: Sequence[tuple[Fault | None, int, bool, int]], whole_shares: bool
) -> None:
    # A planned exit's limit sells in Tuesday's window, its market-on-close once the window
    # closed (33 on close and the fraction as a DAY order, unless whole shares are held), the
    # next day's window after that: any request of any of them may be lost and arrive later.
    with tempfile.TemporaryDirectory() as tmp:
        exits = ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE)
        allocation = AllocationSettings(fractional_shares=not whole_shares)
        t = make_trading(
            Path(tmp), paper=LateArrivals(SHORTABLE), settings=Settings(allocation=allocation, exits=exits)
        )
        broker = t.broker
        assert isinstance(broker, LateArrivals)
        try:
            t.reconcile()
            t.pipeline.process_buy(t.signal(), Single, t.market())
            t.pipeline.apply_events()
            assert at_broker(t) > 0
            t.clock.now = MONDAY_EVENING
            t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
            t.clock.now = BEFORE_TUESDAY_WINDOW
            for fault, times, land, minutes in steps:
                if land:
                    broker.land()  # lost requests reach the broker between two cycles
                if fault is not None:
                    broker.faults.arm(fault, times=times, symbol="KO")
                priced_cycle(t, timedelta(minutes=minutes))
                broker.faults.clear()
                assert at_broker(t) >= 0
            broker.land()
            for _ in range(36):  # three days of cycles: the exit is carried out, once
                priced_cycle(t, timedelta(hours=2))
                assert at_broker(t) >= 0
            assert at_broker(t) == 0
            assert t.ledger.position("KO") is None
            assert the_exit(t).state is ExitState.EXECUTED
        finally:
            t.ledger.close()


# ---------------------------------------------------------------------------- (c) a buy still filling


def test_an_exit_decided_while_the_buy_still_fills_sells_what_the_buy_adds_later(tmp_path: Path) -> None:
    paper = PaperBroker(PaperBrokerConfig(fill_slices=3, slice_timing=SliceTiming.PER_PRICE_UPDATE))
    t = make_trading(tmp_path, paper=paper)
    t.reconcile()
    bought_ = t.pipeline.process_buy(t.signal(), Single, t.market())  # a third fills, the rest works
    assert bought_.intent is not None
    t.pipeline.apply_events()
    position = t.ledger.position("KO")
    assert position is not None
    assert bought_.intent.qty is not None
    assert position.qty < bought_.intent.qty

    first = stop_loss(t)  # decided while two thirds are still to fill
    assert first.order is None  # no sell races the buy
    for _ in range(6):  # the market moves: the rest of the buy fills, then the sell's slices
        paper.set_price("KO", Decimal(60), t.clock.now + timedelta(seconds=1))
        cycle(t)
        assert at_broker(t) >= 0

    assert at_broker(t) == 0
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED
    assert sold(t) == bought_.intent.qty


def test_a_sell_signal_while_the_buy_is_still_in_flight_is_not_dropped(tmp_path: Path) -> None:
    t = make_trading(tmp_path, paper=LateArrivals(PaperBrokerConfig()))
    broker = t.broker
    assert isinstance(broker, LateArrivals)
    t.reconcile()
    broker.faults.arm(Fault.LOST_REQUEST)
    buy = t.pipeline.process_buy(t.signal(), Single, t.market())  # its answer is lost: in flight
    assert buy.intent is not None
    with t.ledger.reading() as tx:
        state = tx.intent_state(buy.intent.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.AMBIGUOUS

    outcome = stop_loss(t)
    assert outcome.intent is not None  # the exit is planned, not dropped for "no position"
    assert outcome.order is None  # and waits for the buy rather than racing it
    broker.land()  # the buy reached the broker after all and filled
    for _ in range(3):
        cycle(t)

    assert at_broker(t) == 0
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED
    assert sold(t) == buy.intent.qty
