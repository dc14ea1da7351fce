"""The live trader runs its strategy once per session, keyed to the exchange calendar, and
judges each queued buy once, across restarts (the queue lives in the ledger)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from tradekit import Strategy, StrategyView
from tradekit.broker.errors import BrokerUnavailable
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig
from tradekit.broker.protocol import MarketClock
from tradekit.domain import Bar, Side, Signal
from tradekit.execution.live import CycleReport, LiveTrader, run_async
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger

from .test_pipeline import Trading, make_trading

# Monday 2024-03-04 closes 21:00 UTC; Tuesday opens 14:30 UTC.
MONDAY_CLOSE = datetime(2024, 3, 4, 21, tzinfo=UTC)
TUESDAY_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
SESSION_CLOSES = [MONDAY_CLOSE - timedelta(days=3), MONDAY_CLOSE, MONDAY_CLOSE + timedelta(days=1)]  # Fri, Mon, Tue


class BuyEveryClose(Strategy):
    """A buy signal on every bar, priced at the close (the open gaps 5% above it)."""

    name = "buy_every_close"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        return [
            Signal(
                symbol=view.symbol,
                side=Side.BUY,
                confidence=5,
                generated_at=bar.time,
                reference_price=bar.close,
                source=self.name,
            )
        ]


class BarsBroker(PaperBroker):
    """The paper broker with a daily-bar feed and latest prices, as a broker plugin's market
    data would give: one bar per entry of ``closes``, stamped at that time."""

    def __init__(self, closes: Sequence[datetime] = SESSION_CLOSES) -> None:
        super().__init__(PaperBrokerConfig())
        self.closes = list(closes)
        self.bar_requests = 0
        self.bars_down = False

    def latest_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        return {s: p for s in symbols if (p := self.last_price(s)) is not None}

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        self.bar_requests += 1
        if self.bars_down:
            raise BrokerUnavailable("market data timed out")
        prices = {"open": Decimal(57), "high": Decimal(61), "low": Decimal(56), "close": Decimal(60)}
        return {
            s: [Bar(symbol=s, time=t, volume=Decimal(1), **prices) for t in self.closes if start <= t <= end]
            for s in symbols
        }


def at(trading: Trading, now: datetime, *, is_open: bool) -> None:
    trading.clock.now = now
    opens = TUESDAY_OPEN if now < TUESDAY_OPEN else TUESDAY_OPEN + timedelta(days=1)
    trading.broker.set_clock(
        MarketClock(now=now, is_open=is_open, next_open=opens, next_close=MONDAY_CLOSE + timedelta(days=1))
    )


@pytest.fixture
def trading(tmp_path: Path) -> Trading:
    t = make_trading(tmp_path, paper=BarsBroker())
    t.broker.set_price("KO", Decimal(63), MONDAY_CLOSE)  # Tuesday's open: 5% over the signal's price
    t.reconcile()
    return t


def restart(trading: Trading, tmp_path: Path) -> Trading:
    """A new process: a new pipeline on the same broker and the same ledger file, reopened."""
    trading.ledger.close()
    again = make_trading(tmp_path, paper=trading.broker, ledger=Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}"))
    again.clock.now = trading.clock.now
    return again


def feed(trading: Trading) -> BarsBroker:
    assert isinstance(trading.broker, BarsBroker)
    return trading.broker


def decisions(ledger: Ledger) -> list[str]:
    with ledger.reading() as tx:
        return [d.action for d in tx.decisions(symbol="KO")]


def test_a_cycle_after_midnight_utc_does_not_rerun_the_strategy_and_each_signal_is_judged_once(
    trading: Trading,
) -> None:
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    after_close = trader.cycle()
    # Past midnight UTC it is a new date, but still the night after Monday's session.
    at(trading, MONDAY_CLOSE + timedelta(hours=3, minutes=10), is_open=False)
    after_midnight = trader.cycle()
    at(trading, TUESDAY_OPEN + timedelta(minutes=5), is_open=True)
    at_open = trader.cycle()
    again = trader.cycle()

    assert (after_close.signals, after_midnight.signals) == (1, 0)
    assert feed(trading).bar_requests == 1
    assert len(at_open.buys) == 1
    assert again.buys == []
    # The 5% overnight gap makes it a SKIP: judged once, recorded once.
    assert decisions(trading.ledger) == ["skip"]


def test_the_next_session_runs_the_strategy_again(trading: Trading) -> None:
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    trader.cycle()
    at(trading, MONDAY_CLOSE + timedelta(days=1, minutes=5), is_open=False)
    tuesday_night = trader.cycle()

    assert tuesday_night.signals == 1
    assert feed(trading).bar_requests == 2


def test_bars_unavailable_after_the_close_are_fetched_again_on_the_next_cycle(trading: Trading) -> None:
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    feed(trading).bars_down = True
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    failed = trader.cycle()
    feed(trading).bars_down = False
    at(trading, MONDAY_CLOSE + timedelta(minutes=10), is_open=False)
    retried = trader.cycle()

    assert (failed.signals, retried.signals) == (0, 1)
    assert feed(trading).bar_requests == 2


def test_a_buy_queued_before_a_restart_is_sent_once_by_the_next_process(trading: Trading, tmp_path: Path) -> None:
    trading.broker.set_price("KO", Decimal(60), MONDAY_CLOSE + timedelta(minutes=1))  # no gap: it enters
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).cycle()
    # The process dies overnight with the buy queued in the ledger; it comes back mid-morning
    # (and runs the strategy on Monday's bars again, which queues nothing twice).
    at(trading, TUESDAY_OPEN + timedelta(hours=1), is_open=True)
    trading = restart(trading, tmp_path)
    at(trading, TUESDAY_OPEN + timedelta(hours=1), is_open=True)
    rebuilt = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).cycle()
    # And dies again after sending it: the next process finds nothing left to send.
    trading = restart(trading, tmp_path)
    at(trading, TUESDAY_OPEN + timedelta(hours=2), is_open=True)
    second = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).cycle()

    assert rebuilt.signals == 1
    (buy,) = rebuilt.buys
    assert buy.order is not None
    assert (second.signals, second.buys) == (1, [])
    assert len(trading.accepted()) == 1
    assert decisions(trading.ledger) == ["enter_new"]


def test_a_buy_skipped_before_a_restart_is_not_judged_again(trading: Trading, tmp_path: Path) -> None:
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    trader.cycle()
    at(trading, TUESDAY_OPEN + timedelta(minutes=5), is_open=True)
    (skipped,) = trader.cycle().buys
    trading = restart(trading, tmp_path)
    at(trading, TUESDAY_OPEN + timedelta(minutes=20), is_open=True)
    after_restart = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"]).cycle()

    assert skipped.decision is not None
    assert skipped.decision.action.value == "skip"
    assert after_restart.buys == []
    assert decisions(trading.ledger) == ["skip"]


def test_a_buy_waits_for_the_next_session_even_when_the_broker_clock_is_late_to_close(trading: Trading) -> None:
    trading.broker.set_price("KO", Decimal(60), MONDAY_CLOSE + timedelta(minutes=1))
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    # Half a minute after the calendar's close, the broker still says the market is open.
    at(trading, MONDAY_CLOSE + timedelta(seconds=30), is_open=True)
    at_the_close = trader.cycle()
    at(trading, TUESDAY_OPEN + timedelta(minutes=5), is_open=True)
    next_open = trader.cycle()

    assert (at_the_close.signals, at_the_close.buys) == (1, [])
    assert len(next_open.buys) == 1
    assert len(trading.accepted()) == 1


class FailsOnPfe(BuyEveryClose):
    name = "fails_on_pfe"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        if view.symbol == "PFE":
            raise ZeroDivisionError("a bad series")
        return super().on_bar(view)


def test_a_strategy_raising_on_one_symbol_is_reported_and_the_others_carry_on(
    trading: Trading, caplog: pytest.LogCaptureFixture
) -> None:
    trading.broker.set_price("KO", Decimal(60), MONDAY_CLOSE + timedelta(minutes=1))
    trader = LiveTrader(trading.pipeline, FailsOnPfe, ["PFE", "KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    with caplog.at_level("ERROR", logger="tradekit.execution.live"):
        after_close = trader.cycle()
    at(trading, TUESDAY_OPEN + timedelta(minutes=5), is_open=True)
    at_open = trader.cycle()

    assert after_close.strategy_errors == {"PFE": "ZeroDivisionError: a bad series"}
    assert after_close.signals == 1
    assert "strategy fails_on_pfe raised on PFE" in caplog.text
    assert [b.decision.symbol for b in at_open.buys if b.decision] == ["KO"]
    assert len(trading.accepted()) == 1


def test_run_async_shows_each_cycle_as_it_ends_and_a_failing_display_does_not_stop_it(
    trading: Trading, caplog: pytest.LogCaptureFixture
) -> None:
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    shown: list[CycleReport] = []
    endless: list[CycleReport] = []

    async def run_until_cancelled() -> None:
        task = asyncio.current_task()
        assert task is not None

        def on_cycle(report: CycleReport) -> None:
            endless.append(report)
            if len(endless) == 3:
                task.cancel()  # as Ctrl-C or a shutdown would
            raise BrokenPipeError("the terminal went away")

        await run_async(trader, interval_seconds=0, on_cycle=on_cycle)

    bounded = asyncio.run(run_async(trader, interval_seconds=0, cycles=2, on_cycle=shown.append))
    with caplog.at_level("ERROR", logger="tradekit.execution.live"), pytest.raises(asyncio.CancelledError):
        asyncio.run(run_until_cancelled())

    # The bounded run returns what it showed; the endless one showed each cycle as it ended,
    # and went on trading although showing every one of them failed.
    assert bounded == shown
    assert [r.signals for r in shown] == [1, 0]
    assert [r.signals for r in endless] == [0, 0, 0]
    assert caplog.text.count("showing a cycle's report failed; trading goes on") == 3


def test_a_half_days_bar_stamped_at_the_regular_close_is_waited_for_not_skipped(tmp_path: Path) -> None:
    # Friday 2024-11-29 closes at 13:00 New York (18:00 UTC), but the feed stamps every daily
    # bar at 16:00 New York (21:00 UTC), as Alpaca's does.
    wednesday, friday = datetime(2024, 11, 27, 21, tzinfo=UTC), datetime(2024, 11, 29, 21, tzinfo=UTC)
    t = make_trading(tmp_path, paper=BarsBroker([wednesday, friday]))
    t.reconcile()
    trader = LiveTrader(t.pipeline, BuyEveryClose, ["KO"])
    at(t, datetime(2024, 11, 29, 18, 5, tzinfo=UTC), is_open=False)
    after_early_close = trader.cycle()
    at(t, datetime(2024, 11, 29, 21, 5, tzinfo=UTC), is_open=False)
    bar_published = trader.cycle()
    at(t, datetime(2024, 11, 30, 1, 0, tzinfo=UTC), is_open=False)
    later = trader.cycle()

    assert (after_early_close.signals, bar_published.signals, later.signals) == (0, 1, 0)
    with t.ledger.reading() as tx:
        (queued,) = tx.queued_buys(BuyEveryClose.name)
    assert queued.generated_at == friday
    assert feed(t).bar_requests == 2
    t.ledger.close()


def test_a_symbol_without_a_bar_of_the_session_is_given_up_on_at_the_next_open(
    trading: Trading, caplog: pytest.LogCaptureFixture
) -> None:
    feed(trading).closes = SESSION_CLOSES[:1]  # the feed never publishes Monday's bar
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    trader.cycle()
    at(trading, MONDAY_CLOSE + timedelta(hours=2), is_open=False)
    trader.cycle()
    at(trading, TUESDAY_OPEN + timedelta(minutes=1), is_open=True)
    with caplog.at_level("WARNING", logger="tradekit.execution.live"):
        at_open = trader.cycle()
    at(trading, TUESDAY_OPEN + timedelta(minutes=2), is_open=True)
    trader.cycle()

    assert at_open.signals == 0
    assert "no bar of the session that closed 2024-03-04T21:00:00+00:00 for KO" in caplog.text
    assert feed(trading).bar_requests == 3  # asked each cycle until the open, then no more


class CountingStrategy(BuyEveryClose):
    name = "counting"
    seen: ClassVar[list[str]] = []

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        self.seen.append(view.symbol)
        return super().on_bar(view)


class WholeListFeed(BarsBroker):
    """A feed that answers with every symbol it carries, whatever it was asked for."""

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        return super().daily_bars(["KO", "PFE"], start, end)


def test_the_strategy_runs_once_per_session_on_the_symbols_asked_for_only(tmp_path: Path) -> None:
    t = make_trading(tmp_path, paper=WholeListFeed())
    t.reconcile()
    CountingStrategy.seen = []
    trader = LiveTrader(t.pipeline, CountingStrategy, ["KO", "KO"])
    for minutes in (5, 6, 7):
        at(t, MONDAY_CLOSE + timedelta(minutes=minutes), is_open=False)
        trader.cycle()

    assert CountingStrategy.seen == ["KO"]
    t.ledger.close()


class HistoryWatcher(BuyEveryClose):
    name = "history-watcher"
    history_bars = 300
    seen: ClassVar[list[int]] = []

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        self.seen.append(len(view.history))
        return []


class RecordingFeed(BarsBroker):
    """Every session's close for two years before Monday's; records what it is asked for."""

    def __init__(self) -> None:
        calendar = TradingCalendar()
        sessions = calendar.sessions(MONDAY_CLOSE.date() - timedelta(days=730), MONDAY_CLOSE.date())
        super().__init__([s.close for s in sessions])
        self.asked: list[datetime] = []

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        self.asked.append(start)
        return super().daily_bars(symbols, start, end)


def test_the_live_feed_is_asked_for_the_strategys_history_and_the_strategy_sees_that_much(tmp_path: Path) -> None:
    paper = RecordingFeed()
    t = make_trading(tmp_path, paper=paper)
    t.reconcile()
    HistoryWatcher.seen = []
    trader = LiveTrader(t.pipeline, HistoryWatcher, ["KO"])
    at(t, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    trader.cycle()

    # 300 bars and a margin (1.5 times, and 10 sessions more) of sessions back.
    assert paper.asked == [TradingCalendar().open_sessions_back(MONDAY_CLOSE + timedelta(minutes=5), 460)]
    assert len(paper.daily_bars(["KO"], paper.asked[0], MONDAY_CLOSE)["KO"]) == 461  # and Monday's
    assert HistoryWatcher.seen == [300]
    t.ledger.close()


@pytest.mark.parametrize("bars", [0, -1, 1.5, True, "250", 100_001])
def test_a_strategys_history_must_be_a_whole_number_of_bars(bars: object) -> None:
    with pytest.raises(TypeError, match=r"Wide.history_bars must be a whole number of bars from 1 to 100,000"):
        type("Wide", (BuyEveryClose,), {"name": "wide", "history_bars": bars})
