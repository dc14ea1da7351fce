"""``tradekit run`` with the trading-state guard configured: the backtest shows what its
triggers would have done, in the summary table and in ``--json``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tradekit.cli import cli

from .test_cli import run_json
from .test_cli import runner as runner


def test_a_paper_run_counts_the_buys_the_drawdown_halt_blocked(
    runner: CliRunner, small_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "guard.toml"
    config.write_text('[guard]\nmax_drawdown_pct = "0.5"\n')
    args = ["run", "--data", str(small_data), "--no-chart", "--config", str(config)]
    summary = run_json(runner, *args, "--out", str(tmp_path / "r"))
    assert isinstance(summary, dict)
    halted = [d for d in summary["decisions"] if d["reason"] == "trading_halted"]
    assert halted
    assert summary["guard_blocked_buys"] == sum(d["count"] for d in halted)
    state = run_json(runner, "state", "--ledger", summary["ledger"])
    assert isinstance(state, dict)
    assert (state["scopes"][0]["state"], state["scopes"][0]["trigger"]) == ("halted", "max_drawdown")
    table = runner.invoke(cli, [*args, "--out", str(tmp_path / "t")])
    assert table.exit_code == 0, table.output
    assert "buys blocked by the guard" in table.output
    assert "trading_halted" in table.output


def test_without_a_guard_setting_nothing_is_blocked_by_it(runner: CliRunner, small_data: Path, tmp_path: Path) -> None:
    summary = run_json(runner, "run", "--data", str(small_data), "--out", str(tmp_path / "r"), "--no-chart")
    assert isinstance(summary, dict)
    assert summary["guard_blocked_buys"] == 0
    assert all(d["reason"] not in ("trading_halted", "reduce_only") for d in summary["decisions"])
