"""Crash safety, proven with real processes killed (SIGKILL) at every step of the pipeline.

Each run starts a trading process that kills itself at one step (after the decision, after
the intent, after sending, after the broker accepted with the answer lost, after the fill,
mid-exit ...), then starts it again. The second process recovers, reconciles and replays the
same signals. Afterwards: exactly one broker order per intent, no broker order without an
intent, no fill beyond what an intent asked for, and ledger and broker agree.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.broker.paper import PaperBroker, ReceiptOutcome
from tradekit.domain import Side
from tradekit.ledger import Ledger

TESTS_DIR = Path(__file__).resolve().parents[1]
STEPS = [
    ("decision", 1),
    ("intent", 1),
    ("sent", 1),
    ("recorded", 1),
    ("events", 1),
    ("decision", 2),
    ("intent", 2),
    ("sent", 2),
    ("ambiguous", 1),
    ("exit_intent", 1),
    ("sent", 3),
    ("recorded", 3),
]
RUNS_PER_STEP = 3 if os.environ.get("CI") else 2


def _worker(workdir: Path, seed: int, *kill: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "core_tests.crash_worker", str(workdir), str(seed), *kill],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode not in (0, -9):
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stderr}")
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize(("step", "occurrence"), STEPS, ids=[f"{s}-{n}" for s, n in STEPS])
def test_killed_at_any_step_a_restart_never_duplicates_an_order(tmp_path: Path, step: str, occurrence: int) -> None:
    killed = 0
    for run in range(RUNS_PER_STEP):
        seed = random.Random(f"{step}-{occurrence}-{run}").randrange(1_000_000)
        workdir = tmp_path / f"run{run}"
        workdir.mkdir()
        killed += _worker(workdir, seed, step, str(occurrence)) == -9
        assert _worker(workdir, seed) == 0  # the restart runs to completion
        _assert_one_order_per_intent(workdir)
    # Some seeds send fewer orders (e.g. a lost request ends the first buy), but every
    # step must actually be reached and killed in at least one run.
    assert killed >= 1


def _assert_one_order_per_intent(workdir: Path) -> None:
    paper = PaperBroker(state_path=workdir / "paper.json")
    accepted = Counter(r.request.client_order_id for r in paper.received_orders if r.outcome is ReceiptOutcome.ACCEPTED)
    with Ledger.open(f"sqlite:///{workdir / 'ledger.db'}") as ledger, ledger.reading() as tx:
        intents = {i.intent.client_order_id: i for i in tx.pending_intents()}
        assert intents == {}, f"intents left unsettled: {list(intents)}"
        known = {coid for coid in accepted if tx.intent(coid) is not None}
        assert set(accepted) == known, "the broker holds an order no intent asked for"
        assert all(count == 1 for count in accepted.values()), f"an intent was sent twice: {accepted}"
        for coid in accepted:
            intent = tx.intent(coid)
            assert intent is not None
            assert intent.qty is not None
            assert tx.filled_qty(coid) <= intent.qty
        buys = sum(1 for coid in accepted if (i := tx.intent(coid)) is not None and i.side is Side.BUY)
        assert buys <= 2  # the script asks for one entry and one add-on, never more
        ledger_pos = tx.position("KO")
    broker_qty = {p.symbol: p.qty for p in paper.get_positions()}.get("KO", Decimal(0))
    assert (ledger_pos.qty if ledger_pos else Decimal(0)) == broker_qty
