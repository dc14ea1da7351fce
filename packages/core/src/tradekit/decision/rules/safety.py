"""Hard safety: limits that are never waived. A failure here is a BLOCK (or, for the
counters that reset with time, a SKIP)."""

from __future__ import annotations

from decimal import Decimal

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.rules.waiting import waited
from tradekit.decision.verdict import Check, block, not_applicable, passed, skip
from tradekit.domain.values import ZERO
from tradekit.hookspecs import hookimpl

PHASE = RulePhase.HARD_SAFETY

# Checks whose text never varies are built once: the engine runs on every signal.
_NA_POSITION_OWNER = not_applicable("position_owner", PHASE, "no open position")
_NA_SCALING_PERMITTED = not_applicable("scaling_permitted", PHASE, "new position, not a scale-in")
_PASS_SCALING_PERMITTED = passed("scaling_permitted", PHASE, "strategy policy and account allow scale-ins")
_NA_MAX_ENTRIES = not_applicable("max_entries", PHASE, "new position: this would be entry 1")
_NA_MAX_POSITION_SIZE = not_applicable("max_position_size", PHASE, "policy sets no maximum position size")
_PASS_PENDING_ORDERS = passed("pending_orders", PHASE, "no open orders for the symbol")
_NA_BROKER_LEDGER_MATCH = not_applicable("broker_ledger_match", PHASE, "broker not asked: preflight blocks the symbol")
_NA_RISK_BUDGET = not_applicable("risk_budget", PHASE, "policy sets no risk budget")
_NA_ONE_SIGNAL_PER_DAY = not_applicable("one_signal_per_day", PHASE, "disabled in settings")


def position_owner(ctx: ScalingContext) -> Check:
    pos = ctx.position
    if pos is None or not pos.is_open:
        return _NA_POSITION_OWNER
    if pos.strategy is not None and pos.strategy != ctx.strategy:
        return block(
            "position_owner",
            PHASE,
            ReasonCode.POSITION_OWNED_BY_OTHER_STRATEGY,
            f"{ctx.symbol} is held by strategy {pos.strategy!r}; {ctx.strategy!r} may not add to it",
        )
    owner = pos.strategy or "nobody (adopted from the broker)"
    return passed("position_owner", PHASE, f"position owned by {owner}")


def scaling_permitted(ctx: ScalingContext) -> Check:
    if not ctx.is_scale_in:
        return _NA_SCALING_PERMITTED
    if not ctx.limits.scale_in_enabled:
        return skip(
            "scaling_permitted",
            PHASE,
            ReasonCode.SCALE_IN_DISABLED,
            "scale-ins are disabled for the account (scale_in.enabled = false)",
        )
    if not ctx.policy.allow_scaling:
        return block(
            "scaling_permitted",
            PHASE,
            ReasonCode.SCALING_NOT_PERMITTED,
            f"strategy {ctx.strategy!r} declares no scaling: one entry per position",
        )
    return _PASS_SCALING_PERMITTED


def max_entries(ctx: ScalingContext) -> Check:
    if not ctx.is_scale_in:
        return _NA_MAX_ENTRIES
    if ctx.entry_count >= ctx.max_entries:
        return block(
            "max_entries",
            PHASE,
            ReasonCode.MAX_ENTRIES_REACHED,
            f"{ctx.entry_count} entries already, the maximum is {ctx.max_entries}",
        )
    return passed("max_entries", PHASE, f"entry {ctx.entry_count + 1} of at most {ctx.max_entries}")


def max_position_size(ctx: ScalingContext) -> Check:
    limit = ctx.policy.max_position_notional
    if limit is None:
        return _NA_MAX_POSITION_SIZE
    if ctx.position_value >= limit:
        return block(
            "max_position_size",
            PHASE,
            ReasonCode.MAX_POSITION_SIZE,
            f"position worth {ctx.position_value:.2f} is at or above the policy's {limit}",
        )
    return passed("max_position_size", PHASE, f"position {ctx.position_value:.2f} below {limit}")


def allocation_cap(ctx: ScalingContext) -> Check:
    if ctx.account.equity <= ZERO:
        return block(
            "allocation_cap",
            PHASE,
            ReasonCode.ALLOCATION_CAP,
            f"account equity is {ctx.account.equity}: no allocation is possible",
        )
    cap = ctx.allocation_cap_pct
    if ctx.position_pct >= cap:
        return block(
            "allocation_cap",
            PHASE,
            ReasonCode.ALLOCATION_CAP,
            f"{ctx.symbol} is {ctx.position_pct:.2f}% of equity, at or above the {cap}% cap",
        )
    return passed("allocation_cap", PHASE, f"{ctx.position_pct:.2f}% of equity, cap {cap}%")


def pending_orders(ctx: ScalingContext) -> Check:
    if ctx.pending_orders:
        ids = ", ".join(f"{o.client_order_id} ({o.side} {o.status})" for o in ctx.pending_orders)
        return block(
            "pending_orders",
            PHASE,
            ReasonCode.PENDING_ORDER_CONFLICT,
            f"orders still open for {ctx.symbol}: {ids}",
        )
    return _PASS_PENDING_ORDERS


def broker_ledger_match(ctx: ScalingContext) -> Check:
    if not ctx.broker_checked:
        if ctx.symbol in ctx.unreconciled_symbols:
            return _NA_BROKER_LEDGER_MATCH
        return block(
            "broker_ledger_match",
            PHASE,
            ReasonCode.BROKER_LEDGER_MISMATCH,
            "the broker's position is unknown: never buy without the broker's truth",
        )
    ledger_qty = ctx.position.qty if ctx.position is not None else ZERO
    broker_qty = ctx.broker_position.qty if ctx.broker_position is not None else ZERO
    if ledger_qty != broker_qty:
        return block(
            "broker_ledger_match",
            PHASE,
            ReasonCode.BROKER_LEDGER_MISMATCH,
            f"ledger holds {ledger_qty} {ctx.symbol}, broker holds {broker_qty}",
        )
    return passed("broker_ledger_match", PHASE, f"ledger and broker agree on {broker_qty}")


def risk_budget(ctx: ScalingContext) -> Check:
    budget_pct = ctx.policy.risk_budget_pct
    if budget_pct is None:
        return _NA_RISK_BUDGET
    budget = ctx.account.equity * budget_pct / Decimal(100)
    if ctx.risk_amount >= budget:
        return block(
            "risk_budget",
            PHASE,
            ReasonCode.RISK_BUDGET_EXCEEDED,
            f"risk {ctx.risk_amount:.2f} is at or above the budget {budget:.2f} ({budget_pct}% of equity)",
        )
    return passed("risk_budget", PHASE, f"risk {ctx.risk_amount:.2f} within budget {budget:.2f}")


def daily_order_limit(ctx: ScalingContext) -> Check:
    limit = ctx.limits.daily_order_limit
    if ctx.counters.orders_today >= limit:
        return skip(
            "daily_order_limit",
            PHASE,
            ReasonCode.DAILY_ORDER_LIMIT,
            f"{ctx.counters.orders_today} orders sent today, the limit is {limit}",
        )
    return passed("daily_order_limit", PHASE, f"{ctx.counters.orders_today} of {limit} orders today")


def order_cooldown(ctx: ScalingContext) -> Check:
    last = ctx.counters.last_order_at
    if last is None:
        return passed("order_cooldown", PHASE, f"no earlier order for {ctx.symbol}")
    over, elapsed = waited(ctx, last, ctx.limits.order_cooldown)
    if not over:
        return skip(
            "order_cooldown",
            PHASE,
            ReasonCode.ORDER_COOLDOWN,
            f"last order for {ctx.symbol} {elapsed} ago, cooldown is {ctx.limits.order_cooldown}",
        )
    return passed("order_cooldown", PHASE, f"last order {elapsed} ago")


def one_signal_per_day(ctx: ScalingContext) -> Check:
    if not ctx.limits.one_signal_per_symbol_per_day:
        return _NA_ONE_SIGNAL_PER_DAY
    if ctx.counters.acted_on_symbol_today:
        return skip(
            "one_signal_per_day",
            PHASE,
            ReasonCode.SIGNAL_ALREADY_ACTED_TODAY,
            f"a buy signal for {ctx.symbol} was already acted on today",
        )
    return passed("one_signal_per_day", PHASE, f"first buy signal acted on for {ctx.symbol} today")


RULES: tuple[Rule, ...] = (
    position_owner,
    scaling_permitted,
    max_entries,
    max_position_size,
    allocation_cap,
    pending_orders,
    broker_ledger_match,
    risk_budget,
    daily_order_limit,
    order_cooldown,
    one_signal_per_day,
)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [rule(context) for rule in RULES]
