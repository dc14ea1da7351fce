"""tradekit-venue-ccxt: perpetual-futures venues through ccxt, and Type B pair trades.

``CcxtVenue`` / ``AsyncCcxtVenue`` are tradekit brokers for one venue account (binanceusdm,
bybit linear); ``tradekit_venue_ccxt.pairs`` trades two-venue perp-perp pairs with the
spread rescue scale-in. The package registers itself through the ``tradekit`` entry point
``ccxt``.
"""

from typing import TYPE_CHECKING

from tradekit_venue_ccxt.config import (
    SUPPORTED_VENUES,
    CcxtSettings,
    CcxtVenueConfig,
    VenueCredentials,
    credential_env_vars,
    load_ccxt_settings,
)
from tradekit_venue_ccxt.providers import (
    FundingPayment,
    FundingRate,
    OrderBook,
    PerpMarket,
    Sweep,
    VenueBalance,
    VenueFill,
)

if TYPE_CHECKING:
    from tradekit_venue_ccxt.execution import AsyncCcxtVenue, CcxtVenue

__version__ = "0.1.0"

__all__ = [
    "SUPPORTED_VENUES",
    "AsyncCcxtVenue",
    "CcxtSettings",
    "CcxtVenue",
    "CcxtVenueConfig",
    "FundingPayment",
    "FundingRate",
    "OrderBook",
    "PerpMarket",
    "Sweep",
    "VenueBalance",
    "VenueCredentials",
    "VenueFill",
    "__version__",
    "credential_env_vars",
    "load_ccxt_settings",
]


def __getattr__(name: str) -> object:
    # The venues import ccxt (slow to import); load them when first asked for.
    if name in ("CcxtVenue", "AsyncCcxtVenue"):
        from tradekit_venue_ccxt import execution

        return getattr(execution, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
