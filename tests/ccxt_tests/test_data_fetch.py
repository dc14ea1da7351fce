"""Daily candles from the perp venues' klines routes (ccxt fetch_ohlcv) into tradekit's cache."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulators._klines import DAY_MS, Candle
from emulators._perp_book import PerpVenueEmulator
from tradekit.cli import cli
from tradekit.data import DataError, load_bar_data
from tradekit_venue_ccxt.bars import CcxtBars
from tradekit_venue_ccxt.config import CcxtVenueConfig

from .venues import BTC, VENUES, new_emulator

FIRST = date(2024, 1, 1)
VENUE_SYMBOL = "BTCUSDT"


def _candles(count: int) -> list[Candle]:
    start = int(datetime.combine(FIRST, datetime.min.time(), UTC).timestamp() * 1000)
    return [
        Candle(
            open_ms=start + i * DAY_MS,
            open=Decimal(40_000 + i),
            high=Decimal(40_500 + i),
            low=Decimal(39_500 + i),
            close=Decimal(40_100 + i),
            volume=Decimal("12.5"),
        )
        for i in range(count)
    ]


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> Iterator[tuple[str, PerpVenueEmulator]]:
    with new_emulator(request.param) as emulator:
        emulator.klines.load(VENUE_SYMBOL, _candles(1200))  # type: ignore[attr-defined]
        yield request.param, emulator


def test_candles_are_fetched_page_by_page_and_stamped_at_their_close(venue: tuple[str, PerpVenueEmulator]) -> None:
    name, emulator = venue
    source = CcxtBars.connect(CcxtVenueConfig(venue=name, api_url=emulator.base_url, rate_limit=False, timeout_ms=3000))
    try:
        start = datetime(2024, 1, 10, tzinfo=UTC)
        end = start + timedelta(days=1100)
        bars = source.daily_bars([BTC], start, end)[BTC]
    finally:
        source.close()
    # Candles closing from Jan 10 00:00 UTC: the one opened Jan 9 onwards, 1,101 of them over three pages.
    assert len(bars) == 1101
    assert bars[0].time == start
    assert bars[0].close == Decimal(40_100 + 8)
    assert all(b.time - a.time == timedelta(days=1) for a, b in itertools.pairwise(bars))
    klines = [r for r in emulator.requests() if "kline" in r.path]
    assert len(klines) >= 3


def test_data_fetch_caches_candles_a_run_reads_with_their_source(
    venue: tuple[str, PerpVenueEmulator], tmp_path: Path
) -> None:
    name, emulator = venue
    env = {
        "TRADEKIT_CONFIG": "",
        "TRADEKIT_LOAD_PLUGINS": "ccxt",
        f"TRADEKIT_PLUGINS__CCXT__VENUES__{name.upper()}__API_URL": emulator.base_url,
        f"TRADEKIT_PLUGINS__CCXT__VENUES__{name.upper()}__RATE_LIMIT": "false",
    }
    cache = tmp_path / "cache"
    args = ["--source", f"ccxt-{name}", "--symbols", BTC, "--start", "2024-02-01", "--end", "2024-02-29"]
    result = CliRunner(env=env).invoke(cli, ["data", "fetch", *args, "--cache", str(cache), "--json"])
    assert result.exit_code == 0, result.output
    # February 2024's 29 UTC days, each candle filed under the day it opened.
    assert json.loads(result.output)["bars"] == {BTC: 29}
    data = load_bar_data(None, [cache])
    assert data.source.startswith(f"{name} daily candles through ccxt, fetched ")
    (series,) = data.bars.values()
    assert [b.close for b in series[:2]] == [Decimal(40_100 + 31), Decimal(40_100 + 32)]


def test_an_unknown_symbol_is_a_data_error_naming_the_venue(venue: tuple[str, PerpVenueEmulator]) -> None:
    name, emulator = venue
    source = CcxtBars.connect(CcxtVenueConfig(venue=name, api_url=emulator.base_url, rate_limit=False, timeout_ms=3000))
    try:
        with pytest.raises(DataError, match=f"{name} candles of DOGE/USDT:USDT could not be read"):
            source.daily_bars(["DOGE/USDT:USDT"], datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC))
    finally:
        source.close()
