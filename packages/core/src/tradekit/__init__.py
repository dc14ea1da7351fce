"""tradekit: safe multi-entry position scaling for automated trading.

Every buy goes through one decision engine (``evaluate_buy``) that knows the ledger, the
broker's truth, the strategy's scaling policy and the account's limits, and explains every
ENTER_NEW / SCALE_IN / SKIP / BLOCK it returns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradekit.decision import (
        AccountLimits,
        BuyAction,
        BuyDecision,
        Check,
        CheckOutcome,
        MarketSnapshot,
        OrderCounters,
        PendingOrder,
        ReasonCode,
        RulePhase,
        ScalingContext,
        TierState,
        evaluate_buy,
    )
    from tradekit.hookspecs import hookimpl
    from tradekit.strategy import PriceStructure, Strategy, StrategyScalingPolicy, StrategyView

# The public names are imported on first use: `tradekit --version` and the modules a plugin
# imports from must not pay for the decision engine (and numpy) they do not touch.
_PUBLIC = {
    "AccountLimits": "tradekit.decision",
    "BuyAction": "tradekit.decision",
    "BuyDecision": "tradekit.decision",
    "Check": "tradekit.decision",
    "CheckOutcome": "tradekit.decision",
    "MarketSnapshot": "tradekit.decision",
    "OrderCounters": "tradekit.decision",
    "PendingOrder": "tradekit.decision",
    "ReasonCode": "tradekit.decision",
    "RulePhase": "tradekit.decision",
    "ScalingContext": "tradekit.decision",
    "TierState": "tradekit.decision",
    "evaluate_buy": "tradekit.decision",
    "hookimpl": "tradekit.hookspecs",
    "PriceStructure": "tradekit.strategy",
    "Strategy": "tradekit.strategy",
    "StrategyScalingPolicy": "tradekit.strategy",
    "StrategyView": "tradekit.strategy",
}


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tradekit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__version__ = "0.1.0"

__all__ = [
    "AccountLimits",
    "BuyAction",
    "BuyDecision",
    "Check",
    "CheckOutcome",
    "MarketSnapshot",
    "OrderCounters",
    "PendingOrder",
    "PriceStructure",
    "ReasonCode",
    "RulePhase",
    "ScalingContext",
    "Strategy",
    "StrategyScalingPolicy",
    "StrategyView",
    "TierState",
    "__version__",
    "evaluate_buy",
    "hookimpl",
]
