"""Every knob tradekit has, with the defaults the source write-ups settled on.

Percentages are in percent (``5`` is 5 %), money in the account currency, durations in
minutes or hours as the field name says. Values that a careful trader would call unsafe are
refused at load unless acknowledged in ``[safety] acknowledge`` (see ``tradekit.config.safety``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs

from tradekit.domain.values import HUNDRED, ZERO, str_tuple


class SettingsError(ValueError):
    """A configuration that cannot be used; the message says which key and why."""


def _pct(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not ZERO < value <= HUNDRED:
        raise SettingsError(f"{attribute.name} must be a percentage in (0, 100], got {value}")


def _non_negative_pct(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not ZERO <= value < HUNDRED:
        raise SettingsError(f"{attribute.name} must be a percentage in [0, 100), got {value}")


def _at_least(minimum: int) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < minimum:
            raise SettingsError(f"{attribute.name} must be >= {minimum}, got {value}")

    return check


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if value < 0:
        raise SettingsError(f"{attribute.name} must not be negative, got {value}")


def _confidence(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= 5:
        raise SettingsError(f"{attribute.name} must be from 1 to 5, got {value}")


@attrs.frozen(kw_only=True)
class ScaleInSettings:
    """Account-wide rules for adding to positions (seed: the Alpaca scale-in system)."""

    enabled: bool = True
    max_entries_per_symbol: int = attrs.field(default=4, validator=_at_least(1))
    min_time_between_entries_minutes: int = attrs.field(default=1440, validator=_at_least(0))
    min_add_pct_above_last_entry: Decimal = attrs.field(default=ZERO, validator=_non_negative_pct)
    add_on_confidence_threshold: int = attrs.field(default=5, validator=_confidence)

    @property
    def min_time_between_entries(self) -> timedelta:
        return timedelta(minutes=self.min_time_between_entries_minutes)


@attrs.frozen(kw_only=True)
class TierSettings:
    """One allocation tier: its share of the account and the symbols in it."""

    allocation_pct: Decimal = attrs.field(validator=_pct)
    symbols: tuple[str, ...] = attrs.field(converter=str_tuple)
    cap_pct: Decimal | None = None

    @property
    def effective_cap_pct(self) -> Decimal:
        """The tier's ceiling: its cap, or its allocation when no separate cap is set."""
        return self.cap_pct if self.cap_pct is not None else self.allocation_pct


@attrs.frozen(kw_only=True)
class AllocationSettings:
    """Position sizing and the caps that bound every order."""

    max_allocation_per_symbol_pct: Decimal = attrs.field(default=Decimal(5), validator=_pct)
    max_position_pct_of_account: Decimal = attrs.field(default=Decimal(25), validator=_pct)
    position_size_pct: Decimal = attrs.field(default=Decimal(2), validator=_pct)
    min_order_notional: Decimal = attrs.field(default=Decimal(10), validator=_non_negative)
    fractional_shares: bool = True
    tiered: bool = False
    tiers: dict[str, TierSettings] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        total = sum((t.allocation_pct for t in self.tiers.values()), ZERO)
        if self.tiers and total > HUNDRED:
            raise SettingsError(f"allocation.tiers allocate {total}% in total, more than 100%")
        seen: dict[str, str] = {}
        for tier_name, tier in self.tiers.items():
            if tier.cap_pct is not None and not ZERO < tier.cap_pct <= HUNDRED:
                raise SettingsError(f"allocation.tiers.{tier_name}.cap_pct must be in (0, 100]")
            for symbol in tier.symbols:
                if symbol in seen:
                    raise SettingsError(f"symbol {symbol} is in two tiers: {seen[symbol]} and {tier_name}")
                seen[symbol] = tier_name
        if self.tiered and not self.tiers:
            raise SettingsError("allocation.tiered = true needs at least one [allocation.tiers.NAME] table")

    def tier_of(self, symbol: str) -> str | None:
        for name, tier in self.tiers.items():
            if symbol in tier.symbols:
                return name
        return None


@attrs.frozen(kw_only=True)
class FreshnessSettings:
    """How old a signal may be and how far the price may have moved since (seed: scanner)."""

    max_signal_age_hours: Decimal = attrs.field(default=Decimal(24), validator=_non_negative)
    max_gap_pct: Decimal = attrs.field(default=Decimal(2), validator=_pct)

    @property
    def max_signal_age(self) -> timedelta:
        return timedelta(seconds=float(self.max_signal_age_hours * 3600))


@attrs.frozen(kw_only=True)
class OrderGuardSettings:
    """Counters that limit how often orders go out (derived from the ledger, restart-proof)."""

    daily_order_limit: int = attrs.field(default=10, validator=_at_least(1))
    order_cooldown_minutes: int = attrs.field(default=1440, validator=_at_least(0))
    one_signal_per_symbol_per_day: bool = True

    @property
    def order_cooldown(self) -> timedelta:
        return timedelta(minutes=self.order_cooldown_minutes)


@attrs.frozen(kw_only=True)
class ReconciliationSettings:
    backfill_enabled: bool = True
    mark_unknown_closed: bool = True


@attrs.frozen(kw_only=True)
class ExitSettings:
    """Two-phase exits: decide after the close, execute in a window after the next open."""

    two_phase_enabled: bool = True
    window_start_minutes: int = attrs.field(default=5, validator=_at_least(0))
    window_end_minutes: int = attrs.field(default=30, validator=_at_least(1))
    calendar: str = "XNYS"

    def __attrs_post_init__(self) -> None:
        if self.window_end_minutes <= self.window_start_minutes:
            raise SettingsError(
                f"exits.window_end_minutes ({self.window_end_minutes}) must be after "
                f"window_start_minutes ({self.window_start_minutes})"
            )


@attrs.frozen(kw_only=True)
class ScannerSettings:
    enabled: bool = False
    candidates_file: str = "candidates.json"
    top_n: int = attrs.field(default=10, validator=_at_least(1))
    baseline_symbols: tuple[str, ...] = attrs.field(default=("SPY", "QQQ"), converter=str_tuple)


def _optional_pct(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is not None:
        _pct(_inst, attribute, value)


def _optional_positive(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal | int | None) -> None:
    if value is not None and value <= 0:
        raise SettingsError(f"{attribute.name} must be greater than zero (or left out to switch it off), got {value}")


@attrs.frozen(kw_only=True)
class GuardSettings:
    """The trading-state guard's automatic triggers (``tradekit.guard``); each is off unless set.

    The states and the manual commands (``tradekit halt``, ``reduce-only``, ``resume``) need
    no setting. A trigger that needs a human ``resume`` says so in the guide.
    """

    # HALTED once equity (unrealised P&L and fees included) is this far below its high.
    max_drawdown_pct: Decimal | None = attrs.field(default=None, validator=_optional_pct)
    # HALTED until the next session (and a resume) once the session lost this much.
    daily_loss_limit_pct: Decimal | None = attrs.field(default=None, validator=_optional_pct)
    daily_loss_limit: Decimal | None = attrs.field(default=None, validator=_optional_positive)
    # REDUCE_ONLY for a cooldown after this many losing exits in a row.
    losing_streak_exits: int | None = attrs.field(default=None, validator=_optional_positive)
    losing_streak_cooldown_minutes: int = attrs.field(default=1440, validator=_at_least(1))
    # REDUCE_ONLY for the symbol this long after any exit of it.
    exit_cooldown_minutes: int | None = attrs.field(default=None, validator=_optional_positive)
    # REDUCE_ONLY for a symbol reconciliation could not reconcile.
    reduce_only_on_unreconciled: bool = False
    # REDUCE_ONLY for the account when the trade-update stream was last heard this long ago.
    stream_stale_after_seconds: int | None = attrs.field(default=None, validator=_optional_positive)
    # HALTED while the broker reports the account (or its trading) blocked.
    halt_on_account_blocked: bool = False
    # Let exits out while HALTED (every halt; `tradekit halt --allow-exits` does it for one).
    allow_exits_when_halted: bool = False

    @property
    def losing_streak_cooldown(self) -> timedelta:
        return timedelta(minutes=self.losing_streak_cooldown_minutes)


@attrs.frozen(kw_only=True)
class LedgerSettings:
    """Where the ledger lives: a SQLite file (default) or a PostgreSQL URL."""

    url: str = "sqlite:///tradekit-ledger.db"


@attrs.frozen(kw_only=True)
class SafetySettings:
    """Dotted keys whose unsafe values the user has knowingly accepted."""

    acknowledge: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)


@attrs.frozen(kw_only=True)
class Settings:
    """The whole configuration. Build it with ``tradekit.config.load_settings``."""

    scale_in: ScaleInSettings = ScaleInSettings()
    allocation: AllocationSettings = AllocationSettings()
    freshness: FreshnessSettings = FreshnessSettings()
    orders: OrderGuardSettings = OrderGuardSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()
    exits: ExitSettings = ExitSettings()
    scanner: ScannerSettings = ScannerSettings()
    guard: GuardSettings = GuardSettings()
    ledger: LedgerSettings = LedgerSettings()
    safety: SafetySettings = SafetySettings()
    symbols: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict)
