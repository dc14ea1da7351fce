"""Execution feasibility: is there room and money for an order worth sending?"""

from __future__ import annotations

from decimal import Decimal

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.verdict import Check, not_applicable, passed, skip
from tradekit.domain.values import pct_of
from tradekit.hookspecs import hookimpl

PHASE = RulePhase.FEASIBILITY

# Checks whose text never varies are built once: the engine runs on every signal.
_NA_ROOM_UNDER_CAPS = not_applicable("room_under_caps", PHASE, "no room (blocked by a cap)")
_NA_TIER_CAPACITY = not_applicable("tier_capacity", PHASE, "symbol is in no allocation tier")
_HUNDRED = Decimal(100)


def buying_power(ctx: ScalingContext) -> Check:
    need = ctx.limits.min_order_notional
    # Negative in a margin deficit (as the broker reports it): no buying power at all.
    if ctx.account.buying_power < need or ctx.account.buying_power <= 0:
        deficit = " (a margin deficit)" if ctx.account.buying_power < 0 else ""
        return skip(
            "buying_power",
            PHASE,
            ReasonCode.INSUFFICIENT_BUYING_POWER,
            f"buying power {ctx.account.buying_power}{deficit} is below the minimum order {need}",
        )
    return passed("buying_power", PHASE, f"buying power {ctx.account.buying_power}")


def room_under_caps(ctx: ScalingContext) -> Check:
    room = ctx.account.equity * ctx.allocation_cap_pct / _HUNDRED - ctx.position_value
    if ctx.policy.max_position_notional is not None:
        room = min(room, ctx.policy.max_position_notional - ctx.position_value)
    if room <= 0:
        return _NA_ROOM_UNDER_CAPS
    if room < ctx.limits.min_order_notional:
        return skip(
            "room_under_caps",
            PHASE,
            ReasonCode.EXECUTION_INFEASIBLE,
            f"only {room:.2f} left under the caps, below the minimum order {ctx.limits.min_order_notional}",
        )
    return passed("room_under_caps", PHASE, f"{room:.2f} left under the caps")


def tier_capacity(ctx: ScalingContext) -> Check:
    tier = ctx.tier
    if tier is None:
        return _NA_TIER_CAPACITY
    used = pct_of(tier.exposure, ctx.account.equity)
    if used >= tier.cap_pct:
        return skip(
            "tier_capacity",
            PHASE,
            ReasonCode.TIER_CAPACITY,
            f"tier {tier.tier} holds {used:.2f}% of equity, at or above its {tier.cap_pct}% cap",
        )
    return passed("tier_capacity", PHASE, f"tier {tier.tier} at {used:.2f}% of {tier.cap_pct}%")


RULES: tuple[Rule, ...] = (buying_power, room_under_caps, tier_capacity)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [rule(context) for rule in RULES]
