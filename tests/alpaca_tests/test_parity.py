"""The live trader on Alpaca (the real alpaca-py client against the emulator in simulated
time) decides and orders what the replay of the same bars on the paper broker does: the
pyramid strategy's entry, its add-ons up to the policy maximum and its exit, over a dozen
sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from chaos.world import SYMBOLS, bars_for, moments
from emulators.alpaca import AlpacaEmulator, BarSeed
from emulators.alpaca._sessions import Sessions
from tradekit.config import Settings, load_settings
from tradekit.data import session_close
from tradekit.domain import Bar
from tradekit.execution.clock import BrokerClock
from tradekit.execution.live import LiveTrader
from tradekit.execution.paper_run import run_paper_replay
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit_broker_alpaca.plugin import make_alpaca_broker
from tradekit_strategies_examples import PyramidBreakout

from .conftest import KEY_ID, SECRET_KEY

NEW_YORK = ZoneInfo("America/New_York")


def as_bars(symbol: str, seeds: list[BarSeed]) -> list[Bar]:
    """The bars a replay is given: stamped as the Alpaca plugin stamps the same daily bars."""
    return [
        Bar(
            symbol=symbol,
            time=session_close(seed.timestamp.astimezone(NEW_YORK).date()),
            open=seed.open,
            high=seed.high,
            low=seed.low,
            close=seed.close,
            volume=Decimal(seed.volume),
        )
        for seed in seeds
    ]


def trade_on_alpaca(tmp_path: Path, seeds: dict[str, list[BarSeed]], sessions: Sessions) -> str:
    url = f"sqlite:///{tmp_path / 'alpaca.db'}"
    with AlpacaEmulator(api_key=KEY_ID, secret_key=SECRET_KEY) as emu:
        for symbol, bars in seeds.items():
            emu.set_asset(symbol)
            emu.load_bars(symbol, bars)
        run = moments(sessions)
        emu.set_time(run[0].at)
        env = {
            "APCA_API_KEY_ID": KEY_ID,
            "APCA_API_SECRET_KEY": SECRET_KEY,
            "TRADEKIT_PLUGINS__ALPACA__BASE_URL": emu.base_url,
            "TRADEKIT_PLUGINS__ALPACA__DATA_URL": emu.data_url,
            "TRADEKIT_PLUGINS__ALPACA__STREAM_URL": emu.stream_url,
            "TRADEKIT_PLUGINS__ALPACA__REQUEST_TIMEOUT_SECONDS": "5",
        }
        settings = load_settings(env=env).settings
        broker = make_alpaca_broker(settings, env)
        try:
            with Ledger.open(url, for_trading=True) as ledger:
                pipeline = OrderPipeline(
                    ledger=ledger,
                    broker=broker,
                    settings=settings,
                    plugins=Plugins(load_entrypoints=False, env={}),
                    calendar=TradingCalendar(),
                    clock=BrokerClock(broker),
                )
                trader = LiveTrader(pipeline, PyramidBreakout, sorted(seeds))
                trader.startup()
                for moment in run:
                    emu.set_time(moment.at)
                    trader.cycle()
                emu.set_time(run[-1].at + timedelta(minutes=1))
                trader.cycle()  # whatever the stream still had to say
        finally:
            broker.close()
    return url


def session_day(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def what_happened(url: str) -> dict[str, list[Any]]:
    """What both runs must agree on (the brokers' own ids and fill times aside)."""
    with Ledger.open(url, create=False) as ledger, ledger.reading() as tx:
        decisions = tx.decisions(limit=100_000)
        orders = tx.order_intents()
        fills = tx.fills_with_purpose()
        positions = tx.position_history()
        exits = tx.exit_intents()
        pending = tx.pending_intents()
    # A live cycle's moments carry the milliseconds its work took; prices come back from Alpaca
    # as "101.5" where the bars say "101.50" (equal Decimals, other text).
    return {
        "decisions": sorted((minute(d.evaluated_at), d.symbol, d.action, d.reasons) for d in decisions),
        "orders": sorted((o.intent_key, o.side, o.purpose, o.qty, o.limit_price, minute(o.created_at)) for o in orders),
        "fills": sorted((f.client_order_id, f.side, f.qty, f.price, p) for f, p in fills),
        "positions": sorted((p.symbol, p.entry_count, [e.price for e in p.entries], p.qty) for p in positions),
        # Decided at the close phase: at the close in a replay, once the bar is published live.
        "exits": sorted((e.intent_id, e.symbol, e.qty, e.state, session_day(e.decided_at)) for e in exits),
        "in flight": [s.intent.intent_key for s in pending],
    }


def test_the_live_trader_on_alpaca_decides_and_orders_exactly_what_the_replay_does(tmp_path: Path) -> None:
    sessions = Sessions.nyse()
    seeds = {symbol: bars_for(symbol, sessions) for symbol in SYMBOLS}
    live = what_happened(trade_on_alpaca(tmp_path, seeds, sessions))
    replayed = run_paper_replay(
        strategy=PyramidBreakout,
        settings=Settings(),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars={symbol: as_bars(symbol, bars) for symbol, bars in seeds.items()},
        out_dir=tmp_path / "replay",
        chart=False,
    )
    replay = what_happened(replayed.ledger_url)

    # Not a vacuous agreement: each symbol entered, added until the pyramid's 5% allocation cap
    # stopped it, and exited.
    assert [p[1] for p in replay["positions"]] == [3] * len(SYMBOLS)
    assert any("allocation_cap" in d[3] for d in replay["decisions"])
    assert all(p[3] == 0 for p in replay["positions"])
    assert replay["in flight"] == []
    for what in replay:
        assert live[what] == replay[what], what
    assert datetime.now(UTC) > replay["decisions"][0][0]  # the emulated market lives in the past
