"""Judging a run from the command line: costs, statistics, the trade list, a trader's own data."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit.cli import cli
from tradekit.data import load_daily_bars

ENV = {"TRADEKIT_LOAD_PLUGINS": "examples", "TRADEKIT_CONFIG": ""}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=ENV)


@pytest.fixture
def yahoo_dir(tmp_path: Path) -> Path:
    """IBM and MSFT 2006-2007 as Yahoo-style files, one per symbol, newest first as Yahoo serves them."""
    folder = tmp_path / "yahoo"
    folder.mkdir()
    for symbol, series in load_daily_bars(["IBM", "MSFT"]).items():
        rows = [b for b in series if 2006 <= b.time.year <= 2007]
        lines = ["Date,Open,High,Low,Close,Adj Close,Volume"] + [
            f"{b.time:%Y-%m-%d},{b.open},{b.high},{b.low},{b.close},{b.close},{int(b.volume)}" for b in reversed(rows)
        ]
        (folder / f"{symbol}.csv").write_text("\n".join(lines) + "\n")
    return folder


def _run(runner: CliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def test_a_run_with_costs_charges_them_and_reports_its_statistics(
    runner: CliRunner, yahoo_dir: Path, tmp_path: Path
) -> None:
    summary = _run(
        runner,
        "run",
        "--data",
        str(yahoo_dir),
        "--out",
        str(tmp_path / "runs"),
        "--cash",
        "50000",
        "--commission",
        "1",
        "--commission",
        "0.1%",
        "--slippage",
        "5",
    )
    assert summary["starting_equity"] == "50000"
    costs = summary["costs"]
    assert isinstance(costs, dict)
    assert (costs["commission_per_order"], costs["commission_pct"], costs["slippage_bps"]) == ("1", "0.1", "5")
    stats = summary["statistics"]
    assert isinstance(stats, dict)
    orders = summary["orders_by_purpose"]
    assert isinstance(orders, dict)
    # Each order paid 1.00 plus 0.1 % of what it traded.
    assert float(stats["trades"]["fees"]) > sum(orders.values())
    for key in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "exposure"):
        assert key in stats["returns"]
    assert set(stats["by_symbol"]) == {"IBM", "MSFT"}
    assert str(yahoo_dir) in str(summary["data_source"])
    report = Path(str(summary["report"]))
    assert report.name == "report.html"
    assert report.parent == Path(str(summary["chart"])).parent


def test_the_run_header_names_the_data_and_the_costs_and_the_summary_its_statistics(
    runner: CliRunner, yahoo_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli,
        ["run", "--data", str(yahoo_dir), "--out", str(tmp_path / "r"), "--no-chart", "--commission", "0.005/share"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert f"CSV in {yahoo_dir} (2 files)" in result.output
    assert "Quandl" not in result.output
    assert "costs: starting cash 100,000.00 USD, commission 0.005 per share, slippage none" in result.output
    for row in ("Sharpe", "max drawdown", "win rate", "profit factor", "buy & hold (same symbols)", "by symbol"):
        assert row in result.output


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('starting_cash = "-5"', "starting_cash must not be negative"),
        ('comission_per_order = "1"', "comission_per_order"),
    ],
)
def test_a_bad_paper_setting_stops_the_run_at_load_naming_the_key(
    runner: CliRunner, tmp_path: Path, table: str, named: str
) -> None:
    config = tmp_path / "tradekit.toml"
    config.write_text(f"[plugins.paper]\n{table}\n")
    result = runner.invoke(cli, ["run", "--config", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert "is invalid" in result.output
    assert "@ plugins.paper" in result.output
    assert named in result.output


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--cash", "abc", "'abc' is not a decimal number"),
        ("--cash", "-5", "starting_cash must not be negative"),
        ("--slippage", "NaN", "'NaN' is not a finite number"),
        ("--commission", "1/lot", "commission '1/lot' is not understood"),
    ],
)
def test_a_bad_cost_on_the_command_line_is_refused_naming_it(
    runner: CliRunner, tmp_path: Path, option: str, value: str, named: str
) -> None:
    result = runner.invoke(cli, ["run", option, value, "--out", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert named in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_a_bad_bar_file_stops_the_run_naming_the_line(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "KO.csv"
    bad.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,60,61,59,62,62,100\n")
    result = runner.invoke(cli, ["run", "--data", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert f"{bad} line 2: high 61 is below the close 62" in result.output
    assert "Traceback" not in result.output


def test_trades_lists_every_position_as_a_table_json_and_csv(
    runner: CliRunner, yahoo_dir: Path, tmp_path: Path
) -> None:
    summary = _run(runner, "run", "--data", str(yahoo_dir), "--out", str(tmp_path / "r"), "--no-chart")
    ledger = str(summary["ledger"])
    trades = json.loads(runner.invoke(cli, ["trades", "--ledger", ledger, "--json"]).output)
    positions = summary["positions_by_entry_count"]
    assert isinstance(positions, dict)
    assert len(trades) == sum(positions.values())
    closed = [t for t in trades if not t["open"]]
    assert closed
    for trade in closed:
        assert trade["closed_at"] > trade["opened_at"]
        assert trade["close_reason"]
        assert trade["average_exit"] is not None
        assert len(trade["entries"]) == trade["entry_count"]
        assert all(e["decision_id"].startswith("dec-") for e in trade["entries"])
        assert trade["entries"][0]["kind"] == "entry"
    # The first explained decision of a trade is one the ledger can explain.
    first = closed[0]["entries"][0]["decision_id"]
    assert runner.invoke(cli, ["explain", first, "--ledger", ledger]).exit_code == 0
    table = runner.invoke(cli, ["trades", "--ledger", ledger, "--symbol", "IBM"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert f"trades ({sum(1 for t in trades if t['symbol'] == 'IBM')})" in table.output
    assert "MSFT#" not in table.output
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["trades", "--ledger", ledger, "--csv"]).output)))
    assert [r["realized_pnl"] for r in rows] == [t["realized_pnl"] for t in trades]
    assert rows[0]["entry_decisions"].split(";") == [e["decision_id"] for e in trades[0]["entries"]]
    only_open = json.loads(runner.invoke(cli, ["trades", "--ledger", ledger, "--json", "--status", "open"]).output)
    assert all(t["open"] for t in only_open)
