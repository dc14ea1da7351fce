"""What a finished run leaves beside its ledger: statistics, ``chart.png`` and ``report.html``.

The statistics count every trade and decision. The pictures are kept to what a person can
read, and say what they leave out: they draw at most ``OutputLimits.charted_symbols``
symbols (those with the most positions), mark at most ``passed_over_per_symbol`` skipped or
blocked buys on each (spread evenly over the run) and list the latest ``trade_rows``
positions. The ledger is read one symbol at a time for them, so what they hold grows with
the charted symbols' own history (each bar, entry and exit of theirs is drawn), not with the
number of symbols, decisions or positions of the whole run: a million-bar replay over
hundreds of symbols records hundreds of thousands of decisions (``tradekit decisions`` and
``tradekit trades`` list them all).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import attrs

from tradekit.domain.market import Bar
from tradekit.ledger.store import Ledger, LedgerTx
from tradekit.reporting.marks import SymbolMarkers
from tradekit.reporting.statistics import RunStatistics, statistics_from_ledger
from tradekit.reporting.trades import Trade

CHART_FILE = "chart.png"
REPORT_FILE = "report.html"


@attrs.frozen(kw_only=True)
class OutputLimits:
    """How much of a long run the chart and the report draw (the statistics count it all)."""

    charted_symbols: int = attrs.field(default=24, validator=attrs.validators.ge(1))
    passed_over_per_symbol: int = attrs.field(default=1_000, validator=attrs.validators.ge(1))
    trade_rows: int = attrs.field(default=2_000, validator=attrs.validators.ge(1))


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
    per_year: int | None = None,
) -> RunOutputs:
    """Compute the run's statistics from the ledger and, with ``pictures``, write the PNG
    chart and the HTML report into ``out_dir``. ``per_year``: the closes a year of the
    calendar the run traded on (``calendar_periods_per_year``); without it, guessed from the
    ledger's closes."""
    limits = limits or OutputLimits()
    with ledger.reading() as tx:
        # The trades are read one symbol at a time, never all held.
        curve = tx.equity_curve()
        if not pictures:
            return RunOutputs(
                statistics_from_ledger(tx, curve, tx.decision_counts(), bars, per_year=per_year), None, None
            )
        # One pass over the trades for the statistics, the trade table and the charts.
        kept = _KeptTrades(limits.trade_rows, limits.charted_symbols)
        statistics = statistics_from_ledger(
            tx, curve, tx.decision_counts(), bars, also=kept.add_symbol, per_year=per_year
        )
        charted = charted_symbols(statistics, bars, limits.charted_symbols)
        fills = tx.fills_with_purpose(charted)
        markers = {symbol: _symbol_markers(tx, symbol, kept.of(symbol), limits) for symbol in charted}
    from tradekit.reporting.chart import render_chart
    from tradekit.reporting.html_report import ReportInputs, write_report

    chart_bars = {symbol: bars[symbol] for symbol in charted}
    if len(charted) < len(bars):
        title += f" ({len(charted)} of {len(bars)} symbols, those with the most positions)"
    chart = render_chart(chart_bars, fills, out_dir / CHART_FILE, title=title, equity=curve)
    report = write_report(
        ReportInputs(
            title=title,
            bars=bars,
            equity=curve,
            charted=markers,
            trades=kept.latest(),
            trades_total=kept.total,
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

    busiest = sorted(bars, key=lambda symbol: _busiest_first(positions(symbol), symbol))[:limit]
    return sorted(busiest)


def _busiest_first(positions: int, symbol: str) -> tuple[int, str]:
    """The charts' order of preference: most positions first, then by name."""
    return (-positions, symbol)


class _KeptTrades:
    """What the pictures keep of the trades, handed over a symbol's at a time: the latest
    ``rows`` in the order the trade list reads them (opened, symbol, number), how many there
    were, and the trades of the ``symbols`` symbols ``charted_symbols`` would choose (a
    position being a trade). Nothing else is held."""

    def __init__(self, rows: int, symbols: int) -> None:
        self._rows, self._symbols = rows, symbols
        self._latest: list[tuple[tuple[datetime, str, int], Trade]] = []
        self._busiest: dict[str, Sequence[Trade]] = {}
        self.total = 0

    def add_symbol(self, symbol: str, trades: Sequence[Trade]) -> None:
        self.total += len(trades)
        busiest = self._busiest
        busiest[symbol] = trades
        if len(busiest) > self._symbols:
            del busiest[max(busiest, key=lambda s: _busiest_first(len(busiest[s]), s))]
        for trade in trades:
            # The key is unique (a symbol's positions are numbered): no two trades are compared.
            keyed = ((trade.opened_at, trade.symbol, trade.number), trade)
            if len(self._latest) < self._rows:
                heapq.heappush(self._latest, keyed)
            elif keyed[0] > self._latest[0][0]:
                heapq.heapreplace(self._latest, keyed)

    def latest(self) -> list[Trade]:
        return [trade for _, trade in sorted(self._latest, key=lambda kv: kv[0])]

    def of(self, symbol: str) -> Sequence[Trade]:
        return self._busiest.get(symbol, [])


def _symbol_markers(tx: LedgerTx, symbol: str, trades: Sequence[Trade], limits: OutputLimits) -> SymbolMarkers:
    entered = tx.decisions_by_id(e.decision_id for trade in trades for e in trade.entries if e.decision_id)
    total, sample = tx.passed_over(symbol, limits.passed_over_per_symbol)
    return SymbolMarkers(trades=trades, entered=entered, passed_over=sample, passed_over_total=total)
