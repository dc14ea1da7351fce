"""``AlpacaBroker``: tradekit's ``Broker``, ``BarSource`` and ``PriceSource`` on Alpaca, through alpaca-py.

How the money-relevant parts work:

- **Orders are sent once.** Every order carries the caller's deterministic
  ``client_order_id``. The client that posts orders has alpaca-py's own retries switched
  off (alpaca-py would resend a POST answered 429 or 504, and a 504 can come after Alpaca
  stored the order). A timeout, a lost connection, a 429 or a 5xx raise
  ``AmbiguousSubmission``; Alpaca's 422 "client_order_id must be unique" raises
  ``DuplicateClientOrderId``: in both cases the caller looks the order up by its client
  order id and never sends a new one. A 4xx refusal raises ``OrderRejected``, or
  ``FractionalNotSupported`` when the refusal is about fractional shares, so the caller can
  fall back to whole shares.
- **Exact amounts on the wire.** alpaca-py's order request models type qty, notional and
  limit price as ``float``; the plugin posts the same JSON body through the same client
  (``TradingClient.post``), with each amount as the decimal string it is (at most nine
  decimal places, as Alpaca allows). Answers are read with ``raw_data=True`` so Alpaca's
  decimal strings become ``Decimal`` without passing through alpaca-py's float fields.
- **Every request is bounded** by ``request_timeout_seconds`` (alpaca-py sets none). Reads
  may be retried by alpaca-py on 429/504 up to ``read_retries`` times; a read that still
  fails raises ``BrokerUnavailable``, a read that answers nonsense ``BrokerDataError``.
- **Events, each execution once.** ``drain_events`` turns the ``trade_updates`` stream
  into events (``events.OrderEventTracker``) and polls orders to recover what the stream
  missed: on the first call, after a reconnect, after a gap or position mismatch was
  noticed, on every call while the stream is failing, and every ``poll_interval_seconds``.
  Missed executions are read from Alpaca's FILL account activities, which also back
  ``get_fills``.
- **What tradekit did not place does not stop it.** An order in the account that tradekit
  cannot read (a multi-leg options order, a crypto pair placed by hand) and whose client
  order id is not one of tradekit's (``tk-...``) is left out of every read, with a warning
  once per order; an unreadable order of tradekit's own still raises ``BrokerDataError``.
  If such an order is on a stock, ``get_open_orders`` reports it as an open order of unknown
  size on that stock (``providers.ForeignOrder.stand_in``), so tradekit neither buys that
  stock nor sells it past the order until it is gone; every other stock trades as usual.
  A position that cannot be read is left out the same way when it is of an asset class
  tradekit does not trade; an unreadable stock position still raises.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import attrs
import requests

import tradekit_broker_alpaca._alpaca as alpaca
from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerDataError,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    FractionalNotSupported,
    OrderRejected,
)
from tradekit.broker.protocol import AssetInfo, MarketClock, OrderEvent, StreamHeartbeat
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill, Order, OrderRequest, OrderType, TimeInForce
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.values import utcnow
from tradekit_broker_alpaca._http import AlpacaFailure, bound_client, failure_from
from tradekit_broker_alpaca.bars import read_daily_bars, trusted_bars
from tradekit_broker_alpaca.config import AlpacaConfig, AlpacaCredentials
from tradekit_broker_alpaca.events import (
    OrderEventTracker,
    PositionMismatch,
    RecoveredExecution,
    executions_by_order,
)
from tradekit_broker_alpaca.providers import (
    MIN_FRACTIONAL_NOTIONAL,
    QTY_PLACES,
    ForeignOrder,
    TradingSession,
    account_from_alpaca,
    asset_from_alpaca,
    clock_from_alpaca,
    cumulative_qty_of_activity,
    fill_from_alpaca_activity,
    is_foreign_asset_class,
    order_from_alpaca,
    order_or_foreign_from_alpaca,
    position_from_alpaca,
    price_from_alpaca_trade,
    session_from_alpaca,
    untradable_asset,
)
from tradekit_broker_alpaca.stream import StreamStatus, TradeUpdateStream

log = logging.getLogger(__name__)

BROKER_NAME = "alpaca"
T = TypeVar("T")

# Alpaca's page limits: 500 orders, 100 account activities.
_ORDERS_PAGE = 500
_ACTIVITIES_PAGE = 100
# Pages of fill activities one call reads at most. A poll that reaches the bound before it
# found every missing execution leaves a cursor (``_ActivitySweep``) and the next poll goes
# on from there, so any backlog is read through in bounded steps.
_MAX_ACTIVITY_PAGES = 50
# Closed orders are polled from this long before the previous poll: Alpaca filters on
# submission time by its own clock, which may differ a little from this machine's.
_POLL_OVERLAP = timedelta(minutes=5)
# Executions happen after their order was submitted; the margin absorbs clock differences.
_ACTIVITY_MARGIN = timedelta(minutes=1)
# Messages by which Alpaca refuses an order for being fractional (or fractional in a way it
# does not allow): the caller may retry the same amount in whole shares.
_FRACTIONAL_REFUSALS = (
    "fractional",
    "not fractionable",
    "qty must be integer",
    "qty is required",
    "cost basis must be >=",
    "minimal amount of order",
)


@attrs.frozen
class _ActivitySweep:
    """Where an unfinished read of fill activities stopped: its lower bound and last activity."""

    after: datetime
    page_token: str


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BrokerDataError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _array(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BrokerDataError(f"{what}: expected a JSON array, got {type(value).__name__}")
    return value


class AlpacaBroker:
    """An Alpaca account (paper unless configured otherwise) as a tradekit ``Broker``.

    It is also a ``BarSource`` (``daily_bars``) and a ``PriceSource`` (``latest_prices``) for
    tradekit's live runner and a ``StreamHealth`` (``stream_heartbeat``) for its trading-state
    guard, and offers ``get_calendar``, ``stream_status`` and ``position_mismatches`` beyond
    the protocol.

    Build it with ``tradekit_broker_alpaca.plugin.make_alpaca_broker`` (what ``tradekit run
    --broker alpaca`` does), or directly from a config and credentials. It starts the
    ``trade_updates`` stream at once; call ``close()`` to stop it.
    """

    def __init__(self, config: AlpacaConfig, credentials: AlpacaCredentials) -> None:
        self._config = config
        timeout = config.request_timeout_seconds
        self._trading = alpaca.TradingClient(
            credentials.key_id,
            credentials.secret_key,
            paper=config.paper,
            raw_data=True,
            url_override=config.base_url,
        )
        bound_client(
            self._trading,
            timeout_seconds=timeout,
            retries=config.read_retries,
            retry_wait_seconds=config.read_retry_wait_seconds,
        )
        # Orders go through a client of their own that never retries: a POST resent after a
        # 504 may be the second copy of an order Alpaca already holds.
        self._orders = alpaca.TradingClient(
            credentials.key_id,
            credentials.secret_key,
            paper=config.paper,
            raw_data=True,
            url_override=config.base_url,
        )
        bound_client(self._orders, timeout_seconds=timeout, retries=0, retry_wait_seconds=0)
        self._data = alpaca.StockHistoricalDataClient(
            credentials.key_id,
            credentials.secret_key,
            raw_data=True,
            url_override=config.data_url,
        )
        bound_client(
            self._data,
            timeout_seconds=timeout,
            retries=config.read_retries,
            retry_wait_seconds=config.read_retry_wait_seconds,
        )
        self._lock = threading.RLock()
        self._tracker = OrderEventTracker()
        self._started_at = utcnow()
        self._last_poll_at: datetime | None = None
        self._last_poll_monotonic: float | None = None
        self._polled_connections = 0
        self._activity_sweep: _ActivitySweep | None = None
        self._warned_unreadable: set[str] = set()
        self._data_problems_told: set[str] = set()
        self._closed = False
        self._stream: TradeUpdateStream | None = None
        if config.stream:
            self._stream = TradeUpdateStream(credentials, config)
            self._stream.start()

    def __repr__(self) -> str:
        where = self._config.base_url or ("Alpaca paper" if self._config.paper else "Alpaca LIVE")
        return f"AlpacaBroker(paper={self._config.paper}, trading={where!r})"

    # ------------------------------------------------------------------ Broker: identity, account

    @property
    def name(self) -> str:
        return BROKER_NAME

    @property
    def config(self) -> AlpacaConfig:
        return self._config

    def get_account(self) -> AccountSnapshot:
        """Return equity, cash, buying power, the blocking and PDT flags and fractional trading."""
        account = self._read("account", self._trading.get_account)
        configuration = self._read("account configuration", self._trading.get_account_configurations)
        return account_from_alpaca(
            _mapping(account, "Alpaca account"),
            _mapping(configuration, "Alpaca account configuration"),
            as_of=utcnow(),
        )

    def get_positions(self) -> Sequence[BrokerPosition]:
        """Return every open position with its average entry price; raise rather than report flat."""
        positions = _array(self._read("positions", self._trading.get_all_positions), "Alpaca positions")
        as_of = utcnow()
        read: list[BrokerPosition] = []
        for raw in positions:
            position = _mapping(raw, "Alpaca position")
            try:
                read.append(position_from_alpaca(position, as_of=as_of))
            except BrokerDataError as exc:
                if not is_foreign_asset_class(position):
                    raise
                name = position.get("asset_id") or position.get("symbol")
                self._warn_unreadable(f"position {name}", str(exc), "an asset class tradekit does not trade")
        return tuple(read)

    def get_asset(self, symbol: str) -> AssetInfo:
        """Return whether ``symbol`` trades at Alpaca and in fractions; an unknown symbol is untradable."""
        asset = self._read_or_none(f"asset {symbol}", lambda: self._trading.get_asset(symbol))
        if asset is None:
            return untradable_asset(symbol)
        return asset_from_alpaca(_mapping(asset, f"Alpaca asset {symbol}"))

    # ------------------------------------------------------------------ Broker: orders

    def submit_order(self, request: OrderRequest) -> Order:
        """Send the order once, with its client order id; see the module docstring for the errors."""
        body = self._order_body(request)
        try:
            answer = self._orders.post("/orders", body)
        except (alpaca.APIError, requests.RequestException, ValueError) as exc:
            raise self._submission_error(request, failure_from(exc, self._config.request_timeout_seconds)) from None
        try:
            order = order_from_alpaca(_mapping(answer, "Alpaca order answer"))
        except BrokerDataError as exc:
            raise AmbiguousSubmission(
                f"order {request.client_order_id}: Alpaca answered but the answer is unreadable ({exc}); "
                "look it up by client order id before anything else"
            ) from None
        with self._lock:
            self._tracker.track(order)
        log.info(
            "order %s sent: %s %s %s (Alpaca id %s)",
            order.client_order_id,
            order.side.value,
            _amount(request),
            order.symbol,
            order.broker_order_id,
        )
        return order

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """Return the order Alpaca holds under this client order id, or None."""
        answer = self._read_or_none(
            f"order {client_order_id}", lambda: self._trading.get_order_by_client_id(client_order_id)
        )
        return None if answer is None else order_from_alpaca(_mapping(answer, f"Alpaca order {client_order_id}"))

    def get_open_orders(self) -> Sequence[Order]:
        """Return every order Alpaca still works, oldest first.

        An unreadable order tradekit did not place is left out, or, when it is on a stock,
        reported as an open order of unknown size there (see the module docstring).
        """
        orders, foreign = self._list_orders(alpaca.QueryOrderStatus.OPEN, after=None)
        now = utcnow()
        stand_ins = [order for order in (f.stand_in(now=now) for f in foreign) if order is not None]
        return tuple(sorted([*orders, *stand_ins], key=lambda o: (o.submitted_at, o.broker_order_id)))

    def cancel_order(self, client_order_id: str) -> None:
        """Ask Alpaca to cancel; an unknown or finished order is left alone without error."""
        order = self.get_order_by_client_id(client_order_id)
        if order is None or order.status.is_terminal:
            return
        try:
            self._trading.cancel_order_by_id(order.broker_order_id)
        except (alpaca.APIError, requests.RequestException, ValueError) as exc:
            failure = failure_from(exc, self._config.request_timeout_seconds)
            if failure.status in (404, 422):
                # Alpaca answers 422 for an order that finished meanwhile and 404 for one it
                # no longer knows: either way there is nothing left to cancel.
                log.info("cancel of %s not needed: %s", client_order_id, failure.describe())
                return
            raise BrokerUnavailable(f"cancel of order {client_order_id} failed: {failure.describe()}") from None

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        """Return every execution of the order from Alpaca's FILL activities, oldest first."""
        order = self.get_order_by_client_id(client_order_id)
        if order is None or order.filled_qty == 0:
            return ()
        executions = self._executions([order]).get(order.broker_order_id, [])
        executions.sort(key=lambda e: e.cumulative_qty)
        fills = tuple(e.fill for e in executions)
        shown = sum((f.qty for f in fills), Decimal(0))
        if shown != order.filled_qty:
            log.warning(
                "order %s reports %s filled, Alpaca's fill activities show %s so far",
                client_order_id,
                order.filled_qty,
                shown,
            )
        return fills

    def drain_events(self) -> Sequence[OrderEvent]:
        """Return the order events since the last call: the stream's, plus what a poll recovered.

        A failing stream (its login refused, see ``stream``) is no error here: orders are then
        polled on every call, and the failure is reported by ``stream_heartbeat``, which
        tradekit's guard turns into REDUCE_ONLY.
        """
        with self._lock:
            events: list[OrderEvent] = []
            updates = self._stream.take_updates() if self._stream is not None else []
            for update in updates:
                try:
                    events.extend(self._tracker.on_trade_update(update))
                except BrokerDataError as exc:
                    log.warning("a trade update could not be read (%s); recovering the order by polling", exc)
                    self._tracker.request_recovery()
            if self._poll_due():
                try:
                    events.extend(self._poll())
                except BrokerError as exc:
                    self._tracker.request_recovery()
                    log.warning("order poll failed, retried on the next call: %s", exc)
            return tuple(events)

    def get_clock(self) -> MarketClock:
        """Return Alpaca's market clock."""
        return clock_from_alpaca(_mapping(self._read("clock", self._trading.get_clock), "Alpaca clock"))

    def close(self) -> None:
        """Stop the stream (bounded wait) and close the HTTP sessions; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.stop()
        for client in (self._trading, self._orders, self._data):
            client._session.close()

    # ------------------------------------------------------------------ beyond the protocol

    def get_calendar(self, start: date, end: date) -> list[TradingSession]:
        """Return the market days from ``start`` to ``end`` with their regular open and close."""
        days = self._read(
            "calendar",
            lambda: self._trading.get_calendar(alpaca.GetCalendarRequest(start=start, end=end)),
        )
        return [session_from_alpaca(_mapping(d, "Alpaca calendar day")) for d in _array(days, "Alpaca calendar")]

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """Return each symbol's daily bars closing within ``start``..``end``, oldest first; a
        symbol with a bar that cannot be trusted is left out, and logged (``bars``)."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        return trusted_bars(read_daily_bars(self._data, self._config, wanted, start, end), self._data_problems_told)

    def latest_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """Return the last trade price of each symbol Alpaca has one for (from the configured feed);
        a symbol whose trade cannot be read is left unpriced (its buy is BLOCKed) and logged once."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        request = alpaca.StockLatestTradeRequest(
            symbol_or_symbols=wanted, feed=alpaca.DataFeed(self._config.bar_feed.value)
        )
        raw = _mapping(
            self._read("latest trades", lambda: self._data.get_stock_latest_trade(request)), "Alpaca latest trades"
        )
        prices: dict[str, Decimal] = {}
        for symbol in wanted:
            if raw.get(symbol) is None:
                continue
            try:
                prices[symbol] = price_from_alpaca_trade(
                    symbol, _mapping(raw[symbol], f"Alpaca latest trade of {symbol}")
                )
            except BrokerDataError as exc:
                # One bad trade must not leave every other symbol without its price.
                if str(exc) not in self._data_problems_told:
                    self._data_problems_told.add(str(exc))
                    log.warning("%s; %s has no price until Alpaca's latest trade of it can be read", exc, symbol)
        return prices

    def stream_status(self) -> StreamStatus | None:
        """Return what the ``trade_updates`` stream has done, or None when it is switched off."""
        return self._stream.status() if self._stream is not None else None

    def stream_heartbeat(self) -> StreamHeartbeat | None:
        """Return the stream's health for tradekit's guard (``StreamHealth``), or None without a stream."""
        status = self.stream_status()
        if status is None:
            return None
        return StreamHeartbeat(
            connected=status.connected and status.running,
            last_heard_at=status.last_heard_at,
            failure=status.failure,
        )

    @property
    def position_mismatches(self) -> tuple[PositionMismatch, ...]:
        """Fills whose reported position did not follow from the previous fill (see ``events``)."""
        with self._lock:
            return self._tracker.position_mismatches

    # ------------------------------------------------------------------ submission helpers

    def _order_body(self, request: OrderRequest) -> dict[str, Any]:
        cid = request.client_order_id
        for name, value in (("qty", request.qty), ("notional", request.notional)):
            if value is not None and _places(value) > QTY_PLACES:
                raise OrderRejected(
                    f"order {cid}: {name} {value} has more than {QTY_PLACES} decimal places, which Alpaca refuses",
                    code="precision",
                )
        if request.is_fractional:
            if request.notional is not None and request.order_type is not OrderType.MARKET:
                raise FractionalNotSupported(
                    f"order {cid}: Alpaca takes a notional amount on market orders only", code="notional_limit"
                )
            if request.time_in_force is not TimeInForce.DAY:
                raise FractionalNotSupported(
                    f"order {cid}: Alpaca takes fractional orders as DAY orders only, "
                    f"not {request.time_in_force.value}",
                    code="fractional_time_in_force",
                )
            if request.notional is not None and request.notional < MIN_FRACTIONAL_NOTIONAL:
                raise FractionalNotSupported(
                    f"order {cid}: notional {request.notional} is below Alpaca's ${MIN_FRACTIONAL_NOTIONAL} minimum",
                    code="below_min_notional",
                )
        body: dict[str, Any] = {
            "symbol": request.symbol,
            "side": alpaca.OrderSide(request.side.value).value,
            "type": alpaca.OrderType(request.order_type.value).value,
            "time_in_force": alpaca.TimeInForce(request.time_in_force.value).value,
            "client_order_id": cid,
        }
        if request.qty is not None:
            body["qty"] = _plain(request.qty)
        if request.notional is not None:
            body["notional"] = _plain(request.notional)
        if request.limit_price is not None:
            body["limit_price"] = _plain(request.limit_price)
        return body

    def _submission_error(self, request: OrderRequest, failure: AlpacaFailure) -> BrokerError:
        cid = request.client_order_id
        what = f"order {cid} ({request.side.value} {_amount(request)} {request.symbol})"
        if failure.is_duplicate_client_order_id:
            return DuplicateClientOrderId(
                f"{what}: Alpaca already holds an order with this client order id ({failure.describe()}); "
                "look it up, do not send it again"
            )
        refused = failure.status is not None and 400 <= failure.status < 500 and failure.status not in (408, 429)
        if refused:
            code = str(failure.code if failure.code is not None else failure.status)
            message = failure.message.lower()
            if request.is_fractional and any(marker in message for marker in _FRACTIONAL_REFUSALS):
                return FractionalNotSupported(f"{what} refused as fractional: {failure.describe()}", code=code)
            return OrderRejected(f"{what} refused by Alpaca: {failure.describe()}", code=code)
        return AmbiguousSubmission(
            f"{what}: outcome unknown ({failure.describe()}); look it up by client order id before anything else"
        )

    # ------------------------------------------------------------------ reading

    def _read(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (alpaca.APIError, requests.RequestException) as exc:
            failure = failure_from(exc, self._config.request_timeout_seconds)
            raise BrokerUnavailable(f"Alpaca {what} could not be read: {failure.describe()}") from None
        except ValueError as exc:
            # A 200 answer whose body is not JSON (an HTML page from a proxy, a cut body).
            raise BrokerDataError(f"Alpaca {what}: answer is not JSON ({type(exc).__name__})") from None

    def _read_or_none(self, what: str, call: Callable[[], T]) -> T | None:
        """Like ``_read``, but None when Alpaca answers 404 (no such order or asset)."""
        try:
            return call()
        except alpaca.APIError as exc:
            if exc.status_code == 404:
                return None
            failure = failure_from(exc, self._config.request_timeout_seconds)
            raise BrokerUnavailable(f"Alpaca {what} could not be read: {failure.describe()}") from None
        except requests.RequestException as exc:
            failure = failure_from(exc, self._config.request_timeout_seconds)
            raise BrokerUnavailable(f"Alpaca {what} could not be read: {failure.describe()}") from None
        except ValueError as exc:
            raise BrokerDataError(f"Alpaca {what}: answer is not JSON ({type(exc).__name__})") from None

    def _list_orders(self, status: Any, *, after: datetime | None) -> tuple[list[Order], list[ForeignOrder]]:
        orders: dict[str, Order] = {}
        foreign: dict[str, ForeignOrder] = {}
        cursor = after
        while True:
            request = alpaca.GetOrdersRequest(
                status=status,
                limit=_ORDERS_PAGE,
                after=cursor,
                direction=alpaca.Sort.ASC,
            )
            page = _array(self._read("orders", partial(self._trading.get_orders, request)), "Alpaca orders")
            fresh = 0
            for raw in page:
                read = order_or_foreign_from_alpaca(_mapping(raw, "Alpaca order"))
                if isinstance(read, ForeignOrder):
                    key = read.broker_order_id or read.client_order_id or read.problem
                    fresh += key not in foreign
                    foreign[key] = read
                    self._warn_unreadable_order(read)
                    continue
                order = read
                if order.broker_order_id not in orders:
                    fresh += 1
                orders[order.broker_order_id] = order
            if len(page) < _ORDERS_PAGE or fresh == 0:
                break
            # Orders submitted in the same microsecond as the page's last one come again and
            # are recognised by id; a page with nothing new ends the listing.
            times = [o.submitted_at for o in orders.values()]
            times += [f.submitted_at for f in foreign.values() if f.submitted_at is not None]
            if not times:
                break
            cursor = max(times) - timedelta(microseconds=1)
        return sorted(orders.values(), key=lambda o: (o.submitted_at, o.broker_order_id)), list(foreign.values())

    def _warn_unreadable_order(self, order: ForeignOrder) -> None:
        name = order.broker_order_id or order.client_order_id
        if order.symbol is None:
            self._warn_unreadable(f"order {name}", order.problem, "nothing tradekit trades")
        else:
            self._warn_unreadable(
                f"order {name}",
                order.problem,
                f"counted as an open order of unknown size on {order.symbol}: no buy, and no sell past it, "
                "until it is gone",
            )

    def _warn_unreadable(self, what: str, problem: str, treated_as: str) -> None:
        if what in self._warned_unreadable:
            return
        self._warned_unreadable.add(what)
        log.warning(
            "Alpaca %s was not placed by tradekit and cannot be read (%s); taken as %s", what, problem, treated_as
        )

    def _order_by_id(self, order_id: str) -> Order | None:
        answer = self._read_or_none(f"order {order_id}", lambda: self._trading.get_order_by_id(order_id))
        return None if answer is None else order_from_alpaca(_mapping(answer, f"Alpaca order {order_id}"))

    def _executions(self, orders: Sequence[Order], *, resume: bool = False) -> dict[str, list[RecoveredExecution]]:
        """Read the FILL activities of ``orders``, oldest first, at most ``_MAX_ACTIVITY_PAGES`` pages.

        Reading stops early once every order's last execution (the one whose cumulative
        quantity is the order's filled quantity) was read. With ``resume`` (the recovery
        poll), a read that hit the page bound is continued by the next call from the last
        activity it read, unless an order older than its start is now among ``orders``:
        activities before that were read already, and those after it come next.
        """
        client_ids = {o.broker_order_id: o.client_order_id for o in orders}
        targets = {o.broker_order_id: o.filled_qty for o in orders}
        after = min(o.submitted_at for o in orders) - _ACTIVITY_MARGIN
        sweep = self._activity_sweep if resume else None
        page_token = sweep.page_token if sweep is not None and sweep.after <= after else None
        started = sweep.after if sweep is not None and page_token is not None else after
        found: list[RecoveredExecution] = []
        reached: dict[str, Decimal] = {}
        complete = False
        for _ in range(_MAX_ACTIVITY_PAGES):
            params: dict[str, Any] = {"direction": "asc", "page_size": _ACTIVITIES_PAGE, "after": after.isoformat()}
            if page_token is not None:
                params["page_token"] = page_token
            page = _array(
                self._read("fill activities", partial(self._trading.get, "/account/activities/FILL", params)),
                "Alpaca fill activities",
            )
            for raw in page:
                activity = _mapping(raw, "Alpaca fill activity")
                order_id = str(activity.get("order_id"))
                client_order_id = client_ids.get(order_id)
                if client_order_id is None:
                    continue
                execution = RecoveredExecution(
                    cumulative_qty=cumulative_qty_of_activity(activity),
                    fill=fill_from_alpaca_activity(activity, client_order_id=client_order_id),
                )
                found.append(execution)
                reached[order_id] = max(reached.get(order_id, execution.cumulative_qty), execution.cumulative_qty)
            if len(page) < _ACTIVITIES_PAGE or all(reached.get(i, Decimal(0)) >= q for i, q in targets.items()):
                complete = True
                break
            last_id = _mapping(page[-1], "Alpaca fill activity").get("id")
            if not isinstance(last_id, str):
                raise BrokerDataError("Alpaca fill activity: field 'id' is missing, the next page cannot be asked for")
            page_token = last_id
        if not complete:
            log.warning(
                "%d pages of fill activities read (since %s) and executions still missing; %s",
                _MAX_ACTIVITY_PAGES,
                started.isoformat(),
                "the next poll goes on from there" if resume else "the rest is not read now",
            )
        if resume:
            self._activity_sweep = (
                None if complete or page_token is None else _ActivitySweep(after=started, page_token=page_token)
            )
        return executions_by_order(found)

    # ------------------------------------------------------------------ recovery poll

    def _poll_due(self) -> bool:
        if self._last_poll_monotonic is None or self._tracker.recovery_requested:
            return True
        if self._stream is not None:
            status = self._stream.status()
            # A failing stream delivers nothing: every call polls.
            if status.connections != self._polled_connections or status.failure is not None:
                return True
        return _time.monotonic() - self._last_poll_monotonic >= self._config.poll_interval_seconds

    def _poll(self) -> list[OrderEvent]:
        connections = self._stream.status().connections if self._stream is not None else 0
        started_at = utcnow()
        since = (self._last_poll_at or self._started_at) - _POLL_OVERLAP
        closed, _ = self._list_orders(alpaca.QueryOrderStatus.CLOSED, after=since)
        snapshots = {o.broker_order_id: o for o in closed}
        opened, _ = self._list_orders(alpaca.QueryOrderStatus.OPEN, after=None)
        snapshots.update((o.broker_order_id, o) for o in opened)
        for order_id in sorted(self._tracker.unsettled_order_ids() - snapshots.keys()):
            order = self._order_by_id(order_id)
            if order is not None:
                snapshots[order_id] = order
        behind = [o for o in snapshots.values() if self._tracker.missing_qty(o) > 0]
        if not behind:
            self._activity_sweep = None  # nothing missing: an unfinished read is not needed any more
        executions = self._executions(behind, resume=True) if behind else {}
        events: list[OrderEvent] = []
        for order in sorted(snapshots.values(), key=lambda o: (o.submitted_at, o.broker_order_id)):
            events.extend(self._tracker.on_poll(order, executions.get(order.broker_order_id, ()), now=started_at))
        # Whatever asked for this poll is answered by it; quantity still missing stays on
        # the unsettled list and is asked for again on the next scheduled poll.
        self._tracker.recovery_requested = False
        self._last_poll_at = started_at
        self._last_poll_monotonic = _time.monotonic()
        self._polled_connections = connections
        return events


def _amount(request: OrderRequest) -> str:
    if request.notional is not None:
        return f"${_plain(request.notional)} of"
    assert request.qty is not None
    return _plain(request.qty)
