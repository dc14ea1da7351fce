"""The pair-trading knobs, from ``[plugins.ccxt.pairs]`` (seed: the Type B scale-in rescue).

Money is in the settle currency (USDT) and quoted in TOML (``entry_notional = "1000"``);
durations are in minutes or days as the field name says; percentages are in percent.
Environment overrides arrive as strings, e.g. ``TRADEKIT_PLUGINS__CCXT__PAIRS__MAX_ENTRIES=3``.

The money limits (``entry_notional``, ``max_total_notional``, ``funding_hard_stop``) have no
default: they are the trader's decision, and a pair never trades without them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import attrs

from tradekit.config.settings import SettingsError
from tradekit.strategy.policy import StrategyScalingPolicy

_ONE = Decimal(1)
_HUNDRED = Decimal(100)


class LegFailurePolicy(StrEnum):
    """What to do when the second leg of an entry fails after the first one filled.

    ``unwind``: close the filled leg at once (reduce-only market order). ``retry_then_unwind``:
    send the failed leg again (a new order with its own client order id, after a fresh book
    check) up to ``leg_retries`` times, then unwind. Either way the outcome is recorded, and a
    leg that cannot be unwound is recorded as naked and worked on every cycle.
    """

    UNWIND = "unwind"
    RETRY_THEN_UNWIND = "retry_then_unwind"


class BookClock(StrEnum):
    """The clock a book's age (its own timestamp, ``OrderBook.as_of``) is measured against.

    ``cycle``: the ``now`` the cycle runs at — right when the runner takes it from the venues'
    clock (or a machine clock kept in step with them), as a runner reading the venue's server
    time before each cycle does; a book read later in the cycle is judged a little younger
    than it is (by the time the cycle has taken so far). ``venue``: each venue's server time,
    read right after its book (one more request per book); a venue client without
    ``server_time()`` falls back to the cycle's ``now``.
    """

    CYCLE = "cycle"
    VENUE = "venue"


def _positive(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise SettingsError(f"{attribute.name} must be a positive amount, got {value}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise SettingsError(f"{attribute.name} must not be negative, got {value}")


def _optional_pct(_inst: object, attribute: attrs.Attribute[Decimal | None], value: Decimal | None) -> None:
    if value is not None and (not value.is_finite() or not 0 < value <= _HUNDRED):
        raise SettingsError(f"{attribute.name} must be a percentage in (0, 100], got {value}")


def _pct(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not value.is_finite() or not 0 < value <= _HUNDRED:
        raise SettingsError(f"{attribute.name} must be a percentage in (0, 100], got {value}")


def _multiplier(_inst: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not value.is_finite() or value <= _ONE:
        raise SettingsError(f"{attribute.name} must be greater than 1 (each add needs a wider spread), got {value}")


def _at_least(minimum: int) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or value < minimum:
            raise SettingsError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _confidence(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not 1 <= value <= 5:
        raise SettingsError(f"{attribute.name} must be an integer from 1 to 5, got {value!r}")


@attrs.frozen(kw_only=True)
class PairTradingConfig:
    """How Type B pairs are entered, scaled into, watched and closed.

    Seed knobs: ``scale_in_enabled`` (LIVE_TRADING_SCALE_IN_ENABLED), ``max_entries``
    (…_MAX_ENTRIES, entries including the first), ``trigger_multiplier`` (…_TRIGGER_MULT: the
    k-th add needs a spread of at least the initial spread times multiplier**k),
    ``min_interval_minutes`` (…_MIN_INTERVAL_MIN), ``signal_max_age_minutes``
    (…_SIGNAL_MAX_AGE_MIN), ``max_total_notional`` (…_MAX_TOTAL_NOTIONAL, per leg, all
    entries), ``max_hold_days`` (LIVE_TRADING_MAX_HOLD_DAYS) and the funding hard-stop.
    """

    entry_notional: Decimal = attrs.field(validator=_positive)
    """Notional of one entry, per leg, in the settle currency."""
    max_total_notional: Decimal = attrs.field(validator=_positive)
    """Ceiling of the entries' notional per leg, all entries together."""
    funding_hard_stop: Decimal = attrs.field(validator=_positive)
    """Net funding paid by the pair (both legs) at which both legs are closed."""
    scale_in_enabled: bool = True
    max_entries: int = attrs.field(default=4, validator=_at_least(1))
    trigger_multiplier: Decimal = attrs.field(default=Decimal("1.5"), validator=_multiplier)
    min_interval_minutes: int = attrs.field(default=60, validator=_at_least(0))
    signal_max_age_minutes: int = attrs.field(default=15, validator=_at_least(1))
    max_hold_days: int = attrs.field(default=7, validator=_at_least(1))
    take_profit_pct: Decimal = attrs.field(default=Decimal("0.5"), validator=_pct)
    """Take-profit target in percent of the *first* entry's notional; the target stays anchored there."""
    stop_loss_pct: Decimal | None = attrs.field(default=None, validator=_optional_pct)
    """Mechanical stop on the pair's PnL in percent of its notional; ignored while scale-in is on."""
    max_slippage_bps: Decimal = attrs.field(default=Decimal(10), validator=_non_negative)
    order_book_depth: int = attrs.field(default=50, validator=_at_least(5))
    leg_failure_policy: LegFailurePolicy = LegFailurePolicy.UNWIND
    leg_retries: int = attrs.field(default=1, validator=_at_least(0))
    max_book_age_seconds: int = attrs.field(default=5, validator=_at_least(1))
    """A book stamped longer ago than this (by ``book_clock``) takes no entry or add this cycle."""
    book_clock: BookClock = BookClock.CYCLE
    entry_failure_cooldown_minutes: int = attrs.field(default=30, validator=_at_least(0))
    """After a failed entry (a paid round trip on the long leg), how long the pair key waits
    before the next entry; doubled for each further failure in a row. 0 turns the wait off."""
    entry_failure_cooldown_max_minutes: int = attrs.field(default=240, validator=_at_least(0))
    """The longest that wait grows to."""
    lost_order_grace_seconds: int = attrs.field(default=60, validator=_at_least(0))
    """How long after it was sent a leg order without a clear answer (a timeout, a crash) may
    still reach its venue: until then an order the venue does not know is waited for, never
    taken for "never placed" — its partner is not unwound nor a close sent again while it may
    still land. Venues refuse a request older than their receive window (Binance 10 s and
    Bybit 5 s as ccxt sends them), so a minute leaves a wide margin."""
    closed_event_window_minutes: int = attrs.field(default=60, validator=_at_least(1))
    """How long a skipped signal of a closed event is still retried (open events always are)."""
    min_confidence: int = attrs.field(default=1, validator=_confidence)
    strategy: str = attrs.field(default="ccxt-pair", validator=attrs.validators.min_len(1))

    def __attrs_post_init__(self) -> None:
        if self.scale_in_enabled and self.max_entries < 2:
            raise SettingsError(
                f"scale_in_enabled = true needs max_entries >= 2 (got {self.max_entries}): "
                "one entry leaves nothing to scale into"
            )
        if self.entry_failure_cooldown_max_minutes < self.entry_failure_cooldown_minutes:
            raise SettingsError(
                f"entry_failure_cooldown_max_minutes {self.entry_failure_cooldown_max_minutes} is below "
                f"entry_failure_cooldown_minutes {self.entry_failure_cooldown_minutes}: "
                "the cap must allow the first wait"
            )
        if self.max_total_notional < self.entry_notional:
            raise SettingsError(
                f"max_total_notional {self.max_total_notional} is below entry_notional {self.entry_notional}: "
                "not even the first entry would fit"
            )

    @property
    def min_interval(self) -> timedelta:
        return timedelta(minutes=self.min_interval_minutes)

    @property
    def signal_max_age(self) -> timedelta:
        return timedelta(minutes=self.signal_max_age_minutes)

    @property
    def max_hold(self) -> timedelta:
        return timedelta(days=self.max_hold_days)

    @property
    def max_book_age(self) -> timedelta:
        return timedelta(seconds=self.max_book_age_seconds)

    def entry_failure_cooldown(self, failures: int) -> timedelta:
        """How long a pair key waits after ``failures`` failed entries in a row (none: no wait)."""
        if failures <= 0 or self.entry_failure_cooldown_minutes == 0:
            return timedelta(0)
        # Doubling is capped before it is computed: a long streak never builds a huge integer.
        doublings = min(failures - 1, self.entry_failure_cooldown_max_minutes.bit_length())
        minutes = min(self.entry_failure_cooldown_minutes * 2**doublings, self.entry_failure_cooldown_max_minutes)
        return timedelta(minutes=minutes)

    @property
    def lost_order_grace(self) -> timedelta:
        return timedelta(seconds=self.lost_order_grace_seconds)

    @property
    def closed_event_window(self) -> timedelta:
        return timedelta(minutes=self.closed_event_window_minutes)

    @property
    def effective_max_entries(self) -> int:
        """Entries a pair may have: ``max_entries`` with scale-in on, one without."""
        return self.max_entries if self.scale_in_enabled else 1

    @property
    def mechanical_stop_active(self) -> bool:
        """The stop-loss applies only without scale-in; with it, funding and max hold are the rails."""
        return self.stop_loss_pct is not None and not self.scale_in_enabled

    def scaling_policy(self) -> StrategyScalingPolicy:
        """The policy every pair decision is judged with by ``tradekit.evaluate_buy``."""
        if not self.scale_in_enabled:
            return StrategyScalingPolicy(
                allow_scaling=False,
                max_entries=1,
                max_position_notional=self.max_total_notional,
                min_confidence=self.min_confidence,
                min_entry_confidence=self.min_confidence,
            )
        return StrategyScalingPolicy(
            allow_scaling=True,
            max_entries=self.max_entries,
            min_time_between_entries=self.min_interval,
            max_position_notional=self.max_total_notional,
            min_confidence=self.min_confidence,
            min_entry_confidence=self.min_confidence,
        )
