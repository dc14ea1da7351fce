"""Freshness: a signal too old, or a price that gapped away from it, is not acted on."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.rules.waiting import calendar_of
from tradekit.decision.verdict import Check, block, not_applicable, passed, skip
from tradekit.domain.values import pct_of
from tradekit.hookspecs import hookimpl

PHASE = RulePhase.FRESHNESS

# Checks whose text never varies are built once: the engine runs on every signal.
_NA_PRICE_GAP = not_applicable("price_gap", PHASE, "no reference price on the signal")
# Clocks disagree a little; a signal stamped a minute ahead is not "from the future".
_CLOCK_SKEW = timedelta(minutes=1)


def signal_age(ctx: ScalingContext) -> Check:
    limits = ctx.limits
    return _signal_age(
        ctx.signal.generated_at, ctx.now, limits.max_signal_age_sessions, limits.max_signal_age, limits.calendar
    )


# The check depends on these alone (UTC times), and the signals judged at one open share all
# of them: remembered, not worked out again for each.
@functools.lru_cache(maxsize=4096)
def _signal_age(
    generated_at: datetime, now: datetime, sessions: int | None, max_age: timedelta, calendar: str
) -> Check:
    age = now - generated_at
    if age < -_CLOCK_SKEW:
        return skip(
            "signal_age",
            PHASE,
            ReasonCode.STALE_SIGNAL,
            f"signal is stamped {-age} in the future; the clock or the source is wrong",
        )
    if sessions is not None:
        opened = calendar_of(calendar).opens_between(generated_at, now)
        if opened > sessions:
            return skip(
                "signal_age",
                PHASE,
                ReasonCode.STALE_SIGNAL,
                f"{opened} {calendar} sessions opened since the signal ({age} ago); "
                f"it may be acted on in the first {_sessions(sessions)} only",
            )
        return passed(
            "signal_age",
            PHASE,
            f"signal is {max(age, timedelta(0))} old: {_sessions(opened)} opened since, {sessions} allowed",
        )
    if age > max_age:
        return skip(
            "signal_age",
            PHASE,
            ReasonCode.STALE_SIGNAL,
            f"signal is {age} old, more than the {max_age} allowed",
        )
    return passed("signal_age", PHASE, f"signal is {max(age, timedelta(0))} old")


def _sessions(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'}"


def market_price(ctx: ScalingContext) -> Check:
    if ctx.market.price is None:
        return block(
            "market_price",
            PHASE,
            ReasonCode.MARKET_DATA_UNAVAILABLE,
            f"no current price for {ctx.symbol}: cannot size or cap the order safely",
        )
    return passed("market_price", PHASE, f"current price {ctx.market.price}")


def price_gap(ctx: ScalingContext) -> Check:
    ref, price = ctx.signal.reference_price, ctx.market.price
    if ref is None or price is None:
        return _NA_PRICE_GAP
    gap = pct_of(abs(price - ref), ref)
    if gap > ctx.limits.max_gap_pct:
        return skip(
            "price_gap",
            PHASE,
            ReasonCode.OVERNIGHT_GAP,
            f"price {price} is {gap:.2f}% from the signal's {ref}, more than {ctx.limits.max_gap_pct}%",
        )
    return passed("price_gap", PHASE, f"price {price} within {gap:.2f}% of the signal's {ref}")


RULES: tuple[Rule, ...] = (signal_age, market_price, price_gap)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [rule(context) for rule in RULES]
