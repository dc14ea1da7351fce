"""Live trading against a broker plugin: startup recovery, reconciliation, cycles.

A cycle applies broker events, executes exits whose window is open, runs the strategy on
each symbol's latest completed daily bar once per session (buys wait for the next open,
sells become exit intents), and sends the buys queued for the open. The same
``OrderPipeline`` as a paper replay does all of it. ``run_async`` drives cycles from asyncio
(the broker calls run in a worker thread, so a slow broker never blocks the event loop).

"Once per session" is keyed to the exchange calendar's last close, not to the date or the
broker's clock: a cycle after midnight UTC, before the next open, does not run the
strategy again. It runs on each symbol's bar of that session; daily bars are stamped no
earlier than their session's close, so the session in progress is never among them, and a
bar not in the feed yet (published late, or a half day's bar stamped at the regular close)
is asked for again on later cycles, until the next open. A trader started (or restarted)
during a session runs the strategy on the last completed session's bars and rebuilds the
buys that session queued, so a restart during the open does not lose them. A queued buy is
judged once: one already decided (before the restart) is dropped, and one is only sent in a
session that opened after the signal was made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

import attrs

from tradekit.broker.errors import BrokerError
from tradekit.broker.protocol import Broker
from tradekit.data.source import BarSource
from tradekit.decision.context import MarketSnapshot
from tradekit.domain.market import Bar
from tradekit.domain.signals import Side, Signal
from tradekit.execution.pipeline import BuyOutcome, OrderPipeline
from tradekit.guard.control import TradingGuard
from tradekit.reconcile.reconciler import Reconciler
from tradekit.reconcile.report import ReconcileReport
from tradekit.strategy.base import Strategy, StrategyView
from tradekit.strategy.history import History

log = logging.getLogger(__name__)

HISTORY_DAYS = 400


@runtime_checkable
class PriceSource(Protocol):
    """Latest trade prices (a broker plugin may implement this; else the last close is used)."""

    def latest_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]: ...


@attrs.define
class CycleReport:
    events_applied: int = 0
    exits: int = 0
    signals: int = 0
    buys: list[BuyOutcome] = attrs.field(factory=list)
    note: str = ""
    # Symbols the strategy raised on this cycle, with the error (the others carried on).
    strategy_errors: dict[str, str] = attrs.field(factory=dict)


class LiveTrader:
    """One strategy trading a set of symbols through one broker."""

    def __init__(self, pipeline: OrderPipeline, strategy: type[Strategy], symbols: Sequence[str]) -> None:
        self.pipeline = pipeline
        self.strategy_cls = strategy
        self.strategy = strategy()
        self.symbols = tuple(symbols)
        # Buys waiting for the open, by signal id (the same signal is queued once).
        self._queued: dict[str, Signal] = {}
        # The session (by its close) whose bars the strategy is run on, the symbols whose bar
        # of it the strategy has seen, and whether that session is finished with.
        self._session: datetime | None = None
        self._session_seen: set[str] = set()
        self._session_complete = False
        self._bars: dict[str, list[Bar]] = {}
        # Trading-state guard (issue #13): its automatic triggers run once per cycle.
        self.guard = TradingGuard.of(pipeline)

    @property
    def broker(self) -> Broker:
        return self.pipeline.broker

    def startup(self) -> ReconcileReport:
        return startup(self.pipeline)

    def cycle(self) -> CycleReport:
        report = CycleReport()
        now = self.pipeline.clock()
        try:
            report.events_applied = self.pipeline.apply_events()
            clock = self.broker.get_clock()
        except BrokerError as exc:
            report.note = f"broker unavailable, cycle skipped: {exc}"
            log.warning(report.note)
            return report
        self.guard.observe_broker(now=now, broker=self.broker)  # trading-state guard (issue #13)
        prices = self.current_prices()
        report.exits = len(self.pipeline.execute_due_exits(prices))
        session_close = self.pipeline.calendar.last_close(now)
        if session_close is not None:
            if session_close != self._session:
                self._session, self._session_seen, self._session_complete = session_close, set(), False
            if not self._session_complete:
                self._signal_session(now, session_close, report)
        if clock.is_open and self._queued:
            for signal in self._due(now):
                price = prices.get(signal.symbol)
                market = MarketSnapshot(price=price, as_of=now)
                report.buys.append(self.pipeline.process_buy(signal, self.strategy_cls, market))
            report.events_applied += self.pipeline.apply_events()
        return report

    def _due(self, now: datetime) -> list[Signal]:
        """Take the queued buys a session that opened after their signal may send, leaving
        the rest queued; a buy already decided (by this process before a restart) is dropped."""
        calendar = self.pipeline.calendar
        due = [s for s in self._queued.values() if calendar.next_open(s.generated_at) <= now]
        for signal in due:
            del self._queued[signal.signal_id]
        undecided = []
        with self.pipeline.ledger.reading() as tx:
            for signal in due:
                if tx.signal_decided(signal.symbol, signal.signal_id, since=signal.generated_at):
                    log.info("buy signal %s for %s already decided; not judged again", signal.signal_id, signal.symbol)
                else:
                    undecided.append(signal)
        return undecided

    def _signal_session(self, now: datetime, session_close: datetime, report: CycleReport) -> None:
        """Run the strategy on each symbol's bar of the session that closed at ``session_close``.

        A symbol whose bar of that session is not in the feed yet (a feed that publishes late,
        or one that stamps a half day's bar at the regular close) is asked for again on the
        next cycles, until the next session opens; then it is reported and given up on. A
        feed that cannot be read at all is asked again every cycle, past the open too: the
        strategy then runs when it answers, as after a restart during a session.
        """
        calendar = self.pipeline.calendar
        waiting = [s for s in self.symbols if s not in self._session_seen]
        signals = self._run_strategy(now, report, session_close, waiting)
        if signals is None:
            return  # the bars were unavailable: the next cycle asks again
        report.signals = signals
        missing = [s for s in self.symbols if s not in self._session_seen]
        if not missing:
            self._session_complete = True
        elif now >= calendar.next_open(session_close):
            log.warning(
                "no bar of the session that closed %s for %s: the strategy did not run on them",
                session_close.isoformat(),
                ", ".join(missing),
            )
            self._session_complete = True

    def _run_strategy(
        self, now: datetime, report: CycleReport, session_close: datetime, symbols: Sequence[str]
    ) -> int | None:
        """Run the strategy on the symbols whose latest bar is of the session closing at
        ``session_close``; how many signals it gave, or None when the bars were unavailable.

        A strategy that raises on one symbol is reported (and logged with its traceback) and
        the other symbols carry on: one bad series must not stop the trader, whose later
        cycles still execute every planned exit.
        """
        source = self.broker
        if not isinstance(source, BarSource):
            raise TypeError(f"broker {self.broker.name} provides no daily bars (BarSource); cannot run a strategy")
        try:
            fetched = source.daily_bars(symbols, now - timedelta(days=HISTORY_DAYS), now)
        except BrokerError as exc:
            log.warning("daily bars unavailable, the strategy waits for the next cycle: %s", exc)
            return None
        self._bars.update(fetched)
        tz = self.pipeline.calendar.tz
        session_day = session_close.astimezone(tz).date()
        positions = self.pipeline.ledger.open_positions()
        count = 0
        for symbol in dict.fromkeys(symbols):  # only what was asked for, each once
            series = fetched.get(symbol) or []
            if not series or series[-1].time.astimezone(tz).date() != session_day:
                continue  # this session's bar is not there yet
            self._session_seen.add(symbol)
            view = StrategyView(symbol=symbol, history=History(series, len(series)), position=positions.get(symbol))
            try:
                signals = list(self.strategy.on_bar(view))
            except Exception as exc:
                report.strategy_errors[symbol] = f"{type(exc).__name__}: {exc}"
                log.exception(
                    "strategy %s raised on %s; no signals for it this session", self.strategy_cls.name, symbol
                )
                continue
            for signal in signals:
                count += 1
                if signal.side is Side.SELL:
                    self.pipeline.plan_exit(signal, self.strategy_cls)
                else:
                    self._queued.setdefault(signal.signal_id, signal)
        return count

    def current_prices(self) -> dict[str, Decimal]:
        return current_prices(self.pipeline, self.symbols, self._bars)


def startup(pipeline: OrderPipeline) -> ReconcileReport:
    """Settle intents left in flight, then reconcile with the broker (in that order)."""
    pipeline.check_fractional_support()
    unsettled = pipeline.recover()
    if unsettled:
        log.warning("%d order intents could not be settled yet; their symbols stay blocked", len(unsettled))
    p = pipeline
    return Reconciler(p.ledger, p.broker, p.settings.reconciliation, p.plugins).run(p.clock())


def current_prices(
    pipeline: OrderPipeline, symbols: Sequence[str], bars: Mapping[str, Sequence[Bar]] | None = None
) -> dict[str, Decimal]:
    """Latest prices of ``symbols`` and every held symbol: the broker's quotes when it has
    them, else its positions' prices, else the last daily close."""
    broker = pipeline.broker
    wanted = sorted(set(symbols) | set(pipeline.ledger.open_positions()))
    if isinstance(broker, PriceSource):
        try:
            return broker.latest_prices(wanted)
        except BrokerError as exc:
            log.warning("latest prices unavailable: %s", exc)
    prices: dict[str, Decimal] = {}
    try:
        for position in broker.get_positions():
            if position.current_price is not None:
                prices[position.symbol] = position.current_price
    except BrokerError as exc:
        log.warning("positions unavailable for prices: %s", exc)
    for symbol, series in (bars or {}).items():
        if series and symbol not in prices:
            prices[symbol] = series[-1].close
    return prices


async def run_async(
    trader: LiveTrader,
    *,
    interval_seconds: float,
    cycles: int | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
) -> list[CycleReport]:
    """Run cycles every ``interval_seconds`` until cancelled (or ``cycles`` have run).

    ``on_cycle`` sees each report as soon as its cycle ends; an error it raises (a closed
    pipe, say) is logged and the trading goes on. The reports are returned when
    ``cycles`` is given; a run without an end keeps none (it would grow for as long as it
    trades) and only stops by cancellation.
    """
    reports: list[CycleReport] = []
    await asyncio.to_thread(trader.startup)
    done = 0
    while cycles is None or done < cycles:
        report = await asyncio.to_thread(trader.cycle)
        done += 1
        if on_cycle is not None:
            try:
                on_cycle(report)
            except Exception:
                log.exception("showing a cycle's report failed; trading goes on")
        if cycles is not None:
            reports.append(report)
        if cycles is None or done < cycles:
            await asyncio.sleep(interval_seconds)
    return reports
