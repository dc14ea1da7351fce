"""Bind and run the status application with uvicorn, under ``tradekit.serve.security``'s rules.

The socket is bound here (so a refused address fails before anything serves, and port 0
picks a free port a test can read back); uvicorn serves on it without its ``Server`` header,
trusting no proxy headers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable

import uvicorn
from starlette.applications import Starlette

from tradekit.serve.security import check_bind


class StatusServer:
    """The status application listening on ``host:port`` (loopback unless allowed otherwise)."""

    def __init__(
        self,
        app: Starlette,
        *,
        host: str = "127.0.0.1",
        port: int = 8700,
        allow_remote: bool = False,
        token: str | None = None,
        extra_hosts: Iterable[str] = (),
        log_level: str = "warning",
    ) -> None:
        check_bind(host, allow_remote=allow_remote, token=token, extra_hosts=extra_hosts)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.socket.listen(128)
        self.socket.setblocking(False)
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self._server.run(sockets=[self.socket])

    def start(self) -> None:
        """Serve from a background thread (tests, embedding); ``stop`` ends it. The socket
        already listens, so a request made at once waits in its backlog, never refused."""
        self._thread = threading.Thread(target=self.run, name="tradekit-serve", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()
