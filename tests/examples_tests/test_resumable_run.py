"""``tradekit run --ledger PATH`` killed at random moments and run again with the same command
ends exactly where an uninterrupted run ends: the same ledger rows, the same paper account,
no order sent twice."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core_tests.test_buffered_ledger import _dump
from tradekit.broker.paper import ReceiptOutcome
from tradekit.execution.paper_run import checkpointed_paper_account

from .conftest import ENV

RUN = ["run", "--strategy", "pyramid", "--symbols", "AAPL,IBM,MSFT", "--start", "2003-01-01", "--no-chart", "--json"]
KILL_SEED = 20261203
POLL_S = 0.01
CHECKPOINT_WAIT_S = 120.0


def command(ledger: Path) -> list[str]:
    code = "from tradekit.cli import main; main()"
    return [sys.executable, "-c", code, *RUN, "--ledger", str(ledger), "--checkpoint-every", "0.05"]


def checkpoints(ledger: Path) -> int:
    found = [int(m.group(1)) for p in ledger.parent.iterdir() if (m := re.search(r"paper-(\d+)\.json$", p.name))]
    return max(found, default=0)


def killed_after_checkpoint(ledger: Path, target: int, env: dict[str, str]) -> bool:
    """Start the run, SIGKILL it once its checkpoint ``target`` is on disk; False if it ended first."""
    with subprocess.Popen(command(ledger), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            deadline = time.monotonic() + CHECKPOINT_WAIT_S
            while process.poll() is None and checkpoints(ledger) < target and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if process.poll() is not None:
                _, stderr = process.communicate()
                assert process.returncode == 0, stderr.decode()
                return False
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            return True
        finally:  # a failure or the test's timeout above leaves no run behind
            if process.poll() is None:
                process.kill()
                process.communicate()


def finish(ledger: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(command(ledger), env=env, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def paper_account(ledger: Path) -> tuple[Any, ...]:
    broker = checkpointed_paper_account(ledger)
    accepted = [r.request.client_order_id for r in broker.received_orders if r.outcome is ReceiptOutcome.ACCEPTED]
    assert len(accepted) == len(set(accepted)), "an order was sent twice"
    return broker.get_account().cash, sorted((p.symbol, p.qty) for p in broker.get_positions()), accepted


def comparable(ledger: Path) -> dict[str, list[Any]]:
    rows = _dump(f"sqlite:///{ledger}")
    # How many checkpoints a run took depends on its wall time: not on what it did.
    rows["tk_replay_runs"] = [row[:3] + row[4:] for row in rows["tk_replay_runs"]]
    return rows


@pytest.mark.slow
def test_a_run_killed_at_random_moments_and_rerun_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    env = {**os.environ, **ENV, "TRADEKIT_LOG_LEVEL": "WARNING"}
    whole = tmp_path / "whole" / "ledger.db"
    whole.parent.mkdir()
    uninterrupted = finish(whole, env)
    ledger = tmp_path / "killed" / "ledger.db"
    ledger.parent.mkdir()
    kills, target, rng = 0, 1, random.Random(KILL_SEED)
    while kills < 4:
        target = checkpoints(ledger) + rng.randint(1, 25)
        if not killed_after_checkpoint(ledger, target, env):
            break
        kills += 1
    resumed = finish(ledger, env)

    assert kills >= 2, "the run should have been killed mid-replay at least twice"
    assert resumed["started"] in ("resumed", "finished")
    expected, found = comparable(whole), comparable(ledger)
    assert expected["tk_order_intents"], "the run traded"
    for table, rows in expected.items():
        assert found[table] == rows, f"{table} differs from the uninterrupted run's"
    assert paper_account(ledger) == paper_account(whole)
    for key in ("orders_by_purpose", "fills", "final_equity", "statistics"):
        assert resumed[key] == uninterrupted[key], key
    # Rerunning the finished run changes nothing.
    again = finish(ledger, env)
    assert again["started"] == "finished"
    assert comparable(ledger) == found


def test_the_configured_ledger_url_is_where_a_paper_run_goes(tmp_path: Path, small_data: Path) -> None:
    env = {**os.environ, **ENV, "TRADEKIT_LEDGER__URL": f"sqlite:///{tmp_path / 'configured.db'}"}
    code = "from tradekit.cli import main; main()"
    args = ["run", "--data", str(small_data), "--no-chart", "--json", "--out", str(tmp_path / "runs")]
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ledger"] == f"sqlite:///{tmp_path / 'configured.db'}"
    assert not (tmp_path / "runs").exists()
