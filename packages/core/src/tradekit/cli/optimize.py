"""``tradekit optimize``: parameter search and walk-forward analysis on Optuna (``tradekit[optimize]``).

``run`` creates or joins a study and runs its trials (``--workers N`` local processes; any
number of machines on one PostgreSQL ``--storage``); ``show`` lists the trials and the
best; ``rerun --trial N`` replays one trial as an ordinary paper run, with its report, and
checks it reproduces the recorded figures; ``walk-forward`` optimises in-sample windows
and scores the winners out of sample.
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tradekit.cli.common import command_line, config_option, console, emit_json, err_console, json_option
from tradekit.cli.types import DECIMAL
from tradekit.optimize.objective import DEFAULT_MIN_TRADES

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

    from tradekit.optimize.problem import Prepared, Problem
    from tradekit.optimize.study import StorageOptions

DEFAULT_STRATEGY = "pyramid"
DEFAULT_STORAGE = "sqlite:///tradekit-optimize.db"
_MISSING_OPTUNA = "tradekit optimize needs Optuna, an optional extra: pip install 'tradekit[optimize]'"


def _need_optuna() -> None:
    try:
        import optuna
    except ImportError:
        raise click.ClickException(_MISSING_OPTUNA) from None
    optuna.logging.set_verbosity(logging.WARNING)


@click.group("optimize")
def optimize() -> None:
    """Search strategy parameters and scaling-policy fields on full paper replays (Optuna)."""


def _storage_options(fn: Any) -> Any:
    fn = click.option(
        "--storage",
        "storage_url",
        default=DEFAULT_STORAGE,
        show_default=True,
        help="Where the study lives: 'memory', a SQLite URL, or postgresql+psycopg://user@host/db to share "
        "it between machines.",
    )(fn)
    return click.option("--study", "study_name", default=None, help="The study's name (default: the strategy's).")(fn)


def _problem_options(fn: Any) -> Any:
    options = [
        click.option("--strategy", "strategy_name", default=None, help=f"Strategy name (default: {DEFAULT_STRATEGY})."),
        click.option("--symbols", default=None, help="Comma-separated symbols (default: all shipped, or [symbols])."),
        click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day to replay."),
        click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day to replay."),
        click.option(
            "--data",
            type=click.Path(exists=True, path_type=Path),
            multiple=True,
            help="Daily bar files or directories, as for tradekit run (default: the shipped bars).",
        ),
        click.option("--cash", type=DECIMAL, default=None, help="Paper: starting cash."),
        click.option("--commission", "commissions", multiple=True, help="Paper: as for tradekit run; repeatable."),
        click.option("--slippage", type=DECIMAL, default=None, help="Paper: slippage in basis points."),
        click.option(
            "--space",
            "space_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="TOML file of [policy] and [strategy] ranges/choices (added to the strategy's search_space).",
        ),
        click.option(
            "--objective",
            "objectives",
            multiple=True,
            help="A run statistic to optimise (default: sharpe); repeat for a Pareto front (use --sampler nsga2).",
        ),
        click.option(
            "--sampler",
            type=click.Choice(["tpe", "random", "grid", "nsga2"]),
            default=None,
            help="Optuna sampler (default: tpe).",
        ),
        click.option("--seed", type=int, default=None, help="The sampler's seed (default: 0)."),
        click.option(
            "--population", type=click.IntRange(min=2), default=None, help="NSGA-II's population (default: 20)."
        ),
        click.option(
            "--min-trades",
            type=click.IntRange(min=0),
            default=None,
            help=f"Closed trades a trial must make to be eligible as the best (default: {DEFAULT_MIN_TRADES}; 0: no "
            "minimum). A trial closing fewer is set aside whatever its figures; in a walk-forward this applies in "
            "sample, and an out-of-sample replay closing fewer is flagged.",
        ),
        config_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _reaper_options(fn: Any) -> Any:
    options = [
        click.option(
            "--heartbeat",
            type=click.IntRange(min=0),
            default=10,
            show_default=True,
            help="Seconds between a running trial's heartbeats (0: none); a trial unheard of for --grace is a "
            "dead worker's and is queued again.",
        ),
        click.option("--grace", type=click.IntRange(min=1), default=None, help="Default: 3 x --heartbeat."),
        click.option("--max-retry", type=click.IntRange(min=0), default=2, show_default=True),
        click.option(
            "--trial-timeout",
            type=click.FloatRange(min=1),
            default=None,
            help="Seconds after which a RUNNING trial counts as dead (the start-time reaper, for storages "
            "without heartbeats).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _problem(
    stored: Problem | None,
    *,
    strategy_name: str | None,
    symbols: str | None,
    start: datetime | None,
    end: datetime | None,
    data: tuple[Path, ...],
    cash: Decimal | None,
    commissions: tuple[str, ...],
    slippage: Decimal | None,
    space_file: Path | None,
    objectives: tuple[str, ...],
    sampler: str | None,
    seed: int | None,
    population: int | None,
    min_trades: int | None,
    config_path: Path | None,
) -> Problem:
    """The problem the options describe; joining a stored one, the options given must agree with it."""
    import attrs

    from tradekit.optimize.problem import Problem
    from tradekit.optimize.space import flatten

    given: dict[str, Any] = {}
    if strategy_name is not None:
        given["strategy"] = strategy_name
    if symbols is not None:
        given["symbols"] = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    if start is not None:
        given["start"] = start.date().isoformat()
    if end is not None:
        given["end"] = end.date().isoformat()
    if data:
        given["data"] = tuple(str(p) for p in data)
    if cash is not None:
        given["cash"] = str(cash)
    if commissions:
        given["commissions"] = commissions
    if slippage is not None:
        given["slippage"] = str(slippage)
    if space_file is not None:
        try:
            given["space"] = flatten(tomllib.loads(space_file.read_text()))
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise click.ClickException(f"search space {space_file}: {exc}") from None
    if objectives:
        given["objectives"] = objectives
    if sampler is not None:
        given["sampler"] = sampler
    if seed is not None:
        given["seed"] = seed
    if population is not None:
        given["population"] = population
    if min_trades is not None:
        given["min_trades"] = min_trades
    if config_path is not None:
        given["config"] = str(config_path)
    if stored is not None:
        return attrs.evolve(stored, **given)
    given.setdefault("strategy", DEFAULT_STRATEGY)
    return Problem(**given)


def _prepare(problem: Problem) -> Prepared:
    from tradekit.cli.common import plugins
    from tradekit.optimize.problem import ProblemError, prepare

    try:
        return prepare(problem, plugins())
    except ProblemError as exc:
        raise click.ClickException(str(exc)) from None


def _open(options: StorageOptions, *, create_tables: bool = True) -> BaseStorage:
    from tradekit.optimize.study import StudyError, close_storage, open_storage

    if not create_tables and options.url.startswith("sqlite:///"):
        path = Path(options.url.removeprefix("sqlite:///"))
        if not path.exists():
            raise click.ClickException(f"no study storage at {path}: run tradekit optimize run first (or --storage)")
    try:
        storage = open_storage(options, create_tables=create_tables)
    except StudyError as exc:
        raise click.ClickException(str(exc)) from None
    click.get_current_context().call_on_close(lambda: close_storage(storage))
    return storage


def _shared_storage(
    url: str, heartbeat: int, grace: int | None, max_retry: int, trial_timeout: float | None, workers: int
) -> tuple[StorageOptions, BaseStorage]:
    """The storage options of run and walk-forward, and the storage opened (tables created)."""
    from datetime import timedelta

    from tradekit.optimize.study import MEMORY, StorageOptions

    options = StorageOptions(
        url=url,
        heartbeat=heartbeat or None,
        grace=grace,
        max_retry=max_retry,
        trial_timeout=timedelta(seconds=trial_timeout) if trial_timeout else None,
    )
    if workers > 1 and url == MEMORY:
        raise click.ClickException("--workers needs a storage the workers share: a SQLite file or PostgreSQL")
    return options, _open(options)


def _shown(url: str) -> str:
    """The storage URL with its password hidden."""
    if "://" not in url:
        return url
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


@optimize.command("run")
@_problem_options
@_storage_options
@_reaper_options
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="The study's budget of trials (default 50; the grid sampler runs its whole grid). Joining a study, a "
    "larger number adds the difference.",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Local worker processes.")
@json_option
def run_cmd(
    storage_url: str,
    study_name: str | None,
    trials: int | None,
    workers: int,
    heartbeat: int,
    grace: int | None,
    max_retry: int,
    trial_timeout: float | None,
    as_json: bool,
    **problem_options: Any,
) -> None:
    """Create or join a study and run its trials: each one a full paper replay.

    Started on several machines with one PostgreSQL --storage and --study, each joins the
    same study and takes trials from its queue until the budget is spent.
    """
    _need_optuna()
    from tradekit.optimize.study import StudyError, create_or_join, load, stored_problem

    options, storage = _shared_storage(storage_url, heartbeat, grace, max_retry, trial_timeout, workers)
    name = study_name or problem_options["strategy_name"] or DEFAULT_STRATEGY
    found = stored_problem(storage, name)
    problem = _problem(found[0] if found else None, **problem_options)
    prepared = _prepare(problem)
    try:
        study, created = create_or_join(storage, name, prepared, trials)
    except StudyError as exc:
        raise click.ClickException(str(exc)) from None
    if not as_json:
        verb = "created" if created else "joined"
        console.print(
            f"[bold]tradekit optimize[/] {verb} study [cyan]{name}[/] in {_shown(storage_url)}: strategy "
            f"{problem.strategy}, {', '.join(d.name for d in prepared.dimensions)}; objective "
            f"{', '.join(problem.objectives)}; sampler {problem.sampler}; {_minimum_text(problem.min_trades)}; "
            f"{sum(len(b) for b in prepared.bars.values()):,} bars per trial",
            soft_wrap=True,
        )
    _run_trials(storage, name, prepared, options, workers, quiet=as_json)
    study = load(storage, name)
    if as_json:
        emit_json(_study_json(study, problem.objectives))
        return
    _print_trials(study, problem.objectives, top=10)
    _print_next(storage_url, name, study)


def _run_trials(
    storage: BaseStorage,
    name: str,
    prepared: Prepared,
    options: StorageOptions,
    workers: int,
    *,
    quiet: bool,
    description: str = "trials",
) -> None:
    from tradekit.optimize.study import Worker, load, tally

    study = load(storage, name)
    with _progress(quiet) as progress:
        now = tally(study)
        task = progress.add_task(description, total=now.budget, completed=now.done, best=now.best)

        def update(*_: Any) -> None:
            current = tally(study)
            progress.update(task, total=current.budget, completed=current.done, best=current.best)

        if workers == 1:
            Worker(storage=storage, study=name, prepared=prepared, options=options, on_trial=update).run()
        else:
            _run_processes(options, name, workers, update)
        update()


def _run_processes(options: StorageOptions, name: str, workers: int, update: Callable[[], None]) -> None:
    from tradekit.optimize.worker import spawn

    processes = spawn(options, name, workers)
    pause = threading.Event()
    try:
        while any(p.poll() is None for p in processes):
            update()
            pause.wait(0.5)
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
                p.wait()
    failed = [p.returncode for p in processes if p.returncode]
    if failed:
        raise click.ClickException(f"{len(failed)} of {workers} workers failed (exit codes {failed}); see above")


class _Quiet:
    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def add_task(self, *_: Any, **__: Any) -> int:
        return 0

    def update(self, *_: Any, **__: Any) -> None:
        return None


def _progress(quiet: bool) -> Any:
    if quiet:
        return _Quiet()
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _value_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _minimum_text(min_trades: int) -> str:
    return f"minimum {min_trades} closed trades a trial" if min_trades else "no minimum of closed trades"


def _print_trials(study: optuna.Study, objectives: tuple[str, ...], *, top: int | None) -> None:
    from optuna.trial import TrialState

    from tradekit.optimize.objective import closed_trades
    from tradekit.optimize.study import best_trials, min_trades_of, no_best_reason, set_aside_reason

    best = {t.number for t in best_trials(study)}
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # The trials eligible as the best first; those set aside for too few trades after them.
    if len(objectives) == 1:
        sign = 1 if study.direction.name == "MAXIMIZE" else -1
        complete.sort(key=lambda t: (set_aside_reason(t) is not None, -sign * (t.value or 0.0)))
    else:
        complete.sort(key=lambda t: set_aside_reason(t) is not None)
    shown = complete[:top] if top else complete
    table = Table(title=f"study {study.study_name}: {len(trials)} trials", header_style="bold")
    table.add_column("#", justify="right")
    for name in objectives:
        table.add_column(name, justify="right")
    table.add_column("closed trades", justify="right")
    table.add_column("parameters")
    table.add_column("best")
    for t in shown:
        values = t.values or []
        table.add_row(
            str(t.number),
            *[_value_text(v) for v in values],
            str(closed_trades(t.user_attrs.get("statistics") or {})),
            ", ".join(f"{k}={v}" for k, v in sorted(t.params.items())),
            "*" if t.number in best else "set aside" if set_aside_reason(t) else "",
        )
    console.print(table)
    console.print(_minimum_text(min_trades_of(study)), markup=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    console.print("trials: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())), markup=False)
    for t in trials:
        if t.state == TrialState.FAIL and "error" in t.user_attrs:
            console.print(f"trial {t.number} failed: {t.user_attrs['error']}", markup=False, soft_wrap=True)
    for t in shown:
        reason = set_aside_reason(t)
        if reason is not None:
            console.print(f"trial {t.number} set aside: {reason}", markup=False, soft_wrap=True)
    reason = no_best_reason(study)
    if reason is not None:
        console.print(f"[bold yellow]{reason}[/]", soft_wrap=True)


def _print_next(storage_url: str, name: str, study: optuna.Study) -> None:
    from tradekit.optimize.study import best_trials

    best = best_trials(study)
    if best:
        number = str(best[0].number)
        hint = command_line("optimize", "rerun", "--storage", _shown(storage_url), "--study", name, "--trial", number)
        console.print(f"replay the best as a paper run, with its report: {hint}", markup=False, soft_wrap=True)


def _study_json(study: optuna.Study, objectives: tuple[str, ...]) -> dict[str, Any]:
    from tradekit.optimize.study import best_trials, min_trades_of, no_best_reason, tally

    now = tally(study)
    return {
        "study": study.study_name,
        "objectives": list(objectives),
        "min_trades": min_trades_of(study),
        "budget": now.budget,
        "done": now.done,
        "failed": now.failed,
        "best": [t.number for t in best_trials(study)],
        "no_best": no_best_reason(study),
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "values": t.values,
                "params": t.params,
                "user_attrs": t.user_attrs,
                "retry_of": t.system_attrs.get("failed_trial"),
                "seconds": t.duration.total_seconds() if t.duration is not None else None,
            }
            for t in study.get_trials(deepcopy=False)
        ],
    }


@optimize.command("show")
@_storage_options
@click.option("--top", type=int, default=None, help="Only the best N complete trials.")
@json_option
def show(storage_url: str, study_name: str | None, top: int | None, as_json: bool) -> None:
    """List a study's trials (best first) and how to replay the best."""
    _need_optuna()
    from tradekit.optimize.study import StorageOptions, load, stored_problem

    storage = _open(StorageOptions(url=storage_url, heartbeat=None), create_tables=False)
    name = _study_name(storage, study_name)
    found = stored_problem(storage, name)
    if found is None:
        raise click.ClickException(f"no tradekit study {name!r} in {_shown(storage_url)}")
    study = load(storage, name)
    if as_json:
        emit_json(_study_json(study, found[0].objectives))
        return
    _print_trials(study, found[0].objectives, top=top)
    _print_next(storage_url, name, study)


def _study_name(storage: BaseStorage, given: str | None) -> str:
    if given:
        return given
    names = [s.study_name for s in storage.get_all_studies()]
    if len(names) == 1:
        return names[0]
    raise click.ClickException(f"choose a study with --study: {', '.join(names) or 'there is none'}")


@optimize.command("rerun")
@_storage_options
@click.option("--trial", "number", type=int, required=True, help="The trial's number (tradekit optimize show).")
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("tradekit-run"),
    show_default=True,
    help="Where the run's directory (ledger, chart, report) goes.",
)
@click.option("--no-chart", is_flag=True, help="Skip the chart and report.")
@click.option("--any-version", is_flag=True, help="Replay even if the trial ran on another tradekit version.")
@config_option
@json_option
def rerun(
    storage_url: str,
    study_name: str | None,
    number: int,
    out_root: Path,
    no_chart: bool,
    any_version: bool,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Replay one trial as an ordinary paper run (ledger, chart, report) from its record,
    and check that it reproduces the recorded figures."""
    _need_optuna()
    import attrs

    from tradekit import __version__
    from tradekit.optimize.problem import describe, evaluate, scores
    from tradekit.optimize.study import StorageOptions, load, stored_problem

    storage = _open(StorageOptions(url=storage_url, heartbeat=None), create_tables=False)
    name = _study_name(storage, study_name)
    found = stored_problem(storage, name)
    if found is None:
        raise click.ClickException(f"no tradekit study {name!r} in {_shown(storage_url)}")
    trials = {t.number: t for t in load(storage, name).get_trials(deepcopy=False)}
    if number not in trials:
        raise click.ClickException(f"study {name!r} has no trial {number}")
    trial = trials[number]
    if not trial.params:
        raise click.ClickException(f"trial {number} has no parameters ({trial.state.name}): nothing to replay")
    problem = found[0] if config_path is None else attrs.evolve(found[0], config=str(config_path))
    prepared = _prepare(problem)
    recorded = trial.user_attrs
    for key in ("bars_sha256", "settings_sha256", "paper_account_sha256"):
        if key in recorded and recorded[key] != prepared.identity[key]:
            labels = {"bars_sha256": "bars", "settings_sha256": "settings", "paper_account_sha256": "paper account"}
            raise click.ClickException(
                f"trial {number} ran on other {labels[key]} than these ({key} differs): its run cannot be reproduced"
            )
    if recorded.get("tradekit") not in (None, __version__) and not any_version:
        raise click.ClickException(
            f"trial {number} ran on tradekit {recorded['tradekit']}, this is {__version__}: its figures may differ "
            "(--any-version replays it anyway)"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = out_root / f"{problem.strategy}-{name}-trial{number}-{stamp}"
    if not as_json:
        console.print(
            f"replaying trial {number} of study {name}: {describe(trial.params)}", markup=False, soft_wrap=True
        )
    run = evaluate(prepared, trial.params, out_dir=out_dir, chart=not no_chart)
    values, statistics = scores(prepared, run)
    same = trial.values is not None and list(trial.values) == values
    if as_json:
        emit_json(
            {
                "trial": number,
                "params": trial.params,
                "values": values,
                "recorded_values": trial.values,
                "reproduced": same,
                "set_aside": recorded.get("set_aside"),
                "ledger": run.ledger_url,
                "report": str(run.report) if run.report else None,
                "statistics": statistics,
            }
        )
    else:
        from tradekit.reporting.terminal import statistics_rows

        table = Table(title=f"trial {number} replayed", header_style="bold")
        table.add_column("what")
        table.add_column("value", justify="right")
        for what, value in statistics_rows(run.statistics):
            table.add_row(what, value)
        console.print(table)
        recorded_values = trial.values or [None] * len(values)
        for objective, score, old in zip(problem.objectives, values, recorded_values, strict=True):
            console.print(f"{objective}: {score:.6f} (recorded {_value_text(old)})", markup=False)
        if same:
            console.print("reproduced: the figures equal the trial's record", markup=False)
        if recorded.get("set_aside"):
            console.print(
                f"trial {number} was set aside (not eligible as the best): {recorded['set_aside']}",
                markup=False,
                soft_wrap=True,
            )
        if run.report:
            console.print(f"report: {run.report}", markup=False)
        console.print(f"ledger: {run.ledger_url}", markup=False)
    if not same:
        err_console.print(
            f"[yellow]warning:[/] trial {number}'s replay gave {values}, its record says {trial.values}", soft_wrap=True
        )


@optimize.command("walk-forward")
@_problem_options
@_storage_options
@_reaper_options
@click.option("--in-sample", type=click.IntRange(min=2), required=True, help="Sessions in each in-sample window.")
@click.option(
    "--out-of-sample", type=click.IntRange(min=2), required=True, help="Sessions in each out-of-sample window."
)
@click.option("--anchored", is_flag=True, help="In-sample windows all start at the first day (default: rolling).")
@click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True, help="Trials per fold.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Local worker processes.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where walk-forward.html, walk-forward.json and the out-of-sample ledgers go "
    "(default: tradekit-run/<study>-walk-forward).",
)
@json_option
def walk_forward_cmd(
    storage_url: str,
    study_name: str | None,
    in_sample: int,
    out_of_sample: int,
    anchored: bool,
    trials: int,
    workers: int,
    out_dir: Path | None,
    heartbeat: int,
    grace: int | None,
    max_retry: int,
    trial_timeout: float | None,
    as_json: bool,
    **problem_options: Any,
) -> None:
    """Walk-forward analysis: optimise each in-sample window (a study per fold), replay the
    best parameters on the out-of-sample window after it, and report the stitched
    out-of-sample statistics beside the in-sample ones."""
    _need_optuna()
    from tradekit.optimize.problem import ProblemError
    from tradekit.optimize.study import StudyError, best_trials, create_or_join, load, no_best_reason
    from tradekit.optimize.walkforward import REPORT_FILE, SUMMARY_HEADER, Window, walk_forward

    options, storage = _shared_storage(storage_url, heartbeat, grace, max_retry, trial_timeout, workers)
    problem = _problem(None, **problem_options)
    prepared = _prepare(problem)
    name = study_name or f"{problem.strategy}-wf"
    target = out_dir or Path("tradekit-run") / f"{name}-walk-forward"

    def optimise(
        fold_study: str, inside: Prepared, window: Window
    ) -> tuple[dict[str, Any], list[float], dict[str, Any]]:
        try:
            create_or_join(storage, fold_study, inside, trials)
        except StudyError as exc:
            raise click.ClickException(str(exc)) from None
        _run_trials(storage, fold_study, inside, options, workers, quiet=as_json, description=f"fold {window.fold}")
        study = load(storage, fold_study)
        best = best_trials(study)
        if not best:
            raise click.ClickException(
                f"fold {window.fold}: {no_best_reason(study)} (see: tradekit optimize show --study {fold_study})"
            )
        return dict(best[0].params), list(best[0].values), dict(best[0].user_attrs.get("statistics") or {})

    try:
        result = walk_forward(
            prepared,
            study=name,
            in_sample=in_sample,
            out_of_sample=out_of_sample,
            anchored=anchored,
            optimise=optimise,
            out_dir=target,
        )
    except ProblemError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        emit_json({**result.to_json(), "report": str(target / REPORT_FILE)})
        return
    kind = "anchored" if anchored else "rolling"
    table = Table(title=f"walk-forward ({kind}): in sample against out of sample", header_style="bold")
    for heading in SUMMARY_HEADER:
        table.add_column(heading, justify="right")
    for metric, inside_value, outside_value, stitched in result.summary():
        table.add_row(metric, _value_text(inside_value), _value_text(outside_value), _value_text(stitched))
    console.print(table)
    console.print(f"report: {target / REPORT_FILE}", markup=False)
