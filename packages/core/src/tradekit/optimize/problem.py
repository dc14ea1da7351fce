"""What a search runs: the strategy, the bars, the settings and costs, the space, the objective.

A ``Problem`` is plain data (it is stored in the study, so a worker on another machine, or
``tradekit optimize rerun`` a month later, runs exactly the same replays); ``prepare``
turns it into what a replay needs, and ``evaluate`` runs one full paper replay through
the same entry point as ``tradekit run`` (``run_paper_replay``) with a trial's parameters.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.broker.paper_plugin import load_paper_settings
from tradekit.config.loading import load_settings
from tradekit.config.settings import Settings, SettingsError
from tradekit.data import DataError, load_bar_data
from tradekit.domain.market import Bar
from tradekit.execution.paper_run import PaperRun, replay_identity, run_paper_replay
from tradekit.optimize.objective import (
    DEFAULT_MIN_TRADES,
    Metric,
    StudyDirectionName,
    metrics_of,
    recorded_statistics,
)
from tradekit.optimize.space import (
    POLICY,
    Dimension,
    SpaceError,
    check_space,
    declared_space,
    parse_space,
    policy_with,
)
from tradekit.plugins import Plugins
from tradekit.strategy.base import Strategy

SAMPLERS = ("tpe", "random", "grid", "nsga2")


class ProblemError(ValueError):
    """A search that cannot be run as asked; the message says why."""


@attrs.frozen(kw_only=True)
class Problem:
    """A search, as plain JSON-ready data."""

    strategy: str
    symbols: tuple[str, ...] = ()
    data: tuple[str, ...] = ()  # bar files or directories; empty: the shipped bars
    start: str | None = None  # first day (ISO), inclusive
    end: str | None = None  # last day (ISO), inclusive
    config: str | None = None  # the TOML configuration file
    cash: str | None = None
    commissions: tuple[str, ...] = ()
    slippage: str | None = None
    space: dict[str, Any] = attrs.field(factory=dict)  # {"policy.max_entries": {"low": 2, "high": 6}}
    objectives: tuple[str, ...] = ("sharpe",)
    sampler: str = "tpe"
    seed: int = 0
    population: int = 20  # NSGA-II's population
    # Closed positions a trial must make to be eligible as the best (0: no minimum).
    min_trades: int = DEFAULT_MIN_TRADES

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Problem:
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ProblemError(f"a stored search has unknown keys {sorted(unknown)}: made by a newer tradekit?")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        # A study created before the minimum existed set no trial aside: it keeps none, so
        # its best trial stays the one it was, and a worker joining it agrees with its creator.
        kwargs.setdefault("min_trades", 0)
        return cls(**kwargs)

    def window(self, start: date, end: date) -> Problem:
        """The same search over the days ``start``..``end`` only (a walk-forward window)."""
        return attrs.evolve(self, start=start.isoformat(), end=end.isoformat())


@attrs.frozen(kw_only=True)
class Prepared:
    """A problem ready to run: its strategy class, settings, bars, costs and dimensions."""

    problem: Problem
    strategy: type[Strategy]
    settings: Settings
    plugins: Plugins
    bars: dict[str, list[Bar]]
    source: str
    broker: PaperBrokerConfig
    dimensions: tuple[Dimension, ...]
    metrics: tuple[Metric, ...]
    identity: dict[str, Any]

    @property
    def directions(self) -> list[StudyDirectionName]:
        return [m.direction for m in self.metrics]

    def with_bars(self, bars: dict[str, list[Bar]], problem: Problem) -> Prepared:
        """This problem over other bars (a walk-forward window), with their identity."""
        return attrs.evolve(
            self,
            problem=problem,
            bars=bars,
            identity=replay_identity(self.strategy, self.settings, bars, self.broker),
        )


def prepare(problem: Problem, plugins: Plugins | None = None) -> Prepared:
    """Load what ``problem`` names and check it all, before any trial runs."""
    manager = plugins or Plugins()
    if problem.sampler not in SAMPLERS:
        raise ProblemError(f"unknown sampler {problem.sampler!r}; choose from {', '.join(SAMPLERS)}")
    if problem.min_trades < 0:
        raise ProblemError(f"min_trades must be 0 or more (0: no minimum), not {problem.min_trades}")
    available = manager.strategies()
    if problem.strategy not in available:
        raise ProblemError(
            f"unknown strategy {problem.strategy!r}; installed: {', '.join(sorted(available)) or 'none'}"
        )
    strategy = available[problem.strategy]
    try:
        loaded = load_settings(problem.config, plugin_settings=manager.settings_tables())
        paper = load_paper_settings(loaded.settings).with_costs(
            cash=Decimal(problem.cash) if problem.cash is not None else None,
            commissions=problem.commissions,
            slippage_bps=Decimal(problem.slippage) if problem.slippage is not None else None,
        )
    except SettingsError as exc:
        raise ProblemError(str(exc)) from None
    settings = loaded.settings
    try:
        metrics = metrics_of(problem.objectives)
        raw = {**declared_space(strategy), **problem.space}
        if not raw:
            raise SpaceError(
                f"nothing to search: strategy {strategy.name!r} declares no search_space; give one with --space FILE"
            )
        dimensions = parse_space(raw, strategy)
        check_space(dimensions, strategy)
        if problem.sampler == "grid":
            for dimension in dimensions:
                dimension.grid()
    except ValueError as exc:
        raise ProblemError(str(exc)) from None
    bars, source = load_bars(problem, settings)
    broker = paper.broker_config()
    return Prepared(
        problem=problem,
        strategy=strategy,
        settings=settings,
        plugins=manager,
        bars=bars,
        source=source,
        broker=broker,
        dimensions=tuple(dimensions),
        metrics=tuple(metrics),
        identity=replay_identity(strategy, settings, bars, broker),
    )


def load_bars(problem: Problem, settings: Settings) -> tuple[dict[str, list[Bar]], str]:
    """The problem's bars (trimmed to its days) and where they came from."""
    symbols = problem.symbols or settings.symbols
    try:
        loaded = load_bar_data(symbols or None, [Path(p) for p in problem.data])
    except DataError as exc:
        raise ProblemError(str(exc)) from None
    return trim(loaded.bars, _day(problem.start), _day(problem.end)), loaded.source


def trim(bars: Mapping[str, Sequence[Bar]], start: date | None, end: date | None) -> dict[str, list[Bar]]:
    """The bars of the days ``start``..``end`` (both included), as ``tradekit run --start --end``."""
    first = datetime(start.year, start.month, start.day, tzinfo=UTC) if start else None
    last = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1) if end else None
    kept = {
        s: [b for b in series if (first is None or b.time >= first) and (last is None or b.time <= last)]
        for s, series in bars.items()
    }
    kept = {s: series for s, series in kept.items() if series}
    if not kept:
        raise ProblemError("no bars in the chosen period")
    return kept


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def configured(prepared: Prepared, params: Mapping[str, Any]) -> type[Strategy]:
    """The strategy with a trial's parameters: a subclass carrying its attributes and policy.

    ``params`` are Optuna's values by dimension name; the subclass keeps the strategy's
    name, so its decisions and report read as the strategy's own.
    """
    by_name = {d.name: d for d in prepared.dimensions}
    policy_values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, sampled in params.items():
        dimension = by_name[name]
        value = dimension.value(sampled)
        if dimension.target == POLICY:
            policy_values[dimension.field] = value
        else:
            attributes[dimension.field] = value
    base = prepared.strategy
    namespace: dict[str, Any] = {"name": base.name, "__module__": base.__module__, **attributes}
    if policy_values:
        namespace["scaling_policy"] = policy_with(base.policy(), policy_values)
    return type(base.__name__, (base,), namespace)


def evaluate(
    prepared: Prepared, params: Mapping[str, Any], *, out_dir: Path | None = None, chart: bool = False
) -> PaperRun:
    """One full paper replay with ``params``: into ``out_dir`` (kept, with its report when
    ``chart``), or into a temporary directory removed afterwards."""
    strategy = configured(prepared, params)
    replay = functools.partial(
        run_paper_replay,
        strategy=strategy,
        settings=prepared.settings,
        plugins=prepared.plugins,
        bars=prepared.bars,
        broker_config=prepared.broker,
        chart=chart,
        notes=[("data", prepared.source), ("parameters", describe(params))],
    )
    if out_dir is not None:
        return replay(out_dir=out_dir)
    with tempfile.TemporaryDirectory(prefix="tradekit-trial-") as scratch:
        return replay(out_dir=Path(scratch))


def scores(prepared: Prepared, run: PaperRun) -> tuple[list[float], dict[str, Any]]:
    """The objective values of a run, and the statistics a trial records."""
    statistics = recorded_statistics(run.statistics.as_json())
    return [m.score(statistics) for m in prepared.metrics], statistics


def describe(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
