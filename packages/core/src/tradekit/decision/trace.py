"""A decision's persisted trace: compact on disk, the full record when read.

Format 2 (written since ledger schema 2) stores each check as a JSON array
``[rule, phase, outcome, detail, reason]`` instead of an object with those five keys: the
same content in about half the bytes (a million-bar replay persists ~180,000 decisions).
Format 1 (objects) is still read. ``decode_trace`` returns the format-1 mapping either way,
so ``tradekit explain --json`` prints the same document for both, and
``decision_from_trace`` rebuilds the ``BuyDecision``.

Packed (written since ledger schema 4): the format-2 document, deflated against a fixed
dictionary of typical traces (``trace_dictionary_1.jsonl``: most of a trace is the same
rule names and sentences every time) and written in base64 after the prefix ``z1:``. A
2,400-byte trace is stored in ~250-350 bytes; ``trace_text`` gives back the very same JSON, so
every reader sees what format 2 held. The dictionary file is part of the format: it is
checked against its digest when first read and must never change (a new one would be
``trace_dictionary_2.jsonl`` behind the prefix ``z2:``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import zlib
from datetime import UTC
from importlib.resources import files
from typing import Any

from tradekit.decision.verdict import BuyDecision
from tradekit.serialization import structure

TRACE_FORMAT = 2
CHECK_FIELDS = ("rule", "phase", "outcome", "detail", "reason")
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)  # a flat document of str and int


PACKED_PREFIX = "z1:"
_DICTIONARY_FILE = "trace_dictionary_1.jsonl"
_DICTIONARY_SHA256 = "151874a0e2ec416d5f989f8c46f34ef9c54a1ee710c960866b3a2244f10d65d6"
# Raw deflate (no zlib header: the prefix says what it is). Level 2: about what encoding the
# JSON costs, for ~210-280 bytes a trace; level 6 saves ~12 % more bytes for twice the time.
# (Only the writer chooses the level: any level reads back the same.)
_WBITS, _LEVEL, _MEM_LEVEL = -15, 2, 8


class TraceError(ValueError):
    """A stored trace that cannot be read (an unknown format or a malformed document)."""


@functools.cache
def _dictionary() -> bytes:
    data = files("tradekit.decision").joinpath(_DICTIONARY_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != _DICTIONARY_SHA256:
        raise TraceError(f"{_DICTIONARY_FILE} was changed: packed decision traces cannot be read or written with it")
    return data


@functools.cache
def _primed() -> Any:
    # A compressor that has read the dictionary; each trace is deflated by a copy of it,
    # which is ~2x cheaper than loading the dictionary again.
    return zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, _dictionary())


def pack_trace(text: str) -> str:
    """A trace document (JSON) as stored packed."""
    deflate = _primed().copy()
    packed = deflate.compress(text.encode()) + deflate.flush()
    return PACKED_PREFIX + base64.b64encode(packed).decode("ascii")


def trace_text(stored: str) -> str:
    """The JSON document of a stored trace, whichever way it was stored (packed is inflated)."""
    if not stored.startswith(PACKED_PREFIX):
        return stored
    try:
        inflate = zlib.decompressobj(_WBITS, zdict=_dictionary())
        raw = inflate.decompress(base64.b64decode(stored[len(PACKED_PREFIX) :], validate=True)) + inflate.flush()
        if not inflate.eof:
            raise TraceError("stored decision trace is cut short")
        return raw.decode()
    except (ValueError, zlib.error) as exc:
        raise TraceError(f"stored decision trace cannot be unpacked: {exc}") from None


def encode_trace(decision: BuyDecision) -> str:
    """The decision as persisted: ``trace_document``, packed."""
    return pack_trace(trace_document(decision))


def trace_document(decision: BuyDecision) -> str:
    """The decision's trace document (format 2): its fields, with checks as compact arrays.

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
    """The full trace document (checks as objects), from any stored format."""
    try:
        data = json.loads(trace_text(text))
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
