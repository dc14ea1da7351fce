"""``tradekit pairs``: the pair commands this package adds to the tradekit command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from tradekit.config.loading import load_settings
from tradekit.config.settings import SettingsError
from tradekit_venue_ccxt.config import load_ccxt_settings
from tradekit_venue_ccxt.pairs.models import PairStatus
from tradekit_venue_ccxt.pairs.store import PairStore, PairStoreError
from tradekit_venue_ccxt.pairs.view import position_rows, render_rows, rows_to_json

_STATUSES = {"open": PairStatus.OPEN, "closing": PairStatus.CLOSING, "closed": PairStatus.CLOSED, "all": None}


@click.group(name="pairs")
def pairs_group() -> None:
    """Type B perp-perp pairs traded through tradekit-venue-ccxt."""


@pairs_group.command(name="positions")
@click.option("--status", type=click.Choice(sorted(_STATUSES)), default="open", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration file (default: $TRADEKIT_CONFIG, else built-in defaults).",
)
def positions_command(status: str, as_json: bool, config_path: Path | None) -> None:
    """Show each pair: entries, weighted entry spread, current spread, next trigger, funding, time to force-close."""
    try:
        settings = load_settings(config_path).settings
        pairs_config = load_ccxt_settings(settings).pairs
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        store = PairStore.open(settings.ledger.url, create=False)
    except PairStoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        rows = position_rows(store, now=datetime.now(UTC), status=_STATUSES[status], config=pairs_config)
    finally:
        store.close()
    click.echo(rows_to_json(rows) if as_json else render_rows(rows))
