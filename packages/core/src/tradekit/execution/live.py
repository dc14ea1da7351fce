"""Live trading against a broker plugin: the session driver on the exchange's clock.

``LiveTrader.cycle`` runs every ``interval`` seconds. It reads the broker's clock (that is
"now", see ``tradekit.execution.clock``), applies the broker's order events, and hands the
session's steps to ``SessionDriver`` (``tradekit.execution.session``) when they fall due:

- the close phase, once per session, keyed to the exchange calendar's last close (not the
  date: a cycle after midnight UTC does not run the strategy again): the strategy runs on
  each symbol's bar of that session. Daily bars are stamped no earlier than their session's
  close, so the session in progress is never among them; a bar not in the feed yet
  (published late, or a half day's bar stamped at the regular close) is asked for again on
  later cycles, until the next open. A trader started during a session runs it on the last
  completed session's bars, unless its previous process already did (its heartbeat in the
  ledger names the newest bar the strategy ran on): then the bars are only read, for the
  market snapshot, since the positions the strategy would see may have changed since.
- the open phase, once per session, from the start of the exit window while the broker says
  the market is open: due exits, then the queued buys (each judged once, and only in a
  session that opened after its signal);
- on every other cycle, the exits' upkeep: retries while the window is open, escalation
  once it has passed.

``run_async`` drives cycles from asyncio (the broker calls run in a worker thread, so a
slow broker never blocks the event loop). When it ends as the trader's own shutdown (its
cycles done, or cancelled: Ctrl-C, SIGTERM) it marks the trader's heartbeat as a clean stop
(``stop``); a trader that starts again and finds its last heartbeat without that mark
stopped uncleanly (it crashed or was killed) and logs it as an error, which the error relay
notifies (``[notifications]``): when, its last heartbeat, and its orders left in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from tradekit.broker.errors import BrokerError
from tradekit.broker.protocol import Broker, MarketClock, StreamHealth
from tradekit.data.checks import series_problem
from tradekit.data.source import BarSource
from tradekit.domain.market import Bar
from tradekit.execution.clock import BrokerClock, ClockNotSynced
from tradekit.execution.pipeline import BuyOutcome, OrderPipeline
from tradekit.execution.session import Focus, SessionDriver, startup
from tradekit.health.heartbeat import PriceMark, StreamStatus, TraderHeartbeat, trader_name
from tradekit.reconcile.report import ReconcileReport
from tradekit.scanner.files import read_candidates
from tradekit.strategy.base import Strategy

log = logging.getLogger(__name__)

# The live feed is asked for this many times the strategy's ``history_bars`` in sessions
# (and this many more), so a symbol with gaps in its bars still has them all.
_HISTORY_MARGIN = 1.5
_HISTORY_EXTRA_SESSIONS = 10

# What a trader's last heartbeat note begins with once it stopped by its own shutdown
# (``LiveTrader.stop``); the next cycle's heartbeat replaces it. No cycle note begins so.
CLEAN_STOP = "stopped cleanly"


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
    # The broker could not be read: the cycle did nothing (``note`` says why).
    skipped: bool = False
    # Symbols the strategy raised on this cycle, with the error (the others carried on).
    strategy_errors: dict[str, str] = attrs.field(factory=dict)


class LiveTrader:
    """One strategy trading a set of symbols through one broker, session by session."""

    def __init__(
        self,
        pipeline: OrderPipeline,
        strategy: type[Strategy],
        symbols: Sequence[str],
        *,
        focus: Focus | None = None,
        candidates_file: Path | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.driver = SessionDriver(pipeline, strategy, focus=focus)
        # The guard goes by the name the heartbeats do, which a restart keeps (on any host):
        # the restarted trader takes over the part of a stale-stream hold it placed before. A
        # guard given a name of its own keeps it.
        self.driver.guard.go_by(trader_name(strategy.name, pipeline.broker.name))
        self.symbols = tuple(dict.fromkeys(symbols))
        self.candidates_file = candidates_file
        # The session (by its close) whose bars the strategy runs on, the symbols whose bar of
        # it the strategy has seen, and whether that session is finished with.
        self._session: datetime | None = None
        self._session_seen: set[str] = set()
        self._session_complete = False
        # The session (by its open) whose open phase ran in this process.
        self._opened: datetime | None = None
        # The session (by its close) whose close phase an earlier process ran (its heartbeat
        # names the newest bar the strategy ran on): not run again, see ``startup``.
        self._ran_before: datetime | None = None
        # Held while a cycle runs: a stop waits for the cycle in progress (and its heartbeat).
        self._cycling = threading.Lock()
        # Whether startup looked at how the previous process of this trader ended.
        self._checked_last_stop = False
        # The feed's bad series already warned of (a cycle asks again every interval).
        self._bar_problems_told: set[str] = set()

    @property
    def broker(self) -> Broker:
        return self.pipeline.broker

    @property
    def strategy_cls(self) -> type[Strategy]:
        return self.driver.strategy_cls

    def startup(self) -> ReconcileReport:
        self._read_clock()
        if not self._checked_last_stop:
            self._tell_unclean_stop()
            self._checked_last_stop = True
        report = startup(self.pipeline)
        self._resume()
        return report

    def _tell_unclean_stop(self) -> None:
        """Log (as an error: the error relay notifies it) that this trader starts again after
        an unclean stop: its last heartbeat does not say it stopped by its own shutdown. A
        first start (no heartbeat of this trader) and a start after a clean stop say nothing.
        Its orders the ledger has not settled are counted before startup settles them."""
        strategy = self.strategy_cls.name
        name = trader_name(strategy, self.broker.name)
        try:
            with self.pipeline.ledger.reading() as tx:
                last = next((b for b in tx.trader_heartbeats() if b.trader == name), None)
                if last is None or last.cycle_note.startswith(CLEAN_STOP):
                    return
                pending = [p.intent for p in tx.pending_intents() if p.intent.strategy == strategy]
        except Exception:
            log.exception("whether this trader stopped cleanly last time could not be read")
            return
        flight = ", ".join(f"{i.side.value} {i.symbol}" for i in pending)
        log.error(
            "%s restarted at %s after an unclean stop (crashed or killed): its last heartbeat was at %s "
            "(pid %d on %s); %d of its orders were in flight%s",
            name,
            _now(self).isoformat(),
            last.cycle_at.isoformat(),
            last.pid,
            last.host,
            len(pending),
            f" ({flight}), settled with the broker now" if pending else "",
        )

    def stop(self) -> None:
        """Mark this trader's heartbeat as a clean stop (its own shutdown), after the cycle in
        progress, if any, ends; the next start then says nothing of it. Without a heartbeat
        (no cycle ever recorded) there is nothing to mark. A failure is logged, never raised."""
        name = trader_name(self.strategy_cls.name, self.broker.name)
        with self._cycling:
            try:
                with self.pipeline.ledger.transaction() as tx:
                    last = next((b for b in tx.trader_heartbeats() if b.trader == name), None)
                    if last is not None:
                        note = f"{CLEAN_STOP} at {_now(self).isoformat()} (pid {os.getpid()})"
                        tx.record_heartbeat(attrs.evolve(last, cycle_note=note))
            except Exception:
                log.exception("the trader's clean stop was not recorded: its next start will report an unclean one")

    def _resume(self) -> None:
        """Learn from this trader's last heartbeat which session's close phase already ran.

        A process started after a session's close phase ran must not run the strategy on
        that session's bars again: the open since may have changed the positions it sees
        (a sell executed makes a flat symbol a buy again), and the replay runs each bar once.
        The bars are still read, for the market snapshot of the next open's buys; the
        session's equity is not recorded twice."""
        name = trader_name(self.strategy_cls.name, self.broker.name)
        try:
            with self.pipeline.ledger.reading() as tx:
                beats = [b for b in tx.trader_heartbeats() if b.trader == name]
        except Exception:
            log.exception("this trader's last heartbeat could not be read: the last close phase may run again")
            return
        newest = beats[0].last_bar_at if beats else None
        session = self.pipeline.calendar.session_of_bar(newest) if newest is not None else None
        if session is not None:
            self._ran_before = session.close
            self.driver.resume_live(session.close)

    def cycle(self) -> CycleReport:
        with self._cycling:
            report = self._cycle()
            record_heartbeat(self, report)  # what `tradekit serve` judges this trader's health by
        return report

    def _cycle(self) -> CycleReport:
        report = CycleReport()
        try:
            market = self._read_clock()
        except BrokerError as exc:
            report.note = f"broker unavailable, cycle skipped: {exc}"
            report.skipped = True
            log.warning(report.note)
            return report
        self._apply_events(report)
        now = self.pipeline.clock()
        session_close = self.pipeline.calendar.last_close(now)
        if session_close is not None:
            if session_close != self._session:
                self._session, self._session_seen, self._session_complete = session_close, set(), False
            if not self._session_complete:
                self._close_phase(now, session_close, report)
        prices = self.current_prices()
        opens = self._open_phase_due(now, market)
        if opens is not None:
            opened = self.driver.open_session(prices)
            self._opened = opens
            report.exits = len(opened.exits)
            report.buys = opened.buys
        else:
            report.exits = len(self.driver.maintain(prices))
        self._apply_events(report)
        return report

    def _apply_events(self, report: CycleReport) -> None:
        try:
            report.events_applied += self.pipeline.apply_events()
        except BrokerError as exc:
            # The broker answered its clock, only its order events failed (an event stream
            # down): the cycle goes on, since exits read the broker's positions themselves,
            # unfinished orders are looked up, and the guard judges the stream's health.
            report.note = f"order events unavailable, the cycle went on without them: {exc}"
            log.warning(report.note)

    def _read_clock(self) -> MarketClock:
        # A broker-driven clock is re-anchored on the broker's reading once per cycle.
        clock = self.pipeline.clock
        return clock.sync() if isinstance(clock, BrokerClock) else self.broker.get_clock()

    def _open_phase_due(self, now: datetime, market: MarketClock) -> datetime | None:
        """The open of the session whose open phase is due now, if any: from the start of the
        exit window to the close, while the broker says the market is open, once."""
        calendar = self.pipeline.calendar
        opens = calendar.last_open(now)
        if opens is None or opens == self._opened or not market.is_open:
            return None
        settings = self.pipeline.settings.exits
        window = calendar.execution_window(
            opens - timedelta(microseconds=1), settings.window_start_minutes, settings.window_end_minutes
        )
        if now < window.opens_at or now >= calendar.session_of_open(opens).close:
            return None
        return opens

    def _close_phase(self, now: datetime, session_close: datetime, report: CycleReport) -> None:
        """Run the strategy on each symbol's bar of the session that closed at ``session_close``.

        A symbol whose bar of that session is not in the feed yet is asked for again on the
        next cycles, until the next session opens; then it is reported and given up on. A
        feed that cannot be read at all is asked again every cycle, past the open too: the
        strategy then runs when it answers, as after a restart during a session.
        """
        calendar = self.pipeline.calendar
        universe = self.universe()
        waiting = [s for s in universe if s not in self._session_seen]
        ready = self._completed_bars(now, session_close, waiting)
        if ready is None:
            return  # the bars were unavailable: the next cycle asks again
        if ready and session_close == self._ran_before:
            # Ran by the process before this one (``_resume``): the bars only, no strategy.
            self._session_seen.update(ready)
            self.driver.remember(ready)
            log.info(
                "the close phase of the session that closed %s ran before this process started: "
                "its bars are read, the strategy does not run on them again",
                session_close.isoformat(),
            )
            self._session_complete = True
            return
        if ready:
            self._session_seen.update(ready)
            closed = self.driver.close_session(ready)
            report.signals = closed.signals
            report.strategy_errors = closed.strategy_errors
        missing = [s for s in universe if s not in self._session_seen]
        if not missing:
            self._session_complete = True
        elif now >= calendar.next_open(session_close):
            log.warning(
                "no bar of the session that closed %s for %s: the strategy did not run on them",
                session_close.isoformat(),
                ", ".join(missing),
            )
            self._session_complete = True

    def universe(self) -> tuple[str, ...]:
        """The symbols the strategy runs on: those asked for, the scanner's latest candidates
        file's (read afresh each session, so a daily ``tradekit scan`` feeds it), and every one
        held (a held symbol's exits are planned whatever else changed)."""
        candidates: tuple[str, ...] = ()
        if self.candidates_file is not None:
            try:
                candidates = read_candidates(self.candidates_file).symbols
            except (OSError, ValueError) as exc:
                log.warning("candidates unavailable, trading the other symbols: %s", exc)
        held = sorted(self.pipeline.ledger.open_positions())
        return tuple(dict.fromkeys([*self.symbols, *candidates, *held]))

    def _completed_bars(
        self, now: datetime, session_close: datetime, symbols: Sequence[str]
    ) -> dict[str, list[Bar]] | None:
        """The symbols whose latest bar is of the session closing at ``session_close``, with
        their bars; None when the feed could not be read."""
        source = self.broker
        if not isinstance(source, BarSource):
            raise TypeError(f"broker {self.broker.name} provides no daily bars (BarSource); cannot run a strategy")
        sessions = int(self.strategy_cls.history_bars * _HISTORY_MARGIN) + _HISTORY_EXTRA_SESSIONS
        try:
            fetched = source.daily_bars(symbols, self.pipeline.calendar.open_sessions_back(now, sessions), now)
        except BrokerError as exc:
            log.warning("daily bars unavailable, the strategy waits for the next cycle: %s", exc)
            return None
        calendar = self.pipeline.calendar
        ready: dict[str, list[Bar]] = {}
        for symbol in symbols:  # only what was asked for
            series = fetched.get(symbol) or []
            # The replay refuses such a series outright; here it costs its symbol the cycle.
            problem = series_problem(symbol, series, now)
            if problem is not None:
                if problem not in self._bar_problems_told:
                    self._bar_problems_told.add(problem)
                    log.warning("the feed's bars of %s cannot be traded on, asked for each cycle: %s", symbol, problem)
                continue
            # The bar of that session, matched as the replay matches them.
            session = calendar.session_of_bar(series[-1].time) if series else None
            if session is not None and session.close == session_close:
                ready[symbol] = series
        return ready

    def current_prices(self) -> dict[str, Decimal]:
        return current_prices(self.pipeline, self.universe(), self.driver.histories)


def current_prices(
    pipeline: OrderPipeline, symbols: Sequence[str], bars: Mapping[str, Sequence[Bar]] | None = None
) -> dict[str, Decimal]:
    """Latest prices of ``symbols`` and every held symbol.

    A broker with a price feed (``PriceSource``) answers for itself: a symbol it has no price
    for has no market now (its exit waits, its buy is BLOCKed), as in a replay, whose feed
    prices only the symbols that trade that day. When that feed fails, only the broker's
    positions are priced: a last close is not the price now, and a buy judged on it would
    see no overnight gap however far the market opened from it. A broker without a feed is
    asked for its positions' prices, and the last completed close stands in for the rest.
    """
    broker = pipeline.broker
    wanted = sorted(set(symbols) | set(pipeline.ledger.open_positions()))
    if isinstance(broker, PriceSource):
        try:
            return broker.latest_prices(wanted)
        except BrokerError as exc:
            log.warning("latest prices unavailable, only the positions' prices are known this cycle: %s", exc)
            bars = None
    prices: dict[str, Decimal] = {}
    try:
        for position in broker.get_positions():
            if position.current_price is not None:
                prices[position.symbol] = position.current_price
    except BrokerError as exc:
        log.warning("positions unavailable for prices: %s", exc)
    for symbol in wanted:
        series = (bars or {}).get(symbol)
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

    A run without an end that finds the broker unavailable at startup tries again every
    ``interval_seconds`` (a bounded run raises the ``BrokerError``: its caller must see it).
    ``on_cycle`` sees each report as soon as its cycle ends; an error it raises (a closed
    pipe, say) is logged and the trading goes on. The reports are returned when
    ``cycles`` is given; a run without an end keeps none (it would grow for as long as it
    trades) and only stops by cancellation.

    A run that ends with its cycles done, or cancelled once it started, is the trader's own
    shutdown: its heartbeat is marked as a clean stop (``LiveTrader.stop``, after the cycle
    in progress). One that ends by an error leaves the heartbeat as it was: an unclean stop.
    """
    reports: list[CycleReport] = []
    while True:
        try:
            await asyncio.to_thread(trader.startup)
            break
        except BrokerError as exc:
            if cycles is not None:
                raise
            log.warning("broker unavailable at startup, trying again in %s s: %s", interval_seconds, exc)
            await asyncio.sleep(interval_seconds)
    done = 0
    try:
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
    except asyncio.CancelledError:
        # The cycle in progress goes on in its thread: ``stop`` waits for it.
        await asyncio.to_thread(trader.stop)
        raise
    await asyncio.to_thread(trader.stop)
    return reports


# --- the heartbeat tradekit serve reads ----------------------------------------------------------


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
