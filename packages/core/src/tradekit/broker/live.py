"""Real money only by explicit choice: the live switch, and telling a test endpoint from a live one.

A broker factory receives the environment. ``live_requested`` reads ``TRADEKIT_LIVE`` from
it, which the ``tradekit`` CLI sets to ``1`` only for ``--live`` or when the user's own
environment has ``TRADEKIT_LIVE`` set to ``1`` / ``true``. Without it a factory refuses,
before any network request, every endpoint it cannot prove is a paper, testnet or demo
environment (or this machine): an unknown host counts as live.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from tradekit.config.settings import SettingsError

LIVE_ENV = "TRADEKIT_LIVE"
LIVE_FLAG = "--live"
_TRUE = ("1", "true")
_FALSE = ("", "0", "false")


class LiveTradingRefused(SettingsError):
    """A broker would reach a real-money endpoint and the live flag was not given."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: that is real money, refused without the live flag — give {LIVE_FLAG} "
            f"(or set {LIVE_ENV}=1) to trade it, or point the broker at its paper/testnet environment"
        )


def live_requested(env: Mapping[str, str]) -> bool:
    """True when ``env`` asks for live trading (``TRADEKIT_LIVE`` = ``1`` or ``true``, any case).

    Any other spelling is an error naming the variable: a typo must not be read as either.
    """
    raw = env.get(LIVE_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(
        f"{LIVE_ENV}={env[LIVE_ENV]!r} is not a boolean: use 1 (or true) for live trading, 0 (or false)"
    )


def host_of(url: str) -> str:
    """The host ``url`` reaches, in one spelling: lower case, no trailing dot, no port or user.

    ``https://API.Alpaca.Markets.:443/`` and ``https://api.alpaca.markets`` are one host.
    """
    host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    try:
        # IDNA: a host typed with Unicode look-alikes is compared in its ASCII form.
        return host.encode("idna").decode("ascii").lower() if host else ""
    except UnicodeError:
        return host.lower()


def is_this_machine(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): local emulators in tests."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
