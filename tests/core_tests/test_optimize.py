"""tradekit optimize on one machine: the search space checked up front, trials recorded so
they can be replayed exactly, the start-time reaper, windows of a walk-forward analysis."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from tradekit.cli import cli
from tradekit.optimize.problem import Problem, ProblemError, prepare
from tradekit.optimize.study import (
    BUDGET_ATTR,
    IDENTITY_ATTR,
    MEMORY,
    PROBLEM_ATTR,
    READY_ATTR,
    StorageOptions,
    Worker,
    create_or_join,
    load,
    open_storage,
    opened,
    pop_waiting,
    queue_slots,
    reap_overdue,
)
from tradekit.optimize.walkforward import windows

from .optimize_kit import Gated, kit_plugins

YEAR: dict[str, Any] = {"strategy": Gated.name, "symbols": ("AAPL",), "start": "2004-01-01", "end": "2004-12-31"}


@pytest.fixture
def kit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's plugins hold the test strategy."""
    monkeypatch.setattr("tradekit.cli.common.plugins", kit_plugins)


def test_a_range_the_policy_refuses_is_reported_before_any_trial_runs(tmp_path: Path, kit: None) -> None:
    space = tmp_path / "space.toml"
    # Gated scales in (allow_scaling = true): one entry leaves nothing to scale into.
    space.write_text("[policy]\nmax_entries = { low = 1, high = 3 }\n")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = CliRunner().invoke(
        cli,
        ["optimize", "run", "--strategy", Gated.name, "--space", str(space), "--storage", storage, "--trials", "3"],
    )
    assert result.exit_code == 1
    assert "policy.max_entries = 1 (the low end of its range)" in result.output
    assert "allow_scaling=True needs max_entries >= 2" in result.output
    assert optuna.get_all_study_summaries(storage) == []  # no study, so no trial, was made


def test_a_combination_the_policy_refuses_names_both_fields() -> None:
    space = {
        "policy.volatility_min": {"low": "1", "high": "5", "step": "1"},
        "policy.volatility_max": {"low": "2", "high": "6", "step": "1"},
    }
    with pytest.raises(ProblemError, match=r"volatility_max = 2.0 .*volatility_min = 5.0 .*\(together\)"):
        prepare(Problem(**YEAR, space=space), kit_plugins())


def test_an_unknown_field_or_attribute_is_named() -> None:
    with pytest.raises(ProblemError, match="StrategyScalingPolicy has no field 'max_entry'"):
        prepare(Problem(**YEAR, space={"policy.max_entry": {"low": 2, "high": 3}}), kit_plugins())
    with pytest.raises(ProblemError, match="has no class attribute 'slow'"):
        prepare(Problem(**YEAR, space={"strategy.slow": {"low": 2, "high": 3}}), kit_plugins())


def test_grid_trials_are_recorded_with_what_reproduces_them_and_rerun_exactly(tmp_path: Path, kit: None) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["--storage", storage, "--study", "kit"]
    space = tmp_path / "space.toml"
    space.write_text("[strategy]\nfast = { choices = [5, 20] }\n")
    ran = CliRunner().invoke(
        cli,
        ["optimize", "run", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2004-01-01", "--end",
         "2004-12-31", "--space", str(space), "--sampler", "grid", "--json", *common],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    study = json.loads(ran.output)
    assert [t["params"] for t in study["trials"]] == [{"strategy.fast": 5}, {"strategy.fast": 20}]
    assert {t["state"] for t in study["trials"]} == {"COMPLETE"}
    record = study["trials"][1]["user_attrs"]
    assert set(record) >= {"bars_sha256", "settings_sha256", "paper_account_sha256", "tradekit", "seed", "statistics"}

    replayed = CliRunner().invoke(cli, ["optimize", "rerun", "--trial", "1", "--out", str(tmp_path / "runs"), "--json",
                                        *common])  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    rerun = json.loads(replayed.output)
    assert rerun["reproduced"] is True
    assert rerun["values"] == study["trials"][1]["values"]
    assert rerun["statistics"] == record["statistics"]
    assert Path(rerun["report"]).is_file()

    shown = CliRunner().invoke(cli, ["optimize", "show", *common])
    assert shown.exit_code == 0
    assert "optimize rerun --storage" in shown.output
    assert "strategy.fast=20" in shown.output


def test_joining_a_study_with_another_search_is_refused(tmp_path: Path, kit: None) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["optimize", "run", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2004-11-01", "--end",
            "2004-12-31", "--storage", storage, "--study", "kit", "--trials", "1", "--min-trades", "0", "--sampler",
            "random"]  # fmt: skip
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0
    assert re.search(r"trials .*1/1 best [-\d.]+ \(#0\)", first.output), first.output  # the progress bar's last state
    refused = CliRunner().invoke(cli, [*args[:-2], "--sampler", "tpe"])
    assert refused.exit_code == 1
    assert "was created for another search (sampler differ)" in refused.output


def test_a_trial_running_past_the_timeout_is_failed_and_queued_again() -> None:
    prepared = prepare(Problem(**YEAR, sampler="grid"), kit_plugins())
    storage = open_storage(StorageOptions(url=MEMORY))
    study, _ = create_or_join(storage, "kit", prepared, 1)
    study_id = storage.get_study_id_from_name("kit")
    taken = pop_waiting(storage, study_id)
    assert taken is not None
    started = storage.get_trial(taken).datetime_start
    assert started is not None

    assert reap_overdue(storage, study, timedelta(hours=1), 1, now=lambda: started + timedelta(minutes=59)) == []
    assert storage.get_trial(taken).state == TrialState.RUNNING
    number = storage.get_trial(taken).number
    assert reap_overdue(storage, study, timedelta(hours=1), 1, now=lambda: started + timedelta(minutes=61)) == [number]

    trials = load(storage, "kit").get_trials()
    failed = next(t for t in trials if t.number == number)
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == number)
    assert failed.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING
    assert retry.system_attrs["fixed_params"] == failed.system_attrs["fixed_params"] == {"strategy.fast": 5}


def test_a_worker_runs_the_budget_and_stops(tmp_path: Path) -> None:
    prepared = prepare(Problem(**{**YEAR, "start": "2004-10-01"}, sampler="random", seed=3), kit_plugins())
    options = StorageOptions(url=f"sqlite:///{tmp_path / 'study.db'}", heartbeat=None)
    seen: list[int] = []
    with opened(options) as storage:
        study, created = create_or_join(storage, "kit", prepared, 3)
        worker = Worker(storage=storage, study="kit", prepared=prepared, options=options)
        worker.on_trial = lambda t: seen.append(t.number)
        ran = worker.run()
        states = [t.state for t in load(storage, "kit").get_trials()]
    assert created
    assert study.user_attrs[BUDGET_ATTR] == 3
    assert ran == 3
    assert seen == [0, 1, 2]
    assert states == [TrialState.COMPLETE] * 3


def test_walk_forward_windows_roll_or_stay_anchored() -> None:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(10)]
    rolling = windows(days, 4, 3, anchored=False)
    assert [(w.in_sample, w.out_of_sample) for w in rolling] == [
        ((days[0], days[3]), (days[4], days[6])),
        ((days[3], days[6]), (days[7], days[9])),
    ]
    anchored = windows(days, 4, 3, anchored=True)
    assert [w.in_sample[0] for w in anchored] == [days[0], days[0]]
    assert windows(days, 4, 5, anchored=False)[-1].out_of_sample == (days[4], days[8])
    assert len(windows(days, 7, 2, anchored=False)) == 1  # 1 session left after the fold: no window of 1


def test_without_optuna_the_command_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = CliRunner().invoke(cli, ["optimize", "show"])
    assert result.exit_code == 1
    assert "pip install 'tradekit[optimize]'" in result.output


def test_joining_keeps_the_budget_and_more_trials_queue_the_difference() -> None:
    prepared = prepare(Problem(**YEAR, sampler="random"), kit_plugins())
    with opened(StorageOptions(url=MEMORY)) as storage:
        create_or_join(storage, "kit", prepared, 2)
        joined, created = create_or_join(storage, "kit", prepared, None)
        assert not created
        assert len(joined.get_trials(states=(TrialState.WAITING,))) == 2
        raised, _ = create_or_join(storage, "kit", prepared, 5)
        assert raised.user_attrs[BUDGET_ATTR] == 5
        assert len(raised.get_trials(states=(TrialState.WAITING,))) == 5


def test_a_study_another_process_is_creating_is_joined_once_its_trials_are_queued() -> None:
    prepared = prepare(Problem(**YEAR, sampler="random"), kit_plugins())
    with opened(StorageOptions(url=MEMORY)) as storage:
        # The rival won the race: the study exists, its problem and queue are not there yet.
        rival = optuna.create_study(storage=storage, study_name="kit", directions=list(prepared.directions))
        waits: list[float] = []

        def rival_finishes_meanwhile(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 2:
                rival.set_user_attr(PROBLEM_ATTR, prepared.problem.to_json())
                rival.set_user_attr(IDENTITY_ATTR, prepared.identity)
                rival.set_user_attr(BUDGET_ATTR, queue_slots(rival, prepared, 3))
                rival.set_user_attr(READY_ATTR, True)

        study, created = create_or_join(storage, "kit", prepared, 3, wait=rival_finishes_meanwhile)
        assert not created
        assert len(waits) == 2
        assert len(study.get_trials(states=(TrialState.WAITING,))) == 3  # queued once, by the rival


def test_an_interrupted_trial_is_failed_and_queued_again(monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = prepare(Problem(**YEAR, sampler="grid"), kit_plugins())

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tradekit.optimize.study.evaluate", interrupted)
    options = StorageOptions(url=MEMORY)
    with opened(options) as storage:
        create_or_join(storage, "kit", prepared, None)
        with pytest.raises(KeyboardInterrupt):
            Worker(storage=storage, study="kit", prepared=prepared, options=options).run()
        trials = load(storage, "kit").get_trials()
    stopped = trials[0]
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["error"] == "KeyboardInterrupt: "
    again = [t for t in trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert [(t.state, t.system_attrs["fixed_params"]) for t in again] == [(TrialState.WAITING, stopped.params)]
    assert sum(1 for t in trials if t.state == TrialState.WAITING) == 4  # the grid is whole again
