"""What a strategy declares about building a position in several entries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import attrs

from tradekit.domain.values import HUNDRED, ZERO


class PriceStructure(StrEnum):
    """Where an add-on may be placed relative to the last entry price."""

    PYRAMID = "pyramid"  # add only above the last entry by at least price_step_pct
    AVERAGE_DOWN = "average_down"  # add only below the last entry by at least price_step_pct
    ANY = "any"


class InvalidPolicyError(ValueError):
    """A scaling policy that cannot be enforced as written."""


def _pct(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or not ZERO < value <= HUNDRED:
        raise InvalidPolicyError(f"{attribute.name} must be a Decimal percentage in (0, 100], got {value!r}")


def _step(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not ZERO <= value < HUNDRED:
        raise InvalidPolicyError(f"{attribute.name} must be a Decimal percentage in [0, 100), got {value!r}")


def _positive_money(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value <= 0):
        raise InvalidPolicyError(f"{attribute.name} must be a positive Decimal, got {value!r}")


def _confidence(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise InvalidPolicyError(f"{attribute.name} must be an integer from 1 to 5, got {value!r}")


def _count(minimum: int) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidPolicyError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _duration(_inst: Any, attribute: attrs.Attribute[Any], value: timedelta) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidPolicyError(f"{attribute.name} must be a non-negative timedelta, got {value!r}")


def _volatility(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value < 0):
        raise InvalidPolicyError(f"{attribute.name} must be a non-negative Decimal, got {value!r}")


@attrs.frozen(kw_only=True)
class StrategyScalingPolicy:
    """A strategy's rules for adding to a position it already holds.

    The account's settings still apply on top: the engine always uses the stricter of the
    two (fewer entries, longer cooldown, lower cap, higher confidence).

    Percentages are in percent (``Decimal("5")`` is 5 %). ``volatility_min``/``max`` bound
    the market snapshot's volatility figure (for the built-in runner, the standard deviation
    of daily returns over 20 bars, in percent).
    """

    allow_scaling: bool = False
    max_entries: int = attrs.field(default=1, validator=_count(1))
    min_time_between_entries: timedelta = attrs.field(default=timedelta(0), validator=_duration)
    min_bars_between_entries: int = attrs.field(default=0, validator=_count(0))
    price_structure: PriceStructure = PriceStructure.ANY
    price_step_pct: Decimal = attrs.field(default=ZERO, validator=_step)
    max_position_notional: Decimal | None = attrs.field(default=None, validator=_positive_money)
    max_allocation_pct: Decimal | None = attrs.field(default=None, validator=_pct)
    risk_budget_pct: Decimal | None = attrs.field(default=None, validator=_pct)
    stop_distance_pct: Decimal | None = attrs.field(default=None, validator=_pct)
    min_confidence: int = attrs.field(default=1, validator=_confidence)
    min_entry_confidence: int = attrs.field(default=1, validator=_confidence)
    volatility_min: Decimal | None = attrs.field(default=None, validator=_volatility)
    volatility_max: Decimal | None = attrs.field(default=None, validator=_volatility)

    def __attrs_post_init__(self) -> None:
        if self.allow_scaling and self.max_entries < 2:
            raise InvalidPolicyError(
                f"allow_scaling=True needs max_entries >= 2 (got {self.max_entries}): "
                "one entry leaves nothing to scale into"
            )
        if not self.allow_scaling and self.max_entries != 1:
            raise InvalidPolicyError(
                f"max_entries={self.max_entries} with allow_scaling=False is contradictory: "
                "set allow_scaling=True or max_entries=1"
            )
        if self.risk_budget_pct is not None and self.stop_distance_pct is None:
            raise InvalidPolicyError(
                "risk_budget_pct needs stop_distance_pct: the risk of a position is measured "
                "as its cost times the stop distance"
            )
        if self.price_structure is PriceStructure.ANY and self.price_step_pct != ZERO:
            raise InvalidPolicyError(
                f"price_step_pct={self.price_step_pct} has no meaning with price_structure=any; "
                "choose pyramid or average_down"
            )
        lo, hi = self.volatility_min, self.volatility_max
        if lo is not None and hi is not None and lo > hi:
            raise InvalidPolicyError(f"volatility_min {lo} is above volatility_max {hi}")
        if self.min_entry_confidence > self.min_confidence and self.allow_scaling:
            raise InvalidPolicyError(
                f"min_confidence {self.min_confidence} (for add-ons) is below min_entry_confidence "
                f"{self.min_entry_confidence}: add-ons must not be easier than entries"
            )


DEFAULT_SCALING_POLICY = StrategyScalingPolicy()
"""One entry per position; every scale-in is BLOCKed. What a strategy without a policy gets."""
