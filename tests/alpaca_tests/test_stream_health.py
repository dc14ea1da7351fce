"""The Alpaca broker tells tradekit's trading-state guard how its trade-update stream and its
account are doing (``StreamHealth``, ``AccountSnapshot``), against the emulator."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.protocol import StreamHealth
from tradekit.config import GuardSettings
from tradekit.domain import OrderRequest, OrderType, Side
from tradekit.domain.values import utcnow
from tradekit.guard import ACCOUNT, TradingState, Trigger
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit_broker_alpaca import AlpacaCredentials
from tradekit_broker_alpaca.execution import AlpacaBroker

from .conftest import DELIVERY_WAIT_S, MakeBroker, wait_for_stream_delivery


def guard(tmp_path: Path, **settings: object) -> TradingGuard:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    return TradingGuard(ledger=ledger, settings=GuardSettings(**settings))  # type: ignore[arg-type]


def wait_for_stream_failure(broker: AlpacaBroker) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while (status := broker.stream_status()) is not None and status.failure is None:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the stream never reported a failure: {status}")
        time.sleep(0.01)


def test_a_listening_stream_is_healthy_and_an_update_is_heard(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    assert isinstance(broker, StreamHealth)
    first = broker.stream_heartbeat()
    assert first is not None
    assert first.connected
    assert first.failure is None
    assert first.last_heard_at is not None
    broker.submit_order(
        OrderRequest(client_order_id="hb-1", symbol="AAPL", side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal(1))
    )
    wait_for_stream_delivery(broker, emu)
    later = broker.stream_heartbeat()
    assert later is not None
    assert later.last_heard_at is not None
    assert later.last_heard_at > first.last_heard_at


def test_a_broker_without_a_stream_has_no_heartbeat(make_broker: MakeBroker) -> None:
    assert make_broker(stream=False).stream_heartbeat() is None


def test_a_stream_that_stopped_puts_the_account_in_reduce_only(tmp_path: Path, make_broker: MakeBroker) -> None:
    broker = make_broker(
        credentials=AlpacaCredentials(key_id="PKWRONG", secret_key="not-the-secret"), stream_max_auth_failures=1
    )
    wait_for_stream_failure(broker)
    heartbeat = broker.stream_heartbeat()
    assert heartbeat is not None
    assert not heartbeat.connected
    watcher = guard(tmp_path, stream_stale_after_seconds=120)
    (stale,) = watcher.observe_broker(now=utcnow(), broker=broker)
    watcher.ledger.close()
    assert (stale.scope, stale.trigger, stale.to_state) == (ACCOUNT, Trigger.STALE_STREAM, TradingState.REDUCE_ONLY)
    assert "refused the API key" in stale.reason


def test_a_healthy_stream_lifts_a_stale_stream_hold(tmp_path: Path, broker: AlpacaBroker) -> None:
    watcher = guard(tmp_path, stream_stale_after_seconds=120)
    heartbeat = broker.stream_heartbeat()
    assert heartbeat is not None
    down = type(heartbeat)(connected=False, last_heard_at=utcnow() - timedelta(minutes=5))
    assert [t.to_state for t in watcher.observe(now=utcnow(), stream=down)] == [TradingState.REDUCE_ONLY]
    (lifted,) = watcher.observe_broker(now=utcnow(), broker=broker)
    watcher.ledger.close()
    assert (lifted.trigger, lifted.to_state) == (Trigger.STALE_STREAM, TradingState.ACTIVE)


def test_the_account_blocked_at_alpaca_halts_trading_until_it_is_unblocked(
    tmp_path: Path, emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    watcher = guard(tmp_path, halt_on_account_blocked=True)
    assert watcher.observe_broker(now=utcnow(), broker=broker) == []
    emu.set_account(trading_blocked=True)
    (halted,) = watcher.observe_broker(now=utcnow(), broker=broker)
    assert (halted.trigger, halted.to_state) == (Trigger.ACCOUNT_BLOCKED, TradingState.HALTED)
    emu.set_account(trading_blocked=False, account_blocked=True)
    assert watcher.observe_broker(now=utcnow(), broker=broker) == []  # still blocked: nothing changes
    emu.set_account(account_blocked=False)
    (lifted,) = watcher.observe_broker(now=utcnow(), broker=broker)
    watcher.ledger.close()
    assert lifted.to_state is TradingState.ACTIVE
