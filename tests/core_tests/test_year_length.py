"""The annual figures' year comes from the calendar the replay ran on, not from the closes.

A 24/7 market has 365 closes a year whether or not a run's closes happen to fall on a
weekend; an exchange's calendar has 252 sessions. Only a ledger read without its calendar
falls back to telling the two apart by its closes (Saturdays and Sundays both: 365).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.config.settings import ExitSettings
from tradekit.domain import Bar, Side
from tradekit.execution.paper_run import PaperRun, run_paper_replay
from tradekit.exits.calendar import trading_calendar
from tradekit.ledger import Ledger
from tradekit.optimize.objective import METRICS
from tradekit.optimize.problem import Prepared, Problem, evaluate, scores
from tradekit.optimize.walkforward import Window, walk_forward
from tradekit.plugins import Plugins
from tradekit.reporting.statistics import calendar_periods_per_year, compute_statistics
from tradekit.reporting.terminal import statistics_rows

from .test_pnl_definitions import Scripted

D = Decimal
MONDAY = datetime(2024, 3, 4, tzinfo=UTC)  # 00:00 UTC: a 24/7 session's close
TOLERANCE = 1e-9


def _weekday_bars(symbol: str, first: datetime, weeks: int, hour: int = 0) -> list[Bar]:
    """A bar at each weekday ``hour`` for ``weeks`` weeks from Monday ``first``: no weekend close."""
    bars: list[Bar] = []
    price = D(100)
    for week in range(weeks):
        for weekday in range(5):
            opened, price = price, price + D(1) if (week + weekday) % 3 else price - D("0.5")
            bars.append(
                Bar(
                    symbol=symbol,
                    time=first + timedelta(days=7 * week + weekday, hours=hour),
                    open=opened,
                    high=max(opened, price),
                    low=min(opened, price),
                    close=price,
                    volume=D(1_000_000),
                )
            )
    return bars


class Holder(Scripted):
    name = "holder"
    plan: ClassVar[Mapping[str, Mapping[int, Side]]] = {
        "AAA": {0: Side.BUY}
    }  # bought at the first close, held to the end


def _replay(out: Path, bars: list[Bar], calendar: str) -> PaperRun:
    return run_paper_replay(
        strategy=Holder,
        settings=Settings(exits=ExitSettings(calendar=calendar)),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars={"AAA": bars},
        out_dir=out,
        broker_config=PaperBrokerConfig(commission_per_order=D(1)),
        chart=False,
    )


def test_the_calendars_say_how_many_closes_make_a_year() -> None:
    assert calendar_periods_per_year(trading_calendar("24/7"), MONDAY) == 365
    assert calendar_periods_per_year(trading_calendar("XNYS"), MONDAY) == 252
    assert calendar_periods_per_year(trading_calendar("XLON"), MONDAY) == 252


def test_a_24_7_replay_of_weekdays_only_is_annualised_over_365_days(tmp_path: Path) -> None:
    """Five closes, Monday to Friday, on the 24/7 calendar: no weekend close among them, and
    still a year of 365 closes (the closes alone would have said 252)."""
    run = _replay(tmp_path, _weekday_bars("AAA", MONDAY, 1), "24/7")
    returns = run.statistics.returns
    assert returns is not None
    assert returns.closes == 5
    assert returns.periods_per_year == 365
    growth = float(run.result.final_equity / run.result.starting_equity)
    assert growth != 1  # it traded
    assert returns.cagr == pytest.approx(growth ** (365 / 4) - 1, rel=TOLERANCE)
    by_symbol = run.statistics.by_symbol["AAA"].returns
    assert by_symbol is not None
    assert by_symbol.periods_per_year == 365
    assert "annualised at 365 a year" in dict(statistics_rows(run.statistics))["period"]
    # Read back without its calendar, the ledger's closes are all the statistics have: the
    # fallback takes weekday-only closes for an exchange's.
    with Ledger.open(run.ledger_url, create=False) as ledger:
        guessed = compute_statistics(ledger, {"AAA": _weekday_bars("AAA", MONDAY, 1)}).returns
    assert guessed is not None
    assert guessed.periods_per_year == 252


def test_an_exchange_replay_is_annualised_over_252_sessions(tmp_path: Path) -> None:
    run = _replay(tmp_path, _weekday_bars("AAA", MONDAY, 2, hour=21), "XNYS")  # XNYS closes at 21:00 UTC
    returns = run.statistics.returns
    assert returns is not None
    assert returns.closes == 10
    assert returns.periods_per_year == 252
    growth = float(run.result.final_equity / run.result.starting_equity)
    assert returns.cagr == pytest.approx(growth ** (252 / 9) - 1, rel=TOLERANCE)


def test_a_walk_forward_on_24_7_stitches_its_out_of_sample_curve_at_365_a_year(tmp_path: Path) -> None:
    """The walk-forward's own figures (the stitched out-of-sample curve) take the calendar's
    year too: weekday-only closes on the 24/7 calendar are 365 a year."""
    bars = {"AAA": _weekday_bars("AAA", MONDAY, 2)}
    settings = Settings(exits=ExitSettings(calendar="24/7"))
    prepared = Prepared(
        problem=Problem(strategy=Holder.name),
        strategy=Holder,
        settings=settings,
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=bars,
        source="test bars",
        broker=PaperBrokerConfig(),
        dimensions=(),
        metrics=(METRICS["sharpe"],),
        identity={},
    )

    def optimise(name: str, inside: Prepared, window: Window) -> tuple[dict[str, Any], list[float], dict[str, Any]]:
        run = evaluate(inside, {})
        values, statistics = scores(inside, run)
        return {}, values, statistics

    result = walk_forward(
        prepared, study="s", in_sample=2, out_of_sample=3, anchored=False, optimise=optimise, out_dir=tmp_path
    )
    assert {p.time.weekday() for p in result.stitched} <= {0, 1, 2, 3, 4}
    stitched = result.to_json()["stitched"]["returns"]
    assert stitched["periods_per_year"] == 365
    for fold in result.folds:
        assert fold.out_of_sample["returns"]["periods_per_year"] == 365
        assert fold.in_sample["returns"]["periods_per_year"] == 365
    assert date.fromisoformat(stitched["start"]) == result.folds[0].window.out_of_sample[0]
