"""Whatever the spread does, a pair never holds more entries or notional than allowed, and
every add was made at or beyond its trigger, measured from the initial entry's spread.

Each example runs a whole pair life on in-process venues (the emulators' matching engine
without HTTP) and in-memory databases.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_tests.pair_world import (
    LONG_VENUE,
    SHORT_VENUE,
    START,
    EngineVenue,
    engine_venues,
    pair_config,
    pair_limits,
    pair_plugins,
)
from ccxt_tests.venues import ETH
from tradekit.ledger.store import Ledger
from tradekit_venue_ccxt.pairs.models import PairSignal
from tradekit_venue_ccxt.pairs.spread import next_trigger
from tradekit_venue_ccxt.pairs.store import PairStore
from tradekit_venue_ccxt.pairs.trader import PairTrader

pytestmark = pytest.mark.timeout(300)

LONG_MID = Decimal(3000)
TICK = Decimal("0.01")


def quote(venue: EngineVenue, mid: Decimal) -> None:
    mid = mid.quantize(TICK)
    venue.engine.set_order_book(
        ETH,
        bids=[(mid - TICK * k, Decimal(50)) for k in range(1, 4)],
        asks=[(mid + TICK * k, Decimal(50)) for k in range(1, 4)],
    )
    venue.engine.set_mark_price(ETH, mid)


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
    venues = engine_venues()
    long_venue, short_venue = venues[LONG_VENUE], venues[SHORT_VENUE]
    assert isinstance(long_venue, EngineVenue)
    assert isinstance(short_venue, EngineVenue)
    ledger = Ledger.open("sqlite://")
    store = PairStore.open("sqlite://")
    trader = PairTrader(
        config=config,
        venues=venues,
        ledger=ledger,
        store=store,
        limits=pair_limits(),
        plugins=pair_plugins(),
        order_poll_interval_s=0,
        sleep=lambda _s: None,
    )
    try:
        for step, spread in enumerate(spreads_bps):
            now = START + timedelta(hours=step)
            quote(long_venue, LONG_MID)
            quote(short_venue, LONG_MID * (1 + Decimal(spread) / 10_000))
            signal = PairSignal(
                event_id="evt", symbol=ETH, long_venue=LONG_VENUE, short_venue=SHORT_VENUE, generated_at=now
            )
            trader.submit_signal(signal, now)
            trader.run_cycle(now)

            for pair in store.pairs():
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
            live = [p for p in store.pairs() if p.is_live]
            held = sum((p.long.held for p in live), Decimal(0))
            assert long_venue.engine.position(ETH).qty == held
            assert short_venue.engine.position(ETH).qty == -held
    finally:
        store.close()
        ledger.close()
