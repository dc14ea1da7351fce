"""The buy decision engine: context in, an explained ENTER_NEW/SCALE_IN/SKIP/BLOCK out."""

from tradekit.decision.context import (
    AccountLimits,
    MarketSnapshot,
    OrderCounters,
    PendingOrder,
    ScalingContext,
    TierState,
)
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.plugin_reasons import PluginReason, Reason
from tradekit.decision.reasons import BuyAction, CheckOutcome, ReasonCode, RulePhase
from tradekit.decision.scoping import scoped
from tradekit.decision.verdict import BuyDecision, Check, block, fold, not_applicable, passed, skip

__all__ = [
    "AccountLimits",
    "BuyAction",
    "BuyDecision",
    "Check",
    "CheckOutcome",
    "MarketSnapshot",
    "OrderCounters",
    "PendingOrder",
    "PluginReason",
    "Reason",
    "ReasonCode",
    "RulePhase",
    "ScalingContext",
    "TierState",
    "block",
    "evaluate_buy",
    "fold",
    "not_applicable",
    "passed",
    "scoped",
    "skip",
]
