"""The market a pairs chaos run trades: three watchlist events on ETH/USDT perpetuals, long on
Binance and short on Bybit, each crafted to end its pair a different way.

- ``evt-take-profit``: the spread opens at 20 bps and widens in steps to 40, 60, 90 and
  130 bps (every step clears the next 1.5x trigger, so the pair scales in to its four
  entries and a fifth is refused), then collapses to -40 bps: the take-profit.
- ``evt-funding``: a flat 20 bps spread while both legs pay 15 bps of funding an hour: the
  funding hard-stop after two settlements.
- ``evt-max-hold``: a flat 25 bps spread, no shock, four-hour steps: the max-hold
  force-close a day after the first entry.

Each series is the package's seeded SYNTHETIC generator (``pairs.synthetic``, not market
data) drawn from the run's seed, so the noise differs from run to run and replays exactly.
The campaign enters one moment per clock read; the worker's watchlist (``signals_at``) says
which event is open at a time, from the same episodes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradekit_venue_ccxt.pairs.models import PairSignal
from tradekit_venue_ccxt.pairs.synthetic import FundingShock, SeriesPoint, SyntheticPairSeries, Widening

SYMBOL = "ETH/USDT:USDT"
LONG_VENUE = "binanceusdm"
SHORT_VENUE = "bybit"
START = datetime(2025, 1, 6, tzinfo=UTC)
GAP = timedelta(hours=2)  # between two events: longer than the closed-event window
BOOK_DEPTH = Decimal(50)

MAX_ENTRIES = 4
MAX_TOTAL_NOTIONAL = Decimal(4500)
ENTRY_NOTIONAL = Decimal(1000)


def pairs_table(seed: int) -> dict[str, Any]:
    """The ``[plugins.ccxt.pairs]`` table of a run; the leg-failure policy is drawn from its seed."""
    policy = random.Random(f"{seed}/leg-policy").choice(("unwind", "retry_then_unwind"))
    return {
        "entry_notional": str(ENTRY_NOTIONAL),
        "max_total_notional": str(MAX_TOTAL_NOTIONAL),
        "funding_hard_stop": "5",
        "max_entries": MAX_ENTRIES,
        "trigger_multiplier": "1.5",
        "min_interval_minutes": 30,
        "signal_max_age_minutes": 30,
        "max_hold_days": 1,
        "take_profit_pct": "0.5",
        "max_slippage_bps": "10",
        "leg_failure_policy": policy,
        "leg_retries": 1,
        "closed_event_window_minutes": 60,
    }


# The account-wide limits a pair account runs with: the pair config governs entries and their
# spacing (a pair's four entries are a fifth of the two venues' equity, so the per-symbol cap
# is raised, and acknowledged); a first entry's signal is fresh for an hour.
ACCOUNT_TABLES: dict[str, Any] = {
    "safety": {"acknowledge": ["allocation.max_allocation_per_symbol_pct"]},
    "scale_in": {"max_entries_per_symbol": 6, "min_time_between_entries_minutes": 0},
    "allocation": {"max_allocation_per_symbol_pct": "25", "max_position_pct_of_account": "25"},
    "orders": {"daily_order_limit": 1000, "order_cooldown_minutes": 0, "one_signal_per_symbol_per_day": False},
    "freshness": {"max_signal_age_hours": "1"},
}


@dataclass(frozen=True)
class Episode:
    """One watchlist event and the series its market follows while it is open."""

    event_id: str
    series: SyntheticPairSeries

    @property
    def opens(self) -> datetime:
        return self.series.points[0].time

    @property
    def closes(self) -> datetime:
        return self.series.points[-1].time


@dataclass(frozen=True)
class PairMoment:
    """A point of simulated time the worker runs a cycle at, and the market then."""

    label: str
    at: datetime
    point: SeriesPoint


def episodes(seed: int) -> list[Episode]:
    """The run's three events, one after the other (the noise drawn from ``seed``)."""
    found: list[Episode] = []
    start = START
    for event_id, build in _EPISODES:
        series = build(random.Random(f"{seed}/{event_id}").randrange(1, 2**31), start)
        found.append(Episode(event_id, series))
        start = series.points[-1].time + GAP
    return found


def _take_profit(seed: int, start: datetime) -> SyntheticPairSeries:
    return SyntheticPairSeries.generate(
        seed=seed,
        start=start,
        steps=24,
        step=timedelta(minutes=30),
        widenings=[
            Widening(start=3, length=3, peak_bps=Decimal(40)),
            Widening(start=6, length=3, peak_bps=Decimal(60)),
            Widening(start=9, length=3, peak_bps=Decimal(90)),
            Widening(start=12, length=3, peak_bps=Decimal(130)),
            Widening(start=15, length=9, peak_bps=Decimal(-40)),
        ],
    )


def _funding(seed: int, start: datetime) -> SyntheticPairSeries:
    return SyntheticPairSeries.generate(
        seed=seed,
        start=start,
        steps=12,
        step=timedelta(minutes=30),
        funding_interval=timedelta(hours=1),
        funding_shocks=[FundingShock(start=0, length=12, long_bps=Decimal(15), short_bps=Decimal(-15))],
    )


def _max_hold(seed: int, start: datetime) -> SyntheticPairSeries:
    return SyntheticPairSeries.generate(
        seed=seed, start=start, steps=9, step=timedelta(hours=4), base_spread_bps=Decimal(25)
    )


_EPISODES = (("evt-take-profit", _take_profit), ("evt-funding", _funding), ("evt-max-hold", _max_hold))

# After the last event: a few cycles at its last quotes, then two days on (the max hold closes
# whatever the faults left open), then a few more.
CLEAN_OFFSETS = (
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(days=2),
    timedelta(days=2, minutes=1),
    timedelta(days=2, minutes=2),
)


def moments(seed: int) -> list[PairMoment]:
    """Every moment of the run's three events, in order."""
    return [
        PairMoment(f"{episode.event_id} step {point.step}", point.time, point)
        for episode in episodes(seed)
        for point in episode.series.points
    ]


def clean_moments(seed: int) -> list[PairMoment]:
    """The clean finish's moments: after the last event, at its last quotes, funding settled."""
    last = moments(seed)[-1]
    still = SeriesPoint(
        step=last.point.step,
        time=last.point.time,
        long_mid=last.point.long_mid,
        short_mid=last.point.short_mid,
        long_funding_rate=last.point.long_funding_rate,
        short_funding_rate=last.point.short_funding_rate,
        funding_settles=False,
    )
    return [PairMoment(f"clean +{offset}", last.at + offset, still) for offset in CLEAN_OFFSETS]


def signals_at(now: datetime, seed: int) -> list[PairSignal]:
    """What the watchlist says at ``now``: the open event's update, and each past event closed.

    An open event is refreshed at every cycle (``generated_at`` now); an event whose window
    passed is reported closed as of its last moment, which the trader takes in once.
    """
    found: list[PairSignal] = []
    for episode in episodes(seed):
        if episode.opens <= now <= episode.closes:
            found.append(_signal(episode.event_id, now, event_open=True))
        elif now > episode.closes:
            found.append(_signal(episode.event_id, episode.closes, event_open=False))
    return found


def _signal(event_id: str, at: datetime, *, event_open: bool) -> PairSignal:
    return PairSignal(
        event_id=event_id,
        symbol=SYMBOL,
        long_venue=LONG_VENUE,
        short_venue=SHORT_VENUE,
        generated_at=at,
        event_open=event_open,
        confidence=5,
    )
