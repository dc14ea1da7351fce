"""The ``ccxt`` entry-point plugin: venues as brokers, the pair rule, the ``tradekit pairs`` commands.

Loaded by tradekit through the ``tradekit`` entry-point group. It imports no ccxt code until a
venue is actually built, so installing the package costs nothing to commands that do not
trade perpetuals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tradekit.broker.live import live_requested
from tradekit.broker.protocol import Broker
from tradekit.broker.spec import BrokerFactory, BrokerSpec
from tradekit.config.plugin_settings import PluginSettings
from tradekit.config.settings import Settings
from tradekit.data.fetch import DataSourceSpec
from tradekit.data.source import BarSource
from tradekit.hookspecs import hookimpl
from tradekit.serve.pages import StatusPage
from tradekit_venue_ccxt.config import (
    PLUGIN_KEY,
    SUPPORTED_VENUES,
    CcxtSettings,
    VenueCredentials,
    load_ccxt_settings,
    read_ccxt_table,
)
from tradekit_venue_ccxt.pairs.rules import evaluate_buy
from tradekit_venue_ccxt.venues import PROFILES

if TYPE_CHECKING:
    import click

    from tradekit_venue_ccxt.execution import AsyncCcxtVenue

__all__ = [
    "bars_factory",
    "evaluate_buy",
    "register_brokers",
    "register_commands",
    "register_data_sources",
    "register_settings",
    "register_status_pages",
    "venue_factory",
]


def venue_factory(venue: str) -> BrokerFactory:
    """The broker factory of ``venue``: its ``[plugins.ccxt.venues.<venue>]`` table, keys from env.

    The venue's test environment unless configured otherwise; production only with the live
    flag in ``env`` (``LiveTradingRefused`` before any request otherwise).
    """

    def factory(settings: Settings, env: Mapping[str, str]) -> Broker:
        from tradekit_venue_ccxt.execution import CcxtVenue

        config = load_ccxt_settings(settings).venue(venue)
        return CcxtVenue.connect(config, VenueCredentials.from_env(venue, env), live=live_requested(env))

    return factory


def async_venue_factory(venue: str) -> Callable[[Settings, Mapping[str, str]], AsyncCcxtVenue]:
    """The same for the live runner's event loop (``ccxt.async_support``)."""

    def factory(settings: Settings, env: Mapping[str, str]) -> AsyncCcxtVenue:
        from tradekit_venue_ccxt.execution import AsyncCcxtVenue

        config = load_ccxt_settings(settings).venue(venue)
        return AsyncCcxtVenue.connect(config, VenueCredentials.from_env(venue, env), live=live_requested(env))

    return factory


@hookimpl
def register_brokers(register: Callable[[BrokerSpec], None]) -> None:
    for venue in SUPPORTED_VENUES:
        register(
            BrokerSpec(
                name=f"ccxt-{venue}",
                description=PROFILES[venue].description,
                factory=venue_factory(venue),
                live_capable=True,
                options={"venue": venue, "async_factory": async_venue_factory(venue)},
            )
        )


def bars_factory(venue: str) -> Callable[[Settings, Mapping[str, str]], BarSource]:
    """The ``ccxt-<venue>`` data source: public candles, ``[plugins.ccxt.venues.<venue>]`` for the client."""

    def factory(settings: Settings, env: Mapping[str, str]) -> BarSource:
        from tradekit_venue_ccxt.bars import CcxtBars

        return CcxtBars.connect(load_ccxt_settings(settings).venue(venue))

    return factory


@hookimpl
def register_data_sources(register: Callable[[DataSourceSpec], None]) -> None:
    for venue in SUPPORTED_VENUES:
        register(
            DataSourceSpec(
                name=f"ccxt-{venue}",
                description=f"{venue} daily candles through ccxt (fetch_ohlcv, public data)",
                factory=bars_factory(venue),
            )
        )


@hookimpl
def register_settings(register: Callable[[PluginSettings], None]) -> None:
    register(PluginSettings(table=PLUGIN_KEY, settings_type=CcxtSettings, read=read_ccxt_table))


@hookimpl
def register_commands(cli: click.Group) -> None:
    from tradekit_venue_ccxt.pairs.cli import pairs_group

    cli.add_command(pairs_group)


@hookimpl
def register_status_pages(register: Callable[[StatusPage], None]) -> None:
    from tradekit_venue_ccxt.pairs.status_page import PAIRS_PAGE

    register(PAIRS_PAGE)
