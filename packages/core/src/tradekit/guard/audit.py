"""Which transition made the guard block a decision: for ``tradekit explain``."""

from __future__ import annotations

from tradekit.decision.reasons import ReasonCode
from tradekit.guard.state import TradingStates, Transition, fold_transitions
from tradekit.ledger.records import StoredDecision
from tradekit.ledger.store import LedgerTx

GUARD_REASONS = frozenset({ReasonCode.TRADING_HALTED.value, ReasonCode.REDUCE_ONLY.value})


def blocking_transition(tx: LedgerTx, decision: StoredDecision) -> Transition | None:
    """The transition that placed the hold which blocked ``decision`` (None: not the guard's).

    The holds standing when the decision was made are rebuilt from the transitions up to
    that moment, and the one the rule names (the most restrictive that applied) is found.
    """
    if not GUARD_REASONS & set(decision.reasons):
        return None
    placed = fold_transitions(tx.trading_state_transitions(until=decision.evaluated_at))
    states = TradingStates(hold for t in placed.values() if (hold := t.hold()) is not None)
    found = states.applying(strategy=decision.strategy, symbol=decision.symbol, at=decision.evaluated_at)
    return placed[(found[0].scope, found[0].trigger)] if found else None
