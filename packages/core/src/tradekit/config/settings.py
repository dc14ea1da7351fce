"""Every knob tradekit has, with the defaults the source write-ups settled on.

Percentages are in percent (``5`` is 5 %), money in the account currency, durations in
minutes or hours as the field name says. Values that a careful trader would call unsafe are
refused at load unless acknowledged in ``[safety] acknowledge`` (see ``tradekit.config.safety``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import attrs

from tradekit.domain.values import HUNDRED, ZERO, str_tuple


class SettingsError(ValueError):
    """A configuration that cannot be used; the message says which key and why."""


DEFAULT_CALENDAR = "XNYS"


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


def _at_most(maximum: int, unit: str) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: int | Decimal) -> None:
        if value > maximum:
            raise SettingsError(f"{attribute.name} must be at most {maximum:,} {unit}, got {value}")

    return check


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if value < 0:
        raise SettingsError(f"{attribute.name} must not be negative, got {value}")


# Durations are turned into timedeltas (whose range ends near 2.7 million years) and money
# is multiplied by prices: bounds far above any real use keep both from overflowing later.
_YEAR_MINUTES = 525_600
_YEAR_HOURS = 8_760
_DAY_MINUTES = 1_440
_MAX_MONEY = 10**12
# An exit window opening (or, with market-on-close escalation, closing) earlier than this
# many minutes after the open lies inside every session of every exchange calendar (the
# shortest, a half day, lasts two hours): only a later one is checked against the calendar's
# sessions, which loads the calendar.
_WINDOW_FITS_MINUTES = 60


def _known_calendar(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value == DEFAULT_CALENDAR:
        # Tested to exist; other names need exchange-calendars (and pandas) imported to check.
        return
    import exchange_calendars

    names = exchange_calendars.get_calendar_names(include_aliases=True)
    if value not in names:
        raise SettingsError(
            f"exits.{attribute.name} = {value!r} is not an exchange calendar; use an exchange-calendars "
            f"name such as XNYS, XNAS, XLON, XTKS ({len(names)} are known)"
        )
    # A name exchange-calendars lists may still be one it cannot build (XTAE, ASEX with this
    # pandas): refused here, not by every run that would trade on it.
    from tradekit.exits.calendar import trading_calendar

    try:
        trading_calendar(value)
    except ValueError as exc:
        raise SettingsError(f"exits.{attribute.name} = {value!r} cannot be used: {exc}") from None


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9.-]*)(\+[A-Za-z0-9_]+)?://")


def ledger_location_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a ledger location (a URL or a bare SQLite file path), or None."""
    text = text.strip()
    match = _URL_SCHEME.match(text)
    if match is None:
        if not text or ":" in text:
            return "neither a database URL nor a file path: use sqlite:///PATH, a plain file path, or postgresql+psycopg://user@host:5432/db"
        return None
    backend, driver = match.group(1).lower(), (match.group(2) or "")[1:].lower()
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return None
    if backend == "postgresql" and driver in ("", "psycopg"):
        return None
    return "not a supported ledger URL: use sqlite:///PATH (or a plain file path) or postgresql+psycopg://user@host:5432/db"


def _ledger_location(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    problem = ledger_location_problem(value)
    if problem is not None:
        raise SettingsError(f"ledger.{attribute.name} = {value!r} is {problem}")


def _confidence(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= 5:
        raise SettingsError(f"{attribute.name} must be from 1 to 5, got {value}")


@attrs.frozen(kw_only=True)
class ScaleInSettings:
    """Account-wide rules for adding to positions (seed: the Alpaca scale-in system)."""

    enabled: bool = True
    max_entries_per_symbol: int = attrs.field(default=4, validator=_at_least(1))
    min_time_between_entries_minutes: int = attrs.field(
        default=1440, validator=[_at_least(0), _at_most(_YEAR_MINUTES, "minutes (a year)")]
    )
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
    min_order_notional: Decimal = attrs.field(
        default=Decimal(10), validator=[_non_negative, _at_most(_MAX_MONEY, "in the account currency")]
    )
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


class SignalAgeUnit(StrEnum):
    """What a signal's age is measured in."""

    SESSIONS = "sessions"
    """Trading sessions of the exchange calendar: right for daily strategies (the default)."""
    HOURS = "hours"
    """Wall-clock hours: for markets that never close, or signals that must act within hours."""


@attrs.frozen(kw_only=True)
class FreshnessSettings:
    """How old a signal may be and how far the price may have moved since (seed: scanner).

    By default a signal's age is the number of trading sessions (``[exits] calendar``) that
    opened since it was made: with ``max_signal_age_sessions = 1`` a signal from Friday's
    close is acted on at Monday's open (Tuesday's after a Monday holiday) and is stale from
    the session after. ``signal_age_unit = "hours"`` uses ``max_signal_age_hours`` instead.
    """

    signal_age_unit: SignalAgeUnit = SignalAgeUnit.SESSIONS
    max_signal_age_sessions: int = attrs.field(default=1, validator=[_at_least(1), _at_most(366, "sessions")])
    max_signal_age_hours: Decimal = attrs.field(
        default=Decimal(24), validator=[_non_negative, _at_most(_YEAR_HOURS, "hours (a year)")]
    )
    max_gap_pct: Decimal = attrs.field(default=Decimal(2), validator=_pct)

    @property
    def max_signal_age(self) -> timedelta:
        return timedelta(seconds=float(self.max_signal_age_hours * 3600))


@attrs.frozen(kw_only=True)
class OrderGuardSettings:
    """Counters that limit how often orders go out (derived from the ledger, restart-proof),
    and how long an order the broker does not know is waited for before it counts as lost."""

    daily_order_limit: int = attrs.field(default=10, validator=_at_least(1))
    order_cooldown_minutes: int = attrs.field(
        default=1440, validator=[_at_least(0), _at_most(_YEAR_MINUTES, "minutes (a year)")]
    )
    one_signal_per_symbol_per_day: bool = True
    # An order sent without a clear answer and then not found at the broker is only given up
    # on (not found: an exit may then be sent again) once it is this old: a request still on
    # its way must not be taken for lost.
    lost_order_grace_seconds: int = attrs.field(
        default=120, validator=[_at_least(0), _at_most(86_400, "seconds (a day)")]
    )

    @property
    def order_cooldown(self) -> timedelta:
        return timedelta(minutes=self.order_cooldown_minutes)


@attrs.frozen(kw_only=True)
class ReconciliationSettings:
    backfill_enabled: bool = True
    mark_unknown_closed: bool = True
    # Orders given up on as not found are looked up again at each startup for this many days:
    # one that reached the broker late gets its real status and fills.
    recheck_not_found_days: int = attrs.field(default=7, validator=[_at_least(0), _at_most(366, "days (a year)")])


class MissedWindow(StrEnum):
    """What a planned exit does when its execution window closes unexecuted."""

    NEXT_WINDOW = "next_window"
    MARKET_AT_CLOSE = "market_at_close"
    EXPIRE = "expire"


@attrs.frozen(kw_only=True)
class ExitSettings:
    """Two-phase exits: decide after the close, execute in a window after the next open."""

    two_phase_enabled: bool = True
    window_start_minutes: int = attrs.field(
        default=5, validator=[_at_least(0), _at_most(_DAY_MINUTES, "minutes (a day)")]
    )
    window_end_minutes: int = attrs.field(
        default=30, validator=[_at_least(1), _at_most(_DAY_MINUTES, "minutes (a day)")]
    )
    calendar: str = attrs.field(default=DEFAULT_CALENDAR, validator=_known_calendar)
    # What becomes of a planned exit whose window closes unexecuted: "next_window" (tried again
    # in the next session's window, as often as it takes), "market_at_close" (a market-on-close
    # order that session), or "expire" (given up on, reported).
    on_missed_window: MissedWindow = MissedWindow.NEXT_WINDOW
    # Orders sent for one exit within one window before it waits for the window to close.
    max_attempts_per_window: int = attrs.field(default=3, validator=[_at_least(1), _at_most(100, "attempts")])

    def __attrs_post_init__(self) -> None:
        if self.window_end_minutes <= self.window_start_minutes:
            raise SettingsError(
                f"exits.window_end_minutes ({self.window_end_minutes}) must be after "
                f"window_start_minutes ({self.window_start_minutes})"
            )
        on_close = self.on_missed_window is MissedWindow.MARKET_AT_CLOSE
        if self.window_start_minutes >= _WINDOW_FITS_MINUTES or (
            on_close and self.window_end_minutes >= _WINDOW_FITS_MINUTES
        ):
            self._check_window_fits_the_sessions(on_close)

    def minutes_from_window_end_to_close(self) -> float | None:
        """Minutes from the window's end to the close of the calendar's longest (regular)
        session, or None when the window ends within its first hour (no calendar is loaded)."""
        if self.window_end_minutes < _WINDOW_FITS_MINUTES:
            return None
        from tradekit.exits.calendar import trading_calendar

        longest = trading_calendar(self.calendar).longest_session()
        return (longest - timedelta(minutes=self.window_end_minutes)) / timedelta(minutes=1)

    def _check_window_fits_the_sessions(self, on_close: bool) -> None:
        from tradekit.exits.calendar import trading_calendar

        longest = trading_calendar(self.calendar).longest_session()
        minutes = f"{longest / timedelta(minutes=1):g}"
        if timedelta(minutes=self.window_start_minutes) >= longest:
            raise SettingsError(
                f"exits.window_start_minutes ({self.window_start_minutes}) opens the exit window at or after the "
                f"close of every {self.calendar} session (the longest lasts {minutes} minutes): no planned exit "
                f"would ever be sent, nor any queued buy judged; start the window before minute {minutes}"
            )
        if on_close and timedelta(minutes=self.window_end_minutes) >= longest:
            raise SettingsError(
                f"exits.window_end_minutes ({self.window_end_minutes}) keeps the exit window open until the close "
                f"of every {self.calendar} session (the longest lasts {minutes} minutes), so "
                'exits.on_missed_window = "market_at_close" could never send its market-on-close order (a missed '
                "exit would wait for the next session's window instead); end the window well before the close "
                "(brokers take market-on-close orders until some minutes before it: 15:50 New York at NYSE and Alpaca)"
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


class NotificationEvent(StrEnum):
    """What a notification is sent for (``[notifications] events``)."""

    ENTRY = "entry"
    """A first entry filled (every fill of it: a partial fill is one message)."""
    SCALE_IN = "scale_in"
    """An add-on filled."""
    EXIT = "exit"
    """A sell filled."""
    GUARD = "guard"
    """A trading-state transition: a halt, a reduce-only, a resume, a cooldown ending."""
    RECONCILIATION = "reconciliation"
    """A reconciliation found the ledger and the broker apart (anything but in sync)."""
    ERROR = "error"
    """An error tradekit or a plugin logged (warnings too with ``error_level = "warning"``)."""


class ErrorLevel(StrEnum):
    """The least severe log record sent as an ``error`` notification."""

    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


def _notification_urls(_inst: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    # The URLs carry credentials: they are registered as secrets before anything could
    # print them, and an error names a URL by its position and scheme only.
    if not value:
        return
    from tradekit.notify.targets import target_problem

    for index, url in enumerate(value):
        problem = target_problem(url)
        if problem is not None:
            raise SettingsError(f"notifications.{attribute.name}[{index}] {problem}")


def _events(items: Iterable[NotificationEvent]) -> tuple[NotificationEvent, ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class NotificationSettings:
    """Messages on fills, exits, guard transitions, reconciliation findings and errors
    (``tradekit.notify``), delivered through apprise off the trading path."""

    # Apprise URLs (tgram://..., slack://..., mailto://..., json://host/path): secrets.
    urls: tuple[str, ...] = attrs.field(default=(), converter=str_tuple, validator=_notification_urls)
    events: tuple[NotificationEvent, ...] = attrs.field(default=tuple(NotificationEvent), converter=_events)
    error_level: ErrorLevel = ErrorLevel.ERROR
    # The same error (logger and message) is sent once per this many minutes.
    repeat_error_after_minutes: int = attrs.field(
        default=60, validator=[_at_least(0), _at_most(_YEAR_MINUTES, "minutes (a year)")]
    )
    # Messages waiting for delivery; when a slow endpoint lets it fill, new ones are dropped (and counted).
    queue_size: int = attrs.field(default=1000, validator=[_at_least(1), _at_most(100_000, "messages")])
    # How long a command that ends (tradekit halt, a trader stopping) waits for its messages to go out.
    shutdown_wait_seconds: int = attrs.field(default=10, validator=[_at_least(0), _at_most(600, "seconds")])


@attrs.frozen(kw_only=True)
class LedgerSettings:
    """Where the ledger lives: a SQLite file (default) or a PostgreSQL URL."""

    url: str = attrs.field(default="sqlite:///tradekit-ledger.db", validator=_ledger_location)


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
    notifications: NotificationSettings = NotificationSettings()
    ledger: LedgerSettings = LedgerSettings()
    safety: SafetySettings = SafetySettings()
    symbols: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict)
