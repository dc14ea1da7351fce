"""Order-size limits applied after sizing: caps are clipped to, minimums refused.

Every limit leaves a check in the decision's trace (phase LIMITS), so the audit trail shows
both what the sizer wanted and what the account allowed.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import attrs

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import BuyAction, ReasonCode, RulePhase
from tradekit.decision.verdict import BuyDecision, Check, block, fold, order_checks, passed, skip
from tradekit.domain.values import ZERO
from tradekit.sizing.builtin import floor_div, round_qty
from tradekit.sizing.result import SizingResult

PHASE = RulePhase.LIMITS
_HUNDRED = Decimal(100)


@attrs.frozen
class SizedOrder:
    """The final decision and, when it still allows an order, the quantity and price."""

    decision: BuyDecision
    qty: Decimal
    price: Decimal | None


def room_under_caps(ctx: ScalingContext) -> list[tuple[str, Decimal, ReasonCode]]:
    """Money each cap still allows to add, with the reason code used when it is exhausted."""
    equity = ctx.account.equity
    rooms = [
        ("allocation cap", equity * ctx.allocation_cap_pct / _HUNDRED - ctx.position_value, ReasonCode.ALLOCATION_CAP),
        (
            "max position % of account",
            equity * ctx.limits.max_position_pct_of_account / _HUNDRED - ctx.position_value,
            ReasonCode.MAX_POSITION_PCT_OF_ACCOUNT,
        ),
        # A broker reports negative buying power in a margin deficit: no room, never a negative cap.
        ("buying power", max(ctx.account.buying_power, ZERO), ReasonCode.INSUFFICIENT_BUYING_POWER),
    ]
    if ctx.policy.max_position_notional is not None:
        rooms.append(
            ("policy max position", ctx.policy.max_position_notional - ctx.position_value, ReasonCode.MAX_POSITION_SIZE)
        )
    if ctx.tier is not None:
        rooms.append(
            (
                f"tier {ctx.tier.tier} cap",
                equity * ctx.tier.cap_pct / _HUNDRED - ctx.tier.exposure,
                ReasonCode.TIER_CAPACITY,
            )
        )
    return rooms


def exact_value(qty: Decimal, price: Decimal) -> Decimal:
    """``qty * price`` with every digit: the default context keeps 28 significant digits and
    rounds half-even, so a product of more could read at or under a cap it exceeds."""
    with localcontext() as exact:
        exact.prec = len(qty.as_tuple().digits) + len(price.as_tuple().digits)
        return qty * price


def apply_limits(
    ctx: ScalingContext, decision: BuyDecision, sizing: SizingResult | None, *, error: str | None = None
) -> SizedOrder:
    """Clip the sized order to every cap and refuse it below the minimums.

    ``error`` says the sizer failed (a plugin raised): the buy is BLOCKed with RULE_ERROR,
    never sized some other way.
    """
    if not decision.allows_order:
        return SizedOrder(decision, ZERO, None)
    checks: list[Check] = []
    if error is not None:
        checks.append(block("sizing", PHASE, ReasonCode.RULE_ERROR, error))
        return _final(ctx, decision, checks, ZERO, None)
    if sizing is None or sizing.qty <= 0:
        why = "no sizer produced a quantity" if sizing is None else f"{sizing.method}: {sizing.detail}"
        checks.append(skip("sizing", PHASE, ReasonCode.ZERO_QUANTITY, why))
        return _final(ctx, decision, checks, ZERO, None)
    price = sizing.price
    qty = sizing.qty
    checks.append(passed("sizing", PHASE, f"{sizing.method}: {qty} at {price} ({sizing.detail})"))
    for name, room, code in room_under_caps(ctx):
        if room <= 0:
            checks.append(skip(f"cap:{name}", PHASE, code, f"no room left under the {name}"))
            return _final(ctx, decision, checks, ZERO, None)
        if exact_value(qty, price) > room:
            clipped = round_qty(floor_div(room, price), ctx)
            checks.append(
                passed(f"cap:{name}", PHASE, f"clipped {qty} to {clipped} to stay under the {name} ({room:.2f})")
            )
            qty = clipped
    if qty <= 0:
        checks.append(skip("quantity", PHASE, ReasonCode.ZERO_QUANTITY, "clipping left less than one tradable unit"))
        return _final(ctx, decision, checks, ZERO, None)
    notional = qty * price
    minimum = ctx.limits.min_order_notional
    if ctx.asset is not None and ctx.asset.min_notional > minimum and qty != qty.to_integral_value():
        minimum = ctx.asset.min_notional
    if notional < minimum:
        checks.append(
            skip(
                "min_notional", PHASE, ReasonCode.BELOW_MIN_NOTIONAL, f"order worth {notional:.2f} < minimum {minimum}"
            )
        )
        return _final(ctx, decision, checks, ZERO, None)
    checks.append(passed("min_notional", PHASE, f"order worth {notional:.2f} >= minimum {minimum}"))
    return _final(ctx, decision, checks, qty, price)


def _final(
    ctx: ScalingContext, decision: BuyDecision, extra: list[Check], qty: Decimal, price: Decimal | None
) -> SizedOrder:
    checks = order_checks([*decision.checks, *extra])
    action = fold(checks, is_scale_in=ctx.is_scale_in)
    final = attrs.evolve(decision, checks=checks, action=action)
    if action not in (BuyAction.ENTER_NEW, BuyAction.SCALE_IN):
        return SizedOrder(final, ZERO, None)
    return SizedOrder(final, qty, price)


def whole_share_refusal(
    ctx: ScalingContext, fractional: Decimal, whole: Decimal, price: Decimal, *, replaced: str
) -> str:
    """Why the whole-share order replacing a refused fractional one must not be sent ("" when
    it may): it passes the minimum notional, every cap and the daily order limit again, on
    the account as it is now, and no other order of the symbol may be working (the refused
    one is settled by now). The refused order (``replaced``) never existed at the broker,
    so it does not count against the daily limit."""
    if whole <= 0:
        return f"{fractional} rounds down to 0 shares"
    if ctx.pending_orders:
        ids = ", ".join(f"{o.client_order_id} ({o.side} {o.status})" for o in ctx.pending_orders)
        return f"orders are open for {ctx.symbol}: {ids}"
    notional = whole * price
    minimum = ctx.limits.min_order_notional
    if notional < minimum:
        return f"{whole} share(s) at {price} are worth {notional:.2f}, below the minimum order of {minimum}"
    for name, room, _code in room_under_caps(ctx):
        if notional > room:
            return f"{whole} share(s) worth {notional:.2f} exceed the room left under the {name} ({room:.2f})"
    others = ctx.counters.orders_today - 1
    if others >= ctx.limits.daily_order_limit:
        return f"{others} orders were sent today besides {replaced}: the daily limit is {ctx.limits.daily_order_limit}"
    return ""
