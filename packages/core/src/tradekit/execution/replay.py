"""Replay a strategy over daily bars through the session driver, on the paper broker.

The replay walks the sessions of the bars it is given on a simulated clock, and at each
session's moments feeds the paper market and hands over to ``SessionDriver`` exactly what a
live trader hands it (see ``tradekit.execution.session``):

1. the open: the paper market takes the day's opening prices (resting orders execute);
2. the exit window's start: the driver executes due exits and judges the buys queued at
   the previous close, at the open price (an overnight gap beyond the limit makes a SKIP);
3. the exit window's end: the driver cancels limit sells the window left resting and, a cycle
   later once the cancels are confirmed, escalates exits the window left unexecuted (a
   market-on-close order goes out that session);
4. the close: the paper market takes the closing prices, and the driver runs the strategy on
   each symbol's bar of the session (sells become exit intents, buys wait for the next open).

Nothing here is a simplified path: the decision engine, sizing, limits, the ledger and the
paper broker are the same code a live run uses, driven by the same driver.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from tradekit.broker.paper import PaperBroker
from tradekit.domain.market import Bar
from tradekit.domain.values import ZERO
from tradekit.execution.clock import SimClock
from tradekit.execution.pipeline import OrderPipeline
from tradekit.execution.session import Focus, SessionDriver, SessionTally
from tradekit.exits.calendar import TradingCalendar
from tradekit.strategy.base import Strategy
from tradekit.strategy.history import BAR_TIMES, History

log = logging.getLogger(__name__)

# The live trader's next cycle after one at the end of the exit window (``--interval``, 60 s by
# default): a cancel requested then is confirmed, and the exit it freed escalates.
_NEXT_CYCLE = timedelta(minutes=1)

# The youngest generation's collection threshold during a replay (Python's default is 700).
_REPLAY_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def _collector_for_replay() -> Iterator[None]:
    """While a replay runs: what exists when it starts (the bars, the calendar, the modules)
    lives until it ends, so it is moved out of the garbage collector's sight (``gc.freeze``)
    instead of being walked again by every full collection (~10 s on a million bars), and the
    young generation is collected less often (a replay allocates many short-lived objects and
    few cycles). Both are undone when the replay ends, however it ends."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], _REPLAY_GEN0_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@attrs.define
class ReplayResult:
    strategy: str
    symbols: tuple[str, ...]
    # What the session driver did: signals, decisions, exits, scanner candidates.
    tally: SessionTally
    bars: int = 0
    days: int = 0
    # Bars on days the exchange had no session (bad data): in the history, not traded on.
    bars_without_session: int = 0
    starting_equity: Decimal = ZERO
    final_equity: Decimal = ZERO


@attrs.frozen(kw_only=True)
class ReplayProgress:
    """How far a replay got: its last session (by its bars' time) and what it had counted.

    A checkpointed replay stores it with each checkpoint; ``ReplayRunner.run(after=...)``
    continues from it.
    """

    last_session: datetime
    bars: int
    days: int
    starting_equity: Decimal
    tally: SessionTally

    @classmethod
    def of(cls, result: ReplayResult, last_session: datetime) -> ReplayProgress:
        return cls(
            last_session=last_session,
            bars=result.bars,
            days=result.days,
            starting_equity=result.starting_equity,
            tally=result.tally,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "last_session": self.last_session.isoformat(),
            "bars": self.bars,
            "days": self.days,
            "starting_equity": str(self.starting_equity),
            "tally": self.tally.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReplayProgress:
        return cls(
            last_session=datetime.fromisoformat(data["last_session"]),
            bars=data["bars"],
            days=data["days"],
            starting_equity=Decimal(data["starting_equity"]),
            tally=SessionTally.from_json(data["tally"]),
        )


class ReplayRunner:
    """Drives one strategy over bars of several symbols, session by session."""

    def __init__(
        self,
        *,
        strategy: type[Strategy],
        bars: Mapping[str, list[Bar]],
        pipeline: OrderPipeline,
        broker: PaperBroker,
        calendar: TradingCalendar,
        clock: SimClock,
        focus: Focus | None = None,
    ) -> None:
        self.bars = dict(bars)
        self.pipeline = pipeline
        self.broker = broker
        self.calendar = calendar
        self.clock = clock
        self.driver = SessionDriver(pipeline, strategy, focus=focus)
        self._times = {s: [b.time for b in series] for s, series in self.bars.items()}
        for symbol, times in self._times.items():
            for before, after in itertools.pairwise(times):
                if after <= before:
                    raise ValueError(
                        f"bars of {symbol} must be in strictly increasing time order: "
                        f"{after.isoformat()} follows {before.isoformat()}"
                    )
        # Indicator columns, computed once per series (see tradekit.strategy.history).
        self._columns: dict[str, dict[Hashable, Sequence[object]]] = {s: {BAR_TIMES: t} for s, t in self._times.items()}

    def run(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        after: ReplayProgress | None = None,
        on_session_end: Callable[[ReplayResult, datetime], None] | None = None,
    ) -> ReplayResult:
        """Replay every session; ``progress`` is told how many bars each session consumed.

        ``after``: continue a replay that stopped after that session (its ledger and paper
        account restored to that point). ``on_session_end`` is called after each session (a
        checkpointed replay saves its progress there).
        """
        with _collector_for_replay():
            return self._run(progress, after, on_session_end)

    def _run(
        self,
        progress: Callable[[int], None] | None,
        after: ReplayProgress | None,
        on_session_end: Callable[[ReplayResult, datetime], None] | None,
    ) -> ReplayResult:
        driver, pipeline, clock, broker = self.driver, self.pipeline, self.clock, self.broker
        exits = pipeline.settings.exits
        result = ReplayResult(strategy=driver.strategy_cls.name, symbols=tuple(sorted(self.bars)), tally=driver.tally)
        result.starting_equity = broker.get_account().equity
        days = sorted({t for times in self._times.values() for t in times})
        # Each symbol's next bar: a day's bars are found by advancing these, not by an index
        # of every (day, symbol) pair (a million tuples on a million bars).
        cursor = dict.fromkeys(self.bars, 0)
        if after is not None:
            cursor = {s: bisect.bisect_right(times, after.last_session) for s, times in self._times.items()}
            driver.resume_after(
                after.last_session,
                after.tally,
                {s: History(self.bars[s], n, self._columns[s]) for s, n in cursor.items() if n > 0},
            )
            result.tally, result.bars, result.days = driver.tally, after.bars, after.days
            result.starting_equity = after.starting_equity
            days = days[bisect.bisect_right(days, after.last_session) :]
        for day in days:
            todays = []
            for symbol, i in cursor.items():
                times = self._times[symbol]
                if i < len(times) and times[i] == day:
                    todays.append((symbol, i))
            for symbol, i in todays:
                cursor[symbol] = i + 1
            session = self.calendar.session_of_bar(day)
            if session is None:
                # Bad data: a bar on a day the exchange had no session. The live trader never
                # finds such a bar ready, so the replay does not trade on it either; it stays
                # in the strategy's history, as it would in a live feed's.
                log.warning(
                    "no %s session for the bars stamped %s (%s): not traded on",
                    self.calendar.name,
                    day.isoformat(),
                    ", ".join(symbol for symbol, _ in todays),
                )
                result.bars_without_session += len(todays)
                if progress is not None:
                    progress(len(todays))
                continue
            # The session's steps at the moments the live trader's cycles find them due
            # (``LiveTrader``): the bar is stamped at (or, on a half day, after) the close.
            opens_at, market_closes, closes_at = session.open, session.close, day
            window = session.execution_window(exits.window_start_minutes, exits.window_end_minutes)
            # --- the open: the market takes the day's opening prices ------------------------
            clock.now = opens_at
            opens = {symbol: self.bars[symbol][i].open for symbol, i in todays}
            broker.set_prices(opens, opens_at)
            pipeline.apply_events()
            if window.opens_at > opens_at:
                # As the live trader's cycle at the open: an exit whose window passed unexecuted
                # (its symbol had no price) escalates now, into today's window when that is
                # its rule, and so goes out when today's window opens.
                driver.maintain(opens)
            # --- the exit window opens: exits, then the buys queued at the last close; not
            # when it opens after the market closed (a late window on a half day) -----------
            if window.opens_at < market_closes:
                clock.now = min(window.opens_at, closes_at)
                driver.open_session(opens)
            # --- the exit window closed: exits it left unexecuted escalate, as over the live
            # trader's cycles after its end: the first cancels a limit sell left resting (its
            # events applied as that cycle ends), the next, the cancel confirmed, escalates the
            # exit (a market-on-close order goes out that session, before the close) ---------
            after_window = window.closes_at + timedelta(minutes=1)
            if window.closes_at < closes_at:
                clock.now = after_window
                driver.maintain(opens)
                pipeline.apply_events()
            if after_window + _NEXT_CYCLE < closes_at:
                clock.now = after_window + _NEXT_CYCLE
                pipeline.apply_events()
                driver.maintain(opens)
            # --- the close: the market takes the closing prices, the strategy runs; then, as
            # at every cycle, exits in a window still open retried and one that ended with the
            # session escalated ------------------------------------------------------------------
            clock.now = closes_at
            closes = {symbol: self.bars[symbol][i].close for symbol, i in todays}
            broker.set_prices(closes, closes_at)
            pipeline.apply_events()
            driver.close_session(
                {symbol: History(self.bars[symbol], i + 1, self._columns[symbol]) for symbol, i in todays}
            )
            driver.maintain(closes)
            result.bars += len(todays)
            result.days += 1
            if on_session_end is not None:
                on_session_end(result, day)
            if progress is not None:
                progress(len(todays))
        pipeline.apply_events()
        result.final_equity = broker.get_account().equity
        return result
