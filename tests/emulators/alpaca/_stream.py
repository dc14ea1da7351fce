"""The trading websocket (wss://…/stream) and its trade_updates delivery, with stream faults.

Protocol, as alpaca-py's TradingStream speaks it: the client sends
{"action": "authenticate", "data": {"key_id", "secret_key"}} and gets
{"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}};
then {"action": "listen", "data": {"streams": ["trade_updates"]}} is acknowledged with
{"stream": "listening", "data": {"streams": ["trade_updates"]}}. Updates arrive as
{"stream": "trade_updates", "data": {...}}. Like Alpaca's trading stream, every server
message is JSON in a binary frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from .._fault_plan import STREAM_FAULTS, Fault, FaultPlan, FiredFault

# Queue markers telling a connection's writer to close cleanly or to cut the TCP connection.
_CLOSE: Final = b"\x00close"
_ABORT: Final = b"\x00abort"


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    authenticated: bool = False
    listening: bool = False

    def send(self, frame: bytes) -> None:
        """Queue a frame for this connection's writer; safe from any thread."""
        with contextlib.suppress(RuntimeError):
            # The server loop is already closed when the emulator is shutting down.
            self.loop.call_soon_threadsafe(self.queue.put_nowait, frame)


def _frame(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


class StreamHub:
    """Websocket connections plus the delivery rules armed by the test."""

    def __init__(self, api_key: str, secret_key: str) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._generated: list[dict[str, Any]] = []
        self._undelivered: list[dict[str, Any]] = []
        self._paused = False
        self._duplicate_remaining = 0
        self._duplicate_events: frozenset[str] = frozenset()
        self._reorder_count = 0
        self._held: list[dict[str, Any]] = []
        self.connections_accepted = 0
        self.refuse_logins = False
        # The seeded fault plan drawing per trade update ("trade_update"), and an update it
        # holds back to deliver after the next one.
        self.plan: FaultPlan | None = None
        self._reordered: dict[str, Any] | None = None

    # ------------------------------------------------------------------ event delivery

    def publish(self, update: dict[str, Any]) -> None:
        """Deliver a trade update to every listening connection, applying armed stream faults
        and the fault the seeded plan draws for it (a reordered update goes out right after
        the next one; if none follows it is never delivered)."""
        with self._lock:
            self._generated.append(update)
            if self._paused:
                self._undelivered.append(update)
                return
            batch = self._planned(update)
            if not batch:
                return
            if self._duplicate_remaining > 0 and update.get("event") in self._duplicate_events:
                self._duplicate_remaining -= 1
                batch.insert(1, update)
            if self._reorder_count > 0:
                self._held.extend(batch)
                if len(self._held) < self._reorder_count:
                    return
                batch = list(reversed(self._held))
                self._held.clear()
                self._reorder_count = 0
            self._broadcast(batch)

    def _planned(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        """Return what to deliver now for this update under the plan's draw (lock held)."""
        held, self._reordered = self._reordered, None
        after = [held] if held is not None else []
        if self.plan is None:
            return [update, *after]
        draw = self.plan.draw("trade_update")
        fault = draw.fault
        if fault is None or fault not in STREAM_FAULTS:
            return [update, *after]
        order = update.get("order") or {}
        detail = str(update.get("event", ""))
        self.plan.record(FiredFault(draw.kind, draw.n, fault, order.get("client_order_id"), detail))
        if fault is Fault.DUPLICATE_UPDATE:
            return [update, update, *after]
        if fault is Fault.REORDERED_UPDATE:
            self._reordered = update
            return after
        self._undelivered.append(update)
        if fault is Fault.STREAM_DROP:
            for conn in self._connections:
                conn.send(_ABORT)
        return after

    def _broadcast(self, updates: Iterable[dict[str, Any]]) -> None:
        listeners = [c for c in self._connections if c.authenticated and c.listening]
        for update in updates:
            frame = _frame({"stream": "trade_updates", "data": update})
            for conn in listeners:
                conn.send(frame)

    def generated(self) -> list[dict[str, Any]]:
        """Return every trade update produced so far, delivered or not, in production order."""
        with self._lock:
            return list(self._generated)

    def undelivered(self) -> list[dict[str, Any]]:
        """Return the updates swallowed while the stream was paused."""
        with self._lock:
            return list(self._undelivered)

    def pause(self) -> None:
        """Stop delivering updates (they are lost, as in a real gap) while connections stay up."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Deliver updates again; those produced while paused stay lost."""
        with self._lock:
            self._paused = False

    def arm_duplicates(self, times: int, events: frozenset[str]) -> None:
        """Send each of the next `times` updates whose event is in `events` twice."""
        with self._lock:
            self._duplicate_remaining += times
            self._duplicate_events = events

    def arm_reorder(self, count: int) -> None:
        """Hold the next `count` updates, then deliver them in reverse order."""
        if count < 2:
            raise ValueError("reordering needs at least two updates")
        with self._lock:
            self._reorder_count = count
            self._held.clear()

    def drop(self, abrupt: bool) -> int:
        """Disconnect every client: a close frame, or (abrupt) a cut TCP connection."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.send(_ABORT if abrupt else _CLOSE)
        return len(connections)

    def listener_count(self) -> int:
        """Return how many connections are authenticated and listening to trade_updates."""
        with self._lock:
            return sum(1 for c in self._connections if c.authenticated and c.listening)

    # ------------------------------------------------------------------ websocket endpoint

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one websocket client until either side closes."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Connection(ws=ws, request=request, loop=asyncio.get_running_loop())
        with self._lock:
            self._connections.add(conn)
            self.connections_accepted += 1
        writer = asyncio.create_task(self._write(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    raw: str = msg.data
                elif msg.type == WSMsgType.BINARY:
                    raw = bytes(msg.data).decode("utf-8", errors="replace")
                else:
                    continue
                self._on_message(conn, raw)
        finally:
            with self._lock:
                self._connections.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, conn: _Connection) -> None:
        while True:
            frame = await conn.queue.get()
            if frame == _CLOSE:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server closed the connection")
                return
            if frame == _ABORT:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
                return
            try:
                await conn.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return

    def _on_message(self, conn: _Connection, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            conn.send(_frame({"stream": "error", "data": {"error_message": "invalid syntax"}}))
            return
        if not isinstance(message, dict):
            conn.send(_frame({"stream": "error", "data": {"error_message": "invalid syntax"}}))
            return
        action = message.get("action")
        data = message.get("data") if isinstance(message.get("data"), dict) else message
        assert isinstance(data, dict)
        if action in ("authenticate", "auth"):
            key = data.get("key_id", data.get("key"))
            secret = data.get("secret_key", data.get("secret"))
            ok = key == self._api_key and secret == self._secret_key and not self.refuse_logins
            with self._lock:
                conn.authenticated = ok
            status = "authorized" if ok else "unauthorized"
            conn.send(
                _frame(
                    {
                        "stream": "authorization",
                        "data": {"action": "authenticate", "status": status},
                    }
                )
            )
            if not ok:
                conn.send(_CLOSE)
            return
        if action == "listen":
            if not conn.authenticated:
                conn.send(
                    _frame(
                        {
                            "stream": "authorization",
                            "data": {"action": "listen", "status": "unauthorized"},
                        }
                    )
                )
                return
            streams = data.get("streams")
            wanted = isinstance(streams, list) and "trade_updates" in streams
            with self._lock:
                conn.listening = wanted
            conn.send(
                _frame(
                    {
                        "stream": "listening",
                        "data": {"streams": ["trade_updates"] if wanted else []},
                    }
                )
            )
            return
        conn.send(_frame({"stream": "error", "data": {"error_message": f"unknown action: {action}"}}))

    async def close_all(self, _app: web.Application) -> None:
        """Close every websocket so server shutdown does not wait on open streams."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
