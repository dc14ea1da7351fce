"""The built-in sizer: a fixed fraction of equity, or the symbol's share of its tier.

Registered with ``trylast`` so any plugin's ``size_position`` answers first. Fractional
quantities are used when the account, the settings and the asset all allow them (rounded
down to the asset's increment); otherwise whole shares, rounded down.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext

from tradekit.decision.context import ScalingContext
from tradekit.decision.verdict import BuyDecision
from tradekit.domain.values import ZERO
from tradekit.hookspecs import hookimpl
from tradekit.sizing.result import SizingResult

_HUNDRED = Decimal(100)
# Alpaca accepts at most 9 decimal places on fractional quantities.
FRACTIONAL_STEP = Decimal("0.000000001")


def fractional_allowed(ctx: ScalingContext) -> bool:
    asset_ok = ctx.asset is None or ctx.asset.fractionable
    return ctx.limits.fractional_shares and ctx.account.fractional_trading and asset_ok


def round_qty(qty: Decimal, ctx: ScalingContext) -> Decimal:
    """Round a quantity down to what the broker accepts for this symbol."""
    if qty <= 0:
        return ZERO
    if fractional_allowed(ctx):
        step = ctx.asset.qty_increment if ctx.asset is not None and ctx.asset.qty_increment < 1 else FRACTIONAL_STEP
        return floor_div(qty, step).to_integral_value(ROUND_DOWN) * step
    return qty.to_integral_value(ROUND_DOWN)


def floor_div(dividend: Decimal, divisor: Decimal) -> Decimal:
    """``dividend / divisor`` rounded down, never up: a quotient of more significant digits
    than Decimal keeps would otherwise round up to the next unit, and that unit's value
    exceed the money it was worked out from."""
    with localcontext() as exact:
        exact.rounding = ROUND_FLOOR
        return dividend / divisor


@hookimpl(trylast=True)
def size_position(context: ScalingContext, decision: BuyDecision) -> SizingResult | None:
    price = context.market.price
    if price is None:
        return None
    equity = context.account.equity
    tier = context.tier
    if tier is not None and tier.allocation_pct is not None:
        target = equity * tier.allocation_pct / _HUNDRED / max(tier.symbol_count, 1)
        method = f"tiered: {tier.allocation_pct}% for tier {tier.tier} over {tier.symbol_count} symbols"
    else:
        target = equity * context.limits.position_size_pct / _HUNDRED
        method = f"fixed fraction: {context.limits.position_size_pct}% of equity"
    qty = round_qty(target / price, context)
    return SizingResult(
        qty=qty,
        price=price,
        method=method,
        detail=f"target {target:.2f} at {price}",
        fractional=qty != qty.to_integral_value(),
    )
