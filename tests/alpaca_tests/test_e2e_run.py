"""End to end: ``tradekit run --broker alpaca`` and a live session against the Alpaca emulator.

The scenario the project exists for: the bot crashes with an order in flight, a human opens
positions in the Alpaca dashboard meanwhile, and the bot restarts. It must find its order
(not send it again), adopt or block the positions it did not open, and never buy twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time as time_module
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from emulators.alpaca import AlpacaEmulator, BarSeed
from tradekit.cli import cli
from tradekit.config import Settings, load_settings
from tradekit.decision.context import MarketSnapshot
from tradekit.domain import EntryOrigin, Side, Signal
from tradekit.execution.clock import BrokerClock
from tradekit.execution.live import CycleReport, LiveTrader
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.plugins import Plugins
from tradekit.reconcile import ReconcileAction
from tradekit_broker_alpaca.execution import AlpacaBroker
from tradekit_broker_alpaca.plugin import make_alpaca_broker
from tradekit_strategies_examples.breakout import SingleEntryBreakout

from .conftest import KEY_ID, SECRET_KEY

NEW_YORK = ZoneInfo("America/New_York")
BREAKOUT_CLOSE = Decimal(120)
# The emulated market lives on a fixed day, whatever the host's clock says: the trader takes
# "now" from Alpaca's clock. Monday 2024-03-04 closed at 21:00 UTC; Tuesday opens at 14:30.
LAST_CLOSE = datetime(2024, 3, 4, 21, tzinfo=UTC)
AFTER_CLOSE = LAST_CLOSE + timedelta(minutes=5)
NEXT_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
IN_THE_WINDOW = NEXT_OPEN + timedelta(minutes=5)


def market_closed(emu: AlpacaEmulator) -> None:
    """Monday evening, after the close."""
    emu.set_clock(
        is_open=False, timestamp=AFTER_CLOSE, next_open=NEXT_OPEN, next_close=NEXT_OPEN + timedelta(hours=6, minutes=30)
    )


def market_open(emu: AlpacaEmulator) -> None:
    """Tuesday, five minutes after the open."""
    emu.set_clock(
        is_open=True,
        timestamp=IN_THE_WINDOW,
        next_open=NEXT_OPEN + timedelta(days=1),
        next_close=NEXT_OPEN + timedelta(hours=6, minutes=30),
    )


class Crash(Exception):
    """Stands in for the process dying at a chosen step."""


def completed_sessions(now: datetime, count: int) -> list[date]:
    """The last ``count`` NYSE sessions that closed by ``now``, oldest first (weekends and
    holidays have no bars, as on Alpaca)."""
    calendar = TradingCalendar()
    last_close = calendar.last_close(now)
    assert last_close is not None
    last = last_close.astimezone(NEW_YORK).date()
    return [s.day for s in calendar.sessions(last - timedelta(days=2 * count), last)][-count:]


def breakout_bars(now: datetime) -> list[BarSeed]:
    """Thirty daily bars, flat around 100, the last (the latest completed session) closing at
    120 above its 20-day high."""
    bars = []
    days = completed_sessions(now, 30)
    for offset, day in zip(range(len(days) - 1, -1, -1), days, strict=True):
        close = BREAKOUT_CLOSE if offset == 0 else Decimal(100) + Decimal(offset % 3)
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
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def env(emu: AlpacaEmulator, ledger_url: str) -> dict[str, str]:
    """The environment of a `tradekit run` pointed at the emulator (keys, URLs, ledger)."""
    return {
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET_KEY,
        "TRADEKIT_LOAD_PLUGINS": "alpaca,examples",
        "TRADEKIT_LEDGER__URL": ledger_url,
        "TRADEKIT_PLUGINS__ALPACA__BASE_URL": emu.base_url,
        "TRADEKIT_PLUGINS__ALPACA__DATA_URL": emu.data_url,
        "TRADEKIT_PLUGINS__ALPACA__STREAM_URL": emu.stream_url,
        "TRADEKIT_PLUGINS__ALPACA__REQUEST_TIMEOUT_SECONDS": "2",
        "TRADEKIT_PLUGINS__ALPACA__READ_RETRIES": "0",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_RECONNECT_MIN_BACKOFF_SECONDS": "0.05",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_RECONNECT_MAX_BACKOFF_SECONDS": "0.2",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env=env).settings


@pytest.fixture
def plugins(env: dict[str, str]) -> Plugins:
    return Plugins(env={"TRADEKIT_LOAD_PLUGINS": env["TRADEKIT_LOAD_PLUGINS"]})


@pytest.fixture
def market(emu: AlpacaEmulator) -> AlpacaEmulator:
    """AAPL broke out at yesterday's close; KO, PFE and TSLA trade too. The market is closed."""
    emu.load_bars("AAPL", breakout_bars(AFTER_CLOSE))
    for symbol, price in (("AAPL", BREAKOUT_CLOSE), ("KO", Decimal("60.25")), ("PFE", Decimal("28.10"))):
        emu.set_asset(symbol)
        emu.set_price(symbol, price)
    emu.set_asset("TSLA")
    emu.set_price("TSLA", Decimal(180))
    market_closed(emu)
    return emu


def run_once(env: dict[str, str], *symbols: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        ["run", "--broker", "alpaca", "--strategy", "breakout", "--symbols", ",".join(symbols), "--once", "--json"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    (cycle,) = json.loads(result.output)
    assert isinstance(cycle, dict)
    return cycle


def pipeline_on(
    ledger: Ledger,
    broker: AlpacaBroker,
    settings: Settings,
    plugins: Plugins,
    *,
    clock: Callable[[], datetime] | None = None,
    **hooks: Any,
) -> OrderPipeline:
    """A pipeline on Alpaca's clock (synced now), unless given ``clock``."""
    return OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=settings,
        plugins=plugins,
        calendar=TradingCalendar(settings.exits.calendar),
        clock=clock if clock is not None else synced(BrokerClock(broker)),
        **hooks,
    )


def synced(clock: BrokerClock) -> BrokerClock:
    clock.sync()
    return clock


@pytest.fixture
def crashed_with_an_order_in_flight(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> str:
    """A first run sent an AAPL buy to Alpaca during the session and died before recording the answer.

    Return the order's client order id; the market stays open and the order unfilled.
    """

    def die_once_sent(step: str) -> None:
        if step == "sent":
            raise Crash(step)

    market_open(market)
    market.set_fill_policy(auto_fill_market=False)
    ledger = Ledger.open(ledger_url)
    broker = make_alpaca_broker(settings, env)
    now = IN_THE_WINDOW
    try:
        signal = Signal(
            symbol="AAPL",
            side=Side.BUY,
            confidence=5,
            generated_at=now,
            reference_price=BREAKOUT_CLOSE,
            source=SingleEntryBreakout.name,
        )
        pipeline = pipeline_on(ledger, broker, settings, plugins, on_step=die_once_sent)
        with pytest.raises(Crash):
            pipeline.process_buy(
                signal, SingleEntryBreakout, MarketSnapshot(price=BREAKOUT_CLOSE, as_of=signal.generated_at)
            )
        with ledger.reading() as tx:
            (in_flight,) = tx.pending_intents()
        assert in_flight.status is LedgerOrderStatus.SUBMITTING
    finally:
        broker.close()
        ledger.close()
    return in_flight.intent.client_order_id


def test_restart_finds_the_order_in_flight_and_reconciles_positions_opened_by_hand(
    market: AlpacaEmulator, crashed_with_an_order_in_flight: str, env: dict[str, str], ledger_url: str
) -> None:
    client_order_id = crashed_with_an_order_in_flight
    (sent,) = market.orders_with_client_id(client_order_id)
    # While the bot is down: its order fills, and a human trades in the dashboard.
    market.fill_order(sent["id"], price=BREAKOUT_CLOSE)
    market.set_fill_policy(auto_fill_market=True)
    market.set_position("KO", Decimal(100), Decimal("60.25"))
    market.submit_dashboard_order("PFE", "buy", qty=Decimal(20))
    market.set_position("TSLA", Decimal(-5), Decimal(180))
    market_closed(market)

    run_once(env, "AAPL", "KO", "PFE", "TSLA")

    assert market.order_post_count == 1
    assert len(market.orders_with_client_id(client_order_id)) == 1
    ledger = Ledger.open(ledger_url)
    try:
        with ledger.reading() as tx:
            state = tx.intent_state(client_order_id)
            assert tx.pending_intents() == []
            report = tx.last_reconciliation()
        assert state is not None
        assert state.status is LedgerOrderStatus.FILLED
        aapl = ledger.position("AAPL")
        assert aapl is not None
        assert (aapl.qty, aapl.entries[0].origin) == (Decimal(sent["qty"]), EntryOrigin.FILL)
        assert report is not None
        actions = {f.symbol: f.action for f in report.findings}
        assert actions == {
            "AAPL": ReconcileAction.IN_SYNC,
            "KO": ReconcileAction.BACKFILLED,
            "PFE": ReconcileAction.BACKFILLED,
            "TSLA": ReconcileAction.UNRECONCILED,
        }
        positions = ledger.open_positions()
    finally:
        ledger.close()

    run_once(env, "AAPL", "KO", "PFE", "TSLA")

    assert market.order_post_count == 1
    ledger = Ledger.open(ledger_url)
    try:
        assert ledger.open_positions() == positions
    finally:
        ledger.close()


def test_run_once_after_the_close_reads_alpaca_bars_and_sends_no_order(
    market: AlpacaEmulator, env: dict[str, str]
) -> None:
    cycle = run_once(env, "AAPL")

    assert cycle["signals"] == 1
    assert cycle["buys"] == []
    assert market.order_post_count == 0
    assert market.requests("GET /v2/stocks/bars")


def test_live_session_buys_a_breakout_once_at_the_open_and_never_again_after_a_restart(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> None:
    def session() -> tuple[Ledger, AlpacaBroker, LiveTrader]:
        ledger = Ledger.open(ledger_url)
        broker = make_alpaca_broker(settings, env)
        trader = LiveTrader(pipeline_on(ledger, broker, settings, plugins), SingleEntryBreakout, ["AAPL"])
        return ledger, broker, trader

    ledger, broker, trader = session()
    try:
        trader.startup()
        after_close = trader.cycle()
        market_open(market)
        at_open = trader.cycle()
        again = trader.cycle()
        bought = ledger.position("AAPL")
    finally:
        broker.close()
        ledger.close()

    assert (after_close.signals, after_close.buys) == (1, [])
    (buy,) = at_open.buys
    assert buy.order is not None
    assert again.buys == []
    assert market.order_post_count == 1
    assert bought is not None
    assert bought.qty == Decimal(market.positions()[0]["qty"])

    market_closed(market)
    ledger, broker, trader = session()
    try:
        report = trader.startup()
        trader.cycle()
        market_open(market)
        restarted = trader.cycle()
        after_restart = ledger.position("AAPL")
    finally:
        broker.close()
        ledger.close()

    assert [f.action for f in report.findings] == [ReconcileAction.IN_SYNC]
    assert all(b.order is None for b in restarted.buys)
    assert market.order_post_count == 1
    assert after_restart == bought


def test_pipeline_buy_answered_504_after_alpaca_stored_it_is_found_by_lookup_and_recorded_once(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> None:
    market_open(market)
    market.arm_error(504, after_processing=True)
    now = IN_THE_WINDOW
    signal = Signal(
        symbol="AAPL", side=Side.BUY, confidence=5, generated_at=now, reference_price=BREAKOUT_CLOSE, source="breakout"
    )
    ledger = Ledger.open(ledger_url)
    broker = make_alpaca_broker(settings, env)
    try:
        outcome = pipeline_on(ledger, broker, settings, plugins).process_buy(
            signal, SingleEntryBreakout, MarketSnapshot(price=BREAKOUT_CLOSE, as_of=now)
        )
        position = ledger.position("AAPL")
        with ledger.reading() as tx:
            assert outcome.intent is not None
            state = tx.intent_state(outcome.intent.client_order_id)
    finally:
        broker.close()
        ledger.close()

    assert outcome.order is not None
    assert market.order_post_count == 1
    (stored,) = market.orders()
    assert stored["client_order_id"] == outcome.order.client_order_id
    assert state is not None
    assert state.status is LedgerOrderStatus.FILLED
    assert position is not None
    assert position.qty == Decimal(stored["filled_qty"])


def test_an_endless_run_prints_each_cycle_as_a_json_line_until_interrupted(
    market: AlpacaEmulator, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_cycle = LiveTrader.cycle
    calls = 0

    def cycle_then_ctrl_c(self: LiveTrader) -> CycleReport:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # the user's Ctrl-C, during the third cycle
        return real_cycle(self)

    monkeypatch.setattr(LiveTrader, "cycle", cycle_then_ctrl_c)
    result = CliRunner().invoke(
        cli,
        ["run", "--broker", "alpaca", "--strategy", "breakout", "--symbols", "AAPL", "--json", "--interval", "1"],
        env=env,
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    *cycles, last = result.output.splitlines()
    assert [json.loads(line)["signals"] for line in cycles] == [1, 0]
    assert last == "stopped"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_an_endless_run_stops_cleanly_on_sigterm_and_ctrl_c(
    market: AlpacaEmulator, env: dict[str, str], tmp_path: Path, stop: signal.Signals
) -> None:
    """A real ``tradekit run --broker alpaca`` process, stopped as systemd, Docker or ``kill``
    stop a service (SIGTERM) or as a user at the terminal does (Ctrl-C): it finishes the cycle
    in progress, says it stopped, and exits 0, not with the signal's status."""
    if stop is signal.SIGINT and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        pytest.skip("this test process was started with SIGINT ignored, and its children inherit that")
    code = "import sys; from tradekit.cli import cli; sys.exit(cli())"
    argv = ["run", "--broker", "alpaca", "--strategy", "breakout", "--symbols", "AAPL", "--json", "--interval", "0.2"]
    out = tmp_path / "stdout.txt"
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            env={**os.environ, **env, "TRADEKIT_LOG_LEVEL": "WARNING"},
            stdout=stdout,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        try:
            # Wait (bounded) until the trader has run two cycles: it is in its loop.
            deadline = time_module.monotonic() + 60
            while out.read_text().count("\n") < 2:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time_module.monotonic() < deadline, "the trader never ran two cycles"
                time_module.sleep(0.05)
            process.send_signal(stop)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            if process.stderr is not None:  # closed and reaped, whatever happened above
                process.stderr.close()
            process.wait()
    lines = out.read_text().splitlines()
    assert process.returncode == 0, stderr.decode()
    assert lines[-1] == "stopped"
    # Every line before it is one cycle's report (two at least: the trader was in its loop).
    assert len(lines) >= 3
    assert all(set(json.loads(line)) >= {"events_applied", "exits", "signals", "buys"} for line in lines[:-1])
    assert "Traceback" not in stderr.decode()
