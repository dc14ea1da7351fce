"""One meaning of "realized P&L" everywhere a run is judged.

- realized P&L: the positions closed (flat again) by the end of the run, after every fee
  they paid, entries' and exits' alike: the sum of the closed trades' P&L in the trade list;
- open positions' P&L: the positions still open at the end, what they hold marked at its last
  close, after every fee paid on them so far (an open position's entry commission is here);
- the two add up to the account's P&L, final equity less starting equity, to the cent;
- the run summary's figures are the sums of the by-symbol columns beside them.

A scripted strategy buys and sells on the days it is told, on a paper account that charges
commissions and slippage, and leaves a position open at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit import Strategy, StrategyScalingPolicy, StrategyView
from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.domain import Bar, Side, Signal
from tradekit.domain.values import exact_sum
from tradekit.execution.paper_run import PaperRun, run_paper_replay
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reporting.statistics import TradeStatistics
from tradekit.reporting.terminal import SYMBOL_COLUMNS, statistics_rows, symbol_rows
from tradekit.reporting.trades import Trade, read_trades

D = Decimal
NOISE = D("1e-12")
FIRST_CLOSE = datetime(2024, 1, 2, 21, tzinfo=UTC)  # XNYS closes at 21:00 UTC in winter


def _weekdays(count: int) -> list[datetime]:
    days: list[datetime] = []
    day = FIRST_CLOSE
    while len(days) < count:
        if day.weekday() < 5 and day.date() != date(2024, 1, 15):  # MLK day: no session
            days.append(day)
        day += timedelta(days=1)
    return days


def _bars(symbol: str, closes: Sequence[Decimal]) -> list[Bar]:
    """Daily bars at these closes; each opens at the close before (no overnight gap)."""
    bars: list[Bar] = []
    for time, close in zip(_weekdays(len(closes)), closes, strict=True):
        opened = bars[-1].close if bars else close
        bars.append(
            Bar(
                symbol=symbol,
                time=time,
                open=opened,
                high=max(opened, close),
                low=min(opened, close),
                close=close,
                volume=D(1_000_000),
            )
        )
    return bars


class Scripted(Strategy):
    """Signals on the bars its ``plan`` names: {symbol: {bar number: BUY or SELL}}."""

    name = "scripted"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=3)
    plan: ClassVar[Mapping[str, Mapping[int, Side]]] = {}

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        side = self.plan.get(view.symbol, {}).get(len(view.history) - 1)
        if side is None:
            return []
        bar = view.bar
        return [
            Signal(
                symbol=view.symbol,
                side=side,
                confidence=5,
                generated_at=bar.time,
                reference_price=bar.close,
                source=self.name,
                reason=f"planned {side}",
            )
        ]


def _replay(
    out: Path, bars: dict[str, list[Bar]], plan: Mapping[str, Mapping[int, Side]], costs: PaperBrokerConfig
) -> PaperRun:
    strategy = type("Planned", (Scripted,), {"name": "scripted", "plan": plan})
    return run_paper_replay(
        strategy=strategy,
        settings=Settings(),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=bars,
        out_dir=out,
        broker_config=costs,
        chart=False,
    )


def _trades(run: PaperRun) -> list[Trade]:
    with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
        return read_trades(tx)


def _open_pnl(stats: TradeStatistics) -> Decimal:
    assert stats.open_pnl is not None, "every open position has a mark"
    return stats.open_pnl


def _holds_the_definitions(run: PaperRun) -> None:
    trades = _trades(run)
    summary, stats = run.summary, run.statistics
    closed = [t for t in trades if not t.is_open]
    # Realized: the closed trades' P&L, to the last digit (the same trades, the same sum: added
    # exactly and rounded once, as the run's figures are, whatever order they are read in).
    assert summary.realized_pnl == +exact_sum(t.realized_pnl for t in closed)
    assert stats.trades.realized_pnl == summary.realized_pnl
    # Realized and open make the account's P&L, to the cent and far below (what is left is the
    # 28-digit rounding of average prices): no fee is left out or counted twice.
    assert summary.open_pnl is not None
    assert abs(summary.realized_pnl + summary.open_pnl - (summary.final_equity - summary.starting_equity)) < NOISE
    assert summary.open_pnl == stats.trades.open_pnl
    # The summary's figures are the sums of the by-symbol columns it sits beside.
    by_symbol = stats.by_symbol.values()
    assert sum((s.trades.realized_pnl for s in by_symbol), D(0)) == summary.realized_pnl
    assert sum((_open_pnl(s.trades) for s in by_symbol), D(0)) == summary.open_pnl
    # Each symbol's return is its realized and open P&L together, on the starting equity.
    for symbol, s in stats.by_symbol.items():
        assert s.returns is not None, symbol
        contribution = (s.trades.realized_pnl + _open_pnl(s.trades)) / summary.starting_equity
        assert s.returns.total_return == pytest.approx(float(contribution), abs=1e-12), symbol
    # Every fee is either a closed position's or an open one's.
    fees = sum((t.fees for t in trades), D(0))
    assert stats.trades.fees == fees
    assert stats.trades.open_fees == sum((t.fees for t in trades if t.is_open), D(0))


# --- a small replay with a position left open ---------------------------------------------------


def _small_run(out: Path) -> PaperRun:
    bars = {
        "AAA": _bars("AAA", [D(100) + D(i) for i in range(20)]),  # rising
        "BBB": _bars("BBB", [D(50) - D(i) / 4 for i in range(20)]),  # falling
    }
    plan = {
        # AAA: a round trip, then a position left open at the end.
        "AAA": {2: Side.BUY, 8: Side.SELL, 14: Side.BUY},
        # BBB: an entry, an add-on, a close at a loss.
        "BBB": {3: Side.BUY, 5: Side.BUY, 12: Side.SELL},
    }
    costs = PaperBrokerConfig(commission_per_order=D(5), commission_pct=D("0.1"), slippage_bps=D(5))
    return _replay(out, bars, plan, costs)


def test_realized_pnl_is_the_closed_positions_after_their_fees_and_the_open_ones_are_apart(tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    trades = _trades(run)
    assert [(t.symbol, t.is_open, len(t.entries)) for t in sorted(trades, key=lambda t: (t.symbol, t.number))] == [
        ("AAA", False, 1),
        ("AAA", True, 1),
        ("BBB", False, 2),
    ]
    (still_open,) = [t for t in trades if t.is_open]
    entry_fee = still_open.entries[0].fees
    assert entry_fee > 5  # 5 an order and 0.1 % of what it bought
    _holds_the_definitions(run)
    # By hand: the open position's P&L is its quantity marked at AAA's last close (119) less
    # what it cost, less its entry commission -- not counted as realized.
    by_hand = still_open.entered_qty * (D(119) - still_open.average_entry) - entry_fee
    assert run.summary.open_pnl == by_hand
    assert run.statistics.by_symbol["AAA"].trades.open_pnl == by_hand
    assert run.statistics.trades.open_fees == entry_fee


def test_the_summary_and_the_by_symbol_table_label_each_figure(tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    stats = run.statistics
    rows = dict(statistics_rows(stats))
    open_fees = f"{stats.trades.open_fees:,.2f}"
    assert rows["fees paid"] == f"{stats.trades.fees:,.2f} ({open_fees} of it on positions still open)"
    assert "P&L" not in SYMBOL_COLUMNS  # no column left to guess what "P&L" leaves out
    realized, opened = SYMBOL_COLUMNS.index("realized P&L"), SYMBOL_COLUMNS.index("open P&L")
    table = {row[0]: row for row in symbol_rows(stats)}
    aaa = stats.by_symbol["AAA"].trades
    assert table["AAA"][realized] == f"{aaa.realized_pnl:+,.2f}"
    assert table["AAA"][opened] == f"{_open_pnl(aaa):+,.2f}"
    assert table["BBB"][opened] == "+0.00"
    data = run.summary.as_json()
    assert Decimal(data["realized_pnl"]) == run.summary.realized_pnl
    assert Decimal(data["open_pnl"]) == run.summary.open_pnl


# --- any small replay ------------------------------------------------------------------------------

SIDES = st.sampled_from([Side.BUY, Side.SELL])
PLANS = st.dictionaries(st.integers(min_value=0, max_value=13), SIDES, max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moves=st.lists(
        st.lists(st.integers(min_value=-150, max_value=150), min_size=14, max_size=14), min_size=2, max_size=2
    ),
    plans=st.lists(PLANS, min_size=2, max_size=2),
    per_order=st.sampled_from([D(0), D(1), D("2.5")]),
    pct=st.sampled_from([D(0), D("0.05"), D("0.25")]),
    slippage=st.sampled_from([D(0), D(7)]),
)
def test_any_small_replay_keeps_realized_and_open_pnl_apart_and_whole(
    tmp_path_factory: pytest.TempPathFactory,
    moves: list[list[int]],
    plans: list[dict[int, Side]],
    per_order: Decimal,
    pct: Decimal,
    slippage: Decimal,
) -> None:
    bars = {}
    for symbol, steps in zip(("AAA", "BBB"), moves, strict=True):
        closes = [D(80)]
        for step in steps[1:]:  # at most 1.5 % a day: no buy is skipped for a gap
            closes.append((closes[-1] * (1 + D(step) / 10_000)).quantize(D("0.01")))
        bars[symbol] = _bars(symbol, closes)
    costs = PaperBrokerConfig(commission_per_order=per_order, commission_pct=pct, slippage_bps=slippage)
    run = _replay(tmp_path_factory.mktemp("replay"), bars, dict(zip(("AAA", "BBB"), plans, strict=True)), costs)
    _holds_the_definitions(run)
