"""Venue-neutral core of the perpetual-futures emulators.

Both ``binance_usdm`` and ``bybit`` emulate a linear (USDT-margined) perpetual venue in one-way,
cross-margin mode. What they share lives here:

* ``PerpEngine``: instruments, a matching engine over an order book the test sets, positions,
  a single settlement-asset wallet, fees, funding and an income ledger. All money is ``Decimal``.
* ``FaultInjector``: faults armed for the next N matching requests.
* ``PerpVenueEmulator``: the aiohttp plumbing (request parsing, logging, faults, lifecycle) and the
  thread-safe control API a test drives; each venue module adds its routes, auth and wire format.

The engine is deliberately simple where a venue's behaviour is not observable through ccxt: no
liquidation engine, no self-trade prevention, no conditional orders, and the account's own resting
orders are not shown in the public book the test set.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import ClassVar, Literal

from aiohttp import web

from emulators._fault_plan import HTTP_FAULTS, FaultPlan, FaultRates, FiredFault
from emulators._http_faults import CallControl, CallEvent, CallHook, run_with_fault
from emulators._server import ThreadedServer

ZERO = Decimal(0)
ONE = Decimal(1)
MONEY_PLACES = 8
_HOUR_MS = 3_600_000

Num = Decimal | int | float | str
"""A number given to the control API; floats go through ``str`` so 0.1 stays 0.1."""

BookLevels = Sequence[tuple[Num, Num]]


def to_decimal(value: Num) -> Decimal:
    """Convert a control-API or wire number to ``Decimal`` without binary float noise."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def fmt(value: Decimal, places: int) -> str:
    """Render ``value`` with exactly ``places`` decimals, as venues print fixed-scale fields."""
    quantum = ONE.scaleb(-places)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        # Decimal keeps the sign of zero; venues never print "-0.00".
        rounded = abs(rounded)
    return format(rounded, "f")


def fmt_plain(value: Decimal, max_places: int = MONEY_PLACES) -> str:
    """Render ``value`` rounded to ``max_places`` without trailing zeros (e.g. ``"27464.5044"``)."""
    text = fmt(value, max_places)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def now_ms() -> int:
    """Return the current wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def next_funding_boundary_ms(at_ms: int, interval_hours: int) -> int:
    """Return the next funding settlement time (multiples of the interval from 00:00 UTC)."""
    interval_ms = interval_hours * _HOUR_MS
    return (at_ms // interval_ms + 1) * interval_ms


# --------------------------------------------------------------------------------------------
# Instruments and trading records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentSpec:
    """Static trading rules of one linear perpetual, in the venue's own terms."""

    symbol: str
    """Unified ccxt symbol, e.g. ``"BTC/USDT:USDT"``."""
    venue_symbol: str
    """Venue market id, e.g. ``"BTCUSDT"``."""
    base: str
    quote: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    price_decimals: int
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_market_qty: Decimal
    qty_decimals: int
    min_notional: Decimal
    max_leverage: int
    default_leverage: int
    maint_margin_rate: Decimal
    onboard_ms: int
    funding_interval_hours: int = 8

    @property
    def settle(self) -> str:
        """Return the settlement asset (linear contracts settle in the quote asset)."""
        return self.quote

    @property
    def contract_size(self) -> Decimal:
        """Return the contract size: one unit of the base asset on both venues' linear perps."""
        return ONE

    def price_str(self, price: Decimal) -> str:
        """Format a price at the venue's display scale."""
        return fmt(price, self.price_decimals)

    def qty_str(self, qty: Decimal) -> str:
        """Format a quantity at the venue's display scale."""
        return fmt(qty, self.qty_decimals)


class Side(enum.Enum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """Return +1 for buys, -1 for sells."""
        return 1 if self is Side.BUY else -1


class OrderType(enum.Enum):
    """Order types the engine executes (conditional orders are not emulated)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(enum.Enum):
    """Time in force; ``POST_ONLY`` is Binance's GTX and Bybit's PostOnly."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class OrderStatus(enum.Enum):
    """Venue-neutral order status; each venue renders its own names."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


class CloseReason(enum.Enum):
    """Why an order stopped working before being completely filled."""

    USER_CANCEL = "USER_CANCEL"
    NO_MORE_LIQUIDITY = "NO_MORE_LIQUIDITY"
    """Market or IOC order whose remainder found nothing left to trade against."""
    FOK_UNFILLABLE = "FOK_UNFILLABLE"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"


@dataclass
class Order:
    """An order the venue accepted. The control API hands out copies, never the live object."""

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None
    reduce_only: bool
    status: OrderStatus
    created_ms: int
    updated_ms: int
    filled_qty: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fee: Decimal = ZERO
    close_reason: CloseReason | None = None

    @property
    def remaining(self) -> Decimal:
        """Return the quantity not yet filled."""
        return self.quantity - self.filled_qty

    @property
    def average_price(self) -> Decimal | None:
        """Return the volume-weighted fill price, or None before the first fill."""
        if self.filled_qty == 0:
            return None
        return self.filled_quote / self.filled_qty

    @property
    def is_open(self) -> bool:
        """Return whether the order still works on the book."""
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True)
class Fill:
    """One execution of an order against the book."""

    trade_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_rate: Decimal
    realized_pnl: Decimal
    is_maker: bool
    time_ms: int
    order_qty: Decimal
    order_price: Decimal | None
    leaves_qty: Decimal
    closed_qty: Decimal
    """The part of ``qty`` that reduced an existing position."""
    mark_price: Decimal | None


class IncomeType(enum.Enum):
    """Ledger entry kinds, named as Binance's income types."""

    FUNDING_FEE = "FUNDING_FEE"
    COMMISSION = "COMMISSION"
    REALIZED_PNL = "REALIZED_PNL"


@dataclass(frozen=True)
class Income:
    """A wallet ledger entry; ``amount`` is positive when the account was credited."""

    income_id: int
    symbol: str
    income_type: IncomeType
    amount: Decimal
    asset: str
    time_ms: int
    trade_id: str = ""
    funding_rate: Decimal | None = None
    mark_price: Decimal | None = None
    position_qty: Decimal | None = None
    funding_id: str = ""


@dataclass(frozen=True)
class FundingRecord:
    """A settled funding rate, for the venues' funding-rate-history endpoints."""

    symbol: str
    rate: Decimal
    funding_time_ms: int
    mark_price: Decimal | None


@dataclass
class _PositionState:
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0


@dataclass(frozen=True)
class PositionSnapshot:
    """A position valued at the current mark price."""

    symbol: str
    qty: Decimal
    """Signed size in contracts: positive long, negative short."""
    entry_price: Decimal
    mark_price: Decimal
    notional: Decimal
    """Signed ``qty * mark_price``, as Binance reports it."""
    unrealized_pnl: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    liquidation_price: Decimal | None
    leverage: int
    realized_pnl: Decimal
    created_ms: int
    updated_ms: int

    @property
    def entry_value(self) -> Decimal:
        """Return ``|qty| * entry_price``, the position value Bybit reports."""
        return abs(self.qty) * self.entry_price


@dataclass(frozen=True)
class AccountSnapshot:
    """Cross-margin account state in the settlement asset."""

    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    maint_margin: Decimal
    realized_pnl: Decimal
    positions: tuple[PositionSnapshot, ...]
    updated_ms: int

    @property
    def margin_balance(self) -> Decimal:
        """Return wallet balance plus unrealized PnL (Bybit's equity)."""
        return self.wallet_balance + self.unrealized_pnl

    @property
    def initial_margin(self) -> Decimal:
        """Return margin held by positions and open orders."""
        return self.position_initial_margin + self.open_order_initial_margin

    @property
    def available_balance(self) -> Decimal:
        """Return what new orders can still use as margin."""
        return self.margin_balance - self.initial_margin


@dataclass(frozen=True)
class TradeStats:
    """Rolling 24h statistics over the account's own fills, for the ticker endpoints."""

    last_price: Decimal | None
    last_qty: Decimal
    open_price: Decimal | None
    high_price: Decimal | None
    low_price: Decimal | None
    volume: Decimal
    quote_volume: Decimal
    count: int
    first_trade_id: str
    last_trade_id: str


class RejectReason(enum.Enum):
    """Why the engine refused a request; each venue maps these to its own error codes."""

    QTY_NOT_POSITIVE = "QTY_NOT_POSITIVE"
    QTY_STEP = "QTY_STEP"
    QTY_BELOW_MIN = "QTY_BELOW_MIN"
    QTY_ABOVE_MAX = "QTY_ABOVE_MAX"
    PRICE_NOT_POSITIVE = "PRICE_NOT_POSITIVE"
    PRICE_TICK = "PRICE_TICK"
    PRICE_BELOW_MIN = "PRICE_BELOW_MIN"
    PRICE_ABOVE_MAX = "PRICE_ABOVE_MAX"
    NOTIONAL_BELOW_MIN = "NOTIONAL_BELOW_MIN"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    REDUCE_ONLY_REJECTED = "REDUCE_ONLY_REJECTED"
    FOK_UNFILLABLE = "FOK_UNFILLABLE"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_OPEN = "ORDER_NOT_OPEN"
    INVALID_LEVERAGE = "INVALID_LEVERAGE"


class OrderRejected(Exception):
    """The engine refused an order or order operation; nothing was changed."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


ClientIdScope = Literal["open", "all"]


# --------------------------------------------------------------------------------------------
# Matching engine and account
# --------------------------------------------------------------------------------------------


class PerpEngine:
    """Thread-safe state of one emulated account on one linear-perpetual venue.

    ``client_id_scope`` says which earlier orders a new client order id must differ from:
    ``"open"`` (Binance: "a unique id among open orders") or ``"all"`` (Bybit). With
    ``reject_unfillable`` a FOK or post-only order that cannot execute as asked is refused
    outright (Binance -5021/-5022); without it the order is accepted and cancelled (Bybit).
    """

    def __init__(
        self,
        instruments: Iterable[InstrumentSpec],
        *,
        settle_asset: str,
        balance: Decimal,
        taker_fee: Decimal,
        maker_fee: Decimal,
        client_id_scope: ClientIdScope,
        reject_unfillable: bool,
        order_id_factory: Callable[[], str],
        trade_id_factory: Callable[[], str],
    ) -> None:
        self._lock = threading.RLock()
        self._simulated_ms: int | None = None
        self._specs: dict[str, InstrumentSpec] = {}
        self._by_venue_symbol: dict[str, InstrumentSpec] = {}
        for spec in instruments:
            self._specs[spec.symbol] = spec
            self._by_venue_symbol[spec.venue_symbol] = spec
        self.settle_asset = settle_asset
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self._client_id_scope: ClientIdScope = client_id_scope
        self._reject_unfillable = reject_unfillable
        self._new_order_id = order_id_factory
        self._new_trade_id = trade_id_factory
        self._wallet = balance
        self._wallet_updated_ms = self.now_ms()
        self._bids: dict[str, list[list[Decimal]]] = {s: [] for s in self._specs}
        self._asks: dict[str, list[list[Decimal]]] = {s: [] for s in self._specs}
        self._book_update_id: dict[str, int] = {s: 1 for s in self._specs}
        self._book_updated_ms: dict[str, int] = {s: self.now_ms() for s in self._specs}
        self._mark: dict[str, Decimal] = {}
        self._last_price: dict[str, Decimal] = {}
        self._leverage: dict[str, int] = {s: spec.default_leverage for s, spec in self._specs.items()}
        self._positions: dict[str, _PositionState] = {s: _PositionState() for s in self._specs}
        created = self.now_ms()
        self._funding_rate: dict[str, Decimal] = {s: Decimal("0.0001") for s in self._specs}
        self._next_funding_ms: dict[str, int] = {
            s: next_funding_boundary_ms(created, spec.funding_interval_hours) for s, spec in self._specs.items()
        }
        self._funding_history: list[FundingRecord] = []
        self._orders: dict[str, Order] = {}
        self._order_sequence: list[str] = []
        self._fills: list[Fill] = []
        self._incomes: list[Income] = []
        self._income_seq = 0

    # ---- instruments ----------------------------------------------------------------------

    def now_ms(self) -> int:
        """Return the venue's time in epoch ms: the simulated time once set, else the wall clock."""
        simulated = self._simulated_ms
        return simulated if simulated is not None else now_ms()

    def set_time_ms(self, at_ms: int) -> None:
        """Put the venue on simulated time (never backwards): every timestamp it makes follows."""
        with self._lock:
            if self._simulated_ms is not None and at_ms < self._simulated_ms:
                raise ValueError(f"simulated time only moves forward: {at_ms} < {self._simulated_ms}")
            self._simulated_ms = at_ms

    @property
    def instruments(self) -> tuple[InstrumentSpec, ...]:
        """Return every listed instrument."""
        return tuple(self._specs.values())

    def spec(self, symbol: str) -> InstrumentSpec:
        """Return the instrument with unified ``symbol``; raise ``KeyError`` if unlisted."""
        try:
            return self._specs[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}; listed: {sorted(self._specs)}") from None

    def spec_by_venue_symbol(self, venue_symbol: str) -> InstrumentSpec | None:
        """Return the instrument with venue id ``venue_symbol``, or None."""
        return self._by_venue_symbol.get(venue_symbol)

    # ---- market data --------------------------------------------------------------------

    def set_order_book(self, symbol: str, bids: BookLevels, asks: BookLevels) -> None:
        """Replace the book, then let resting orders trade against it at their own prices."""
        spec = self.spec(symbol)
        new_bids = _levels(bids, descending=True)
        new_asks = _levels(asks, descending=False)
        # Off-grid levels could not be printed at the venue's scale without silent rounding.
        for price, qty in new_bids + new_asks:
            if price % spec.tick_size != 0:
                raise ValueError(f"{symbol} book price {price} is not a multiple of {spec.tick_size}")
            if qty % spec.step_size != 0:
                raise ValueError(f"{symbol} book quantity {qty} is not a multiple of {spec.step_size}")
        with self._lock:
            self._bids[symbol] = [[p, q] for p, q in new_bids]
            self._asks[symbol] = [[p, q] for p, q in new_asks]
            self._match_resting(symbol)
            self._touch_book(symbol)

    def order_book(
        self, symbol: str, depth: int | None = None
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]], int, int]:
        """Return ``(bids, asks, update_id, updated_ms)``, best levels first."""
        with self._lock:
            bids = [(p, q) for p, q in self._bids[symbol]]
            asks = [(p, q) for p, q in self._asks[symbol]]
            update_id = self._book_update_id[symbol]
            updated = self._book_updated_ms[symbol]
        if depth is not None:
            bids, asks = bids[:depth], asks[:depth]
        return bids, asks, update_id, updated

    def set_mark_price(self, symbol: str, price: Num | None) -> None:
        """Pin the mark price, or with None derive it from the book (mid) or the last trade."""
        self.spec(symbol)
        with self._lock:
            if price is None:
                self._mark.pop(symbol, None)
            else:
                self._mark[symbol] = to_decimal(price)

    def mark_price(self, symbol: str) -> Decimal | None:
        """Return the pinned mark price, else the book mid, else one side, else the last trade."""
        with self._lock:
            return self._mark_locked(symbol)

    def last_price(self, symbol: str) -> Decimal | None:
        """Return the last traded price, else the mark price."""
        with self._lock:
            return self._last_price.get(symbol) or self._mark_locked(symbol)

    def trade_stats(self, symbol: str, window_ms: int = 24 * _HOUR_MS) -> TradeStats:
        """Return 24h statistics over this account's fills (the emulator has no public tape)."""
        since = self.now_ms() - window_ms
        with self._lock:
            fills = [f for f in self._fills if f.symbol == symbol and f.time_ms >= since]
            last = self._last_price.get(symbol) or self._mark_locked(symbol)
        if not fills:
            return TradeStats(last, ZERO, last, last, last, ZERO, ZERO, 0, "", "")
        prices = [f.price for f in fills]
        return TradeStats(
            last_price=fills[-1].price,
            last_qty=fills[-1].qty,
            open_price=fills[0].price,
            high_price=max(prices),
            low_price=min(prices),
            volume=sum((f.qty for f in fills), ZERO),
            quote_volume=sum((f.qty * f.price for f in fills), ZERO),
            count=len(fills),
            first_trade_id=fills[0].trade_id,
            last_trade_id=fills[-1].trade_id,
        )

    # ---- funding ------------------------------------------------------------------------

    def set_funding_rate(self, symbol: str, rate: Num, next_funding_time_ms: int | None = None) -> None:
        """Set the current funding rate and, optionally, the next settlement time."""
        spec = self.spec(symbol)
        with self._lock:
            self._funding_rate[symbol] = to_decimal(rate)
            self._next_funding_ms[symbol] = (
                next_funding_time_ms
                if next_funding_time_ms is not None
                else next_funding_boundary_ms(self.now_ms(), spec.funding_interval_hours)
            )

    def funding(self, symbol: str) -> tuple[Decimal, int]:
        """Return ``(current rate, next settlement time in ms)``."""
        with self._lock:
            return self._funding_rate[symbol], self._next_funding_ms[symbol]

    def apply_funding(self, symbol: str) -> Decimal:
        """Settle funding now: longs pay shorts ``qty * mark * rate``; return the credit."""
        spec = self.spec(symbol)
        with self._lock:
            rate = self._funding_rate[symbol]
            mark = self._mark_locked(symbol)
            funding_time = self._next_funding_ms[symbol]
            self._funding_history.append(FundingRecord(symbol, rate, funding_time, mark))
            self._next_funding_ms[symbol] = funding_time + spec.funding_interval_hours * _HOUR_MS
            position = self._positions[symbol]
            if position.qty == 0 or mark is None:
                return ZERO
            payment = _money(position.qty * mark * rate)
            credit = -payment
            self._wallet += credit
            at = self.now_ms()
            self._wallet_updated_ms = at
            self._record_income(
                symbol,
                IncomeType.FUNDING_FEE,
                credit,
                at,
                funding_rate=rate,
                mark_price=mark,
                position_qty=position.qty,
                funding_id=self._new_trade_id(),
            )
            return credit

    def funding_history(self, symbol: str | None = None) -> list[FundingRecord]:
        """Return settled funding rates, oldest first."""
        with self._lock:
            return [r for r in self._funding_history if symbol is None or r.symbol == symbol]

    # ---- account ------------------------------------------------------------------------

    def set_balance(self, amount: Num) -> None:
        """Set the wallet balance of the settlement asset (realized money, excluding open PnL)."""
        with self._lock:
            self._wallet = to_decimal(amount)
            self._wallet_updated_ms = self.now_ms()

    def seed_position(self, symbol: str, qty: Num, entry_price: Num) -> None:
        """Replace the position with signed ``qty`` at ``entry_price``; the wallet is untouched."""
        self.spec(symbol)
        size = to_decimal(qty)
        entry = to_decimal(entry_price)
        at = self.now_ms()
        with self._lock:
            state = self._positions[symbol]
            state.qty = size
            state.entry_price = entry if size != 0 else ZERO
            state.created_ms = at if size != 0 else 0
            state.updated_ms = at

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the symbol's leverage; raise ``OrderRejected`` outside 1..max."""
        spec = self.spec(symbol)
        if not 1 <= leverage <= spec.max_leverage:
            raise OrderRejected(RejectReason.INVALID_LEVERAGE, f"leverage {leverage} is not valid")
        with self._lock:
            self._leverage[symbol] = leverage

    def leverage(self, symbol: str) -> int:
        """Return the symbol's leverage."""
        with self._lock:
            return self._leverage[symbol]

    def account(self) -> AccountSnapshot:
        """Return the account valued at current mark prices."""
        with self._lock:
            return self._account_locked()

    def position(self, symbol: str) -> PositionSnapshot:
        """Return the position in ``symbol`` (qty 0 when flat)."""
        with self._lock:
            return self._position_snapshot(symbol, self._account_wallet_context())

    # ---- orders -------------------------------------------------------------------------

    def place_order(
        self,
        *,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None,
        time_in_force: TimeInForce,
        reduce_only: bool,
        client_order_id: str,
    ) -> Order:
        """Validate, margin-check and execute an order; return a copy of the stored order.

        Market orders sweep the book and a remainder that finds no liquidity expires; limit orders
        take what crosses their price and rest the remainder (GTC) or expire it (IOC).
        """
        spec = self.spec(symbol)
        _validate_quantity(spec, order_type, quantity)
        if order_type is OrderType.LIMIT:
            if price is None:
                raise ValueError("limit orders need a price")
            _validate_price(spec, price)
        with self._lock:
            self._check_client_id(client_order_id)
            position = self._positions[symbol]
            if reduce_only:
                if position.qty == 0 or (position.qty > 0) == (side is Side.BUY):
                    raise OrderRejected(RejectReason.REDUCE_ONLY_REJECTED, "order would not reduce the position")
                quantity = min(quantity, abs(position.qty))
            limit = price if order_type is OrderType.LIMIT else None
            levels = self._asks[symbol] if side is Side.BUY else self._bids[symbol]
            planned = _match_levels(levels, quantity, limit, side, consume=False)
            planned_qty = sum((q for _, q in planned), ZERO)
            planned_quote = sum((p * q for p, q in planned), ZERO)
            reference = self._reference_price(symbol, order_type, price, planned)
            if not reduce_only and reference is not None and quantity * reference < spec.min_notional:
                raise OrderRejected(
                    RejectReason.NOTIONAL_BELOW_MIN,
                    f"notional {quantity * reference} below {spec.min_notional}",
                )
            unfillable: CloseReason | None = None
            if time_in_force is TimeInForce.POST_ONLY and planned_qty > 0:
                unfillable = CloseReason.POST_ONLY_WOULD_TAKE
            elif time_in_force is TimeInForce.FOK and planned_qty < quantity:
                unfillable = CloseReason.FOK_UNFILLABLE
            if unfillable is not None and self._reject_unfillable:
                reason = (
                    RejectReason.POST_ONLY_WOULD_TAKE
                    if unfillable is CloseReason.POST_ONLY_WOULD_TAKE
                    else RejectReason.FOK_UNFILLABLE
                )
                raise OrderRejected(reason)
            if unfillable is None:
                resting_qty = ZERO
                resting_quote = ZERO
                if limit is not None and self._rests(order_type, time_in_force):
                    resting_qty = quantity - planned_qty
                    resting_quote = resting_qty * limit
                self._check_margin(symbol, side, planned_qty + resting_qty, planned_quote, resting_quote)
            at = self.now_ms()
            order = Order(
                order_id=self._new_order_id(),
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                order_type=order_type,
                time_in_force=time_in_force,
                quantity=quantity,
                price=price if order_type is OrderType.LIMIT else None,
                reduce_only=reduce_only,
                status=OrderStatus.NEW,
                created_ms=at,
                updated_ms=at,
            )
            self._orders[order.order_id] = order
            self._order_sequence.append(order.order_id)
            if unfillable is not None:
                order.status = OrderStatus.EXPIRED
                order.close_reason = unfillable
                return dataclasses.replace(order)
            if planned:
                for fill_price, fill_qty in _match_levels(levels, quantity, limit, side, consume=True):
                    self._execute(order, fill_price, fill_qty, is_maker=False, at=at)
                self._touch_book(symbol)
            if order.remaining == 0:
                order.status = OrderStatus.FILLED
            elif not self._rests(order_type, time_in_force):
                order.status = OrderStatus.EXPIRED
                order.close_reason = CloseReason.NO_MORE_LIQUIDITY
            elif order.filled_qty > 0:
                order.status = OrderStatus.PARTIALLY_FILLED
            return dataclasses.replace(order)

    def cancel_order(self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None) -> Order:
        """Cancel an open order by id or client id; return a copy of it."""
        with self._lock:
            order = self._find_locked(symbol, order_id, client_order_id)
            if order is None:
                raise OrderRejected(RejectReason.ORDER_NOT_FOUND)
            if not order.is_open:
                raise OrderRejected(RejectReason.ORDER_NOT_OPEN, f"order is {order.status.value}")
            order.status = OrderStatus.CANCELED
            order.close_reason = CloseReason.USER_CANCEL
            order.updated_ms = self.now_ms()
            return dataclasses.replace(order)

    def find_order(
        self, symbol: str | None, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order | None:
        """Return a copy of the order ``order_id``, else the newest with ``client_order_id``."""
        with self._lock:
            order = self._find_locked(symbol, order_id, client_order_id)
            return dataclasses.replace(order) if order is not None else None

    def orders(self, symbol: str | None = None) -> list[Order]:
        """Return copies of every accepted order, oldest first."""
        with self._lock:
            return [
                dataclasses.replace(self._orders[i])
                for i in self._order_sequence
                if symbol is None or self._orders[i].symbol == symbol
            ]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return copies of orders still working, oldest first."""
        return [o for o in self.orders(symbol) if o.is_open]

    def fills(self, symbol: str | None = None) -> list[Fill]:
        """Return executions, oldest first."""
        with self._lock:
            return [f for f in self._fills if symbol is None or f.symbol == symbol]

    def incomes(self) -> list[Income]:
        """Return ledger entries, oldest first."""
        with self._lock:
            return list(self._incomes)

    # ---- internals (lock held) ------------------------------------------------------------

    def _touch_book(self, symbol: str) -> None:
        self._book_update_id[symbol] += 1
        self._book_updated_ms[symbol] = self.now_ms()

    def _mark_locked(self, symbol: str) -> Decimal | None:
        pinned = self._mark.get(symbol)
        if pinned is not None:
            return pinned
        bids, asks = self._bids[symbol], self._asks[symbol]
        if bids and asks:
            spec = self._specs[symbol]
            mid = (bids[0][0] + asks[0][0]) / 2
            return mid.quantize(spec.tick_size, rounding=ROUND_HALF_EVEN)
        if bids:
            return bids[0][0]
        if asks:
            return asks[0][0]
        return self._last_price.get(symbol)

    def _reference_price(
        self,
        symbol: str,
        order_type: OrderType,
        price: Decimal | None,
        planned: list[tuple[Decimal, Decimal]],
    ) -> Decimal | None:
        # Minimum-notional checks use the limit price, or for market orders the price the
        # order is about to trade at; the mark price stands in when the book is empty.
        if order_type is OrderType.LIMIT:
            return price
        if planned:
            return planned[0][0]
        return self._mark_locked(symbol)

    @staticmethod
    def _rests(order_type: OrderType, time_in_force: TimeInForce) -> bool:
        return order_type is OrderType.LIMIT and time_in_force in (
            TimeInForce.GTC,
            TimeInForce.POST_ONLY,
        )

    def _check_client_id(self, client_order_id: str) -> None:
        if not client_order_id:
            return
        for order in self._orders.values():
            if order.client_order_id != client_order_id:
                continue
            if self._client_id_scope == "all" or order.is_open:
                raise OrderRejected(RejectReason.DUPLICATE_CLIENT_ORDER_ID, client_order_id)

    def _check_margin(self, symbol: str, side: Side, qty: Decimal, taker_quote: Decimal, maker_quote: Decimal) -> None:
        if qty == 0:
            return
        position = self._positions[symbol].qty
        opening = qty
        if position != 0 and (position > 0) != (side is Side.BUY):
            opening = max(ZERO, qty - abs(position))
        notional = taker_quote + maker_quote
        required = (opening / qty) * notional / self._leverage[symbol]
        required += taker_quote * self.taker_fee + maker_quote * self.maker_fee
        available = self._account_locked().available_balance
        if required > available:
            raise OrderRejected(
                RejectReason.INSUFFICIENT_MARGIN,
                f"needs {fmt_plain(required)} {self.settle_asset}, has {fmt_plain(available)}",
            )

    def _match_resting(self, symbol: str) -> None:
        at = self.now_ms()
        for order_id in list(self._order_sequence):
            order = self._orders[order_id]
            if order.symbol != symbol or not order.is_open or order.price is None:
                continue
            levels = self._asks[symbol] if order.side is Side.BUY else self._bids[symbol]
            crossed = _match_levels(levels, order.remaining, order.price, order.side, consume=True)
            traded = sum((q for _, q in crossed), ZERO)
            if traded == 0:
                continue
            # The new book is the aggressor: a resting order trades at its own price as maker.
            self._execute(order, order.price, traded, is_maker=True, at=at)
            order.status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED

    def _execute(self, order: Order, price: Decimal, qty: Decimal, *, is_maker: bool, at: int) -> None:
        fee_rate = self.maker_fee if is_maker else self.taker_fee
        fee = _money(price * qty * fee_rate)
        raw_realized, closed_qty = self._update_position(order.symbol, order.side.sign * qty, price, at)
        realized = _money(raw_realized)
        self._wallet += realized - fee
        self._wallet_updated_ms = at
        order.filled_qty += qty
        order.filled_quote += price * qty
        order.fee += fee
        order.updated_ms = at
        self._last_price[order.symbol] = price
        trade_id = self._new_trade_id()
        self._fills.append(
            Fill(
                trade_id=trade_id,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                order_type=order.order_type,
                price=price,
                qty=qty,
                fee=fee,
                fee_rate=fee_rate,
                realized_pnl=realized,
                is_maker=is_maker,
                time_ms=at,
                order_qty=order.quantity,
                order_price=order.price,
                leaves_qty=order.remaining,
                closed_qty=closed_qty,
                mark_price=self._mark_locked(order.symbol),
            )
        )
        if realized != 0:
            self._record_income(order.symbol, IncomeType.REALIZED_PNL, realized, at, trade_id=trade_id)
        if fee != 0:
            self._record_income(order.symbol, IncomeType.COMMISSION, -fee, at, trade_id=trade_id)

    def _update_position(self, symbol: str, delta: Decimal, price: Decimal, at: int) -> tuple[Decimal, Decimal]:
        """Apply a signed fill; return ``(realized PnL, quantity that closed exposure)``."""
        state = self._positions[symbol]
        realized = ZERO
        closing = ZERO
        if state.qty == 0 or (state.qty > 0) == (delta > 0):
            new_qty = state.qty + delta
            state.entry_price = (abs(state.qty) * state.entry_price + abs(delta) * price) / abs(new_qty)
            if state.qty == 0:
                state.created_ms = at
            state.qty = new_qty
        else:
            closing = min(abs(delta), abs(state.qty))
            direction = 1 if state.qty > 0 else -1
            realized = closing * (price - state.entry_price) * direction
            state.qty += closing * (1 if delta > 0 else -1)
            leftover = abs(delta) - closing
            if leftover > 0:
                # The fill flipped the position: the excess opens the other side at this price.
                state.qty = leftover * (1 if delta > 0 else -1)
                state.entry_price = price
                state.created_ms = at
            elif state.qty == 0:
                state.entry_price = ZERO
        state.realized_pnl += realized
        state.updated_ms = at
        return realized, closing

    def _record_income(
        self,
        symbol: str,
        income_type: IncomeType,
        amount: Decimal,
        at: int,
        *,
        trade_id: str = "",
        funding_rate: Decimal | None = None,
        mark_price: Decimal | None = None,
        position_qty: Decimal | None = None,
        funding_id: str = "",
    ) -> None:
        self._income_seq += 1
        self._incomes.append(
            Income(
                income_id=self._income_seq,
                symbol=symbol,
                income_type=income_type,
                amount=amount,
                asset=self.settle_asset,
                time_ms=at,
                trade_id=trade_id,
                funding_rate=funding_rate,
                mark_price=mark_price,
                position_qty=position_qty,
                funding_id=funding_id,
            )
        )

    def _find_locked(self, symbol: str | None, order_id: str | None, client_order_id: str | None) -> Order | None:
        if order_id is not None:
            order = self._orders.get(order_id)
            if order is None or (symbol is not None and order.symbol != symbol):
                return None
            return order
        if client_order_id:
            for candidate_id in reversed(self._order_sequence):
                order = self._orders[candidate_id]
                if order.client_order_id == client_order_id and (symbol is None or order.symbol == symbol):
                    return order
        return None

    def _account_wallet_context(self) -> tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]:
        # Per-symbol (unrealized PnL, maintenance margin), needed to price cross liquidation.
        per_symbol: dict[str, tuple[Decimal, Decimal]] = {}
        for symbol, state in self._positions.items():
            if state.qty == 0:
                continue
            mark = self._mark_locked(symbol) or state.entry_price
            upnl = state.qty * (mark - state.entry_price)
            maint = abs(state.qty) * mark * self._specs[symbol].maint_margin_rate
            per_symbol[symbol] = (upnl, maint)
        return self._wallet, per_symbol

    def _position_snapshot(
        self, symbol: str, context: tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]
    ) -> PositionSnapshot:
        state = self._positions[symbol]
        spec = self._specs[symbol]
        leverage = self._leverage[symbol]
        mark = self._mark_locked(symbol) or state.entry_price
        wallet, per_symbol = context
        qty = state.qty
        liquidation: Decimal | None = None
        if qty != 0:
            others_upnl = sum((u for s, (u, _) in per_symbol.items() if s != symbol), ZERO)
            others_maint = sum((m for s, (_, m) in per_symbol.items() if s != symbol), ZERO)
            cushion = wallet + others_upnl - others_maint
            # Cross margin: liquidation when equity falls to maintenance margin, other
            # positions held at their current marks. Solve W + q(P - E) = |q| P mmr for P.
            denominator = qty - abs(qty) * spec.maint_margin_rate
            candidate = (qty * state.entry_price - cushion) / denominator
            liquidation = candidate if candidate > 0 else None
        return PositionSnapshot(
            symbol=symbol,
            qty=qty,
            entry_price=state.entry_price,
            mark_price=mark,
            notional=qty * mark,
            unrealized_pnl=qty * (mark - state.entry_price),
            initial_margin=abs(qty) * mark / leverage,
            maint_margin=abs(qty) * mark * spec.maint_margin_rate,
            liquidation_price=liquidation,
            leverage=leverage,
            realized_pnl=state.realized_pnl,
            created_ms=state.created_ms,
            updated_ms=state.updated_ms,
        )

    def _account_locked(self) -> AccountSnapshot:
        context = self._account_wallet_context()
        positions = tuple(self._position_snapshot(s, context) for s in self._specs)
        order_margin = sum(
            (
                o.remaining * o.price / self._leverage[o.symbol]
                for o in self._orders.values()
                if o.is_open and o.price is not None
            ),
            ZERO,
        )
        updated = max([self._wallet_updated_ms] + [p.updated_ms for p in positions])
        return AccountSnapshot(
            asset=self.settle_asset,
            wallet_balance=self._wallet,
            unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
            position_initial_margin=sum((p.initial_margin for p in positions), ZERO),
            open_order_initial_margin=order_margin,
            maint_margin=sum((p.maint_margin for p in positions), ZERO),
            realized_pnl=sum((p.realized_pnl for p in positions), ZERO),
            positions=positions,
            updated_ms=updated,
        )


def _money(value: Decimal) -> Decimal:
    return value.quantize(ONE.scaleb(-MONEY_PLACES), rounding=ROUND_HALF_EVEN)


def _levels(levels: BookLevels, *, descending: bool) -> list[tuple[Decimal, Decimal]]:
    merged: dict[Decimal, Decimal] = {}
    for raw_price, raw_qty in levels:
        price, qty = to_decimal(raw_price), to_decimal(raw_qty)
        if price <= 0 or qty < 0:
            raise ValueError(f"invalid book level ({raw_price}, {raw_qty})")
        merged[price] = merged.get(price, ZERO) + qty
    return sorted(((p, q) for p, q in merged.items() if q > 0), reverse=descending)


def _match_levels(
    levels: list[list[Decimal]],
    qty: Decimal,
    limit: Decimal | None,
    side: Side,
    *,
    consume: bool,
) -> list[tuple[Decimal, Decimal]]:
    """Walk the opposite side best-first; return ``(price, qty)`` taken, optionally consuming it."""
    taken: list[tuple[Decimal, Decimal]] = []
    remaining = qty
    for level in levels:
        if remaining <= 0:
            break
        price, available = level[0], level[1]
        if limit is not None and (price > limit if side is Side.BUY else price < limit):
            break
        take = min(available, remaining)
        taken.append((price, take))
        remaining -= take
        if consume:
            level[1] = available - take
    if consume:
        levels[:] = [level for level in levels if level[1] > 0]
    return taken


def _validate_quantity(spec: InstrumentSpec, order_type: OrderType, quantity: Decimal) -> None:
    if quantity <= 0:
        raise OrderRejected(RejectReason.QTY_NOT_POSITIVE)
    if quantity % spec.step_size != 0:
        raise OrderRejected(RejectReason.QTY_STEP, f"{quantity} is not a multiple of {spec.step_size}")
    if quantity < spec.min_qty:
        raise OrderRejected(RejectReason.QTY_BELOW_MIN, f"{quantity} < {spec.min_qty}")
    maximum = spec.max_market_qty if order_type is OrderType.MARKET else spec.max_qty
    if quantity > maximum:
        raise OrderRejected(RejectReason.QTY_ABOVE_MAX, f"{quantity} > {maximum}")


def _validate_price(spec: InstrumentSpec, price: Decimal) -> None:
    if price <= 0:
        raise OrderRejected(RejectReason.PRICE_NOT_POSITIVE)
    if price % spec.tick_size != 0:
        raise OrderRejected(RejectReason.PRICE_TICK, f"{price} is not a multiple of {spec.tick_size}")
    if price < spec.min_price:
        raise OrderRejected(RejectReason.PRICE_BELOW_MIN, f"{price} < {spec.min_price}")
    if price > spec.max_price:
        raise OrderRejected(RejectReason.PRICE_ABOVE_MAX, f"{price} > {spec.max_price}")


# --------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------


class FaultKind(enum.Enum):
    """What goes wrong with a matching request."""

    REJECT = "REJECT"
    """Answer with a venue error before doing anything."""
    RATE_LIMIT = "RATE_LIMIT"
    """Answer with the venue's rate-limit error before doing anything."""
    TIMEOUT_AFTER_ACCEPT = "TIMEOUT_AFTER_ACCEPT"
    """Do the work, then hold the response past the client's timeout."""
    DISCONNECT_AFTER_ACCEPT = "DISCONNECT_AFTER_ACCEPT"
    """Do the work, then close the connection without a response."""
    SERVER_ERROR_AFTER_ACCEPT = "SERVER_ERROR_AFTER_ACCEPT"
    """Do the work, then answer with a gateway-style 5xx page."""
    MALFORMED_AFTER_ACCEPT = "MALFORMED_AFTER_ACCEPT"
    """Do the work, then answer 200 with JSON missing its fields (or truncated JSON)."""

    @property
    def before_processing(self) -> bool:
        """Return whether the fault replaces the request instead of sabotaging its response."""
        return self in (FaultKind.REJECT, FaultKind.RATE_LIMIT)


@dataclass
class Fault:
    """A fault armed for the next ``remaining`` requests to ``endpoint`` (``"*"`` for any).

    ``endpoint`` is ``"METHOD /path"``. After-accept faults are consumed only by requests that
    succeeded, so a venue-rejected order does not use one up.
    """

    kind: FaultKind
    endpoint: str
    remaining: int = 1
    code: int | None = None
    message: str | None = None
    status: int = 503
    delay_s: float = 5.0
    truncated: bool = False

    def matches(self, endpoint: str) -> bool:
        """Return whether the fault applies to ``endpoint``."""
        return self.endpoint in ("*", endpoint)


class FaultInjector:
    """Thread-safe queue of armed faults; the first armed matching fault fires first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        """Arm ``fault``."""
        if fault.remaining < 1:
            raise ValueError("a fault must be armed for at least one request")
        with self._lock:
            self._faults.append(fault)

    def take(self, endpoint: str, *, before_processing: bool) -> Fault | None:
        """Consume one use of the first matching fault of the given phase, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.kind.before_processing == before_processing and fault.matches(endpoint):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return dataclasses.replace(fault, remaining=1)
        return None

    def pending(self) -> list[Fault]:
        """Return copies of the faults still armed."""
        with self._lock:
            return [dataclasses.replace(f) for f in self._faults]

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()


# --------------------------------------------------------------------------------------------
# HTTP plumbing shared by the venue emulators
# --------------------------------------------------------------------------------------------


class VenueError(Exception):
    """A venue error answer: HTTP ``status`` with the venue's ``code`` and ``message``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})


@dataclass(frozen=True)
class ParsedRequest:
    """A request as the venue handlers see it: parameters flattened to strings."""

    method: str
    path: str
    params: Mapping[str, str]
    raw_query: str
    raw_body: str
    headers: Mapping[str, str]
    received_ms: int

    @property
    def endpoint(self) -> str:
        """Return ``"METHOD /path"``, the key faults are armed on."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class RequestRecord:
    """A request the emulator received, for assertions in tests."""

    method: str
    path: str
    params: Mapping[str, str]
    received_ms: int

    @property
    def endpoint(self) -> str:
        """Return ``"METHOD /path"``."""
        return f"{self.method} {self.path}"


Handler = Callable[[ParsedRequest], object]


@dataclass(frozen=True)
class Route:
    """One emulated endpoint."""

    method: str
    path: str
    handler: Handler
    signed: bool


_GATEWAY_PAGES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


# The parameters a client order id travels in (Binance, Bybit), for the fault log.
_CLIENT_ID_PARAMS = ("newClientOrderId", "origClientOrderId", "orderLinkId")


def _gateway_page(status: int) -> web.Response:
    reason = _GATEWAY_PAGES.get(status, "Server Error")
    title = f"{status} {reason}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return web.Response(status=status, text=page, content_type="text/html")


class PerpVenueEmulator:
    """Base of the venue emulators: lifecycle, request log, faults and the test control API.

    Subclasses provide the routes, authentication, parameter parsing and wire formats.
    """

    create_order_endpoint: ClassVar[str]
    default_reject: ClassVar[tuple[int, str]]
    # "METHOD /path" -> the call kind a seeded fault plan draws for (see use_fault_plan);
    # a venue lists its clock, order, lookup, position and balance endpoints here.
    call_kinds: ClassVar[Mapping[str, str]] = {}

    def __init__(self, engine: PerpEngine, *, api_key: str, api_secret: str) -> None:
        self._engine = engine
        self.api_key = api_key
        self.api_secret = api_secret
        self._control = CallControl(FaultPlan(0, {}))
        self._faults = FaultInjector()
        self._log_lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._server: ThreadedServer | None = None
        self._closing = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> PerpVenueEmulator:
        """Serve the venue on an ephemeral 127.0.0.1 port in a background thread."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._closing = asyncio.Event()
        self._server = ThreadedServer(self._build_app()).start()
        return self

    def stop(self) -> None:
        """Stop serving; responses being held back by a timeout fault are released first."""
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()

    def __enter__(self) -> PerpVenueEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:<port>`` of the running emulator."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.base_url

    @property
    def engine(self) -> PerpEngine:
        """Return the underlying engine, for state the control API does not cover."""
        return self._engine

    # ---- market and account control ---------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """Return the unified symbols listed."""
        return tuple(spec.symbol for spec in self._engine.instruments)

    def set_order_book(self, symbol: str, bids: BookLevels, asks: BookLevels) -> None:
        """Replace ``symbol``'s book with ``[(price, qty), ...]``; resting orders may fill."""
        self._engine.set_order_book(symbol, bids, asks)

    def set_mark_price(self, symbol: str, price: Num | None) -> None:
        """Pin the mark price (None: follow the book mid, then the last trade)."""
        self._engine.set_mark_price(symbol, price)

    def set_funding_rate(self, symbol: str, rate: Num, next_funding_time: int | None = None) -> None:
        """Set the funding rate and optionally the next funding time (epoch ms)."""
        self._engine.set_funding_rate(symbol, rate, next_funding_time)

    def apply_funding(self, symbol: str) -> Decimal:
        """Settle funding for ``symbol`` now and return what the account was credited."""
        return self._engine.apply_funding(symbol)

    def seed_position(self, symbol: str, contracts: Num, entry_price: Num) -> None:
        """Set a position by hand: signed ``contracts`` (negative is short) at ``entry_price``."""
        self._engine.seed_position(symbol, contracts, entry_price)

    def set_balance(self, amount: Num) -> None:
        """Set the settlement-asset wallet balance."""
        self._engine.set_balance(amount)

    def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set ``symbol``'s leverage as if the client had changed it."""
        self._engine.set_leverage(symbol, leverage)

    @property
    def wallet_balance(self) -> Decimal:
        """Return the wallet balance (realized money, excluding unrealized PnL)."""
        return self._engine.account().wallet_balance

    def account(self) -> AccountSnapshot:
        """Return the account valued at current marks."""
        return self._engine.account()

    def position(self, symbol: str) -> PositionSnapshot:
        """Return the position in ``symbol``."""
        return self._engine.position(symbol)

    def orders(self, symbol: str | None = None) -> list[Order]:
        """Return every order the venue accepted, oldest first."""
        return self._engine.orders(symbol)

    def orders_with_client_id(self, client_order_id: str) -> list[Order]:
        """Return the accepted orders carrying ``client_order_id``, oldest first."""
        return [o for o in self._engine.orders() if o.client_order_id == client_order_id]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return orders still working."""
        return self._engine.open_orders(symbol)

    def fills(self, symbol: str | None = None) -> list[Fill]:
        """Return executions, oldest first."""
        return self._engine.fills(symbol)

    # ---- simulated time ------------------------------------------------------------------

    def set_time(self, moment: datetime) -> None:
        """Put the venue on simulated time: order, fill, income and server times follow it."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"simulated time must be timezone-aware, got {moment!r}")
        self._engine.set_time_ms(int(moment.timestamp() * 1000))

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time on by ``delta`` (set_time first); return the new time."""
        moment = self.now + delta
        self.set_time(moment)
        return moment

    @property
    def now(self) -> datetime:
        """Return the venue's time (simulated once set_time was called, else the wall clock)."""
        return datetime.fromtimestamp(self._engine.now_ms() / 1000, UTC)

    # ---- seeded fault plans and call hooks ----------------------------------------------

    def use_fault_plan(self, seed: int, rates: FaultRates, *, max_hold_seconds: float = 5.0) -> FaultPlan:
        """Draw HTTP faults per call kind (the values of ``call_kinds``) from ``seed``; return the plan.

        The n-th call of a kind always gets the same fault for the same seed and rates.
        """
        plan = FaultPlan(seed, rates, kinds=set(self.call_kinds.values()), max_hold_seconds=max_hold_seconds)
        unsupported = {f.value for per_kind in plan.rates.values() for f in per_kind if f not in HTTP_FAULTS}
        if unsupported:
            raise ValueError(f"the perp venues inject HTTP faults only, not {', '.join(sorted(unsupported))}")
        with self._control.lock:
            self._control.plan = plan
        return plan

    @property
    def fault_plan(self) -> FaultPlan:
        """Return the plan in use (an empty one, which only counts calls, by default)."""
        return self._control.plan

    def stop_faults(self) -> None:
        """Draw no more seeded faults."""
        self._control.plan.stop()

    def fired_faults(self) -> list[FiredFault]:
        """Return the seeded faults that fired so far, in order."""
        return self._control.plan.fired()

    def add_call_hook(self, hook: CallHook) -> None:
        """Call ``hook`` before and after each call of a listed kind (True before: abandon it)."""
        with self._control.lock:
            self._control.hooks.append(hook)

    def remove_call_hook(self, hook: CallHook) -> None:
        """Stop calling a hook added with add_call_hook."""
        with self._control.lock:
            self._control.hooks.remove(hook)

    # ---- request log ------------------------------------------------------------------

    def requests(self) -> list[RequestRecord]:
        """Return every request received, oldest first (including rejected and faulted ones)."""
        with self._log_lock:
            return list(self._requests)

    def create_order_requests(self) -> list[RequestRecord]:
        """Return every create-order request received, whatever its outcome."""
        return [r for r in self.requests() if r.endpoint == self.create_order_endpoint]

    @property
    def create_order_request_count(self) -> int:
        """Return how many create-order requests reached the emulator."""
        return len(self.create_order_requests())

    def clear_request_log(self) -> None:
        """Forget the requests received so far."""
        with self._log_lock:
            self._requests.clear()

    # ---- faults -------------------------------------------------------------------------

    def inject_fault(self, fault: Fault) -> None:
        """Arm an arbitrary fault."""
        self._faults.arm(fault)

    def reject_next_order(self, code: int | None = None, message: str | None = None, *, times: int = 1) -> None:
        """Reject the next ``times`` create-order requests with a venue error (default: margin)."""
        default_code, default_message = self.default_reject
        self._faults.arm(
            Fault(
                FaultKind.REJECT,
                self.create_order_endpoint,
                times,
                code=default_code if code is None else code,
                message=default_message if message is None else message,
            )
        )

    def rate_limit_next(self, *, times: int = 1, endpoint: str = "*") -> None:
        """Answer the next ``times`` matching requests with the venue's rate-limit error."""
        self._faults.arm(Fault(FaultKind.RATE_LIMIT, endpoint, times))

    def timeout_next_order(self, *, times: int = 1, delay_s: float = 5.0) -> None:
        """Accept and execute the next orders, but hold each response back for ``delay_s``."""
        self._faults.arm(Fault(FaultKind.TIMEOUT_AFTER_ACCEPT, self.create_order_endpoint, times, delay_s=delay_s))

    def disconnect_next_order(self, *, times: int = 1) -> None:
        """Accept and execute the next orders, then drop each connection without answering."""
        self._faults.arm(Fault(FaultKind.DISCONNECT_AFTER_ACCEPT, self.create_order_endpoint, times))

    def server_error_next_order(self, *, times: int = 1, status: int = 503) -> None:
        """Accept and execute the next orders, then answer each with a 5xx gateway page."""
        if status < 500:
            raise ValueError("server errors are 5xx")
        self._faults.arm(
            Fault(
                FaultKind.SERVER_ERROR_AFTER_ACCEPT,
                self.create_order_endpoint,
                times,
                status=status,
            )
        )

    def malformed_next_order(self, *, times: int = 1, truncated: bool = False) -> None:
        """Accept and execute the next orders, then answer 200 with fields missing (or cut JSON)."""
        self._faults.arm(
            Fault(
                FaultKind.MALFORMED_AFTER_ACCEPT,
                self.create_order_endpoint,
                times,
                truncated=truncated,
            )
        )

    def pending_faults(self) -> list[Fault]:
        """Return the faults still armed."""
        return self._faults.pending()

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    # ---- hooks for the venue modules ----------------------------------------------------

    def _routes(self) -> list[Route]:
        raise NotImplementedError

    def _parse_params(self, method: str, raw_query: str, raw_body: str) -> dict[str, str]:
        raise NotImplementedError

    def _authenticate(self, request: ParsedRequest) -> None:
        raise NotImplementedError

    def _success_body(self, payload: object) -> object:
        raise NotImplementedError

    def _error_body(self, error: VenueError) -> object:
        raise NotImplementedError

    def _rate_limit_error(self) -> VenueError:
        raise NotImplementedError

    def _venue_error(self, code: int, message: str) -> VenueError:
        raise NotImplementedError

    def _strip_fields(self, body: object) -> object:
        raise NotImplementedError

    # ---- dispatch -----------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        for route in self._routes():
            app.router.add_route(route.method, route.path, self._aiohttp_handler(route))
        app.on_shutdown.append(self._release_held_responses)
        return app

    async def _release_held_responses(self, _app: web.Application) -> None:
        self._closing.set()

    def _aiohttp_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(request, route)

        return handle

    async def _dispatch(self, request: web.Request, route: Route) -> web.StreamResponse:
        raw_body = await request.text()
        raw_query = request.rel_url.raw_query_string
        received = now_ms()
        try:
            params = self._parse_params(request.method, raw_query, raw_body)
        except VenueError as error:
            params = {}
            self._log(RequestRecord(request.method, route.path, params, received))
            return self._json(self._error_body(error), error.status, error.headers)
        parsed = ParsedRequest(request.method, route.path, params, raw_query, raw_body, request.headers, received)
        self._log(RequestRecord(parsed.method, parsed.path, dict(params), received))
        kind = self.call_kinds.get(parsed.endpoint)
        if kind is None:
            return await self._process(request, route, parsed)
        draw = self._control.plan.draw(kind)
        client_order_id = next((params[k] for k in _CLIENT_ID_PARAMS if params.get(k)), None)
        event = CallEvent(kind, draw.n, "before", parsed.method, parsed.path, dict(params), client_order_id, draw.fault)
        return await run_with_fault(
            request, self._control, draw, event, lambda: self._process(request, route, parsed), _gateway_page
        )

    async def _process(self, request: web.Request, route: Route, parsed: ParsedRequest) -> web.StreamResponse:
        fault = self._faults.take(parsed.endpoint, before_processing=True)
        if fault is not None:
            refusal = (
                self._rate_limit_error()
                if fault.kind is FaultKind.RATE_LIMIT
                else self._venue_error(fault.code or 0, fault.message or "")
            )
            return self._json(self._error_body(refusal), refusal.status, refusal.headers)
        try:
            if route.signed:
                self._authenticate(parsed)
            body = self._success_body(route.handler(parsed))
        except VenueError as error:
            return self._json(self._error_body(error), error.status, error.headers)
        fault = self._faults.take(parsed.endpoint, before_processing=False)
        if fault is None:
            return self._json(body, 200)
        return await self._deliver_faulty(request, fault, body)

    async def _deliver_faulty(self, request: web.Request, fault: Fault, body: object) -> web.StreamResponse:
        if fault.kind is FaultKind.TIMEOUT_AFTER_ACCEPT:
            # Released early when the server shuts down, so a test never waits out the delay.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=fault.delay_s)
            return self._json(body, 200)
        if fault.kind is FaultKind.DISCONNECT_AFTER_ACCEPT:
            transport = request.transport
            if transport is not None:
                transport.close()
            return web.Response(status=200)
        if fault.kind is FaultKind.SERVER_ERROR_AFTER_ACCEPT:
            return _gateway_page(fault.status)
        text = json.dumps(body, separators=(",", ":"))
        if fault.truncated:
            return web.Response(status=200, text=text[: max(1, len(text) // 2)], content_type="application/json")
        return self._json(self._strip_fields(body), 200)

    def _log(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._requests.append(record)

    @staticmethod
    def _json(body: object, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body, separators=(",", ":")),
            content_type="application/json",
            headers=dict(headers or {}),
        )


def require(params: Mapping[str, str], name: str, error: Callable[[str], VenueError]) -> str:
    """Return a mandatory non-empty parameter or raise the venue's missing-parameter error."""
    value = params.get(name, "")
    if value == "":
        raise error(name)
    return value


def parse_decimal(value: str, name: str, error: Callable[[str], VenueError]) -> Decimal:
    """Parse a wire number, raising the venue's malformed-parameter error if it is not one."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise error(name) from None
    if not number.is_finite():
        raise error(name)
    return number


def parse_int(value: str, name: str, error: Callable[[str], VenueError]) -> int:
    """Parse a wire integer, raising the venue's malformed-parameter error if it is not one."""
    try:
        return int(value)
    except ValueError:
        raise error(name) from None


__all__ = [
    "AccountSnapshot",
    "BookLevels",
    "ClientIdScope",
    "CloseReason",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "Fill",
    "FundingRecord",
    "Income",
    "IncomeType",
    "InstrumentSpec",
    "Num",
    "Order",
    "OrderRejected",
    "OrderStatus",
    "OrderType",
    "ParsedRequest",
    "PerpEngine",
    "PerpVenueEmulator",
    "PositionSnapshot",
    "RejectReason",
    "RequestRecord",
    "Route",
    "Side",
    "TimeInForce",
    "TradeStats",
    "VenueError",
    "fmt",
    "fmt_plain",
    "now_ms",
    "parse_decimal",
    "parse_int",
    "require",
    "to_decimal",
]
