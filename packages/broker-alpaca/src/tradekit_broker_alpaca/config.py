"""Configuration of the Alpaca broker: the ``[plugins.alpaca]`` table, the keys, the live switch.

Everything but the keys comes from the ``[plugins.alpaca]`` table of the tradekit
configuration (or ``TRADEKIT_PLUGINS__ALPACA__<KEY>`` environment overrides). The keys come
only from the environment (``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``): they are never read
from a file, and never appear in a repr, a log line or an exception message.

Paper trading is the default. Real money is refused unless the environment the broker is
built from has ``TRADEKIT_LIVE=1``, which the ``tradekit`` CLI sets only for ``--live`` (or
the user's own ``TRADEKIT_LIVE=1``): ``paper = false``, and any trading or stream URL whose
host is not Alpaca's paper host or this machine — ``https://API.alpaca.markets.:443`` is the
live host however it is spelled, and an unknown host may be a live account.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import attrs

from tradekit.broker.live import LiveTradingRefused, host_of, is_this_machine, live_requested
from tradekit.config.settings import Settings, SettingsError
from tradekit.redaction import register_secret
from tradekit.serialization import StructureError, structure

PLUGIN_TABLE = "alpaca"
KEY_ID_ENV = "APCA_API_KEY_ID"
SECRET_KEY_ENV = "APCA_API_SECRET_KEY"

PAPER_TRADING_HOST = "paper-api.alpaca.markets"
LIVE_TRADING_HOST = "api.alpaca.markets"
LIVE_STREAM_HOST = "api.alpaca.markets"

# Keys a user might be tempted to put in the file; each gets a specific refusal.
_CREDENTIAL_KEYS = frozenset(
    {
        "key",
        "key_id",
        "api_key",
        "api_key_id",
        "apca_api_key_id",
        "secret",
        "secret_key",
        "api_secret",
        "api_secret_key",
        "apca_api_secret_key",
    }
)


class AlpacaConfigError(SettingsError):
    """The Alpaca broker cannot be built as configured; the message names the key and why."""


class BarFeed(StrEnum):
    """Which Alpaca stock data feed daily bars come from (free accounts get IEX only)."""

    IEX = "iex"
    SIP = "sip"
    DELAYED_SIP = "delayed_sip"


class BarAdjustment(StrEnum):
    """Which corporate actions daily bars are adjusted for."""

    RAW = "raw"
    SPLIT = "split"
    DIVIDEND = "dividend"
    ALL = "all"


def _root_url(value: str | None) -> str | None:
    # alpaca-py joins base_url + "/v2" + path, so a trailing slash would make "//v2".
    return value.rstrip("/") if isinstance(value, str) else value


def _url(schemes: tuple[str, ...], *, host_root: bool) -> Callable[[Any, attrs.Attribute[Any], str | None], None]:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is None:
            return
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise AlpacaConfigError(
                f"plugins.alpaca.{attribute.name} must be a {' or '.join(schemes)} URL, got {value!r}"
            )
        if parts.query or parts.fragment:
            raise AlpacaConfigError(f"plugins.alpaca.{attribute.name} must not have a query or fragment: {value!r}")
        if host_root and parts.path.rstrip("/").endswith("/v2"):
            raise AlpacaConfigError(
                f"plugins.alpaca.{attribute.name} must be the host root without /v2 (alpaca-py adds it), got {value!r}"
            )

    return check


def _seconds(*, maximum: float, zero_allowed: bool) -> Callable[[Any, attrs.Attribute[Any], float], None]:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        low_ok = value >= 0 if zero_allowed else value > 0
        if not math.isfinite(value) or not low_ok or value > maximum:
            bound = "0" if zero_allowed else "more than 0"
            raise AlpacaConfigError(
                f"plugins.alpaca.{attribute.name} must be from {bound} to {maximum} seconds, got {value}"
            )

    return check


def _count(minimum: int, maximum: int) -> Callable[[Any, attrs.Attribute[Any], int], None]:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if not minimum <= value <= maximum:
            raise AlpacaConfigError(f"plugins.alpaca.{attribute.name} must be from {minimum} to {maximum}, got {value}")

    return check


@attrs.frozen(kw_only=True)
class AlpacaConfig:
    """How the Alpaca broker connects and behaves. Every field has a safe default.

    The URL overrides exist for testing against a local emulator; in production leave them
    unset and ``paper`` picks Alpaca's paper or live endpoints.
    """

    paper: bool = True
    base_url: str | None = attrs.field(
        default=None, converter=_root_url, validator=_url(("http", "https"), host_root=True)
    )
    """Trading REST root (``https://paper-api.alpaca.markets``); alpaca-py adds ``/v2``."""
    data_url: str | None = attrs.field(
        default=None, converter=_root_url, validator=_url(("http", "https"), host_root=True)
    )
    """Market data REST root (``https://data.alpaca.markets``); alpaca-py adds ``/v2``."""
    stream_url: str | None = attrs.field(default=None, validator=_url(("ws", "wss"), host_root=False))
    """Full ``trade_updates`` websocket URL (``wss://paper-api.alpaca.markets/stream``)."""
    request_timeout_seconds: float = attrs.field(default=10.0, validator=_seconds(maximum=120, zero_allowed=False))
    """Bound on every HTTP request and on opening the websocket (alpaca-py sets none)."""
    read_retries: int = attrs.field(default=2, validator=_count(0, 5))
    """How often alpaca-py retries a read answered 429 or 504. Orders are never retried."""
    read_retry_wait_seconds: float = attrs.field(default=1.0, validator=_seconds(maximum=30, zero_allowed=True))
    poll_interval_seconds: float = attrs.field(default=15.0, validator=_seconds(maximum=3600, zero_allowed=True))
    """How often ``drain_events`` also polls orders to recover what the stream missed (0: every call)."""
    stream: bool = True
    """Receive order events from the ``trade_updates`` websocket; False relies on polling alone."""
    stream_reconnect_min_backoff_seconds: float = attrs.field(
        default=1.0, validator=_seconds(maximum=60, zero_allowed=False)
    )
    stream_reconnect_max_backoff_seconds: float = attrs.field(
        default=30.0, validator=_seconds(maximum=600, zero_allowed=False)
    )
    stream_max_auth_failures: int = attrs.field(default=3, validator=_count(1, 20))
    """Refused logins in a row after which the stream reports itself failed (``stream_heartbeat``;
    tradekit's guard then allows exits only). It keeps trying to log in, up to the reconnect
    maximum apart, and is healthy again once a login succeeds."""
    stream_shutdown_timeout_seconds: float = attrs.field(
        default=5.0, validator=_seconds(maximum=60, zero_allowed=False)
    )
    bar_feed: BarFeed = BarFeed.IEX
    bar_adjustment: BarAdjustment = BarAdjustment.ALL

    def __attrs_post_init__(self) -> None:
        if self.stream_reconnect_max_backoff_seconds < self.stream_reconnect_min_backoff_seconds:
            raise AlpacaConfigError(
                "plugins.alpaca.stream_reconnect_max_backoff_seconds "
                f"({self.stream_reconnect_max_backoff_seconds}) must not be below "
                f"stream_reconnect_min_backoff_seconds ({self.stream_reconnect_min_backoff_seconds})"
            )
        self._refuse_mismatched_hosts()

    def _refuse_mismatched_hosts(self) -> None:
        # A paper configuration pointed at the live host would trade real money without
        # the live flag; a live one pointed at the paper host would not do what it says.
        for name in ("base_url", "stream_url"):
            url = getattr(self, name)
            if url is None:
                continue
            host = host_of(url)
            if self.paper and host == LIVE_TRADING_HOST:
                raise AlpacaConfigError(
                    f"plugins.alpaca.{name} points at Alpaca's live host {LIVE_TRADING_HOST} while paper = true; "
                    "remove the override, or set paper = false and run with --live"
                )
            if not self.paper and host == PAPER_TRADING_HOST:
                raise AlpacaConfigError(
                    f"plugins.alpaca.{name} points at Alpaca's paper host {PAPER_TRADING_HOST} while paper = false"
                )

    def live_endpoints(self) -> list[str]:
        """The trading endpoints of this configuration that may move real money, described.

        Live unless proven otherwise: ``paper = false``, and any trading or stream host that
        is neither Alpaca's paper host nor this machine (a local emulator).
        """
        found = []
        if not self.paper:
            found.append("plugins.alpaca.paper = false (Alpaca's live account)")
        for name in ("base_url", "stream_url"):
            url = getattr(self, name)
            if url is None:
                continue
            host = host_of(url)
            if host != PAPER_TRADING_HOST and not is_this_machine(host):
                where = "Alpaca's live host" if host == LIVE_TRADING_HOST else "not Alpaca's paper host"
                found.append(f"plugins.alpaca.{name} reaches {host} ({where})")
        return found


@attrs.frozen(repr=False)
class AlpacaCredentials:
    """The API key pair, read from the environment only; its repr never shows either part."""

    key_id: str = attrs.field(repr=False)
    secret_key: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return "AlpacaCredentials(<redacted>)"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlpacaCredentials:
        """Read ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY``; name whichever is missing or malformed.

        Whitespace around a key is dropped; whitespace or a control character inside one is an
        error naming the variable, never showing its value.
        """
        missing = [name for name in (KEY_ID_ENV, SECRET_KEY_ENV) if not env.get(name, "").strip()]
        if missing:
            raise AlpacaConfigError(
                f"the Alpaca broker needs {' and '.join(missing)} in the environment "
                "(credentials are never read from the configuration file)"
            )
        for name in (KEY_ID_ENV, SECRET_KEY_ENV):
            if any(char.isspace() or not char.isprintable() for char in env[name].strip()):
                # Sent as an HTTP header, such a key fails every request; its value is never shown.
                raise AlpacaConfigError(
                    f"{name} holds whitespace, a line break or another control character inside it "
                    "(a two-line paste?); set it to the key alone, on one line"
                )
        credentials = cls(key_id=env[KEY_ID_ENV].strip(), secret_key=env[SECRET_KEY_ENV].strip())
        register_secret(credentials.key_id)
        register_secret(credentials.secret_key)
        return credentials


def load_alpaca_config(settings: Settings) -> AlpacaConfig:
    """Structure ``settings.plugins["alpaca"]`` into an ``AlpacaConfig`` or raise naming each bad key."""
    return read_alpaca_table(settings.plugins.get(PLUGIN_TABLE, {}))


def read_alpaca_table(table: Mapping[str, Any]) -> AlpacaConfig:
    """Structure a ``[plugins.alpaca]`` table (what tradekit checks at load, and the broker reads)."""
    credentials_in_file = sorted(key for key in table if key.lower() in _CREDENTIAL_KEYS)
    if credentials_in_file:
        # Name the key, never echo its value: it may be a secret.
        keys = ", ".join(f"plugins.alpaca.{key}" for key in credentials_in_file)
        raise AlpacaConfigError(
            f"{keys}: credentials are never read from the configuration; remove it and set "
            f"{KEY_ID_ENV} and {SECRET_KEY_ENV} in the environment"
        )
    try:
        return structure(dict(table), AlpacaConfig, what="plugins.alpaca")
    except StructureError as exc:
        raise AlpacaConfigError(
            "the [plugins.alpaca] settings are invalid:\n" + "\n".join(f"  - {p}" for p in exc.problems)
        ) from None


def require_live_permission(config: AlpacaConfig, env: Mapping[str, str]) -> None:
    """Refuse a configuration that may trade real money unless ``TRADEKIT_LIVE=1`` is set.

    Raises ``LiveTradingRefused`` (an ``AlpacaConfigError``'s sibling ``SettingsError``) naming
    what is live and the flag; nothing has been sent anywhere yet.
    """
    endpoints = config.live_endpoints()
    if endpoints and not live_requested(env):
        raise LiveTradingRefused("; ".join(endpoints))
