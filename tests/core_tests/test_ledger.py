"""The ledger on SQLite and PostgreSQL: append-only records, derived positions, counters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit import StrategyScalingPolicy, evaluate_buy
from tradekit.decision.reasons import BuyAction
from tradekit.domain import Fill, OrderType, Side, Signal, TimeInForce, Urgency
from tradekit.exits import ExitIntent, ExitState
from tradekit.ledger import (
    DuplicateIntentError,
    IntentPurpose,
    InvalidExitTransition,
    Ledger,
    LedgerConnectionError,
    LedgerCorruptError,
    LedgerError,
    LedgerInUseError,
    LedgerOrderStatus,
    LedgerVersionError,
    LedgerWriteError,
    OrderIntent,
)
from tradekit.ledger.records import FillResult
from tradekit.ledger.schema import _TIME_FORMAT, SCHEMA_VERSION, UtcText
from tradekit.plugins import Plugins
from tradekit.testing import make_context, make_position

from .conftest import PG_URL, LedgerFactory, require_postgres

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def buy_intent(symbol: str = "KO", key: str = "k1", *, qty: str = "10", strategy: str = "pyr") -> OrderIntent:
    return OrderIntent(
        intent_key=key,
        symbol=symbol,
        side=Side.BUY,
        purpose=IntentPurpose.ENTRY,
        created_at=T0,
        strategy=strategy,
        qty=Decimal(qty),
        confidence=5,
    )


def fill(
    coid: str, exec_id: str, qty: str, price: str, *, side: Side = Side.BUY, symbol: str = "KO", at: datetime = T0
) -> Fill:
    return Fill(
        execution_id=exec_id,
        client_order_id=coid,
        broker_order_id="b-" + coid,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        time=at,
    )


def test_new_ledger_is_created_at_the_current_schema_version(ledger: Ledger) -> None:
    with ledger.reading() as tx:
        assert tx.open_positions() == {}
        assert tx.last_reconciliation() is None


def test_fill_of_an_intent_becomes_a_position_entry(ledger: Ledger) -> None:
    intent = buy_intent()
    with ledger.transaction(lock_symbol="KO") as tx:
        tx.record_intent(intent)
    assert ledger.record_fill(fill(intent.client_order_id, "e1", "10", "58.5")) is FillResult.APPLIED
    pos = ledger.position("KO")
    assert pos is not None
    assert (pos.entry_count, pos.qty, pos.last_entry_price, pos.strategy) == (1, Decimal(10), Decimal("58.5"), "pyr")
    assert pos.last_entry_time == T0


def test_a_repeated_fill_is_recorded_once(ledger: Ledger) -> None:
    intent = buy_intent()
    with ledger.transaction() as tx:
        tx.record_intent(intent)
    assert ledger.record_fill(fill(intent.client_order_id, "e1", "10", "58.5")) is FillResult.APPLIED
    assert ledger.record_fill(fill(intent.client_order_id, "e1", "10", "58.5")) is FillResult.DUPLICATE
    pos = ledger.position("KO")
    assert pos is not None
    assert pos.qty == Decimal(10)


def test_partial_fills_of_one_order_are_one_entry_at_their_weighted_price(ledger: Ledger) -> None:
    intent = buy_intent()
    with ledger.transaction() as tx:
        tx.record_intent(intent)
    for i, (qty, price) in enumerate([("3", "50"), ("5", "51"), ("2", "52")]):
        ledger.record_fill(fill(intent.client_order_id, f"e{i}", qty, price, at=T0 + timedelta(seconds=i)))
    pos = ledger.position("KO")
    assert pos is not None
    assert pos.entry_count == 1
    assert pos.qty == Decimal(10)
    assert pos.average_price == Decimal("50.9")  # (150 + 255 + 104) / 10
    assert pos.last_entry_time == T0


def test_scale_in_adds_an_entry_and_reweights_the_average(ledger: Ledger) -> None:
    first, second = buy_intent(key="k1"), buy_intent(key="k2", qty="5")
    with ledger.transaction() as tx:
        tx.record_intent(first)
        tx.record_intent(second)
    ledger.record_fill(fill(first.client_order_id, "e1", "10", "50"))
    ledger.record_fill(fill(second.client_order_id, "e2", "5", "56", at=T0 + timedelta(days=1)))
    pos = ledger.position("KO")
    assert pos is not None
    assert pos.entry_count == 2
    assert pos.average_price == Decimal(780) / Decimal(15)
    assert pos.last_entry_price == Decimal(56)


def test_selling_everything_closes_and_the_next_buy_starts_a_new_position(ledger: Ledger) -> None:
    buy, sell, again = buy_intent(key="b1"), buy_intent(key="s1"), buy_intent(key="b2", qty="3")
    sell = OrderIntent(
        intent_key="s1", symbol="KO", side=Side.SELL, purpose=IntentPurpose.EXIT, created_at=T0, qty=Decimal(10)
    )
    with ledger.transaction() as tx:
        for i in (buy, sell, again):
            tx.record_intent(i)
    ledger.record_fill(fill(buy.client_order_id, "e1", "10", "50"))
    ledger.record_fill(fill(sell.client_order_id, "e2", "4", "55", side=Side.SELL))
    pos = ledger.position("KO")
    assert pos is not None
    assert pos.qty == Decimal(6)
    ledger.record_fill(fill(sell.client_order_id, "e3", "6", "55", side=Side.SELL))
    assert ledger.position("KO") is None
    ledger.record_fill(fill(again.client_order_id, "e4", "3", "60"))
    pos = ledger.position("KO")
    assert pos is not None
    assert (pos.entry_count, pos.qty) == (1, Decimal(3))


def test_fill_of_an_order_tradekit_did_not_place_changes_no_position(ledger: Ledger) -> None:
    assert ledger.record_fill(fill("someone-else", "e9", "10", "50")) is FillResult.NOT_OURS
    assert ledger.open_positions() == {}


def test_a_second_intent_with_the_same_key_is_refused(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        tx.record_intent(buy_intent(key="same"))
    with pytest.raises(DuplicateIntentError), ledger.transaction() as tx:
        tx.record_intent(buy_intent(key="same", qty="99"))


def lost_limit_sell() -> OrderIntent:
    return OrderIntent(
        intent_key="exit|exit-1",
        symbol="KO",
        side=Side.SELL,
        purpose=IntentPurpose.EXIT,
        created_at=T0,
        strategy="pyr",
        order_type=OrderType.LIMIT,
        qty=Decimal(10),
        limit_price=Decimal(61),
        exit_intent_id="exit-1",
    )


def test_a_revised_intent_states_the_order_sent_again_across_a_restart_and_nothing_else_of_it(
    ledger_factory: LedgerFactory,
) -> None:
    ledger = ledger_factory()
    lost = lost_limit_sell()
    with ledger.transaction() as tx:
        tx.record_intent(lost)
        tx.record_order_event(lost.client_order_id, LedgerOrderStatus.NOT_FOUND, T0)
    sent = attrs.evolve(
        lost, order_type=OrderType.MARKET, qty=Decimal(9), limit_price=None, time_in_force=TimeInForce.CLS
    )
    # A transaction that fails revises nothing.
    with pytest.raises(LedgerError), ledger.transaction() as tx:  # noqa: PT012
        tx.revise_intent(sent)
        tx.revise_intent(buy_intent(key="never recorded"))
    with ledger.reading() as tx:
        assert tx.intent(lost.client_order_id) == lost
    with ledger.transaction() as tx:
        tx.revise_intent(sent)
        tx.record_order_event(lost.client_order_id, LedgerOrderStatus.SUBMITTING, T0)

    with ledger_factory().reading() as tx:  # after a restart
        assert tx.intent(lost.client_order_id) == sent
        assert tx.intents_with_prefix("exit|") == [sent]
        (pending,) = tx.pending_intents()
        assert pending.intent == sent


def test_client_order_id_is_deterministic_and_short_enough_for_every_venue() -> None:
    a, b = buy_intent(key="strategy|KO|sig-1|entry-1"), buy_intent(key="strategy|KO|sig-1|entry-1")
    assert a.client_order_id == b.client_order_id
    assert len(a.client_order_id) <= 36
    assert a.client_order_id != buy_intent(key="strategy|KO|sig-1|entry-2").client_order_id


def test_intent_is_pending_until_its_order_is_terminal(ledger: Ledger) -> None:
    intent = buy_intent()
    with ledger.transaction() as tx:
        tx.record_intent(intent)
        assert [s.intent for s in tx.pending_intents("KO")] == [intent]
        tx.record_order_event(intent.client_order_id, LedgerOrderStatus.ACCEPTED, T0, broker_order_id="b1")
        state = tx.intent_state(intent.client_order_id)
        assert state is not None
        assert state.is_pending
        assert state.broker_order_id == "b1"
        tx.record_order_event(intent.client_order_id, LedgerOrderStatus.FILLED, T0)
        assert tx.pending_intents("KO") == []


def test_order_counters_survive_a_restart(ledger_factory: LedgerFactory) -> None:
    first = ledger_factory()
    with first.transaction() as tx:
        tx.record_intent(buy_intent(key="a"))
        tx.record_intent(buy_intent(symbol="PFE", key="b"))
    first.close()
    reopened = ledger_factory()
    with reopened.reading() as tx:
        counts = tx.order_counts("KO", day_start=T0 - timedelta(hours=10))
        assert counts.orders_today == 2
        assert counts.last_order_at == T0
        assert counts.acted_on_symbol_today
        tomorrow = tx.order_counts("KO", day_start=T0 + timedelta(days=1))
        assert tomorrow.orders_today == 0
        assert not tomorrow.acted_on_symbol_today
        assert tomorrow.last_order_at == T0


def test_decision_trace_round_trips_and_explains_the_same(ledger: Ledger) -> None:
    ctx = make_context(
        policy=StrategyScalingPolicy(allow_scaling=True, max_entries=4), position=make_position(), confidence=3
    )
    decision = evaluate_buy(ctx, plugins=Plugins(load_entrypoints=False, env={}))
    with ledger.transaction() as tx:
        tx.record_decision(decision)
    with ledger.reading() as tx:
        stored = tx.decision(decision.decision_id)
        assert stored is not None
        assert stored.reasons == ("confidence_too_low",)
        assert stored.summary == decision.one_line()
        assert stored.decision() == decision
        assert stored.decision().explain() == decision.explain()
        assert [d.decision_id for d in tx.decisions(action="skip")] == [decision.decision_id]
        # Schema 5: the row holds no summary (it is rendered from the trace when read).
        assert stored.stored_summary == ""
        assert stored.document()["decision_id"] == decision.decision_id


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    actions=st.lists(st.sampled_from(["skip", "block", "enter_new", "scale_in"]), max_size=40), limit=st.integers(0, 12)
)
def test_a_symbols_passed_over_buys_are_counted_and_sampled_evenly_oldest_first(
    ledger: Ledger, actions: list[str], limit: int
) -> None:
    """What a long run's chart marks: ``min(limit, total)`` of the symbol's skipped or blocked
    buys, one in each stretch of ``total / limit`` (the first included), and how many in all."""
    symbol = f"S{uuid.uuid4().hex[:8].upper()}"  # each example its own symbol in the one ledger
    made = evaluate_buy(make_context(symbol=symbol), plugins=Plugins(load_entrypoints=False, env={}))
    decisions = [
        attrs.evolve(made, decision_id=f"dec-{symbol}-{n:03d}", action=BuyAction(action))
        for n, action in enumerate(actions)
    ]
    with ledger.transaction() as tx:
        for decision in decisions:
            tx.record_decision(decision)
        tx.record_decision(attrs.evolve(made, decision_id=f"dec-{symbol}-other", symbol="OTHER", action=BuyAction.SKIP))
    passed = [d.decision_id for d in decisions if d.action in (BuyAction.SKIP, BuyAction.BLOCK)]
    with ledger.reading() as tx:
        total, sample = tx.passed_over(symbol, limit)
    assert total == len(passed)
    if not passed or limit == 0:
        assert sample == []
        return
    total = len(passed)
    kept = [passed[i] for i in range(total) if i * limit % total < limit]
    assert [d.decision_id for d in sample] == kept
    assert len(sample) == min(limit, total)
    assert sample[0].decision_id == passed[0]
    # Evenly: the j-th kept is the first at or after j * total / limit (all of them when they fit).
    if limit < total:
        assert all(passed.index(k) == -(-j * total // limit) for j, k in enumerate(kept))
    else:
        assert kept == passed
    assert all(d.symbol == symbol and d.action in ("skip", "block") for d in sample)


def test_decisions_are_read_by_id_in_chunks_and_unknown_ids_are_left_out(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tradekit.ledger.store as store

    monkeypatch.setattr(store, "IDS_PER_QUERY", 2)  # five distinct ids: three queries
    made = evaluate_buy(make_context(), plugins=Plugins(load_entrypoints=False, env={}))
    with ledger.transaction() as tx:
        for n in range(5):
            tx.record_decision(attrs.evolve(made, decision_id=f"dec-{n}"))
    queries: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "tk_decisions" in statement:
            queries.append(statement)

    sa.event.listen(ledger._engine, "before_cursor_execute", count)
    try:
        with ledger.reading() as tx:
            found = tx.decisions_by_id(["dec-3", "dec-0", "dec-unknown", "dec-2", "dec-0", "dec-4", "dec-1"])
    finally:
        sa.event.remove(ledger._engine, "before_cursor_execute", count)
    assert len(queries) == 3
    assert sorted(found) == ["dec-0", "dec-1", "dec-2", "dec-3", "dec-4"]
    assert all(found[i].decision_id == i and found[i].decision() == attrs.evolve(made, decision_id=i) for i in found)


def test_a_decision_whose_trace_cannot_be_read_still_lists_and_says_so(ledger: Ledger) -> None:
    """Listings render each schema-5 row's summary from its trace: one damaged trace must not
    take the listing down (the status page, ``tradekit decisions``); ``explain`` names the error."""
    from tradekit.decision.trace import TraceError

    plugins = Plugins(load_entrypoints=False, env={})
    good = evaluate_buy(make_context(), plugins=plugins)
    bad = evaluate_buy(make_context(symbol="PEP"), plugins=plugins)
    with ledger.transaction() as tx:
        tx.record_decision(good)
        tx.record_decision(bad)
        tx._conn.execute(sa.text("UPDATE tk_decisions SET trace = 'z1:~~damaged' WHERE symbol = 'PEP'"))
    with ledger.reading() as tx:
        listed = {d.symbol: d for d in tx.decisions()}
    assert listed["KO"].summary == good.one_line()
    assert listed["PEP"].summary.startswith(f"{bad.action.value.upper()} PEP [{bad.strategy}] — its stored trace")
    assert "cannot be unpacked" in listed["PEP"].summary
    with pytest.raises(TraceError, match="cannot be unpacked"):
        listed["PEP"].decision()


def test_a_schema_4_ledgers_decisions_and_queued_buys_read_the_same_after_the_upgrade(
    ledger_factory: LedgerFactory,
) -> None:
    """Rows as schema 4 wrote them (a stored summary, a packed format-2 trace holding every
    field, a queued signal's whole document) read back as they did, next to new rows."""
    import json

    from tradekit.decision.trace import pack_trace
    from tradekit.serialization import unstructure

    ctx = make_context(
        policy=StrategyScalingPolicy(allow_scaling=True, max_entries=4), position=make_position(), confidence=3
    )
    decision = evaluate_buy(ctx, plugins=Plugins(load_entrypoints=False, env={}))
    document = unstructure(decision)
    document["checks"] = [list(c.values()) for c in document["checks"]]
    old_trace = pack_trace(json.dumps({**document, "trace_format": 2}, separators=(",", ":")))
    signal = Signal(symbol="PEP", side=Side.BUY, confidence=4, generated_at=T0, reference_price=Decimal("170.5"))
    judged = Signal(symbol="KO", side=Side.BUY, confidence=3, generated_at=T0, source="judged")
    old = ledger_factory()
    with old.transaction() as tx:
        conn = tx._conn
        # Schema 4's indexes on tk_decisions.
        conn.exec_driver_sql("DROP INDEX ix_tk_decisions_symbol")
        conn.exec_driver_sql("DROP INDEX ix_tk_decisions_signal")
        conn.exec_driver_sql("CREATE INDEX ix_tk_decisions_symbol_time ON tk_decisions (symbol, evaluated_at)")
        conn.exec_driver_sql("CREATE INDEX ix_tk_decisions_time ON tk_decisions (evaluated_at)")
        conn.execute(
            sa.text(
                "INSERT INTO tk_decisions (decision_id, symbol, strategy, signal_id, action, reasons, summary, "
                "trace, evaluated_at) VALUES (:d, :sym, :st, :sig, :a, :r, :summary, :trace, :t)"
            ),
            {
                "d": decision.decision_id,
                "sym": decision.symbol,
                "st": decision.strategy,
                "sig": decision.signal_id,
                "a": decision.action.value,
                "r": ",".join(decision.reasons),
                "summary": "what schema 4 stored",
                "trace": old_trace,
                "t": UtcText().process_bind_param(decision.evaluated_at, conn.dialect),
            },
        )
        for queued in (judged, signal):
            conn.execute(
                sa.text(
                    "INSERT INTO tk_queued_buys (signal_id, strategy, symbol, signal, queued_at) "
                    "VALUES (:sig, 'pyr', :sym, :text, :t)"
                ),
                {
                    "sig": queued.signal_id,
                    "sym": queued.symbol,
                    "text": json.dumps(unstructure(queued), separators=(",", ":")),
                    "t": UtcText().process_bind_param(T0, conn.dialect),
                },
            )
        # Schema 4 closed a judged signal with a settlement row naming its decision.
        conn.execute(
            sa.text(
                "INSERT INTO tk_queued_buy_settlements (signal_id, decision_id, note, time) "
                "VALUES (:sig, 'dec-old', '', :t)"
            ),
            {"sig": judged.signal_id, "t": UtcText().process_bind_param(T0, conn.dialect)},
        )
        conn.exec_driver_sql("UPDATE tk_meta SET value = '4' WHERE key = 'schema_version'")
    old.close()
    newer = Signal(symbol="KO", side=Side.BUY, confidence=2, generated_at=T0, reason="new row")
    with ledger_factory() as ledger:
        with ledger.transaction() as tx:
            tx.queue_buy(newer, "pyr", T0)
        with ledger.reading() as tx:
            stored = tx.decision(decision.decision_id)
            assert stored is not None
            assert stored.summary == "what schema 4 stored"
            assert stored.decision() == decision
            assert stored.document() == unstructure(decision)
            assert tx.queued_buys("pyr") == [signal, newer]
            version = tx._conn.exec_driver_sql("SELECT value FROM tk_meta WHERE key = 'schema_version'").scalar()
            indexes = {ix["name"] for ix in sa.inspect(tx._conn).get_indexes("tk_decisions")}
        # A schema-5 decision on a waiting signal settles it by itself: no settlement row.
        on_pep = attrs.evolve(decision, decision_id="dec-new", symbol="PEP", signal_id=signal.signal_id)
        with ledger.transaction() as tx:
            tx.record_decision(on_pep)
            tx.settle_queued_buy(signal.signal_id, T0, decision_id=on_pep.decision_id)
        with ledger.reading() as tx:
            assert tx.queued_buys("pyr") == [newer]
            settlements = tx._conn.exec_driver_sql("SELECT signal_id FROM tk_queued_buy_settlements").scalars().all()
    assert settlements == [judged.signal_id]
    assert version == str(SCHEMA_VERSION)  # upgraded to the current schema
    # The two indexes on evaluated_at gave way to one on symbol and one on signal_id
    # (PostgreSQL lists the unique decision_id constraint's index too).
    assert indexes - {"tk_decisions_decision_id_key"} == {"ix_tk_decisions_symbol", "ix_tk_decisions_signal"}


def exit_intent(intent_id: str = "x1") -> ExitIntent:
    return ExitIntent(
        intent_id=intent_id,
        symbol="KO",
        strategy="pyr",
        qty=Decimal(10),
        urgency=Urgency.PLANNED,
        reason="close below SMA20",
        decided_at=T0,
        limit_price=Decimal("57.5"),
        window_opens_at=T0 + timedelta(hours=18),
        window_closes_at=T0 + timedelta(hours=18, minutes=25),
    )


def test_exit_intent_life_cycle_survives_a_restart(ledger_factory: LedgerFactory) -> None:
    ledger = ledger_factory()
    with ledger.transaction() as tx:
        tx.record_exit_intent(exit_intent())
        assert tx.exit_pending("KO")
    ledger.close()
    ledger = ledger_factory()
    with ledger.transaction() as tx:
        (planned,) = tx.exit_intents(states=[ExitState.PLANNED])
        assert planned.limit_price == Decimal("57.5")
        assert planned.order_type is OrderType.LIMIT
        tx.transition_exit("x1", ExitState.SUBMITTED, T0, note="sent", client_order_id="tk-x")
        done = tx.transition_exit("x1", ExitState.EXECUTED, T0, note="filled")
        assert done.state is ExitState.EXECUTED
        assert done.client_order_id == "tk-x"
        assert not tx.exit_pending("KO")


def test_an_executed_exit_cannot_be_executed_again(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        tx.record_exit_intent(exit_intent())
        tx.transition_exit("x1", ExitState.SUBMITTED, T0, note="sent")
        tx.transition_exit("x1", ExitState.EXECUTED, T0, note="filled")
    with (
        pytest.raises(InvalidExitTransition, match="is executed; it cannot become submitted"),
        ledger.transaction() as tx,
    ):
        tx.transition_exit("x1", ExitState.SUBMITTED, T0, note="again")


def test_a_failed_transaction_leaves_nothing_behind(ledger: Ledger) -> None:
    intent = buy_intent()

    def write_then_fail() -> None:
        with ledger.transaction() as tx:
            tx.record_intent(intent)
            tx.record_order_event(intent.client_order_id, LedgerOrderStatus.SUBMITTING, T0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    with ledger.reading() as tx:
        assert tx.intent(intent.client_order_id) is None
        assert tx.pending_intents() == []


def test_reducing_a_position_the_ledger_does_not_hold_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="holds no open position"), ledger.transaction() as tx:
        tx.record_external_close("KO", Decimal(1), T0, "test")


def test_naive_times_and_floats_never_reach_the_database(ledger: Ledger) -> None:
    naive = datetime(2024, 1, 1)  # noqa: DTZ001
    with pytest.raises(Exception, match="timezone-aware"), ledger.transaction() as tx:
        tx.record_order_event("c", LedgerOrderStatus.NEW, naive)
    with pytest.raises(Exception, match="finite Decimals only"), ledger.transaction() as tx:
        tx.record_backfill("KO", 1.5, Decimal(1), T0, "x")  # type: ignore[arg-type]


# --- SQLite specifics ------------------------------------------------------------------------


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Ledger.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE tk_meta SET value = '99' WHERE key = 'schema_version'")
    engine.dispose()
    with pytest.raises(LedgerVersionError, match="schema version 99, newer than this tradekit"):
        Ledger.open(url)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"this is a spreadsheet, not a ledger" * 100)
    with pytest.raises(LedgerCorruptError, match="not a SQLite database"):
        Ledger.open(f"sqlite:///{path}")


def test_a_truncated_ledger_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger.open(f"sqlite:///{path}") as ledger, ledger.transaction() as tx:
        for i in range(200):
            tx.record_intent(buy_intent(key=f"k{i}"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with pytest.raises(LedgerCorruptError):
        Ledger.open(f"sqlite:///{path}")


def test_disk_full_rolls_the_whole_write_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger.open(url)
    intent = buy_intent()
    with ledger.transaction() as tx:
        tx.record_intent(intent)
    engine = ledger._engine

    @sa.event.listens_for(engine, "connect")
    def _tiny(dbapi_conn: object, _rec: object) -> None:
        # Cap the database at its current size: the next page it needs cannot be had.
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count = {pages}")
        cur.close()

    engine.dispose()  # pooled connections must reconnect to pick up the cap

    big = "x" * 200_000

    def fill_and_overflow() -> None:
        with ledger.transaction() as tx:
            tx.record_fill(fill(intent.client_order_id, "e1", "10", "50"))
            tx.record_order_event(intent.client_order_id, LedgerOrderStatus.FILLED, T0, detail=big)

    with pytest.raises(LedgerWriteError, match="full"):
        fill_and_overflow()
    sa.event.remove(engine, "connect", _tiny)
    engine.dispose()
    with ledger.reading() as tx:
        assert tx.open_positions() == {}
        assert tx.filled_qty(intent.client_order_id) == 0
    ledger.close()


def test_a_second_process_cannot_trade_on_the_same_sqlite_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from tradekit.ledger import Ledger
                ledger = Ledger.open("sqlite:///{path}", for_trading=True)
                print("locked", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LedgerInUseError, match=rf"pid {holder.pid}"):
            Ledger.open(f"sqlite:///{path}", for_trading=True)
        # Reading (the CLI's listings) is still allowed while a trader runs.
        with Ledger.open(f"sqlite:///{path}") as reader:
            assert reader.open_positions() == {}
    finally:
        holder.communicate("\n", timeout=30)
    # Once the trader is gone, the lock is free again (the OS releases it even on SIGKILL).
    Ledger.open(f"sqlite:///{path}", for_trading=True).close()


# --- PostgreSQL specifics --------------------------------------------------------------------


@pytest.mark.postgres
def test_wrong_postgres_credentials_are_a_clear_error_without_the_password() -> None:
    require_postgres()
    url = sa.make_url(PG_URL).set(username="no_such_role", password="s3cret-pw")
    with pytest.raises(LedgerConnectionError, match="no_such_role") as info:
        Ledger.open(url.render_as_string(hide_password=False))
    assert "s3cret-pw" not in str(info.value)


def test_an_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(LedgerConnectionError, match="not supported"):
        Ledger.open("mysql://localhost/x")
    with pytest.raises(LedgerConnectionError, match="neither a database URL nor a file path"):
        Ledger.open("::::")


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1000, 1, 2),  # noqa: DTZ001 - hypothesis attaches the zones itself
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_stored_times_are_the_fixed_width_utc_text_ledgers_always_held(moment: datetime) -> None:
    dialect = sa.create_engine("sqlite://").dialect
    stored = UtcText().process_bind_param(moment, dialect)
    # Exactly the text ledgers have always held (strftime), so SQL comparisons keep working.
    assert stored == moment.astimezone(UTC).strftime(_TIME_FORMAT)
    assert len(stored) == 32
    assert UtcText().process_result_value(stored, dialect) == moment
    assert UtcText().process_bind_param(moment, dialect) == stored  # remembered: the same text


def test_a_remembered_time_text_is_never_given_for_another_time() -> None:
    """Texts are remembered by the time object; times made and dropped one after another
    (whose ids are reused) each get their own text, past the memo's size."""
    dialect = sa.create_engine("sqlite://").dialect
    column = UtcText()
    for minute in range(3000):
        moment = T0 + timedelta(minutes=minute)
        assert column.process_bind_param(moment, dialect) == moment.astimezone(UTC).strftime(_TIME_FORMAT)
        shifted = moment.astimezone(timezone(timedelta(hours=-5)))  # the same instant, another object
        assert column.process_bind_param(shifted, dialect) == moment.astimezone(UTC).strftime(_TIME_FORMAT)


def test_queued_buys_wait_in_order_and_leave_the_queue_once_settled(ledger: Ledger) -> None:
    def buy(symbol: str, hour: int) -> Signal:
        return Signal(symbol=symbol, side=Side.BUY, confidence=5, generated_at=T0 + timedelta(hours=hour), source="pyr")

    ko, pfe, aapl = buy("KO", 1), buy("PFE", 2), buy("AAPL", 3)
    with ledger.transaction() as tx:
        assert [tx.queue_buy(s, "pyr", T0 + timedelta(hours=4)) for s in (ko, pfe, aapl)] == [True, True, True]
        assert tx.queue_buy(ko, "pyr", T0 + timedelta(hours=5)) is False  # queued once
        assert tx.queue_buy(buy("MSFT", 1), "other", T0) is True
    with ledger.transaction() as tx:
        tx.settle_queued_buy(pfe.signal_id, T0 + timedelta(days=1), decision_id="dec-1")
        tx.settle_queued_buy(pfe.signal_id, T0 + timedelta(days=2), decision_id="dec-2")  # settled once
    with ledger.reading() as tx:
        waiting = tx.queued_buys("pyr")
        # A settled signal is not queued again.
        with ledger.transaction() as again:
            assert again.queue_buy(pfe, "pyr", T0 + timedelta(days=3)) is False

    assert waiting == [ko, aapl]
