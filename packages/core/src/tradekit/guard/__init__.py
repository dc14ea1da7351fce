"""The trading-state guard: a kill switch that really stops trading, and protections that persist.

States (``TradingState``): ACTIVE, REDUCE_ONLY (exits only: no new position, no add-on) and
HALTED (nothing but cancels; exits too unless allowed), per scope (``Scope``): the account, a
strategy, a symbol. The most restrictive state that applies wins. Enforced in one place,
the ``trading_state`` preflight rule (``tradekit.guard.rule``), and re-checked under the
account lock right before an order leaves (``tradekit.guard.control.TradingGuard.sending``).
Changed by hand (``tradekit halt / reduce-only / resume``) or by the automatic triggers
``TradingGuard.observe`` runs, persisted in the ledger, announced through ``on_trading_state``.

This package's root holds only the vocabulary, so the decision context can name it without
importing the ledger or the plugin manager.
"""

from tradekit.guard.state import (
    ACCOUNT,
    ALL_ACTIVE,
    PER_TRADER,
    ClosedTrade,
    Hold,
    Scope,
    ScopeError,
    ScopeKind,
    Standing,
    TradingState,
    TradingStates,
    Transition,
    Trigger,
    fold_transitions,
)

__all__ = [
    "ACCOUNT",
    "ALL_ACTIVE",
    "PER_TRADER",
    "ClosedTrade",
    "Hold",
    "Scope",
    "ScopeError",
    "ScopeKind",
    "Standing",
    "TradingState",
    "TradingStates",
    "Transition",
    "Trigger",
    "fold_transitions",
]
