"""Builders for realistic decision contexts, with every default written out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradekit.decision.context import (
    AccountLimits,
    MarketSnapshot,
    OrderCounters,
    PendingOrder,
    ScalingContext,
    TierState,
)
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.positions import BrokerPosition, EntryOrigin, Position, PositionEntry
from tradekit.domain.signals import Side, Signal
from tradekit.guard.state import ALL_ACTIVE, TradingStates
from tradekit.strategy.policy import DEFAULT_SCALING_POLICY, StrategyScalingPolicy

DEFAULT_NOW = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
_UNSET = object()


def make_position(
    symbol: str = "KO",
    *,
    strategy: str | None = "test-strategy",
    entries: Sequence[tuple[timedelta, Decimal, Decimal]] = ((timedelta(days=2), Decimal(58), Decimal(10)),),
    now: datetime = DEFAULT_NOW,
    backfilled: bool = False,
) -> Position:
    """Build an open position; each entry is (how long ago, price, qty)."""
    origin = EntryOrigin.BACKFILL if backfilled else EntryOrigin.FILL
    return Position(
        symbol=symbol,
        strategy=strategy,
        entries=[PositionEntry(time=now - ago, price=price, qty=qty, origin=origin) for ago, price, qty in entries],
    )


def make_context(
    *,
    symbol: str = "KO",
    strategy: str = "test-strategy",
    policy: StrategyScalingPolicy = DEFAULT_SCALING_POLICY,
    limits: AccountLimits | None = None,
    confidence: int = 5,
    side: Side = Side.BUY,
    price: Decimal | None = Decimal(60),
    reference_price: Decimal | None = None,
    signal_age: timedelta = timedelta(0),
    now: datetime = DEFAULT_NOW,
    equity: Decimal = Decimal(100_000),
    buying_power: Decimal = Decimal(50_000),
    position: Position | None = None,
    broker_qty: Decimal | object | None = _UNSET,
    broker_checked: bool = True,
    pending_orders: Iterable[PendingOrder] = (),
    unreconciled: Iterable[str] = (),
    counters: OrderCounters | None = None,
    tier: TierState | None = None,
    exit_pending: bool = False,
    volatility_pct: Decimal | None = None,
    bars_since_last_entry: int | None = None,
    trading_blocked: bool = False,
    trading_states: TradingStates = ALL_ACTIVE,
) -> ScalingContext:
    """Build a ScalingContext. By default the broker agrees with ``position``."""
    if broker_qty is _UNSET:
        broker_qty = position.qty if position is not None else None
    broker_position = None
    if isinstance(broker_qty, Decimal):
        avg = position.average_price if position is not None else (price or Decimal(1))
        broker_position = BrokerPosition(
            symbol=symbol, qty=broker_qty, avg_entry_price=avg, as_of=now, current_price=price
        )
    signal = Signal(
        symbol=symbol,
        side=side,
        confidence=confidence,
        generated_at=now - signal_age,
        reference_price=reference_price if reference_price is not None else price,
        source=strategy,
    )
    return ScalingContext(
        signal=signal,
        strategy=strategy,
        policy=policy,
        limits=limits if limits is not None else AccountLimits(),
        account=AccountSnapshot(
            equity=equity,
            cash=buying_power,
            buying_power=buying_power,
            as_of=now,
            trading_blocked=trading_blocked,
        ),
        market=MarketSnapshot(
            price=price,
            as_of=now,
            volatility_pct=volatility_pct,
            bars_since_last_entry=bars_since_last_entry,
        ),
        now=now,
        position=position,
        broker_position=broker_position,
        broker_checked=broker_checked,
        pending_orders=tuple(pending_orders),
        unreconciled_symbols=frozenset(unreconciled),
        counters=counters if counters is not None else OrderCounters(),
        tier=tier,
        exit_pending=exit_pending,
        trading_states=trading_states,
    )
