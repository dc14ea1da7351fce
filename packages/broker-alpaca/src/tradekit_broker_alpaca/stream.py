"""The ``trade_updates`` websocket: alpaca-py's ``TradingStream`` in a background thread, bounded.

alpaca-py's stream reconnects for ever, including after its login was refused, ignores a
stop request until the next message or a 5 s receive timeout, and opens its websocket with
the library's logger, which logs every frame (the login frame carries the secret key) at
DEBUG. This module bounds each of those:

- refused logins are retried with a backoff that doubles from the reconnect minimum up to
  the reconnect maximum (``login_retry_delay``), for as long as the broker runs: a refusal
  may be Alpaca's glitch as well as a wrong key. After ``stream_max_auth_failures`` in a
  row the stream reports itself failed (``StreamStatus.failure``, which the broker's
  ``stream_heartbeat`` hands to tradekit's guard: REDUCE_ONLY, exits still allowed) until a
  login succeeds again; each refusal is one log line, not alpaca-py's traceback;
- ``stop()`` asks the stream's own loop to stop *and* closes the socket, then joins the
  thread for at most ``stream_shutdown_timeout_seconds``;
- the websocket gets a logger pinned at INFO, so no frame is ever logged;
- opening the websocket is bounded by the request timeout, and reconnects back off
  between the configured bounds;
- an unreachable host (no DNS answer, refused, no route) is one line naming it, not the
  traceback alpaca-py logs for it: at INFO for the first failed attempt in a row (a blip, or
  a command that is about to report the same host unreachable itself), at WARNING after.

Updates are queued untouched (``raw_data=True``: prices and quantities stay the strings
Alpaca sent) for the broker to turn into events on its caller's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import queue
import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from tradekit.domain.values import utcnow
from tradekit_broker_alpaca._alpaca import TradingStream
from tradekit_broker_alpaca.config import AlpacaConfig, AlpacaCredentials

log = logging.getLogger(__name__)

# alpaca-py's own logger for the stream, which logs a failed connection with its traceback.
ALPACA_STREAM_LOGGER_NAME = "alpaca.trading.stream"


class StreamUnreachable(OSError):
    """The ``trade_updates`` host could not be reached; ``attempt`` counts the failures in a row."""

    def __init__(self, message: str, attempt: int) -> None:
        super().__init__(message)
        self.attempt = attempt


class StreamLoginRefused(ValueError):
    """The ``trade_updates`` login was refused; ``attempt`` counts the refusals in a row."""

    def __init__(self, message: str, attempt: int) -> None:
        super().__init__(message)
        self.attempt = attempt


def login_retry_delay(refused_in_a_row: int, *, min_backoff: float, max_backoff: float) -> float:
    """Return the seconds to wait before logging in again after ``refused_in_a_row`` refusals.

    The wait doubles from ``min_backoff`` and stays at ``max_backoff`` once it gets there, so
    a wrong key costs Alpaca one login every ``max_backoff`` seconds, and a key that works
    again is back within that time.
    """
    delay = min_backoff * 2.0 ** max(0, min(refused_in_a_row - 1, 30))
    return min(delay, max_backoff)


class _UnreachableAsOneLine(logging.Filter):
    """Turn alpaca-py's "error during websocket communication" traceback for an unreachable
    host, or for a refused login, into the one line the error carries."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (StreamUnreachable, StreamLoginRefused)):
            record.msg, record.args = str(error), None
            record.exc_info, record.exc_text = None, None
            record.levelno = logging.INFO if error.attempt == 1 else logging.WARNING
            record.levelname = logging.getLevelName(record.levelno)
        return True


logging.getLogger(ALPACA_STREAM_LOGGER_NAME).addFilter(_UnreachableAsOneLine())

# websockets logs each frame at DEBUG when its logger allows DEBUG at connection time; the
# login frame carries the secret key, so the stream's logger never allows DEBUG.
WEBSOCKET_LOGGER_NAME = "tradekit_broker_alpaca.websocket"
_websocket_log = logging.getLogger(WEBSOCKET_LOGGER_NAME)
_websocket_log.setLevel(logging.INFO)

# Keepalive: a silent dead connection is noticed within ping interval + timeout (alpaca-py's
# default timeout is 180 s, during which no update would arrive and none would be missed
# knowingly).
_PING_INTERVAL_S = 10.0
_PING_TIMEOUT_S = 20.0
_MAX_QUEUED_FRAMES = 1024


@attrs.frozen(kw_only=True)
class StreamStatus:
    """What the ``trade_updates`` stream has done so far."""

    running: bool
    connected: bool
    connections: int
    """Successful logins so far; a change means a reconnect, and so a possible gap."""
    updates_received: int
    failure: str | None
    """Why the stream is failing (its login refused ``stream_max_auth_failures`` times in a
    row, while it keeps retrying; or its thread crashed, for good), or None."""
    last_heard_at: datetime | None = None
    """The last moment the stream was known alive: its last update, its last login, the
    moment it lost its connection, or its start. While connected, its keepalive (a ping
    every 10 s, 20 s to answer) vouches for it."""


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connected = False
        self.connections = 0
        self.updates_received = 0
        self.refused_logins = 0
        self.failure: str | None = None
        # Set while the failure is refused logins: a successful login clears it.
        self.failing_login = False
        self.last_heard_at: datetime = utcnow()


class _BoundedTradingStream(TradingStream):
    """alpaca-py's TradingStream with a login retry backoff and observable connection state."""

    def __init__(
        self,
        credentials: AlpacaCredentials,
        config: AlpacaConfig,
        counters: _Counters,
    ) -> None:
        super().__init__(
            credentials.key_id,
            credentials.secret_key,
            paper=config.paper,
            raw_data=True,
            # alpaca-py's parameter is annotated str but defaults to None (= Alpaca's URL).
            url_override=config.stream_url,  # type: ignore[arg-type]
            websocket_params={
                "ping_interval": _PING_INTERVAL_S,
                "ping_timeout": _PING_TIMEOUT_S,
                "max_queue": _MAX_QUEUED_FRAMES,
                "open_timeout": config.request_timeout_seconds,
                "close_timeout": config.stream_shutdown_timeout_seconds,
                "logger": _websocket_log,
            },
        )
        self._reconnect_min_backoff = config.stream_reconnect_min_backoff_seconds
        self._reconnect_max_backoff = config.stream_reconnect_max_backoff_seconds
        self._max_refused_logins = config.stream_max_auth_failures
        self._account_kind = "paper" if config.paper else "live"
        self._counters = counters
        self.loop_ready = threading.Event()
        self.event_loop: asyncio.AbstractEventLoop | None = None
        endpoint = urlsplit(self._endpoint)
        self._host = f"{endpoint.hostname}:{endpoint.port or (443 if endpoint.scheme == 'wss' else 80)}"
        self._unreachable_in_a_row = 0

    # alpaca-py leaves the methods overridden below unannotated, hence the ignores.

    async def _run_forever(self) -> None:
        self.event_loop = asyncio.get_running_loop()
        self.loop_ready.set()
        await super()._run_forever()  # type: ignore[no-untyped-call]

    async def _connect(self) -> None:
        try:
            await super()._connect()  # type: ignore[no-untyped-call]
        except OSError as exc:
            self._unreachable_in_a_row += 1
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise StreamUnreachable(
                f"trade_updates stream cannot reach {self._host}: {reason} (retrying; orders are polled meanwhile)",
                self._unreachable_in_a_row,
            ) from None
        self._unreachable_in_a_row = 0

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[no-untyped-call]
        except ValueError:
            with self._counters.lock:
                self._counters.refused_logins += 1
                refused = self._counters.refused_logins
                failing = refused >= self._max_refused_logins
                if failing:
                    self._counters.failing_login = True
                    self._counters.failure = (
                        f"the trade_updates stream refused the API key {refused} times in a row; it keeps "
                        f"trying to log in (waiting up to {self._reconnect_max_backoff:g} s between attempts) and "
                        f"orders are polled meanwhile; check APCA_API_KEY_ID / APCA_API_SECRET_KEY "
                        f"({self._account_kind} keys are needed)"
                    )
            if refused == self._max_refused_logins:
                log.error(
                    "trade_updates stream: login refused %d times in a row; still trying, orders are polled", refused
                )
            raise StreamLoginRefused(
                f"trade_updates stream login refused ({refused} in a row); trying again", refused
            ) from None
        with self._counters.lock:
            refused = self._counters.refused_logins
            self._counters.refused_logins = 0
            if self._counters.failing_login:
                self._counters.failing_login = False
                self._counters.failure = None
        if refused:
            log.info("trade_updates stream logged in after %d refused logins", refused)

    def _reconnect_delay(self, retries: int) -> float:
        with self._counters.lock:
            refused = self._counters.refused_logins
        if refused:
            return login_retry_delay(
                refused, min_backoff=self._reconnect_min_backoff, max_backoff=self._reconnect_max_backoff
            )
        return float(super()._reconnect_delay(retries))

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        with self._counters.lock:
            self._counters.connected = True
            self._counters.connections += 1
            self._counters.last_heard_at = utcnow()

    async def close(self) -> None:
        with self._counters.lock:
            if self._counters.connected:
                self._counters.last_heard_at = utcnow()
            self._counters.connected = False
        await super().close()

    async def shutdown(self) -> None:
        """Stop for good: set alpaca-py's stop flags, then close the socket so it sees them now."""
        await self.stop_ws()
        await self.close()


class TradeUpdateStream:
    """Receive ``trade_updates`` in a daemon thread and hand them over in arrival order."""

    def __init__(self, credentials: AlpacaCredentials, config: AlpacaConfig) -> None:
        self._config = config
        self._counters = _Counters()
        self._updates: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._stream = _BoundedTradingStream(credentials, config, self._counters)
        self._stream.subscribe_trade_updates(self._on_message)
        self._thread = threading.Thread(target=self._run, name="alpaca-trade-updates", daemon=True)
        self._stopped = False

    async def _on_message(self, message: dict[str, Any]) -> None:
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict):
            log.warning("ignoring a trade_updates message without a data object")
            return
        with self._counters.lock:
            self._counters.updates_received += 1
            self._counters.last_heard_at = utcnow()
        self._updates.put(data)

    def _run(self) -> None:
        try:
            self._stream.run()
        except Exception as exc:
            # The thread must end with a recorded reason, never an unhandled traceback.
            with self._counters.lock:
                self._counters.failure = f"the trade_updates stream crashed: {type(exc).__name__}: {exc}"
            log.exception("trade_updates stream crashed")
        finally:
            with self._counters.lock:
                if self._counters.connected:
                    self._counters.last_heard_at = utcnow()
                self._counters.connected = False

    def start(self) -> None:
        """Start the background thread; it connects, logs in and listens on its own."""
        self._thread.start()

    def take_updates(self) -> list[dict[str, Any]]:
        """Return the updates received since the last call, oldest first."""
        updates: list[dict[str, Any]] = []
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                return updates

    def status(self) -> StreamStatus:
        with self._counters.lock:
            return StreamStatus(
                running=self._thread.is_alive(),
                connected=self._counters.connected,
                connections=self._counters.connections,
                updates_received=self._counters.updates_received,
                failure=self._counters.failure,
                last_heard_at=self._counters.last_heard_at,
            )

    def stop(self) -> None:
        """Stop the stream and wait for its thread, at most the configured shutdown timeout."""
        if self._stopped:
            return
        self._stopped = True
        if not self._thread.is_alive():
            return
        timeout = self._config.stream_shutdown_timeout_seconds
        stream = self._stream
        loop = stream.event_loop if stream.loop_ready.wait(timeout) else None
        if loop is not None and not loop.is_closed():
            request = stream.shutdown()
            future: concurrent.futures.Future[None] | None = None
            try:
                future = asyncio.run_coroutine_threadsafe(request, loop)
                future.result(timeout)
            except (RuntimeError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError) as exc:
                # The loop ended (or is ending) on its own; the join below still bounds the wait.
                log.debug("trade_updates stream shutdown request not completed: %s", type(exc).__name__)
            finally:
                if inspect.getcoroutinestate(request) == inspect.CORO_CREATED:
                    # A loop that stopped before running the request never starts it: close the
                    # coroutine so it is not left un-awaited (a RuntimeWarning at collection).
                    request.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("trade_updates stream thread still running after %s s; left behind as a daemon thread", timeout)
