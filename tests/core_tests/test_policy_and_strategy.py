"""Scaling policies are validated when a strategy class is defined."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradekit import PriceStructure, Strategy, StrategyScalingPolicy, StrategyView
from tradekit.domain import Signal
from tradekit.strategy import DEFAULT_SCALING_POLICY, InvalidPolicyError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow_scaling": True, "max_entries": 1}, "needs max_entries >= 2"),
        ({"allow_scaling": False, "max_entries": 3}, "contradictory"),
        ({"max_entries": 0}, "max_entries must be an integer >= 1"),
        (
            {"allow_scaling": True, "max_entries": 2, "risk_budget_pct": Decimal(1)},
            "needs stop_distance_pct",
        ),
        ({"price_step_pct": Decimal(2)}, "no meaning with price_structure=any"),
        (
            {"price_structure": PriceStructure.PYRAMID, "price_step_pct": Decimal(-1)},
            "price_step_pct must be",
        ),
        ({"max_allocation_pct": Decimal(0)}, "max_allocation_pct must be"),
        ({"max_allocation_pct": Decimal("NaN")}, "max_allocation_pct must be"),
        ({"min_confidence": 6}, "min_confidence must be an integer from 1 to 5"),
        ({"volatility_min": Decimal(5), "volatility_max": Decimal(2)}, "above volatility_max"),
        ({"min_time_between_entries": timedelta(hours=-1)}, "non-negative"),
        ({"max_position_notional": Decimal(0)}, "positive"),
        (
            {
                "allow_scaling": True,
                "max_entries": 2,
                "min_confidence": 2,
                "min_entry_confidence": 4,
            },
            "add-ons must not be easier",
        ),
    ],
)
def test_invalid_policy_is_a_clear_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPolicyError, match=message):
        StrategyScalingPolicy(**kwargs)


def test_default_policy_allows_one_entry_and_no_scaling() -> None:
    assert DEFAULT_SCALING_POLICY.allow_scaling is False
    assert DEFAULT_SCALING_POLICY.max_entries == 1


def test_strategy_without_policy_gets_the_default() -> None:
    class Plain(Strategy):
        name = "plain"

        def on_bar(self, view: StrategyView) -> Sequence[Signal]:
            return []

    assert Plain.policy() is DEFAULT_SCALING_POLICY


def test_policy_written_as_a_mapping_is_structured_at_class_definition() -> None:
    class FromData(Strategy):
        name = "from-data"
        scaling_policy = {  # type: ignore[assignment]  # noqa: RUF012
            "allow_scaling": True,
            "max_entries": 3,
            "price_structure": "pyramid",
            "price_step_pct": "2.5",
            "min_time_between_entries": 86400,
        }

        def on_bar(self, view: StrategyView) -> Sequence[Signal]:
            return []

    policy = FromData.policy()
    assert policy.max_entries == 3
    assert policy.price_step_pct == Decimal("2.5")
    assert policy.min_time_between_entries == timedelta(days=1)


def test_invalid_policy_fails_when_the_class_is_defined() -> None:
    with pytest.raises(InvalidPolicyError, match="max_entries"):

        class Broken(Strategy):
            name = "broken"
            scaling_policy = {"allow_scaling": True, "max_entries": "many"}  # type: ignore[assignment]  # noqa: RUF012

            def on_bar(self, view: StrategyView) -> Sequence[Signal]:
                return []


def test_policy_of_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidPolicyError, match="must be a StrategyScalingPolicy"):

        class Wrong(Strategy):
            name = "wrong"
            scaling_policy = 4  # type: ignore[assignment]

            def on_bar(self, view: StrategyView) -> Sequence[Signal]:
                return []


def test_concrete_strategy_needs_a_name() -> None:
    with pytest.raises(TypeError, match="must set a non-empty class attribute `name`"):

        class Nameless(Strategy):
            def on_bar(self, view: StrategyView) -> Sequence[Signal]:
                return []
