"""The run chart: each symbol's price with every entry, add-on and exit marked (PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display needed, and no GUI backend is ever picked
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill
from tradekit.ledger.records import IntentPurpose

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
) -> Path:
    """Draw one panel per symbol and write a PNG to ``path``."""
    symbols = sorted(bars)
    fig, axes = plt.subplots(len(symbols), 1, figsize=(12, 3.2 * len(symbols)), sharex=False, squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
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
