"""The vocabulary of buy decisions: actions, check outcomes, phases and reason codes."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class BuyAction(StrEnum):
    """What to do with a buy signal.

    BLOCK is a hard safety rule and is never waived; SKIP means "not now" and may pass later.
    """

    ENTER_NEW = "enter_new"
    SCALE_IN = "scale_in"
    SKIP = "skip"
    BLOCK = "block"


class CheckOutcome(StrEnum):
    PASS = "pass"
    NOT_APPLICABLE = "not_applicable"
    SKIP = "skip"
    BLOCK = "block"


class RulePhase(IntEnum):
    """The order rules are reported in; a trace always reads preflight first."""

    PREFLIGHT = 0
    FRESHNESS = 1
    HARD_SAFETY = 2
    DIRECTIONALITY = 3
    QUALIFICATION = 4
    FEASIBILITY = 5
    LIMITS = 6  # order-size limits applied after sizing, by the execution pipeline


class ReasonCode(StrEnum):
    """Why a check passed over, skipped or blocked a buy."""

    # preflight
    UNRECONCILED_BROKER_POSITION = "unreconciled_broker_position"
    TRADING_BLOCKED = "trading_blocked"
    # the trading-state guard (tradekit.guard): the account, strategy or symbol is restricted
    TRADING_HALTED = "trading_halted"
    REDUCE_ONLY = "reduce_only"
    # freshness
    STALE_SIGNAL = "stale_signal"
    OVERNIGHT_GAP = "overnight_gap"
    MARKET_DATA_UNAVAILABLE = "market_data_unavailable"
    # hard safety
    SCALE_IN_DISABLED = "scale_in_disabled"
    SCALING_NOT_PERMITTED = "scaling_not_permitted"
    POSITION_OWNED_BY_OTHER_STRATEGY = "position_owned_by_other_strategy"
    MAX_ENTRIES_REACHED = "max_entries_reached"
    MAX_POSITION_SIZE = "max_position_size"
    ALLOCATION_CAP = "allocation_cap"
    PENDING_ORDER_CONFLICT = "pending_order_conflict"
    BROKER_LEDGER_MISMATCH = "broker_ledger_mismatch"
    RISK_BUDGET_EXCEEDED = "risk_budget_exceeded"
    DAILY_ORDER_LIMIT = "daily_order_limit"
    ORDER_COOLDOWN = "order_cooldown"
    SIGNAL_ALREADY_ACTED_TODAY = "signal_already_acted_today"
    # directionality
    DIRECTION_CONFLICT = "direction_conflict"
    EXIT_PENDING = "exit_pending"
    # strategy qualification
    ENTRY_COOLDOWN = "entry_cooldown"
    MIN_BARS_NOT_MET = "min_bars_not_met"
    CONFIDENCE_TOO_LOW = "confidence_too_low"
    PRICE_STRUCTURE = "price_structure"
    VOLATILITY_REGIME = "volatility_regime"
    # execution feasibility
    EXECUTION_INFEASIBLE = "execution_infeasible"
    INSUFFICIENT_BUYING_POWER = "insufficient_buying_power"
    TIER_CAPACITY = "tier_capacity"
    # order-size limits (after sizing)
    MAX_POSITION_PCT_OF_ACCOUNT = "max_position_pct_of_account"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    ZERO_QUANTITY = "zero_quantity"
    # a plugin's rule raised: refuse rather than buy without it
    RULE_ERROR = "rule_error"
