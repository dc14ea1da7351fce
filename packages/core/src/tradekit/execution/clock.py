"""The session driver's notion of "now": simulated in a replay, the broker's clock live.

A live trader takes the time from the broker's market clock, the exchange's own: sessions,
execution windows and signal ages are then judged on the clock the orders are judged on,
whatever the host's clock says. Between two readings the local monotonic clock moves it
on, so a cycle's steps are ordered and timestamped without asking the broker every time.
A replay (and a test) drives a ``SimClock`` by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from tradekit.broker.protocol import Broker, MarketClock


class SimClock:
    """A clock that only moves when told to (a replay's simulated time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class ClockNotSynced(RuntimeError):
    """The broker's clock has not been read yet, so there is no trustworthy "now"."""


class BrokerClock:
    """The broker's market clock's "now", advanced by the local monotonic clock between readings.

    ``sync()`` reads the broker's clock (a ``BrokerError`` propagates and the previous
    reading stays); calling the clock before any successful sync raises ``ClockNotSynced``
    rather than guessing from the host's clock.
    """

    def __init__(self, broker: Broker, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._broker = broker
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._anchor: tuple[datetime, float] | None = None
        self.market: MarketClock | None = None

    def sync(self) -> MarketClock:
        """Read the broker's clock and take its time as now."""
        reading = self._broker.get_clock()
        with self._lock:
            self._anchor = (reading.now, self._monotonic())
            self.market = reading
        return reading

    @property
    def synced(self) -> bool:
        return self._anchor is not None

    def __call__(self) -> datetime:
        with self._lock:
            anchor = self._anchor
        if anchor is None:
            raise ClockNotSynced("the broker's clock has not been read yet")
        at, read_at = anchor
        return at + timedelta(seconds=max(0.0, self._monotonic() - read_at))
