"""Domain records: Decimal money, UTC times, derived position figures, one converter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import cattrs.preconf.json
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit.broker.paper import ReceiptOutcome, ReceivedOrder
from tradekit.decision.reasons import CheckOutcome, ReasonCode, RulePhase
from tradekit.decision.verdict import Check
from tradekit.domain import (
    AccountSnapshot,
    Bar,
    BrokerPosition,
    Fill,
    InvalidValueError,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionEntry,
    PositionReduction,
    Side,
    Signal,
)
from tradekit.domain.orders import TimeInForce
from tradekit.domain.signals import Urgency
from tradekit.serialization import StructureError, record_json, structure, unstructure

T0 = datetime(2024, 1, 2, 15, tzinfo=UTC)


def test_position_figures_are_derived_from_entries() -> None:
    pos = Position(
        symbol="KO",
        strategy="pyr",
        entries=[
            PositionEntry(time=T0, price=Decimal(50), qty=Decimal(10)),
            PositionEntry(time=T0 + timedelta(days=1), price=Decimal(53), qty=Decimal(20)),
        ],
        reductions=[PositionReduction(time=T0 + timedelta(days=2), qty=Decimal(5), price=Decimal(55))],
    )
    assert pos.entry_count == 2
    assert pos.last_entry_price == Decimal(53)
    assert pos.last_entry_time == T0 + timedelta(days=1)
    assert pos.average_price == Decimal(1560) / Decimal(30)  # (500 + 1060) / 30
    assert pos.qty == Decimal(25)
    assert pos.is_open


@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2),
            st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_average_price_is_notional_weighted_and_within_entry_range(
    entries: list[tuple[Decimal, Decimal]],
) -> None:
    pos = Position(
        symbol="X",
        strategy=None,
        entries=[PositionEntry(time=T0, price=p, qty=q) for p, q in entries],
    )
    lo, hi = min(p for p, _ in entries), max(p for p, _ in entries)
    assert lo <= pos.average_price <= hi
    assert abs(pos.average_price * pos.entered_qty - sum(p * q for p, q in entries)) < Decimal("1e-15")


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal(-1), Decimal(0)])
def test_bad_prices_are_refused_with_the_field_name(bad: Decimal) -> None:
    with pytest.raises(InvalidValueError, match="price"):
        PositionEntry(time=T0, price=bad, qty=Decimal(1))


def test_float_money_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="floats are refused"):
        PositionEntry(time=T0, price=1.5, qty=Decimal(1))  # type: ignore[arg-type]


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="timezone-aware"):
        Signal(symbol="KO", side=Side.BUY, confidence=3, generated_at=datetime(2024, 1, 2))  # noqa: DTZ001


def test_aware_datetime_is_normalised_to_utc() -> None:
    est = timezone(timedelta(hours=-5))
    sig = Signal(symbol="KO", side=Side.BUY, confidence=3, generated_at=datetime(2024, 1, 2, 10, tzinfo=est))
    assert sig.generated_at == datetime(2024, 1, 2, 15, tzinfo=UTC)
    assert sig.generated_at.tzinfo is UTC


@pytest.mark.parametrize("confidence", [0, 6, True])
def test_signal_confidence_is_1_to_5(confidence: int) -> None:
    with pytest.raises(ValueError, match="confidence"):
        Signal(symbol="KO", side=Side.BUY, confidence=confidence, generated_at=T0)


def test_signal_id_is_deterministic() -> None:
    a = Signal(symbol="KO", side=Side.BUY, confidence=3, generated_at=T0, source="s")
    b = Signal(symbol="KO", side=Side.BUY, confidence=5, generated_at=T0, source="s")
    assert a.signal_id == b.signal_id
    assert a.signal_id != Signal(symbol="PFE", side=Side.BUY, confidence=3, generated_at=T0, source="s").signal_id


def test_order_request_needs_exactly_one_of_qty_or_notional() -> None:
    with pytest.raises(ValueError, match="exactly one of qty or notional"):
        OrderRequest(client_order_id="c1", symbol="KO", side=Side.BUY, qty=Decimal(1), notional=Decimal(10))
    with pytest.raises(ValueError, match="needs limit_price"):
        OrderRequest(
            client_order_id="c1",
            symbol="KO",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal(1),
        )
    with pytest.raises(ValueError, match=r"client_order_id must be 1\.\.128"):
        OrderRequest(client_order_id="x" * 129, symbol="KO", side=Side.BUY, qty=Decimal(1))
    assert OrderRequest(client_order_id="c", symbol="KO", side=Side.BUY, qty=Decimal("0.5")).is_fractional


def test_bar_with_high_below_low_is_refused() -> None:
    with pytest.raises(ValueError, match="high 9 < low 10"):
        Bar(
            symbol="X",
            time=T0,
            open=Decimal(10),
            high=Decimal(9),
            low=Decimal(10),
            close=Decimal(10),
            volume=Decimal(0),
        )


RECORDS: list[Any] = [
    Signal(symbol="KO", side=Side.BUY, confidence=4, generated_at=T0, reference_price=Decimal("60.125")),
    AccountSnapshot(equity=Decimal("100000.01"), cash=Decimal(5), buying_power=Decimal(5), as_of=T0),
    BrokerPosition(symbol="KO", qty=Decimal("-3.5"), avg_entry_price=Decimal("60.1"), as_of=T0),
    Order(
        client_order_id="c1",
        broker_order_id="b1",
        symbol="KO",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        status=OrderStatus.PARTIALLY_FILLED,
        qty=Decimal(3),
        filled_qty=Decimal(1),
        submitted_at=T0,
    ),
    Fill(
        execution_id="e1",
        client_order_id="c1",
        broker_order_id="b1",
        symbol="KO",
        side=Side.BUY,
        qty=Decimal(1),
        price=Decimal("60.07"),
        time=T0,
    ),
    Position(
        symbol="KO",
        strategy=None,
        entries=[PositionEntry(time=T0, price=Decimal("0.1"), qty=Decimal("0.3"))],
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_round_trip_through_the_converter_without_floats(record: Any) -> None:
    data = unstructure(record)
    assert "float" not in repr(data)
    assert structure(data, type(record)) == record


def test_structuring_rejects_unknown_keys_and_naive_times() -> None:
    data = unstructure(RECORDS[0])
    with pytest.raises(StructureError, match="extra fields found"):
        structure({**data, "colour": "red"}, Signal)
    with pytest.raises(StructureError, match="naive datetime"):
        structure({**data, "generated_at": "2024-01-02T15:00:00"}, Signal)
    with pytest.raises(StructureError, match=r"float 60\.1 \(quote it\)"):
        structure({**data, "reference_price": 60.1}, Signal)


def test_broker_payload_missing_fields_names_them() -> None:
    data = unstructure(RECORDS[2])
    del data["avg_entry_price"]
    with pytest.raises(StructureError, match="avg_entry_price"):
        structure(data, BrokerPosition)


@given(
    rule=st.text(min_size=1, max_size=20),
    phase=st.sampled_from(list(RulePhase)),
    outcome=st.sampled_from(list(CheckOutcome)),
    reason=st.sampled_from([None, *ReasonCode]),
    detail=st.text(max_size=40),
)
def test_the_hand_written_check_hook_matches_the_generated_one(
    rule: str, phase: RulePhase, outcome: CheckOutcome, reason: ReasonCode | None, detail: str
) -> None:
    if reason is None and outcome in (CheckOutcome.SKIP, CheckOutcome.BLOCK):
        reason = ReasonCode.RULE_ERROR
    check = Check(rule=rule, phase=phase, outcome=outcome, detail=detail, reason=reason)
    generated = cattrs.preconf.json.make_converter()
    assert unstructure(check) == generated.unstructure(check)
    assert structure(unstructure(check), Check) == check


@given(
    symbol=st.text(min_size=1, max_size=8),
    side=st.sampled_from(list(Side)),
    confidence=st.integers(min_value=1, max_value=5),
    generated_at=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis attaches the zone
        max_value=datetime(2030, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(minutes=330))]),
    ),
    reference_price=st.none() | st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**9), places=4),
    source=st.text(max_size=10),
    reason=st.text(max_size=20),
    urgency=st.sampled_from(list(Urgency)),
    payload=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
def test_a_queued_signal_is_stored_as_the_converters_json_less_its_rows_columns_and_defaults(
    **fields: Any,
) -> None:
    """The queued-buy row's hand-written text is what ``json.dumps`` writes of the converter's
    document less the symbol and signal id (columns of the row) and the fields at their
    defaults, byte for byte; it reads back, with the row's columns, as the same signal. The
    whole document, as ledgers before schema 5 stored it, still reads back too."""
    import json

    from tradekit.ledger.store import signal_from_text, signal_text

    signal = Signal(**fields)
    document = unstructure(signal)
    defaults: dict[str, object] = {
        "reference_price": None,
        "source": "",
        "reason": "",
        "urgency": "planned",
        "payload": {},
    }
    expected = {k: v for k, v in document.items() if k not in ("symbol", "signal_id") and defaults.get(k, k) != v}
    assert signal_text(signal) == json.dumps(expected, separators=(",", ":"))
    assert signal_from_text(signal_text(signal), signal.symbol, signal.signal_id) == signal
    whole = json.dumps(document, separators=(",", ":"))
    assert signal_from_text(whole, "ignored: the document names its own", "sig-ignored") == signal


_times = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis attaches the zone
    max_value=datetime(2030, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(minutes=330))]),
)
_amounts = st.decimals(min_value=Decimal("1E-9"), max_value=Decimal(10**9), allow_nan=False, allow_infinity=False)
_ids = st.text(min_size=1, max_size=12)  # any text: quotes, backslashes, non-ASCII, "%s"


@st.composite
def _order_requests(draw: st.DrawFn) -> OrderRequest:
    order_type = draw(st.sampled_from(list(OrderType)))
    by_qty = draw(st.booleans())
    return OrderRequest(
        client_order_id=draw(st.text(alphabet="abcXYZ019-_|.", min_size=1, max_size=20)),
        symbol=draw(_ids),
        side=draw(st.sampled_from(list(Side))),
        order_type=order_type,
        qty=draw(_amounts) if by_qty else None,
        notional=None if by_qty else draw(_amounts),
        limit_price=draw(_amounts) if order_type is OrderType.LIMIT else None,
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
    )


_orders = st.builds(
    Order,
    client_order_id=_ids,
    broker_order_id=_ids,
    symbol=_ids,
    side=st.sampled_from(list(Side)),
    order_type=st.sampled_from(list(OrderType)),
    status=st.sampled_from(list(OrderStatus)),
    qty=st.none() | _amounts,
    notional=st.none() | _amounts,
    limit_price=st.none() | _amounts,
    filled_qty=st.just(Decimal(0)) | _amounts,
    filled_avg_price=st.none() | _amounts,
    submitted_at=_times,
    updated_at=st.none() | _times,
    reject_reason=st.text(max_size=30),
)
_fills = st.builds(
    Fill,
    execution_id=_ids,
    client_order_id=_ids,
    broker_order_id=_ids,
    symbol=_ids,
    side=st.sampled_from(list(Side)),
    qty=_amounts,
    price=_amounts,
    time=_times,
    commission=st.just(Decimal(0)) | _amounts,
    position_qty_after=st.none() | _amounts.map(lambda d: -d) | _amounts,
)
_received = st.builds(
    ReceivedOrder,
    request=_order_requests(),
    received_at=_times,
    outcome=st.sampled_from(list(ReceiptOutcome)),
    reason=st.text(max_size=30),
)


@given(record=st.one_of(_order_requests(), _orders, _fills, _received))
def test_the_generated_json_of_archived_records_is_the_converters_byte_for_byte(record: Any) -> None:
    """The paper broker's archive writes orders, fills and received requests with generated
    code (``record_json``): the text is what ``json.dumps`` writes of the converter's
    document, and it reads back as the same record."""
    import json

    expected = json.dumps(unstructure(record), separators=(",", ":"))
    assert record_json(record) == expected
    assert structure(json.loads(record_json(record)), type(record)) == record


def test_a_record_without_a_generated_writer_goes_through_the_converter() -> None:
    import json

    signal = RECORDS[0]
    assert record_json(signal) == json.dumps(unstructure(signal), separators=(",", ":"))


def test_passing_checks_are_shared_values_and_their_memo_stays_bounded() -> None:
    from tradekit.decision import verdict

    first = verdict.passed("max_entries", RulePhase.HARD_SAFETY, "entry 2 of at most 4")
    again = verdict.passed("max_entries", RulePhase.HARD_SAFETY, "entry 2 of at most 4")
    assert again is first
    assert (again.outcome, again.reason, again.detail) == (CheckOutcome.PASS, None, "entry 2 of at most 4")
    # The same rule and sentence in another phase, or not applicable, is another check.
    assert verdict.passed("max_entries", RulePhase.LIMITS, "entry 2 of at most 4").phase is RulePhase.LIMITS
    na = verdict.not_applicable("max_entries", RulePhase.HARD_SAFETY, "entry 2 of at most 4")
    assert na.outcome is CheckOutcome.NOT_APPLICABLE
    for i in range(3 * verdict._MEMO_LIMIT):  # every sentence different (a price in it)
        check = verdict.passed("allocation_cap", RulePhase.HARD_SAFETY, f"{i / 100:.2f}% of equity, cap 10%")
        assert check.detail == f"{i / 100:.2f}% of equity, cap 10%"
        assert len(verdict._passes) <= verdict._MEMO_LIMIT
