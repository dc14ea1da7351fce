"""AlpacaEmulator: runs the servers and exposes the test's control and fault methods."""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any

from .._fault_plan import Fault, FaultPlan, FiredFault
from .._http_faults import CallControl, CallHook
from .._server import ThreadedServer
from ._broker import Asset, Broker, CalendarDay, ClockState
from ._data import BarSeed, BarStore, normalize_timeframe
from ._faults import FaultBook, HttpFault, RecordedRequest, RequestLog
from ._http import CALL_KINDS, Shared, build_data_app, build_trading_app
from ._sessions import NEW_YORK
from ._stream import StreamHub

_UNSET: Any = object()


class AlpacaEmulator:
    """A local Alpaca: trading REST API + trade_updates websocket + market data bars API.

    Use as a context manager::

        with AlpacaEmulator(api_key="k", secret_key="s") as emu:
            client = TradingClient("k", "s", url_override=emu.base_url)

    Every control method is thread-safe and may be called before or while the servers run.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        secret_key: str = "test-secret",
        *,
        cash: Decimal = Decimal(100000),
        account_number: str = "PA3EMULATOR01",
    ) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self._hub = StreamHub(api_key, secret_key)
        self._broker = Broker(cash, account_number, self._hub.publish)
        self._bars = BarStore()
        self._faults = FaultBook()
        self._log = RequestLog()
        # No seeded faults until a plan is installed; the empty plan still counts the calls.
        self._control = CallControl(FaultPlan(0, {}, kinds=CALL_KINDS))
        self._shared = Shared(api_key, secret_key, self._faults, self._log, self._control, self._broker.tick_request)
        self._trading: ThreadedServer | None = None
        self._data: ThreadedServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AlpacaEmulator:
        """Start the trading and data servers on ephemeral loopback ports."""
        if self._trading is not None:
            raise RuntimeError("emulator already started")
        self._shared.closing.clear()
        trading = ThreadedServer(build_trading_app(self._broker, self._hub, self._shared))
        trading.start()
        self._trading = trading
        data = ThreadedServer(build_data_app(self._bars, self._shared, self._broker))
        try:
            data.start()
        except BaseException:
            self.stop()
            raise
        self._data = data
        return self

    def stop(self) -> None:
        """Stop both servers, cutting short any injected delay still pending."""
        self._shared.closing.set()
        servers = [s for s in (self._data, self._trading) if s is not None]
        self._data = None
        self._trading = None
        for server in servers:
            server.stop()

    def __enter__(self) -> AlpacaEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _server(self, server: ThreadedServer | None) -> ThreadedServer:
        if server is None:
            raise RuntimeError("emulator is not running; use it as a context manager")
        return server

    @property
    def base_url(self) -> str:
        """Return the trading API root, for TradingClient(url_override=...)."""
        return self._server(self._trading).base_url

    @property
    def stream_url(self) -> str:
        """Return the full trading websocket URL, for TradingStream(url_override=...)."""
        return self._server(self._trading).ws_url + "/stream"

    @property
    def data_url(self) -> str:
        """Return the market data API root, for StockHistoricalDataClient(url_override=...).

        It serves GET /v2/stocks/bars (what load_bars loaded) and GET /v2/stocks/trades/latest
        (the prices set with set_price).
        """
        return self._server(self._data).base_url

    # ------------------------------------------------------------------ market and reference data

    def set_asset(
        self,
        symbol: str,
        *,
        fractionable: bool = True,
        tradable: bool = True,
        shortable: bool = True,
        marginable: bool = True,
        easy_to_borrow: bool = True,
        status: str = "active",
        exchange: str = "NASDAQ",
        name: str | None = None,
    ) -> None:
        """Add or replace a us_equity asset."""
        self._broker.set_asset(
            Asset(
                symbol=symbol,
                name=name or f"{symbol} Inc. Common Stock",
                exchange=exchange,
                status=status,
                tradable=tradable,
                marginable=marginable,
                shortable=shortable,
                easy_to_borrow=easy_to_borrow,
                fractionable=fractionable,
            )
        )

    def set_price(self, symbol: str, price: Decimal, *, lastday_price: Decimal | None = None) -> None:
        """Set a symbol's last price and execute the orders it makes marketable.

        The first price set also becomes the previous close unless `lastday_price` is given.
        """
        self._broker.set_price(symbol, price, lastday_price)

    def set_clock(
        self,
        *,
        is_open: bool,
        timestamp: datetime | None = None,
        next_open: datetime | None = None,
        next_close: datetime | None = None,
    ) -> None:
        """Set the market clock.

        Opening the market releases the orders held as "accepted" while it was closed;
        closing an open market expires live DAY orders that are not extended-hours orders.
        Unset times are derived from the wall clock (weekdays 09:30-16:00 New York).
        Pinning the clock leaves simulated time (see set_time).
        """
        self._broker.set_clock(ClockState(is_open, timestamp, next_open, next_close))

    def set_time(self, moment: datetime) -> None:
        """Enter (or move on in) simulated time: the emulator lives on this clock from now on.

        Every timestamp it produces (orders, fills, activities, trade updates, latest trades)
        is simulated time; GET /v2/clock's is_open, next_open and next_close follow the
        calendar (real NYSE sessions unless set_calendar was given days); crossing a session's
        open releases the orders held while closed, crossing its close expires live DAY
        orders; the data API serves a bar once it is complete, and a symbol's price follows
        its daily bars (the session's open while it trades, its close after). Time never
        moves backwards; a late fill held by a fault is due as soon as it moves.
        """
        self._broker.set_time(moment)

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time on by ``delta`` (set_time must have been called); return it."""
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward, got {delta}")
        with self._broker.lock:
            now = self._broker.sim_now
            if now is None:
                raise RuntimeError("advance() needs simulated time: call set_time() first")
            self._broker.set_time(now + delta)
            return now + delta

    @property
    def now(self) -> datetime:
        """Return the emulator's time (simulated once set_time was called, else the wall clock)."""
        return self._broker.now()

    def set_calendar(self, days: Iterable[CalendarDay]) -> None:
        """Replace the trading calendar (by default every weekday is a full session on a pinned
        clock, and NYSE's real sessions in simulated time)."""
        self._broker.set_calendar(list(days))

    def load_bars(self, symbol: str, bars: Iterable[BarSeed], *, timeframe: str = "1Day") -> None:
        """Add historical bars for a symbol and timeframe to the data API.

        Daily bars also set the price path the symbol follows in simulated time.
        """
        seeds = list(bars)
        self._bars.load(symbol, timeframe, seeds)
        if normalize_timeframe(timeframe) == "1Day":
            path = {b.timestamp.astimezone(NEW_YORK).date(): (b.open, b.close) for b in seeds}
            self._broker.set_daily_path(symbol, path)

    def set_bars_page_size(self, size: int) -> None:
        """Cap how many bars one data API page holds, to exercise next_page_token pagination."""
        self._bars.set_page_size(size)

    # ------------------------------------------------------------------ account and positions

    def set_account(
        self,
        *,
        cash: Decimal | None = None,
        last_equity: Decimal | None = None,
        status: str | None = None,
        multiplier: Decimal | None = None,
        trading_blocked: bool | None = None,
        account_blocked: bool | None = None,
        transfers_blocked: bool | None = None,
        trade_suspended_by_user: bool | None = None,
        shorting_enabled: bool | None = None,
        pattern_day_trader: bool | None = _UNSET,
        daytrade_count: int | None = _UNSET,
    ) -> None:
        """Change account fields; arguments left out keep their value.

        pattern_day_trader and daytrade_count are absent from GET /v2/account (as at Alpaca
        since 2026-07-06) until set here; set them to None to remove them again.
        """
        with self._broker.lock:
            acct = self._broker.account
            if cash is not None:
                acct.cash = cash
            if last_equity is not None:
                acct.last_equity = last_equity
            if status is not None:
                acct.status = status
            if multiplier is not None:
                acct.multiplier = multiplier
            if trading_blocked is not None:
                acct.trading_blocked = trading_blocked
            if account_blocked is not None:
                acct.account_blocked = account_blocked
            if transfers_blocked is not None:
                acct.transfers_blocked = transfers_blocked
            if trade_suspended_by_user is not None:
                acct.trade_suspended_by_user = trade_suspended_by_user
            if shorting_enabled is not None:
                acct.shorting_enabled = shorting_enabled
            if pattern_day_trader is not _UNSET:
                acct.pattern_day_trader = pattern_day_trader
            if daytrade_count is not _UNSET:
                acct.daytrade_count = daytrade_count

    def report_buying_power(self, value: Decimal | None) -> None:
        """Report ``value`` as the account's buying_power (negative: a margin deficit); None: derive it."""
        with self._broker.lock:
            self._broker.account.reported_buying_power = value

    def set_account_configuration(
        self,
        *,
        fractional_trading: bool | None = None,
        no_shorting: bool | None = None,
        suspend_trade: bool | None = None,
        max_margin_multiplier: str | None = None,
    ) -> None:
        """Change the account configuration; fractional_trading=False refuses fractional orders."""
        with self._broker.lock:
            config = self._broker.config
            if fractional_trading is not None:
                config.fractional_trading = fractional_trading
            if no_shorting is not None:
                config.no_shorting = no_shorting
            if suspend_trade is not None:
                config.suspend_trade = suspend_trade
            if max_margin_multiplier is not None:
                config.max_margin_multiplier = max_margin_multiplier

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal, *, adjust_cash: bool = False) -> None:
        """Seed a position held before the test (no order, no trade update); qty 0 removes it.

        With adjust_cash the account pays for it (and is refunded any position it replaces).
        """
        self._broker.set_position(symbol, qty, avg_entry_price, adjust_cash)

    def put_raw_order(self, order: Mapping[str, Any]) -> None:
        """Put an order into the account exactly as given (Alpaca's JSON, unchecked).

        For orders the emulator does not model, placed outside tradekit (a multi-leg options
        order, a crypto pair): GET /v2/orders lists it, open or closed by its ``status``; it
        never fills and sends no trade updates.
        """
        with self._broker.lock:
            self._broker.raw_orders.append(dict(order))

    def put_raw_position(self, position: Mapping[str, Any]) -> None:
        """Put a position into the account exactly as given (Alpaca's JSON, unchecked);
        GET /v2/positions lists it after the modelled ones."""
        with self._broker.lock:
            self._broker.raw_positions.append(dict(position))

    def submit_dashboard_order(
        self,
        symbol: str,
        side: str,
        *,
        qty: Decimal | None = None,
        notional: Decimal | None = None,
        type: str = "market",
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: str = "day",
    ) -> dict[str, Any]:
        """Place an order as a human would in the dashboard: same rules, fills and trade updates.

        It is not an API request, so it is neither logged nor counted as a POST; Alpaca
        generates its client_order_id. Returns the order as POST /v2/orders would.
        """
        body: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "type": type,
            "time_in_force": time_in_force,
        }
        if qty is not None:
            body["qty"] = qty
        if notional is not None:
            body["notional"] = notional
        if limit_price is not None:
            body["limit_price"] = limit_price
        if stop_price is not None:
            body["stop_price"] = stop_price
        return self._broker.submit(body)

    # ------------------------------------------------------------------ execution

    def set_fill_policy(
        self,
        *,
        auto_fill_market: bool = True,
        partial_fills: int = 1,
        fill_limit_orders: bool = True,
    ) -> None:
        """Choose how orders execute on their own.

        auto_fill_market: market orders fill at the symbol's price as soon as they are live.
        partial_fills: split every automatic execution into this many fills (partial_fill
        events, then fill).
        fill_limit_orders: limit orders fill when the price reaches the limit; otherwise
        they rest until fill_order() or a cancel.
        """
        if partial_fills < 1:
            raise ValueError("partial_fills must be at least 1")
        with self._broker.lock:
            policy = self._broker.policy
            policy.auto_fill_market = auto_fill_market
            policy.partial_fills = partial_fills
            policy.fill_limit_orders = fill_limit_orders

    def fill_order(self, order_id: str, *, qty: Decimal | None = None, price: Decimal | None = None) -> dict[str, Any]:
        """Execute an open order by hand: `qty` (default: all that remains) at `price`.

        The price defaults to the symbol's price, then to the limit price. Returns the order.
        """
        return self._broker.fill(order_id, qty, price)

    def arm_reject_orders(self, *, times: int = 1) -> None:
        """Make the next `times` orders that pass validation end up "rejected".

        The POST still answers 200 with status "accepted", as Alpaca does when the
        rejection comes from downstream.
        """
        self._broker.arm_rejections(times)

    # ------------------------------------------------------------------ inspection

    def orders(self) -> list[dict[str, Any]]:
        """Return every stored order (API and dashboard), oldest first, in Alpaca's JSON shape."""
        return self._broker.snapshot_orders()

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        """Return the stored orders carrying a client_order_id (never more than one)."""
        return [o for o in self.orders() if o["client_order_id"] == client_order_id]

    def assets(self) -> list[dict[str, Any]]:
        """Return every asset in Alpaca's JSON shape, by symbol."""
        with self._broker.lock:
            return [a.to_json() for _, a in sorted(self._broker.assets.items())]

    def positions(self) -> list[dict[str, Any]]:
        """Return the open positions in Alpaca's JSON shape."""
        return self._broker.snapshot_positions()

    def account(self) -> dict[str, Any]:
        """Return GET /v2/account as the client would see it now."""
        return self._broker.account_json()

    def requests(self, endpoint: str = "*") -> list[RecordedRequest]:
        """Return received requests matching "METHOD /path" (fnmatch; e.g. "GET /v2/orders/*")."""
        return self._log.select(endpoint)

    @property
    def order_post_count(self) -> int:
        """Return how many POST /v2/orders requests arrived, whatever their outcome."""
        return len(self._log.select("POST /v2/orders"))

    def fill_activities(self) -> list[dict[str, Any]]:
        """Return every FILL account activity (one per execution), oldest first."""
        with self._broker.lock:
            return [dict(a) for a in self._broker.fill_activities]

    def trade_updates(self) -> list[dict[str, Any]]:
        """Return every trade update produced (the "data" of each message), delivered or not."""
        return self._hub.generated()

    def undelivered_trade_updates(self) -> list[dict[str, Any]]:
        """Return the trade updates swallowed by pause_stream_events()."""
        return self._hub.undelivered()

    def stream_listener_count(self) -> int:
        """Return how many websocket clients are authenticated and listening to trade_updates."""
        return self._hub.listener_count()

    @property
    def stream_connections_accepted(self) -> int:
        """Return how many websocket connections were opened so far (reconnects included)."""
        return self._hub.connections_accepted

    def wait_for_stream_listeners(self, count: int, *, timeout: float = 5.0) -> None:
        """Block until exactly `count` clients listen to trade_updates, else raise TimeoutError."""
        deadline = _time.monotonic() + timeout
        while self._hub.listener_count() != count:
            if _time.monotonic() >= deadline:
                raise TimeoutError(f"{self._hub.listener_count()} stream listeners, expected {count}")
            _time.sleep(0.01)

    # ------------------------------------------------------------------ HTTP faults

    def arm_error(
        self,
        status: int,
        *,
        endpoint: str = "POST /v2/orders",
        times: int = 1,
        after_processing: bool = False,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next `times` requests to `endpoint` with an HTTP error.

        after_processing=True runs the request first (a POSTed order is validated, stored
        and executed), then replaces the answer: the order exists but the client sees an
        error. Default bodies: Alpaca-style JSON, or a load balancer's HTML page for 504.
        """
        self._faults.arm(
            HttpFault(
                "error",
                endpoint,
                times,
                status=status,
                body=body,
                content_type=content_type,
                after_processing=after_processing,
            )
        )

    def arm_rate_limit(self, *, endpoint: str = "*", times: int = 1) -> None:
        """Answer the next `times` requests to `endpoint` with 429 before processing them."""
        self.arm_error(429, endpoint=endpoint, times=times)

    def arm_delay(
        self,
        seconds: float,
        *,
        endpoint: str = "POST /v2/orders",
        times: int = 1,
        after_processing: bool = True,
    ) -> None:
        """Delay answering the next `times` requests for `seconds`, by default after processing."""
        self._faults.arm(HttpFault("delay", endpoint, times, seconds=seconds, after_processing=after_processing))

    def arm_malformed_response(self, *, endpoint: str, drop_fields: Iterable[str], times: int = 1) -> None:
        """Process the next `times` requests normally but drop `drop_fields` from the JSON body."""
        self._faults.arm(HttpFault("malformed", endpoint, times, drop_fields=tuple(drop_fields), after_processing=True))

    def clear_faults(self) -> None:
        """Disarm every pending HTTP fault."""
        self._faults.clear()

    # ------------------------------------------------------------------ stream faults

    def drop_stream_connections(self, *, abrupt: bool = False) -> int:
        """Disconnect every websocket client (close frame, or abrupt TCP reset); return how many."""
        return self._hub.drop(abrupt)

    def refuse_stream_logins(self, refuse: bool = True) -> None:
        """Answer every websocket login "unauthorized" (even with the right keys) until called with False."""
        self._hub.refuse_logins = refuse

    def pause_stream_events(self) -> None:
        """Stop delivering trade updates; connections stay up and updates meanwhile are lost."""
        self._hub.pause()

    def resume_stream_events(self) -> None:
        """Deliver trade updates again (those lost while paused are not replayed)."""
        self._hub.resume()

    def arm_duplicate_events(self, *, times: int = 1, events: Iterable[str] = ("fill", "partial_fill")) -> None:
        """Send each of the next `times` updates of these event types twice (same execution_id)."""
        self._hub.arm_duplicates(times, frozenset(events))

    def arm_reordered_events(self, count: int) -> None:
        """Hold the next `count` trade updates and deliver them in reverse order."""
        self._hub.arm_reorder(count)

    # ------------------------------------------------------------------ seeded fault plans and call hooks

    def use_fault_plan(
        self,
        seed: int,
        rates: Mapping[str, Mapping[Fault, float]],
        *,
        max_hold_seconds: float = 5.0,
        late_fill_requests: tuple[int, int] = (1, 12),
    ) -> FaultPlan:
        """Draw faults per call kind from ``seed`` (see CALL_KINDS for the kinds); return the plan.

        The n-th call of a kind always gets the same fault for the same seed and rates.
        A late answer is held until the client gives up or ``max_hold_seconds`` pass.
        """
        plan = FaultPlan(
            seed, rates, kinds=CALL_KINDS, max_hold_seconds=max_hold_seconds, late_fill_requests=late_fill_requests
        )
        with self._control.lock:
            self._control.plan = plan
        self._hub.plan = plan
        return plan

    @property
    def fault_plan(self) -> FaultPlan:
        """Return the plan in use (an empty one, which only counts calls, by default)."""
        return self._control.plan

    def stop_faults(self) -> None:
        """Draw no more seeded faults; late fills already held still come."""
        self._control.plan.stop()

    def fired_faults(self) -> list[FiredFault]:
        """Return the seeded faults that fired so far, in order."""
        return self._control.plan.fired()

    def add_call_hook(self, hook: CallHook) -> None:
        """Call ``hook`` for each API call before and after it is processed (on a server thread).

        Returning True before processing abandons the request: its connection is closed and
        it never reaches the book (a client killed while its POST was on the wire).
        """
        with self._control.lock:
            self._control.hooks.append(hook)

    def remove_call_hook(self, hook: CallHook) -> None:
        """Stop calling a hook added with add_call_hook."""
        with self._control.lock:
            self._control.hooks.remove(hook)
