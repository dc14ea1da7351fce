"""The replay and the live trader are one trader: driven over the same shipped bars, on the
same simulated clock, against the paper broker, they make the same decisions and send the
same orders, which fill the same way — for every example strategy.

The live side is ``LiveTrader`` exactly as ``tradekit run --broker ...`` runs it: it reads
the market clock, asks its broker for daily bars and latest prices, and cycles. Its broker
here is the paper broker with the market-data side a broker plugin has (``LiveFeed``); the
test moves the clock through each session's moments (the open, the exit window's start and
end, the close) and lets the trader decide what is due, as a live run would.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from tradekit import hookimpl
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig
from tradekit.broker.protocol import MarketClock
from tradekit.config import AllocationSettings, ExitSettings, MissedWindow, ScannerSettings, Settings, TierSettings
from tradekit.config.settings import OrderGuardSettings
from tradekit.data import load_daily_bars
from tradekit.domain import Bar, OrderType, Side, Signal, TimeInForce
from tradekit.execution.clock import SimClock
from tradekit.execution.live import LiveTrader
from tradekit.execution.paper_run import run_paper_replay
from tradekit.execution.pipeline import OrderPipeline
from tradekit.execution.session import Focus
from tradekit.exits import ExitIntent
from tradekit.exits.calendar import Session, TradingCalendar, trading_calendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.strategy import Strategy, StrategyView
from tradekit_strategies_examples import AverageDown, PyramidBreakout, SingleEntryBreakout, TieredMomentum
from tradekit_strategies_examples.breakout import make_signal
from tradekit_strategies_examples.indicators import sma

PLUGINS = Plugins(load_entrypoints=False, env={})
CALENDAR = TradingCalendar()
START, END = datetime(2007, 1, 1, tzinfo=UTC), datetime(2009, 6, 30, 23, tzinfo=UTC)
TIERED = Settings(
    allocation=AllocationSettings(
        tiered=True,
        tiers={
            "core": TierSettings(allocation_pct=Decimal(8), cap_pct=Decimal(10), symbols=("AAPL", "MSFT")),
            "satellite": TierSettings(allocation_pct=Decimal(6), cap_pct=Decimal(7), symbols=("IBM", "GOOG")),
        },
    ),
    scanner=ScannerSettings(enabled=True, top_n=2, baseline_symbols=()),
)


class LiveFeed(PaperBroker):
    """The paper broker with a broker plugin's market data: the daily bars stamped up to
    now, the prices of the symbols trading now, and a market clock from the exchange calendar.
    Its orders expire and fill on close on that calendar's sessions, as the paper broker
    ``tradekit run --broker paper`` builds does."""

    def __init__(self, bars: Mapping[str, list[Bar]], clock: SimClock, calendar: TradingCalendar = CALENDAR) -> None:
        super().__init__(PaperBrokerConfig(), session_clock=calendar.market_clock)
        self.bars = bars
        self.calendar = calendar
        self.times = {s: [b.time for b in series] for s, series in bars.items()}
        self.sim_clock = clock
        self.trading_now: dict[str, Decimal] = {}

    def move(self, prices: Mapping[str, Decimal], at: datetime) -> None:
        self.trading_now = dict(prices)
        self.set_prices(prices, at)

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        found = {}
        for symbol in symbols:
            times = self.times.get(symbol, [])
            found[symbol] = self.bars[symbol][bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]
        return found

    def latest_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        return {s: self.trading_now[s] for s in symbols if s in self.trading_now}

    def get_clock(self) -> MarketClock:
        now, calendar = self.sim_clock(), self.calendar
        opens = calendar.last_open(now)
        closes = calendar.session_of_open(opens).close if opens is not None else now
        following = calendar.next_open(now)
        return MarketClock(
            now=now,
            is_open=opens is not None and opens <= now < closes,
            next_open=following,
            next_close=closes if now < closes else calendar.session_of_open(following).close,
        )


def trade_live(
    tmp_path: Path,
    strategy: type[Strategy],
    bars: Mapping[str, list[Bar]],
    settings: Settings,
    restarts: frozenset[datetime] = frozenset(),
    plugins: Plugins = PLUGINS,
) -> str:
    """Run ``strategy`` through LiveTrader cycles over ``bars``; return the ledger's URL.

    ``restarts``: bar times whose session's window start is followed by a new process (a new
    pipeline and trader on the same ledger and broker, started up as ``tradekit run`` does)."""
    calendar = trading_calendar(settings.exits.calendar)
    first = min(series[0].time for series in bars.values())
    clock = SimClock(first - timedelta(days=1))
    feed = LiveFeed(bars, clock, calendar)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    exits = settings.exits
    with Ledger.open(url, for_trading=True) as ledger:
        pipeline = OrderPipeline(
            ledger=ledger, broker=feed, settings=settings, plugins=plugins, calendar=calendar, clock=clock
        )
        focus = Focus(plugins, settings.scanner) if settings.scanner.enabled else None
        trader = LiveTrader(pipeline, strategy, sorted(bars), focus=focus)
        trader.startup()

        def restarted() -> LiveTrader:
            again = OrderPipeline(
                ledger=ledger, broker=feed, settings=settings, plugins=plugins, calendar=calendar, clock=clock
            )
            fresh = LiveTrader(again, strategy, sorted(bars), focus=focus)
            fresh.startup()
            return fresh

        days = sorted({b.time for series in bars.values() for b in series})
        for day in days:
            todays = {s: series[i] for s, series in bars.items() if (i := _index(feed.times[s], day)) is not None}
            session = _session_of(calendar, day)
            if session is None:  # bad data: a bar on a day with no session; nothing is due
                clock.now = day
                trader.cycle()
                continue
            window = calendar.execution_window(
                session.open - timedelta(microseconds=1), exits.window_start_minutes, exits.window_end_minutes
            )
            # The moments a trader cycling all day would find something due at, in time
            # order: the open, the window's start, the minute after its end (a limit sell left
            # resting is canceled) and the cycle after that (the cancel confirmed, the exit
            # escalates) when before the bar's stamp, and the bar's stamp (the close, or a half
            # day's regular close).
            after = window.closes_at + timedelta(minutes=1)
            during = {window.opens_at, after, after + timedelta(minutes=1)}
            moments = [session.open, *sorted(m for m in during if session.open < m < day), day]
            feed.move({s: b.open for s, b in todays.items()}, session.open)
            for moment in moments:
                if moment == day:
                    feed.move({s: b.close for s, b in todays.items()}, day)
                clock.now = moment
                trader.cycle()
                if moment == window.opens_at and day in restarts:
                    trader = restarted()
                    trader.cycle()
    return url


def _session_of(calendar: TradingCalendar, day: datetime) -> Session | None:
    """The session of the bar stamped at ``day``, worked out here independently of the
    calendar's ``session_of_bar``: the last one to open before it, when the bar is stamped
    at its close or within it (on a 24/7 calendar, that close is also the next session's
    open), or after its close on the same day in the exchange's zone (a half day's bar,
    stamped at the regular close)."""
    opened = calendar.last_open(day - timedelta(microseconds=1))
    assert opened is not None
    session = calendar.session_of_open(opened)
    if day <= session.close or session.close.astimezone(calendar.tz).date() == day.astimezone(calendar.tz).date():
        return session
    return None


def _index(times: list[datetime], moment: datetime) -> int | None:
    i = bisect.bisect_left(times, moment)
    return i if i < len(times) and times[i] == moment else None


def what_happened(url: str) -> dict[str, list[Any]]:
    """Everything the two runs must agree on, read from the ledger (random ids left out)."""
    with Ledger.open(url) as ledger, ledger.reading() as tx:
        decisions = tx.decisions(limit=1_000_000)
        intents = sorted(
            (s.intent for s in tx.pending_intents()), key=lambda i: i.created_at
        )  # none should be left in flight
        history = tx.position_history()
        fills = tx.fills_with_purpose()
        exits = tx.exit_intents()
        orders = [
            (i.intent_key, i.client_order_id, i.side, i.purpose, i.qty, i.notional, i.limit_price, i.created_at)
            for i in tx.order_intents()
        ]
    return {
        "decisions": [
            (d.evaluated_at, d.symbol, d.signal_id, d.action, d.reasons, d.summary) for d in reversed(decisions)
        ],
        "orders": orders,
        "in flight": intents,
        "fills": [(f.client_order_id, f.side, f.qty, f.price, f.time, f.commission, p) for f, p in fills],
        "positions": [(p.symbol, p.entry_count, p.qty, p.entries[0].time, p.reductions) for p in history],
        "exits": [(e.intent_id, e.symbol, e.qty, e.state, e.decided_at, e.note) for e in exits],
    }


def replayed_ledger_file(tmp_path: Path) -> Path:
    return tmp_path / "replay" / "ledger.db"


def replayed_and_traded_live_alike(
    tmp_path: Path,
    strategy: type[Strategy],
    bars: Mapping[str, list[Bar]],
    settings: Settings,
    kinds: frozenset[str] = frozenset({"enter_new", "skip"}),
    plugins: Plugins = PLUGINS,
) -> dict[str, list[Any]]:
    """Replay ``strategy`` and trade it live over ``bars``; assert the two ledgers agree on
    everything ``what_happened`` reads, and that they traded; return the replay's."""
    replayed = run_paper_replay(
        strategy=strategy, settings=settings, plugins=plugins, bars=bars, out_dir=tmp_path / "replay", chart=False
    )
    live = what_happened(trade_live(tmp_path, strategy, bars, settings, plugins=plugins))
    replay = what_happened(replayed.ledger_url)
    # Not a vacuous agreement: the runs traded, and each decision kind showed up.
    assert replay["fills"]
    assert replay["exits"]
    assert {d[3] for d in replay["decisions"]} >= kinds
    for what in replay:
        assert live[what] == replay[what], what
    return replay


@pytest.mark.parametrize(
    ("strategy", "settings"),
    [
        (SingleEntryBreakout, Settings()),
        (PyramidBreakout, Settings()),
        (AverageDown, Settings()),
        (TieredMomentum, TIERED),
    ],
    ids=["breakout", "pyramid", "average-down", "tiered-momentum"],
)
def test_the_live_trader_decides_and_orders_exactly_what_the_replay_does(
    tmp_path: Path, strategy: type[Strategy], settings: Settings
) -> None:
    bars = {
        s: [b for b in series if START <= b.time <= END]
        for s, series in load_daily_bars(["AAPL", "MSFT", "IBM", "GOOG"]).items()
    }
    replay = replayed_and_traded_live_alike(tmp_path, strategy, bars, settings)
    if strategy.policy().allow_scaling:
        assert any(p[1] > 1 for p in replay["positions"])


def every_day(series: Sequence[Bar], first_close: datetime) -> list[Bar]:
    """The shipped bars re-stamped one a day, every day, at 00:00 UTC: the close of a 24/7
    market's daily session, as a crypto venue's daily candle is stamped (``tradekit-venue-ccxt``)."""
    return [
        attrs.evolve(bar, time=first_close + timedelta(days=i))  # real prices, a 24/7 schedule
        for i, bar in enumerate(series)
    ]


@pytest.mark.parametrize("strategy", [PyramidBreakout, AverageDown], ids=["pyramid", "average-down"])
def test_on_a_24_7_calendar_the_live_trader_decides_and_orders_exactly_what_the_replay_does(
    tmp_path: Path, strategy: type[Strategy]
) -> None:
    # On a 24/7 calendar a session's close is the next one's open, and weekends trade: the
    # live trader's close phase, open phase and exit windows meet at the same instants.
    shipped = load_daily_bars(["AAPL", "MSFT"])
    first_close = datetime(2021, 1, 1, tzinfo=UTC)
    bars = {s: every_day([b for b in series if START <= b.time <= END], first_close) for s, series in shipped.items()}
    settings = Settings(exits=ExitSettings(calendar="24/7"))
    assert any(b.time.weekday() >= 5 for b in bars["AAPL"])
    replay = replayed_and_traded_live_alike(tmp_path, strategy, bars, settings)
    assert "scale_in" in {d[3] for d in replay["decisions"]}
    assert any(p[1] > 1 for p in replay["positions"])
    assert [f for f in replay["fills"] if f[4].weekday() >= 5]
    # What is decided at a close is acted on in the session that opens at that close: buys
    # judged, exits given their window, five minutes after it (the window's start), not a
    # whole day later.
    start = timedelta(minutes=settings.exits.window_start_minutes)
    with sqlite3.connect(replayed_ledger_file(tmp_path)) as db:
        judged = db.execute(
            "SELECT q.signal, d.evaluated_at FROM tk_decisions d JOIN tk_queued_buys q ON q.signal_id = d.signal_id"
        ).fetchall()
        planned = db.execute("SELECT decided_at, window_opens_at FROM tk_exit_intents").fetchall()
    assert judged
    assert planned
    for signal, evaluated_at in judged:
        assert (
            datetime.fromisoformat(evaluated_at) - datetime.fromisoformat(json.loads(signal)["generated_at"]) == start
        )
    for decided_at, window_opens_at in planned:
        assert datetime.fromisoformat(window_opens_at) - datetime.fromisoformat(decided_at) == start


class ExitLimitsOutOfReach:
    """Every planned exit's limit ten times the price: no exit sells in its window."""

    @hookimpl
    def on_exit_intent(self, intent: ExitIntent) -> ExitIntent | None:
        if intent.limit_price is None:
            return None
        return attrs.evolve(intent, limit_price=intent.limit_price * 10)


def test_on_a_24_7_calendar_exits_sent_market_on_close_fill_alike_at_their_sessions_close(tmp_path: Path) -> None:
    # Every exit misses its window (its limit out of reach) and goes out market-on-close:
    # both runs' paper broker closes the 24/7 session at midnight UTC, weekends included,
    # not at a weekday's 16:00 New York.
    shipped_bars = load_daily_bars(["AAPL", "MSFT"])
    first_close = datetime(2021, 1, 1, tzinfo=UTC)
    bars = {
        s: every_day([b for b in series if START <= b.time <= datetime(2008, 6, 30, tzinfo=UTC)], first_close)
        for s, series in shipped_bars.items()
    }
    settings = Settings(exits=ExitSettings(calendar="24/7", on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("out-of-reach", ExitLimitsOutOfReach())])
    replay = replayed_and_traded_live_alike(tmp_path, PyramidBreakout, bars, settings, plugins=plugins)
    calendar = trading_calendar("24/7")
    with Ledger.open(f"sqlite:///{replayed_ledger_file(tmp_path)}") as ledger, ledger.reading() as tx:
        on_close = {i.client_order_id: i.created_at for i in tx.order_intents() if i.time_in_force is TimeInForce.CLS}
    sold = [(on_close[f[0]], f[4]) for f in replay["fills"] if f[0] in on_close]
    assert len(sold) > 5
    assert [s for s in sold if s[1].weekday() in (0, 6)]  # sold at a Saturday's or a Sunday's close
    for sent, filled in sold:
        opened = calendar.last_open(sent)
        assert opened is not None
        assert filled == calendar.session_of_open(opened).close, (sent, filled)


def shipped(symbols: Sequence[str], first: datetime, last: datetime) -> dict[str, list[Bar]]:
    return {s: [b for b in series if first <= b.time <= last] for s, series in load_daily_bars(symbols).items()}


def test_an_exit_whose_limit_rests_through_its_window_goes_out_market_on_close_that_session(tmp_path: Path) -> None:
    # XNYS, every exit's limit sell out of reach: it rests through its window (09:35-10:00
    # New York). The live trader's cycle after the window cancels it, the next cycle (the
    # cancel confirmed) sends the market-on-close, which fills at that day's close. The replay
    # used to escalate only at its next moment, the close: too late for a market-on-close
    # order, so the exit rolled from window to window and never went out on close.
    settings = Settings(exits=ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    bars = shipped(["AAPL", "MSFT"], datetime(2007, 1, 1, tzinfo=UTC), datetime(2008, 6, 30, tzinfo=UTC))
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("out-of-reach", ExitLimitsOutOfReach())])
    replay = replayed_and_traded_live_alike(tmp_path, PyramidBreakout, bars, settings, plugins=plugins)
    calendar = trading_calendar(settings.exits.calendar)
    with Ledger.open(f"sqlite:///{replayed_ledger_file(tmp_path)}") as ledger, ledger.reading() as tx:
        decided = {e.intent_id: e.decided_at for e in tx.exit_intents()}
        on_close = {
            i.client_order_id: (i.exit_intent_id, i.created_at)
            for i in tx.order_intents()
            if i.time_in_force is TimeInForce.CLS
        }
    sold = [(*on_close[f[0]], f[4]) for f in replay["fills"] if f[0] in on_close]
    assert len(sold) > 5
    assert len(sold) == len(on_close)  # every market-on-close order filled
    for exit_id, sent, filled in sold:
        assert exit_id is not None
        # Sent in the session of the exit's window, two minutes after it closed ...
        window = calendar.execution_window(
            decided[exit_id], settings.exits.window_start_minutes, settings.exits.window_end_minutes
        )
        opened = calendar.last_open(window.opens_at)
        assert opened is not None
        session = calendar.session_of_open(opened)
        assert sent == window.closes_at + timedelta(minutes=2), (exit_id, sent)
        # ... and filled at that day's close.
        assert filled == session.close or (
            filled > session.close
            and filled.astimezone(calendar.tz).date() == session.close.astimezone(calendar.tz).date()
        ), (exit_id, sent, filled)
    # Every window a limit sell rested through was followed by a market-on-close in its
    # session (a fraction under one share goes as a DAY market order, which the paper broker
    # refuses under 1 USD: that dust rolls on, alike in both runs).
    exits = settings.exits
    with Ledger.open(f"sqlite:///{replayed_ledger_file(tmp_path)}") as ledger, ledger.reading() as tx:
        attempts = [(i.exit_intent_id, i.order_type, i.created_at) for i in tx.order_intents() if i.exit_intent_id]
    escalated = {(exit_id, at) for exit_id, kind, at in attempts if kind is OrderType.MARKET}
    limits = [(exit_id, at) for exit_id, kind, at in attempts if kind is OrderType.LIMIT]
    assert limits
    for exit_id, at in limits:
        opened = calendar.last_open(at)
        assert opened is not None
        window = calendar.session_of_open(opened).execution_window(exits.window_start_minutes, exits.window_end_minutes)
        assert (exit_id, window.closes_at + timedelta(minutes=2)) in escalated, (exit_id, at)


def test_an_exit_window_that_ends_with_the_session_is_escalated_alike(tmp_path: Path) -> None:
    # The window runs to the close (390 minutes on a full XNYS day). An exit whose symbol
    # has no bar, so no price, the day after it was decided misses its window: the live
    # trader's cycle at the close moves it to the next session's window, where it executes.
    settings = Settings(exits=ExitSettings(window_end_minutes=390))
    bars = shipped(["AAPL", "MSFT"], datetime(2007, 1, 1, tzinfo=UTC), datetime(2007, 9, 30, tzinfo=UTC))
    first = what_happened(
        run_paper_replay(
            strategy=SingleEntryBreakout, settings=settings, plugins=PLUGINS, bars=bars, out_dir=tmp_path / "first"
        ).ledger_url
    )
    decided = [e[4] for e in first["exits"] if e[1] == "AAPL"][:2]
    times = [b.time for b in bars["AAPL"]]
    missing = {times[times.index(d) + 1] for d in decided}
    bars["AAPL"] = [b for b in bars["AAPL"] if b.time not in missing]

    replay = replayed_and_traded_live_alike(tmp_path, SingleEntryBreakout, bars, settings, frozenset({"enter_new"}))
    sells = sorted(f[4] for f in replay["fills"] if f[1].value == "sell")
    for decided_at in decided:
        # Sold in the session after the one it missed, not rolled on from window to window.
        sold = next(t for t in sells if t > decided_at)
        assert sold - decided_at < timedelta(days=5), (decided_at, sold)


def test_a_window_opening_after_a_half_days_close_opens_nothing_that_day(tmp_path: Path) -> None:
    # A window four hours after the open starts after a half day's 13:00 New York close:
    # the live trader finds the market closed, so no exit and no buy goes out that day.
    settings = Settings(exits=ExitSettings(window_start_minutes=240, window_end_minutes=300))
    bars = shipped(["AAPL", "MSFT", "IBM", "GOOG"], datetime(2007, 6, 1, tzinfo=UTC), datetime(2008, 1, 15, tzinfo=UTC))
    replay = replayed_and_traded_live_alike(tmp_path, PyramidBreakout, bars, settings)
    calendar = trading_calendar(settings.exits.calendar)
    for fill in replay["fills"]:
        opened = calendar.last_open(fill[4])
        assert opened is not None
        assert fill[4] <= calendar.session_of_open(opened).close, fill


class WeekendBuyer(Strategy):
    """A buy on Friday's and Saturday's bars when flat; a sell once the close is 2% off the
    last entry either way."""

    name = "weekend-buyer"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        position = view.position
        if position is None:
            if view.bar.time.weekday() in (4, 5):
                return [make_signal(self.name, view, Side.BUY, 4, "flat on a Friday or a Saturday")]
            return []
        last = position.entries[-1].price
        if abs(view.bar.close - last) >= last * Decimal("0.02"):
            return [make_signal(self.name, view, Side.SELL, 4, "moved 2%")]
        return []


def test_bars_on_days_without_a_session_are_not_traded_on(tmp_path: Path) -> None:
    # Bad data: each Friday's bars again on the Saturday after. The live trader never finds
    # a bar of a session there; the replay keeps them in the history and trades nothing on
    # them (it used to run each as a session of its own, the strategy on its bar included).
    bars = shipped(["AAPL", "MSFT"], datetime(2007, 1, 1, tzinfo=UTC), datetime(2007, 6, 30, tzinfo=UTC))
    for symbol, series in bars.items():
        fridays = [b for b in series if b.time.weekday() == 4]
        saturdays = [attrs.evolve(b, time=b.time + timedelta(days=1)) for b in fridays]
        bars[symbol] = sorted([*series, *saturdays], key=lambda b: b.time)
    inserted = sum(1 for series in bars.values() for b in series if b.time.weekday() == 5)
    assert inserted > 40

    replay = replayed_and_traded_live_alike(tmp_path, WeekendBuyer, bars, Settings(), frozenset({"enter_new"}))
    assert not [d for d in replay["decisions"] if d[0].weekday() >= 5]
    assert not [f for f in replay["fills"] if f[4].weekday() >= 5]
    # Every buy judged came from a Friday's signal, none from a Saturday's: at most one
    # decision a symbol a week.
    weeks = Counter((d[1], d[0].isocalendar()[:2]) for d in replay["decisions"])
    assert max(weeks.values()) == 1
    result = run_paper_replay(
        strategy=WeekendBuyer, settings=Settings(), plugins=PLUGINS, bars=bars, out_dir=tmp_path / "again", chart=False
    ).result
    assert result.bars_without_session == inserted
    assert result.bars == sum(len(series) for series in bars.values()) - inserted


class LongTrend(Strategy):
    """In above the 280-bar average, out below it: a lookback beyond the default history."""

    name = "long-trend"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        average = sma(view.history, 280)
        if average is None:
            return []
        if view.position is None and view.bar.close > average:
            return [make_signal(self.name, view, Side.BUY, 4, f"close above the 280-bar average {average}")]
        if view.position is not None and view.bar.close < average:
            return [make_signal(self.name, view, Side.SELL, 5, f"close below the 280-bar average {average}")]
        return []


class LongTrendDeclared(LongTrend):
    name = "long-trend-declared"
    history_bars = 300


def test_a_strategy_sees_its_declared_history_in_both_runs(tmp_path: Path) -> None:
    # The live trader asks its feed for the strategy's history_bars (and a margin); the
    # replay shows no more. Declared, the 280-bar average trades alike in both.
    bars = shipped(["AAPL", "MSFT"], datetime(2005, 1, 1, tzinfo=UTC), datetime(2008, 12, 31, tzinfo=UTC))
    replay = replayed_and_traded_live_alike(tmp_path, LongTrendDeclared, bars, Settings(), frozenset({"enter_new"}))
    assert len(replay["fills"]) > 4


def test_an_indicator_looking_past_the_history_is_what_the_live_trader_computes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Undeclared, the strategy sees 250 bars: live, the 280-bar average is never known, so it
    # never trades; the replay, which could compute it over the whole series, does as live.
    bars = shipped(["AAPL", "MSFT"], datetime(2005, 1, 1, tzinfo=UTC), datetime(2008, 12, 31, tzinfo=UTC))
    replayed = run_paper_replay(
        strategy=LongTrend, settings=Settings(), plugins=PLUGINS, bars=bars, out_dir=tmp_path / "replay", chart=False
    )
    replay = what_happened(replayed.ledger_url)
    assert replay == what_happened(trade_live(tmp_path, LongTrend, bars, Settings()))
    assert replayed.result.tally.signals == {}
    assert "looks back further than the strategy's history_bars (250 bars)" in caplog.text


class TimeStop(Strategy):
    """In when flat above the 10-bar average; out after holding three bars: what it signals
    depends on the position, which each open changes."""

    name = "time-stop"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        average = sma(view.history, 10)
        if average is None:
            return []
        position = view.position
        if position is not None:
            held = sum(1 for b in view.history if b.time >= position.last_entry_time)
            return [make_signal(self.name, view, Side.SELL, 5, "held three bars")] if held >= 3 else []
        if view.bar.close > average:
            return [make_signal(self.name, view, Side.BUY, 4, "above the 10-bar average")]
        return []


def test_a_live_trader_restarted_during_a_session_does_not_run_its_last_close_again(tmp_path: Path) -> None:
    # Restarted after the exit window, the new process must not run the strategy on the last
    # close's bars again: a sell executed at that open would make the strategy buy again.
    settings = Settings(orders=OrderGuardSettings(order_cooldown_minutes=0))
    bars = shipped(["AAPL", "MSFT"], datetime(2007, 1, 1, tzinfo=UTC), datetime(2007, 6, 30, tzinfo=UTC))
    days = sorted({b.time for series in bars.values() for b in series})
    restarts = frozenset(days[30::9])
    replayed = run_paper_replay(
        strategy=TimeStop, settings=settings, plugins=PLUGINS, bars=bars, out_dir=tmp_path / "replay", chart=False
    )
    url = trade_live(tmp_path, TimeStop, bars, settings, restarts)
    replay, live = what_happened(replayed.ledger_url), what_happened(url)
    assert replay["exits"]
    for what in replay:
        assert live[what] == replay[what], what
    # One equity point a session, restarts or not.
    with Ledger.open(url) as ledger, ledger.reading() as tx:
        live_curve = [p.time for p in tx.equity_curve()]
    assert len(live_curve) == len(set(live_curve)) == len(days)
