"""Daily candles from a ccxt exchange (``fetch_ohlcv``): the ``ccxt-<venue>`` data sources.

Public market data: no keys are needed or sent. A daily candle opens at 00:00 UTC and is
stamped here at its close (the next 00:00 UTC), as tradekit stamps a bar at its close.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt

from tradekit.data import DataError
from tradekit.domain.market import Bar
from tradekit_venue_ccxt.config import CcxtVenueConfig
from tradekit_venue_ccxt.venues import build_client

DAY = timedelta(days=1)
_PAGE = 500  # candles per request: within every venue's limit (Binance 1500, Bybit 1000)


class CcxtBars:
    """A ``BarSource`` on one ccxt exchange's daily OHLCV candles."""

    def __init__(self, client: Any, venue: str) -> None:
        self._client = client
        self._venue = venue

    @classmethod
    def connect(cls, config: CcxtVenueConfig) -> CcxtBars:
        """A public client of the venue (``api_url`` re-points it, as for trading)."""
        return cls(build_client(config, None, async_=False), config.venue)

    @property
    def description(self) -> str:
        return f"{self._venue} daily candles through ccxt"

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """Each symbol's daily candles closing within ``start``..``end``, oldest first."""
        return {symbol: self._series(symbol, start, end) for symbol in dict.fromkeys(symbols)}

    def _series(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        since = int((start - DAY).timestamp() * 1000)
        until = int(end.timestamp() * 1000)
        found: dict[int, Bar] = {}
        while since <= until:
            try:
                page = self._client.fetch_ohlcv(symbol, "1d", since=since, limit=_PAGE)
            except ccxt.BaseError as exc:
                raise DataError(f"{self._venue} candles of {symbol} could not be read: {exc}") from None
            rows = [_row(symbol, raw, self._venue) for raw in page]
            fresh = [(opened, bar) for opened, bar in rows if opened >= since and opened not in found]
            if not fresh:
                break
            found.update(fresh)
            since = max(opened for opened, _ in fresh) + 1
        return [found[k] for k in sorted(found) if start <= found[k].time <= end]

    def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()


def _row(symbol: str, raw: object, venue: str) -> tuple[int, Bar]:
    what = f"{venue} candle of {symbol}"
    if not isinstance(raw, list) or len(raw) < 6:
        raise DataError(f"{what}: expected [time, open, high, low, close, volume], got {raw!r}")
    try:
        opened = int(raw[0])
        open_, high, low, close, volume = (Decimal(str(v)) for v in raw[1:6])
        bar = Bar(
            symbol=symbol,
            time=datetime.fromtimestamp(opened / 1000, tz=UTC) + DAY,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
        )
    except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
        raise DataError(f"{what} {raw!r}: {exc}") from None
    return opened, bar
