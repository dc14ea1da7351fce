"""The emulated brokerage: account, assets, prices, orders, fills and positions.

Every public method takes the broker's re-entrant lock, so the test thread and the
server threads can call in at any time. Trade updates are handed to an event sink
while the lock is held, which keeps their order identical to the order of state changes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from ._sessions import NEW_YORK, Sessions, SessionTimes
from ._wire import (
    PRICE_QUANTUM,
    QTY_PLACES,
    QTY_QUANTUM,
    RATIO_QUANTUM,
    ApiError,
    dec_str,
    decimal_places,
    opt_dec_str,
    opt_ts,
    parse_decimal,
    ts,
    utcnow,
)

EventSink = Callable[[dict[str, Any]], None]

_ASSET_NAMESPACE = uuid.UUID("6f0c3b5e-8f43-4d8a-9a57-2d4f5e1c7a10")
_ACCOUNT_NAMESPACE = uuid.UUID("0b1d2c3e-4f50-4617-8293-a4b5c6d7e8f9")

OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "partially_filled",
        "pending_new",
        "pending_cancel",
        "pending_replace",
        "accepted_for_bidding",
        "held",
        "calculated",
        "stopped",
        "suspended",
        "done_for_day",
    }
)
SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIME_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
POSITION_INTENTS = frozenset({"buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"})
CLIENT_ORDER_ID_MAX = 128
# Alpaca's wording (with underscores) when a client_order_id is reused; tests may set the
# spaced wording of older answers and Alpaca's documentation.
DUPLICATE_CLIENT_ORDER_ID_MESSAGE = "client_order_id must be unique"
MIN_FRACTIONAL_COST = Decimal(1)
ZERO = Decimal(0)


def _q_price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _q_ratio(value: Decimal) -> Decimal:
    return value.quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)


def _activity_time(activity: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(activity["transaction_time"]).replace("Z", "+00:00"))


def _is_whole(value: Decimal) -> bool:
    return value == value.to_integral_value()


@dataclass
class Asset:
    """An entry of GET /v2/assets."""

    symbol: str
    name: str
    exchange: str = "NASDAQ"
    asset_class: str = "us_equity"
    status: str = "active"
    tradable: bool = True
    marginable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = True
    attributes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        """Return a stable asset id derived from the symbol."""
        return str(uuid.uuid5(_ASSET_NAMESPACE, self.symbol))

    def to_json(self) -> dict[str, Any]:
        """Return the asset in Alpaca's JSON shape."""
        return {
            "id": self.id,
            "class": self.asset_class,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name,
            "status": self.status,
            "tradable": self.tradable,
            "marginable": self.marginable,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "100",
            "shortable": self.shortable,
            "easy_to_borrow": self.easy_to_borrow,
            "fractionable": self.fractionable,
            "attributes": list(self.attributes),
        }


@dataclass
class Order:
    """An order and its fill progress."""

    id: str
    client_order_id: str
    symbol: str
    asset_id: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    position_intent: str
    created_at: datetime
    expires_at: datetime | None
    status: str = "accepted"
    updated_at: datetime | None = None
    filled_qty: Decimal = ZERO
    filled_avg_price: Decimal | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    expired_at: datetime | None = None
    stop_triggered: bool = False
    # A notional order's share count is fixed by the price at its first fill.
    target_qty: Decimal | None = None
    # An injected late or partial fill: the order waits for this before it fills (further).
    held_fill: HeldFill | None = None

    @property
    def is_open(self) -> bool:
        """Tell whether the order can still fill or be canceled."""
        return self.status in OPEN_STATUSES

    @property
    def fractional(self) -> bool:
        """Tell whether this is a fractional (notional or non-integer qty) order."""
        return self.notional is not None or (self.qty is not None and not _is_whole(self.qty))

    def total_qty(self) -> Decimal | None:
        """Return the share count to fill, None for a notional order not yet priced."""
        return self.qty if self.qty is not None else self.target_qty

    def to_json(self) -> dict[str, Any]:
        """Return the order in Alpaca's JSON shape."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at or self.created_at),
            "submitted_at": ts(self.created_at),
            "filled_at": opt_ts(self.filled_at),
            "expired_at": opt_ts(self.expired_at),
            "canceled_at": opt_ts(self.canceled_at),
            "failed_at": opt_ts(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": opt_dec_str(self.notional),
            "qty": opt_dec_str(self.qty),
            "filled_qty": dec_str(self.filled_qty),
            "filled_avg_price": opt_dec_str(self.filled_avg_price),
            # Alpaca sends an empty string, not "simple", for a simple order.
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": opt_dec_str(self.limit_price),
            "stop_price": opt_dec_str(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": opt_ts(self.expires_at),
        }


@dataclass
class HeldFill:
    """A fault holding an order's (remaining) fill back until the clock advances or
    ``requests_left`` further requests arrived; ``fraction`` of it fills first when partial."""

    requests_left: int
    fraction: Decimal | None = None


@dataclass
class Position:
    """A signed holding: positive qty is long, negative is short."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class AccountState:
    """Mutable account fields; derived figures (equity, buying power) are computed on read."""

    id: str
    account_number: str
    cash: Decimal
    last_equity: Decimal
    created_at: datetime
    status: str = "ACTIVE"
    crypto_status: str = "ACTIVE"
    currency: str = "USD"
    multiplier: Decimal = Decimal(1)
    trading_blocked: bool = False
    account_blocked: bool = False
    transfers_blocked: bool = False
    trade_suspended_by_user: bool = False
    shorting_enabled: bool = False
    # Alpaca stopped sending these on 2026-07-06 (alpaca-py 0.44 documents them as removed);
    # they appear in the JSON only once a test sets them.
    pattern_day_trader: bool | None = None
    daytrade_count: int | None = None
    daytrading_buying_power: Decimal | None = None
    # What GET /v2/account reports as buying_power instead of the derived figure (a margin
    # deficit makes it negative at Alpaca).
    reported_buying_power: Decimal | None = None
    options_approved_level: int = 0
    options_trading_level: int = 0


@dataclass
class AccountConfig:
    """GET/PATCH /v2/account/configurations."""

    fractional_trading: bool = True
    no_shorting: bool = False
    suspend_trade: bool = False
    max_margin_multiplier: str = "4"
    trade_confirm_email: str = "all"
    ptp_no_exception_entry: bool = False
    max_options_trading_level: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the configuration in Alpaca's JSON shape."""
        return {
            "fractional_trading": self.fractional_trading,
            "max_margin_multiplier": self.max_margin_multiplier,
            "no_shorting": self.no_shorting,
            "suspend_trade": self.suspend_trade,
            "trade_confirm_email": self.trade_confirm_email,
            "ptp_no_exception_entry": self.ptp_no_exception_entry,
            "max_options_trading_level": self.max_options_trading_level,
        }


@dataclass
class FillPolicy:
    """How the emulator executes orders on its own.

    auto_fill_market: market (and triggered stop) orders fill at the symbol's price.
    partial_fills: each automatic execution is split into this many fills.
    fill_limit_orders: limit orders fill as soon as the price reaches the limit.
    """

    auto_fill_market: bool = True
    partial_fills: int = 1
    fill_limit_orders: bool = True


@dataclass
class ClockState:
    """GET /v2/clock; unset timestamps are derived from the wall clock."""

    is_open: bool = True
    timestamp: datetime | None = None
    next_open: datetime | None = None
    next_close: datetime | None = None


@dataclass(frozen=True)
class CalendarDay:
    """One market day of GET /v2/calendar (times are New York local)."""

    date: date
    open: time = time(9, 30)
    close: time = time(16, 0)
    session_open: time = time(4, 0)
    session_close: time = time(20, 0)

    def to_json(self) -> dict[str, Any]:
        """Return the day in Alpaca's JSON shape."""
        settlement = self.date + timedelta(days=1)
        while settlement.weekday() >= 5:
            settlement += timedelta(days=1)
        return {
            "date": self.date.isoformat(),
            "open": self.open.strftime("%H:%M"),
            "close": self.close.strftime("%H:%M"),
            "session_open": self.session_open.strftime("%H%M"),
            "session_close": self.session_close.strftime("%H%M"),
            "settlement_date": settlement.isoformat(),
        }


def _session_of(day: CalendarDay) -> SessionTimes:
    return SessionTimes(
        day.date,
        datetime.combine(day.date, day.open, NEW_YORK).astimezone(UTC),
        datetime.combine(day.date, day.close, NEW_YORK).astimezone(UTC),
    )


def _calendar_day(session: SessionTimes) -> CalendarDay:
    return CalendarDay(
        session.day,
        open=session.open.astimezone(NEW_YORK).time(),
        close=session.close.astimezone(NEW_YORK).time(),
    )


def _split(qty: Decimal, parts: int, whole: bool) -> list[Decimal]:
    """Split a quantity into up to `parts` positive pieces that add up exactly."""
    parts = max(1, parts)
    if whole:
        base = (qty / parts).to_integral_value(rounding=ROUND_DOWN)
    else:
        base = (qty / parts).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
    pieces = [base] * (parts - 1)
    pieces.append(qty - base * (parts - 1))
    return [p for p in pieces if p > 0]


class Broker:
    """State and rules of one emulated Alpaca account."""

    def __init__(self, cash: Decimal, account_number: str, sink: EventSink) -> None:
        self.lock = threading.RLock()
        self._sink = sink
        self.account = AccountState(
            id=str(uuid.uuid5(_ACCOUNT_NAMESPACE, account_number)),
            account_number=account_number,
            cash=cash,
            last_equity=cash,
            created_at=utcnow() - timedelta(days=365),
        )
        self.config = AccountConfig()
        self.policy = FillPolicy()
        self.clock = ClockState()
        self.calendar: list[CalendarDay] | None = None
        # The simulated time (None: the wall clock and the pinned ClockState, as before
        # set_time is first called) and the sessions it is judged on.
        self.sim_now: datetime | None = None
        self._sessions: Sessions | None = None
        # Daily open and close by symbol and session day: in simulated time the last price
        # follows them (the session's open while it trades, its close once it closed).
        self.daily_path: dict[str, dict[date, tuple[Decimal, Decimal]]] = {}
        self.assets: dict[str, Asset] = {}
        self.prices: dict[str, Decimal] = {}
        self.price_times: dict[str, datetime] = {}
        self.lastday_prices: dict[str, Decimal] = {}
        self.positions: dict[str, Position] = {}
        self.orders: list[Order] = []
        self._by_id: dict[str, Order] = {}
        self._by_client_id: dict[str, Order] = {}
        self._reject_remaining = 0
        # GET /v2/account/activities/FILL: one entry per execution, in execution order.
        self.fill_activities: list[dict[str, Any]] = []
        # Orders and positions put in as raw JSON (asset classes and shapes the emulator does
        # not model, e.g. a multi-leg options order placed by hand): listed exactly as given.
        self.raw_orders: list[dict[str, Any]] = []
        self.raw_positions: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ reference data

    def set_asset(self, asset: Asset) -> None:
        """Add or replace an asset."""
        with self.lock:
            self.assets[asset.symbol] = asset

    def find_asset(self, symbol_or_id: str) -> Asset | None:
        """Look an asset up by symbol or by asset id."""
        with self.lock:
            asset = self.assets.get(symbol_or_id) or self.assets.get(symbol_or_id.upper())
            if asset is not None:
                return asset
            return next((a for a in self.assets.values() if a.id == symbol_or_id), None)

    def set_price(self, symbol: str, price: Decimal, lastday_price: Decimal | None) -> None:
        """Set the last trade price of a symbol and execute any order it makes marketable."""
        if price <= 0:
            raise ValueError("price must be positive")
        with self.lock:
            self.prices[symbol] = price
            self.price_times[symbol] = self.now()
            if lastday_price is not None:
                self.lastday_prices[symbol] = lastday_price
            else:
                self.lastday_prices.setdefault(symbol, price)
            for order in list(self.orders):
                live = order.status in ("new", "partially_filled")
                tradable_now = self.market_open() or order.extended_hours
                if order.symbol == symbol and live and tradable_now:
                    self._execute(order)

    def latest_trades_json(self, symbols: list[str]) -> dict[str, Any]:
        """Return GET /v2/stocks/trades/latest: the last price of each symbol that has one."""
        with self.lock:
            return {
                "trades": {
                    symbol: {
                        "t": ts(self.price_times[symbol]),
                        "x": "V",
                        # The data API sends prices as JSON numbers.
                        "p": self.prices[symbol],
                        "s": 100,
                        "c": ["@"],
                        "i": 1,
                        "z": "C",
                    }
                    for symbol in symbols
                    if symbol in self.prices
                }
            }

    def set_clock(self, state: ClockState) -> None:
        """Replace the market clock; opening the market releases orders held while closed."""
        with self.lock:
            was_open = self.market_open()
            # Pinning the clock leaves simulated time: the wall clock stamps what follows.
            self.sim_now = None
            self.clock = state
            if not state.is_open:
                if was_open:
                    self._close_market()
                return
            self._open_market()

    # ------------------------------------------------------------------ simulated time

    def now(self) -> datetime:
        """Return the broker's time: the simulated time once set, else the wall clock."""
        return self.sim_now if self.sim_now is not None else utcnow()

    def sessions(self) -> Sessions:
        """Return the sessions simulated time is judged on (the configured days, else NYSE's)."""
        with self.lock:
            if self._sessions is None:
                self._sessions = (
                    Sessions(_session_of(day) for day in self.calendar)
                    if self.calendar is not None
                    else Sessions.nyse()
                )
            return self._sessions

    def set_calendar(self, days: list[CalendarDay]) -> None:
        """Replace the trading calendar (and the sessions simulated time follows)."""
        with self.lock:
            self.calendar = days
            self._sessions = None

    def market_open(self) -> bool:
        """Tell whether the regular session is open now (pinned clock, or simulated time)."""
        with self.lock:
            if self.sim_now is None:
                return self.clock.is_open
            return self.sessions().at(self.sim_now) is not None

    def set_time(self, moment: datetime) -> None:
        """Move the simulated time to ``moment``, never backwards, one session boundary at a time.

        Held (late) fills are due as soon as the clock moves, and happen first. Each open on
        the way releases the orders held while the market was closed and executes them at the
        session's opening price; each close expires the live DAY orders.
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"simulated time must be timezone-aware, got {moment!r}")
        moment = moment.astimezone(UTC)
        with self.lock:
            previous = self.sim_now
            if previous is not None and moment < previous:
                raise ValueError(f"simulated time only moves forward: {moment.isoformat()} < {previous.isoformat()}")
            if previous is None:
                self.sim_now = moment
                self._follow_daily_path()
                if self.market_open():
                    self._open_market()
                return
            if moment == previous:
                return
            for order in [o for o in self.orders if o.held_fill is not None]:
                self._release(order)
            for at, opens in self.sessions().boundaries(previous, moment):
                self.sim_now = at
                self._follow_daily_path()
                if opens:
                    self._open_market()
                else:
                    self._close_market()
            self.sim_now = moment
            self._follow_daily_path()

    def _open_market(self) -> None:
        for order in list(self.orders):
            if order.status == "accepted":
                self._mark_new(order)
        for order in list(self.orders):
            if order.status in ("new", "partially_filled"):
                self._execute(order)

    def _close_market(self) -> None:
        for order in list(self.orders):
            live = order.status in ("new", "partially_filled")
            if live and order.time_in_force == "day" and not order.extended_hours:
                self._expire(order)

    def _follow_daily_path(self) -> None:
        """Set each symbol with a daily path to its price now: the open of the session trading,
        else the close of the last session that closed."""
        assert self.sim_now is not None
        sessions = self.sessions()
        trading = sessions.at(self.sim_now)
        closed = sessions.last_closed(self.sim_now)
        for symbol, path in self.daily_path.items():
            price: Decimal | None = None
            if trading is not None and trading.day in path:
                price = path[trading.day][0]
            elif closed is not None and closed.day in path:
                price = path[closed.day][1]
            if price is not None and price != self.prices.get(symbol):
                self.set_price(symbol, price, None)

    def set_daily_path(self, symbol: str, path: dict[date, tuple[Decimal, Decimal]]) -> None:
        """Make a symbol's price follow these daily (open, close) pairs in simulated time."""
        with self.lock:
            self.daily_path.setdefault(symbol, {}).update(path)
            if self.sim_now is not None:
                self._follow_daily_path()

    def bar_visible(self, opens_at: datetime, timeframe: timedelta) -> bool:
        """Tell whether the data API publishes a bar yet: in simulated time a bar is served once
        it is complete (a daily bar once its session closed); on the wall clock always."""
        with self.lock:
            now = self.sim_now
        if now is None:
            return True
        if timeframe >= timedelta(days=1):
            session = self.sessions().by_day(opens_at.astimezone(NEW_YORK).date())
            return session is not None and session.close <= now
        return opens_at + timeframe <= now

    # ------------------------------------------------------------------ held (late) fills

    def tick_request(self) -> None:
        """Count one more request against every held fill; release those it makes due."""
        with self.lock:
            for order in [o for o in self.orders if o.held_fill is not None]:
                held = order.held_fill
                assert held is not None
                held.requests_left -= 1
                if held.requests_left <= 0:
                    self._release(order)

    def _release(self, order: Order) -> None:
        order.held_fill = None
        if order.status in ("new", "partially_filled") and (self.market_open() or order.extended_hours):
            self._execute(order)

    def clock_json(self) -> dict[str, Any]:
        """Return GET /v2/clock, timestamps in New York time as Alpaca sends them."""
        with self.lock:
            clock = self.clock
            simulated = self.sim_now
        if simulated is not None:
            sessions = self.sessions()
            return {
                "timestamp": simulated.astimezone(NEW_YORK).isoformat(),
                "is_open": sessions.at(simulated) is not None,
                "next_open": sessions.next_open(simulated).astimezone(NEW_YORK).isoformat(),
                "next_close": sessions.next_close(simulated).astimezone(NEW_YORK).isoformat(),
            }
        now = (clock.timestamp or self.now()).astimezone(NEW_YORK)
        next_close = clock.next_close or self._default_next_close(now)
        # While the market is open, the next open is the one after today's close.
        next_open = clock.next_open or self._default_next_open(next_close if clock.is_open else now)
        return {
            "timestamp": now.isoformat(),
            "is_open": clock.is_open,
            "next_open": next_open.astimezone(NEW_YORK).isoformat(),
            "next_close": next_close.astimezone(NEW_YORK).isoformat(),
        }

    @staticmethod
    def _default_next_open(now: datetime) -> datetime:
        day = now.date()
        candidate = datetime.combine(day, time(9, 30), NEW_YORK)
        while candidate <= now or candidate.weekday() >= 5:
            day += timedelta(days=1)
            candidate = datetime.combine(day, time(9, 30), NEW_YORK)
        return candidate

    @staticmethod
    def _default_next_close(now: datetime) -> datetime:
        day = now.date()
        candidate = datetime.combine(day, time(16, 0), NEW_YORK)
        while candidate <= now or candidate.weekday() >= 5:
            day += timedelta(days=1)
            candidate = datetime.combine(day, time(16, 0), NEW_YORK)
        return candidate

    def calendar_json(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Return GET /v2/calendar between start and end inclusive.

        Without configured days every weekday is a full trading day (no holidays), and an
        open-ended query covers the current calendar year.
        """
        with self.lock:
            days = list(self.calendar) if self.calendar is not None else None
            simulated = self.sim_now is not None
        if days is None:
            today = self.now().astimezone(NEW_YORK).date()
            first = start or date(today.year, 1, 1)
            last = end or date(today.year, 12, 31)
            if simulated:
                days = [_calendar_day(s) for s in self.sessions().between(first, last)]
            else:
                days = []
                current = first
                while current <= last:
                    if current.weekday() < 5:
                        days.append(CalendarDay(current))
                    current += timedelta(days=1)
        return [
            d.to_json()
            for d in sorted(days, key=lambda d: d.date)
            if (start is None or d.date >= start) and (end is None or d.date <= end)
        ]

    # ------------------------------------------------------------------ account

    def _reserved_for_buys(self) -> Decimal:
        reserved = ZERO
        for order in self.orders:
            if not order.is_open or order.side != "buy":
                continue
            if order.notional is not None and order.target_qty is None:
                reserved += order.notional
                continue
            total = order.total_qty()
            if total is None:
                continue
            remaining = total - order.filled_qty
            price = self._reference_price(order)
            if price is not None:
                reserved += remaining * price
        return reserved

    def _reference_price(self, order: Order) -> Decimal | None:
        if order.type in ("limit", "stop_limit") and order.limit_price is not None:
            return order.limit_price
        if order.type == "stop" and order.stop_price is not None:
            return max(order.stop_price, self.prices.get(order.symbol, ZERO))
        return self.prices.get(order.symbol)

    def _market_values(self) -> tuple[Decimal, Decimal]:
        long_value = ZERO
        short_value = ZERO
        for pos in self.positions.values():
            value = pos.qty * self.prices.get(pos.symbol, pos.avg_entry_price)
            if value >= 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def buying_power(self) -> Decimal:
        """Return the buying power left for new buy orders."""
        with self.lock:
            acct = self.account
            reserved = self._reserved_for_buys()
            if acct.multiplier <= 1:
                return max(ZERO, acct.cash - reserved)
            long_value, short_value = self._market_values()
            equity = acct.cash + long_value + short_value
            initial_margin = (long_value - short_value) / 2
            return max(ZERO, (equity - initial_margin) * acct.multiplier - reserved)

    def account_json(self) -> dict[str, Any]:
        """Return GET /v2/account with equity and buying power derived from positions and prices."""
        with self.lock:
            acct = self.account
            long_value, short_value = self._market_values()
            equity = acct.cash + long_value + short_value
            reserved = self._reserved_for_buys()
            gross = long_value - short_value
            if acct.multiplier <= 1:
                initial_margin = long_value
                regt = max(ZERO, acct.cash - reserved)
            else:
                initial_margin = gross / 2
                regt = max(ZERO, (equity - initial_margin) * min(acct.multiplier, Decimal(2)) - reserved)
            maintenance = long_value * Decimal("0.3") - short_value * Decimal("0.3")
            buying_power = self.buying_power()
            body: dict[str, Any] = {
                "id": acct.id,
                "account_number": acct.account_number,
                "status": acct.status,
                "crypto_status": acct.crypto_status,
                "currency": acct.currency,
                "buying_power": dec_str(
                    acct.reported_buying_power if acct.reported_buying_power is not None else buying_power
                ),
                "regt_buying_power": dec_str(regt),
                "non_marginable_buying_power": dec_str(max(ZERO, acct.cash - reserved)),
                "options_buying_power": dec_str(max(ZERO, acct.cash - reserved)),
                "effective_buying_power": dec_str(buying_power),
                "cash": dec_str(acct.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "pending_transfer_out": "0",
                "portfolio_value": dec_str(equity),
                "trading_blocked": acct.trading_blocked,
                "transfers_blocked": acct.transfers_blocked,
                "account_blocked": acct.account_blocked,
                "created_at": ts(acct.created_at),
                "trade_suspended_by_user": acct.trade_suspended_by_user,
                "multiplier": dec_str(acct.multiplier),
                "shorting_enabled": acct.shorting_enabled,
                "equity": dec_str(equity),
                "last_equity": dec_str(acct.last_equity),
                "long_market_value": dec_str(long_value),
                "short_market_value": dec_str(short_value),
                "position_market_value": dec_str(gross),
                "initial_margin": dec_str(initial_margin),
                "maintenance_margin": dec_str(maintenance),
                "last_maintenance_margin": "0",
                "sma": "0",
                "options_approved_level": acct.options_approved_level,
                "options_trading_level": acct.options_trading_level,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
                "balance_asof": (self.now().astimezone(NEW_YORK).date() - timedelta(days=1)).isoformat(),
                "crypto_tier": 1,
            }
            if acct.pattern_day_trader is not None:
                body["pattern_day_trader"] = acct.pattern_day_trader
            if acct.daytrade_count is not None:
                body["daytrade_count"] = acct.daytrade_count
            if acct.daytrading_buying_power is not None:
                body["daytrading_buying_power"] = dec_str(acct.daytrading_buying_power)
            return body

    # ------------------------------------------------------------------ positions

    def held_for_sells(self, symbol: str) -> Decimal:
        """Return the shares locked by open sell orders in a symbol."""
        with self.lock:
            held = ZERO
            for order in self.orders:
                if order.symbol != symbol or order.side != "sell" or not order.is_open:
                    continue
                total = order.total_qty()
                if total is None and order.notional is not None:
                    price = self.prices.get(symbol)
                    total = (order.notional / price).quantize(QTY_QUANTUM) if price else ZERO
                held += (total or ZERO) - order.filled_qty
            return held

    def position_json(self, pos: Position) -> dict[str, Any]:
        """Return a position in Alpaca's JSON shape, valued at the symbol's current price."""
        with self.lock:
            asset = self.assets.get(pos.symbol) or Asset(pos.symbol, pos.symbol)
            price = self.prices.get(pos.symbol, pos.avg_entry_price)
            lastday = self.lastday_prices.get(pos.symbol, price)
            held = self.held_for_sells(pos.symbol) if pos.qty > 0 else ZERO
        market_value = pos.qty * price
        cost_basis = pos.qty * pos.avg_entry_price
        unrealized = market_value - cost_basis
        intraday = (price - lastday) * pos.qty
        lastday_value = abs(lastday * pos.qty)
        return {
            "asset_id": asset.id,
            "symbol": pos.symbol,
            "exchange": asset.exchange,
            "asset_class": asset.asset_class,
            "asset_marginable": asset.marginable,
            "qty": dec_str(pos.qty),
            "qty_available": dec_str(pos.qty - held),
            "avg_entry_price": dec_str(pos.avg_entry_price),
            "side": "long" if pos.qty > 0 else "short",
            "market_value": dec_str(market_value),
            "cost_basis": dec_str(cost_basis),
            "unrealized_pl": dec_str(unrealized),
            "unrealized_plpc": dec_str(_q_ratio(unrealized / abs(cost_basis))) if cost_basis else "0",
            "unrealized_intraday_pl": dec_str(intraday),
            "unrealized_intraday_plpc": dec_str(_q_ratio(intraday / lastday_value)) if lastday_value else "0",
            "current_price": dec_str(price),
            "lastday_price": dec_str(lastday),
            "change_today": dec_str(_q_ratio((price - lastday) / lastday)) if lastday else "0",
        }

    def find_position(self, symbol_or_id: str) -> Position | None:
        """Look a position up by symbol or asset id."""
        with self.lock:
            pos = self.positions.get(symbol_or_id) or self.positions.get(symbol_or_id.upper())
            if pos is not None:
                return pos
            asset = self.find_asset(symbol_or_id)
            return self.positions.get(asset.symbol) if asset is not None else None

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal, adjust_cash: bool) -> None:
        """Seed or replace a position directly, without an order or a trade update."""
        with self.lock:
            old = self.positions.get(symbol)
            if adjust_cash:
                if old is not None:
                    self.account.cash += old.qty * old.avg_entry_price
                self.account.cash -= qty * avg_entry_price
            if qty == 0:
                self.positions.pop(symbol, None)
            else:
                self.positions[symbol] = Position(symbol, qty, avg_entry_price)

    def _apply_position(self, symbol: str, signed_qty: Decimal, price: Decimal) -> Decimal:
        pos = self.positions.get(symbol)
        old_qty = pos.qty if pos is not None else ZERO
        old_avg = pos.avg_entry_price if pos is not None else ZERO
        new_qty = old_qty + signed_qty
        if new_qty == 0:
            self.positions.pop(symbol, None)
            return ZERO
        if old_qty == 0 or (old_qty > 0) == (signed_qty > 0):
            avg = _q_price((abs(old_qty) * old_avg + abs(signed_qty) * price) / abs(new_qty))
        elif (old_qty > 0) != (new_qty > 0):
            # The fill crossed zero: what is left was opened at this fill's price.
            avg = price
        else:
            avg = old_avg
        self.positions[symbol] = Position(symbol, new_qty, avg)
        return new_qty

    # ------------------------------------------------------------------ orders: queries

    def get_order(self, order_id: str) -> Order | None:
        """Look an order up by its Alpaca id."""
        with self.lock:
            return self._by_id.get(order_id)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """Look an order up by its client_order_id."""
        with self.lock:
            return self._by_client_id.get(client_order_id)

    def list_orders(
        self,
        status: str,
        limit: int,
        after: datetime | None,
        until: datetime | None,
        direction: str,
        symbols: set[str] | None,
        side: str | None,
    ) -> list[dict[str, Any]]:
        """Return GET /v2/orders, newest first unless direction is asc."""
        with self.lock:
            selected = [
                o
                for o in self.orders
                if (status == "all" or (status == "open") == o.is_open)
                and (after is None or o.created_at > after)
                and (until is None or o.created_at < until)
                and (symbols is None or o.symbol in symbols)
                and (side is None or o.side == side)
            ]
            selected.sort(key=lambda o: o.created_at, reverse=direction != "asc")
            raw = [
                dict(o)
                for o in self.raw_orders
                if status == "all" or (status == "open") == (o.get("status") in OPEN_STATUSES)
            ]
            return ([o.to_json() for o in selected] + raw)[:limit]

    # ------------------------------------------------------------------ orders: submission

    def arm_rejections(self, times: int) -> None:
        """Make the next `times` accepted orders end up rejected."""
        with self.lock:
            self._reject_remaining += times

    def submit(self, body: Any, held_fill: HeldFill | None = None) -> dict[str, Any]:
        """Validate and store a new order, then run it; return the POST /v2/orders response body.

        The response shows the order as Alpaca's POST answer does (status "accepted"), even
        though the emulator may already have filled it by the time the client reads it.
        ``held_fill`` (a fault) makes a marketable order fill only later, or only in part now.
        """
        with self.lock:
            order = self._validate(body)
            order.held_fill = held_fill
            self.orders.append(order)
            self._by_id[order.id] = order
            self._by_client_id[order.client_order_id] = order
            response = order.to_json()
            self._start(order)
            return response

    def _validate(self, body: Any) -> Order:
        if not isinstance(body, dict):
            raise ApiError(400, "request body format is invalid", 40010000)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            raise ApiError(422, "symbol is required", 40010001)
        symbol = symbol.strip().upper()
        side = body.get("side")
        if side not in SIDES:
            raise ApiError(422, "invalid side", 40010001)
        order_type = body.get("type", body.get("order_type"))
        if order_type not in ORDER_TYPES:
            raise ApiError(422, "invalid order type", 40010001)
        tif = body.get("time_in_force")
        if tif not in TIME_IN_FORCE:
            raise ApiError(422, "invalid time_in_force", 40010001)
        order_class = body.get("order_class") or "simple"

        client_order_id = body.get("client_order_id")
        if client_order_id is None or client_order_id == "":
            client_order_id = str(uuid.uuid4())
        if not isinstance(client_order_id, str):
            raise ApiError(422, "invalid client_order_id", 40010001)
        if len(client_order_id) > CLIENT_ORDER_ID_MAX:
            raise ApiError(
                422,
                f"client_order_id must be no more than {CLIENT_ORDER_ID_MAX} characters",
                40010001,
            )
        # Uniqueness is checked before any business rule: a retried POST of an order that
        # was stored gets the duplicate error, whatever else changed since.
        if client_order_id in self._by_client_id:
            raise ApiError(422, DUPLICATE_CLIENT_ORDER_ID_MESSAGE, 40010001)

        qty_raw = body.get("qty")
        notional_raw = body.get("notional")
        if qty_raw is None and notional_raw is None:
            raise ApiError(422, "qty or notional is required", 40010001)
        if qty_raw is not None and notional_raw is not None:
            raise ApiError(422, "only one of qty or notional can be specified", 40010001)
        qty = parse_decimal(qty_raw, "qty") if qty_raw is not None else None
        notional = parse_decimal(notional_raw, "notional") if notional_raw is not None else None
        for name, value in (("qty", qty), ("notional", notional)):
            if value is None:
                continue
            if value <= 0:
                raise ApiError(422, f"{name} must be > 0", 40010001)
            if decimal_places(value) > QTY_PLACES:
                raise ApiError(422, f"{name} must have at most {QTY_PLACES} decimal places", 40010001)

        limit_price = self._price_field(body, "limit_price", required=order_type in ("limit", "stop_limit"))
        stop_price = self._price_field(body, "stop_price", required=order_type in ("stop", "stop_limit"))
        extended_hours = bool(body.get("extended_hours", False))
        if extended_hours and not (order_type == "limit" and tif == "day"):
            raise ApiError(422, "extended hours order must be DAY limit orders", 42210000)

        acct = self.account
        if (
            acct.trading_blocked
            or acct.account_blocked
            or acct.trade_suspended_by_user
            or self.config.suspend_trade
            or acct.status != "ACTIVE"
        ):
            raise ApiError(403, "account is not authorized to trade", 40310000)

        asset = self.assets.get(symbol)
        if asset is None:
            raise ApiError(422, f'asset "{symbol}" not found', 42210000)
        if asset.status != "active" or not asset.tradable:
            raise ApiError(422, f'asset "{symbol}" is not tradable', 42210000)

        fractional = notional is not None or (qty is not None and not _is_whole(qty))
        if fractional:
            if not self.config.fractional_trading:
                # What Alpaca answered accounts without fractional trading enabled.
                raise ApiError(
                    422,
                    "qty is required" if notional is not None else "qty must be integer",
                    40010001,
                )
            if not asset.fractionable:
                raise ApiError(403, f'asset "{symbol}" is not fractionable', 40310000)
            if order_class != "simple":
                raise ApiError(422, "fractional orders must be simple orders", 42210000)
            if tif != "day":
                raise ApiError(422, "fractional orders must be DAY orders", 42210000)
            if notional is not None and order_type != "market":
                raise ApiError(422, "notional orders must be market orders", 42210000)
        if order_class != "simple":
            raise ApiError(422, f"order_class {order_class} is not supported by the emulator", 40010001)
        if order_type == "trailing_stop":
            raise ApiError(422, "order type trailing_stop is not supported by the emulator", 40010001)

        price = self.prices.get(symbol)
        reference = limit_price if limit_price is not None else (stop_price or price)
        pos = self.positions.get(symbol)
        pos_qty = pos.qty if pos is not None else ZERO
        if side == "sell":
            requested = qty
            if requested is None and notional is not None and reference:
                requested = (notional / reference).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
            if pos_qty > 0:
                held = self.held_for_sells(symbol)
                available = pos_qty - held
                if requested is not None and requested > available:
                    raise ApiError(
                        403,
                        f"insufficient qty available for order (requested: {dec_str(requested)}, "
                        f"available: {dec_str(available)})",
                        40310000,
                        {
                            "available": dec_str(available),
                            "existing_qty": dec_str(pos_qty),
                            "held_for_orders": dec_str(held),
                            "symbol": symbol,
                        },
                    )
            else:
                if fractional:
                    raise ApiError(422, "fractional orders cannot be sold short", 42210000)
                if not acct.shorting_enabled or self.config.no_shorting:
                    raise ApiError(403, "account is not allowed to short", 40310000)
                if not asset.shortable:
                    raise ApiError(422, f'asset "{symbol}" cannot be sold short', 42210000)

        estimated_cost = (
            notional if notional is not None else (qty * reference if qty is not None and reference else None)
        )
        if fractional and estimated_cost is not None and estimated_cost < MIN_FRACTIONAL_COST:
            raise ApiError(403, "cost basis must be >= minimal amount of order 1", 40310000)
        if side == "buy" and estimated_cost is not None and estimated_cost > self.buying_power():
            raise ApiError(403, "insufficient buying power", 40310000)

        intent = body.get("position_intent")
        if intent is not None and intent not in POSITION_INTENTS:
            raise ApiError(422, "invalid position_intent", 40010001)
        if intent is None:
            if side == "buy":
                intent = "buy_to_close" if pos_qty < 0 else "buy_to_open"
            else:
                intent = "sell_to_close" if pos_qty > 0 else "sell_to_open"

        now = self.now()
        expires_at: datetime | None = None
        if tif == "day":
            clock = self.clock
            if self.sim_now is not None:
                expires_at = self.sessions().next_close(self.sim_now)
            else:
                expires_at = clock.next_close or self._default_next_close((clock.timestamp or now).astimezone(NEW_YORK))
        return Order(
            id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            symbol=symbol,
            asset_id=asset.id,
            asset_class=asset.asset_class,
            side=side,
            type=order_type,
            time_in_force=tif,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            stop_price=stop_price,
            extended_hours=extended_hours,
            position_intent=intent,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )

    @staticmethod
    def _price_field(body: dict[str, Any], name: str, required: bool) -> Decimal | None:
        raw = body.get(name)
        if raw is None:
            if required:
                raise ApiError(422, f"{name} is required", 40010001)
            return None
        value = parse_decimal(raw, name)
        if value <= 0:
            raise ApiError(422, f"{name} must be > 0", 40010001)
        # US equities tick in cents at or above $1 and in hundredths of a cent below.
        allowed = 2 if value >= 1 else 4
        if decimal_places(value) > allowed:
            raise ApiError(
                422,
                f"invalid {name} {dec_str(value)}. sub-penny increment does not fulfill minimum pricing criteria",
                42210000,
            )
        return value

    # ------------------------------------------------------------------ orders: lifecycle

    def _emit(self, event: str, order: Order, **extra: str) -> None:
        payload: dict[str, Any] = {
            "event": event,
            "execution_id": str(uuid.uuid4()),
            "order": order.to_json(),
            "timestamp": ts(order.updated_at or self.now()),
        }
        payload.update(extra)
        self._sink(payload)

    def _start(self, order: Order) -> None:
        if self._reject_remaining > 0:
            self._reject_remaining -= 1
            now = self.now()
            order.status = "rejected"
            order.failed_at = now
            order.updated_at = now
            self._emit("rejected", order)
            return
        if not (self.market_open() or order.extended_hours):
            # Outside market hours Alpaca holds the order as "accepted" until the open.
            return
        self._mark_new(order)
        self._execute(order)

    def _mark_new(self, order: Order) -> None:
        order.status = "new"
        order.updated_at = self.now()
        self._emit("new", order)

    def _execute(self, order: Order) -> None:
        price = self.prices.get(order.symbol)
        if price is None or not order.is_open:
            return
        buy = order.side == "buy"
        if order.type in ("stop", "stop_limit") and not order.stop_triggered:
            assert order.stop_price is not None
            if (buy and price >= order.stop_price) or (not buy and price <= order.stop_price):
                order.stop_triggered = True
            else:
                return
        if order.type in ("market", "stop"):
            if self.policy.auto_fill_market:
                self._fill_remaining(order, price)
            return
        assert order.limit_price is not None
        marketable = price <= order.limit_price if buy else price >= order.limit_price
        if marketable and self.policy.fill_limit_orders:
            self._fill_remaining(order, price)
        elif order.time_in_force in ("ioc", "fok"):
            self._cancel(order)

    def _remaining(self, order: Order, price: Decimal) -> Decimal:
        if order.qty is None and order.target_qty is None:
            assert order.notional is not None
            order.target_qty = (order.notional / price).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
        total = order.total_qty()
        assert total is not None
        return total - order.filled_qty

    def _fill_remaining(self, order: Order, price: Decimal) -> None:
        remaining = self._remaining(order, price)
        whole = _is_whole(remaining) and not order.fractional
        held = order.held_fill
        if held is not None:
            # A late fill waits; a partial one executes its share now, then waits for the rest.
            if held.fraction is not None:
                share = held.fraction
                held.fraction = None
                part = remaining * share
                part = part.to_integral_value(rounding=ROUND_DOWN) if whole else part.quantize(QTY_QUANTUM, ROUND_DOWN)
                if 0 < part < remaining:
                    self._apply_fill(order, part, price)
            return
        for piece in _split(remaining, self.policy.partial_fills, whole):
            self._apply_fill(order, piece, price)

    def fill(self, order_id: str, qty: Decimal | None, price: Decimal | None) -> dict[str, Any]:
        """Execute (part of) an open order by hand, whatever the fill policy and clock say."""
        with self.lock:
            order = self._by_id.get(order_id)
            if order is None:
                raise KeyError(order_id)
            if not order.is_open:
                raise ValueError(f"order {order_id} is {order.status}")
            if price is not None and price <= 0:
                raise ValueError("fill price must be positive")
            fill_price = price or self.prices.get(order.symbol) or order.limit_price
            if fill_price is None:
                raise ValueError(f"no price for {order.symbol}: set one or pass price")
            if order.status == "accepted":
                self._mark_new(order)
            remaining = self._remaining(order, fill_price)
            fill_qty = remaining if qty is None else qty
            if fill_qty <= 0 or fill_qty > remaining:
                raise ValueError(f"fill qty {fill_qty} outside (0, {remaining}]")
            self._apply_fill(order, fill_qty, fill_price)
            return order.to_json()

    def _apply_fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        now = self.now()
        previous = order.filled_qty
        filled = previous + qty
        order.filled_avg_price = _q_price(((order.filled_avg_price or ZERO) * previous + price * qty) / filled)
        order.filled_qty = filled
        order.updated_at = now
        total = order.total_qty()
        complete = total is not None and filled >= total
        order.status = "filled" if complete else "partially_filled"
        if complete:
            order.filled_at = now
        signed = qty if order.side == "buy" else -qty
        position_qty = self._apply_position(order.symbol, signed, price)
        self.account.cash -= signed * price
        self._record_fill_activity(order, qty, price, now, complete)
        self._emit(
            "fill" if complete else "partial_fill",
            order,
            price=dec_str(price),
            qty=dec_str(qty),
            position_qty=dec_str(position_qty),
        )

    def _record_fill_activity(self, order: Order, qty: Decimal, price: Decimal, at: datetime, complete: bool) -> None:
        total = order.total_qty()
        leaves = max(ZERO, total - order.filled_qty) if total is not None else ZERO
        # Alpaca's activity ids start with the time to the millisecond, so they sort by time;
        # the sequence number keeps executions within one millisecond in order.
        stamp = at.strftime("%Y%m%d%H%M%S") + f"{at.microsecond // 1000:03d}"
        self.fill_activities.append(
            {
                "id": f"{stamp}{len(self.fill_activities):06d}::{uuid.uuid4()}",
                "activity_type": "FILL",
                "transaction_time": ts(at),
                "type": "fill" if complete else "partial_fill",
                "price": dec_str(price),
                "qty": dec_str(qty),
                "side": order.side,
                "symbol": order.symbol,
                "leaves_qty": dec_str(leaves),
                "order_id": order.id,
                "cum_qty": dec_str(order.filled_qty),
                "order_status": order.status,
            }
        )

    def list_fill_activities(
        self,
        after: datetime | None,
        until: datetime | None,
        direction: str,
        page_size: int,
        page_token: str | None,
    ) -> list[dict[str, Any]]:
        """Return one page of GET /v2/account/activities/FILL.

        Like Alpaca, the page token is the id of the last activity of the previous page, and
        pages continue in the requested direction (newest first by default).
        """
        with self.lock:
            selected = [
                a
                for a in self.fill_activities
                if (after is None or _activity_time(a) > after) and (until is None or _activity_time(a) < until)
            ]
        if direction == "desc":
            selected.reverse()
        if page_token is not None:
            ids = [a["id"] for a in selected]
            if page_token not in ids:
                raise ApiError(422, "invalid page_token", 40010001)
            selected = selected[ids.index(page_token) + 1 :]
        return [dict(a) for a in selected[:page_size]]

    def _expire(self, order: Order) -> None:
        now = self.now()
        order.status = "expired"
        order.expired_at = now
        order.updated_at = now
        self._emit("expired", order)

    def _cancel(self, order: Order) -> None:
        now = self.now()
        order.status = "canceled"
        order.canceled_at = now
        order.updated_at = now
        self._emit("canceled", order)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order as DELETE /v2/orders/{id} does."""
        with self.lock:
            order = self._by_id.get(order_id)
            if order is None:
                raise ApiError(404, "order not found", 40410000)
            if not order.is_open:
                raise ApiError(422, f'order is already in "{order.status}" state', 42210000)
            self._cancel(order)

    def cancel_all(self) -> list[dict[str, Any]]:
        """Cancel every open order; return DELETE /v2/orders's per-order statuses."""
        with self.lock:
            results: list[dict[str, Any]] = []
            for order in list(self.orders):
                if order.is_open:
                    self._cancel(order)
                    results.append({"id": order.id, "status": 200, "body": None})
            return results

    def close_position(self, symbol_or_id: str, qty: str | None, percentage: str | None) -> dict[str, Any]:
        """Submit the market order that DELETE /v2/positions/{symbol} places to close a position."""
        with self.lock:
            pos = self.find_position(symbol_or_id)
            if pos is None:
                raise ApiError(404, "position does not exist", 40410000)
            size = abs(pos.qty)
            if qty is not None and percentage is not None:
                raise ApiError(422, "only one of qty or percentage can be specified", 40010001)
            if qty is not None:
                size = parse_decimal(qty, "qty")
            elif percentage is not None:
                pct = parse_decimal(percentage, "percentage")
                if not 0 < pct <= 100:
                    raise ApiError(422, "percentage must be between 0 and 100", 40010001)
                size = (abs(pos.qty) * pct / 100).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
            body = {
                "symbol": pos.symbol,
                "qty": dec_str(size),
                "side": "sell" if pos.qty > 0 else "buy",
                "type": "market",
                "time_in_force": "day",
            }
            return self.submit(body)

    def snapshot_orders(self) -> list[dict[str, Any]]:
        """Return every stored order, oldest first."""
        with self.lock:
            return [o.to_json() for o in self.orders]

    def snapshot_positions(self) -> list[dict[str, Any]]:
        """Return every open position, by symbol."""
        with self.lock:
            return [self.position_json(p) for _, p in sorted(self.positions.items())] + [
                dict(p) for p in self.raw_positions
            ]
