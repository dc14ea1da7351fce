"""Prove where a test's code tries to connect: nothing may leave this machine.

``network_guard()`` records every name lookup and connection the process attempts (in any
thread: the audit events ``socket.getaddrinfo``, ``socket.gethostbyname`` and
``socket.connect`` are raised by CPython's socket module itself, under every library) and
refuses with ``ConnectionRefusedError`` each one that is not this machine (loopback,
``localhost``, a Unix socket). A test then asserts on ``guard.attempts``: e.g. that a broker
refused without the live flag attempted nothing at all, or that a venue's default
environment only ever asked for its testnet host::

    with network_guard() as guard:
        result = CliRunner().invoke(cli, ["reconcile", "--broker", "ccxt-bybit"])
    assert guard.outside() == []
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from tradekit.broker.live import is_this_machine

_EVENTS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.connect")


@attrs.frozen
class ConnectionAttempt:
    """One lookup or connection: the audit event, the host and port asked for, and whether it left."""

    event: str
    host: str
    port: int | None
    outside: bool


@attrs.define
class NetworkGuard:
    attempts: list[ConnectionAttempt] = attrs.field(factory=list)

    def outside(self) -> list[ConnectionAttempt]:
        """The attempts to reach anything but this machine (each was refused)."""
        return [a for a in self.attempts if a.outside]

    def hosts(self) -> set[str]:
        """Every host name or address asked for, this machine's included."""
        return {a.host for a in self.attempts}


_lock = threading.Lock()
_active: list[NetworkGuard] = []
_installed = False


def _destination(event: str, args: tuple[Any, ...]) -> tuple[str, int | None] | None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address:
            return str(address[0]), int(address[1]) if len(address) > 1 else None
        return None  # a Unix socket path
    host = args[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None:
        return None
    port = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    return str(host), port


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _active or event not in _EVENTS:
        return
    destination = _destination(event, args)
    if destination is None:
        return
    host, port = destination
    name = host.rstrip(".").lower()
    outside = not (is_this_machine(name) or name in ("", "0.0.0.0", "::"))
    attempt = ConnectionAttempt(event=event, host=name, port=port, outside=outside)
    with _lock:
        for guard in _active:
            guard.attempts.append(attempt)
    if outside:
        raise ConnectionRefusedError(f"network guard: {host}:{port} is not on this machine; nothing may leave it")


@contextmanager
def network_guard() -> Iterator[NetworkGuard]:
    """Record every connection attempt while the block runs, refusing those that leave this machine."""
    global _installed
    with _lock:
        if not _installed:
            # Audit hooks cannot be removed; this one does nothing while no guard is active.
            sys.addaudithook(_hook)
            _installed = True
        guard = NetworkGuard()
        _active.append(guard)
    try:
        yield guard
    finally:
        with _lock:
            _active.remove(guard)
