"""Armed HTTP faults and the log of every request the emulator received."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

FaultKind = Literal["error", "delay", "malformed"]


def endpoint_matches(pattern: str, method: str, path: str) -> bool:
    """Tell whether "METHOD /path" matches a pattern like "POST /v2/orders" or "GET /v2/orders/*".

    A pattern that starts with "/" matches any method; "*" alone matches everything.
    """
    if pattern.startswith("/"):
        pattern = "* " + pattern
    elif " " not in pattern:
        # A bare "*" (or a bare method) applies to every path.
        pattern = pattern + " *"
    return fnmatchcase(f"{method.upper()} {path}", pattern)


@dataclass
class HttpFault:
    """One armed fault: applies to the next `remaining` requests that match `pattern`."""

    kind: FaultKind
    pattern: str
    remaining: int
    status: int = 0
    body: str | None = None
    content_type: str = "application/json"
    after_processing: bool = False
    seconds: float = 0.0
    drop_fields: tuple[str, ...] = ()


class FaultBook:
    """Thread-safe FIFO of armed HTTP faults; each matching request consumes one use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[HttpFault] = []

    def arm(self, fault: HttpFault) -> None:
        """Add a fault; earlier armed faults take precedence for the same request."""
        if fault.remaining < 1:
            raise ValueError("a fault must apply to at least one request")
        with self._lock:
            self._faults.append(fault)

    def take(self, method: str, path: str) -> HttpFault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and endpoint_matches(fault.pattern, method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Disarm every pending fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        """Return how many uses of armed faults are left."""
        with self._lock:
            return sum(f.remaining for f in self._faults)


@dataclass
class RecordedRequest:
    """A request as the emulator received it, with the status it answered (None while in flight)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None = None
    fault: FaultKind | None = None
    headers: dict[str, str] = field(default_factory=dict)


class RequestLog:
    """Thread-safe, append-only log of received requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []

    def add(self, entry: RecordedRequest) -> None:
        """Append a request."""
        with self._lock:
            self._entries.append(entry)

    def select(self, pattern: str = "*") -> list[RecordedRequest]:
        """Return the requests whose "METHOD /path" matches `pattern`, oldest first."""
        with self._lock:
            return [e for e in self._entries if endpoint_matches(pattern, e.method, e.path)]
