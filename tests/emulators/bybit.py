"""Bybit v5 REST emulator (linear USDT perpetuals), as far as ccxt's ``bybit`` client sees it.

The account is a Unified Trading Account (UTA 2.0) in one-way, cross-margin mode. Endpoints:

* public: ``/v5/market/time``, ``/v5/market/instruments-info``, ``/v5/market/orderbook``,
  ``/v5/market/tickers``, ``/v5/market/funding/history``;
* private (``X-BAPI-API-KEY``/``-TIMESTAMP``/``-RECV-WINDOW``/``-SIGN``, HMAC-SHA256 over
  timestamp + key + recv window + query string or JSON body): ``/v5/asset/coin/query-info``,
  ``/v5/user/query-api``, ``/v5/account/info``, ``/v5/account/wallet-balance``,
  ``/v5/position/list``, ``/v5/position/set-leverage``, ``/v5/order/create``,
  ``/v5/order/cancel``, ``/v5/order/realtime``, ``/v5/order/history``, ``/v5/execution/list``.

Venue rules reproduced: every answer is HTTP 200 with ``retCode``/``retMsg`` (0 is success);
``orderLinkId`` is at most 36 of ``[A-Za-z0-9_-]`` and unique among all the account's orders
(110072); create and cancel answer only ``{orderId, orderLinkId}``; market orders are IOC and a
remainder with no liquidity is cancelled, as are FOK orders that cannot fill completely and
post-only orders that would take (accepted first, unlike Binance); ``/v5/order/realtime`` lists
open orders, but with ``orderId`` or ``orderLinkId`` it finds recent orders of any status
(priority orderId > orderLinkId > symbol); ``/v5/order/history`` lists orders no longer open.
Conditional and TP/SL orders are not emulated (retCode 10001).

Use :func:`make_ccxt_client` to get a ccxt client wired to a running emulator.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ccxt.async_support.bybit import bybit as AsyncBybit
from ccxt.base.exchange import Exchange
from ccxt.bybit import bybit as SyncBybit

from emulators._klines import DAILY, KlineBook
from emulators._perp_book import (
    ZERO,
    CloseReason,
    Fill,
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

BYBIT_LINEAR_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(
        symbol="BTC/USDT:USDT",
        venue_symbol="BTCUSDT",
        base="BTC",
        quote="USDT",
        tick_size=_D("0.10"),
        min_price=_D("0.10"),
        max_price=_D("1999999.80"),
        price_decimals=2,
        step_size=_D("0.001"),
        min_qty=_D("0.001"),
        max_qty=_D("1190"),
        max_market_qty=_D("119"),
        qty_decimals=3,
        min_notional=_D("5"),
        max_leverage=100,
        default_leverage=10,
        maint_margin_rate=_D("0.005"),
        onboard_ms=1585526400000,
    ),
    InstrumentSpec(
        symbol="ETH/USDT:USDT",
        venue_symbol="ETHUSDT",
        base="ETH",
        quote="USDT",
        tick_size=_D("0.01"),
        min_price=_D("0.01"),
        max_price=_D("199999.98"),
        price_decimals=2,
        step_size=_D("0.01"),
        min_qty=_D("0.01"),
        max_qty=_D("7240"),
        max_market_qty=_D("724"),
        qty_decimals=2,
        min_notional=_D("5"),
        max_leverage=100,
        default_leverage=10,
        maint_margin_rate=_D("0.005"),
        onboard_ms=1615766400000,
    ),
)
"""BTCUSDT and ETHUSDT with the filters Bybit publishes for them."""

_ORDER_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_TIME_IN_FORCE = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "PostOnly": TimeInForce.POST_ONLY,
}
_TIME_IN_FORCE_NAMES = {value: key for key, value in _TIME_IN_FORCE.items()}
_STATUS_NAMES = {
    OrderStatus.NEW: "New",
    OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    OrderStatus.FILLED: "Filled",
    # Bybit derivatives have no separate expired status: IOC/FOK/post-only leftovers and user
    # cancels are all "Cancelled" (partially filled ones keep their cumExecQty).
    OrderStatus.CANCELED: "Cancelled",
    OrderStatus.EXPIRED: "Cancelled",
}
_REJECT_REASONS = {
    CloseReason.NO_MORE_LIQUIDITY: "EC_NoImmediateQtyToFill",
    CloseReason.FOK_UNFILLABLE: "EC_CancelForNoFullFill",
    CloseReason.POST_ONLY_WOULD_TAKE: "EC_PostOnlyWillTakeLiquidity",
}
_UNSUPPORTED_ORDER_PARAMS = (
    "triggerPrice",
    "takeProfit",
    "stopLoss",
    "tpslMode",
    "trailingStop",
    "orderFilter",
)
_RECENT_ORDERS = 500
_SEVEN_DAYS_MS = 7 * 24 * 3_600_000
_RISK_LIMIT_VALUE = "2000000"


def _param_error(name: str) -> VenueError:
    return VenueError(10001, f"params error: {name} invalid", status=200)


def _missing_target() -> VenueError:
    return VenueError(
        10001,
        "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin",
        status=200,
    )


def _wire(value: object) -> str:
    """Flatten a JSON body value to the string form handlers read."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


class BybitEmulator(PerpVenueEmulator):
    """An emulated Bybit v5 unified account trading linear perpetuals on 127.0.0.1.

    Start it with ``with BybitEmulator() as emu:`` (or ``start()``/``stop()``); the control and
    fault methods are inherited from :class:`~emulators._perp_book.PerpVenueEmulator` and are
    safe to call from the test thread while a client talks to the server.
    """

    create_order_endpoint: ClassVar[str] = "POST /v5/order/create"
    default_reject: ClassVar[tuple[int, str]] = (110007, "ab not enough for new order")
    # The endpoints a seeded fault plan draws for, by call kind.
    call_kinds: ClassVar[Mapping[str, str]] = {
        "GET /v5/market/time": "clock",
        "POST /v5/order/create": "submit_order",
        "POST /v5/order/cancel": "cancel_order",
        "GET /v5/order/realtime": "order_lookup",
        "GET /v5/order/history": "list_orders",
        "GET /v5/execution/list": "fills",
        "GET /v5/position/list": "positions",
        "GET /v5/account/wallet-balance": "balance",
    }

    def __init__(
        self,
        *,
        api_key: str = "bybit-test-key",
        api_secret: str = "bybit-test-secret",
        balance: Num = "10000",
        taker_fee: Num = "0.00055",
        maker_fee: Num = "0.0002",
        instruments: tuple[InstrumentSpec, ...] = BYBIT_LINEAR_INSTRUMENTS,
    ) -> None:
        engine = PerpEngine(
            instruments,
            settle_asset="USDT",
            balance=to_decimal(balance),
            taker_fee=to_decimal(taker_fee),
            maker_fee=to_decimal(maker_fee),
            client_id_scope="all",
            reject_unfillable=False,
            order_id_factory=lambda: str(uuid.uuid4()),
            trade_id_factory=lambda: str(uuid.uuid4()),
        )
        super().__init__(engine, api_key=api_key, api_secret=api_secret)
        self._user_id = 100_000_001

    def __enter__(self) -> BybitEmulator:
        self.start()
        return self

    # ---- plumbing hooks -----------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("GET", "/v5/market/time", self._server_time, signed=False),
            Route("GET", "/v5/market/instruments-info", self._instruments, signed=False),
            Route("GET", "/v5/market/orderbook", self._orderbook, signed=False),
            Route("GET", "/v5/market/tickers", self._tickers, signed=False),
            Route("GET", "/v5/market/funding/history", self._funding_history, signed=False),
            Route("GET", "/v5/market/kline", self._klines, signed=False),
            Route("GET", "/v5/asset/coin/query-info", self._coin_info, signed=True),
            Route("GET", "/v5/user/query-api", self._api_key_info, signed=True),
            Route("GET", "/v5/account/info", self._account_info, signed=True),
            Route("GET", "/v5/account/wallet-balance", self._wallet_balance, signed=True),
            Route("GET", "/v5/position/list", self._position_list, signed=True),
            Route("POST", "/v5/position/set-leverage", self._set_leverage, signed=True),
            Route("POST", "/v5/order/create", self._create_order, signed=True),
            Route("POST", "/v5/order/cancel", self._cancel_order, signed=True),
            Route("GET", "/v5/order/realtime", self._realtime_orders, signed=True),
            Route("GET", "/v5/order/history", self._order_history, signed=True),
            Route("GET", "/v5/execution/list", self._executions, signed=True),
        ]

    def _parse_params(self, method: str, raw_query: str, raw_body: str) -> dict[str, str]:
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        if method == "POST" and raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                raise VenueError(10001, "params error: body is not valid JSON", status=200) from None
            if not isinstance(body, dict):
                raise VenueError(10001, "params error: body must be a JSON object", status=200)
            params.update({key: _wire(value) for key, value in body.items() if value is not None})
        # Bybit treats empty parameters as absent.
        return {key: value for key, value in params.items() if value != ""}

    def _authenticate(self, request: ParsedRequest) -> None:
        headers = request.headers
        api_key = headers.get("X-BAPI-API-KEY", "")
        if not api_key or not hmac.compare_digest(api_key, self.api_key):
            raise VenueError(10003, "API key is invalid.", status=200)
        timestamp_text = headers.get("X-BAPI-TIMESTAMP", "")
        recv_text = headers.get("X-BAPI-RECV-WINDOW", "5000")
        signature = headers.get("X-BAPI-SIGN", "")
        try:
            timestamp, recv_window = int(timestamp_text), int(recv_text)
        except ValueError:
            raise VenueError(
                10002,
                "invalid request, please check your timestamp and recv_window param",
                status=200,
            ) from None
        signed = request.raw_body if request.method == "POST" else request.raw_query
        origin = f"{timestamp_text}{api_key}{recv_text}{signed}"
        expected = hmac.new(self.api_secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise VenueError(10004, f"error sign! origin_string[{origin}]", status=200)
        now = request.received_ms
        if not now - recv_window <= timestamp < now + 1000:
            raise VenueError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{now}],recv_window[{recv_window}]",
                status=200,
            )

    def _success_body(self, payload: object) -> object:
        return {"retCode": 0, "retMsg": "OK", "result": payload, "retExtInfo": {}, "time": self._engine.now_ms()}

    def _error_body(self, error: VenueError) -> object:
        return {
            "retCode": error.code,
            "retMsg": error.message,
            "result": {},
            "retExtInfo": {},
            "time": self._engine.now_ms(),
        }

    def _venue_error(self, code: int, message: str) -> VenueError:
        return VenueError(code, message, status=200)

    def _rate_limit_error(self) -> VenueError:
        reset = self._engine.now_ms() + 1000
        return VenueError(
            10006,
            "Too many visits!",
            status=200,
            headers={
                "X-Bapi-Limit": "10",
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(reset),
            },
        )

    def _strip_fields(self, body: object) -> object:
        if isinstance(body, dict):
            return {**body, "result": {}}
        return body

    # ---- helpers ------------------------------------------------------------------------

    @staticmethod
    def _category(params: Mapping[str, str]) -> None:
        category = require(params, "category", _param_error)
        if category != "linear":
            raise VenueError(10001, "Illegal category", status=200)

    def _spec(self, params: Mapping[str, str]) -> InstrumentSpec:
        spec = self.engine.spec_by_venue_symbol(require(params, "symbol", _param_error))
        if spec is None:
            raise VenueError(10001, "params error: symbol invalid", status=200)
        return spec

    def _optional_spec(self, params: Mapping[str, str]) -> InstrumentSpec | None:
        return self._spec(params) if "symbol" in params else None

    def _specs(self, params: Mapping[str, str]) -> list[InstrumentSpec]:
        spec = self._optional_spec(params)
        return [spec] if spec is not None else list(self.engine.instruments)

    @staticmethod
    def _int_param(params: Mapping[str, str], name: str) -> int | None:
        value = params.get(name)
        return parse_int(value, name, _param_error) if value is not None else None

    def _limit(self, params: Mapping[str, str], default: int, maximum: int) -> int:
        limit = self._int_param(params, "limit")
        if limit is None:
            return default
        if not 1 <= limit <= maximum:
            raise _param_error("limit")
        return limit

    @staticmethod
    def _page(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def _reject(self, rejection: OrderRejected, spec: InstrumentSpec) -> VenueError:
        minimum = fmt_plain(spec.min_notional)
        table: dict[RejectReason, tuple[int, str]] = {
            RejectReason.QTY_NOT_POSITIVE: (10001, "Qty invalid"),
            RejectReason.QTY_STEP: (10001, "Qty invalid"),
            RejectReason.QTY_BELOW_MIN: (
                10001,
                "The number of contracts exceeds minimum limit allowed",
            ),
            RejectReason.QTY_ABOVE_MAX: (
                10001,
                "The number of contracts exceeds maximum limit allowed: too large",
            ),
            RejectReason.PRICE_NOT_POSITIVE: (10001, "Price invalid"),
            RejectReason.PRICE_TICK: (10001, "Price invalid"),
            RejectReason.PRICE_BELOW_MIN: (110003, "Order price exceeds the allowable range."),
            RejectReason.PRICE_ABOVE_MAX: (110003, "Order price exceeds the allowable range."),
            RejectReason.NOTIONAL_BELOW_MIN: (
                110094,
                f"Order does not meet minimum order value {minimum}USDT",
            ),
            RejectReason.DUPLICATE_CLIENT_ORDER_ID: (110072, "OrderLinkedID is duplicate"),
            RejectReason.INSUFFICIENT_MARGIN: (110007, "ab not enough for new order"),
            RejectReason.REDUCE_ONLY_REJECTED: (
                110017,
                "current position is zero, cannot fix reduce-only order qty",
            ),
            RejectReason.FOK_UNFILLABLE: (10001, "FOK order cannot be filled"),
            RejectReason.POST_ONLY_WOULD_TAKE: (10001, "PostOnly order would take liquidity"),
            RejectReason.ORDER_NOT_FOUND: (110001, "order not exists or too late to cancel"),
            RejectReason.ORDER_NOT_OPEN: (110001, "order not exists or too late to cancel"),
            RejectReason.INVALID_LEVERAGE: (10001, "leverage invalid"),
        }
        code, message = table[rejection.reason]
        return VenueError(code, message, status=200)

    def _order_json(self, order: Order) -> dict[str, Any]:
        spec = self.engine.spec(order.symbol)
        average = order.average_price
        leaves = order.remaining if order.is_open else ZERO
        quote_places = spec.price_decimals + spec.qty_decimals
        reject_reason = "EC_NoError"
        if order.close_reason is not None and order.close_reason is not CloseReason.USER_CANCEL:
            reject_reason = _REJECT_REASONS[order.close_reason]
        return {
            "orderId": order.order_id,
            "orderLinkId": order.client_order_id,
            "blockTradeId": "",
            "symbol": spec.venue_symbol,
            "price": spec.price_str(order.price) if order.price is not None else "0",
            "qty": spec.qty_str(order.quantity),
            "side": "Buy" if order.side is Side.BUY else "Sell",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": _STATUS_NAMES[order.status],
            "createType": "CreateByUser",
            "cancelType": "CancelByUser" if order.close_reason is CloseReason.USER_CANCEL else "UNKNOWN",
            "rejectReason": reject_reason,
            "avgPrice": fmt_plain(average) if average is not None else "0",
            "leavesQty": spec.qty_str(leaves),
            "leavesValue": fmt_plain(leaves * (order.price or ZERO)),
            "cumExecQty": spec.qty_str(order.filled_qty),
            "cumExecValue": fmt(order.filled_quote, quote_places),
            "cumExecFee": fmt_plain(order.fee),
            "cumFeeDetail": {self.engine.settle_asset: fmt_plain(order.fee)} if order.fee else {},
            # Bybit runs every market order as IOC.
            "timeInForce": _TIME_IN_FORCE_NAMES[order.time_in_force] if order.order_type is OrderType.LIMIT else "IOC",
            "orderType": "Limit" if order.order_type is OrderType.LIMIT else "Market",
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": "",
            "slippageToleranceType": "UNKNOWN",
            "slippageTolerance": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpslMode": "",
            "ocoTriggerBy": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "basePrice": "",
            "reduceOnly": order.reduce_only,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(order.created_ms),
            "updatedTime": str(order.updated_ms),
        }

    # ---- public market data -------------------------------------------------------------

    def _server_time(self, _: ParsedRequest) -> dict[str, Any]:
        now = self._engine.now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _instruments(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        status = params.get("status", "Trading")
        rows = []
        for spec in self.engine.instruments:
            if status != "Trading" or params.get("symbol", spec.venue_symbol) != spec.venue_symbol:
                continue
            rows.append(
                {
                    "symbol": spec.venue_symbol,
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": spec.base,
                    "quoteCoin": spec.quote,
                    "launchTime": str(spec.onboard_ms),
                    "deliveryTime": "0",
                    "deliveryFeeRate": "",
                    "priceScale": str(spec.price_decimals),
                    "leverageFilter": {
                        "minLeverage": "1",
                        "maxLeverage": fmt(Decimal(spec.max_leverage), 2),
                        "leverageStep": "0.01",
                    },
                    "priceFilter": {
                        "minPrice": spec.price_str(spec.min_price),
                        "maxPrice": spec.price_str(spec.max_price),
                        "tickSize": spec.price_str(spec.tick_size),
                    },
                    "lotSizeFilter": {
                        "maxOrderQty": spec.qty_str(spec.max_qty),
                        "minOrderQty": spec.qty_str(spec.min_qty),
                        "qtyStep": spec.qty_str(spec.step_size),
                        "postOnlyMaxOrderQty": spec.qty_str(spec.max_qty),
                        "maxMktOrderQty": spec.qty_str(spec.max_market_qty),
                        "minNotionalValue": fmt_plain(spec.min_notional),
                    },
                    "unifiedMarginTrade": True,
                    "fundingInterval": spec.funding_interval_hours * 60,
                    "settleCoin": spec.settle,
                    "copyTrading": "both",
                    "upperFundingRate": "0.00375",
                    "lowerFundingRate": "-0.00375",
                    "isPreListing": False,
                    "preListingInfo": None,
                    "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
                    "displayName": "",
                }
            )
        return self._page(rows)

    def _orderbook(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._spec(params)
        limit = self._limit(params, 25, 500)
        bids, asks, update_id, updated = self.engine.order_book(spec.symbol, limit)
        return {
            "s": spec.venue_symbol,
            "b": [[spec.price_str(p), spec.qty_str(q)] for p, q in bids],
            "a": [[spec.price_str(p), spec.qty_str(q)] for p, q in asks],
            "ts": self._engine.now_ms(),
            "u": update_id,
            "seq": update_id,
            "cts": updated,
        }

    def _tickers(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        rows = [self._ticker(spec) for spec in self._specs(params)]
        return {"category": "linear", "list": rows}

    def _ticker(self, spec: InstrumentSpec) -> dict[str, Any]:
        stats = self.engine.trade_stats(spec.symbol)
        bids, asks, _, _ = self.engine.order_book(spec.symbol, 1)
        mark = self.engine.mark_price(spec.symbol)
        rate, next_time = self.engine.funding(spec.symbol)
        last = stats.last_price if stats.last_price is not None else ZERO
        opened = stats.open_price if stats.open_price is not None else last
        change = (last - opened) / opened if opened else ZERO
        open_interest = abs(self.engine.position(spec.symbol).qty)
        return {
            "symbol": spec.venue_symbol,
            "lastPrice": spec.price_str(last),
            "indexPrice": spec.price_str(mark) if mark is not None else "",
            "markPrice": spec.price_str(mark) if mark is not None else "",
            "prevPrice24h": spec.price_str(opened),
            "price24hPcnt": fmt(change, 6),
            "highPrice24h": spec.price_str(stats.high_price or last),
            "lowPrice24h": spec.price_str(stats.low_price or last),
            "prevPrice1h": spec.price_str(opened),
            "openInterest": spec.qty_str(open_interest),
            "openInterestValue": fmt(open_interest * (mark or ZERO), 2),
            "turnover24h": fmt_plain(stats.quote_volume),
            "volume24h": spec.qty_str(stats.volume),
            "fundingRate": fmt_plain(rate),
            "nextFundingTime": str(next_time),
            "predictedDeliveryPrice": "",
            "basisRate": "",
            "deliveryFeeRate": "",
            "deliveryTime": "0",
            "ask1Size": spec.qty_str(asks[0][1]) if asks else "",
            "bid1Price": spec.price_str(bids[0][0]) if bids else "",
            "ask1Price": spec.price_str(asks[0][0]) if asks else "",
            "bid1Size": spec.qty_str(bids[0][1]) if bids else "",
            "basis": "",
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
            "fundingIntervalHour": str(spec.funding_interval_hours),
            "fundingCap": "0.00375",
        }

    def _funding_history(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._spec(params)
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        limit = self._limit(params, 200, 200)
        records = [
            r
            for r in reversed(self.engine.funding_history(spec.symbol))
            if (start is None or r.funding_time_ms >= start) and (end is None or r.funding_time_ms <= end)
        ][:limit]
        rows = [
            {
                "symbol": spec.venue_symbol,
                "fundingRate": fmt_plain(r.rate),
                "fundingRateTimestamp": str(r.funding_time_ms),
            }
            for r in records
        ]
        return {"category": "linear", "list": rows}

    @functools.cached_property
    def klines(self) -> KlineBook:
        """The daily candles ``/v5/market/kline`` serves; load them with ``klines.load``."""
        return KlineBook()

    def _klines(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._spec(params)
        if require(params, "interval", _param_error) not in DAILY:
            raise VenueError(10001, "params error: interval invalid", status=200)
        candles = self.klines.select(
            spec.venue_symbol,
            self._int_param(params, "start"),
            self._int_param(params, "end"),
            self._limit(params, 200, 1000),
        )
        # Bybit lists the newest candle first.
        rows = [
            [
                str(c.open_ms),
                fmt_plain(c.open),
                fmt_plain(c.high),
                fmt_plain(c.low),
                fmt_plain(c.close),
                fmt_plain(c.volume),
                fmt_plain(c.volume * c.close),
            ]
            for c in reversed(candles)
        ]
        return {"category": "linear", "symbol": spec.venue_symbol, "list": rows}

    # ---- account ------------------------------------------------------------------------

    def _coin_info(self, _: ParsedRequest) -> dict[str, Any]:
        chains = {"USDT": ("ETH", "ERC20", "6"), "BTC": ("BTC", "BTC", "8"), "ETH": ("ETH", "ETH", "8")}
        coins = {self.engine.settle_asset} | {spec.base for spec in self.engine.instruments}
        rows = []
        for coin in sorted(coins):
            chain, chain_type, accuracy = chains.get(coin, (coin, coin, "8"))
            rows.append(
                {
                    "name": coin,
                    "coin": coin,
                    "remainAmount": "1000000",
                    "chains": [
                        {
                            "chainType": chain_type,
                            "confirmation": "6",
                            "withdrawFee": "1",
                            "depositMin": "0",
                            "withdrawMin": "1",
                            "chain": chain,
                            "chainDeposit": "1",
                            "chainWithdraw": "1",
                            "minAccuracy": accuracy,
                            "withdrawPercentageFee": "0",
                            "contractAddress": "",
                            "safeConfirmNumber": "12",
                        }
                    ],
                }
            )
        return {"rows": rows}

    def _api_key_info(self, _: ParsedRequest) -> dict[str, Any]:
        return {
            "id": "1",
            "note": "emulator",
            "apiKey": self.api_key,
            "readOnly": 0,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"],
                "Spot": [],
                "Wallet": ["AccountTransfer"],
                "Options": [],
                "Derivatives": ["DerivativesTrade"],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
                "Affiliate": [],
            },
            "ips": ["*"],
            "type": 1,
            "deadlineDay": -1,
            "expiredAt": "",
            "createdAt": "2024-01-01T00:00:00Z",
            "unified": 0,
            "uta": 1,
            "userID": self._user_id,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def _account_info(self, _: ParsedRequest) -> dict[str, Any]:
        return {
            "unifiedMarginStatus": 6,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": "1704067200000",
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
        }

    def _wallet_balance(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        if require(params, "accountType", _param_error) != "UNIFIED":
            raise VenueError(10001, "accountType only support UNIFIED.", status=200)
        wanted = params.get("coin")
        account = self.engine.account()
        coins = []
        if wanted is None or account.asset in wanted.split(","):
            coins.append(
                {
                    "coin": account.asset,
                    "equity": fmt_plain(account.margin_balance),
                    "usdValue": fmt_plain(account.margin_balance),
                    "walletBalance": fmt_plain(account.wallet_balance),
                    "free": "",
                    "locked": "0",
                    "spotHedgingQty": "0",
                    "borrowAmount": "0",
                    # Deprecated for unified accounts: Bybit answers "" here since 2025.
                    "availableToWithdraw": "",
                    "accruedInterest": "0",
                    "totalOrderIM": fmt_plain(account.open_order_initial_margin),
                    "totalPositionIM": fmt_plain(account.position_initial_margin),
                    "totalPositionMM": fmt_plain(account.maint_margin),
                    "unrealisedPnl": fmt_plain(account.unrealized_pnl),
                    "cumRealisedPnl": fmt_plain(account.realized_pnl),
                    "bonus": "0",
                    "marginCollateral": True,
                    "collateralSwitch": True,
                    "availableToBorrow": "",
                }
            )
        equity = account.margin_balance
        im_rate = account.initial_margin / equity if equity > 0 else ZERO
        mm_rate = account.maint_margin / equity if equity > 0 else ZERO
        return {
            "list": [
                {
                    "accountType": "UNIFIED",
                    "accountIMRate": fmt(im_rate, 4),
                    "accountMMRate": fmt(mm_rate, 4),
                    "totalEquity": fmt_plain(equity),
                    "totalWalletBalance": fmt_plain(account.wallet_balance),
                    "totalMarginBalance": fmt_plain(equity),
                    "totalAvailableBalance": fmt_plain(account.available_balance),
                    "totalPerpUPL": fmt_plain(account.unrealized_pnl),
                    "totalInitialMargin": fmt_plain(account.initial_margin),
                    "totalMaintenanceMargin": fmt_plain(account.maint_margin),
                    "accountLTV": "0",
                    "coin": coins,
                }
            ]
        }

    def _position_json(self, position: PositionSnapshot) -> dict[str, Any]:
        spec = self.engine.spec(position.symbol)
        flat = position.qty == 0
        side = "" if flat else ("Buy" if position.qty > 0 else "Sell")
        liquidation = position.liquidation_price
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": _RISK_LIMIT_VALUE,
            "symbol": spec.venue_symbol,
            "side": side,
            "size": spec.qty_str(abs(position.qty)),
            "avgPrice": fmt_plain(position.entry_price) if not flat else "0",
            "positionValue": fmt_plain(position.entry_value) if not flat else "",
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 0 if flat else 2,
            "leverage": str(position.leverage),
            "positionBalance": fmt_plain(position.initial_margin),
            "markPrice": spec.price_str(position.mark_price),
            "liqPrice": fmt_plain(liquidation) if liquidation is not None else "",
            "bustPrice": "",
            "positionMM": fmt_plain(position.maint_margin),
            "positionIM": fmt_plain(position.initial_margin),
            "tpslMode": "Full",
            "takeProfit": "0.00",
            "stopLoss": "0.00",
            "trailingStop": "0.00",
            "unrealisedPnl": fmt_plain(position.unrealized_pnl),
            "curRealisedPnl": fmt_plain(position.realized_pnl),
            "cumRealisedPnl": fmt_plain(position.realized_pnl),
            "seq": position.updated_ms,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "sessionAvgPrice": "",
            "createdTime": str(position.created_ms),
            "updatedTime": str(position.updated_ms),
        }

    def _position_list(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        limit = self._limit(params, 20, 200)
        if "symbol" in params:
            # Asked by symbol, Bybit answers the position even when it is flat.
            spec = self._spec(params)
            rows = [self._position_json(self.engine.position(spec.symbol))]
        elif "settleCoin" in params or "baseCoin" in params:
            settle = params.get("settleCoin", self.engine.settle_asset)
            base = params.get("baseCoin")
            rows = [
                self._position_json(p)
                for p in self.engine.account().positions
                if p.qty != 0
                and settle == self.engine.settle_asset
                and (base is None or self.engine.spec(p.symbol).base == base)
            ]
        else:
            raise VenueError(
                10001,
                "Missing some parameters that must be filled in, symbol or settleCoin",
                status=200,
            )
        return self._page(rows[:limit])

    def _set_leverage(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._spec(params)
        buy = parse_decimal(require(params, "buyLeverage", _param_error), "buyLeverage", _param_error)
        sell = parse_decimal(require(params, "sellLeverage", _param_error), "sellLeverage", _param_error)
        if buy != sell:
            raise VenueError(10001, "buyLeverage must be equal to sellLeverage", status=200)
        if buy != buy.to_integral_value():
            # The engine keeps whole leverage; Bybit itself allows steps of 0.01.
            raise VenueError(10001, "leverage invalid", status=200)
        leverage = int(buy)
        if leverage == self.engine.leverage(spec.symbol):
            raise VenueError(110043, "leverage not modified", status=200)
        try:
            self.engine.set_leverage(spec.symbol, leverage)
        except OrderRejected as rejection:
            raise self._reject(rejection, spec) from None
        return {}

    def _executions(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._optional_spec(params)
        exec_type = params.get("execType")
        order_id = params.get("orderId")
        link_id = params.get("orderLinkId")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        limit = self._limit(params, 50, 100)
        if start is None and end is None:
            # Without a time range Bybit answers the last seven days of its own clock.
            start = self.engine.now_ms() - _SEVEN_DAYS_MS
        rows: list[tuple[int, dict[str, Any]]] = []
        if exec_type in (None, "Trade"):
            for fill in self.engine.fills(spec.symbol if spec else None):
                if (order_id is None or fill.order_id == order_id) and (
                    link_id is None or fill.client_order_id == link_id
                ):
                    rows.append((fill.time_ms, self._execution_json(fill)))
        if exec_type in (None, "Funding") and order_id is None and link_id is None:
            for income in self.engine.incomes():
                if income.income_type is IncomeType.FUNDING_FEE and (spec is None or income.symbol == spec.symbol):
                    rows.append((income.time_ms, self._funding_json(income)))
        selected = [
            row
            for at, row in sorted(rows, key=lambda item: item[0], reverse=True)
            if (start is None or at >= start) and (end is None or at <= end)
        ]
        return self._page(selected[:limit])

    def _execution_json(self, fill: Fill) -> dict[str, Any]:
        spec = self.engine.spec(fill.symbol)
        return {
            "symbol": spec.venue_symbol,
            "orderType": "Limit" if fill.order_type is OrderType.LIMIT else "Market",
            "underlyingPrice": "",
            "orderLinkId": fill.client_order_id,
            "side": "Buy" if fill.side is Side.BUY else "Sell",
            "indexPrice": "",
            "orderId": fill.order_id,
            "stopOrderType": "UNKNOWN",
            "leavesQty": spec.qty_str(fill.leaves_qty),
            "execTime": str(fill.time_ms),
            "feeCurrency": "",
            "isMaker": fill.is_maker,
            "execFee": fmt_plain(fill.fee),
            "feeRate": fmt_plain(fill.fee_rate),
            "execId": fill.trade_id,
            "tradeIv": "",
            "blockTradeId": "",
            "markPrice": spec.price_str(fill.mark_price) if fill.mark_price is not None else "",
            "execPrice": spec.price_str(fill.price),
            "markIv": "",
            "orderQty": spec.qty_str(fill.order_qty),
            "orderPrice": spec.price_str(fill.order_price) if fill.order_price else "0",
            "execValue": fmt_plain(fill.price * fill.qty),
            "execType": "Trade",
            "execQty": spec.qty_str(fill.qty),
            "closedSize": spec.qty_str(fill.closed_qty),
            "extraFees": "",
            "seq": fill.time_ms,
        }

    def _funding_json(self, income: Income) -> dict[str, Any]:
        spec = self.engine.spec(income.symbol)
        qty = income.position_qty or ZERO
        mark = income.mark_price or ZERO
        return {
            "symbol": spec.venue_symbol,
            "orderType": "UNKNOWN",
            "underlyingPrice": "",
            "orderLinkId": "",
            "side": "Buy" if qty > 0 else "Sell",
            "indexPrice": "",
            "orderId": "",
            "stopOrderType": "UNKNOWN",
            "leavesQty": "0",
            "execTime": str(income.time_ms),
            "feeCurrency": "",
            "isMaker": False,
            # Bybit reports funding as a fee: positive when the account paid.
            "execFee": fmt_plain(-income.amount),
            "feeRate": fmt_plain(income.funding_rate or ZERO),
            "execId": income.funding_id,
            "tradeIv": "",
            "blockTradeId": "",
            "markPrice": spec.price_str(mark),
            "execPrice": spec.price_str(mark),
            "markIv": "",
            "orderQty": "0",
            "orderPrice": "0",
            "execValue": fmt_plain(abs(qty) * mark),
            "execType": "Funding",
            "execQty": spec.qty_str(abs(qty)),
            "closedSize": "0",
            "extraFees": "",
            "seq": income.time_ms,
        }

    # ---- orders -------------------------------------------------------------------------

    def _create_order(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._spec(params)
        for name in _UNSUPPORTED_ORDER_PARAMS:
            if name in params:
                raise VenueError(10001, f"params error: {name} orders are not emulated", status=200)
        side_name = require(params, "side", _param_error)
        if side_name not in ("Buy", "Sell"):
            raise _param_error("side")
        type_name = require(params, "orderType", _param_error)
        if type_name not in ("Market", "Limit"):
            raise _param_error("orderType")
        if params.get("positionIdx", "0") != "0":
            raise VenueError(10001, "position idx not match position mode", status=200)
        quantity = parse_decimal(require(params, "qty", _param_error), "qty", _param_error)
        order_type = OrderType.LIMIT if type_name == "Limit" else OrderType.MARKET
        price: Decimal | None = None
        time_in_force = TimeInForce.IOC
        if order_type is OrderType.LIMIT:
            price = parse_decimal(require(params, "price", _param_error), "price", _param_error)
            tif_name = params.get("timeInForce", "GTC")
            if tif_name not in _TIME_IN_FORCE:
                raise _param_error("timeInForce")
            time_in_force = _TIME_IN_FORCE[tif_name]
        link_id = params.get("orderLinkId", "")
        if link_id and not _ORDER_LINK_ID.match(link_id):
            raise _param_error("orderLinkId")
        try:
            order = self.engine.place_order(
                symbol=spec.symbol,
                side=Side.BUY if side_name == "Buy" else Side.SELL,
                order_type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=time_in_force,
                reduce_only=params.get("reduceOnly", "false") == "true",
                client_order_id=link_id,
            )
        except OrderRejected as rejection:
            raise self._reject(rejection, spec) from None
        return {"orderId": order.order_id, "orderLinkId": order.client_order_id}

    def _cancel_order(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._spec(params)
        order_id = params.get("orderId")
        link_id = params.get("orderLinkId")
        if order_id is None and link_id is None:
            raise VenueError(10001, "params error: orderId or orderLinkId is required", status=200)
        try:
            order = self.engine.cancel_order(spec.symbol, order_id=order_id, client_order_id=link_id)
        except OrderRejected as rejection:
            raise self._reject(rejection, spec) from None
        return {"orderId": order.order_id, "orderLinkId": order.client_order_id}

    def _realtime_orders(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._optional_spec(params)
        limit = self._limit(params, 20, 50)
        order_id = params.get("orderId")
        link_id = params.get("orderLinkId")
        if (
            spec is None
            and order_id is None
            and link_id is None
            and not ("settleCoin" in params or "baseCoin" in params)
        ):
            raise _missing_target()
        recent = self.engine.orders()[-_RECENT_ORDERS:]
        if spec is not None:
            recent = [o for o in recent if o.symbol == spec.symbol]
        if "baseCoin" in params:
            recent = [o for o in recent if self.engine.spec(o.symbol).base == params["baseCoin"]]
        if order_id is not None:
            # Looked up by id, recent orders of any status are found (orderId wins).
            selected = [o for o in recent if o.order_id == order_id]
        elif link_id is not None:
            selected = [o for o in recent if o.client_order_id == link_id]
        elif params.get("openOnly", "0") == "1":
            selected = [o for o in recent if not o.is_open]
        else:
            selected = [o for o in recent if o.is_open]
        selected.sort(key=lambda o: o.created_ms, reverse=True)
        return self._page([self._order_json(o) for o in selected[:limit]])

    def _order_history(self, request: ParsedRequest) -> dict[str, Any]:
        params = request.params
        self._category(params)
        spec = self._optional_spec(params)
        limit = self._limit(params, 20, 50)
        order_id = params.get("orderId")
        link_id = params.get("orderLinkId")
        wanted_status = params.get("orderStatus")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        selected = []
        for order in self.engine.orders(spec.symbol if spec else None):
            status = _STATUS_NAMES[order.status]
            if wanted_status is not None:
                if status not in wanted_status.split(","):
                    continue
            elif order.is_open:
                continue
            if order_id is not None and order.order_id != order_id:
                continue
            if link_id is not None and order.client_order_id != link_id:
                continue
            if (start is not None and order.created_ms < start) or (end is not None and order.created_ms > end):
                continue
            selected.append(order)
        selected.sort(key=lambda o: o.created_ms, reverse=True)
        return self._page([self._order_json(o) for o in selected[:limit]])


def make_ccxt_client(emulator: BybitEmulator, async_: bool = False) -> Exchange:
    """Create a ``bybit`` client (sync, or ``ccxt.async_support`` with ``async_``) wired to the
    running ``emulator``.

    * API key and secret are the emulator's; every ``urls['api']`` entry is re-pointed to the
      emulator, so no request can leave 127.0.0.1.
    * ``options['fetchMarkets'] = {'types': ['linear']}``: ccxt's default also loads spot,
      inverse and six option chains. ``load_markets`` then calls
      ``GET /v5/asset/coin/query-info`` (currencies, signed: ccxt does it whenever keys are set)
      and ``GET /v5/market/instruments-info`` twice (``category=linear`` and
      ``status=PreLaunch``), all emulated.
    * The first private call that needs the account type (create_order, fetch_order,
      fetch_balance, ...) makes ccxt call ``/v5/user/query-api`` and ``/v5/account/info``; both are
      emulated (``uta: 1``, ``unifiedMarginStatus: 6``), so nothing is pinned in options.
    * ``adjustForTimeDifference`` stays off; ``enableRateLimit`` is off (loopback; the rate-limit
      error path is covered by :meth:`BybitEmulator.rate_limit_next`).

    The caller owns the client: ``client.close()`` (sync) or ``await client.close()`` (async).
    """
    client_class: Any = AsyncBybit if async_ else SyncBybit
    client: Any = client_class(
        {
            "apiKey": emulator.api_key,
            "secret": emulator.api_secret,
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": ["linear"]},
                "adjustForTimeDifference": False,
                "defaultType": "swap",
                "defaultSubType": "linear",
                "defaultSettle": "USDT",
            },
        }
    )
    api_urls: dict[str, str] = client.urls["api"]
    for name, url in list(api_urls.items()):
        api_urls[name] = emulator.base_url + urlsplit(url).path
    return client


__all__ = ["BYBIT_LINEAR_INSTRUMENTS", "BybitEmulator", "make_ccxt_client"]
