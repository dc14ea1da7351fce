"""A short seeded run of the fault x kill campaign, in the normal test suite.

One session of the campaign (``nox -s chaos`` runs whole ones): the breakout buys at the open
under the faults seed 19 draws, the trader SIGKILLed right after Alpaca stored its first buy
(when the faults let it send one) and at its 12th call, restarted with the same command each
time, then a clean session and ``tradekit reconcile``. Every invariant of the campaign must
hold. Replay it with
``nox -s chaos -- --seed 19 --sessions 1`` (which draws its kills from the seed instead).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.alpaca_campaign import run_alpaca
from chaos.runs import Backend, KillTrigger

SEED = 19


@pytest.mark.chaos
def test_a_short_seeded_fault_and_kill_run_keeps_every_campaign_invariant(tmp_path: Path) -> None:
    result = run_alpaca(
        SEED,
        tmp_path,
        Backend("sqlite"),
        sessions=1,
        kill_triggers=[KillTrigger("buy", 1, "after"), KillTrigger("request", 12, "before")],
    )

    assert result.kills, "no kill happened"
    report = "\n".join(f"{v.invariant}: {v.saw}" for v in result.violations)
    assert result.violations == [], f"seed {SEED} ({result.narrative_path}):\n{report}"
