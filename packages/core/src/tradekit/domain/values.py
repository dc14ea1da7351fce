"""Validators and helpers for money, quantities and times.

Money, prices and quantities are ``Decimal`` and never pass through ``float``; times are
timezone-aware and normalised to UTC. These validators keep those invariants at the edge of
every model, so a NaN price or a naive timestamp is refused where it enters, with its name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

import attrs

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

# Exact arithmetic, for sums that must not depend on the order they are added in: round the
# total once (``+total`` in the default context) where it is read.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of ``values`` (not rounded: add it to a rounded figure, or ``+`` it)."""
    return functools.reduce(EXACT.add, values, ZERO)


class InvalidValueError(ValueError):
    """A value that would be unsafe to trade on: NaN, infinite, negative, naive time."""


def _check_decimal(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal):
        raise InvalidValueError(
            f"{name} must be a Decimal, got {type(value).__name__} {value!r}"
            " (floats are refused: convert through str, e.g. Decimal('1.23'))"
        )
    if not value.is_finite():
        raise InvalidValueError(f"{name} must be a finite number, got {value}")
    return value


def finite(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate a finite Decimal (may be negative, e.g. a signed position quantity)."""
    _check_decimal(attribute.name, value)


def non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate a finite Decimal that is zero or more."""
    if _check_decimal(attribute.name, value) < 0:
        raise InvalidValueError(f"{attribute.name} must not be negative, got {value}")


def positive(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate a finite Decimal greater than zero (prices, order quantities)."""
    if _check_decimal(attribute.name, value) <= 0:
        raise InvalidValueError(f"{attribute.name} must be greater than zero, got {value}")


def optional_positive(inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        positive(inst, attribute, value)


def optional_non_negative(inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        non_negative(inst, attribute, value)


def optional_finite(inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        finite(inst, attribute, value)


def utc(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validate a timezone-aware datetime (normalised to UTC by ``to_utc``)."""
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return  # what ``to_utc`` gives: the usual case, answered first
    if not isinstance(value, datetime):
        raise InvalidValueError(f"{attribute.name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(
            f"{attribute.name} must be timezone-aware (UTC), got naive datetime {value.isoformat()}"
        )


def optional_utc(inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        utc(inst, attribute, value)


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC; leave naive ones for the validator to refuse."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        # Already UTC (most times in a run are one moment passed from record to record): kept
        # as it is, which is what ``astimezone`` would give, less a new object.
        return value if value.tzinfo is UTC else value.astimezone(UTC)
    return value


def optional_to_utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


def pct_of(part: Decimal, whole: Decimal) -> Decimal:
    """Return ``part`` as a percentage of ``whole`` (0 when ``whole`` is not positive)."""
    if whole <= 0:
        return ZERO
    return part * HUNDRED / whole


def utcnow() -> datetime:
    return datetime.now(UTC)


# attrs converters with precise types (``converter=tuple`` loses the item type for mypy).
def str_tuple(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def str_frozenset(items: Iterable[str]) -> frozenset[str]:
    return frozenset(items)
