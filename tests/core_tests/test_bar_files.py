"""A trader's own bar files: every layout accepted, every bad row refused by name."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit.data import SHIPPED_SOURCE, DataError, load_bar_data, series_problem, session_close
from tradekit.data.bar_files import load_bar_files

TRADEKIT_HEADER = "symbol,date,open,high,low,close,volume"
YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_shipped_bars_load_and_name_their_source() -> None:
    data = load_bar_data(["IBM"])
    assert data.source == SHIPPED_SOURCE
    assert len(data.bars["IBM"]) == 3270


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ("KO,2024-01-03,60,61,59,,100", "close is blank"),
        ("KO,2024-01-03,60,61,59", "5 fields where the header has 7"),
        ("KO,2024-01-03,60,61,59,abc,100", "close 'abc' is not a number"),
        ("KO,2024-01-03,60,61,59,62,100", "high 61 is below the close 62"),
        ("KO,2024-01-03,60,61,60.5,60.2,100", "low 60.5 is above the close 60.2"),
        ("KO,2024-01-03,58,61,59,60,100", "low 59 is above the open 58"),
        ("KO,2024-01-03,60,61,59,NaN,100", "close 'NaN' is not a finite number"),
        ("KO,2024-01-03,60,61,-59,60,100", "low '-59' must be greater than zero"),
        ("KO,2024-01-03,0,61,59,60,100", "open '0' must be greater than zero"),
        ("KO,2024-01-03,60,61,59,60,-5", "volume '-5' must not be negative"),
        ("KO,2024-13-03,60,61,59,60,100", "date '2024-13-03' is not an ISO date"),
        ("KO,2024-01-02,60,61,59,60,100", "a second KO bar for 2024-01-02 (first at"),
    ],
)
def test_a_bad_bar_is_refused_naming_the_file_the_line_and_the_value(tmp_path: Path, row: str, named: str) -> None:
    path = _write(tmp_path / "bars.csv", TRADEKIT_HEADER, "KO,2024-01-02,60,61,59,60,100", row)
    with pytest.raises(DataError) as caught:
        load_bar_data(None, [path])
    assert f"{path} line 3: {named}" in str(caught.value)


def test_a_bar_whose_session_has_not_closed_yet_is_refused(tmp_path: Path) -> None:
    # A Yahoo download taken during a session holds that session's unfinished bar: its close
    # is only the price of the moment, and a replay would trade on it as a finished day.
    path = _write(
        tmp_path / "KO.csv",
        YAHOO_HEADER,
        "2024-01-02,60,61,59,60,60,100",
        "2024-01-03,60,61,59,60.5,60.5,100",
    )
    midday = datetime(2024, 1, 3, 17, tzinfo=UTC)
    with pytest.raises(DataError) as caught:
        load_bar_data(None, [path], now=midday)
    assert (
        f"{path} line 3: the bar of 2024-01-03 is of a session that closes at 2024-01-03T21:00:00+00:00, "
        "after now (2024-01-03T17:00:00+00:00)"
    ) in str(caught.value)
    at_the_close = session_close(date(2024, 1, 3))
    assert len(load_bar_data(None, [path], now=at_the_close).bars["KO"]) == 2


def test_a_bar_dated_in_the_future_is_refused_by_the_files_own_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bars.csv", TRADEKIT_HEADER, "KO,2024-01-02,60,61,59,60,100", "KO,2099-01-05,60,61,59,60,100"
    )
    with pytest.raises(DataError, match=r"bars.csv line 3: the bar of 2099-01-05 is of a session that closes at"):
        load_bar_data(None, [path])


def test_the_shipped_bars_are_all_in_the_past(tmp_path: Path) -> None:
    last = max(b.time for series in load_bar_data().bars.values() for b in series)
    assert load_bar_data(now=last).bars
    with pytest.raises(DataError, match=r"daily_bars.csv.gz line \d+: the bar of 2013-03-01 is of a session"):
        load_bar_data(now=last - timedelta(seconds=1))


def test_a_file_without_the_needed_columns_is_refused_with_the_layouts_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "bars.csv", "when,price", "2024-01-02,60")
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) date, open, high, low, close, volume"):
        load_bar_data(None, [path])


def test_yahoo_files_in_a_directory_load_one_symbol_per_file_in_either_date_order(tmp_path: Path) -> None:
    _write(
        tmp_path / "AAPL.csv",
        YAHOO_HEADER,
        "2024-01-02,187.15,188.44,183.89,185.64,185.64,82488700",
        "2024-01-03,184.22,185.88,183.43,184.25,184.25,58414500",
    )
    _write(
        tmp_path / "msft.csv",
        YAHOO_HEADER,
        "2024-01-03,369.01,373.26,366.78,370.60,370.60,23083500",
        "2024-01-02,373.86,375.90,366.77,370.87,370.87,25258600",
    )
    data = load_bar_data(None, [tmp_path])
    assert sorted(data.bars) == ["AAPL", "MSFT"]
    msft = data.bars["MSFT"]
    assert [b.time for b in msft] == [session_close(date(2024, 1, 2)), session_close(date(2024, 1, 3))]
    assert msft[0].close == Decimal("370.87")
    assert str(tmp_path) in data.source


def test_yahoo_adjusted_close_scales_every_price_like_the_shipped_bars(tmp_path: Path) -> None:
    path = _write(tmp_path / "KO.csv", YAHOO_HEADER, "2024-01-02,60,62,58,60,30,1000")
    (bar,) = load_bar_data(None, [path]).bars["KO"]
    assert (bar.open, bar.high, bar.low, bar.close) == (Decimal(30), Decimal(31), Decimal(29), Decimal(30))
    assert bar.volume == Decimal(2000)


def test_a_symbol_column_overrides_the_file_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "many.csv",
        "Ticker,Date,Open,High,Low,Close,Volume",
        "KO,2024-01-02,60,61,59,60,100",
        "PEP,2024-01-02,170,171,169,170,100",
    )
    assert sorted(load_bar_data(None, [path]).bars) == ["KO", "PEP"]


def test_several_files_are_one_data_set_and_a_wanted_symbol_must_be_there(tmp_path: Path) -> None:
    ko = _write(tmp_path / "KO.csv", YAHOO_HEADER, "2024-01-02,60,61,59,60,60,100")
    pep = _write(tmp_path / "PEP.csv", YAHOO_HEADER, "2024-01-02,170,171,169,170,170,100")
    assert sorted(load_bar_files([ko, pep]).bars) == ["KO", "PEP"]
    with pytest.raises(DataError, match=r"holds no bars for \['MSFT'\]"):
        load_bar_files([ko, pep], ["KO", "MSFT"])


def test_parquet_bars_load_with_the_same_checks(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    good = pa.table(
        {
            "Date": [date(2024, 1, 3), date(2024, 1, 2)],
            "Open": [60.5, 60.0],
            "High": [61.25, 61.0],
            "Low": [59.5, 59.0],
            "Close": [61.0, 60.0],
            "Volume": [100, 200],
        }
    )
    pq.write_table(good, tmp_path / "KO.parquet")
    bars = load_bar_data(None, [tmp_path / "KO.parquet"]).bars["KO"]
    assert [b.close for b in bars] == [Decimal("60.0"), Decimal("61.0")]
    assert bars[1].high == Decimal("61.25")
    bad = good.set_column(4, "Close", pa.array([62.0, 60.0]))
    pq.write_table(bad, tmp_path / "PEP.parquet")
    with pytest.raises(DataError, match=r"PEP.parquet row 2: high 61.25 is below the close 62.0"):
        load_bar_data(None, [tmp_path / "PEP.parquet"])


def test_parquet_without_pyarrow_says_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "KO.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match=r"pip install 'tradekit\[parquet\]'"):
        load_bar_data(None, [path])


_FIELD = st.one_of(
    st.sampled_from(["", " ", "abc", "NaN", "-1", "0", "1e400000000", "Infinity", "1_0", "60", "61.5", "59", "100"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=8),
)
_LINE = st.one_of(
    st.lists(_FIELD, min_size=0, max_size=9).map(",".join),
    st.text(max_size=40),
)


@given(
    header=st.sampled_from([TRADEKIT_HEADER, YAHOO_HEADER, "Ticker,Date,Close", "", "a,b"]),
    lines=st.lists(_LINE, max_size=6),
    dates=st.lists(st.dates(), max_size=6),
)
def test_any_bar_file_either_loads_or_fails_with_a_data_error(
    tmp_path_factory: pytest.TempPathFactory, header: str, lines: list[str], dates: list[date]
) -> None:
    # Rows shaped like real ones (a date, then fuzzed fields) mixed with noise.
    rows = [f"KO,{d.isoformat()},{line}" for d, line in zip(dates, lines, strict=False)] + lines
    path = tmp_path_factory.mktemp("fuzz") / "KO.csv"
    path.write_text("\n".join([header, *rows]))
    try:
        data = load_bar_data(None, [path])
    except DataError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert str(path) in message
        return
    for symbol, series in data.bars.items():
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in series)
        assert [b.time for b in series] == sorted({b.time for b in series})
        # A series a bar file gives a replay is one a live trader would run its strategy on.
        assert series_problem(symbol, series, datetime.now(UTC)) is None


@given(raw=st.binary(max_size=200))
def test_any_bytes_in_a_bar_file_either_load_or_fail_with_a_data_error(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    for name, content in (("KO.csv", TRADEKIT_HEADER.encode() + b"\n" + raw), ("KO.csv.gz", raw)):
        path = tmp_path_factory.mktemp("bytes") / name
        path.write_bytes(content)
        try:
            load_bar_data(None, [path])
        except DataError as exc:
            message = str(exc)
        else:
            continue
        assert str(path) in message
