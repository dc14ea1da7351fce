"""Order events from the trade_updates stream and recovery polls: every execution exactly once.

Each test ends where money is decided: the fills drained add up to what Alpaca filled, and
to the position it holds, whatever the stream did on the way (repeats, reordering, a drop,
a silent gap).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.protocol import OrderEvent, OrderEventKind
from tradekit.domain import Fill, OrderRequest, OrderType, Side
from tradekit_broker_alpaca import AlpacaCredentials
from tradekit_broker_alpaca.execution import AlpacaBroker
from tradekit_broker_alpaca.stream import StreamStatus

from .conftest import DELIVERY_WAIT_S, MakeBroker, wait_for_stream_delivery

FILL_KINDS = (OrderEventKind.PARTIAL_FILL, OrderEventKind.FILL)


def market(client_order_id: str, qty: str, *, side: Side = Side.BUY, symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(client_order_id=client_order_id, symbol=symbol, side=side, qty=Decimal(qty))


def fills_of(events: Sequence[OrderEvent]) -> list[Fill]:
    return [e.fill for e in events if e.fill is not None]


def filled_qty(events: Sequence[OrderEvent], client_order_id: str | None = None) -> Decimal:
    return sum(
        (f.qty for f in fills_of(events) if client_order_id is None or f.client_order_id == client_order_id),
        Decimal(0),
    )


def position_qty(emu: AlpacaEmulator, symbol: str = "AAPL") -> Decimal:
    return sum((Decimal(p["qty"]) for p in emu.positions() if p["symbol"] == symbol), Decimal(0))


def drain_until(
    broker: AlpacaBroker,
    emu: AlpacaEmulator,
    done: Callable[[list[OrderEvent]], bool],
    seen: Sequence[OrderEvent] = (),
) -> list[OrderEvent]:
    """Drain events, letting the stream deliver between drains, until ``done`` holds for all of them.

    ``seen`` are the events drained before; the result includes them.
    """
    events = list(seen)
    for _ in range(50):
        events.extend(broker.drain_events())
        if done(events):
            return events
        wait_for_stream_delivery(broker, emu)
    pytest.fail(f"events never reached the expected state; drained: {[(e.kind, e.fill) for e in events]}")


def stream_of(broker: AlpacaBroker) -> StreamStatus:
    status = broker.stream_status()
    assert status is not None, "the broker's stream is switched off"
    return status


def wait_for_updates(broker: AlpacaBroker, count: int) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while True:
        status = stream_of(broker)
        if status.updates_received >= count:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{status.updates_received} updates received, expected {count}")
        time.sleep(0.005)


def wait_for_stream_state(broker: AlpacaBroker, reached: Callable[[AlpacaBroker], bool]) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while not reached(broker):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"stream never reached the expected state: {broker.stream_status()}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------- the stream


def test_partial_fills_become_incremental_fills_that_add_up_to_the_order(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    broker.drain_events()
    emu.set_fill_policy(partial_fills=3)

    broker.submit_order(market("split-1", "10"))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 10)

    assert [e.kind for e in events] == [
        OrderEventKind.ACCEPTED,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.FILL,
    ]
    fills = fills_of(events)
    assert [f.qty for f in fills] == [Decimal(3), Decimal(3), Decimal(4)]
    assert [e.order.filled_qty for e in events[1:]] == [Decimal(3), Decimal(6), Decimal(10)]
    assert [f.position_qty_after for f in fills] == [Decimal(3), Decimal(6), Decimal(10)]
    assert all(f.price == Decimal(150) and f.client_order_id == "split-1" for f in fills)
    assert [f.execution_id for f in fills] == [f.execution_id for f in broker.get_fills("split-1")]
    assert broker.position_mismatches == ()


def test_each_execution_keeps_its_own_price(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.drain_events()
    emu.set_fill_policy(auto_fill_market=False)
    order = broker.submit_order(market("two-prices", "10"))

    emu.fill_order(order.broker_order_id, qty=Decimal(4), price=Decimal("150.10"))
    emu.fill_order(order.broker_order_id, price=Decimal("151.25"))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 10)

    assert [(f.qty, f.price) for f in fills_of(events)] == [
        (Decimal(4), Decimal("150.10")),
        (Decimal(6), Decimal("151.25")),
    ]


def test_repeated_fill_messages_count_once(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.drain_events()
    emu.set_fill_policy(partial_fills=2)
    emu.arm_duplicate_events(times=2)

    broker.submit_order(market("dup-events", "6"))
    # new + 2 fills, each fill sent twice.
    wait_for_updates(broker, 5)
    events = list(broker.drain_events())

    fills = fills_of(events)
    assert [f.qty for f in fills] == [Decimal(3), Decimal(3)]
    assert len({f.execution_id for f in fills}) == 2
    assert filled_qty(events) == position_qty(emu) == Decimal(6)


def test_out_of_order_messages_count_each_execution_once(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.drain_events()
    emu.set_fill_policy(partial_fills=3)
    emu.arm_reordered_events(4)

    broker.submit_order(market("reversed", "10"))
    wait_for_updates(broker, 4)
    events = list(broker.drain_events())

    fills = fills_of(events)
    # Delivered fill first, then the partial fills backwards; the late "new" is stale news.
    assert [f.qty for f in fills] == [Decimal(4), Decimal(3), Decimal(3)]
    assert OrderEventKind.ACCEPTED not in [e.kind for e in events]
    assert {f.execution_id for f in fills} == {f.execution_id for f in broker.get_fills("reversed")}
    assert filled_qty(events) == position_qty(emu) == Decimal(10)


def test_orders_placed_by_hand_are_reported_with_their_generated_client_order_id(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    broker.drain_events()

    placed = emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(2))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 2)

    assert {f.client_order_id for f in fills_of(events)} == {placed["client_order_id"]}


def test_cancel_and_reject_produce_one_terminal_event_each_even_when_polled_too(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(poll_interval_seconds=0)
    broker.drain_events()
    broker.submit_order(
        OrderRequest(
            client_order_id="rest-1",
            symbol="AAPL",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal(1),
            limit_price=Decimal(100),
        )
    )
    emu.arm_reject_orders()
    broker.submit_order(market("doomed-1", "1"))
    broker.cancel_order("rest-1")

    ends = {OrderEventKind.CANCELED, OrderEventKind.REJECTED}
    events = drain_until(broker, emu, lambda ev: ends <= {e.kind for e in ev})
    for _ in range(3):
        wait_for_stream_delivery(broker, emu)
        events.extend(broker.drain_events())

    terminal = [(e.kind, e.order.client_order_id) for e in events if e.kind not in (OrderEventKind.ACCEPTED,)]
    assert sorted(terminal) == [(OrderEventKind.CANCELED, "rest-1"), (OrderEventKind.REJECTED, "doomed-1")]


# ---------------------------------------------------------------------------- gaps


def test_fills_lost_while_the_websocket_was_down_are_recovered_after_the_reconnect(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    broker.drain_events()
    broker.submit_order(market("before", "1"))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 1)

    # Updates produced until the stream is back are lost, whenever the reconnect happens.
    emu.pause_stream_events()
    emu.drop_stream_connections(abrupt=True)
    broker.submit_order(market("during-ours", "2"))
    emu.set_fill_policy(partial_fills=2)
    emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(4))
    wait_for_stream_state(broker, lambda b: stream_of(b).connections == 2)
    emu.wait_for_stream_listeners(1)
    emu.resume_stream_events()
    broker.submit_order(market("after", "3"))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 10, seen=events)

    assert [u["event"] for u in emu.undelivered_trade_updates()] == ["new", "fill", "new", "partial_fill", "fill"]
    assert filled_qty(events, "during-ours") == Decimal(2)
    assert filled_qty(events, "after") == Decimal(3)
    assert len({f.execution_id for f in fills_of(events)}) == len(fills_of(events)) == 6
    assert filled_qty(events) == position_qty(emu) == Decimal(10)


def test_silent_gap_is_recovered_by_the_scheduled_poll_without_counting_twice(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(poll_interval_seconds=0)
    broker.drain_events()

    emu.pause_stream_events()
    broker.submit_order(market("in-gap", "5"))
    gap_events = list(broker.drain_events())
    emu.resume_stream_events()
    broker.submit_order(market("after-gap", "1"))
    later = drain_until(broker, emu, lambda ev: filled_qty(ev) == 1)
    for _ in range(2):
        later.extend(broker.drain_events())

    assert [(e.kind, e.fill.qty if e.fill else None) for e in gap_events] == [(OrderEventKind.FILL, Decimal(5))]
    (recovered,) = fills_of(gap_events)
    assert [recovered.execution_id] == [f.execution_id for f in broker.get_fills("in-gap")]
    assert recovered.price == Decimal(150)
    assert filled_qty(gap_events + later) == position_qty(emu) == Decimal(6)


def test_silent_gap_is_noticed_by_the_position_cross_check_and_recovered(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    broker.drain_events()
    broker.submit_order(market("first", "2"))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 2)

    emu.pause_stream_events()
    emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(3))
    emu.resume_stream_events()
    broker.submit_order(market("second", "1"))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 6, seen=events)

    (mismatch,) = broker.position_mismatches
    assert (mismatch.symbol, mismatch.expected_qty, mismatch.reported_qty) == ("AAPL", Decimal(3), Decimal(6))
    assert len({f.execution_id for f in fills_of(events)}) == 3
    assert filled_qty(events) == position_qty(emu) == Decimal(6)


def test_recovery_poll_that_fails_is_retried_on_the_next_drain(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker(poll_interval_seconds=0)
    broker.drain_events()
    emu.pause_stream_events()
    broker.submit_order(market("gap-1", "2"))
    emu.arm_error(500, endpoint="GET /v2/account/activities/FILL")

    failed = list(broker.drain_events())
    retried = list(broker.drain_events())

    assert fills_of(failed) == []
    assert filled_qty(retried) == position_qty(emu) == Decimal(2)


def test_fills_seen_by_both_the_stream_and_polls_count_once(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker(poll_interval_seconds=0)
    broker.drain_events()
    emu.set_fill_policy(partial_fills=4)

    broker.submit_order(market("both-1", "8"))
    broker.submit_order(market("both-2", "3", side=Side.SELL))
    events = drain_until(broker, emu, lambda ev: filled_qty(ev) == 11)
    for _ in range(3):
        wait_for_stream_delivery(broker, emu)
        events.extend(broker.drain_events())

    buys = filled_qty(events, "both-1")
    sells = filled_qty(events, "both-2")
    # Four executions of the buy, one of the sell (3 shares do not split in four whole parts).
    assert len(fills_of(events)) == len({f.execution_id for f in fills_of(events)}) == 5
    assert (buys, sells) == (Decimal(8), Decimal(3))
    assert buys - sells == position_qty(emu) == Decimal(5)


def test_without_the_stream_every_fill_comes_from_polling(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker(stream=False, poll_interval_seconds=0)
    emu.set_fill_policy(partial_fills=3)

    broker.submit_order(market("polled", "10"))
    events = list(broker.drain_events())

    assert broker.stream_status() is None
    assert [e.kind for e in events] == [OrderEventKind.PARTIAL_FILL, OrderEventKind.PARTIAL_FILL, OrderEventKind.FILL]
    assert [f.qty for f in fills_of(events)] == [Decimal(3), Decimal(3), Decimal(4)]
    assert broker.drain_events() == ()


# ---------------------------------------------------------------------------- the stream's own failures


def test_refused_stream_login_is_reported_after_the_bound_retried_and_drain_does_not_raise(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(
        credentials=AlpacaCredentials(key_id="PKWRONG", secret_key="not-the-secret"), stream_max_auth_failures=2
    )

    wait_for_stream_state(broker, lambda b: stream_of(b).failure is not None)
    wait_for_stream_state(broker, lambda b: emu.stream_connections_accepted > 2)

    status = stream_of(broker)
    assert status.running
    assert status.failure is not None
    assert "refused the API key" in status.failure
    assert broker.drain_events() == ()


def test_close_stops_the_stream_thread_and_its_connection(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    broker.close()
    broker.close()

    assert not stream_of(broker).running
    emu.wait_for_stream_listeners(0)
