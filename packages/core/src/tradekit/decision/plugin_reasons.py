"""Reason codes a plugin declares for its own rules, and rules scoped to strategies or symbols.

A rule plugin names why it skipped or blocked a buy in its own words, namespaced by the
plugin's name: ``PluginReason("house_rules", "no_friday_buys", "no new positions on
Fridays")`` is stored, counted in run summaries and shown by ``tradekit explain`` as
``house_rules:no_friday_buys``, never mistaken for a built-in ``ReasonCode``. The plugin
declares its codes through ``register_reasons``; tradekit refuses a code whose namespace is
not the name of the plugin declaring it, and a code declared twice.
"""

from __future__ import annotations

import re
from typing import Any, TypeAlias

from tradekit.decision.reasons import ReasonCode

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
SEPARATOR = ":"


class PluginReason(str):
    """A plugin's own reason code: ``"<plugin>:<code>"``, with a description for people.

    It is a ``str`` (as ``ReasonCode`` members are), so it joins, compares and counts like
    one; ``plugin``, ``code`` and ``description`` say what it is.
    """

    plugin: str
    code: str
    description: str

    def __new__(cls, plugin: str, code: str, description: str = "") -> PluginReason:
        for what, value in (("plugin", plugin), ("code", code)):
            if not isinstance(value, str) or not _NAME.match(value):
                raise ValueError(f"a plugin reason's {what} must be letters, digits, '_', '-' or '.', got {value!r}")
        made = super().__new__(cls, f"{plugin}{SEPARATOR}{code}")
        made.plugin, made.code, made.description = plugin, code, description
        return made

    @property
    def value(self) -> str:
        """The stored form, as ``ReasonCode.value`` is."""
        return str(self)

    @property
    def _value_(self) -> str:
        # What the trace encoder reads from a ReasonCode member.
        return str(self)

    def __repr__(self) -> str:
        return f"PluginReason({self.plugin!r}, {self.code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PluginReason, (self.plugin, self.code, self.description))


Reason: TypeAlias = ReasonCode | PluginReason
"""Why a check skipped or blocked a buy: a built-in code or a plugin's own."""


def parse_reason(value: str) -> Reason:
    """The reason a stored string names: ``plugin:code`` or a built-in ``ReasonCode``."""
    if SEPARATOR in value:
        plugin, _, code = value.partition(SEPARATOR)
        return PluginReason(plugin, code)
    try:
        return ReasonCode(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in ReasonCode)
        raise ValueError(f"{value!r} is neither a plugin reason (plugin:code) nor one of {allowed}") from None
