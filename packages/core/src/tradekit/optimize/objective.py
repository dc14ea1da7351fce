"""What a search optimises: figures of the run statistics (``tradekit.reporting.statistics``).

Each metric reads the statistics as the run's JSON holds them (``RunStatistics.as_json``),
so the same figures can be read back from a trial's record, or from the stitched
out-of-sample curve of a walk-forward analysis. A figure a run does not have (no Sharpe
ratio for a flat curve, no profit factor without a losing trade) scores the worst value
of its direction, so such a run never wins; so does a figure that is not finite (an
annualised growth overflowing on a short window) and every figure of a run that opened no
position: a run that never trades has no drawdown, volatility or exposure, and must not
win on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

StudyDirectionName = Literal["maximize", "minimize"]
MAXIMIZE: StudyDirectionName = "maximize"
MINIMIZE: StudyDirectionName = "minimize"


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
