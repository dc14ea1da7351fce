"""The built-in paper broker: a cash account that fills orders against the market data it is fed.

Nothing moves on its own. The caller feeds prices (``set_price``) or bars (``on_bar``) and
the broker executes what those prices make marketable:

- a market order fills at the current price, moved against the trader by ``slippage_bps``;
- a buy limit fills once the price is at or below the limit, a sell limit once it is at or
  above, at the limit or better (a bar that opens through the limit fills at the open);
- with ``fill_slices`` > 1 an order fills in that many executions, either all at once or one
  per later price update of its symbol (``SliceTiming``), so partial fills are reproducible;
- DAY orders expire once their symbol's market data reaches the close of the session they
  were placed for, and market-on-close orders fill at the first price at or after it; IOC
  orders cancel whatever does not fill at submission.

Sessions come from its market clock (``session_clock``): in every run tradekit builds (a
replay, ``tradekit run --broker paper``) the exchange calendar the run trades on
(``TradingCalendar.market_clock``), holidays, half days and 24/7 sessions included; built
bare, a market open 09:30-16:00 New York on every weekday (``weekday_session_clock``).

It is a cash account without shorting (unless configured): a buy needs buying power (cash
minus what open buy orders hold), a sell needs shares not already promised to another sell.
``faults`` injects the failures a real broker produces (``Fault``), ``received_orders`` logs
every order that reached it, and an optional state file makes it survive a process restart.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import attrs

from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerUnavailable,
    DuplicateClientOrderId,
    FractionalNotSupported,
    OrderRejected,
)
from tradekit.broker.paper_archive import ArchiveError, OrderArchive
from tradekit.broker.protocol import AssetInfo, MarketClock, OrderEvent, OrderEventKind
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType, TimeInForce
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side
from tradekit.domain.values import (
    EXACT,
    ONE,
    ZERO,
    InvalidValueError,
    exact_sum,
    non_negative,
    positive,
    str_frozenset,
    to_utc,
    utc,
    utcnow,
)
from tradekit.serialization import StructureError, fast_json, structure, unstructure

PAPER_BROKER_NAME = "paper"
STATE_FORMAT_VERSION = 1

_BPS = Decimal(10_000)
# Fractional quantities carry nine decimals, as at Alpaca.
FRACTIONAL_QTY_STEP = Decimal("0.000000001")
_CENT = Decimal("0.01")
_NEW_YORK = ZoneInfo("America/New_York")
_SESSION_OPEN = dt_time(9, 30)
_SESSION_CLOSE = dt_time(16, 0)


# --------------------------------------------------------------------------- configuration


class SliceTiming(StrEnum):
    """When the slices of an order split by ``fill_slices`` execute."""

    AT_ONCE = "at_once"
    """Every slice executes as soon as the order is marketable, at the same price."""
    PER_PRICE_UPDATE = "per_price_update"
    """One slice when the order becomes marketable, then one at each later price of its symbol."""


def _slippage(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    non_negative(_inst, attribute, value)
    if value >= _BPS:
        raise InvalidValueError(f"{attribute.name} must be below 10000 bps (100 %), got {value}")


def _commission_pct(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    non_negative(_inst, attribute, value)
    if value >= 100:
        raise InvalidValueError(f"{attribute.name} must be below 100 (percent of the notional), got {value}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{attribute.name} must be an integer of at least 1, got {value!r}")


def _optional_symbols(items: frozenset[str] | Sequence[str] | None) -> frozenset[str] | None:
    return None if items is None else frozenset(items)


@attrs.frozen(kw_only=True)
class PaperBrokerConfig:
    """How the paper broker's account and market behave.

    ``tradable_symbols`` None means every symbol the broker has been fed a price for; an
    order on any other symbol is rejected as unknown.
    """

    starting_cash: Decimal = attrs.field(default=Decimal(100_000), validator=non_negative)
    currency: str = "USD"
    slippage_bps: Decimal = attrs.field(default=ZERO, validator=_slippage)
    # Slipped prices are rounded to this tick, always against the trader.
    price_increment: Decimal = attrs.field(default=Decimal("0.0001"), validator=positive)
    commission_per_order: Decimal = attrs.field(default=ZERO, validator=non_negative)
    commission_per_share: Decimal = attrs.field(default=ZERO, validator=non_negative)
    # Percent of each fill's notional (0.1 is 0.1 %), on top of the per-order and per-share parts.
    commission_pct: Decimal = attrs.field(default=ZERO, validator=_commission_pct)
    fill_slices: int = attrs.field(default=1, validator=_at_least_one)
    slice_timing: SliceTiming = SliceTiming.AT_ONCE
    fractional_trading: bool = True
    # Fractional quantities on DAY orders only, as at Alpaca (False: any time in force).
    fractional_day_only: bool = True
    non_fractionable_symbols: frozenset[str] = attrs.field(factory=frozenset, converter=str_frozenset)
    min_fractional_notional: Decimal = attrs.field(default=ONE, validator=non_negative)
    tradable_symbols: frozenset[str] | None = attrs.field(default=None, converter=_optional_symbols)
    # Sells beyond the position then open a short; no margin is checked for it.
    allow_short_selling: bool = False


class PaperRejectCode(StrEnum):
    """The ``OrderRejected.code`` values the paper broker uses."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    NO_MARKET_PRICE = "no_market_price"
    INVALID_ORDER = "invalid_order"
    FRACTIONAL_NOT_ALLOWED = "fractional_not_allowed"
    ASSET_NOT_FRACTIONABLE = "asset_not_fractionable"
    FRACTIONAL_TIME_IN_FORCE = "fractional_time_in_force"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    INSUFFICIENT_BUYING_POWER = "insufficient_buying_power"
    INSUFFICIENT_QTY = "insufficient_qty"
    INJECTED = "injected_reject"


class PaperStateError(RuntimeError):
    """The paper broker's state file cannot be used; the message names the file and why."""


# --------------------------------------------------------------------------- the market clock

SessionClock = Callable[[datetime], MarketClock]


@functools.lru_cache(maxsize=512)  # pure: a replay asks for the same few days at every order
def _session_bounds(day: date) -> tuple[datetime, datetime]:
    return (
        to_utc(datetime.combine(day, _SESSION_OPEN, tzinfo=_NEW_YORK)),
        to_utc(datetime.combine(day, _SESSION_CLOSE, tzinfo=_NEW_YORK)),
    )


def _next_weekday(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def weekday_session_clock(now: datetime) -> MarketClock:
    """Return the clock of a market open 09:30-16:00 New York time on every weekday.

    Holidays and half days are not known to it. It is the clock of a ``PaperBroker`` built
    without one; a run's paper broker is given its exchange calendar's
    (``session_clock=trading_calendar(name).market_clock``).
    """
    local_day = now.astimezone(_NEW_YORK).date()
    if local_day.weekday() < 5:
        opens, closes = _session_bounds(local_day)
        if opens <= now < closes:
            return MarketClock(
                now=now, is_open=True, next_open=_session_bounds(_next_weekday(local_day))[0], next_close=closes
            )
        if now < opens:
            return MarketClock(now=now, is_open=False, next_open=opens, next_close=closes)
    opens, closes = _session_bounds(_next_weekday(local_day))
    return MarketClock(now=now, is_open=False, next_open=opens, next_close=closes)


# --------------------------------------------------------------------------- fault injection


class Fault(StrEnum):
    """A failure the paper broker can be told to produce, for testing what calls it."""

    REJECT = "reject"
    """``submit_order`` raises ``OrderRejected``; the order does not exist."""
    REJECT_AFTER_ACCEPT = "reject_after_accept"
    """The order is accepted, then rejected downstream (ACCEPTED, then REJECTED events)."""
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    """The order is accepted (and fills) but ``submit_order`` raises ``AmbiguousSubmission``."""
    LOST_RESPONSE = "lost_response"
    """As TIMEOUT_AFTER_ACCEPT, but the connection is reset before the answer arrives."""
    LOST_REQUEST = "lost_request"
    """The request never reaches the broker; ``submit_order`` raises ``AmbiguousSubmission``."""
    FRACTIONAL_REFUSED = "fractional_refused"
    """A fractional order raises ``FractionalNotSupported`` even where the asset allows it."""
    DUPLICATE_FILL_EVENTS = "duplicate_fill_events"
    """A fill (or partial fill) event is delivered twice by ``drain_events``."""
    OUT_OF_ORDER_EVENTS = "out_of_order_events"
    """One ``drain_events`` batch is returned newest first (fills before their acceptance)."""
    DISCONNECT = "disconnect"
    """The next calls fail (reads raise ``BrokerUnavailable``); events wait for reconnection."""


@attrs.frozen(kw_only=True)
class ArmedFault:
    """A fault waiting to happen ``remaining`` more times, on ``symbol`` or on any symbol."""

    fault: Fault
    remaining: int
    symbol: str | None = None


class FaultInjector:
    """Arm faults on a paper broker; each fires deterministically, the given number of times.

    ``times`` counts what the fault acts on: submissions for the order faults, fill events
    for DUPLICATE_FILL_EVENTS, ``drain_events`` batches (of at least two events on the
    symbol) for OUT_OF_ORDER_EVENTS, and calls of any broker method for DISCONNECT.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._armed: list[ArmedFault] = []

    def arm(self, fault: Fault, *, times: int = 1, symbol: str | None = None) -> None:
        """Make ``fault`` happen the next ``times`` times (on ``symbol`` only, if given)."""
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an integer of at least 1, got {times!r}")
        if fault is Fault.DISCONNECT and symbol is not None:
            raise ValueError("a disconnect affects the whole connection; arm it without a symbol")
        with self._lock:
            self._armed.append(ArmedFault(fault=fault, remaining=times, symbol=symbol))

    def clear(self) -> None:
        """Disarm every fault (a disconnected broker is connected again)."""
        with self._lock:
            self._armed.clear()

    @property
    def armed(self) -> tuple[ArmedFault, ...]:
        """Return the faults still waiting to happen, in the order they were armed."""
        with self._lock:
            return tuple(self._armed)

    @property
    def disconnected(self) -> bool:
        """Return whether the next broker call will fail for a disconnect."""
        with self._lock:
            return any(armed.fault is Fault.DISCONNECT for armed in self._armed)

    def _take(self, fault: Fault, symbol: str | None = None) -> bool:
        if not self._armed:  # nothing armed (every call outside fault tests): nothing to look for
            return False
        return self._take_first(fault, lambda armed: armed.symbol is None or armed.symbol == symbol) is not None

    def _take_first(self, fault: Fault, applies: Callable[[ArmedFault], bool]) -> ArmedFault | None:
        for index, armed in enumerate(self._armed):
            if armed.fault is fault and applies(armed):
                if armed.remaining == 1:
                    del self._armed[index]
                else:
                    self._armed[index] = attrs.evolve(armed, remaining=armed.remaining - 1)
                return armed
        return None


# --------------------------------------------------------------------------- what it received


class ReceiptOutcome(StrEnum):
    """What the paper broker did with an order that reached it."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


@attrs.frozen(kw_only=True)
class ReceivedOrder:
    """One order request that reached the broker, whatever became of it."""

    request: OrderRequest
    received_at: datetime = attrs.field(converter=to_utc, validator=utc)
    outcome: ReceiptOutcome
    reason: str = ""


# What the archive writes for every order and request (tests hold the text to the converter's).
fast_json(OrderRequest, Order, Fill, ReceivedOrder)


# --------------------------------------------------------------------------- persisted state
# Mutable on purpose: this is the broker's book, changed in place under the lock and written
# whole to the state file after every change.


@attrs.define(kw_only=True)
class _Holding:
    qty: Decimal
    avg_entry_price: Decimal
    opened_at: datetime


@attrs.frozen(kw_only=True)
class _Quote:
    price: Decimal
    time: datetime


@attrs.define(kw_only=True)
class _WorkingOrder:
    request: OrderRequest
    order: Order
    # The per-share price the order holds buying power (buys) or shares (notional sells) at.
    reserve_price: Decimal
    remaining_notional: Decimal | None = None
    expires_at: datetime | None = None
    fills: list[Fill] = attrs.Factory(list)


@attrs.define(kw_only=True)
class _Book:
    format_version: int
    cash: Decimal
    holdings: dict[str, _Holding]
    quotes: dict[str, _Quote]
    market_time: datetime | None
    orders: dict[str, _WorkingOrder]
    events: list[OrderEvent]
    received: list[ReceivedOrder]
    order_sequence: int
    execution_sequence: int
    pinned_clock: MarketClock | None = None
    # Raised by one at every save; rows of the order archive carry the generation of the save
    # that includes them (see ``tradekit.broker.paper_archive``). 0: nothing archived yet.
    generation: int = 0


def _check_price(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidValueError(f"{name} must be a positive finite Decimal, got {value!r}")
    return value


def _check_qty(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidValueError(f"qty must be a finite Decimal, got {value!r}")
    return value


def _limit_price(request: OrderRequest) -> Decimal:
    if request.limit_price is None:
        raise ValueError(f"order {request.client_order_id} is a limit order without a limit price")
    return request.limit_price


def _qty(request: OrderRequest) -> Decimal:
    if request.qty is None:
        raise ValueError(f"order {request.client_order_id} has no quantity")
    return request.qty


def _notional_qty(notional: Decimal | None, price: Decimal) -> Decimal:
    if notional is None:
        raise ValueError("a notional order without a notional")
    return (notional / price).quantize(FRACTIONAL_QTY_STEP, rounding=ROUND_DOWN)


def _check_time(value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(f"market time must be a timezone-aware datetime, got {value!r}")
    return to_utc(value)


# --------------------------------------------------------------------------- the broker


F = TypeVar("F", bound=Callable[..., Any])


def _mutates(method: F) -> F:
    """Mark a method that changes the book: the cached read snapshots are dropped around it."""

    @functools.wraps(method)
    def wrapper(self: PaperBroker, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._snapshot = _Snapshot()
            try:
                return method(self, *args, **kwargs)
            finally:
                self._snapshot = _Snapshot()

    return wrapper  # type: ignore[return-value]


@attrs.define
class _Snapshot:
    """What ``get_account`` and ``get_positions`` returned, valid until the book changes."""

    account: AccountSnapshot | None = None
    positions: tuple[BrokerPosition, ...] | None = None
    open_orders: tuple[Order, ...] | None = None


class PaperBroker:
    """A simulated broker account implementing the ``Broker`` protocol.

    Every method is safe to call from several threads. With ``state_path`` the whole book
    (cash, positions, orders, fills, undelivered events, received orders, prices) is written
    atomically after each change and read back on construction, so a process killed at any
    point restarts to the state its last completed call left. One process uses a state file
    at a time. Armed faults are test scaffolding and are not persisted.

    ``session_clock`` gives the market clock at the market time: when DAY orders expire and
    market-on-close orders fill (at the ``next_close`` of the moment they are accepted, kept
    with the order: a restored book keeps its orders' expiries), and what ``get_clock``
    says. A run's paper broker is given its exchange calendar's (``TradingCalendar.market_clock``);
    the default, ``weekday_session_clock``, knows no holidays, half days or weekend sessions.
    """

    def __init__(
        self,
        config: PaperBrokerConfig | None = None,
        *,
        state_path: Path | str | None = None,
        session_clock: SessionClock = weekday_session_clock,
        autosave: bool = True,
        archive_path: Path | str | None = None,
    ) -> None:
        self._config = config if config is not None else PaperBrokerConfig()
        self._state_path = Path(state_path) if state_path is not None else None
        # Terminal orders and the received-request log (only what is open stays in the book).
        if archive_path is None and self._state_path is not None:
            archive_path = self._state_path.with_name(self._state_path.name + ".orders.db")
        archive = Path(archive_path) if archive_path is not None else None
        self._archive = OrderArchive(archive, durable=archive is not None)
        # False: the state file is read at construction and written only by save_state() (a
        # replay saves it at its checkpoints, together with the ledger's rows).
        self._autosave = autosave
        self._session_clock = session_clock
        self._lock = threading.RLock()
        self.faults = FaultInjector(self._lock)
        # Reads between two changes of the book return the same objects (a replay asks for
        # the account and positions before every decision).
        self._snapshot = _Snapshot()
        # Each held symbol's last reported position, given again while nothing it shows
        # changed: a change to one holding rebuilds one position, not every one (a replay of
        # hundreds of symbols asks after each order).
        self._reported: dict[str, BrokerPosition] = {}
        # What changed since the positions and the account's marks were last worked out:
        # the symbols whose holding or quote was written (``_touched``), or None for
        # everything. Both then cost what changed, not what is held (``_positions``,
        # ``_account``). The marks (each holding's quantity times its mark) are summed
        # exactly, so the equity does not depend on the order they were updated in.
        self._stale_positions: set[str] | None = None
        self._stale_marks: set[str] | None = None
        self._reported_at: datetime | None = None
        self._held_sorted: list[str] = []
        self._marked: dict[str, Decimal] = {}
        self._marked_total = ZERO
        loaded = self._load()
        self._book = loaded if loaded is not None else self._fresh_book()
        self._restore_archive()
        # Open orders by symbol, so a price update touches only what it can execute.
        self._open: dict[str, dict[str, _WorkingOrder]] = {}
        for working in self._book.orders.values():
            self._open.setdefault(working.request.symbol, {})[working.request.client_order_id] = working
        if loaded is None:
            self._save()

    # ------------------------------------------------------------------ Broker protocol

    @property
    def name(self) -> str:
        """Return ``"paper"``, the name the broker is registered under."""
        return PAPER_BROKER_NAME

    @property
    def config(self) -> PaperBrokerConfig:
        """Return the configuration the broker was built with."""
        return self._config

    def get_account(self) -> AccountSnapshot:
        """Return cash, equity (positions at their last price) and buying power."""
        with self._lock:
            self._connected_for_read("get_account")
            account = self._snapshot.account
            if account is None:
                account = self._account()
                if self._keeps_snapshots():
                    self._snapshot.account = account
            return account

    def get_positions(self) -> Sequence[BrokerPosition]:
        """Return every open position, by symbol."""
        with self._lock:
            self._connected_for_read("get_positions")
            positions = self._snapshot.positions
            if positions is None:
                positions = self._positions()
                if self._keeps_snapshots():
                    self._snapshot.positions = positions
            return positions

    def _keeps_snapshots(self) -> bool:
        # Without a market time, "now" (the snapshot's as_of) is the wall clock: keep nothing.
        return self._book.pinned_clock is not None or self._book.market_time is not None

    def _touched(self, symbol: str) -> None:
        """``symbol``'s holding or quote was written: its position and mark are worked out again."""
        if self._stale_positions is not None:
            self._stale_positions.add(symbol)
        if self._stale_marks is not None:
            self._stale_marks.add(symbol)

    def _holdings_value(self) -> Decimal:
        """The exact sum of each held symbol's quantity times its mark."""
        holdings, marked, stale = self._book.holdings, self._marked, self._stale_marks
        if stale is None:
            marked.clear()
            marked.update((symbol, holding.qty * self._mark(symbol, holding)) for symbol, holding in holdings.items())
            self._marked_total = exact_sum(marked.values())
        else:
            # Exact arithmetic: taking a mark out and putting the new one in leaves the very
            # total a full pass adds up.
            total = self._marked_total
            for symbol in stale:
                total = EXACT.subtract(total, marked.pop(symbol, ZERO))
                holding = holdings.get(symbol)
                if holding is not None:
                    mark = marked[symbol] = holding.qty * self._mark(symbol, holding)
                    total = EXACT.add(total, mark)
            self._marked_total = total
        self._stale_marks = set()
        return self._marked_total

    def _account(self) -> AccountSnapshot:
        equity = self._book.cash + self._holdings_value()
        return AccountSnapshot(
            equity=equity,
            cash=self._book.cash,
            buying_power=self._buying_power(),
            as_of=self._now(),
            currency=self._config.currency,
            fractional_trading=self._config.fractional_trading,
        )

    def _positions(self) -> tuple[BrokerPosition, ...]:
        now = self._now()
        reported, stale, holdings = self._reported, self._stale_positions, self._book.holdings
        if stale is not None and now == self._reported_at:
            # The same moment: only what was touched since can differ.
            held = self._held_sorted
            for symbol in stale:
                holding = holdings.get(symbol)
                if holding is None:
                    if reported.pop(symbol, None) is not None:
                        del held[bisect.bisect_left(held, symbol)]
                    continue
                if symbol not in reported:
                    bisect.insort(held, symbol)
                self._report(symbol, holding, now)
            self._stale_positions = set()
            return tuple(map(reported.__getitem__, held))
        positions = [self._report(symbol, holding, now) for symbol, holding in sorted(holdings.items())]
        if len(reported) > len(positions):  # symbols no longer held
            for symbol in reported.keys() - holdings.keys():
                del reported[symbol]
        self._held_sorted = sorted(holdings)
        self._reported_at = now
        self._stale_positions = set()
        return tuple(positions)

    def _report(self, symbol: str, holding: _Holding, now: datetime) -> BrokerPosition:
        """``symbol``'s position, the one reported last time while nothing it shows changed."""
        reported = self._reported
        price = self._last_price(symbol)
        kept = reported.get(symbol)
        # The same figures (the very objects: an equal Decimal may be written otherwise)
        # at the same moment: the position reported last time.
        if (
            kept is None
            or kept.qty is not holding.qty
            or kept.avg_entry_price is not holding.avg_entry_price
            or kept.current_price is not price
            or kept.as_of != now
            or kept.opened_at != holding.opened_at
        ):
            kept = reported[symbol] = BrokerPosition(
                symbol=symbol,
                qty=holding.qty,
                avg_entry_price=holding.avg_entry_price,
                as_of=now,
                current_price=price,
                opened_at=holding.opened_at,
            )
        return kept

    def get_asset(self, symbol: str) -> AssetInfo:
        """Return whether ``symbol`` trades here and whether it trades in fractions."""
        with self._lock:
            self._connected_for_read("get_asset")
            known = self._is_known(symbol)
            fractionable = known and symbol not in self._config.non_fractionable_symbols
            return AssetInfo(
                symbol=symbol,
                tradable=known,
                fractionable=fractionable,
                min_notional=self._config.min_fractional_notional if fractionable else ZERO,
                qty_increment=FRACTIONAL_QTY_STEP if fractionable else ONE,
                min_qty=FRACTIONAL_QTY_STEP if fractionable else ONE,
                fractional_day_only=self._config.fractional_day_only,
            )

    @_mutates
    def submit_order(self, request: OrderRequest) -> Order:
        """Accept the order and execute what the current price makes marketable.

        Raise ``OrderRejected`` (code from ``PaperRejectCode``) when it is refused, and
        ``DuplicateClientOrderId`` when its client order id was already used.
        """
        with self._lock:
            now = self._now()
            if self.faults._take(Fault.DISCONNECT):
                raise AmbiguousSubmission(
                    f"order {request.client_order_id}: connection to the paper broker is down "
                    "(injected disconnect); look the order up by client order id"
                )
            if self.faults._take(Fault.LOST_REQUEST, request.symbol):
                raise AmbiguousSubmission(
                    f"order {request.client_order_id}: request lost before any answer "
                    "(injected fault); look the order up by client order id"
                )
            if request.client_order_id in self._book.orders or request.client_order_id in self._archive:
                self._receive(request, now, ReceiptOutcome.DUPLICATE, "client order id already used")
                raise DuplicateClientOrderId(f"an order with client order id {request.client_order_id} already exists")
            try:
                reserve_price = self._admit(request)
            except OrderRejected as exc:
                self._receive(request, now, ReceiptOutcome.REJECTED, str(exc))
                raise
            working = self._accept(request, reserve_price, now)
            self._receive(request, now, ReceiptOutcome.ACCEPTED)
            answer = working.order
            if self.faults._take(Fault.REJECT_AFTER_ACCEPT, request.symbol):
                self._finish(working, OrderStatus.REJECTED, now, "rejected downstream (injected fault)")
            else:
                self._execute_at_submission(working, now)
                answer = working.order
            try:
                self._save()
            except OSError as exc:
                raise AmbiguousSubmission(
                    f"order {request.client_order_id} was accepted but the paper broker's state file could "
                    f"not be written ({exc}); look the order up by client order id"
                ) from exc
            if self.faults._take(Fault.TIMEOUT_AFTER_ACCEPT, request.symbol):
                raise AmbiguousSubmission(
                    f"order {request.client_order_id}: timed out waiting for the paper broker's "
                    "answer (injected fault); look the order up by client order id"
                )
            if self.faults._take(Fault.LOST_RESPONSE, request.symbol):
                raise AmbiguousSubmission(
                    f"order {request.client_order_id}: connection reset before the answer arrived "
                    "(injected fault); look the order up by client order id"
                )
            return answer

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """Return the order with this client order id, or None if it was never accepted."""
        with self._lock:
            self._connected_for_read("get_order_by_client_id")
            working = self._book.orders.get(client_order_id)
            if working is not None:
                return working.order
            archived = self._archive.order(client_order_id)
            return None if archived is None else archived[0]

    def get_open_orders(self) -> Sequence[Order]:
        """Return every order not yet filled, canceled, rejected or expired, oldest first."""
        with self._lock:
            self._connected_for_read("get_open_orders")
            kept = self._snapshot.open_orders
            if kept is not None:
                return kept
            open_orders = [w.order for by_id in self._open.values() for w in by_id.values()]
            answer = tuple(sorted(open_orders, key=lambda order: order.broker_order_id))
            self._snapshot.open_orders = answer
            return answer

    @_mutates
    def cancel_order(self, client_order_id: str) -> None:
        """Cancel what is left of the order; a terminal or unknown order is left as it is."""
        with self._lock:
            if self.faults._take(Fault.DISCONNECT):
                raise BrokerUnavailable(
                    f"cancel of {client_order_id} failed: paper broker disconnected (injected fault)"
                )
            working = self._book.orders.get(client_order_id)
            if working is None or working.order.status.is_terminal:
                return
            self._finish(working, OrderStatus.CANCELED, self._now(), "canceled by request")
            self._save()

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        """Return every execution of the order, oldest first (empty for an unknown order)."""
        with self._lock:
            self._connected_for_read("get_fills")
            working = self._book.orders.get(client_order_id)
            if working is not None:
                return tuple(working.fills)
            archived = self._archive.order(client_order_id)
            return () if archived is None else archived[1]

    def drain_events(self) -> Sequence[OrderEvent]:
        """Return the order events since the last call, oldest first (unless a fault says otherwise)."""
        with self._lock:
            self._connected_for_read("drain_events")
            events = self._book.events
            if not events:
                return ()
            self._book.events = []
            self._reorder_if_armed(events)
            self._save()
            return tuple(events)

    def get_clock(self) -> MarketClock:
        """Return the clock: pinned by ``set_clock``, else the session clock at the market time."""
        with self._lock:
            self._connected_for_read("get_clock")
            return self._clock()

    def close(self) -> None:
        """Commit the order archive; the book itself was saved at its last change."""
        with self._lock:
            self._archive.commit()

    # ------------------------------------------------------------------ feeding the market

    @_mutates
    def set_price(self, symbol: str, price: Decimal, time: datetime) -> None:
        """Make ``price`` the current price of ``symbol`` at ``time`` and execute what it reaches.

        Times of one symbol must not go backwards; several symbols may share a time.
        """
        price = _check_price("price", price)
        at = _check_time(time)
        with self._lock:
            self._move_market(symbol, at, opening=price, low=price, high=price, closing=price)

    @_mutates
    def set_prices(self, prices: Mapping[str, Decimal], time: datetime) -> None:
        """``set_price`` for several symbols at one time (a replay's open or close), saved once."""
        checked = {symbol: _check_price(f"price of {symbol}", price) for symbol, price in prices.items()}
        at = _check_time(time)
        with self._lock:
            for symbol, price in checked.items():
                self._move_market(symbol, at, opening=price, low=price, high=price, closing=price, save=False)
            self._save()

    @_mutates
    def on_bar(self, bar: Bar) -> None:
        """Advance ``bar.symbol`` by one bar: resting orders meet the bar's range, then its close.

        A resting buy limit fills when the bar's low reached it (at the open if the bar opened
        below it), a sell limit when the high did; resting market slices fill at the open. The
        close then becomes the current price, which later market orders fill at.
        """
        with self._lock:
            self._move_market(bar.symbol, bar.time, opening=bar.open, low=bar.low, high=bar.high, closing=bar.close)

    def last_price(self, symbol: str) -> Decimal | None:
        """Return the last price fed for ``symbol``, or None."""
        with self._lock:
            return self._last_price(symbol)

    @_mutates
    def set_clock(self, clock: MarketClock | None) -> None:
        """Pin the market clock (``None`` goes back to the session clock at the market time)."""
        with self._lock:
            self._book.pinned_clock = clock
            self._save()

    # ------------------------------------------------------------------ test helpers

    @_mutates
    def seed_position(
        self, symbol: str, qty: Decimal, avg_entry_price: Decimal, *, opened_at: datetime | None = None
    ) -> None:
        """Set a position held before, as if a human had traded it (no order, no event).

        ``qty`` zero removes the position; cash is not touched.
        """
        qty = _check_qty(qty)
        avg_entry_price = _check_price("avg_entry_price", avg_entry_price)
        opened = _check_time(opened_at) if opened_at is not None else None
        with self._lock:
            if qty == 0:
                self._book.holdings.pop(symbol, None)
            else:
                self._book.holdings[symbol] = _Holding(
                    qty=qty, avg_entry_price=avg_entry_price, opened_at=opened or self._now()
                )
            self._touched(symbol)
            self._save()

    @property
    def received_orders(self) -> tuple[ReceivedOrder, ...]:
        """Return every order request that reached the broker, in arrival order."""
        with self._lock:
            what = "a received order in the paper broker's archive"
            return tuple(structure(doc, ReceivedOrder, what=what) for doc in self._archive.received_docs())

    @property
    def state_path(self) -> Path | None:
        """Return the state file, or None for an account that lives in memory only."""
        return self._state_path

    # ------------------------------------------------------------------ admission

    def _admit(self, request: OrderRequest) -> Decimal:
        symbol = request.symbol
        if self.faults._take(Fault.REJECT, symbol):
            raise OrderRejected(
                f"order {request.client_order_id} rejected (injected fault)", code=PaperRejectCode.INJECTED
            )
        if not self._is_known(symbol):
            raise OrderRejected(
                f"unknown symbol {symbol}: the paper broker has no market data for it",
                code=PaperRejectCode.UNKNOWN_SYMBOL,
            )
        if request.notional is not None and request.order_type is not OrderType.MARKET:
            raise OrderRejected(
                f"order {request.client_order_id}: notional orders must be market orders",
                code=PaperRejectCode.INVALID_ORDER,
            )
        if request.time_in_force is TimeInForce.CLS and request.order_type is not OrderType.MARKET:
            raise OrderRejected(
                f"order {request.client_order_id}: market-on-close orders must be market orders",
                code=PaperRejectCode.INVALID_ORDER,
            )
        if request.is_fractional:
            self._admit_fractional(request)
        quote = self._book.quotes.get(symbol)
        if request.order_type is OrderType.LIMIT:
            reserve_price = _limit_price(request)
        elif quote is None:
            raise OrderRejected(
                f"no price for {symbol} yet: a market order needs market data first",
                code=PaperRejectCode.NO_MARKET_PRICE,
            )
        else:
            reserve_price = self._slipped(quote.price, request.side)
        if request.is_fractional:
            estimate = request.notional if request.notional is not None else _qty(request) * reserve_price
            if estimate < self._config.min_fractional_notional:
                raise OrderRejected(
                    f"order {request.client_order_id}: fractional orders need at least "
                    f"{self._config.min_fractional_notional} {self._config.currency}, this one is about {estimate}",
                    code=PaperRejectCode.BELOW_MIN_NOTIONAL,
                )
        if request.side is Side.BUY:
            cost = self._cost_estimate(request, reserve_price, ZERO, request.notional, first_execution=True)
            buying_power = self._buying_power()
            if cost > buying_power:
                raise OrderRejected(
                    f"order {request.client_order_id}: costs about {cost} {self._config.currency}, "
                    f"buying power is {buying_power}",
                    code=PaperRejectCode.INSUFFICIENT_BUYING_POWER,
                )
        elif not self._config.allow_short_selling:
            wanted = request.qty if request.qty is not None else _notional_qty(request.notional, reserve_price)
            available = self._sellable_qty(symbol)
            if wanted > available:
                raise OrderRejected(
                    f"order {request.client_order_id}: sells {wanted} {symbol}, only {available} available "
                    "(short selling is off)",
                    code=PaperRejectCode.INSUFFICIENT_QTY,
                )
        return reserve_price

    def _admit_fractional(self, request: OrderRequest) -> None:
        if self.faults._take(Fault.FRACTIONAL_REFUSED, request.symbol):
            raise FractionalNotSupported(
                f"order {request.client_order_id}: fractional order refused (injected fault)",
                code=PaperRejectCode.FRACTIONAL_NOT_ALLOWED,
            )
        if not self._config.fractional_trading:
            raise FractionalNotSupported(
                f"order {request.client_order_id}: this account does not trade fractional shares",
                code=PaperRejectCode.FRACTIONAL_NOT_ALLOWED,
            )
        if request.symbol in self._config.non_fractionable_symbols:
            raise FractionalNotSupported(
                f"order {request.client_order_id}: {request.symbol} is not fractionable",
                code=PaperRejectCode.ASSET_NOT_FRACTIONABLE,
            )
        if self._config.fractional_day_only and request.time_in_force is not TimeInForce.DAY:
            raise FractionalNotSupported(
                f"order {request.client_order_id}: fractional orders are taken as DAY orders only, "
                f"not {request.time_in_force.value}",
                code=PaperRejectCode.FRACTIONAL_TIME_IN_FORCE,
            )

    def _accept(self, request: OrderRequest, reserve_price: Decimal, now: datetime) -> _WorkingOrder:
        self._book.order_sequence += 1
        order = Order(
            client_order_id=request.client_order_id,
            broker_order_id=f"paper-{self._book.order_sequence:08d}",
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            status=OrderStatus.ACCEPTED,
            qty=request.qty,
            notional=request.notional,
            limit_price=request.limit_price,
            submitted_at=now,
            updated_at=now,
        )
        # A DAY order lives until the close of the session it was placed for: today's when
        # the market is open, the next one's when it is closed.
        # A market-on-close order executes at that same close.
        expires_at = self._clock().next_close if request.time_in_force in (TimeInForce.DAY, TimeInForce.CLS) else None
        working = _WorkingOrder(
            request=request,
            order=order,
            reserve_price=reserve_price,
            remaining_notional=request.notional,
            expires_at=expires_at,
        )
        self._book.orders[request.client_order_id] = working
        self._open.setdefault(request.symbol, {})[request.client_order_id] = working
        self._emit(OrderEventKind.ACCEPTED, working, now)
        return working

    def _receive(self, request: OrderRequest, now: datetime, outcome: ReceiptOutcome, reason: str = "") -> None:
        received = ReceivedOrder(request=request, received_at=now, outcome=outcome, reason=reason)
        self._archive.add_received(received, self._book.generation + 1)
        if outcome is not ReceiptOutcome.ACCEPTED:
            self._save()

    # ------------------------------------------------------------------ execution

    def _execute_at_submission(self, working: _WorkingOrder, now: datetime) -> None:
        if working.request.time_in_force is TimeInForce.CLS:
            return  # it waits for the closing price
        quote = self._book.quotes.get(working.request.symbol)
        if quote is not None:
            self._execute(working, quote.price, now)
        if working.request.time_in_force is TimeInForce.IOC and not working.order.status.is_terminal:
            self._finish(working, OrderStatus.CANCELED, now, "immediate-or-cancel: the rest was canceled")

    def _move_market(
        self,
        symbol: str,
        at: datetime,
        *,
        opening: Decimal,
        low: Decimal,
        high: Decimal,
        closing: Decimal,
        save: bool = True,
    ) -> None:
        last = self._book.quotes.get(symbol)
        if last is not None and at < last.time:
            raise ValueError(f"market time for {symbol} went backwards: {at.isoformat()} after {last.time.isoformat()}")
        resting = self._open.get(symbol)
        if not resting:
            # Nothing can execute: only the quote and the market time move (and only a held
            # symbol's quote changes a position or the holdings' value).
            self._book.quotes[symbol] = _Quote(price=closing, time=at)
            if symbol in self._book.holdings:
                self._touched(symbol)
            if self._book.market_time is None or at > self._book.market_time:
                self._book.market_time = at
            if save:
                self._save()
            return
        for working in list(resting.values()):
            if working.order.status.is_terminal:
                continue
            request = working.request
            if request.time_in_force is TimeInForce.CLS:
                # Market on close: the first price at or after its session's close is the close.
                closes_at = working.expires_at
                reference: Decimal | None = closing if closes_at is not None and at >= closes_at else None
            elif request.order_type is OrderType.MARKET:
                reference = opening
            elif request.side is Side.BUY:
                limit = _limit_price(request)
                reference = min(opening, limit) if low <= limit else None
            else:
                limit = _limit_price(request)
                reference = max(opening, limit) if high >= limit else None
            if reference is not None:
                self._execute(working, reference, at)
        self._book.quotes[symbol] = _Quote(price=closing, time=at)
        self._touched(symbol)
        if self._book.market_time is None or at > self._book.market_time:
            self._book.market_time = at
        for working in list(self._open.get(symbol, {}).values()):
            expires_at = working.expires_at
            if not working.order.status.is_terminal and expires_at is not None and at >= expires_at:
                self._finish(working, OrderStatus.EXPIRED, at, "day order expired at the close")
        if save:
            self._save()

    def _execute(self, working: _WorkingOrder, reference: Decimal, at: datetime) -> None:
        price = self._execution_price(working.request, reference)
        if price is None:
            return
        slices = self._config.fill_slices if self._config.slice_timing is SliceTiming.AT_ONCE else 1
        for _ in range(slices):
            if working.order.status.is_terminal:
                return
            qty = self._next_slice(working, price)
            affordable = self._affordable(working, qty, price) if working.request.side is Side.BUY else qty
            if affordable > 0:
                self._apply_fill(working, affordable, price, at)
            if affordable < qty or qty <= 0:
                if not working.order.status.is_terminal:
                    self._finish(working, OrderStatus.CANCELED, at, "nothing more can execute: the rest was canceled")
                return

    def _execution_price(self, request: OrderRequest, reference: Decimal) -> Decimal | None:
        slipped = self._slipped(reference, request.side)
        if request.order_type is OrderType.MARKET:
            return slipped
        limit = _limit_price(request)
        if request.side is Side.BUY:
            return None if reference > limit else min(slipped, limit)
        return None if reference < limit else max(slipped, limit)

    def _slipped(self, price: Decimal, side: Side) -> Decimal:
        bps = self._config.slippage_bps
        if bps == 0:
            return price
        step = self._config.price_increment
        moved = price * bps / _BPS
        if side is Side.BUY:
            return (price + moved).quantize(step, rounding=ROUND_UP)
        return max((price - moved).quantize(step, rounding=ROUND_DOWN), step)

    def _slices_left(self, working: _WorkingOrder) -> int:
        return max(1, self._config.fill_slices - len(working.fills))

    def _next_slice(self, working: _WorkingOrder, price: Decimal) -> Decimal:
        request = working.request
        slices_left = self._slices_left(working)
        if working.remaining_notional is not None:
            budget = working.remaining_notional
            if slices_left > 1:
                budget = (budget / slices_left).quantize(_CENT, rounding=ROUND_DOWN)
            qty = _notional_qty(budget, price)
        else:
            remaining = _qty(request) - working.order.filled_qty
            if slices_left > 1:
                step = ONE if remaining == remaining.to_integral_value() else FRACTIONAL_QTY_STEP
                qty = max((remaining / slices_left).quantize(step, rounding=ROUND_DOWN), min(step, remaining))
            else:
                qty = remaining
        if request.side is Side.SELL and not self._config.allow_short_selling:
            # Only a notional sell can reach here wanting more than is held (the price fell
            # since it was admitted); it sells what there is rather than going short.
            held = self._book.holdings.get(request.symbol)
            qty = min(qty, held.qty if held is not None and held.qty > 0 else ZERO)
        return qty

    def _affordable(self, working: _WorkingOrder, qty: Decimal, price: Decimal) -> Decimal:
        # A market order filling over later prices can meet a higher price than it was
        # admitted at; a cash account then buys only what its free cash pays for, and the
        # rest of the order is canceled.
        config = self._config
        free = self._book.cash - self._reserved_for_buys(excluding=working)
        if not working.fills:
            free -= config.commission_per_order
        per_share = price * (1 + config.commission_pct / 100) + config.commission_per_share
        if qty * per_share <= free:
            return qty
        if free <= 0:
            return ZERO
        step = FRACTIONAL_QTY_STEP if working.request.is_fractional else ONE
        return min(qty, (free / per_share).quantize(step, rounding=ROUND_DOWN))

    def _apply_fill(self, working: _WorkingOrder, qty: Decimal, price: Decimal, at: datetime) -> None:
        config = self._config
        request = working.request
        commission = (
            qty * config.commission_per_share
            + qty * price * config.commission_pct / 100
            + (config.commission_per_order if not working.fills else ZERO)
        )
        if request.side is Side.BUY:
            self._book.cash -= qty * price + commission
            position_after = self._move_position(request.symbol, qty, price, at)
        else:
            self._book.cash += qty * price - commission
            position_after = self._move_position(request.symbol, -qty, price, at)
        self._book.execution_sequence += 1
        fill = Fill(
            execution_id=f"paper-exec-{self._book.execution_sequence:08d}",
            client_order_id=request.client_order_id,
            broker_order_id=working.order.broker_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=qty,
            price=price,
            time=at,
            commission=commission,
            position_qty_after=position_after,
        )
        working.fills.append(fill)
        filled_qty = working.order.filled_qty + qty
        previous_avg = working.order.filled_avg_price or ZERO
        avg = (previous_avg * working.order.filled_qty + price * qty) / filled_qty
        if working.remaining_notional is not None:
            working.remaining_notional -= qty * price
            # The last slice spends the rest, down to less than one step of quantity.
            complete = (
                len(working.fills) >= config.fill_slices or working.remaining_notional < price * FRACTIONAL_QTY_STEP
            )
        else:
            complete = filled_qty == request.qty
        working.order = attrs.evolve(
            working.order,
            status=OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED,
            filled_qty=filled_qty,
            filled_avg_price=avg,
            updated_at=at,
        )
        if complete:
            self._untrack(working)
        self._emit(OrderEventKind.FILL if complete else OrderEventKind.PARTIAL_FILL, working, at, fill)

    def _move_position(self, symbol: str, signed_qty: Decimal, price: Decimal, at: datetime) -> Decimal:
        self._touched(symbol)
        holding = self._book.holdings.get(symbol)
        if holding is None:
            self._book.holdings[symbol] = _Holding(qty=signed_qty, avg_entry_price=price, opened_at=at)
            return signed_qty
        new_qty = holding.qty + signed_qty
        if new_qty == 0:
            del self._book.holdings[symbol]
        elif holding.qty * signed_qty > 0:
            holding.avg_entry_price = (holding.qty * holding.avg_entry_price + signed_qty * price) / new_qty
            holding.qty = new_qty
        elif holding.qty * new_qty > 0:
            holding.qty = new_qty  # a reduction leaves the entry price as it was
        else:
            # Through zero: what is left is a new position opened at this fill.
            self._book.holdings[symbol] = _Holding(qty=new_qty, avg_entry_price=price, opened_at=at)
        return new_qty

    def _finish(self, working: _WorkingOrder, status: OrderStatus, at: datetime, reason: str) -> None:
        working.order = attrs.evolve(
            working.order,
            status=status,
            updated_at=at,
            reject_reason=reason if status is OrderStatus.REJECTED else working.order.reject_reason,
        )
        self._untrack(working)
        kind = {
            OrderStatus.CANCELED: OrderEventKind.CANCELED,
            OrderStatus.REJECTED: OrderEventKind.REJECTED,
            OrderStatus.EXPIRED: OrderEventKind.EXPIRED,
        }[status]
        self._emit(kind, working, at)

    def _untrack(self, working: _WorkingOrder) -> None:
        """The order reached a final status: it leaves the book for the archive."""
        coid = working.request.client_order_id
        by_id = self._open.get(working.request.symbol)
        if by_id is not None:
            by_id.pop(coid, None)
            if not by_id:
                del self._open[working.request.symbol]
        self._book.orders.pop(coid, None)
        self._archive.put_order(working.order, working.fills, self._book.generation + 1)

    # ------------------------------------------------------------------ events

    def _emit(self, kind: OrderEventKind, working: _WorkingOrder, at: datetime, fill: Fill | None = None) -> None:
        event = OrderEvent(kind=kind, order=working.order, fill=fill, time=at)
        self._book.events.append(event)
        if fill is not None and self.faults._take(Fault.DUPLICATE_FILL_EVENTS, working.request.symbol):
            self._book.events.append(event)

    def _reorder_if_armed(self, events: list[OrderEvent]) -> None:
        def positions(symbol: str | None) -> list[int]:
            return [i for i, e in enumerate(events) if symbol is None or e.order.symbol == symbol]

        armed = self.faults._take_first(Fault.OUT_OF_ORDER_EVENTS, lambda a: len(positions(a.symbol)) >= 2)
        if armed is None:
            return
        where = positions(armed.symbol)
        reversed_events = [events[i] for i in reversed(where)]
        for index, event in zip(where, reversed_events, strict=True):
            events[index] = event

    # ------------------------------------------------------------------ account arithmetic

    def _cost_estimate(
        self,
        request: OrderRequest,
        reserve_price: Decimal,
        filled_qty: Decimal,
        remaining_notional: Decimal | None,
        *,
        first_execution: bool,
    ) -> Decimal:
        if remaining_notional is not None:
            qty = remaining_notional / reserve_price
            notional = remaining_notional
        else:
            qty = _qty(request) - filled_qty
            notional = qty * reserve_price
        commission = qty * self._config.commission_per_share + notional * self._config.commission_pct / 100
        if first_execution:
            commission += self._config.commission_per_order
        return notional + commission

    def _buying_power(self) -> Decimal:
        return max(ZERO, self._book.cash - self._reserved_for_buys())

    def _reserved_for_buys(self, excluding: _WorkingOrder | None = None) -> Decimal:
        return sum(
            (
                self._cost_estimate(
                    w.request,
                    w.reserve_price,
                    w.order.filled_qty,
                    w.remaining_notional,
                    first_execution=not w.fills,
                )
                for by_id in self._open.values()
                for w in by_id.values()
                if w.request.side is Side.BUY and w is not excluding
            ),
            ZERO,
        )

    def _sellable_qty(self, symbol: str) -> Decimal:
        holding = self._book.holdings.get(symbol)
        held = holding.qty if holding is not None else ZERO
        promised = ZERO
        for w in self._open.get(symbol, {}).values():
            if w.request.side is not Side.SELL:
                continue
            if w.remaining_notional is not None:
                promised += _notional_qty(w.remaining_notional, w.reserve_price)
            else:
                promised += _qty(w.request) - w.order.filled_qty
        return max(ZERO, held - promised)

    def _last_price(self, symbol: str) -> Decimal | None:
        quote = self._book.quotes.get(symbol)
        return None if quote is None else quote.price

    def _mark(self, symbol: str, holding: _Holding) -> Decimal:
        price = self._last_price(symbol)
        return price if price is not None else holding.avg_entry_price

    def _is_known(self, symbol: str) -> bool:
        tradable = self._config.tradable_symbols
        return symbol in self._book.quotes if tradable is None else symbol in tradable

    # ------------------------------------------------------------------ time

    def _now(self) -> datetime:
        if self._book.pinned_clock is not None:
            return self._book.pinned_clock.now
        if self._book.market_time is not None:
            return self._book.market_time
        return utcnow()

    def _clock(self) -> MarketClock:
        pinned = self._book.pinned_clock
        return pinned if pinned is not None else self._session_clock(self._now())

    def _connected_for_read(self, what: str) -> None:
        if self.faults._take(Fault.DISCONNECT):
            raise BrokerUnavailable(f"{what} failed: paper broker disconnected (injected fault)")

    # ------------------------------------------------------------------ persistence

    def _fresh_book(self) -> _Book:
        return _Book(
            format_version=STATE_FORMAT_VERSION,
            cash=self._config.starting_cash,
            holdings={},
            quotes={},
            market_time=None,
            orders={},
            events=[],
            received=[],
            order_sequence=0,
            execution_sequence=0,
        )

    def _load(self) -> _Book | None:
        path = self._state_path
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PaperStateError(f"paper broker state {path} cannot be read: {exc}") from exc
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PaperStateError(f"paper broker state {path} is not valid JSON: {exc}") from exc
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != STATE_FORMAT_VERSION:
            raise PaperStateError(
                f"paper broker state {path} has format version {version!r}; this tradekit reads "
                f"version {STATE_FORMAT_VERSION}"
            )
        try:
            return structure(data, _Book, what=f"paper broker state {path}")
        except StructureError as exc:
            raise PaperStateError(str(exc)) from exc

    def save_state(self, path: Path) -> None:
        """Write the whole book to ``path`` atomically (fsynced, then renamed into place)."""
        with self._lock:
            self._write(path)

    def _save(self) -> None:
        path = self._state_path
        if path is None or not self._autosave:
            return
        self._write(path)

    def _restore_archive(self) -> None:
        """Match the archive to the loaded book; move what an older state file kept in the book
        (terminal orders, the received log) into the archive."""
        book = self._book
        if book.generation > 0 and not self._archive.existed():
            raise PaperStateError(
                f"paper broker state {self._state_path} needs its order archive {self._archive.path}, "
                "which is missing: restore the two files together"
            )
        try:
            self._archive.forget_after(book.generation)
            for coid, working in list(book.orders.items()):
                if working.order.status.is_terminal:
                    del book.orders[coid]
                    self._archive.put_order(working.order, working.fills, book.generation + 1)
            for received in book.received:
                self._archive.add_received(received, book.generation + 1)
            self._archive.write_pending()  # an archive that cannot take them fails the load, here
        except ArchiveError as exc:
            raise PaperStateError(str(exc)) from exc
        book.received = []

    def _write(self, path: Path) -> None:
        # The archive first: a state file of generation G must find every row of generation <= G.
        self._archive.commit()
        book = attrs.evolve(self._book, generation=self._book.generation + 1)
        payload = json.dumps(unstructure(book), sort_keys=True, separators=(",", ":"))
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self._book.generation = book.generation
        # The rename itself must reach the disk, or a power cut could bring back the old file.
        if os.name == "posix":
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
