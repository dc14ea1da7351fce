"""What a reconciliation found and did: a typed report, one finding per symbol action."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import attrs

from tradekit.domain.values import optional_finite, optional_positive, str_frozenset, to_utc, utc


class ReconcileAction(StrEnum):
    BACKFILLED = "backfilled"  # broker-only position adopted into the ledger
    EXTERNAL_CLOSE = "external_close"  # ledger position the broker no longer holds, closed
    QUANTITY_MISMATCH = "quantity_mismatch"  # both hold it, in different sizes
    UNRECONCILED = "unreconciled"  # could not be reconciled: buys on it are blocked
    DEFERRED = "deferred"  # an order for it is unresolved: nothing adopted or closed until it is
    REDERIVED = "rederived"  # a fill the ledger could not apply: the ledger now follows the broker
    IN_SYNC = "in_sync"


# Findings that leave every buy on their symbol BLOCKed until a later reconciliation.
BLOCKING_ACTIONS = frozenset(
    {ReconcileAction.UNRECONCILED, ReconcileAction.QUANTITY_MISMATCH, ReconcileAction.DEFERRED}
)


@attrs.frozen(kw_only=True)
class ReconcileFinding:
    """One symbol's outcome, with the figures the audit trail records."""

    symbol: str
    action: ReconcileAction
    reason: str
    broker_qty: Decimal | None = attrs.field(default=None, validator=optional_finite)
    ledger_qty: Decimal | None = attrs.field(default=None, validator=optional_finite)
    price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    source: str = "tradekit"


def _findings(items: Iterable[ReconcileFinding]) -> tuple[ReconcileFinding, ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class ReconcileReport:
    """The result of comparing the ledger with the broker's truth.

    ``broker_ok`` is False when the broker could not be read; then nothing was closed or
    backfilled, ``error`` says why, and every ledger and broker symbol stays blocked.
    """

    started_at: datetime = attrs.field(converter=to_utc, validator=utc)
    broker: str
    broker_ok: bool
    findings: tuple[ReconcileFinding, ...] = attrs.field(default=(), converter=_findings)
    error: str | None = None
    blocked_symbols: frozenset[str] = attrs.field(default=frozenset(), converter=str_frozenset)

    def _of(self, action: ReconcileAction) -> tuple[ReconcileFinding, ...]:
        return tuple(f for f in self.findings if f.action is action)

    @property
    def backfilled(self) -> tuple[ReconcileFinding, ...]:
        return self._of(ReconcileAction.BACKFILLED)

    @property
    def externally_closed(self) -> tuple[ReconcileFinding, ...]:
        return self._of(ReconcileAction.EXTERNAL_CLOSE)

    @property
    def quantity_mismatches(self) -> tuple[ReconcileFinding, ...]:
        return self._of(ReconcileAction.QUANTITY_MISMATCH)

    @property
    def unreconciled_broker_symbols(self) -> frozenset[str]:
        """Symbols every buy must be BLOCKed on until a later reconciliation clears them."""
        flagged = {f.symbol for f in self.findings if f.action in BLOCKING_ACTIONS}
        return frozenset(flagged) | self.blocked_symbols

    @property
    def deferred(self) -> tuple[ReconcileFinding, ...]:
        return self._of(ReconcileAction.DEFERRED)

    @property
    def changed_ledger(self) -> bool:
        return bool(self.backfilled or self.externally_closed or self._of(ReconcileAction.REDERIVED))
