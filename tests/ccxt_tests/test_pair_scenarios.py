"""Type B pairs traded end to end: the seeded synthetic series driven through both emulators.

Binance is the long venue and Bybit the short one, on ETH/USDT perpetuals, 1 000 USDT per
leg and entry. Each step quotes both books from a point of the synthetic series (a SYNTHETIC
spread/funding series, see ``tradekit_venue_ccxt.pairs.synthetic``), settles funding when the
series says so, lets the watchlist refresh its event, and runs one trader cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxt_tests.pair_world import LONG_VENUE, SHORT_VENUE, START, PairWorld, RefusingReduceOnly, pair_config
from ccxt_tests.venues import ETH, sync_venue
from tradekit.broker.errors import BrokerUnavailable
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit.decision.trace import trace_text
from tradekit.domain.orders import Order, OrderRequest
from tradekit.domain.signals import Side
from tradekit.ledger.records import LedgerOrderStatus
from tradekit_venue_ccxt.pairs.config import LegFailurePolicy
from tradekit_venue_ccxt.pairs.models import (
    EntrySnapshot,
    ExitNote,
    ExitReason,
    Leg,
    LegNote,
    PairEventKind,
    PairStatus,
    SignalStatus,
)
from tradekit_venue_ccxt.pairs.rules import PAIR_RULES
from tradekit_venue_ccxt.pairs.spread import next_trigger
from tradekit_venue_ccxt.pairs.synthetic import FundingShock, SyntheticPairSeries, Widening
from tradekit_venue_ccxt.pairs.trader import SignalOutcome

pytestmark = pytest.mark.timeout(120)

ZERO = Decimal(0)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., PairWorld]]:
    worlds: list[PairWorld] = []

    def make(**config: Any) -> PairWorld:
        world = PairWorld.start(tmp_path / f"world-{len(worlds)}", config=pair_config(**config))
        worlds.append(world)
        return world

    for directory in ("world-0", "world-1"):
        (tmp_path / directory).mkdir()
    yield make
    for world in worlds:
        world.close()


def staircase(seed: int = 11) -> SyntheticPairSeries:
    """20 bps, then widenings to 36, 54, 80 and 125 bps, four hours each (hourly steps)."""
    return SyntheticPairSeries.generate(
        seed=seed,
        start=START,
        steps=22,
        widenings=[
            Widening(start=4, length=4, peak_bps=Decimal(36)),
            Widening(start=8, length=4, peak_bps=Decimal(54)),
            Widening(start=12, length=4, peak_bps=Decimal(80)),
            Widening(start=16, length=6, peak_bps=Decimal(125)),
        ],
    )


# --------------------------------------------------------------------------------------------
# rescue scale-in
# --------------------------------------------------------------------------------------------


def test_widenings_trigger_three_adds_and_the_fourth_is_refused(make_world: Callable[..., PairWorld]) -> None:
    world = make_world()
    outcomes: list[SignalOutcome] = []
    for point in staircase().points:
        outcomes.extend(world.step(point).signals)

    pair = world.only_pair()
    assert pair.status is PairStatus.OPEN
    assert pair.entry_count == 4
    initial = pair.entries[0].spread
    for k, entry in enumerate(pair.entries[1:], start=1):
        assert entry.spread >= initial * Decimal("1.5") ** k
    acted = [o.action for o in outcomes if o.status is SignalStatus.ACTED]
    assert acted == [BuyAction.ENTER_NEW, BuyAction.SCALE_IN, BuyAction.SCALE_IN, BuyAction.SCALE_IN]
    after_fourth = outcomes[[o.status for o in outcomes].index(SignalStatus.ACTED, 0) :]
    refused = [o for o in after_fourth if o.status is SignalStatus.BLOCKED]
    assert refused, "the widening past the 4th trigger produced no refusal"
    assert all(ReasonCode.MAX_ENTRIES_REACHED in o.reasons for o in refused)
    held = sum((e.qty for e in pair.entries), ZERO)
    assert world.venue_qty() == (held, -held)
    assert pair.total_notional <= world.config.max_total_notional


def test_each_scale_in_snapshot_is_in_the_audit_trail(make_world: Callable[..., PairWorld]) -> None:
    world = make_world()
    funding_when_opened: dict[int, Decimal] = {}
    for point in staircase().points[:14]:
        report = world.step(point)
        for _pair_id, entry_no in report.entries_opened:
            funding_when_opened[entry_no] = world.only_pair().funding_paid

    snapshots: list[EntrySnapshot] = world.events_of(PairEventKind.ENTRY_PLANNED)
    pair = world.only_pair()
    assert [s.entry_no for s in snapshots] == [1, 2, 3, 4]
    assert snapshots[0].trigger is None
    assert snapshots[0].initial_spread is None
    initial = pair.entries[0].spread
    notional = ZERO
    for k, snapshot in enumerate(snapshots[1:], start=1):
        assert snapshot.initial_spread == initial
        assert snapshot.trigger == next_trigger(initial, Decimal("1.5"), k)
        assert snapshot.spread >= snapshot.trigger
        notional += pair.entries[k - 1].notional
        assert snapshot.total_notional_before == notional
        assert snapshot.funding_paid == funding_when_opened[k + 1]
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        for snapshot in snapshots:
            decision = tx.decision(snapshot.decision_id)
            assert decision is not None
            assert decision.action == ("enter_new" if snapshot.entry_no == 1 else "scale_in")
            assert all(rule in trace_text(decision.trace) for rule in PAIR_RULES)


# --------------------------------------------------------------------------------------------
# the rails
# --------------------------------------------------------------------------------------------


def test_funding_hard_stop_closes_both_legs(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(funding_hard_stop=Decimal(5))
    series = SyntheticPairSeries.generate(
        seed=3,
        start=START,
        steps=12,
        step=timedelta(hours=4),
        funding_shocks=[FundingShock(start=0, length=12, long_bps=Decimal(15), short_bps=Decimal(-15))],
    )
    closed_at = None
    for point in series.points:
        report = world.step(point, signal=point.step == 0)
        if report.closed:
            closed_at = point
            break

    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSED
    assert pair.exit is not None
    assert pair.exit.reason is ExitReason.FUNDING_HARD_STOP
    assert pair.exit.funding_paid is not None
    assert pair.exit.funding_paid >= Decimal(5)
    assert closed_at is not None
    assert closed_at.step == 4
    assert world.venue_qty() == (ZERO, ZERO)


def test_max_hold_force_closes_after_seven_days_and_scale_in_turns_the_stop_loss_off(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world(max_entries=2, stop_loss_pct=Decimal("0.1"))
    series = SyntheticPairSeries.generate(
        seed=5,
        start=START,
        steps=34,
        step=timedelta(hours=6),
        widenings=[Widening(start=8, length=26, peak_bps=Decimal(200))],
    )
    exits: list[tuple[Any, ExitReason]] = []
    for point in series.points:
        report = world.step(point)
        exits.extend((point, reason) for _pair, reason in report.exits_started)

    pair = world.only_pair()
    assert pair.entry_count == 2
    assert [reason for _point, reason in exits] == [ExitReason.MAX_HOLD]
    exit_point = exits[0][0]
    assert exit_point.time == pair.header.opened_at + timedelta(days=7)
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.realized_pnl < -pair.total_notional * Decimal("0.001")
    assert world.venue_qty() == (ZERO, ZERO)


def test_stop_loss_applies_when_scale_in_is_off(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(scale_in_enabled=False, max_entries=1, stop_loss_pct=Decimal("0.5"))
    series = SyntheticPairSeries.generate(
        seed=8, start=START, steps=10, widenings=[Widening(start=3, length=7, peak_bps=Decimal(150))]
    )
    outcomes: list[SignalOutcome] = []
    for point in series.points:
        report = world.step(point)
        outcomes.extend(report.signals)
        if report.closed:
            break

    pair = world.only_pair()
    assert pair.entry_count == 1
    assert pair.exit is not None
    assert pair.exit.reason is ExitReason.STOP_LOSS
    assert pair.exit.pnl is not None
    assert pair.exit.pnl <= -pair.total_notional * Decimal("0.005")
    scale_ins = [o for o in outcomes if o.status is SignalStatus.BLOCKED]
    assert scale_ins
    assert all(ReasonCode.SCALING_NOT_PERMITTED in o.reasons for o in scale_ins)
    assert world.venue_qty() == (ZERO, ZERO)


def test_take_profit_is_anchored_to_the_first_entry(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(max_entries=2)
    series = SyntheticPairSeries.generate(
        seed=21,
        start=START,
        steps=14,
        base_spread_bps=Decimal(40),
        widenings=[
            Widening(start=3, length=4, peak_bps=Decimal(70)),
            Widening(start=7, length=7, peak_bps=Decimal(0)),
        ],
    )
    for point in series.points:
        report = world.step(point)
        if report.closed:
            break

    pair = world.only_pair()
    assert pair.entry_count == 2
    assert pair.exit is not None
    assert pair.exit.reason is ExitReason.TAKE_PROFIT
    first_target = pair.entries[0].notional * Decimal("0.5") / 100
    whole_position_target = pair.total_notional * Decimal("0.5") / 100
    assert pair.take_profit_target == first_target
    assert pair.exit.pnl is not None
    assert first_target <= pair.exit.pnl < whole_position_target
    assert pair.status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)


# --------------------------------------------------------------------------------------------
# leg failures and restarts
# --------------------------------------------------------------------------------------------


class SimulatedCrash(BaseException):
    """The trading process dies at this point."""


class CrashingVenue:
    """A venue whose next matching order kills the process, before or after it is sent."""

    def __init__(self, inner: Any, *, after_sending: bool, when: Callable[[OrderRequest], bool]) -> None:
        self.inner = inner
        self.after_sending = after_sending
        self.when = when
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        if self.armed and self.when(request):
            self.armed = False
            if self.after_sending:
                self.inner.submit_order(request, reduce_only=reduce_only)
            raise SimulatedCrash(request.client_order_id)
        result: Order = self.inner.submit_order(request, reduce_only=reduce_only)
        return result


def _opening_short(request: OrderRequest) -> bool:
    return request.side is Side.SELL


@pytest.mark.parametrize("after_sending", [False, True], ids=["crash-before-short-sent", "crash-after-short-sent"])
def test_restart_with_a_half_open_scale_in_ends_with_no_naked_leg(
    make_world: Callable[..., PairWorld], after_sending: bool
) -> None:
    world = make_world()
    short = CrashingVenue(
        sync_venue(world.short_emu, SHORT_VENUE, timeout_ms=1000), after_sending=after_sending, when=_opening_short
    )
    world.crash()
    world.connect({LONG_VENUE: sync_venue(world.long_emu, LONG_VENUE, timeout_ms=1000), SHORT_VENUE: short})
    points = staircase().points
    for point in points[:5]:
        world.step(point)
    assert world.only_pair().entry_count == 1
    short_orders_before = world.short_emu.create_order_request_count

    short.armed = True
    with pytest.raises(SimulatedCrash):
        world.step(points[5])  # the spread reached add #1's trigger: the long leg fills, then the crash
    half_open = world.only_pair()
    assert half_open.in_progress == (2,)
    assert world.long_emu.position(ETH).qty == half_open.entries[0].qty * 2
    world.crash()

    world.connect()
    world.step(points[5], signal=False)
    if not after_sending:
        # Unknown at the venue right after the restart: it may still be on its way, so the
        # long leg is not unwound until the order's grace (a minute) is over.
        assert world.only_pair().in_progress == (2,)
        assert world.events_of(PairEventKind.LEG_UNWOUND) == []
        world.cycle(points[5].time + timedelta(minutes=1), signal=False)

    pair = world.only_pair()
    assert pair.in_progress == ()
    assert pair.naked is None
    held = sum((e.qty for e in pair.entries), ZERO)
    assert world.venue_qty() == (held, -held)
    assert pair.long.held == pair.short.held == held
    sent_since = world.short_emu.create_order_request_count - short_orders_before
    if after_sending:
        # The short leg had reached the venue: found by client id, never sent again.
        assert pair.entry_count == 2
        assert sent_since == 1
    else:
        assert pair.entry_count == 1
        assert sent_since == 0
        unwound: list[LegNote] = world.events_of(PairEventKind.LEG_UNWOUND)
        assert [(n.leg, n.entry_no) for n in unwound] == [(Leg.LONG, 2)]
        assert "restart" in unwound[0].reason


class CrashingLedger:
    """A ledger whose next write locking ``symbol`` kills the process before it commits."""

    def __init__(self, inner: Any, symbol: str) -> None:
        self.inner = inner
        self.symbol = symbol
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transaction(self, *, lock_symbol: str | None = None) -> Any:
        if self.armed and lock_symbol == self.symbol:
            self.armed = False
            raise SimulatedCrash("before the order intent was written")
        return self.inner.transaction(lock_symbol=lock_symbol)


def test_restart_after_a_leg_was_planned_but_before_its_intent_records_it_as_never_sent(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world()
    points = staircase().points
    for point in points[:5]:
        world.step(point)
    crashing: list[CrashingLedger] = []

    def wrap(inner: Any) -> CrashingLedger:
        crashing.append(CrashingLedger(inner, ETH))
        return crashing[-1]

    world.crash()
    world.connect(wrap_ledger=wrap)
    crashing[0].armed = True
    with pytest.raises(SimulatedCrash):
        world.step(points[5])
    world.crash()

    world.connect()
    world.step(points[5], signal=False)

    pair = world.only_pair()
    assert pair.entry_count == 1
    assert pair.in_progress == ()
    (planned,) = pair.orders_of(2)
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        state = tx.intent_state(planned.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.NOT_FOUND
    assert world.long_emu.orders_with_client_id(planned.client_order_id) == []
    held = pair.entries[0].qty
    assert world.venue_qty() == (held, -held)


class UnansweredLookups:
    """A venue whose fill reads and order lookups fail (the venue does not answer) while armed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing_fills = 0
        self.failing_lookups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def venue_fills(self, client_order_id: str, symbol: str | None = None) -> Any:
        if self.failing_fills:
            self.failing_fills -= 1
            raise BrokerUnavailable(f"fills of {client_order_id}: 502 Bad Gateway")
        return self.inner.venue_fills(client_order_id, symbol)

    def find_order(self, client_order_id: str, symbol: str | None = None) -> Any:
        if self.failing_lookups:
            self.failing_lookups -= 1
            raise BrokerUnavailable(f"order {client_order_id}: request timed out")
        return self.inner.find_order(client_order_id, symbol)


def test_a_filled_leg_whose_lookups_all_fail_is_never_recorded_as_not_found(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world()
    long = UnansweredLookups(sync_venue(world.long_emu, LONG_VENUE, timeout_ms=1000))
    world.crash()
    world.connect({LONG_VENUE: long, SHORT_VENUE: sync_venue(world.short_emu, SHORT_VENUE, timeout_ms=1000)})
    points = staircase().points
    long.failing_fills = 1  # the long leg fills, but its fills cannot be read: not settled yet
    world.step(points[0])
    assert world.only_pair().in_progress == (1,)

    long.failing_lookups = 5  # every lookup of the next cycle's recovery fails
    world.step(points[1], signal=False)

    pair = world.only_pair()
    (long_order,) = pair.orders_of(1, Leg.LONG)
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        state = tx.intent_state(long_order.client_order_id)
    assert state is not None
    assert state.status is not LedgerOrderStatus.NOT_FOUND
    assert pair.in_progress == (1,)

    world.step(points[2], signal=False)  # the venue answers again: the fill is recorded
    pair = world.only_pair()
    with world.ledger.reading() as tx:
        state = tx.intent_state(long_order.client_order_id)
    assert state is not None
    assert state.status is LedgerOrderStatus.FILLED
    # The short leg was never sent while the long one was unsettled: the long is unwound.
    assert pair.in_progress == ()
    assert [(n.leg, n.entry_no) for n in world.events_of(PairEventKind.LEG_UNWOUND)] == [(Leg.LONG, 1)]
    assert world.venue_qty() == (pair.long.held, -pair.short.held) == (ZERO, ZERO)


def test_rejected_short_leg_is_unwound_and_recorded(make_world: Callable[..., PairWorld]) -> None:
    world = make_world()
    points = staircase().points
    world.short_emu.reject_next_order()
    report = world.step(points[0])

    assert report.entries_failed
    pair = world.pairs()[0]
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.reason is ExitReason.FIRST_ENTRY_FAILED
    failed: list[LegNote] = world.events_of(PairEventKind.LEG_FAILED)
    unwound: list[LegNote] = world.events_of(PairEventKind.LEG_UNWOUND)
    assert [n.leg for n in failed] == [Leg.SHORT]
    assert [(n.leg, n.qty) for n in unwound] == [(Leg.LONG, Decimal("0.33"))]
    assert world.venue_qty() == (ZERO, ZERO)
    assert world.short_emu.orders() == []

    # An hour later the pair key's wait after a failed entry (30 minutes) is over: a new pair opens.
    world.step(points[1])
    assert [p.status for p in world.pairs()] == [PairStatus.CLOSED, PairStatus.OPEN]


def test_rejected_short_leg_is_retried_under_retry_then_unwind(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(leg_failure_policy=LegFailurePolicy.RETRY_THEN_UNWIND, leg_retries=1)
    world.short_emu.reject_next_order()
    world.step(staircase().points[0])

    pair = world.only_pair()
    assert pair.entry_count == 1
    assert [n.leg for n in world.events_of(PairEventKind.LEG_RETRIED)] == [Leg.SHORT]
    assert world.events_of(PairEventKind.LEG_UNWOUND) == []
    assert world.short_emu.create_order_request_count == 2
    assert len({o.client_order_id for o in world.short_emu.orders()}) == 1
    assert world.venue_qty() == (pair.entries[0].qty, -pair.entries[0].qty)


def test_failed_unwind_leaves_a_recorded_naked_leg_that_is_worked_every_cycle(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world()
    long = RefusingReduceOnly(sync_venue(world.long_emu, LONG_VENUE, timeout_ms=1000), refusing=True)
    world.crash()
    world.connect({LONG_VENUE: long, SHORT_VENUE: sync_venue(world.short_emu, SHORT_VENUE, timeout_ms=1000)})
    points = staircase().points
    world.short_emu.reject_next_order()
    world.step(points[0])

    pair = world.only_pair()
    assert pair.naked is not None
    assert pair.naked.leg is Leg.LONG
    assert pair.status is PairStatus.OPEN
    assert pair.in_progress == (1,)
    assert world.venue_qty() == (Decimal("0.33"), ZERO)

    report = world.step(points[1])  # still refused: recorded again, and no new entry while naked
    assert len(world.events_of(PairEventKind.LEG_NAKED)) == 2
    (outcome,) = report.signals
    assert outcome.status is SignalStatus.BLOCKED
    assert ReasonCode.UNRECONCILED_BROKER_POSITION in outcome.reasons

    long.refusing = False
    world.step(points[2], signal=False)
    pair = world.only_pair()
    assert pair.naked is None
    assert pair.status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)


def test_timeout_on_a_leg_is_resolved_by_client_id_and_sends_one_order(make_world: Callable[..., PairWorld]) -> None:
    world = make_world()
    world.short_emu.timeout_next_order(delay_s=3.0)
    world.step(staircase().points[0])

    pair = world.only_pair()
    assert pair.entry_count == 1
    (short_order,) = pair.orders_of(1, Leg.SHORT)
    assert len(world.short_emu.orders_with_client_id(short_order.client_order_id)) == 1
    assert world.short_emu.create_order_request_count == 1
    assert world.venue_qty() == (pair.entries[0].qty, -pair.entries[0].qty)


def test_leg_closed_at_its_venue_closes_the_other_leg(make_world: Callable[..., PairWorld]) -> None:
    world = make_world()
    points = staircase().points
    world.step(points[0])
    world.short_emu.seed_position(ETH, 0, 0)  # the short leg was liquidated
    report = world.step(points[1], signal=False)

    pair = world.only_pair()
    assert report.exits_started == ((pair.pair_id, ExitReason.LEG_MISMATCH),)
    (mismatch,) = world.events_of(PairEventKind.LEG_MISMATCH)
    assert mismatch.leg is Leg.SHORT
    assert mismatch.qty == ZERO
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.note == "closed outside tradekit: short 0.33"
    assert world.venue_qty() == (ZERO, ZERO)


def test_venue_holding_more_than_the_pair_blocks_adds_and_is_recorded_once(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world()
    points = staircase().points
    world.step(points[0])
    world.long_emu.seed_position(ETH, "0.5", 3000)  # someone bought 0.17 more by hand
    outcomes: list[SignalOutcome] = []
    for point in points[5:8]:  # wide enough for add #1
        outcomes.extend(world.step(point).signals)

    pair = world.only_pair()
    assert pair.entry_count == 1
    assert pair.status is PairStatus.OPEN
    assert len(world.events_of(PairEventKind.LEG_MISMATCH)) == 1
    assert all(o.status is SignalStatus.BLOCKED for o in outcomes)
    assert all(ReasonCode.UNRECONCILED_BROKER_POSITION in o.reasons for o in outcomes)
    assert world.venue_qty() == (Decimal("0.5"), Decimal("-0.33"))


# --------------------------------------------------------------------------------------------
# skipped signals
# --------------------------------------------------------------------------------------------


def test_skipped_signal_is_retried_every_cycle_while_its_event_stays_open(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world()
    points = SyntheticPairSeries.generate(seed=2, start=START, steps=6).points
    world.depth = Decimal("0.05")  # five levels hold 0.25, less than the 0.33 an entry needs
    world.quote(points[0])
    assert world.trader is not None
    # The watchlist merged the event: it stays open but its timestamp no longer moves.
    world.trader.submit_signal(world.signal(points[0].time), points[0].time)
    statuses: list[SignalStatus] = []
    for point in points:
        if point.step == 4:
            world.depth = Decimal(50)
        report = world.step(point, signal=False)
        statuses.extend(o.status for o in report.signals)

    assert statuses == [SignalStatus.SKIPPED] * 4 + [SignalStatus.ACTED]
    assert world.only_pair().entry_count == 1
    assert world.store is not None
    history = world.store.signal_history("evt-1")
    assert {record.signal.signal_id for record in history} == {world.signal(points[0].time).signal_id}


def test_skipped_signal_of_a_closed_event_ages_out(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(closed_event_window_minutes=60)
    points = SyntheticPairSeries.generate(seed=2, start=START, steps=6, step=timedelta(minutes=20)).points
    world.depth = Decimal("0.05")
    world.quote(points[0])
    assert world.trader is not None
    world.trader.submit_signal(world.signal(points[0].time, event_open=False), points[0].time)
    statuses: list[SignalStatus] = []
    for point in points:
        if point.step == 4:
            world.depth = Decimal(50)  # liquidity comes back after the window
        statuses.extend(o.status for o in world.step(point, signal=False).signals)

    assert statuses == [SignalStatus.SKIPPED] * 4 + [SignalStatus.EXPIRED]
    assert world.pairs() == []


def test_exit_note_records_the_figures_that_decided_it(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(funding_hard_stop=Decimal(5))
    series = SyntheticPairSeries.generate(
        seed=3,
        start=START,
        steps=6,
        step=timedelta(hours=4),
        funding_shocks=[FundingShock(start=0, length=6, long_bps=Decimal(15), short_bps=Decimal(-15))],
    )
    for point in series.points:
        world.step(point, signal=point.step == 0)
    (note,) = world.events_of(PairEventKind.EXIT_STARTED)
    assert isinstance(note, ExitNote)
    assert note.reason is ExitReason.FUNDING_HARD_STOP
    assert note.spread is not None
    assert note.pnl is not None
    assert "hard stop 5" in note.detail
