"""tradekit data fetch --source alpaca: daily bars from the (emulated) data API into a cache."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from emulators.alpaca import AlpacaEmulator
from emulators.alpaca._data import BarSeed
from tradekit.cli import cli
from tradekit.data import load_bar_data, session_close

from .conftest import KEY_ID, SECRET_KEY

NEW_YORK = ZoneInfo("America/New_York")
FIRST = date(2024, 1, 2)


def _weekdays(count: int) -> list[date]:
    days: list[date] = []
    day = FIRST
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _seed(day: date, close: Decimal) -> BarSeed:
    return BarSeed(
        timestamp=datetime.combine(day, time(0), NEW_YORK).astimezone(UTC),
        open=close - 1,
        high=close + 2,
        low=close - 2,
        close=close,
        volume=1_000 + day.day,
    )


@pytest.fixture
def env(emu: AlpacaEmulator) -> dict[str, str]:
    return {
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET_KEY,
        "TRADEKIT_LOAD_PLUGINS": "alpaca,examples",
        "TRADEKIT_CONFIG": "",
        "TRADEKIT_PLUGINS__ALPACA__DATA_URL": emu.data_url,
        "TRADEKIT_PLUGINS__ALPACA__REQUEST_TIMEOUT_SECONDS": "2",
        "TRADEKIT_PLUGINS__ALPACA__READ_RETRIES": "0",
    }


def test_fetch_pages_through_the_data_api_and_caches_bars_a_run_replays(
    emu: AlpacaEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    days = _weekdays(60)
    for offset, symbol in enumerate(("AAPL", "MSFT")):
        emu.load_bars(symbol, [_seed(d, Decimal(100 + offset * 50 + i % 7)) for i, d in enumerate(days)])
    emu.set_bars_page_size(25)  # 120 bars: five pages
    cache = tmp_path / "cache"
    runner = CliRunner(env=env)
    args = ["data", "fetch", "--source", "alpaca", "--symbols", "AAPL,MSFT", "--cache", str(cache)]
    result = runner.invoke(cli, [*args, "--start", "2024-01-01", "--end", "2024-04-30", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bars"] == {"AAPL": 60, "MSFT": 60}
    assert len(emu.requests("GET /v2/stocks/bars")) >= 5
    data = load_bar_data(None, [cache])
    assert data.source.startswith("Alpaca daily bars (iex feed, all adjustment), fetched ")
    aapl = data.bars["AAPL"]
    assert [b.time for b in aapl] == [session_close(d) for d in days]
    assert aapl[3].close == Decimal(103)
    assert aapl[3].volume == Decimal(1_000 + days[3].day)

    # Fetching a later window again merges: a day fetched anew replaces the cached bar.
    emu.load_bars("AAPL", [_seed(days[-1], Decimal(500))])
    again = runner.invoke(cli, [*args, "--start", days[-2].isoformat(), "--end", days[-1].isoformat()])
    assert again.exit_code == 0, again.output
    assert f"tradekit run --data {cache}" in again.output
    merged = load_bar_data(None, [cache]).bars["AAPL"]
    assert len(merged) == 60
    assert merged[-1].close == Decimal(500)

    run = runner.invoke(cli, ["run", "--data", str(cache), "--out", str(tmp_path / "runs"), "--no-chart"])
    assert run.exit_code == 0, run.output
    assert "Alpaca daily bars (iex feed, all adjustment), fetched" in run.output


def test_fetch_without_keys_names_the_missing_variables(env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in env.items() if not k.startswith("APCA_")}
    result = CliRunner(env=env).invoke(
        cli, ["data", "fetch", "--source", "alpaca", "--symbols", "AAPL", "--start", "2024-01-01"]
    )
    assert result.exit_code != 0
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_source_lists_the_installed_ones(env: dict[str, str]) -> None:
    result = CliRunner(env=env).invoke(
        cli, ["data", "fetch", "--source", "yahoo", "--symbols", "AAPL", "--start", "2024-01-01"]
    )
    assert result.exit_code != 0
    assert "unknown data source 'yahoo'; installed: alpaca" in result.output


def test_with_no_cache_directory_to_be_found_the_fetch_says_what_to_set(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", homeless)
    result = CliRunner(env={**env, "XDG_CACHE_HOME": "relative/cache"}).invoke(
        cli, ["data", "fetch", "--source", "alpaca", "--symbols", "AAPL", "--start", "2024-01-01"]
    )
    assert result.exit_code != 0
    assert "set XDG_CACHE_HOME to an absolute path, or pass --cache DIR" in result.output
    assert "Traceback" not in result.output
    assert not Path("relative").exists()
