"""The run chart (PNG): each symbol's price with every entry, add-on and exit marked, and
the account's equity with its drawdown below."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display needed, and no GUI backend is ever picked
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill
from tradekit.ledger.records import EquityPoint, IntentPurpose
from tradekit.reporting.statistics import drawdown_series

_STYLE = {
    IntentPurpose.ENTRY: ("^", "tab:green", "entry"),
    IntentPurpose.SCALE_IN: ("^", "tab:blue", "add-on"),
    IntentPurpose.EXIT: ("v", "tab:red", "exit"),
}


def render_chart(
    bars: Mapping[str, Sequence[Bar]],
    fills: Sequence[tuple[Fill, IntentPurpose | None]],
    path: Path,
    *,
    title: str,
    equity: Sequence[EquityPoint] = (),
) -> Path:
    """Draw one panel per symbol (and the equity panel, when given) and write a PNG."""
    symbols = sorted(bars)
    panels = len(symbols) + (1 if equity else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(12, 3.2 * panels), sharex=False, squeeze=False)
    if equity:
        _equity_panel(axes[-1, 0], equity)
    for ax, symbol in zip(axes[:, 0], symbols, strict=False):
        series = bars[symbol]
        ax.plot([b.time for b in series], [float(b.close) for b in series], color="0.35", linewidth=0.8)
        for purpose, (marker, color, label) in _STYLE.items():
            points = [(f.time, float(f.price)) for f, p in fills if f.symbol == symbol and p is purpose]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, marker=marker, color=color, s=28, label=f"{label} ({len(points)})", zorder=3)
        ax.set_title(symbol, loc="left", fontsize=10)
        ax.xaxis.set_major_locator(mdates.YearLocator())  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))  # type: ignore[no-untyped-call]
        ax.grid(alpha=0.3)
        if ax.collections:
            ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _equity_panel(ax: Any, equity: Sequence[EquityPoint]) -> None:
    times = [p.time for p in equity]
    ax.plot(times, [float(p.equity) for p in equity], color="tab:green", linewidth=1.0, label="equity")
    ax.set_title("account equity and drawdown", loc="left", fontsize=10)
    ax.grid(alpha=0.3)
    under = ax.twinx()
    drawdown = [d * 100 for d in drawdown_series(equity)]
    under.fill_between(times, drawdown, 0, color="tab:red", alpha=0.25, label="drawdown %")
    under.set_ylim(min(min(drawdown, default=0.0) * 3, -1.0), 0)
    under.set_ylabel("drawdown %", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    under.legend(loc="lower left", fontsize=8)
    ax.xaxis.set_major_locator(mdates.YearLocator())  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))  # type: ignore[no-untyped-call]
