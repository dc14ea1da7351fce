"""A tier's allocation cap holds with buys still in flight on the tier's other symbols.

A buy is judged while orders on other symbols of its tier may still be working (resting
slices, a request whose answer was lost): what they have yet to buy counts against the tier
as what is already held does. (A buy on a symbol that has an order in flight is held back by
``pending_orders``, so the single-symbol caps cannot be overrun by its own orders.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit import ReasonCode
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, SliceTiming
from tradekit.config import AllocationSettings, OrderGuardSettings, ScaleInSettings, Settings
from tradekit.config.settings import TierSettings
from tradekit.domain import OrderRequest, Side
from tradekit.ledger import Ledger
from tradekit.ledger.buffered import BufferedLedger

from .test_pipeline import OPEN, Pyramid, Single, Trading, make_trading

TIER = ("KO", "PFE", "XOM")
PRICES = {"KO": Decimal(60), "PFE": Decimal(28), "XOM": Decimal(100)}


def tiered(cap: Decimal, per_symbol_pct: Decimal = Decimal(5)) -> Settings:
    return Settings(
        allocation=AllocationSettings(
            tiered=True,
            tiers={"core": TierSettings(allocation_pct=cap, cap_pct=cap, symbols=TIER)},
            max_allocation_per_symbol_pct=per_symbol_pct,
        ),
        orders=OrderGuardSettings(
            daily_order_limit=1000, order_cooldown_minutes=0, one_signal_per_symbol_per_day=False
        ),
        scale_in=ScaleInSettings(min_time_between_entries_minutes=0),
    )


def trading(kind: str, tmp_path: Path, settings: Settings, slices: int, paper: PaperBroker | None = None) -> Trading:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = (BufferedLedger if kind == "buffered" else Ledger).open(url, for_trading=True)
    config = PaperBrokerConfig(fill_slices=slices, slice_timing=SliceTiming.PER_PRICE_UPDATE)
    t = make_trading(tmp_path, settings=settings, config=config, ledger=ledger, paper=paper)
    t.broker.set_price("XOM", PRICES["XOM"], OPEN - timedelta(minutes=5))
    return t


def market_moves(t: Trading, times: int = 1) -> None:
    """Prices tick (unchanged): each resting slice of every order fills."""
    for _ in range(times):
        t.clock.now += timedelta(minutes=1)
        for symbol in TIER:
            t.broker.set_price(symbol, PRICES[symbol], t.clock.now)


def tier_exposure(t: Trading) -> tuple[Decimal, Decimal]:
    """(what the tier's symbols are worth at the broker, the account's equity)."""
    held = sum((p.market_value() for p in t.broker.get_positions() if p.symbol in TIER), Decimal(0))
    return held, t.broker.get_account().equity


def buy(t: Trading, symbol: str, strategy: type[Pyramid] | type[Single] = Single) -> None:
    t.clock.now += timedelta(seconds=1)
    t.pipeline.process_buy(t.signal(symbol, price=str(PRICES[symbol])), strategy, t.market(symbol))


@pytest.mark.parametrize("kind", ["committing", "buffered"])
def test_buys_in_flight_on_other_symbols_count_against_the_tier_cap(tmp_path: Path, kind: str) -> None:
    t = trading(kind, tmp_path, tiered(Decimal(12)), slices=3)
    t.broker.seed_position("KO", Decimal(140), Decimal(60))  # ~7.7 % of equity, adopted
    t.reconcile()
    buy(t, "PFE")  # fills a third now, the rest over the next price ticks
    buy(t, "XOM")  # judged while two thirds of the PFE buy are still working
    market_moves(t, 3)
    t.pipeline.apply_events()
    t.ledger.close()

    held, equity = tier_exposure(t)
    assert held <= equity * Decimal("0.12")


@pytest.mark.parametrize("kind", ["committing", "buffered"])
def test_a_buy_whose_request_may_be_at_the_broker_counts_against_the_tier_until_settled(
    tmp_path: Path, kind: str
) -> None:
    t = trading(kind, tmp_path, tiered(Decimal(5)), slices=1)
    t.broker.seed_position("KO", Decimal(50), PRICES["KO"])  # ~2.9 % of equity, adopted
    t.reconcile()
    t.broker.faults.arm(Fault.LOST_REQUEST, symbol="PFE")  # no answer: it may be at the broker
    buy(t, "PFE")
    buy(t, "XOM")

    with t.ledger.reading() as tx:
        (unsettled,) = tx.pending_intents()
        bought = [i for i in tx.order_intents() if i.side is Side.BUY]
    t.ledger.close()
    assert unsettled.intent.symbol == "PFE"
    committed = 50 * PRICES["KO"] + sum((i.qty * PRICES[i.symbol] for i in bought if i.qty is not None), Decimal(0))
    assert committed <= t.broker.get_account().equity * Decimal("0.05")


def test_after_a_restart_a_buy_in_flight_that_nothing_prices_fills_its_tier(tmp_path: Path) -> None:
    # (A replay's buffered ledger is never restarted: it always starts a new file.)
    t = trading("committing", tmp_path, tiered(Decimal(12)), slices=1)
    t.reconcile()
    t.broker.faults.arm(Fault.LOST_REQUEST, symbol="PFE")  # no answer, no fill, no position
    buy(t, "PFE")
    t.ledger.close()
    # A new process: the price the PFE buy was decided at went with the old one.
    again = trading("committing", tmp_path, tiered(Decimal(12)), slices=1, paper=t.broker)
    again.clock.now = t.clock.now
    outcome = again.pipeline.process_buy(again.signal("XOM", price="100"), Single, again.market("XOM"))
    again.ledger.close()

    assert outcome.decision is not None
    assert ReasonCode.TIER_CAPACITY in outcome.decision.reasons
    assert outcome.intent is None


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["committing", "buffered"]),
    slices=st.integers(min_value=1, max_value=4),
    cap=st.sampled_from([Decimal(3), Decimal(5), Decimal(8), Decimal(12)]),
    seeded=st.integers(min_value=0, max_value=120),
    steps=st.lists(
        st.tuples(st.sampled_from(TIER), st.integers(min_value=0, max_value=2), st.booleans()), min_size=1, max_size=10
    ),
)
def test_a_tier_never_holds_more_than_its_cap_whatever_is_in_flight(
    kind: str, slices: int, cap: Decimal, seeded: int, steps: Sequence[tuple[str, int, bool]]
) -> None:
    # Buys and scale-ins across the tier, with the market ticking (resting slices filling)
    # and events applied at random between them; prices never move, so the cap, checked at
    # each decision, must still hold once every order has filled.
    with tempfile.TemporaryDirectory() as tmp:
        t = trading(kind, Path(tmp), tiered(cap, per_symbol_pct=Decimal(10)), slices=slices)
        if seeded:
            t.broker.seed_position("KO", Decimal(seeded), PRICES["KO"])
        t.reconcile()
        try:
            for symbol, ticks, apply_events in steps:
                buy(t, symbol, Pyramid)
                market_moves(t, ticks)
                if apply_events:
                    t.pipeline.apply_events()
            market_moves(t, slices)
            t.pipeline.apply_events()
            held, equity = tier_exposure(t)
            seeded_value = Decimal(seeded) * PRICES["KO"]
            # A tier already over its cap before tradekit bought anything is not tradekit's doing.
            assert held <= max(equity * cap / 100, seeded_value)
        finally:
            t.ledger.close()


def test_a_buy_in_money_working_at_the_broker_counts_what_it_has_left_to_spend_after_the_price_moved(
    tmp_path: Path,
) -> None:
    # Someone (not tradekit) buys PFE for 6,000 in three slices; the price moves from 28 to 42
    # between them. What that order still buys is its money left: 6,000 less what its fills
    # cost, not less what they are worth now.
    t = trading("committing", tmp_path, tiered(Decimal(12), per_symbol_pct=Decimal(10)), slices=3)
    t.broker.seed_position("KO", Decimal(2000) / PRICES["KO"], PRICES["KO"])
    t.reconcile()
    t.broker.submit_order(
        OrderRequest(client_order_id="by-hand-1", symbol="PFE", side=Side.BUY, notional=Decimal(6000))
    )  # a third fills now at 28
    t.clock.now += timedelta(minutes=1)
    t.broker.set_price("PFE", Decimal(42), t.clock.now)  # another third fills, at 42
    buy(t, "XOM")
    for _ in range(3):  # every slice of both orders fills, prices unchanged from here
        t.clock.now += timedelta(minutes=1)
        t.broker.set_price("PFE", Decimal(42), t.clock.now)
        t.broker.set_price("XOM", PRICES["XOM"], t.clock.now)
    t.pipeline.apply_events()
    t.ledger.close()

    assert not t.broker.get_open_orders()
    held, equity = tier_exposure(t)
    assert held <= equity * Decimal("0.12")
