"""Guards on when a Type B pair may trade at all: books too old to trust, and a pair key whose
entries keep failing.

A book is judged on its own timestamp (``OrderBook.as_of``) against the venue's clock; a book
older than ``max_book_age_seconds`` takes no entry or add that cycle. An entry that fails — a
paid round trip on the long leg — makes the pair key wait ``entry_failure_cooldown_minutes``
(doubling with each failure in a row, up to ``entry_failure_cooldown_max_minutes``) before the
next entry there; the wait is read from the pair store's events, so a restart keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxt_tests.pair_world import LONG_VENUE, SHORT_VENUE, START, PairWorld, only_outcome, pair_config
from ccxt_tests.venues import ETH, set_book, sync_venue
from tradekit.config.loading import load_settings
from tradekit.config.settings import SettingsError
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit.decision.trace import trace_text
from tradekit_venue_ccxt.config import load_ccxt_settings
from tradekit_venue_ccxt.execution import CcxtVenue
from tradekit_venue_ccxt.pairs.models import ExitReason, PairStatus, SignalStatus
from tradekit_venue_ccxt.pairs.spread import next_trigger
from tradekit_venue_ccxt.pairs.trader import SignalOutcome
from tradekit_venue_ccxt.providers import OrderBook

pytestmark = pytest.mark.timeout(120)

ZERO = Decimal(0)
LONG_MID = Decimal(3000)
AT_20_BPS = Decimal(3006)
AT_40_BPS = Decimal(3012)
BOOK_FRESHNESS = "ccxt_pair_book_freshness"
ENTRY_COOLDOWN = "ccxt_pair_entry_cooldown"


class FrozenFeed:
    """A venue whose order-book feed froze: once frozen it keeps answering the same book."""

    def __init__(self, inner: CcxtVenue) -> None:
        self.inner = inner
        self.frozen: OrderBook | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def freeze(self, symbol: str) -> None:
        self.frozen = self.inner.order_book(symbol, 50)

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        return self.frozen if self.frozen is not None else self.inner.order_book(symbol, depth)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Any]:
    worlds: list[PairWorld] = []

    def make(**config: Any) -> PairWorld:
        directory = tmp_path / f"world-{len(worlds)}"
        directory.mkdir()
        world = PairWorld.start(directory, config=pair_config(**config))
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.close()


def with_frozen_short_feed(world: PairWorld) -> FrozenFeed:
    short = FrozenFeed(sync_venue(world.short_emu, SHORT_VENUE, timeout_ms=1000))
    world.crash()
    world.connect({LONG_VENUE: sync_venue(world.long_emu, LONG_VENUE, timeout_ms=1000), SHORT_VENUE: short})
    return short


def quote(world: PairWorld, short_mid: Decimal) -> None:
    set_book(world.long_emu, ETH, LONG_MID)
    set_book(world.short_emu, ETH, short_mid)


def decision_trace(world: PairWorld) -> str:
    """The trace of the latest decision recorded on the pair's event."""
    return trace_text(world.latest_decision().trace)


# --------------------------------------------------------------------------------------------
# books too old to trust
# --------------------------------------------------------------------------------------------


def test_a_frozen_short_book_at_a_wide_spread_does_not_drive_a_scale_in(make_world: Any) -> None:
    world: PairWorld = make_world(min_interval_minutes=0)
    short = with_frozen_short_feed(world)
    t = START
    quote(world, AT_20_BPS)
    world.cycle(t)
    assert world.only_pair().entry_count == 1
    # The short venue's feed freezes on a 40 bps book; the market goes back to 20 bps.
    set_book(world.short_emu, ETH, AT_40_BPS)
    short.freeze(ETH)
    set_book(world.short_emu, ETH, AT_20_BPS)
    world.short_emu.advance(timedelta(hours=2))
    world.long_emu.advance(timedelta(hours=2))
    set_book(world.long_emu, ETH, LONG_MID)  # the long venue's book is fresh
    long_orders = world.long_emu.create_order_request_count

    outcome = only_outcome(world.cycle(t + timedelta(hours=2)))

    assert outcome.status is SignalStatus.SKIPPED
    assert outcome.action is BuyAction.SKIP
    assert ReasonCode.MARKET_DATA_UNAVAILABLE in outcome.reasons
    assert BOOK_FRESHNESS in decision_trace(world)
    assert "short venue's book" in outcome.detail
    assert world.only_pair().entry_count == 1
    assert world.long_emu.create_order_request_count == long_orders

    short.frozen = None  # the feed recovers: the real 20 bps is below the trigger
    outcome = only_outcome(world.cycle(t + timedelta(hours=2, minutes=1)))
    assert outcome.status is SignalStatus.SKIPPED
    assert ReasonCode.PRICE_STRUCTURE in outcome.reasons
    assert world.only_pair().entry_count == 1


def test_a_book_older_than_the_max_age_by_the_cycle_clock_holds_the_first_entry_back(make_world: Any) -> None:
    world: PairWorld = make_world(book_clock="cycle", max_book_age_seconds=5)
    for emulator in (world.long_emu, world.short_emu):
        emulator.set_time(START)
    quote(world, AT_20_BPS)
    for emulator in (world.long_emu, world.short_emu):
        emulator.advance(timedelta(seconds=6))  # Binance stamps its book with its last change
    t = START + timedelta(seconds=6)

    outcome = only_outcome(world.cycle(t))

    assert outcome.status is SignalStatus.SKIPPED
    assert ReasonCode.MARKET_DATA_UNAVAILABLE in outcome.reasons
    assert world.pairs() == []
    assert world.long_emu.create_order_request_count == world.short_emu.create_order_request_count == 0

    quote(world, AT_20_BPS)  # a fresh book
    outcome = only_outcome(world.cycle(t + timedelta(seconds=1)))
    assert outcome.status is SignalStatus.ACTED
    assert outcome.action is BuyAction.ENTER_NEW


def test_an_add_that_fills_short_of_its_trigger_records_the_shortfall(make_world: Any) -> None:
    world: PairWorld = make_world(min_interval_minutes=0)
    short = with_frozen_short_feed(world)
    quote(world, AT_20_BPS)
    world.cycle(START)
    # A fresh 40 bps book, but the market moves back to 20 bps before the legs fill.
    set_book(world.short_emu, ETH, AT_40_BPS)
    short.freeze(ETH)
    set_book(world.short_emu, ETH, AT_20_BPS)

    outcome = only_outcome(world.cycle(START + timedelta(minutes=1)))

    assert outcome.action is BuyAction.SCALE_IN
    pair = world.only_pair()
    first, add = pair.entries
    trigger = next_trigger(first.spread, world.config.trigger_multiplier, 1)
    assert add.spread < trigger
    assert "short of its trigger" in add.note


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_book_age_seconds", 0),
        ("entry_failure_cooldown_minutes", -1),
        ("entry_failure_cooldown_max_minutes", 10),
    ],
)
def test_a_bad_guard_setting_names_its_key(key: str, value: int) -> None:
    with pytest.raises(SettingsError, match=key):
        pair_config(**{key: value})


def test_an_unknown_book_clock_is_refused_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "tradekit.toml"
    path.write_text(
        "[plugins.ccxt.pairs]\n"
        'entry_notional = "1000"\nmax_total_notional = "4000"\nfunding_hard_stop = "50"\nbook_clock = "wall"\n'
    )
    settings = load_settings(path, env={}).settings
    with pytest.raises(SettingsError, match="book_clock"):
        load_ccxt_settings(settings)


# --------------------------------------------------------------------------------------------
# a pair key whose entries keep failing
# --------------------------------------------------------------------------------------------


def test_a_venue_refusing_every_short_costs_one_round_trip_not_one_per_update(make_world: Any) -> None:
    world: PairWorld = make_world()
    world.short_emu.reject_next_order(times=1000)
    outcomes: list[SignalOutcome] = []
    t = START
    for _ in range(10):
        quote(world, AT_20_BPS)
        outcomes.extend(world.cycle(t).signals)
        t += timedelta(minutes=1)

    (pair,) = world.pairs()
    assert pair.closed is not None
    assert pair.closed.reason is ExitReason.FIRST_ENTRY_FAILED
    assert world.long_emu.create_order_request_count == 2  # one buy, one unwind
    assert world.venue_qty() == (ZERO, ZERO)
    waiting = outcomes[1:]
    assert [o.status for o in waiting] == [SignalStatus.SKIPPED] * 9
    assert all(ReasonCode.ENTRY_COOLDOWN in o.reasons for o in waiting)
    assert ENTRY_COOLDOWN in decision_trace(world)


def test_the_cooldown_doubles_with_each_failure_in_a_row_up_to_its_cap_and_survives_a_restart(
    make_world: Any,
) -> None:
    world: PairWorld = make_world(entry_failure_cooldown_minutes=30, entry_failure_cooldown_max_minutes=45)
    world.short_emu.reject_next_order(times=1000)

    def attempt(after: timedelta) -> SignalOutcome:
        quote(world, AT_20_BPS)
        return only_outcome(world.cycle(START + after))

    assert attempt(timedelta(0)).status is SignalStatus.ACTED  # failure 1: wait 30 min
    assert attempt(timedelta(minutes=29)).status is SignalStatus.SKIPPED
    world.crash()
    world.connect()
    assert attempt(timedelta(minutes=29, seconds=59)).status is SignalStatus.SKIPPED
    assert attempt(timedelta(minutes=30)).status is SignalStatus.ACTED  # failure 2: 60, capped to 45
    assert attempt(timedelta(minutes=74)).status is SignalStatus.SKIPPED
    assert attempt(timedelta(minutes=75)).status is SignalStatus.ACTED  # failure 3: 45 again
    assert [p.status for p in world.pairs()] == [PairStatus.CLOSED] * 3
    assert attempt(timedelta(minutes=119)).status is SignalStatus.SKIPPED

    world.short_emu.clear_faults()
    outcome = attempt(timedelta(minutes=120))
    assert outcome.action is BuyAction.ENTER_NEW
    assert world.pairs()[-1].status is PairStatus.OPEN
    assert world.pairs()[-1].entry_count == 1


def test_a_failed_add_waits_out_the_cooldown_too(make_world: Any) -> None:
    world: PairWorld = make_world(min_interval_minutes=0)
    quote(world, AT_20_BPS)
    world.cycle(START)
    world.short_emu.reject_next_order(times=1000)
    outcomes: list[SignalOutcome] = []
    long_orders = world.long_emu.create_order_request_count
    t = START + timedelta(minutes=1)
    for _ in range(5):
        quote(world, AT_40_BPS)
        outcomes.extend(world.cycle(t).signals)
        t += timedelta(minutes=1)

    pair = world.only_pair()
    assert pair.entry_count == 1
    assert world.long_emu.create_order_request_count == long_orders + 2  # one add bought and unwound
    assert outcomes[0].action is BuyAction.SCALE_IN
    assert all(ReasonCode.ENTRY_COOLDOWN in o.reasons for o in outcomes[1:])


# --------------------------------------------------------------------------------------------
# a frozen book does not value a pair
# --------------------------------------------------------------------------------------------

# The short leg bought back at 2970 against a 3006 sale: about 12 USDT on 0.33 ETH, well past
# the 5 USDT take-profit (0.5% of the first entry's 1000).
TAKE_PROFIT_SHORT_MID = Decimal(2970)


def freeze_short_book_at(world: PairWorld, short: FrozenFeed, frozen_mid: Decimal, *, then: Decimal) -> None:
    """The short venue's feed freezes on a book at ``frozen_mid``; the market moves to ``then``."""
    set_book(world.short_emu, ETH, frozen_mid)
    short.freeze(ETH)
    set_book(world.short_emu, ETH, then)


def age_books(world: PairWorld, by: timedelta) -> None:
    """Both venues' clocks move on; the long venue's book is quoted again (fresh), the frozen one is not."""
    world.short_emu.advance(by)
    world.long_emu.advance(by)
    set_book(world.long_emu, ETH, LONG_MID)


def orders_sent(world: PairWorld) -> tuple[int, int]:
    return world.long_emu.create_order_request_count, world.short_emu.create_order_request_count


def test_a_frozen_book_showing_a_take_profit_the_market_does_not_have_does_not_close_the_pair(
    make_world: Any,
) -> None:
    world: PairWorld = make_world()
    short = with_frozen_short_feed(world)
    quote(world, AT_20_BPS)
    world.cycle(START)
    pair = world.only_pair()
    assert pair.entry_count == 1
    assert world.trader is not None
    assert world.store is not None
    freeze_short_book_at(world, short, TAKE_PROFIT_SHORT_MID, then=AT_20_BPS)
    age_books(world, timedelta(hours=2))
    sent = orders_sent(world)
    t = START + timedelta(hours=2)

    report = world.trader.run_cycle(t)

    assert report.exits_started == ()
    assert world.only_pair().status is PairStatus.OPEN
    assert orders_sent(world) == sent
    assert world.venue_qty() == (pair.long.held, -pair.short.held)
    assert [pair_id for pair_id, _why in report.unpriced] == [pair.pair_id]
    mark = world.store.mark(pair.pair_id)
    assert mark is None or mark.time < t  # the frozen book's valuation is not shown as the pair's

    # The feed recovers and the market really is where the frozen book was: the profit is real.
    short.frozen = None
    set_book(world.short_emu, ETH, TAKE_PROFIT_SHORT_MID)
    report = world.trader.run_cycle(t + timedelta(minutes=1))

    assert report.exits_started == ((pair.pair_id, ExitReason.TAKE_PROFIT),)
    assert report.unpriced == ()
    closed = world.only_pair()
    assert closed.status is PairStatus.CLOSED
    assert closed.exit is not None
    assert closed.exit.pnl is not None
    assert pair.take_profit_target is not None
    assert closed.exit.pnl >= pair.take_profit_target
    assert world.venue_qty() == (ZERO, ZERO)


def test_a_frozen_book_showing_a_stop_loss_the_market_does_not_have_does_not_close_the_pair(
    make_world: Any,
) -> None:
    world: PairWorld = make_world(scale_in_enabled=False, stop_loss_pct=Decimal(1))
    short = with_frozen_short_feed(world)
    quote(world, AT_20_BPS)
    world.cycle(START)
    pair = world.only_pair()
    assert world.trader is not None
    # Frozen on a short book 2% up (a 2% loss on the pair); the market is back at 20 bps.
    freeze_short_book_at(world, short, LONG_MID * Decimal("1.02"), then=AT_20_BPS)
    age_books(world, timedelta(hours=2))
    sent = orders_sent(world)

    report = world.trader.run_cycle(START + timedelta(hours=2))

    assert report.exits_started == ()
    assert world.only_pair().status is PairStatus.OPEN
    assert orders_sent(world) == sent
    assert [pair_id for pair_id, _why in report.unpriced] == [pair.pair_id]


def test_a_frozen_book_does_not_stop_max_hold_and_the_close_carries_no_price_from_it(make_world: Any) -> None:
    world: PairWorld = make_world()
    short = with_frozen_short_feed(world)
    quote(world, AT_20_BPS)
    world.cycle(START)
    pair = world.only_pair()
    assert world.trader is not None
    freeze_short_book_at(world, short, TAKE_PROFIT_SHORT_MID, then=AT_20_BPS)
    age_books(world, timedelta(hours=2))

    report = world.trader.run_cycle(pair.header.force_close_at)

    assert report.exits_started == ((pair.pair_id, ExitReason.MAX_HOLD),)
    closed = world.only_pair()
    assert closed.exit is not None
    assert closed.exit.reason is ExitReason.MAX_HOLD
    assert closed.exit.pnl is None  # unpriced: no figure from a book older than the max age
    assert closed.status is PairStatus.CLOSED
    assert world.venue_qty() == (ZERO, ZERO)
