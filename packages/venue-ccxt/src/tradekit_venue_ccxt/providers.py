"""Venue data as tradekit records: markets, order books, funding, orders, positions, fills.

ccxt hands back dicts of floats. Every number is turned into a ``Decimal`` through its
string (``Decimal(str(x))``: the shortest text that reads back as the same float, i.e. the
venue's own digits), and never takes part in float arithmetic. Each record has a named
constructor from the ccxt dict; a field tradekit needs that is missing or malformed raises
``BrokerDataError`` naming every such field, never a ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import attrs

from tradekit.broker.errors import BrokerDataError, OrderRejected
from tradekit.broker.protocol import AssetInfo
from tradekit.domain.orders import Fill, Order, OrderStatus, OrderType
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side
from tradekit.domain.values import (
    ZERO,
    finite,
    non_negative,
    optional_positive,
    positive,
    to_utc,
    utc,
)

# ccxt's precision modes: TICK_SIZE means precision fields hold step sizes (0.001), which is
# what both supported venues use in ccxt 4.5.
CCXT_TICK_SIZE = 4
_BPS = Decimal(10_000)
ASSET_CLASS = "crypto_perp"


def to_decimal(value: object, *, field: str, what: str) -> Decimal:
    """Convert a ccxt number (float, int or str) to Decimal; refuse anything else."""
    if isinstance(value, bool) or value is None:
        raise BrokerDataError(f"{what}: field {field!r} is {value!r}, expected a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, (int, float, str)):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise BrokerDataError(f"{what}: field {field!r} is {value!r}, not a number") from None
    else:
        raise BrokerDataError(f"{what}: field {field!r} is a {type(value).__name__}, expected a number")
    if not number.is_finite():
        raise BrokerDataError(f"{what}: field {field!r} is {value!r}, not a finite number")
    return number


def ms_to_utc(value: object, *, field: str, what: str) -> datetime:
    """Convert epoch milliseconds to an aware UTC datetime."""
    millis = to_decimal(value, field=field, what=what)
    try:
        return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        # A garbled stamp must be a data error like any other, not a crash of the caller's cycle.
        raise BrokerDataError(f"{what}: field {field!r} is {value!r}, not a time in epoch milliseconds") from None


def utc_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class _Fields:
    """Reads fields from one ccxt dict and gathers every problem before raising once."""

    def __init__(self, raw: Mapping[str, Any], what: str) -> None:
        self.raw = raw
        self.what = what
        self.missing: list[str] = []

    def _get(self, path: str) -> Any:
        node: Any = self.raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def decimal(self, path: str) -> Decimal:
        value = self._get(path)
        if value is None:
            self.missing.append(path)
            return ZERO
        try:
            return to_decimal(value, field=path, what=self.what)
        except BrokerDataError:
            self.missing.append(f"{path} (got {value!r})")
            return ZERO

    def optional_decimal(self, path: str) -> Decimal | None:
        value = self._get(path)
        if value is None or value == "":
            return None
        try:
            return to_decimal(value, field=path, what=self.what)
        except BrokerDataError:
            self.missing.append(f"{path} (got {value!r})")
            return None

    def text(self, path: str) -> str:
        value = self._get(path)
        if value is None or value == "":
            self.missing.append(path)
            return ""
        return str(value)

    def optional_text(self, path: str) -> str | None:
        value = self._get(path)
        return None if value is None or value == "" else str(value)

    def time(self, path: str) -> datetime | None:
        value = self._get(path)
        if value is None:
            return None
        try:
            return ms_to_utc(value, field=path, what=self.what)
        except BrokerDataError:
            self.missing.append(f"{path} (got {value!r})")
            return None

    def check(self) -> None:
        if self.missing:
            raise BrokerDataError(f"{self.what}: missing or malformed field(s): {', '.join(self.missing)}")


# --------------------------------------------------------------------------------------------
# markets
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PerpMarket:
    """A linear perpetual as the venue trades it: precision, limits and contract size.

    Quantities are in contracts (what orders are sent in); a contract is ``contract_size``
    units of ``base``, so a position's notional is ``contracts * contract_size * price``.
    """

    symbol: str
    venue_symbol: str
    base: str
    quote: str
    settle: str
    contract_size: Decimal = attrs.field(validator=positive)
    amount_step: Decimal = attrs.field(validator=positive)
    price_step: Decimal = attrs.field(validator=positive)
    min_qty: Decimal = attrs.field(validator=non_negative)
    max_qty: Decimal | None = attrs.field(default=None, validator=optional_positive)
    max_market_qty: Decimal | None = attrs.field(default=None, validator=optional_positive)
    min_notional: Decimal = attrs.field(default=ZERO, validator=non_negative)
    active: bool = True

    @classmethod
    def from_ccxt_market(cls, market: Mapping[str, Any], *, precision_mode: int) -> PerpMarket:
        """Build from ``exchange.market(symbol)``; only linear swaps in tick-size precision."""
        symbol = str(market.get("symbol") or "<unnamed market>")
        what = f"market {symbol}"
        if precision_mode != CCXT_TICK_SIZE:
            raise BrokerDataError(f"{what}: ccxt precision mode {precision_mode} is not tick-size; steps unknown")
        if not market.get("swap") or not market.get("linear"):
            raise BrokerDataError(f"{what} is not a linear perpetual swap")
        fields = _Fields(market, what)
        name = fields.text("symbol")
        venue_symbol = fields.text("id")
        base = fields.text("base")
        quote = fields.text("quote")
        settle = fields.text("settle")
        contract_size = fields.decimal("contractSize")
        amount_step = fields.decimal("precision.amount")
        price_step = fields.decimal("precision.price")
        min_qty = fields.optional_decimal("limits.amount.min") or ZERO
        max_qty = fields.optional_decimal("limits.amount.max")
        # ccxt 4.5 maps Binance's MARKET_LOT_SIZE to limits.market but leaves Bybit's largest
        # market order (lotSizeFilter.maxMktOrderQty, a tenth of its maxOrderQty) in ``info``.
        max_market_qty = fields.optional_decimal("limits.market.max")
        if max_market_qty is None:
            max_market_qty = fields.optional_decimal("info.lotSizeFilter.maxMktOrderQty")
        min_notional = fields.optional_decimal("limits.cost.min") or ZERO
        fields.check()
        try:
            return cls(
                symbol=name,
                venue_symbol=venue_symbol,
                base=base,
                quote=quote,
                settle=settle,
                contract_size=contract_size,
                amount_step=amount_step,
                price_step=price_step,
                min_qty=min_qty,
                max_qty=max_qty,
                max_market_qty=max_market_qty,
                min_notional=min_notional,
                active=market.get("active") is not False,
            )
        except ValueError as exc:
            raise BrokerDataError(f"{what}: {exc}") from None

    def round_qty(self, qty: Decimal) -> Decimal:
        """Round a quantity down to the amount step: never trade more than asked."""
        return (qty / self.amount_step).to_integral_value(rounding=ROUND_FLOOR) * self.amount_step

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Round a limit price to the tick, never to a worse price (buys down, sells up)."""
        rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
        return (price / self.price_step).to_integral_value(rounding=rounding) * self.price_step

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        return qty * self.contract_size * price

    def check_order(self, qty: Decimal, price: Decimal | None, *, market_order: bool, reduce_only: bool) -> None:
        """Refuse a quantity the venue would refuse, naming the limit (``OrderRejected``)."""
        if qty <= 0:
            raise OrderRejected(f"{self.symbol}: quantity {qty} rounds to nothing at step {self.amount_step}")
        if qty < self.min_qty:
            raise OrderRejected(f"{self.symbol}: quantity {qty} is below the minimum {self.min_qty}", code="min_qty")
        ceiling = self.max_market_qty if market_order and self.max_market_qty is not None else self.max_qty
        if ceiling is not None and qty > ceiling:
            raise OrderRejected(f"{self.symbol}: quantity {qty} is above the maximum {ceiling}", code="max_qty")
        if not reduce_only and price is not None and self.notional(qty, price) < self.min_notional:
            raise OrderRejected(
                f"{self.symbol}: notional {self.notional(qty, price)} is below the minimum {self.min_notional}",
                code="min_notional",
            )

    def to_asset_info(self) -> AssetInfo:
        return AssetInfo(
            symbol=self.symbol,
            tradable=self.active,
            fractionable=self.amount_step < 1,
            min_notional=self.min_notional,
            qty_increment=self.amount_step,
            min_qty=self.min_qty,
        )


# --------------------------------------------------------------------------------------------
# order books
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BookLevel:
    price: Decimal = attrs.field(validator=positive)
    qty: Decimal = attrs.field(validator=positive)


@attrs.frozen(kw_only=True)
class Sweep:
    """What a market order of ``wanted`` would get from the book, best level first."""

    side: Side
    wanted: Decimal
    filled: Decimal
    vwap: Decimal | None
    best: Decimal | None

    @property
    def complete(self) -> bool:
        return self.filled >= self.wanted

    @property
    def slippage_bps(self) -> Decimal | None:
        """How much worse than the best price the average is, in basis points (None: no book)."""
        if self.vwap is None or self.best is None:
            return None
        worse = self.vwap - self.best if self.side is Side.BUY else self.best - self.vwap
        return worse / self.best * _BPS


def _levels(raw: object, what: str) -> tuple[BookLevel, ...]:
    if not isinstance(raw, Sequence):
        raise BrokerDataError(f"{what}: expected a list of [price, qty] levels, got {raw!r}")
    levels = []
    for i, level in enumerate(raw):
        if not isinstance(level, Sequence) or len(level) < 2:
            raise BrokerDataError(f"{what}[{i}]: expected [price, qty], got {level!r}")
        price = to_decimal(level[0], field=f"{i}.price", what=what)
        qty = to_decimal(level[1], field=f"{i}.qty", what=what)
        if price <= 0 or qty < 0:
            raise BrokerDataError(f"{what}[{i}]: invalid level ({price}, {qty})")
        if qty > 0:
            levels.append(BookLevel(price=price, qty=qty))
    return tuple(levels)


@attrs.frozen(kw_only=True)
class OrderBook:
    """Bids (best first, descending) and asks (best first, ascending) of one symbol."""

    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    as_of: datetime = attrs.field(converter=to_utc, validator=utc)

    @classmethod
    def from_ccxt(cls, raw: Mapping[str, Any], *, symbol: str, received_at: datetime) -> OrderBook:
        what = f"order book {symbol}"
        bids = _levels(raw.get("bids"), f"{what} bids")
        asks = _levels(raw.get("asks"), f"{what} asks")
        stamp = raw.get("timestamp")
        as_of = ms_to_utc(stamp, field="timestamp", what=what) if stamp is not None else received_at
        if bids and asks and bids[0].price >= asks[0].price:
            raise BrokerDataError(f"{what} is crossed: best bid {bids[0].price} >= best ask {asks[0].price}")
        return cls(symbol=symbol, bids=bids, asks=asks, as_of=as_of)

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2

    def sweep(self, side: Side, qty: Decimal) -> Sweep:
        """Walk the side a market ``side`` order would take (buys take asks) for ``qty``."""
        levels = self.asks if side is Side.BUY else self.bids
        filled = ZERO
        cost = ZERO
        for level in levels:
            if filled >= qty:
                break
            take = min(level.qty, qty - filled)
            filled += take
            cost += take * level.price
        return Sweep(
            side=side,
            wanted=qty,
            filled=filled,
            vwap=cost / filled if filled > 0 else None,
            best=levels[0].price if levels else None,
        )


# --------------------------------------------------------------------------------------------
# funding
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FundingRate:
    """The current funding rate (per interval, as a fraction) and the next settlement time."""

    symbol: str
    rate: Decimal = attrs.field(validator=finite)
    next_funding_at: datetime | None
    mark_price: Decimal | None = attrs.field(default=None, validator=optional_positive)

    @classmethod
    def from_ccxt(cls, raw: Mapping[str, Any], *, symbol: str) -> FundingRate:
        fields = _Fields(raw, f"funding rate {symbol}")
        rate = fields.decimal("fundingRate")
        next_at = fields.time("fundingTimestamp") or fields.time("nextFundingTimestamp")
        mark = fields.optional_decimal("markPrice")
        fields.check()
        return cls(symbol=symbol, rate=rate, next_funding_at=next_at, mark_price=mark if mark else None)


@attrs.frozen(kw_only=True)
class FundingPayment:
    """One funding settlement on the account. ``amount`` > 0: received; < 0: paid.

    Venues disagree on the sign (Binance reports the credit, Bybit the fee paid); the venue
    profile normalises it before this record is built.
    """

    venue: str
    symbol: str
    funding_id: str = attrs.field(validator=attrs.validators.min_len(1))
    amount: Decimal = attrs.field(validator=finite)
    currency: str
    time: datetime = attrs.field(converter=to_utc, validator=utc)

    @classmethod
    def from_ccxt(cls, raw: Mapping[str, Any], *, venue: str, credit_sign: int) -> FundingPayment:
        fields = _Fields(raw, f"{venue} funding payment")
        funding_id = fields.text("id")
        symbol = fields.text("symbol")
        amount = fields.decimal("amount")
        currency = fields.text("code")
        time = fields.time("timestamp")
        if time is None:
            fields.missing.append("timestamp")
        fields.check()
        assert time is not None
        return cls(
            venue=venue, symbol=symbol, funding_id=funding_id, amount=amount * credit_sign, currency=currency, time=time
        )


# --------------------------------------------------------------------------------------------
# orders, positions, fills
# --------------------------------------------------------------------------------------------

_ORDER_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT}


def order_from_ccxt(
    raw: Mapping[str, Any],
    *,
    client_order_id: str | None,
    received_at: datetime,
) -> Order:
    """Build an ``Order`` from a ccxt order; ``client_order_id`` is what tradekit sent, if known."""
    order_id = raw.get("id")
    what = f"order {client_order_id or order_id}"
    fields = _Fields(raw, what)
    venue_id = fields.text("id")
    symbol = fields.text("symbol")
    side_text = fields.text("side")
    type_text = fields.text("type")
    status_text = fields.text("status")
    amount = fields.decimal("amount")
    filled = fields.optional_decimal("filled")
    if filled is None:
        if status_text in ("closed", "canceled", "cancelled", "expired"):
            # A finished order whose fill is unknown is not an unfilled one: taken as such, a
            # leg that did fill would be left without its partner.
            fields.missing.append("filled")
        filled = ZERO
    average = fields.optional_decimal("average")
    cost = fields.optional_decimal("cost")
    price = fields.optional_decimal("price")
    submitted = fields.time("timestamp")
    updated = fields.time("lastUpdateTimestamp")
    reported_cid = fields.optional_text("clientOrderId")
    problems = []
    if side_text and side_text not in _SIDES:
        problems.append(f"side {side_text!r}")
    if type_text and type_text not in _TYPES:
        problems.append(f"type {type_text!r}")
    if status_text and status_text != "open" and status_text not in _ORDER_STATUS:
        problems.append(f"status {status_text!r}")
    if client_order_id is not None and reported_cid is not None and reported_cid != client_order_id:
        problems.append(f"clientOrderId {reported_cid!r} (expected {client_order_id!r})")
    fields.missing.extend(problems)
    fields.check()
    if status_text == "open":
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    else:
        status = _ORDER_STATUS[status_text]
    if (average is None or average <= 0) and filled > 0 and cost:
        average = cost / filled
    order_type = _TYPES[type_text]
    try:
        return Order(
            client_order_id=client_order_id or reported_cid or "",
            broker_order_id=venue_id,
            symbol=symbol,
            side=_SIDES[side_text],
            order_type=order_type,
            status=status,
            qty=amount,
            limit_price=price if order_type is OrderType.LIMIT and price else None,
            filled_qty=filled,
            filled_avg_price=average if filled > 0 and average and average > 0 else None,
            submitted_at=submitted or updated or received_at,
            updated_at=updated,
            reject_reason=str(raw.get("info", {}).get("rejectReason", "")) if status is OrderStatus.REJECTED else "",
        )
    except ValueError as exc:
        raise BrokerDataError(f"{what}: {exc}") from None


def position_from_ccxt(raw: Mapping[str, Any], *, received_at: datetime) -> BrokerPosition | None:
    """Build a signed position (shorts negative, in contracts); None for a flat entry."""
    symbol = raw.get("symbol")
    what = f"position {symbol}"
    fields = _Fields(raw, what)
    contracts = fields.optional_decimal("contracts") or ZERO
    if contracts == 0:
        fields.check()
        return None
    side = fields.text("side")
    entry = fields.decimal("entryPrice")
    mark = fields.optional_decimal("markPrice")
    name = fields.text("symbol")
    stamp = fields.time("timestamp")
    if side and side not in ("long", "short"):
        fields.missing.append(f"side {side!r}")
    fields.check()
    signed = abs(contracts) if side == "long" else -abs(contracts)
    try:
        return BrokerPosition(
            symbol=name,
            qty=signed,
            avg_entry_price=entry,
            as_of=stamp or received_at,
            current_price=mark if mark else None,
            asset_class=ASSET_CLASS,
        )
    except ValueError as exc:
        raise BrokerDataError(f"{what}: {exc}") from None


@attrs.frozen(kw_only=True)
class VenueFill:
    """One execution with its signed fee (positive: paid, negative: rebate received)."""

    venue: str
    execution_id: str = attrs.field(validator=attrs.validators.min_len(1))
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal = attrs.field(validator=positive)
    price: Decimal = attrs.field(validator=positive)
    fee: Decimal = attrs.field(validator=finite)
    time: datetime = attrs.field(converter=to_utc, validator=utc)

    @classmethod
    def from_ccxt_trade(cls, raw: Mapping[str, Any], *, venue: str, client_order_id: str) -> VenueFill:
        fields = _Fields(raw, f"{venue} trade of order {client_order_id}")
        execution_id = fields.text("id")
        order_id = fields.text("order")
        symbol = fields.text("symbol")
        side = fields.text("side")
        qty = fields.decimal("amount")
        price = fields.decimal("price")
        fee = fields.optional_decimal("fee.cost") or ZERO
        time = fields.time("timestamp")
        if time is None:
            fields.missing.append("timestamp")
        if side and side not in _SIDES:
            fields.missing.append(f"side {side!r}")
        fields.check()
        assert time is not None
        try:
            return cls(
                venue=venue,
                execution_id=execution_id,
                client_order_id=client_order_id,
                venue_order_id=order_id,
                symbol=symbol,
                side=_SIDES[side],
                qty=qty,
                price=price,
                fee=fee,
                time=time,
            )
        except ValueError as exc:
            raise BrokerDataError(f"{venue} trade {execution_id}: {exc}") from None

    def to_fill(self) -> Fill:
        """The core ``Fill``; a rebate is not a commission, so it counts as zero there."""
        return Fill(
            execution_id=self.execution_id,
            client_order_id=self.client_order_id,
            broker_order_id=self.venue_order_id,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            price=self.price,
            time=self.time,
            commission=max(self.fee, ZERO),
        )


@attrs.frozen(kw_only=True)
class VenueBalance:
    """The settle-currency account: equity (with open PnL), wallet cash and free margin."""

    currency: str
    equity: Decimal = attrs.field(validator=finite)
    cash: Decimal = attrs.field(validator=finite)
    free: Decimal = attrs.field(validator=finite)
    as_of: datetime = attrs.field(converter=to_utc, validator=utc)
