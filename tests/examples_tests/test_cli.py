"""The `tradekit` command line, end to end on the shipped bars (the README's main job)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit.cli import cli

from .conftest import ENV


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=ENV)


def run_json(runner: CliRunner, *args: str) -> object:
    result = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_run_replays_the_pyramid_strategy_and_the_ledger_explains_it(
    runner: CliRunner, small_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    summary = run_json(runner, "run", "--data", str(small_data), "--out", str(out))
    assert isinstance(summary, dict)
    assert summary["strategy"] == "pyramid"
    assert summary["bars"] == 2 * 502
    assert Path(summary["chart"]).stat().st_size > 10_000
    assert summary["orders_by_purpose"]["entry"] >= 1
    ledger = summary["ledger"]
    decisions = run_json(runner, "decisions", "--ledger", ledger, "--limit", "500")
    assert isinstance(decisions, list)
    assert len(decisions) == sum(row["count"] for row in summary["decisions"])
    one = decisions[0]
    trace = run_json(runner, "explain", one["decision_id"], "--ledger", ledger)
    assert isinstance(trace, dict)
    assert trace["decision_id"] == one["decision_id"]
    assert [c["phase"] for c in trace["checks"]] == sorted(c["phase"] for c in trace["checks"])
    text = runner.invoke(cli, ["explain", one["decision_id"], "--ledger", ledger])
    assert f"decision {one['decision_id']}: {one['action'].upper()}" in text.output
    positions = run_json(runner, "positions", "--status", "all", "--ledger", ledger)
    assert isinstance(positions, list)
    assert positions
    assert all(p["entry_count"] == len(p["entries"]) for p in positions)
    intents = run_json(runner, "intents", "--ledger", ledger)
    assert isinstance(intents, list)
    assert all(i["state"] in ("executed", "expired", "planned") for i in intents)


def test_human_run_output_has_the_summary_table_and_reasons(
    runner: CliRunner, small_data: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli, ["run", "--strategy", "breakout", "--data", str(small_data), "--out", str(tmp_path / "r"), "--no-chart"]
    )
    assert result.exit_code == 0, result.output
    assert "run summary: breakout" in result.output
    assert "buy decisions by action and reason" in result.output
    assert (tmp_path / "r" / "latest" / "ledger.db").exists()


def test_a_bar_file_dated_in_the_future_is_refused_by_its_line_not_as_a_bug(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "KO.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,60,61,59,60,60,100\n2099-01-05,60,61,59,60,60,100\n"
    )
    result = runner.invoke(cli, ["run", "--data", str(path), "--out", str(tmp_path / "r"), "--no-chart"])
    assert result.exit_code != 0
    assert f"{path} line 3: the bar of 2099-01-05 is of a session that closes at" in " ".join(result.output.split())
    assert "unexpected error" not in result.output


def test_unknown_strategy_is_a_clear_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["run", "--strategy", "nope"])
    assert result.exit_code != 0
    assert "unknown strategy 'nope'; installed:" in result.output
    assert "pyramid" in result.output


def test_live_flag_on_the_paper_broker_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["run", "--live"])
    assert result.exit_code != 0
    assert "--live needs a live broker" in result.output


def test_open_positions_show_the_next_scale_in_trigger(runner: CliRunner, small_data: Path, tmp_path: Path) -> None:
    summary = run_json(runner, "run", "--data", str(small_data), "--out", str(tmp_path / "r"), "--no-chart")
    assert isinstance(summary, dict)
    rows = run_json(runner, "positions", "--ledger", summary["ledger"])
    assert isinstance(rows, list)
    for row in rows:
        nxt = row["next_scale_in"]
        assert nxt is not None
        if nxt["allowed"]:
            assert nxt["price"].startswith(">= ")
            assert nxt["entry"] == row["entry_count"] + 1


def test_config_check_reports_unsafe_values_and_passes_safe_ones(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[allocation]\nmax_allocation_per_symbol_pct = "20"\n')
    result = runner.invoke(cli, ["config", "check", "--config", str(bad)])
    assert result.exit_code != 0
    assert "allocation.max_allocation_per_symbol_pct" in result.output
    good = run_json(runner, "config", "check")
    assert isinstance(good, dict)
    assert good["settings"]["scale_in"]["max_entries_per_symbol"] == 4


def test_scan_writes_the_candidates_file(runner: CliRunner, small_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "candidates.json"
    found = run_json(runner, "scan", "--data", str(small_data), "--top", "1", "--output", str(output))
    assert isinstance(found, dict)
    assert len(found["candidates"]) == 1
    assert found["baseline"] == ["SPY", "QQQ"]
    stored = json.loads(output.read_text())
    assert stored["candidates"][0]["scan_price"] == found["candidates"][0]["scan_price"]
    assert stored["candidates"][0]["scanned_at"].startswith("2007-12-31")


def test_plugins_lists_strategies_and_the_paper_broker(runner: CliRunner) -> None:
    data = run_json(runner, "plugins")
    assert isinstance(data, dict)
    assert {"breakout", "pyramid", "average-down", "tiered-momentum"} <= set(data["strategies"])
    assert "paper" in data["brokers"]
