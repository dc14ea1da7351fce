"""Every reason code the engine can give is reached by a concrete situation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradekit import (
    BuyAction,
    PriceStructure,
    ReasonCode,
    StrategyScalingPolicy,
    evaluate_buy,
    hookimpl,
)
from tradekit.decision import AccountLimits, OrderCounters, PendingOrder, ScalingContext, TierState
from tradekit.domain import OrderStatus, Side
from tradekit.guard import ACCOUNT, Hold, Scope, TradingState, TradingStates, Trigger
from tradekit.plugins import Plugins
from tradekit.testing import DEFAULT_NOW, make_context, make_position

SCALING = StrategyScalingPolicy(allow_scaling=True, max_entries=4)
POS = make_position()


def _held(scope: Scope, state: TradingState) -> TradingStates:
    return TradingStates(
        [
            Hold(
                scope=scope,
                trigger=Trigger.MANUAL,
                state=state,
                since=DEFAULT_NOW - timedelta(hours=1),
                reason="operator",
                actor="user:test",
                needs_resume=True,
            )
        ]
    )


# reason -> (expected action, make_context keyword arguments)
SITUATIONS: dict[ReasonCode, tuple[BuyAction, dict[str, Any]]] = {
    ReasonCode.UNRECONCILED_BROKER_POSITION: (BuyAction.BLOCK, {"unreconciled": {"KO"}}),
    ReasonCode.TRADING_BLOCKED: (BuyAction.BLOCK, {"trading_blocked": True}),
    ReasonCode.TRADING_HALTED: (BuyAction.BLOCK, {"trading_states": _held(ACCOUNT, TradingState.HALTED)}),
    ReasonCode.REDUCE_ONLY: (
        BuyAction.BLOCK,
        {"policy": SCALING, "position": POS, "trading_states": _held(Scope.symbol("KO"), TradingState.REDUCE_ONLY)},
    ),
    ReasonCode.STALE_SIGNAL: (BuyAction.SKIP, {"signal_age": timedelta(hours=25)}),
    ReasonCode.OVERNIGHT_GAP: (
        BuyAction.SKIP,
        {"reference_price": Decimal(60), "price": Decimal("61.21")},
    ),
    ReasonCode.MARKET_DATA_UNAVAILABLE: (
        BuyAction.BLOCK,
        {"price": None, "reference_price": Decimal(60)},
    ),
    ReasonCode.SCALE_IN_DISABLED: (
        BuyAction.SKIP,
        {"policy": SCALING, "position": POS, "limits": AccountLimits(scale_in_enabled=False)},
    ),
    ReasonCode.SCALING_NOT_PERMITTED: (BuyAction.BLOCK, {"position": POS}),
    ReasonCode.POSITION_OWNED_BY_OTHER_STRATEGY: (
        BuyAction.BLOCK,
        {"policy": SCALING, "position": make_position(strategy="other")},
    ),
    ReasonCode.MAX_ENTRIES_REACHED: (
        BuyAction.BLOCK,
        {
            "policy": SCALING,
            "position": make_position(entries=[(timedelta(days=9 - i), Decimal(50), Decimal(1)) for i in range(4)]),
        },
    ),
    ReasonCode.MAX_POSITION_SIZE: (
        BuyAction.BLOCK,
        {
            "policy": StrategyScalingPolicy(allow_scaling=True, max_entries=4, max_position_notional=Decimal(500)),
            "position": POS,
        },
    ),
    ReasonCode.ALLOCATION_CAP: (
        BuyAction.BLOCK,
        {
            "policy": SCALING,
            "position": make_position(entries=[(timedelta(days=2), Decimal(60), Decimal(90))]),
        },
    ),
    ReasonCode.PENDING_ORDER_CONFLICT: (
        BuyAction.BLOCK,
        {
            "pending_orders": [
                PendingOrder(
                    client_order_id="tk-1",
                    side=Side.BUY,
                    status=OrderStatus.ACCEPTED,
                    qty=Decimal(1),
                )
            ]
        },
    ),
    ReasonCode.BROKER_LEDGER_MISMATCH: (
        BuyAction.BLOCK,
        {"policy": SCALING, "position": POS, "broker_qty": Decimal(7)},
    ),
    ReasonCode.RISK_BUDGET_EXCEEDED: (
        BuyAction.BLOCK,
        {
            "policy": StrategyScalingPolicy(
                allow_scaling=True,
                max_entries=4,
                risk_budget_pct=Decimal("0.05"),
                stop_distance_pct=Decimal(10),
            ),
            "position": POS,
        },
    ),
    ReasonCode.DAILY_ORDER_LIMIT: (BuyAction.SKIP, {"counters": OrderCounters(orders_today=10)}),
    ReasonCode.ORDER_COOLDOWN: (
        BuyAction.SKIP,
        {"counters": OrderCounters(last_order_at=DEFAULT_NOW - timedelta(hours=3))},
    ),
    ReasonCode.SIGNAL_ALREADY_ACTED_TODAY: (
        BuyAction.SKIP,
        {"counters": OrderCounters(acted_on_symbol_today=True)},
    ),
    ReasonCode.DIRECTION_CONFLICT: (BuyAction.BLOCK, {"side": Side.SELL}),
    ReasonCode.EXIT_PENDING: (BuyAction.BLOCK, {"exit_pending": True}),
    ReasonCode.ENTRY_COOLDOWN: (
        BuyAction.SKIP,
        {
            "policy": SCALING,
            "position": make_position(entries=[(timedelta(hours=1), Decimal(58), Decimal(10))]),
        },
    ),
    ReasonCode.MIN_BARS_NOT_MET: (
        BuyAction.SKIP,
        {
            "policy": StrategyScalingPolicy(allow_scaling=True, max_entries=4, min_bars_between_entries=3),
            "position": POS,
            "bars_since_last_entry": 2,
        },
    ),
    ReasonCode.CONFIDENCE_TOO_LOW: (
        BuyAction.SKIP,
        {"policy": SCALING, "position": POS, "confidence": 4},
    ),
    ReasonCode.PRICE_STRUCTURE: (
        BuyAction.SKIP,
        {
            "policy": StrategyScalingPolicy(allow_scaling=True, max_entries=4, price_structure=PriceStructure.PYRAMID),
            "position": POS,
            "price": Decimal(57),
        },
    ),
    ReasonCode.VOLATILITY_REGIME: (
        BuyAction.SKIP,
        {
            "policy": StrategyScalingPolicy(allow_scaling=True, max_entries=4, volatility_max=Decimal(3)),
            "position": POS,
            "volatility_pct": Decimal("3.5"),
        },
    ),
    ReasonCode.EXECUTION_INFEASIBLE: (
        BuyAction.SKIP,
        {
            "policy": SCALING,
            "position": make_position(entries=[(timedelta(days=2), Decimal(60), Decimal("83.2"))]),
        },
    ),
    ReasonCode.INSUFFICIENT_BUYING_POWER: (BuyAction.SKIP, {"buying_power": Decimal(5)}),
    ReasonCode.TIER_CAPACITY: (
        BuyAction.SKIP,
        {"tier": TierState(tier="TIER3", exposure=Decimal(30_000), cap_pct=Decimal(30))},
    ),
}

# Reached outside evaluate_buy's built-in rules, each tested where it arises.
ELSEWHERE = {
    ReasonCode.RULE_ERROR,  # below: a plugin rule that raises
    ReasonCode.MAX_POSITION_PCT_OF_ACCOUNT,  # execution pipeline, after sizing
    ReasonCode.BELOW_MIN_NOTIONAL,  # execution pipeline, after sizing
    ReasonCode.ZERO_QUANTITY,  # execution pipeline, after sizing
}


def test_every_reason_code_has_a_situation_or_a_home() -> None:
    assert set(SITUATIONS) | ELSEWHERE == set(ReasonCode)


@pytest.mark.parametrize("reason", list(SITUATIONS), ids=str)
def test_reason_code_is_reached(tradekit_plugins: Plugins, reason: ReasonCode) -> None:
    action, kwargs = SITUATIONS[reason]
    decision = evaluate_buy(make_context(**kwargs), plugins=tradekit_plugins)
    assert decision.action is action
    assert reason in decision.reasons


class ExplodingRule:
    @hookimpl
    def evaluate_buy(self, context: ScalingContext) -> None:
        raise RuntimeError("data feed went away")


def test_a_rule_that_raises_blocks_the_buy_and_names_itself() -> None:
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("exploding", ExplodingRule())])
    decision = evaluate_buy(make_context(), plugins=plugins)
    assert decision.action is BuyAction.BLOCK
    assert decision.reasons == (ReasonCode.RULE_ERROR,)
    failing = [c for c in decision.checks if c.reason is ReasonCode.RULE_ERROR]
    assert failing[0].rule == "exploding"
    # the other rules still ran and are in the trace
    assert any(c.rule == "unreconciled_symbol" for c in decision.checks)
