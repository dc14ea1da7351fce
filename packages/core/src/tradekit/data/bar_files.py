"""Daily bars from a trader's own files: tradekit CSV, Yahoo-style CSV, Parquet.

Accepted layouts (column names are matched without regard to case, spaces or underscores):

- tradekit CSV: ``symbol,date,open,high,low,close,volume`` (the shipped file's layout);
- Yahoo-style CSV: ``Date,Open,High,Low,Close,Adj Close,Volume``, one file per symbol named
  after it (``AAPL.csv``), or with a ``Symbol``/``Ticker`` column. When ``Adj Close`` is
  present, open/high/low/close are multiplied by ``Adj Close / Close`` and rounded to 4
  decimals, as the shipped bars are, so splits and dividends do not show as price jumps;
- Parquet (``.parquet``, needs ``pip install 'tradekit[parquet]'``) with the same columns.

A path may be a file or a directory (every ``.csv``, ``.csv.gz`` and ``.parquet`` in it);
several paths may be given. Rows may come in either date order. Every bar is checked: a
blank, short or non-numeric field, NaN or infinity, a price of zero or below, a negative
volume, a high below the open, close or low, a low above the open or close, a second bar
for the same symbol and date, and a bar of a session that has not closed yet (a date in the
future, or today's unfinished bar in a download taken during the session) are refused with
a ``DataError`` naming the file, the line and the value. A directory holding a
``source.json`` (``tradekit data fetch`` writes one) names where its bars came from.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from tradekit.data.checks import ohlc_problem
from tradekit.domain.market import Bar
from tradekit.domain.values import to_utc

_NEW_YORK = ZoneInfo("America/New_York")
_SESSION_CLOSE = time(16, 0)
_PRICE_STEP = Decimal("0.0001")
SOURCE_FILE = "source.json"
_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# Canonical column -> the spellings accepted for it (after lower-casing, dropping " " and "_").
_ALIASES: Mapping[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker"),
    "date": ("date", "datetime", "timestamp", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "adj_close": ("adjclose", "adjustedclose"),
    "volume": ("volume",),
}
_REQUIRED = ("date", "open", "high", "low", "close", "volume")


class DataError(ValueError):
    """Bar data that cannot be used; the message names the file, the line and the value."""


def session_close(day: date) -> datetime:
    """The UTC time of the 16:00 New York close on ``day``."""
    return to_utc(datetime.combine(day, _SESSION_CLOSE, tzinfo=_NEW_YORK))


@attrs.frozen
class BarData:
    """Bars per symbol (oldest first) and a sentence saying where they came from."""

    bars: dict[str, list[Bar]]
    source: str


def load_bar_files(
    paths: Sequence[Path], symbols: Iterable[str] | None = None, *, now: datetime | None = None
) -> BarData:
    """Read every bar file under ``paths``; keep ``symbols`` only when given.

    Raises ``DataError`` for an unreadable file, a bad row (a bar of a session closing after
    ``now``, the current time by default, among them), or a wanted symbol with no bars.
    """
    if not paths:
        raise DataError("no bar files given")
    now = _now(now)
    wanted = None if symbols is None else {s.upper() for s in symbols}
    files: list[Path] = []
    sources: list[str] = []
    for path in paths:
        found, source = _expand(path)
        files.extend(found)
        sources.append(source)
    rows: dict[str, dict[date, tuple[Bar, str]]] = {}
    for file in files:
        for symbol, day, bar, where in _read_file(file, now):
            if wanted is not None and symbol not in wanted:
                continue
            per_symbol = rows.setdefault(symbol, {})
            if day in per_symbol:
                raise DataError(f"{where}: a second {symbol} bar for {day.isoformat()} (first at {per_symbol[day][1]})")
            per_symbol[day] = (bar, where)
    bars = {symbol: [per_day[d][0] for d in sorted(per_day)] for symbol, per_day in sorted(rows.items())}
    if wanted is not None:
        missing = wanted - set(bars)
        if missing:
            raise DataError(f"{', '.join(str(p) for p in paths)} holds no bars for {sorted(missing)}")
    if not bars:
        raise DataError(f"{', '.join(str(p) for p in paths)} holds no bars")
    return BarData(bars=bars, source="; ".join(sources))


def parse_csv(text: str, name: str, *, default_symbol: str | None = None, now: datetime | None = None) -> list[Bar]:
    """Parse one CSV document (either layout) into bars, in file order; raise ``DataError``
    (for a bar of a session closing after ``now`` too: the current time by default)."""
    return [bar for _symbol, _day, bar, _where in _parse_csv(text, name, default_symbol, _now(now))]


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now.isoformat()}")
    return to_utc(now)


def _expand(path: Path) -> tuple[list[Path], str]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
        if not found:
            raise DataError(f"directory {path} holds no .csv, .csv.gz or .parquet file")
        return found, _directory_source(path, found)
    if not path.exists():
        raise DataError(f"bar file {path} does not exist")
    if not path.name.lower().endswith(_SUFFIXES):
        raise DataError(f"{path}: bar files are .csv, .csv.gz or .parquet")
    return [path], f"{_format_of(path)} {path}"


def _directory_source(path: Path, files: list[Path]) -> str:
    described = path / SOURCE_FILE
    if described.is_file():
        try:
            data = json.loads(described.read_text())
            return f"{data['source']} (cached in {path})"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{described} is not a readable source description: {exc}") from None
    formats = sorted({_format_of(f) for f in files})
    return f"{' and '.join(formats)} in {path} ({len(files)} files)"


def _format_of(path: Path) -> str:
    return "Parquet" if path.name.lower().endswith(".parquet") else "CSV"


def _symbol_from_name(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name.strip().upper()


def _read_file(path: Path, now: datetime) -> Iterator[tuple[str, date, Bar, str]]:
    if path.name.lower().endswith(".parquet"):
        yield from _read_parquet(path, now)
        return
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode() if path.name.lower().endswith(".gz") else raw.decode()
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read bars from {path}: {exc}") from None
    yield from _parse_csv(text, str(path), _symbol_from_name(path), now)


def _columns(header: Sequence[str], name: str, has_default_symbol: bool) -> dict[str, int]:
    normal = [h.strip().lower().replace(" ", "").replace("_", "") for h in header]
    found: dict[str, int] = {}
    for column, spellings in _ALIASES.items():
        for i, h in enumerate(normal):
            if h in spellings:
                found[column] = i
                break
    missing = [c for c in _REQUIRED if c not in found]
    if "symbol" not in found and not has_default_symbol:
        missing.insert(0, "symbol")
    if missing:
        raise DataError(
            f"{name} line 1: missing column(s) {', '.join(missing)}; expected tradekit's "
            "symbol,date,open,high,low,close,volume or Yahoo's Date,Open,High,Low,Close,Adj Close,Volume, "
            f"got {', '.join(header) or 'an empty header'}"
        )
    return found


def _parse_csv(text: str, name: str, default_symbol: str | None, now: datetime) -> Iterator[tuple[str, date, Bar, str]]:
    if "\x00" in text:
        raise DataError(f"{name} is not a text CSV file (it holds NUL bytes)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{name} is empty: expected a header line")
        columns = _columns(header, name, default_symbol is not None)
        width = len(header)
        for record in reader:
            line = reader.line_num
            if not record or all(not field.strip() for field in record):
                continue
            if len(record) != width:
                raise DataError(f"{name} line {line}: {len(record)} fields where the header has {width}")
            yield _row(record, columns, f"{name} line {line}", default_symbol, now)
    except csv.Error as exc:
        raise DataError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from None


def _row(
    record: Sequence[Any], columns: Mapping[str, int], where: str, default_symbol: str | None, now: datetime
) -> tuple[str, date, Bar, str]:
    try:
        return _checked_row(record, columns, where, default_symbol, now)
    except (ArithmeticError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        # Decimal arithmetic beyond its precision, or a bar the model refuses.
        raise DataError(f"{where}: {exc or type(exc).__name__}") from None


def _checked_row(
    record: Sequence[Any], columns: Mapping[str, int], where: str, default_symbol: str | None, now: datetime
) -> tuple[str, date, Bar, str]:
    symbol = _text(record[columns["symbol"]]).upper() if "symbol" in columns else default_symbol
    if not symbol:
        raise DataError(f"{where}: the symbol is blank")
    day = _day(record[columns["date"]], where)
    closes = session_close(day)
    if closes > now:
        # Its close is only the price of some moment (or not known at all): a replay would
        # trade on it as a finished session.
        raise DataError(
            f"{where}: the bar of {day.isoformat()} is of a session that closes at {closes.isoformat()}, "
            f"after now ({now.isoformat()}): an unfinished session's bar, or a wrong date"
        )
    values = {c: _number(record[columns[c]], c, where) for c in ("open", "high", "low", "close", "volume")}
    for column in ("open", "high", "low", "close"):
        if values[column] <= 0:
            raise DataError(f"{where}: {column} {record[columns[column]]!r} must be greater than zero")
    if values["volume"] < 0:
        raise DataError(f"{where}: volume {record[columns['volume']]!r} must not be negative")
    o, h, low, c = values["open"], values["high"], values["low"], values["close"]
    problem = ohlc_problem(o, h, low, c)
    if problem is not None:
        raise DataError(f"{where}: {problem}")
    if "adj_close" in columns and _text(record[columns["adj_close"]]) != "":
        adjusted = _number(record[columns["adj_close"]], "adj close", where)
        if adjusted <= 0:
            raise DataError(f"{where}: adj close {record[columns['adj_close']]!r} must be greater than zero")
        ratio = adjusted / c
        o, h, low, c = (_scaled(v, ratio) for v in (o, h, low, c))
        values["volume"] = values["volume"] / ratio
        if min(o, h, low, c) <= 0:
            raise DataError(f"{where}: adjusting by adj close {adjusted} leaves a price of zero")
    bar = Bar(symbol=symbol, time=session_close(day), open=o, high=h, low=low, close=c, volume=values["volume"])
    return symbol, day, bar, where


def _scaled(value: Decimal, ratio: Decimal) -> Decimal:
    return (value * ratio).quantize(_PRICE_STEP, rounding=ROUND_HALF_EVEN)


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _day(value: object, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        raise DataError(f"{where}: the date is blank")
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()
    except ValueError:
        raise DataError(f"{where}: date {text!r} is not an ISO date such as 2024-01-31") from None


def _number(value: object, column: str, where: str) -> Decimal:
    if isinstance(value, float):
        value = repr(value)  # Parquet floats: their shortest exact spelling, never binary noise
    text = _text(value)
    if not text:
        raise DataError(f"{where}: {column} is blank")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise DataError(f"{where}: {column} {text!r} is not a number") from None
    if not number.is_finite():
        raise DataError(f"{where}: {column} {text!r} is not a finite number")
    return number


def _read_parquet(path: Path, now: datetime) -> Iterator[tuple[str, date, Bar, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow; install it with pip install 'tradekit[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read bars from {path}: {exc}") from None
    header = list(table.column_names)
    default_symbol = _symbol_from_name(path)
    columns = _columns(header, str(path), True)
    data = [table.column(i).to_pylist() for i in range(len(header))]
    for index in range(table.num_rows):
        record = [column[index] for column in data]
        # Row numbers as a spreadsheet shows them: the header is row 1.
        yield _row(record, columns, f"{path} row {index + 2}", default_symbol, now)
