"""Run an aiohttp application on 127.0.0.1 in a background thread, bounded in time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

_START_TIMEOUT_S = 10.0


class ThreadedServer:
    """An aiohttp app served on an ephemeral loopback port from its own event loop thread.

    Use as a context manager; ``base_url`` is ``http://127.0.0.1:<port>`` once started.
    """

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets: Any = getattr(server, "sockets", None)
        self.port = int(sockets[0].getsockname()[1])

    def call(self, coro: Awaitable[T], timeout: float = _START_TIMEOUT_S) -> T:
        """Run a coroutine on the server's loop and wait for its result."""

        async def _wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(_wrap(), self._loop).result(timeout)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self._runner is not None:
            try:
                self.call(self._runner.cleanup())
            finally:
                self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_START_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
