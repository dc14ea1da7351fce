"""The synthetic two-venue spread and funding series (synthetic data, not market data)."""

from __future__ import annotations

import decimal
from datetime import timedelta
from decimal import Decimal

import pytest

from ccxt_tests.pair_world import START
from tradekit_venue_ccxt.pairs.synthetic import FundingShock, SyntheticPairSeries, Widening


def test_same_seed_gives_the_same_series_and_another_seed_another() -> None:
    first = SyntheticPairSeries.generate(seed=42, start=START, steps=50)
    again = SyntheticPairSeries.generate(seed=42, start=START, steps=50)
    other = SyntheticPairSeries.generate(seed=43, start=START, steps=50)
    assert first == again
    assert first.points != other.points


def test_prices_and_rates_are_decimals_on_the_tick() -> None:
    series = SyntheticPairSeries.generate(seed=1, start=START, steps=30)
    for point in series.points:
        for value in (point.long_mid, point.short_mid, point.long_funding_rate, point.short_funding_rate):
            assert isinstance(value, Decimal)
        assert point.long_mid == point.long_mid.quantize(Decimal("0.01"))
        assert point.time == START + timedelta(hours=point.step)


def test_spread_reverts_to_its_mean_and_widens_during_an_episode() -> None:
    series = SyntheticPairSeries.generate(
        seed=7, start=START, steps=60, widenings=[Widening(start=20, length=20, peak_bps=Decimal(120))]
    )
    calm = [p.spread * 10_000 for p in series.points[5:20]]
    wide = [p.spread * 10_000 for p in series.points[25:40]]
    after = [p.spread * 10_000 for p in series.points[50:]]
    assert all(Decimal(10) < s < Decimal(30) for s in calm)
    assert all(Decimal(100) < s < Decimal(140) for s in wide)
    assert all(Decimal(10) < s < Decimal(30) for s in after)


def test_funding_settles_every_eight_hours_and_shocks_set_the_rates() -> None:
    series = SyntheticPairSeries.generate(
        seed=3,
        start=START,
        steps=25,
        funding_shocks=[FundingShock(start=8, length=4, long_bps=Decimal(15), short_bps=Decimal(-15))],
    )
    assert [p.step for p in series.points if p.funding_settles] == [8, 16, 24]
    shocked = series.points[9]
    assert (shocked.long_funding_rate, shocked.short_funding_rate) == (Decimal("0.0015"), Decimal("-0.0015"))


def test_a_series_needs_steps_and_a_reversion_in_range() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        SyntheticPairSeries.generate(seed=1, start=START, steps=0)
    with pytest.raises(ValueError, match="reversion"):
        SyntheticPairSeries.generate(seed=1, start=START, steps=3, reversion=Decimal(2))


def test_the_series_is_the_seeds_whatever_decimal_context_the_caller_runs_under() -> None:
    expected = SyntheticPairSeries.generate(seed=42, start=START, steps=50)
    for precision, rounding in ((12, decimal.ROUND_DOWN), (28, decimal.ROUND_FLOOR), (60, decimal.ROUND_UP)):
        with decimal.localcontext() as context:
            context.prec, context.rounding = precision, rounding
            assert SyntheticPairSeries.generate(seed=42, start=START, steps=50) == expected


def test_a_seed_gives_the_same_figures_on_every_run() -> None:
    # Pinned: a change here changes every scenario built on the generator.
    point = SyntheticPairSeries.generate(seed=42, start=START, steps=50).points[49]
    assert (point.long_mid, point.short_mid) == (Decimal("3012.24"), Decimal("3018.89"))
    assert (point.long_funding_rate, point.short_funding_rate) == (Decimal("0.00010875"), Decimal("0.00008083"))
