"""Wire formats shared by the emulator's REST, data and stream endpoints."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from typing import Any

# Alpaca accepts up to nine decimal places for qty and notional.
QTY_PLACES = 9
QTY_QUANTUM = Decimal(1).scaleb(-QTY_PLACES)
# Derived money figures (averages, P/L ratios) are reported with bounded precision so
# a repeating fraction does not turn into a 28-digit string.
PRICE_QUANTUM = Decimal(1).scaleb(-9)
RATIO_QUANTUM = Decimal(1).scaleb(-16)


class ApiError(Exception):
    """An error response in Alpaca's shape: HTTP status plus a JSON body with code and message."""

    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON body Alpaca sends for this error."""
        payload: dict[str, Any] = dict(self.extra)
        if self.code is not None:
            payload["code"] = self.code
        payload["message"] = self.message
        return payload


def default_error_body(status: int) -> dict[str, Any]:
    """Return a plausible Alpaca-style JSON body for an injected error status."""
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    if status == 429:
        return {"code": 42910000, "message": "rate limit exceeded"}
    if status == 500:
        return {"code": 50010000, "message": "internal server error occurred"}
    return {"code": status * 100000, "message": phrase}


# What a load balancer in front of Alpaca answers on a gateway timeout: not JSON, so
# alpaca-py's APIError.code/.message cannot parse it.
GATEWAY_TIMEOUT_HTML = (
    "<html><head><title>504 Gateway Time-out</title></head>"
    "<body><center><h1>504 Gateway Time-out</h1></center></body></html>"
)


def dec_str(value: Decimal) -> str:
    """Format a Decimal the way Alpaca does: plain digits, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def opt_dec_str(value: Decimal | None) -> str | None:
    """Format an optional Decimal, keeping None as JSON null."""
    return None if value is None else dec_str(value)


def ts(value: datetime) -> str:
    """Format a timestamp as RFC 3339 UTC with microseconds and a Z suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def opt_ts(value: datetime | None) -> str | None:
    """Format an optional timestamp, keeping None as JSON null."""
    return None if value is None else ts(value)


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def parse_decimal(value: Any, field: str) -> Decimal:
    """Parse a JSON number or numeric string into a Decimal, or raise Alpaca's 422."""
    if isinstance(value, bool) or value is None:
        raise ApiError(422, f"invalid {field}", 40010001)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ApiError(422, f"invalid {field}", 40010001) from exc
    else:
        raise ApiError(422, f"invalid {field}", 40010001)
    if not result.is_finite():
        raise ApiError(422, f"invalid {field}", 40010001)
    return result


def decimal_places(value: Decimal) -> int:
    """Return how many digits a Decimal carries after the point (0 for integers)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def parse_time(value: str, field: str) -> datetime:
    """Parse an RFC 3339 timestamp or a YYYY-MM-DD date (as midnight UTC) from a query string."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(422, f"invalid {field}: {value}", 40010001) from exc
    # A timestamp without an offset is taken as UTC, as Alpaca does.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def loads_json(text: str) -> Any:
    """Parse a request body keeping every JSON number with a fraction as an exact Decimal."""
    return json.loads(text, parse_float=Decimal)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps_json(payload: Any) -> str:
    """Serialize a response body; stray Decimals become JSON numbers (used for bar prices)."""
    return json.dumps(payload, default=_default, separators=(",", ":"))
