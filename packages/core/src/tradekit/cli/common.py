"""Options and helpers shared by the commands.

Imports of the heavy parts (the ledger's SQLAlchemy, the plugins, the configuration) are
made inside the helpers, so a command that does not need them (``--version``, ``--help``)
starts without paying for them.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from tradekit import redaction

if TYPE_CHECKING:
    from tradekit.config import LoadedSettings
    from tradekit.ledger import Ledger
    from tradekit.plugins import Plugins

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

LOG_LEVEL_ENV = "TRADEKIT_LOG_LEVEL"
LOG_FILE_ENV = "TRADEKIT_LOG_FILE"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


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
        help="Ledger: a file path or URL, e.g. tradekit-run/latest/ledger.db or postgresql+psycopg://host/db "
        "(default: the config's [ledger] url).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(fn)


def load(config_path: Path | None, *, manager: Plugins | None = None) -> LoadedSettings:
    """Load and validate the configuration, plugin tables included; a bad one is a clear error."""
    from tradekit.config import SettingsError, load_settings

    tables = (manager or plugins()).settings_tables()
    try:
        loaded = load_settings(config_path, plugin_settings=tables)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in loaded.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", markup=True)
    return loaded


def plugins() -> Plugins:
    """The plugin manager: built-ins plus the installed entry points (a broken plugin is a clear error)."""
    from tradekit.plugins import PluginLoadError, Plugins

    try:
        return Plugins()
    except PluginLoadError as exc:
        raise click.ClickException(str(exc)) from None


def open_ledger(url: str, *, create: bool, for_trading: bool = False, durable: bool = True) -> Ledger:
    """Open the ledger at ``url`` (a URL or a bare SQLite path); ``create=False`` for the commands
    that only read it, so a mistyped path is an error, never a new empty ledger."""
    from tradekit.ledger import Ledger, LedgerError

    try:
        return Ledger.open(url, for_trading=for_trading, durable=durable, create=create)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def command_line(*args: str) -> str:
    """A ``tradekit`` command as a shell would need it typed (hints print this, so they work as printed)."""
    return shlex.join(("tradekit", *args))


def setup_logging() -> None:
    """Log to stderr at ``TRADEKIT_LOG_LEVEL`` (default WARNING), and to ``TRADEKIT_LOG_FILE`` if set.

    Secrets are masked in every record (``tradekit.redaction``), whichever handler writes it.
    """
    redaction.register_environment_secrets(os.environ)
    redaction.install()
    raw = os.environ.get(LOG_LEVEL_ENV, "WARNING").strip().upper() or "WARNING"
    if raw not in _LOG_LEVELS:
        raise click.UsageError(f"{LOG_LEVEL_ENV}={raw!r} is not a log level; use one of {', '.join(_LOG_LEVELS)}")
    level = getattr(logging, raw)
    root = logging.getLogger()
    # One command per process normally; tests invoke many in one, so the previous command's
    # handlers go before this one's come.
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()
    if not root.handlers:
        # As logging.basicConfig: an application that configured logging itself keeps it.
        _handlers.append(logging.StreamHandler(sys.stderr))
    log_file = os.environ.get(LOG_FILE_ENV, "").strip()
    if log_file:
        try:
            _handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            raise click.UsageError(f"{LOG_FILE_ENV}={log_file!r} cannot be written: {exc.strerror}") from None
    formatter = logging.Formatter(_LOG_FORMAT)
    for handler in _handlers:
        handler.setFormatter(formatter)
        handler.setLevel(level)
        root.addHandler(handler)
    if _handlers:
        root.setLevel(min(root.level, level) if root.level else level)


_handlers: list[logging.Handler] = []


def redact_output() -> None:
    """Mask secrets in everything this process writes to stdout and stderr from now on."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, redaction.RedactingStream):
            setattr(sys, name, redaction.RedactingStream(stream))
