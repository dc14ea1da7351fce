"""The report's figures, from review: each test holds a figure to one worked out independently
(empyrical-reloaded, or by hand) on an equity curve or a replay whose answer is known."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import empyrical
import numpy as np
import numpy.typing as npt
import pytest

from tradekit.config import Settings
from tradekit.config.settings import ExitSettings
from tradekit.data import load_daily_bars
from tradekit.execution.paper_run import run_paper_replay
from tradekit.ledger import Ledger
from tradekit.ledger.records import EquityPoint
from tradekit.plugins import Plugins
from tradekit.reporting.statistics import RunStatistics, return_statistics, trade_statistics
from tradekit.reporting.terminal import statistics_rows

from .test_buffered_ledger import TrendAdder

D = Decimal
MIDNIGHT = datetime(2021, 1, 1, tzinfo=UTC)  # a 24/7 session's close: 00:00 UTC, every day
TOLERANCE = 1e-9


def _wiggly(count: int) -> list[Decimal]:
    # Growing about 10 % a year over 365 closes, with a daily wiggle (so the returns vary).
    return [
        (D(100_000) * D(repr(1.1 ** (i / 365) * (1 + 0.004 * math.sin(i))))).quantize(D("0.01")) for i in range(count)
    ]


def _points(times: list[datetime], equity: list[Decimal]) -> list[EquityPoint]:
    return [EquityPoint(time=t, equity=e, cash=e) for t, e in zip(times, equity, strict=True)]


def _returns(curve: list[EquityPoint]) -> npt.NDArray[np.float64]:
    values = np.array([float(p.equity) for p in curve], dtype=np.float64)
    returns: npt.NDArray[np.float64] = values[1:] / values[:-1] - 1
    return returns


def _rows(curve: list[EquityPoint]) -> dict[str, str]:
    """The report's statistics rows (terminal and HTML alike) of a run with this equity curve."""
    run = RunStatistics(
        returns=return_statistics(curve),
        trades=trade_statistics([]),
        buy_and_hold_return=None,
        decisions_by_reason={},
        by_symbol={},
    )
    return dict(statistics_rows(run))


# --- annualising on the calendar in use ------------------------------------------------------------


def test_a_24_7_curve_is_annualised_over_365_days_a_year() -> None:
    """A 24/7 market closes every day: two years are 730 returns, not 2.9 years of 252 sessions.
    The CAGR is the growth per calendar year, and the volatility, Sharpe and Sortino scale by
    365 closes a year."""
    equity = _wiggly(731)
    curve = _points([MIDNIGHT + timedelta(days=i) for i in range(731)], equity)
    stats = return_statistics(curve)
    assert stats is not None
    returns = _returns(curve)
    years = (curve[-1].time - curve[0].time).days / 365
    assert years == 2
    by_hand = float(equity[-1] / equity[0]) ** (1 / years) - 1
    assert stats.cagr == pytest.approx(by_hand, rel=TOLERANCE)
    assert stats.cagr == pytest.approx(empyrical.cagr(returns, annualization=365), rel=TOLERANCE)
    assert stats.volatility == pytest.approx(empyrical.annual_volatility(returns, annualization=365), rel=TOLERANCE)
    assert stats.sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=365), rel=TOLERANCE)
    assert stats.sortino == pytest.approx(empyrical.sortino_ratio(returns, annualization=365), rel=TOLERANCE)
    assert stats.calmar == pytest.approx(empyrical.calmar_ratio(returns, annualization=365), rel=TOLERANCE)
    assert stats.periods_per_year == 365
    assert "365" in _rows(curve)["period"]


def test_an_exchange_calendar_curve_is_still_annualised_over_252_sessions() -> None:
    # Weekday closes at 21:00 UTC (XNYS): 252 sessions a year, as before.
    times: list[datetime] = []
    day = datetime(2021, 1, 4, 21, tzinfo=UTC)
    while len(times) < 600:
        if day.weekday() < 5:
            times.append(day)
        day += timedelta(days=1)
    curve = _points(times, _wiggly(600))
    stats = return_statistics(curve)
    assert stats is not None
    returns = _returns(curve)
    assert stats.periods_per_year == 252
    assert stats.cagr == pytest.approx(empyrical.cagr(returns), rel=TOLERANCE)
    assert stats.sharpe == pytest.approx(empyrical.sharpe_ratio(returns), rel=TOLERANCE)
    assert "252" in _rows(curve)["period"]


def test_a_24_7_replay_reports_the_cagr_per_calendar_year(tmp_path: Path) -> None:
    """End to end: the shipped AAPL bars re-stamped one a day at 00:00 UTC, replayed on the
    ``24/7`` calendar for two years; the report's CAGR is the account's growth per year."""
    series = load_daily_bars(["AAPL"])["AAPL"][:731]
    bars = {"AAPL": [attrs.evolve(bar, time=MIDNIGHT + timedelta(days=i)) for i, bar in enumerate(series)]}
    run = run_paper_replay(
        strategy=TrendAdder,
        settings=Settings(exits=ExitSettings(calendar="24/7")),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=bars,
        out_dir=tmp_path,
        chart=False,
    )
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        curve = tx.equity_curve()
    assert len(curve) == 731
    assert (curve[-1].time - curve[0].time).days == 730
    stats = run.statistics.returns
    assert stats is not None
    assert stats.total_return != 0  # it traded
    growth = float(curve[-1].equity / curve[0].equity)
    assert stats.cagr == pytest.approx(growth ** (365 / 730) - 1, rel=TOLERANCE)
    returns = _returns(curve)
    assert stats.sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=365), rel=TOLERANCE)


# --- figures that are undefined are not shown as numbers ----------------------------------------


def test_zero_variance_returns_have_no_sharpe() -> None:
    """An account growing exactly 0.1 % every close has no volatility: its Sharpe ratio is
    undefined, not the 1e14 that float rounding in the returns would make of it."""
    equity = [D(100)]
    for _ in range(20):
        equity.append(equity[-1] * D("1.001"))
    curve = _points([datetime(2024, 1, 2, 21, tzinfo=UTC) + timedelta(days=i) for i in range(21)], equity)
    returns = _returns(curve)
    assert np.std(returns, ddof=1) > 0  # float rounding: not exactly constant
    stats = return_statistics(curve)
    assert stats is not None
    assert stats.sharpe is None
    assert stats.volatility == 0.0
    assert _rows(curve)["Sharpe"] == "-"


def test_one_return_has_no_volatility() -> None:
    """Two closes make one return: its sample standard deviation is undefined, not 0.00 %."""
    curve = _points([datetime(2024, 1, 2, 21, tzinfo=UTC), datetime(2024, 1, 3, 21, tzinfo=UTC)], [D(100), D(101)])
    stats = return_statistics(curve)
    assert stats is not None
    assert stats.total_return == pytest.approx(0.01)
    assert stats.volatility is None
    assert stats.sharpe is None
    assert _rows(curve)["volatility (annual)"] == "-"


def test_an_account_wiped_out_shows_no_nan() -> None:
    """Equity that reaches zero makes returns of 0/0 after it: the report says -100 % and
    leaves the figures of those returns out, never printing "nan"."""
    times = [datetime(2024, 1, 2, 21, tzinfo=UTC) + timedelta(days=i) for i in range(4)]
    curve = _points(times, [D(100), D(50), D(0), D(0)])
    stats = return_statistics(curve)
    assert stats is not None
    assert stats.total_return == -1.0
    assert stats.max_drawdown == -1.0
    assert stats.volatility is None
    rows = _rows(curve)
    assert not any("nan" in value.lower() or "inf" in value.lower() for value in rows.values()), rows
    assert rows["total return"] == "-100.00%"
