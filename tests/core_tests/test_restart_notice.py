"""A live trader that starts again after an unclean stop (it crashed or was killed) says so,
through the notifications: when, its last heartbeat, and its orders left in flight. A stop
by its own shutdown (its cycles done, Ctrl-C, SIGTERM) and a first start say nothing.

The endpoint is the webhook receiver on 127.0.0.1; the clocks are injected; every wait is
bounded (a bound, not a measurement)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.config import NotificationSettings
from tradekit.config.settings import NotificationEvent
from tradekit.domain import Bar, Side
from tradekit.execution.live import CLEAN_STOP, LiveTrader, run_async
from tradekit.ledger import Ledger
from tradekit.ledger.records import IntentPurpose, OrderIntent
from tradekit.notify.service import notifications

from .test_live_trader import MONDAY_CLOSE, BarsBroker, BuyEveryClose, at, restart
from .test_pipeline import Trading, make_trading
from .webhook import Receiver, webhook

WAIT = 30  # seconds a test waits at most (a bound, not a measurement)
TRADER = "buy_every_close on paper"
TITLE = "tradekit error: tradekit.execution.live"


@pytest.fixture
def trading(tmp_path: Path) -> Iterator[Trading]:
    t = make_trading(tmp_path, paper=BarsBroker())
    t.broker.set_price("KO", Decimal(63), MONDAY_CLOSE)
    t.reconcile()
    yield t
    t.ledger.close()


@contextmanager
def told(trading: Trading) -> Iterator[Receiver]:
    """Notifications on, as `tradekit live` turns them on (the error relay on the root
    logger), to a receiver; what it received is complete once the block ends."""
    with webhook("answer") as receiver:
        settings = NotificationSettings(urls=(receiver.url,), events=(NotificationEvent.ERROR,))
        with notifications(settings, trading.pipeline.plugins, clock=trading.clock):
            yield receiver  # leaving it delivers what is queued (within shutdown_wait_seconds)


def notices(receiver: Receiver) -> list[str]:
    return [str(m["message"]) for m in receiver.received if m.get("title") == TITLE]


def heartbeat_note(ledger: Ledger) -> str:
    with ledger.reading() as tx:
        (beat,) = [b for b in tx.trader_heartbeats() if b.trader == TRADER]
    return beat.cycle_note


def left_in_flight(trading: Trading, symbol: str) -> None:
    """An order intent committed and never settled: the process died before sending it."""
    with trading.ledger.transaction(lock_symbol=symbol) as tx:
        tx.record_intent(
            OrderIntent(
                intent_key=f"{BuyEveryClose.name}|{symbol}|crash",
                symbol=symbol,
                side=Side.BUY,
                purpose=IntentPurpose.ENTRY,
                created_at=trading.clock.now,
                strategy=BuyEveryClose.name,
                qty=Decimal(3),
            )
        )


def test_a_first_start_on_a_fresh_ledger_says_nothing(trading: Trading) -> None:
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    with told(trading) as receiver:
        trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
        trader.startup()
        trader.cycle()
    assert notices(receiver) == []


def test_a_restart_after_a_crash_is_told_once_with_the_last_heartbeat_and_the_orders_in_flight(
    trading: Trading, tmp_path: Path
) -> None:
    last_beat = MONDAY_CLOSE + timedelta(minutes=5)
    at(trading, last_beat, is_open=False)
    first = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    first.startup()
    first.cycle()  # its heartbeat: the last sign of life
    at(trading, last_beat + timedelta(minutes=1), is_open=False)
    left_in_flight(trading, "PFE")
    # The process is killed here: no stop. The next one starts an hour later.
    trading = restart(trading, tmp_path)
    restarted_at = last_beat + timedelta(hours=1)
    at(trading, restarted_at, is_open=False)
    with told(trading) as receiver:
        again = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
        again.startup()
        again.startup()  # a startup tried again (the broker failed it) tells it no second time
        again.cycle()
    (notice,) = notices(receiver)
    assert notice.startswith(
        f"{TRADER} restarted at {restarted_at.isoformat()} after an unclean stop (crashed or killed): "
        f"its last heartbeat was at {last_beat.isoformat()} (pid "
    )
    assert notice.endswith("; 1 of its orders were in flight (buy PFE), settled with the broker now")


def test_a_crash_with_nothing_in_flight_says_so(trading: Trading, tmp_path: Path) -> None:
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).cycle()
    trading = restart(trading, tmp_path)
    at(trading, MONDAY_CLOSE + timedelta(minutes=30), is_open=False)
    with told(trading) as receiver:
        LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).startup()
    (notice,) = notices(receiver)
    assert notice.endswith("; 0 of its orders were in flight")


def test_a_stop_by_its_own_shutdown_is_not_told(trading: Trading, tmp_path: Path) -> None:
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    with told(trading) as receiver:
        # A bounded run (`tradekit live --once`) ends by itself.
        asyncio.run(run_async(LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]), interval_seconds=0, cycles=1))
        assert heartbeat_note(trading.ledger).startswith(f"{CLEAN_STOP} at {trading.clock.now.isoformat()} (pid ")
        # The next run, stopped by Ctrl-C or SIGTERM (its task cancelled) after two cycles.
        trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])

        async def until_cancelled() -> None:
            task = asyncio.current_task()
            assert task is not None
            seen: list[object] = []

            def on_cycle(report: object) -> None:
                seen.append(report)
                if len(seen) == 2:
                    task.cancel()

            await run_async(trader, interval_seconds=0, on_cycle=on_cycle)

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(until_cancelled())
        assert heartbeat_note(trading.ledger).startswith(CLEAN_STOP)
    trading = restart(trading, tmp_path)
    at(trading, MONDAY_CLOSE + timedelta(hours=2), is_open=False)
    with told(trading) as later:
        LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).startup()
    assert notices(receiver) == notices(later) == []


class SlowBars(BarsBroker):
    """A feed whose answer is late: the cycle is in its worker thread when the run is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Event()
        self.answer = threading.Event()

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        self.asked.set()
        assert self.answer.wait(WAIT), "the feed was never let answer"
        return super().daily_bars(symbols, start, end)


class Stopping(LiveTrader):
    def __init__(self, *args: object, feed: SlowBars, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.feed = feed

    def stop(self) -> None:
        self.feed.answer.set()  # the cycle in progress finishes while the stop is under way
        super().stop()


def test_a_stop_during_a_cycle_is_marked_after_that_cycles_heartbeat(tmp_path: Path) -> None:
    """Cancelled while a cycle runs in its thread, the run marks the stop once that cycle
    recorded its heartbeat: the cycle's heartbeat does not overwrite the mark."""
    feed = SlowBars()
    trading = make_trading(tmp_path, paper=feed)
    trading.reconcile()
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    trader = Stopping(trading.pipeline, BuyEveryClose, ["KO"], feed=feed)

    async def cancelled_mid_cycle() -> None:
        run = asyncio.create_task(run_async(trader, interval_seconds=0))
        assert await asyncio.to_thread(feed.asked.wait, WAIT)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(cancelled_mid_cycle())
    assert heartbeat_note(trading.ledger).startswith(CLEAN_STOP)
    trading = restart(trading, tmp_path)
    with told(trading) as receiver:
        LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).startup()
    assert notices(receiver) == []
    trading.ledger.close()
