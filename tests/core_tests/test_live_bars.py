"""The live trader hands its strategy only a series the replay would run on: a broker
plugin's feed with bars out of order, twice for one time, of another symbol, or with an open
outside its bar's range keeps that symbol out of the session; the others run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from tradekit.broker.errors import BrokerUnavailable
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit.domain import Bar
from tradekit.execution.clock import SimClock
from tradekit.execution.live import LiveTrader
from tradekit.execution.replay import ReplayRunner
from tradekit.exits.calendar import TradingCalendar

from .test_live_trader import MONDAY_CLOSE, TUESDAY_OPEN, BarsBroker, BuyEveryClose, at
from .test_pipeline import Trading, make_trading

THURSDAY_CLOSE = MONDAY_CLOSE - timedelta(days=4)
FRIDAY_CLOSE = MONDAY_CLOSE - timedelta(days=3)

Spoil = Callable[[list[Bar]], list[Bar]]


def scrambled(bars: list[Bar]) -> list[Bar]:
    thursday, friday, *rest = bars
    return [friday, thursday, *rest]


def doubled(bars: list[Bar]) -> list[Bar]:
    return [bars[0], *bars]


def of_another_symbol(bars: list[Bar]) -> list[Bar]:
    return [attrs.evolve(bars[0], symbol="PFE"), *bars[1:]]


def open_above_its_high(bars: list[Bar]) -> list[Bar]:
    return [attrs.evolve(bars[0], open=bars[0].high + 9), *bars[1:]]


class SpoiledFeed(BarsBroker):
    """KO's series spoiled one way, PFE's as the feed has it."""

    def __init__(self, spoil: Spoil) -> None:
        super().__init__([THURSDAY_CLOSE, FRIDAY_CLOSE, MONDAY_CLOSE])
        self.spoil = spoil

    def daily_bars(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        found = super().daily_bars(symbols, start, end)
        return {s: self.spoil(series) if s == "KO" else series for s, series in found.items()}


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (scrambled, "bar of KO at 2024-02-29T21:00:00+00:00: out of time order, after the bar at 2024-03-01"),
        (doubled, "bar of KO at 2024-02-29T21:00:00+00:00: a second bar for that time"),
        (of_another_symbol, "bar of KO at 2024-02-29T21:00:00+00:00: the bar is PFE's"),
        (open_above_its_high, "bar of KO at 2024-02-29T21:00:00+00:00: high 61 is below the open 70"),
    ],
)
def test_a_spoiled_series_from_the_feed_keeps_its_symbol_out_of_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, spoil: Spoil, named: str
) -> None:
    t = make_trading(tmp_path, paper=SpoiledFeed(spoil))
    t.reconcile()
    trader = LiveTrader(t.pipeline, BuyEveryClose, ["KO", "PFE"])
    at(t, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    with caplog.at_level("WARNING", logger="tradekit.execution.live"):
        report = trader.cycle()
    with t.ledger.reading() as tx:
        queued = [s.symbol for s in tx.queued_buys(BuyEveryClose.name)]
    assert report.signals == 1
    assert queued == ["PFE"]
    assert set(trader.driver.histories) == {"PFE"}
    assert named in caplog.text
    t.ledger.close()


def test_the_replay_refuses_the_same_scrambled_series(tmp_path: Path) -> None:
    t = make_trading(tmp_path)
    bars = scrambled(SpoiledFeed(lambda bars: bars).daily_bars(["KO"], THURSDAY_CLOSE, MONDAY_CLOSE)["KO"])
    with pytest.raises(ValueError, match="bars of KO must be in strictly increasing time order"):
        ReplayRunner(
            strategy=BuyEveryClose,
            bars={"KO": bars},
            pipeline=t.pipeline,
            broker=t.broker,
            calendar=TradingCalendar(),
            clock=SimClock(THURSDAY_CLOSE),
        )
    t.ledger.close()


def test_a_good_feed_runs_every_symbol(tmp_path: Path) -> None:
    t = make_trading(tmp_path, paper=SpoiledFeed(lambda bars: bars))
    t.reconcile()
    trader = LiveTrader(t.pipeline, BuyEveryClose, ["KO", "PFE"])
    at(t, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    assert trader.cycle().signals == 2
    assert [b.close for b in trader.driver.histories["KO"]] == [Decimal(60)] * 3
    t.ledger.close()


class PricesDownFeed(BarsBroker):
    """A feed whose latest prices time out."""

    def latest_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        raise BrokerUnavailable("latest trades timed out")


def test_a_failed_price_feed_at_the_open_never_prices_a_buy_at_the_last_close(tmp_path: Path) -> None:
    # KO opens 5% above Monday's close; the signal's reference is that close. Priced at the
    # last close, the overnight-gap check would see no gap and a market buy would go out.
    t = make_trading(tmp_path, paper=PricesDownFeed([FRIDAY_CLOSE, MONDAY_CLOSE]))
    t.broker.set_price("KO", Decimal(63), MONDAY_CLOSE)
    t.reconcile()
    trader = LiveTrader(t.pipeline, BuyEveryClose, ["KO"])
    at(t, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    assert trader.cycle().signals == 1
    at(t, TUESDAY_OPEN + timedelta(minutes=5), is_open=True)
    (outcome,) = trader.cycle().buys

    assert outcome.order is None
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert ReasonCode.MARKET_DATA_UNAVAILABLE in outcome.decision.reasons
    assert not t.broker.get_positions()
    t.ledger.close()


def test_a_spoiled_series_is_warned_of_once_however_often_it_is_asked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = make_trading(tmp_path, paper=SpoiledFeed(scrambled))
    t.reconcile()
    trader = LiveTrader(t.pipeline, BuyEveryClose, ["KO", "PFE"])
    with caplog.at_level("WARNING", logger="tradekit.execution.live"):
        for minutes in (5, 6, 7):
            at(t, MONDAY_CLOSE + timedelta(minutes=minutes), is_open=False)
            trader.cycle()
    assert caplog.text.count("out of time order") == 1
    assert feed_requests(t) == 3  # KO is asked for again each cycle
    t.ledger.close()


def feed_requests(t: Trading) -> int:
    assert isinstance(t.broker, BarsBroker)
    return t.broker.bar_requests
