"""Daily bars from Alpaca's market-data API (alpaca-py's ``StockHistoricalDataClient``).

``AlpacaBars`` is the ``alpaca`` source of ``tradekit data fetch``: the data client alone,
no trading client and no stream. ``AlpacaBroker.daily_bars`` asks for bars the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

import tradekit_broker_alpaca._alpaca as alpaca
from tradekit.data import DataError
from tradekit.domain.market import Bar
from tradekit_broker_alpaca._http import bound_client, failure_from
from tradekit_broker_alpaca.config import AlpacaConfig, AlpacaCredentials
from tradekit_broker_alpaca.providers import bar_from_alpaca


def daily_bars_request(config: AlpacaConfig, symbols: Sequence[str], start: datetime, end: datetime) -> Any:
    """The bars request for ``symbols`` whose sessions close within ``start``..``end``."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"daily_bars {name} must be timezone-aware, got {value.isoformat()}")
    return alpaca.StockBarsRequest(
        symbol_or_symbols=list(symbols),
        timeframe=alpaca.TimeFrame(1, alpaca.TimeFrameUnit.Day),
        # A daily bar is stamped at its session's start and tradekit keeps its close:
        # ask from a day early, then keep the bars that close in the window.
        start=start.astimezone(UTC) - timedelta(days=1),
        end=end.astimezone(UTC),
        adjustment=alpaca.Adjustment(config.bar_adjustment.value),
        feed=alpaca.DataFeed(config.bar_feed.value),
    )


def bars_from_response(
    raw: Mapping[str, Any], symbols: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[Bar]]:
    """Each symbol's bars closing within ``start``..``end``, oldest first."""
    result: dict[str, list[Bar]] = {}
    for symbol in symbols:
        series = [bar_from_alpaca(symbol, _object(b, f"Alpaca bar of {symbol}")) for b in raw.get(symbol) or []]
        result[symbol] = sorted((b for b in series if start <= b.time <= end), key=lambda b: b.time)
    return result


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DataError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


class AlpacaBars:
    """A ``BarSource`` on Alpaca's market-data API only (feed and adjustment from the config)."""

    def __init__(self, config: AlpacaConfig, credentials: AlpacaCredentials) -> None:
        self._config = config
        self._client = alpaca.StockHistoricalDataClient(
            credentials.key_id, credentials.secret_key, raw_data=True, url_override=config.data_url
        )
        bound_client(
            self._client,
            timeout_seconds=config.request_timeout_seconds,
            retries=config.read_retries,
            retry_wait_seconds=config.read_retry_wait_seconds,
        )

    @property
    def description(self) -> str:
        return describe(self._config)

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """Return each symbol's daily bars closing within ``start``..``end``, oldest first."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        request = daily_bars_request(self._config, wanted, start, end)
        try:
            raw = self._client.get_stock_bars(request)
        except (alpaca.APIError, requests.RequestException) as exc:
            failure = failure_from(exc, self._config.request_timeout_seconds)
            raise DataError(f"Alpaca daily bars could not be read: {failure.describe()}") from None
        except ValueError as exc:
            raise DataError(f"Alpaca daily bars: the answer is not JSON ({type(exc).__name__})") from None
        return bars_from_response(_object(raw, "Alpaca bars"), wanted, start, end)

    def close(self) -> None:
        self._client._session.close()


def describe(config: AlpacaConfig) -> str:
    """Where the bars come from, as a run header names it."""
    return f"Alpaca daily bars ({config.bar_feed.value} feed, {config.bar_adjustment.value} adjustment)"
