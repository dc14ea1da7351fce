"""A decision's persisted trace: compact on disk, the full record when read.

Format 3 (written since ledger schema 5) is format 2 without the fields its ledger row already
holds in columns (``ROW_FIELDS``: decision id, symbol, strategy, signal id, action, evaluated
at): they were written twice, and the ids do not compress. It is read with its row
(``decode_trace(text, row)``), which supplies them; the document read is the same as format 2's.

Format 2 (written by ledger schemas 2 to 4) stores each check as a JSON array
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
from collections.abc import Mapping
from decimal import Decimal
from importlib.resources import files
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from tradekit.decision.reasons import CheckOutcome
from tradekit.decision.verdict import BuyDecision, Check, one_line_text
from tradekit.serialization import structure

TRACE_FORMAT = 3
CHECK_FIELDS = ("rule", "phase", "outcome", "detail", "reason")
# What a format-3 trace leaves to its row: the decision's fields the ledger keeps in columns.
ROW_FIELDS = ("decision_id", "symbol", "strategy", "signal_id", "action", "evaluated_at")
# Every field of the document, in the order readers get them (the converter's, as format 2).
_DOCUMENT_ORDER = (
    "decision_id",
    "symbol",
    "strategy",
    "signal_id",
    "action",
    "checks",
    "entry_count",
    "max_entries",
    "position_pct",
    "allocation_cap_pct",
    "risk_amount",
    "price",
    "confidence",
    "evaluated_at",
)
# JSON string literals as ``json.dumps`` writes them (ASCII, escaped): the C encoder.
_q: Final = encode_basestring_ascii


PACKED_PREFIX = "z1:"
_DICTIONARY_FILE = "trace_dictionary_1.jsonl"
_DICTIONARY_SHA256 = "151874a0e2ec416d5f989f8c46f34ef9c54a1ee710c960866b3a2244f10d65d6"
# Raw deflate (no zlib header: the prefix says what it is). Level 2: about what encoding the
# JSON costs, for ~210-280 bytes a trace; level 6 saves ~12 % more bytes for twice the time.
# The writer looks back 16 KB (most of the dictionary) with a smaller hash: each trace copies
# the primed compressor, and that state is a quarter the size of a 32 KB one (~15 % cheaper a
# trace for ~2 % more bytes). Only the writer chooses these: a reader's 32 KB window reads
# any of them back the same.
_WBITS, _LEVEL = -15, 2
_WRITE_WBITS, _MEM_LEVEL = -14, 6


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
    return zlib.compressobj(_LEVEL, zlib.DEFLATED, _WRITE_WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, _dictionary())


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
    """The decision as persisted beside its row (``decision_row``): ``trace_document``, packed."""
    return pack_trace(trace_document(decision))


def trace_document(decision: BuyDecision) -> str:
    """The decision's trace document (format 3): what its row does not hold, checks as arrays.

    Written out by hand rather than through the cattrs converter or ``json`` (a replay
    persists one per buy signal, and this is ~3x faster than building a dict for the
    encoder); the text is the one ``json`` writes with the separators ``,`` and ``:``, byte
    for byte, and the document is the converter's less ``ROW_FIELDS``, key for key, which
    tests hold it to.
    """
    price = decision.price
    checks = ",".join([_check_json(c) for c in decision.checks])
    return (
        f'{{"checks":[{checks}],'
        f'"entry_count":{int(decision.entry_count)!r},"max_entries":{int(decision.max_entries)!r},'
        f'"position_pct":{_q(str(decision.position_pct))},'
        f'"allocation_cap_pct":{_q(str(decision.allocation_cap_pct))},'
        f'"risk_amount":{_q(str(decision.risk_amount))},'
        f'"price":{"null" if price is None else _q(str(price))},'
        f'"confidence":{int(decision.confidence)!r},'
        f'"trace_format":{TRACE_FORMAT}}}'
    )


# What the same (rule, phase, outcome, reason) always writes around its detail: a trace has
# ~30 checks, and there are as many heads as rules times their outcomes and reasons.
_HEADS: dict[tuple[str, int, str, str | None], tuple[str, str]] = {}


# Each check's text, by the check: passing checks are shared values (``verdict.passed``), so
# most of a trace's checks were written for an earlier decision. Keyed by ``id`` (hashing a
# check hashes its fields) with the check held beside its text, so an id is never reused
# while its entry stands; cleared when full.
_TEXTS: dict[int, tuple[Check, str]] = {}
_TEXTS_LIMIT = 4096


def _check_json(check: Check) -> str:
    known = _TEXTS.get(id(check))
    if known is not None and known[0] is check:
        return known[1]
    text = _check_text(check)
    if len(_TEXTS) >= _TEXTS_LIMIT:
        _TEXTS.clear()
    _TEXTS[id(check)] = (check, text)
    return text


def _check_text(check: Check) -> str:
    reason = None if check.reason is None else check.reason._value_
    key = (check.rule, check.phase._value_, check.outcome._value_, reason)
    parts = _HEADS.get(key)
    if parts is None:
        head = f"[{_q(check.rule)},{int(check.phase._value_)!r},{_q(check.outcome._value_)},"
        tail = ",null]" if reason is None else f",{_q(reason)}]"
        parts = _HEADS[key] = (head, tail)
    return parts[0] + _q(check.detail) + parts[1]


def decode_trace(text: str, row: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The full trace document (checks as objects), from any stored format.

    ``row`` gives the ``ROW_FIELDS`` of the ledger row the trace was stored in (``evaluated_at``
    as ISO 8601 text); a format-3 trace cannot be read without it, and earlier formats carry
    their own.
    """
    try:
        data = json.loads(trace_text(text))
    except json.JSONDecodeError as exc:
        raise TraceError(f"stored decision trace is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TraceError("stored decision trace is not a JSON object")
    version = data.pop("trace_format", 1)
    if version == 1:
        return data
    if version not in (2, TRACE_FORMAT):
        raise TraceError(f"decision trace format {version!r} is newer than this tradekit reads ({TRACE_FORMAT})")
    checks = data.get("checks")
    if not isinstance(checks, list) or not all(isinstance(c, list) and len(c) == len(CHECK_FIELDS) for c in checks):
        raise TraceError(
            f"decision trace format {version} needs checks as [rule, phase, outcome, detail, reason] arrays"
        )
    data["checks"] = [dict(zip(CHECK_FIELDS, c, strict=True)) for c in checks]
    if version == 2:
        return data
    if row is None:
        raise TraceError(
            f"a format-3 decision trace is read with its ledger row: it leaves {', '.join(ROW_FIELDS)} to it"
        )
    missing = [f for f in ROW_FIELDS if f not in row]
    if missing:
        raise TraceError(f"the row given with a format-3 decision trace lacks {', '.join(missing)}")
    data.update((f, row[f]) for f in ROW_FIELDS)
    ordered = {f: data.pop(f) for f in _DOCUMENT_ORDER if f in data}
    ordered.update(data)  # anything else is the converter's to refuse, by name
    return ordered


_STOPPING_OUTCOMES = frozenset({CheckOutcome.SKIP.value, CheckOutcome.BLOCK.value})


def summary_from_document(document: Mapping[str, Any]) -> str:
    """``BuyDecision.one_line`` of the decision a trace document (``decode_trace``) records,
    without rebuilding the decision (a listing renders one per row)."""
    return one_line_text(
        action=document["action"],
        symbol=document["symbol"],
        strategy=document["strategy"],
        entry_count=int(document["entry_count"]),
        max_entries=int(document["max_entries"]),
        position_pct=Decimal(document["position_pct"]),
        allocation_cap_pct=Decimal(document["allocation_cap_pct"]),
        risk_amount=Decimal(document["risk_amount"]),
        confidence=int(document["confidence"]),
        stops=[(c["reason"], c["detail"]) for c in document["checks"] if c["outcome"] in _STOPPING_OUTCOMES],
    )


def decision_from_trace(text: str, row: Mapping[str, str] | None = None) -> BuyDecision:
    """Rebuild the ``BuyDecision`` a stored trace records (``row`` as for ``decode_trace``)."""
    return structure(decode_trace(text, row), BuyDecision, what="decision trace")
