"""The core broker contract suite, run against AlpacaBroker on the Alpaca emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.protocol import Broker
from tradekit.testing.contract import BrokerContract
from tradekit_broker_alpaca import AlpacaCredentials
from tradekit_broker_alpaca.execution import AlpacaBroker

from .conftest import KEY_ID, SECRET_KEY, emulator_config, wait_for_stream_delivery


class TestAlpacaBrokerContract(BrokerContract):
    non_fractionable_symbol = "BRK.A"

    @pytest.fixture(autouse=True)
    def _venue(self, emu: AlpacaEmulator) -> None:
        self.venue = emu
        self.current: AlpacaBroker | None = None

    def make_broker(self) -> Broker:
        broker = AlpacaBroker(emulator_config(self.venue), AlpacaCredentials(key_id=KEY_ID, secret_key=SECRET_KEY))
        try:
            self.venue.wait_for_stream_listeners(1)
        except BaseException:
            broker.close()  # its stream thread would go on reconnecting for the rest of the session
            raise
        self.current = broker
        return broker

    def set_market_price(self, symbol: str, price: Decimal) -> None:
        self.venue.set_price(symbol, price)

    def seed_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        self.venue.set_position(symbol, qty, avg_entry_price)

    def advance(self) -> None:
        assert self.current is not None
        wait_for_stream_delivery(self.current, self.venue)
