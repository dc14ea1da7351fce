"""Daily bars: the real ones shipped with tradekit (public domain; see PROVENANCE.md) or a
trader's own files (``tradekit.data.bar_files``)."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib.resources import files
from pathlib import Path

from tradekit.data.bar_files import BarData, DataError, load_bar_files, parse_csv, session_close
from tradekit.data.checks import ohlc_problem, series_problem
from tradekit.domain.market import Bar

SHIPPED_FILE = "daily_bars.csv.gz"
SHIPPED_SOURCE = "public-domain Quandl WIKI sample"

# The name this error had before bar files of every layout were accepted.
BarDataError = DataError

__all__ = [
    "SHIPPED_FILE",
    "SHIPPED_SOURCE",
    "BarData",
    "BarDataError",
    "DataError",
    "load_bar_data",
    "load_daily_bars",
    "ohlc_problem",
    "series_problem",
    "session_close",
    "shipped_symbols",
]


def shipped_symbols() -> tuple[str, ...]:
    return ("AAPL", "GOOG", "IBM", "MSFT")


def load_bar_data(
    symbols: Iterable[str] | None = None, paths: Sequence[Path] = (), *, now: datetime | None = None
) -> BarData:
    """Read daily bars and say where they came from: the shipped file, or ``paths``.

    See ``tradekit.data.bar_files`` for the layouts accepted; every row is validated and a bad
    one (a bar of a session that closes after ``now``, the current time by default, among
    them) raises ``DataError`` naming the file, the line and the value.
    """
    if paths:
        return load_bar_files(list(paths), symbols, now=now)
    wanted = None if symbols is None else {s.upper() for s in symbols}
    text = gzip.decompress(files("tradekit.data").joinpath(SHIPPED_FILE).read_bytes()).decode()
    bars: dict[str, list[Bar]] = {}
    for bar in parse_csv(text, SHIPPED_FILE, now=now):
        if wanted is None or bar.symbol in wanted:
            bars.setdefault(bar.symbol, []).append(bar)
    if wanted is not None and wanted - set(bars):
        raise DataError(f"the shipped bars hold no {sorted(wanted - set(bars))}; they hold {list(shipped_symbols())}")
    return BarData(bars=bars, source=SHIPPED_SOURCE)


def load_daily_bars(symbols: Iterable[str] | None = None, path: Path | None = None) -> dict[str, list[Bar]]:
    """Read daily bars (the shipped file by default, else ``path``), oldest first, per symbol."""
    return load_bar_data(symbols, [path] if path is not None else []).bars
