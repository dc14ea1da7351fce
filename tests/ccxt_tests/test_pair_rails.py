"""The price-free rails — the funding hard-stop and max hold — fire whatever else is wrong.

An unreadable or one-sided book, or an entry whose legs are still being matched, must not
hide them: both need no prices, and a hit closes what both venues hold for the pair, retried
every cycle until it is done. Legs are matched on a step both venues can trade, so a partial
fill on the finer venue never leaves an excess the coarser one cannot sell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from ccxt_tests.pair_world import LONG_VENUE, SHORT_VENUE, START, PairWorld, RefusingReduceOnly, pair_config
from ccxt_tests.venues import ETH, sync_venue
from emulators._perp_book import PerpVenueEmulator
from tradekit.broker.errors import BrokerUnavailable, OrderRejected
from tradekit.domain.orders import Order, OrderRequest
from tradekit.domain.signals import Side
from tradekit_venue_ccxt.pairs.models import ExitNote, ExitReason, Leg, LegNote, PairEventKind, PairStatus
from tradekit_venue_ccxt.providers import OrderBook, PerpMarket

pytestmark = pytest.mark.timeout(60)

ZERO = Decimal(0)
MID = Decimal(3000)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., PairWorld]]:
    worlds: list[PairWorld] = []

    def make(*, long_venue: str = LONG_VENUE, short_venue: str = SHORT_VENUE, **config: Any) -> PairWorld:
        directory = tmp_path / f"world-{len(worlds)}"
        directory.mkdir()
        world = PairWorld.start(directory, config=pair_config(**config), long_venue=long_venue, short_venue=short_venue)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


def settle_funding(world: PairWorld, rate: Decimal) -> None:
    """Both legs pay ``rate`` of their notional: the long at +rate, the short at -rate."""
    world.long_emu.set_funding_rate(ETH, rate)
    world.short_emu.set_funding_rate(ETH, -rate)
    world.long_emu.apply_funding(ETH)
    world.short_emu.apply_funding(ETH)


class UnreadableBooks:
    """A venue whose order book cannot be read while ``down`` (rate-limited); orders still go."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        if self.down:
            raise BrokerUnavailable(f"GET /depth {symbol}: 429 Too Many Requests")
        book: OrderBook = self.inner.order_book(symbol, depth)
        return book


class ThinsBeforeOpening:
    """Right before the next opening order on ``side`` goes out, the book it takes thins to ``qty`` (a race)."""

    def __init__(self, inner: Any, emulator: PerpVenueEmulator, side: Side, qty: Decimal) -> None:
        self.inner = inner
        self.emulator = emulator
        self.side = side
        self.qty = qty
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        if self.armed and request.side is self.side and not reduce_only:
            self.armed = False
            thin = [(MID + Decimal("0.01"), self.qty)]
            deep = [(MID - Decimal("0.01"), Decimal(50))]
            if self.side is Side.BUY:
                self.emulator.set_order_book(ETH, bids=deep, asks=thin)
            else:
                self.emulator.set_order_book(ETH, bids=thin, asks=[(MID + Decimal("0.01"), Decimal(50))])
        result: Order = self.inner.submit_order(request, reduce_only=reduce_only)
        return result


class CoarseMinimum:
    """A venue whose minimum order is ``min_qty`` though its step is finer (as some venues list)."""

    def __init__(self, inner: Any, min_qty: Decimal) -> None:
        self.inner = inner
        self.min_qty = min_qty

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def market(self, symbol: str) -> PerpMarket | None:
        market: PerpMarket | None = self.inner.market(symbol)
        return attrs.evolve(market, min_qty=self.min_qty) if market is not None else None

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        assert request.qty is not None
        if request.qty < self.min_qty:
            raise OrderRejected(
                f"{request.client_order_id}: quantity {request.qty} is below the minimum {self.min_qty}"
            )
        result: Order = self.inner.submit_order(request, reduce_only=reduce_only)
        return result


def _same(venue: Any) -> Any:
    return venue


def reconnect(world: PairWorld, *, long: Callable[[Any], Any] = _same, short: Callable[[Any], Any] = _same) -> Any:
    """Restart the trader on venues wrapped by ``long`` and ``short``; return the wrapped (long, short)."""
    world.crash()
    venues = (
        long(sync_venue(world.long_emu, world.long_venue, timeout_ms=1000)),
        short(sync_venue(world.short_emu, world.short_venue, timeout_ms=1000)),
    )
    world.connect({world.long_venue: venues[0], world.short_venue: venues[1]})
    return venues


# --------------------------------------------------------------------------------------------
# the funding hard-stop needs no book
# --------------------------------------------------------------------------------------------


def test_funding_hard_stop_closes_the_pair_while_a_book_cannot_be_read(make_world: Callable[..., PairWorld]) -> None:
    world = make_world(funding_hard_stop=Decimal(5))
    _long, short = reconnect(world, short=UnreadableBooks)
    assert world.cycle(START, 20).entries_opened

    short.down = True
    settle_funding(world, Decimal("0.003"))
    report = world.cycle(START + timedelta(hours=8), signal=False)

    pair = world.only_pair()
    assert report.exits_started == ((pair.pair_id, ExitReason.FUNDING_HARD_STOP),)
    assert pair.exit is not None
    assert pair.exit.funding_paid is not None
    assert pair.exit.funding_paid >= Decimal(5)
    assert pair.status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)


def test_funding_hard_stop_on_a_one_sided_book_keeps_closing_until_the_book_returns(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world(funding_hard_stop=Decimal(5))
    assert world.cycle(START, 20).entries_opened
    held = world.only_pair().short.held

    # The short venue has bids but no asks: nothing to buy the short back from.
    world.short_emu.set_order_book(ETH, bids=[(MID, Decimal(50))], asks=[])
    settle_funding(world, Decimal("0.003"))
    t = START + timedelta(hours=8)
    report = world.cycle(t, signal=False)

    pair = world.only_pair()
    assert report.exits_started == ((pair.pair_id, ExitReason.FUNDING_HARD_STOP),)
    assert pair.status is PairStatus.CLOSING
    assert world.venue_qty() == (ZERO, -held)

    world.cycle(t + timedelta(minutes=1), signal=False)  # still no asks: tried again, not forgotten
    assert world.only_pair().status is PairStatus.CLOSING
    failed: list[LegNote] = world.events_of(PairEventKind.LEG_FAILED)
    assert [n.leg for n in failed] == [Leg.SHORT, Leg.SHORT]

    world.quote_spread(20)
    world.cycle(t + timedelta(minutes=2), signal=False)
    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.reason is ExitReason.FUNDING_HARD_STOP
    assert world.venue_qty() == (ZERO, ZERO)


# --------------------------------------------------------------------------------------------
# an entry stuck in progress does not switch the rails off
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rail", [ExitReason.FUNDING_HARD_STOP, ExitReason.MAX_HOLD])
def test_a_stuck_scale_in_does_not_disable_the_funding_stop_or_max_hold(
    make_world: Callable[..., PairWorld], rail: ExitReason
) -> None:
    world = make_world(funding_hard_stop=Decimal(5))
    long, _short = reconnect(world, long=RefusingReduceOnly)
    assert world.cycle(START, 20).entries_opened

    # The add's short leg is rejected and its long leg cannot be unwound: entry 2 is stuck.
    world.short_emu.reject_next_order()
    long.refusing = True
    t = START + timedelta(hours=1)
    world.cycle(t, 40)
    stuck = world.only_pair()
    assert stuck.in_progress == (2,)
    assert stuck.naked is not None

    if rail is ExitReason.FUNDING_HARD_STOP:
        settle_funding(world, Decimal("0.01"))
        t += timedelta(hours=8)
    else:
        t = stuck.header.force_close_at
    report = world.cycle(t, 40, signal=False)

    assert report.exits_started == ((stuck.pair_id, rail),)
    assert world.only_pair().status is PairStatus.CLOSING  # the long venue still refuses: kept at it

    long.refusing = False
    world.cycle(t + timedelta(minutes=1), 40, signal=False)
    pair = world.only_pair()
    assert pair.status is PairStatus.CLOSED
    assert pair.closed is not None
    assert pair.closed.reason is rail
    assert world.venue_qty() == (ZERO, ZERO)


# --------------------------------------------------------------------------------------------
# legs are matched on a step both venues trade
# --------------------------------------------------------------------------------------------


def test_a_short_partial_fill_on_the_finer_venue_is_matched_on_the_common_step(
    make_world: Callable[..., PairWorld],
) -> None:
    # Bybit (ETH step 0.01) long, Binance (step 0.001) short.
    world = make_world(long_venue="bybit", short_venue="binanceusdm", min_interval_minutes=0)
    _long, short = reconnect(world, short=lambda v: ThinsBeforeOpening(v, world.short_emu, Side.SELL, Decimal("0.325")))
    assert world.cycle(START, 20).entries_opened
    assert world.only_pair().entries[0].qty == Decimal("0.33")

    short.armed = True  # the add's long leg fills 0.33, its short leg only 0.325
    report = world.cycle(START + timedelta(hours=1), 40)

    pair = world.only_pair()
    assert pair.in_progress == ()
    assert pair.naked is None
    assert report.entries_opened == ((pair.pair_id, 2),)
    assert [e.qty for e in pair.entries] == [Decimal("0.33"), Decimal("0.32")]
    unwound: list[LegNote] = world.events_of(PairEventKind.LEG_UNWOUND)
    assert sorted((n.leg, n.qty) for n in unwound) == [(Leg.LONG, Decimal("0.01")), (Leg.SHORT, Decimal("0.005"))]
    assert pair.long.held == pair.short.held == Decimal("0.65")
    assert world.venue_qty() == (Decimal("0.65"), Decimal("-0.65"))


def test_a_remainder_below_the_venue_minimum_is_recorded_as_dust_and_closed_with_the_pair(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world(funding_hard_stop=Decimal(5))
    long, _short = reconnect(
        world,
        long=lambda v: ThinsBeforeOpening(
            CoarseMinimum(v, Decimal("0.01")), world.long_emu, Side.BUY, Decimal("0.005")
        ),
    )
    assert world.cycle(START, 20).entries_opened

    long.armed = True  # the add's long leg fills 0.005: too little for a short, too little to sell
    report = world.cycle(START + timedelta(hours=1), 40)

    pair = world.only_pair()
    assert pair.in_progress == ()
    assert report.entries_failed == ((pair.pair_id, 2),)
    assert world.events_of(PairEventKind.LEG_NAKED) == []
    (dust,) = world.events_of(PairEventKind.LEG_DUST)
    assert isinstance(dust, LegNote)
    assert (dust.leg, dust.entry_no, dust.qty) == (Leg.LONG, 2, Decimal("0.005"))
    assert pair.long.held == Decimal("0.335")
    assert pair.short.held == Decimal("0.33")
    assert pair.status is PairStatus.OPEN

    settle_funding(world, Decimal("0.003"))
    report = world.cycle(START + timedelta(hours=8), 40, signal=False)
    assert report.exits_started == ((pair.pair_id, ExitReason.FUNDING_HARD_STOP),)
    (note,) = world.events_of(PairEventKind.EXIT_STARTED)
    assert isinstance(note, ExitNote)
    assert world.only_pair().status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)
