"""Run statistics, computed from the ledger: the figures a trader judges a strategy by.

Return-series statistics come from the account's equity at each close (``tk_equity``):

- daily return ``r_t = E_t / E_{t-1} - 1``; a year is ``P`` closes: 252 sessions on an
  exchange's calendar, 365 days on a market open every day (``24/7``). A replay passes its
  trading calendar's (``calendar_periods_per_year``); only a ledger read without its
  calendar falls back to the closes (``periods_per_year``: 365 when they fall on both
  Saturdays and Sundays);
- total return ``E_last / E_first - 1``; CAGR ``(E_last / E_first) ** (P / n) - 1`` for
  ``n`` daily returns;
- volatility ``std(r, ddof=1) * sqrt(P)`` (none with fewer than two returns); Sharpe
  ``mean(r) / std(r, ddof=1) * sqrt(P)`` (risk-free rate 0; none when the returns do not
  vary, float rounding aside); Sortino ``mean(r) * P / (sqrt(mean(min(r, 0) ** 2)) * sqrt(P))``;
  none of the three once the equity has reached zero (its returns after are 0/0);
- max drawdown ``min(E / running max(E) - 1)``; its duration: the longest time from a peak
  to the close that regains it (or to the last close, still under water); Calmar ``CAGR /
  |max drawdown|``;
- exposure: the share of closes at which any position was held (equity differs from cash).

Per symbol, the same return figures are those of the symbol's contribution curve (the
starting equity plus that symbol's P&L, marked at each close; ``symbol_curve``). These
follow empyrical's definitions, and ``tests/core_tests/test_statistics.py`` holds
them to empyrical-reloaded within 1e-9. Trade statistics come from the trade list
(``tradekit.reporting.trades``): closed positions only, P&L after fees; the win rate is the
share with P&L above zero, the profit factor none when no position lost. A position whose P&L
is unknown (an exit of unknown price: reconciliation closed it, the broker no longer holding
it) is left out of every figure taken from the positions' P&L or their closing -- win rate,
profit factor, expectancy, averages, best and worst, holding time, realized and open P&L --
and counted apart (``unknown_pnl_closed``, ``unknown_pnl_open``, with the exits' reasons):
it is never taken as break-even. Its fees are paid and counted in the fees. Buy-and-hold is
the equal-weighted return of holding every symbol replayed (traded or not) from its first
to its last close of the run. What only tradekit can say: entries per position, the P&L of
add-ons against first entries, and the buy decisions by action and reason.

The P&L is split one way everywhere (the run summary, the by-symbol table, the JSON):

- realized P&L: the positions closed (flat again) by the end, after every fee they paid,
  entries' and exits' alike -- the sum of the closed trades' P&L in the trade list;
- open P&L: the positions still open at the end, what they hold marked at the symbol's last
  close, after every fee paid on them so far (an open position's entry commission is here,
  and so is anything already sold of it until the position is flat);
- realized + open is the account's P&L (final less starting equity), per symbol the P&L of
  its contribution curve, whose return the by-symbol "return" is -- when every position's
  P&L is known. A position of unknown P&L is in neither (each figure says how many it
  leaves out): the account's P&L, from its equity, is then realized + open + what those
  positions made, which the ledger cannot know; and a symbol with such a position has no
  contribution curve (its return figures are none).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from tradekit.domain.market import Bar
from tradekit.domain.values import EXACT, ZERO
from tradekit.ledger.records import EquityPoint
from tradekit.ledger.store import Ledger, LedgerTx
from tradekit.reporting.trades import Trade, each_trade

TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365
# Returns whose standard deviation is this small against their mean do not vary: what is
# left is float rounding (an account growing 0.1 % every close has a std of ~1e-16).
_NO_VARIANCE = 1e-10


@attrs.frozen(kw_only=True)
class ReturnStatistics:
    """Statistics of the account's daily equity series (floats: ratios, not money)."""

    start: str
    end: str
    closes: int
    periods_per_year: int  # closes a year the annual figures are scaled by (252 or 365)
    total_return: float
    cagr: float
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_days: int
    max_drawdown_closes: int
    exposure: float


@attrs.frozen(kw_only=True)
class TradeStatistics:
    """Statistics of the positions (trades) of a run or of one symbol."""

    positions: int
    closed: int
    open: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: Decimal | None
    average_pnl: Decimal | None
    best_pnl: Decimal | None
    worst_pnl: Decimal | None
    average_return_pct: Decimal | None
    best_return_pct: Decimal | None
    worst_return_pct: Decimal | None
    average_holding_days: float | None
    realized_pnl: Decimal  # closed positions of known P&L, after all their fees
    # Open positions of known P&L marked at their symbol's last close, after the fees paid on
    # them; None when a symbol with an open position has no price to mark it at.
    open_pnl: Decimal | None
    fees: Decimal  # every fee paid, closed positions' and open ones'
    open_fees: Decimal  # the part of ``fees`` paid on positions still open (inside ``open_pnl``)
    entries_per_position: float | None
    positions_by_entry_count: dict[int, int]
    first_entry_pnl: Decimal
    add_on_pnl: Decimal
    add_ons: int
    # Positions whose P&L is unknown (an exit of unknown price), closed and still open: in
    # ``positions``, ``closed``, ``open`` and the fees, left out of every other figure.
    unknown_pnl_closed: int
    unknown_pnl_open: int
    unknown_pnl_reasons: dict[str, int]  # why their exits left (each exit's reason) -> positions

    @property
    def unknown_pnl(self) -> int:
        """Positions left out of the P&L and trade figures, their P&L being unknown."""
        return self.unknown_pnl_closed + self.unknown_pnl_open


@attrs.frozen(kw_only=True)
class RunStatistics:
    """Everything a run is judged by: per run, and per symbol."""

    returns: ReturnStatistics | None
    trades: TradeStatistics
    buy_and_hold_return: float | None
    decisions_by_reason: dict[tuple[str, str], int]
    by_symbol: dict[str, SymbolStatistics]

    def as_json(self) -> dict[str, Any]:
        return {
            "returns": None if self.returns is None else _plain(attrs.asdict(self.returns)),
            "trades": _trade_json(self.trades),
            "buy_and_hold_return": self.buy_and_hold_return,
            "decisions_by_reason": [
                {"action": action, "reason": reason, "count": count}
                for (action, reason), count in sorted(self.decisions_by_reason.items())
            ],
            "by_symbol": {
                symbol: {
                    "returns": None if s.returns is None else _plain(attrs.asdict(s.returns)),
                    "trades": _trade_json(s.trades),
                    "exposure": s.exposure,
                    "buy_and_hold_return": s.buy_and_hold_return,
                }
                for symbol, s in sorted(self.by_symbol.items())
            },
        }


@attrs.frozen(kw_only=True)
class SymbolStatistics:
    """One symbol's figures; ``returns`` are those of its contribution curve (``symbol_curve``)."""

    trades: TradeStatistics
    exposure: float | None
    buy_and_hold_return: float | None
    returns: ReturnStatistics | None = None


def compute_statistics(
    ledger: Ledger, bars: Mapping[str, Sequence[Bar]] | None = None, *, per_year: int | None = None
) -> RunStatistics:
    """Read the ledger and compute a run's statistics; ``bars`` adds the buy-and-hold return
    and the marks of open positions; ``per_year``: the calendar's closes a year (without it,
    ``periods_per_year`` of the ledger's closes)."""
    with ledger.reading() as tx:
        return statistics_from_ledger(tx, tx.equity_curve(), tx.decision_counts(), bars, per_year=per_year)


def statistics_from_ledger(
    tx: LedgerTx,
    curve: Sequence[EquityPoint],
    decisions: Mapping[tuple[str, str], int],
    bars: Mapping[str, Sequence[Bar]] | None = None,
    *,
    also: Callable[[str, Sequence[Trade]], None] | None = None,
    per_year: int | None = None,
) -> RunStatistics:
    """``statistics_of`` the ledger's trades, read one symbol's trades at a time (the trade
    list arrives by symbol): only one symbol's trades are held, however long the run.
    ``also`` is shown each symbol's trades too, when they are all read (the report's
    pictures keep some)."""
    run = _RunTally(curve, bars, per_year)
    group: list[Trade] = []

    def add(own: list[Trade]) -> None:
        run.add_symbol(own[0].symbol, own)
        if also is not None:
            also(own[0].symbol, own)

    def visit(trade: Trade) -> None:
        nonlocal group
        if group and group[0].symbol != trade.symbol:
            add(group)
            group = []  # a new list: ``also`` may keep the one it was shown
        group.append(trade)

    each_trade(tx, visit)
    if group:
        add(group)
    return run.result(decisions)


def statistics_of(
    curve: Sequence[EquityPoint],
    trades: Sequence[Trade],
    decisions: Mapping[tuple[str, str], int],
    bars: Mapping[str, Sequence[Bar]] | None = None,
    *,
    per_year: int | None = None,
) -> RunStatistics:
    """A run's statistics from what the ledger holds (and the bars, for buy-and-hold and the
    marks of open positions); ``per_year`` as ``compute_statistics``."""
    own_trades: dict[str, list[Trade]] = {}
    for trade in trades:  # grouped once: a million-bar replay has hundreds of symbols
        own_trades.setdefault(trade.symbol, []).append(trade)
    run = _RunTally(curve, bars, per_year)
    for symbol, own in own_trades.items():
        run.add_symbol(symbol, own)
    return run.result(decisions)


class _RunTally:
    """The run's statistics built one symbol at a time: each symbol's figures when its
    trades are added, the run's trade figures accumulated (``_TradeTally``)."""

    def __init__(
        self, curve: Sequence[EquityPoint], bars: Mapping[str, Sequence[Bar]] | None, per_year: int | None
    ) -> None:
        self._curve = curve
        self._closes = [p.time for p in curve]
        self._per_year = periods_per_year(self._closes) if per_year is None else per_year
        self._bars = bars or {}
        self._trades = _TradeTally()
        self._by_symbol: dict[str, SymbolStatistics] = {}
        # A symbol never traded contributes its starting equity at every close: one flat
        # column, whose figures are the same for every such symbol (worked out once; a wide
        # replay has hundreds of symbols its account never funded).
        self._flat: ReturnStatistics | None = None

    def add_symbol(self, symbol: str, own: Sequence[Trade]) -> None:
        """All of ``symbol``'s trades (once per symbol): its figures, and the run's."""
        series = self._bars.get(symbol)
        mark = last_close(series, self._closes[-1] if self._closes else None) if series else None
        tally = _TradeTally()
        for trade in own:
            tally.add(trade, mark)
        self._trades.merge(tally)
        curve = self._curve
        returns = None
        # A symbol with an exit of unknown price has no known contribution after it.
        if series and curve and all(trade.pnl_known for trade in own):
            base = curve[0].equity
            returns = (
                _return_statistics(self._closes, *symbol_columns(own, series, self._closes, base), self._per_year)
                if own
                else self._flat_returns(base)
            )
        self._by_symbol[symbol] = SymbolStatistics(
            trades=tally.result(),
            exposure=_symbol_exposure(own, self._closes),
            buy_and_hold_return=buy_and_hold(series) if series else None,
            returns=returns,
        )

    def _flat_returns(self, base: Decimal) -> ReturnStatistics | None:
        """The figures of a symbol never traded: ``base`` at every close (worked out once)."""
        if self._flat is None:
            flat = [base] * len(self._closes)
            self._flat = _return_statistics(self._closes, flat, flat, self._per_year)
        return self._flat

    def result(self, decisions: Mapping[tuple[str, str], int]) -> RunStatistics:
        for symbol in self._bars.keys() - self._by_symbol.keys():
            self.add_symbol(symbol, ())
        by_symbol = {symbol: self._by_symbol[symbol] for symbol in sorted(self._by_symbol)}
        held = [r for r in (s.buy_and_hold_return for s in by_symbol.values()) if r is not None]
        return RunStatistics(
            returns=return_statistics(self._curve, per_year=self._per_year),
            trades=self._trades.result(),
            buy_and_hold_return=float(np.mean(held)) if held else None,
            decisions_by_reason=dict(decisions),
            by_symbol=by_symbol,
        )


def symbol_curve(
    trades: Sequence[Trade], series: Sequence[Bar], closes: Sequence[datetime], base: Decimal
) -> list[EquityPoint]:
    """One symbol's contribution at each close: ``base`` plus the cash its trades moved (fees
    included) plus what it held, marked at its last close (what the paper account marks).
    An exit of unknown price moves no cash: the curve is the symbol's contribution only when
    every price of ``trades`` is known (``Trade.pnl_known``).

    The symbols' contributions add up to the account: at every close, the sum of
    ``equity - base`` over the symbols is the account's equity minus its starting equity.
    """
    equity, cash = symbol_columns(trades, series, closes, base)
    return [EquityPoint(time=close, equity=e, cash=c) for close, e, c in zip(closes, equity, cash, strict=True)]


def symbol_columns(
    trades: Sequence[Trade], series: Sequence[Bar], closes: Sequence[datetime], base: Decimal
) -> tuple[list[Decimal], list[Decimal]]:
    """``symbol_curve``'s equity and cash at each of ``closes``, as two columns (the run
    statistics need no point objects: a symbol per close each, on a wide replay)."""
    flows: list[tuple[datetime, Decimal, Decimal]] = []  # (time, shares in, cash in)
    for trade in trades:
        flows += [(e.time, e.qty, -e.notional - e.fees) for e in trade.entries]
        flows += [(x.time, -x.qty, x.qty * x.price - x.fees if x.price is not None else ZERO) for x in trade.exits]
    flows.sort(key=lambda f: f[0])
    equity: list[Decimal] = []
    cashes: list[Decimal] = []
    qty = cash = ZERO
    price: Decimal | None = None
    i = j = 0
    for close in closes:
        while i < len(flows) and flows[i][0] <= close:
            qty, cash = qty + flows[i][1], cash + flows[i][2]
            i += 1
        while j < len(series) and series[j].time <= close:
            price = series[j].close
            j += 1
        held = qty * price if price is not None and qty else ZERO
        equity.append(base + cash + held)
        cashes.append(base + cash)
    return equity, cashes


def last_close(series: Sequence[Bar], until: datetime | None) -> Decimal | None:
    """The close of the last bar of ``series`` at or before ``until`` (the last bar without
    ``until``): what the paper account marks a holding at after that close."""
    for bar in reversed(series):  # the last bar, on any run that ends with its bars
        if until is None or bar.time <= until:
            return bar.close
    return None


class SessionCalendar(Protocol):
    """What ``calendar_periods_per_year`` asks of a calendar (``TradingCalendar`` has it)."""

    def opens_between(self, after: datetime, until: datetime) -> int: ...


_WEEKS = 4


def calendar_periods_per_year(calendar: SessionCalendar, at: datetime) -> int:
    """The closes in a year on ``calendar``: 365 when it has a session every day (``24/7``),
    else 252, an exchange's sessions. Told by its sessions in the four weeks from ``at`` (a
    moment of the run: the calendar holds them)."""
    days = 7 * _WEEKS
    opened = calendar.opens_between(at, at + timedelta(days=days))
    return CALENDAR_DAYS_PER_YEAR if opened >= days else TRADING_DAYS_PER_YEAR


def periods_per_year(closes: Sequence[datetime]) -> int:
    """The closes in a year of this curve, guessed from the closes themselves when the
    calendar is not known (a ledger read on its own; a replay passes its calendar's,
    ``calendar_periods_per_year``): 365 when they fall on Saturdays and on Sundays (UTC) --
    a market open every day (``24/7``) -- else 252, an exchange's sessions. No exchange
    calendar closes on both days (a Sunday-to-Thursday one closes on Sundays only), but a
    24/7 run whose closes miss a weekend is guessed at 252."""
    weekdays = {close.astimezone(UTC).weekday() for close in closes}
    return CALENDAR_DAYS_PER_YEAR if {5, 6} <= weekdays else TRADING_DAYS_PER_YEAR


def return_statistics(curve: Sequence[EquityPoint], *, per_year: int | None = None) -> ReturnStatistics | None:
    """The equity series' statistics; None with fewer than two closes. ``per_year`` closes
    make a year: the calendar's (``calendar_periods_per_year``), else guessed from the
    curve's closes (``periods_per_year``)."""
    times = [p.time for p in curve]
    per_year = periods_per_year(times) if per_year is None else per_year
    return _return_statistics(times, [p.equity for p in curve], [p.cash for p in curve], per_year)


def _return_statistics(
    times: Sequence[datetime], equities: Sequence[Decimal], cash: Sequence[Decimal], per_year: int
) -> ReturnStatistics | None:
    if len(times) < 2 or equities[0] <= 0:
        return None
    equity = np.array([float(e) for e in equities], dtype=np.float64)
    periods = len(equity) - 1
    growth = equity[-1] / equity[0]
    cagr = growth ** (per_year / periods) - 1.0 if growth > 0 else -1.0
    volatility: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    if bool(np.all(equity[:-1] > 0)):  # once the equity is gone, its returns are 0/0
        returns = equity[1:] / equity[:-1] - 1.0  # each close's return on the one before
        mean = float(np.mean(returns))
        if periods > 1:
            std = float(np.std(returns, ddof=1))
            std = 0.0 if std <= _NO_VARIANCE * abs(mean) else std
            volatility = std * math.sqrt(per_year)
            sharpe = mean / std * math.sqrt(per_year) if std > 0 else None
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) * math.sqrt(per_year)
        sortino = mean * per_year / downside if downside > 0 else None
    drawdowns = equity / np.maximum.accumulate(equity) - 1.0
    max_drawdown = float(drawdowns.min())
    trough_closes, days = _longest_drawdown(times, drawdowns)
    exposed = sum(1 for e, c in zip(equities, cash, strict=True) if e != c)
    return ReturnStatistics(
        start=times[0].date().isoformat(),
        end=times[-1].date().isoformat(),
        closes=len(times),
        periods_per_year=per_year,
        total_return=float(growth - 1.0),
        cagr=float(cagr),
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=float(cagr) / abs(max_drawdown) if max_drawdown < 0 else None,
        max_drawdown=max_drawdown,
        max_drawdown_days=days,
        max_drawdown_closes=trough_closes,
        exposure=exposed / len(times),
    )


def drawdown_series(curve: Sequence[EquityPoint]) -> list[float]:
    """Each close's drawdown from the running peak (0 at a new high, -0.1 ten percent below)."""
    if not curve:
        return []
    equity = np.array([float(p.equity) for p in curve], dtype=np.float64)
    return [float(d) for d in equity / np.maximum.accumulate(equity) - 1.0]


def _longest_drawdown(times: Sequence[datetime], drawdowns: npt.NDArray[np.float64]) -> tuple[int, int]:
    # (closes, calendar days) of the longest spell below a peak, peak to recovery.
    best = (0, 0)
    start: int | None = None
    for i, dd in enumerate([*drawdowns.tolist(), 0.0]):
        under = dd < 0 and i < len(times)
        if under and start is None:
            start = i - 1
        elif not under and start is not None:
            end = min(i, len(times) - 1)
            days = (times[end] - times[start]).days
            if days > best[1]:
                best = (end - start, days)
            start = None
    return best


def trade_statistics(trades: Iterable[Trade], marks: Mapping[str, Decimal] | None = None) -> TradeStatistics:
    """Win rate, profit factor, expectancy and the rest, over the closed trades of known P&L;
    the open trades' P&L at ``marks`` (each symbol's last price; None without one). Trades of
    unknown P&L are counted apart."""
    tally = _TradeTally()
    for trade in trades:
        tally.add(trade, (marks or {}).get(trade.symbol))
    return tally.result()


# Sums of money are accumulated exactly (domain.values.EXACT) and rounded once (to the
# context's 28 digits) when read: the figures do not depend on the order trades are read in.
class _Sum:
    __slots__ = ("best", "count", "total", "worst")

    def __init__(self) -> None:
        self.count = 0
        self.total = ZERO
        self.best: Decimal | None = None
        self.worst: Decimal | None = None

    def add(self, value: Decimal) -> None:
        self.count += 1
        self.total = EXACT.add(self.total, value)
        self.best = value if self.best is None or value > self.best else self.best
        self.worst = value if self.worst is None or value < self.worst else self.worst

    def merge(self, other: _Sum) -> None:
        """Take in what ``other`` added (another symbol's trades, say)."""
        self.count += other.count
        self.total = EXACT.add(self.total, other.total)
        if other.best is not None and (self.best is None or other.best > self.best):
            self.best = other.best
        if other.worst is not None and (self.worst is None or other.worst < self.worst):
            self.worst = other.worst

    @property
    def sum(self) -> Decimal:
        return +self.total

    @property
    def mean(self) -> Decimal | None:
        return +self.total / self.count if self.count else None


class _TradeTally:
    """``trade_statistics`` taken one trade at a time (nothing per trade is kept)."""

    def __init__(self) -> None:
        self.positions = 0
        self.pnl = _Sum()  # closed trades
        self.wins = _Sum()
        self.losses = _Sum()
        self.returns = _Sum()
        self.open_pnl = _Sum()  # open trades with a mark
        self.unmarked = 0  # open trades without one
        self.unknown_closed = 0  # trades of unknown P&L (an exit of unknown price), closed
        self.unknown_open = 0  # and still open
        self.unknown_reasons: Counter[str] = Counter()
        self.fees = _Sum()
        self.open_fees = _Sum()
        self.first_entry_pnl = _Sum()
        self.add_on_pnl = _Sum()
        self.holding = timedelta(0)
        self.held = 0
        self.entries = 0
        self.add_ons = 0
        self.by_entry_count: Counter[int] = Counter()

    _SUMS = ("pnl", "wins", "losses", "returns", "open_pnl", "fees", "open_fees", "first_entry_pnl", "add_on_pnl")

    def add(self, trade: Trade, mark: Decimal | None = None) -> None:
        """One trade; ``mark``: its symbol's last price, at which an open trade is valued."""
        self.positions += 1
        self.fees.add(trade.fees)
        self.entries += len(trade.entries)
        self.by_entry_count[len(trade.entries)] += 1
        self.add_ons += sum(1 for e in trade.entries if e.kind == "add-on")
        if trade.is_open:
            self.open_fees.add(trade.fees)
        if not trade.pnl_known:
            # Left out of every P&L figure, never taken as break-even; its holding time is
            # unknown too (reconciliation closes it when it notices, not when it was sold).
            if trade.is_open:
                self.unknown_open += 1
            else:
                self.unknown_closed += 1
            self.unknown_reasons.update({x.reason for x in trade.unknown_price_exits})
            return
        if trade.is_open:
            marked = None if mark is None else trade.marked_pnl(mark)
            if marked is None:
                self.unmarked += 1
            else:
                self.open_pnl.add(marked)
            return
        pnl = trade.realized_pnl
        self.pnl.add(pnl)
        if pnl > 0:
            self.wins.add(pnl)
        elif pnl < 0:
            self.losses.add(pnl)
        if (r := trade.return_pct) is not None:
            self.returns.add(r)
        if (h := trade.holding_time) is not None:
            self.holding += h
            self.held += 1
        for entry, share in zip(trade.entries, trade.entry_pnl(), strict=True):
            (self.add_on_pnl if entry.kind == "add-on" else self.first_entry_pnl).add(share)

    def merge(self, other: _TradeTally) -> None:
        """Take in another tally's trades (the run's figures from each symbol's)."""
        for name in self._SUMS:
            getattr(self, name).merge(getattr(other, name))
        self.positions += other.positions
        self.unmarked += other.unmarked
        self.unknown_closed += other.unknown_closed
        self.unknown_open += other.unknown_open
        self.unknown_reasons.update(other.unknown_reasons)
        self.holding += other.holding
        self.held += other.held
        self.entries += other.entries
        self.add_ons += other.add_ons
        self.by_entry_count.update(other.by_entry_count)

    def result(self) -> TradeStatistics:
        known = self.pnl.count  # closed positions of known P&L
        closed = known + self.unknown_closed
        gross_loss = -self.losses.sum
        return TradeStatistics(
            positions=self.positions,
            closed=closed,
            open=self.positions - closed,
            win_rate=self.wins.count / known if known else None,
            profit_factor=float(self.wins.sum / gross_loss) if gross_loss > 0 else None,
            expectancy=self.pnl.mean,
            average_pnl=self.pnl.mean,
            best_pnl=self.pnl.best,
            worst_pnl=self.pnl.worst,
            average_return_pct=self.returns.mean,
            best_return_pct=self.returns.best,
            worst_return_pct=self.returns.worst,
            average_holding_days=(self.holding / self.held).total_seconds() / 86400 if self.held else None,
            realized_pnl=self.pnl.sum,
            open_pnl=None if self.unmarked else self.open_pnl.sum,
            fees=self.fees.sum,
            open_fees=self.open_fees.sum,
            entries_per_position=self.entries / self.positions if self.positions else None,
            positions_by_entry_count=dict(sorted(self.by_entry_count.items())),
            first_entry_pnl=self.first_entry_pnl.sum,
            add_on_pnl=self.add_on_pnl.sum,
            add_ons=self.add_ons,
            unknown_pnl_closed=self.unknown_closed,
            unknown_pnl_open=self.unknown_open,
            unknown_pnl_reasons=dict(sorted(self.unknown_reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        )


def buy_and_hold(series: Sequence[Bar]) -> float | None:
    """The return of buying at the first close and holding to the last."""
    if len(series) < 2:
        return None
    return float(series[-1].close / series[0].close - 1)


def _symbol_exposure(trades: Sequence[Trade], closes: Sequence[datetime]) -> float | None:
    # The share of closes at which one of ``trades`` was open (closes are in time order).
    if not closes:
        return None
    held = [False] * len(closes)
    for trade in trades:
        first = bisect.bisect_left(closes, trade.opened_at)
        last = len(closes) if trade.closed_at is None else bisect.bisect_left(closes, trade.closed_at)
        held[first:last] = [True] * max(0, last - first)
    return sum(held) / len(closes)


def _trade_json(stats: TradeStatistics) -> dict[str, Any]:
    data = _plain(attrs.asdict(stats))
    data["positions_by_entry_count"] = {str(k): v for k, v in stats.positions_by_entry_count.items()}
    return data


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    # Money stays exact (as a string); ratios are JSON numbers.
    return {key: str(round(value, 6)) if isinstance(value, Decimal) else value for key, value in data.items()}


def percent(value: float | Decimal | None, digits: int = 2) -> str:
    """A ratio (0.1234) as text (12.34%); a dash when unknown."""
    if value is None:
        return "-"
    return f"{float(value) * 100:+.{digits}f}%"


def money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def pct_text(value: Decimal | None) -> str:
    """A figure already in percent (12.34) as text."""
    return "-" if value is None else f"{value:+.2f}%"
