"""Named constructors from Alpaca's JSON to tradekit records.

Every function takes the JSON Alpaca sent (alpaca-py with ``raw_data=True``, so nothing went
through alpaca-py's float-typed models) and returns a frozen tradekit record with ``Decimal``
money and UTC times. A payload missing a field, or holding one tradekit cannot trust, raises
``BrokerDataError`` naming the payload and the field.

Alpaca sends money and quantities as JSON strings, which become ``Decimal`` exactly. The
market data API sends bar prices as JSON numbers; those arrive as floats and are converted
through ``repr``, the shortest text that reads back as the same float, i.e. the digits Alpaca
sent for any price with up to 15 significant digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from tradekit.broker.errors import BrokerDataError
from tradekit.broker.protocol import AssetInfo, MarketClock, OrderEventKind
from tradekit.data import ohlc_problem, session_close
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill, Order, OrderStatus, OrderType
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side
from tradekit.domain.values import ONE, ZERO, to_utc, utc

NEW_YORK = ZoneInfo("America/New_York")
# Alpaca's minimum for a fractional or notional order, in dollars.
MIN_FRACTIONAL_NOTIONAL = Decimal(1)
# Alpaca accepts quantities and notionals with up to nine decimal places.
QTY_PLACES = 9
QTY_STEP = Decimal(1).scaleb(-QTY_PLACES)

Payload = Mapping[str, Any]

# Every client order id tradekit sends starts so (``tradekit.ledger.client_order_id_for``);
# Alpaca makes up other ids for orders placed by hand.
TRADEKIT_ORDER_ID_PREFIX = "tk-"
# The only asset class tradekit trades; Alpaca also has "us_option" and "crypto".
_EQUITY = "us_equity"

# Alpaca order statuses that tradekit's statuses cannot name one to one. Orders that are
# still working (pending a cancel or a replace, done for the day, held, ...) stay open:
# reporting them terminal would let tradekit think an order is gone that may still fill.
_OPEN_STATUSES = frozenset(
    {
        "pending_cancel",
        "pending_replace",
        "done_for_day",
        "calculated",
        "stopped",
        "suspended",
        "held",
        "accepted_for_bidding",
    }
)
_STATUSES = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    # A replaced order is finished; its replacement is a new order with its own id.
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
# Stop orders become market orders when triggered and stop-limits become limits: that is
# what they are once they can fill, and tradekit's pending-order checks need to see them.
_ORDER_TYPES = {
    "market": OrderType.MARKET,
    "stop": OrderType.MARKET,
    "trailing_stop": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop_limit": OrderType.LIMIT,
}
_EVENT_KINDS = {
    "pending_new": OrderEventKind.ACCEPTED,
    "accepted": OrderEventKind.ACCEPTED,
    "new": OrderEventKind.ACCEPTED,
    "partial_fill": OrderEventKind.PARTIAL_FILL,
    "fill": OrderEventKind.FILL,
    "canceled": OrderEventKind.CANCELED,
    "replaced": OrderEventKind.CANCELED,
    "expired": OrderEventKind.EXPIRED,
    "rejected": OrderEventKind.REJECTED,
}


@attrs.frozen(kw_only=True)
class TradingSession:
    """One market day of Alpaca's calendar: the regular session's open and close, in UTC."""

    day: date
    open: datetime = attrs.field(converter=to_utc, validator=utc)
    close: datetime = attrs.field(converter=to_utc, validator=utc)

    def __attrs_post_init__(self) -> None:
        if self.close <= self.open:
            raise ValueError(f"session {self.day}: close {self.close} is not after open {self.open}")


# --------------------------------------------------------------------------- field readers


def _field(payload: Payload, name: str, what: str) -> Any:
    if not isinstance(payload, Mapping):
        raise BrokerDataError(f"{what}: expected a JSON object, got {type(payload).__name__}")
    value = payload.get(name)
    if value is None:
        raise BrokerDataError(f"{what}: field {name!r} is missing")
    return value


def _to_decimal(value: object, name: str, what: str) -> Decimal:
    if isinstance(value, bool):
        raise BrokerDataError(f"{what}: field {name!r} is a boolean, not a number")
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, (str, int, Decimal)):
        raise BrokerDataError(f"{what}: field {name!r} is {type(value).__name__}, not a number")
    try:
        result = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise BrokerDataError(f"{what}: field {name!r} is not a number: {value!r}") from None
    if not result.is_finite():
        raise BrokerDataError(f"{what}: field {name!r} is not a finite number: {value!r}")
    return result


def _decimal(payload: Payload, name: str, what: str) -> Decimal:
    return _to_decimal(_field(payload, name, what), name, what)


def _optional_decimal(payload: Payload, name: str, what: str) -> Decimal | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    return _to_decimal(value, name, what)


def _str(payload: Payload, name: str, what: str) -> str:
    value = _field(payload, name, what)
    if not isinstance(value, str) or not value:
        raise BrokerDataError(f"{what}: field {name!r} must be a non-empty string, got {value!r}")
    return value


def _bool(payload: Payload, name: str, what: str, default: bool | None = None) -> bool:
    value = payload.get(name)
    if value is None:
        if default is not None:
            return default
        raise BrokerDataError(f"{what}: field {name!r} is missing")
    if not isinstance(value, bool):
        raise BrokerDataError(f"{what}: field {name!r} must be true or false, got {value!r}")
    return value


def _parse_time(value: object, name: str, what: str) -> datetime:
    if not isinstance(value, str):
        raise BrokerDataError(f"{what}: field {name!r} must be an RFC 3339 time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BrokerDataError(f"{what}: field {name!r} is not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BrokerDataError(f"{what}: field {name!r} has no UTC offset: {value!r}")
    return to_utc(parsed)


def _time(payload: Payload, name: str, what: str) -> datetime:
    return _parse_time(_field(payload, name, what), name, what)


def _optional_time(payload: Payload, name: str, what: str) -> datetime | None:
    value = payload.get(name)
    return None if value is None else _parse_time(value, name, what)


def _side(payload: Payload, what: str) -> Side:
    value = _str(payload, "side", what)
    try:
        return Side(value)
    except ValueError:
        raise BrokerDataError(f"{what}: field 'side' is {value!r}, expected 'buy' or 'sell'") from None


def _built(what: str, build: Any, **fields: Any) -> Any:
    # The record's own validators are the last line: a NaN or negative figure that made it
    # through the readers is still refused, and reported as bad broker data.
    try:
        return build(**fields)
    except (ValueError, TypeError) as exc:
        raise BrokerDataError(f"{what}: {exc}") from None


# --------------------------------------------------------------------------- account and positions


def account_from_alpaca(account: Payload, configuration: Payload | None, *, as_of: datetime) -> AccountSnapshot:
    """Build the snapshot from GET /v2/account and GET /v2/account/configurations.

    ``trading_blocked`` is true when anything stops this account from trading: Alpaca's own
    flag, a suspension by the user (account or configuration), or a status other than ACTIVE.
    Alpaca no longer sends ``pattern_day_trader`` (2026); a missing flag reads as false.
    Without the configuration, fractional trading is reported as disabled (the safe side).
    """
    what = "Alpaca account"
    status = _str(account, "status", what)
    suspended_by_configuration = configuration is not None and _bool(
        configuration, "suspend_trade", "Alpaca account configuration", default=False
    )
    trading_blocked = (
        _bool(account, "trading_blocked", what)
        or _bool(account, "trade_suspended_by_user", what, default=False)
        or suspended_by_configuration
        or status != "ACTIVE"
    )
    fractional = configuration is not None and _bool(
        configuration, "fractional_trading", "Alpaca account configuration"
    )
    result: AccountSnapshot = _built(
        what,
        AccountSnapshot,
        equity=_decimal(account, "equity", what),
        cash=_decimal(account, "cash", what),
        buying_power=_decimal(account, "buying_power", what),
        as_of=as_of,
        currency=_str(account, "currency", what),
        trading_blocked=trading_blocked,
        account_blocked=_bool(account, "account_blocked", what),
        pattern_day_trader=_bool(account, "pattern_day_trader", what, default=False),
        fractional_trading=fractional,
    )
    return result


def is_foreign_asset_class(payload: Payload) -> bool:
    """Tell whether an order or position is of an asset class tradekit does not trade.

    A multi-leg order (options), an ``asset_class`` other than ``us_equity`` or a pair symbol
    (``BTC/USD``) is; a payload that names none of these is taken as a stock.
    """
    symbol = payload.get("symbol")
    return (
        payload.get("order_class") == "mleg"
        or payload.get("asset_class") not in (None, "", _EQUITY)
        or (isinstance(symbol, str) and "/" in symbol)
    )


def position_from_alpaca(position: Payload, *, as_of: datetime) -> BrokerPosition:
    """Build a broker position from one entry of GET /v2/positions; a short has a negative qty."""
    symbol = _str(position, "symbol", "Alpaca position")
    what = f"Alpaca position {symbol}"
    qty = _decimal(position, "qty", what)
    if position.get("side") == "short" and qty > 0:
        qty = -qty
    result: BrokerPosition = _built(
        what,
        BrokerPosition,
        symbol=symbol,
        qty=qty,
        avg_entry_price=_decimal(position, "avg_entry_price", what),
        as_of=as_of,
        current_price=_optional_decimal(position, "current_price", what),
        asset_class=str(position.get("asset_class") or "us_equity"),
    )
    return result


def asset_from_alpaca(asset: Payload) -> AssetInfo:
    """Build what Alpaca allows for one asset: fractional assets trade in 1e-9 shares, $1
    minimum, on DAY orders only."""
    symbol = _str(asset, "symbol", "Alpaca asset")
    what = f"Alpaca asset {symbol}"
    fractionable = _bool(asset, "fractionable", what)
    tradable = _bool(asset, "tradable", what) and _str(asset, "status", what) == "active"
    result: AssetInfo = _built(
        what,
        AssetInfo,
        symbol=symbol,
        tradable=tradable,
        fractionable=fractionable,
        min_notional=MIN_FRACTIONAL_NOTIONAL if fractionable else ZERO,
        qty_increment=QTY_STEP if fractionable else ONE,
        min_qty=QTY_STEP if fractionable else ONE,
        fractional_day_only=True,
    )
    return result


def untradable_asset(symbol: str) -> AssetInfo:
    """Describe a symbol Alpaca does not know: not tradable, no fractions."""
    return AssetInfo(symbol=symbol, tradable=False, fractionable=False)


# --------------------------------------------------------------------------- orders and fills


def order_status_from_alpaca(status: str, filled_qty: Decimal, what: str) -> OrderStatus:
    """Map an Alpaca order status to tradekit's; an unknown status is bad data, never guessed."""
    if status in _STATUSES:
        return _STATUSES[status]
    if status in _OPEN_STATUSES:
        return OrderStatus.PARTIALLY_FILLED if filled_qty > 0 else OrderStatus.ACCEPTED
    raise BrokerDataError(f"{what}: unknown order status {status!r}")


def order_from_alpaca(order: Payload) -> Order:
    """Build an order from Alpaca's order JSON (REST answers and trade updates alike)."""
    client_order_id = _str(order, "client_order_id", "Alpaca order")
    what = f"Alpaca order {client_order_id}"
    raw_type = order.get("type") or order.get("order_type")
    if raw_type not in _ORDER_TYPES:
        raise BrokerDataError(f"{what}: field 'type' is {raw_type!r}, not an order type tradekit knows")
    filled_qty = _optional_decimal(order, "filled_qty", what) or ZERO
    submitted_at = _optional_time(order, "submitted_at", what) or _time(order, "created_at", what)
    result: Order = _built(
        what,
        Order,
        client_order_id=client_order_id,
        broker_order_id=_str(order, "id", what),
        symbol=_str(order, "symbol", what),
        side=_side(order, what),
        order_type=_ORDER_TYPES[raw_type],
        status=order_status_from_alpaca(_str(order, "status", what), filled_qty, what),
        qty=_optional_decimal(order, "qty", what),
        notional=_optional_decimal(order, "notional", what),
        limit_price=_optional_decimal(order, "limit_price", what),
        filled_qty=filled_qty,
        filled_avg_price=_optional_decimal(order, "filled_avg_price", what),
        submitted_at=submitted_at,
        updated_at=_optional_time(order, "updated_at", what),
    )
    return result


@attrs.frozen(kw_only=True)
class ForeignOrder:
    """An order tradekit did not place and cannot read, with what could be read of it.

    ``symbol`` is the stock it concerns, None when it is of an asset class tradekit does not
    trade (or names no symbol); ``problem`` says what could not be read.
    """

    broker_order_id: str
    client_order_id: str
    symbol: str | None
    side: Side | None
    submitted_at: datetime | None
    problem: str

    def stand_in(self, *, now: datetime) -> Order | None:
        """Return the open order of unknown size this order stands for on its stock, if any.

        Its quantity is unknown, so it reports none: tradekit then takes the whole position
        as being sold by it (no exit sells past it) and sees an order pending on the stock
        (no buy there). An unread side is taken as a sell, which blocks both.
        """
        if self.symbol is None:
            return None
        return Order(
            client_order_id=self.client_order_id or self.broker_order_id,
            broker_order_id=self.broker_order_id,
            symbol=self.symbol,
            side=self.side or Side.SELL,
            order_type=OrderType.MARKET,
            status=OrderStatus.ACCEPTED,
            submitted_at=self.submitted_at or now,
        )


def order_or_foreign_from_alpaca(order: Payload) -> Order | ForeignOrder:
    """Build an order, or, when it cannot be read and tradekit did not place it, a ``ForeignOrder``.

    An unreadable order whose client order id is tradekit's raises ``BrokerDataError`` as
    ``order_from_alpaca`` does: tradekit never loses track of its own order.
    """
    try:
        return order_from_alpaca(order)
    except BrokerDataError as exc:
        client_order_id = order.get("client_order_id") if isinstance(order, Mapping) else None
        if not isinstance(order, Mapping) or (
            isinstance(client_order_id, str) and client_order_id.startswith(TRADEKIT_ORDER_ID_PREFIX)
        ):
            raise
        problem = str(exc)
    broker_order_id, symbol, side = (order.get(name) for name in ("id", "symbol", "side"))
    try:
        submitted_at = _optional_time(order, "submitted_at", "") or _optional_time(order, "created_at", "")
    except BrokerDataError:
        submitted_at = None
    if not isinstance(symbol, str) or not symbol or is_foreign_asset_class(order):
        symbol = None
    return ForeignOrder(
        broker_order_id=broker_order_id if isinstance(broker_order_id, str) else "",
        client_order_id=client_order_id if isinstance(client_order_id, str) else "",
        symbol=symbol,
        side=Side(side) if side in ("buy", "sell") else None,
        submitted_at=submitted_at,
        problem=problem,
    )


def execution_id_for(broker_order_id: str, cumulative_qty: Decimal) -> str:
    """Return the id of the execution that brought the order's filled quantity to ``cumulative_qty``.

    Alpaca's stream and its account activities name one execution differently, so tradekit
    names it by what both report: the order and its cumulative filled quantity after it.
    The same execution gets the same id however it was learned (stream, poll, restart).
    """
    return f"{broker_order_id}:{format(cumulative_qty.normalize(), 'f')}"


def event_kind_from_alpaca(event: str) -> OrderEventKind | None:
    """Map a trade update's event name; None for events that change nothing tradekit tracks."""
    return _EVENT_KINDS.get(event)


def fill_from_alpaca_trade_update(update: Payload, order: Order) -> Fill:
    """Build the execution a ``fill`` / ``partial_fill`` trade update reports.

    ``qty`` is this execution's own quantity; the order's ``filled_qty`` (cumulative) names it.
    """
    what = f"Alpaca trade update for order {order.client_order_id}"
    qty = _decimal(update, "qty", what)
    if qty <= 0 or qty > order.filled_qty:
        raise BrokerDataError(f"{what}: execution qty {qty} does not fit the order's filled_qty {order.filled_qty}")
    result: Fill = _built(
        what,
        Fill,
        execution_id=execution_id_for(order.broker_order_id, order.filled_qty),
        client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id,
        symbol=order.symbol,
        side=order.side,
        qty=qty,
        price=_decimal(update, "price", what),
        time=_time(update, "timestamp", what),
        position_qty_after=_optional_decimal(update, "position_qty", what),
    )
    return result


def fill_from_alpaca_activity(activity: Payload, *, client_order_id: str) -> Fill:
    """Build one execution from a FILL account activity (GET /v2/account/activities/FILL)."""
    order_id = _str(activity, "order_id", "Alpaca fill activity")
    what = f"Alpaca fill activity of order {client_order_id}"
    result: Fill = _built(
        what,
        Fill,
        execution_id=execution_id_for(order_id, _decimal(activity, "cum_qty", what)),
        client_order_id=client_order_id,
        broker_order_id=order_id,
        symbol=_str(activity, "symbol", what),
        side=_side(activity, what),
        qty=_decimal(activity, "qty", what),
        price=_decimal(activity, "price", what),
        time=_time(activity, "transaction_time", what),
    )
    return result


def cumulative_qty_of_activity(activity: Payload) -> Decimal:
    """Return the order's filled quantity after this FILL activity."""
    return _decimal(activity, "cum_qty", "Alpaca fill activity")


# --------------------------------------------------------------------------- clock, calendar, bars


def clock_from_alpaca(clock: Payload) -> MarketClock:
    """Build the market clock from GET /v2/clock (Alpaca sends New York times with offsets)."""
    what = "Alpaca clock"
    result: MarketClock = _built(
        what,
        MarketClock,
        now=_time(clock, "timestamp", what),
        is_open=_bool(clock, "is_open", what),
        next_open=_time(clock, "next_open", what),
        next_close=_time(clock, "next_close", what),
    )
    return result


def _ny_clock_time(payload: Payload, name: str, what: str) -> time:
    value = _str(payload, name, what)
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise BrokerDataError(f"{what}: field {name!r} is not an HH:MM time: {value!r}") from None


def session_from_alpaca(day: Payload) -> TradingSession:
    """Build one market day from GET /v2/calendar ("HH:MM" New York times)."""
    raw_date = _str(day, "date", "Alpaca calendar day")
    what = f"Alpaca calendar day {raw_date}"
    try:
        session_date = date.fromisoformat(raw_date)
    except ValueError:
        raise BrokerDataError(f"{what}: field 'date' is not a YYYY-MM-DD date") from None
    result: TradingSession = _built(
        what,
        TradingSession,
        day=session_date,
        open=datetime.combine(session_date, _ny_clock_time(day, "open", what), NEW_YORK),
        close=datetime.combine(session_date, _ny_clock_time(day, "close", what), NEW_YORK),
    )
    return result


def price_from_alpaca_trade(symbol: str, trade: Payload) -> Decimal:
    """Return the price of a latest-trade entry (GET /v2/stocks/trades/latest); it must be positive."""
    what = f"Alpaca latest trade of {symbol}"
    price = _decimal(trade, "p", what)
    if price <= 0:
        raise BrokerDataError(f"{what}: price {price} is not positive")
    return price


def bar_from_alpaca(symbol: str, bar: Payload) -> Bar:
    """Build a daily bar; Alpaca stamps it at the session's start, tradekit at its 16:00 close.

    The stamp follows tradekit's shipped bars (``tradekit.data.session_close``), so bars
    from Alpaca and from files line up for the same day. The bar is held to the checks a bar
    file's row is (``tradekit.data.bar_files``): positive prices, a volume not below zero, the
    open and the close within the low..high range.
    """
    stamp = _time(bar, "t", f"Alpaca bar of {symbol}")
    day = stamp.astimezone(NEW_YORK).date()
    what = f"Alpaca bar of {symbol} on {day}"
    prices = {name: _decimal(bar, name, what) for name in ("o", "h", "l", "c")}
    for name, price in prices.items():
        if price <= 0:
            raise BrokerDataError(f"{what}: field {name!r} is {price}, not a positive price")
    volume = _decimal(bar, "v", what)
    if volume < 0:
        raise BrokerDataError(f"{what}: field 'v' is {volume}, a negative volume")
    problem = ohlc_problem(prices["o"], prices["h"], prices["l"], prices["c"])
    if problem is not None:
        raise BrokerDataError(f"{what}: {problem}")
    result: Bar = _built(
        what,
        Bar,
        symbol=symbol,
        time=session_close(day),
        open=prices["o"],
        high=prices["h"],
        low=prices["l"],
        close=prices["c"],
        volume=volume,
    )
    return result
