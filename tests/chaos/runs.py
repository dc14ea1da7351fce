"""What both campaigns share: the worker process they kill and restart, the kill plan drawn
from a run's seed, the run's narrative, and how violations and results are reported."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emulators._http_faults import CallEvent

# A process that does not read the clock (or answer) for this long is stuck: the run stops.
STALL_SECONDS = 60.0
# A process that dies on its own this often in one run is in a crash loop: the run stops.
MAX_CRASHES = 6
INTERRUPT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Violation:
    """An invariant a run broke, and what the campaign saw."""

    invariant: str
    saw: str


@dataclass(frozen=True)
class ProcessExit:
    """How one worker process ended."""

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
                command=self.command,
                returncode=int(process.returncode),
                killed=self._killed,
                traceback="Traceback (most recent call last)" in stderr,
                stderr_path=self._stderr,
            )
            self.exits.append(ended)
        self.narrative.add(f"exit pid {process.pid}: rc={ended.returncode} killed={ended.killed}")
        return ended

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
    _after: dict[tuple[str, int], KillTrigger] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_call(self, event: CallEvent, side: str | None) -> bool:
        """Count a call; kill if a trigger matches. True: abandon the request (killed before)."""
        with self._lock:
            if not self.armed:
                return False
            if event.phase == "after":
                trigger = self._after.pop((event.kind, event.n), None)
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
                            self._after[(event.kind, event.n)] = trigger
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
