"""Review of the optimiser's correctness: a crashing trial, a run that never trades, ties
between equal trials, a trial reaped while its worker still runs it, a walk-forward rerun."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import attrs
import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from tradekit import Strategy, StrategyView, hookimpl
from tradekit.cli import cli
from tradekit.domain import Side, Signal
from tradekit.ledger.records import EquityPoint
from tradekit.optimize.objective import METRICS, recorded_statistics
from tradekit.optimize.problem import Problem, evaluate, prepare, scores
from tradekit.optimize.study import (
    MEMORY,
    StorageOptions,
    Worker,
    best_trials,
    create_or_join,
    load,
    opened,
    reap_overdue,
)
from tradekit.plugins import Plugins
from tradekit.reporting.statistics import return_statistics
from tradekit.strategy.history import indicator, sma_column

from .optimize_kit import Gated, kit_plugins

# A quarter of daily bars closes a handful of positions, under the default minimum of closed
# trades; these tests are not about it (test_optimize_min_trades is).
QUARTER: dict[str, Any] = {
    "symbols": ("AAPL",),
    "start": "2004-10-01",
    "end": "2004-12-31",
    "sampler": "grid",
    "min_trades": 0,
}
TRADE_OR_NOT: dict[str, Any] = {"strategy.fast": {"choices": [5]}, "strategy.trade": {"choices": [False, True]}}


class Reviewed(Strategy):
    """Buys above its average, sells below; with ``fast`` 10 it raises on every bar, with 15
    when it is made; with ``trade = False`` it never signals."""

    name = "optimize-review"
    fast = 5
    trade = True
    search_space: ClassVar[dict[str, Any]] = {"strategy.fast": {"choices": [5, 10, 15, 20]}}
    scaling_policy = Gated.scaling_policy

    def __init__(self) -> None:
        if self.fast == 15:
            raise RuntimeError("a bug in the strategy's set-up")

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        if self.fast == 10:
            raise ZeroDivisionError("a bug in the strategy")
        if not self.trade:
            return []
        average = indicator(view.history, ("sma", self.fast), sma_column(self.fast))
        if average is None:
            return []
        side = Side.BUY if view.bar.close > average else Side.SELL
        if side is Side.SELL and view.position is None:
            return []
        return [
            Signal(
                symbol=view.symbol,
                side=side,
                confidence=5,
                generated_at=view.bar.time,
                reference_price=view.bar.close,
                source=self.name,
                reason="close vs SMA",
            )
        ]


class _Plugin:
    @staticmethod
    @hookimpl
    def register_strategies(register: Callable[[type[Strategy]], None]) -> None:
        register(Reviewed)
        register(Gated)


def _plugins() -> Plugins:
    return Plugins(load_entrypoints=False, env={}, extra=[("optimize-review", _Plugin())])


def test_a_trial_that_crashes_is_failed_and_the_study_goes_on() -> None:
    prepared = prepare(Problem(strategy=Reviewed.name, **QUARTER), _plugins())
    options = StorageOptions(url=MEMORY)
    with opened(options) as storage:
        create_or_join(storage, "crash", prepared, None)
        ran = Worker(storage=storage, study="crash", prepared=prepared, options=options).run()
        study = load(storage, "crash")
        trials = {t.params["strategy.fast"]: t for t in study.get_trials()}
        best = best_trials(study)
    assert ran == 4
    states = {fast: t.state for fast, t in trials.items()}
    assert states == {5: TrialState.COMPLETE, 10: TrialState.FAIL, 15: TrialState.FAIL, 20: TrialState.COMPLETE}
    assert "the strategy raised" in trials[10].user_attrs["error"]
    assert trials[15].user_attrs["error"] == "RuntimeError: a bug in the strategy's set-up"
    assert best[0].params["strategy.fast"] in (5, 20)


@pytest.mark.parametrize("objective", ["max_drawdown", "volatility", "exposure"])
def test_a_run_that_never_trades_scores_the_worst_value(objective: str) -> None:
    problem = Problem(strategy=Reviewed.name, **QUARTER, objectives=(objective,), space=TRADE_OR_NOT)
    prepared = prepare(problem, _plugins())
    idle_values, idle = scores(prepared, evaluate(prepared, {"strategy.fast": 5, "strategy.trade": False}))
    traded_values, traded = scores(prepared, evaluate(prepared, {"strategy.fast": 5, "strategy.trade": True}))
    assert idle["trades"]["positions"] == 0
    assert traded["trades"]["positions"] > 0
    worst = -math.inf if METRICS[objective].direction == "maximize" else math.inf
    assert idle_values == [worst]
    assert math.isfinite(traded_values[0])


def test_a_study_never_picks_the_run_that_never_trades() -> None:
    problem = Problem(
        strategy=Reviewed.name,
        **QUARTER,
        objectives=("max_drawdown",),
        space=TRADE_OR_NOT,
    )
    prepared = prepare(problem, _plugins())
    options = StorageOptions(url=MEMORY)
    with opened(options) as storage:
        create_or_join(storage, "idle", prepared, None)
        Worker(storage=storage, study="idle", prepared=prepared, options=options).run()
        best = best_trials(load(storage, "idle"))
    assert best[0].params["strategy.trade"] is True


def test_when_no_trial_trades_there_is_no_best() -> None:
    space = {"strategy.fast": {"choices": [5]}, "strategy.trade": {"choices": [False]}}
    prepared = prepare(Problem(strategy=Reviewed.name, **QUARTER, objectives=("volatility",), space=space), _plugins())
    options = StorageOptions(url=MEMORY)
    with opened(options) as storage:
        create_or_join(storage, "idle", prepared, None)
        Worker(storage=storage, study="idle", prepared=prepared, options=options).run()
        study = load(storage, "idle")
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
        assert best_trials(study) == []


def test_an_overflowing_figure_does_not_win() -> None:
    # Two closes, the second twenty times the first: the annualised growth overflows to inf.
    day = datetime(2024, 1, 2, 21, tzinfo=UTC)
    curve = [
        EquityPoint(time=day, equity=Decimal(100), cash=Decimal(0)),
        EquityPoint(time=day + timedelta(days=1), equity=Decimal(2000), cash=Decimal(0)),
    ]
    with pytest.warns(RuntimeWarning):
        returns = return_statistics(curve)
    assert returns is not None
    assert math.isinf(returns.cagr)
    statistics = recorded_statistics({"returns": attrs.asdict(returns), "trades": {"positions": 1}})
    assert METRICS["cagr"].score(statistics) == -math.inf
    assert METRICS["calmar"].score(statistics) == -math.inf
    assert METRICS["total_return"].score(statistics) == 19.0


@pytest.mark.parametrize("url", [MEMORY, "sqlite"])
def test_equal_trials_the_lowest_number_is_the_best(url: str, tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path / 'ties.db'}" if url == "sqlite" else MEMORY
    with opened(StorageOptions(url=storage_url, heartbeat=None)) as storage:
        study = optuna.create_study(storage=storage, study_name="ties", direction="maximize")
        trials = [study.ask() for _ in range(3)]
        # Finished out of order, as several workers finish them: #2, then #0 and #1 alike.
        study.tell(trials[2], 1.0)
        study.tell(trials[1], 2.0)
        study.tell(trials[0], 2.0)
        best = best_trials(study)
    assert [t.number for t in best] == [0]


def test_a_trial_reaped_while_its_worker_runs_it_is_run_once_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepared = prepare(Problem(strategy=Gated.name, **QUARTER), kit_plugins())
    options = StorageOptions(url=MEMORY, max_retry=1)
    real_evaluate = evaluate

    def an_hour_on() -> datetime:  # as Optuna records a trial's start: naive local time
        return datetime.now(UTC).astimezone().replace(tzinfo=None) + timedelta(hours=1)

    reaped: list[int] = []

    def slow_worker(prepared_: Any, params: Any, **kwargs: Any) -> Any:
        # While the first trial runs, another worker's start-time reaper finds it overdue.
        if not reaped:
            study = load(storage, "reaped")
            reaped.extend(reap_overdue(storage, study, timedelta(seconds=1), 1, now=an_hour_on))
        return real_evaluate(prepared_, params, **kwargs)

    monkeypatch.setattr("tradekit.optimize.study.evaluate", slow_worker)
    with opened(options) as storage:
        create_or_join(storage, "reaped", prepared, None)
        Worker(storage=storage, study="reaped", prepared=prepared, options=options).run()
        trials = load(storage, "reaped").get_trials()
    assert reaped == [0]
    complete = sorted(t.params["strategy.fast"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [5, 10, 15, 20]  # each grid point once: the retry's, not the reaped one's too
    assert trials[0].state == TrialState.FAIL


def test_walk_forward_run_again_into_the_same_folder_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tradekit.cli.common.plugins", kit_plugins)
    space = tmp_path / "space.toml"
    space.write_text("[strategy]\nfast = { choices = [5, 20] }\n")
    args = ["optimize", "walk-forward", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2004-07-01",
            "--end", "2004-12-31", "--space", str(space), "--sampler", "grid", "--storage",
            f"sqlite:///{tmp_path / 'wf.db'}", "--heartbeat", "0", "--in-sample", "63", "--out-of-sample", "32",
            "--min-trades", "5", "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    runner = CliRunner(env={"TRADEKIT_TEST_PG_URL": None})
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["folds"] == json.loads(first.output)["folds"]


class RaisesOutOfSample(Gated):
    """``Gated`` that raises on every bar from October 2004: in the out-of-sample window of the
    walk-forward below, never in its in-sample one."""

    name = "optimize-review-late-bug"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        if view.bar.time.date() >= date(2004, 10, 1):
            raise ZeroDivisionError("a bug that only shows out of sample")
        return super().on_bar(view)


class _LatePlugin:
    @staticmethod
    @hookimpl
    def register_strategies(register: Callable[[type[Strategy]], None]) -> None:
        register(RaisesOutOfSample)


def test_an_out_of_sample_replay_whose_strategy_raised_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session skips a symbol's close when the strategy raises: the fold's out-of-sample
    # figures are those of a strategy that did not run, and must say so, not pass as flat.
    monkeypatch.setattr(
        "tradekit.cli.common.plugins",
        lambda: Plugins(load_entrypoints=False, env={}, extra=[("late-bug", _LatePlugin())]),
    )
    space = tmp_path / "space.toml"
    space.write_text("[strategy]\nfast = { choices = [5] }\n")
    args = ["optimize", "walk-forward", "--strategy", RaisesOutOfSample.name, "--symbols", "AAPL", "--start",
            "2004-07-01", "--end", "2004-11-15", "--space", str(space), "--sampler", "grid", "--storage",
            f"sqlite:///{tmp_path / 'wf.db'}", "--heartbeat", "0", "--in-sample", "63", "--out-of-sample", "40",
            "--min-trades", "5", "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (fold,) = json.loads(result.output)["folds"]
    assert fold["in_sample"][1] < "2004-10-01" <= fold["out_of_sample"][1]
    assert fold["out_of_sample_strategy_errors"] > 0
    page = (tmp_path / "out" / "walk-forward.html").read_text()
    assert f"the strategy raised {fold['out_of_sample_strategy_errors']} time(s) out of sample" in page
