"""A leg order sent without a clear answer is only given up on once it cannot arrive any more.

An order whose request timed out, or that a crash interrupted after its intent was written,
may still be on its way to the venue: a slow network, a gateway holding the request. A
lookup by client id that finds nothing right after says nothing yet. Taken for "never
placed", the other leg of the entry would be unwound (or a close sent again), and the late
order would then land on its own: a naked leg nobody chose. The trader waits
``lost_order_grace_seconds`` from the order's creation, by the cycle's clock, before it
gives up on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxt_tests.pair_world import LONG_VENUE, SHORT_VENUE, START, PairWorld, pair_config
from ccxt_tests.venues import sync_venue
from tradekit.broker.errors import BrokerUnavailable
from tradekit.domain.orders import Order, OrderRequest
from tradekit.ledger.records import LedgerOrderStatus
from tradekit_venue_ccxt.pairs.config import PairTradingConfig
from tradekit_venue_ccxt.pairs.models import Leg, PairEventKind, PairStatus

pytestmark = pytest.mark.timeout(60)

ZERO = Decimal(0)
QTY = Decimal("0.33")


class HeldRequest:
    """A venue whose next opening order's request is held on the way: the caller times out,
    and the request reaches the venue only when ``deliver()`` is called (if ever)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False
        self.held: tuple[OrderRequest, bool] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        if self.armed and not reduce_only:
            self.armed = False
            self.held = (request, reduce_only)
            raise BrokerUnavailable(f"{request.client_order_id}: request timed out after 1000 ms")
        result: Order = self.inner.submit_order(request, reduce_only=reduce_only)
        return result

    def deliver(self) -> None:
        assert self.held is not None
        request, reduce_only = self.held
        self.held = None
        self.inner.submit_order(request, reduce_only=reduce_only)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PairWorld]:
    world = PairWorld.start(tmp_path, config=pair_config(lost_order_grace_seconds=60))
    yield world
    world.close()


def held_short(world: PairWorld) -> HeldRequest:
    short = HeldRequest(sync_venue(world.short_emu, SHORT_VENUE, timeout_ms=1000))
    world.crash()
    world.connect({LONG_VENUE: sync_venue(world.long_emu, LONG_VENUE, timeout_ms=1000), SHORT_VENUE: short})
    return short


def short_status(world: PairWorld) -> LedgerOrderStatus | None:
    (order,) = world.only_pair().orders_of(1, Leg.SHORT)
    assert world.ledger is not None
    with world.ledger.reading() as tx:
        state = tx.intent_state(order.client_order_id)
    return state.status if state is not None else None


def test_a_short_leg_arriving_after_its_timeout_is_not_taken_for_lost_and_the_long_is_not_unwound(
    world: PairWorld,
) -> None:
    short = held_short(world)
    short.armed = True
    world.cycle(START, 20)  # the long fills; the short's request times out, held on its way
    assert world.only_pair().in_progress == (1,)
    assert world.venue_qty() == (QTY, ZERO)

    # Thirty seconds on, the venue does not know the short yet: it may still arrive.
    world.cycle(START + timedelta(seconds=30), signal=False)
    pair = world.only_pair()
    assert pair.in_progress == (1,)
    assert world.events_of(PairEventKind.LEG_UNWOUND) == []
    assert short_status(world) is not LedgerOrderStatus.NOT_FOUND
    assert world.venue_qty() == (QTY, ZERO)

    short.deliver()  # the late request lands and fills
    world.cycle(START + timedelta(seconds=45), signal=False)

    pair = world.only_pair()
    assert pair.in_progress == ()
    assert pair.entry_count == 1
    assert pair.status is PairStatus.OPEN
    assert world.venue_qty() == (QTY, -QTY)
    assert (pair.long.held, pair.short.held) == (QTY, QTY)
    assert world.short_emu.create_order_request_count == 1


def test_a_short_leg_that_never_arrives_is_given_up_on_after_the_grace_and_the_long_unwound(
    world: PairWorld,
) -> None:
    short = held_short(world)
    short.armed = True
    world.cycle(START, 20)
    world.cycle(START + timedelta(seconds=59), signal=False)
    assert world.only_pair().in_progress == (1,)

    world.cycle(START + timedelta(seconds=60), signal=False)

    assert short_status(world) is LedgerOrderStatus.NOT_FOUND
    pair = world.only_pair()
    assert pair.in_progress == ()
    assert pair.status is PairStatus.CLOSED
    (unwound,) = world.events_of(PairEventKind.LEG_UNWOUND)
    assert (unwound.leg, unwound.qty) == (Leg.LONG, QTY)
    (unwind,) = world.long_emu.orders_with_client_id(unwound.client_order_id)
    assert unwind.reduce_only  # an unwind can never open the other side
    assert world.venue_qty() == (ZERO, ZERO)
    assert world.short_emu.create_order_request_count == 0


def test_the_grace_is_a_setting_with_a_default_and_a_floor() -> None:
    base: dict[str, Any] = {
        "entry_notional": Decimal(1000),
        "max_total_notional": Decimal(4000),
        "funding_hard_stop": Decimal(50),
    }
    assert PairTradingConfig(**base).lost_order_grace_seconds == 60
    with pytest.raises(ValueError, match="lost_order_grace_seconds"):
        PairTradingConfig(**base, lost_order_grace_seconds=-1)


# --- client order ids are the pair's own, whatever database came before ------------------------


def test_a_fresh_database_on_the_same_accounts_never_takes_an_earlier_pairs_orders_for_its_own(
    world: PairWorld, tmp_path: Path
) -> None:
    world.cycle(START, 20)
    world.cycle(START + timedelta(days=7, minutes=1), signal=False)  # max hold: closed, flat
    assert world.only_pair().status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)
    orders_before = (world.long_emu.create_order_request_count, world.short_emu.create_order_request_count)
    world.crash()

    # The same venue accounts, a new ledger (a new machine, a wiped file): its first pair must
    # send its own orders, not find the first ledger's under the same client ids.
    fresh = PairWorld(
        directory=tmp_path / "fresh",
        config=world.config,
        limits=world.limits,
        long_emu=world.long_emu,
        short_emu=world.short_emu,
    )
    fresh.directory.mkdir()
    fresh.connect()
    try:
        fresh.cycle(START + timedelta(days=8), 20)

        pair = fresh.only_pair()
        assert pair.entry_count == 1
        assert fresh.long_emu.create_order_request_count == orders_before[0] + 1
        assert fresh.short_emu.create_order_request_count == orders_before[1] + 1
        assert fresh.venue_qty() == (QTY, -QTY) == (pair.long.held, -pair.short.held)
        earlier = {o.client_order_id for o in world.long_emu.orders()} - {o.client_order_id for o in pair.leg_orders}
        assert len(earlier) == 2  # the first ledger's open and close
    finally:
        fresh.crash()
