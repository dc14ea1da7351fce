"""Property tests of the order-size limits: whatever the sizer asks and whatever precision the
broker's figures come in, the order sent is worth no more than the room left under any cap."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
from hypothesis import example, given
from hypothesis import strategies as st

from tradekit import StrategyScalingPolicy, evaluate_buy
from tradekit.decision import AccountLimits, ScalingContext
from tradekit.decision.context import OrderCounters, TierState
from tradekit.execution.limits import apply_limits, exact_value, room_under_caps, whole_share_refusal
from tradekit.plugins import Plugins
from tradekit.sizing.result import SizingResult
from tradekit.testing import make_context, make_position

PLUGINS = Plugins(load_entrypoints=False, env={})


@st.composite
def amounts(draw: st.DrawFn, low: Decimal, high: Decimal) -> Decimal:
    # Up to 29 decimal places: more than Decimal's 28 significant digits hold in a quotient.
    places = draw(st.sampled_from([0, 2, 4, 9, 20, 29]))
    return draw(st.decimals(min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False))


@st.composite
def sized(draw: st.DrawFn) -> tuple[ScalingContext, SizingResult]:
    price = draw(amounts(Decimal("0.01"), Decimal(700_000)))
    position = None
    if draw(st.booleans()):
        entry_qty = draw(amounts(Decimal("0.000000001"), Decimal(300)))
        position = make_position(entries=[(timedelta(days=3), price, entry_qty)])
    tier = None
    if draw(st.booleans()):
        tier = TierState(
            tier="core",
            exposure=draw(amounts(Decimal(0), Decimal(50_000))),
            cap_pct=draw(st.sampled_from([Decimal(3), Decimal(10), Decimal("33.3333333333333333333333")])),
        )
    ctx = make_context(
        policy=StrategyScalingPolicy(allow_scaling=True, max_entries=4),
        limits=AccountLimits(
            fractional_shares=draw(st.booleans()),
            min_order_notional=draw(st.sampled_from([Decimal(0), Decimal(1), Decimal(10)])),
            max_allocation_per_symbol_pct=draw(st.sampled_from([Decimal(5), Decimal(100)])),
            min_time_between_entries=timedelta(0),
            order_cooldown=timedelta(0),
        ),
        position=position,
        price=price,
        equity=draw(amounts(Decimal(1_000), Decimal(2_000_000))),
        buying_power=draw(amounts(Decimal(0), Decimal(1_000_000))),
        tier=tier,
    )
    asked = SizingResult(qty=draw(amounts(Decimal("0.000000001"), Decimal(100_000))), price=price, method="test")
    return ctx, asked


def _fractional(ctx: ScalingContext) -> bool:
    return ctx.limits.fractional_shares and ctx.account.fractional_trading


@given(sized())
@example(
    (
        make_context(
            price=Decimal(7),
            buying_power=Decimal("6.99999999999999999999999999999"),
            limits=AccountLimits(fractional_shares=False, min_order_notional=Decimal(1)),
        ),
        SizingResult(qty=Decimal(100), price=Decimal(7), method="test"),
    )
)
@example(
    (
        make_context(
            price=Decimal(7),
            buying_power=Decimal("6.99999999999999999999999999999"),
            limits=AccountLimits(min_order_notional=Decimal(1)),
        ),
        SizingResult(qty=Decimal(100), price=Decimal(7), method="test"),
    )
)
@example(
    (  # a price of 29 significant digits: qty x price rounded to 28 reads over the room it equals
        make_context(
            price=Decimal("0.14047259740508388383929663486"),
            buying_power=Decimal("0.14047259740508388383929663486"),
            limits=AccountLimits(fractional_shares=False, min_order_notional=Decimal(0)),
        ),
        SizingResult(qty=Decimal(1), price=Decimal("0.14047259740508388383929663486"), method="test"),
    )
)
@example(
    (  # qty x price exceeds the room by less than the 28th digit: rounded, it read as equal
        make_context(
            price=Decimal("1.0000000000000000000000000001"),
            buying_power=Decimal(100),
            limits=AccountLimits(fractional_shares=False, min_order_notional=Decimal(0)),
        ),
        SizingResult(qty=Decimal(100), price=Decimal("1.0000000000000000000000000001"), method="test"),
    )
)
def test_a_sized_order_is_worth_no_more_than_the_room_under_any_cap(case: tuple[ScalingContext, SizingResult]) -> None:
    ctx, asked = case
    decision = evaluate_buy(ctx, plugins=PLUGINS)
    order = apply_limits(ctx, decision, asked)
    if order.qty == 0:
        return
    assert order.price == asked.price
    value = exact_value(order.qty, asked.price)  # what the order is worth, every digit kept
    for name, room, _code in room_under_caps(ctx):
        assert value <= room, f"{order.qty} at {asked.price} = {value} > {name} room {room}"
    assert value >= ctx.limits.min_order_notional
    assert order.qty <= asked.qty
    if not _fractional(ctx) and order.qty != asked.qty:  # clipped: to whole shares
        assert order.qty == order.qty.to_integral_value()


@given(
    price=amounts(Decimal(1), Decimal(2_000)),
    held_value_pct=st.decimals(min_value=Decimal(0), max_value=Decimal(6), places=2),
    broker_mark=st.sampled_from([Decimal("0.8"), Decimal("0.98"), Decimal(1), Decimal("1.02"), Decimal("1.25")]),
    asked_qty=amounts(Decimal(1), Decimal(10_000)),
)
def test_what_is_held_and_the_order_stay_under_the_symbols_cap_at_the_decisions_price(
    price: Decimal, held_value_pct: Decimal, broker_mark: Decimal, asked_qty: Decimal
) -> None:
    # The broker marks the position at its own last price, which may lag the price the
    # decision is made (and the order filled) at.
    equity = Decimal(100_000)
    held = (equity * held_value_pct / 100 / price).quantize(Decimal("0.000000001"))
    ctx = make_context(
        policy=StrategyScalingPolicy(allow_scaling=True, max_entries=4),
        limits=AccountLimits(min_time_between_entries=timedelta(0), order_cooldown=timedelta(0)),
        position=make_position(entries=[(timedelta(days=3), price, held)]) if held > 0 else None,
        price=price,
        equity=equity,
        buying_power=equity,
    )
    if ctx.broker_position is not None:
        ctx = attrs.evolve(ctx, broker_position=attrs.evolve(ctx.broker_position, current_price=price * broker_mark))
    order = apply_limits(
        ctx, evaluate_buy(ctx, plugins=PLUGINS), SizingResult(qty=asked_qty, price=price, method="test")
    )
    if order.qty == 0:
        return
    assert (held + order.qty) * price <= equity * ctx.allocation_cap_pct / 100


@given(sized(), st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=12))
def test_a_whole_share_order_replacing_a_refused_one_is_sent_only_within_every_limit(
    case: tuple[ScalingContext, SizingResult], orders_today: int, daily_limit: int
) -> None:
    ctx, asked = case
    ctx = attrs.evolve(
        ctx,
        limits=attrs.evolve(ctx.limits, daily_order_limit=daily_limit),
        counters=OrderCounters(orders_today=orders_today),
    )
    whole = asked.qty.to_integral_value(rounding="ROUND_DOWN")
    if whole_share_refusal(ctx, asked.qty, whole, asked.price, replaced="tk-refused"):
        return
    value = whole * asked.price
    assert whole >= 1
    assert value >= ctx.limits.min_order_notional
    for name, room, _code in room_under_caps(ctx):
        assert value <= room, f"{whole} at {asked.price} = {value} > {name} room {room}"
    # The refused order never reached the broker: the others and this one fit the limit.
    assert orders_today - 1 + 1 <= daily_limit
