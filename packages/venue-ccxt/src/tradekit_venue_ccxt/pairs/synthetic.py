"""A seeded, reproducible, SYNTHETIC two-venue perpetual spread and funding series.

THIS IS NOT MARKET DATA. No package ships perpetual-futures prices or funding rates, and
tests have no internet, so scenarios of the pair trader run on this generator instead. It
is built to exercise the trader, not to resemble any real market or to backtest anything:

- the long venue's mid price follows a random walk (``price_vol_bps`` per step);
- the spread of the short venue over the long one is mean-reverting (an Ornstein-Uhlenbeck
  step: ``reversion`` of the gap to its mean closes each step, plus ``spread_noise_bps``
  noise) around ``base_spread_bps``, and ``Widening`` episodes move that mean to a peak for
  a while — the widenings a rescue scale-in averages into;
- each venue has a funding rate per interval (8 hours by default), its base plus noise, with
  optional ``FundingShock`` episodes; ``funding_settles`` marks the steps where funding is
  paid.

Everything is ``Decimal``, computed in a fixed decimal context (28 digits, half-even), not
the caller's; the noise comes from ``random.Random(seed)`` integers (a sum of twelve uniform
draws, approximately normal), so the same arguments give the same series on every platform
and Python version, whatever decimal context the caller runs under.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

import attrs

from tradekit.domain.values import positive, to_utc, utc

_BPS = Decimal(10_000)
_UNIT = 1_000_000
_CENT = Decimal("0.01")
_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
"""The arithmetic of every series: Python's default context, pinned against the caller's."""


@attrs.frozen(kw_only=True)
class Widening:
    """From step ``start`` for ``length`` steps the spread's mean is ``peak_bps``."""

    start: int
    length: int
    peak_bps: Decimal

    def covers(self, step: int) -> bool:
        return self.start <= step < self.start + self.length


@attrs.frozen(kw_only=True)
class FundingShock:
    """From step ``start`` for ``length`` steps the venues' funding rates are these (bps per interval)."""

    start: int
    length: int
    long_bps: Decimal
    short_bps: Decimal

    def covers(self, step: int) -> bool:
        return self.start <= step < self.start + self.length


@attrs.frozen(kw_only=True)
class SeriesPoint:
    """One step of the synthetic series. Rates are fractions per funding interval."""

    step: int
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    long_mid: Decimal = attrs.field(validator=positive)
    short_mid: Decimal = attrs.field(validator=positive)
    long_funding_rate: Decimal
    short_funding_rate: Decimal
    funding_settles: bool

    @property
    def spread(self) -> Decimal:
        return (self.short_mid - self.long_mid) / self.long_mid


def _normal(rng: random.Random) -> Decimal:
    # Irwin-Hall: the sum of 12 uniform(0, 1) draws minus 6 has mean 0 and variance 1.
    total = sum(rng.randint(0, _UNIT) for _ in range(12))
    return Decimal(total) / _UNIT - 6


@attrs.frozen(kw_only=True)
class SyntheticPairSeries:
    """A generated series and the arguments that produced it."""

    seed: int
    points: tuple[SeriesPoint, ...]

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def generate(
        cls,
        *,
        seed: int,
        start: datetime,
        steps: int,
        step: timedelta = timedelta(hours=1),
        base_price: Decimal = Decimal(3000),
        price_vol_bps: Decimal = Decimal(10),
        base_spread_bps: Decimal = Decimal(20),
        reversion: Decimal = Decimal("0.5"),
        spread_noise_bps: Decimal = Decimal(1),
        widenings: Sequence[Widening] = (),
        long_funding_bps: Decimal = Decimal(1),
        short_funding_bps: Decimal = Decimal(1),
        funding_noise_bps: Decimal = Decimal("0.2"),
        funding_shocks: Sequence[FundingShock] = (),
        funding_interval: timedelta = timedelta(hours=8),
        tick: Decimal = _CENT,
    ) -> SyntheticPairSeries:
        """Generate ``steps`` points from ``start``, ``step`` apart (synthetic, see the module doc)."""
        if steps < 1 or step <= timedelta(0):
            raise ValueError(f"need at least one step of positive length, got {steps} x {step}")
        if not Decimal(0) < reversion <= 1:
            raise ValueError(f"reversion must be in (0, 1], got {reversion}")
        with localcontext(_CONTEXT):
            rng = random.Random(seed)
            price = base_price
            spread_bps = base_spread_bps
            start = to_utc(start)
            points = []
            for index in range(steps):
                at = start + step * index
                mean = next((w.peak_bps for w in widenings if w.covers(index)), base_spread_bps)
                if index:
                    price = price * (1 + price_vol_bps * _normal(rng) / _BPS)
                    spread_bps = spread_bps + reversion * (mean - spread_bps) + spread_noise_bps * _normal(rng)
                long_mid = price.quantize(tick)
                short_mid = (long_mid * (1 + spread_bps / _BPS)).quantize(tick)
                shock = next((s for s in funding_shocks if s.covers(index)), None)
                long_rate = shock.long_bps if shock is not None else long_funding_bps + funding_noise_bps * _normal(rng)
                short_rate = (
                    shock.short_bps if shock is not None else short_funding_bps + funding_noise_bps * _normal(rng)
                )
                settles = index > 0 and (at - start) // funding_interval != (at - step - start) // funding_interval
                points.append(
                    SeriesPoint(
                        step=index,
                        time=at,
                        long_mid=long_mid,
                        short_mid=short_mid,
                        long_funding_rate=(long_rate / _BPS).quantize(Decimal("0.00000001")),
                        short_funding_rate=(short_rate / _BPS).quantize(Decimal("0.00000001")),
                        funding_settles=settles,
                    )
                )
        return cls(seed=seed, points=tuple(points))
