"""The guard's buy rule: a preflight ``evaluate_buy`` plugin, built in and never disabled.

ENTER_NEW and SCALE_IN are judged alike: any REDUCE_ONLY or HALTED hold on the account, the
strategy or the symbol BLOCKs the buy, and the check names the scope, the trigger, who
placed it and why. The pipeline asks again right before the order leaves (``sending``).
"""

from __future__ import annotations

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.verdict import Check, block, passed
from tradekit.guard.state import TradingState
from tradekit.hookspecs import hookimpl

PHASE = RulePhase.PREFLIGHT
RULE = "trading_state"

# Built once: the engine runs on every signal, and nearly always trading is active.
_PASS = passed(RULE, PHASE, "trading is active for the account, the strategy and the symbol")


def trading_state(ctx: ScalingContext) -> Check:
    states = ctx.trading_states
    if states.all_active:
        return _PASS
    standing = states.standing(strategy=ctx.strategy, symbol=ctx.symbol, at=ctx.now)
    if standing.hold is None:
        return _PASS
    what = f"a scale-in to {ctx.symbol}" if ctx.is_scale_in else f"a new position in {ctx.symbol}"
    if standing.state is TradingState.HALTED:
        return block(RULE, PHASE, ReasonCode.TRADING_HALTED, f"{standing.describe()} — no order, {what} neither")
    return block(RULE, PHASE, ReasonCode.REDUCE_ONLY, f"{standing.describe()} — exits only, not {what}")


RULES: tuple[Rule, ...] = (trading_state,)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [trading_state(context)]
