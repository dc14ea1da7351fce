"""The live trader leaves a heartbeat in the ledger every cycle, and writing it never stops trading."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from tradekit.broker.protocol import StreamHeartbeat
from tradekit.execution.live import LiveTrader
from tradekit.health.heartbeat import PriceMark, StreamStatus, TraderHeartbeat
from tradekit.ledger import Ledger, LedgerWriteError
from tradekit.ledger.store import LedgerTx

from .serve_world import CLOSES, MONDAY_CLOSE, AddEachClose, at
from .test_live_trader import BarsBroker
from .test_pipeline import make_trading


class StreamingBroker(BarsBroker):
    """A broker whose order events come from a stream, which lost its connection."""

    def stream_heartbeat(self) -> StreamHeartbeat | None:
        return StreamHeartbeat(connected=False, last_heard_at=MONDAY_CLOSE, failure=None)


def test_each_cycle_records_when_it_ran_the_newest_bar_and_the_stream(tmp_path: Path) -> None:
    trading = make_trading(tmp_path, paper=StreamingBroker(CLOSES))
    trader = LiveTrader(trading.pipeline, AddEachClose, ["KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    report = trader.cycle()
    with trading.ledger.reading() as tx:
        (beat,) = tx.trader_heartbeats()
    assert beat.trader == "add_each_close on paper"
    assert beat.cycle_at == MONDAY_CLOSE + timedelta(minutes=5)
    assert beat.signals == report.signals == 1
    assert beat.last_bar_at == MONDAY_CLOSE
    assert beat.stream is StreamStatus.DISCONNECTED
    assert beat.stream_last_heard_at == MONDAY_CLOSE
    at(trading, MONDAY_CLOSE + timedelta(minutes=6), is_open=False)
    trader.cycle()
    with trading.ledger.reading() as tx:
        (again,) = tx.trader_heartbeats()
    assert again.cycle_at == MONDAY_CLOSE + timedelta(minutes=6)  # replaced, not appended


def test_a_heartbeat_that_cannot_be_written_never_stops_the_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trading = make_trading(tmp_path, paper=BarsBroker(CLOSES))
    trader = LiveTrader(trading.pipeline, AddEachClose, ["KO"])

    def refuse(self: LedgerTx, beat: object) -> None:
        raise LedgerWriteError("disk is full")

    monkeypatch.setattr(LedgerTx, "record_heartbeat", refuse)
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    report = trader.cycle()
    assert report.signals == 1
    with trading.ledger.reading() as tx:
        assert len(tx.queued_buys("add_each_close")) == 1
        assert tx.trader_heartbeats() == []


def test_a_heartbeat_reads_back_exactly_on_both_backends(ledger: Ledger) -> None:
    beat = TraderHeartbeat(
        trader="pyramid on alpaca",
        strategy="pyramid",
        broker="alpaca",
        host="box",
        pid=4242,
        cycle_at=MONDAY_CLOSE,
        cycle_skipped=True,
        cycle_note="broker unavailable, cycle skipped: timeout",
        last_bar_at=MONDAY_CLOSE - timedelta(days=1),
        stream=StreamStatus.FAILED,
        stream_last_heard_at=MONDAY_CLOSE - timedelta(minutes=3),
        stream_failure="login refused",
        marks={"KO": PriceMark(Decimal("60.125"), MONDAY_CLOSE - timedelta(days=1))},
    )
    with ledger.transaction() as tx:
        tx.record_heartbeat(beat)
        tx.record_heartbeat(attrs.evolve(beat, pid=4243))
    with ledger.reading() as tx:
        assert tx.trader_heartbeats() == [attrs.evolve(beat, pid=4243)]
