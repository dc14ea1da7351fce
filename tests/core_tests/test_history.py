"""History views and indicator columns: computed once per series, identical to computing afresh."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.domain import Bar
from tradekit.execution.market import volatility_column
from tradekit.strategy.history import History, indicator, prior_high_column, prior_low_column, sma_column

T0 = datetime(2020, 1, 1, 21, tzinfo=UTC)

closes_strategy = st.lists(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5000), places=4, allow_nan=False),
    min_size=1,
    max_size=80,
)


def _bars(closes: Sequence[Decimal]) -> list[Bar]:
    return [
        Bar(symbol="X", time=T0 + timedelta(days=i), open=c, high=c, low=c, close=c, volume=Decimal(1))
        for i, c in enumerate(closes)
    ]


def _sma(window: Sequence[Decimal], length: int) -> Decimal | None:
    return sum(window, Decimal(0)) / length if len(window) == length else None


@settings(max_examples=150)
@given(closes=closes_strategy, length=st.integers(min_value=1, max_value=30))
def test_sma_column_equals_the_average_of_each_window(closes: list[Decimal], length: int) -> None:
    column = sma_column(length)(_bars(closes))
    assert len(column) == len(closes)
    for i in range(len(closes)):
        window = closes[max(0, i - length + 1) : i + 1]
        assert column[i] == _sma(window, length)


def test_sma_column_of_closes_beyond_the_integer_path_stays_exact() -> None:
    closes = [Decimal("1.123456789012"), Decimal(3), Decimal("2.5")]  # 12 places: the Decimal fallback
    column = sma_column(2)(_bars(closes))
    assert list(column) == [None, Decimal("4.123456789012") / 2, Decimal("5.5") / 2]


@settings(max_examples=100)
@given(closes=closes_strategy, lookback=st.integers(min_value=1, max_value=25))
def test_prior_extremes_cover_the_bars_before_the_current_one(closes: list[Decimal], lookback: int) -> None:
    bars = _bars(closes)
    highs, lows = prior_high_column(lookback)(bars), prior_low_column(lookback)(bars)
    for i in range(len(closes)):
        before = closes[i - lookback : i] if i >= lookback else None
        assert highs[i] == (max(before) if before else None)
        assert lows[i] == (min(before) if before else None)


COLUMNS: list[tuple[Hashable, Callable[[Sequence[Bar]], Sequence[object]]]] = [
    ("sma5", sma_column(5)),
    ("high7", prior_high_column(7)),
    ("low3", prior_low_column(3)),
    ("volatility", volatility_column),
]


@settings(max_examples=60)
@given(closes=st.lists(st.decimals(min_value=1, max_value=500, places=2), min_size=25, max_size=60))
def test_columns_are_causal_a_value_never_depends_on_later_bars(closes: list[Decimal]) -> None:
    bars = _bars(closes)
    cache: dict[Hashable, Sequence[object]] = {}
    for end in range(1, len(bars) + 1):
        for key, compute in COLUMNS:
            whole = History(bars, end, cache).at_current(key, compute)  # column over the whole series
            truncated = compute(bars[:end])[-1]  # column over what was known at that bar
            assert whole == truncated, f"{key} at bar {end - 1} looked ahead"


def test_a_history_computes_each_column_once_per_series() -> None:
    bars = _bars([Decimal(i + 1) for i in range(10)])
    calls = []

    def counting(series: Sequence[Bar]) -> list[int]:
        calls.append(len(series))
        return list(range(len(series)))

    cache: dict[Hashable, Sequence[object]] = {}
    values = [indicator(History(bars, end, cache), "count", counting) for end in range(1, 11)]
    assert values == list(range(10))
    assert calls == [10]
    # On a plain list (a live run) it is computed over what it is given.
    assert indicator(bars[:4], "count", counting) == 3


def test_history_behaves_as_the_bars_up_to_the_current_one() -> None:
    bars = _bars([Decimal(i + 1) for i in range(6)])
    view = History(bars, 4)
    assert len(view) == 4
    assert view[-1] is bars[3]
    assert list(view[1:]) == bars[1:4]
    assert list(view[::2]) == bars[0:4:2]
    with pytest.raises(IndexError):
        view[4]


def test_a_column_of_the_wrong_length_is_refused() -> None:
    bars = _bars([Decimal(1), Decimal(2)])
    with pytest.raises(ValueError, match="returned 1 values for 2 bars"):
        History(bars, 2).at_current("bad", lambda series: [1])


@given(
    gaps=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60),
    data=st.data(),
)
def test_bars_since_on_a_history_counts_what_a_plain_list_of_the_same_bars_counts(
    gaps: list[int], data: st.DataObject
) -> None:
    """On a replay's ``History`` the count bisects the series' times column (seeded by the
    runner, or computed on first use); on a plain list it bisects the bars by their time.
    Both count the completed bars stamped at or after the moment."""
    from tradekit.execution.market import bars_since
    from tradekit.strategy.history import BAR_TIMES

    times = [T0 + timedelta(days=sum(gaps[: i + 1])) for i in range(len(gaps))]
    bars = [
        Bar(symbol="X", time=t, open=Decimal(1), high=Decimal(1), low=Decimal(1), close=Decimal(1), volume=Decimal(1))
        for t in times
    ]
    end = data.draw(st.integers(min_value=1, max_value=len(bars)))
    moment = T0 + timedelta(
        days=data.draw(st.integers(min_value=-2, max_value=sum(gaps) + 2)), hours=data.draw(st.sampled_from([0, 3]))
    )
    expected = sum(1 for b in bars[:end] if b.time >= moment)
    assert bars_since(bars[:end], moment) == expected
    assert bars_since(History(bars, end), moment) == expected
    assert bars_since(History(bars, end, {BAR_TIMES: [b.time for b in bars]}), moment) == expected
    # Cut to its last bars (a strategy's history_bars): counts what the plain list of them does.
    count = data.draw(st.integers(min_value=1, max_value=end))
    assert bars_since(History(bars, end).last(count), moment) == bars_since(bars[end - count : end], moment)


@settings(max_examples=100)
@given(closes=closes_strategy, data=st.data())
def test_a_history_cut_to_its_last_bars_behaves_as_the_list_of_them(closes: list[Decimal], data: st.DataObject) -> None:
    bars = _bars(closes)
    end = data.draw(st.integers(min_value=1, max_value=len(bars)))
    count = data.draw(st.integers(min_value=1, max_value=len(bars)))
    view, expected = History(bars, end).last(count), bars[max(0, end - count) : end]
    assert len(view) == len(expected)
    assert list(view) == expected
    assert view[0] is expected[0]
    assert view[-1] is expected[-1]
    index = data.draw(st.slices(len(expected)))
    assert list(view[index]) == expected[index]
    with pytest.raises(IndexError):
        view[len(expected)]
    with pytest.raises(IndexError):
        view[-len(expected) - 1]
    assert view.last(count + 5) is not view
    assert list(view.last(count + 5)) == expected  # never wider than it was


def test_an_indicator_is_what_the_live_trader_computes_over_the_strategys_bars(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cut to a strategy's history_bars, an indicator within them reads the whole series'
    column; one looking back further is found out and computed over the cut bars, as a live
    trader given those bars computes it."""
    bars = _bars([Decimal(100 + (i % 7) * 3 - i % 5) for i in range(300)])
    cache: dict[Hashable, Sequence[object]] = {}
    short, long = ("sma", 20), ("sma", 120)
    for end in range(101, 301):
        view = History(bars, end, cache).last(100)
        plain = bars[end - 100 : end]
        assert indicator(view, short, sma_column(20)) == indicator(plain, short, sma_column(20))
        assert indicator(view, long, sma_column(120)) == indicator(plain, long, sma_column(120)) is None
    assert caplog.text.count("looks back further than the strategy's history_bars (100 bars)") == 1
    assert "('sma', 120)" in caplog.text
    # The 20-bar column was computed once for the whole series, not once a bar.
    assert len(cache[short]) == 300
