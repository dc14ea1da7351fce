"""The built-in ``paper`` broker, registered through the same hook a broker plugin uses.

Configure it in the ``[plugins.paper]`` table: every ``PaperBrokerConfig`` field (money as
quoted decimals, e.g. ``starting_cash = "25000"``; symbol sets as lists or as one
comma-separated string) plus ``state_file``, the JSON file that lets the paper account
survive a restart (``TRADEKIT_PLUGINS__PAPER__STATE_FILE`` sets it from the environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tradekit.broker.paper import PAPER_BROKER_NAME, PaperBroker, PaperBrokerConfig
from tradekit.broker.protocol import Broker
from tradekit.broker.spec import BrokerSpec
from tradekit.config.plugin_settings import PluginSettings
from tradekit.config.settings import Settings, SettingsError
from tradekit.hookspecs import hookimpl
from tradekit.serialization import StructureError, structure

STATE_FILE_KEY = "state_file"
# Symbol sets may come from the environment as one comma-separated string.
_SYMBOL_SET_KEYS = ("non_fractionable_symbols", "tradable_symbols")


def _state_file(_inst: object, _attr: object, value: str | None) -> None:
    if value is not None and not value.strip():
        raise SettingsError(f"plugins.paper.{STATE_FILE_KEY} must be a file path, got {value!r}")


@attrs.frozen(kw_only=True)
class PaperSettings(PaperBrokerConfig):
    """The ``[plugins.paper]`` table: the paper account's ``PaperBrokerConfig`` plus its state file."""

    state_file: str | None = attrs.field(default=None, validator=_state_file)


def read_paper_settings(raw: Mapping[str, Any]) -> PaperSettings:
    """Structure a ``[plugins.paper]`` table, naming every bad key (checked at load, read at build)."""
    table: dict[str, Any] = dict(raw)
    state_file = table.get(STATE_FILE_KEY)
    if state_file is not None and not isinstance(state_file, str):
        raise SettingsError(f"plugins.paper.{STATE_FILE_KEY} must be a file path, got {state_file!r}")
    for key in _SYMBOL_SET_KEYS:
        if isinstance(table.get(key), str):
            table[key] = [symbol.strip() for symbol in table[key].split(",") if symbol.strip()]
    try:
        return structure(table, PaperSettings, what="plugins.paper")
    except StructureError as exc:
        raise SettingsError(
            "the [plugins.paper] settings are invalid:\n" + "\n".join(f"  - {p}" for p in exc.problems)
        ) from exc


def make_paper_broker(settings: Settings, env: Mapping[str, str]) -> Broker:
    """Build the paper broker from ``[plugins.paper]``; it needs no credentials."""
    paper = read_paper_settings(settings.plugins.get(PAPER_BROKER_NAME, {}))
    # The broker is configured with the account's fields only; the state file is where it keeps them.
    account = attrs.asdict(paper, recurse=False, filter=lambda field, _value: field.name != STATE_FILE_KEY)
    return PaperBroker(PaperBrokerConfig(**account), state_path=paper.state_file)


@hookimpl
def register_brokers(register: Callable[[BrokerSpec], None]) -> None:
    register(
        BrokerSpec(
            name=PAPER_BROKER_NAME,
            description="Built-in paper account filling orders against the market data it is fed; no credentials.",
            factory=make_paper_broker,
        )
    )


@hookimpl
def register_settings(register: Callable[[PluginSettings], None]) -> None:
    register(PluginSettings(table=PAPER_BROKER_NAME, settings_type=PaperSettings, read=read_paper_settings))
