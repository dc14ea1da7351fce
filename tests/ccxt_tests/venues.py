"""Helpers shared by the venue tests: emulators, venues wired to them, books around a price.

Every venue talks to an emulator on 127.0.0.1 through the real ccxt client
(``make_ccxt_client``); nothing leaves the machine. ``BlockingAsyncVenue`` drives an
``AsyncCcxtVenue`` from synchronous code on an event loop of its own, so the same contract
suite and scenarios run against the async variant.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from emulators import binance_usdm, bybit
from emulators._perp_book import PerpVenueEmulator
from tradekit.broker.protocol import AssetInfo, MarketClock, OrderEvent
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Fill, Order, OrderRequest
from tradekit.domain.positions import BrokerPosition
from tradekit_venue_ccxt.config import CcxtVenueConfig
from tradekit_venue_ccxt.execution import AsyncCcxtVenue, CcxtVenue
from tradekit_venue_ccxt.providers import FundingPayment, FundingRate, OrderBook, PerpMarket, VenueFill

T = TypeVar("T")

ETH = "ETH/USDT:USDT"
BTC = "BTC/USDT:USDT"
VENUES = ("binanceusdm", "bybit")
_TICK = {ETH: Decimal("0.01"), BTC: Decimal("0.1")}
_CALL_TIMEOUT_S = 30.0


def new_emulator(venue: str, *, balance: str = "10000") -> PerpVenueEmulator:
    """A fresh emulator of ``venue`` (not started)."""
    if venue == "binanceusdm":
        return binance_usdm.BinanceUsdmEmulator(balance=balance)
    if venue == "bybit":
        return bybit.BybitEmulator(balance=balance)
    raise ValueError(f"no emulator for {venue!r}")


def ccxt_client(emulator: PerpVenueEmulator, *, async_: bool = False) -> Any:
    if isinstance(emulator, binance_usdm.BinanceUsdmEmulator):
        return binance_usdm.make_ccxt_client(emulator, async_=async_)
    if isinstance(emulator, bybit.BybitEmulator):
        return bybit.make_ccxt_client(emulator, async_=async_)
    raise TypeError(f"unknown emulator {emulator!r}")


def venue_config(venue: str, **overrides: Any) -> CcxtVenueConfig:
    settings: dict[str, Any] = {
        "venue": venue,
        "symbols": (ETH, BTC),
        "leverage": 1,
        "timeout_ms": 3000,
        "lookup_interval_ms": 0,
        "rate_limit": False,
    }
    settings.update(overrides)
    return CcxtVenueConfig(**settings)


def sync_venue(emulator: PerpVenueEmulator, venue: str, **overrides: Any) -> CcxtVenue:
    """A ``CcxtVenue`` on the emulator (no waiting between lookups)."""
    return CcxtVenue(ccxt_client(emulator), venue_config(venue, **overrides), sleep=lambda _s: None)


def set_book(
    emulator: PerpVenueEmulator, symbol: str, mid: Decimal, *, depth: Decimal = Decimal(50), levels: int = 5
) -> None:
    """Quote ``symbol`` one tick either side of ``mid`` (then a tick apart), ``depth`` per level; mark at mid."""
    tick = _TICK[symbol]
    mid = mid.quantize(tick)
    bids = [(mid - tick * k, depth) for k in range(1, levels + 1)]
    asks = [(mid + tick * k, depth) for k in range(1, levels + 1)]
    emulator.set_order_book(symbol, bids=bids, asks=asks)
    emulator.set_mark_price(symbol, mid)


class BlockingAsyncVenue:
    """An ``AsyncCcxtVenue`` driven from sync code: every call runs on the adapter's own loop."""

    def __init__(self, emulator: PerpVenueEmulator, venue: str, **overrides: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def noop(_s: float) -> None:
            return None

        async def build() -> AsyncCcxtVenue:
            return AsyncCcxtVenue(ccxt_client(emulator, async_=True), venue_config(venue, **overrides), sleep=noop)

        self.inner = self._run(build())

    def _run(self, coroutine: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result(_CALL_TIMEOUT_S)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def venue(self) -> str:
        return self.inner.venue

    def market(self, symbol: str) -> PerpMarket | None:
        return self._run(self.inner.market(symbol))

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        return self._run(self.inner.order_book(symbol, depth))

    def funding_payments(self, symbol: str, since: datetime | None = None) -> list[FundingPayment]:
        return self._run(self.inner.funding_payments(symbol, since))

    def funding_rate(self, symbol: str) -> FundingRate:
        return self._run(self.inner.funding_rate(symbol))

    def get_account(self) -> AccountSnapshot:
        return self._run(self.inner.get_account())

    def get_positions(self) -> Sequence[BrokerPosition]:
        return self._run(self.inner.get_positions())

    def get_asset(self, symbol: str) -> AssetInfo:
        return self._run(self.inner.get_asset(symbol))

    def server_time(self) -> datetime:
        return self._run(self.inner.server_time())

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        return self._run(self.inner.submit_order(request, reduce_only=reduce_only))

    def find_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        return self._run(self.inner.find_order(client_order_id, symbol))

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return self._run(self.inner.get_order_by_client_id(client_order_id))

    def get_open_orders(self) -> Sequence[Order]:
        return self._run(self.inner.get_open_orders())

    def cancel_order(self, client_order_id: str) -> None:
        self._run(self.inner.cancel_order(client_order_id))

    def venue_fills(self, client_order_id: str, symbol: str | None = None) -> list[VenueFill]:
        return self._run(self.inner.venue_fills(client_order_id, symbol))

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        return self._run(self.inner.get_fills(client_order_id))

    def drain_events(self) -> Sequence[OrderEvent]:
        return self._run(self.inner.drain_events())

    def get_clock(self) -> MarketClock:
        return self._run(self.inner.get_clock())

    def close(self) -> None:
        try:
            self._run(self.inner.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CALL_TIMEOUT_S)
            self._loop.close()


VenueFactory = Callable[[PerpVenueEmulator, str], Any]
