"""The ``alpaca`` broker, registered through the ``tradekit`` entry-point group.

Importing this module does not import alpaca-py: tradekit loads every installed plugin at
start-up, and the Alpaca client (and its import-time warning) is only needed once someone
actually builds the broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tradekit.broker.spec import BrokerSpec
from tradekit.config.plugin_settings import PluginSettings
from tradekit.config.settings import Settings
from tradekit.data.fetch import DataSourceSpec
from tradekit.hookspecs import hookimpl
from tradekit_broker_alpaca.config import (
    PLUGIN_TABLE,
    AlpacaConfig,
    AlpacaCredentials,
    load_alpaca_config,
    read_alpaca_table,
    require_live_permission,
)

if TYPE_CHECKING:
    from tradekit_broker_alpaca.bars import AlpacaBars
    from tradekit_broker_alpaca.execution import AlpacaBroker


def make_alpaca_broker(settings: Settings, env: Mapping[str, str]) -> AlpacaBroker:
    """Build the broker from ``[plugins.alpaca]`` and the keys in ``env``; refuse live without the flag.

    Raises ``AlpacaConfigError`` (a ``SettingsError``) naming the key or variable at fault, or
    ``LiveTradingRefused`` naming the real-money endpoint, before any request is made.
    """
    config = load_alpaca_config(settings)
    require_live_permission(config, env)
    credentials = AlpacaCredentials.from_env(env)
    from tradekit_broker_alpaca.execution import AlpacaBroker

    return AlpacaBroker(config, credentials)


def make_alpaca_bars(settings: Settings, env: Mapping[str, str]) -> AlpacaBars:
    """Build the ``alpaca`` data source: the market-data client only, keys from ``env``."""
    config = load_alpaca_config(settings)
    credentials = AlpacaCredentials.from_env(env)
    from tradekit_broker_alpaca.bars import AlpacaBars

    return AlpacaBars(config, credentials)


@hookimpl
def register_data_sources(register: Callable[[DataSourceSpec], None]) -> None:
    register(
        DataSourceSpec(
            name="alpaca",
            description="Alpaca market data (daily bars, IEX feed unless [plugins.alpaca] bar_feed says otherwise)",
            factory=make_alpaca_bars,
        )
    )


@hookimpl
def register_brokers(register: Callable[[BrokerSpec], None]) -> None:
    register(
        BrokerSpec(
            name="alpaca",
            description=(
                "Alpaca US stocks through alpaca-py: paper by default, live only with the live flag; "
                "keys from APCA_API_KEY_ID / APCA_API_SECRET_KEY."
            ),
            factory=make_alpaca_broker,
            live_capable=True,
        )
    )


@hookimpl
def register_settings(register: Callable[[PluginSettings], None]) -> None:
    register(PluginSettings(table=PLUGIN_TABLE, settings_type=AlpacaConfig, read=read_alpaca_table))
