"""The Alpaca emulator's simulated time and seeded fault plans, seen through the real alpaca-py
clients (and the websocket): what the chaos campaign relies on."""

from __future__ import annotations

import itertools
import random
import time as time_module
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Clock
from alpaca.trading.requests import LimitOrderRequest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from emulators.alpaca import CALL_KINDS, AlpacaEmulator, BarSeed, CallEvent, Fault, FaultPlan
from emulators.alpaca._sessions import NEW_YORK

from .test_emulator import (
    API_KEY,
    SECRET_KEY,
    _as,
    _data_client,
    _market,
    _order,
    _recv_updates,
    _submit,
    _trading_client,
    _with_timeout,
    raw_stream,
)

# Friday 2024-03-08 and Monday 2024-03-11 are NYSE sessions (09:30-16:00 New York).
FRIDAY_OPEN = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
FRIDAY_CLOSE = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
MONDAY_OPEN = datetime(2024, 3, 11, 13, 30, tzinfo=UTC)  # daylight saving time began on the 10th
MONDAY_CLOSE = datetime(2024, 3, 11, 20, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2024, 3, 9, 17, 0, tzinfo=UTC)


def _daily(day: int, open_: str, close: str) -> BarSeed:
    stamp = datetime.combine(date(2024, 3, day), time(0), NEW_YORK).astimezone(UTC)
    o, c = Decimal(open_), Decimal(close)
    return BarSeed(timestamp=stamp, open=o, high=max(o, c), low=min(o, c), close=c, volume=1000)


@pytest.fixture
def emu() -> Iterator[AlpacaEmulator]:
    """AAPL with daily bars for Friday 8 and Monday 11 March 2024; the clock on Friday's open."""
    with AlpacaEmulator(api_key=API_KEY, secret_key=SECRET_KEY, cash=Decimal(100000)) as emulator:
        emulator.set_asset("AAPL")
        emulator.load_bars("AAPL", [_daily(8, "100", "102"), _daily(11, "103", "99")])
        emulator.set_time(FRIDAY_OPEN)
        yield emulator


@pytest.fixture
def client(emu: AlpacaEmulator) -> Iterator[TradingClient]:
    trading = _trading_client(emu)
    yield trading
    trading._session.close()


# ---------------------------------------------------------------------------- simulated time


def test_clock_follows_simulated_time_over_a_weekend(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_time(SATURDAY_NOON)

    clock = _as(Clock, client.get_clock())

    assert clock.timestamp == SATURDAY_NOON
    assert not clock.is_open
    assert (clock.next_open, clock.next_close) == (MONDAY_OPEN, MONDAY_CLOSE)


def test_orders_and_fills_are_stamped_with_simulated_time(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.advance(timedelta(minutes=5))

    order = _order(client, _submit(client, _market(2)).id)

    assert order.status is OrderStatus.FILLED
    assert order.created_at == order.filled_at == FRIDAY_OPEN + timedelta(minutes=5)
    assert order.filled_avg_price == "100"  # the session's opening price, from its daily bar
    assert order.expires_at == FRIDAY_CLOSE
    (activity,) = emu.fill_activities()
    assert activity["transaction_time"] == "2024-03-08T14:35:00.000000Z"


def test_a_day_order_sent_while_closed_waits_for_the_open_and_fills_at_its_price(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.set_time(SATURDAY_NOON)
    sent = _submit(client, _market(1))
    assert _order(client, sent.id).status is OrderStatus.ACCEPTED

    emu.set_time(MONDAY_OPEN + timedelta(minutes=1))

    filled = _order(client, sent.id)
    assert filled.status is OrderStatus.FILLED
    assert (filled.filled_at, filled.filled_avg_price) == (MONDAY_OPEN, "103")


def test_a_resting_day_order_expires_at_the_simulated_close(emu: AlpacaEmulator, client: TradingClient) -> None:
    request = LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=90)
    resting = _submit(client, request)

    emu.set_time(SATURDAY_NOON)

    expired = _order(client, resting.id)
    assert expired.status is OrderStatus.EXPIRED
    assert expired.expired_at == FRIDAY_CLOSE


def test_the_data_api_serves_a_daily_bar_once_its_session_closed(emu: AlpacaEmulator) -> None:
    data = _data_client(emu)
    request = StockBarsRequest(
        symbol_or_symbols="AAPL", timeframe=TimeFrame.Day, start=datetime(2024, 3, 1, tzinfo=UTC)
    )

    during = data.get_stock_bars(request).data.get("AAPL", [])  # type: ignore[union-attr]
    emu.set_time(SATURDAY_NOON)
    after = data.get_stock_bars(request).data["AAPL"]  # type: ignore[union-attr]

    assert during == []
    assert [(b.timestamp.astimezone(NEW_YORK).day, b.close) for b in after] == [(8, 102.0)]
    assert emu.now == SATURDAY_NOON


def test_simulated_time_never_moves_backwards(emu: AlpacaEmulator) -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        emu.set_time(FRIDAY_OPEN - timedelta(seconds=1))


# ---------------------------------------------------------------------------- fault plans: determinism


@given(seed=st.integers(0, 2**32), order=st.randoms(use_true_random=False))
def test_the_same_seed_draws_the_same_fault_for_each_nth_call_of_a_kind_in_any_interleaving(
    seed: int, order: random.Random
) -> None:
    rates = {kind: {Fault.ERROR_BEFORE: 0.2, Fault.DROP_AFTER: 0.2} for kind in ("clock", "positions", "account")}
    calls = [kind for kind in rates for _ in range(20)]
    shuffled = list(calls)
    order.shuffle(shuffled)

    def schedule(sequence: list[str]) -> dict[tuple[str, int], Fault | None]:
        plan = FaultPlan(seed, rates, kinds=CALL_KINDS)
        return {(d.kind, d.n): d.fault for d in (plan.draw(kind) for kind in sequence)}

    assert schedule(calls) == schedule(shuffled)


def test_different_seeds_draw_different_schedules() -> None:
    rates = {"submit_order": {Fault.ERROR_AFTER: 0.5}}
    drawn = [
        tuple(plan.draw("submit_order").fault for _ in range(30))
        for plan in (FaultPlan(seed, rates, kinds=CALL_KINDS) for seed in (1, 2))
    ]

    assert drawn[0] != drawn[1]


def test_a_plan_refuses_unknown_call_kinds_and_rates_above_one() -> None:
    with pytest.raises(ValueError, match="unknown call kind 'orders'"):
        FaultPlan(1, {"orders": {Fault.ERROR_AFTER: 0.1}}, kinds=CALL_KINDS)
    with pytest.raises(ValueError, match="add up to"):
        FaultPlan(1, {"clock": {Fault.ERROR_AFTER: 0.6, Fault.DROP_AFTER: 0.6}}, kinds=CALL_KINDS)


# ---------------------------------------------------------------------------- fault plans: what a client sees


def _wait_until_answered(emu: AlpacaEmulator) -> None:
    """Wait (bounded) until the emulator finished every request it received."""
    deadline = time_module.monotonic() + 5.0
    while any(r.status is None for r in emu.requests()):
        assert time_module.monotonic() < deadline, "the emulator did not finish its requests"
        time_module.sleep(0.01)


def _always(emu: AlpacaEmulator, kind: str, fault: Fault, **options: float) -> None:
    emu.use_fault_plan(7, {kind: {fault: 1.0}}, **options)  # type: ignore[arg-type]


def test_error_before_processing_answers_5xx_and_stores_no_order(emu: AlpacaEmulator, client: TradingClient) -> None:
    _always(emu, "submit_order", Fault.ERROR_BEFORE)

    with pytest.raises(APIError) as error:
        client.submit_order(_market(1, client_order_id="coid-1"))

    assert error.value.status_code is not None
    assert error.value.status_code >= 500
    assert emu.orders() == []
    fired = emu.fired_faults()  # alpaca-py retries a 504 itself: one fired fault per attempt
    assert fired[0].one_line() == "submit_order#1 error_before coid=coid-1"
    assert {(f.fault, f.client_order_id) for f in fired} == {(Fault.ERROR_BEFORE, "coid-1")}


def test_error_after_processing_answers_5xx_but_the_order_exists(emu: AlpacaEmulator, client: TradingClient) -> None:
    _always(emu, "submit_order", Fault.ERROR_AFTER)

    with pytest.raises(APIError):
        client.submit_order(_market(1, client_order_id="coid-1"))

    assert [o["client_order_id"] for o in emu.orders()] == ["coid-1"]


@pytest.mark.parametrize(("fault", "stored"), [(Fault.DROP_BEFORE, 0), (Fault.DROP_AFTER, 1)])
def test_a_dropped_connection_gives_no_http_answer(
    emu: AlpacaEmulator, client: TradingClient, fault: Fault, stored: int
) -> None:
    _always(emu, "submit_order", fault)

    with pytest.raises(requests.ConnectionError):
        client.submit_order(_market(1))

    assert len(emu.orders()) == stored


@pytest.mark.parametrize(("fault", "stored"), [(Fault.LATE_AFTER, 1), (Fault.LOST_RESPONSE, 1), (Fault.LATE_BEFORE, 1)])
def test_a_late_or_lost_answer_outlasts_the_client_timeout(
    emu: AlpacaEmulator, client: TradingClient, fault: Fault, stored: int
) -> None:
    _always(emu, "submit_order", fault, max_hold_seconds=5.0)
    _with_timeout(client, 0.2)

    with pytest.raises(requests.Timeout):
        client.submit_order(_market(1))

    # Late before processing: the order reaches the book once the client has given up.
    _wait_until_answered(emu)
    assert len(emu.orders()) == stored


def test_a_late_answer_to_a_patient_client_arrives_after_the_bound(emu: AlpacaEmulator, client: TradingClient) -> None:
    _always(emu, "clock", Fault.LATE_AFTER, max_hold_seconds=0.2)

    clock = _as(Clock, client.get_clock())

    assert clock.is_open
    assert [f.fault for f in emu.fired_faults()] == [Fault.LATE_AFTER]


def test_a_late_fill_answers_the_post_then_fills_when_the_clock_moves(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.use_fault_plan(3, {"submit_order": {Fault.LATE_FILL: 1.0}}, late_fill_requests=(50, 50))
    sent = _submit(client, _market(4))
    assert _order(client, sent.id).status is OrderStatus.NEW

    emu.advance(timedelta(minutes=1))

    assert _order(client, sent.id).status is OrderStatus.FILLED


def test_a_late_fill_also_comes_after_n_further_requests(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.use_fault_plan(3, {"submit_order": {Fault.LATE_FILL: 1.0}}, late_fill_requests=(2, 2))
    sent = _submit(client, _market(4))

    first = _order(client, sent.id)  # the first further request
    second = _order(client, sent.id)  # the second: the fill is released before it is answered

    assert (first.status, second.status) == (OrderStatus.NEW, OrderStatus.FILLED)


def test_a_partial_fill_executes_a_share_now_and_the_rest_later(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.use_fault_plan(3, {"submit_order": {Fault.PARTIAL_FILL: 1.0}}, late_fill_requests=(50, 50))
    sent = _submit(client, _market(4))

    now = _order(client, sent.id)
    emu.advance(timedelta(minutes=1))
    later = _order(client, sent.id)

    assert now.status is OrderStatus.PARTIALLY_FILLED
    assert now.filled_qty is not None
    assert 0 < float(now.filled_qty) < 4
    assert (later.status, later.filled_qty) == (OrderStatus.FILLED, "4")


@pytest.mark.parametrize(
    ("fault", "events"),
    [
        (Fault.DUPLICATE_UPDATE, ["new", "new", "fill", "fill"]),
        (Fault.LOST_UPDATE, []),
    ],
)
def test_stream_faults_duplicate_or_lose_trade_updates(
    emu: AlpacaEmulator, client: TradingClient, fault: Fault, events: list[str]
) -> None:
    emu.use_fault_plan(5, {"trade_update": {fault: 1.0}})
    with raw_stream(emu) as ws:
        _submit(client, _market(1))
        received = [u["event"] for u in _recv_updates(ws, len(events))]
        emu.fault_plan.stop()
        _submit(client, _market(1))
        marker = [u["event"] for u in _recv_updates(ws, 2)]

    assert received == events
    assert marker == ["new", "fill"]


def test_a_reordered_update_is_delivered_after_the_next_one(emu: AlpacaEmulator, client: TradingClient) -> None:
    plan = emu.use_fault_plan(5, {"trade_update": {Fault.REORDERED_UPDATE: 1.0}})
    with raw_stream(emu) as ws:
        _submit(client, _market(1))
        plan.stop()
        _submit(client, _market(2))
        received = [(u["event"], u["order"]["qty"]) for u in _recv_updates(ws, 4)]

    # The first order's "new" waits for its "fill", which waits in turn for the next update.
    assert received == [("new", "1"), ("new", "2"), ("fill", "1"), ("fill", "2")]


def test_a_stream_drop_cuts_every_connection(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.use_fault_plan(5, {"trade_update": {Fault.STREAM_DROP: 1.0}})
    with raw_stream(emu) as ws:
        _submit(client, _market(1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_a_call_hook_sees_each_call_before_and_after_and_can_abandon_it(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    seen: list[tuple[str, int, str]] = []
    counter = itertools.count(1)

    def hook(event: CallEvent) -> bool:
        seen.append((event.kind, event.n, event.phase))
        return event.kind == "submit_order" and next(counter) == 1

    emu.add_call_hook(hook)
    with pytest.raises(requests.ConnectionError):
        client.submit_order(_market(1))
    client.get_clock()

    assert seen == [("submit_order", 1, "before"), ("clock", 1, "before"), ("clock", 1, "after")]
    assert emu.orders() == []
