"""The strategy SDK: the base class and the scaling policy a strategy declares."""

from tradekit.strategy.base import Strategy, StrategyView
from tradekit.strategy.history import History, indicator
from tradekit.strategy.policy import (
    DEFAULT_SCALING_POLICY,
    InvalidPolicyError,
    PriceStructure,
    StrategyScalingPolicy,
)

__all__ = [
    "DEFAULT_SCALING_POLICY",
    "History",
    "InvalidPolicyError",
    "PriceStructure",
    "Strategy",
    "StrategyScalingPolicy",
    "StrategyView",
    "indicator",
]
