"""The one decision engine every buy goes through."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from tradekit.decision.context import ScalingContext
from tradekit.decision.verdict import BuyDecision, fold, order_checks

if TYPE_CHECKING:
    # tradekit.plugins imports the decision package; importing it back here at load would
    # make the order in which the two are first imported matter.
    from tradekit.plugins import Plugins


def evaluate_buy(
    context: ScalingContext,
    *,
    plugins: Plugins | None = None,
    decision_id: str | None = None,
) -> BuyDecision:
    """Judge a buy signal: ENTER_NEW, SCALE_IN, SKIP or BLOCK, with the full trace.

    Runs every ``evaluate_buy`` hook implementation (tradekit's built-in rules and any
    plugin's), orders the checks by phase, and folds them: any BLOCK -> BLOCK, else any
    SKIP -> SKIP, else ENTER_NEW when flat or SCALE_IN when adding. No broker is called here:
    everything the rules need is in ``context``.
    """
    if plugins is None:
        from tradekit.plugins import default_plugins

        plugins = default_plugins()
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
