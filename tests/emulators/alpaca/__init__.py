"""Local emulator of Alpaca's trading API, trade_updates stream and stock bars API.

Point the real alpaca-py clients at it::

    with AlpacaEmulator(api_key="k", secret_key="s") as emu:
        TradingClient("k", "s", url_override=emu.base_url)
        TradingStream("k", "s", url_override=emu.stream_url)
        StockHistoricalDataClient("k", "s", url_override=emu.data_url)
"""

from .._fault_plan import Fault, FaultPlan, FiredFault
from .._http_faults import CallEvent
from ._broker import CalendarDay
from ._data import BarSeed
from ._emulator import AlpacaEmulator
from ._faults import RecordedRequest
from ._http import CALL_KINDS

__all__ = [
    "CALL_KINDS",
    "AlpacaEmulator",
    "BarSeed",
    "CalendarDay",
    "CallEvent",
    "Fault",
    "FaultPlan",
    "FiredFault",
    "RecordedRequest",
]
