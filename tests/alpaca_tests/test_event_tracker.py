"""Invariants of turning trade updates into events, on the emulator's own messages.

The emulator runs without its servers here: orders are placed through its control API and
the trade updates and FILL activities it produces are fed to the tracker directly, after
hypothesis drops, repeats and shuffles the updates the way a bad connection would.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import BrokerDataError
from tradekit.broker.protocol import OrderEvent, OrderEventKind
from tradekit_broker_alpaca.events import OrderEventTracker, RecoveredExecution
from tradekit_broker_alpaca.providers import (
    cumulative_qty_of_activity,
    fill_from_alpaca_activity,
    order_from_alpaca,
)

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def trading_day(orders: list[tuple[int, str]], partial_fills: int) -> AlpacaEmulator:
    """Run market orders (qty, side) on an emulator without servers; return it for inspection."""
    emu = AlpacaEmulator()
    emu.set_asset("AAPL")
    emu.set_price("AAPL", Decimal("150"))
    # Held before the day, so sells reduce it and never hit the oversell refusal.
    emu.set_position("AAPL", Decimal(100), Decimal("140"))
    emu.set_fill_policy(partial_fills=partial_fills)
    for qty, side in orders:
        emu.submit_dashboard_order("AAPL", side, qty=Decimal(qty))
    return emu


def recover(tracker: OrderEventTracker, emu: AlpacaEmulator) -> list[OrderEvent]:
    """Poll every order with its FILL activities, as the broker's recovery does."""
    events: list[OrderEvent] = []
    for raw in emu.orders():
        order = order_from_alpaca(raw)
        executions = [
            RecoveredExecution(
                cumulative_qty=cumulative_qty_of_activity(a),
                fill=fill_from_alpaca_activity(a, client_order_id=order.client_order_id),
            )
            for a in emu.fill_activities()
            if a["order_id"] == order.broker_order_id
        ]
        events.extend(tracker.on_poll(order, executions, now=NOW))
    return events


def filled_per_order(events: list[OrderEvent]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for event in events:
        if event.fill is not None:
            totals[event.fill.broker_order_id] += event.fill.qty  # type: ignore[assignment]
    return totals


order_lists = st.lists(st.tuples(st.integers(1, 12), st.sampled_from(["buy", "sell"])), min_size=1, max_size=4)


@given(orders=order_lists, partial_fills=st.integers(1, 4), data=st.data())
def test_any_delivery_of_updates_then_a_recovery_poll_reports_each_execution_exactly_once(
    orders: list[tuple[int, str]], partial_fills: int, data: st.DataObject
) -> None:
    emu = trading_day(orders, partial_fills)
    updates = emu.trade_updates()
    copies = data.draw(st.lists(st.integers(0, 2), min_size=len(updates), max_size=len(updates)), label="copies")
    delivered = data.draw(st.permutations([u for u, n in zip(updates, copies, strict=True) for _ in range(n)]))
    tracker = OrderEventTracker()

    streamed = [e for u in delivered for e in tracker.on_trade_update(u)]
    polled = recover(tracker, emu)

    fills = [e.fill for e in streamed + polled if e.fill is not None]
    assert len({f.execution_id for f in fills}) == len(fills) == len(emu.fill_activities())
    expected = {o["id"]: Decimal(o["filled_qty"]) for o in emu.orders()}
    assert filled_per_order(streamed + polled) == Counter({k: v for k, v in expected.items() if v > 0})
    # Nothing the stream delivered was ever reported beyond what Alpaca filled.
    assert all(filled_per_order(streamed)[k] <= expected[k] for k in filled_per_order(streamed))
    assert recover(tracker, emu) == []


@given(orders=order_lists, partial_fills=st.integers(1, 4))
def test_in_order_delivery_needs_no_recovery_and_passes_the_position_cross_check(
    orders: list[tuple[int, str]], partial_fills: int
) -> None:
    emu = trading_day(orders, partial_fills)
    tracker = OrderEventTracker()

    events = [e for u in emu.trade_updates() for e in tracker.on_trade_update(u)]

    assert not tracker.recovery_requested
    assert tracker.position_mismatches == ()
    assert recover(tracker, emu) == []
    kinds = [e.kind for e in events]
    assert kinds.count(OrderEventKind.ACCEPTED) == len(orders)


def test_stream_fills_and_activities_name_each_execution_alike() -> None:
    emu = trading_day([(10, "buy")], partial_fills=3)
    tracker = OrderEventTracker()

    streamed = [e.fill.execution_id for u in emu.trade_updates() for e in tracker.on_trade_update(u) if e.fill]
    order = order_from_alpaca(emu.orders()[0])
    from_activities = [
        fill_from_alpaca_activity(a, client_order_id=order.client_order_id).execution_id for a in emu.fill_activities()
    ]

    assert streamed == from_activities == [f"{order.broker_order_id}:{n}" for n in (3, 6, 10)]


def test_missing_execution_is_not_invented_when_activities_lag_behind() -> None:
    emu = trading_day([(10, "buy")], partial_fills=2)
    tracker = OrderEventTracker()
    order = order_from_alpaca(emu.orders()[0])
    first = emu.fill_activities()[:1]

    events = tracker.on_poll(
        order,
        [
            RecoveredExecution(
                cumulative_qty=cumulative_qty_of_activity(a),
                fill=fill_from_alpaca_activity(a, client_order_id=order.client_order_id),
            )
            for a in first
        ],
        now=NOW,
    )

    assert [e.fill.qty for e in events if e.fill] == [Decimal(5)]
    assert tracker.missing_qty(order) == Decimal(5)
    assert order.broker_order_id in tracker.unsettled_order_ids()


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"order": {}}, "field 'event' is missing"),
        ({"event": "fill"}, "field 'order' is missing"),
    ],
)
def test_unreadable_trade_update_is_broker_data_error(update: dict[str, Any], message: str) -> None:
    with pytest.raises(BrokerDataError, match=message):
        OrderEventTracker().on_trade_update(update)


def test_fill_update_without_its_quantity_is_broker_data_error_naming_it() -> None:
    emu = trading_day([(2, "buy")], partial_fills=1)
    fill = next(u for u in emu.trade_updates() if u["event"] == "fill")
    del fill["qty"]

    with pytest.raises(BrokerDataError, match="field 'qty' is missing"):
        OrderEventTracker().on_trade_update(fill)
