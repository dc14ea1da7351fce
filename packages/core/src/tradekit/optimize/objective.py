"""What a search optimises: figures of the run statistics (``tradekit.reporting.statistics``).

Each metric reads the statistics as the run's JSON holds them (``RunStatistics.as_json``),
so the same figures can be read back from a trial's record, or from the stitched
out-of-sample curve of a walk-forward analysis. A figure a run does not have (no Sharpe
ratio for a flat curve, no profit factor without a losing trade) scores the worst value
of its direction, so such a run never wins; so does a figure that is not finite (an
annualised growth overflowing on a short window) and every figure of a run that opened no
position: a run that never trades has no drawdown, volatility or exposure, and must not
win on them.

A run that closed fewer positions than the search's minimum (``DEFAULT_MIN_TRADES`` unless
the search says otherwise) keeps its figures but is set aside (``below_minimum``): a
parameter set whose Sharpe ratio or return rests on a lucky trade or two must not be
presented as the best one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

StudyDirectionName = Literal["maximize", "minimize"]
MAXIMIZE: StudyDirectionName = "maximize"
MINIMIZE: StudyDirectionName = "minimize"

# The fewest closed positions a trial must make to be eligible as the best. Ten is the least
# sample in which no single trade weighs more than a tenth (with three, one lucky position can
# carry the whole Sharpe ratio); not the statistician's thirty, which the example strategy
# (about six closed positions a year on one symbol) would not reach in a three-year search on
# one symbol. docs/optimize.md, "The minimum of closed trades".
DEFAULT_MIN_TRADES = 10


@attrs.frozen
class Metric:
    name: str
    direction: StudyDirectionName
    description: str
    read: Callable[[Mapping[str, Any]], float | None]

    def score(self, statistics: Mapping[str, Any]) -> float:
        """The metric's value; the worst value of its direction when the run has none, when
        it is not finite, or when the run opened no position."""
        value = self.read(statistics)
        if value is None or not math.isfinite(value) or never_traded(statistics):
            return self.worst
        return float(value)

    @property
    def worst(self) -> float:
        return -math.inf if self.direction == MAXIMIZE else math.inf


def never_traded(statistics: Mapping[str, Any]) -> bool:
    """Whether the run's trade figures say it opened no position (a stitched curve has none: False)."""
    trades = statistics.get("trades")
    return isinstance(trades, Mapping) and trades.get("positions") == 0


def closed_trades(statistics: Mapping[str, Any]) -> int:
    """The positions the run closed (0 when its figures have no trades: a stitched curve)."""
    trades = statistics.get("trades")
    closed = trades.get("closed") if isinstance(trades, Mapping) else None
    return int(closed) if closed is not None else 0


def trades_text(count: int) -> str:
    return f"{count} closed trade{'' if count == 1 else 's'}"


def below_minimum(statistics: Mapping[str, Any], minimum: int, *, where: str = "") -> str | None:
    """Why the run is set aside: it closed fewer positions than ``minimum`` ("3 closed trades,
    below the minimum of 10"); None when it closed enough, or when there is no minimum (0)."""
    closed = closed_trades(statistics)
    if closed >= minimum:
        return None
    return f"{trades_text(closed)}{' ' + where if where else ''}, below the minimum of {minimum}"


def _returns(key: str) -> Callable[[Mapping[str, Any]], float | None]:
    def read(statistics: Mapping[str, Any]) -> float | None:
        returns = statistics.get("returns")
        value = returns.get(key) if returns else None
        return None if value is None else float(value)

    return read


def _trades(key: str) -> Callable[[Mapping[str, Any]], float | None]:
    def read(statistics: Mapping[str, Any]) -> float | None:
        trades = statistics.get("trades")
        value = trades.get(key) if trades else None
        return None if value is None else float(value)

    return read


def _return_over_drawdown(statistics: Mapping[str, Any]) -> float | None:
    returns = statistics.get("returns")
    if not returns:
        return None
    drawdown = abs(float(returns["max_drawdown"]))
    return float(returns["total_return"]) / drawdown if drawdown > 0 else None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("sharpe", MAXIMIZE, "annualised Sharpe ratio of the daily returns", _returns("sharpe")),
        Metric("sortino", MAXIMIZE, "annualised Sortino ratio", _returns("sortino")),
        Metric("calmar", MAXIMIZE, "CAGR / |max drawdown|", _returns("calmar")),
        Metric("total_return", MAXIMIZE, "total return of the account", _returns("total_return")),
        Metric("cagr", MAXIMIZE, "compound annual growth rate", _returns("cagr")),
        Metric("return_over_drawdown", MAXIMIZE, "total return / |max drawdown|", _return_over_drawdown),
        Metric(
            "max_drawdown", MAXIMIZE, "max drawdown (a negative ratio: nearer 0 is better)", _returns("max_drawdown")
        ),
        Metric("volatility", MINIMIZE, "annualised volatility of the daily returns", _returns("volatility")),
        Metric("exposure", MINIMIZE, "share of closes with a position held", _returns("exposure")),
        Metric("win_rate", MAXIMIZE, "share of closed positions that made money", _trades("win_rate")),
        Metric("profit_factor", MAXIMIZE, "gross profit / gross loss", _trades("profit_factor")),
        Metric("expectancy", MAXIMIZE, "average P&L per closed position", _trades("expectancy")),
    )
}


class ObjectiveError(ValueError):
    """An objective that names no known metric."""


def metrics_of(names: Sequence[str]) -> list[Metric]:
    """The metrics named (one for a single-objective search, several for a Pareto front)."""
    if not names:
        raise ObjectiveError("choose at least one objective")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ObjectiveError(f"unknown objective {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if len(set(names)) != len(names):
        raise ObjectiveError("an objective is named twice")
    return [METRICS[n] for n in names]


def recorded_statistics(statistics_json: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial records of a run's statistics: the account's return and trade figures."""
    return {"returns": statistics_json.get("returns"), "trades": statistics_json.get("trades")}
