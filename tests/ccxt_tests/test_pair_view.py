"""The pair store and the positions view (``tradekit pairs positions``)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ccxt_tests.pair_world import (
    LONG_VENUE,
    SHORT_VENUE,
    START,
    EngineVenue,
    engine_venues,
    pair_config,
    pair_limits,
    pair_plugins,
)
from ccxt_tests.venues import ETH
from tradekit.domain.signals import Side
from tradekit.ledger.store import Ledger
from tradekit_venue_ccxt import plugin
from tradekit_venue_ccxt.pairs.models import PairSignal, PairStatus
from tradekit_venue_ccxt.pairs.spread import next_trigger, to_bps
from tradekit_venue_ccxt.pairs.store import SCHEMA_VERSION, PairStore, PairStoreError, meta
from tradekit_venue_ccxt.pairs.trader import PairTrader
from tradekit_venue_ccxt.pairs.view import position_rows, render_rows
from tradekit_venue_ccxt.providers import FundingPayment, VenueFill

BPS = Decimal(10_000)
CONFIG_ENV = {
    "TRADEKIT_PLUGINS__CCXT__PAIRS__ENTRY_NOTIONAL": "1000",
    "TRADEKIT_PLUGINS__CCXT__PAIRS__MAX_TOTAL_NOTIONAL": "4500",
    "TRADEKIT_PLUGINS__CCXT__PAIRS__FUNDING_HARD_STOP": "50",
}


def quote(venue: EngineVenue, mid: Decimal) -> None:
    tick = Decimal("0.01")
    venue.engine.set_order_book(
        ETH,
        bids=[(mid - tick * k, Decimal(50)) for k in range(1, 4)],
        asks=[(mid + tick * k, Decimal(50)) for k in range(1, 4)],
    )
    venue.engine.set_mark_price(ETH, mid)


@pytest.fixture
def traded(tmp_path: Path) -> str:
    """A ledger holding one open pair with two entries (20 bps, then 31 bps), marked at 33 bps."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    venues = engine_venues()
    ledger = Ledger.open(url, for_trading=True)
    store = PairStore.open(url)
    trader = PairTrader(
        config=pair_config(),
        venues=venues,
        ledger=ledger,
        store=store,
        limits=pair_limits(),
        plugins=pair_plugins(),
        order_poll_interval_s=0,
        sleep=lambda _s: None,
    )
    try:
        for hour, spread_bps in enumerate((20, 31, 33)):
            now = START + timedelta(hours=hour)
            long, short = venues[LONG_VENUE], venues[SHORT_VENUE]
            assert isinstance(long, EngineVenue)
            assert isinstance(short, EngineVenue)
            quote(long, Decimal(3000))
            quote(short, (Decimal(3000) * (1 + Decimal(spread_bps) / BPS)).quantize(Decimal("0.01")))
            signal = PairSignal(
                event_id="e", symbol=ETH, long_venue=LONG_VENUE, short_venue=SHORT_VENUE, generated_at=now
            )
            trader.submit_signal(signal, now)
            trader.run_cycle(now)
    finally:
        store.close()
        ledger.close()
    return url


def test_rows_show_entries_weighted_spread_next_trigger_funding_and_time_to_force_close(traded: str) -> None:
    now = START + timedelta(days=2)
    with PairStore.open(traded, create=False) as store:
        (row,) = position_rows(store, now=now, config=pair_config())
        (pair,) = store.pairs()

    assert row.status is PairStatus.OPEN
    assert (row.entries, row.max_entries) == (2, 4)
    first, second = pair.entries
    weighted = (first.notional * first.spread + second.notional * second.spread) / (first.notional + second.notional)
    assert row.weighted_entry_spread_bps == to_bps(weighted)
    assert row.initial_spread_bps == to_bps(first.spread)
    assert row.next_trigger_bps == to_bps(next_trigger(first.spread, Decimal("1.5"), 2))
    assert row.current_spread_bps is not None
    assert row.current_spread_bps > to_bps(second.spread)
    assert row.qty == first.qty + second.qty
    assert row.funding_paid == Decimal(0)
    assert row.time_to_force_close == pair.header.force_close_at - now == timedelta(days=5)
    assert row.take_profit_target == first.notional * Decimal("0.5") / 100
    table = render_rows([row])
    assert pair.pair_id in table
    assert "2/4" in table
    assert "5d00h00m" in table


def test_cli_lists_open_pairs_as_json_and_as_a_table(traded: str) -> None:
    group = click.Group("tradekit")
    plugin.register_commands(cli=group)
    runner = CliRunner()
    env = {"TRADEKIT_LEDGER__URL": traded, **CONFIG_ENV}

    as_json = runner.invoke(group, ["pairs", "positions", "--status", "open", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.output)
    assert row["entries"] == 2
    assert row["max_entries"] == 4
    assert row["status"] == "open"
    assert Decimal(row["next_trigger_bps"]) > Decimal(row["initial_spread_bps"])

    table = runner.invoke(group, ["pairs", "positions"], env=env)
    assert table.exit_code == 0, table.output
    assert "binanceusdm>bybit:ETH/USDT:USDT#1" in table.output

    closed = runner.invoke(group, ["pairs", "positions", "--status", "closed"], env=env)
    assert closed.output.strip() == "no pairs"


def test_cli_on_a_ledger_without_pairs_says_so_and_writes_nothing(tmp_path: Path) -> None:
    group = click.Group("tradekit")
    plugin.register_commands(cli=group)
    url = f"sqlite:///{tmp_path / 'never.db'}"
    result = CliRunner().invoke(group, ["pairs", "positions"], env={"TRADEKIT_LEDGER__URL": url})
    assert result.exit_code != 0
    assert "no pair has been traded" in result.output
    assert not (tmp_path / "never.db").exists()


def test_fills_and_funding_are_recorded_once(tmp_path: Path) -> None:
    with PairStore.open(f"sqlite:///{tmp_path / 'p.db'}") as store:
        fill = VenueFill(
            venue="bybit",
            execution_id="x-1",
            client_order_id="tk-1",
            venue_order_id="o-1",
            symbol=ETH,
            side=Side.SELL,
            qty=Decimal("0.1"),
            price=Decimal(3000),
            fee=Decimal("0.165"),
            time=START,
        )
        assert store.record_fills([fill, fill]) == 1
        assert store.record_fills([fill]) == 0


def test_newer_pair_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    PairStore.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(meta.update().values(value=str(SCHEMA_VERSION + 1)))
    engine.dispose()
    with pytest.raises(PairStoreError, match="newer"):
        PairStore.open(url)


def test_funding_payment_belongs_to_one_pair(traded: str) -> None:
    payment = FundingPayment(
        venue="bybit", symbol=ETH, funding_id="f-1", amount=Decimal("-0.3"), currency="USDT", time=START
    )
    with PairStore.open(traded) as store:
        (pair,) = store.pairs()
        assert store.record_funding(pair.pair_id, [payment]) == 1
        assert store.record_funding(pair.pair_id, [payment]) == 0
        refreshed = store.pair(pair.pair_id)
        assert refreshed is not None
        assert refreshed.funding_paid == Decimal("0.3")
