"""The run report (``report.html``): one self-contained page a trader can open anywhere.

Bokeh draws the interactive charts: each symbol's price with every entry, add-on and exit
and, hidden until clicked in the legend, every skipped or blocked buy; hovering a marker
shows its decision and reasons. Below come the account's equity and its drawdown (on the
same time axis), then the statistics, the buy decisions by action and reason, and the
trade list. BokehJS is inlined, so the page opens without a network.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from bokeh.embed import components
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter
from bokeh.models.renderers import DataRenderer
from bokeh.plotting import figure
from bokeh.resources import Resources

from tradekit.domain.market import Bar
from tradekit.ledger.records import EquityPoint
from tradekit.reporting.marks import SymbolMarkers
from tradekit.reporting.statistics import RunStatistics, drawdown_series
from tradekit.reporting.terminal import (
    SYMBOL_COLUMNS,
    UNKNOWN_PNL_NOTE,
    decision_rows,
    left_out_rows,
    statistics_rows,
    symbol_rows,
)
from tradekit.reporting.trades import Trade

_MARKERS = {
    "entry": ("triangle", "#2ca02c", "entries"),
    "add-on": ("triangle", "#1f77b4", "add-ons"),
    "exit": ("inverted_triangle", "#d62728", "exits"),
    "passed over": ("x", "#7f7f7f", "skipped / blocked buys"),
}
_TOOLTIP = """
<div class="tk-tip" style="max-width: 420px">
  <div><b>@kind</b> @symbol @when</div>
  <div>price @price</div>
  <div>@action</div>
  <div style="white-space: normal">@why</div>
</div>
"""


@attrs.frozen(kw_only=True)
class ReportInputs:
    """What a report is drawn from; all of it read from the ledger, but the bars."""

    title: str
    bars: Mapping[str, Sequence[Bar]]
    equity: Sequence[EquityPoint]
    charted: Mapping[str, SymbolMarkers]  # the symbols drawn, with what their charts mark
    trades: Sequence[Trade]  # the trade table's rows: the latest positions, in opening order
    trades_total: int  # how many positions the run had
    statistics: RunStatistics
    notes: Sequence[tuple[str, str]] = ()  # (label, text) lines under the title: data, costs...


def write_report(inputs: ReportInputs, path: Path) -> Path:
    """Write ``report.html`` to ``path`` and return it."""
    charts: list[Any] = []
    for symbol, marks in inputs.charted.items():
        # Every chart shares the first one's time axis: zooming one zooms all.
        points = _markers(symbol, marks)
        # "n of N" when the passed-over buys are a sample (not when some had no price to mark).
        sampled = marks.passed_over_total if marks.passed_over_total > len(marks.passed_over) else None
        charts.append(_price_figure(symbol, inputs, points, sampled, charts[0].x_range if charts else None))
    if inputs.equity:
        equity, drawdown = _equity_figures(inputs.equity, charts[0] if charts else None)
        charts += [equity, drawdown]
    script, div = components(column(*charts, sizing_mode="stretch_width"))
    resources = Resources(mode="inline", components=["bokeh"])
    page = _PAGE.format(
        title=html.escape(inputs.title),
        notes="".join(f"<li><b>{html.escape(k)}</b> {html.escape(v)}</li>" for k, v in inputs.notes),
        charted=_charted_note(inputs),
        bokeh_js=resources.render_js(),
        script=script,
        div=div,
        unknown_note=_unknown_pnl_note(inputs.statistics),
        statistics=_table(("statistic", "value"), statistics_rows(inputs.statistics), "statistics"),
        symbols_unknown=_symbols_unknown_note(inputs.statistics),
        symbols=_table(SYMBOL_COLUMNS, symbol_rows(inputs.statistics), "by-symbol"),
        decisions=_table(("action", "reason", "count"), decision_rows(inputs.statistics), "decisions"),
        trades=_table(
            (
                "#",
                "symbol",
                "opened",
                "closed",
                "entries",
                "avg entry",
                "avg exit",
                "realized P&L",
                "return",
                "why it closed",
            ),
            _trade_rows(inputs.trades, first=inputs.trades_total - len(inputs.trades) + 1),
            "trades",
        ),
        trades_note=_trades_note(inputs),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _naive(moment: datetime) -> datetime:
    # Bokeh plots naive datetimes as given: UTC, without a zone.
    return moment.astimezone(UTC).replace(tzinfo=None)


def _charted_note(inputs: ReportInputs) -> str:
    shown, total = len(inputs.charted), len(inputs.bars)
    if shown == total:
        return ""
    return (
        f'<p id="charted-note">Price charts for {shown:,} of {total:,} symbols: those with the most '
        "positions. Every symbol is in the table &ldquo;By symbol&rdquo; below.</p>"
    )


def _unknown_pnl_note(statistics: RunStatistics) -> str:
    rows = left_out_rows(statistics.trades)
    if not rows:
        return ""
    ((_, what),) = rows
    return (
        f'<p id="unknown-pnl-note"><b>Left out of the P&amp;L and trade figures:</b> {html.escape(what)}. '
        "Their P&amp;L is unknown, not zero: the realized and open P&amp;L, win rate, profit factor, "
        "expectancy, averages, best and worst and holding time are those of the other positions. The "
        "account's equity, return and drawdown are the broker's and include whatever they made.</p>"
    )


def _symbols_unknown_note(statistics: RunStatistics) -> str:
    if not statistics.trades.unknown_pnl:
        return ""
    return f" {html.escape(UNKNOWN_PNL_NOTE[:1].upper() + UNKNOWN_PNL_NOTE[1:])}."


def _trades_note(inputs: ReportInputs) -> str:
    shown, total = len(inputs.trades), inputs.trades_total
    if shown == total:
        return ""
    return (
        f'<p id="trades-note">The latest {shown:,} of {total:,} positions, in the order they opened; '
        "<code>tradekit trades</code> lists them all.</p>"
    )


def _price_figure(
    symbol: str, inputs: ReportInputs, points: dict[str, list[dict[str, Any]]], sampled: int | None, x_range: Any
) -> Any:
    series = inputs.bars[symbol]
    fig = _time_figure(symbol, 300, f"price-{symbol}", **({"x_range": x_range} if x_range is not None else {}))
    fig.line([_naive(b.time) for b in series], [float(b.close) for b in series], color="#555555", legend_label="close")
    renderers: list[DataRenderer] = []
    for kind, (marker, color, label) in _MARKERS.items():
        rows = points.get(kind, [])
        if not rows:
            continue
        source = ColumnDataSource({key: [row[key] for row in rows] for key in rows[0]})
        count = f"{len(rows):,}"
        if kind == "passed over" and sampled is not None:
            count += f" of {sampled:,}"  # a sample, spread over the run
        renderer = fig.scatter(
            "x",
            "y",
            source=source,
            marker=marker,
            size=7 if kind == "passed over" else 11,
            color=color,
            legend_label=f"{label} ({count})",
            name=f"{kind}-{symbol}",
        )
        renderer.visible = kind != "passed over"
        renderers.append(renderer)
    if renderers:
        fig.add_tools(HoverTool(renderers=renderers, tooltips=_TOOLTIP))
    fig.legend.click_policy = "hide"
    _legend_above(fig)
    fig.yaxis.axis_label = "price"
    return fig


def _markers(symbol: str, marks: SymbolMarkers) -> dict[str, list[dict[str, Any]]]:
    """``symbol``'s chart markers: its trades' entries and exits, and its passed-over buys."""
    by_id = marks.entered
    found: dict[str, list[dict[str, Any]]] = {}

    def add(kind: str, when: datetime, price: float, action: str, why: str) -> None:
        found.setdefault(kind, []).append(
            {
                "x": _naive(when),
                "y": price,
                "kind": kind,
                "symbol": symbol,
                "when": when.strftime("%Y-%m-%d %H:%M UTC"),
                "price": f"{price:,.4f}",
                "action": action,
                "why": why,
            }
        )

    for trade in marks.trades:
        for entry in trade.entries:
            decision = by_id.get(entry.decision_id or "")
            action = f"{decision.action.upper()} (decision {decision.decision_id})" if decision else entry.kind
            why = decision.summary if decision else "no decision recorded (adopted from the broker)"
            add(entry.kind if entry.kind != "backfill" else "entry", entry.time, float(entry.price), action, why)
        for leaving in trade.exits:
            if leaving.price is not None:
                add("exit", leaving.time, float(leaving.price), f"SELL {leaving.qty}", leaving.reason)
    for decision in marks.passed_over:
        document = decision.document()  # read once: the summary below is rendered from it
        price = document.get("price")
        if price is None:
            continue
        add(
            "passed over",
            decision.evaluated_at,
            float(price),
            f"{decision.action.upper()}: {', '.join(decision.reasons)} (decision {decision.decision_id})",
            decision.summary_from(document),
        )
    return found


def _legend_above(fig: Any) -> None:
    # Above the plot, not over it (a legend on the data hides markers from the pointer) nor
    # beside it (legends of different widths would misalign the charts' shared time axis).
    legend = fig.legend[0]
    legend.orientation = "horizontal"
    fig.add_layout(legend, "above")


def _time_figure(title: str, height: int, name: str, **options: Any) -> Any:
    return figure(
        title=title,
        x_axis_type="datetime",
        height=height,
        sizing_mode="stretch_width",
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        name=name,
        **options,
    )


def _equity_figures(curve: Sequence[EquityPoint], shared: Any) -> tuple[Any, Any]:
    times = [_naive(p.time) for p in curve]
    options: dict[str, Any] = {"x_range": shared.x_range} if shared is not None else {}
    equity = _time_figure("account equity", 250, "equity", **options)
    equity.line(times, [float(p.equity) for p in curve], color="#2ca02c", line_width=2, legend_label="equity")
    equity.line(times, [float(p.cash) for p in curve], color="#999999", legend_label="cash")
    equity.yaxis.formatter = NumeralTickFormatter(format="0,0")
    _legend_above(equity)
    drawdown = _time_figure("drawdown from the running peak", 180, "drawdown", x_range=equity.x_range)
    drawdown.varea(x=times, y1=drawdown_series(curve), y2=0.0, color="#d62728", alpha=0.4)
    drawdown.yaxis.formatter = NumeralTickFormatter(format="0.0%")
    return equity, drawdown


def _trade_rows(trades: Sequence[Trade], *, first: int = 1) -> list[tuple[str, ...]]:
    """The table's rows, numbered from ``first`` (the rank of the first in the whole run). A
    closed position's realized P&L is after all its fees; an open one is not realized yet
    (what it already sold is shown beside "open"). A position with an exit of unknown price
    has an unknown P&L, and says why."""
    rows: list[tuple[str, ...]] = []
    for n, t in enumerate(trades, start=first):
        exit_price = t.average_exit
        pct = None if t.is_open else t.return_pct
        unknown = t.unknown_pnl_reason
        realized = f"{t.realized_pnl:+,.2f}" if unknown is None else f"unknown: {unknown}"
        if t.is_open:
            if unknown is not None:
                realized = f"open ({realized})"
            else:
                realized = f"open ({realized} on what it sold)" if t.exits else "open"
        rows.append(
            (
                str(n),
                t.symbol,
                f"{t.opened_at:%Y-%m-%d}",
                "open" if t.closed_at is None else f"{t.closed_at:%Y-%m-%d}",
                str(len(t.entries)),
                f"{t.average_entry:,.4f}",
                "unknown" if unknown is not None else "-" if exit_price is None else f"{exit_price:,.4f}",
                realized,
                "-" if pct is None else f"{pct:+.2f}%",
                t.close_reason,
            )
        )
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{css_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
td:nth-child(n+2) {{ font-variant-numeric: tabular-nums; }}
ul.notes {{ list-style: none; padding: 0; }}
</style>
{bokeh_js}
</head>
<body>
<h1>{title}</h1>
<ul class="notes">{notes}</ul>
<p>Hover a marker for its decision and reasons; click a legend entry to show or hide it
(skipped and blocked buys start hidden; on a long run, a sample of them spread over it).</p>
{charted}
{div}
{script}
<h2>Statistics</h2>
{unknown_note}
{statistics}
<h2>By symbol</h2>
<p>Realized P&amp;L: the positions closed by the end, after all their fees. Open P&amp;L: the
positions still open, marked at the last close, after the fees paid on them. Return: the two
together, on the starting equity. Their totals are the run's.{symbols_unknown}</p>
{symbols}
<h2>Buy decisions by action and reason</h2>
{decisions}
<h2>Trades</h2>
{trades_note}
{trades}
</body>
</html>
"""
