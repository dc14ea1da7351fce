"""What the pair trader needs from a venue: the ``Broker`` calls plus perpetual-futures data.

``tradekit_venue_ccxt.CcxtVenue`` implements it; so can any other perp venue.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Order, OrderRequest
from tradekit.domain.positions import BrokerPosition
from tradekit_venue_ccxt.providers import FundingPayment, OrderBook, PerpMarket, VenueFill


@runtime_checkable
class PerpVenue(Protocol):
    """One perpetual-futures account, as the pair trader uses it."""

    @property
    def venue(self) -> str: ...

    def market(self, symbol: str) -> PerpMarket | None: ...

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook: ...

    def get_account(self) -> AccountSnapshot: ...

    def get_positions(self) -> Sequence[BrokerPosition]: ...

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order: ...

    def find_order(self, client_order_id: str, symbol: str | None = None) -> Order | None: ...

    def venue_fills(self, client_order_id: str, symbol: str | None = None) -> list[VenueFill]: ...

    def funding_payments(self, symbol: str, since: datetime | None = None) -> list[FundingPayment]: ...


@runtime_checkable
class VenueClock(Protocol):
    """A venue client that can read the venue's own clock (``CcxtVenue`` can)."""

    def server_time(self) -> datetime: ...
