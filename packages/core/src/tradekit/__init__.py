"""tradekit: safe multi-entry position scaling for automated trading.

Every buy goes through one decision engine (``evaluate_buy``) that knows the ledger, the
broker's truth, the strategy's scaling policy and the account's limits, and explains every
ENTER_NEW / SCALE_IN / SKIP / BLOCK it returns.
"""

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
