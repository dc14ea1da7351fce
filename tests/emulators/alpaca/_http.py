"""aiohttp applications for the trading API (plus its websocket) and the market data API."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .._fault_plan import ORDER_FAULTS, Fault, FiredFault
from .._http_faults import CallControl, CallEvent, run_with_fault
from ._broker import Broker, HeldFill
from ._data import DEFAULT_LIMIT, MAX_LIMIT, BarStore, timeframe_length
from ._faults import FaultBook, HttpFault, RecordedRequest, RequestLog
from ._stream import StreamHub
from ._wire import (
    GATEWAY_TIMEOUT_HTML,
    ApiError,
    default_error_body,
    dumps_json,
    loads_json,
    parse_time,
)

# Activity types Alpaca documents for GET /v2/account/activities/{activity_type}.
ACTIVITY_TYPES = frozenset(
    {
        "FILL",
        "TRANS",
        "MISC",
        "ACATC",
        "ACATS",
        "CFEE",
        "CSD",
        "CSW",
        "DIV",
        "DIVCGL",
        "DIVCGS",
        "DIVFEE",
        "DIVFT",
        "DIVNRA",
        "DIVROC",
        "DIVTW",
        "DIVTXEX",
        "FEE",
        "INT",
        "INTNRA",
        "INTTW",
        "JNL",
        "JNLC",
        "JNLS",
        "MA",
        "NC",
        "OPASN",
        "OPEXP",
        "OPXRC",
        "PTC",
        "PTR",
        "REORG",
        "SC",
        "SSO",
        "SSP",
    }
)
MAX_ACTIVITY_PAGE = 100
KEY_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"
_BODY_KEY = web.RequestKey("alpaca_emulator_body", object)
_HELD_FILL_KEY = web.RequestKey("alpaca_emulator_held_fill", object)

# Every route of the trading and data APIs and the call kind a fault plan draws for it;
# None: no seeded faults (configuration, the websocket handshake). Add a route here.
TRADING_ROUTES: tuple[tuple[str, str, str, str | None], ...] = (
    ("GET", "/v2/account", "get_account", "account"),
    ("GET", "/v2/account/configurations", "get_configurations", "account"),
    ("PATCH", "/v2/account/configurations", "patch_configurations", None),
    ("GET", "/v2/positions", "get_positions", "positions"),
    ("DELETE", "/v2/positions", "close_all_positions", None),
    ("GET", "/v2/positions/{symbol}", "get_position", "positions"),
    ("DELETE", "/v2/positions/{symbol}", "close_position", None),
    ("POST", "/v2/orders", "post_order", "submit_order"),
    ("GET", "/v2/orders", "get_orders", "list_orders"),
    ("DELETE", "/v2/orders", "cancel_all_orders", "cancel_order"),
    ("GET", "/v2/orders:by_client_order_id", "get_order_by_client_id", "order_by_client_id"),
    ("GET", "/v2/orders/{order_id}", "get_order", "order_by_id"),
    ("DELETE", "/v2/orders/{order_id}", "delete_order", "cancel_order"),
    ("GET", "/v2/account/activities/{activity_type}", "get_activities_by_type", "fills"),
    ("GET", "/v2/assets", "get_assets", "assets"),
    ("GET", "/v2/assets/{symbol}", "get_asset", "assets"),
    ("GET", "/v2/clock", "get_clock", "clock"),
    ("GET", "/v2/calendar", "get_calendar", "calendar"),
)
DATA_ROUTES: tuple[tuple[str, str, str | None], ...] = (
    ("GET", "/v2/stocks/bars", "bars"),
    ("GET", "/v2/stocks/trades/latest", "latest_trades"),
)
# The call kinds a fault plan can draw for, plus the trade updates of the websocket.
CALL_KINDS: frozenset[str] = frozenset(
    {k for *_, k in TRADING_ROUTES if k is not None} | {k for *_, k in DATA_ROUTES if k is not None} | {"trade_update"}
)
_KIND_BY_ROUTE: dict[tuple[str, str], str] = {
    **{(m, p): k for m, p, _, k in TRADING_ROUTES if k is not None},
    **{(m, p): k for m, p, k in DATA_ROUTES if k is not None},
}


def json_response(payload: Any, status: int = 200) -> web.Response:
    """Return a JSON response serialized the way the emulator serializes every body."""
    return web.Response(text=dumps_json(payload), status=status, content_type="application/json")


def error_response(error: ApiError) -> web.Response:
    """Return an ApiError as Alpaca's JSON error response."""
    return json_response(error.body(), status=error.status)


class Shared:
    """What both applications need: credentials, faults, the request log and the shutdown flag."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        faults: FaultBook,
        log: RequestLog,
        control: CallControl,
        on_request: Callable[[], None],
    ) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.faults = faults
        self.log = log
        self.control = control
        self.on_request = on_request
        self.closing: threading.Event = control.closing

    async def pause(self, seconds: float) -> None:
        """Sleep for an injected delay, cut short when the emulator shuts down."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.closing.is_set():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.05, remaining))


def _injected_error(fault: HttpFault) -> web.Response:
    if fault.body is not None:
        return web.Response(text=fault.body, status=fault.status, content_type=fault.content_type)
    if fault.status == 504:
        return web.Response(text=GATEWAY_TIMEOUT_HTML, status=504, content_type="text/html")
    return json_response(default_error_body(fault.status), status=fault.status)


def _strip_fields(payload: Any, fields: tuple[str, ...]) -> Any:
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k not in fields}
    if isinstance(payload, list):
        return [_strip_fields(item, fields) for item in payload]
    return payload


def make_middleware(shared: Shared, auth_failure: Callable[[bool], web.Response]) -> Middleware:
    """Build the middleware that records, authenticates and applies armed faults to every request.

    `auth_failure(headers_present)` renders the API's answer to missing or wrong keys.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            text = await request.text()
            try:
                body = loads_json(text) if text else None
            except ValueError:
                body = text
        request[_BODY_KEY] = body
        headers = {k: ("***" if k.lower() == SECRET_HEADER.lower() else v) for k, v in request.headers.items()}
        entry = RecordedRequest(request.method, request.path, dict(request.query), body, headers=headers)
        shared.log.add(entry)

        response = await _dispatch(request, handler, shared, entry, auth_failure)
        entry.status = response.status
        return response

    return middleware


async def _dispatch(
    request: web.Request,
    handler: Handler,
    shared: Shared,
    entry: RecordedRequest,
    auth_failure: Callable[[bool], web.Response],
) -> web.StreamResponse:
    if request.path != "/stream":
        key = request.headers.get(KEY_HEADER)
        secret = request.headers.get(SECRET_HEADER)
        if key is None or secret is None:
            return auth_failure(False)
        if key != shared.api_key or secret != shared.secret_key:
            return auth_failure(True)

    shared.on_request()
    fault = shared.faults.take(request.method, request.path)
    if fault is None:
        return await _dispatch_planned(request, handler, shared)
    entry.fault = fault.kind
    if fault is not None and not fault.after_processing:
        if fault.kind == "delay":
            await shared.pause(fault.seconds)
        elif fault.kind == "error":
            return _injected_error(fault)

    response = await _handle(request, handler)
    if fault.kind == "malformed" and isinstance(response, web.Response) and response.text:
        stripped = _strip_fields(json.loads(response.text), fault.drop_fields)
        return json_response(stripped, status=response.status)
    if fault.after_processing:
        if fault.kind == "delay":
            await shared.pause(fault.seconds)
        elif fault.kind == "error":
            return _injected_error(fault)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPNotFound:
        return json_response({"code": 40410000, "message": "endpoint not found"}, status=404)
    except web.HTTPMethodNotAllowed:
        return json_response({"code": 40510000, "message": "method not allowed"}, status=405)


def _client_order_id(request: web.Request) -> str | None:
    body = request[_BODY_KEY]
    if isinstance(body, dict) and isinstance(body.get("client_order_id"), str):
        return str(body["client_order_id"])
    return request.query.get("client_order_id")


async def _dispatch_planned(request: web.Request, handler: Handler, shared: Shared) -> web.StreamResponse:
    """Run a request under the fault the seeded plan draws for its call kind (if it has one)."""
    route = request.match_info.route.resource
    kind = _KIND_BY_ROUTE.get((request.method, route.canonical)) if route is not None else None
    if kind is None:
        return await _handle(request, handler)
    draw = shared.control.plan.draw(kind)
    client_order_id = _client_order_id(request)
    if draw.fault in ORDER_FAULTS:
        # Late and partial fills change how the order executes, not how the POST is answered.
        fraction = Decimal(str(draw.fraction)) if draw.fault is Fault.PARTIAL_FILL else None
        request[_HELD_FILL_KEY] = HeldFill(draw.after_requests, fraction)
        detail = f"after {draw.after_requests} requests or a clock move"
        shared.control.plan.record(FiredFault(kind, draw.n, draw.fault, client_order_id, detail))
    event = CallEvent(
        kind=kind,
        n=draw.n,
        phase="before",
        method=request.method,
        path=request.path,
        body=request[_BODY_KEY],
        client_order_id=client_order_id,
        fault=draw.fault,
    )
    return await run_with_fault(request, shared.control, draw, event, lambda: _handle(request, handler), _planned_error)


def _planned_error(status: int) -> web.Response:
    if status == 504:
        return web.Response(text=GATEWAY_TIMEOUT_HTML, status=504, content_type="text/html")
    return json_response(default_error_body(status), status=status)


def _trading_auth_failure(headers_present: bool) -> web.Response:
    if not headers_present:
        # Alpaca's gateway answers a request without both key headers with a bare 403.
        return json_response({"message": "forbidden."}, status=403)
    return json_response({"code": 40110000, "message": "request is not authorized"}, status=401)


def _data_auth_failure(_headers_present: bool) -> web.Response:
    return json_response({"message": "forbidden"}, status=403)


def _query_int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(422, f"invalid {name}", 40010001) from exc
    if value < 1:
        raise ApiError(422, f"invalid {name}", 40010001)
    return min(value, maximum)


def _query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    return parse_time(raw, name) if raw else None


def _query_date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    return parse_time(raw, name).date() if raw else None


class TradingApi:
    """Handlers of the trading REST API."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def get_account(self, _request: web.Request) -> web.Response:
        """Answer GET /v2/account."""
        return json_response(self.broker.account_json())

    async def get_configurations(self, _request: web.Request) -> web.Response:
        """Answer GET /v2/account/configurations."""
        with self.broker.lock:
            return json_response(self.broker.config.to_json())

    async def patch_configurations(self, request: web.Request) -> web.Response:
        """Apply PATCH /v2/account/configurations and answer the new configuration."""
        body = request[_BODY_KEY]
        if not isinstance(body, dict):
            raise ApiError(400, "request body format is invalid", 40010000)
        with self.broker.lock:
            config = self.broker.config
            for name in (
                "fractional_trading",
                "no_shorting",
                "suspend_trade",
                "ptp_no_exception_entry",
            ):
                if name in body:
                    setattr(config, name, bool(body[name]))
            for name in ("max_margin_multiplier", "trade_confirm_email"):
                if name in body and body[name] is not None:
                    setattr(config, name, str(body[name]))
            return json_response(config.to_json())

    async def get_positions(self, _request: web.Request) -> web.Response:
        """Answer GET /v2/positions."""
        return json_response(self.broker.snapshot_positions())

    async def get_position(self, request: web.Request) -> web.Response:
        """Answer GET /v2/positions/{symbol_or_asset_id}."""
        pos = self.broker.find_position(request.match_info["symbol"])
        if pos is None:
            raise ApiError(404, "position does not exist", 40410000)
        return json_response(self.broker.position_json(pos))

    async def close_position(self, request: web.Request) -> web.Response:
        """Close (part of) a position: DELETE /v2/positions/{symbol_or_asset_id}."""
        order = self.broker.close_position(
            request.match_info["symbol"], request.query.get("qty"), request.query.get("percentage")
        )
        return json_response(order)

    async def close_all_positions(self, request: web.Request) -> web.Response:
        """Close every position: DELETE /v2/positions (207 multi-status)."""
        if request.query.get("cancel_orders", "").lower() == "true":
            self.broker.cancel_all()
        with self.broker.lock:
            symbols = sorted(self.broker.positions)
        results: list[dict[str, Any]] = []
        for symbol in symbols:
            try:
                order = self.broker.close_position(symbol, None, None)
                results.append({"symbol": symbol, "status": 200, "body": order})
            except ApiError as error:
                results.append({"symbol": symbol, "status": error.status, "body": error.body()})
        return json_response(results, status=207)

    async def post_order(self, request: web.Request) -> web.Response:
        """Place an order: POST /v2/orders."""
        held = request.get(_HELD_FILL_KEY)
        return json_response(self.broker.submit(request[_BODY_KEY], held if isinstance(held, HeldFill) else None))

    async def get_orders(self, request: web.Request) -> web.Response:
        """Answer GET /v2/orders with its status, time, side and symbol filters."""
        status = request.query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise ApiError(422, "invalid status", 40010001)
        direction = request.query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise ApiError(422, "invalid direction", 40010001)
        side = request.query.get("side")
        if side is not None and side not in ("buy", "sell"):
            raise ApiError(422, "invalid side", 40010001)
        symbols_raw = request.query.get("symbols")
        symbols = {s.strip().upper() for s in symbols_raw.split(",") if s.strip()} if symbols_raw else None
        orders = self.broker.list_orders(
            status=status,
            limit=_query_int(request, "limit", 50, 500),
            after=_query_time(request, "after"),
            until=_query_time(request, "until"),
            direction=direction,
            symbols=symbols,
            side=side,
        )
        return json_response(orders)

    async def cancel_all_orders(self, _request: web.Request) -> web.Response:
        """Cancel every open order: DELETE /v2/orders (207 multi-status)."""
        return json_response(self.broker.cancel_all(), status=207)

    async def get_order_by_client_id(self, request: web.Request) -> web.Response:
        """Answer GET /v2/orders:by_client_order_id."""
        client_order_id = request.query.get("client_order_id")
        if not client_order_id:
            raise ApiError(422, "client_order_id is required", 40010001)
        order = self.broker.get_order_by_client_id(client_order_id)
        if order is None:
            raise ApiError(404, "order not found", 40410000)
        with self.broker.lock:
            return json_response(order.to_json())

    async def get_order(self, request: web.Request) -> web.Response:
        """Answer GET /v2/orders/{order_id}."""
        order = self.broker.get_order(request.match_info["order_id"])
        if order is None:
            raise ApiError(404, "order not found", 40410000)
        with self.broker.lock:
            return json_response(order.to_json())

    async def delete_order(self, request: web.Request) -> web.Response:
        """Cancel an order: DELETE /v2/orders/{order_id} (204 when accepted)."""
        self.broker.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def get_activities_by_type(self, request: web.Request) -> web.Response:
        """Answer GET /v2/account/activities/{activity_type}; the emulator records FILL activities only."""
        activity_type = request.match_info["activity_type"].upper()
        if activity_type not in ACTIVITY_TYPES:
            raise ApiError(422, f"invalid activity type {activity_type}", 40010001)
        direction = request.query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise ApiError(422, "invalid direction", 40010001)
        if activity_type != "FILL":
            return json_response([])
        activities = self.broker.list_fill_activities(
            after=_query_time(request, "after"),
            until=_query_time(request, "until"),
            direction=direction,
            page_size=_query_int(request, "page_size", MAX_ACTIVITY_PAGE, MAX_ACTIVITY_PAGE),
            page_token=request.query.get("page_token") or None,
        )
        return json_response(activities)

    async def get_assets(self, request: web.Request) -> web.Response:
        """Answer GET /v2/assets with its status, class and exchange filters."""
        status = request.query.get("status")
        asset_class = request.query.get("asset_class")
        exchange = request.query.get("exchange")
        with self.broker.lock:
            assets = [
                a.to_json()
                for _, a in sorted(self.broker.assets.items())
                if (status is None or a.status == status)
                and (asset_class is None or a.asset_class == asset_class)
                and (exchange is None or a.exchange == exchange)
            ]
        return json_response(assets)

    async def get_asset(self, request: web.Request) -> web.Response:
        """Answer GET /v2/assets/{symbol_or_asset_id}."""
        asset = self.broker.find_asset(request.match_info["symbol"])
        if asset is None:
            raise ApiError(404, "asset not found", 40410000)
        return json_response(asset.to_json())

    async def get_clock(self, _request: web.Request) -> web.Response:
        """Answer GET /v2/clock."""
        return json_response(self.broker.clock_json())

    async def get_calendar(self, request: web.Request) -> web.Response:
        """Answer GET /v2/calendar."""
        return json_response(self.broker.calendar_json(_query_date(request, "start"), _query_date(request, "end")))


def build_trading_app(broker: Broker, hub: StreamHub, shared: Shared) -> web.Application:
    """Build the trading API application: REST under /v2 and the websocket at /stream."""
    api = TradingApi(broker)
    app = web.Application(middlewares=[make_middleware(shared, _trading_auth_failure)])
    for method, path, handler_name, _kind in TRADING_ROUTES:
        app.router.add_route(method, path, getattr(api, handler_name))
    app.router.add_get("/stream", hub.handle)
    app.on_shutdown.append(hub.close_all)
    return app


def build_data_app(bars: BarStore, shared: Shared, broker: Broker) -> web.Application:
    """Build the market data API application (GET /v2/stocks/bars and /v2/stocks/trades/latest)."""

    async def get_latest_trades(request: web.Request) -> web.Response:
        """Answer GET /v2/stocks/trades/latest from the prices the test set."""
        symbols = [s.strip().upper() for s in request.query.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise ApiError(400, "symbols is required", 40010001)
        return json_response(broker.latest_trades_json(symbols))

    async def get_bars(request: web.Request) -> web.Response:
        """Answer GET /v2/stocks/bars (multi-symbol, paginated)."""
        symbols_raw = request.query.get("symbols", "")
        symbols = [s.strip().upper() for s in symbols_raw.split(",") if s.strip()]
        if not symbols:
            raise ApiError(400, "symbols is required", 40010001)
        timeframe = request.query.get("timeframe")
        if not timeframe:
            raise ApiError(400, "timeframe is required", 40010001)
        sort = request.query.get("sort", "asc")
        if sort not in ("asc", "desc"):
            raise ApiError(400, "invalid sort", 40010001)
        length = timeframe_length(timeframe)
        page = bars.page(
            visible=lambda opens_at: broker.bar_visible(opens_at, length),
            symbols=symbols,
            timeframe=timeframe,
            start=_query_time(request, "start"),
            end=_query_time(request, "end"),
            limit=_query_int(request, "limit", DEFAULT_LIMIT, MAX_LIMIT),
            descending=sort == "desc",
            page_token=request.query.get("page_token") or None,
        )
        return json_response(page)

    handlers = {"/v2/stocks/bars": get_bars, "/v2/stocks/trades/latest": get_latest_trades}
    app = web.Application(middlewares=[make_middleware(shared, _data_auth_failure)])
    for method, path, _kind in DATA_ROUTES:
        app.router.add_route(method, path, handlers[path])
    return app
