"""A broker double for reconciliation tests: positions set by the test, reads that can fail.

Only the reads reconciliation uses are real; any order method fails the test loudly, which
also proves reconciliation never trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from tradekit.broker import AssetInfo, BrokerUnavailable, MarketClock, OrderEvent
from tradekit.domain import AccountSnapshot, BrokerPosition, Fill, Order, OrderRequest


class PositionsOnlyBroker:
    def __init__(self, positions: Sequence[BrokerPosition] = (), *, fractionable: frozenset[str] = frozenset()) -> None:
        self.positions = list(positions)
        self.fractionable = fractionable
        self.fail_reads = False
        self.calls = 0

    @property
    def name(self) -> str:
        return "positions-only"

    def hold(self, symbol: str, qty: str, avg: str) -> None:
        self.positions = [p for p in self.positions if p.symbol != symbol]
        if Decimal(qty) != 0:
            self.positions.append(
                BrokerPosition(symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(avg), as_of=datetime.now(UTC))
            )

    def get_positions(self) -> Sequence[BrokerPosition]:
        self.calls += 1
        if self.fail_reads:
            raise BrokerUnavailable("positions endpoint timed out after 10s")
        return list(self.positions)

    def get_asset(self, symbol: str) -> AssetInfo:
        self.calls += 1
        if self.fail_reads:
            raise BrokerUnavailable("assets endpoint timed out")
        return AssetInfo(symbol=symbol, fractionable=symbol in self.fractionable)

    def get_account(self) -> AccountSnapshot:
        self.calls += 1
        return AccountSnapshot(
            equity=Decimal(100_000), cash=Decimal(100_000), buying_power=Decimal(100_000), as_of=datetime.now(UTC)
        )

    def submit_order(self, request: OrderRequest) -> Order:
        raise AssertionError("reconciliation must never send an order")

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        raise AssertionError("not used by reconciliation")

    def get_open_orders(self) -> Sequence[Order]:
        return []

    def cancel_order(self, client_order_id: str) -> None:
        raise AssertionError("reconciliation must never cancel an order")

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        return []

    def drain_events(self) -> Sequence[OrderEvent]:
        return []

    def get_clock(self) -> MarketClock:
        now = datetime.now(UTC)
        return MarketClock(now=now, is_open=False, next_open=now, next_close=now)

    def close(self) -> None:
        return None
