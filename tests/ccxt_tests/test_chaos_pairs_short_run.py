"""The pairs chaos campaign in the normal test suite: its scenario, and a short seeded run.

The scenario must keep doing what it was crafted for, or the campaign (``nox -s chaos --
--venue pairs``) would stop exercising the pair trader: untroubled, the first event scales a
pair in to its four entries and takes profit, the second stops on funding, the third is
force-closed at its max hold. Then one run under the faults seed 19 draws on both venues,
the worker SIGKILLed right after Binance stored the second buy (a long leg) and right before
Bybit received the second sell (a short leg), restarted with the same command each time, and
a clean finish: every invariant of the campaign must hold. Replay it with
``nox -s chaos -- --venue pairs --seed 19`` (which draws its kills from the seed instead).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.pairs_campaign import run_pairs
from chaos.runs import Backend, KillTrigger

pytestmark = [pytest.mark.chaos]  # the default timeout (300 s): a loaded machine starts the worker slowly

SEED = 19


def test_untroubled_the_scenario_scales_in_to_the_maximum_and_closes_on_each_rail(tmp_path: Path) -> None:
    result = run_pairs(SEED, tmp_path, Backend("sqlite"), calm=True)

    assert result.violations == []
    assert result.course == (
        "pair 1: 4 entries, take_profit; pair 2: 1 entries, funding_hard_stop; pair 3: 1 entries, max_hold"
    )


def test_a_short_seeded_fault_and_kill_run_keeps_every_pairs_invariant(tmp_path: Path) -> None:
    result = run_pairs(
        SEED,
        tmp_path,
        Backend("sqlite"),
        kill_triggers=[KillTrigger("buy", 2, "after"), KillTrigger("sell", 2, "before")],
    )

    assert len(result.kills) == 2, result.kills
    assert result.faults, "the seed drew no fault"
    report = "\n".join(f"{v.invariant}: {v.saw}" for v in result.violations)
    assert result.violations == [], f"seed {SEED} ({result.narrative_path}):\n{report}"
