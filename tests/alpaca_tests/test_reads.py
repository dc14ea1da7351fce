"""Account, positions, assets, clock, calendar and daily bars read through the broker."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal

import pytest

from emulators.alpaca import AlpacaEmulator, BarSeed, CalendarDay
from tradekit.broker import Broker
from tradekit.data.source import BarSource
from tradekit.execution.live import PriceSource
from tradekit_broker_alpaca.execution import AlpacaBroker


def test_broker_implements_the_broker_and_bar_source_protocols(broker: AlpacaBroker) -> None:
    assert isinstance(broker, Broker)
    assert isinstance(broker, BarSource)
    assert broker.name == "alpaca"


def test_account_reads_money_flags_and_the_fractional_trading_setting(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.set_position("AAPL", Decimal(10), Decimal(140), adjust_cash=True)
    emu.set_account(pattern_day_trader=True)
    emu.set_account_configuration(fractional_trading=False)

    account = broker.get_account()

    assert account.cash == Decimal(98600)
    assert account.equity == Decimal(100100)
    assert account.buying_power == Decimal(98600)
    assert (account.pattern_day_trader, account.fractional_trading, account.trading_blocked) == (True, False, False)
    assert account.as_of.utcoffset() == timedelta(0)


def test_account_suspended_in_its_configuration_reads_as_trading_blocked(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.set_account_configuration(suspend_trade=True)

    assert broker.get_account().trading_blocked is True


def test_positions_carry_quantity_and_average_entry_price(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.set_position("AAPL", Decimal("2.5"), Decimal("148.10"))
    emu.submit_dashboard_order("BRK.A", "buy", qty=Decimal(3))

    positions = {p.symbol: p for p in broker.get_positions()}

    assert (positions["AAPL"].qty, positions["AAPL"].avg_entry_price) == (Decimal("2.5"), Decimal("148.1"))
    assert (positions["BRK.A"].qty, positions["BRK.A"].avg_entry_price) == (Decimal(3), Decimal(600))


def test_unknown_asset_is_reported_untradable(broker: AlpacaBroker) -> None:
    asset = broker.get_asset("ZZZZ")

    assert (asset.symbol, asset.tradable, asset.fractionable) == ("ZZZZ", False, False)


def test_clock_and_calendar_come_back_in_utc(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    now = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    emu.set_clock(
        is_open=True,
        timestamp=now,
        next_open=datetime(2026, 11, 30, 14, 30, tzinfo=UTC),
        next_close=datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
    )
    emu.set_calendar([CalendarDay(date(2026, 11, 27), close=clock_time(13, 0)), CalendarDay(date(2026, 11, 30))])

    clock = broker.get_clock()
    sessions = broker.get_calendar(date(2026, 11, 27), date(2026, 11, 30))

    assert (clock.now, clock.is_open, clock.next_close) == (now, True, datetime(2026, 11, 27, 18, 0, tzinfo=UTC))
    assert [(s.day, s.open, s.close) for s in sessions] == [
        (date(2026, 11, 27), datetime(2026, 11, 27, 14, 30, tzinfo=UTC), datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),
        (date(2026, 11, 30), datetime(2026, 11, 30, 14, 30, tzinfo=UTC), datetime(2026, 11, 30, 21, 0, tzinfo=UTC)),
    ]


def _daily(first: date, closes: list[str]) -> list[BarSeed]:
    bars = []
    for i, close in enumerate(closes):
        day = first + timedelta(days=i)
        price = Decimal(close)
        bars.append(
            BarSeed(
                timestamp=datetime(day.year, day.month, day.day, 5, tzinfo=UTC),
                open=price - 1,
                high=price + 1,
                low=price - 2,
                close=price,
                volume=1_000 + i,
            )
        )
    return bars


def test_daily_bars_follow_pages_and_keep_the_bars_closing_in_the_window(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.load_bars("AAPL", _daily(date(2026, 3, 2), ["150.11", "151.22", "152.33", "153.44", "154.55"]))
    emu.load_bars("MSFT", _daily(date(2026, 3, 2), ["400.01", "401.02", "402.03", "403.04", "404.05"]))
    emu.set_bars_page_size(3)

    bars = broker.daily_bars(
        ["AAPL", "MSFT", "NONE"],
        # From the 3rd's open to the 5th's close: the 2nd's bar closed before the start.
        datetime(2026, 3, 3, 14, 30, tzinfo=UTC),
        datetime(2026, 3, 5, 21, 0, tzinfo=UTC),
    )

    assert [(b.time.day, b.close) for b in bars["AAPL"]] == [
        (3, Decimal("151.22")),
        (4, Decimal("152.33")),
        (5, Decimal("153.44")),
    ]
    assert [b.close for b in bars["MSFT"]] == [Decimal("401.02"), Decimal("402.03"), Decimal("403.04")]
    assert bars["NONE"] == []
    assert all(b.time.hour == 21 and b.time.tzinfo is not None for b in bars["AAPL"])
    (first_request, *_rest) = emu.requests("GET /v2/stocks/bars")
    assert (first_request.query["feed"], first_request.query["adjustment"], first_request.query["timeframe"]) == (
        "iex",
        "all",
        "1Day",
    )


def test_daily_bars_refuse_naive_times(broker: AlpacaBroker) -> None:
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        broker.daily_bars(["AAPL"], datetime(2026, 3, 2), datetime(2026, 3, 3, tzinfo=UTC))  # noqa: DTZ001


def test_latest_prices_are_exact_decimals_for_the_symbols_alpaca_trades(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.set_price("AAPL", Decimal("151.37"))

    assert isinstance(broker, PriceSource)
    assert broker.latest_prices(["AAPL", "ZZZZ"]) == {"AAPL": Decimal("151.37")}
    assert broker.latest_prices([]) == {}
