"""A pair entry or add is counted against the account's caps before it is sent.

The core's cap rules only stop a buy once the position already sits at or above a cap, and a
pair entry is not sized by the core (its size is fixed by the pair config), so the pair rule
counts the entry's own notional: what the long leg holds plus this entry must stay within the
allocation cap (the stricter of the settings' and the policy's), the max position % of the
account, the policy's max position size and the symbol's tier cap (SKIP with that cap's
reason code). Equity is both venues' accounts added up: 10 000 USDT each in these worlds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_tests.pair_world import (
    BPS,
    START,
    PairWorld,
    engine_world,
    only_outcome,
    pair_config,
    pair_figures,
    pair_limits,
    pair_plugins,
)
from ccxt_tests.venues import ETH
from tradekit.decision.context import MarketSnapshot, TierState
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.reasons import BuyAction, CheckOutcome, ReasonCode
from tradekit.decision.verdict import BuyDecision, Check
from tradekit.testing.builders import DEFAULT_NOW, make_context, make_position
from tradekit_venue_ccxt.pairs import features as f
from tradekit_venue_ccxt.pairs.models import SignalStatus
from tradekit_venue_ccxt.pairs.rules import PAIR_RULES
from tradekit_venue_ccxt.pairs.trader import SignalOutcome

pytestmark = pytest.mark.timeout(300)

RULE_CAPS = "ccxt_pair_account_caps"
MID = Decimal(3000)
EQUITY = Decimal(20000)
KEY = "binanceusdm>bybit:ETH/USDT:USDT"
WorldFactory = Callable[..., PairWorld]


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[WorldFactory]:
    worlds: list[PairWorld] = []

    def make(**limits: Any) -> PairWorld:
        directory = tmp_path / f"world-{len(worlds)}"
        directory.mkdir()
        world = PairWorld.start(directory, config=pair_config(min_interval_minutes=0), limits=pair_limits(**limits))
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


def cycle(world: PairWorld, at: datetime, spread_bps: int) -> SignalOutcome:
    return only_outcome(world.cycle(at, spread_bps))


def fills(world: PairWorld) -> int:
    return len(world.long_emu.engine.fills(ETH)) + len(world.short_emu.engine.fills(ETH))


def test_the_caps_check_is_one_of_the_checks_every_pair_decision_carries() -> None:
    assert RULE_CAPS in PAIR_RULES


# 7% of 20 000 is 1400: the first entry (0.33 ETH, about 990 per leg) fits, a second does not.
def test_an_add_that_would_pass_the_allocation_cap_is_refused_and_no_order_is_sent(make_world: WorldFactory) -> None:
    world = make_world(max_allocation_per_symbol_pct=Decimal(7))
    assert cycle(world, START, 20).action is BuyAction.ENTER_NEW
    pair = world.only_pair()
    assert pair.total_notional < EQUITY * 7 / 100 < 2 * pair.total_notional
    sent = fills(world)

    outcome = cycle(world, START + timedelta(minutes=1), 40)

    assert outcome.status is SignalStatus.SKIPPED
    assert ReasonCode.ALLOCATION_CAP in outcome.reasons
    assert world.only_pair().entry_count == 1
    assert world.venue_qty() == (Decimal("0.33"), Decimal("-0.33"))
    assert fills(world) == sent


def test_an_add_that_fits_under_the_allocation_cap_still_goes(make_world: WorldFactory) -> None:
    world = make_world(max_allocation_per_symbol_pct=Decimal(10))  # 2000: two entries of about 990
    cycle(world, START, 20)

    outcome = cycle(world, START + timedelta(minutes=1), 40)

    assert outcome.action is BuyAction.SCALE_IN
    assert world.only_pair().entry_count == 2
    assert world.venue_qty() == (Decimal("0.66"), Decimal("-0.66"))


def test_a_first_entry_larger_than_the_allocation_cap_is_not_sent(make_world: WorldFactory) -> None:
    world = make_world(max_allocation_per_symbol_pct=Decimal(4))  # 800, below one entry

    outcome = cycle(world, START, 20)

    assert outcome.status is SignalStatus.SKIPPED
    assert ReasonCode.ALLOCATION_CAP in outcome.reasons
    assert world.pairs() == []
    assert world.venue_qty() == (Decimal(0), Decimal(0))
    assert fills(world) == 0


def test_an_add_past_the_max_position_pct_of_the_account_is_refused_with_its_code(make_world: WorldFactory) -> None:
    world = make_world(max_position_pct_of_account=Decimal(7))
    cycle(world, START, 20)

    outcome = cycle(world, START + timedelta(minutes=1), 40)

    assert outcome.status is SignalStatus.SKIPPED
    assert ReasonCode.MAX_POSITION_PCT_OF_ACCOUNT in outcome.reasons
    assert world.only_pair().entry_count == 1
    assert world.venue_qty() == (Decimal("0.33"), Decimal("-0.33"))


# --- the rule on its own, with caps a pair account does not set by default -----------------


def decide_add(*, equity: Decimal, tier: TierState | None = None, policy_cap_pct: Decimal | None = None) -> BuyDecision:
    """One held entry of 0.33 ETH at 3000 (990), an add of 990 more; settings' caps at 40%."""
    position = make_position(KEY, strategy="ccxt-pair", entries=[(timedelta(hours=1), MID, Decimal("0.33"))])
    policy = attrs.evolve(pair_config().scaling_policy(), max_allocation_pct=policy_cap_pct)
    context = make_context(
        symbol=KEY,
        strategy="ccxt-pair",
        policy=policy,
        limits=pair_limits(),
        price=MID,
        equity=equity,
        position=position,
        tier=tier,
    )
    held_and_add = pair_figures(
        **{
            f.SPREAD: 40 * BPS,
            f.INITIAL_SPREAD: 20 * BPS,
            f.TOTAL_NOTIONAL: Decimal(990),
            f.ADD_NOTIONAL: Decimal(990),
            f.MAX_TOTAL_NOTIONAL: Decimal(100_000),
        }
    )
    market = MarketSnapshot(price=MID, as_of=DEFAULT_NOW, features=held_and_add)
    return evaluate_buy(attrs.evolve(context, market=market), plugins=pair_plugins())


def caps_check(decision: BuyDecision) -> Check:
    (found,) = [c for c in decision.checks if c.rule == RULE_CAPS]
    return found


def test_the_policy_allocation_cap_counts_when_it_is_stricter_than_the_settings() -> None:
    # 5% of 30 000 is 1500: 990 held fits, 1980 does not; the settings' 40% would allow it.
    decision = decide_add(equity=Decimal(30_000), policy_cap_pct=Decimal(5))

    check = caps_check(decision)
    assert (check.outcome, check.reason) == (CheckOutcome.SKIP, ReasonCode.ALLOCATION_CAP)
    assert decision.action is BuyAction.SKIP


def test_an_add_past_the_symbols_tier_cap_is_refused_with_the_tier_code() -> None:
    # The tier already holds 2500 of its 10% of 30 000 (3000); the settings' caps allow the add.
    tier = TierState(tier="majors", exposure=Decimal(2500), cap_pct=Decimal(10))

    check = caps_check(decide_add(equity=Decimal(30_000), tier=tier))

    assert (check.outcome, check.reason) == (CheckOutcome.SKIP, ReasonCode.TIER_CAPACITY)


def test_an_add_within_every_cap_passes_the_caps_check() -> None:
    tier = TierState(tier="majors", exposure=Decimal(990), cap_pct=Decimal(10))

    decision = decide_add(equity=Decimal(30_000), tier=tier, policy_cap_pct=Decimal(7))  # 2100, 3000

    assert caps_check(decision).outcome is CheckOutcome.PASS
    assert decision.action is BuyAction.SCALE_IN


# --- whatever the accounts and caps, the long leg stays within them -------------------------


# Each example trades a pair through several adds; 30 keep the run short.
@settings(max_examples=30, deadline=None)
@given(
    balances=st.tuples(st.integers(min_value=2000, max_value=40_000), st.integers(min_value=2000, max_value=40_000)),
    allocation_pct=st.integers(min_value=1, max_value=40),
    position_pct=st.integers(min_value=1, max_value=40),
    entry_notional=st.integers(min_value=100, max_value=3000),
    spreads_bps=st.lists(st.integers(min_value=10, max_value=400), min_size=2, max_size=8),
)
def test_the_long_legs_notional_at_entry_prices_never_passes_the_account_caps(
    balances: tuple[int, int], allocation_pct: int, position_pct: int, entry_notional: int, spreads_bps: list[int]
) -> None:
    config = pair_config(
        entry_notional=Decimal(entry_notional),
        max_total_notional=Decimal(entry_notional * 6),
        max_entries=6,
        trigger_multiplier=Decimal("1.1"),
        min_interval_minutes=0,
    )
    limits = pair_limits(
        max_allocation_per_symbol_pct=Decimal(allocation_pct), max_position_pct_of_account=Decimal(position_pct)
    )
    cap_pct = Decimal(min(allocation_pct, position_pct))
    with engine_world(config, limits) as world:
        world.long.engine.set_balance(Decimal(balances[0]))
        world.short.engine.set_balance(Decimal(balances[1]))
        for step, spread in enumerate(spreads_bps):
            now = START + timedelta(hours=step)
            world.quote(MID, MID * (1 + Decimal(spread) / 10_000))
            # Fees only lower equity once the cycle trades: the trader decided on no more than this.
            equity = world.long.get_account().equity + world.short.get_account().equity
            world.cycle(now)

            held = sum((p.total_notional for p in world.store.pairs() if p.is_live), Decimal(0))
            assert held <= equity * cap_pct / 100
