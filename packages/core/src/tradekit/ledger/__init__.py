"""The ledger: tradekit's append-only memory (SQLite by default, PostgreSQL to share)."""

from tradekit.ledger.errors import (
    DuplicateIntentError,
    InvalidExitTransition,
    LedgerConnectionError,
    LedgerCorruptError,
    LedgerError,
    LedgerInUseError,
    LedgerNotFoundError,
    LedgerVersionError,
    LedgerWriteError,
)
from tradekit.ledger.records import (
    IntentPurpose,
    IntentState,
    LedgerOrderStatus,
    OrderCounts,
    OrderIntent,
    StoredDecision,
    client_order_id_for,
)
from tradekit.ledger.store import Ledger, LedgerTx, ledger_url

__all__ = [
    "DuplicateIntentError",
    "IntentPurpose",
    "IntentState",
    "InvalidExitTransition",
    "Ledger",
    "LedgerConnectionError",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerInUseError",
    "LedgerNotFoundError",
    "LedgerOrderStatus",
    "LedgerTx",
    "LedgerVersionError",
    "LedgerWriteError",
    "OrderCounts",
    "OrderIntent",
    "StoredDecision",
    "client_order_id_for",
    "ledger_url",
]
