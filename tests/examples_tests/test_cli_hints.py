"""Every command a `tradekit` command suggests works exactly as printed: each hint is run."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit.cli import cli

from .conftest import ENV


def hints(output: str, marker: str) -> list[str]:
    """The `tradekit ...` commands printed after ``marker`` (one per line)."""
    after = output[output.index(marker) + len(marker) :]
    return [line.strip() for line in after.splitlines() if line.strip().startswith("tradekit ")]


def run_as_printed(runner: CliRunner, command: str) -> str:
    words = shlex.split(command)
    assert words[0] == "tradekit"
    result = runner.invoke(cli, words[1:])
    assert result.exit_code == 0, f"{command!r} failed as printed:\n{result.output}"
    return result.output


@pytest.mark.parametrize("out_name", ["runs", "my runs"])
def test_the_commands_run_suggests_work_as_printed(small_data: Path, tmp_path: Path, out_name: str) -> None:
    runner = CliRunner(env=ENV)
    result = runner.invoke(
        cli,
        ["run", "--strategy", "breakout", "--data", str(small_data), "--out", str(tmp_path / out_name), "--no-chart"],
    )
    assert result.exit_code == 0, result.output

    suggested = hints(result.output, "next:")

    assert [shlex.split(c)[1] for c in suggested] == ["trades", "decisions", "positions", "intents"]
    for command in suggested:
        run_as_printed(runner, command)


def test_the_explain_command_decisions_suggests_works_as_printed(small_data: Path, tmp_path: Path) -> None:
    runner = CliRunner(env=ENV)
    out = tmp_path / "runs"
    assert runner.invoke(cli, ["run", "--data", str(small_data), "--out", str(out), "--no-chart"]).exit_code == 0
    listing = run_as_printed(runner, f"tradekit decisions --ledger {shlex.quote(str(out / 'latest' / 'ledger.db'))}")

    (explain,) = hints(listing, "explain one:")
    explained = run_as_printed(runner, explain)

    assert f"decision {shlex.split(explain)[2]}:" in explained


def test_the_intents_options_work_before_and_after_the_sub_command(small_data: Path, tmp_path: Path) -> None:
    runner = CliRunner(env=ENV)
    out = tmp_path / "runs"
    assert runner.invoke(cli, ["run", "--data", str(small_data), "--out", str(out), "--no-chart"]).exit_code == 0
    ledger = str(out / "latest" / "ledger.db")

    before = runner.invoke(cli, ["intents", "--ledger", ledger, "--json", "list"])
    after = runner.invoke(cli, ["intents", "list", "--ledger", ledger, "--json"])
    bare = runner.invoke(cli, ["intents", "--ledger", ledger, "--json"])

    assert before.exit_code == after.exit_code == bare.exit_code == 0
    assert before.output == after.output == bare.output
