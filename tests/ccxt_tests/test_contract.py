"""Both venues, sync and async, pass tradekit's broker contract suite against their emulators.

The suite trades ETH/USDT perpetuals at 3000 on a 100 000 USDT account with leverage 1, so the
buying power it sees is the free margin itself. Perpetuals trade in fractions of a contract
and selling more than is held opens a short.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar

import pytest

from ccxt_tests.venues import ETH, BlockingAsyncVenue, new_emulator, set_book, sync_venue
from emulators._perp_book import PerpVenueEmulator
from tradekit.broker.protocol import Broker
from tradekit.testing.contract import BrokerContract

pytestmark = pytest.mark.timeout(120)


class PerpContract(BrokerContract):
    symbol = ETH
    reference_price = Decimal(3000)
    supports_fractional = True
    allows_short_selling = True
    venue_name: ClassVar[str]
    use_async: ClassVar[bool] = False
    emulator: PerpVenueEmulator

    @pytest.fixture(autouse=True)
    def _emulator(self) -> Iterator[None]:
        with new_emulator(self.venue_name, balance="100000") as emulator:
            self.emulator = emulator
            yield

    def make_broker(self) -> Broker:
        if self.use_async:
            return BlockingAsyncVenue(self.emulator, self.venue_name)
        return sync_venue(self.emulator, self.venue_name)

    def set_market_price(self, symbol: str, price: Decimal) -> None:
        set_book(self.emulator, symbol, price)

    def seed_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        self.emulator.seed_position(symbol, qty, avg_entry_price)


class TestBinanceUsdmContract(PerpContract):
    venue_name = "binanceusdm"


class TestBybitContract(PerpContract):
    venue_name = "bybit"


class TestAsyncBinanceUsdmContract(PerpContract):
    venue_name = "binanceusdm"
    use_async = True


class TestAsyncBybitContract(PerpContract):
    venue_name = "bybit"
    use_async = True
