"""The strategy SDK: the base class and the scaling policy a strategy declares."""

from tradekit.strategy.base import Strategy, StrategyView
from tradekit.strategy.policy import (
    DEFAULT_SCALING_POLICY,
    InvalidPolicyError,
    PriceStructure,
    StrategyScalingPolicy,
)

__all__ = [
    "DEFAULT_SCALING_POLICY",
    "InvalidPolicyError",
    "PriceStructure",
    "Strategy",
    "StrategyScalingPolicy",
    "StrategyView",
]
