"""Real daily bars shipped with tradekit (public domain; see PROVENANCE.md)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from zoneinfo import ZoneInfo

from tradekit.domain.market import Bar
from tradekit.domain.values import to_utc

SHIPPED_FILE = "daily_bars.csv.gz"
_NEW_YORK = ZoneInfo("America/New_York")
_SESSION_CLOSE = time(16, 0)


class BarDataError(ValueError):
    """A bar file that cannot be read; the message names the file, line and field."""


def session_close(day: date) -> datetime:
    """The UTC time of the 16:00 New York close on ``day``."""
    return to_utc(datetime.combine(day, _SESSION_CLOSE, tzinfo=_NEW_YORK))


def shipped_symbols() -> tuple[str, ...]:
    return ("AAPL", "GOOG", "IBM", "MSFT")


def load_daily_bars(symbols: Iterable[str] | None = None, path: Path | None = None) -> dict[str, list[Bar]]:
    """Read daily bars (the shipped file by default), oldest first, per symbol.

    The CSV has the columns ``symbol,date,open,high,low,close,volume``; gzip is detected
    by the ``.gz`` suffix.
    """
    wanted = None if symbols is None else set(symbols)
    if path is None:
        raw = files("tradekit.data").joinpath(SHIPPED_FILE).read_bytes()
        name = SHIPPED_FILE
        text = gzip.decompress(raw).decode()
    else:
        name = str(path)
        try:
            text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BarDataError(f"cannot read bars from {name}: {exc}") from exc
    bars: dict[str, list[Bar]] = {}
    reader = csv.DictReader(io.StringIO(text))
    expected = {"symbol", "date", "open", "high", "low", "close", "volume"}
    if reader.fieldnames is None or not expected <= set(reader.fieldnames):
        raise BarDataError(f"{name}: expected columns {sorted(expected)}, got {reader.fieldnames}")
    for line, rec in enumerate(reader, start=2):
        symbol = rec["symbol"]
        if wanted is not None and symbol not in wanted:
            continue
        try:
            bar = Bar(
                symbol=symbol,
                time=session_close(date.fromisoformat(rec["date"])),
                open=Decimal(rec["open"]),
                high=Decimal(rec["high"]),
                low=Decimal(rec["low"]),
                close=Decimal(rec["close"]),
                volume=Decimal(rec["volume"]),
            )
        except (ValueError, ArithmeticError) as exc:
            raise BarDataError(f"{name} line {line}: {exc}") from exc
        series = bars.setdefault(symbol, [])
        if series and series[-1].time >= bar.time:
            raise BarDataError(f"{name} line {line}: {symbol} bars are not in increasing date order")
        series.append(bar)
    if wanted is not None:
        missing = wanted - set(bars)
        if missing:
            raise BarDataError(f"{name} has no bars for {sorted(missing)}")
    return bars
