"""What the run's pictures keep of a long run: the busiest symbols' trades and the latest rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tradekit.domain.market import Bar
from tradekit.reporting.outputs import _KeptTrades, charted_symbols
from tradekit.reporting.statistics import statistics_of
from tradekit.reporting.trades import Trade, TradeEntry

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
T0 = datetime(2020, 1, 1, 14, 30, tzinfo=UTC)


def _trade(symbol: str, number: int, day: int) -> Trade:
    entry = TradeEntry(
        time=T0 + timedelta(days=day),
        price=Decimal(10),
        qty=Decimal(1),
        fees=Decimal(0),
        kind="entry",
        decision_id=None,
        client_order_id=None,
    )
    return Trade(symbol=symbol, strategy="s", number=number, entries=(entry,), exits=())


@given(
    counts=st.dictionaries(st.sampled_from(SYMBOLS), st.integers(0, 5), min_size=1),
    days=st.lists(st.integers(0, 30), min_size=30, max_size=30),
    limit=st.integers(1, 4),
    rows=st.integers(1, 9),
)
def test_the_pictures_keep_the_busiest_symbols_trades_and_the_latest_rows(
    counts: dict[str, int], days: list[int], limit: int, rows: int
) -> None:
    # Trades as the ledger hands them over: by symbol, each symbol's numbered in opening order.
    by_symbol = {
        s: [_trade(s, n, day) for n, day in enumerate(sorted(days[5 * i : 5 * i + counts[s]]), start=1)]
        for i, s in enumerate(sorted(counts))
    }
    streamed = [trade for s in sorted(by_symbol) for trade in by_symbol[s]]
    kept = _KeptTrades(rows, limit)
    for symbol in sorted(by_symbol):
        if by_symbol[symbol]:  # the ledger hands over only symbols that traded
            kept.add_symbol(symbol, by_symbol[symbol])
    bars: dict[str, list[Bar]] = {s: [] for s in counts}
    statistics = statistics_of([], streamed, {}, bars)
    charted = charted_symbols(statistics, bars, limit)
    # The charts: the ``limit`` symbols with the most positions, ties by name, listed by name.
    ranked = sorted(counts, key=lambda s: (-counts[s], s))
    assert charted == sorted(ranked[:limit])
    for symbol in charted:
        assert kept.of(symbol) == by_symbol[symbol]  # every trade of a charted symbol, in order
    # The table: the latest ``rows`` in the trade list's order, and how many there were.
    in_order = sorted(streamed, key=lambda t: (t.opened_at, t.symbol, t.number))
    assert kept.latest() == in_order[-rows:]
    assert kept.total == len(streamed)
