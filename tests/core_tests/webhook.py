"""A webhook receiver on 127.0.0.1 for the notification tests: it answers, fails or hangs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["answer", "fail", "hang"]


class Receiver:
    """What the endpoint received, and the switch that lets a hanging endpoint answer."""

    def __init__(self, mode: Mode, port: int, token: str) -> None:
        self.mode = mode
        self.port = port
        self.token = token
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """An apprise URL posting JSON here; its path is the credential (as a webhook's is)."""
        return f"json://127.0.0.1:{self.port}/hooks/{self.token}"

    def titles(self) -> list[str]:
        with self._lock:
            return [str(m.get("title", "")) for m in self.received]

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(body)
        self.arrived.set()


@contextmanager
def webhook(mode: Mode, token: str = "w3bh00k-s3cret-path-token") -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 at a free port until the block ends."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder[0]
            length = int(self.headers.get("Content-Length", "0"))
            receiver.record(json.loads(self.rfile.read(length) or b"{}"))
            if receiver.mode == "hang":
                receiver.release.wait(60)
            status = 500 if receiver.mode == "fail" else 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up waiting: nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(Receiver(mode, server.server_address[1], token))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        holder[0].release.set()
        server.shutdown()
        server.server_close()
