"""Historical bars served by the market data API (GET /v2/stocks/bars)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ._wire import ApiError

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000

_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}


@dataclass(frozen=True)
class BarSeed:
    """One OHLCV bar a test loads; `timestamp` is the bar's opening time (timezone-aware)."""

    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trade_count: int = 0
    vwap: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the bar in the data API's compact JSON shape (prices as JSON numbers)."""
        return {
            "t": self.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": float(self.open),
            "h": float(self.high),
            "l": float(self.low),
            "c": float(self.close),
            "v": self.volume,
            "n": self.trade_count,
            "vw": float(self.vwap if self.vwap is not None else self.close),
        }


def normalize_timeframe(value: str) -> str:
    """Return a timeframe in canonical form ("1D" -> "1Day"), or raise the API's 422."""
    match = _TIMEFRAME.match(value.strip())
    if match is None:
        raise ApiError(422, "invalid timeframe", 42210000)
    amount, unit = match.groups()
    return f"{int(amount)}{_UNITS.get(unit, unit)}"


_LENGTHS = {
    "Min": timedelta(minutes=1),
    "Hour": timedelta(hours=1),
    "Day": timedelta(days=1),
    "Week": timedelta(weeks=1),
    "Month": timedelta(days=31),
}


def timeframe_length(value: str) -> timedelta:
    """Return how long one bar of a timeframe lasts ("5Min" -> 5 minutes; a month as 31 days)."""
    canonical = normalize_timeframe(value)
    match = _TIMEFRAME.match(canonical)
    assert match is not None
    amount, unit = match.groups()
    return int(amount) * _LENGTHS[unit]


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "invalid page_token", 40010001) from exc
    if not isinstance(offset, int) or offset < 0:
        raise ApiError(400, "invalid page_token", 40010001)
    return offset


class BarStore:
    """Thread-safe bar series keyed by (symbol, timeframe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], list[BarSeed]] = {}
        self._page_size = MAX_LIMIT

    def set_page_size(self, size: int) -> None:
        """Cap how many bars one page holds (Alpaca's own cap is 10,000)."""
        if size < 1:
            raise ValueError("page size must be positive")
        with self._lock:
            self._page_size = size

    def load(self, symbol: str, timeframe: str, bars: Iterable[BarSeed]) -> None:
        """Add bars to a series; a bar with an existing timestamp replaces the old one."""
        key = (symbol, normalize_timeframe(timeframe))
        with self._lock:
            by_time = {b.timestamp: b for b in self._series.get(key, [])}
            for bar in bars:
                if bar.timestamp.tzinfo is None:
                    raise ValueError("bar timestamps must be timezone-aware")
                by_time[bar.timestamp] = bar
            self._series[key] = [by_time[t] for t in sorted(by_time)]

    def page(
        self,
        visible: Callable[[datetime], bool],
        symbols: list[str],
        timeframe: str,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        descending: bool,
        page_token: str | None,
    ) -> dict[str, Any]:
        """Return one page of the multi-symbol bars response with its next_page_token.

        Like Alpaca, results run symbol by symbol (alphabetically), then by time; a page
        holds at most min(limit, page_size) bars in total. ``visible`` tells whether a bar
        (by its opening time) is published yet.
        """
        tf = normalize_timeframe(timeframe)
        with self._lock:
            flat: list[tuple[str, BarSeed]] = []
            for symbol in sorted(set(symbols)):
                series = [
                    b
                    for b in self._series.get((symbol, tf), [])
                    if (start is None or b.timestamp >= start)
                    and (end is None or b.timestamp <= end)
                    and visible(b.timestamp)
                ]
                if descending:
                    series.reverse()
                flat.extend((symbol, b) for b in series)
            size = min(limit, self._page_size)
        offset = _decode_token(page_token) if page_token else 0
        chunk = flat[offset : offset + size]
        bars: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in chunk:
            bars.setdefault(symbol, []).append(bar.to_json())
        more = offset + len(chunk) < len(flat)
        return {
            "bars": bars,
            "next_page_token": _encode_token(offset + len(chunk)) if more else None,
        }
