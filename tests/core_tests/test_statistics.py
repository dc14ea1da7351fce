"""Run statistics: the return-series figures held to empyrical, the trade figures to hand counts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import empyrical
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.data import load_daily_bars
from tradekit.execution.paper_run import run_paper_replay
from tradekit.ledger import Ledger
from tradekit.ledger.records import EquityPoint
from tradekit.plugins import Plugins
from tradekit.reporting.statistics import (
    compute_statistics,
    return_statistics,
    statistics_of,
    symbol_curve,
    trade_statistics,
)
from tradekit.reporting.trades import Trade, TradeEntry, TradeExit, read_trades

from .test_buffered_ledger import TrendAdder

D = Decimal
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
# Both sides compute in float64 from the same returns; only summation order differs.
TOLERANCE = 1e-9


def _curve(equity: list[Decimal], cash: list[Decimal] | None = None) -> list[EquityPoint]:
    cash = cash or equity
    return [
        EquityPoint(time=T0 + timedelta(days=i), equity=e, cash=c)
        for i, (e, c) in enumerate(zip(equity, cash, strict=True))
    ]


def _oracle_matches(curve: list[EquityPoint]) -> None:
    stats = return_statistics(curve)
    assert stats is not None
    values = np.array([float(p.equity) for p in curve])
    returns = values[1:] / values[:-1] - 1
    # A year is 365 closes on a curve that closes every day, weekends included (24/7); 252
    # sessions on an exchange's calendar.
    year = 365 if {5, 6} <= {p.time.weekday() for p in curve} else 252
    assert stats.periods_per_year == year
    assert stats.total_return == pytest.approx(empyrical.cum_returns_final(returns), rel=TOLERANCE, abs=TOLERANCE)
    assert stats.cagr == pytest.approx(empyrical.cagr(returns, annualization=year), rel=TOLERANCE, abs=TOLERANCE)
    assert stats.volatility == pytest.approx(
        empyrical.annual_volatility(returns, annualization=year), rel=TOLERANCE, abs=TOLERANCE
    )
    assert stats.max_drawdown == pytest.approx(empyrical.max_drawdown(returns), rel=TOLERANCE, abs=TOLERANCE)
    for ours, theirs in (
        (stats.sharpe, empyrical.sharpe_ratio(returns, annualization=year)),
        (stats.sortino, empyrical.sortino_ratio(returns, annualization=year)),
        (stats.calmar, empyrical.calmar_ratio(returns, annualization=year)),
    ):
        if ours is None:  # undefined: no volatility (float rounding aside), no downside or no drawdown
            assert theirs is None or not math.isfinite(theirs) or abs(theirs) > 1e9
        else:
            assert ours == pytest.approx(theirs, rel=TOLERANCE, abs=TOLERANCE)


@given(
    daily=st.lists(
        st.floats(min_value=-0.15, max_value=0.15, allow_nan=False).map(lambda r: round(r, 6)), min_size=2, max_size=300
    )
)
def test_return_statistics_match_empyrical_on_any_equity_series(daily: list[float]) -> None:
    equity = [D(100_000)]
    for r in daily:
        equity.append((equity[-1] * (1 + D(str(r)))).quantize(D("0.01")))
    _oracle_matches(_curve(equity))


def test_return_statistics_of_a_replay_match_empyrical_and_the_ledger_holds_one_point_per_close(tmp_path: Path) -> None:
    bars = {s: [b for b in series if b.time.year < 2004] for s, series in load_daily_bars(["AAPL", "MSFT"]).items()}
    run = run_paper_replay(
        strategy=TrendAdder,
        settings=Settings(),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=bars,
        out_dir=tmp_path,
        broker_config=PaperBrokerConfig(commission_per_order=D(1), slippage_bps=D(5)),
        chart=False,
    )
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        curve = tx.equity_curve()
        trades = read_trades(tx)
        counts = tx.decision_counts()
    assert len(curve) == run.result.days
    assert {t.symbol for t in trades} == set(bars)
    # The run's figures were read one symbol's trades at a time; from the whole trade list
    # they are the same, figure for figure.
    assert statistics_of(curve, trades, counts, bars) == run.statistics
    assert curve[-1].equity == run.result.final_equity
    _oracle_matches(curve)
    stats = run.statistics
    assert stats.returns is not None
    assert stats.returns.periods_per_year == 252  # XNYS sessions
    assert stats.returns.total_return == pytest.approx(float(run.result.final_equity / curve[0].equity - 1))
    # Every order paid its commission, and the trade list holds every position the summary counts.
    assert stats.trades.fees == sum(run.summary.orders_by_purpose.values()) * D(1)
    assert stats.trades.positions == run.summary.round_trips + run.summary.open_positions
    assert stats.trades.positions_by_entry_count == run.summary.positions_by_entry_count
    # Realized P&L is the closed positions' (after all their fees); the fees of the positions
    # still open are in their open P&L, not taken from the realized figure.
    closed_pnl = sum((t.realized_pnl for t in trades if not t.is_open), D(0))
    open_fees = sum((e.fees for t in trades if t.is_open for e in t.entries), D(0))
    assert open_fees > 0
    assert run.summary.realized_pnl == closed_pnl == stats.trades.realized_pnl
    assert stats.trades.open_fees == open_fees
    assert run.summary.open_pnl is not None
    pnl = run.summary.final_equity - run.summary.starting_equity
    assert abs(run.summary.realized_pnl + run.summary.open_pnl - pnl) < D("1e-12")
    assert stats.buy_and_hold_return == pytest.approx(
        np.mean([float(s[-1].close / s[0].close - 1) for s in bars.values()])
    )
    with Ledger.open(run.ledger_url) as ledger:
        assert compute_statistics(ledger, bars) == stats
    # The symbols' contribution curves add up to the account's equity, to the cent and beyond.
    base, closes = curve[0].equity, [p.time for p in curve]
    contributions = [symbol_curve([t for t in trades if t.symbol == s], bars[s], closes, base) for s in sorted(bars)]
    for i, point in enumerate(curve):
        assert sum((c[i].equity - base for c in contributions), D(0)) == point.equity - base
    for symbol, contribution in zip(sorted(bars), contributions, strict=True):
        by_symbol = stats.by_symbol[symbol].returns
        assert by_symbol is not None
        assert by_symbol.total_return == pytest.approx(float(contribution[-1].equity / base - 1))
        # Worked out from columns, the figures are those of the symbol's curve of points.
        assert by_symbol == return_statistics(contribution)


def test_a_symbol_never_traded_has_the_figures_of_its_flat_contribution() -> None:
    """A symbol with bars but no trade contributes its starting equity at every close; its
    figures (worked out once for all such symbols) are those of that flat curve, next to a
    traded symbol's own."""
    bars = {s: series[:300] for s, series in load_daily_bars(["AAPL", "IBM", "MSFT"]).items()}
    closes = [b.time for b in bars["AAPL"]]
    base = D("100000.00")
    curve = [EquityPoint(time=t, equity=base + i, cash=base + i) for i, t in enumerate(closes)]
    entry = TradeEntry(
        time=closes[10],
        price=bars["IBM"][9].close,
        qty=D(3),
        fees=D(1),
        kind="entry",
        decision_id=None,
        client_order_id=None,
    )
    traded = Trade(symbol="IBM", number=1, strategy="s", entries=(entry,), exits=())
    stats = statistics_of(curve, [traded], {}, bars)
    for symbol in ("AAPL", "MSFT"):
        flat = symbol_curve([], bars[symbol], closes, base)
        assert {p.equity for p in flat} == {p.cash for p in flat} == {base}
        assert stats.by_symbol[symbol].returns == return_statistics(flat)
        assert stats.by_symbol[symbol].trades.positions == 0
    assert stats.by_symbol["IBM"].returns == return_statistics(symbol_curve([traded], bars["IBM"], closes, base))
    assert stats.by_symbol["IBM"].returns != stats.by_symbol["AAPL"].returns
    # IBM's one position is still open: it has figures of its own all the same. With one close
    # there is no return to speak of, traded or not.
    short = statistics_of(curve[:1], [traded], {}, bars)
    assert all(short.by_symbol[symbol].returns is None for symbol in bars)


def test_drawdown_duration_runs_from_the_peak_to_the_close_that_regains_it() -> None:
    equity = [D(v) for v in (100, 110, 99, 105, 110, 120, 108, 115)]
    stats = return_statistics(_curve(equity, cash=[D(100)] * len(equity)))
    assert stats is not None
    assert stats.max_drawdown == pytest.approx(99 / 110 - 1)
    # 110 on day 1, regained on day 4; the last spell (from day 5) is still under water after 2 days.
    assert (stats.max_drawdown_days, stats.max_drawdown_closes) == (3, 3)
    assert stats.exposure == pytest.approx(7 / 8)


def _trade(symbol: str, entries: list[tuple[str, int, int]], exit_price: int, fee: str = "1") -> Trade:
    return Trade(
        symbol=symbol,
        strategy="s",
        number=1,
        entries=tuple(
            TradeEntry(
                time=T0 + timedelta(days=i),
                price=D(price),
                qty=D(qty),
                fees=D(fee),
                kind=kind,
                decision_id=f"dec-{i}",
                client_order_id=f"c{i}",
            )
            for i, (kind, price, qty) in enumerate(entries)
        ),
        exits=(
            TradeExit(
                time=T0 + timedelta(days=10),
                price=D(exit_price),
                qty=D(sum(q for _, _, q in entries)),
                fees=D(fee),
                reason="stop",
            ),
        ),
    )


def test_trade_statistics_count_wins_losses_and_the_add_ons_share() -> None:
    winner = _trade("KO", [("entry", 100, 10), ("add-on", 110, 10)], 120)  # +200 +100 -3 fees
    loser = _trade("PEP", [("entry", 100, 10)], 95)  # -50 -2 fees
    stats = trade_statistics([winner, loser])
    assert (winner.realized_pnl, loser.realized_pnl) == (D(297), D(-52))
    assert stats.win_rate == 0.5
    assert stats.profit_factor == pytest.approx(297 / 52)
    assert stats.expectancy == D("122.5")
    assert (stats.best_pnl, stats.worst_pnl) == (D(297), D(-52))
    # Each entry's share: its qty at the average exit, less its fee and half the exit fee.
    assert stats.first_entry_pnl == D("198.5") + D(-52)
    assert stats.add_on_pnl == D("98.5")
    assert stats.entries_per_position == 1.5
    assert stats.positions_by_entry_count == {1: 1, 2: 1}
    assert stats.average_holding_days == pytest.approx((10 + 10) / 2)


_awkward_trade = st.builds(
    lambda symbol, entries, exit_price: _trade(symbol, entries, exit_price, fee="0.37"),
    st.sampled_from(["KO", "PEP", "AAPL"]),
    st.lists(
        st.tuples(st.sampled_from(["entry", "add-on"]), st.integers(1, 10_000), st.integers(1, 7)),
        min_size=1,
        max_size=4,
    ),
    st.integers(1, 10_000),
)


@settings(max_examples=200)
@given(trades=st.lists(_awkward_trade, min_size=2, max_size=40), data=st.data())
def test_trade_figures_do_not_depend_on_the_order_the_trades_are_read_in(
    trades: list[Trade], data: st.DataObject
) -> None:
    # Average prices over quantities of 3 or 7 have 28 significant digits, so a running
    # Decimal sum would round differently in another order; the run statistics read the
    # trades by symbol and the report by opening time, and must agree to the last digit.
    shuffled = data.draw(st.permutations(trades))
    stats = trade_statistics(trades)
    assert trade_statistics(shuffled) == stats
    closed = [t for t in trades if not t.is_open]
    assert stats.expectancy is not None
    assert stats.expectancy == pytest.approx(sum((t.realized_pnl for t in closed), D(0)) / len(closed), abs=D("1e-20"))


def test_the_equity_curve_is_stored_exactly_and_read_back_in_time_order(ledger: Ledger) -> None:
    points = [EquityPoint(time=T0 + timedelta(days=d), equity=D(f"1000{d}.123456789"), cash=D(500)) for d in (2, 0, 1)]
    with ledger.transaction() as tx:
        for point in points:
            tx.record_equity(point)
    with ledger.reading() as tx:
        assert tx.equity_curve() == sorted(points, key=lambda p: p.time)
