"""``tradekit data``: fetch daily bars from a market-data plugin into a local cache."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from tradekit.broker.errors import BrokerError
from tradekit.cli.common import config_option, console, emit_json, json_option, load, plugins
from tradekit.config.settings import SettingsError
from tradekit.data import DataError
from tradekit.data.fetch import close_source, default_cache_dir, fetch_to_cache


@click.group("data")
def data_group() -> None:
    """Market data: fetch daily bars into a local cache for tradekit run --data."""


@data_group.command("sources")
@json_option
def data_sources(as_json: bool) -> None:
    """List the market-data sources installed plugins offer."""
    found = plugins().data_sources()
    if as_json:
        emit_json({name: spec.description for name, spec in sorted(found.items())})
        return
    for name, spec in sorted(found.items()):
        console.print(f"{name:<20} {spec.description}")
    if not found:
        console.print("no data source is installed: pip install tradekit-broker-alpaca or tradekit-venue-ccxt")


@data_group.command("fetch")
@click.option("--source", "source_name", required=True, help="Data source (tradekit data sources lists them).")
@click.option("--symbols", required=True, help="Comma-separated symbols, e.g. AAPL,MSFT or BTC/USDT:USDT.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (default: today).")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache directory (default: ~/.cache/tradekit/bars/SOURCE).",
)
@config_option
@json_option
def data_fetch(
    source_name: str,
    symbols: str,
    start: datetime,
    end: datetime | None,
    cache: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Download daily bars into the cache; then tradekit run --data DIR replays them."""
    settings = load(config_path).settings
    available = plugins().data_sources()
    spec = available.get(source_name)
    if spec is None:
        raise click.ClickException(
            f"unknown data source {source_name!r}; installed: {', '.join(sorted(available)) or 'none'}"
        )
    wanted = [s.strip() for s in symbols.split(",") if s.strip()]
    first, last = start.date(), (end or datetime.now(UTC)).date()
    if last < first:
        raise click.ClickException(f"the last day {last} is before the first day {first}")
    try:
        directory = cache or default_cache_dir() / source_name
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        source = spec.factory(settings, dict(os.environ))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        # A source may say more precisely what it serves (the feed, the exchange) than its spec.
        label = str(getattr(source, "description", "") or spec.description)
        result = fetch_to_cache(
            source, label=label, symbols=wanted, first_day=first, last_day=last, directory=directory
        )
    except (BrokerError, DataError) as exc:
        raise click.ClickException(f"{source_name}: {exc}") from None
    finally:
        close_source(source)
    if as_json:
        emit_json({"source": source_name, "directory": str(result.directory), "bars": result.bars})
        return
    for symbol, count in result.bars.items():
        console.print(f"{symbol:<16} {count:>6,} bars")
    console.print(f"cached in {result.directory}", soft_wrap=True)
    console.print(f"replay them with: tradekit run --data {result.directory}", soft_wrap=True)
