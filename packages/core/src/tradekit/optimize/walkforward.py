"""Walk-forward analysis: optimise in sample, judge out of sample, window after window.

The trading days are cut into folds. Each fold's in-sample window (``in_sample`` sessions:
rolling, or ``anchored`` at the first day and growing) gets a study of its own; the best
trial's parameters are then replayed once on the ``out_of_sample`` sessions that follow.
The out-of-sample equity curves are stitched into one (each fold's curve scaled to start
where the previous one ended) and its statistics set beside the in-sample ones: the gap
between them is how much of the in-sample figure was fitted noise.

Each fold's study applies the search's minimum of closed trades in sample: a trial closing
fewer is set aside and cannot be the fold's best. The out-of-sample replay is held to the
same minimum, not to exclude it (its window is what it is) but to flag it: figures resting on
fewer trades than were asked of a trial say little.

Each window's replay starts flat with an empty history: a strategy's warm-up (its longest
indicator) eats into the start of every out-of-sample window. ``walk-forward.html`` shows the
stitched curve and the in-sample / out-of-sample objective per fold (Bokeh, inlined like
the run report); ``walk-forward.json`` holds every figure.
"""

from __future__ import annotations

import html
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from bokeh.embed import components
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter
from bokeh.models.annotations import BoxAnnotation
from bokeh.plotting import figure
from bokeh.resources import Resources

from tradekit.exits.calendar import trading_calendar
from tradekit.ledger.records import EquityPoint
from tradekit.ledger.store import Ledger
from tradekit.optimize.objective import METRICS, below_minimum, closed_trades
from tradekit.optimize.problem import Prepared, ProblemError, evaluate, scores, trim

# The run report's own helpers: one way to put a time on a Bokeh axis and a table on a page.
from tradekit.reporting.html_report import _naive, _table
from tradekit.reporting.statistics import calendar_periods_per_year, return_statistics

SUMMARY_METRICS = ("sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown", "return_over_drawdown")
SUMMARY_HEADER = ("statistic", "in sample (mean)", "out of sample (mean)", "out of sample (stitched)")
log = logging.getLogger(__name__)

REPORT_FILE = "walk-forward.html"
DATA_FILE = "walk-forward.json"


@attrs.frozen
class Window:
    fold: int
    in_sample: tuple[date, date]
    out_of_sample: tuple[date, date]


def windows(days: Sequence[date], in_sample: int, out_of_sample: int, *, anchored: bool) -> list[Window]:
    """The folds over ``days`` (sorted trading days): each in-sample window and the
    out-of-sample window after it; the last out-of-sample window may be shorter (not under 2 days)."""
    if in_sample < 2 or out_of_sample < 2:
        raise ProblemError("in-sample and out-of-sample windows need at least 2 sessions each")
    if len(days) < in_sample + 2:
        raise ProblemError(
            f"{len(days)} sessions of bars cannot hold an in-sample window of {in_sample} and an out-of-sample one"
        )
    found: list[Window] = []
    split = in_sample
    while split + 2 <= len(days):
        first = 0 if anchored else split - in_sample
        last = min(split + out_of_sample, len(days))
        found.append(
            Window(
                fold=len(found) + 1,
                in_sample=(days[first], days[split - 1]),
                out_of_sample=(days[split], days[last - 1]),
            )
        )
        split += out_of_sample
    return found


@attrs.frozen
class Fold:
    window: Window
    study: str
    params: dict[str, Any]
    in_sample: dict[str, Any]  # the best trial's recorded statistics
    out_of_sample: dict[str, Any]
    in_sample_values: list[float]
    out_of_sample_values: list[float]
    curve: list[EquityPoint]
    ledger: str
    # How often the strategy raised in the out-of-sample replay (the session skipped those
    # closes): its figures are then not those of the strategy as written.
    strategy_errors: int = 0


@attrs.frozen
class WalkForward:
    objectives: tuple[str, ...]
    anchored: bool
    folds: list[Fold]
    stitched: list[EquityPoint]
    # The closes a year of the calendar the folds traded on (None: guessed from the closes).
    periods_per_year: int | None = None
    # The closed trades a trial needed in sample to be eligible (0: no minimum).
    min_trades: int = 0

    def below_minimum(self, fold: Fold) -> str | None:
        """Why the fold's out-of-sample replay is flagged: it closed fewer trades than the minimum."""
        return below_minimum(fold.out_of_sample, self.min_trades, where="out of sample")

    def summary(self) -> list[tuple[str, float | None, float | None, float | None]]:
        """(metric, mean in-sample, mean out-of-sample per fold, stitched out-of-sample) rows."""
        stitched = stitched_statistics(self.stitched, self.periods_per_year)
        rows = []
        for name in SUMMARY_METRICS:
            metric = METRICS[name]
            rows.append(
                (
                    name,
                    _mean([metric.read(f.in_sample) for f in self.folds]),
                    _mean([metric.read(f.out_of_sample) for f in self.folds]),
                    metric.read(stitched),
                )
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "objectives": list(self.objectives),
            "anchored": self.anchored,
            "min_trades": self.min_trades,
            "summary": [
                {"metric": m, "in_sample_mean": i, "out_of_sample_mean": o, "out_of_sample_stitched": s}
                for m, i, o, s in self.summary()
            ],
            "stitched": stitched_statistics(self.stitched, self.periods_per_year),
            "folds": [
                {
                    "fold": f.window.fold,
                    "study": f.study,
                    "in_sample": [d.isoformat() for d in f.window.in_sample],
                    "out_of_sample": [d.isoformat() for d in f.window.out_of_sample],
                    "params": f.params,
                    "in_sample_values": f.in_sample_values,
                    "out_of_sample_values": f.out_of_sample_values,
                    "in_sample_statistics": f.in_sample,
                    "out_of_sample_statistics": f.out_of_sample,
                    "out_of_sample_strategy_errors": f.strategy_errors,
                    "in_sample_closed_trades": closed_trades(f.in_sample),
                    "out_of_sample_closed_trades": closed_trades(f.out_of_sample),
                    "out_of_sample_below_min_trades": self.below_minimum(f) is not None,
                    "ledger": f.ledger,
                }
                for f in self.folds
            ],
        }


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def stitch(curves: Sequence[Sequence[EquityPoint]]) -> list[EquityPoint]:
    """One curve from consecutive ones: each scaled to begin at the previous one's last equity."""
    stitched: list[EquityPoint] = []
    for curve in curves:
        if not curve:
            continue
        scale = stitched[-1].equity / curve[0].equity if stitched else Decimal(1)
        stitched += [EquityPoint(time=p.time, equity=p.equity * scale, cash=p.cash * scale) for p in curve]
    return stitched


def stitched_statistics(curve: Sequence[EquityPoint], per_year: int | None = None) -> dict[str, Any]:
    """The stitched curve's return figures, ``per_year`` closes a year (the calendar's; the
    curve's closes tell it without one)."""
    returns = return_statistics(curve, per_year=per_year)
    return {"returns": attrs.asdict(returns) if returns is not None else None, "trades": None}


FoldRunner = Callable[[str, Prepared, Window], tuple[dict[str, Any], list[float], dict[str, Any]]]
"""Optimise one fold's in-sample window: (study name, the window's problem, the window) ->
(best parameters, their objective values, their recorded statistics)."""


def walk_forward(
    prepared: Prepared,
    *,
    study: str,
    in_sample: int,
    out_of_sample: int,
    anchored: bool,
    optimise: FoldRunner,
    out_dir: Path,
) -> WalkForward:
    """Run every fold: ``optimise`` its in-sample window, replay the winner out of sample
    (its ledger kept under ``out_dir``, replacing an earlier walk-forward's); write the JSON
    and the HTML report there."""
    days = sorted({b.time.date() for series in prepared.bars.values() for b in series})
    first = min(series[0].time for series in prepared.bars.values() if series)
    per_year = calendar_periods_per_year(trading_calendar(prepared.settings.exits.calendar), first)
    folds = []
    for window in windows(days, in_sample, out_of_sample, anchored=anchored):
        inside = prepared.with_bars(trim(prepared.bars, *window.in_sample), prepared.problem.window(*window.in_sample))
        name = f"{study}.fold{window.fold}"
        params, values, statistics = optimise(name, inside, window)
        outside = prepared.with_bars(
            trim(prepared.bars, *window.out_of_sample), prepared.problem.window(*window.out_of_sample)
        )
        replay_dir = out_dir / f"fold-{window.fold}-out-of-sample"
        if (replay_dir / "ledger.db").exists():
            # An earlier walk-forward into this folder: its fold replays again from an empty
            # ledger (with the parameters its study now holds best), in place of the old one.
            shutil.rmtree(replay_dir)
        run = evaluate(outside, params, out_dir=replay_dir)
        oos_values, oos_statistics = scores(outside, run)
        errors = run.result.tally.strategy_errors
        if errors:
            log.warning(
                "fold %d: the strategy raised %d time(s) out of sample (those closes were skipped): "
                "its out-of-sample figures are not those of the strategy as written",
                window.fold,
                errors,
            )
        too_few = below_minimum(oos_statistics, prepared.problem.min_trades, where="out of sample")
        if too_few:
            log.warning("fold %d: %s: its out-of-sample figures rest on too few trades", window.fold, too_few)
        with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
            curve = tx.equity_curve()
        folds.append(
            Fold(
                window=window,
                study=name,
                params=dict(params),
                in_sample=statistics,
                out_of_sample=oos_statistics,
                in_sample_values=values,
                out_of_sample_values=oos_values,
                curve=list(curve),
                ledger=run.ledger_url,
                strategy_errors=errors,
            )
        )
    result = WalkForward(
        objectives=prepared.problem.objectives,
        anchored=anchored,
        folds=folds,
        stitched=stitch([f.curve for f in folds]),
        periods_per_year=per_year,
        min_trades=prepared.problem.min_trades,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DATA_FILE).write_text(json.dumps(result.to_json(), indent=2, default=str))
    write_report(result, out_dir / REPORT_FILE, title=f"walk-forward: {prepared.problem.strategy} ({study})")
    return result


# --- the report -----------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _aside(note: str | None) -> str:
    return f" ({note})" if note else ""


def write_report(result: WalkForward, path: Path, *, title: str) -> Path:
    """The walk-forward page: the stitched out-of-sample curve, the objective in and out of
    sample per fold, the summary and the folds' table."""
    equity = figure(
        height=320,
        sizing_mode="stretch_width",
        x_axis_type="datetime",
        title="stitched out-of-sample equity (shaded: folds)",
        name="wf-equity",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    xs = [_naive(p.time) for p in result.stitched]
    equity.line(xs, [float(p.equity) for p in result.stitched], color="#1f77b4", line_width=2, name="wf-curve")
    for fold in result.folds:
        if fold.curve:
            equity.add_layout(
                BoxAnnotation(
                    left=_naive(fold.curve[0].time),
                    right=_naive(fold.curve[-1].time),
                    fill_alpha=0.08 if fold.window.fold % 2 else 0.0,
                    fill_color="#888888",
                )
            )
    equity.yaxis.formatter = NumeralTickFormatter(format="0,0")
    objective = result.objectives[0]
    factors = [(f"fold {f.window.fold}", side) for f in result.folds for side in ("in", "out")]
    values = [v for f in result.folds for v in (f.in_sample_values[0], f.out_of_sample_values[0])]
    finite = [v if abs(v) != float("inf") else 0.0 for v in values]
    bars = figure(
        height=280,
        sizing_mode="stretch_width",
        x_range=FactorRange(factors=factors),
        title=f"{objective}: in sample (best trial) and out of sample, per fold",
        name="wf-folds",
        tools="save",
    )
    source = ColumnDataSource(
        {"x": factors, "top": finite, "color": ["#7f7f7f" if s == "in" else "#2ca02c" for _, s in factors]}
    )
    bars.vbar(x="x", top="top", width=0.8, color="color", source=source, name="wf-bars")
    script, div = components(column(equity, bars, sizing_mode="stretch_width"))
    summary_rows = [(m, _ratio(i), _ratio(o), _ratio(s)) for m, i, o, s in result.summary()]
    fold_rows = [
        (
            str(f.window.fold),
            f"{f.window.in_sample[0]} .. {f.window.in_sample[1]}",
            f"{f.window.out_of_sample[0]} .. {f.window.out_of_sample[1]}",
            ", ".join(f"{k}={v}" for k, v in sorted(f.params.items())),
            _ratio(f.in_sample_values[0]),
            _ratio(f.out_of_sample_values[0])
            + (f" (the strategy raised {f.strategy_errors} time(s) out of sample)" if f.strategy_errors else "")
            + _aside(result.below_minimum(f)),
            _ratio(f.in_sample_values[0] - f.out_of_sample_values[0]),
            f"{closed_trades(f.in_sample)} / {closed_trades(f.out_of_sample)}",
        )
        for f in result.folds
    ]
    minimum = (
        f"In sample, trials closing fewer than {result.min_trades} positions were set aside: none of them could "
        "be a fold's best; an out-of-sample replay closing fewer is flagged beside its figure."
        if result.min_trades
        else "No minimum of closed trades: any trial could be a fold's best."
    )
    page = _PAGE.format(
        title=html.escape(title),
        kind="anchored" if result.anchored else "rolling",
        minimum=html.escape(minimum),
        bokeh_js=Resources(mode="inline", components=["bokeh"]).render_js(),
        script=script,
        div=div,
        summary=_table(SUMMARY_HEADER, summary_rows, "summary"),
        folds=_table(
            (
                "fold",
                "in sample",
                "out of sample",
                "best parameters",
                f"{objective} in",
                f"{objective} out",
                "gap",
                "closed trades in / out",
            ),
            fold_rows,
            "folds",
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{bokeh_js}
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f2f2f2; }}
td:nth-child(4) {{ text-align: left; }}
</style>
{script}
</head>
<body>
<h1>{title}</h1>
<p>{kind} windows; each fold's best in-sample parameters replayed on the out-of-sample window after it.
The gap between in-sample and out-of-sample figures is the part of the in-sample figure that was fitted noise.</p>
<p>{minimum}</p>
{div}
<h2>in sample against out of sample</h2>
{summary}
<h2>folds</h2>
{folds}
</body>
</html>
"""
