"""A halt that lands between the two legs of a pair order never leaves one leg without its hedge.

A halt (``tradekit halt``, or an automatic one) stops new exposure. But once the first leg
of an entry, an add or an exit has gone out, what takes the pair back to two matching legs —
unwinding the lone leg of an entry, closing the second leg of an exit — reduces risk and goes
out whatever the halt. A pair whose legs match stays as it is while a halt stops exits: both
legs hedged, the close waiting for the resume. The same holds after a restart.

The operator halts from a connection of its own, at the moment the trader records the leg
order named (the first leg has been sent and filled by then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ccxt_tests.pair_world import (
    LONG_VENUE,
    MID,
    SHORT_VENUE,
    START,
    EngineWorld,
    PairWorld,
    engine_world,
    pair_config,
)
from ccxt_tests.venues import ETH, set_book
from tradekit.guard import ACCOUNT, Scope
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit.ledger.records import LedgerOrderStatus
from tradekit_venue_ccxt.pairs.models import (
    ExitReason,
    Leg,
    LegNote,
    LegOrder,
    LegPurpose,
    PairEventKind,
    PairStatus,
    pair_key,
)

pytestmark = pytest.mark.timeout(120)

ZERO = Decimal(0)
HOUR = timedelta(hours=1)
LONG_MID = Decimal(3000)


class SimulatedCrash(BaseException):
    """The trading process dies at this point."""


def _halt(operator: TradingGuard, scope: Scope) -> None:
    operator.halt(scope, reason="exchange incident", actor="user:ops", at=START)


def _halt_letting_exits_out(operator: TradingGuard, scope: Scope) -> None:
    operator.halt(scope, reason="exchange incident", actor="user:ops", at=START, allow_exits=True)


def _reduce_only(operator: TradingGuard, scope: Scope) -> None:
    operator.reduce_only(scope, reason="exchange incident", actor="user:ops", at=START)


HOLDS = {"halted": _halt, "halted-exits-allowed": _halt_letting_exits_out, "reduce-only": _reduce_only}
SCOPES = {
    "account": ACCOUNT,
    "pair": Scope.symbol(pair_key(ETH, LONG_VENUE, SHORT_VENUE)),
    "instrument": Scope.symbol(ETH),
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PairWorld]:
    started = PairWorld.start(tmp_path, config=pair_config(funding_hard_stop=Decimal(5)))
    yield started
    started.close()


@pytest.fixture
def operator(world: PairWorld) -> Iterator[TradingGuard]:
    # The operator's command line: a connection of its own to the trader's ledger.
    ledger = Ledger.open(world.url)
    yield TradingGuard(ledger=ledger)
    ledger.close()


class HoldWhenRecorded:
    """Run ``act`` once, when the trader records the leg order that ``when`` picks (before it is sent).

    ``crash``: the process then dies before recording it.
    """

    def __init__(
        self, world: PairWorld, when: Callable[[LegOrder], bool], act: Callable[[], None], *, crash: bool = False
    ) -> None:
        assert world.store is not None
        self.store = world.store
        self.record = world.store.record_leg_order
        self.when = when
        self.act = act
        self.crash = crash
        self.fired: list[LegOrder] = []

    def __call__(self, order: LegOrder) -> None:
        if not self.fired and self.when(order):
            self.fired.append(order)
            self.act()
            if self.crash:
                raise SimulatedCrash(f"before {order.leg.value} {order.purpose.value} of entry {order.entry_no}")
        self.record(order)


def _order(leg: Leg, purpose: LegPurpose, entry_no: int) -> Callable[[LegOrder], bool]:
    return lambda o: (o.leg, o.purpose, o.entry_no) == (leg, purpose, entry_no)


def _arm(
    world: PairWorld,
    monkeypatch: pytest.MonkeyPatch,
    when: Callable[[LegOrder], bool],
    act: Callable[[], None],
    *,
    crash: bool = False,
) -> HoldWhenRecorded:
    hook = HoldWhenRecorded(world, when, act, crash=crash)
    monkeypatch.setattr(world.store, "record_leg_order", hook)
    return hook


def _statuses(world: PairWorld, orders: list[LegOrder]) -> list[LedgerOrderStatus | None]:
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        states = [tx.intent_state(o.client_order_id) for o in orders]
    return [s.status if s is not None else None for s in states]


def _assert_hedged(world: PairWorld) -> Decimal:
    """Both venues hold the same quantity, long and short, and so do the pair's legs; return it."""
    long_qty, short_qty = world.venue_qty()
    assert long_qty == -short_qty, f"a lone leg: long venue {long_qty}, short venue {short_qty}"
    for pair in world.pairs():
        if pair.is_live:
            assert pair.long.held == pair.short.held == long_qty, (pair.long.held, pair.short.held, long_qty)
            assert pair.naked is None
    return long_qty


def _open_first_entry(world: PairWorld) -> Decimal:
    world.cycle(START, 20)
    held = _assert_hedged(world)
    assert held > 0
    return held


# --- entries and adds ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
@pytest.mark.parametrize("hold", HOLDS.values(), ids=HOLDS.keys())
def test_a_hold_landing_between_the_legs_of_an_entry_leaves_no_lone_leg(
    world: PairWorld,
    operator: TradingGuard,
    monkeypatch: pytest.MonkeyPatch,
    hold: Callable[[TradingGuard, Scope], None],
    scope: Scope,
) -> None:
    hook = _arm(world, monkeypatch, _order(Leg.SHORT, LegPurpose.OPEN, 1), lambda: hold(operator, scope))
    world.cycle(START, 20)

    assert hook.fired, "the short leg was never planned: the test did not reach the gap between the legs"
    assert _assert_hedged(world) == ZERO
    pair = world.only_pair()
    # The short leg opened exposure: the hold stopped it; the lone long leg was taken back.
    assert _statuses(world, list(pair.orders_of(1, Leg.SHORT))) == [LedgerOrderStatus.NOT_SENT]
    unwound: list[LegNote] = world.events_of(PairEventKind.LEG_UNWOUND)
    assert [(n.leg, n.entry_no) for n in unwound] == [(Leg.LONG, 1)]
    assert world.events_of(PairEventKind.LEG_NAKED) == []
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.reason is ExitReason.FIRST_ENTRY_FAILED


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_a_halt_landing_between_the_legs_of_an_add_leaves_the_first_entry_hedged(
    world: PairWorld, operator: TradingGuard, monkeypatch: pytest.MonkeyPatch, scope: Scope
) -> None:
    held = _open_first_entry(world)
    hook = _arm(world, monkeypatch, _order(Leg.SHORT, LegPurpose.OPEN, 2), lambda: _halt(operator, scope))
    world.cycle(START + HOUR, 40)  # beyond the first add's trigger (30 bps)

    assert hook.fired, "no add was sent: the test did not reach the gap between its legs"
    assert _assert_hedged(world) == held
    pair = world.only_pair()
    assert pair.status is PairStatus.OPEN
    assert pair.entry_count == 1
    assert pair.in_progress == ()
    assert [(n.leg, n.entry_no) for n in world.events_of(PairEventKind.LEG_UNWOUND)] == [(Leg.LONG, 2)]

    # Halted, the pair stays as it is, cycle after cycle: no add, no lone leg.
    world.cycle(START + 2 * HOUR, 60)
    assert _assert_hedged(world) == held
    assert world.only_pair().entry_count == 1


# --- exits --------------------------------------------------------------------------------------


def _take_profit(world: PairWorld) -> None:
    world.cycle(START + HOUR, -100, signal=False)


def _max_hold(world: PairWorld) -> None:
    world.cycle(START + timedelta(days=7), 20, signal=False)


def _funding_stop(world: PairWorld) -> None:
    # Both legs pay 1% of their notional (about 20 USDT), beyond the 5 USDT hard stop.
    world.long_emu.set_funding_rate(ETH, Decimal("0.01"))
    world.short_emu.set_funding_rate(ETH, Decimal("-0.01"))
    world.long_emu.apply_funding(ETH)
    world.short_emu.apply_funding(ETH)
    world.cycle(START + HOUR, 20, signal=False)


EXITS = {
    "take-profit": (_take_profit, ExitReason.TAKE_PROFIT),
    "max-hold": (_max_hold, ExitReason.MAX_HOLD),
    "funding-stop": (_funding_stop, ExitReason.FUNDING_HARD_STOP),
}


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
@pytest.mark.parametrize("exit_by", EXITS.values(), ids=EXITS.keys())
def test_a_halt_landing_between_the_closes_of_an_exit_lets_the_exit_finish(
    world: PairWorld,
    operator: TradingGuard,
    monkeypatch: pytest.MonkeyPatch,
    exit_by: tuple[Callable[[PairWorld], None], ExitReason],
    scope: Scope,
) -> None:
    _open_first_entry(world)
    trigger, reason = exit_by
    hook = _arm(world, monkeypatch, _order(Leg.SHORT, LegPurpose.CLOSE, 0), lambda: _halt(operator, scope))
    trigger(world)

    assert hook.fired, "the short leg's close was never planned: the test did not reach the gap"
    assert _assert_hedged(world) == ZERO
    pair = world.only_pair()
    assert pair.exit is not None
    assert pair.exit.reason is reason
    assert pair.status is PairStatus.CLOSED
    assert _statuses(world, [o for o in pair.leg_orders if o.purpose is LegPurpose.CLOSE]) == [
        LedgerOrderStatus.FILLED,
        LedgerOrderStatus.FILLED,
    ]


@pytest.mark.parametrize("exit_by", EXITS.values(), ids=EXITS.keys())
def test_a_halt_before_an_exit_keeps_both_legs_until_the_resume(
    world: PairWorld,
    operator: TradingGuard,
    monkeypatch: pytest.MonkeyPatch,
    exit_by: tuple[Callable[[PairWorld], None], ExitReason],
) -> None:
    # A halt that stops exits holds a hedged pair as it is: neither close goes, both legs stay.
    held = _open_first_entry(world)
    trigger, reason = exit_by
    hook = _arm(world, monkeypatch, _order(Leg.LONG, LegPurpose.CLOSE, 0), lambda: _halt(operator, ACCOUNT))
    trigger(world)

    assert hook.fired
    assert _assert_hedged(world) == held
    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSING
    assert pair.exit is not None
    assert pair.exit.reason is reason
    assert [o.leg for o in pair.leg_orders if o.purpose is LegPurpose.CLOSE] == [Leg.LONG, Leg.SHORT]
    assert set(_statuses(world, [o for o in pair.leg_orders if o.purpose is LegPurpose.CLOSE])) == {
        LedgerOrderStatus.NOT_SENT
    }

    at = START + timedelta(days=7, hours=1)
    world.cycle(at, 20, signal=False)  # still halted: still both legs
    assert _assert_hedged(world) == held
    operator.resume(ACCOUNT, reason="over", actor="user:ops", at=at)
    world.cycle(at + HOUR, 20, signal=False)
    assert _assert_hedged(world) == ZERO
    assert world.only_pair().status is PairStatus.CLOSED


def test_a_leg_liquidated_while_halted_has_its_partner_closed_through_the_halt(
    world: PairWorld, operator: TradingGuard
) -> None:
    _open_first_entry(world)
    _halt(operator, ACCOUNT)
    world.short_emu.seed_position(ETH, 0, 0)  # the short leg is liquidated during the halt
    world.cycle(START + HOUR, 20, signal=False)

    assert _assert_hedged(world) == ZERO
    pair = world.only_pair()
    assert pair.exit is not None
    assert pair.exit.reason is ExitReason.LEG_MISMATCH
    assert pair.status is PairStatus.CLOSED
    (close,) = [o for o in pair.leg_orders if o.purpose is LegPurpose.CLOSE]
    assert close.leg is Leg.LONG
    assert _statuses(world, [close]) == [LedgerOrderStatus.FILLED]
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        events = tx.order_events(close.client_order_id)
    assert "sent through a halt" in events[-1].detail


# --- restarts -----------------------------------------------------------------------------------


def test_a_restart_after_a_halt_between_the_legs_of_an_entry_unwinds_the_lone_leg(
    world: PairWorld, operator: TradingGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    _arm(world, monkeypatch, _order(Leg.SHORT, LegPurpose.OPEN, 1), lambda: _halt(operator, ACCOUNT), crash=True)
    with pytest.raises(SimulatedCrash):
        world.cycle(START, 20)
    long_qty, short_qty = world.venue_qty()
    assert long_qty > 0  # the long leg filled; the process died before the short one
    assert short_qty == ZERO
    world.crash()
    monkeypatch.undo()

    world.connect()
    world.cycle(START + HOUR, 20, signal=False)  # still halted
    assert _assert_hedged(world) == ZERO
    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSED
    unwound: list[LegNote] = world.events_of(PairEventKind.LEG_UNWOUND)
    assert [(n.leg, n.qty) for n in unwound] == [(Leg.LONG, long_qty)]


def test_a_restart_after_a_halt_between_the_closes_of_an_exit_closes_the_lone_leg(
    world: PairWorld, operator: TradingGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _open_first_entry(world)
    _arm(world, monkeypatch, _order(Leg.SHORT, LegPurpose.CLOSE, 0), lambda: _halt(operator, ACCOUNT), crash=True)
    with pytest.raises(SimulatedCrash):
        _max_hold(world)
    assert world.venue_qty() == (ZERO, -held)  # the long leg closed; the process died before the short one
    world.crash()
    monkeypatch.undo()

    world.connect()
    world.cycle(START + timedelta(days=7, hours=1), 20, signal=False)  # still halted
    assert _assert_hedged(world) == ZERO
    assert world.only_pair().status is PairStatus.CLOSED


def test_a_halt_after_a_close_filled_in_part_takes_back_only_what_one_leg_holds_beyond_the_other(
    world: PairWorld, operator: TradingGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _open_first_entry(world)
    hook = _arm(world, monkeypatch, _order(Leg.SHORT, LegPurpose.CLOSE, 0), lambda: _halt(operator, ACCOUNT))
    at = START + timedelta(days=7)
    world.quote_spread(20)
    set_book(world.long_emu, ETH, MID, depth=Decimal("0.05"))  # the long close fills 0.25 of 0.33 (5 levels)
    world.cycle(at, signal=False)

    assert hook.fired
    left = _assert_hedged(world)
    assert 0 < left < held
    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSING
    closes = [o for o in pair.leg_orders if o.purpose is LegPurpose.CLOSE]
    # The full short close was stopped by the halt; what the short held beyond the long went through it.
    assert [(o.leg, o.qty) for o in closes] == [(Leg.LONG, held), (Leg.SHORT, held), (Leg.SHORT, held - left)]
    assert _statuses(world, closes)[1:] == [LedgerOrderStatus.NOT_SENT, LedgerOrderStatus.FILLED]

    world.cycle(at + HOUR, 20, signal=False)  # still halted: the hedged rest waits
    assert _assert_hedged(world) == left
    operator.resume(ACCOUNT, reason="over", actor="user:ops", at=at)
    world.cycle(at + 2 * HOUR, 20, signal=False)
    assert _assert_hedged(world) == ZERO
    assert world.only_pair().status is PairStatus.CLOSED


# --- a hold at any step of a pair's life ----------------------------------------------------------


class _HoldAtOrder:
    """Place ``hold`` on ``scope`` as the ``nth`` leg order of ``kind`` (leg, purpose) is recorded (0: the first)."""

    def __init__(
        self,
        world: EngineWorld,
        kind: tuple[Leg, LegPurpose],
        nth: int,
        hold: Callable[[TradingGuard, Scope], None],
        scope: Scope,
    ) -> None:
        self.record = world.store.record_leg_order
        self.guard = TradingGuard(ledger=world.ledger)
        self.kind, self.nth, self.hold, self.scope = kind, nth, hold, scope
        self.seen = 0
        self.landed: LegOrder | None = None

    def __call__(self, order: LegOrder) -> None:
        if self.landed is None and (order.leg, order.purpose) == self.kind:
            if self.seen == self.nth:
                self.landed = order
                self.hold(self.guard, self.scope)
            self.seen += 1
        self.record(order)


KINDS = {
    f"{leg.value} {purpose.value}": (leg, purpose) for leg in Leg for purpose in (LegPurpose.OPEN, LegPurpose.CLOSE)
}


# Each example trades a pair's life on in-process venues: 50 cover the steps without a long run.
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # A life that opens with an entry (20 bps), then adds, take-profits (-150 bps), max hold.
    spreads_bps=st.lists(st.sampled_from([-150, 0, 20, 35, 55, 90]), min_size=4, max_size=8).map(lambda s: [20, *s]),
    kind=st.sampled_from(sorted(KINDS)),
    nth=st.integers(min_value=0, max_value=1),
    hold=st.sampled_from(sorted(HOLDS)),
    scope=st.sampled_from(sorted(SCOPES)),
    resume_after=st.none() | st.integers(min_value=0, max_value=3),
)
def test_a_hold_placed_as_any_leg_order_of_a_pair_leaves_never_leaves_a_lone_leg(
    spreads_bps: list[int], kind: str, nth: int, hold: str, scope: str, resume_after: int | None
) -> None:
    # The max-hold close comes a day (four steps) after the first entry.
    config = pair_config(min_interval_minutes=0, max_hold_days=1)
    with engine_world(config) as world:
        hook = _HoldAtOrder(world, KINDS[kind], nth, HOLDS[hold], SCOPES[scope])
        world.store.record_leg_order = hook  # type: ignore[method-assign]
        held_since: int | None = None
        for step, spread in enumerate(spreads_bps):
            now = START + step * timedelta(hours=6)
            if held_since is not None and resume_after is not None and step - held_since > resume_after:
                hook.guard.resume(SCOPES[scope], reason="over", actor="user:ops", at=now)
                resume_after = None
            world.quote(LONG_MID, LONG_MID * (1 + Decimal(spread) / 10_000))
            world.cycle(now)
            if held_since is None and hook.landed is not None:
                held_since = step

            long_qty = world.long.engine.position(ETH).qty
            short_qty = world.short.engine.position(ETH).qty
            assert long_qty == -short_qty, f"step {step}: a lone leg, long {long_qty}, short {short_qty}"
            live = [p for p in world.store.pairs() if p.is_live]
            assert sum((p.long.held for p in live), ZERO) == long_qty
            assert sum((p.short.held for p in live), ZERO) == -short_qty
            assert all(p.naked is None for p in live)
        landed = hook.landed
        if landed is None:
            event("no hold: the life had no such leg order")
        else:
            what = "an add" if landed.entry_no > 1 else "a first entry" if landed.entry_no == 1 else "a close"
            event(f"hold as the {landed.leg.value} leg of {what}")
            event(f"hold: {hold}")
