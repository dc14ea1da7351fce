"""Fixtures for the Alpaca broker tests: an emulator on 127.0.0.1 and brokers pointed at it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.config import Settings
from tradekit_broker_alpaca import AlpacaConfig, AlpacaCredentials
from tradekit_broker_alpaca.execution import AlpacaBroker

# Random-looking values, so a test can prove that no part of them appears where it must not.
KEY_ID = "PK7Q2W9E4RZX1BT3"
SECRET_KEY = "xq7Lm2Pz9Rk4Tw6Yv8Nb3Hc5Jd0Fg"
CASH = Decimal(100_000)
AAPL_PRICE = Decimal("150")
BRK_PRICE = Decimal("600")
DELIVERY_WAIT_S = 5.0

MakeBroker = Callable[..., AlpacaBroker]


@pytest.fixture
def emu() -> Iterator[AlpacaEmulator]:
    """An emulated paper account with AAPL (fractionable) and BRK.A (whole shares only) priced."""
    with AlpacaEmulator(api_key=KEY_ID, secret_key=SECRET_KEY, cash=CASH) as emulator:
        emulator.set_asset("AAPL", name="Apple Inc. Common Stock")
        emulator.set_asset("BRK.A", fractionable=False, exchange="NYSE")
        emulator.set_price("AAPL", AAPL_PRICE)
        emulator.set_price("BRK.A", BRK_PRICE)
        yield emulator


def emulator_config(emu: AlpacaEmulator, **overrides: Any) -> AlpacaConfig:
    """Return a config pointed at the emulator with short bounds; polling only when asked for."""
    fields: dict[str, Any] = {
        "base_url": emu.base_url,
        "data_url": emu.data_url,
        "stream_url": emu.stream_url,
        "request_timeout_seconds": 2.0,
        "read_retries": 0,
        "read_retry_wait_seconds": 0.0,
        "poll_interval_seconds": 3600.0,
        "stream_reconnect_min_backoff_seconds": 0.05,
        "stream_reconnect_max_backoff_seconds": 0.2,
        "stream_shutdown_timeout_seconds": 2.0,
    }
    fields.update(overrides)
    return AlpacaConfig(**fields)


@pytest.fixture
def make_broker(emu: AlpacaEmulator) -> Iterator[MakeBroker]:
    """Build brokers on the emulator (config overrides as keywords); each is closed after the test.

    With the stream on, the broker is returned once it listens to trade_updates, so no
    update the test causes can precede the subscription.
    """
    built: list[AlpacaBroker] = []

    def make(*, credentials: AlpacaCredentials | None = None, **overrides: Any) -> AlpacaBroker:
        config = emulator_config(emu, **overrides)
        broker = AlpacaBroker(config, credentials or AlpacaCredentials(key_id=KEY_ID, secret_key=SECRET_KEY))
        built.append(broker)
        if config.stream and credentials is None:
            emu.wait_for_stream_listeners(len([b for b in built if b.config.stream]), timeout=DELIVERY_WAIT_S)
        return broker

    yield make
    for broker in built:
        broker.close()


@pytest.fixture
def broker(make_broker: MakeBroker) -> AlpacaBroker:
    return make_broker()


def wait_for_stream_delivery(broker: AlpacaBroker, emu: AlpacaEmulator) -> None:
    """Block until the broker's stream received as many trade updates as the emulator delivered."""
    delivered = len(emu.trade_updates()) - len(emu.undelivered_trade_updates())
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while True:
        status = broker.stream_status()
        assert status is not None, "the broker's stream is switched off"
        if status.updates_received >= delivered:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"stream received {status.updates_received} of {delivered} trade updates")
        time.sleep(0.005)


def settings_with(table: dict[str, Any]) -> Settings:
    """Return tradekit Settings whose [plugins.alpaca] table is ``table``."""
    return attrs.evolve(Settings(), plugins={"alpaca": table})
