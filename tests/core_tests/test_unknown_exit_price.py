"""A position that left the ledger at an unknown price: its P&L is unknown, never break-even.

Reconciliation closes a ledger position the broker no longer holds (EXTERNAL_CLOSE) with no
price: no fill says what it was sold for. The trade list shows that position's P&L as
unknown and says why; the trade figures (win rate, profit factor, expectancy, averages,
best / worst, holding time) and the realized and open P&L leave it out and say how many
positions they left out and why. The account's figures (equity, its P&L, return and
drawdown) are the broker's and stay whole: the account's P&L is then the realized and open
P&L plus what the positions left out made, which the ledger cannot know.

Each run here is a scripted paper replay (commissions and slippage charged) whose AAA
position is still open at the end; a reconciliation against a broker that no longer holds
it then closes it, as a live trader's startup would.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import ReconciliationSettings
from tradekit.domain import Side
from tradekit.execution.paper_run import PaperRun
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler
from tradekit.reporting.html_report import _trade_rows
from tradekit.reporting.outputs import RunOutputs, write_run_outputs
from tradekit.reporting.statistics import RunStatistics, TradeStatistics, trade_statistics
from tradekit.reporting.summary import RunSummary, summarize
from tradekit.reporting.terminal import SYMBOL_COLUMNS, pnl_rows, statistics_rows, symbol_rows
from tradekit.reporting.trades import Trade, TradeEntry, TradeExit, read_trades

from .doubles import PositionsOnlyBroker
from .test_pnl_definitions import _bars, _replay

D = Decimal
PLUGINS = Plugins(load_entrypoints=False, env={})
BARS = {
    "AAA": _bars("AAA", [D(100) + D(i) for i in range(20)]),  # rising
    "BBB": _bars("BBB", [D(50) - D(i) / 4 for i in range(20)]),  # falling
}
PLAN = {
    "AAA": {2: Side.BUY, 8: Side.SELL, 14: Side.BUY},  # a round trip, then a position left open
    "BBB": {3: Side.BUY, 5: Side.BUY, 12: Side.SELL},  # an entry, an add-on, a close at a loss
}
COSTS = PaperBrokerConfig(commission_per_order=D(5), commission_pct=D("0.1"), slippage_bps=D(5))
AFTER = BARS["AAA"][-1].time + timedelta(hours=12)  # the next startup's reconciliation
NOT_AT_THE_BROKER = "position not found at the broker during reconciliation"


@attrs.frozen(kw_only=True)
class Reconciled:
    """A replay as it ended (``before``), and its figures once reconciliation closed AAA."""

    before: PaperRun
    ledger_url: str
    outputs: RunOutputs
    summary: RunSummary

    @property
    def statistics(self) -> RunStatistics:
        return self.outputs.statistics

    def trades(self) -> list[Trade]:
        with Ledger.open(self.ledger_url, create=False) as ledger, ledger.reading() as tx:
            return read_trades(tx)

    def closed_by_reconciliation(self) -> Trade:
        (trade,) = [t for t in self.trades() if t.symbol == "AAA" and t.number == 2]
        return trade


def reconciled_run(out: Path, *, pictures: bool = False) -> Reconciled:
    """The scripted replay, then a reconciliation against a broker that holds nothing."""
    before = _replay(out / "replay", BARS, PLAN, COSTS)
    with Ledger.open(before.ledger_url, for_trading=True) as ledger:
        report = Reconciler(ledger, PositionsOnlyBroker(), ReconciliationSettings(), PLUGINS).run(AFTER)
        assert [(f.symbol, f.reason) for f in report.externally_closed] == [("AAA", NOT_AT_THE_BROKER)]
        outputs = write_run_outputs(ledger, BARS, out / "reconciled", title="reconciled", pictures=pictures)
        summary = summarize(
            ledger,
            starting_equity=before.summary.starting_equity,
            final_equity=before.summary.final_equity,
            trades=outputs.statistics.trades,
        )
    return Reconciled(before=before, ledger_url=before.ledger_url, outputs=outputs, summary=summary)


@pytest.fixture
def reconciled(tmp_path: Path) -> Reconciled:
    return reconciled_run(tmp_path)


# --- the trade ------------------------------------------------------------------------------------


def test_a_position_reconciliation_closed_has_an_unknown_pnl_and_says_why(reconciled: Reconciled) -> None:
    trade = reconciled.closed_by_reconciliation()
    assert not trade.is_open
    (left,) = trade.exits
    assert left.price is None
    assert not trade.pnl_known
    assert trade.unknown_price_exits == (left,)
    reason = trade.unknown_pnl_reason
    assert reason is not None
    assert "unknown price" in reason
    assert NOT_AT_THE_BROKER in reason
    # No figure that needs the exit price pretends to know it.
    assert trade.average_exit is None
    assert trade.return_pct is None
    assert trade.marked_pnl(D(119)) is None
    assert trade.entry_pnl() == []
    data = trade.as_json()
    assert (data["realized_pnl"], data["return_pct"], data["average_exit"]) == (None, None, None)
    assert data["unknown_pnl"] == reason
    # The positions closed at known prices are known, as before.
    others = [t for t in reconciled.trades() if (t.symbol, t.number) != ("AAA", 2)]
    assert len(others) == 2
    assert all(t.pnl_known and t.unknown_pnl_reason is None for t in others)
    assert all(t.as_json()["unknown_pnl"] is None for t in others)


# --- the figures ------------------------------------------------------------------------------------


def _figures(stats: TradeStatistics) -> dict[str, object]:
    """Every trade figure that is computed from the positions' P&L or their closing."""
    return {
        key: getattr(stats, key)
        for key in (
            "win_rate",
            "profit_factor",
            "expectancy",
            "average_pnl",
            "best_pnl",
            "worst_pnl",
            "average_return_pct",
            "best_return_pct",
            "worst_return_pct",
            "average_holding_days",
            "realized_pnl",
            "first_entry_pnl",
            "add_on_pnl",
        )
    }


def test_the_trade_figures_leave_out_the_position_of_unknown_pnl_and_count_it(reconciled: Reconciled) -> None:
    before, after = reconciled.before.statistics.trades, reconciled.statistics.trades
    assert (before.closed, before.open) == (2, 1)
    # The position is closed, counted as a position, and left out of every figure: they are
    # the figures of the two positions closed at a known price, as they were before.
    assert (after.positions, after.closed, after.open) == (3, 3, 0)
    assert (after.unknown_pnl_closed, after.unknown_pnl_open) == (1, 0)
    assert after.unknown_pnl_reasons == {f"closed outside tradekit: {NOT_AT_THE_BROKER}": 1}
    assert _figures(after) == _figures(before)
    assert after.win_rate == 0.5  # one of two, not one of three
    # What it paid is known and paid: every fee is still counted.
    assert after.fees == before.fees
    assert after.positions_by_entry_count == before.positions_by_entry_count
    aaa = reconciled.statistics.by_symbol["AAA"].trades
    assert (aaa.closed, aaa.unknown_pnl_closed, aaa.win_rate) == (2, 1, 1.0)
    data = reconciled.statistics.as_json()
    assert (data["trades"]["unknown_pnl_closed"], data["trades"]["unknown_pnl_open"]) == (1, 0)
    assert data["by_symbol"]["AAA"]["trades"]["unknown_pnl_closed"] == 1


def test_realized_and_open_pnl_leave_it_out_and_the_account_pnl_still_holds_what_it_made(
    reconciled: Reconciled,
) -> None:
    before, after = reconciled.before.summary, reconciled.summary
    assert after.pnl == before.pnl  # the account's P&L is the broker's equity: whole
    assert after.realized_pnl == before.realized_pnl  # not "break-even" on the position left out
    assert after.open_pnl == 0
    assert (after.unknown_pnl_closed, after.unknown_pnl_open) == (1, 0)
    # What is missing from realized + open is what the position left out made: here the paper
    # account marked it at the last close (a live broker's account knows its real price).
    assert before.open_pnl is not None
    # (To the cent and far below: what is left is the 28-digit rounding of average prices.)
    assert abs(after.pnl - after.realized_pnl - after.open_pnl - before.open_pnl) < D("1e-12")
    data = after.as_json()
    assert (data["unknown_pnl_closed"], data["unknown_pnl_open"]) == (1, 0)
    assert D(data["realized_pnl"]) == before.realized_pnl
    # AAA's contribution after an exit of unknown price is unknown: no return figures for it.
    # BBB's are as they were.
    by_symbol = reconciled.statistics.by_symbol
    assert by_symbol["AAA"].returns is None
    assert by_symbol["BBB"] == reconciled.before.statistics.by_symbol["BBB"]
    assert reconciled.statistics.returns == reconciled.before.statistics.returns


def test_the_tables_say_how_many_positions_were_left_out_and_why(reconciled: Reconciled) -> None:
    stats = reconciled.statistics
    rows = dict(statistics_rows(stats))
    left_out = rows["left out of the P&L and trade figures"]
    assert "1 position of unknown P&L (1 closed, 0 open)" in left_out
    assert f"closed outside tradekit: {NOT_AT_THE_BROKER}" in left_out
    realized = stats.trades.realized_pnl
    assert rows["realized P&L (closed, after fees)"] == f"{realized:+,.2f} (excludes 1 position of unknown P&L)"
    assert rows["open P&L (at last close, after fees)"] == "+0.00"
    assert rows["win rate"] == "50.0%"
    assert rows["positions (closed / open)"] == "3 (3 / 0); 1 of unknown P&L, not in the figures below"
    # The run summary prints its P&L rows itself, then these: the first says what they left out.
    assert statistics_rows(stats, pnl=False)[0] == ("left out of the P&L and trade figures", left_out)
    assert pnl_rows(realized, D(0), unknown_closed=1)[0][1] == rows["realized P&L (closed, after fees)"]
    table = {row[0]: row for row in symbol_rows(stats)}
    column = SYMBOL_COLUMNS.index
    aaa = stats.by_symbol["AAA"].trades
    assert table["AAA"][column("realized P&L")] == f"{aaa.realized_pnl:+,.2f} (excl. 1 unknown)"
    assert table["AAA"][column("return")] == "-"
    assert table["AAA"][column("win rate")] == "100.0%"
    assert "excl." not in " ".join(table["BBB"])
    # The report's trade list: "unknown", with why, where the P&L and the exit price would be.
    (row,) = [r for r in _trade_rows(reconciled.trades()) if r[:2] == ("3", "AAA")]  # AAA's second, opened third
    assert row[6] == "unknown"
    assert row[7].startswith("unknown: ")
    assert NOT_AT_THE_BROKER in row[7]
    assert row[8] == "-"


def test_a_run_with_every_price_known_says_nothing_was_left_out(reconciled: Reconciled) -> None:
    stats = reconciled.before.statistics
    assert (stats.trades.unknown_pnl_closed, stats.trades.unknown_pnl_open, stats.trades.unknown_pnl_reasons) == (
        0,
        0,
        {},
    )
    rows = dict(statistics_rows(stats))
    assert "left out of the P&L and trade figures" not in rows
    assert "excludes" not in rows["realized P&L (closed, after fees)"]


def test_an_open_position_partly_closed_at_an_unknown_price_has_no_open_pnl_figure(tmp_path: Path) -> None:
    before = _replay(tmp_path / "replay", BARS, PLAN, COSTS)
    with Ledger.open(before.ledger_url, for_trading=True) as ledger:
        held = ledger.position("AAA")
        assert held is not None
        with ledger.transaction() as tx:
            # What reconciliation records when the broker holds less than the ledger and no
            # fill says at what price the rest went (re-derived from the broker).
            tx.record_external_close("AAA", held.qty / 2, AFTER, "the ledger follows the broker")
        stats = write_run_outputs(ledger, BARS, tmp_path / "after", title="partly", pictures=False).statistics
        with ledger.reading() as tx:
            (trade,) = [t for t in read_trades(tx) if t.is_open]
    assert not trade.pnl_known
    assert trade.marked_pnl(D(119)) is None
    after = stats.trades
    assert (after.open, after.unknown_pnl_open, after.unknown_pnl_closed) == (1, 1, 0)
    assert after.open_pnl == 0  # none of the open positions is known
    assert after.realized_pnl == before.statistics.trades.realized_pnl
    rows = dict(statistics_rows(stats))
    assert rows["open P&L (at last close, after fees)"] == "+0.00 (excludes 1 position of unknown P&L)"
    assert "1 position of unknown P&L (0 closed, 1 open)" in rows["left out of the P&L and trade figures"]
    (row,) = [r for r in _trade_rows([trade])]
    assert row[7].startswith("open (unknown: ")
    assert "the ledger follows the broker" in row[7]


# --- any trades ----------------------------------------------------------------------------------

_T0 = BARS["AAA"][0].time


def _hand_trade(number: int, entry: int, exit_price: int, days: int) -> Trade:
    return Trade(
        symbol="AAA",
        strategy="s",
        number=number,
        entries=(
            TradeEntry(
                time=_T0 + timedelta(days=number),
                price=D(entry),
                qty=D(10),
                fees=D(1),
                kind="entry",
                decision_id=None,
                client_order_id=None,
            ),
        ),
        exits=(
            TradeExit(
                time=_T0 + timedelta(days=number + days), price=D(exit_price), qty=D(10), fees=D(1), reason="sell"
            ),
        ),
    )


@given(
    trades=st.lists(
        st.tuples(
            st.integers(min_value=50, max_value=150),
            st.integers(min_value=50, max_value=150),
            st.integers(min_value=1, max_value=30),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_positions_of_unknown_pnl_change_no_figure_of_the_known_ones(
    trades: list[tuple[int, int, int, bool]],
) -> None:
    every = [_hand_trade(n, entry, exit_price, days) for n, (entry, exit_price, days, _) in enumerate(trades)]
    unknown = {n for n, (*_, lost) in enumerate(trades) if lost}
    as_recorded = [
        attrs.evolve(t, exits=tuple(attrs.evolve(x, price=None, reason="reconciled") for x in t.exits))
        if n in unknown
        else t
        for n, t in enumerate(every)
    ]
    known = [t for n, t in enumerate(every) if n not in unknown]
    stats, only_known = trade_statistics(as_recorded), trade_statistics(known)
    assert _figures(stats) == _figures(only_known)
    assert (stats.positions, stats.closed, stats.open) == (len(every), len(every), 0)
    assert stats.unknown_pnl_closed == len(unknown)
    assert stats.unknown_pnl_reasons == ({"reconciled": len(unknown)} if unknown else {})
    assert stats.fees == sum((t.fees for t in every), D(0))


def test_the_trades_command_prints_unknown_and_why_for_a_position_of_unknown_pnl(reconciled: Reconciled) -> None:
    from rich.console import Console

    from tradekit.cli.trades import trades_table

    console = Console(width=400, record=True)
    console.print(trades_table(reconciled.trades()))
    text = console.export_text()
    (aaa,) = [line for line in text.splitlines() if "AAA#2" in line]
    assert "unknown: " in aaa
    assert "+0.00" not in aaa
    assert NOT_AT_THE_BROKER in aaa
