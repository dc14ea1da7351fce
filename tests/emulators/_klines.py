"""Candles a perp emulator serves from its klines route (``fetch_ohlcv`` in ccxt).

Self-contained: a venue keeps one ``KlineBook``, a test loads candles into it, and the
venue's route selects from it with the venue's own parameters and answers in its own shape.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

DAY_MS = 86_400_000
# The interval names each venue uses for one day; the emulator serves daily candles only.
DAILY = frozenset({"1d", "D"})


@dataclass(frozen=True)
class Candle:
    """One candle: its opening time (ms since the epoch, UTC) and OHLCV."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class KlineBook:
    """Daily candles by venue symbol, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._candles: dict[str, list[Candle]] = {}

    def load(self, venue_symbol: str, candles: Iterable[Candle]) -> None:
        """Add candles to a symbol's series (a candle with an existing open time replaces it)."""
        with self._lock:
            by_time = {c.open_ms: c for c in self._candles.get(venue_symbol, [])}
            by_time.update({c.open_ms: c for c in candles})
            self._candles[venue_symbol] = [by_time[t] for t in sorted(by_time)]

    def select(self, venue_symbol: str, start_ms: int | None, end_ms: int | None, limit: int) -> list[Candle]:
        """Candles opening in ``[start_ms, end_ms]``, oldest first: the first ``limit`` after a
        start, else the latest ``limit`` (as both venues page)."""
        with self._lock:
            series = [
                c
                for c in self._candles.get(venue_symbol, [])
                if (start_ms is None or c.open_ms >= start_ms) and (end_ms is None or c.open_ms <= end_ms)
            ]
        return series[:limit] if start_ms is not None else series[-limit:]
