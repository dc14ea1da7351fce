"""Configuration of the ccxt venues, separate from their behaviour.

A venue account is configured in the ``[plugins.ccxt.venues.<venue>]`` table (``venue`` is
the ccxt exchange id, e.g. ``binanceusdm`` or ``bybit``); pair trading in
``[plugins.ccxt.pairs]`` (see ``tradekit_venue_ccxt.pairs.config``). Environment overrides
follow the core's scheme and arrive as strings, e.g.
``TRADEKIT_PLUGINS__CCXT__VENUES__BYBIT__LEVERAGE=2``.

API keys never come from the configuration file: they are read from the environment
(``TRADEKIT_CCXT_<VENUE>_API_KEY`` and ``TRADEKIT_CCXT_<VENUE>_SECRET``) into
``VenueCredentials``, whose repr, str and error messages never show them.

A venue trades in its test environment unless told otherwise: ``environment`` defaults to
Binance's demo trading (ccxt 4.5 refuses the old futures testnet) and Bybit's testnet;
``environment = "production"`` is real money and needs the live flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import attrs

from tradekit.config.settings import Settings, SettingsError
from tradekit.domain.values import str_tuple
from tradekit.redaction import register_secret
from tradekit.serialization import StructureError, structure
from tradekit_venue_ccxt.pairs.config import PairTradingConfig

PLUGIN_KEY = "ccxt"
SUPPORTED_VENUES: tuple[str, ...] = ("binanceusdm", "bybit")
_MAX_LEVERAGE = 125


class VenueEnvironment(StrEnum):
    """Which of a venue's environments an account trades in (ccxt's names for them)."""

    TESTNET = "testnet"
    """ccxt's sandbox mode: the venue's separate test exchange."""
    DEMO = "demo"
    """ccxt's demo trading: the venue's paper-money mode of its main site."""
    PRODUCTION = "production"
    """Real money: needs the live flag."""


# What ccxt 4.5 offers per venue, the first the default. Binance's futures testnet is gone
# from ccxt ("sandbox mode is not supported for futures anymore"): its demo trading replaces it.
VENUE_ENVIRONMENTS: Mapping[str, tuple[VenueEnvironment, ...]] = {
    "binanceusdm": (VenueEnvironment.DEMO, VenueEnvironment.PRODUCTION),
    "bybit": (VenueEnvironment.TESTNET, VenueEnvironment.DEMO, VenueEnvironment.PRODUCTION),
}


def _venue_id(_inst: object, _attr: object, value: str) -> None:
    if value not in SUPPORTED_VENUES:
        raise SettingsError(f"venue {value!r} is not supported; supported venues: {', '.join(SUPPORTED_VENUES)}")


def _at_least(minimum: int) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or value < minimum:
            raise SettingsError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _leverage(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not 1 <= value <= _MAX_LEVERAGE:
        raise SettingsError(f"leverage must be an integer from 1 to {_MAX_LEVERAGE}, got {value!r}")


def _api_url(_inst: object, _attr: object, value: str | None) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise SettingsError(f"api_url must be a bare http(s) origin such as http://127.0.0.1:8080, got {value!r}")


@attrs.frozen(kw_only=True)
class CcxtVenueConfig:
    """One venue account: which venue, what it trades, and how patiently to talk to it.

    ``symbols`` are the unified ccxt symbols this account trades (``BTC/USDT:USDT``); a
    lookup by client order id of an order this process did not send searches them.
    ``leverage`` is applied to each symbol before its first order and bounds the buying
    power reported. ``rate_limit`` keeps ccxt's client-side throttle (leave it on against a
    real venue). After an ambiguous submission the order is looked up by its client id up to
    ``lookup_attempts`` times, ``lookup_interval_ms`` apart. ``environment`` picks the venue's
    test, demo or production (real-money) environment; None is the venue's test default.
    ``api_url`` re-points every endpoint of the venue at one origin: it is for local
    emulators in tests, never for trading (a host that is not this machine or one of the
    venue's test environments counts as production).
    """

    venue: str = attrs.field(validator=_venue_id)
    symbols: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    leverage: int = attrs.field(default=1, validator=_leverage)
    settle: str = "USDT"
    timeout_ms: int = attrs.field(default=10_000, validator=_at_least(100))
    lookup_attempts: int = attrs.field(default=3, validator=_at_least(1))
    lookup_interval_ms: int = attrs.field(default=250, validator=_at_least(0))
    rate_limit: bool = True
    api_url: str | None = attrs.field(default=None, validator=_api_url)
    environment: VenueEnvironment | None = None

    def __attrs_post_init__(self) -> None:
        offered = VENUE_ENVIRONMENTS.get(self.venue, ())
        if self.environment is not None and self.environment not in offered:
            raise SettingsError(
                f"environment = {self.environment.value!r} is not offered for {self.venue} by ccxt; "
                f"use one of {', '.join(repr(e.value) for e in offered)}"
            )

    @property
    def trading_environment(self) -> VenueEnvironment:
        """The environment this account trades in: the configured one, else the venue's test default."""
        return self.environment or VENUE_ENVIRONMENTS[self.venue][0]


def _secret(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"credential {attribute.name} is empty")


@attrs.frozen(kw_only=True, repr=False)
class VenueCredentials:
    """An API key and secret read from the environment. Never shown in any output."""

    api_key: str = attrs.field(validator=_secret, repr=False)
    secret: str = attrs.field(validator=_secret, repr=False)

    def __repr__(self) -> str:
        return "VenueCredentials(api_key=<hidden>, secret=<hidden>)"

    __str__ = __repr__

    @classmethod
    def from_env(cls, venue: str, env: Mapping[str, str]) -> VenueCredentials:
        """Read the venue's key and secret; a missing one is an error naming the variable."""
        key_var, secret_var = credential_env_vars(venue)
        missing = [name for name in (key_var, secret_var) if not env.get(name, "").strip()]
        if missing:
            raise SettingsError(
                f"the {venue} API credentials are not set: define {' and '.join(missing)} in the environment "
                "(credentials are never read from the configuration file)"
            )
        credentials = cls(api_key=env[key_var].strip(), secret=env[secret_var].strip())
        register_secret(credentials.api_key)
        register_secret(credentials.secret)
        return credentials

    def scrub(self, text: str) -> str:
        """Return ``text`` with the key and secret masked (venues echo keys in some errors)."""
        for value in (self.api_key, self.secret):
            text = text.replace(value, "<hidden>")
        return text


def credential_env_vars(venue: str) -> tuple[str, str]:
    """The environment variables holding ``venue``'s API key and secret."""
    prefix = f"TRADEKIT_CCXT_{venue.upper()}"
    return f"{prefix}_API_KEY", f"{prefix}_SECRET"


@attrs.frozen(kw_only=True)
class CcxtSettings:
    """The whole ``[plugins.ccxt]`` table: venue accounts by venue id, and pair trading."""

    venues: Mapping[str, CcxtVenueConfig] = attrs.field(factory=dict)
    pairs: PairTradingConfig | None = None

    def venue(self, venue: str) -> CcxtVenueConfig:
        """The configuration of ``venue``, or its defaults when it has no table."""
        found = self.venues.get(venue)
        return found if found is not None else CcxtVenueConfig(venue=venue)


def load_ccxt_settings(settings: Settings) -> CcxtSettings:
    """Structure ``settings.plugins["ccxt"]``; raise ``SettingsError`` listing every problem."""
    return read_ccxt_table(settings.plugins.get(PLUGIN_KEY, {}))


def read_ccxt_table(raw: Mapping[str, Any]) -> CcxtSettings:
    """Structure a ``[plugins.ccxt]`` table (what tradekit checks at load, and the venues read)."""
    table: dict[str, Any] = dict(raw)
    problems: list[str] = []
    venues: dict[str, CcxtVenueConfig] = {}
    raw_venues = table.pop("venues", {})
    if not isinstance(raw_venues, Mapping):
        problems.append(f"plugins.{PLUGIN_KEY}.venues must be a table of venue tables, got {raw_venues!r}")
        raw_venues = {}
    for name, venue_table in raw_venues.items():
        what = f"plugins.{PLUGIN_KEY}.venues.{name}"
        if not isinstance(venue_table, Mapping):
            problems.append(f"{what} must be a table, got {venue_table!r}")
            continue
        if "venue" in venue_table:
            problems.append(f"{what}.venue: the venue is the table's name, do not repeat it")
            continue
        try:
            venues[name] = structure({**venue_table, "venue": name}, CcxtVenueConfig, what=what)
        except StructureError as exc:
            problems.extend(exc.problems)
        except SettingsError as exc:
            problems.append(f"{exc} @ {what}")
    pairs: PairTradingConfig | None = None
    raw_pairs = table.pop("pairs", None)
    if raw_pairs is not None:
        what = f"plugins.{PLUGIN_KEY}.pairs"
        try:
            pairs = structure(raw_pairs, PairTradingConfig, what=what)
        except StructureError as exc:
            problems.extend(exc.problems)
        except SettingsError as exc:
            problems.append(f"{exc} @ {what}")
    if table:
        problems.append(
            f"unknown key(s) in [plugins.{PLUGIN_KEY}]: {', '.join(sorted(table))} (expected venues, pairs)"
        )
    if problems:
        raise SettingsError(
            f"the [plugins.{PLUGIN_KEY}] settings are invalid:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return CcxtSettings(venues=venues, pairs=pairs)
