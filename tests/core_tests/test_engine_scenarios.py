"""The buy decision engine on the scenarios the source write-ups were built around."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tradekit import (
    BuyAction,
    PriceStructure,
    ReasonCode,
    StrategyScalingPolicy,
    evaluate_buy,
)
from tradekit.decision import AccountLimits, CheckOutcome
from tradekit.plugins import Plugins
from tradekit.testing import make_context, make_position

SCALING = StrategyScalingPolicy(allow_scaling=True, max_entries=4)


def test_buy_on_unreconciled_symbol_is_blocked(tradekit_plugins: Plugins) -> None:
    ctx = make_context(unreconciled={"KO"}, broker_checked=False)
    decision = evaluate_buy(ctx, plugins=tradekit_plugins)
    assert decision.action is BuyAction.BLOCK
    assert decision.reasons[0] is ReasonCode.UNRECONCILED_BROKER_POSITION


def test_no_position_enters_new(tradekit_plugins: Plugins) -> None:
    decision = evaluate_buy(make_context(), plugins=tradekit_plugins)
    assert decision.action is BuyAction.ENTER_NEW
    assert decision.reasons == ()
    assert decision.entry_count == 0


def test_position_with_cooldown_passed_scales_in(tradekit_plugins: Plugins) -> None:
    ctx = make_context(policy=SCALING, position=make_position(strategy="test-strategy"))
    decision = evaluate_buy(ctx, plugins=tradekit_plugins)
    assert decision.action is BuyAction.SCALE_IN
    assert decision.entry_count == 1


def test_entry_within_24_hours_is_skipped_for_cooldown(tradekit_plugins: Plugins) -> None:
    pos = make_position(entries=[(timedelta(hours=23), Decimal(58), Decimal(10))])
    decision = evaluate_buy(make_context(policy=SCALING, position=pos), plugins=tradekit_plugins)
    assert decision.action is BuyAction.SKIP
    assert decision.reasons == (ReasonCode.ENTRY_COOLDOWN,)


def test_cooldown_is_the_longer_of_policy_and_account(tradekit_plugins: Plugins) -> None:
    policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4, min_time_between_entries=timedelta(days=3))
    pos = make_position(entries=[(timedelta(days=2), Decimal(58), Decimal(10))])
    decision = evaluate_buy(make_context(policy=policy, position=pos), plugins=tradekit_plugins)
    assert decision.reasons == (ReasonCode.ENTRY_COOLDOWN,)


def test_fifth_entry_is_blocked_at_max_entries(tradekit_plugins: Plugins) -> None:
    entries = [(timedelta(days=d), Decimal(50 + d), Decimal(5)) for d in (8, 6, 4, 2)]
    pos = make_position(entries=entries)
    decision = evaluate_buy(make_context(policy=SCALING, position=pos, price=Decimal(50)), plugins=tradekit_plugins)
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.MAX_ENTRIES_REACHED in decision.reasons
    assert decision.entry_count == 4


def test_account_max_entries_caps_a_more_generous_policy(tradekit_plugins: Plugins) -> None:
    policy = StrategyScalingPolicy(allow_scaling=True, max_entries=10)
    entries = [(timedelta(days=d), Decimal(50), Decimal(1)) for d in (8, 6, 4, 2)]
    decision = evaluate_buy(
        make_context(policy=policy, position=make_position(entries=entries)),
        plugins=tradekit_plugins,
    )
    assert decision.max_entries == 4
    assert ReasonCode.MAX_ENTRIES_REACHED in decision.reasons


def test_scaling_disabled_for_the_account_skips(tradekit_plugins: Plugins) -> None:
    ctx = make_context(policy=SCALING, position=make_position(), limits=AccountLimits(scale_in_enabled=False))
    decision = evaluate_buy(ctx, plugins=tradekit_plugins)
    assert decision.action is BuyAction.SKIP
    assert decision.reasons == (ReasonCode.SCALE_IN_DISABLED,)


def test_strategy_without_policy_gets_scale_ins_blocked(tradekit_plugins: Plugins) -> None:
    decision = evaluate_buy(make_context(position=make_position()), plugins=tradekit_plugins)
    assert decision.action is BuyAction.BLOCK
    # The default policy allows one entry, so both hard rules say no.
    assert set(decision.reasons) == {
        ReasonCode.SCALING_NOT_PERMITTED,
        ReasonCode.MAX_ENTRIES_REACHED,
    }


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (Decimal("59.73"), BuyAction.SKIP),
        (Decimal("59.74"), BuyAction.SCALE_IN),
        (Decimal(70), BuyAction.SCALE_IN),
    ],
)
def test_pyramid_adds_only_a_step_above_the_last_entry(
    tradekit_plugins: Plugins, price: Decimal, expected: BuyAction
) -> None:
    policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=4,
        price_structure=PriceStructure.PYRAMID,
        price_step_pct=Decimal(3),
    )
    pos = make_position(entries=[(timedelta(days=2), Decimal(58), Decimal(10))])
    decision = evaluate_buy(make_context(policy=policy, position=pos, price=price), plugins=tradekit_plugins)
    assert decision.action is expected
    if expected is BuyAction.SKIP:
        assert decision.reasons == (ReasonCode.PRICE_STRUCTURE,)


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (Decimal("56.27"), BuyAction.SKIP),
        (Decimal("56.26"), BuyAction.SCALE_IN),
        (Decimal(60), BuyAction.SKIP),
    ],
)
def test_average_down_adds_only_a_step_below_the_last_entry(
    tradekit_plugins: Plugins, price: Decimal, expected: BuyAction
) -> None:
    policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=4,
        price_structure=PriceStructure.AVERAGE_DOWN,
        price_step_pct=Decimal(3),
    )
    pos = make_position(entries=[(timedelta(days=2), Decimal(58), Decimal(10))])
    decision = evaluate_buy(make_context(policy=policy, position=pos, price=price), plugins=tradekit_plugins)
    assert decision.action is expected


def test_add_on_at_the_allocation_cap_is_blocked(tradekit_plugins: Plugins) -> None:
    # 5% of 100,000 = 5,000; 100 shares at 50 = 5,000: exactly at the cap.
    pos = make_position(entries=[(timedelta(days=2), Decimal(48), Decimal(100))])
    decision = evaluate_buy(make_context(policy=SCALING, position=pos, price=Decimal(50)), plugins=tradekit_plugins)
    assert decision.action is BuyAction.BLOCK
    assert decision.reasons == (ReasonCode.ALLOCATION_CAP,)
    assert decision.position_pct == Decimal(5)


def test_add_on_with_confidence_3_below_threshold_5_is_rejected(tradekit_plugins: Plugins) -> None:
    decision = evaluate_buy(
        make_context(policy=SCALING, position=make_position(), confidence=3),
        plugins=tradekit_plugins,
    )
    assert decision.action is BuyAction.SKIP
    assert decision.reasons == (ReasonCode.CONFIDENCE_TOO_LOW,)


def test_new_entry_does_not_need_add_on_confidence(tradekit_plugins: Plugins) -> None:
    assert evaluate_buy(make_context(confidence=3), plugins=tradekit_plugins).action is BuyAction.ENTER_NEW


def test_broker_only_position_is_never_added_to(tradekit_plugins: Plugins) -> None:
    # The broker holds KO, the ledger does not: even if reconciliation had not flagged it,
    # the mismatch rule refuses to buy on top of an exposure the ledger does not know.
    decision = evaluate_buy(make_context(policy=SCALING, broker_qty=Decimal(100)), plugins=tradekit_plugins)
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.BROKER_LEDGER_MISMATCH in decision.reasons


def test_position_of_another_strategy_is_not_added_to(tradekit_plugins: Plugins) -> None:
    pos = make_position(strategy="someone-else")
    decision = evaluate_buy(make_context(policy=SCALING, position=pos), plugins=tradekit_plugins)
    assert decision.reasons == (ReasonCode.POSITION_OWNED_BY_OTHER_STRATEGY,)


def test_backfilled_position_may_be_scaled_by_a_policy_that_allows_it(
    tradekit_plugins: Plugins,
) -> None:
    pos = make_position(strategy=None, backfilled=True)
    decision = evaluate_buy(make_context(policy=SCALING, position=pos), plugins=tradekit_plugins)
    assert decision.action is BuyAction.SCALE_IN


def test_decision_trace_lists_every_rule_in_phase_order(tradekit_plugins: Plugins) -> None:
    decision = evaluate_buy(make_context(policy=SCALING, position=make_position()), plugins=tradekit_plugins)
    phases = [c.phase for c in decision.checks]
    assert phases == sorted(phases)
    rules = {c.rule for c in decision.checks}
    assert {"unreconciled_symbol", "max_entries", "entry_cooldown", "room_under_caps"} <= rules
    assert all(c.outcome in (CheckOutcome.PASS, CheckOutcome.NOT_APPLICABLE) for c in decision.checks)


def test_explanation_names_symbol_strategy_action_and_reasons(tradekit_plugins: Plugins) -> None:
    pos = make_position(strategy="pyr", entries=[(timedelta(hours=2), Decimal(58), Decimal(10))])
    decision = evaluate_buy(
        make_context(policy=SCALING, position=pos, strategy="pyr", confidence=3),
        plugins=tradekit_plugins,
    )
    line = decision.one_line()
    assert line.startswith("SKIP KO [pyr]")
    assert "entry_cooldown" in line
    assert "confidence_too_low" in line
    full = decision.explain()
    assert "entries       1 of at most 4" in full
    assert len(full.splitlines()) == 10 + len(decision.checks)
