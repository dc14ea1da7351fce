"""The pair rule: judges Type B pair entries and rescue scale-ins inside ``evaluate_buy``.

A pluggy plugin like tradekit's own rules. It only speaks up for pair decisions (a context
whose market features carry ``ccxt_pair.*`` figures, see ``features``); for every other buy
it returns nothing. The built-in rules still judge every pair decision: max entries, the
minimum interval between entries (the policy's ``min_time_between_entries``), confidence,
pending orders, broker/ledger agreement, exits in flight, account limits.

Its checks, in trace order:

- freshness — a scale-in needs a signal no older than the pair's ``signal_max_age``
  (SKIP ``stale_signal``); every entry needs both books no older than ``max_book_age_seconds``
  by the venue's clock (SKIP ``market_data_unavailable``): a frozen feed must not trade;
- hard safety — the entries' notional including this add must stay within
  ``max_total_notional`` (BLOCK ``max_position_size``); the long leg including this entry must
  stay within the account's caps (SKIP with the cap's code, as the core's order limits do);
- directionality — no other open pair on the same symbol with other venues, which would net
  against this one (BLOCK ``direction_conflict``);
- qualification — after a failed entry the pair key waits out its cooldown before the next
  entry (SKIP ``entry_cooldown``); an entry needs a positive spread; the k-th add needs a spread of at least
  the initial entry's spread times ``multiplier**k`` (SKIP ``price_structure``); a pair whose
  initial spread was not positive cannot be rescued (BLOCK ``scaling_not_permitted``);
- feasibility — both books must fill the quantity within ``max_slippage_bps`` (SKIP
  ``execution_infeasible``), the quantity must meet both venues' minimums (SKIP
  ``below_min_notional``) and fit in one market order on each (SKIP ``execution_infeasible``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import tradekit_venue_ccxt.pairs.features as f
from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.verdict import Check, block, not_applicable, passed, skip
from tradekit.domain.values import ZERO
from tradekit.hookspecs import hookimpl
from tradekit_venue_ccxt.pairs.spread import fmt_bps, next_trigger

RULE_FRESHNESS = "ccxt_pair_signal_freshness"
RULE_NOTIONAL = "ccxt_pair_total_notional"
RULE_CAPS = "ccxt_pair_account_caps"
RULE_CONFLICT = "ccxt_pair_conflict"
RULE_SPREAD = "ccxt_pair_spread_trigger"
RULE_BOOK = "ccxt_pair_book_depth"
RULE_SIZE = "ccxt_pair_order_size"
RULE_BOOK_AGE = "ccxt_pair_book_freshness"
RULE_COOLDOWN = "ccxt_pair_entry_cooldown"
RULE_FEATURES = "ccxt_pair_features"

PAIR_RULES: tuple[str, ...] = (
    RULE_FRESHNESS,
    RULE_BOOK_AGE,
    RULE_NOTIONAL,
    RULE_CAPS,
    RULE_CONFLICT,
    RULE_COOLDOWN,
    RULE_SPREAD,
    RULE_BOOK,
    RULE_SIZE,
)
"""Every check a pair decision's trace must contain; the trader refuses to act without them."""

_ONE = Decimal(1)
_HUNDRED = Decimal(100)


def is_pair_context(context: ScalingContext) -> bool:
    return any(name.startswith(f.PREFIX) for name in context.market.features)


def _missing(context: ScalingContext) -> list[str]:
    required = f.REQUIRED + (f.REQUIRED_FOR_SCALE_IN if context.is_scale_in else ())
    return [name for name in required if name not in context.market.features]


def signal_freshness(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.FRESHNESS
    if not ctx.is_scale_in:
        return not_applicable(RULE_FRESHNESS, phase, "first entry: the account's signal age limit applies")
    age, limit = x[f.SIGNAL_AGE_SECONDS], x[f.SIGNAL_MAX_AGE_SECONDS]
    if age > limit:
        return skip(
            RULE_FRESHNESS,
            phase,
            ReasonCode.STALE_SIGNAL,
            f"a scale-in needs a fresh signal: this one is {age:.0f}s old, at most {limit:.0f}s allowed",
        )
    return passed(RULE_FRESHNESS, phase, f"signal {age:.0f}s old, at most {limit:.0f}s allowed for a scale-in")


def book_freshness(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.FRESHNESS
    limit = x[f.MAX_BOOK_AGE_SECONDS]
    for leg, age in (("long", x[f.LONG_BOOK_AGE_SECONDS]), ("short", x[f.SHORT_BOOK_AGE_SECONDS])):
        if age > limit:
            return skip(
                RULE_BOOK_AGE,
                phase,
                ReasonCode.MARKET_DATA_UNAVAILABLE,
                f"the {leg} venue's book is {age:.3f}s old by the venue's clock, at most {limit:.0f}s allowed: "
                "its prices may be gone",
            )
    return passed(
        RULE_BOOK_AGE,
        phase,
        f"books {x[f.LONG_BOOK_AGE_SECONDS]:.3f}s (long) and {x[f.SHORT_BOOK_AGE_SECONDS]:.3f}s (short) old, "
        f"at most {limit:.0f}s allowed",
    )


def entry_cooldown(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.QUALIFICATION
    failures, wait, left = x[f.FAILED_ENTRIES], x[f.ENTRY_COOLDOWN_SECONDS], x[f.ENTRY_COOLDOWN_LEFT_SECONDS]
    if failures <= 0:
        return passed(RULE_COOLDOWN, phase, "no failed entry since the pair key's last entry that opened")
    if left > 0:
        return skip(
            RULE_COOLDOWN,
            phase,
            ReasonCode.ENTRY_COOLDOWN,
            f"{failures:.0f} entr{'y' if failures == 1 else 'ies'} of this pair failed in a row; the next waits "
            f"{wait / 60:.0f} min after the latest failure: {left / 60:.1f} min left",
        )
    return passed(
        RULE_COOLDOWN,
        phase,
        f"{failures:.0f} failed entr{'y' if failures == 1 else 'ies'} in a row; the {wait / 60:.0f} min wait is over",
    )


def total_notional(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.HARD_SAFETY
    held, add, limit = x[f.TOTAL_NOTIONAL], x[f.ADD_NOTIONAL], x[f.MAX_TOTAL_NOTIONAL]
    if held + add > limit:
        return block(
            RULE_NOTIONAL,
            phase,
            ReasonCode.MAX_POSITION_SIZE,
            f"{held:.2f} held + {add:.2f} for this entry = {held + add:.2f} per leg, above the pair's "
            f"max_total_notional {limit}",
        )
    return passed(RULE_NOTIONAL, phase, f"{held:.2f} held + {add:.2f} within max_total_notional {limit}")


# Each account cap on one position: what it allows in money, how it reads in a trace, and the
# code the core's order limits use for it.
def _account_caps(ctx: ScalingContext) -> list[tuple[Decimal, str, ReasonCode]]:
    equity = ctx.account.equity
    caps: list[tuple[Decimal, str, ReasonCode]] = []
    for name, pct, code in (
        ("allocation cap", ctx.allocation_cap_pct, ReasonCode.ALLOCATION_CAP),
        ("max position % of account", ctx.limits.max_position_pct_of_account, ReasonCode.MAX_POSITION_PCT_OF_ACCOUNT),
    ):
        limit = equity * pct / _HUNDRED
        caps.append((limit, f"{name} {limit:.2f} ({pct}% of equity {equity:.2f})", code))
    if ctx.policy.max_position_notional is not None:
        limit = ctx.policy.max_position_notional
        caps.append((limit, f"policy's max position size {limit}", ReasonCode.MAX_POSITION_SIZE))
    return caps


def account_caps(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    # The core's cap rules stop a buy only once the position sits at a cap, and its sizing,
    # which clips an order to fit, does not size pair entries: their size is the config's.
    # So the entry's own notional is counted here, before any leg is sent.
    phase = RulePhase.HARD_SAFETY
    # The long leg at the larger of what its entries cost and what it is worth now: the caps
    # must hold on both.
    held = max(ctx.position_value, x[f.TOTAL_NOTIONAL])
    add = x[f.ADD_NOTIONAL]
    after = held + add
    caps = _account_caps(ctx)
    for limit, cap, code in caps:
        if after > limit:
            return skip(
                RULE_CAPS,
                phase,
                code,
                f"{held:.2f} held + {add:.2f} for this entry = {after:.2f} on the long leg, above the {cap}",
            )
    tier = ctx.tier
    if tier is not None:
        room = ctx.account.equity * tier.cap_pct / _HUNDRED - tier.exposure
        if add > room:
            return skip(
                RULE_CAPS,
                phase,
                ReasonCode.TIER_CAPACITY,
                f"{add:.2f} for this entry is more than the {max(room, ZERO):.2f} left under tier {tier.tier}'s "
                f"{tier.cap_pct}% cap",
            )
    _limit, tightest, _code = min(caps, key=lambda c: c[0])
    return passed(RULE_CAPS, phase, f"{held:.2f} held + {add:.2f} = {after:.2f} on the long leg, within the {tightest}")


def conflict(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.DIRECTIONALITY
    others = x[f.CONFLICTING_PAIRS]
    if others > 0:
        return block(
            RULE_CONFLICT,
            phase,
            ReasonCode.DIRECTION_CONFLICT,
            f"{others} other open pair(s) trade this symbol on other venues; their legs would net against this one",
        )
    return passed(RULE_CONFLICT, phase, "no other open pair on this symbol")


def spread_trigger(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.QUALIFICATION
    spread = x[f.SPREAD]
    if not ctx.is_scale_in:
        if spread <= 0:
            return skip(
                RULE_SPREAD,
                phase,
                ReasonCode.PRICE_STRUCTURE,
                f"entry spread {fmt_bps(spread)} is not positive: the short venue is not the dearer one",
            )
        return passed(RULE_SPREAD, phase, f"entry spread {fmt_bps(spread)}")
    initial, multiplier = x[f.INITIAL_SPREAD], x[f.TRIGGER_MULTIPLIER]
    if initial <= 0:
        return block(
            RULE_SPREAD,
            phase,
            ReasonCode.SCALING_NOT_PERMITTED,
            f"initial spread {fmt_bps(initial)} is not positive: a widening rescue is undefined for this pair",
        )
    if multiplier <= _ONE:
        return block(
            RULE_SPREAD,
            phase,
            ReasonCode.SCALING_NOT_PERMITTED,
            f"trigger multiplier {multiplier} must be above 1",
        )
    k = ctx.entry_count
    trigger = next_trigger(initial, multiplier, k)
    if spread < trigger:
        return skip(
            RULE_SPREAD,
            phase,
            ReasonCode.PRICE_STRUCTURE,
            f"spread {fmt_bps(spread)} is below add #{k}'s trigger {fmt_bps(trigger)} "
            f"(initial {fmt_bps(initial)} x {multiplier}^{k})",
        )
    return passed(
        RULE_SPREAD,
        phase,
        f"spread {fmt_bps(spread)} reaches add #{k}'s trigger {fmt_bps(trigger)} "
        f"(initial {fmt_bps(initial)} x {multiplier}^{k})",
    )


def book_depth(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.FEASIBILITY
    for leg, fill, slip in (
        ("long", x[f.LONG_BOOK_FILL], x[f.LONG_SLIPPAGE_BPS]),
        ("short", x[f.SHORT_BOOK_FILL], x[f.SHORT_SLIPPAGE_BPS]),
    ):
        if fill < _ONE:
            return skip(
                RULE_BOOK,
                phase,
                ReasonCode.EXECUTION_INFEASIBLE,
                f"the {leg} venue's book fills only {fill:.1%} of the quantity",
            )
        if slip > x[f.MAX_SLIPPAGE_BPS]:
            return skip(
                RULE_BOOK,
                phase,
                ReasonCode.EXECUTION_INFEASIBLE,
                f"the {leg} leg would slip {slip:.2f} bps, more than max_slippage_bps {x[f.MAX_SLIPPAGE_BPS]}",
            )
    return passed(
        RULE_BOOK,
        phase,
        f"both books fill the quantity; slippage long {x[f.LONG_SLIPPAGE_BPS]:.2f} bps, "
        f"short {x[f.SHORT_SLIPPAGE_BPS]:.2f} bps (max {x[f.MAX_SLIPPAGE_BPS]})",
    )


def order_size(ctx: ScalingContext, x: Mapping[str, Decimal]) -> Check:
    phase = RulePhase.FEASIBILITY
    qty, minimum, maximum = x[f.ORDER_QTY], x[f.MIN_ORDER_QTY], x.get(f.MAX_ORDER_QTY)
    if qty <= 0 or qty < minimum:
        return skip(
            RULE_SIZE,
            phase,
            ReasonCode.BELOW_MIN_NOTIONAL,
            f"quantity {qty} is below what both venues accept ({minimum})",
        )
    if maximum is not None and qty > maximum:
        # The long leg would fill and the short be refused: a paid round trip.
        return skip(
            RULE_SIZE,
            phase,
            ReasonCode.EXECUTION_INFEASIBLE,
            f"quantity {qty} is above the largest market order both venues take ({maximum})",
        )
    within = f" and maximum {maximum}" if maximum is not None else ""
    return passed(RULE_SIZE, phase, f"quantity {qty} meets both venues' minimum {minimum}{within}")


_RULES = (
    signal_freshness,
    book_freshness,
    total_notional,
    account_caps,
    conflict,
    entry_cooldown,
    spread_trigger,
    book_depth,
    order_size,
)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check] | None:
    """Judge a pair decision; say nothing about any other buy."""
    if not is_pair_context(context):
        return None
    missing = _missing(context)
    if missing:
        return [
            block(
                RULE_FEATURES,
                RulePhase.PREFLIGHT,
                ReasonCode.MARKET_DATA_UNAVAILABLE,
                f"pair decision without the figures the pair rule needs: {', '.join(missing)}",
            )
        ]
    features = context.market.features
    return [rule(context, features) for rule in _RULES]
