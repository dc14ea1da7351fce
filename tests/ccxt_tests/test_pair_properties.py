"""Whatever the spread does, a pair never holds more entries or notional than allowed, and
every add was made at or beyond its trigger, measured from the initial entry's spread.

Each example runs a whole pair life on in-process venues (the emulators' matching engine
without HTTP) and in-memory databases. Whatever two legs of an entry filled, on whatever
steps and minimums their venues trade, matching them leaves both holding the same quantity.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_tests.pair_world import START, engine_world, pair_config
from ccxt_tests.venues import ETH
from tradekit_venue_ccxt.pairs.models import Leg
from tradekit_venue_ccxt.pairs.spread import next_trigger
from tradekit_venue_ccxt.pairs.trader import PairTrader
from tradekit_venue_ccxt.providers import PerpMarket

pytestmark = pytest.mark.timeout(300)

LONG_MID = Decimal(3000)


# Each example trades a full pair life; 40 keep the run short while covering the space.
@settings(max_examples=40, deadline=None)
@given(
    spreads_bps=st.lists(st.integers(min_value=-20, max_value=300), min_size=3, max_size=14),
    max_entries=st.integers(min_value=2, max_value=5),
    multiplier=st.sampled_from([Decimal("1.2"), Decimal("1.5"), Decimal(2)]),
    entries_of_room=st.integers(min_value=1, max_value=6),
)
def test_entries_stay_within_max_entries_and_notional_and_each_add_reaches_its_trigger(
    spreads_bps: list[int], max_entries: int, multiplier: Decimal, entries_of_room: int
) -> None:
    config = pair_config(
        max_entries=max_entries,
        trigger_multiplier=multiplier,
        max_total_notional=Decimal(1000 * entries_of_room),
        min_interval_minutes=0,
    )
    with engine_world(config) as world:
        for step, spread in enumerate(spreads_bps):
            now = START + timedelta(hours=step)
            world.quote(LONG_MID, LONG_MID * (1 + Decimal(spread) / 10_000))
            world.cycle(now)

            for pair in world.store.pairs():
                assert pair.entry_count <= max_entries
                assert pair.total_notional <= config.max_total_notional
                assert pair.long.held == pair.short.held
                if not pair.entries:
                    continue
                initial = pair.entries[0].spread
                for k, (entry, snapshot) in enumerate(zip(pair.entries[1:], pair.snapshots[1:], strict=True), 1):
                    trigger = next_trigger(initial, multiplier, k)
                    assert snapshot.trigger == trigger
                    assert snapshot.spread >= trigger
                    assert entry.spread >= trigger
            live = [p for p in world.store.pairs() if p.is_live]
            held = sum((p.long.held for p in live), Decimal(0))
            assert world.long.engine.position(ETH).qty == held
            assert world.short.engine.position(ETH).qty == -held


def _market(step: Decimal, min_steps: int) -> PerpMarket:
    return PerpMarket(
        symbol=ETH,
        venue_symbol="ETHUSDT",
        base="ETH",
        quote="USDT",
        settle="USDT",
        contract_size=Decimal(1),
        amount_step=step,
        price_step=Decimal("0.01"),
        min_qty=step * min_steps,
    )


_STEPS = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("0.1"), Decimal(1)])


@settings(max_examples=500, deadline=None)
@given(
    long_step=_STEPS,
    short_step=_STEPS,
    long_min=st.integers(min_value=1, max_value=20),
    short_min=st.integers(min_value=1, max_value=20),
    long_filled=st.integers(min_value=0, max_value=5000),
    short_filled=st.integers(min_value=0, max_value=5000),
)
def test_matching_an_entrys_legs_leaves_both_holding_the_same_with_only_sendable_unwinds(
    long_step: Decimal, short_step: Decimal, long_min: int, short_min: int, long_filled: int, short_filled: int
) -> None:
    markets = {Leg.LONG: _market(long_step, long_min), Leg.SHORT: _market(short_step, short_min)}
    nets = {Leg.LONG: long_filled * long_step, Leg.SHORT: short_filled * short_step}
    trader = SimpleNamespace(_leg_markets=lambda _pair: markets)  # the venues' rules, nothing else

    unwinds, dust = PairTrader._matching(trader, None, nets)  # type: ignore[arg-type]

    kept = {leg: nets[leg] - unwinds.get(leg, Decimal(0)) - dust.get(leg, Decimal(0)) for leg in Leg}
    assert kept[Leg.LONG] == kept[Leg.SHORT] >= 0  # hedged: what both keep is the same
    common = max(long_step, short_step)
    assert kept[Leg.LONG] % common == 0  # on a step both venues trade
    for leg, qty in unwinds.items():  # every unwind is an order its venue accepts
        market = markets[leg]
        assert qty > 0
        assert qty % market.amount_step == 0
        assert qty >= market.min_qty
    for leg, qty in dust.items():  # dust is only what no order of its venue could take
        market = markets[leg]
        assert qty > 0
        assert qty % market.amount_step != 0 or qty < market.min_qty
