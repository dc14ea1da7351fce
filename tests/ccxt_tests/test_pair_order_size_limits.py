"""Leg orders stay within each venue's largest market order.

A venue refuses a market order above its ``limits.market.max`` (Binance's MARKET_LOT_SIZE,
Bybit's ``maxMktOrderQty``). A pair that scaled in holds several entries per leg, so closing
a leg in one order can need more than its venue takes in one order, while the other venue,
with a larger limit, closes its leg at once: the refused leg would be left alone, refused
again every cycle. A close is therefore sent in orders no larger than the venue's limit. An
entry too large for either venue's market order is not sent at all: its long leg would fill
and the short be refused, a paid round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxt_tests.pair_world import START, PairWorld, only_outcome, pair_config, pair_limits
from ccxt_tests.venues import ETH
from emulators._perp_book import InstrumentSpec
from emulators.binance_usdm import BINANCE_USDM_INSTRUMENTS, BinanceUsdmEmulator
from emulators.bybit import BYBIT_LINEAR_INSTRUMENTS, BybitEmulator
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit_venue_ccxt.pairs.models import ExitReason, PairStatus, SignalStatus

pytestmark = pytest.mark.timeout(60)

ZERO = Decimal(0)
QTY = Decimal("0.33")  # one entry of 1000 USDT at 3000


def limited(specs: tuple[InstrumentSpec, ...], max_market: Decimal | None) -> tuple[InstrumentSpec, ...]:
    """The venue's instruments with ETH's largest market order set to ``max_market`` (if given)."""
    if max_market is None:
        return specs
    return tuple(dataclasses.replace(s, max_market_qty=max_market) if s.symbol == ETH else s for s in specs)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., PairWorld]]:
    worlds: list[PairWorld] = []

    def make(*, long_max: Decimal | None = None, short_max: Decimal | None = None, **config: Any) -> PairWorld:
        directory = tmp_path / f"world-{len(worlds)}"
        directory.mkdir()
        world = PairWorld(
            directory=directory,
            config=pair_config(min_interval_minutes=0, **config),
            limits=pair_limits(),
            long_emu=BinanceUsdmEmulator(instruments=limited(BINANCE_USDM_INSTRUMENTS, long_max)).start(),
            short_emu=BybitEmulator(instruments=limited(BYBIT_LINEAR_INSTRUMENTS, short_max)).start(),
        )
        world.connect()
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


def test_a_close_larger_than_the_long_venues_market_limit_closes_both_legs_in_smaller_orders(
    make_world: Callable[..., PairWorld],
) -> None:
    world = make_world(long_max=Decimal("0.5"))
    world.cycle(START, 20)
    world.cycle(START + timedelta(minutes=1), 40)  # add #1: 40 bps >= 20 x 1.5
    pair = world.only_pair()
    assert pair.entry_count == 2
    assert world.venue_qty() == (2 * QTY, -2 * QTY)  # 0.66 long: more than Binance's 0.5 per market order

    world.cycle(START + timedelta(days=7, minutes=1), signal=False)  # max hold

    pair = world.only_pair()
    assert pair.exit is not None
    assert pair.exit.reason is ExitReason.MAX_HOLD
    assert world.venue_qty() == (ZERO, ZERO)
    assert pair.status is PairStatus.CLOSED
    long_closes = [o for o in world.long_emu.orders(ETH) if o.reduce_only]
    assert long_closes
    assert all(o.quantity <= Decimal("0.5") for o in long_closes)


@pytest.mark.parametrize("leg", ["long", "short"])
def test_an_entry_larger_than_a_venues_market_limit_is_not_sent(make_world: Callable[..., PairWorld], leg: str) -> None:
    world = make_world(**{f"{leg}_max": Decimal("0.3")})

    outcome = only_outcome(world.cycle(START, 20))

    assert outcome.status is SignalStatus.SKIPPED
    assert outcome.action is BuyAction.SKIP
    assert ReasonCode.EXECUTION_INFEASIBLE in outcome.reasons
    assert "0.3" in outcome.detail
    assert world.long_emu.create_order_request_count == 0
    assert world.short_emu.create_order_request_count == 0
    assert world.venue_qty() == (ZERO, ZERO)
