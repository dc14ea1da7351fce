"""Decisions per second and latency of evaluate_buy, through pluggy vs a plain loop.

The plain baseline calls the very same built-in rule functions directly and folds them the
same way, so the difference is what the plugin path (pluggy dispatch, per-phase plugins)
costs. Run with ``nox -s bench`` or ``python benchmarks/bench_decision.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import attrs

from tradekit import StrategyScalingPolicy, evaluate_buy
from tradekit.decision import BuyDecision, ScalingContext
from tradekit.decision.context import OrderCounters
from tradekit.decision.rules import (
    direction,
    feasibility,
    freshness,
    preflight,
    qualification,
    safety,
)
from tradekit.decision.verdict import fold, order_checks
from tradekit.guard import Hold, Scope, TradingState, TradingStates, Trigger
from tradekit.guard import rule as trading_state
from tradekit.plugins import Plugins
from tradekit.testing import DEFAULT_NOW, make_context, make_position

ALL_RULES = (
    *preflight.RULES,
    *trading_state.RULES,
    *freshness.RULES,
    *safety.RULES,
    *direction.RULES,
    *qualification.RULES,
    *feasibility.RULES,
)


def plain_evaluate(ctx: ScalingContext) -> BuyDecision:
    checks = order_checks(rule(ctx) for rule in ALL_RULES)
    return BuyDecision(
        decision_id="dec-plain",
        symbol=ctx.symbol,
        strategy=ctx.strategy,
        signal_id=ctx.signal.signal_id,
        action=fold(checks, is_scale_in=ctx.is_scale_in),
        checks=checks,
        entry_count=ctx.entry_count,
        max_entries=ctx.max_entries,
        position_pct=ctx.position_pct,
        allocation_cap_pct=ctx.allocation_cap_pct,
        risk_amount=ctx.risk_amount,
        price=ctx.market.price,
        confidence=ctx.signal.confidence,
        evaluated_at=ctx.now,
    )


# A realistic guard state: a cooldown on another symbol, a reduce-only on this one.
_HELD = TradingStates(
    [
        Hold(
            scope=Scope.symbol(symbol),
            trigger=trigger,
            state=TradingState.REDUCE_ONLY,
            since=DEFAULT_NOW - timedelta(hours=1),
            reason="bench",
            actor="trigger:bench",
            until=DEFAULT_NOW + timedelta(hours=1),
        )
        for symbol, trigger in (("PFE", Trigger.EXIT_COOLDOWN), ("KO", Trigger.UNRECONCILED))
    ]
)


def contexts() -> list[ScalingContext]:
    policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4, min_bars_between_entries=2)
    pos = make_position(
        entries=[
            (timedelta(days=4), Decimal(55), Decimal(10)),
            (timedelta(days=2), Decimal(58), Decimal(10)),
        ]
    )
    return [
        make_context(),  # enter new
        make_context(policy=policy, position=pos, bars_since_last_entry=3),  # scale in
        make_context(policy=policy, position=pos, counters=OrderCounters(orders_today=3), confidence=3),  # skip
        make_context(unreconciled={"KO"}, broker_checked=False),  # block
        make_context(trading_states=_HELD),  # block: the trading-state guard holds the symbol
    ]


def measure(fn: Callable[[ScalingContext], BuyDecision], ctxs: list[ScalingContext], n: int) -> list[int]:
    # A fresh copy per call: cached properties must not make later calls look free.
    samples: list[int] = []
    for i in range(n):
        base = ctxs[i % len(ctxs)]
        ctx = attrs.evolve(base, trading_states=attrs.evolve(base.trading_states))
        start = time.perf_counter_ns()
        fn(ctx)
        samples.append(time.perf_counter_ns() - start)
    return samples


def report(name: str, samples: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[int(len(ordered) * 0.99)] / 1000
    rate = len(samples) / (sum(samples) / 1e9)
    mean = statistics.fmean(samples) / 1000
    print(f"{name:<28} {rate:>12,.0f} decisions/s   p50 {p50:7.1f} µs   p99 {p99:7.1f} µs   mean {mean:7.1f} µs")
    return rate, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40_000)
    args = parser.parse_args()
    plugins = Plugins(load_entrypoints=False, env={})
    ctxs = contexts()
    # Warm up both paths and check they agree before timing anything.
    for ctx in ctxs:
        a, b = evaluate_buy(ctx, plugins=plugins), plain_evaluate(ctx)
        assert (a.action, a.checks) == (b.action, b.checks), "plugin path and plain path disagree"
    print(
        f"evaluate_buy with {len(ALL_RULES)} built-in rules (the trading-state guard's included), "
        f"{args.n:,} decisions per path, {len(ctxs)} context shapes"
    )
    plain = report("plain functions (baseline)", measure(plain_evaluate, ctxs, args.n))
    plug = report(
        "pluggy (evaluate_buy hook)",
        measure(lambda c: evaluate_buy(c, plugins=plugins), ctxs, args.n),
    )
    print(f"plugin path / plain path: {plain[0] / plug[0]:.2f}x time per decision (target <= 2x); p99 target < 100 µs")


if __name__ == "__main__":
    main()
