"""Everything one buy decision needs, frozen at the moment it is made."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property

import attrs

from tradekit.broker.protocol import AssetInfo
from tradekit.config.settings import Settings, SignalAgeUnit
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import OrderStatus
from tradekit.domain.positions import BrokerPosition, Position
from tradekit.domain.signals import Side, Signal
from tradekit.domain.values import (
    ZERO,
    non_negative,
    optional_non_negative,
    optional_positive,
    optional_to_utc,
    optional_utc,
    pct_of,
    to_utc,
    utc,
)
from tradekit.guard.state import ALL_ACTIVE, TradingStates
from tradekit.strategy.policy import StrategyScalingPolicy


@attrs.frozen(kw_only=True)
class AccountLimits:
    """The account-wide limits the engine enforces on top of each strategy's policy."""

    scale_in_enabled: bool = True
    max_entries_per_symbol: int = 4
    min_time_between_entries: timedelta = timedelta(minutes=1440)
    min_add_pct_above_last_entry: Decimal = ZERO
    add_on_confidence_threshold: int = 5
    max_allocation_per_symbol_pct: Decimal = Decimal(5)
    max_position_pct_of_account: Decimal = Decimal(25)
    min_order_notional: Decimal = Decimal(10)
    max_signal_age: timedelta = timedelta(hours=24)
    # Set: a signal's age is counted in sessions of ``calendar`` (daily strategies), and
    # max_signal_age is not used; None: its age is wall-clock time.
    max_signal_age_sessions: int | None = None
    calendar: str = "XNYS"
    max_gap_pct: Decimal = Decimal(2)
    daily_order_limit: int = 10
    order_cooldown: timedelta = timedelta(minutes=1440)
    one_signal_per_symbol_per_day: bool = True
    position_size_pct: Decimal = Decimal(2)
    fractional_shares: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountLimits:
        return cls(
            scale_in_enabled=settings.scale_in.enabled,
            max_entries_per_symbol=settings.scale_in.max_entries_per_symbol,
            min_time_between_entries=settings.scale_in.min_time_between_entries,
            min_add_pct_above_last_entry=settings.scale_in.min_add_pct_above_last_entry,
            add_on_confidence_threshold=settings.scale_in.add_on_confidence_threshold,
            max_allocation_per_symbol_pct=settings.allocation.max_allocation_per_symbol_pct,
            max_position_pct_of_account=settings.allocation.max_position_pct_of_account,
            min_order_notional=settings.allocation.min_order_notional,
            max_signal_age=settings.freshness.max_signal_age,
            max_signal_age_sessions=(
                settings.freshness.max_signal_age_sessions
                if settings.freshness.signal_age_unit is SignalAgeUnit.SESSIONS
                else None
            ),
            calendar=settings.exits.calendar,
            max_gap_pct=settings.freshness.max_gap_pct,
            daily_order_limit=settings.orders.daily_order_limit,
            order_cooldown=settings.orders.order_cooldown,
            one_signal_per_symbol_per_day=settings.orders.one_signal_per_symbol_per_day,
            position_size_pct=settings.allocation.position_size_pct,
            fractional_shares=settings.allocation.fractional_shares,
        )


@attrs.frozen(kw_only=True)
class MarketSnapshot:
    """The symbol's market as of the decision: price, volatility, bars since last entry."""

    price: Decimal | None = attrs.field(validator=optional_positive)
    as_of: datetime = attrs.field(converter=to_utc, validator=utc)
    volatility_pct: Decimal | None = attrs.field(default=None, validator=optional_non_negative)
    bars_since_last_entry: int | None = None
    # Extra named figures for plugin rules (e.g. a pair trade's spread and its trigger).
    features: Mapping[str, Decimal] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class PendingOrder:
    """An order for the symbol that is not yet in a terminal state."""

    client_order_id: str
    side: Side
    status: OrderStatus
    qty: Decimal | None = attrs.field(default=None, validator=optional_positive)
    notional: Decimal | None = attrs.field(default=None, validator=optional_positive)


@attrs.frozen(kw_only=True)
class OrderCounters:
    """Ledger-derived counters that guard how often orders go out."""

    orders_today: int = 0
    last_order_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    acted_on_symbol_today: bool = False


@attrs.frozen(kw_only=True)
class TierState:
    """The symbol's allocation tier: its current market exposure, its share and its ceiling."""

    tier: str
    exposure: Decimal = attrs.field(validator=non_negative)
    cap_pct: Decimal
    allocation_pct: Decimal | None = None
    symbol_count: int = 1


@attrs.frozen(kw_only=True)
class ScalingContext:
    """The immutable input of ``evaluate_buy``.

    ``position`` is the ledger's open position in the symbol (None when flat);
    ``broker_position`` is what the broker reports, and ``broker_checked`` says whether the
    broker was asked at all (it is not, by design, for a symbol that preflight blocks).
    ``trading_states`` is the trading-state guard's holds as the ledger had them.
    """

    signal: Signal
    strategy: str
    policy: StrategyScalingPolicy
    limits: AccountLimits
    account: AccountSnapshot
    market: MarketSnapshot
    now: datetime = attrs.field(converter=to_utc, validator=utc)
    position: Position | None = None
    broker_position: BrokerPosition | None = None
    broker_checked: bool = True
    pending_orders: tuple[PendingOrder, ...] = ()
    unreconciled_symbols: frozenset[str] = frozenset()
    counters: OrderCounters = OrderCounters()
    tier: TierState | None = None
    exit_pending: bool = False
    asset: AssetInfo | None = None
    trading_states: TradingStates = ALL_ACTIVE

    @property
    def symbol(self) -> str:
        return self.signal.symbol

    @cached_property
    def is_scale_in(self) -> bool:
        return self.position is not None and self.position.is_open

    @property
    def entry_count(self) -> int:
        return self.position.entry_count if self.is_scale_in and self.position else 0

    @cached_property
    def position_value(self) -> Decimal:
        """Market value of what is held now: the broker's figure when known, or what the
        broker's quantity is worth at the decision's price if that is more (the broker's mark
        may lag the price the order will fill at)."""
        if self.broker_position is not None and not self.broker_position.is_short:
            value = self.broker_position.market_value(self.market.price)
            if self.market.price is not None:
                value = max(value, self.broker_position.qty * self.market.price)
            return value
        if self.position is not None and self.position.is_open:
            return self.position.market_value(self.market.price or self.position.last_entry_price)
        return ZERO

    @cached_property
    def position_pct(self) -> Decimal:
        return pct_of(self.position_value, self.account.equity)

    @cached_property
    def allocation_cap_pct(self) -> Decimal:
        cap = self.limits.max_allocation_per_symbol_pct
        if self.policy.max_allocation_pct is not None:
            cap = min(cap, self.policy.max_allocation_pct)
        return cap

    @cached_property
    def max_entries(self) -> int:
        return min(self.policy.max_entries, self.limits.max_entries_per_symbol)

    @cached_property
    def risk_amount(self) -> Decimal:
        """Money at risk in the position: its cost times the policy's stop distance."""
        if self.policy.stop_distance_pct is None or self.position is None or not self.position.is_open:
            return ZERO
        return self.position.cost_basis * self.policy.stop_distance_pct / 100
