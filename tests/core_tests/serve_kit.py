"""Running ``tradekit serve``'s application on loopback for a test, and asking it things."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from tradekit.config import Settings
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.serve.app import create_app
from tradekit.serve.server import StatusServer

from .serve_world import world_plugins


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@attrs.frozen
class Served:
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=dict(headers or {}))
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers)


@contextmanager
def serving(
    url: str,
    *,
    now: datetime,
    plugins: Plugins | None = None,
    settings: Settings | None = None,
    token: str | None = None,
    metrics: bool = True,
    refresh_seconds: int = 5,
) -> Iterator[Served]:
    """The status application over the ledger at ``url``, on 127.0.0.1 at a free port, clock at ``now``."""
    ledger = Ledger.open(url, create=False)
    app = create_app(
        ledger=ledger,
        ledger_url=url,
        settings=settings or Settings(),
        plugins=plugins or world_plugins(),
        token=token,
        clock=lambda: now,
        metrics=metrics,
        refresh_seconds=refresh_seconds,
    )
    server = StatusServer(app, port=0, token=token)
    server.start()
    try:
        yield Served(server.port)
    finally:
        server.stop()
        ledger.close()
