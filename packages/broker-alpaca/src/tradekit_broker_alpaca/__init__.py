"""tradekit's Alpaca broker: US stocks through the official alpaca-py client.

``pip install tradekit-broker-alpaca`` registers the ``alpaca`` broker with tradekit; set
``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY`` and run ``tradekit run --broker alpaca``.
Importing this package does not import alpaca-py; ``AlpacaBroker`` loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradekit_broker_alpaca.config import (
    AlpacaConfig,
    AlpacaConfigError,
    AlpacaCredentials,
    BarAdjustment,
    BarFeed,
    load_alpaca_config,
    require_live_permission,
)

if TYPE_CHECKING:
    from tradekit_broker_alpaca.execution import AlpacaBroker

__version__ = "0.1.0"

__all__ = [
    "AlpacaBroker",
    "AlpacaConfig",
    "AlpacaConfigError",
    "AlpacaCredentials",
    "BarAdjustment",
    "BarFeed",
    "load_alpaca_config",
    "require_live_permission",
]


def __getattr__(name: str) -> object:
    if name == "AlpacaBroker":
        from tradekit_broker_alpaca.execution import AlpacaBroker

        return AlpacaBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
