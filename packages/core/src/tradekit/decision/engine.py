"""The one decision engine every buy goes through."""

from __future__ import annotations

import importlib
import secrets
from typing import Protocol

from tradekit.decision.context import ScalingContext
from tradekit.decision.verdict import BuyDecision, Check, fold, order_checks


class RuleSource(Protocol):
    """Where the rules come from: ``tradekit.plugins.Plugins`` (every ``evaluate_buy`` hook)."""

    def evaluate_buy(self, context: ScalingContext) -> list[Check]: ...


def evaluate_buy(
    context: ScalingContext,
    *,
    plugins: RuleSource | None = None,
    decision_id: str | None = None,
) -> BuyDecision:
    """Judge a buy signal: ENTER_NEW, SCALE_IN, SKIP or BLOCK, with the full trace.

    Runs every ``evaluate_buy`` hook implementation (tradekit's built-in rules and any
    plugin's), orders the checks by phase, and folds them: any BLOCK -> BLOCK, else any
    SKIP -> SKIP, else ENTER_NEW when flat or SCALE_IN when adding. No broker is called here:
    everything the rules need is in ``context``.
    """
    if plugins is None:
        # The installed plugins, found by name as the plugin manager finds the built-in rules:
        # the decision package never imports the plugin machinery that loads it.
        plugins = importlib.import_module("tradekit.plugins").default_plugins()
    manager = plugins
    checks = order_checks(manager.evaluate_buy(context))
    return BuyDecision(
        decision_id=decision_id or f"dec-{secrets.token_hex(10)}",
        symbol=context.symbol,
        strategy=context.strategy,
        signal_id=context.signal.signal_id,
        action=fold(checks, is_scale_in=context.is_scale_in),
        checks=checks,
        entry_count=context.entry_count,
        max_entries=context.max_entries,
        position_pct=context.position_pct,
        allocation_cap_pct=context.allocation_cap_pct,
        risk_amount=context.risk_amount,
        price=context.market.price,
        confidence=context.signal.confidence,
        evaluated_at=context.now,
    )
