"""What a plugin declares about its ``[plugins.<name>]`` table, so tradekit checks it at load.

A plugin that reads settings registers one ``PluginSettings`` through the
``register_settings`` hook::

    @attrs.frozen(kw_only=True)
    class PaperSettings:
        starting_cash: Decimal = Decimal(100_000)

    @hookimpl
    def register_settings(register):
        register(PluginSettings(table="paper", settings_type=PaperSettings))

When the configuration loads, every ``[plugins.<name>]`` table is structured into its
declared type with tradekit's converter (unknown keys refused, Decimals from strings,
booleans only as booleans), so a typo or a bad value fails ``tradekit config check`` rather
than the first trade; a table no loaded plugin declares is an error too. The type's fields
also tell how a ``TRADEKIT_PLUGINS__<NAME>__<KEY>`` variable's text is read (a boolean, a
list). The plugin still reads its table itself when it runs (``PluginSettings.read_table``
gives it the same validated object).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tradekit.serialization import structure


def _table_name(_inst: object, _attr: object, value: str) -> None:
    if not value or not value.replace("_", "").replace("-", "").isalnum() or value != value.lower():
        raise ValueError(f"a plugin settings table name must be lower-case alphanumeric (with - or _), got {value!r}")


@attrs.frozen(kw_only=True)
class PluginSettings:
    """The ``[plugins.<table>]`` table a plugin reads, and the attrs class it structures to.

    ``read`` replaces the plain structuring when a table needs more than its type says
    (the ccxt venues take their venue id from their table's name); it takes the raw table
    and returns the validated object, raising ``SettingsError`` or ``StructureError``
    naming each bad key.
    """

    table: str = attrs.field(validator=_table_name)
    settings_type: type[Any]
    read: Callable[[Mapping[str, Any]], object] | None = None

    def read_table(self, table: Mapping[str, Any]) -> object:
        """Validate ``table`` (the raw ``[plugins.<table>]`` mapping) and return the settings object."""
        if self.read is not None:
            return self.read(table)
        return structure(dict(table), self.settings_type, what=f"plugins.{self.table}")
