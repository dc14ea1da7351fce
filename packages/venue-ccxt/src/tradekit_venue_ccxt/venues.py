"""What differs between the supported venues, as seen through ccxt 4.5.

Everything venue-specific lives in one ``VenueProfile`` per venue, so the sync and async
venues share it:

- Client order ids: both venues accept up to 36 characters (tradekit's are 35). Binance
  only refuses an id already used by an *open* order, so resending the id of a filled order
  creates a second order: before every submission on Binance the id is looked up first.
  Bybit refuses any id it has seen (110072).
- Lookup by client id: Binance ``fetch_order(None, symbol, {'clientOrderId': id})``;
  Bybit ``fetch_order('', symbol, {'orderLinkId': id, 'acknowledged': True})`` (recent
  orders of any status), then its order history.
- Funding history: Binance reports the credit, Bybit the fee paid (opposite signs).
- Balances: the settle coin's equity and wallet balance sit in different places.
- ccxt maps Binance's futures error codes only when the URL is fapi.binance.com, so a
  re-pointed test URL merges ``exceptions['linear']`` in, as against the real venue.
- Environments: ccxt's sandbox mode (``set_sandbox_mode``) is Bybit's testnet; Binance's
  futures testnet is refused by ccxt 4.5, whose demo trading (``enable_demo_trading``)
  replaces it; Bybit has demo trading too. ``build_client`` switches the client before any
  request and refuses every endpoint that is not one of the venue's test or demo hosts (or
  this machine) unless the live flag was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from tradekit.broker.errors import BrokerDataError
from tradekit.broker.live import LiveTradingRefused, host_of, is_this_machine
from tradekit_venue_ccxt.config import CcxtVenueConfig, VenueCredentials, VenueEnvironment
from tradekit_venue_ccxt.providers import VenueBalance, to_decimal

_BINANCE_BOOK_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_BYBIT_MAX_BOOK_LIMIT = 200


@attrs.frozen(kw_only=True)
class VenueProfile:
    """The venue-specific facts and calls tradekit needs, for one ccxt exchange id."""

    venue: str
    description: str
    client_ids_unique_among_open_only: bool
    duplicate_id_codes: tuple[str, ...]
    leverage_unchanged_codes: tuple[str, ...]
    funding_credit_sign: int
    fetch_order_params: Mapping[str, Any]

    def client_options(self, config: CcxtVenueConfig, credentials: VenueCredentials | None) -> dict[str, Any]:
        """The ccxt constructor options for an account on this venue."""
        options: dict[str, Any] = {
            "fetchMarkets": {"types": ["linear"]},
            "adjustForTimeDifference": False,
        }
        if self.venue == "binanceusdm":
            # Without this, load_markets with keys calls the spot wallet (/sapi) endpoint.
            options["fetchCurrencies"] = False
            options["fetchOpenOrders"] = {"warnWithoutSymbol": False}
        else:
            options.update({"defaultType": "swap", "defaultSubType": "linear", "defaultSettle": config.settle})
        built: dict[str, Any] = {"enableRateLimit": config.rate_limit, "timeout": config.timeout_ms, "options": options}
        if credentials is not None:
            built["apiKey"] = credentials.api_key
            built["secret"] = credentials.secret
        return built

    def prepare_client(self, client: Any, config: CcxtVenueConfig) -> None:
        """Re-point the client at ``config.api_url`` (tests) keeping the real error mapping."""
        client.timeout = config.timeout_ms
        if config.api_url is None:
            return
        origin = config.api_url.rstrip("/")
        api_urls: dict[str, Any] = client.urls["api"]
        for name, url in list(api_urls.items()):
            if isinstance(url, str):
                api_urls[name] = origin + urlsplit(url).path
        if self.venue == "binanceusdm":
            exceptions: dict[str, Any] = client.exceptions
            linear: dict[str, Any] = exceptions.get("linear", {})
            for kind in ("exact", "broad"):
                exceptions[kind] = {**exceptions.get(kind, {}), **linear.get(kind, {})}

    def lookup_args(self, client_order_id: str) -> tuple[str | None, dict[str, Any]]:
        """The ``(id, params)`` of ``fetch_order`` that finds an order by its client id."""
        if self.venue == "binanceusdm":
            return None, {"clientOrderId": client_order_id}
        # Bybit drops an empty orderId, which leaves the lookup to orderLinkId.
        return "", {"orderLinkId": client_order_id, **self.fetch_order_params}

    def history_lookup_params(self, client_order_id: str) -> dict[str, Any] | None:
        """Params of ``fetch_canceled_and_closed_orders`` finding an older order, if supported."""
        if self.venue == "bybit":
            return {"orderLinkId": client_order_id}
        return None

    def book_limit(self, depth: int) -> int:
        if self.venue == "binanceusdm":
            return next((limit for limit in _BINANCE_BOOK_LIMITS if limit >= depth), _BINANCE_BOOK_LIMITS[-1])
        return min(depth, _BYBIT_MAX_BOOK_LIMIT)

    def is_duplicate_id_error(self, message: str) -> bool:
        return any(code in message for code in self.duplicate_id_codes)

    def is_leverage_unchanged(self, message: str) -> bool:
        return any(code in message for code in self.leverage_unchanged_codes)

    def balance_from_ccxt(self, raw: Mapping[str, Any], *, settle: str, received_at: datetime) -> VenueBalance:
        """Equity (wallet plus open PnL), wallet cash and free margin of the settle coin."""
        what = f"{self.venue} balance"
        info = raw.get("info")
        coin = raw.get(settle)
        free_raw = coin.get("free") if isinstance(coin, Mapping) else None
        if self.venue == "binanceusdm":
            assets = info.get("assets") if isinstance(info, Mapping) else None
            entry = _find(assets, "asset", settle)
            if entry is None:
                raise BrokerDataError(f"{what}: no {settle} entry in the account's assets")
            equity = to_decimal(entry.get("marginBalance"), field=f"assets[{settle}].marginBalance", what=what)
            cash = to_decimal(entry.get("walletBalance"), field=f"assets[{settle}].walletBalance", what=what)
            free = to_decimal(entry.get("availableBalance"), field=f"assets[{settle}].availableBalance", what=what)
        else:
            result = info.get("result") if isinstance(info, Mapping) else None
            accounts = result.get("list") if isinstance(result, Mapping) else None
            first = accounts[0] if isinstance(accounts, list) and accounts else None
            entry = _find(first.get("coin") if isinstance(first, Mapping) else None, "coin", settle)
            if entry is None:
                raise BrokerDataError(f"{what}: no {settle} coin in the unified account")
            equity = to_decimal(entry.get("equity"), field=f"coin[{settle}].equity", what=what)
            cash = to_decimal(entry.get("walletBalance"), field=f"coin[{settle}].walletBalance", what=what)
            free = to_decimal(free_raw, field=f"{settle}.free", what=what)
        return VenueBalance(currency=settle, equity=equity, cash=cash, free=free, as_of=received_at)


def _find(items: object, key: str, value: str) -> Mapping[str, Any] | None:
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, Mapping) and item.get(key) == value:
            return item
    return None


PROFILES: Mapping[str, VenueProfile] = {
    "binanceusdm": VenueProfile(
        venue="binanceusdm",
        description="Binance USDⓈ-M perpetual futures through ccxt (one-way mode, cross margin).",
        client_ids_unique_among_open_only=True,
        duplicate_id_codes=("-4116",),
        leverage_unchanged_codes=(),
        funding_credit_sign=1,
        fetch_order_params={},
    ),
    "bybit": VenueProfile(
        venue="bybit",
        description="Bybit v5 linear USDT perpetuals through ccxt (unified account, one-way mode).",
        client_ids_unique_among_open_only=False,
        duplicate_id_codes=("110072",),
        leverage_unchanged_codes=("110043",),
        funding_credit_sign=-1,
        fetch_order_params={"acknowledged": True},
    ),
}


def profile_for(venue: str) -> VenueProfile:
    try:
        return PROFILES[venue]
    except KeyError:
        raise BrokerDataError(f"venue {venue!r} has no profile; supported: {', '.join(PROFILES)}") from None


def build_client(
    config: CcxtVenueConfig, credentials: VenueCredentials | None, *, async_: bool, live: bool = False
) -> Any:
    """Construct the ccxt client for ``config`` (sync or ``ccxt.async_support``); no request is made.

    The client is switched to the configured environment (testnet or demo by default) and,
    unless ``live``, refused with ``LiveTradingRefused`` if any endpoint it would call is a
    production (or unknown) host.
    """
    profile = profile_for(config.venue)
    # Judged on a sync client without keys: a refused async one would leave a session to close.
    probe = _switched(_client_class(config, False)(profile.client_options(config, None)), config, profile)
    if not live:
        # The test hosts are read from an untouched client: switching and re-pointing edit
        # the URL tables in place (demo trading makes the demo table the API table).
        pristine = _client_class(config, False)({})
        production = live_endpoints(probe, pristine)
        if production:
            raise LiveTradingRefused(
                f"{config.venue} would trade in its production environment (real money) at {', '.join(production)}"
            )
    client = _client_class(config, async_)(profile.client_options(config, credentials))
    return _switched(client, config, profile)


def _client_class(config: CcxtVenueConfig, async_: bool) -> Any:
    if async_:
        import ccxt.async_support as ccxt_async

        return getattr(ccxt_async, config.venue)
    import ccxt

    return getattr(ccxt, config.venue)


def _switched(client: Any, config: CcxtVenueConfig, profile: VenueProfile) -> Any:
    environment = config.trading_environment
    if environment is VenueEnvironment.TESTNET:
        client.set_sandbox_mode(True)
    elif environment is VenueEnvironment.DEMO:
        client.enable_demo_trading(True)
    profile.prepare_client(client, config)
    return client


_TEST_URL_TABLES = ("test", "demo", "demotrading")


def live_endpoints(client: Any, pristine: Any) -> list[str]:
    """The hosts ``client`` would call that are neither this machine nor one of the venue's
    test or demo hosts (read from ``pristine``, a client of the same venue never switched or
    re-pointed): production, or unknown and so taken for it."""
    safe: set[str] = set()
    for table in _TEST_URL_TABLES:
        safe |= _hosts(pristine, pristine.urls.get(table))
    return sorted(host for host in _hosts(client, client.urls["api"]) if host not in safe and not is_this_machine(host))


def _hosts(client: Any, urls: object) -> set[str]:
    if isinstance(urls, str):
        return {host_of(client.implode_hostname(urls))}
    if isinstance(urls, Mapping):
        return {host for url in urls.values() for host in _hosts(client, url)}
    return set()
