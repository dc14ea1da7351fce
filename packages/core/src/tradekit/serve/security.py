"""The rules ``tradekit serve`` runs under: read-only, loopback unless told, a token when remote.

- Binding: 127.0.0.1 (or another loopback address) by default. Any other address is refused
  unless ``--allow-remote`` is given *and* a bearer token is read from a file only its owner
  can read; a wildcard address also needs the host names clients will use (``--allowed-host``).
- Every request: its ``Host`` header must be one of the allowed names (against DNS
  rebinding: a page on another site resolving its name to 127.0.0.1 is refused); any method
  but GET and HEAD answers 405, whatever the path; with a token, a request without
  ``Authorization: Bearer <token>`` answers 401 (compared in constant time).
- Every response: no CORS header at all, no caching, no framing, no sniffing, no referrer,
  and a content security policy allowing only the server's own scripts and styles.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradekit import redaction

READ_METHODS = frozenset({"GET", "HEAD"})
SHORTEST_TOKEN = 16
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class ServeRefused(ValueError):
    """The server will not start this way; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The bearer token in ``path``: a regular file of this user's that no one else may read."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ServeRefused(f"token file {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ServeRefused(f"token file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise ServeRefused(f"token file {path} belongs to another user: it must be yours")
    if info.st_mode & 0o077:
        raise ServeRefused(
            f"token file {path} can be read by others (mode {stat.filemode(info.st_mode)}): "
            f"make it owner-only, chmod 600 {path}"
        )
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < SHORTEST_TOKEN or any(c.isspace() for c in token):
        raise ServeRefused(
            f"token file {path} must hold one token of at least {SHORTEST_TOKEN} characters without spaces "
            '(e.g. python3 -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    redaction.register_secret(token)
    return token


def allowed_hosts(host: str, extra: Iterable[str]) -> list[str]:
    """The Host header values accepted when bound to ``host``."""
    names = [*LOOPBACK_NAMES, *extra]
    if host not in _WILDCARDS:
        names.append(host)
    return list(dict.fromkeys(name.strip("[]") for name in names))


def check_bind(host: str, *, allow_remote: bool, token: str | None, extra_hosts: Iterable[str]) -> None:
    """Refuse a bind that would expose the page without a token (see the module's docstring)."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ServeRefused(
            f"refusing to listen on {host}: only loopback (127.0.0.1) is served by default. To serve other "
            "machines give --allow-remote with --token-file FILE (a bearer token, owner-only); or reach this "
            "machine's 127.0.0.1 through an SSH tunnel instead"
        )
    if token is None:
        raise ServeRefused(f"refusing to listen on {host} without a token: --allow-remote needs --token-file FILE")
    if host in _WILDCARDS and not list(extra_hosts):
        raise ServeRefused(
            f"listening on every address ({host or 'all'}) needs the names clients will use: --allowed-host NAME "
            "(the Host header is checked against them)"
        )


class ReadOnlyGate:
    """ASGI middleware: 405 for anything but GET/HEAD, 401 without the token, safe headers on all."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        if scope["method"] not in READ_METHODS:
            await _plain(
                send_with_headers, 405, b"read-only: only GET and HEAD are answered", [(b"allow", b"GET, HEAD")]
            )
            return
        if self._token is not None and not self._authorized(scope):
            await _plain(
                send_with_headers, 401, b"a bearer token is needed", [(b"www-authenticate", b'Bearer realm="tradekit"')]
            )
            return
        await self.app(scope, receive, send_with_headers)

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        given = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                given = value
        scheme, _, credential = given.partition(b" ")
        # compare_digest takes the same time wherever the first difference is.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self._token)


async def _plain(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
