"""Stored decision traces: compact on disk, the full record when read, old rows still readable."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit import StrategyScalingPolicy, evaluate_buy
from tradekit.decision import BuyDecision
from tradekit.decision.context import OrderCounters
from tradekit.decision.plugin_reasons import PluginReason, Reason
from tradekit.decision.reasons import CheckOutcome, ReasonCode, RulePhase
from tradekit.decision.trace import (
    PACKED_PREFIX,
    TraceError,
    _dictionary,
    decision_from_trace,
    decode_trace,
    encode_trace,
    pack_trace,
    trace_document,
    trace_text,
)
from tradekit.decision.verdict import Check, block, passed
from tradekit.ledger.store import decision_row
from tradekit.plugins import Plugins
from tradekit.serialization import unstructure
from tradekit.testing import make_context, make_position

PLUGINS = Plugins(load_entrypoints=False, env={})


def _decisions() -> list[BuyDecision]:
    policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4, min_bars_between_entries=2)
    position = make_position(entries=[(timedelta(days=4), Decimal(55), Decimal(10))])
    contexts = [
        make_context(),
        make_context(policy=policy, position=position, bars_since_last_entry=3),
        make_context(policy=policy, position=position, counters=OrderCounters(orders_today=3), confidence=3),
        make_context(unreconciled={"KO"}, broker_checked=False),
    ]
    return [evaluate_buy(ctx, plugins=PLUGINS) for ctx in contexts]


def row_fields(decision: BuyDecision) -> dict[str, str]:
    # The row the ledger writes beside the trace, as StoredDecision gives it to the reader.
    row = decision_row(decision)
    return {**row, "evaluated_at": row["evaluated_at"].isoformat()}


def _format_1(decision: BuyDecision) -> str:
    # What ledgers of schema 1 hold: the whole decision, checks as objects.
    return json.dumps(unstructure(decision), separators=(",", ":"))


def _format_2(decision: BuyDecision) -> str:
    # What ledgers of schemas 2 to 4 hold (schema 4 packed): the whole decision, checks as arrays.
    return json.dumps(_converter_document(decision, version=2), separators=(",", ":"))


@pytest.mark.parametrize("decision", _decisions(), ids=lambda d: d.action.value)
def test_a_compact_trace_reads_back_with_its_row_as_the_full_document_and_decision(decision: BuyDecision) -> None:
    stored = encode_trace(decision)
    row = row_fields(decision)
    full = json.loads(_format_1(decision))
    # The same document, key for key and in the same order (explain --json prints it).
    assert list(decode_trace(stored, row).items()) == list(full.items())
    assert decision_from_trace(stored, row) == decision
    assert len(trace_document(decision)) < 0.7 * len(_format_1(decision))
    assert len(trace_document(decision)) < len(_format_2(decision)) - 150
    assert not any(json.dumps(row[f]) in trace_document(decision) for f in ("decision_id", "signal_id"))


@pytest.mark.parametrize("decision", _decisions(), ids=lambda d: d.action.value)
def test_a_trace_is_stored_packed_in_a_fraction_of_its_document(decision: BuyDecision) -> None:
    stored = encode_trace(decision)
    assert stored.startswith(PACKED_PREFIX)
    assert trace_text(stored) == trace_document(decision)
    assert len(stored) < 0.3 * len(_format_2(decision))
    # Leaving the row's fields out saves about their ids' worth (~40 characters) or more.
    assert len(stored) <= len(pack_trace(_format_2(decision))) - 40


def test_a_format_3_trace_is_not_read_without_its_row() -> None:
    decision = _decisions()[0]
    stored = encode_trace(decision)
    with pytest.raises(TraceError, match="read with its ledger row"):
        decode_trace(stored)
    row = row_fields(decision)
    del row["signal_id"]
    with pytest.raises(TraceError, match="lacks signal_id"):
        decode_trace(stored, row)


@pytest.mark.parametrize("decision", _decisions(), ids=lambda d: d.action.value)
@pytest.mark.parametrize(("wbits", "mem_level", "level"), [(-15, 8, 2), (-15, 9, 6), (-9, 1, 1)])
def test_packed_traces_read_back_whatever_window_and_level_wrote_them(
    decision: BuyDecision, wbits: int, mem_level: int, level: int
) -> None:
    """The first packed traces were deflated with a 32 KB window and the default hash; the
    writer's settings are its own choice, and every one reads back to the same document."""
    document = trace_document(decision)
    deflate = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, zlib.Z_DEFAULT_STRATEGY, _dictionary())
    stored = PACKED_PREFIX + base64.b64encode(deflate.compress(document.encode()) + deflate.flush()).decode()
    assert trace_text(stored) == document
    assert decision_from_trace(stored, row_fields(decision)) == decision


@pytest.mark.parametrize("decision", _decisions(), ids=lambda d: d.action.value)
def test_format_2_traces_stay_readable_packed_or_not_with_or_without_a_row(decision: BuyDecision) -> None:
    unpacked = _format_2(decision)
    packed = pack_trace(unpacked)  # as ledgers of schema 4 hold them
    assert trace_text(unpacked) == unpacked == trace_text(packed)
    full = json.loads(_format_1(decision))
    for stored in (unpacked, packed):
        assert decode_trace(stored) == decode_trace(stored, row_fields(decision)) == full
        assert decision_from_trace(stored) == decision


def _converter_document(decision: BuyDecision, version: int = 3) -> dict[str, object]:
    # The trace document as the cattrs converter builds it, keys in the same order: format 2
    # is the whole decision, format 3 leaves out what the ledger row holds.
    data: dict[str, object] = unstructure(attrs.evolve(decision, checks=()))
    data["checks"] = [list(unstructure(c).values()) for c in decision.checks]
    if version == 3:
        for field in ("decision_id", "symbol", "strategy", "signal_id", "action", "evaluated_at"):
            del data[field]
    data["trace_format"] = version
    return data


@pytest.mark.parametrize(
    "decision",
    [*_decisions(), attrs.evolve(_decisions()[0], price=None, risk_amount=Decimal("-0.5"))],
    ids=["enter_new", "scale_in", "skip", "block", "no_price"],
)
def test_the_hand_written_trace_is_the_converters_document_key_for_key(decision: BuyDecision) -> None:
    # Items, not a dict comparison: key order is part of the stored bytes.
    assert list(json.loads(trace_document(decision)).items()) == list(_converter_document(decision).items())
    # And the very text json writes: the packing dictionary was built from json's output.
    assert trace_document(decision) == json.dumps(_converter_document(decision), separators=(",", ":"))


@pytest.mark.parametrize("decision", _decisions(), ids=lambda d: d.action.value)
def test_format_1_traces_stay_readable(decision: BuyDecision) -> None:
    old = _format_1(decision)
    assert decode_trace(old) == json.loads(old)
    assert decision_from_trace(old) == decision


@given(
    checks=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.sampled_from(list(RulePhase)),
            st.sampled_from(list(CheckOutcome)),
            st.text(max_size=30),
            st.sampled_from([None, *ReasonCode, PluginReason("house_rules", "no_friday_buys")]),
        ),
        max_size=8,
    )
)
def test_any_checks_survive_the_compact_format(
    checks: list[tuple[str, RulePhase, CheckOutcome, str, Reason | None]],
) -> None:
    built = tuple(
        Check(
            rule=rule,
            phase=phase,
            outcome=outcome,
            detail=detail,
            reason=reason or (ReasonCode.RULE_ERROR if outcome in (CheckOutcome.SKIP, CheckOutcome.BLOCK) else None),
        )
        for rule, phase, outcome, detail, reason in checks
    )
    decision = _decisions()[0]
    decision = BuyDecision(**{**{f: getattr(decision, f) for f in unstructure(decision)}, "checks": built})
    read = decision_from_trace(encode_trace(decision), row_fields(decision)).checks
    assert read == built
    assert trace_document(decision) == json.dumps(_converter_document(decision), separators=(",", ":"))
    assert [type(c.reason) for c in read] == [type(c.reason) for c in built]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"trace_format": 4, "checks": []}', "format 4 is newer"),
        ('{"trace_format": 2, "checks": [["rule", 0, "pass"]]}', "arrays"),
    ],
)
def test_an_unreadable_trace_is_an_error_that_says_why(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        decode_trace(text)
    with pytest.raises(TraceError, match=message):
        decode_trace(pack_trace(text))


def test_a_damaged_packed_trace_is_an_error_not_a_wrong_document() -> None:
    stored = encode_trace(_decisions()[0])
    middle = len(stored) // 2
    flipped = stored[:middle] + ("A" if stored[middle] != "A" else "B") + stored[middle + 1 :]
    for damaged in (stored[:-5], flipped, PACKED_PREFIX + "~~not base64"):
        with pytest.raises(TraceError, match=r"cannot be unpacked|not JSON"):
            decode_trace(damaged)


def test_a_checks_text_is_written_once_and_never_taken_for_another_checks() -> None:
    from tradekit.decision import trace

    shared = passed("max_entries", RulePhase.HARD_SAFETY, 'entry 2 of "at most" 4')
    assert trace._check_json(shared) == trace._check_json(shared) == trace._check_text(shared)
    # Checks built and dropped one after another may get the id of an earlier one: each is
    # still written from its own fields, however many came before.
    for i in range(2 * trace._TEXTS_LIMIT):
        check = block("allocation_cap", RulePhase.HARD_SAFETY, ReasonCode.ALLOCATION_CAP, f"at {i}% of equity")
        assert json.loads(trace._check_json(check)) == [
            "allocation_cap",
            int(RulePhase.HARD_SAFETY),
            "block",
            f"at {i}% of equity",
            "allocation_cap",
        ]
        assert len(trace._TEXTS) <= trace._TEXTS_LIMIT


@given(
    checks=st.lists(
        st.tuples(
            st.sampled_from(["allocation_cap", "max_entries", "house_rule"]),
            st.sampled_from(list(CheckOutcome)),
            st.text(max_size=30),
            st.sampled_from([None, *ReasonCode, PluginReason("house_rules", "no_friday_buys")]),
        ),
        max_size=6,
    ),
    figures=st.tuples(
        st.decimals(min_value=-1000, max_value=1000, places=6),
        st.decimals(min_value=0, max_value=100, places=3),
        st.decimals(min_value=-(10**6), max_value=10**6, places=4),
    ),
    counts=st.tuples(st.integers(0, 9), st.integers(1, 9), st.integers(1, 5)),
)
def test_a_summary_rendered_from_any_stored_format_is_the_decisions_one_line(
    checks: list[tuple[str, CheckOutcome, str, Reason | None]],
    figures: tuple[Decimal, Decimal, Decimal],
    counts: tuple[int, int, int],
) -> None:
    """Rows of schema 5 store no summary: it is rendered from the trace document when read,
    without rebuilding the decision, and must be the very text ``one_line`` gives (which older
    schemas stored), whichever format the trace was written in."""
    from tradekit.decision.trace import summary_from_document

    built = tuple(
        Check(
            rule=rule,
            phase=RulePhase.HARD_SAFETY,
            outcome=outcome,
            detail=detail,
            reason=reason or (ReasonCode.RULE_ERROR if outcome in (CheckOutcome.SKIP, CheckOutcome.BLOCK) else None),
        )
        for rule, outcome, detail, reason in checks
    )
    position_pct, cap, risk = figures
    entries, most, confidence = counts
    decision = attrs.evolve(
        _decisions()[0],
        checks=built,
        position_pct=position_pct,
        allocation_cap_pct=cap,
        risk_amount=risk,
        entry_count=entries,
        max_entries=most,
        confidence=confidence,
    )
    for stored in (encode_trace(decision), pack_trace(_format_2(decision)), _format_1(decision)):
        assert summary_from_document(decode_trace(stored, row_fields(decision))) == decision.one_line()
