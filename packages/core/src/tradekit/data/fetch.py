"""``tradekit data fetch``: daily bars from a market-data plugin into a local cache.

A plugin registers a ``DataSourceSpec`` (``register_data_sources``) whose factory builds a
``BarSource`` from the settings and the environment (credentials only from there). Fetched
bars go to one tradekit CSV per symbol in the cache directory, merged with what is already
there (a day fetched again replaces the old bar), beside a ``source.json`` naming where they
came from, so ``tradekit run --data DIR`` shows the real source in its header.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from tradekit.config.settings import Settings
from tradekit.data.bar_files import SOURCE_FILE, DataError, parse_csv
from tradekit.data.source import BarSource
from tradekit.domain.market import Bar
from tradekit.user_cache import NoCacheDirectory, user_cache_dir

_NEW_YORK = ZoneInfo("America/New_York")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
CSV_HEADER = ("symbol", "date", "open", "high", "low", "close", "volume")

BarSourceFactory = Callable[[Settings, Mapping[str, str]], BarSource]


@attrs.frozen(kw_only=True)
class DataSourceSpec:
    """A market-data source a plugin offers to ``tradekit data fetch``."""

    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[a-z0-9][a-z0-9_.-]*$"))
    description: str
    factory: BarSourceFactory


@attrs.frozen
class FetchResult:
    directory: Path
    source: str
    bars: dict[str, int]  # bars fetched per symbol
    files: tuple[Path, ...]


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/tradekit/bars`` (``~/.cache/tradekit/bars`` when it is unset or
    relative); a DataError naming what to set when there is no home directory either."""
    try:
        return user_cache_dir("bars", env=env)
    except NoCacheDirectory as exc:
        raise DataError(f"{exc}, or pass --cache DIR") from None


def bar_day(bar: Bar) -> str:
    """The trading day a bar belongs to: its close's date in New York (a crypto candle
    closing at 00:00 UTC belongs to the UTC day it opened)."""
    return bar.time.astimezone(_NEW_YORK).date().isoformat()


def fetch_to_cache(
    source: BarSource,
    *,
    label: str,
    symbols: Sequence[str],
    first_day: date,
    last_day: date,
    directory: Path,
    now: datetime | None = None,
) -> FetchResult:
    """Fetch the daily bars of ``symbols`` for the trading days ``first_day``..``last_day``
    from ``source`` and merge them into ``directory``."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    # Ask for every bar that can close on those days (a crypto day closes at the next
    # 00:00 UTC, a New York session at 16:00), then keep the days asked for. Never past now:
    # a bar is stamped at its session's close, so a session still trading (whose bar a data
    # API serves as it forms) stays out of the cache instead of being replayed as a finished
    # day with the price of the moment as its close.
    start = datetime.combine(first_day, time(0), UTC)
    end = min(datetime.combine(last_day + timedelta(days=2), time(0), UTC), now)
    wanted = (first_day.isoformat(), last_day.isoformat())
    answer = source.daily_bars(list(symbols), start, end) if start <= end else {}
    fetched = {
        symbol: [b for b in series if wanted[0] <= bar_day(b) <= wanted[1] and b.time <= now]
        for symbol, series in answer.items()
    }
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for symbol in symbols:
        path = directory / f"{_UNSAFE.sub('_', symbol)}.csv"
        by_day = {bar_day(b): b for b in _existing(path, now)}
        by_day.update({bar_day(b): b for b in fetched.get(symbol, [])})
        path.write_text(_csv(symbol, by_day))
        files.append(path)
    stamp = now.isoformat(timespec="seconds")
    (directory / SOURCE_FILE).write_text(
        json.dumps({"source": f"{label}, fetched {stamp[:10]}", "fetched_at": stamp, "symbols": sorted(symbols)}) + "\n"
    )
    return FetchResult(
        directory=directory,
        source=label,
        bars={symbol: len(fetched.get(symbol, [])) for symbol in symbols},
        files=tuple(files),
    )


def _existing(path: Path, now: datetime) -> list[Bar]:
    if not path.exists():
        return []
    try:
        return parse_csv(path.read_text(), str(path), now=now)
    except (OSError, DataError) as exc:
        raise DataError(f"the cached bars in {path} cannot be merged with new ones: {exc}") from None


def _csv(symbol: str, by_day: Mapping[str, Bar]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for day in sorted(by_day):
        bar = by_day[day]
        writer.writerow((symbol, day, bar.open, bar.high, bar.low, bar.close, bar.volume))
    return out.getvalue()


def close_source(source: Any) -> None:
    """Release what a source holds (HTTP sessions), when it can be released."""
    close = getattr(source, "close", None)
    if callable(close):
        close()
