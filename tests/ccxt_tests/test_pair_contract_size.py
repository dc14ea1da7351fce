"""tradekit's account caps see a pair leg's notional whatever the venue's contract size.

The core values a position as quantity x price, with prices per base unit. A venue that trades
a perpetual in contracts of several base units (OKX: one DOGE-USDT-SWAP contract is 1000 DOGE)
must therefore reach ``evaluate_buy`` in base units, or the allocation cap and the policy's
max position size see a fraction of the exposure and let adds through them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ccxt_tests.contract_venue import ContractSized
from ccxt_tests.pair_world import START, PairWorld, only_outcome, pair_config, pair_limits
from ccxt_tests.venues import sync_venue
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit_venue_ccxt.pairs.models import SignalStatus

pytestmark = pytest.mark.timeout(60)

MID = Decimal(3000)
CONTRACT = Decimal(10)  # ETH per contract
EQUITY = Decimal(20000)  # both venues' accounts


@pytest.fixture(params=[Decimal(6)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PairWorld]:
    cap_pct: Decimal = request.param
    world = PairWorld.start(
        tmp_path, config=pair_config(min_interval_minutes=0), limits=pair_limits(max_allocation_per_symbol_pct=cap_pct)
    )
    world.crash()
    world.connect(
        {
            world.long_venue: ContractSized(sync_venue(world.long_emu, world.long_venue, timeout_ms=1000), CONTRACT),
            world.short_venue: ContractSized(sync_venue(world.short_emu, world.short_venue, timeout_ms=1000), CONTRACT),
        }
    )
    yield world
    world.close()


def position_pct_decided(world: PairWorld) -> Decimal:
    """The share of equity the core valued the position at, in the latest decision on the event."""
    return world.latest_decision().decision().position_pct


# 6% of 20 000 is 1200: one entry of about 990 per leg fits, a second does not.
def test_an_add_past_the_allocation_cap_is_refused_when_a_contract_is_ten_units(world: PairWorld) -> None:
    assert only_outcome(world.cycle(START, 20)).action is BuyAction.ENTER_NEW
    pair = world.only_pair()
    assert pair.long.held == Decimal("0.033")  # contracts: 0.33 ETH, about 990 USDT
    assert world.venue_qty()[0] == Decimal("0.33")
    real_pct = pair.total_notional / EQUITY * 100
    assert real_pct < 6 < 2 * real_pct

    outcome = only_outcome(world.cycle(START + timedelta(minutes=1), 40))

    assert outcome.status is SignalStatus.SKIPPED
    assert ReasonCode.ALLOCATION_CAP in outcome.reasons
    assert world.only_pair().entry_count == 1
    assert world.venue_qty()[0] == Decimal("0.33")
    # The core valued the long leg at its notional (at the book's ask), not at a tenth of it.
    assert abs(position_pct_decided(world) - real_pct) < Decimal("0.01")


@pytest.mark.parametrize("world", [Decimal(40)], indirect=True)
def test_an_add_within_the_caps_goes_through_when_a_contract_is_ten_units(world: PairWorld) -> None:
    world.cycle(START, 20)

    outcome = only_outcome(world.cycle(START + timedelta(minutes=1), 40))

    assert outcome.action is BuyAction.SCALE_IN  # ledger and broker agree, both in base units
    pair = world.only_pair()
    assert pair.entry_count == 2
    assert pair.long.held == pair.short.held == Decimal("0.066")
    assert world.venue_qty() == (Decimal("0.66"), Decimal("-0.66"))
