"""What a finished run leaves beside its ledger: statistics, ``chart.png`` and ``report.html``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from tradekit.domain.market import Bar
from tradekit.ledger.store import Ledger
from tradekit.reporting.statistics import RunStatistics, statistics_from_ledger, statistics_of
from tradekit.reporting.trades import read_trades

CHART_FILE = "chart.png"
REPORT_FILE = "report.html"


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
) -> RunOutputs:
    """Compute the run's statistics from the ledger and, with ``pictures``, write the PNG
    chart and the HTML report into ``out_dir``."""
    if not pictures:
        # The statistics alone: the trades are read one symbol at a time, never all held.
        with ledger.reading() as tx:
            return RunOutputs(statistics_from_ledger(tx, tx.equity_curve(), tx.decision_counts(), bars), None, None)
    with ledger.reading() as tx:  # the report lists every trade and decision
        curve = tx.equity_curve()
        trades = read_trades(tx)
        counts = tx.decision_counts()
        fills = tx.fills_with_purpose()
        decisions = tx.decisions(limit=2**62)
    statistics = statistics_of(curve, trades, counts, bars)
    from tradekit.reporting.chart import render_chart
    from tradekit.reporting.html_report import ReportInputs, write_report

    chart = render_chart(bars, fills, out_dir / CHART_FILE, title=title, equity=curve)
    report = write_report(
        ReportInputs(
            title=title,
            bars=bars,
            equity=curve,
            trades=trades,
            decisions=decisions,
            statistics=statistics,
            notes=notes,
        ),
        out_dir / REPORT_FILE,
    )
    return RunOutputs(statistics, chart, report)
