"""The live trader's heartbeat: one ledger row per trader, overwritten at the end of every cycle.

It says when the last cycle ran and what it did, the newest bar the trader had, how its
broker's trade-update stream was (``StreamHealth``), and the last close it has of each symbol
it holds (what the status page marks positions at). Another process, ``tradekit serve``,
reads it to tell a trader that is alive from one that stopped, a feed that fell behind, or a
stream that went quiet. Writing it never stops trading: a failure is logged and the cycle's
report stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import attrs

from tradekit.domain.values import optional_to_utc, optional_utc, to_utc, utc


class StreamStatus(StrEnum):
    """The trade-update stream as the last cycle found it."""

    NONE = "none"
    """The broker has no stream: its order events are polled."""
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    """Stopped for good (``failure`` says why)."""


@attrs.frozen
class PriceMark:
    """A price a position is marked at, and when that price was made."""

    price: Decimal
    time: datetime = attrs.field(converter=to_utc, validator=utc)


@attrs.frozen(kw_only=True)
class TraderHeartbeat:
    """One live trader's latest cycle (``trader`` names it: its strategy and broker)."""

    trader: str
    strategy: str
    broker: str
    host: str
    pid: int
    cycle_at: datetime = attrs.field(converter=to_utc, validator=utc)
    cycle_skipped: bool = False
    cycle_note: str = ""
    events_applied: int = 0
    exits: int = 0
    signals: int = 0
    buys: int = 0
    strategy_errors: int = 0
    last_bar_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    stream: StreamStatus = StreamStatus.NONE
    stream_last_heard_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    stream_failure: str | None = None
    marks: Mapping[str, PriceMark] = attrs.field(factory=dict)


def trader_name(strategy: str, broker: str) -> str:
    return f"{strategy} on {broker}"
