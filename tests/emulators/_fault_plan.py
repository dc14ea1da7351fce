"""Seeded fault plans shared by the emulators: which fault hits the n-th call of each kind.

A plan is a pure function of (seed, call kind, n): the n-th order submission of a run gets
the same fault whatever the thread interleaving, so a run's schedule replays exactly from
its seed. Every fault that fires is logged with its call kind, its n and the client order id
it touched, so a run can print its schedule and the command that replays it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """What can go wrong with one call (or one trade update)."""

    # HTTP faults, any call kind.
    ERROR_BEFORE = "error_before"  # a 5xx, the request is not processed
    ERROR_AFTER = "error_after"  # the request is processed, then a 5xx
    LATE_BEFORE = "late_before"  # held (until the client gives up, at most a bound), then processed
    LATE_AFTER = "late_after"  # processed, the answer held (until the client gives up, at most a bound)
    DROP_BEFORE = "drop_before"  # the socket closed with no HTTP response, the request not processed
    DROP_AFTER = "drop_after"  # processed, then the socket closed with no HTTP response
    LOST_RESPONSE = "lost_response"  # processed, never answered: silence until the client gives up
    # Order faults, order submissions only: the POST is answered normally.
    LATE_FILL = "late_fill"  # a marketable order fills only later (clock advance or N further requests)
    PARTIAL_FILL = "partial_fill"  # part of it fills now, the rest later
    # Stream faults, drawn per trade update (or per websocket message of a venue).
    DUPLICATE_UPDATE = "duplicate_update"  # delivered twice
    REORDERED_UPDATE = "reordered_update"  # delivered after the next update
    LOST_UPDATE = "lost_update"  # never delivered
    STREAM_DROP = "stream_drop"  # every stream connection cut (the update is lost with it)


HTTP_FAULTS = frozenset(
    {
        Fault.ERROR_BEFORE,
        Fault.ERROR_AFTER,
        Fault.LATE_BEFORE,
        Fault.LATE_AFTER,
        Fault.DROP_BEFORE,
        Fault.DROP_AFTER,
        Fault.LOST_RESPONSE,
    }
)
ORDER_FAULTS = frozenset({Fault.LATE_FILL, Fault.PARTIAL_FILL})
STREAM_FAULTS = frozenset({Fault.DUPLICATE_UPDATE, Fault.REORDERED_UPDATE, Fault.LOST_UPDATE, Fault.STREAM_DROP})
# Faults that fire before the request is processed: the request never reaches the book.
BEFORE_PROCESSING = frozenset({Fault.ERROR_BEFORE, Fault.LATE_BEFORE, Fault.DROP_BEFORE})

FaultRates = Mapping[str, Mapping[Fault, float]]


@dataclass(frozen=True)
class Draw:
    """The fault (or None) drawn for the n-th call of a kind, with its parameters."""

    kind: str
    n: int
    fault: Fault | None
    # How long a late answer may be held at most, in seconds (a late answer to a client still
    # waiting is sent then); how many further requests a late fill waits for.
    hold_seconds: float = 0.0
    after_requests: int = 0
    # The share of an order a partial fill executes now; the status of an injected 5xx.
    fraction: float = 0.0
    status: int = 500


@dataclass(frozen=True)
class FiredFault:
    """A fault that hit a call: which call, which fault, and the order it touched if any."""

    kind: str
    n: int
    fault: Fault
    client_order_id: str | None = None
    detail: str = ""

    def one_line(self) -> str:
        """Describe the fault on one line: ``submit_order#3 late_fill coid=... (detail)``."""
        text = f"{self.kind}#{self.n} {self.fault.value}"
        if self.client_order_id:
            text += f" coid={self.client_order_id}"
        if self.detail:
            text += f" ({self.detail})"
        return text


def _check_rates(rates: FaultRates, kinds: Iterable[str] | None) -> dict[str, dict[Fault, float]]:
    known = None if kinds is None else frozenset(kinds)
    checked: dict[str, dict[Fault, float]] = {}
    for kind, per_fault in rates.items():
        if known is not None and kind not in known:
            raise ValueError(f"unknown call kind {kind!r}; known: {', '.join(sorted(known))}")
        total = 0.0
        for fault, rate in per_fault.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate of {fault.value} on {kind} must be within 0..1, got {rate}")
            total += rate
        if total > 1.0:
            raise ValueError(f"rates on {kind} add up to {total:.3f}, more than 1")
        checked[kind] = {Fault(f): r for f, r in per_fault.items() if r > 0}
    return checked


class FaultPlan:
    """Faults drawn per (seed, call kind, n-th call of that kind), with a log of those that fired.

    ``rates`` maps a call kind to each fault's probability per call. A drawn fault only counts
    as fired once the emulator applied it (``record``): the log is the run's schedule.
    ``stop()`` ends the faults (the campaign's clean finish); draws then return no fault but the
    counters keep counting.
    """

    def __init__(
        self,
        seed: int,
        rates: FaultRates,
        *,
        kinds: Iterable[str] | None = None,
        max_hold_seconds: float = 5.0,
        late_fill_requests: tuple[int, int] = (1, 12),
    ) -> None:
        if max_hold_seconds <= 0:
            raise ValueError("max_hold_seconds must be positive")
        low, high = late_fill_requests
        if not 1 <= low <= high:
            raise ValueError(f"late_fill_requests must be 1 <= low <= high, got {late_fill_requests}")
        self.seed = seed
        self.rates = _check_rates(rates, kinds)
        self.max_hold_seconds = max_hold_seconds
        self.late_fill_requests = late_fill_requests
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._fired: list[FiredFault] = []
        self._stopped = False

    def draw(self, kind: str) -> Draw:
        """Count one call of ``kind`` and return what the plan says happens to it."""
        with self._lock:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            stopped = self._stopped
        per_fault = self.rates.get(kind)
        if stopped or not per_fault:
            return Draw(kind, n, None)
        rng = random.Random(f"{self.seed}/{kind}/{n}")
        roll = rng.random()
        chosen: Fault | None = None
        cumulative = 0.0
        for fault in sorted(per_fault):  # sorted: the draw must not depend on dict order
            cumulative += per_fault[fault]
            if roll < cumulative:
                chosen = fault
                break
        low, high = self.late_fill_requests
        return Draw(
            kind,
            n,
            chosen,
            hold_seconds=self.max_hold_seconds,
            after_requests=rng.randint(low, high),
            fraction=rng.choice((0.25, 0.5, 0.75)),
            status=rng.choice((500, 502, 503, 504)),
        )

    def record(self, fired: FiredFault) -> None:
        """Log a fault the emulator applied."""
        with self._lock:
            self._fired.append(fired)

    def stop(self) -> None:
        """Draw no more faults from now on (faults already in effect run their course)."""
        with self._lock:
            self._stopped = True

    @property
    def stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def fired(self) -> list[FiredFault]:
        """Return the faults that fired so far, in the order they fired."""
        with self._lock:
            return list(self._fired)

    def calls(self) -> dict[str, int]:
        """Return how many calls of each kind were counted so far."""
        with self._lock:
            return dict(self._counts)

    def schedule(self) -> list[str]:
        """Return the fired faults, one line each, in the order they fired."""
        return [f.one_line() for f in self.fired()]
