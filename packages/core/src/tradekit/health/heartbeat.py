"""The live trader's heartbeat: one ledger row per trader, overwritten at the end of every cycle.

It says when the last cycle ran and what it did, the newest bar the trader had, how its
broker's trade-update stream was (``StreamHealth``), and the last close it has of each symbol
it holds (what the status page marks positions at). Another process, ``tradekit serve``,
reads it to tell a trader that is alive from one that stopped, a feed that fell behind, or a
stream that went quiet. Writing it never stops trading: a failure is logged and the cycle's
report stands.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

import attrs

from tradekit.broker.protocol import StreamHealth
from tradekit.domain.values import optional_to_utc, optional_utc, to_utc, utc
from tradekit.execution.clock import ClockNotSynced

if TYPE_CHECKING:
    from tradekit.execution.live import CycleReport, LiveTrader

log = logging.getLogger(__name__)


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


def heartbeat_of(trader: LiveTrader, report: CycleReport) -> TraderHeartbeat:
    """The heartbeat of ``trader`` after the cycle that produced ``report``."""
    strategy, broker = trader.strategy_cls.name, trader.broker.name
    histories = trader.driver.histories
    newest = [series[-1].time for series in histories.values() if series]
    held = trader.pipeline.ledger.open_positions()
    marks = {
        symbol: PriceMark(series[-1].close, series[-1].time)
        for symbol in sorted(held)
        if (series := histories.get(symbol))
    }
    stream, heard, failure = StreamStatus.NONE, None, None
    beat = trader.broker.stream_heartbeat() if isinstance(trader.broker, StreamHealth) else None
    if beat is not None:
        heard, failure = beat.last_heard_at, beat.failure
        stream = (
            StreamStatus.FAILED if failure else StreamStatus.CONNECTED if beat.connected else StreamStatus.DISCONNECTED
        )
    return TraderHeartbeat(
        trader=trader_name(strategy, broker),
        strategy=strategy,
        broker=broker,
        host=socket.gethostname(),
        pid=os.getpid(),
        cycle_at=_now(trader),
        cycle_skipped=report.skipped,
        cycle_note=report.note,
        events_applied=report.events_applied,
        exits=report.exits,
        signals=report.signals,
        buys=len(report.buys),
        strategy_errors=len(report.strategy_errors),
        last_bar_at=max(newest) if newest else None,
        stream=stream,
        stream_last_heard_at=heard,
        stream_failure=failure,
        marks=marks,
    )


def _now(trader: LiveTrader) -> datetime:
    try:
        return trader.pipeline.clock()
    except ClockNotSynced:
        # The broker was never reached: the cycle still ran, and the page must see it did.
        return datetime.now(UTC)


def record_heartbeat(trader: LiveTrader, report: CycleReport) -> None:
    """Leave ``trader``'s heartbeat in its ledger; a failure is logged, never raised."""
    try:
        beat = heartbeat_of(trader, report)
        with trader.pipeline.ledger.transaction() as tx:
            tx.record_heartbeat(beat)
    except Exception:
        log.exception("the trader's heartbeat was not recorded (the status page shows the previous one)")
