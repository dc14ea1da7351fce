"""What the plugin adds under alpaca-py's REST clients: timeouts, retry bounds, error reading."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import attrs
import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidHeader, InvalidURL
from urllib3.exceptions import NameResolutionError, NewConnectionError

from tradekit_broker_alpaca._alpaca import APIError, RESTClient

# Alpaca's code for a client_order_id already used (HTTP 422). The code is Alpaca's generic
# "invalid request" code too, so the message decides; Alpaca writes "client_order_id must be
# unique", older answers and documentation "client order id must be unique": both are read.
DUPLICATE_CLIENT_ORDER_ID_CODE = 40010001
DUPLICATE_CLIENT_ORDER_ID_MESSAGE = re.compile(r"client[ _]order[ _]id must be unique", re.IGNORECASE)
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MAX_MESSAGE = 200


class DefaultTimeoutAdapter(HTTPAdapter):
    """Give every request sent without a timeout this one (alpaca-py never passes one)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._seconds
        return super().send(request, *args, **kwargs)


def bound_client(client: RESTClient, *, timeout_seconds: float, retries: int, retry_wait_seconds: float) -> None:
    """Bound an alpaca-py client: a timeout on every request and at most ``retries`` retries.

    alpaca-py 0.44 exposes neither setting on its clients, so the session gets an adapter
    and the retry fields are set directly (pinned by the ``alpaca-py>=0.44,<0.45`` range).
    Its retries apply to 429 and 504 answers only, after ``retry_wait_seconds``.
    """
    adapter = DefaultTimeoutAdapter(timeout_seconds)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    client._retry = retries
    # alpaca-py annotates the wait as int; time.sleep takes any number of seconds.
    client._retry_wait = retry_wait_seconds  # type: ignore[assignment]


@attrs.frozen
class AlpacaFailure:
    """A failed request, read defensively: the status, and Alpaca's code and message if sent."""

    status: int | None
    code: int | None
    message: str

    @property
    def is_duplicate_client_order_id(self) -> bool:
        # A duplicate read as a refusal would record REJECTED for an order Alpaca holds and may
        # fill, so an answer without a code is taken on its message alone.
        return (
            self.status == 422
            and self.code in (DUPLICATE_CLIENT_ORDER_ID_CODE, None)
            and DUPLICATE_CLIENT_ORDER_ID_MESSAGE.search(self.message) is not None
        )

    @property
    def is_transient(self) -> bool:
        """True when asking again later may work: no answer, rate limited or a server error."""
        return self.status is None or self.status == 429 or self.status >= 500

    def describe(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        code = f", code {self.code}" if self.code is not None else ""
        return f"{status}{code}: {self.message}"


def failure_from(exc: Exception, timeout_seconds: float) -> AlpacaFailure:
    """Read what went wrong from alpaca-py's ``APIError`` or a requests exception.

    ``APIError.code`` and ``.message`` re-parse the body and raise on a non-JSON body (a load
    balancer's HTML 504 page), so the body is parsed here once, defensively.
    """
    if isinstance(exc, APIError):
        status = exc.status_code
        return _from_body(status if isinstance(status, int) else None, str(exc))
    if isinstance(exc, requests.Timeout):
        return AlpacaFailure(None, None, f"no answer within {timeout_seconds} s ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError):
        return AlpacaFailure(None, None, unreachable(exc))
    # These two quote the offending header value or URL, which may hold an API key: only the
    # kind of problem is reported.
    if isinstance(exc, InvalidHeader):
        return AlpacaFailure(
            None,
            None,
            "InvalidHeader: a request header value holds a line break, leading whitespace or another "
            "character HTTP does not allow (check APCA_API_KEY_ID and APCA_API_SECRET_KEY)",
        )
    if isinstance(exc, InvalidURL):
        return AlpacaFailure(
            None, None, "InvalidURL: the request URL is not valid (check plugins.alpaca.base_url and data_url)"
        )
    return AlpacaFailure(None, None, f"{type(exc).__name__}: {_shorten(str(exc))}")


def unreachable(exc: requests.ConnectionError) -> str:
    """One line naming the host that could not be reached and why (no urllib3 retry chain)."""
    request = exc.request
    url = request.url if request is not None else None
    parts = urlsplit(url.decode() if isinstance(url, bytes) else url) if url else None
    host = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}" if parts else "the server"
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NameResolutionError):
        why = "its name does not resolve (no DNS answer, or no network)"
    elif isinstance(reason, NewConnectionError) and isinstance(reason.__context__, ConnectionRefusedError):
        why = "the connection was refused"
    elif isinstance(reason, NewConnectionError):
        why = "no connection could be made"
    else:
        why = f"the connection failed ({type(reason or exc).__name__})"
    return f"cannot reach {host}: {why}"


def _from_body(status: int | None, body: str) -> AlpacaFailure:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        raw_code = parsed.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        message = parsed.get("message")
        return AlpacaFailure(status, code, _shorten(str(message)) if message is not None else _shorten(body))
    title = _TITLE.search(body)
    if title is not None:
        return AlpacaFailure(status, None, _shorten(title.group(1).strip()))
    return AlpacaFailure(status, None, _shorten(body.strip()) or "empty answer")


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
