"""The perp venues' simulated time and seeded HTTP fault plans, seen through the real ccxt
clients: what a chaos campaign over the venues relies on."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ccxt.base.errors import ExchangeError, NetworkError, RequestTimeout

from emulators._fault_plan import Fault
from emulators._http_faults import CallEvent
from emulators._perp_book import PerpVenueEmulator

# The venue, emulator and client fixtures are the emulator tests' own.
from .test_emulators import BTC, BTC_ASKS, BTC_BIDS, Venue, client, emulator, venue

__all__ = ["client", "emulator", "venue"]

pytestmark = pytest.mark.timeout(60)

SIMULATED = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def _buy(client: Any, client_order_id: str) -> Any:
    return client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": client_order_id})


def test_orders_and_fills_are_stamped_with_simulated_time(
    venue: Venue, client: Any, emulator: PerpVenueEmulator
) -> None:
    emulator.set_time(SIMULATED)
    emulator.advance(timedelta(minutes=5))

    _buy(client, "sim-1")

    (order,) = emulator.orders()
    (fill,) = emulator.fills()
    expected = int((SIMULATED + timedelta(minutes=5)).timestamp() * 1000)
    assert (order.created_ms, fill.time_ms) == (expected, expected)
    assert venue.fetch_by_client_id(client, "sim-1", BTC)["timestamp"] == expected


def test_fills_and_funding_made_on_simulated_time_are_listed_without_a_time_range(
    client: Any, emulator: PerpVenueEmulator
) -> None:
    # A venue answers the last seven days of its own clock, not of the machine's.
    emulator.set_time(SIMULATED)
    _buy(client, "sim-2")
    emulator.set_funding_rate(BTC, "0.0001")
    emulator.apply_funding(BTC)

    (trade,) = client.fetch_my_trades(BTC)
    (payment,) = client.fetch_funding_history(BTC)
    expected = int(SIMULATED.timestamp() * 1000)
    assert (trade["timestamp"], payment["timestamp"]) == (expected, expected)


def test_simulated_time_never_moves_backwards(emulator: PerpVenueEmulator) -> None:
    emulator.set_time(SIMULATED)

    with pytest.raises(ValueError, match="only moves forward"):
        emulator.set_time(SIMULATED - timedelta(seconds=1))


def test_the_same_seed_fires_the_same_faults_on_two_venues_runs(venue: Venue) -> None:
    rates = {"positions": {Fault.ERROR_BEFORE: 0.3, Fault.ERROR_AFTER: 0.3}}
    schedules = []
    for _ in range(2):
        with venue.new_emulator() as emu:
            emu.set_order_book(BTC, bids=BTC_BIDS, asks=BTC_ASKS)
            emu.use_fault_plan(11, rates)
            exchange = venue.make_client(emu, False)
            exchange.load_markets()
            for _ in range(12):
                with contextlib.suppress(ExchangeError, NetworkError):
                    exchange.fetch_positions([BTC])
            exchange.close()
            schedules.append(emu.fault_plan.schedule())

    assert schedules[0] == schedules[1]
    assert schedules[0]


@pytest.mark.parametrize(("fault", "stored"), [(Fault.ERROR_BEFORE, 0), (Fault.ERROR_AFTER, 1)])
def test_a_5xx_before_or_after_processing(client: Any, emulator: PerpVenueEmulator, fault: Fault, stored: int) -> None:
    emulator.use_fault_plan(3, {"submit_order": {fault: 1.0}})

    with pytest.raises((ExchangeError, NetworkError)):
        _buy(client, "err-1")

    assert len(emulator.orders_with_client_id("err-1")) == stored
    (fired,) = emulator.fired_faults()
    assert (fired.kind, fired.fault, fired.client_order_id) == ("submit_order", fault, "err-1")


@pytest.mark.parametrize(("fault", "stored"), [(Fault.DROP_BEFORE, 0), (Fault.DROP_AFTER, 1)])
def test_a_dropped_connection_is_a_network_error(
    client: Any, emulator: PerpVenueEmulator, fault: Fault, stored: int
) -> None:
    emulator.use_fault_plan(3, {"submit_order": {fault: 1.0}})

    with pytest.raises(NetworkError):
        _buy(client, "drop-1")

    assert len(emulator.orders_with_client_id("drop-1")) == stored


@pytest.mark.parametrize("fault", [Fault.LATE_AFTER, Fault.LOST_RESPONSE])
def test_a_late_or_lost_answer_outlasts_the_client_timeout(
    client: Any, emulator: PerpVenueEmulator, fault: Fault
) -> None:
    emulator.use_fault_plan(3, {"submit_order": {fault: 1.0}}, max_hold_seconds=5.0)
    client.timeout = 200

    with pytest.raises(RequestTimeout):
        _buy(client, "late-1")

    assert len(emulator.orders_with_client_id("late-1")) == 1


def test_perp_plans_refuse_fill_faults(emulator: PerpVenueEmulator) -> None:
    with pytest.raises(ValueError, match="HTTP faults only"):
        emulator.use_fault_plan(3, {"submit_order": {Fault.LATE_FILL: 0.5}})


def test_a_call_hook_can_abandon_an_order_in_flight(client: Any, emulator: PerpVenueEmulator) -> None:
    seen: list[tuple[str, str, str | None]] = []

    def hook(event: CallEvent) -> bool:
        seen.append((event.kind, event.phase, event.client_order_id))
        return event.kind == "submit_order"

    emulator.add_call_hook(hook)
    with pytest.raises(NetworkError):
        _buy(client, "hook-1")

    assert seen == [("submit_order", "before", "hook-1")]
    assert emulator.orders() == []
