"""What a finished run leaves beside its ledger: statistics, ``chart.png`` and ``report.html``.

The statistics count every trade and decision. The pictures show what a person can read:
however long the run, they draw at most ``OutputLimits.charted_symbols`` symbols (those with
the most positions), mark at most ``passed_over_per_symbol`` skipped or blocked buys on each
(spread evenly over the run) and list the latest ``trade_rows`` positions, and say so when
they leave something out. The ledger is read one symbol at a time for them, so the memory
and the time the pictures take stay bounded by those limits, not by the run's length (a
million-bar replay records hundreds of thousands of decisions: ``tradekit decisions`` and
``tradekit trades`` list them all).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from tradekit.domain.market import Bar
from tradekit.ledger.store import Ledger, LedgerTx
from tradekit.reporting.marks import SymbolMarkers
from tradekit.reporting.statistics import RunStatistics, statistics_from_ledger
from tradekit.reporting.trades import Trade, each_trade

CHART_FILE = "chart.png"
REPORT_FILE = "report.html"


@attrs.frozen(kw_only=True)
class OutputLimits:
    """How much of a long run the chart and the report draw (the statistics count it all)."""

    charted_symbols: int = attrs.field(default=24, validator=attrs.validators.ge(1))
    passed_over_per_symbol: int = attrs.field(default=250, validator=attrs.validators.ge(0))
    trade_rows: int = attrs.field(default=2_000, validator=attrs.validators.ge(0))


@attrs.frozen
class RunOutputs:
    statistics: RunStatistics
    chart: Path | None
    report: Path | None


def write_run_outputs(
    ledger: Ledger,
    bars: Mapping[str, Sequence[Bar]],
    out_dir: Path,
    *,
    title: str,
    notes: Sequence[tuple[str, str]] = (),
    pictures: bool = True,
    limits: OutputLimits | None = None,
) -> RunOutputs:
    """Compute the run's statistics from the ledger and, with ``pictures``, write the PNG
    chart and the HTML report into ``out_dir``."""
    limits = limits or OutputLimits()
    with ledger.reading() as tx:
        # The trades are read one symbol at a time, never all held.
        curve = tx.equity_curve()
        statistics = statistics_from_ledger(tx, curve, tx.decision_counts(), bars)
        if not pictures:
            return RunOutputs(statistics, None, None)
        charted = charted_symbols(statistics, bars, limits.charted_symbols)
        latest, total, trades = _read_trades(tx, charted, limits.trade_rows)
        fills = tx.fills_with_purpose(charted)
        markers = {symbol: _symbol_markers(tx, symbol, trades[symbol], limits) for symbol in charted}
    from tradekit.reporting.chart import render_chart
    from tradekit.reporting.html_report import ReportInputs, write_report

    chart_bars = {symbol: bars[symbol] for symbol in charted}
    chart = render_chart(chart_bars, fills, out_dir / CHART_FILE, title=title, equity=curve)
    report = write_report(
        ReportInputs(
            title=title,
            bars=bars,
            equity=curve,
            charted=markers,
            trades=latest,
            trades_total=total,
            statistics=statistics,
            notes=notes,
        ),
        out_dir / REPORT_FILE,
    )
    return RunOutputs(statistics, chart, report)


def charted_symbols(statistics: RunStatistics, bars: Mapping[str, Sequence[Bar]], limit: int) -> list[str]:
    """The symbols the pictures draw, by name: all of them, or the ``limit`` with the most
    positions (ties by name)."""
    by_symbol = statistics.by_symbol

    def positions(symbol: str) -> int:
        found = by_symbol.get(symbol)
        return found.trades.positions if found is not None else 0

    busiest = sorted(bars, key=lambda symbol: (-positions(symbol), symbol))[:limit]
    return sorted(busiest)


def _read_trades(tx: LedgerTx, charted: Sequence[str], rows: int) -> tuple[list[Trade], int, dict[str, list[Trade]]]:
    """The latest ``rows`` trades in the order they opened, how many there are, and the
    charted symbols' trades; one pass over the ledger, holding no other trade."""
    latest: list[tuple[tuple[object, ...], Trade]] = []
    mine: dict[str, list[Trade]] = {symbol: [] for symbol in charted}
    total = 0

    def visit(trade: Trade) -> None:
        nonlocal total
        total += 1
        own = mine.get(trade.symbol)
        if own is not None:
            own.append(trade)
        if rows:
            # (opened, symbol, number) is the order the trade list is read in; the order the
            # trades arrive in (by symbol) breaks no tie, each key being unique.
            keyed = ((trade.opened_at, trade.symbol, trade.number), trade)
            if len(latest) < rows:
                heapq.heappush(latest, keyed)
            elif keyed[0] > latest[0][0]:
                heapq.heapreplace(latest, keyed)

    each_trade(tx, visit)
    return [trade for _, trade in sorted(latest, key=lambda kv: kv[0])], total, mine


def _symbol_markers(tx: LedgerTx, symbol: str, trades: Sequence[Trade], limits: OutputLimits) -> SymbolMarkers:
    entered = tx.decisions_by_id(e.decision_id for trade in trades for e in trade.entries if e.decision_id)
    total, sample = tx.passed_over(symbol, limits.passed_over_per_symbol)
    return SymbolMarkers(trades=trades, entered=entered, passed_over=sample, passed_over_total=total)
