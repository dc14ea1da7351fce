"""A decision's persisted trace: compact on disk, the full record when read.

Format 2 (written since ledger schema 2) stores each check as a JSON array
``[rule, phase, outcome, detail, reason]`` instead of an object with those five keys: the
same content in about half the bytes (a million-bar replay persists ~180,000 decisions).
Format 1 (objects) is still read. ``decode_trace`` returns the format-1 mapping either way,
so ``tradekit explain --json`` prints the same document for both, and
``decision_from_trace`` rebuilds the ``BuyDecision``.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from tradekit.decision.verdict import BuyDecision
from tradekit.serialization import structure

TRACE_FORMAT = 2
CHECK_FIELDS = ("rule", "phase", "outcome", "detail", "reason")
_ENCODER = json.JSONEncoder(separators=(",", ":"))


class TraceError(ValueError):
    """A stored trace that cannot be read (an unknown format or a malformed document)."""


def encode_trace(decision: BuyDecision) -> str:
    """The decision as persisted: its fields, with checks as compact arrays.

    Written out field by field rather than through the cattrs converter (a replay persists
    one per buy signal, and this is ~3x faster); the document is the converter's, key for
    key and value for value, which a test holds it to.
    """
    price = decision.price
    data = {
        "decision_id": decision.decision_id,
        "symbol": decision.symbol,
        "strategy": decision.strategy,
        "signal_id": decision.signal_id,
        "action": decision.action._value_,
        "checks": [
            [c.rule, c.phase._value_, c.outcome._value_, c.detail, None if c.reason is None else c.reason._value_]
            for c in decision.checks
        ],
        "entry_count": decision.entry_count,
        "max_entries": decision.max_entries,
        "position_pct": str(decision.position_pct),
        "allocation_cap_pct": str(decision.allocation_cap_pct),
        "risk_amount": str(decision.risk_amount),
        "price": None if price is None else str(price),
        "confidence": decision.confidence,
        "evaluated_at": decision.evaluated_at.astimezone(UTC).isoformat(),
        "trace_format": TRACE_FORMAT,
    }
    return _ENCODER.encode(data)


def decode_trace(text: str) -> dict[str, Any]:
    """The full trace document (checks as objects), from either stored format."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"stored decision trace is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TraceError("stored decision trace is not a JSON object")
    version = data.pop("trace_format", 1)
    if version == 1:
        return data
    if version != TRACE_FORMAT:
        raise TraceError(f"decision trace format {version!r} is newer than this tradekit reads ({TRACE_FORMAT})")
    checks = data.get("checks")
    if not isinstance(checks, list) or not all(isinstance(c, list) and len(c) == len(CHECK_FIELDS) for c in checks):
        raise TraceError("decision trace format 2 needs checks as [rule, phase, outcome, detail, reason] arrays")
    data["checks"] = [dict(zip(CHECK_FIELDS, c, strict=True)) for c in checks]
    return data


def decision_from_trace(text: str) -> BuyDecision:
    """Rebuild the ``BuyDecision`` a stored trace records."""
    return structure(decode_trace(text), BuyDecision, what="decision trace")
