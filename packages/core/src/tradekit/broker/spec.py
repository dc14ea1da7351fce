"""Registration records for brokers and venues, returned through the register hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tradekit.broker.protocol import Broker
from tradekit.config.settings import Settings

BrokerFactory = Callable[[Settings, Mapping[str, str]], Broker]


def _name(_inst: object, _attr: object, value: str) -> None:
    if not value or not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"broker/venue name must be alphanumeric (with - or _), got {value!r}")


@attrs.frozen(kw_only=True)
class BrokerSpec:
    """A broker a plugin offers: a unique name and a factory.

    The factory receives the settings and the environment (where credentials live; they are
    never read from the config file) and returns a connected ``Broker``.
    """

    name: str = attrs.field(validator=_name)
    description: str
    factory: BrokerFactory
    live_capable: bool = False
    options: Mapping[str, Any] = attrs.field(factory=dict)
