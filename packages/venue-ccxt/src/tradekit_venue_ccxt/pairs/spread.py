"""Spread arithmetic of a Type B pair, in Decimal.

A pair is long the perp on the venue where it is cheaper and short it where it is dearer;
its spread is ``(short price - long price) / long price``. The pair earns when the spread
narrows, and a widening is the loss the rescue scale-in averages into: the k-th add needs a
spread of at least ``initial * multiplier**k``, measured against the *initial* entry's spread,
never the last add's.
"""

from __future__ import annotations

from decimal import Decimal

BPS = Decimal(10_000)


def spread_of(long_price: Decimal, short_price: Decimal) -> Decimal:
    """The spread between the two legs' prices, as a fraction of the long leg's price."""
    if long_price <= 0:
        raise ValueError(f"the long leg's price must be positive, got {long_price}")
    return (short_price - long_price) / long_price


def next_trigger(initial_spread: Decimal, multiplier: Decimal, entries_so_far: int) -> Decimal:
    """The spread the next add needs: with ``n`` entries held, it is the n-th add."""
    if entries_so_far < 1:
        raise ValueError(f"a trigger exists once the pair has an entry, got {entries_so_far} entries")
    return initial_spread * multiplier**entries_so_far


def to_bps(fraction: Decimal) -> Decimal:
    return fraction * BPS


def fmt_bps(fraction: Decimal) -> str:
    return f"{to_bps(fraction):.2f} bps"
