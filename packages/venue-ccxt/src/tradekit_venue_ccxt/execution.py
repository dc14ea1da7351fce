"""One perpetual-futures venue account as a tradekit ``Broker``: ``CcxtVenue`` (sync ccxt) and
``AsyncCcxtVenue`` (``ccxt.async_support``, for the live runner).

Orders always carry tradekit's client order id. After any outcome that leaves it unknown
whether an order exists — timeout, dropped connection, 5xx, rate limit, an answer without an
order id — the venue looks the order up by that client id (``lookup_attempts`` times) and
returns what it finds; it never sends the order again. If the order still cannot be found,
``AmbiguousSubmission`` tells the caller to look again later. On Binance, where a client id
only has to be unique among *open* orders, the id is looked up before every submission, so
a retry of a filled order can never become a second order.

Quantities are in contracts. A quantity is rounded down to the venue's step and a limit
price to its tick (never to a worse price) before sending; what the venue would refuse
(below the minimum quantity or notional) is refused here with the limit named.

The venue is a 24/7 market: ``get_clock`` reports it open, with no close in sight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import attrs
from ccxt.base.errors import BaseError

from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerDataError,
    BrokerError,
    DuplicateClientOrderId,
    OrderRejected,
)
from tradekit.broker.protocol import AssetInfo, MarketClock, OrderEvent, OrderEventKind
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType, TimeInForce
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.values import ZERO, utcnow
from tradekit_venue_ccxt.config import CcxtVenueConfig, VenueCredentials
from tradekit_venue_ccxt.errors import describe, is_not_found, read_error, submit_error
from tradekit_venue_ccxt.providers import (
    FundingPayment,
    FundingRate,
    OrderBook,
    PerpMarket,
    VenueBalance,
    VenueFill,
    ms_to_utc,
    order_from_ccxt,
    position_from_ccxt,
    utc_to_ms,
)
from tradekit_venue_ccxt.venues import VenueProfile, build_client, profile_for

T = TypeVar("T")

CONTINUOUS_TRADING_HORIZON = timedelta(days=3650)
"""A 24/7 venue has no scheduled close; the clock reports the next one this far away."""
_TRADE_PAGE = {"binanceusdm": 1000, "bybit": 100}


@attrs.define
class _Tracked:
    """An order this process sent, followed by ``drain_events`` until it is done."""

    symbol: str
    status: OrderStatus | None = None
    delivered: set[str] = attrs.field(factory=set)


# --- helpers shared by the sync and async venues -------------------------------------------


def _prepare(request: OrderRequest, market: PerpMarket | None, venue: str, reduce_only: bool) -> tuple[Any, ...]:
    what = f"{venue} order {request.client_order_id}"
    if market is None:
        raise OrderRejected(f"{what}: {request.symbol} is not a linear perpetual listed on {venue}", code="symbol")
    if request.qty is None:
        raise OrderRejected(f"{what}: perpetual orders are sent in contracts; give qty, not notional", code="notional")
    qty = market.round_qty(request.qty)
    price = market.round_price(request.limit_price, request.side) if request.limit_price is not None else None
    market.check_order(qty, price, market_order=request.order_type is OrderType.MARKET, reduce_only=reduce_only)
    params: dict[str, Any] = {"clientOrderId": request.client_order_id}
    if reduce_only:
        params["reduceOnly"] = True
    if request.order_type is OrderType.LIMIT:
        # No session on a 24/7 venue: a DAY limit order rests until filled or cancelled.
        params["timeInForce"] = "IOC" if request.time_in_force is TimeInForce.IOC else "GTC"
    return (
        (
            request.symbol,
            request.order_type.value,
            request.side.value,
            str(qty),
            str(price) if price is not None else None,
            params,
        ),
        qty,
        price,
    )


def _accepted(request: OrderRequest, venue_order_id: str, qty: Decimal, price: Decimal | None, now: datetime) -> Order:
    return Order(
        client_order_id=request.client_order_id,
        broker_order_id=venue_order_id,
        symbol=request.symbol,
        side=request.side,
        order_type=request.order_type,
        status=OrderStatus.ACCEPTED,
        qty=qty,
        limit_price=price,
        submitted_at=now,
    )


def _status_event(tracked: _Tracked, order: Order, now: datetime) -> OrderEvent | None:
    if order.status is tracked.status:
        return None
    kinds = {
        OrderStatus.NEW: OrderEventKind.ACCEPTED,
        OrderStatus.ACCEPTED: OrderEventKind.ACCEPTED,
        OrderStatus.CANCELED: OrderEventKind.CANCELED,
        OrderStatus.REJECTED: OrderEventKind.REJECTED,
        OrderStatus.EXPIRED: OrderEventKind.EXPIRED,
    }
    tracked.status = order.status
    kind = kinds.get(order.status)
    return None if kind is None else OrderEvent(kind=kind, order=order, time=order.updated_at or now)


def _fill_events(tracked: _Tracked, order: Order, fills: Sequence[VenueFill]) -> list[OrderEvent]:
    events = []
    cumulative = ZERO
    for venue_fill in sorted(fills, key=lambda f: (f.time, f.execution_id)):
        cumulative += venue_fill.qty
        if venue_fill.execution_id in tracked.delivered:
            continue
        tracked.delivered.add(venue_fill.execution_id)
        completes = order.status is OrderStatus.FILLED and order.qty is not None and cumulative >= order.qty
        kind = OrderEventKind.FILL if completes else OrderEventKind.PARTIAL_FILL
        events.append(OrderEvent(kind=kind, order=order, fill=venue_fill.to_fill(), time=venue_fill.time))
    return events


def _clock(now: datetime) -> MarketClock:
    close = now + CONTINUOUS_TRADING_HORIZON
    return MarketClock(now=now, is_open=True, next_close=close, next_open=close + timedelta(seconds=1))


def _markets_from(raw: object, client: Any) -> dict[str, PerpMarket]:
    if not isinstance(raw, Mapping):
        raise BrokerDataError(f"markets: expected a mapping of symbols, got {type(raw).__name__}")
    return {
        symbol: PerpMarket.from_ccxt_market(market, precision_mode=client.precisionMode)
        for symbol, market in raw.items()
        if isinstance(market, Mapping) and market.get("swap") and market.get("linear")
    }


def _check_fills(order: Order, fills: list[VenueFill], venue: str) -> list[VenueFill]:
    total = sum((f.qty for f in fills), ZERO)
    if total != order.filled_qty:
        raise BrokerDataError(
            f"{venue} order {order.client_order_id}: its trades add up to {total}, the order reports "
            f"{order.filled_qty} filled; read the fills again"
        )
    return fills


def _positions_from(raw: object, now: datetime, venue: str) -> list[BrokerPosition]:
    if not isinstance(raw, list):
        raise BrokerDataError(f"{venue} positions: expected a list, got {type(raw).__name__}")
    return [p for p in (position_from_ccxt(item, received_at=now) for item in raw) if p is not None]


# --- the sync venue --------------------------------------------------------------------------


class _VenueAccount:
    """What ``CcxtVenue`` and ``AsyncCcxtVenue`` hold alike: the client, the config and the
    order-tracking state (their methods differ only in awaiting the client)."""

    def __init__(
        self,
        client: Any,
        config: CcxtVenueConfig,
        *,
        credentials: VenueCredentials | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._client = client
        self._client.timeout = config.timeout_ms
        self.config = config
        self.profile: VenueProfile = profile_for(config.venue)
        self._credentials = credentials
        self._clock = clock
        self._markets: dict[str, PerpMarket] | None = None
        self._leverage_applied: set[str] = set()
        self._symbol_of: dict[str, str] = {}
        self._sent: set[str] = set()
        self._tracked: dict[str, _Tracked] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(venue={self.venue!r}, symbols={list(self.config.symbols)!r})"

    @property
    def name(self) -> str:
        return f"ccxt-{self.config.venue}"

    @property
    def venue(self) -> str:
        return self.config.venue


class CcxtVenue(_VenueAccount):
    """A ccxt perpetual-futures account implementing tradekit's ``Broker`` protocol.

    Construct it with ``CcxtVenue.connect(config, credentials)``, or around a ccxt client you
    built (tests). Markets are loaded on first use. Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        client: Any,
        config: CcxtVenueConfig,
        *,
        credentials: VenueCredentials | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(client, config, credentials=credentials, clock=clock)
        self._sleep = sleep

    @classmethod
    def connect(cls, config: CcxtVenueConfig, credentials: VenueCredentials, *, live: bool = False) -> CcxtVenue:
        """Build the ccxt client for ``config`` and wrap it (no request is made yet).

        Refuses a production endpoint (``LiveTradingRefused``) unless ``live``.
        """
        return cls(build_client(config, credentials, async_=False, live=live), config, credentials=credentials)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except BaseError as exc:
            raise read_error(exc, credentials=self._credentials, what=f"{self.venue} {what}") from None

    # --- markets and market data ---------------------------------------------------------

    def markets(self) -> Mapping[str, PerpMarket]:
        """Every linear perpetual the venue lists, loaded once."""
        if self._markets is None:
            raw = self._call("markets", self._client.load_markets)
            self._markets = _markets_from(raw, self._client)
        return self._markets

    def market(self, symbol: str) -> PerpMarket | None:
        return self.markets().get(symbol)

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        limit = self.profile.book_limit(depth)
        raw = self._call(f"order book {symbol}", lambda: self._client.fetch_order_book(symbol, limit))
        return OrderBook.from_ccxt(raw, symbol=symbol, received_at=self._clock())

    def funding_rate(self, symbol: str) -> FundingRate:
        raw = self._call(f"funding rate {symbol}", lambda: self._client.fetch_funding_rate(symbol))
        return FundingRate.from_ccxt(raw, symbol=symbol)

    def funding_payments(self, symbol: str, since: datetime | None = None) -> list[FundingPayment]:
        """Funding settled on the account for ``symbol``; ``amount`` > 0 received, < 0 paid."""
        since_ms = utc_to_ms(since) if since is not None else None
        raw = self._call(f"funding history {symbol}", lambda: self._client.fetch_funding_history(symbol, since_ms))
        return sorted(
            (
                FundingPayment.from_ccxt(item, venue=self.venue, credit_sign=self.profile.funding_credit_sign)
                for item in raw
            ),
            key=lambda p: (p.time, p.funding_id),
        )

    # --- account ---------------------------------------------------------------------------

    def balance(self) -> VenueBalance:
        raw = self._call("balance", self._client.fetch_balance)
        return self.profile.balance_from_ccxt(raw, settle=self.config.settle, received_at=self._clock())

    def get_account(self) -> AccountSnapshot:
        balance = self.balance()
        return AccountSnapshot(
            equity=balance.equity,
            cash=balance.cash,
            buying_power=max(balance.free, ZERO) * self.config.leverage,
            as_of=balance.as_of,
            currency=balance.currency,
        )

    def get_positions(self) -> Sequence[BrokerPosition]:
        raw = self._call("positions", self._client.fetch_positions)
        return _positions_from(raw, self._clock(), self.venue)

    def get_asset(self, symbol: str) -> AssetInfo:
        market = self.market(symbol)
        return market.to_asset_info() if market is not None else AssetInfo(symbol=symbol, tradable=False)

    def get_clock(self) -> MarketClock:
        return _clock(self._clock())

    def server_time(self) -> datetime:
        """The venue's own clock (its server time), not this machine's."""
        raw = self._call("server time", self._client.fetch_time)
        return ms_to_utc(raw, field="serverTime", what=f"{self.venue} server time")

    # --- orders ----------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        """Send ``request`` (a reduce-only order with ``reduce_only``); see the module doc."""
        cid = request.client_order_id
        what = f"{self.venue} order {cid}"
        args, qty, price = _prepare(request, self.market(request.symbol), self.venue, reduce_only)
        if cid in self._sent:
            raise DuplicateClientOrderId(f"{what}: this process already sent an order with this client id")
        self._ensure_leverage(request.symbol)
        if self.profile.client_ids_unique_among_open_only:
            try:
                existing = self._lookup(cid, request.symbol)
            except BrokerError as exc:
                raise OrderRejected(f"{what}: not sent, its client id could not be checked first ({exc})") from None
            if existing is not None:
                raise DuplicateClientOrderId(f"{what}: the venue already has an order with this client id")
        self._symbol_of[cid] = request.symbol
        try:
            raw = self._client.create_order(*args)
        except Exception as exc:  # noqa: BLE001 - classified: refused, duplicate or ambiguous
            error = submit_error(exc, profile=self.profile, credentials=self._credentials, what=what)
            if isinstance(error, OrderRejected):
                raise error from None
            self._sent.add(cid)
            self._tracked[cid] = _Tracked(request.symbol)
            if isinstance(error, DuplicateClientOrderId) or not isinstance(error, AmbiguousSubmission):
                raise error from None
            return self._resolve(request, error)
        self._sent.add(cid)
        self._tracked[cid] = _Tracked(request.symbol)
        now = self._clock()
        if not isinstance(raw, Mapping) or not raw.get("id"):
            return self._resolve(request, AmbiguousSubmission(f"{what}: the venue's answer carried no order id"))
        if raw.get("status") is None:
            # Bybit answers only the ids: read the order for its status.
            try:
                found = self._lookup(cid, request.symbol)
            except BrokerError:
                found = None
            return found if found is not None else _accepted(request, str(raw["id"]), qty, price, now)
        try:
            return order_from_ccxt(raw, client_order_id=cid, received_at=now)
        except BrokerDataError as exc:
            return self._resolve(request, AmbiguousSubmission(f"{what}: unreadable answer ({exc})"))

    def _resolve(self, request: OrderRequest, error: AmbiguousSubmission) -> Order:
        for attempt in range(self.config.lookup_attempts):
            if attempt:
                self._sleep(self.config.lookup_interval_ms / 1000)
            try:
                found = self._lookup(request.client_order_id, request.symbol)
            except BrokerError:
                continue
            if found is not None:
                return found
        raise AmbiguousSubmission(
            f"{error} — not found after {self.config.lookup_attempts} lookup(s); it may still appear: "
            "look it up again by client id, never send it again"
        ) from None

    def _ensure_leverage(self, symbol: str) -> None:
        if symbol in self._leverage_applied:
            return
        try:
            self._client.set_leverage(self.config.leverage, symbol)
        except BaseError as exc:
            message = describe(exc, self._credentials)
            if not self.profile.is_leverage_unchanged(message):
                raise OrderRejected(
                    f"{self.venue}: leverage {self.config.leverage} could not be set on {symbol}, "
                    f"no order was sent ({message})",
                    code="leverage",
                ) from None
        self._leverage_applied.add(symbol)

    def _lookup(self, client_order_id: str, symbol: str) -> Order | None:
        order_id, params = self.profile.lookup_args(client_order_id)
        try:
            raw = self._client.fetch_order(order_id, symbol, params)
        except BaseError as exc:
            if not is_not_found(exc):
                raise read_error(
                    exc, credentials=self._credentials, what=f"{self.venue} order {client_order_id}"
                ) from None
            raw = self._lookup_history(client_order_id, symbol)
            if raw is None:
                return None
        self._symbol_of[client_order_id] = symbol
        return order_from_ccxt(raw, client_order_id=client_order_id, received_at=self._clock())

    def _lookup_history(self, client_order_id: str, symbol: str) -> Mapping[str, Any] | None:
        params = self.profile.history_lookup_params(client_order_id)
        if params is None:
            return None
        rows = self._call(
            f"order history {client_order_id}",
            lambda: self._client.fetch_canceled_and_closed_orders(symbol, None, None, params),
        )
        matches = [row for row in rows if row.get("clientOrderId") == client_order_id]
        return matches[0] if matches else None

    def find_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """Find an order by client id: in ``symbol``, the symbol it was sent in, or ``config.symbols``."""
        if symbol is not None:
            candidates: Sequence[str] = (symbol,)
        elif client_order_id in self._symbol_of:
            candidates = (self._symbol_of[client_order_id],)
        else:
            candidates = self.config.symbols
        for candidate in candidates:
            if self.market(candidate) is None:
                continue
            found = self._lookup(client_order_id, candidate)
            if found is not None:
                return found
        return None

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return self.find_order(client_order_id)

    def get_open_orders(self) -> Sequence[Order]:
        raw = self._call("open orders", self._client.fetch_open_orders)
        now = self._clock()
        return [order_from_ccxt(item, client_order_id=None, received_at=now) for item in raw]

    def cancel_order(self, client_order_id: str) -> None:
        order = self.find_order(client_order_id)
        if order is None or order.status.is_terminal:
            return
        try:
            self._client.cancel_order(order.broker_order_id, order.symbol)
        except BaseError as exc:
            again = self.find_order(client_order_id, order.symbol)
            if again is None or again.status.is_terminal:
                return
            raise read_error(
                exc, credentials=self._credentials, what=f"{self.venue} cancel {client_order_id}"
            ) from None

    def venue_fills(self, client_order_id: str, symbol: str | None = None) -> list[VenueFill]:
        """Every execution of the order, with its signed fee."""
        order = self.find_order(client_order_id, symbol)
        if order is None or order.filled_qty == 0:
            return []
        limit = _TRADE_PAGE[self.venue]
        raw = self._call(
            f"fills of {client_order_id}",
            lambda: self._client.fetch_my_trades(order.symbol, None, limit, {"orderId": order.broker_order_id}),
        )
        fills = [
            VenueFill.from_ccxt_trade(item, venue=self.venue, client_order_id=client_order_id)
            for item in raw
            if str(item.get("order")) == order.broker_order_id
        ]
        return _check_fills(order, fills, self.venue)

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        return [f.to_fill() for f in self.venue_fills(client_order_id)]

    def drain_events(self) -> Sequence[OrderEvent]:
        """Poll the orders this process sent and report what changed, oldest first."""
        events: list[OrderEvent] = []
        for cid, tracked in list(self._tracked.items()):
            try:
                order = self._lookup(cid, tracked.symbol)
                if order is None:
                    continue
                fills = self.venue_fills(cid, tracked.symbol) if order.filled_qty > 0 else []
            except BrokerError:
                continue
            status_event = _status_event(tracked, order, self._clock())
            if status_event is not None:
                events.append(status_event)
            events.extend(_fill_events(tracked, order, fills))
            if order.status.is_terminal:
                del self._tracked[cid]
        return sorted(events, key=lambda e: e.time)

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()


# --- the async venue -------------------------------------------------------------------------


class AsyncCcxtVenue(_VenueAccount):
    """``CcxtVenue`` over ``ccxt.async_support``: the same behaviour, every call awaited.

    For the live runner's event loop; ``close()`` must be awaited.
    """

    def __init__(
        self,
        client: Any,
        config: CcxtVenueConfig,
        *,
        credentials: VenueCredentials | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(client, config, credentials=credentials, clock=clock)
        self._sleep = sleep

    @classmethod
    def connect(cls, config: CcxtVenueConfig, credentials: VenueCredentials, *, live: bool = False) -> AsyncCcxtVenue:
        """Build the ``ccxt.async_support`` client and wrap it; a production endpoint needs ``live``."""
        return cls(build_client(config, credentials, async_=True, live=live), config, credentials=credentials)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except BaseError as exc:
            raise read_error(exc, credentials=self._credentials, what=f"{self.venue} {what}") from None

    async def markets(self) -> Mapping[str, PerpMarket]:
        if self._markets is None:
            raw = await self._call("markets", self._client.load_markets)
            self._markets = _markets_from(raw, self._client)
        return self._markets

    async def market(self, symbol: str) -> PerpMarket | None:
        return (await self.markets()).get(symbol)

    async def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        limit = self.profile.book_limit(depth)
        raw = await self._call(f"order book {symbol}", lambda: self._client.fetch_order_book(symbol, limit))
        return OrderBook.from_ccxt(raw, symbol=symbol, received_at=self._clock())

    async def funding_rate(self, symbol: str) -> FundingRate:
        raw = await self._call(f"funding rate {symbol}", lambda: self._client.fetch_funding_rate(symbol))
        return FundingRate.from_ccxt(raw, symbol=symbol)

    async def funding_payments(self, symbol: str, since: datetime | None = None) -> list[FundingPayment]:
        since_ms = utc_to_ms(since) if since is not None else None
        raw = await self._call(
            f"funding history {symbol}", lambda: self._client.fetch_funding_history(symbol, since_ms)
        )
        return sorted(
            (
                FundingPayment.from_ccxt(item, venue=self.venue, credit_sign=self.profile.funding_credit_sign)
                for item in raw
            ),
            key=lambda p: (p.time, p.funding_id),
        )

    async def balance(self) -> VenueBalance:
        raw = await self._call("balance", self._client.fetch_balance)
        return self.profile.balance_from_ccxt(raw, settle=self.config.settle, received_at=self._clock())

    async def get_account(self) -> AccountSnapshot:
        balance = await self.balance()
        return AccountSnapshot(
            equity=balance.equity,
            cash=balance.cash,
            buying_power=max(balance.free, ZERO) * self.config.leverage,
            as_of=balance.as_of,
            currency=balance.currency,
        )

    async def get_positions(self) -> Sequence[BrokerPosition]:
        raw = await self._call("positions", self._client.fetch_positions)
        return _positions_from(raw, self._clock(), self.venue)

    async def get_asset(self, symbol: str) -> AssetInfo:
        market = await self.market(symbol)
        return market.to_asset_info() if market is not None else AssetInfo(symbol=symbol, tradable=False)

    async def get_clock(self) -> MarketClock:
        return _clock(self._clock())

    async def server_time(self) -> datetime:
        raw = await self._call("server time", self._client.fetch_time)
        return ms_to_utc(raw, field="serverTime", what=f"{self.venue} server time")

    async def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        cid = request.client_order_id
        what = f"{self.venue} order {cid}"
        args, qty, price = _prepare(request, await self.market(request.symbol), self.venue, reduce_only)
        if cid in self._sent:
            raise DuplicateClientOrderId(f"{what}: this process already sent an order with this client id")
        await self._ensure_leverage(request.symbol)
        if self.profile.client_ids_unique_among_open_only:
            try:
                existing = await self._lookup(cid, request.symbol)
            except BrokerError as exc:
                raise OrderRejected(f"{what}: not sent, its client id could not be checked first ({exc})") from None
            if existing is not None:
                raise DuplicateClientOrderId(f"{what}: the venue already has an order with this client id")
        self._symbol_of[cid] = request.symbol
        try:
            raw = await self._client.create_order(*args)
        except Exception as exc:  # noqa: BLE001 - classified: refused, duplicate or ambiguous
            error = submit_error(exc, profile=self.profile, credentials=self._credentials, what=what)
            if isinstance(error, OrderRejected):
                raise error from None
            self._sent.add(cid)
            self._tracked[cid] = _Tracked(request.symbol)
            if isinstance(error, DuplicateClientOrderId) or not isinstance(error, AmbiguousSubmission):
                raise error from None
            return await self._resolve(request, error)
        self._sent.add(cid)
        self._tracked[cid] = _Tracked(request.symbol)
        now = self._clock()
        if not isinstance(raw, Mapping) or not raw.get("id"):
            return await self._resolve(request, AmbiguousSubmission(f"{what}: the venue's answer carried no order id"))
        if raw.get("status") is None:
            try:
                found = await self._lookup(cid, request.symbol)
            except BrokerError:
                found = None
            return found if found is not None else _accepted(request, str(raw["id"]), qty, price, now)
        try:
            return order_from_ccxt(raw, client_order_id=cid, received_at=now)
        except BrokerDataError as exc:
            return await self._resolve(request, AmbiguousSubmission(f"{what}: unreadable answer ({exc})"))

    async def _resolve(self, request: OrderRequest, error: AmbiguousSubmission) -> Order:
        for attempt in range(self.config.lookup_attempts):
            if attempt:
                await self._sleep(self.config.lookup_interval_ms / 1000)
            try:
                found = await self._lookup(request.client_order_id, request.symbol)
            except BrokerError:
                continue
            if found is not None:
                return found
        raise AmbiguousSubmission(
            f"{error} — not found after {self.config.lookup_attempts} lookup(s); it may still appear: "
            "look it up again by client id, never send it again"
        ) from None

    async def _ensure_leverage(self, symbol: str) -> None:
        if symbol in self._leverage_applied:
            return
        try:
            await self._client.set_leverage(self.config.leverage, symbol)
        except BaseError as exc:
            message = describe(exc, self._credentials)
            if not self.profile.is_leverage_unchanged(message):
                raise OrderRejected(
                    f"{self.venue}: leverage {self.config.leverage} could not be set on {symbol}, "
                    f"no order was sent ({message})",
                    code="leverage",
                ) from None
        self._leverage_applied.add(symbol)

    async def _lookup(self, client_order_id: str, symbol: str) -> Order | None:
        order_id, params = self.profile.lookup_args(client_order_id)
        try:
            raw = await self._client.fetch_order(order_id, symbol, params)
        except BaseError as exc:
            if not is_not_found(exc):
                raise read_error(
                    exc, credentials=self._credentials, what=f"{self.venue} order {client_order_id}"
                ) from None
            raw = await self._lookup_history(client_order_id, symbol)
            if raw is None:
                return None
        self._symbol_of[client_order_id] = symbol
        return order_from_ccxt(raw, client_order_id=client_order_id, received_at=self._clock())

    async def _lookup_history(self, client_order_id: str, symbol: str) -> Mapping[str, Any] | None:
        params = self.profile.history_lookup_params(client_order_id)
        if params is None:
            return None
        rows = await self._call(
            f"order history {client_order_id}",
            lambda: self._client.fetch_canceled_and_closed_orders(symbol, None, None, params),
        )
        matches = [row for row in rows if row.get("clientOrderId") == client_order_id]
        return matches[0] if matches else None

    async def find_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        if symbol is not None:
            candidates: Sequence[str] = (symbol,)
        elif client_order_id in self._symbol_of:
            candidates = (self._symbol_of[client_order_id],)
        else:
            candidates = self.config.symbols
        for candidate in candidates:
            if await self.market(candidate) is None:
                continue
            found = await self._lookup(client_order_id, candidate)
            if found is not None:
                return found
        return None

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return await self.find_order(client_order_id)

    async def get_open_orders(self) -> Sequence[Order]:
        raw = await self._call("open orders", self._client.fetch_open_orders)
        now = self._clock()
        return [order_from_ccxt(item, client_order_id=None, received_at=now) for item in raw]

    async def cancel_order(self, client_order_id: str) -> None:
        order = await self.find_order(client_order_id)
        if order is None or order.status.is_terminal:
            return
        try:
            await self._client.cancel_order(order.broker_order_id, order.symbol)
        except BaseError as exc:
            again = await self.find_order(client_order_id, order.symbol)
            if again is None or again.status.is_terminal:
                return
            raise read_error(
                exc, credentials=self._credentials, what=f"{self.venue} cancel {client_order_id}"
            ) from None

    async def venue_fills(self, client_order_id: str, symbol: str | None = None) -> list[VenueFill]:
        order = await self.find_order(client_order_id, symbol)
        if order is None or order.filled_qty == 0:
            return []
        limit = _TRADE_PAGE[self.venue]
        raw = await self._call(
            f"fills of {client_order_id}",
            lambda: self._client.fetch_my_trades(order.symbol, None, limit, {"orderId": order.broker_order_id}),
        )
        fills = [
            VenueFill.from_ccxt_trade(item, venue=self.venue, client_order_id=client_order_id)
            for item in raw
            if str(item.get("order")) == order.broker_order_id
        ]
        return _check_fills(order, fills, self.venue)

    async def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        return [f.to_fill() for f in await self.venue_fills(client_order_id)]

    async def drain_events(self) -> Sequence[OrderEvent]:
        events: list[OrderEvent] = []
        for cid, tracked in list(self._tracked.items()):
            try:
                order = await self._lookup(cid, tracked.symbol)
                if order is None:
                    continue
                fills = await self.venue_fills(cid, tracked.symbol) if order.filled_qty > 0 else []
            except BrokerError:
                continue
            status_event = _status_event(tracked, order, self._clock())
            if status_event is not None:
                events.append(status_event)
            events.extend(_fill_events(tracked, order, fills))
            if order.status.is_terminal:
                del self._tracked[cid]
        return sorted(events, key=lambda e: e.time)

    async def close(self) -> None:
        await self._client.close()
