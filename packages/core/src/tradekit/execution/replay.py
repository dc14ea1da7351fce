"""Replay a strategy over daily bars through the whole pipeline, on the paper broker.

Each trading day follows the two-phase rhythm a daily strategy has live:

1. at the open, the paper market takes the day's open prices; planned exits whose window
   is open are executed (limit at the current price); buy signals decided at the previous
   close are judged by the decision engine — with their reference price, so an overnight
   gap beyond the limit turns them into SKIPs — and sent;
2. at the close, the paper market takes the closing prices; the strategy sees the day's bar
   and its position and emits signals: buys wait for the next open, sells become exit
   intents for the next session's window.

Nothing here is a simplified path: the decision engine, sizing, limits, the ledger and the
paper broker are the same code a live run uses.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import attrs
import numpy as np

from tradekit.broker.paper import PaperBroker
from tradekit.decision.context import MarketSnapshot
from tradekit.decision.reasons import BuyAction
from tradekit.domain.market import Bar
from tradekit.domain.positions import Position
from tradekit.domain.signals import Side, Signal
from tradekit.domain.values import ZERO
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import Session, TradingCalendar
from tradekit.exits.intent import ExitState
from tradekit.guard.control import TradingGuard
from tradekit.strategy.base import Strategy, StrategyView
from tradekit.strategy.history import FloatColumn, History

VOLATILITY_LOOKBACK = 20


class SimClock:
    """The replay's notion of now, advanced by the runner."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@attrs.define
class ReplayResult:
    strategy: str
    symbols: tuple[str, ...]
    bars: int = 0
    days: int = 0
    signals: Counter[str] = attrs.field(factory=Counter)
    decisions: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    exits_planned: int = 0
    candidates_by_close: dict[datetime, frozenset[str]] = attrs.field(factory=dict)
    exits_expired: int = 0
    starting_equity: Decimal = ZERO
    final_equity: Decimal = ZERO


class ReplayRunner:
    """Drives one strategy over bars of several symbols, day by day."""

    def __init__(
        self,
        *,
        strategy: Strategy,
        bars: Mapping[str, list[Bar]],
        pipeline: OrderPipeline,
        broker: PaperBroker,
        calendar: TradingCalendar,
        clock: SimClock,
        scan: Callable[[Mapping[str, Sequence[Bar]], datetime], frozenset[str]] | None = None,
    ) -> None:
        self.strategy = strategy
        self.bars = dict(bars)
        self.pipeline = pipeline
        self.broker = broker
        self.calendar = calendar
        self.clock = clock
        self._scan = scan
        # Trading-state guard (issue #13): its automatic triggers run at each close.
        self.guard = TradingGuard.of(pipeline)
        self._times = {s: [b.time for b in series] for s, series in self.bars.items()}
        for symbol, times in self._times.items():
            for before, after in itertools.pairwise(times):
                if after <= before:
                    raise ValueError(
                        f"bars of {symbol} must be in strictly increasing time order: "
                        f"{after.isoformat()} follows {before.isoformat()}"
                    )
        # Indicator columns, computed once per series (see tradekit.strategy.history).
        self._columns: dict[str, dict[Hashable, Sequence[object]]] = {s: {} for s in self.bars}

    def run(self, progress: Callable[[int], None] | None = None) -> ReplayResult:
        """Replay every day; ``progress`` is told how many bars each day consumed."""
        kind = type(self.strategy)
        result = ReplayResult(strategy=kind.name, symbols=tuple(sorted(self.bars)))
        result.starting_equity = self.broker.get_account().equity
        days = sorted({t for times in self._times.values() for t in times})
        # Each symbol's next bar: a day's bars are found by advancing these, not by an index
        # of every (day, symbol) pair (a million tuples on a million bars).
        cursor = dict.fromkeys(self.bars, 0)
        sessions = self._sessions(days)
        queued: list[Signal] = []
        positions: dict[str, Position] = {}
        seen_upto: dict[str, int] = {}
        dirty = True
        for day in days:
            todays = []
            for symbol, i in cursor.items():
                times = self._times[symbol]
                if i < len(times) and times[i] == day:
                    todays.append((symbol, i))
            for symbol, i in todays:
                cursor[symbol] = i + 1
            session = sessions.get(day.date())
            opens_at = session.open if session is not None else day - timedelta(hours=6, minutes=30)
            closes_at = day
            # --- the open -------------------------------------------------------------------
            self.clock.now = opens_at
            opens = {symbol: self.bars[symbol][i].open for symbol, i in todays}
            self.broker.set_prices(opens, opens_at)
            dirty |= self.pipeline.apply_events() > 0
            self.clock.now = opens_at + timedelta(minutes=self.pipeline.settings.exits.window_start_minutes)
            for done in self.pipeline.execute_due_exits(opens):
                if done.intent is not None and done.intent.state is ExitState.EXPIRED:
                    result.exits_expired += 1
            dirty |= self.pipeline.apply_events() > 0
            if queued:
                if dirty:
                    positions = self.pipeline.ledger.open_positions()
                    dirty = False
                index = {symbol: i for symbol, i in todays}
                for signal in queued:
                    i_today = index.get(signal.symbol)
                    if i_today is None:
                        continue  # no market in the symbol today: the signal lapses
                    market = self._snapshot(signal.symbol, i_today, opens[signal.symbol], positions.get(signal.symbol))
                    outcome = self.pipeline.process_buy(signal, kind, market)
                    if outcome.decision is not None:
                        reason = outcome.decision.reasons[0].value if outcome.decision.reasons else ""
                        result.decisions[(outcome.decision.action.value, reason)] += 1
                        if outcome.decision.action in (BuyAction.ENTER_NEW, BuyAction.SCALE_IN):
                            dirty = True
                queued = []
                dirty |= self.pipeline.apply_events() > 0
            # --- the close ------------------------------------------------------------------
            self.clock.now = closes_at
            self.broker.set_prices({symbol: self.bars[symbol][i].close for symbol, i in todays}, closes_at)
            dirty |= self.pipeline.apply_events() > 0
            self.guard.observe_broker(now=closes_at, broker=self.broker)  # trading-state guard (issue #13)
            if dirty:
                positions = self.pipeline.ledger.open_positions()
                dirty = False
            for symbol, i in todays:
                seen_upto[symbol] = i + 1
            focus = None
            if self._scan is not None:
                # Trade only the scanner's candidates, ranked on what was known at this close.
                views = {s: History(self.bars[s], n, self._columns[s]) for s, n in seen_upto.items()}
                focus = self._scan(views, closes_at)
                result.candidates_by_close[closes_at] = focus
            for symbol, i in todays:
                view = StrategyView(
                    symbol=symbol,
                    history=History(self.bars[symbol], i + 1, self._columns[symbol]),
                    position=positions.get(symbol),
                )
                for signal in self.strategy.on_bar(view):
                    result.signals[signal.side.value] += 1
                    if signal.side is Side.SELL:
                        planned = self.pipeline.plan_exit(signal, kind)
                        if planned.intent is not None and planned.note == "":
                            result.exits_planned += 1
                            dirty = True
                    elif focus is None or symbol in focus:
                        queued.append(signal)
            result.bars += len(todays)
            result.days += 1
            if progress is not None:
                progress(len(todays))
        self.pipeline.apply_events()
        result.final_equity = self.broker.get_account().equity
        return result

    def _sessions(self, days: Sequence[datetime]) -> dict[object, Session]:
        if not days:
            return {}
        found = self.calendar.sessions(days[0].date(), days[-1].date())
        return {s.day: s for s in found}

    def _snapshot(self, symbol: str, index: int, price: Decimal, position: Position | None) -> MarketSnapshot:
        series = self.bars[symbol]
        bars_since = None
        if position is not None:
            times = self._times[symbol]
            # Completed bars since the entry filled (at the open of the first bar counted).
            bars_since = index - bisect.bisect_left(times, position.last_entry_time)
        return MarketSnapshot(
            price=price,
            as_of=self.clock.now,
            volatility_pct=_volatility(History(series, index + 1, self._columns[symbol])),
            bars_since_last_entry=bars_since,
        )


def volatility_column(bars: Sequence[Bar]) -> Sequence[float | None]:
    """Standard deviation of the 20 daily returns before each bar, in percent (causal).

    The value at index ``i`` uses the closes of bars ``i-21 .. i-1`` only (up to yesterday).
    A statistic for a regime filter, not money: computed in float (numpy, once per series,
    8 bytes a bar) and handed to the decision as a Decimal rounded to 6 places.
    """
    out = np.full(len(bars), np.nan)
    if len(bars) >= VOLATILITY_LOOKBACK + 2:
        closes = np.array([float(b.close) for b in bars])
        returns = np.diff(closes) / closes[:-1]  # returns[k]: from close k to close k+1
        windows = np.lib.stride_tricks.sliding_window_view(returns, VOLATILITY_LOOKBACK)
        # windows[j] holds returns j .. j+19, i.e. closes j .. j+20: known before bar j+21.
        stds = windows.std(axis=1, ddof=1)
        out[VOLATILITY_LOOKBACK + 1 :] = stds[: len(bars) - VOLATILITY_LOOKBACK - 1]
    return FloatColumn(out)


def _volatility(history: History) -> Decimal | None:
    value = history.at_current(("volatility_pct", VOLATILITY_LOOKBACK), volatility_column)
    return None if value is None else Decimal(str(round(value * 100, 6)))
