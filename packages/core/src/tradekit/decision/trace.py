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
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from tradekit.decision.verdict import BuyDecision, Check
from tradekit.serialization import structure

TRACE_FORMAT = 2
CHECK_FIELDS = ("rule", "phase", "outcome", "detail", "reason")
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
    """The decision as persisted: ``trace_document``, packed."""
    return pack_trace(trace_document(decision))


def trace_document(decision: BuyDecision) -> str:
    """The decision's trace document (format 2): its fields, with checks as compact arrays.

    Written out by hand rather than through the cattrs converter or ``json`` (a replay
    persists one per buy signal, and this is ~3x faster than building a dict for the
    encoder); the text is the one ``json`` writes with the separators ``,`` and ``:``, byte
    for byte, and the document is the converter's, key for key, which tests hold it to.
    """
    price = decision.price
    checks = ",".join([_check_json(c) for c in decision.checks])
    return (
        f'{{"decision_id":{_q(decision.decision_id)},"symbol":{_q(decision.symbol)},'
        f'"strategy":{_q(decision.strategy)},"signal_id":{_q(decision.signal_id)},'
        f'"action":{_q(decision.action._value_)},"checks":[{checks}],'
        f'"entry_count":{int(decision.entry_count)!r},"max_entries":{int(decision.max_entries)!r},'
        f'"position_pct":{_q(str(decision.position_pct))},'
        f'"allocation_cap_pct":{_q(str(decision.allocation_cap_pct))},'
        f'"risk_amount":{_q(str(decision.risk_amount))},'
        f'"price":{"null" if price is None else _q(str(price))},'
        f'"confidence":{int(decision.confidence)!r},'
        f'"evaluated_at":{_q(decision.evaluated_at.astimezone(UTC).isoformat())},'
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
