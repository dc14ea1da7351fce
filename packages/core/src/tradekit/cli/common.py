"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from tradekit.config import LoadedSettings, SettingsError, load_settings
from tradekit.ledger import Ledger, LedgerError
from tradekit.plugins import PluginLoadError, Plugins

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML configuration file (default: $TRADEKIT_CONFIG, else built-in defaults).",
    )(fn)


def ledger_option(fn: F) -> F:
    return click.option(
        "--ledger",
        "ledger_url",
        default=None,
        help="Ledger URL, e.g. sqlite:///tradekit-run/latest/ledger.db (default: the config's [ledger] url).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(fn)


def load(config_path: Path | None) -> LoadedSettings:
    try:
        loaded = load_settings(config_path)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in loaded.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    return loaded


def plugins() -> Plugins:
    try:
        return Plugins()
    except PluginLoadError as exc:
        raise click.ClickException(str(exc)) from None


def open_ledger(url: str, *, for_trading: bool = False, durable: bool = True) -> Ledger:
    try:
        return Ledger.open(url, for_trading=for_trading, durable=durable)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def setup_logging() -> None:
    level = os.environ.get("TRADEKIT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
