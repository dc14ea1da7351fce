"""One session driver for the replay and the live trader.

A daily strategy lives by the session's rhythm:

- **at the open**, when the exit window starts (``exits.window_start_minutes`` after it):
  planned exits whose window is open are executed, then the buys queued at the previous
  close are judged and sent;
- **during the session**: exits are retried while their window is open, and a window that
  closed with its exit unexecuted escalates (``exits.on_missed_window``);
- **after the close**: the strategy sees each symbol's bar of that session and its
  position; a sell becomes an exit intent for the next session's window, a buy is queued in
  the ledger for the next open (only the focus symbols' buys when the scanner is on).

``SessionDriver`` does each of these steps, the same way for a replay and a live run. What
differs is small and lives in the two schedulers: *when* the steps run (a simulated clock
walking historical sessions in ``tradekit.execution.replay``; the exchange's clock read from
the broker every cycle in ``tradekit.execution.live``) and *with what* (bars and prices from
a file, or from the broker's feed). docs/session-driver.md tells the whole story.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from tradekit.broker.errors import BrokerError
from tradekit.config.settings import ScannerSettings
from tradekit.decision.reasons import BuyAction
from tradekit.domain.market import Bar
from tradekit.domain.signals import Side, Signal
from tradekit.execution.market import market_snapshot
from tradekit.execution.pipeline import BuyOutcome, ExitOutcome, OrderPipeline
from tradekit.exits.intent import ExitState
from tradekit.plugins import Plugins
from tradekit.reconcile.report import ReconcileReport
from tradekit.strategy.base import Strategy, StrategyView
from tradekit.strategy.history import History

log = logging.getLogger(__name__)


def startup(pipeline: OrderPipeline) -> ReconcileReport:
    """Start trading on a ledger and a broker: settle the orders left in flight (and look again
    for those given up on), then reconcile with the broker, in that order."""
    pipeline.check_fractional_support()
    unsettled = pipeline.recover()
    if unsettled:
        log.warning("%d order intents could not be settled yet; their symbols stay blocked", len(unsettled))
    return pipeline.reconcile()


class Focus:
    """The symbols a strategy may buy after a close when the scanner is on: the top
    candidates ranked on the bars known at that close, plus the baseline symbols."""

    def __init__(self, plugins: Plugins, settings: ScannerSettings) -> None:
        self._plugins = plugins
        self._top_n = settings.top_n
        self._baseline = frozenset(settings.baseline_symbols)

    def at_close(self, histories: Mapping[str, Sequence[Bar]], as_of: datetime) -> frozenset[str]:
        ranked = self._plugins.scan_candidates(histories, as_of, self._top_n)
        return frozenset(c.symbol for c in ranked) | self._baseline


@attrs.define
class SessionTally:
    """What the driver did since it started: the figures a run summary reports."""

    signals: Counter[str] = attrs.field(factory=Counter)
    decisions: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    exits_planned: int = 0
    exits_expired: int = 0
    exits_rolled: int = 0
    buys_not_in_focus: int = 0
    strategy_errors: int = 0
    candidates_by_close: dict[datetime, frozenset[str]] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The tally as JSON (a checkpointed replay keeps it with its checkpoint)."""
        return {
            "signals": dict(self.signals),
            "decisions": [[action, reason, count] for (action, reason), count in self.decisions.items()],
            "exits_planned": self.exits_planned,
            "exits_expired": self.exits_expired,
            "exits_rolled": self.exits_rolled,
            "buys_not_in_focus": self.buys_not_in_focus,
            "strategy_errors": self.strategy_errors,
            "candidates_by_close": [[t.isoformat(), sorted(found)] for t, found in self.candidates_by_close.items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionTally:
        return cls(
            signals=Counter(data["signals"]),
            decisions=Counter({(action, reason): count for action, reason, count in data["decisions"]}),
            exits_planned=data["exits_planned"],
            exits_expired=data["exits_expired"],
            exits_rolled=data["exits_rolled"],
            buys_not_in_focus=data["buys_not_in_focus"],
            strategy_errors=data["strategy_errors"],
            candidates_by_close={
                datetime.fromisoformat(t): frozenset(found) for t, found in data["candidates_by_close"]
            },
        )


@attrs.frozen
class OpenReport:
    exits: list[ExitOutcome]
    buys: list[BuyOutcome]


@attrs.frozen
class CloseReport:
    signals: int
    queued: int
    exits_planned: int
    focus: frozenset[str] | None
    # Symbols the strategy raised on, with the error (the other symbols carried on).
    strategy_errors: dict[str, str]


class SessionDriver:
    """Runs one strategy through the session rhythm against one pipeline (broker + ledger)."""

    def __init__(self, pipeline: OrderPipeline, strategy: type[Strategy], *, focus: Focus | None = None) -> None:
        self.pipeline = pipeline
        self.strategy_cls = strategy
        self.strategy = strategy()
        self.focus = focus
        self.tally = SessionTally()
        # Each symbol's completed bars as of the last close the driver saw (a replay's view of
        # its series, or what the live feed returned): the market snapshot reads them.
        self.histories: dict[str, Sequence[Bar]] = {}
        self._equity_session: datetime | None = None
        # The trading-state guard: its automatic triggers run at every step (issue #13).
        self.guard = pipeline.trading_guard()

    def resume_after(self, last_close: datetime, tally: SessionTally, histories: Mapping[str, Sequence[Bar]]) -> None:
        """Continue a replay stopped after the close at ``last_close``: what it had counted,
        the completed bars it had seen, and the session whose equity it had recorded."""
        self.tally = tally
        count = self.strategy_cls.history_bars
        self.histories = {symbol: _last_bars(series, count) for symbol, series in histories.items()}
        self._equity_session = self.pipeline.calendar.last_close(last_close)

    def resume_live(self, last_close: datetime) -> None:
        """Continue a live trader whose previous process ran the close phase of the session
        that closed at ``last_close``: its equity is recorded already."""
        self._equity_session = last_close

    def remember(self, bars: Mapping[str, Sequence[Bar]]) -> None:
        """Keep each symbol's completed bars for the market snapshot without running the
        strategy on them (its close phase ran in an earlier process)."""
        count = self.strategy_cls.history_bars
        self.histories.update({symbol: _last_bars(series, count) for symbol, series in bars.items()})

    # --- the open ----------------------------------------------------------------------------

    def open_session(self, prices: Mapping[str, Decimal]) -> OpenReport:
        """Execute the exits that are due, then judge and send the buys queued for this open.

        ``prices`` are the current prices (a symbol missing has no market now: its exit waits
        and its buy is judged without a price, which the engine BLOCKs).
        """
        exits = self.maintain(prices)
        buys = [self._judge(signal, prices) for signal in self.due_buys()]
        if buys:
            self.pipeline.apply_events()
        return OpenReport(exits=exits, buys=buys)

    def due_buys(self) -> list[Signal]:
        """The queued buys the session after their signal (``TradingCalendar.session_after``)
        may now send, once it has opened."""
        now = self.pipeline.clock()
        calendar = self.pipeline.calendar
        with self.pipeline.ledger.reading() as tx:
            waiting = tx.queued_buys(self.strategy_cls.name)
        # A close's signals share its time: each time's next open is looked up once.
        opens: dict[datetime, datetime] = {}
        due = []
        for signal in waiting:
            at = signal.generated_at
            opened = opens.get(at)
            if opened is None:
                opened = opens[at] = calendar.session_after(at).open
            if opened <= now:
                due.append(signal)
        return due

    def _judge(self, signal: Signal, prices: Mapping[str, Decimal]) -> BuyOutcome:
        symbol = signal.symbol
        position = self.pipeline.ledger.position(symbol)
        market = market_snapshot(self.histories.get(symbol), prices.get(symbol), self.pipeline.clock(), position)
        outcome = self.pipeline.process_buy(signal, self.strategy_cls, market, queued=True)
        decision = outcome.decision
        if decision is not None:
            reason = decision.reasons[0].value if decision.reasons else ""
            self.tally.decisions[(decision.action.value, reason)] += 1
            if decision.action in (BuyAction.ENTER_NEW, BuyAction.SCALE_IN) and log.isEnabledFor(logging.INFO):
                log.info("buy %s: %s", symbol, decision.one_line())  # rendered only when logged
        return outcome

    # --- during the session --------------------------------------------------------------------

    def maintain(self, prices: Mapping[str, Decimal]) -> list[ExitOutcome]:
        """Look up unfinished orders, re-derive what they changed, and carry the exits on:
        execute those whose window is open, escalate those it passed."""
        pipeline = self.pipeline
        pipeline.settle_pending()
        pipeline.reconcile_if_due()
        self.observe()
        outcomes = pipeline.execute_due_exits(dict(prices))
        for outcome in outcomes:
            if outcome.intent is not None and outcome.intent.state is ExitState.EXPIRED:
                self.tally.exits_expired += 1
            if outcome.rolled:
                self.tally.exits_rolled += 1
        return outcomes

    def observe(self) -> None:
        """Let the trading-state guard's automatic triggers look at the account now (drawdown,
        daily loss, losing streak, unreconciled symbols, a stale stream, a blocked account)."""
        self.guard.observe_broker(now=self.pipeline.clock(), broker=self.pipeline.broker)

    # --- after the close -------------------------------------------------------------------------

    def _record_equity(self, now: datetime) -> None:
        """Record the account's equity once per session, at its close phase: the curve run
        statistics and the guard read."""
        session = self.pipeline.calendar.last_close(now)
        if session is not None and session == self._equity_session:
            return
        try:
            account = self.pipeline.broker.get_account()
        except BrokerError as exc:
            log.warning("equity not recorded for this session: the account could not be read: %s", exc)
            return
        self.pipeline.ledger.record_equity(account)
        self._equity_session = session

    def close_session(self, bars: Mapping[str, Sequence[Bar]]) -> CloseReport:
        """Run the strategy on each symbol's bar of the session that has just closed.

        ``bars`` maps each symbol to its completed bars, the last being that session's. The
        scanner ranks on every bar known now (a half day's bar may be stamped after its
        session's close). A strategy that raises on one symbol is reported (and logged with
        its traceback) and the other symbols carry on: one bad series must not stop the exits
        of the others.
        """
        now = self.pipeline.clock()
        self.observe()
        # The strategy sees its last ``history_bars``, whichever run handed them over (a
        # replay's whole series, or more than that from a live feed).
        bars = {symbol: _last_bars(series, self.strategy_cls.history_bars) for symbol, series in bars.items()}
        self.histories.update(bars)
        focus = None
        if self.focus is not None:
            focus = self.focus.at_close(self.histories, now)
            self.tally.candidates_by_close[now] = focus
        kind, ledger, tally = self.strategy_cls, self.pipeline.ledger, self.tally
        signals = planned = 0
        queued: list[Signal] = []
        errors: dict[str, str] = {}
        for symbol, history in bars.items():
            view = StrategyView(symbol=symbol, history=history, position=ledger.position(symbol))
            try:
                made = list(self.strategy.on_bar(view))
            except Exception as exc:
                errors[symbol] = f"{type(exc).__name__}: {exc}"
                tally.strategy_errors += 1
                log.exception("strategy %s raised on %s; no signals for it this session", kind.name, symbol)
                continue
            for signal in made:
                signals += 1
                tally.signals[signal.side.value] += 1
                if signal.side is Side.SELL:
                    outcome = self.pipeline.plan_exit(signal, kind)
                    if outcome.intent is not None and outcome.note == "":
                        planned += 1
                elif focus is None or symbol in focus:
                    queued.append(signal)
                else:
                    tally.buys_not_in_focus += 1
        added = 0
        if queued:
            with ledger.transaction() as tx:
                added = sum(tx.queue_buy(signal, kind.name, now) for signal in queued)
        tally.exits_planned += planned
        self._record_equity(now)
        return CloseReport(signals=signals, queued=added, exits_planned=planned, focus=focus, strategy_errors=errors)


def _last_bars(series: Sequence[Bar], count: int) -> Sequence[Bar]:
    if len(series) <= count:
        return series
    if isinstance(series, History):
        return series.last(count)
    return series[-count:]
