"""What one symbol's price chart marks, as ``reporting.outputs`` reads it for the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from tradekit.ledger.records import StoredDecision
from tradekit.reporting.trades import Trade


@attrs.frozen(kw_only=True)
class SymbolMarkers:
    """One symbol's trades, the decisions behind their entries (by id), and a sample of its
    skipped and blocked buys, spread over the run (``passed_over_total`` in the ledger)."""

    trades: Sequence[Trade]
    entered: Mapping[str, StoredDecision]
    passed_over: Sequence[StoredDecision]
    passed_over_total: int
