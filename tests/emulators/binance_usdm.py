"""Binance USDⓈ-M futures REST emulator, as far as ccxt's ``binanceusdm`` client sees it.

Serves the ``/fapi`` endpoints ccxt 4.5 calls for linear perpetuals in one-way cross-margin mode:

* public: ``/fapi/v1/ping``, ``/time``, ``/exchangeInfo``, ``/depth``, ``/ticker/24hr``,
  ``/premiumIndex``, ``/fundingRate``;
* signed (HMAC-SHA256 over query string + body, ``X-MBX-APIKEY``, ``timestamp``/``recvWindow``):
  ``/fapi/v1/leverageBracket``, ``/fapi/v2/account``, ``/fapi/v3/account``,
  ``/fapi/v2/positionRisk``, ``/fapi/v3/positionRisk``, ``/fapi/v1/order`` (POST/GET/DELETE),
  ``/fapi/v1/openOrders``, ``/fapi/v1/allOrders``, ``/fapi/v1/allOpenOrders`` (DELETE),
  ``/fapi/v1/userTrades``, ``/fapi/v1/income``, ``/fapi/v1/leverage``.

Venue rules reproduced: ``newClientOrderId`` must match ``^[.A-Z:/a-z0-9_-]{1,36}$`` and is "a
unique id among open orders" (-4116 only while an order with that id is open: reusing the id of a
filled or cancelled order creates a new order); LOT_SIZE/PRICE_FILTER/MIN_NOTIONAL checks;
FOK and GTX (post-only) orders that cannot execute as asked are refused (-5021/-5022); market
orders sweep the book and an unfilled remainder is EXPIRED; conditional order types answer -4120
(Binance moved them to the algo endpoints, which are not emulated).

Use :func:`make_ccxt_client` to get a ccxt client wired to a running emulator.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import re
import secrets
import string
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ccxt.async_support.binanceusdm import binanceusdm as AsyncBinanceUsdm
from ccxt.base.exchange import Exchange
from ccxt.binanceusdm import binanceusdm as SyncBinanceUsdm

from emulators._klines import DAILY, DAY_MS, KlineBook
from emulators._perp_book import (
    ZERO,
    Income,
    IncomeType,
    InstrumentSpec,
    Num,
    Order,
    OrderRejected,
    OrderStatus,
    OrderType,
    ParsedRequest,
    PerpEngine,
    PerpVenueEmulator,
    PositionSnapshot,
    RejectReason,
    Route,
    Side,
    TimeInForce,
    VenueError,
    fmt,
    fmt_plain,
    parse_decimal,
    parse_int,
    require,
    to_decimal,
)

_D = Decimal

BINANCE_USDM_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(
        symbol="BTC/USDT:USDT",
        venue_symbol="BTCUSDT",
        base="BTC",
        quote="USDT",
        tick_size=_D("0.10"),
        min_price=_D("261.10"),
        max_price=_D("809484"),
        price_decimals=2,
        step_size=_D("0.001"),
        min_qty=_D("0.001"),
        max_qty=_D("1000"),
        max_market_qty=_D("120"),
        qty_decimals=3,
        min_notional=_D("100"),
        max_leverage=125,
        default_leverage=20,
        maint_margin_rate=_D("0.004"),
        onboard_ms=1569398400000,
    ),
    InstrumentSpec(
        symbol="ETH/USDT:USDT",
        venue_symbol="ETHUSDT",
        base="ETH",
        quote="USDT",
        tick_size=_D("0.01"),
        min_price=_D("39.86"),
        max_price=_D("306177"),
        price_decimals=2,
        step_size=_D("0.001"),
        min_qty=_D("0.001"),
        max_qty=_D("10000"),
        max_market_qty=_D("2000"),
        qty_decimals=3,
        min_notional=_D("20"),
        max_leverage=125,
        default_leverage=20,
        maint_margin_rate=_D("0.005"),
        onboard_ms=1569398400000,
    ),
)
"""BTCUSDT and ETHUSDT with the filters Binance publishes for them."""

_CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_CONDITIONAL_TYPES = frozenset({"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"})
_TIME_IN_FORCE = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.POST_ONLY,
}
_TIME_IN_FORCE_NAMES = {value: key for key, value in _TIME_IN_FORCE.items()}
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_SEVEN_DAYS_MS = 7 * 24 * 3_600_000
_MAX_NOTIONAL = "50000000"
_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]
_MALFORMED_KEEP = frozenset({"symbol", "side", "type"})


def _missing(name: str) -> VenueError:
    return VenueError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _illegal(name: str) -> VenueError:
    return VenueError(
        -1100,
        f"Illegal characters found in parameter '{name}'; legal range is "
        r"'^([0-9]{1,20})(\.[0-9]{1,20})?$'.",
    )


def _strip_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


class BinanceUsdmEmulator(PerpVenueEmulator):
    """An emulated Binance USDⓈ-M futures account on 127.0.0.1.

    Start it with ``with BinanceUsdmEmulator() as emu:`` (or ``start()``/``stop()``); the control
    and fault methods are inherited from :class:`~emulators._perp_book.PerpVenueEmulator` and are
    safe to call from the test thread while a client talks to the server.
    """

    create_order_endpoint: ClassVar[str] = "POST /fapi/v1/order"
    default_reject: ClassVar[tuple[int, str]] = (-2019, "Margin is insufficient.")
    # The endpoints a seeded fault plan draws for, by call kind.
    call_kinds: ClassVar[Mapping[str, str]] = {
        "GET /fapi/v1/time": "clock",
        "POST /fapi/v1/order": "submit_order",
        "DELETE /fapi/v1/order": "cancel_order",
        "DELETE /fapi/v1/allOpenOrders": "cancel_order",
        "GET /fapi/v1/order": "order_lookup",
        "GET /fapi/v1/openOrders": "list_orders",
        "GET /fapi/v1/allOrders": "list_orders",
        "GET /fapi/v1/userTrades": "fills",
        "GET /fapi/v2/positionRisk": "positions",
        "GET /fapi/v3/positionRisk": "positions",
        "GET /fapi/v2/account": "balance",
        "GET /fapi/v3/account": "balance",
    }

    def __init__(
        self,
        *,
        api_key: str = "binance-test-key",
        api_secret: str = "binance-test-secret",
        balance: Num = "10000",
        taker_fee: Num = "0.0005",
        maker_fee: Num = "0.0002",
        instruments: tuple[InstrumentSpec, ...] = BINANCE_USDM_INSTRUMENTS,
    ) -> None:
        order_ids = itertools.count(4_000_000_001)
        trade_ids = itertools.count(700_000_001)
        engine = PerpEngine(
            instruments,
            settle_asset="USDT",
            balance=to_decimal(balance),
            taker_fee=to_decimal(taker_fee),
            maker_fee=to_decimal(maker_fee),
            client_id_scope="open",
            reject_unfillable=True,
            order_id_factory=lambda: str(next(order_ids)),
            trade_id_factory=lambda: str(next(trade_ids)),
        )
        super().__init__(engine, api_key=api_key, api_secret=api_secret)
        self._tran_id_offset = 9_689_322_000

    def __enter__(self) -> BinanceUsdmEmulator:
        self.start()
        return self

    # ---- plumbing hooks -----------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("GET", "/fapi/v1/ping", lambda _: {}, signed=False),
            Route("GET", "/fapi/v1/time", lambda _: {"serverTime": self._engine.now_ms()}, signed=False),
            Route("GET", "/fapi/v1/exchangeInfo", self._exchange_info, signed=False),
            Route("GET", "/fapi/v1/depth", self._depth, signed=False),
            Route("GET", "/fapi/v1/ticker/24hr", self._ticker_24hr, signed=False),
            Route("GET", "/fapi/v1/premiumIndex", self._premium_index, signed=False),
            Route("GET", "/fapi/v1/fundingRate", self._funding_rate_history, signed=False),
            Route("GET", "/fapi/v1/klines", self._klines, signed=False),
            Route("GET", "/fapi/v1/leverageBracket", self._leverage_bracket, signed=True),
            Route("GET", "/fapi/v2/account", lambda r: self._account(r, v2=True), signed=True),
            Route("GET", "/fapi/v3/account", lambda r: self._account(r, v2=False), signed=True),
            Route("GET", "/fapi/v2/positionRisk", self._position_risk_v2, signed=True),
            Route("GET", "/fapi/v3/positionRisk", self._position_risk_v3, signed=True),
            Route("POST", "/fapi/v1/order", self._create_order, signed=True),
            Route("GET", "/fapi/v1/order", self._query_order, signed=True),
            Route("DELETE", "/fapi/v1/order", self._cancel_order, signed=True),
            Route("GET", "/fapi/v1/openOrders", self._open_orders, signed=True),
            Route("GET", "/fapi/v1/allOrders", self._all_orders, signed=True),
            Route("DELETE", "/fapi/v1/allOpenOrders", self._cancel_all, signed=True),
            Route("GET", "/fapi/v1/userTrades", self._user_trades, signed=True),
            Route("GET", "/fapi/v1/income", self._income, signed=True),
            Route("POST", "/fapi/v1/leverage", self._change_leverage, signed=True),
        ]

    def _parse_params(self, method: str, raw_query: str, raw_body: str) -> dict[str, str]:
        # Binance reads the query string and the form body as one parameter set.
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(parse_qsl(raw_body, keep_blank_values=True))
        return params

    def _authenticate(self, request: ParsedRequest) -> None:
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            raise VenueError(-2014, "API-key format invalid.", status=401)
        if not hmac.compare_digest(api_key, self.api_key):
            raise VenueError(
                -2015,
                "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1",
                status=401,
            )
        signature = require(request.params, "signature", _missing)
        timestamp = parse_int(require(request.params, "timestamp", _missing), "timestamp", _missing)
        recv_window = parse_int(request.params.get("recvWindow", "5000"), "recvWindow", _missing)
        # The signed payload is the query string followed by the body, minus the signature.
        payload = _strip_signature(request.raw_query) + _strip_signature(request.raw_body)
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise VenueError(-1022, "Signature for this request is not valid.")
        if recv_window > 60_000 or recv_window <= 0:
            raise VenueError(-1131, "recvWindow must be less than 60000")
        if timestamp >= request.received_ms + 1000 or request.received_ms - timestamp > recv_window:
            raise VenueError(-1021, "Timestamp for this request is outside of the recvWindow.")

    def _success_body(self, payload: object) -> object:
        return payload

    def _error_body(self, error: VenueError) -> object:
        return {"code": error.code, "msg": error.message}

    def _venue_error(self, code: int, message: str) -> VenueError:
        return VenueError(code, message, status=400)

    def _rate_limit_error(self) -> VenueError:
        return VenueError(
            -1003,
            "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. "
            "Please use the websocket for live updates to avoid polling the API.",
            status=429,
            headers={"Retry-After": "1"},
        )

    def _strip_fields(self, body: object) -> object:
        if isinstance(body, list):
            return [self._strip_fields(item) for item in body]
        if isinstance(body, dict):
            return {key: value for key, value in body.items() if key in _MALFORMED_KEEP}
        return body

    # ---- helpers ------------------------------------------------------------------------

    def _spec(self, params: Mapping[str, str]) -> InstrumentSpec:
        spec = self.engine.spec_by_venue_symbol(require(params, "symbol", _missing))
        if spec is None:
            raise VenueError(-1121, "Invalid symbol.")
        return spec

    def _optional_spec(self, params: Mapping[str, str]) -> InstrumentSpec | None:
        return self._spec(params) if params.get("symbol") else None

    def _specs(self, params: Mapping[str, str]) -> list[InstrumentSpec]:
        spec = self._optional_spec(params)
        return [spec] if spec is not None else list(self.engine.instruments)

    @staticmethod
    def _int_param(params: Mapping[str, str], name: str) -> int | None:
        value = params.get(name, "")
        return parse_int(value, name, _illegal) if value else None

    def _reject(self, rejection: OrderRejected, spec: InstrumentSpec | None = None) -> VenueError:
        reason = rejection.reason
        min_notional = fmt_plain(spec.min_notional) if spec is not None else ""
        table: dict[RejectReason, tuple[int, str]] = {
            RejectReason.QTY_NOT_POSITIVE: (-4003, "Quantity less than or equal to zero."),
            RejectReason.QTY_STEP: (-1111, "Precision is over the maximum defined for this asset."),
            RejectReason.QTY_BELOW_MIN: (-4004, "Quantity less than min quantity."),
            RejectReason.QTY_ABOVE_MAX: (-4005, "Quantity greater than max quantity."),
            RejectReason.PRICE_NOT_POSITIVE: (-4001, "Price less than 0."),
            RejectReason.PRICE_TICK: (-4014, "Price not increased by tick size."),
            RejectReason.PRICE_BELOW_MIN: (-4013, "Price less than min price."),
            RejectReason.PRICE_ABOVE_MAX: (-4002, "Price greater than max price."),
            RejectReason.NOTIONAL_BELOW_MIN: (
                -4164,
                f"Order's notional must be no smaller than {min_notional} (unless you choose reduce only).",
            ),
            RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-4116, "ClientOrderId is duplicated."),
            RejectReason.INSUFFICIENT_MARGIN: (-2019, "Margin is insufficient."),
            RejectReason.REDUCE_ONLY_REJECTED: (-2022, "ReduceOnly Order is rejected."),
            RejectReason.FOK_UNFILLABLE: (
                -5021,
                "Due to the order could not be filled immediately, the FOK order has been "
                "rejected. The order will not be recorded in the order history",
            ),
            RejectReason.POST_ONLY_WOULD_TAKE: (
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be "
                "rejected. The order will not be recorded in the order history",
            ),
            RejectReason.ORDER_NOT_FOUND: (-2011, "Unknown order sent."),
            RejectReason.ORDER_NOT_OPEN: (-2011, "Unknown order sent."),
            RejectReason.INVALID_LEVERAGE: (-4028, f"Leverage {rejection.detail} is not valid"),
        }
        code, message = table[reason]
        return VenueError(code, message)

    def _order_json(self, order: Order, *, with_time: bool, with_cum_qty: bool) -> dict[str, Any]:
        spec = self.engine.spec(order.symbol)
        average = order.average_price
        quote_places = spec.price_decimals + spec.qty_decimals
        body: dict[str, Any] = {
            "orderId": int(order.order_id),
            "symbol": spec.venue_symbol,
            "status": order.status.value,
            "clientOrderId": order.client_order_id,
            "price": spec.price_str(order.price if order.price is not None else ZERO),
            "avgPrice": fmt(average, quote_places) if average is not None else "0.00",
            "origQty": spec.qty_str(order.quantity),
            "executedQty": spec.qty_str(order.filled_qty),
            "cumQuote": fmt(order.filled_quote, quote_places),
            # Market orders report GTC on Binance whatever the request said.
            "timeInForce": _TIME_IN_FORCE_NAMES[order.time_in_force] if order.order_type is OrderType.LIMIT else "GTC",
            "type": order.order_type.value,
            "reduceOnly": order.reduce_only,
            "closePosition": False,
            "side": order.side.value,
            "positionSide": "BOTH",
            "stopPrice": "0.00",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": order.order_type.value,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": order.updated_ms,
        }
        if with_cum_qty:
            body["cumQty"] = spec.qty_str(order.filled_qty)
        if with_time:
            body["time"] = order.created_ms
        return body

    # ---- public market data -------------------------------------------------------------

    def _exchange_info(self, _: ParsedRequest) -> dict[str, Any]:
        symbols = []
        for spec in self.engine.instruments:
            symbols.append(
                {
                    "symbol": spec.venue_symbol,
                    "pair": spec.venue_symbol,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": spec.onboard_ms,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": spec.base,
                    "quoteAsset": spec.quote,
                    "marginAsset": spec.settle,
                    "pricePrecision": spec.price_decimals,
                    "quantityPrecision": spec.qty_decimals,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": ["PoW"] if spec.base == "BTC" else ["Layer-1"],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": fmt_plain(spec.min_price),
                            "maxPrice": fmt_plain(spec.max_price),
                            "tickSize": fmt_plain(spec.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": fmt_plain(spec.min_qty),
                            "maxQty": fmt_plain(spec.max_qty),
                            "stepSize": fmt_plain(spec.step_size),
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": fmt_plain(spec.min_qty),
                            "maxQty": fmt_plain(spec.max_market_qty),
                            "stepSize": fmt_plain(spec.step_size),
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                        {"filterType": "MIN_NOTIONAL", "notional": fmt_plain(spec.min_notional)},
                        {
                            "filterType": "PERCENT_PRICE",
                            "multiplierUp": "1.0500",
                            "multiplierDown": "0.9500",
                            "multiplierDecimal": "4",
                        },
                    ],
                    "orderTypes": list(_ORDER_TYPES),
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                    "permissionSet": ["GRID", "COPY"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self._engine.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        }

    def _depth(self, request: ParsedRequest) -> dict[str, Any]:
        spec = self._spec(request.params)
        limit = self._int_param(request.params, "limit") or 500
        if limit not in _DEPTH_LIMITS:
            raise VenueError(-4021, "Invalid depth limit.")
        bids, asks, update_id, updated = self.engine.order_book(spec.symbol, limit)
        return {
            "lastUpdateId": update_id,
            "E": self._engine.now_ms(),
            "T": updated,
            "bids": [[spec.price_str(p), spec.qty_str(q)] for p, q in bids],
            "asks": [[spec.price_str(p), spec.qty_str(q)] for p, q in asks],
        }

    def _ticker_24hr(self, request: ParsedRequest) -> object:
        tickers = [self._ticker(spec) for spec in self._specs(request.params)]
        return tickers[0] if request.params.get("symbol") else tickers

    def _ticker(self, spec: InstrumentSpec) -> dict[str, Any]:
        stats = self.engine.trade_stats(spec.symbol)
        last = stats.last_price if stats.last_price is not None else ZERO
        opened = stats.open_price if stats.open_price is not None else last
        change = last - opened
        percent = change / opened * 100 if opened else ZERO
        weighted = stats.quote_volume / stats.volume if stats.volume else last
        now = self._engine.now_ms()
        return {
            "symbol": spec.venue_symbol,
            "priceChange": spec.price_str(change),
            "priceChangePercent": fmt(percent, 3),
            "weightedAvgPrice": spec.price_str(weighted),
            "lastPrice": spec.price_str(last),
            "lastQty": spec.qty_str(stats.last_qty),
            "openPrice": spec.price_str(opened),
            "highPrice": spec.price_str(stats.high_price or last),
            "lowPrice": spec.price_str(stats.low_price or last),
            "volume": spec.qty_str(stats.volume),
            "quoteVolume": fmt(stats.quote_volume, 2),
            "openTime": now - 24 * 3_600_000,
            "closeTime": now,
            "firstId": int(stats.first_trade_id) if stats.first_trade_id else 0,
            "lastId": int(stats.last_trade_id) if stats.last_trade_id else 0,
            "count": stats.count,
        }

    def _premium_index(self, request: ParsedRequest) -> object:
        entries = []
        for spec in self._specs(request.params):
            rate, next_time = self.engine.funding(spec.symbol)
            mark = self.engine.mark_price(spec.symbol) or ZERO
            entries.append(
                {
                    "symbol": spec.venue_symbol,
                    "markPrice": fmt(mark, 8),
                    "indexPrice": fmt(mark, 8),
                    "estimatedSettlePrice": fmt(mark, 8),
                    "lastFundingRate": fmt(rate, 8),
                    "interestRate": "0.00010000",
                    "nextFundingTime": next_time,
                    "time": self._engine.now_ms(),
                }
            )
        return entries[0] if request.params.get("symbol") else entries

    def _funding_rate_history(self, request: ParsedRequest) -> list[dict[str, Any]]:
        spec = self._optional_spec(request.params)
        start = self._int_param(request.params, "startTime")
        end = self._int_param(request.params, "endTime")
        limit = min(self._int_param(request.params, "limit") or 100, 1000)
        records = [
            r
            for r in self.engine.funding_history(spec.symbol if spec else None)
            if (start is None or r.funding_time_ms >= start) and (end is None or r.funding_time_ms <= end)
        ]
        records = records[:limit] if start is not None else records[-limit:]
        result = []
        for record in records:
            venue_symbol = self.engine.spec(record.symbol).venue_symbol
            result.append(
                {
                    "symbol": venue_symbol,
                    "fundingRate": fmt(record.rate, 8),
                    "fundingTime": record.funding_time_ms,
                    "markPrice": fmt(record.mark_price, 8) if record.mark_price else "",
                }
            )
        return result

    @functools.cached_property
    def klines(self) -> KlineBook:
        """The daily candles ``/fapi/v1/klines`` serves; load them with ``klines.load``."""
        return KlineBook()

    def _klines(self, request: ParsedRequest) -> list[list[Any]]:
        spec = self._spec(request.params)
        if require(request.params, "interval", _missing) not in DAILY:
            raise VenueError(-1120, "Invalid interval.")
        limit = min(self._int_param(request.params, "limit") or 500, 1500)
        candles = self.klines.select(
            spec.venue_symbol,
            self._int_param(request.params, "startTime"),
            self._int_param(request.params, "endTime"),
            limit,
        )
        return [
            [
                c.open_ms,
                fmt_plain(c.open),
                fmt_plain(c.high),
                fmt_plain(c.low),
                fmt_plain(c.close),
                fmt_plain(c.volume),
                c.open_ms + DAY_MS - 1,
                fmt_plain(c.volume * c.close),
                0,
                "0",
                "0",
                "0",
            ]
            for c in candles
        ]

    # ---- account ------------------------------------------------------------------------

    def _leverage_bracket(self, request: ParsedRequest) -> object:
        entries = []
        for spec in self._specs(request.params):
            entries.append(
                {
                    "symbol": spec.venue_symbol,
                    "notionalCoef": 1.0,
                    "brackets": [
                        {
                            "bracket": 1,
                            "initialLeverage": spec.max_leverage,
                            "notionalCap": int(_MAX_NOTIONAL),
                            "notionalFloor": 0,
                            "maintMarginRatio": float(spec.maint_margin_rate),
                            "cum": 0.0,
                        }
                    ],
                }
            )
        # With a symbol Binance answers the bare object rather than a one-element list.
        return entries[0] if request.params.get("symbol") else entries

    def _order_margin(self, symbol: str) -> Decimal:
        leverage = self.engine.leverage(symbol)
        return sum(
            (o.remaining * o.price / leverage for o in self.engine.open_orders(symbol) if o.price),
            ZERO,
        )

    def _account(self, _: ParsedRequest, *, v2: bool) -> dict[str, Any]:
        account = self.engine.account()
        available = account.available_balance
        asset: dict[str, Any] = {
            "asset": account.asset,
            "walletBalance": fmt(account.wallet_balance, 8),
            "unrealizedProfit": fmt(account.unrealized_pnl, 8),
            "marginBalance": fmt(account.margin_balance, 8),
            "maintMargin": fmt(account.maint_margin, 8),
            "initialMargin": fmt(account.initial_margin, 8),
            "positionInitialMargin": fmt(account.position_initial_margin, 8),
            "openOrderInitialMargin": fmt(account.open_order_initial_margin, 8),
            "crossWalletBalance": fmt(account.wallet_balance, 8),
            "crossUnPnl": fmt(account.unrealized_pnl, 8),
            "availableBalance": fmt(available, 8),
            "maxWithdrawAmount": fmt(max(ZERO, min(available, account.wallet_balance)), 8),
            "marginAvailable": True,
            "updateTime": account.updated_ms,
        }
        positions = []
        for position in account.positions:
            if not v2 and position.qty == 0 and not self.engine.open_orders(position.symbol):
                continue
            spec = self.engine.spec(position.symbol)
            entry: dict[str, Any] = {
                "symbol": spec.venue_symbol,
                "positionSide": "BOTH",
                "positionAmt": spec.qty_str(position.qty),
                "unrealizedProfit": fmt(position.unrealized_pnl, 8),
                "isolatedMargin": "0",
                "notional": fmt(position.notional, 8),
                "isolatedWallet": "0",
                "initialMargin": fmt(position.initial_margin, 8),
                "maintMargin": fmt(position.maint_margin, 8),
                "updateTime": position.updated_ms,
            }
            if v2:
                entry.update(
                    {
                        "positionInitialMargin": fmt(position.initial_margin, 8),
                        "openOrderInitialMargin": fmt(self._order_margin(position.symbol), 8),
                        "leverage": str(position.leverage),
                        "isolated": False,
                        "entryPrice": fmt_plain(position.entry_price),
                        "breakEvenPrice": fmt_plain(position.entry_price),
                        "maxNotional": _MAX_NOTIONAL,
                        "bidNotional": "0",
                        "askNotional": "0",
                    }
                )
            positions.append(entry)
        body: dict[str, Any] = {
            "totalInitialMargin": asset["initialMargin"],
            "totalMaintMargin": asset["maintMargin"],
            "totalWalletBalance": asset["walletBalance"],
            "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"],
            "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
            "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"],
            "assets": [asset],
            "positions": positions,
        }
        if v2:
            body.update(
                {
                    "feeTier": 0,
                    "feeBurn": False,
                    "canTrade": True,
                    "canDeposit": True,
                    "canWithdraw": True,
                    "updateTime": 0,
                    "multiAssetsMargin": False,
                    "tradeGroupId": -1,
                }
            )
        return body

    def _position_common(self, position: PositionSnapshot) -> dict[str, Any]:
        spec = self.engine.spec(position.symbol)
        liquidation = position.liquidation_price
        return {
            "symbol": spec.venue_symbol,
            "positionSide": "BOTH",
            "positionAmt": spec.qty_str(position.qty),
            "entryPrice": fmt_plain(position.entry_price),
            "breakEvenPrice": fmt_plain(position.entry_price),
            "markPrice": fmt(position.mark_price, 8),
            "unRealizedProfit": fmt(position.unrealized_pnl, 8),
            "liquidationPrice": fmt_plain(liquidation) if liquidation is not None else "0",
            "isolatedMargin": "0",
            "notional": fmt(position.notional, 8),
            "isolatedWallet": "0",
            "updateTime": position.updated_ms,
        }

    def _position_risk_v3(self, request: ParsedRequest) -> list[dict[str, Any]]:
        # v3 lists only symbols with a position or open orders.
        wanted = {spec.symbol for spec in self._specs(request.params)}
        result = []
        for position in self.engine.account().positions:
            if position.symbol not in wanted:
                continue
            if position.qty == 0 and not self.engine.open_orders(position.symbol):
                continue
            entry = self._position_common(position)
            entry.update(
                {
                    "marginAsset": self.engine.settle_asset,
                    "initialMargin": fmt(position.initial_margin, 8),
                    "maintMargin": fmt(position.maint_margin, 8),
                    "positionInitialMargin": fmt(position.initial_margin, 8),
                    "openOrderInitialMargin": fmt(self._order_margin(position.symbol), 8),
                    "adl": 1 if position.qty != 0 else 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                }
            )
            result.append(entry)
        return result

    def _position_risk_v2(self, request: ParsedRequest) -> list[dict[str, Any]]:
        wanted = {spec.symbol for spec in self._specs(request.params)}
        result = []
        for position in self.engine.account().positions:
            if position.symbol not in wanted:
                continue
            entry = self._position_common(position)
            entry.update(
                {
                    "leverage": str(position.leverage),
                    "maxNotionalValue": _MAX_NOTIONAL,
                    "marginType": "cross",
                    "isAutoAddMargin": "false",
                    "adlQuantile": 1 if position.qty != 0 else 0,
                }
            )
            result.append(entry)
        return result

    def _income(self, request: ParsedRequest) -> list[dict[str, Any]]:
        params = request.params
        spec = self._optional_spec(params)
        income_type = params.get("incomeType", "")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        limit = min(self._int_param(params, "limit") or 100, 1000)
        if start is None and end is None:
            # Without a time range Binance answers the last seven days of its own clock.
            start = self.engine.now_ms() - _SEVEN_DAYS_MS
        rows = [
            income
            for income in self.engine.incomes()
            if (spec is None or income.symbol == spec.symbol)
            and (not income_type or income.income_type.value == income_type)
            and (start is None or income.time_ms >= start)
            and (end is None or income.time_ms <= end)
        ]
        rows = rows[:limit]
        return [self._income_json(income) for income in rows]

    def _income_json(self, income: Income) -> dict[str, Any]:
        venue_symbol = self.engine.spec(income.symbol).venue_symbol
        info = income.income_type.value if income.income_type is IncomeType.FUNDING_FEE else ""
        return {
            "symbol": venue_symbol,
            "incomeType": income.income_type.value,
            "income": fmt(income.amount, 8),
            "asset": income.asset,
            "info": info or income.trade_id,
            "time": income.time_ms,
            "tranId": self._tran_id_offset + income.income_id,
            "tradeId": income.trade_id,
        }

    def _change_leverage(self, request: ParsedRequest) -> dict[str, Any]:
        spec = self._spec(request.params)
        raw = require(request.params, "leverage", _missing)
        leverage = parse_int(raw, "leverage", _illegal)
        try:
            self.engine.set_leverage(spec.symbol, leverage)
        except OrderRejected as rejection:
            raise self._reject(OrderRejected(rejection.reason, raw)) from None
        return {
            "leverage": leverage,
            "maxNotionalValue": _MAX_NOTIONAL,
            "symbol": spec.venue_symbol,
        }

    # ---- orders -------------------------------------------------------------------------

    def _create_order(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        spec = self._spec(params)
        side_name = require(params, "side", _missing)
        if side_name not in ("BUY", "SELL"):
            raise VenueError(-1117, "Invalid side.")
        type_name = require(params, "type", _missing)
        if type_name in _CONDITIONAL_TYPES:
            raise VenueError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
            )
        if type_name not in ("LIMIT", "MARKET"):
            raise VenueError(-1116, "Invalid orderType.")
        order_type = OrderType(type_name)
        if params.get("positionSide", "BOTH") != "BOTH":
            raise VenueError(-4061, "Order's position side does not match user's setting.")
        quantity = parse_decimal(require(params, "quantity", _missing), "quantity", _illegal)
        price: Decimal | None = None
        time_in_force = TimeInForce.GTC
        if order_type is OrderType.LIMIT:
            price = parse_decimal(require(params, "price", _missing), "price", _illegal)
            tif_name = require(params, "timeInForce", _missing)
            if tif_name not in _TIME_IN_FORCE:
                raise VenueError(-1115, "Invalid timeInForce.")
            time_in_force = _TIME_IN_FORCE[tif_name]
        elif params.get("price"):
            raise VenueError(-1106, "Parameter 'price' sent when not required.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_order_id = params.get("newClientOrderId", "")
        if client_order_id:
            if not _CLIENT_ORDER_ID.match(client_order_id):
                raise VenueError(-4015, "Client order id is not valid.")
        else:
            alphabet = string.ascii_letters + string.digits
            client_order_id = "".join(secrets.choice(alphabet) for _ in range(22))
        response_type = params.get("newOrderRespType", "ACK")
        if response_type not in ("ACK", "RESULT"):
            raise VenueError(-1136, "Invalid newOrderRespType")
        try:
            order = self.engine.place_order(
                symbol=spec.symbol,
                side=Side(side_name),
                order_type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=time_in_force,
                reduce_only=reduce_only,
                client_order_id=client_order_id,
            )
        except OrderRejected as rejection:
            raise self._reject(rejection, spec) from None
        if response_type == "ACK":
            # ACK reports the order as just accepted, before the matching engine's outcome.
            order.status = OrderStatus.NEW
            order.filled_qty = ZERO
            order.filled_quote = ZERO
            order.updated_ms = order.created_ms
        return self._order_json(order, with_time=False, with_cum_qty=True)

    def _lookup(self, params: Mapping[str, str], spec: InstrumentSpec) -> Order | None:
        order_id = params.get("orderId", "")
        client_order_id = params.get("origClientOrderId", "")
        if order_id:
            parse_int(order_id, "orderId", _illegal)
            return self.engine.find_order(spec.symbol, order_id=order_id)
        if client_order_id:
            return self.engine.find_order(spec.symbol, client_order_id=client_order_id)
        raise VenueError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")

    def _query_order(self, request: ParsedRequest) -> dict[str, Any]:
        spec = self._spec(request.params)
        order = self._lookup(request.params, spec)
        if order is None:
            raise VenueError(-2013, "Order does not exist.")
        return self._order_json(order, with_time=True, with_cum_qty=False)

    def _cancel_order(self, request: ParsedRequest) -> dict[str, Any]:
        spec = self._spec(request.params)
        order = self._lookup(request.params, spec)
        if order is None:
            raise VenueError(-2011, "Unknown order sent.")
        try:
            canceled = self.engine.cancel_order(spec.symbol, order_id=order.order_id)
        except OrderRejected as rejection:
            raise self._reject(rejection, spec) from None
        return self._order_json(canceled, with_time=False, with_cum_qty=True)

    def _cancel_all(self, request: ParsedRequest) -> dict[str, Any]:
        spec = self._spec(request.params)
        for order in self.engine.open_orders(spec.symbol):
            self.engine.cancel_order(spec.symbol, order_id=order.order_id)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _open_orders(self, request: ParsedRequest) -> list[dict[str, Any]]:
        spec = self._optional_spec(request.params)
        orders = self.engine.open_orders(spec.symbol if spec else None)
        return [self._order_json(o, with_time=True, with_cum_qty=False) for o in orders]

    def _all_orders(self, request: ParsedRequest) -> list[dict[str, Any]]:
        params = request.params
        spec = self._spec(params)
        from_id = self._int_param(params, "orderId")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        limit = min(self._int_param(params, "limit") or 500, 1000)
        orders = [
            o
            for o in self.engine.orders(spec.symbol)
            if (from_id is None or int(o.order_id) >= from_id)
            and (start is None or o.created_ms >= start)
            and (end is None or o.created_ms <= end)
        ]
        orders = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
        return [self._order_json(o, with_time=True, with_cum_qty=False) for o in orders]

    def _user_trades(self, request: ParsedRequest) -> list[dict[str, Any]]:
        params = request.params
        spec = self._spec(params)
        order_id = params.get("orderId", "")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        from_id = self._int_param(params, "fromId")
        limit = min(self._int_param(params, "limit") or 500, 1000)
        fills = [
            f
            for f in self.engine.fills(spec.symbol)
            if (not order_id or f.order_id == order_id)
            and (start is None or f.time_ms >= start)
            and (end is None or f.time_ms <= end)
            and (from_id is None or int(f.trade_id) >= from_id)
        ]
        fills = fills[:limit] if from_id is not None or start is not None else fills[-limit:]
        return [
            {
                "buyer": f.side is Side.BUY,
                "commission": fmt(f.fee, 8),
                "commissionAsset": self.engine.settle_asset,
                "id": int(f.trade_id),
                "maker": f.is_maker,
                "orderId": int(f.order_id),
                "price": spec.price_str(f.price),
                "qty": spec.qty_str(f.qty),
                "quoteQty": fmt(f.price * f.qty, spec.price_decimals + spec.qty_decimals),
                "realizedPnl": fmt(f.realized_pnl, 8),
                "side": f.side.value,
                "positionSide": "BOTH",
                "symbol": spec.venue_symbol,
                "time": f.time_ms,
            }
            for f in fills
        ]


def make_ccxt_client(emulator: BinanceUsdmEmulator, async_: bool = False) -> Exchange:
    """Create a ``binanceusdm`` client (sync, or ``ccxt.async_support`` with ``async_``) wired to
    the running ``emulator``.

    * API key and secret are the emulator's; every ``urls['api']`` entry is re-pointed to the
      emulator (same path, loopback host), so no request can leave 127.0.0.1.
    * ``options['fetchCurrencies'] = False``: with keys, ccxt's ``load_markets`` would otherwise
      call the spot wallet endpoint ``/sapi/v1/capital/config/getall``, which a futures-only
      venue plugin should not depend on. ``load_markets`` then hits only
      ``GET /fapi/v1/exchangeInfo`` (``options['fetchMarkets'] = {'types': ['linear']}``, the
      binanceusdm default, is set explicitly).
    * ``adjustForTimeDifference`` stays off (no ``/fapi/v1/time`` round trip);
      ``options['fetchOpenOrders']['warnWithoutSymbol'] = False`` lets ``fetch_open_orders()``
      run without a symbol; ``enableRateLimit`` is off (ccxt's client-side throttle would sleep
      1.5 s before each ``/fapi/v1/income`` call; the rate-limit error path is covered by
      :meth:`BinanceUsdmEmulator.rate_limit_next`).
    * ccxt picks Binance's futures-specific error codes (-4116 duplicate client id -> InvalidOrder,
      -2019 margin -> InsufficientFunds, -4164, -5021, ...) only when the URL starts with
      ``https://fapi.binance.com/``; on a loopback URL it would fall back to ExchangeError. The
      client's ``exceptions['exact'|'broad']`` are therefore merged with ``exceptions['linear']``
      so errors map to the same classes as against the real venue.

    The caller owns the client: ``client.close()`` (sync) or ``await client.close()`` (async).
    """
    client_class: Any = AsyncBinanceUsdm if async_ else SyncBinanceUsdm
    client: Any = client_class(
        {
            "apiKey": emulator.api_key,
            "secret": emulator.api_secret,
            "enableRateLimit": False,
            "options": {
                "fetchCurrencies": False,
                "fetchMarkets": {"types": ["linear"]},
                "adjustForTimeDifference": False,
                "fetchOpenOrders": {"warnWithoutSymbol": False},
            },
        }
    )
    api_urls: dict[str, str] = client.urls["api"]
    for name, url in list(api_urls.items()):
        api_urls[name] = emulator.base_url + urlsplit(url).path
    exceptions: dict[str, Any] = client.exceptions
    linear: dict[str, Any] = exceptions["linear"]
    for kind in ("exact", "broad"):
        exceptions[kind] = {**exceptions[kind], **linear.get(kind, {})}
    return client


__all__ = ["BINANCE_USDM_INSTRUMENTS", "BinanceUsdmEmulator", "make_ccxt_client"]
