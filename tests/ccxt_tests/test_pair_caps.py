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
    LONG_VENUE,
    SHORT_VENUE,
    START,
    EngineVenue,
    PairWorld,
    engine_venues,
    pair_config,
    pair_limits,
    pair_plugins,
)
from ccxt_tests.venues import ETH, set_book
from tradekit.decision.context import MarketSnapshot, TierState
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.reasons import BuyAction, CheckOutcome, ReasonCode
from tradekit.decision.verdict import BuyDecision, Check
from tradekit.ledger.store import Ledger
from tradekit.testing.builders import DEFAULT_NOW, make_context, make_position
from tradekit_venue_ccxt.pairs import features as f
from tradekit_venue_ccxt.pairs.models import PairSignal, SignalStatus
from tradekit_venue_ccxt.pairs.rules import PAIR_RULES
from tradekit_venue_ccxt.pairs.store import PairStore
from tradekit_venue_ccxt.pairs.trader import CycleReport, PairTrader, SignalOutcome

pytestmark = pytest.mark.timeout(300)

RULE_CAPS = "ccxt_pair_account_caps"
MID = Decimal(3000)
EQUITY = Decimal(20000)
KEY = "binanceusdm>bybit:ETH/USDT:USDT"
TICK = Decimal("0.01")
BPS = Decimal("0.0001")
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
    set_book(world.long_emu, ETH, MID)
    set_book(world.short_emu, ETH, MID * (1 + Decimal(spread_bps) / 10000))
    assert world.trader is not None
    world.trader.submit_signal(world.signal(at), at)
    report: CycleReport = world.trader.run_cycle(at)
    (outcome,) = report.signals
    return outcome


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


def figures(*, held: Decimal, add: Decimal) -> dict[str, Decimal]:
    return {
        f.SPREAD: 40 * BPS,
        f.INITIAL_SPREAD: 20 * BPS,
        f.TRIGGER_MULTIPLIER: Decimal("1.5"),
        f.TOTAL_NOTIONAL: held,
        f.ADD_NOTIONAL: add,
        f.MAX_TOTAL_NOTIONAL: Decimal(100_000),
        f.SIGNAL_AGE_SECONDS: Decimal(60),
        f.SIGNAL_MAX_AGE_SECONDS: Decimal(900),
        f.LONG_SLIPPAGE_BPS: Decimal(1),
        f.SHORT_SLIPPAGE_BPS: Decimal(1),
        f.MAX_SLIPPAGE_BPS: Decimal(10),
        f.LONG_BOOK_FILL: Decimal(1),
        f.SHORT_BOOK_FILL: Decimal(1),
        f.ORDER_QTY: Decimal("0.33"),
        f.MIN_ORDER_QTY: Decimal("0.01"),
        f.CONFLICTING_PAIRS: Decimal(0),
        f.LONG_BOOK_AGE_SECONDS: Decimal("0.2"),
        f.SHORT_BOOK_AGE_SECONDS: Decimal("0.3"),
        f.MAX_BOOK_AGE_SECONDS: Decimal(5),
        f.FAILED_ENTRIES: Decimal(0),
        f.ENTRY_COOLDOWN_SECONDS: Decimal(0),
        f.ENTRY_COOLDOWN_LEFT_SECONDS: Decimal(0),
    }


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
    market = MarketSnapshot(price=MID, as_of=DEFAULT_NOW, features=figures(held=Decimal(990), add=Decimal(990)))
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


def quote(venue: EngineVenue, mid: Decimal) -> None:
    mid = mid.quantize(TICK)
    venue.engine.set_order_book(
        ETH,
        bids=[(mid - TICK * k, Decimal(50)) for k in range(1, 4)],
        asks=[(mid + TICK * k, Decimal(50)) for k in range(1, 4)],
    )
    venue.engine.set_mark_price(ETH, mid)


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
    venues = engine_venues()
    long_venue, short_venue = venues[LONG_VENUE], venues[SHORT_VENUE]
    assert isinstance(long_venue, EngineVenue)
    assert isinstance(short_venue, EngineVenue)
    long_venue.engine.set_balance(Decimal(balances[0]))
    short_venue.engine.set_balance(Decimal(balances[1]))
    ledger = Ledger.open("sqlite://")
    store = PairStore.open("sqlite://")
    trader = PairTrader(
        config=config,
        venues=venues,
        ledger=ledger,
        store=store,
        limits=limits,
        plugins=pair_plugins(),
        order_poll_interval_s=0,
        sleep=lambda _s: None,
    )
    try:
        for step, spread in enumerate(spreads_bps):
            now = START + timedelta(hours=step)
            quote(long_venue, MID)
            quote(short_venue, MID * (1 + Decimal(spread) / 10_000))
            # Fees only lower equity once the cycle trades: the trader decided on no more than this.
            equity = long_venue.get_account().equity + short_venue.get_account().equity
            signal = PairSignal(
                event_id="evt", symbol=ETH, long_venue=LONG_VENUE, short_venue=SHORT_VENUE, generated_at=now
            )
            trader.submit_signal(signal, now)
            trader.run_cycle(now)

            held = sum((p.total_notional for p in store.pairs() if p.is_live), Decimal(0))
            assert held <= equity * cap_pct / 100
    finally:
        store.close()
        ledger.close()
