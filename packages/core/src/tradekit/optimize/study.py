"""The search's study on Optuna's storage, and the loop every worker runs.

How trials are shared out. The study is created once, by the first process, which also
puts the whole budget in the study's queue as WAITING trials ("slots"): for the grid
sampler one slot per grid point with its parameters fixed, for the others empty slots the
sampler fills when a worker takes one. A worker, here or on another machine, only ever
takes a WAITING trial (an atomic WAITING -> RUNNING in the storage), never creates one; so
N workers on one study run exactly the budget, each grid point exactly once, and a worker
that joins late or twice does no harm.

A worker that dies leaves its trial RUNNING. Two reapers turn it back into work:

- heartbeats (RDB storages): a trial's worker records a heartbeat every
  ``heartbeat`` seconds; one not heard of for ``grace`` seconds is failed by whichever worker
  looks next, and ``RetryHeartbeatStaleTrialCallback`` queues it again with the same
  parameters (``max_retry`` times);
- a start-time reaper (``trial_timeout``), for storages without heartbeats: a trial RUNNING
  longer than that is failed and queued again the same way.

A worker with nothing left to take waits while other trials run (one of them may come back
to the queue) and stops when none is WAITING or RUNNING.

A trial that closed fewer positions than the problem's ``min_trades`` is set aside: it
keeps its figures (a rerun reproduces them), records why in its ``set_aside`` attribute
and violates Optuna's ``min_trades`` constraint (so TPE and NSGA-II rank it below every
trial that meets it), and is never among the best trials (``best_trials``); when no trial
is eligible, ``no_best_reason`` says why there is no best.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import numpy as np

from tradekit import __version__
from tradekit.optimize.objective import below_minimum, closed_trades
from tradekit.optimize.problem import Prepared, Problem, ProblemError, describe, evaluate, scores
from tradekit.optimize.space import Dimension
from tradekit.strategy.policy import InvalidPolicyError

try:
    import optuna
    from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
    from optuna.storages import (
        BaseStorage,
        InMemoryStorage,
        RDBStorage,
        RetryHeartbeatStaleTrialCallback,
        _CachedStorage,
    )
    from optuna.trial import FrozenTrial, Trial, TrialState
except ImportError as exc:  # pragma: no cover - exercised by the CLI's message
    raise ImportError("tradekit optimize needs Optuna: pip install 'tradekit[optimize]'") from exc

log = logging.getLogger(__name__)

MEMORY = "memory"
PROBLEM_ATTR = "tradekit.problem"
IDENTITY_ATTR = "tradekit.identity"
BUDGET_ATTR = "tradekit.budget"
READY_ATTR = "tradekit.ready"
SET_ASIDE_ATTR = "set_aside"  # a trial's: why it is not eligible as the best ("3 closed trades, below ...")
MIN_TRADES_CONSTRAINT = "min_trades"  # Optuna's constraint: the minimum less the closed trades (<= 0: met)
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
DEFAULT_BUDGET = 50


class StudyError(ValueError):
    """A study that cannot be created, joined or read as asked."""


@attrs.frozen(kw_only=True)
class StorageOptions:
    """Where the study lives and how dead workers are found out."""

    url: str = "sqlite:///tradekit-optimize.db"
    heartbeat: int | None = 10  # seconds between a running trial's heartbeats; None: off
    grace: int | None = None  # seconds without one before a trial counts as dead (default 3 x heartbeat)
    max_retry: int = 2  # times a dead worker's trial is queued again
    trial_timeout: timedelta | None = None  # the start-time reaper: a trial RUNNING longer is failed

    @property
    def reaping(self) -> bool:
        return (self.heartbeat is not None and self.url != MEMORY) or self.trial_timeout is not None


def open_storage(options: StorageOptions, *, create_tables: bool = True) -> BaseStorage:
    """Open the study storage: ``memory``, or an SQLAlchemy URL (SQLite file, PostgreSQL).

    ``create_tables=False`` is for workers joining a study the parent created: Optuna's
    schema set-up racing itself on a fresh database is one of the pitfalls avoided.
    """
    if options.url == MEMORY:
        return InMemoryStorage()
    backend = options.url.split(":", 1)[0].split("+", 1)[0]
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        # Several local workers write one file: wait for the lock rather than fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    heartbeat = options.heartbeat if options.heartbeat else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        callback = RetryHeartbeatStaleTrialCallback(max_retry=options.max_retry)
        attempts = 3 if create_tables else 1
        for attempt in range(attempts):
            try:
                # The cache Optuna puts in front of an RDB storage itself; one for the whole
                # process, so a trial this worker takes is known to the study it runs in.
                return _CachedStorage(
                    RDBStorage(
                        options.url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat,
                        grace_period=(options.grace or 3 * heartbeat) if heartbeat else None,
                        heartbeat_stale_trial_callback=callback if heartbeat else None,
                        skip_table_creation=not create_tables,
                    )
                )
            except Exception as exc:  # two machines creating the tables at once: the loser retries
                if attempt == attempts - 1:
                    raise StudyError(f"the study storage cannot be opened: {type(exc).__name__}: {exc}") from exc
                log.info("creating the study tables raced another process (%s); trying again", exc)
    raise AssertionError("unreachable")  # pragma: no cover


def close_storage(storage: BaseStorage) -> None:
    """Close the storage's database connections (an in-memory storage has none)."""
    backend = storage._backend if isinstance(storage, _CachedStorage) else storage
    if isinstance(backend, RDBStorage):
        backend.remove_session()
        backend.engine.dispose()


@contextlib.contextmanager
def opened(options: StorageOptions, *, create_tables: bool = True) -> Iterator[BaseStorage]:
    """``open_storage`` for a ``with`` block, its connections closed at the end."""
    storage = open_storage(options, create_tables=create_tables)
    try:
        yield storage
    finally:
        close_storage(storage)


def stored_problem(storage: BaseStorage, study: str) -> tuple[Problem, dict[str, Any]] | None:
    """The problem (and data identity) a study was created for, or None when there is no such study."""
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return None
    attrs_ = storage.get_study_user_attrs(study_id)
    if PROBLEM_ATTR not in attrs_:
        return None
    return Problem.from_json(attrs_[PROBLEM_ATTR]), dict(attrs_.get(IDENTITY_ATTR) or {})


def load(storage: BaseStorage, study: str, *, sampler: Any = None) -> optuna.Study:
    try:
        return optuna.load_study(study_name=study, storage=storage, sampler=sampler)
    except KeyError:
        raise StudyError(f"no study {study!r} in this storage") from None


def create_or_join(
    storage: BaseStorage,
    name: str,
    prepared: Prepared,
    budget: int | None,
    *,
    wait: Callable[[float], object] | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study (recording the problem and queueing ``budget`` trials, default
    ``DEFAULT_BUDGET``), or join it (a ``budget`` above its own queues the difference).

    Returns the study and whether this call created it. Joining a study made for another
    problem, or over other data, is refused. Two processes creating it at once: one wins,
    the other joins (Optuna's ``DuplicatedStudyError``) and waits for the winner to finish
    queueing its budget.
    """
    waiter = wait or threading.Event().wait
    existing = stored_problem(storage, name)
    if existing is not None:
        check_same(name, existing, prepared)
        study = load(storage, name)
        _raise_budget(study, prepared, budget)
        return study, False
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=list(prepared.directions))
    except DuplicatedStudyError:
        for _ in range(600):
            found = stored_problem(storage, name)
            ready = found is not None and _ready(storage, name)
            if ready and found is not None:
                check_same(name, found, prepared)
                return load(storage, name), False
            waiter(0.1)
        raise StudyError(f"study {name!r} exists but its creator never queued its trials") from None
    study.set_user_attr(PROBLEM_ATTR, prepared.problem.to_json())
    study.set_user_attr(IDENTITY_ATTR, prepared.identity)
    slots = queue_slots(study, prepared, budget or DEFAULT_BUDGET)
    study.set_user_attr(BUDGET_ATTR, slots)
    study.set_user_attr(READY_ATTR, True)
    return study, True


def _ready(storage: BaseStorage, name: str) -> bool:
    return bool(storage.get_study_user_attrs(storage.get_study_id_from_name(name)).get(READY_ATTR))


def check_same(name: str, stored: tuple[Problem, dict[str, Any]], prepared: Prepared) -> None:
    problem, identity = stored
    if problem != prepared.problem:
        mine, theirs = prepared.problem.to_json(), problem.to_json()
        differs = ", ".join(k for k in mine if mine[k] != theirs.get(k))
        raise StudyError(
            f"study {name!r} was created for another search ({differs} differ): join it with the same "
            "options (or none), or choose another --study"
        )
    if identity and identity != prepared.identity:
        differs = ", ".join(k for k in identity if identity.get(k) != prepared.identity.get(k))
        raise StudyError(
            f"study {name!r} was run on other data or settings ({differs} differ): every worker must replay "
            "the same bars with the same tradekit"
        )


def queue_slots(study: optuna.Study, prepared: Prepared, budget: int) -> int:
    """Queue the study's trials as WAITING: the grid's points, or ``budget`` empty slots."""
    if prepared.problem.sampler == "grid":
        points = grid_points(prepared.dimensions)
        for params in points:
            study.enqueue_trial(params)
        return len(points)
    for _ in range(budget):
        study.enqueue_trial({})
    return budget


def _raise_budget(study: optuna.Study, prepared: Prepared, budget: int | None) -> None:
    """``--trials`` above the budget a study was created with adds the difference."""
    current = int(study.user_attrs.get(BUDGET_ATTR, 0))
    if prepared.problem.sampler == "grid" or budget is None or budget <= current:
        return
    for _ in range(budget - current):
        study.enqueue_trial({})
    study.set_user_attr(BUDGET_ATTR, budget)


def grid_points(dimensions: Sequence[Dimension]) -> list[dict[str, Any]]:
    """Every combination of the dimensions' values, in a fixed order."""
    names = [d.name for d in dimensions]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(d.grid() for d in dimensions))]


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for one trial: the study's seed and the trial's number."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler for one trial. (The grid's points are queued with their parameters, so
    any sampler leaves them as they are; a random one serves.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if problem.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        if problem.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=problem.population)
        return optuna.samplers.RandomSampler(seed=seed)


def suggest(trial: Trial, dimensions: Sequence[Dimension]) -> dict[str, Any]:
    """Ask the trial for a value of every dimension."""
    params: dict[str, Any] = {}
    for d in dimensions:
        if d.categorical:
            params[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        elif d.kind in ("int", "days"):
            assert d.low is not None
            assert d.high is not None
            step = int(d.step) if d.step is not None else 1
            params[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), step=step, log=d.log)
        else:
            assert d.low is not None
            assert d.high is not None
            step_ = float(d.step) if d.step is not None else None
            params[d.name] = trial.suggest_float(d.name, float(d.low), float(d.high), step=step_, log=d.log)
    return params


def _local_now() -> datetime:
    # Optuna stores a trial's start as the worker's naive local time.
    return datetime.now(UTC).astimezone().replace(tzinfo=None)


@attrs.define
class Worker:
    """One process's share of a study: take WAITING trials and run them until none is left."""

    storage: BaseStorage
    study: str
    prepared: Prepared
    options: StorageOptions
    wait: Callable[[float], object] = attrs.field(factory=lambda: threading.Event().wait)
    now: Callable[[], datetime] = _local_now
    on_trial: Callable[[FrozenTrial], None] | None = None
    on_idle: Callable[[], None] | None = None
    ran: int = 0

    def run(self) -> int:
        """Run trials until the study has none WAITING or RUNNING; return how many this worker ran."""
        study_id = self.storage.get_study_id_from_name(self.study)
        poll = float(min(self.options.heartbeat or 1, 1))
        while True:
            reap(self.storage, self.study, self.options, now=self.now)
            trial_id = pop_waiting(self.storage, study_id)
            if trial_id is not None:
                frozen = self.run_trial(trial_id)
                self.ran += 1
                if self.on_trial is not None:
                    self.on_trial(frozen)
                continue
            running = self.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if not running or not self.options.reaping:
                if running:
                    log.warning("%d trial(s) still RUNNING elsewhere; no reaper is on to recover them", len(running))
                return self.ran
            if self.on_idle is not None:
                self.on_idle()
            self.wait(poll)

    def run_trial(self, trial_id: int) -> FrozenTrial:
        """Run one taken trial: sample, replay, record; a heartbeat runs meanwhile."""
        problem = self.prepared.problem
        number = self.storage.get_trial_number_from_id(trial_id)
        seed = trial_seed(problem.seed, number)
        with heartbeat(self.storage, trial_id, self.options):
            study = load(self.storage, self.study, sampler=make_sampler(problem, seed))
            trial = Trial(study, trial_id)
            params = suggest(trial, self.prepared.dimensions)
            for key, value in record_attrs(self.prepared, seed).items():
                trial.set_user_attr(key, value)
            try:
                run = evaluate(self.prepared, params)
            except (InvalidPolicyError, ProblemError) as exc:
                self._fail(study, trial, number, params, str(exc))
                return self.storage.get_trial(trial_id)
            except Exception as exc:  # a crashed trial is a failed one; the study goes on
                log.exception("trial %d (%s) raised", number, describe(params))
                self._fail(study, trial, number, params, f"{type(exc).__name__}: {exc}")
                return self.storage.get_trial(trial_id)
            except BaseException as exc:
                failed_here = self._fail(study, trial, number, params, f"{type(exc).__name__}: {exc}")
                if isinstance(exc, KeyboardInterrupt) and failed_here:
                    # Interrupted, not wrong: queued again, the study's budget stays whole.
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ExperimentalWarning)
                        retry = RetryHeartbeatStaleTrialCallback(max_retry=None)
                    interrupted = copy.deepcopy(self.storage.get_trial(trial_id))
                    interrupted.user_attrs = {}
                    retry(study, interrupted)
                raise
            errors = run.result.tally.strategy_errors
            if errors:
                # The session skips a symbol's close when the strategy raises on it: the run
                # is not that of these parameters, and must not be scored (nor win).
                self._fail(study, trial, number, params, f"the strategy raised {errors} time(s); see the log")
                return self.storage.get_trial(trial_id)
            values, statistics = scores(self.prepared, run)
            try:
                trial.set_user_attr("statistics", statistics)
                trial.set_user_attr("bars", run.result.bars)
                if problem.min_trades > 0:
                    reason = below_minimum(statistics, problem.min_trades)
                    if reason is not None:
                        trial.set_user_attr(SET_ASIDE_ATTR, reason)
                    _constrain(trial, problem.min_trades - closed_trades(statistics))
                study.tell(trial, values)
            except (UpdateFinishedTrialError, ValueError):
                if not self._finished(trial_id):
                    raise
                _reaped_meanwhile(number)
        return self.storage.get_trial(trial_id)

    def _finished(self, trial_id: int) -> bool:
        return self.storage.get_trial(trial_id).state.is_finished()

    def _fail(self, study: optuna.Study, trial: Trial, number: int, params: dict[str, Any], error: str) -> bool:
        """Record the trial as failed with ``error``; False when it had finished already (reaped
        meanwhile: its retry is queued)."""
        try:
            trial.set_user_attr("error", error)
            study.tell(trial, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError):  # Optuna's tell: "Cannot tell a FAIL trial"
            if not self._finished(trial._trial_id):
                raise
            _reaped_meanwhile(number)
            return False
        log.warning("trial %d (%s) failed: %s", number, describe(params), error)
        return True


def _constrain(trial: Trial, violation: int) -> None:
    # Optuna 5's constraint (feasible at 0 or less): its TPE and NSGA-II samplers then search
    # away from parameters that trade too little, and its tools show the trial infeasible.
    # Optuna 4 has no Trial.set_constraint: the trial is set aside all the same (best_trials).
    set_constraint = getattr(trial, "set_constraint", None)
    if set_constraint is not None:
        set_constraint(MIN_TRADES_CONSTRAINT, float(violation))


def _reaped_meanwhile(number: int) -> None:
    log.warning(
        "trial %d was failed by a reaper while this worker ran it (a heartbeat missed, or --trial-timeout too "
        "short); its result is dropped: the retry queued for it (within --max-retry) counts instead",
        number,
    )


def record_attrs(prepared: Prepared, seed: int) -> dict[str, Any]:
    """What a trial records besides its parameters, to be reproduced exactly."""
    identity = prepared.identity
    return {
        "tradekit": __version__,
        "seed": seed,
        "bars_sha256": identity["bars_sha256"],
        "settings_sha256": identity["settings_sha256"],
        "paper_account_sha256": identity["paper_account_sha256"],
        "start": prepared.problem.start,
        "end": prepared.problem.end,
    }


def pop_waiting(storage: BaseStorage, study_id: int) -> int | None:
    """Take the oldest WAITING trial (WAITING -> RUNNING, atomic in the storage), or None."""
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                return trial._trial_id
        except UpdateFinishedTrialError:
            continue
    return None


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int, options: StorageOptions) -> Iterator[None]:
    """Record the trial's heartbeat now and every ``options.heartbeat`` seconds until the block ends."""
    interval = options.heartbeat
    record = getattr(storage, "record_heartbeat", None)
    if not interval or record is None or options.url == MEMORY:
        yield
        return
    record(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                record(trial_id)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the trial goes on
                log.warning("heartbeat of trial %d not recorded: %s", trial_id, exc)

    thread = threading.Thread(target=beat, name=f"tradekit-optimize-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def reap(
    storage: BaseStorage, study: str, options: StorageOptions, *, now: Callable[[], datetime] = _local_now
) -> list[int]:
    """Fail the trials of dead workers and queue them again.

    Heartbeat-stale trials first (Optuna's own check, on the database's clock), then, with
    ``trial_timeout``, trials RUNNING for longer than that since they started (the
    start-time reaper); returns the numbers the start-time reaper failed.
    """
    loaded = load(storage, study)
    if options.heartbeat and options.url != MEMORY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(loaded)
    if options.trial_timeout is None:
        return []
    return reap_overdue(storage, loaded, options.trial_timeout, options.max_retry, now=now)


def reap_overdue(
    storage: BaseStorage,
    study: optuna.Study,
    timeout: timedelta,
    max_retry: int,
    *,
    now: Callable[[], datetime] = _local_now,
) -> list[int]:
    """The start-time reaper: fail every trial RUNNING since before ``now() - timeout`` and
    queue it again (as the heartbeat reaper does); return their numbers.

    Trial start times are the workers' local clocks: machines sharing a study this way
    must share a time zone (heartbeats, on the database's clock, have no such need).
    """
    limit = now() - timeout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.datetime_start is None or trial.datetime_start >= limit:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "error", f"reaped: RUNNING for more than {timeout}")
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker reaped it, or it finished just now
        reaped = copy.deepcopy(storage.get_trial(trial._trial_id))
        reaped.user_attrs = {k: v for k, v in reaped.user_attrs.items() if k != "error"}
        retry(study, reaped)
        failed.append(trial.number)
    return failed


# --- reading a study ------------------------------------------------------------------------


@attrs.frozen
class Tally:
    """How far a study is: trials done out of the budget, and the best so far."""

    done: int
    budget: int
    running: int
    failed: int
    best: str


def tally(study: optuna.Study) -> Tally:
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    finished = [t for t in trials if t.state in FINISHED and t.number not in retried]
    failed = [t for t in finished if t.state == TrialState.FAIL]
    budget = int(study.user_attrs.get(BUDGET_ATTR, len(trials)))
    return Tally(
        done=len(finished),
        budget=budget,
        running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        failed=len(failed),
        best=best_text(study),
    )


def set_aside_reason(trial: FrozenTrial) -> str | None:
    """Why the trial is not eligible as the best (too few closed trades), or None."""
    reason = trial.user_attrs.get(SET_ASIDE_ATTR)
    return str(reason) if reason is not None else None


def min_trades_of(study: optuna.Study) -> int:
    """The minimum of closed trades the study's trials must make (0: none, or no stored problem)."""
    stored = study.user_attrs.get(PROBLEM_ATTR)
    return Problem.from_json(stored).min_trades if stored else 0


def eligible_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials that may be the best: scored (not the worst value on every
    objective) and not set aside for closing too few trades."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and any(math.isfinite(v) for v in t.values) and set_aside_reason(t) is None
    ]


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial (one objective) or the Pareto front (several), best first: ordered by
    the first objective (what a walk-forward fold takes from a front), then by number.

    Only eligible trials count (``eligible_trials``): a trial scored the worst value on every
    objective (no figure, or no position opened), or set aside for closing fewer trades than
    the minimum, is never among them, and the front is drawn among the eligible trials alone
    (a set-aside trial dominates nothing). When no trial is eligible there is no best."""
    scored = eligible_trials(study)
    if not scored:
        return []
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    if len(study.directions) == 1:
        # Equal values: the lowest number, whichever worker finished first (Optuna's own
        # best_trial takes the first finished, or the database's order).
        return [min(scored, key=lambda t: (sign * t.values[0], t.number))]
    front = pareto_front(scored, study.directions)
    return sorted(front, key=lambda t: (sign * t.values[0], t.number))


def pareto_front(trials: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection]) -> list[FrozenTrial]:
    """The trials no other of ``trials`` dominates (as good on every objective, better on one)."""
    signs = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in directions])
    losses = np.array([t.values for t in trials], dtype=float) * signs
    return [
        trial
        for trial, loss in zip(trials, losses, strict=True)
        if not np.any(np.all(losses <= loss, axis=1) & np.any(losses < loss, axis=1))
    ]


def no_best_reason(study: optuna.Study) -> str | None:
    """Why the study has no best trial, in a sentence; None when it has one."""
    if best_trials(study):
        return None
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        failed = sum(1 for t in trials if t.state == TrialState.FAIL)
        return "no trial is eligible to be the best: none completed" + (
            f" ({failed} failed: see their errors)" if failed else ""
        )
    aside = [t for t in complete if set_aside_reason(t) is not None]
    reasons = []
    if aside:
        most = max(aside, key=lambda t: (closed_trades(t.user_attrs.get("statistics") or {}), -t.number))
        who = (
            "the only complete trial"
            if len(complete) == 1
            else f"all {len(complete)} complete trials"
            if len(aside) == len(complete)
            else f"{len(aside)} of {len(complete)} complete trials"
        )
        reasons.append(
            f"{who} closed fewer trades than the minimum of {min_trades_of(study)} (the most: "
            f"{closed_trades(most.user_attrs.get('statistics') or {})}, trial {most.number})"
        )
    unscored = len(complete) - len(aside)
    if unscored:
        reasons.append(
            f"{unscored} {'trial' if unscored == 1 else 'trials'} lacked the objective's figure or opened no position"
        )
    return "no trial is eligible to be the best: " + "; ".join(reasons)


def best_text(study: optuna.Study) -> str:
    best = best_trials(study)
    if not best:
        return "-"
    if len(study.directions) == 1:
        value = best[0].value
        return f"{value:.4f} (#{best[0].number})" if value is not None else "-"
    return f"Pareto front of {len(best)}"
