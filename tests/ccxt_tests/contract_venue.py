"""A venue that trades a linear perpetual in contracts of several base units (as OKX does).

Both emulators list their perpetuals with a contract of one base unit. ``ContractSized`` puts
a contract of ``size`` units in front of one: the trader sees quantities in contracts (book
levels, orders, fills, positions, the market's step and limits), the emulator trades the same
amounts in base units. Prices stay per base unit, as venues quote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs

from tradekit.domain.orders import Order, OrderRequest
from tradekit.domain.positions import BrokerPosition
from tradekit_venue_ccxt.providers import BookLevel, OrderBook, PerpMarket, VenueFill


class ContractSized:
    """``inner``'s venue with a contract of ``size`` base units."""

    def __init__(self, inner: Any, size: Decimal) -> None:
        self.inner = inner
        self.size = size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _contracts(self, base_units: Decimal) -> Decimal:
        return base_units / self.size

    def market(self, symbol: str) -> PerpMarket | None:
        market: PerpMarket | None = self.inner.market(symbol)
        if market is None:
            return None
        return attrs.evolve(
            market,
            contract_size=self.size,
            amount_step=self._contracts(market.amount_step),
            min_qty=self._contracts(market.min_qty),
            max_qty=self._contracts(market.max_qty) if market.max_qty is not None else None,
            max_market_qty=self._contracts(market.max_market_qty) if market.max_market_qty is not None else None,
        )

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        book: OrderBook = self.inner.order_book(symbol, depth)

        def levels(side: tuple[BookLevel, ...]) -> tuple[BookLevel, ...]:
            return tuple(BookLevel(price=level.price, qty=self._contracts(level.qty)) for level in side)

        return attrs.evolve(book, bids=levels(book.bids), asks=levels(book.asks))

    def get_positions(self) -> Sequence[BrokerPosition]:
        positions: Sequence[BrokerPosition] = self.inner.get_positions()
        return [attrs.evolve(p, qty=self._contracts(p.qty)) for p in positions]

    def _order(self, order: Order | None) -> Order | None:
        if order is None:
            return None
        return attrs.evolve(
            order,
            qty=self._contracts(order.qty) if order.qty is not None else None,
            filled_qty=self._contracts(order.filled_qty),
        )

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        assert request.qty is not None
        placed = self._order(
            self.inner.submit_order(attrs.evolve(request, qty=request.qty * self.size), reduce_only=reduce_only)
        )
        assert placed is not None
        return placed

    def find_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        return self._order(self.inner.find_order(client_order_id, symbol))

    def venue_fills(self, client_order_id: str, symbol: str | None = None) -> list[VenueFill]:
        fills: list[VenueFill] = self.inner.venue_fills(client_order_id, symbol)
        return [attrs.evolve(fill, qty=self._contracts(fill.qty)) for fill in fills]
