"""What both campaigns share: the worker process they kill and restart, the timeline its clock
reads move along, the kill plan drawn from a run's seed, the run's narrative, where its ledger
lives, and how violations and results are reported."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import sqlalchemy as sa

from emulators._fault_plan import Fault
from emulators._http_faults import CallEvent

# A process that does not read the clock (or answer) for this long is stuck: the run stops.
# Generous: on a loaded 2-core machine (a campaign at nice 19 beside a test suite) a trader's
# start-up alone took over 60 s, and a 60 s limit reported those starved runs as stalls.
STALL_SECONDS = 180.0
# A process that dies on its own this often in one run is in a crash loop: the run stops.
MAX_CRASHES = 6
INTERRUPT_TIMEOUT_S = 30.0

M = TypeVar("M")

# HTTP faults per call, by what the call does: order submissions and the lookups that settle
# them are hit hardest.
HTTP_RATES: dict[Fault, float] = {
    Fault.ERROR_BEFORE: 0.02,
    Fault.ERROR_AFTER: 0.02,
    Fault.LATE_BEFORE: 0.01,
    Fault.LATE_AFTER: 0.01,
    Fault.DROP_BEFORE: 0.01,
    Fault.DROP_AFTER: 0.01,
    Fault.LOST_RESPONSE: 0.01,
}
ORDER_HTTP_RATES: dict[Fault, float] = {
    Fault.ERROR_BEFORE: 0.04,
    Fault.ERROR_AFTER: 0.05,
    Fault.LATE_BEFORE: 0.04,
    Fault.LATE_AFTER: 0.05,
    Fault.DROP_BEFORE: 0.03,
    Fault.DROP_AFTER: 0.05,
    Fault.LOST_RESPONSE: 0.04,
}
LOOKUP_RATES: dict[Fault, float] = {fault: rate * 3 for fault, rate in HTTP_RATES.items()}


@dataclass(frozen=True)
class Violation:
    """An invariant a run broke, and what the campaign saw."""

    invariant: str
    saw: str


@dataclass(frozen=True)
class ProcessExit:
    """How one worker process ended."""

    label: str
    command: str
    returncode: int
    killed: bool  # by the campaign's SIGKILL
    traceback: bool
    stderr_path: Path

    def clean(self) -> bool:
        """Tell whether it ended as it may: exit 0, or the campaign's kill; never a traceback."""
        if self.traceback:
            return False
        return self.returncode == 0 or (self.killed and self.returncode == -signal.SIGKILL)


@dataclass
class RunResult:
    """One run's outcome: its seed, time, violations, faults, kills and process exits."""

    seed: int
    seconds: float
    violations: list[Violation]
    faults: list[str]
    kills: list[str]
    exits: list[ProcessExit]
    replay: str
    narrative_path: Path
    course: str = ""  # what the trader did, in a line (entries, exits)


class Narrative:
    """The run's story, one line per moment, call, fault, kill and exit (written to a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._start = time.monotonic()

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(f"{time.monotonic() - self._start:8.3f} {line}")

    def flush(self) -> None:
        with self._lock:
            self.path.write_text("\n".join(self._lines) + "\n")

    def tail(self, count: int) -> list[str]:
        with self._lock:
            return self._lines[-count:]


def let_sigint_through() -> None:
    """Make the user's Ctrl-C the campaign sends reach the processes it starts.

    A campaign started in the background by a non-interactive shell (``... &`` in a script)
    inherits SIGINT ignored, and so would every trader it starts: each ``interrupt()`` would
    then end in the 30 s kill, and a run would take minutes instead of seconds. Python's own
    handler is restored instead (a handled signal reverts to its default action in the
    programs the campaign starts). Only the main thread may set a handler: elsewhere this
    does nothing.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Worker:
    """A command run as a subprocess, started again with the same command after each exit."""

    def __init__(
        self, label: str, argv: Sequence[str], env: Mapping[str, str], workdir: Path, narrative: Narrative
    ) -> None:
        self.label = label
        self.argv = list(argv)
        self.env = dict(env)
        self.workdir = workdir
        self.narrative = narrative
        self.exits: list[ProcessExit] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._killed = False
        self._starts = 0
        self._stderr: Path | None = None

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def start(self) -> None:
        with self._lock:
            self._starts += 1
            self._stderr = self.workdir / f"{self.label}-{self._starts}.stderr"
            out = self.workdir / f"{self.label}-{self._starts}.stdout"
            with self._stderr.open("wb") as err, out.open("wb") as stdout:
                self._process = subprocess.Popen(
                    self.argv, env=self.env, cwd=self.workdir, stdout=stdout, stderr=err, stdin=subprocess.DEVNULL
                )
            self._killed = False
            self.narrative.add(f"start {self.label} {self._starts} (pid {self._process.pid}): {self.command}")

    def kill(self, why: str) -> bool:
        """SIGKILL the running process (from any thread); False if none is running."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None or self._killed:
                return False
            self._killed = True
            os.kill(process.pid, signal.SIGKILL)
        self.narrative.add(f"KILL pid {process.pid}: {why}")
        return True

    def interrupt(self) -> ProcessExit | None:
        """Stop the running process as a user would (Ctrl-C) and wait for it to exit."""
        with self._lock:
            process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(INTERRUPT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill("did not stop within 30 s of SIGINT")
                process.wait()
        return self.reap()

    def reap(self) -> ProcessExit | None:
        """Record the process's exit if it ended (None while it runs)."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is None:
                return None
            self._process = None
            assert self._stderr is not None
            stderr = self._stderr.read_text(errors="replace")
            ended = ProcessExit(
                label=self.label,
                command=self.command,
                returncode=int(process.returncode),
                killed=self._killed,
                traceback="Traceback (most recent call last)" in stderr,
                stderr_path=self._stderr,
            )
            self.exits.append(ended)
        self.narrative.add(f"exit pid {process.pid}: rc={ended.returncode} killed={ended.killed}")
        return ended

    def close(self) -> None:
        """Kill the running process, if any, and wait for it: a run that failed midway (an
        assertion, a test's timeout) leaves no process behind, nor a ``Popen`` that warns
        when collected."""
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            self.kill("the run ended before its process did")
            process.wait()

    def run_to_end(self, timeout: float) -> ProcessExit:
        """Run the command once to its end (a one-shot command such as reconcile)."""
        self.start()
        with self._lock:
            process = self._process
        assert process is not None
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(f"did not finish within {timeout} s")
            process.wait()
        ended = self.reap()
        assert ended is not None
        return ended


@dataclass(frozen=True)
class KillTrigger:
    """Kill the trader when the n-th matching call arrives (before) or was processed (after).

    ``target`` is "buy" or "sell" (the n-th order POST of that side) or "request" (the n-th
    call of any kind: a random moment).
    """

    target: str
    n: int
    phase: str

    def describe(self) -> str:
        what = f"{self.target} order POST" if self.target != "request" else "request"
        return f"{what} #{self.n} {self.phase} processing"


def draw_kills(seed: int, *, buys: int, sells: int, requests: int) -> list[KillTrigger]:
    """Draw 0-3 kills from the run's seed: some on an order POST in flight, some at random."""
    rng = random.Random(f"{seed}/kills")
    triggers: list[KillTrigger] = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
        target = rng.choice(("buy", "buy", "sell", "request", "request"))
        limit = {"buy": buys, "sell": sells, "request": requests}[target]
        triggers.append(KillTrigger(target, rng.randint(1, max(1, limit)), rng.choice(("before", "after"))))
    return triggers


@dataclass
class KillSwitch:
    """Fires the kill triggers from a call hook: counts calls and order POSTs by side."""

    worker: Worker
    triggers: list[KillTrigger]
    order_kinds: frozenset[str]
    fired: list[str] = field(default_factory=list)
    armed: bool = True
    _counts: dict[str, int] = field(default_factory=dict)
    # Keyed by call kind, number and path: two venues' n-th calls of a kind are two calls.
    _after: dict[tuple[str, int, str], KillTrigger] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_call(self, event: CallEvent, side: str | None) -> bool:
        """Count a call; kill if a trigger matches. True: abandon the request (killed before)."""
        with self._lock:
            if not self.armed:
                return False
            if event.phase == "after":
                trigger = self._after.pop((event.kind, event.n, event.path), None)
                if trigger is not None:
                    self._fire(trigger, event)
                return False
            targets = ["request"]
            if event.kind in self.order_kinds and side is not None:
                targets.append(side)
            hit: KillTrigger | None = None
            for target in targets:
                self._counts[target] = self._counts.get(target, 0) + 1
                for trigger in self.triggers:
                    if trigger.target == target and trigger.n == self._counts[target]:
                        if trigger.phase == "before":
                            hit = trigger
                        else:
                            self._after[(event.kind, event.n, event.path)] = trigger
            if hit is not None:
                self._fire(hit, event)
                return True
            return False

    def _fire(self, trigger: KillTrigger, event: CallEvent) -> None:
        coid = f" coid={event.client_order_id}" if event.client_order_id else ""
        why = f"{trigger.describe()} ({event.kind}#{event.n}{coid})"
        if self.worker.kill(why):
            self.fired.append(why)

    def disarm(self) -> None:
        with self._lock:
            self.armed = False


def base_env() -> dict[str, str]:
    """The environment every worker starts from: this one's basics, nothing of tradekit's."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")}
    return {**keep, "PYTHONUNBUFFERED": "1"}


class Timeline(Generic[M]):
    """Moves the world to the run's next moment each time the worker reads the clock.

    ``enter`` puts the emulators at a moment (their simulated time, and whatever else the
    moment holds) and returns how the narrative names it. Once every moment was entered, the
    next clock read sets ``done``.
    """

    def __init__(self, enter: Callable[[M], str], narrative: Narrative) -> None:
        self._enter = enter
        self._narrative = narrative
        self._lock = threading.Lock()
        self._pending: list[M] = []
        self.done = threading.Event()
        self.last_tick = time.monotonic()

    def load(self, moments: Sequence[M]) -> None:
        with self._lock:
            self._pending = list(moments)
            self.done.clear()
            self.last_tick = time.monotonic()

    def tick(self) -> None:
        with self._lock:
            self.last_tick = time.monotonic()
            if not self._pending:
                self.done.set()
                return
            moment = self._pending.pop(0)
            # Entered under the lock: two clock reads at once never enter moments out of order.
            label = self._enter(moment)
        self._narrative.add(f"MOMENT {label}")


def supervise(worker: Worker, timeline: Timeline[M], narrative: Narrative) -> list[Violation]:
    """Keep the worker running (restarting it after each exit) until the timeline is done."""
    crashes = 0
    while not timeline.done.wait(0.05):
        ended = worker.reap()
        if ended is not None:
            if not ended.killed:
                crashes += 1
            if crashes >= MAX_CRASHES:
                why = f"the {worker.label} died {crashes} times on its own; last: {ended}"
                return [Violation("no_crash_loop", why)]
            worker.start()
        elif time.monotonic() - timeline.last_tick > STALL_SECONDS:
            tail = "\n    ".join(narrative.tail(15))
            return [Violation("no_stall", f"no clock read for {STALL_SECONDS:.0f} s; last lines:\n    {tail}")]
    return []


def stop(worker: Worker) -> None:
    """Stop the worker as a user would, or record its exit if it already ended."""
    if worker.interrupt() is None:
        worker.reap()


def exit_violations(exits: Sequence[ProcessExit]) -> list[Violation]:
    """Every process exit that was neither 0 nor the campaign's kill, or printed a traceback."""
    return [
        Violation(
            "clean_exit",
            f"{e.label} exited rc={e.returncode} killed={e.killed} traceback={e.traceback} (stderr: {e.stderr_path})",
        )
        for e in exits
        if not e.clean()
    ]


@dataclass(frozen=True)
class Backend:
    """Where a run's ledger lives: a SQLite file, or a schema of a PostgreSQL database."""

    name: str  # "sqlite" or "postgres"
    pg_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

    def schema(self, seed: int, prefix: str) -> str | None:
        """The run's own PostgreSQL schema (None on SQLite)."""
        return f"{prefix}_{seed}" if self.name == "postgres" else None

    def prepare(self, workdir: Path, schema: str | None) -> str:
        """Return the URL the run's processes open its ledger at (a fresh schema on PostgreSQL)."""
        if schema is None:
            return f"sqlite:///{workdir / 'ledger.db'}"
        engine = sa.create_engine(self.pg_url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        finally:
            engine.dispose()
        return f"{self.pg_url}?options=-csearch_path%3D{schema}"

    def drop(self, schema: str | None) -> None:
        """Drop the run's PostgreSQL schema once it was checked."""
        if schema is None:
            return
        engine = sa.create_engine(self.pg_url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            engine.dispose()


def reader_url(ledger_url: str) -> str:
    """The ledger URL without its search-path option (the campaign's direct reads set their own)."""
    return ledger_url.split("?", 1)[0]
