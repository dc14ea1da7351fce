"""The API keys never show up in logs, reprs or exception messages.

The only tests in this package that look at log text, and only to prove what is absent.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import BrokerError
from tradekit.config import SettingsError
from tradekit.domain import OrderRequest, Side
from tradekit_broker_alpaca import AlpacaCredentials
from tradekit_broker_alpaca.plugin import make_alpaca_broker

from .conftest import KEY_ID, SECRET_KEY, MakeBroker, settings_with, wait_for_stream_delivery

WRONG_KEY_ID = "PK5T6Y7UAS8DF2GH"
WRONG_SECRET = "Wm4Qs8Ze1Xr5Cv9Bn2Ml6Kj3Hg7Fd"
SECRETS = (KEY_ID, SECRET_KEY, WRONG_KEY_ID, WRONG_SECRET)
# A log line that shows part of a secret leaks it too (websockets elides the middle of a
# long frame but prints its ends), so any eight characters in a row count.
_WINDOW = 8


def leaked(text: str) -> list[str]:
    return [
        secret for secret in SECRETS if any(secret[i : i + _WINDOW] in text for i in range(len(secret) - _WINDOW + 1))
    ]


def test_keys_appear_in_no_log_record_even_at_debug_level(
    emu: AlpacaEmulator, make_broker: MakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("websockets", "websockets.client", "websockets.protocol", "urllib3", "alpaca"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[str] = []

    broker = make_broker(poll_interval_seconds=0)
    broker.drain_events()
    broker.submit_order(OrderRequest(client_order_id="log-1", symbol="AAPL", side=Side.BUY, qty=Decimal(1)))
    wait_for_stream_delivery(broker, emu)
    broker.drain_events()
    emu.arm_error(500, endpoint="GET /v2/positions")
    emu.arm_error(504, after_processing=True)
    for failing in (
        broker.get_positions,
        lambda: broker.submit_order(
            OrderRequest(client_order_id="log-2", symbol="AAPL", side=Side.BUY, qty=Decimal(1))
        ),
        lambda: broker.submit_order(
            OrderRequest(client_order_id="log-1", symbol="AAPL", side=Side.BUY, qty=Decimal(1))
        ),
    ):
        with pytest.raises(BrokerError) as raised:
            failing()
        errors.append(str(raised.value))
    emu.drop_stream_connections(abrupt=True)
    emu.wait_for_stream_listeners(1)
    refused = make_broker(
        credentials=AlpacaCredentials(key_id=WRONG_KEY_ID, secret_key=WRONG_SECRET), stream_max_auth_failures=1
    )
    with pytest.raises(BrokerError) as raised:
        refused.get_account()
    errors.append(str(raised.value))
    broker.close()
    refused.close()

    assert any("/v2/orders" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert [leaked(r.getMessage()) for r in caplog.records if leaked(r.getMessage())] == []
    assert [leaked(caplog.text)] == [[]]
    assert [e for e in errors if leaked(e)] == []


def test_reprs_show_no_key(emu: AlpacaEmulator, make_broker: MakeBroker) -> None:
    broker = make_broker()
    credentials = AlpacaCredentials(key_id=KEY_ID, secret_key=SECRET_KEY)

    texts = [repr(broker), str(broker), repr(broker.config), repr(credentials), repr(broker.stream_status())]

    assert [t for t in texts if leaked(t)] == []


def test_configuration_errors_show_no_key(emu: AlpacaEmulator) -> None:
    env = {"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": SECRET_KEY}
    messages = []
    for table, environment in (
        ({"paper": False, "base_url": emu.base_url}, env),
        ({"secret_key": SECRET_KEY}, env),
        ({"key_id": KEY_ID}, env),
        ({"base_url": emu.base_url}, {"APCA_API_KEY_ID": KEY_ID}),
    ):
        with pytest.raises(SettingsError) as raised:
            make_alpaca_broker(settings_with(table), environment)
        messages.append(str(raised.value))

    assert [m for m in messages if leaked(m)] == []
