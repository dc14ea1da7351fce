"""Builders the trading-state guard's tests share: a guard on a real ledger, round trips in it.
Not a test module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradekit.broker.protocol import StreamHeartbeat
from tradekit.config import GuardSettings
from tradekit.domain import AccountSnapshot, Fill, Side
from tradekit.exits.calendar import TradingCalendar
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit.ledger import schema as t
from tradekit.ledger.records import IntentPurpose, OrderIntent
from tradekit.plugins import Plugins

# Monday 2024-03-04 (XNYS): opens 14:30 UTC, closes 21:00 UTC.
MONDAY_OPEN = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
MONDAY_CLOSE = datetime(2024, 3, 4, 21, 0, tzinfo=UTC)
TUESDAY_OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
TUESDAY_CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
WEDNESDAY_OPEN = datetime(2024, 3, 6, 14, 30, tzinfo=UTC)


def make_guard(ledger: Ledger, *, plugins: Plugins | None = None, **settings: object) -> TradingGuard:
    return TradingGuard(
        ledger=ledger,
        settings=GuardSettings(**settings),  # type: ignore[arg-type]
        calendar=TradingCalendar(),
        plugins=plugins,
    )


def account(
    equity: str | int, at: datetime = MONDAY_CLOSE, *, account_blocked: bool = False, trading_blocked: bool = False
) -> AccountSnapshot:
    value = Decimal(equity)
    return AccountSnapshot(
        equity=value,
        cash=value,
        buying_power=value,
        as_of=at,
        account_blocked=account_blocked,
        trading_blocked=trading_blocked,
    )


def store_unreadable_hold(ledger: Ledger, *, scope: str = "account", state: str = "halted") -> None:
    """Write a hold row this tradekit cannot read (as a newer tradekit, or a hand, could)."""
    with ledger.transaction() as tx:
        tx._conn.execute(
            t.trading_state_holds.insert().values(
                scope=scope,
                trigger="manual",
                state=state,
                since=MONDAY_OPEN,
                reason="?",
                actor="user:x",
                needs_resume=True,
                allow_exits=False,
            )
        )


def stream(connected: bool, heard: datetime | None, failure: str | None = None) -> StreamHeartbeat:
    return StreamHeartbeat(connected=connected, last_heard_at=heard, failure=failure)


def round_trip(
    ledger: Ledger,
    symbol: str,
    *,
    bought: str,
    sold: str,
    closed_at: datetime,
    qty: str = "10",
    commission: str = "0",
    strategy: str = "trend",
) -> None:
    """Record one position from entry to flat: a buy filled a day before ``closed_at``, then a sell."""
    opened_at = closed_at - timedelta(days=1)
    with ledger.transaction(lock_symbol=symbol) as tx:
        for side, price, at, purpose in (
            (Side.BUY, bought, opened_at, IntentPurpose.ENTRY),
            (Side.SELL, sold, closed_at, IntentPurpose.EXIT),
        ):
            intent = OrderIntent(
                intent_key=f"{strategy}|{symbol}|{at.isoformat()}|{side.value}",
                symbol=symbol,
                side=side,
                purpose=purpose,
                created_at=at,
                strategy=strategy,
                qty=Decimal(qty),
            )
            tx.record_intent(intent)
            tx.record_fill(
                Fill(
                    execution_id=f"x-{intent.client_order_id}",
                    client_order_id=intent.client_order_id,
                    broker_order_id=f"b-{intent.client_order_id}",
                    symbol=symbol,
                    side=side,
                    qty=Decimal(qty),
                    price=Decimal(price),
                    time=at,
                    commission=Decimal(commission),
                )
            )
