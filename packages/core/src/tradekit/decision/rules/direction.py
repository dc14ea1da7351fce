"""Directionality: a buy must not fight the position or an exit already planned."""

from __future__ import annotations

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.verdict import Check, block, passed
from tradekit.domain.signals import Side
from tradekit.hookspecs import hookimpl

PHASE = RulePhase.DIRECTIONALITY

# Checks whose text never varies are built once: the engine runs on every signal.
_PASS_SIGNAL_SIDE = passed("signal_side", PHASE, "buy signal")
_PASS_BROKER_DIRECTION = passed("broker_direction", PHASE, "no opposing broker position")
_PASS_EXIT_PENDING = passed("exit_pending", PHASE, "no exit planned")


def signal_side(ctx: ScalingContext) -> Check:
    if ctx.signal.side is not Side.BUY:
        return block(
            "signal_side",
            PHASE,
            ReasonCode.DIRECTION_CONFLICT,
            f"a {ctx.signal.side} signal reached the buy engine",
        )
    return _PASS_SIGNAL_SIDE


def broker_direction(ctx: ScalingContext) -> Check:
    bp = ctx.broker_position
    if bp is not None and bp.is_short:
        return block(
            "broker_direction",
            PHASE,
            ReasonCode.DIRECTION_CONFLICT,
            f"the broker holds {ctx.symbol} short ({bp.qty}); a buy would cover, not add",
        )
    return _PASS_BROKER_DIRECTION


def exit_pending(ctx: ScalingContext) -> Check:
    if ctx.exit_pending:
        return block(
            "exit_pending",
            PHASE,
            ReasonCode.EXIT_PENDING,
            f"an exit for {ctx.symbol} is planned or in flight",
        )
    return _PASS_EXIT_PENDING


RULES: tuple[Rule, ...] = (signal_side, broker_direction, exit_pending)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [rule(context) for rule in RULES]
