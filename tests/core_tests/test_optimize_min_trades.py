"""The minimum of closed trades a trial must make to be eligible as the best: a parameter set
that closed a lucky position or two is set aside, in a study, on a Pareto front and in each
walk-forward fold, and the result says why; when no trial reaches the minimum, there is no best."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from optuna.trial import FrozenTrial, TrialState

from tradekit.cli import cli
from tradekit.optimize.objective import DEFAULT_MIN_TRADES
from tradekit.optimize.problem import Problem, ProblemError, prepare
from tradekit.optimize.study import (
    MEMORY,
    StorageOptions,
    Worker,
    best_trials,
    create_or_join,
    load,
    no_best_reason,
    opened,
)

from .optimize_kit import Gated, kit_plugins

# Over this quarter of AAPL, Gated's average of 15 days closes 1 position for a Sharpe ratio of
# 3.20; of 10 days, 3 for 3.09; of 5 days, 8 for 2.16; of 20 days, 1 for 1.90. The 15-day
# trial also has the highest total return, so it dominates every other on a Pareto front.
QUARTER: dict[str, Any] = {
    "strategy": Gated.name,
    "symbols": ("AAPL",),
    "start": "2004-10-01",
    "end": "2004-12-31",
    "sampler": "grid",
}


@pytest.fixture
def kit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's plugins hold the test strategy."""
    monkeypatch.setattr("tradekit.cli.common.plugins", kit_plugins)


def _searched(**problem: Any) -> tuple[dict[int, FrozenTrial], list[FrozenTrial], str | None]:
    """Run the quarter's grid: its trials by fast average, the best trials, why there is none."""
    prepared = prepare(Problem(**{**QUARTER, **problem}), kit_plugins())
    options = StorageOptions(url=MEMORY)
    with opened(options) as storage:
        create_or_join(storage, "kit", prepared, None)
        Worker(storage=storage, study="kit", prepared=prepared, options=options).run()
        study = load(storage, "kit")
        trials = {t.params["strategy.fast"]: t for t in study.get_trials()}
        return trials, best_trials(study), no_best_reason(study)


def test_without_a_minimum_a_single_lucky_trade_wins_the_study() -> None:
    trials, best, reason = _searched(min_trades=0)
    assert [t.params["strategy.fast"] for t in best] == [15]
    assert best[0].user_attrs["statistics"]["trades"]["closed"] == 1
    assert reason is None
    assert not any("set_aside" in t.user_attrs or t.constraints for t in trials.values())


def test_a_trial_below_the_minimum_is_set_aside_and_cannot_be_the_best() -> None:
    trials, best, reason = _searched(min_trades=5)
    assert [t.params["strategy.fast"] for t in best] == [5]
    assert reason is None
    assert "set_aside" not in trials[5].user_attrs
    assert trials[10].user_attrs["set_aside"] == "3 closed trades, below the minimum of 5"
    assert trials[15].user_attrs["set_aside"] == "1 closed trade, below the minimum of 5"
    assert trials[20].user_attrs["set_aside"] == "1 closed trade, below the minimum of 5"
    # Its figure is kept as the replay gave it (so a rerun reproduces it); it is only not eligible.
    assert trials[15].value is not None
    assert trials[5].value is not None
    assert trials[15].value > trials[5].value
    assert all(t.state == TrialState.COMPLETE for t in trials.values())
    # Optuna's own constraint (feasible when <= 0), which its samplers and tools understand.
    assert trials[15].constraints == {"min_trades": 4.0}
    assert trials[5].constraints == {"min_trades": -3.0}


def test_a_pareto_front_is_drawn_among_the_eligible_trials_only() -> None:
    objectives = ("sharpe", "total_return")
    _, unconstrained, _ = _searched(objectives=objectives, min_trades=0)
    assert [t.params["strategy.fast"] for t in unconstrained] == [15]  # it dominates every other trial
    _, front, reason = _searched(objectives=objectives, min_trades=5)
    assert [t.params["strategy.fast"] for t in front] == [5]
    assert reason is None


def test_when_no_trial_reaches_the_minimum_there_is_no_best_and_the_study_says_why() -> None:
    trials, best, reason = _searched(min_trades=9)
    assert best == []
    assert all("set_aside" in t.user_attrs for t in trials.values())
    assert reason == (
        "no trial is eligible to be the best: all 4 complete trials closed fewer trades than the minimum "
        "of 9 (the most: 8, trial 0)"
    )


def test_the_minimum_defaults_to_ten_and_a_study_stored_without_one_keeps_none() -> None:
    assert DEFAULT_MIN_TRADES == 10
    assert Problem(strategy=Gated.name).min_trades == 10
    stored = Problem(strategy=Gated.name).to_json()
    assert stored["min_trades"] == 10
    del stored["min_trades"]  # a study created before the setting existed
    assert Problem.from_json(stored).min_trades == 0
    with pytest.raises(ProblemError, match="min_trades must be 0 or more"):
        prepare(Problem(**QUARTER, min_trades=-1), kit_plugins())


def test_the_command_shows_why_a_trial_was_set_aside_and_which_is_the_best(tmp_path: Path, kit: None) -> None:
    args = ["optimize", "run", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2004-10-01", "--end",
            "2004-12-31", "--sampler", "grid", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--heartbeat",
            "0", "--min-trades", "5"]  # fmt: skip
    shown = CliRunner().invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    assert "minimum 5 closed trades" in shown.output
    assert "set aside: 1 closed trade, below the minimum of 5" in shown.output
    assert "set aside: 3 closed trades, below the minimum of 5" in shown.output
    assert "--trial 0" in shown.output  # the rerun hint names the eligible best: fast 5, trial 0

    as_json = CliRunner().invoke(cli, ["optimize", "show", "--storage", f"sqlite:///{tmp_path / 'study.db'}",
                                       "--json"])  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    study = json.loads(as_json.output)
    assert study["min_trades"] == 5
    assert study["best"] == [0]
    assert study["no_best"] is None
    reasons = {t["params"]["strategy.fast"]: t["user_attrs"].get("set_aside") for t in study["trials"]}
    assert reasons == {
        5: None,
        10: "3 closed trades, below the minimum of 5",
        15: "1 closed trade, below the minimum of 5",
        20: "1 closed trade, below the minimum of 5",
    }


def test_the_command_says_plainly_when_no_trial_is_eligible(tmp_path: Path, kit: None) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["optimize", "run", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2004-10-01", "--end",
            "2004-12-31", "--sampler", "grid", "--storage", storage, "--heartbeat", "0", "--min-trades",
            "9"]  # fmt: skip
    shown = CliRunner().invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    assert "no trial is eligible to be the best" in shown.output
    assert "replay the best" not in shown.output
    assert "*" not in shown.output  # no row is marked best
    as_json = CliRunner().invoke(cli, ["optimize", "show", "--storage", storage, "--json"])
    study = json.loads(as_json.output)
    assert study["best"] == []
    assert "minimum of 9" in study["no_best"]


WALK = ["optimize", "walk-forward", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2004-07-01", "--end",
        "2004-12-31", "--sampler", "grid", "--heartbeat", "0", "--in-sample", "63", "--out-of-sample", "32",
        "--json"]  # fmt: skip


def test_each_walk_forward_fold_takes_an_eligible_trial_and_flags_an_out_of_sample_replay_below_the_minimum(
    tmp_path: Path, kit: None
) -> None:
    # In sample, the 20-day average has the better Sharpe ratio in both folds, on 2 closed
    # positions and then on none (a position left open); the 5-day one closes 8 and 6.
    space = tmp_path / "space.toml"
    space.write_text("[strategy]\nfast = { choices = [5, 20] }\n")
    out = tmp_path / "out"
    args = [*WALK, "--space", str(space), "--storage", f"sqlite:///{tmp_path / 'wf.db'}", "--out", str(out)]
    unconstrained = CliRunner().invoke(cli, [*args, "--study", "free", "--min-trades", "0"])
    assert unconstrained.exit_code == 0, unconstrained.output
    assert [f["params"] for f in json.loads(unconstrained.output)["folds"]] == [{"strategy.fast": 20}] * 2

    result = CliRunner().invoke(cli, [*args, "--study", "careful", "--min-trades", "5"])
    assert result.exit_code == 0, result.output
    walked = json.loads(result.output)
    assert walked["min_trades"] == 5
    folds = walked["folds"]
    assert [f["params"] for f in folds] == [{"strategy.fast": 5}] * 2
    assert [f["in_sample_closed_trades"] for f in folds] == [8, 6]
    assert [f["out_of_sample_closed_trades"] for f in folds] == [3, 4]
    assert [f["out_of_sample_below_min_trades"] for f in folds] == [True, True]
    page = (out / "walk-forward.html").read_text()
    assert "3 closed trades out of sample, below the minimum of 5" in page
    assert "4 closed trades out of sample, below the minimum of 5" in page


def test_a_walk_forward_fold_with_no_eligible_trial_stops_and_says_why(tmp_path: Path, kit: None) -> None:
    space = tmp_path / "space.toml"
    space.write_text("[strategy]\nfast = { choices = [5, 20] }\n")
    args = [*WALK, "--space", str(space), "--storage", f"sqlite:///{tmp_path / 'wf.db'}", "--out",
            str(tmp_path / "out"), "--min-trades", "7"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "fold 2: no trial is eligible to be the best" in result.output
    assert "minimum of 7 (the most: 6" in result.output
