"""Configuration, credentials, the live switch and the plugin's registration."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.live import LiveTradingRefused
from tradekit.config import SettingsError, load_settings
from tradekit.plugins import Plugins
from tradekit_broker_alpaca import AlpacaConfig, AlpacaConfigError, BarFeed, load_alpaca_config
from tradekit_broker_alpaca.config import AlpacaCredentials
from tradekit_broker_alpaca.execution import AlpacaBroker
from tradekit_broker_alpaca.plugin import make_alpaca_broker

from .conftest import KEY_ID, SECRET_KEY, settings_with

KEYS = {"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": SECRET_KEY}


def emulator_table(emu: AlpacaEmulator, **extra: Any) -> dict[str, Any]:
    return {"base_url": emu.base_url, "data_url": emu.data_url, "stream": False, **extra}


def test_defaults_are_paper_with_bounded_requests() -> None:
    config = load_alpaca_config(settings_with({}))

    assert config == AlpacaConfig()
    assert (config.paper, config.base_url, config.request_timeout_seconds, config.read_retries) == (True, None, 10.0, 2)
    assert config.bar_feed is BarFeed.IEX


def test_every_key_is_read_from_the_plugins_table() -> None:
    config = load_alpaca_config(
        settings_with(
            {
                "paper": True,
                "base_url": "http://127.0.0.1:8080/",
                "data_url": "http://127.0.0.1:8081",
                "stream_url": "ws://127.0.0.1:8080/stream",
                "request_timeout_seconds": 2.5,
                "read_retries": 0,
                "read_retry_wait_seconds": 0,
                "poll_interval_seconds": 5,
                "stream": False,
                "stream_reconnect_min_backoff_seconds": 0.5,
                "stream_reconnect_max_backoff_seconds": 4,
                "stream_max_auth_failures": 5,
                "stream_shutdown_timeout_seconds": 1,
                "bar_feed": "sip",
                "bar_adjustment": "split",
            }
        )
    )

    # alpaca-py appends "/v2": the root is kept without its trailing slash.
    assert (config.base_url, config.data_url, config.stream_url) == (
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8081",
        "ws://127.0.0.1:8080/stream",
    )
    assert (config.request_timeout_seconds, config.read_retries, config.poll_interval_seconds) == (2.5, 0, 5.0)
    assert (config.stream, config.stream_max_auth_failures, config.bar_feed.value, config.bar_adjustment.value) == (
        False,
        5,
        "sip",
        "split",
    )


def test_environment_overrides_reach_the_plugins_table_as_strings() -> None:
    loaded = load_settings(
        env={
            "TRADEKIT_PLUGINS__ALPACA__BASE_URL": "http://127.0.0.1:9999",
            "TRADEKIT_PLUGINS__ALPACA__POLL_INTERVAL_SECONDS": "0.5",
            "TRADEKIT_PLUGINS__ALPACA__STREAM": "false",
            "TRADEKIT_PLUGINS__ALPACA__READ_RETRIES": "1",
        }
    )

    config = load_alpaca_config(loaded.settings)

    assert (config.base_url, config.poll_interval_seconds, config.stream, config.read_retries) == (
        "http://127.0.0.1:9999",
        0.5,
        False,
        1,
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"base_ur": "http://x"}, "extra fields found (base_ur) @ plugins.alpaca"),
        ({"paper": "maybe"}, "expected true or false, got 'maybe'"),
        ({"read_retries": 9}, "plugins.alpaca.read_retries must be from 0 to 5, got 9"),
        ({"request_timeout_seconds": 0}, "plugins.alpaca.request_timeout_seconds must be from more than 0 to 120"),
        ({"poll_interval_seconds": -1}, "plugins.alpaca.poll_interval_seconds must be from 0 to 3600"),
        ({"base_url": "ftp://127.0.0.1"}, "plugins.alpaca.base_url must be a http or https URL"),
        ({"base_url": "https://paper-api.alpaca.markets/v2"}, "must be the host root without /v2"),
        ({"stream_url": "http://127.0.0.1/stream"}, "plugins.alpaca.stream_url must be a ws or wss URL"),
        ({"bar_feed": "nasdaq"}, "'nasdaq' is not one of 'iex', 'sip', 'delayed_sip'"),
        (
            {"stream_reconnect_min_backoff_seconds": 5, "stream_reconnect_max_backoff_seconds": 1},
            "stream_reconnect_max_backoff_seconds (1.0) must not be below",
        ),
    ],
)
def test_invalid_settings_are_refused_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(AlpacaConfigError) as raised:
        load_alpaca_config(settings_with(table))

    assert message in str(raised.value)
    assert isinstance(raised.value, SettingsError)


@pytest.mark.parametrize("key", ["secret_key", "api_key", "APCA_API_SECRET_KEY"])
def test_credentials_in_the_configuration_are_refused_without_echoing_them(key: str) -> None:
    with pytest.raises(AlpacaConfigError) as raised:
        load_alpaca_config(settings_with({key: SECRET_KEY}))

    assert f"plugins.alpaca.{key}" in str(raised.value)
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment" in str(raised.value)
    assert SECRET_KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "APCA_API_KEY_ID and APCA_API_SECRET_KEY"),
        ({"APCA_API_KEY_ID": KEY_ID}, "APCA_API_SECRET_KEY"),
        ({"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": "  "}, "APCA_API_SECRET_KEY"),
    ],
)
def test_missing_keys_are_named(emu: AlpacaEmulator, env: dict[str, str], missing: str) -> None:
    with pytest.raises(AlpacaConfigError, match=f"needs {missing} in the environment"):
        make_alpaca_broker(settings_with(emulator_table(emu)), env)


def test_factory_builds_a_paper_broker_from_settings_and_the_environment(emu: AlpacaEmulator) -> None:
    broker = make_alpaca_broker(settings_with(emulator_table(emu)), KEYS)
    try:
        assert isinstance(broker, AlpacaBroker)
        assert broker.config.paper is True
        assert broker.get_account().equity > 0
    finally:
        broker.close()


def test_live_trading_is_refused_without_the_live_flag(emu: AlpacaEmulator) -> None:
    settings = settings_with(emulator_table(emu, paper=False))

    for env in (KEYS, {**KEYS, "TRADEKIT_LIVE": "0"}, {**KEYS, "TRADEKIT_LIVE": "false"}):
        with pytest.raises(LiveTradingRefused, match=r"paper = false .*refused without the live flag — give --live"):
            make_alpaca_broker(settings, env)
    with pytest.raises(SettingsError, match="TRADEKIT_LIVE='yes' is not a boolean"):
        make_alpaca_broker(settings, {**KEYS, "TRADEKIT_LIVE": "yes"})
    assert emu.requests() == []


def test_live_trading_is_built_with_the_live_flag(emu: AlpacaEmulator) -> None:
    broker = make_alpaca_broker(settings_with(emulator_table(emu, paper=False)), {**KEYS, "TRADEKIT_LIVE": "1"})
    try:
        assert broker.config.paper is False
        assert "LIVE" not in repr(broker)
    finally:
        broker.close()


def test_paper_configuration_pointed_at_the_live_host_is_refused() -> None:
    live_host = r"points at Alpaca's live host api\.alpaca\.markets while paper = true"
    with pytest.raises(AlpacaConfigError, match=live_host):
        load_alpaca_config(settings_with({"base_url": "https://api.alpaca.markets"}))
    with pytest.raises(AlpacaConfigError, match="stream_url points at Alpaca's live host"):
        load_alpaca_config(settings_with({"stream_url": "wss://api.alpaca.markets/stream"}))
    with pytest.raises(AlpacaConfigError, match="points at Alpaca's paper host"):
        load_alpaca_config(settings_with({"paper": False, "base_url": "https://paper-api.alpaca.markets"}))


def test_credentials_repr_never_shows_them() -> None:
    credentials = AlpacaCredentials.from_env({"APCA_API_KEY_ID": f" {KEY_ID} ", "APCA_API_SECRET_KEY": SECRET_KEY})

    assert (credentials.key_id, credentials.secret_key) == (KEY_ID, SECRET_KEY)
    assert repr(credentials) == str(credentials) == "AlpacaCredentials(<redacted>)"


def test_alpaca_is_registered_through_the_tradekit_entry_point() -> None:
    plugins = Plugins(env={"TRADEKIT_LOAD_PLUGINS": "alpaca"})

    spec = plugins.brokers()["alpaca"]

    assert spec.factory is make_alpaca_broker
    assert spec.live_capable is True
    assert "entrypoint:tradekit-broker-alpaca 0.1.0" in {p.origin for p in plugins.loaded}


def test_loading_the_plugin_does_not_import_alpaca_py() -> None:
    code = (
        "import sys, warnings; warnings.simplefilter('error'); import tradekit_broker_alpaca.plugin; "
        "print(sorted(m for m in sys.modules if m == 'alpaca' or m.startswith('alpaca.')))"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)

    assert result.stdout.strip() == "[]"


def test_importing_the_broker_raises_no_warning() -> None:
    code = "import warnings; warnings.simplefilter('error'); import tradekit_broker_alpaca.execution"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
