"""Apply a drawn fault to one aiohttp request: errors, late or lost answers, dropped sockets.

Shared by the Alpaca and perp-venue emulators. A late answer is held until the client gives
up (it closes the connection when its timeout fires) or a bounded maximum passes: no fixed
sleep, so a run is as fast as the client's own timeout allows.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._fault_plan import BEFORE_PROCESSING, Draw, Fault, FaultPlan, FiredFault

_POLL_S = 0.01

Processor = Callable[[], Awaitable[web.StreamResponse]]
ErrorFactory = Callable[[int], web.StreamResponse]


@dataclass(frozen=True)
class CallEvent:
    """A call reaching an emulator, shown to the test's hooks before and after processing."""

    kind: str
    n: int
    phase: str  # "before" or "after" processing
    method: str
    path: str
    body: Any
    client_order_id: str | None = None
    fault: Fault | None = None


# A hook sees each call twice (before and after processing); returning True before processing
# abandons the request: the socket is closed and the request never reaches the book.
CallHook = Callable[[CallEvent], bool]


@dataclass
class CallControl:
    """What an emulator's middleware needs to apply seeded faults and call hooks."""

    plan: FaultPlan
    closing: threading.Event = field(default_factory=threading.Event)
    hooks: list[CallHook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_hooks(self, event: CallEvent) -> bool:
        with self.lock:
            hooks = list(self.hooks)
        abandon = False
        for hook in hooks:
            abandon = hook(event) or abandon
        return abandon


async def hold_until_gone(request: web.Request, seconds: float, closing: threading.Event) -> bool:
    """Wait until the client closes the connection (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not closing.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return True
        await asyncio.sleep(_POLL_S)
    transport = request.transport
    return transport is None or transport.is_closing()


def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket with no HTTP response (the returned response is never sent)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)


async def run_with_fault(
    request: web.Request,
    control: CallControl,
    draw: Draw | None,
    event: CallEvent,
    process: Processor,
    error: ErrorFactory,
) -> web.StreamResponse:
    """Run ``process`` for one request under its drawn HTTP fault and the test's hooks."""
    fault = draw.fault if draw is not None else None
    if control.run_hooks(event):
        return drop_connection(request)
    if draw is not None and fault is not None and fault in BEFORE_PROCESSING:
        control.plan.record(FiredFault(draw.kind, draw.n, fault, event.client_order_id))
        if fault is Fault.ERROR_BEFORE:
            return error(draw.status)
        if fault is Fault.DROP_BEFORE:
            return drop_connection(request)
        # LATE_BEFORE: the request reaches the book late, whether the client still waits or not.
        await hold_until_gone(request, draw.hold_seconds, control.closing)
    response = await process()
    after = CallEvent(**{**event.__dict__, "phase": "after"})
    control.run_hooks(after)
    if draw is None or fault is None or fault in BEFORE_PROCESSING:
        return response
    if fault in (Fault.ERROR_AFTER, Fault.DROP_AFTER, Fault.LATE_AFTER, Fault.LOST_RESPONSE):
        control.plan.record(FiredFault(draw.kind, draw.n, fault, event.client_order_id))
    if fault is Fault.ERROR_AFTER:
        return error(draw.status)
    if fault is Fault.DROP_AFTER:
        return drop_connection(request)
    if fault is Fault.LATE_AFTER:
        await hold_until_gone(request, draw.hold_seconds, control.closing)
        return response
    if fault is Fault.LOST_RESPONSE:
        await hold_until_gone(request, draw.hold_seconds, control.closing)
        return drop_connection(request)
    return response
