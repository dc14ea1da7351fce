"""Worker processes sharing one study in PostgreSQL: every queued trial run exactly once, the
same figures as one process, and a killed worker's trial run again rather than left RUNNING."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tradekit.optimize import worker
from tradekit.optimize.problem import Problem, prepare
from tradekit.optimize.study import (
    MEMORY,
    StorageOptions,
    Worker,
    best_trials,
    create_or_join,
    load,
    open_storage,
    opened,
)

from .conftest import PG_URL, require_postgres
from .optimize_kit import GATE_ENV, HOLD_ENV, Gated, kit_plugins

pytestmark = pytest.mark.postgres

TESTS_DIR = Path(__file__).resolve().parents[1]
KIT_WORKER = (sys.executable, "-m", "core_tests.optimize_kit")
GRID = Problem(
    strategy=Gated.name, symbols=("AAPL",), start="2004-10-01", end="2004-12-31", sampler="grid"
)  # strategy.fast: 5, 10, 15, 20
WAIT_LIMIT = 120.0


@pytest.fixture
def pg_storage() -> Iterator[str]:
    """A fresh database of its own for the study, dropped afterwards."""
    require_postgres()
    name = f"tk_optimize_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "TRADEKIT_LOG_LEVEL": "WARNING", **extra}


def _results(url: str, study: str) -> dict[int, float]:
    """strategy.fast -> objective value, of the complete trials (each grid point once, or KeyError)."""
    with opened(StorageOptions(url=url, heartbeat=None)) as storage:
        trials = load(storage, study).get_trials()
    found: dict[int, float] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            fast = t.params["strategy.fast"]
            assert fast not in found, f"grid point fast={fast} ran twice"
            assert t.value is not None
            found[fast] = t.value
    return found


def _single_process_results() -> dict[int, float]:
    prepared = prepare(GRID, kit_plugins())
    options = StorageOptions(url=MEMORY)
    storage = open_storage(options)
    create_or_join(storage, "alone", prepared, 4)
    Worker(storage=storage, study="alone", prepared=prepared, options=options).run()
    found: dict[int, float] = {}
    for t in load(storage, "alone").get_trials():
        assert t.value is not None
        found[t.params["strategy.fast"]] = t.value
    return found


@contextlib.contextmanager
def _spawned(options: StorageOptions, study: str, env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two worker processes; whatever the test's outcome, none outlives it (killed and reaped)."""
    processes = worker.spawn(options, study, 2, program=KIT_WORKER, env=env)
    try:
        yield processes
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=WAIT_LIMIT)


def _wait_for(path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """Wait (bounded) until a worker creates ``path``; fail at once if every worker has ended."""
    pause = threading.Event()
    deadline = time.monotonic() + WAIT_LIMIT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        assert any(p.poll() is None for p in processes), "the workers ended before one was held"
        pause.wait(0.02)


def test_two_worker_processes_run_each_grid_point_once_with_one_process_figures(pg_storage: str) -> None:
    options = StorageOptions(url=pg_storage, heartbeat=1)
    prepared = prepare(GRID, kit_plugins())
    with opened(options) as storage:
        _, created = create_or_join(storage, "shared", prepared, 4)
    assert created

    with _spawned(options, "shared", _env()) as processes:
        codes = [p.wait(timeout=WAIT_LIMIT) for p in processes]

    assert codes == [0, 0]
    with opened(options) as storage:
        states = [t.state for t in load(storage, "shared").get_trials()]
    assert states == [TrialState.COMPLETE] * 4
    assert _results(pg_storage, "shared") == _single_process_results()


def test_a_killed_workers_trial_is_run_again_and_the_study_finishes(pg_storage: str, tmp_path: Path) -> None:
    options = StorageOptions(url=pg_storage, heartbeat=1, grace=2)
    prepared = prepare(GRID, kit_plugins())
    with opened(options) as storage:
        create_or_join(storage, "killed", prepared, 4)
    gate = tmp_path / "gate"
    gate.mkdir()

    with _spawned(options, "killed", _env(**{GATE_ENV: str(gate), HOLD_ENV: "10"})) as processes:
        _wait_for(gate / "held", processes)
        held_pid = int((gate / "held").read_text())
        held = next(p for p in processes if p.pid == held_pid)
        os.kill(held_pid, signal.SIGKILL)
        assert held.wait(timeout=WAIT_LIMIT) == -signal.SIGKILL
        survivor = next(p for p in processes if p is not held)
        assert survivor.wait(timeout=WAIT_LIMIT) == 0

    with opened(options) as storage:
        trials = load(storage, "killed").get_trials()
    by_state: dict[TrialState, list[Any]] = {}
    for t in trials:
        by_state.setdefault(t.state, []).append(t)
    assert set(by_state) == {TrialState.COMPLETE, TrialState.FAIL}  # nothing RUNNING or WAITING
    (dead,) = by_state[TrialState.FAIL]
    assert dead.params == {"strategy.fast": 10}
    (again,) = [t for t in by_state[TrialState.COMPLETE] if t.system_attrs.get("failed_trial") == dead.number]
    assert again.params == dead.params
    assert sorted(_results(pg_storage, "killed")) == [5, 10, 15, 20]


def test_workers_on_another_machine_set_aside_trials_below_the_studys_minimum(pg_storage: str) -> None:
    # The minimum travels in the stored problem: the worker processes are given only the study.
    options = StorageOptions(url=pg_storage, heartbeat=1)
    prepared = prepare(attrs.evolve(GRID, min_trades=5), kit_plugins())
    with opened(options) as storage:
        create_or_join(storage, "careful", prepared, 4)

    with _spawned(options, "careful", _env()) as processes:
        codes = [p.wait(timeout=WAIT_LIMIT) for p in processes]

    assert codes == [0, 0]
    with opened(options) as storage:
        study = load(storage, "careful")
        set_aside = {t.params["strategy.fast"]: t.user_attrs.get("set_aside") for t in study.get_trials()}
        best = best_trials(study)
    assert set_aside == {
        5: None,
        10: "3 closed trades, below the minimum of 5",
        15: "1 closed trade, below the minimum of 5",
        20: "1 closed trade, below the minimum of 5",
    }
    assert [t.params["strategy.fast"] for t in best] == [5]
