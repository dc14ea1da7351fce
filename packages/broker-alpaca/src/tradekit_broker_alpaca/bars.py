"""Daily bars from Alpaca's market-data API (alpaca-py's ``StockHistoricalDataClient``).

``AlpacaBars`` is the ``alpaca`` source of ``tradekit data fetch``: the data client alone,
no trading client and no stream. ``AlpacaBroker.daily_bars`` asks for bars the same way
(``read_daily_bars``).

The pages are followed here rather than by alpaca-py, whose loop asks for as long as a
``next_page_token`` comes back: a data API that handed back the same token would be asked
for ever, with the trader's cycle waiting on it. Here a token seen before, or more pages
than the window's days could fill, ends the read with a ``BrokerDataError``.

Every bar is checked (``bar_from_alpaca``), and each symbol's series holds one bar a day.
A symbol with a bar that cannot be trusted is a *problem*, named with the symbol, the day,
the field and the value, and none of its bars is returned: a live trader leaves that symbol
out of the session (its strategy never runs on a series with a hole or a bad bar) and the
other symbols go on, while ``tradekit data fetch`` stops rather than cache a series with a
hole.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import requests

import tradekit_broker_alpaca._alpaca as alpaca
from tradekit.broker.errors import BrokerDataError, BrokerError, BrokerUnavailable
from tradekit.data import DataError
from tradekit.domain.market import Bar
from tradekit_broker_alpaca._http import bound_client, failure_from
from tradekit_broker_alpaca.config import AlpacaConfig, AlpacaCredentials
from tradekit_broker_alpaca.providers import NEW_YORK, bar_from_alpaca

log = logging.getLogger(__name__)

_BARS_PATH = "/stocks/bars"
# Alpaca's largest page.
_PAGE_LIMIT = 10_000


@attrs.frozen
class DailyBarsRead:
    """Each symbol's bars (oldest first), and the symbols left out with what was wrong."""

    bars: dict[str, list[Bar]]
    problems: dict[str, str]


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


def read_daily_bars(
    client: Any, config: AlpacaConfig, symbols: Sequence[str], start: datetime, end: datetime
) -> DailyBarsRead:
    """Read every page of the bars of ``symbols`` closing within ``start``..``end``.

    Raise ``BrokerUnavailable`` when a page cannot be had (timeout, refused, HTTP error) and
    ``BrokerDataError`` when the answer as a whole cannot be trusted; a symbol's own bad
    series is one of the result's ``problems``.
    """
    request = daily_bars_request(config, symbols, start, end)
    params = request.to_request_fields()
    params["limit"] = _PAGE_LIMIT
    # At most one daily bar per symbol and calendar day of the window asked for (which starts
    # a day early): more bars, or more pages than they fill, and the pages do not end.
    days = max((end - start).days, 0) + 3
    most_bars = len(symbols) * days
    pages: list[object] = []
    tokens: set[str] = set()
    bars_read = 0
    while True:
        number = len(pages) + 1
        if number > most_bars + 1:
            raise BrokerDataError(
                f"Alpaca daily bars: more than {most_bars + 1} pages for {len(symbols)} symbol(s) over {days} "
                "days: the data API's pages do not end"
            )
        raw = _get_page(client, params, number, config.request_timeout_seconds)
        pages.append(raw)
        page = _page(raw, number)
        bars_read += sum(len(series) for series in _symbols(page, number).values() if isinstance(series, list))
        if bars_read > most_bars:
            raise BrokerDataError(
                f"Alpaca daily bars: {bars_read} bars by page {number}, more than {most_bars} for "
                f"{len(symbols)} symbol(s) over {days} days: the data API's pages do not end"
            )
        token = page.get("next_page_token")
        if token is None or token == "":
            break
        if not isinstance(token, str):
            raise BrokerDataError(f"Alpaca daily bars: page {number}'s next_page_token is {token!r}, not a string")
        if token in tokens:
            raise BrokerDataError(
                f"Alpaca daily bars: page {number} hands back next_page_token {token!r} again: "
                "the data API's pages do not end"
            )
        tokens.add(token)
        params["page_token"] = token
    return bars_from_pages(pages, symbols, start, end)


def trusted_bars(read: DailyBarsRead, told: set[str]) -> dict[str, list[Bar]]:
    """The bars of the symbols whose series can be trusted; each problem is logged once (a
    live trader asks again every cycle until the next open) and noted in ``told``."""
    for symbol, problem in read.problems.items():
        if problem not in told:
            told.add(problem)
            log.warning("%s; %s is left out until Alpaca's bars of it can be read", problem, symbol)
    return read.bars


def _get_page(client: Any, params: dict[str, Any], number: int, timeout_seconds: float) -> object:
    try:
        return client.get(_BARS_PATH, params)
    except requests.JSONDecodeError as exc:
        raise BrokerDataError(f"Alpaca daily bars: page {number} is not JSON ({type(exc).__name__})") from None
    except (alpaca.APIError, requests.RequestException) as exc:
        failure = failure_from(exc, timeout_seconds)
        raise BrokerUnavailable(f"Alpaca daily bars could not be read: {failure.describe()}") from None
    except ValueError as exc:
        raise BrokerDataError(f"Alpaca daily bars: page {number} is not JSON ({type(exc).__name__})") from None


def bars_from_pages(pages: Sequence[object], symbols: Sequence[str], start: datetime, end: datetime) -> DailyBarsRead:
    """Each symbol's bars closing within ``start``..``end``, oldest first, from the pages of
    one answer; a symbol with a bad bar or two bars of one day is left out as a problem.

    Raise ``BrokerDataError`` when a page is not the shape Alpaca sends.
    """
    raw: dict[str, list[object]] = {}
    problems: dict[str, str] = {}
    for number, page in enumerate(pages, start=1):
        for symbol, series in _symbols(_page(page, number), number).items():
            if series is None:
                continue
            if not isinstance(series, list):
                problems.setdefault(
                    symbol, f"Alpaca bars of {symbol}: expected a JSON array of bars, got {_json_type(series)}"
                )
                continue
            raw.setdefault(symbol, []).extend(series)
    bars: dict[str, list[Bar]] = {}
    for symbol in symbols:
        if symbol in problems:
            continue
        try:
            series = _series(symbol, raw.get(symbol, []))
        except BrokerDataError as exc:
            problems[symbol] = str(exc)
            continue
        bars[symbol] = [b for b in series if start <= b.time <= end]
    wanted = set(symbols)
    return DailyBarsRead(bars=bars, problems={s: p for s, p in problems.items() if s in wanted})


def _series(symbol: str, raw: Sequence[object]) -> list[Bar]:
    by_time: dict[datetime, Bar] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            raise BrokerDataError(f"Alpaca bar of {symbol}: expected a JSON object, got {_json_type(item)}")
        bar = bar_from_alpaca(symbol, item)
        first = by_time.get(bar.time)
        if first is not None:
            day = bar.time.astimezone(NEW_YORK).date()
            raise BrokerDataError(
                f"Alpaca bar of {symbol} on {day}: a second bar for that day (closes {first.close} and {bar.close})"
            )
        by_time[bar.time] = bar
    return [by_time[t] for t in sorted(by_time)]


def _page(page: object, number: int) -> Mapping[str, Any]:
    if not isinstance(page, Mapping):
        raise BrokerDataError(f"Alpaca daily bars: page {number} is {_json_type(page, article=True)}, not an object")
    return page


def _symbols(page: Mapping[str, Any], number: int) -> Mapping[str, Any]:
    if "bars" not in page:
        raise BrokerDataError(f"Alpaca daily bars: page {number} has no 'bars' field")
    found = page["bars"]
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise BrokerDataError(
            f"Alpaca daily bars: page {number}'s 'bars' is {_json_type(found, article=True)}, not an object of symbols"
        )
    return found


def _json_type(value: object, *, article: bool = False) -> str:
    name = {
        type(None): "null",
        bool: "boolean",
        int: "int",
        float: "number",
        str: "string",
        list: "JSON array",
        dict: "JSON object",
    }.get(type(value), type(value).__name__)
    if not article:
        return name
    return "null" if value is None else f"an {name}" if name[0] in "aeiou" else f"a {name}"


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
        try:
            read = read_daily_bars(self._client, self._config, wanted, start, end)
        except BrokerError as exc:
            raise DataError(str(exc)) from None
        if read.problems:
            raise DataError("; ".join(read.problems[s] for s in wanted if s in read.problems))
        return read.bars

    def close(self) -> None:
        self._client._session.close()


def describe(config: AlpacaConfig) -> str:
    """Where the bars come from, as a run header names it."""
    return f"Alpaca daily bars ({config.bar_feed.value} feed, {config.bar_adjustment.value} adjustment)"
