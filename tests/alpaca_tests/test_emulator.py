"""The Alpaca emulator, exercised through the real alpaca-py 0.44 clients on 127.0.0.1.

These tests pin down what the emulator answers and how alpaca-py reacts to it (retries,
model validation, stream reconnects), so a broker plugin written against the emulator
meets the same behaviour it will meet at Alpaca.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ReadTimeout
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

from emulators.alpaca import AlpacaEmulator, BarSeed, CalendarDay

# Importing alpaca.trading imports websockets.legacy, which websockets>=14 deprecates at
# import time. The warning comes from alpaca-py 0.44 itself and no caller can avoid it, so
# exactly that message is ignored, and only while alpaca-py is imported; every other
# warning still fails the run.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="websockets.legacy is deprecated", category=DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.common.rest import RESTClient
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.data.models import BarSet, Trade
    from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import (
        AccountStatus,
        AssetExchange,
        OrderSide,
        OrderStatus,
        PositionSide,
        QueryOrderStatus,
        TimeInForce,
    )
    from alpaca.trading.models import (
        AccountConfiguration,
        Asset,
        Calendar,
        Clock,
        ClosePositionResponse,
        Order,
        Position,
        TradeAccount,
        TradeUpdate,
    )
    from alpaca.trading.requests import (
        CancelOrderResponse,
        GetCalendarRequest,
        GetOrdersRequest,
        LimitOrderRequest,
        MarketOrderRequest,
        OrderRequest,
    )
    from alpaca.trading.stream import TradingStream

API_KEY = "PKEMULATORKEY"
SECRET_KEY = "emulator-secret"
AAPL_PRICE = Decimal("150.00")
WAIT_S = 5.0

T = TypeVar("T")


def _as(kind: type[T], value: object) -> T:
    """Narrow alpaca-py's `Model | RawData` return values to the model."""
    assert isinstance(value, kind), f"expected {kind.__name__}, got {type(value).__name__}"
    return value


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def emu() -> Iterator[AlpacaEmulator]:
    with AlpacaEmulator(api_key=API_KEY, secret_key=SECRET_KEY, cash=Decimal(100000)) as emulator:
        emulator.set_asset("AAPL", name="Apple Inc. Common Stock")
        emulator.set_asset("BRK.A", fractionable=False, exchange="NYSE")
        emulator.set_price("AAPL", AAPL_PRICE)
        emulator.set_price("BRK.A", Decimal("60000"))
        yield emulator


class _DefaultTimeoutAdapter(HTTPAdapter):
    """Give requests sent without a timeout this one: alpaca-py never passes a timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._seconds
        return super().send(request, *args, **kwargs)


def _with_timeout(client: RESTClient, seconds: float) -> None:
    """Bound every request of an alpaca-py client; mounting again replaces the bound."""
    client._session.mount("http://", _DefaultTimeoutAdapter(seconds))


def _trading_client(emu: AlpacaEmulator, secret: str = SECRET_KEY) -> TradingClient:
    client = TradingClient(API_KEY, secret, url_override=emu.base_url)
    # TradingClient exposes no retry settings and alpaca-py sleeps 3 s between retries of
    # 429 and 504. The tests keep alpaca-py's retry count and logic, only without the wait.
    client._retry_wait = 0
    _with_timeout(client, WAIT_S)
    return client


def _data_client(emu: AlpacaEmulator, secret: str = SECRET_KEY) -> StockHistoricalDataClient:
    client = StockHistoricalDataClient(API_KEY, secret, url_override=emu.data_url)
    _with_timeout(client, WAIT_S)
    return client


@pytest.fixture
def client(emu: AlpacaEmulator) -> Iterator[TradingClient]:
    trading = _trading_client(emu)
    yield trading
    trading._session.close()


def _market(qty: float | None = None, *, notional: float | None = None, **fields: Any) -> MarketOrderRequest:
    fields.setdefault("symbol", "AAPL")
    fields.setdefault("side", OrderSide.BUY)
    fields.setdefault("time_in_force", TimeInForce.DAY)
    return MarketOrderRequest(qty=qty, notional=notional, **fields)


def _submit(client: TradingClient, request: OrderRequest) -> Order:
    return _as(Order, client.submit_order(request))


def _order(client: TradingClient, order_id: object) -> Order:
    return _as(Order, client.get_order_by_id(str(order_id)))


def _api_error(call: Callable[[], object]) -> APIError:
    with pytest.raises(APIError) as info:
        call()
    return info.value


def _raw_request(
    base_url: str,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Send one HTTP request without alpaca-py (which would refuse it client-side)."""
    parts = urlsplit(base_url)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT_S)
    try:
        payload = json.dumps(body) if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        text = response.read().decode()
        return response.status, json.loads(text) if text else None
    finally:
        conn.close()


AUTH_HEADERS = {"APCA-API-KEY-ID": API_KEY, "APCA-API-SECRET-KEY": SECRET_KEY}


def _updates(source: queue.Queue[TradeUpdate], count: int) -> list[TradeUpdate]:
    return [source.get(timeout=WAIT_S) for _ in range(count)]


@contextmanager
def running_trading_stream(emu: AlpacaEmulator) -> Iterator[queue.Queue[TradeUpdate]]:
    """Run alpaca-py's TradingStream in a thread, yield the updates it hands its handler."""
    received: queue.Queue[TradeUpdate] = queue.Queue()
    stream = TradingStream(API_KEY, SECRET_KEY, url_override=emu.stream_url)

    async def on_update(update: TradeUpdate) -> None:
        received.put(update)

    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, name="trading-stream", daemon=True)
    thread.start()
    try:
        emu.wait_for_stream_listeners(1, timeout=WAIT_S)
        yield received
    finally:
        stream.stop()
        # TradingStream checks its stop flag only between messages, and its receive waits
        # up to 5 s; closing the socket makes it see the flag at once.
        emu.drop_stream_connections()
        thread.join(timeout=WAIT_S)
        assert not thread.is_alive(), "TradingStream did not stop"


@contextmanager
def raw_stream(emu: AlpacaEmulator) -> Iterator[ClientConnection]:
    """Open the trading websocket with a plain client, authenticated and listening."""
    with connect(emu.stream_url, open_timeout=WAIT_S, close_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"action": "authenticate", "data": {"key_id": API_KEY, "secret_key": SECRET_KEY}}))
        assert json.loads(ws.recv(timeout=WAIT_S))["data"]["status"] == "authorized"
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=WAIT_S)) == {
            "stream": "listening",
            "data": {"streams": ["trade_updates"]},
        }
        yield ws


def _recv_updates(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    messages = [json.loads(ws.recv(timeout=WAIT_S)) for _ in range(count)]
    assert all(m["stream"] == "trade_updates" for m in messages)
    return [m["data"] for m in messages]


def _assert_silent(ws: ClientConnection, seconds: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=seconds)


# ---------------------------------------------------------------------------- account, auth


def test_account_parses_into_trade_account_with_cash_equity_and_buying_power(
    client: TradingClient,
) -> None:
    account = _as(TradeAccount, client.get_account())

    assert account.status is AccountStatus.ACTIVE
    assert account.currency == "USD"
    assert Decimal(account.cash or "") == Decimal(100000)
    assert Decimal(account.equity or "") == Decimal(100000)
    assert Decimal(account.buying_power or "") == Decimal(100000)
    assert account.trading_blocked is False
    assert account.account_blocked is False
    # Alpaca stopped sending the PDT fields on 2026-07-06; alpaca-py defaults them to None.
    assert account.pattern_day_trader is None
    assert account.daytrade_count is None


def test_account_reports_flags_the_test_sets(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_account(trading_blocked=True, pattern_day_trader=False, daytrade_count=2)

    account = _as(TradeAccount, client.get_account())

    assert account.trading_blocked is True
    assert account.pattern_day_trader is False
    assert account.daytrade_count == 2


def test_blocked_account_is_refused_new_orders_with_403(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_account(trading_blocked=True)

    error = _api_error(lambda: _submit(client, _market(1)))

    assert (error.status_code, error.code) == (403, 40310000)
    assert emu.orders() == []


def test_wrong_secret_is_refused_with_401_and_alpaca_error_code(emu: AlpacaEmulator) -> None:
    client = _trading_client(emu, secret="wrong")
    try:
        error = _api_error(client.get_account)
    finally:
        client._session.close()

    assert error.status_code == 401
    assert (error.code, error.message) == (40110000, "request is not authorized")


def test_request_without_key_headers_is_forbidden(emu: AlpacaEmulator) -> None:
    status, body = _raw_request(emu.base_url, "GET", "/v2/account")

    assert status == 403
    assert "code" not in body


def test_account_configuration_parses_and_round_trips_fractional_trading(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.set_account_configuration(fractional_trading=False)

    config = _as(AccountConfiguration, client.get_account_configurations())
    assert config.fractional_trading is False

    config.fractional_trading = True
    updated = _as(AccountConfiguration, client.set_account_configurations(config))

    assert updated.fractional_trading is True
    assert _submit(client, _market(0.5)).qty == "0.5"


# ---------------------------------------------------------------------------- reference data


def test_assets_parse_with_fractionable_and_tradable_flags(client: TradingClient) -> None:
    assets = client.get_all_assets()
    apple = _as(Asset, client.get_asset("AAPL"))

    assert [a.symbol for a in assets if isinstance(a, Asset)] == ["AAPL", "BRK.A"]
    assert apple.fractionable is True
    assert apple.tradable is True
    assert apple.name == "Apple Inc. Common Stock"
    berkshire = _as(Asset, client.get_asset("BRK.A"))
    assert berkshire.fractionable is False
    assert berkshire.exchange is AssetExchange.NYSE
    assert _as(Asset, client.get_asset(apple.id)).symbol == "AAPL"


def test_unknown_asset_is_404(client: TradingClient) -> None:
    error = _api_error(lambda: client.get_asset("ZZZZ"))

    assert (error.status_code, error.code) == (404, 40410000)


def test_clock_and_calendar_parse_from_configured_values(emu: AlpacaEmulator, client: TradingClient) -> None:
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    emu.set_clock(
        is_open=False,
        timestamp=now,
        next_open=datetime(2026, 3, 3, 14, 30, tzinfo=UTC),
        next_close=datetime(2026, 3, 3, 21, 0, tzinfo=UTC),
    )
    emu.set_calendar(
        [
            CalendarDay(date(2026, 3, 2)),
            CalendarDay(date(2026, 3, 3), close=clock_time(13, 0)),
            CalendarDay(date(2026, 3, 4)),
        ]
    )

    clock = _as(Clock, client.get_clock())
    days = client.get_calendar(GetCalendarRequest(start=date(2026, 3, 3), end=date(2026, 3, 4)))

    assert clock.is_open is False
    assert clock.timestamp == now
    assert clock.next_open == datetime(2026, 3, 3, 14, 30, tzinfo=UTC)
    assert clock.next_close == datetime(2026, 3, 3, 21, 0, tzinfo=UTC)
    calendar = [_as(Calendar, d) for d in days]
    assert [d.date for d in calendar] == [date(2026, 3, 3), date(2026, 3, 4)]
    # alpaca-py turns the "HH:MM" strings into naive datetimes on that date.
    assert (calendar[0].close.date(), calendar[0].close.time()) == (
        date(2026, 3, 3),
        clock_time(13),
    )


# ---------------------------------------------------------------------------- orders and fills


def test_market_order_fills_at_the_set_price_and_opens_a_position(emu: AlpacaEmulator, client: TradingClient) -> None:
    submitted = _submit(client, _market(10, client_order_id="mkt-1"))

    # Like Alpaca, the POST answers before execution; the fill shows on the next read.
    assert submitted.status is OrderStatus.ACCEPTED
    assert submitted.client_order_id == "mkt-1"
    filled = _order(client, submitted.id)
    assert filled.status is OrderStatus.FILLED
    assert (filled.filled_qty, filled.filled_avg_price) == ("10", "150")
    assert filled.filled_at is not None
    position = _as(Position, client.get_open_position("AAPL"))
    assert (position.qty, position.side, position.avg_entry_price) == (
        "10",
        PositionSide.LONG,
        "150",
    )
    assert Decimal(position.cost_basis) == Decimal(1500)
    account = _as(TradeAccount, client.get_account())
    assert Decimal(account.cash or "") == Decimal(98500)
    assert Decimal(account.equity or "") == Decimal(100000)

    emu.set_price("AAPL", Decimal("160"))

    repriced = _as(Position, client.get_open_position("AAPL"))
    assert Decimal(repriced.market_value or "") == Decimal(1600)
    assert Decimal(repriced.unrealized_pl or "") == Decimal(100)


def test_get_order_by_client_id_returns_the_submitted_order(client: TradingClient) -> None:
    submitted = _submit(client, _market(2, client_order_id="lookup-me"))

    found = _as(Order, client.get_order_by_client_id("lookup-me"))

    assert found.id == submitted.id
    assert found.status is OrderStatus.FILLED
    missing = _api_error(lambda: client.get_order_by_client_id("never-sent"))
    assert (missing.status_code, missing.code) == (404, 40410000)


def test_reused_client_order_id_is_refused_with_422_and_code_40010001(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    _submit(client, _market(1, client_order_id="once"))

    error = _api_error(lambda: _submit(client, _market(1, client_order_id="once")))

    assert error.status_code == 422
    assert (error.code, error.message) == (40010001, "client_order_id must be unique")
    assert len(emu.orders_with_client_id("once")) == 1
    assert emu.order_post_count == 2


def test_limit_order_rests_until_the_price_crosses_the_limit(emu: AlpacaEmulator, client: TradingClient) -> None:
    request = LimitOrderRequest(
        symbol="AAPL", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=145
    )
    order = _submit(client, request)

    assert _order(client, order.id).status is OrderStatus.NEW
    account = _as(TradeAccount, client.get_account())
    assert Decimal(account.buying_power or "") == Decimal(100000) - 5 * 145

    emu.set_price("AAPL", Decimal("146"))
    assert _order(client, order.id).status is OrderStatus.NEW

    emu.set_price("AAPL", Decimal("144.50"))
    filled = _order(client, order.id)
    assert filled.status is OrderStatus.FILLED
    assert filled.filled_avg_price == "144.5"


def test_partial_fills_report_cumulative_filled_qty_and_per_fill_qty(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.set_fill_policy(partial_fills=3)

    order = _submit(client, _market(10, client_order_id="split"))

    events = [u for u in emu.trade_updates() if u["order"]["id"] == str(order.id)]
    assert [e["event"] for e in events] == ["new", "partial_fill", "partial_fill", "fill"]
    fills = events[1:]
    assert [e["qty"] for e in fills] == ["3", "3", "4"]
    assert [e["order"]["filled_qty"] for e in fills] == ["3", "6", "10"]
    assert [e["position_qty"] for e in fills] == ["3", "6", "10"]
    assert [e["order"]["status"] for e in fills] == [
        "partially_filled",
        "partially_filled",
        "filled",
    ]
    assert len({e["execution_id"] for e in events}) == 4


def test_manual_fills_at_two_prices_average_the_fill_price(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_fill_policy(auto_fill_market=False)
    order = _submit(client, _market(10))
    assert _order(client, order.id).status is OrderStatus.NEW

    emu.fill_order(str(order.id), qty=Decimal(4), price=Decimal("150"))
    partial = _order(client, order.id)
    emu.fill_order(str(order.id), price=Decimal("151"))
    done = _order(client, order.id)

    assert (partial.status, partial.filled_qty) == (OrderStatus.PARTIALLY_FILLED, "4")
    assert (done.status, done.filled_qty, done.filled_avg_price) == (
        OrderStatus.FILLED,
        "10",
        "150.6",
    )
    position = _as(Position, client.get_open_position("AAPL"))
    assert position.avg_entry_price == "150.6"


def test_open_order_cancels_and_a_filled_order_cannot_be_canceled(emu: AlpacaEmulator, client: TradingClient) -> None:
    resting = _submit(
        client,
        LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=100),
    )
    filled = _submit(client, _market(1))

    client.cancel_order_by_id(str(resting.id))
    error = _api_error(lambda: client.cancel_order_by_id(str(filled.id)))

    canceled = _order(client, resting.id)
    assert canceled.status is OrderStatus.CANCELED
    assert canceled.canceled_at is not None
    assert (error.status_code, error.code) == (422, 42210000)
    assert emu.trade_updates()[-1]["event"] == "canceled"


def test_orders_status_filter_separates_open_and_closed_orders(client: TradingClient) -> None:
    resting = _submit(
        client,
        LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=100),
    )
    filled = _submit(client, _market(1))

    open_ids = [o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) if isinstance(o, Order)]
    closed_ids = [
        o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED)) if isinstance(o, Order)
    ]
    all_ids = [o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) if isinstance(o, Order)]

    assert open_ids == [resting.id]
    assert closed_ids == [filled.id]
    assert set(all_ids) == {resting.id, filled.id}


def test_market_order_while_the_market_is_closed_waits_as_accepted_until_the_open(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.set_clock(is_open=False)
    order = _submit(client, _market(3))
    assert _order(client, order.id).status is OrderStatus.ACCEPTED

    emu.set_clock(is_open=True)

    assert _order(client, order.id).status is OrderStatus.FILLED
    assert [u["event"] for u in emu.trade_updates()] == ["new", "fill"]


def test_closing_the_market_expires_live_day_orders_and_keeps_gtc_orders(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    def resting(tif: TimeInForce) -> Order:
        request = LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=tif, limit_price=100)
        return _submit(client, request)

    day, gtc = resting(TimeInForce.DAY), resting(TimeInForce.GTC)

    emu.set_clock(is_open=False)

    expired = _order(client, day.id)
    assert (expired.status, expired.expired_at is not None) == (OrderStatus.EXPIRED, True)
    assert _order(client, gtc.id).status is OrderStatus.NEW
    assert emu.trade_updates()[-1]["event"] == "expired"


def test_selling_more_than_held_is_refused_with_insufficient_qty(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_position("AAPL", Decimal(5), Decimal(140))

    error = _api_error(lambda: _submit(client, _market(6, side=OrderSide.SELL)))

    assert (error.status_code, error.code) == (403, 40310000)
    assert json.loads(str(error))["available"] == "5"


def test_buy_beyond_buying_power_is_refused_with_403(client: TradingClient) -> None:
    error = _api_error(lambda: _submit(client, _market(1000)))

    assert (error.status_code, error.code, error.message) == (
        403,
        40310000,
        "insufficient buying power",
    )


def test_armed_rejection_answers_accepted_then_rejects_the_order(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.arm_reject_orders()

    order = _submit(client, _market(1, client_order_id="doomed"))

    assert order.status is OrderStatus.ACCEPTED
    rejected = _order(client, order.id)
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.failed_at is not None
    assert [u["event"] for u in emu.trade_updates()] == ["rejected"]
    assert client.get_all_positions() == []


def test_seeded_position_parses_and_closes_with_a_market_order(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_position("AAPL", Decimal(5), Decimal(140))

    position = _as(Position, client.get_open_position("AAPL"))
    closing = _as(Order, client.close_position("AAPL"))

    assert (position.qty, position.qty_available, position.avg_entry_price) == ("5", "5", "140")
    assert Decimal(position.unrealized_pl or "") == Decimal(50)
    assert (closing.side, closing.qty) == (OrderSide.SELL, "5")
    assert client.get_all_positions() == []
    missing = _api_error(lambda: client.get_open_position("AAPL"))
    assert (missing.status_code, missing.code) == (404, 40410000)


def test_cancel_all_and_close_all_parse_their_multi_status_answers(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.set_position("AAPL", Decimal(3), Decimal(140))
    resting = _submit(
        client,
        LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=100),
    )

    canceled = [_as(CancelOrderResponse, r) for r in client.cancel_orders()]
    closed = [_as(ClosePositionResponse, r) for r in client.close_all_positions()]

    assert [(r.id, r.status) for r in canceled] == [(resting.id, 200)]
    assert [(r.symbol, r.status) for r in closed] == [("AAPL", 200)]
    assert _as(Order, closed[0].body).side is OrderSide.SELL
    assert client.get_all_positions() == []


def test_dashboard_order_shows_up_in_orders_and_events_with_a_generated_client_order_id(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    placed = emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(2))

    orders = [o for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) if isinstance(o, Order)]

    assert [str(o.id) for o in orders] == [placed["id"]]
    assert len(orders[0].client_order_id) == 36
    assert emu.order_post_count == 0
    assert [u["event"] for u in emu.trade_updates()] == ["new", "fill"]
    assert _as(Position, client.get_open_position("AAPL")).qty == "2"


# ---------------------------------------------------------------------------- fractional rules


def test_fractional_qty_and_notional_orders_fill_on_a_fractionable_asset(
    client: TradingClient,
) -> None:
    by_qty = _submit(client, _market(0.5))
    by_notional = _submit(client, _market(notional=100))

    assert _order(client, by_qty.id).filled_qty == "0.5"
    notional = _order(client, by_notional.id)
    assert (notional.notional, notional.qty) == ("100", None)
    # 100 / 150 rounded down to Alpaca's nine decimal places.
    assert notional.filled_qty == "0.666666666"
    assert _as(Position, client.get_open_position("AAPL")).qty == "1.166666666"


@dataclass(frozen=True)
class Refusal:
    request: Callable[[], OrderRequest]
    status: int
    code: int
    message: str
    setup: Callable[[AlpacaEmulator], None] = lambda _emu: None


REFUSALS = {
    "fractional qty on a non-fractionable asset": Refusal(
        lambda: _market(0.01, symbol="BRK.A"), 403, 40310000, 'asset "BRK.A" is not fractionable'
    ),
    "fractional qty with fractional trading disabled": Refusal(
        lambda: _market(0.5),
        422,
        40010001,
        "qty must be integer",
        lambda emu: emu.set_account_configuration(fractional_trading=False),
    ),
    "notional with fractional trading disabled": Refusal(
        lambda: _market(notional=50),
        422,
        40010001,
        "qty is required",
        lambda emu: emu.set_account_configuration(fractional_trading=False),
    ),
    "qty with more than nine decimal places": Refusal(
        lambda: _market(0.1234567891), 422, 40010001, "qty must have at most 9 decimal places"
    ),
    "notional below one dollar": Refusal(
        lambda: _market(notional=0.5),
        403,
        40310000,
        "cost basis must be >= minimal amount of order 1",
    ),
    "fractional qty worth less than one dollar": Refusal(
        lambda: _market(0.005), 403, 40310000, "cost basis must be >= minimal amount of order 1"
    ),
    "notional limit order": Refusal(
        lambda: LimitOrderRequest(
            symbol="AAPL",
            notional=100,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=140,
        ),
        422,
        42210000,
        "notional orders must be market orders",
    ),
    "fractional good-till-canceled order": Refusal(
        lambda: _market(0.5, time_in_force=TimeInForce.GTC),
        422,
        42210000,
        "fractional orders must be DAY orders",
    ),
    "fractional short sale": Refusal(
        lambda: _market(0.5, side=OrderSide.SELL),
        422,
        42210000,
        "fractional orders cannot be sold short",
    ),
    "client_order_id longer than 128 characters": Refusal(
        lambda: _market(1, client_order_id="x" * 129),
        422,
        40010001,
        "client_order_id must be no more than 128 characters",
    ),
    "unknown symbol": Refusal(lambda: _market(1, symbol="ZZZZ"), 422, 42210000, 'asset "ZZZZ" not found'),
    "sub-penny limit price": Refusal(
        lambda: LimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=150.123,
        ),
        422,
        42210000,
        "invalid limit_price 150.123. sub-penny increment does not fulfill minimum pricing criteria",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS.values()), ids=list(REFUSALS))
def test_order_rule_violations_are_refused_like_alpaca(
    emu: AlpacaEmulator, client: TradingClient, case: Refusal
) -> None:
    case.setup(emu)

    error = _api_error(lambda: _submit(client, case.request()))

    assert error.status_code == case.status
    assert (error.code, error.message) == (case.code, case.message)
    assert emu.orders() == []


def test_qty_and_notional_together_are_refused_with_422(emu: AlpacaEmulator) -> None:
    # alpaca-py refuses this request client-side, so it is sent raw.
    body = {
        "symbol": "AAPL",
        "qty": "1",
        "notional": "100",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
    }

    status, answer = _raw_request(emu.base_url, "POST", "/v2/orders", body, AUTH_HEADERS)

    assert status == 422
    assert answer["code"] == 40010001
    assert emu.orders() == []


# ---------------------------------------------------------------------------- HTTP faults


def test_504_after_accept_is_retried_by_alpaca_py_and_the_retry_gets_the_duplicate_error(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.arm_error(504, after_processing=True)

    error = _api_error(lambda: _submit(client, _market(1, client_order_id="retry-me")))

    # alpaca-py retries 504 on POST too; the order from the first attempt exists, so the
    # retry is the one that answers, with the duplicate client_order_id error.
    assert emu.order_post_count == 2
    assert error.status_code == 422
    assert error.message == "client_order_id must be unique"
    assert len(emu.orders_with_client_id("retry-me")) == 1
    stored = _as(Order, client.get_order_by_client_id("retry-me"))
    assert stored.status is OrderStatus.FILLED


def test_504_after_accept_without_client_order_id_makes_the_retry_a_second_order(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.arm_error(504, after_processing=True)

    order = _submit(client, _market(1))

    assert emu.order_post_count == 2
    assert len(emu.orders()) == 2
    assert order.id != order.client_order_id
    assert _as(Position, client.get_open_position("AAPL")).qty == "2"


def test_500_after_accept_is_not_retried_and_the_order_exists(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.arm_error(500, after_processing=True)

    error = _api_error(lambda: _submit(client, _market(1, client_order_id="half-done")))

    assert (error.status_code, error.code) == (500, 50010000)
    assert emu.order_post_count == 1
    assert _as(Order, client.get_order_by_client_id("half-done")).status is OrderStatus.FILLED


def test_504_before_accept_stores_nothing_and_the_retry_places_the_order(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.arm_error(504)

    order = _submit(client, _market(1, client_order_id="second-try"))

    assert emu.order_post_count == 2
    assert [o["id"] for o in emu.orders()] == [str(order.id)]


def test_429_is_retried_transparently_until_alpaca_py_runs_out_of_retries(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.arm_rate_limit(endpoint="GET /v2/account", times=2)
    _as(TradeAccount, client.get_account())
    assert len(emu.requests("GET /v2/account")) == 3

    emu.arm_rate_limit(endpoint="GET /v2/account", times=4)
    error = _api_error(client.get_account)

    assert (error.status_code, error.code) == (429, 42910000)
    assert len(emu.requests("GET /v2/account")) == 7
    assert [r.status for r in emu.requests("GET /v2/account")] == [
        429,
        429,
        200,
        429,
        429,
        429,
        429,
    ]


def test_response_delayed_past_the_client_timeout_leaves_the_order_stored(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    _with_timeout(client, 0.3)
    emu.arm_delay(60.0)  # the emulator's shutdown ends the wait

    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        _submit(client, _market(1, client_order_id="slow"))

    # The client gave up at its own timeout, long before the answer would have come (a
    # generous bound: a loaded machine may stall the test thread for seconds).
    assert time.monotonic() - started < 30.0
    assert len(emu.orders_with_client_id("slow")) == 1
    assert _as(Order, client.get_order_by_client_id("slow")).status is OrderStatus.FILLED


def test_response_missing_required_fields_fails_alpaca_py_validation(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.arm_malformed_response(endpoint="GET /v2/account", drop_fields=["account_number", "status"])
    with pytest.raises(ValidationError):
        client.get_account()

    emu.arm_malformed_response(endpoint="POST /v2/orders", drop_fields=["id"])
    with pytest.raises(ValidationError):
        _submit(client, _market(1, client_order_id="no-id-in-answer"))

    assert len(emu.orders_with_client_id("no-id-in-answer")) == 1


# ---------------------------------------------------------------------------- market data


def _daily_bars(count: int, first: date) -> list[BarSeed]:
    bars = []
    for i in range(count):
        day = first + timedelta(days=i)
        close = Decimal(100) + i
        bars.append(
            BarSeed(
                timestamp=datetime(day.year, day.month, day.day, 5, tzinfo=UTC),
                open=close - 1,
                high=close + 2,
                low=close - 2,
                close=close,
                volume=1_000_000 + i,
                trade_count=5000,
                vwap=close,
            )
        )
    return bars


@pytest.fixture
def data_client(emu: AlpacaEmulator) -> Iterator[StockHistoricalDataClient]:
    client = _data_client(emu)
    yield client
    client._session.close()


def test_stock_bars_parse_and_follow_next_page_token_across_pages(
    emu: AlpacaEmulator, data_client: StockHistoricalDataClient
) -> None:
    emu.load_bars("AAPL", _daily_bars(25, date(2026, 1, 1)))
    emu.load_bars("MSFT", _daily_bars(3, date(2026, 1, 1)))
    emu.set_bars_page_size(10)

    request = StockBarsRequest(
        symbol_or_symbols=["AAPL", "MSFT"],
        timeframe=TimeFrame(1, TimeFrameUnit.Day),
        start=datetime(2026, 1, 1, tzinfo=UTC),
    )
    bars = _as(BarSet, data_client.get_stock_bars(request))

    assert len(bars.data["AAPL"]) == 25
    assert len(bars.data["MSFT"]) == 3
    assert len(emu.requests("GET /v2/stocks/bars")) == 3
    first = bars.data["AAPL"][0]
    assert first.timestamp == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (99.0, 102.0, 98.0, 100.0)
    assert (first.volume, first.trade_count, first.vwap) == (1_000_000, 5000, 100.0)


def test_stock_bars_honour_start_end_and_limit(emu: AlpacaEmulator, data_client: StockHistoricalDataClient) -> None:
    emu.load_bars("AAPL", _daily_bars(25, date(2026, 1, 1)))

    window = StockBarsRequest(
        symbol_or_symbols="AAPL",
        timeframe=TimeFrame(1, TimeFrameUnit.Day),
        start=datetime(2026, 1, 5, tzinfo=UTC),
        end=datetime(2026, 1, 10, 23, tzinfo=UTC),
    )
    limited = StockBarsRequest(
        symbol_or_symbols="AAPL",
        timeframe=TimeFrame(1, TimeFrameUnit.Day),
        start=datetime(2026, 1, 1, tzinfo=UTC),
        limit=4,
    )

    in_window = _as(BarSet, data_client.get_stock_bars(window)).data["AAPL"]
    first_four = _as(BarSet, data_client.get_stock_bars(limited)).data["AAPL"]

    assert [b.timestamp.day for b in in_window] == [5, 6, 7, 8, 9, 10]
    assert [b.close for b in first_four] == [100.0, 101.0, 102.0, 103.0]


def test_data_api_refuses_wrong_keys(emu: AlpacaEmulator) -> None:
    client = _data_client(emu, secret="wrong")
    request = StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame(1, TimeFrameUnit.Day))
    try:
        error = _api_error(lambda: client.get_stock_bars(request))
    finally:
        client._session.close()

    assert error.status_code == 403


# ---------------------------------------------------------------------------- trade_updates stream


def test_trading_stream_receives_new_and_fill_updates_for_an_order(emu: AlpacaEmulator, client: TradingClient) -> None:
    with running_trading_stream(emu) as updates:
        order = _submit(client, _market(10, client_order_id="streamed"))
        new, fill = _updates(updates, 2)

    assert (new.event, fill.event) == ("new", "fill")
    assert new.order.id == fill.order.id == order.id
    assert new.order.status is OrderStatus.NEW
    assert fill.order.status is OrderStatus.FILLED
    assert fill.order.client_order_id == "streamed"
    assert (fill.qty, fill.price, fill.position_qty) == (10.0, 150.0, 10.0)
    assert fill.order.filled_qty == "10"
    assert fill.execution_id is not None
    assert fill.timestamp.tzinfo is not None


def test_trading_stream_reconnects_after_a_drop_and_updates_sent_meanwhile_are_lost(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    with running_trading_stream(emu) as updates:
        # Paused until the client is back: however late this thread submits, the update of
        # the order sent while the stream was down is never delivered (the client
        # reconnects on its own within a second, and could otherwise be back first).
        emu.pause_stream_events()
        emu.drop_stream_connections(abrupt=True)
        emu.wait_for_stream_listeners(0, timeout=WAIT_S)
        missed = _submit(client, _market(1, client_order_id="while-down"))
        emu.wait_for_stream_listeners(1, timeout=WAIT_S)
        emu.resume_stream_events()
        after = _submit(client, _market(1, client_order_id="after-reconnect"))
        received = _updates(updates, 2)

    assert emu.stream_connections_accepted == 2
    assert {u.order.client_order_id for u in received} == {"after-reconnect"}
    # The client recovers what it missed by polling.
    assert _order(client, missed.id).status is OrderStatus.FILLED
    assert after.client_order_id == "after-reconnect"


def test_stream_refuses_wrong_credentials_and_closes_the_connection(emu: AlpacaEmulator) -> None:
    with connect(emu.stream_url, open_timeout=WAIT_S, close_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"action": "authenticate", "data": {"key_id": API_KEY, "secret_key": "wrong"}}))
        reply = json.loads(ws.recv(timeout=WAIT_S))
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=WAIT_S)

    assert reply == {
        "stream": "authorization",
        "data": {"action": "authenticate", "status": "unauthorized"},
    }
    assert emu.stream_listener_count() == 0


def test_stream_frames_are_binary_json_like_alpacas_trading_stream(emu: AlpacaEmulator, client: TradingClient) -> None:
    with raw_stream(emu) as ws:
        _submit(client, _market(1))
        frame = ws.recv(timeout=WAIT_S)

    assert isinstance(frame, bytes)
    assert json.loads(frame)["data"]["event"] == "new"


def test_armed_duplicate_fill_is_delivered_twice_with_the_same_execution_id(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.arm_duplicate_events()
    with raw_stream(emu) as ws:
        _submit(client, _market(1))
        new, fill, again = _recv_updates(ws, 3)
        _assert_silent(ws)

    assert (new["event"], fill["event"]) == ("new", "fill")
    assert again == fill


def test_armed_reordering_delivers_the_fill_before_the_new_event(emu: AlpacaEmulator, client: TradingClient) -> None:
    emu.arm_reordered_events(2)
    with raw_stream(emu) as ws:
        _submit(client, _market(1))
        first, second = _recv_updates(ws, 2)

    assert (first["event"], second["event"]) == ("fill", "new")
    assert first["order"]["filled_qty"] == "1"


def test_paused_stream_swallows_updates_and_the_order_state_is_recovered_by_polling(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    with raw_stream(emu) as ws:
        emu.pause_stream_events()
        gap = _submit(client, _market(1, client_order_id="in-gap"))
        _assert_silent(ws)
        emu.resume_stream_events()
        _submit(client, _market(1, client_order_id="after-gap"))
        after = _recv_updates(ws, 2)

    assert [u["order"]["client_order_id"] for u in after] == ["after-gap", "after-gap"]
    assert [u["event"] for u in emu.undelivered_trade_updates()] == ["new", "fill"]
    assert _order(client, gap.id).status is OrderStatus.FILLED


# ---------------------------------------------------------------------------- account activities


def test_fill_activities_list_every_execution_with_its_cumulative_qty(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.set_fill_policy(partial_fills=3)
    order = _submit(client, _market(10, client_order_id="acts"))

    activities = client.get("/account/activities/FILL", {"direction": "asc"})

    assert isinstance(activities, list)
    assert [(a["qty"], a["cum_qty"], a["leaves_qty"], a["type"]) for a in activities] == [
        ("3", "3", "7", "partial_fill"),
        ("3", "6", "4", "partial_fill"),
        ("4", "10", "0", "fill"),
    ]
    assert {a["order_id"] for a in activities} == {str(order.id)}
    assert {(a["activity_type"], a["side"], a["symbol"], a["price"]) for a in activities} == {
        ("FILL", "buy", "AAPL", "150")
    }
    assert activities[-1]["order_status"] == "filled"
    assert activities == emu.fill_activities()


def test_fill_activities_page_by_the_last_id_newest_first_by_default(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    emu.set_fill_policy(partial_fills=5)
    _submit(client, _market(5))

    first = client.get("/account/activities/FILL", {"page_size": 2})
    assert isinstance(first, list)
    second = client.get("/account/activities/FILL", {"page_size": 2, "page_token": first[-1]["id"]})
    assert isinstance(second, list)
    third = client.get("/account/activities/FILL", {"page_size": 2, "page_token": second[-1]["id"]})
    assert isinstance(third, list)

    assert [a["cum_qty"] for a in first + second + third] == ["5", "4", "3", "2", "1"]


def test_fill_activities_filter_by_transaction_time_and_other_types_are_empty(
    emu: AlpacaEmulator, client: TradingClient
) -> None:
    _submit(client, _market(1))
    stamp = emu.fill_activities()[0]["transaction_time"]

    assert client.get("/account/activities/FILL", {"after": stamp}) == []
    assert len(client.get("/account/activities/FILL", {"until": "2999-01-01T00:00:00Z"}) or []) == 1
    assert client.get("/account/activities/DIV") == []
    error = _api_error(lambda: client.get("/account/activities/NOPE"))
    assert (error.status_code, error.code) == (422, 40010001)


def test_latest_trades_report_the_prices_set_for_known_symbols(
    emu: AlpacaEmulator, data_client: StockHistoricalDataClient
) -> None:
    emu.set_price("AAPL", Decimal("151.37"))

    trades = data_client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=["AAPL", "ZZZZ"]))

    assert isinstance(trades, dict)
    assert set(trades) == {"AAPL"}
    latest = trades["AAPL"]
    assert isinstance(latest, Trade)
    assert latest.price == 151.37
    assert latest.timestamp.tzinfo is not None
