"""A rail fires once, and its close survives a restart, a venue refusing it and a timeout.

The funding hard-stop and max hold are persisted as the pair's exit (``EXIT_STARTED``): a
restart carries the close on instead of judging the rail again, every close is reduce-only
(no close can open the opposite side), and a close whose answer is lost is looked up by
client id, never sent again while it may still land.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ccxt_tests.pair_world import LONG_VENUE, SHORT_VENUE, START, PairWorld, RefusingReduceOnly, pair_config
from ccxt_tests.venues import ETH, sync_venue
from tradekit_venue_ccxt.pairs.models import ExitReason, Leg, LegPurpose, PairEventKind, PairStatus

pytestmark = pytest.mark.timeout(90)

ZERO = Decimal(0)
HELD = Decimal("0.66")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PairWorld]:
    world = PairWorld.start(tmp_path, config=pair_config(min_interval_minutes=0, funding_hard_stop=Decimal(5)))
    yield world
    world.close()


def restart(world: PairWorld, *, short_refusing: bool) -> RefusingReduceOnly:
    world.crash()
    short = RefusingReduceOnly(sync_venue(world.short_emu, SHORT_VENUE, timeout_ms=1000), refusing=short_refusing)
    world.connect({LONG_VENUE: sync_venue(world.long_emu, LONG_VENUE, timeout_ms=1000), SHORT_VENUE: short})
    return short


def closes(world: PairWorld) -> list[tuple[Leg, bool]]:
    """Each close order the pair sent: its leg, and whether the venue has it as reduce-only."""
    found: list[tuple[Leg, bool]] = []
    for order in world.only_pair().leg_orders:
        if order.purpose is not LegPurpose.CLOSE:
            continue
        emulator = world.long_emu if order.leg is Leg.LONG else world.short_emu
        found.extend((order.leg, o.reduce_only) for o in emulator.orders_with_client_id(order.client_order_id))
    return found


def test_a_funding_stop_fires_once_and_its_close_survives_a_refusal_a_restart_and_a_timeout(
    world: PairWorld,
) -> None:
    world.cycle(START, 20)
    world.cycle(START + timedelta(minutes=1), 40)
    assert world.venue_qty() == (HELD, -HELD)

    short = restart(world, short_refusing=True)
    world.long_emu.set_funding_rate(ETH, Decimal("0.01"))
    world.long_emu.apply_funding(ETH)  # the long leg pays 1% of ~2000: beyond the 5 USDT stop
    t = START + timedelta(hours=8)
    report = world.cycle(t, signal=False)

    pair = world.only_pair()
    assert report.exits_started == ((pair.pair_id, ExitReason.FUNDING_HARD_STOP),)
    assert pair.status is PairStatus.CLOSING
    assert world.venue_qty() == (ZERO, -HELD)  # the short venue refuses its close: retried every cycle

    short = restart(world, short_refusing=True)
    report = world.cycle(t + timedelta(minutes=1), signal=False)
    assert report.exits_started == ()
    assert world.venue_qty() == (ZERO, -HELD)

    short = restart(world, short_refusing=False)
    world.short_emu.timeout_next_order(delay_s=2.0)  # the close fills, its answer is lost
    report = world.cycle(t + timedelta(minutes=2), signal=False)
    assert report.exits_started == ()

    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.reason is ExitReason.FUNDING_HARD_STOP
    assert len(world.events_of(PairEventKind.EXIT_STARTED)) == 1
    assert world.venue_qty() == (ZERO, ZERO)
    # One close reached each venue, reduce-only: nothing flipped a leg into the other side.
    assert sorted(closes(world)) == [(Leg.LONG, True), (Leg.SHORT, True)]
    assert not short.refusing

    # A week on, max hold has nothing left to close: a closed pair's rails never fire again.
    report = world.cycle(START + timedelta(days=8), signal=False)
    assert report.exits_started == ()
    assert world.venue_qty() == (ZERO, ZERO)


def test_max_hold_is_judged_on_the_pairs_own_opening_time_after_a_restart(world: PairWorld) -> None:
    world.cycle(START, 20)
    opened = world.only_pair().header.opened_at
    restart(world, short_refusing=False)

    report = world.cycle(opened + timedelta(days=7) - timedelta(seconds=1), signal=False)
    assert report.exits_started == ()

    restart(world, short_refusing=False)
    report = world.cycle(opened + timedelta(days=7), signal=False)
    pair = world.only_pair()
    assert report.exits_started == ((pair.pair_id, ExitReason.MAX_HOLD),)
    assert pair.status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)
