"""Strategy qualification: is this a good moment to add? Failures are SKIPs, not BLOCKs."""

from __future__ import annotations

from decimal import Decimal

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.rules.waiting import waited
from tradekit.decision.verdict import Check, not_applicable, passed, skip
from tradekit.hookspecs import hookimpl
from tradekit.strategy.policy import PriceStructure

PHASE = RulePhase.QUALIFICATION

# Checks whose text never varies are built once: the engine runs on every signal.
_NA_ENTRY_COOLDOWN = not_applicable("entry_cooldown", PHASE, "new position")
_NA_MIN_BARS = not_applicable("min_bars", PHASE, "no minimum bar count applies")
_NA_PRICE_STRUCTURE = not_applicable("price_structure", PHASE, "new position")
_NA_PRICE_STRUCTURE_NO_PRICE = not_applicable("price_structure", PHASE, "no current price (blocked in freshness)")
_NA_VOLATILITY_REGIME = not_applicable("volatility_regime", PHASE, "no volatility bounds apply")
_HUNDRED = Decimal(100)


def entry_cooldown(ctx: ScalingContext) -> Check:
    if not ctx.is_scale_in or ctx.position is None:
        return _NA_ENTRY_COOLDOWN
    wait = max(ctx.policy.min_time_between_entries, ctx.limits.min_time_between_entries)
    over, elapsed = waited(ctx, ctx.position.last_entry_time, wait)
    if not over:
        return skip(
            "entry_cooldown",
            PHASE,
            ReasonCode.ENTRY_COOLDOWN,
            f"last entry {elapsed} ago, {wait} required between entries",
        )
    return passed("entry_cooldown", PHASE, f"last entry {elapsed} ago, {wait} required")


def min_bars(ctx: ScalingContext) -> Check:
    needed = ctx.policy.min_bars_between_entries
    if not ctx.is_scale_in or needed == 0:
        return _NA_MIN_BARS
    bars = ctx.market.bars_since_last_entry
    if bars is None or bars < needed:
        seen = "an unknown number of" if bars is None else str(bars)
        return skip(
            "min_bars",
            PHASE,
            ReasonCode.MIN_BARS_NOT_MET,
            f"{seen} bars since the last entry, {needed} required",
        )
    return passed("min_bars", PHASE, f"{bars} bars since the last entry, {needed} required")


def confidence(ctx: ScalingContext) -> Check:
    got = ctx.signal.confidence
    if ctx.is_scale_in:
        need = max(ctx.policy.min_confidence, ctx.limits.add_on_confidence_threshold)
        what = "add-on"
    else:
        need = ctx.policy.min_entry_confidence
        what = "entry"
    if got < need:
        return skip(
            "confidence",
            PHASE,
            ReasonCode.CONFIDENCE_TOO_LOW,
            f"{what} confidence {got} < threshold {need}",
        )
    return passed("confidence", PHASE, f"{what} confidence {got} >= {need}")


def price_structure(ctx: ScalingContext) -> Check:
    if not ctx.is_scale_in or ctx.position is None:
        return _NA_PRICE_STRUCTURE
    price = ctx.market.price
    if price is None:
        return _NA_PRICE_STRUCTURE_NO_PRICE
    last = ctx.position.last_entry_price
    structure, step = ctx.policy.price_structure, ctx.policy.price_step_pct
    floor_pct = ctx.limits.min_add_pct_above_last_entry
    if floor_pct > 0 and price < last * (1 + floor_pct / _HUNDRED):
        return skip(
            "price_structure",
            PHASE,
            ReasonCode.PRICE_STRUCTURE,
            f"price {price} is not {floor_pct}% above the last entry {last} (account rule)",
        )
    if structure is PriceStructure.PYRAMID:
        trigger = last * (1 + step / _HUNDRED)
        if price < trigger:
            return skip(
                "price_structure",
                PHASE,
                ReasonCode.PRICE_STRUCTURE,
                f"pyramid: price {price} below the trigger {trigger:.4f} ({step}% above last entry {last})",
            )
    elif structure is PriceStructure.AVERAGE_DOWN:
        trigger = last * (1 - step / _HUNDRED)
        if price > trigger:
            return skip(
                "price_structure",
                PHASE,
                ReasonCode.PRICE_STRUCTURE,
                f"average-down: price {price} above the trigger {trigger:.4f} ({step}% below last entry {last})",
            )
    return passed("price_structure", PHASE, f"{structure.value}: price {price} vs last entry {last}")


def volatility_regime(ctx: ScalingContext) -> Check:
    lo, hi = ctx.policy.volatility_min, ctx.policy.volatility_max
    if not ctx.is_scale_in or (lo is None and hi is None):
        return _NA_VOLATILITY_REGIME
    vol = ctx.market.volatility_pct
    if vol is None:
        return skip("volatility_regime", PHASE, ReasonCode.VOLATILITY_REGIME, "volatility unknown")
    if (lo is not None and vol < lo) or (hi is not None and vol > hi):
        return skip(
            "volatility_regime",
            PHASE,
            ReasonCode.VOLATILITY_REGIME,
            f"volatility {vol}% outside [{lo if lo is not None else '-'}, {hi if hi is not None else '-'}]",
        )
    return passed("volatility_regime", PHASE, f"volatility {vol}% within bounds")


RULES: tuple[Rule, ...] = (entry_cooldown, min_bars, confidence, price_structure, volatility_regime)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [rule(context) for rule in RULES]
