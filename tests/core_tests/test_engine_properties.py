"""Property tests of the invariants that keep money safe."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tradekit import BuyAction, PriceStructure, StrategyScalingPolicy, evaluate_buy
from tradekit.decision import AccountLimits, CheckOutcome, ReasonCode, RulePhase, ScalingContext
from tradekit.decision.context import OrderCounters
from tradekit.decision.rules import freshness, waiting
from tradekit.decision.verdict import Check, fold, order_checks
from tradekit.plugins import Plugins
from tradekit.testing import make_context, make_position

PLUGINS = Plugins(load_entrypoints=False, env={})

prices = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(2000), places=2)
qtys = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(500), places=3)


@st.composite
def contexts(draw: st.DrawFn, *, unreconciled: bool | None = None) -> ScalingContext:
    max_entries = draw(st.integers(min_value=1, max_value=8))
    scaling = max_entries > 1
    structure = draw(st.sampled_from(list(PriceStructure)))
    policy = StrategyScalingPolicy(
        allow_scaling=scaling,
        max_entries=max_entries,
        price_structure=structure,
        price_step_pct=Decimal(0)
        if structure is PriceStructure.ANY
        else draw(st.sampled_from([Decimal(0), Decimal(2)])),
        max_allocation_pct=draw(st.none() | st.sampled_from([Decimal(1), Decimal(3), Decimal(5)])),
        min_confidence=draw(st.integers(1, 5)) if scaling else 1,
    )
    limits = AccountLimits(
        max_entries_per_symbol=draw(st.integers(min_value=1, max_value=6)),
        max_allocation_per_symbol_pct=draw(st.sampled_from([Decimal(2), Decimal(5), Decimal(10)])),
        add_on_confidence_threshold=draw(st.integers(1, 5)),
    )
    has_position = draw(st.booleans())
    position = None
    if has_position:
        n = draw(st.integers(min_value=1, max_value=9))
        entries = [(timedelta(days=3 * (n - i)), draw(prices), draw(qtys)) for i in range(n)]
        position = make_position(strategy=draw(st.sampled_from(["test-strategy", None])), entries=entries)
    symbol_unreconciled = draw(st.booleans()) if unreconciled is None else unreconciled
    return make_context(
        policy=policy,
        limits=limits,
        position=position,
        price=draw(prices),
        confidence=draw(st.integers(1, 5)),
        equity=draw(st.decimals(min_value=Decimal(1000), max_value=Decimal(10_000_000), places=2)),
        buying_power=draw(st.decimals(min_value=Decimal(0), max_value=Decimal(1_000_000), places=2)),
        unreconciled={"KO"} if symbol_unreconciled else set(),
        broker_checked=not symbol_unreconciled or draw(st.booleans()),
    )


@given(contexts())
def test_never_scales_in_past_max_entries_or_the_allocation_cap(ctx: ScalingContext) -> None:
    decision = evaluate_buy(ctx, plugins=PLUGINS)
    if decision.action is BuyAction.SCALE_IN:
        assert ctx.position is not None
        assert ctx.position.entry_count < ctx.policy.max_entries
        assert ctx.position.entry_count < ctx.limits.max_entries_per_symbol
        assert decision.position_pct < ctx.limits.max_allocation_per_symbol_pct
        if ctx.policy.max_allocation_pct is not None:
            assert decision.position_pct < ctx.policy.max_allocation_pct
        assert ctx.policy.allow_scaling
    if decision.action is BuyAction.ENTER_NEW:
        assert ctx.position is None


@given(contexts(unreconciled=True))
def test_an_unreconciled_symbol_is_only_ever_blocked(ctx: ScalingContext) -> None:
    decision = evaluate_buy(ctx, plugins=PLUGINS)
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.UNRECONCILED_BROKER_POSITION in decision.reasons


checks = st.builds(
    Check,
    rule=st.sampled_from(["a", "b", "c", "d"]),
    phase=st.sampled_from(list(RulePhase)),
    outcome=st.sampled_from(list(CheckOutcome)),
    detail=st.just("x"),
    reason=st.just(ReasonCode.ALLOCATION_CAP),
)


@given(st.lists(checks, max_size=12), st.booleans(), st.randoms())
def test_fold_does_not_depend_on_check_order(items: list[Check], scale_in: bool, rnd: random.Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert fold(items, is_scale_in=scale_in) is fold(shuffled, is_scale_in=scale_in)
    outcomes = {c.outcome for c in items}
    if CheckOutcome.BLOCK in outcomes:
        assert fold(items, is_scale_in=scale_in) is BuyAction.BLOCK


@given(
    max_entries=st.integers(min_value=2, max_value=8),
    account_max=st.integers(min_value=1, max_value=8),
    moves=st.lists(st.decimals(min_value=Decimal(-5), max_value=Decimal(8), places=1), min_size=1, max_size=30),
)
def test_repeated_signals_never_build_more_entries_than_allowed(
    max_entries: int, account_max: int, moves: list[Decimal]
) -> None:
    # Replays a run of daily add-on signals, adding an entry whenever the engine says so.
    policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=max_entries,
        price_structure=PriceStructure.PYRAMID,
        price_step_pct=Decimal(1),
    )
    limits = AccountLimits(max_entries_per_symbol=account_max, max_allocation_per_symbol_pct=Decimal(10))
    price = Decimal(100)
    entries = [(timedelta(days=len(moves) + 1), price, Decimal(1))]
    for day, move in enumerate(moves):
        price = max(Decimal(1), price * (1 + move / 100))
        ago = timedelta(days=len(moves) - day)
        shifted = [(age - ago, p, q) for age, p, q in entries]
        ctx = make_context(policy=policy, limits=limits, position=make_position(entries=shifted), price=price)
        if evaluate_buy(ctx, plugins=PLUGINS).action is BuyAction.SCALE_IN:
            entries.append((ago, price, Decimal(1)))
        assert len(entries) <= min(max_entries, account_max)


@st.composite
def timed_contexts(draw: st.DrawFn) -> ScalingContext:
    """Contexts that differ in every input of the signal-age and cooldown checks."""
    now = datetime(2024, 3, 4, 14, 35, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 20)))
    in_sessions = draw(st.booleans())
    limits = AccountLimits(
        max_signal_age_sessions=draw(st.integers(0, 3)) if in_sessions else None,
        max_signal_age=timedelta(hours=draw(st.integers(1, 120))),
        calendar=draw(st.sampled_from(["XNYS", "XLON"])),
        min_time_between_entries=timedelta(hours=draw(st.sampled_from([0, 5, 24, 48, 72]))),
        order_cooldown=timedelta(hours=draw(st.sampled_from([0, 1, 24, 48]))),
    )
    entries = [(timedelta(hours=draw(st.integers(1, 24 * 6))), Decimal(50), Decimal(1))]
    last_order = now - timedelta(hours=draw(st.integers(0, 24 * 6)))
    return make_context(
        limits=limits,
        policy=StrategyScalingPolicy(allow_scaling=True, max_entries=4),
        position=make_position(strategy="test-strategy", entries=entries, now=now),
        signal_age=timedelta(hours=draw(st.integers(-2, 24 * 6))),
        now=now,
        counters=OrderCounters(last_order_at=last_order),
    )


@given(st.lists(timed_contexts(), min_size=2, max_size=6))
def test_remembered_signal_ages_and_cooldowns_are_those_worked_out_afresh(ctxs: list[ScalingContext]) -> None:
    """The signal-age check and the cooldowns' waits are remembered by what they depend on;
    whatever was asked before, each answer is the one worked out from its own context."""
    for ctx in ctxs:
        limits = ctx.limits
        afresh = freshness._signal_age.__wrapped__(
            ctx.signal.generated_at, ctx.now, limits.max_signal_age_sessions, limits.max_signal_age, limits.calendar
        )
        assert freshness.signal_age(ctx) == afresh
        assert ctx.position is not None
        assert ctx.counters.last_order_at is not None
        for since, wait in (
            (ctx.position.last_entry_time, ctx.limits.min_time_between_entries),
            (ctx.counters.last_order_at, ctx.limits.order_cooldown),
        ):
            calendar = ctx.limits.calendar if ctx.limits.max_signal_age_sessions is not None else None
            assert waiting.waited(ctx, since, wait) == waiting._waited.__wrapped__(since, ctx.now, wait, calendar)


@given(
    st.lists(
        st.builds(
            Check,
            rule=st.sampled_from(["a", "b", "c"]),
            phase=st.sampled_from(list(RulePhase)),
            outcome=st.just(CheckOutcome.PASS),
            detail=st.text(max_size=3),
        ),
        max_size=30,
    )
)
def test_checks_are_ordered_by_phase_then_rule_keeping_the_order_of_ties(items: list[Check]) -> None:
    assert order_checks(items) == tuple(sorted(items, key=lambda c: (c.phase, c.rule)))
