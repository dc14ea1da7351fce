"""Alpaca's daily bars on their way into a decision: every answer that cannot be trusted is
named (symbol, day, field, value) and never reaches the strategy; a bad series costs its own
symbol the session's run, not the others', and never the trader's process."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.alpaca import AlpacaEmulator, BarSeed
from tradekit.broker.errors import BrokerDataError, BrokerError, BrokerUnavailable
from tradekit.config import Settings
from tradekit.data import DataError, fetch
from tradekit.execution.clock import BrokerClock
from tradekit.execution.live import LiveTrader
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit_broker_alpaca import AlpacaCredentials
from tradekit_broker_alpaca.bars import AlpacaBars, bars_from_pages
from tradekit_broker_alpaca.execution import AlpacaBroker
from tradekit_strategies_examples.breakout import SingleEntryBreakout

from .conftest import KEY_ID, SECRET_KEY, MakeBroker, emulator_config

NEW_YORK = ZoneInfo("America/New_York")
BARS = "GET /v2/stocks/bars"
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 10, tzinfo=UTC)
GOOD = {"t": "2026-03-02T05:00:00Z", "o": 10.0, "h": 11.0, "l": 9.0, "c": 10.5, "v": 500}
# Monday 2024-03-04 closed at 21:00 UTC; the trader runs five minutes later.
LAST_CLOSE = datetime(2024, 3, 4, 21, tzinfo=UTC)
AFTER_CLOSE = LAST_CLOSE + timedelta(minutes=5)


def answer(emu: AlpacaEmulator, body: object, *, times: int = 1) -> None:
    """The data API's next ``times`` answers to GET /v2/stocks/bars: HTTP 200 with ``body``."""
    emu.arm_error(200, endpoint=BARS, body=json.dumps(body), times=times)


def page(bars: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    return {"bars": bars, "next_page_token": token}


# --------------------------------------------------------------------------- the answer's shape


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([1, 2], "Alpaca daily bars: page 1 is a JSON array, not an object"),
        ({"trades": {}}, "Alpaca daily bars: page 1 has no 'bars' field"),
        ({"bars": [GOOD]}, "Alpaca daily bars: page 1's 'bars' is a JSON array, not an object of symbols"),
        (
            {"bars": {"AAPL": [GOOD]}, "next_page_token": 5},
            "Alpaca daily bars: page 1's next_page_token is 5, not a string",
        ),
    ],
)
def test_a_bars_answer_of_the_wrong_shape_is_bad_broker_data_named_by_page_and_field(
    emu: AlpacaEmulator, broker: AlpacaBroker, body: object, named: str
) -> None:
    answer(emu, body)
    with pytest.raises(BrokerDataError) as caught:
        broker.daily_bars(["AAPL"], START, END)
    assert named in str(caught.value)


def test_a_next_page_token_that_comes_back_again_ends_the_read_at_once(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    # A data API stuck on one page: alpaca-py itself would ask for it for ever.
    answer(emu, page({"AAPL": [GOOD]}, "c2FtZQ"), times=50)
    with pytest.raises(BrokerDataError, match="page 2 hands back next_page_token 'c2FtZQ' again"):
        broker.daily_bars(["AAPL"], START, END)
    assert len(emu.requests(BARS)) == 2
    emu.clear_faults()


def test_pages_that_go_on_past_what_the_window_can_hold_end_the_read(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    # Ten calendar days (and the day before) hold at most 11 daily bars of one symbol; a page
    # token that changes every time while the pages stay empty is a loop too.
    for number in range(30):
        answer(emu, page({}, f"t{number}"))
    with pytest.raises(BrokerDataError, match="the data API's pages do not end"):
        broker.daily_bars(["AAPL"], START, END)
    assert len(emu.requests(BARS)) < 30
    emu.clear_faults()


def test_an_empty_answer_is_no_bars(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    answer(emu, page({}))
    assert broker.daily_bars(["AAPL"], START, END) == {"AAPL": []}
    answer(emu, {"bars": None, "next_page_token": None})
    assert broker.daily_bars(["AAPL"], START, END) == {"AAPL": []}


def test_a_bars_read_that_times_out_is_a_bounded_broker_unavailable(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(request_timeout_seconds=0.3)
    emu.arm_delay(5.0, endpoint=BARS, after_processing=False)
    with pytest.raises(
        BrokerUnavailable, match=r"Alpaca daily bars could not be read: no HTTP answer: no answer within 0.3 s"
    ):
        broker.daily_bars(["AAPL"], START, END)


# --------------------------------------------------------------------------- one symbol's series


@pytest.mark.parametrize(
    ("series", "named"),
    [
        (5, "Alpaca bars of AAPL: expected a JSON array of bars, got int"),
        ([1], "Alpaca bar of AAPL: expected a JSON object, got int"),
        ([dict(GOOD, o=12.0)], "Alpaca bar of AAPL on 2026-03-02: high 11.0 is below the open 12.0"),
        ([dict(GOOD, c=8.5)], "Alpaca bar of AAPL on 2026-03-02: low 9.0 is above the close 8.5"),
        ([dict(GOOD, v=-1)], "Alpaca bar of AAPL on 2026-03-02: field 'v' is -1, a negative volume"),
        ([dict(GOOD, c="NaN")], "Alpaca bar of AAPL on 2026-03-02: field 'c' is not a finite number: 'NaN'"),
        ([dict(GOOD, l=0)], "Alpaca bar of AAPL on 2026-03-02: field 'l' is 0, not a positive price"),
        ([dict(GOOD, t="2026-03-02T05:00:00")], "Alpaca bar of AAPL: field 't' has no UTC offset"),
        (
            [GOOD, dict(GOOD, c=10.75)],
            "Alpaca bar of AAPL on 2026-03-02: a second bar for that day (closes 10.5 and 10.75)",
        ),
    ],
)
def test_a_bad_bar_keeps_its_symbol_out_and_names_the_symbol_day_field_and_value(
    emu: AlpacaEmulator, broker: AlpacaBroker, caplog: pytest.LogCaptureFixture, series: object, named: str
) -> None:
    msft = [dict(GOOD, c=10.25)]
    answer(emu, page({"AAPL": series, "MSFT": msft}))
    with caplog.at_level(logging.WARNING, logger="tradekit_broker_alpaca"):
        bars = broker.daily_bars(["AAPL", "MSFT"], START, END)
    assert "AAPL" not in bars
    assert [b.close for b in bars["MSFT"]] == [Decimal("10.25")]
    assert named in caplog.text

    # ``tradekit data fetch`` stops on it: a cache is never written with a hole.
    source = AlpacaBars(emulator_config(emu), AlpacaCredentials(key_id=KEY_ID, secret_key=SECRET_KEY))
    answer(emu, page({"AAPL": series, "MSFT": msft}))
    try:
        with pytest.raises(DataError) as caught:
            source.daily_bars(["AAPL", "MSFT"], START, END)
    finally:
        source.close()
    assert named in str(caught.value)


def test_a_bad_bar_is_reported_once_not_at_every_cycle(
    emu: AlpacaEmulator, broker: AlpacaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    answer(emu, page({"AAPL": [dict(GOOD, o=12.0)]}), times=3)
    with caplog.at_level(logging.WARNING, logger="tradekit_broker_alpaca"):
        for _ in range(3):
            assert broker.daily_bars(["AAPL"], START, END) == {}
    assert caplog.text.count("high 11.0 is below the open 12.0") == 1


def test_bars_of_one_day_split_over_two_pages_are_a_second_bar_for_that_day(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    answer(emu, page({"AAPL": [GOOD]}, "next"))
    answer(emu, page({"AAPL": [GOOD]}))
    assert broker.daily_bars(["AAPL"], START, END) == {}


_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.sampled_from(["1.5", "NaN", "", "x", None, True]),
)
_BAR = st.fixed_dictionaries(
    {
        "t": st.one_of(
            st.dates(date(2026, 2, 25), date(2026, 3, 12)).map(lambda d: f"{d.isoformat()}T05:00:00Z"),
            st.sampled_from(["2026-03-02", "garbage", None, 7]),
        ),
        "o": _NUMBER,
        "h": _NUMBER,
        "l": _NUMBER,
        "c": _NUMBER,
        "v": _NUMBER,
    }
)
_PAGE = st.fixed_dictionaries(
    {"bars": st.dictionaries(st.sampled_from(["AAPL", "MSFT", "OTHER"]), st.lists(_BAR, max_size=4), max_size=3)}
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(pages=st.lists(_PAGE, min_size=1, max_size=3))
def test_any_bars_answer_gives_trustworthy_series_or_names_what_is_wrong(pages: list[dict[str, Any]]) -> None:
    try:
        read = bars_from_pages(pages, ["AAPL", "MSFT"], START, END)
    except BrokerError:
        return
    for symbol, problem in read.problems.items():
        assert symbol in problem
        assert symbol not in read.bars
    for symbol, series in read.bars.items():
        times = [b.time for b in series]
        assert times == sorted(set(times))
        assert all(START <= t <= END for t in times)
        for b in series:
            assert b.symbol == symbol
            assert 0 < b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
            assert b.volume >= 0
            assert all(v.is_finite() for v in (b.open, b.high, b.low, b.close, b.volume))


# --------------------------------------------------------------------------- tradekit data fetch


def test_a_fetch_during_a_session_leaves_its_unfinished_bar_out_of_the_cache(
    emu: AlpacaEmulator, tmp_path: Path
) -> None:
    # On the wall clock the data API serves today's bar as it forms, as Alpaca does.
    days = [date(2024, 3, 4), date(2024, 3, 5)]
    emu.load_bars(
        "AAPL",
        [
            BarSeed(
                timestamp=datetime.combine(d, time(0), NEW_YORK).astimezone(UTC),
                open=Decimal(100),
                high=Decimal(102),
                low=Decimal(99),
                close=Decimal(101),
                volume=1000,
            )
            for d in days
        ],
    )
    source = AlpacaBars(emulator_config(emu), AlpacaCredentials(key_id=KEY_ID, secret_key=SECRET_KEY))
    midday = datetime(2024, 3, 5, 17, tzinfo=UTC)  # Tuesday, 12:00 in New York
    try:
        result = fetch.fetch_to_cache(
            source,
            label="Alpaca",
            symbols=["AAPL"],
            first_day=days[0],
            last_day=days[1],
            directory=tmp_path,
            now=midday,
        )
    finally:
        source.close()
    assert result.bars == {"AAPL": 1}
    assert "2024-03-05" not in (tmp_path / "AAPL.csv").read_text()


# --------------------------------------------------------------------------- the live trader


def breakout(days: list[date]) -> list[BarSeed]:
    """Flat around 100, the last session closing at 120, above its 20-day high."""
    bars = []
    for offset, day in zip(range(len(days) - 1, -1, -1), days, strict=True):
        close = Decimal(120) if offset == 0 else Decimal(100) + Decimal(offset % 3)
        bars.append(
            BarSeed(
                timestamp=datetime.combine(day, time(0), NEW_YORK).astimezone(UTC),
                open=close - 1,
                high=close + 1,
                low=close - 2,
                close=close,
                volume=1_000_000,
            )
        )
    return bars


@pytest.fixture
def trader(emu: AlpacaEmulator, make_broker: MakeBroker, tmp_path: Path) -> LiveTrader:
    """Monday after the close: AAPL and KO both broke out at it."""
    calendar = TradingCalendar()
    days = [s.day for s in calendar.sessions(date(2024, 1, 2), LAST_CLOSE.date())][-30:]
    for symbol in ("AAPL", "KO"):
        emu.set_asset(symbol)
        emu.set_price(symbol, Decimal(120))
        emu.load_bars(symbol, breakout(days))
    emu.set_clock(
        is_open=False,
        timestamp=AFTER_CLOSE,
        next_open=datetime(2024, 3, 5, 14, 30, tzinfo=UTC),
        next_close=datetime(2024, 3, 5, 21, tzinfo=UTC),
    )
    broker = make_broker(stream=False)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    clock = BrokerClock(broker)
    clock.sync()
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=Settings(),
        plugins=Plugins(load_entrypoints=False, env={}),
        calendar=calendar,
        clock=clock,
    )
    trader = LiveTrader(pipeline, SingleEntryBreakout, ["AAPL", "KO"])
    trader.startup()
    return trader


def test_a_bad_bar_in_one_symbols_history_keeps_the_strategy_off_it_and_on_the_others(
    emu: AlpacaEmulator, trader: LiveTrader, caplog: pytest.LogCaptureFixture
) -> None:
    bad_day = date(2024, 2, 20)
    emu.load_bars(
        "KO",
        [
            BarSeed(
                timestamp=datetime.combine(bad_day, time(0), NEW_YORK).astimezone(UTC),
                open=Decimal(130),  # above its own high: no trading on that
                high=Decimal(102),
                low=Decimal(99),
                close=Decimal(101),
                volume=1_000_000,
            )
        ],
    )
    with caplog.at_level(logging.WARNING):
        report = trader.cycle()
    assert report.signals == 1
    with trader.pipeline.ledger.reading() as tx:
        assert [s.symbol for s in tx.queued_buys(SingleEntryBreakout.name)] == ["AAPL"]
    assert "Alpaca bar of KO on 2024-02-20: high 102.0 is below the open 130.0" in caplog.text
    assert trader.driver.histories.keys() == {"AAPL"}
    trader.pipeline.ledger.close()


@pytest.mark.parametrize(
    "body",
    [
        {"bars": {"AAPL": [1]}, "next_page_token": None},
        {"bars": {"AAPL": 5}, "next_page_token": None},
        {"bars": None},
        {"trades": {}},
        "not an object",
    ],
)
def test_a_malformed_bars_answer_costs_one_cycle_not_the_trader(
    emu: AlpacaEmulator, trader: LiveTrader, body: object
) -> None:
    answer(emu, body)
    first = trader.cycle()  # must not raise
    second = trader.cycle()
    assert (first.signals, second.signals) == (0, 2)
    trader.pipeline.ledger.close()


# --------------------------------------------------------------------------- latest prices


def test_a_bad_latest_trade_leaves_only_its_own_symbol_unpriced(
    emu: AlpacaEmulator, broker: AlpacaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    trade = {"t": "2026-03-02T15:00:00Z", "x": "V", "s": 100, "c": ["@"], "i": 1, "z": "C"}
    body = {"trades": {"AAPL": dict(trade, p=0), "BRK.A": dict(trade, p=600.25)}}
    emu.arm_error(200, endpoint="GET /v2/stocks/trades/latest", body=json.dumps(body))
    with caplog.at_level(logging.WARNING, logger="tradekit_broker_alpaca"):
        prices = broker.latest_prices(["AAPL", "BRK.A"])
    assert prices == {"BRK.A": Decimal("600.25")}
    assert "Alpaca latest trade of AAPL: price 0 is not positive" in caplog.text
