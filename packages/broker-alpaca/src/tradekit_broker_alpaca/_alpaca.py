"""The one place that imports alpaca-py.

alpaca-py 0.44's ``alpaca.trading.stream`` imports ``websockets.legacy``, which websockets 14+
deprecates with a ``DeprecationWarning`` at import time. Nothing a caller does can avoid it,
and a test run with ``filterwarnings = error`` (tradekit's) would fail on it. So exactly that
message, of exactly that category, is ignored while alpaca-py is imported here, and nowhere
else; any other warning (or the same one from another import) still surfaces.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="websockets.legacy is deprecated", category=DeprecationWarning)
    from alpaca.common.enums import Sort
    from alpaca.common.exceptions import APIError
    from alpaca.common.rest import RESTClient
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, OrderType, QueryOrderStatus, TimeInForce
    from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest
    from alpaca.trading.stream import TradingStream

__all__ = [
    "APIError",
    "Adjustment",
    "DataFeed",
    "GetCalendarRequest",
    "GetOrdersRequest",
    "OrderSide",
    "OrderType",
    "QueryOrderStatus",
    "RESTClient",
    "Sort",
    "StockBarsRequest",
    "StockHistoricalDataClient",
    "StockLatestTradeRequest",
    "TimeFrame",
    "TimeFrameUnit",
    "TimeInForce",
    "TradingClient",
    "TradingStream",
]
