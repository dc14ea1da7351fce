"""The buffered (write-behind) ledger a replay uses: same rows, same answers, same safety."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tradekit import Strategy, StrategyScalingPolicy, StrategyView, evaluate_buy
from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.data import load_daily_bars
from tradekit.decision.trace import decode_trace, trace_text
from tradekit.domain import Bar, Fill, Side, Signal
from tradekit.execution.paper_run import run_paper_replay
from tradekit.ledger import DuplicateIntentError, Ledger, LedgerError, LedgerOrderStatus
from tradekit.ledger import buffered as write_behind
from tradekit.ledger import schema as t
from tradekit.ledger.buffered import BufferedLedger
from tradekit.ledger.records import EquityPoint, FillResult, IntentPurpose, OrderIntent
from tradekit.plugins import Plugins
from tradekit.seen_ids import SeenIds
from tradekit.strategy import PriceStructure
from tradekit.strategy.history import indicator, prior_high_column, sma_column
from tradekit.testing import make_context

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
FAST, SLOW, HIGH = sma_column(10), sma_column(30), prior_high_column(15)


class TrendAdder(Strategy):
    """Enters on a 15-day high, adds while above both averages, exits below the fast one."""

    name = "trend_adder"
    scaling_policy = StrategyScalingPolicy(
        allow_scaling=True,
        max_entries=3,
        min_bars_between_entries=2,
        price_structure=PriceStructure.PYRAMID,
        price_step_pct=Decimal(2),
        max_allocation_pct=Decimal(5),
        min_confidence=5,
    )

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        bar = view.bar
        fast = indicator(view.history, "fast", FAST)
        slow = indicator(view.history, "slow", SLOW)
        high = indicator(view.history, "high", HIGH)

        def signal(side: Side, reason: str) -> list[Signal]:
            return [
                Signal(
                    symbol=view.symbol,
                    side=side,
                    confidence=5,
                    generated_at=bar.time,
                    reference_price=bar.close,
                    source=self.name,
                    reason=reason,
                )
            ]

        if view.position is not None:
            if fast is not None and bar.close < fast:
                return signal(Side.SELL, "below the fast average")
            if fast is not None and slow is not None and bar.close > fast > slow:
                return signal(Side.BUY, "trend intact")
            return []
        if high is not None and bar.close > high:
            return signal(Side.BUY, "new high")
        return []


def _bars(cutoff: datetime = datetime(2004, 1, 1, tzinfo=UTC)) -> dict[str, list[Bar]]:
    return {s: [b for b in series if b.time < cutoff] for s, series in load_daily_bars(["AAPL", "MSFT"]).items()}


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows as stored (raw SQLite values: the exact text of times and
    decimals), in key order, with the (random) decision ids renamed by appearance and the
    decision traces unpacked."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(t.decisions.c.decision_id).order_by(t.decisions.c.id))]
            names = {d: f"decision-{n}" for n, d in enumerate(ids)}
            pattern = re.compile("|".join(map(re.escape, ids))) if ids else None
            out: dict[str, list[tuple[Any, ...]]] = {}
            for table in t.metadata.sorted_tables:
                order = ", ".join(c.name for c in table.primary_key.columns)
                rows = []
                for row in conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY {order}"):
                    # A packed trace holds its decision id deflated: compared as its document.
                    unpacked = (trace_text(v) if isinstance(v, str) else v for v in row)
                    values = tuple(
                        pattern.sub(lambda m: names[m.group(0)], v) if pattern and isinstance(v, str) else v
                        for v in unpacked
                    )
                    rows.append(values)
                out[table.name] = rows
            return out
    finally:
        engine.dispose()


@pytest.mark.parametrize("flush_every", [write_behind.FLUSH_EVERY, 5])
def test_a_buffered_replay_leaves_exactly_the_rows_a_committing_replay_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_every: int
) -> None:
    """Flushing every few rows, finished orders and settled signals leave memory all through
    the run and are read back whenever asked about: the rows are still the same."""
    monkeypatch.setattr(write_behind, "FLUSH_EVERY", flush_every)
    if flush_every < 10:  # and nothing stays for being recent: every order leaves as soon as it may
        monkeypatch.setattr(write_behind, "KEEP_RECENT", 0)
    retired: list[int] = []
    read_back: list[int] = []
    retire, back = BufferedLedger._retire_orders, BufferedLedger._read_back

    def counting_retire(self: BufferedLedger) -> None:
        before = self._state.retired_count
        retire(self)
        retired.append(self._state.retired_count - before)

    def counting_back(self: BufferedLedger, where: Any) -> Any:
        found = back(self, where)
        read_back.append(len(found))
        return found

    monkeypatch.setattr(BufferedLedger, "_retire_orders", counting_retire)
    monkeypatch.setattr(BufferedLedger, "_read_back", counting_back)
    plugins = Plugins(load_entrypoints=False, env={})
    # Partial fills and slippage, so fills, order events and position events are not one-to-one.
    config = PaperBrokerConfig(fill_slices=3, slippage_bps=Decimal(5), commission_per_order=Decimal(1))
    runs = {}
    for mode in ("committing", "buffered"):
        runs[mode] = run_paper_replay(
            strategy=TrendAdder,
            settings=Settings(),
            plugins=plugins,
            bars=_bars(),
            out_dir=tmp_path / mode,
            broker_config=config,
            chart=False,
            buffered=mode == "buffered",
        )
    committing, buffered = _dump(runs["committing"].ledger_url), _dump(runs["buffered"].ledger_url)
    # The run is not trivial: entries, scale-ins, exits and skipped signals all happened.
    purposes = {row[5] for row in committing["tk_order_intents"]}
    assert purposes == {"entry", "scale_in", "exit"}
    assert len(committing["tk_fills"]) > len(committing["tk_order_intents"])
    assert {row[5] for row in committing["tk_decisions"]} >= {"enter_new", "scale_in", "skip"}
    # One equity row per replayed close.
    assert len(committing["tk_equity"]) == runs["committing"].result.days
    for table, rows in committing.items():
        assert buffered[table] == rows, f"{table} differs between the buffered and the committing replay"
    assert runs["buffered"].summary == runs["committing"].summary
    if flush_every < 10:
        assert sum(retired) >= len(committing["tk_order_intents"]) * 0.9
        assert sum(read_back) > 0  # orders asked about after they left memory
    # And a decision trace is still a full, readable trace.
    row = committing["tk_decisions"][0]
    fields = ("decision_id", "symbol", "strategy", "signal_id", "action")
    trace = decode_trace(row[8], {**dict(zip(fields, row[1:6], strict=True)), "evaluated_at": row[9]})
    assert trace["checks"]
    assert trace["decision_id"] == row[1]
    assert row[7] == ""  # the summary is rendered from the trace when read


def _intent(key: str, side: Side = Side.BUY, symbol: str = "KO") -> OrderIntent:
    return OrderIntent(
        intent_key=key,
        symbol=symbol,
        side=side,
        purpose=IntentPurpose.ENTRY if side is Side.BUY else IntentPurpose.EXIT,
        created_at=T0,
        strategy="s",
        qty=Decimal(10),
    )


def _fill(intent: OrderIntent, execution: str, qty: str = "10", side: Side = Side.BUY) -> Fill:
    return Fill(
        execution_id=execution,
        client_order_id=intent.client_order_id,
        broker_order_id="b-1",
        symbol=intent.symbol,
        side=side,
        qty=Decimal(qty),
        price=Decimal(60),
        time=T0 + timedelta(seconds=1),
    )


def test_a_failed_transaction_leaves_memory_and_pending_rows_untouched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with BufferedLedger.open(url, for_trading=True) as ledger:
        assert isinstance(ledger, BufferedLedger)
        first = _intent("a|1")
        with ledger.transaction() as tx:
            tx.record_intent(first)
            tx.record_order_event(first.client_order_id, LedgerOrderStatus.SUBMITTING, T0)
            tx.record_fill(_fill(first, "x-1"))
            tx.record_equity(EquityPoint(time=T0, equity=Decimal(100), cash=Decimal(40)))
        before = ledger.open_positions()
        # The whole transaction must roll back, so several calls sit inside the raises block.
        with pytest.raises(DuplicateIntentError), ledger.transaction() as tx:  # noqa: PT012
            second = _intent("a|2")
            tx.record_intent(second)
            tx.record_order_event(second.client_order_id, LedgerOrderStatus.FILLED, T0)
            tx.record_fill(_fill(second, "x-2", qty="5"))
            orphan = _intent("b|1", side=Side.SELL, symbol="PFE")
            tx.record_intent(orphan)
            assert tx.record_fill(_fill(orphan, "x-3", side=Side.SELL)) is FillResult.UNAPPLIED  # nothing to reduce
            tx.queue_buy(Signal(symbol="KO", side=Side.BUY, confidence=5, generated_at=T0), "k", T0)
            tx.record_equity(EquityPoint(time=T0, equity=Decimal(90), cash=Decimal(30)))
            tx.record_order_event(first.client_order_id, LedgerOrderStatus.FILLED, T0)  # no longer unfinished
            assert [s.intent for s in tx.pending_intents()] == [orphan]
            tx.record_intent(first)  # already recorded: raises, and everything above rolls back
        with ledger.reading() as tx:
            assert tx.unapplied_fills() == []
            assert tx.queued_buys("k") == []
            assert ledger.open_positions() == before
            assert tx.intent(_intent("a|2").client_order_id) is None
            assert tx.intents_with_prefix("a|") == [first]
            assert tx.filled_qty(_intent("a|2").client_order_id) == 0
            pending = tx.pending_intents()
            assert [s.intent for s in pending] == [first]
            assert pending[0].status is LedgerOrderStatus.SUBMITTING
            assert tx.order_counts("KO", day_start=T0).orders_today == 1
            assert tx.equity_curve() == [EquityPoint(time=T0, equity=Decimal(100), cash=Decimal(40))]
            # The execution id of the rolled-back fill is free again.
            assert tx.record_fill(_fill(first, "x-2", qty="0.5")) is FillResult.APPLIED
    # What reached the file is exactly what committed.
    dumped = _dump(url)
    assert [r[2] for r in dumped["tk_order_intents"]] == ["a|1"]
    assert [r[1] for r in dumped["tk_fills"]] == ["x-1", "x-2"]
    assert [(r[0], r[2], r[4]) for r in dumped["tk_intent_heads"]] == [(first.client_order_id, "submitting", False)]


def test_a_revised_intent_is_served_from_memory_rolled_back_with_its_transaction_and_written_at_the_flush(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lost = _intent("exit|x")
    sent = attrs.evolve(lost, qty=Decimal(7))
    with BufferedLedger.open(url, for_trading=True) as ledger:
        with ledger.transaction() as tx:
            tx.record_intent(lost)
            tx.record_order_event(lost.client_order_id, LedgerOrderStatus.NOT_FOUND, T0)
        with pytest.raises(LedgerError), ledger.transaction() as tx:  # noqa: PT012
            tx.revise_intent(sent)
            tx.revise_intent(_intent("never|recorded"))
        with ledger.reading() as tx:
            assert tx.intent(lost.client_order_id) == lost
        ledger.flush()
        with ledger.transaction() as tx:
            tx.revise_intent(sent)  # its row is in the file already: rewritten at the next flush
            tx.record_order_event(lost.client_order_id, LedgerOrderStatus.SUBMITTING, T0)
        with ledger.reading() as tx:
            assert tx.intent(lost.client_order_id) == sent
            assert [i.qty for i in tx.order_intents()] == [Decimal(7)]  # flushed, read from the file
    with Ledger.open(url) as reopened, reopened.reading() as tx:
        assert tx.intent(lost.client_order_id) == sent


def test_a_buffered_ledger_answers_like_the_committing_one(tmp_path: Path) -> None:
    ledgers = [
        Ledger.open(f"sqlite:///{tmp_path / 'a.db'}", for_trading=True),
        BufferedLedger.open(f"sqlite:///{tmp_path / 'b.db'}", for_trading=True),
    ]
    decision = evaluate_buy(make_context(), plugins=Plugins(load_entrypoints=False, env={}))
    answers = []
    for ledger in ledgers:
        with ledger:
            buy, sell = _intent("k|1"), _intent("k|exit", side=Side.SELL)
            with ledger.transaction() as tx:
                tx.record_intent(buy)
                tx.record_order_event(buy.client_order_id, LedgerOrderStatus.PARTIALLY_FILLED, T0)
                tx.record_fill(_fill(buy, "e1", qty="4"))
                tx.record_fill(_fill(buy, "e2", qty="6"))
                tx.record_order_event(buy.client_order_id, LedgerOrderStatus.FILLED, T0, broker_order_id="b-1")
            with ledger.transaction() as tx:
                tx.record_intent(sell)
                tx.record_fill(_fill(sell, "e3", qty="10", side=Side.SELL))
                tx.record_decision(decision)
            signal = Signal(symbol="KO", side=Side.BUY, confidence=5, generated_at=T0, source="k")
            with ledger.transaction() as tx:
                tx.queue_buy(signal, "k", T0)
                tx.queue_buy(attrs.evolve(signal, symbol="PFE", signal_id="sig-pfe"), "k", T0)
                tx.settle_queued_buy(signal.signal_id, T0, decision_id=decision.decision_id)
            # Points out of time order, two at the same time: oldest first, then as recorded.
            for minutes, equity in ((5, 101), (0, 100), (5, 102), (3, 99)):
                with ledger.transaction() as tx:
                    tx.record_equity(
                        EquityPoint(time=T0 + timedelta(minutes=minutes), equity=Decimal(equity), cash=Decimal(1))
                    )
            pending = _intent("k|2")
            with ledger.transaction() as tx:
                tx.record_intent(pending)  # unfinished: recorded, never sent
            with ledger.reading() as tx:
                answers.append(
                    (
                        tx.open_positions(),
                        tx.position_history(),
                        tx.intent_state(buy.client_order_id),
                        tx.pending_intents("KO"),
                        tx.order_counts("KO", day_start=T0),
                        tx.fills_with_purpose(),
                        tx.intent_counts(),
                        tx.queued_buys("k"),
                        tx.pending_intents(),
                        tx.equity_curve(),
                    )
                )
    assert answers[0] == answers[1]
    assert [s.intent for s in answers[0][-2]] == [_intent("k|exit", side=Side.SELL), _intent("k|2")]
    assert [p.equity for p in answers[0][-1]] == [100, 99, 101, 102]
    assert [s.symbol for s in answers[0][-3]] == ["PFE"]
    assert answers[0][0] == {}  # bought 10 in two fills, sold 10: flat


def test_a_buffered_ledger_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with pytest.raises(LedgerError, match="opened for trading"):
        BufferedLedger.open(url)
    with Ledger.open(url, for_trading=True) as ledger, ledger.transaction() as tx:
        tx.record_intent(_intent("old|1"))
    with pytest.raises(LedgerError, match="starts empty"):
        BufferedLedger.open(url, for_trading=True)


def test_a_replay_refuses_bars_out_of_time_order(tmp_path: Path) -> None:
    bars = _bars()
    bars["AAPL"] = [bars["AAPL"][1], bars["AAPL"][0], *bars["AAPL"][2:]]
    with pytest.raises(ValueError, match="bars of AAPL must be in strictly increasing time order"):
        run_paper_replay(
            strategy=TrendAdder,
            settings=Settings(),
            plugins=Plugins(load_entrypoints=False, env={}),
            bars=bars,
            out_dir=tmp_path / "run",
            chart=False,
        )


def test_report_listings_inside_a_write_transaction_are_refused(tmp_path: Path) -> None:
    with BufferedLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}", for_trading=True) as ledger:
        # The listing is refused after a write in the same transaction, which then rolls back.
        with pytest.raises(LedgerError, match="outside a write transaction"), ledger.transaction() as tx:  # noqa: PT012
            tx.record_intent(_intent("k|1"))
            tx.intent_counts()
        # The refused transaction rolled back; outside one, listings flush and read.
        with ledger.reading() as tx:
            assert tx.intent_counts() == {}


def test_the_flush_writes_what_sqlalchemys_insert_writes(tmp_path: Path) -> None:
    """The buffered ledger's flush hands the driver tuples it prepared itself; what lands in
    the file is what ``conn.execute(table.insert(), rows)`` writes, value for value: rows
    that convert (Decimal, UTC time and boolean columns), and rows that leave a defaulted
    column unset (which go through SQLAlchemy, which fills the default)."""
    from tradekit.ledger.buffered import _insert, _insert_plan

    start = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
    equity = [
        {"time": start + timedelta(days=i), "equity": Decimal(100_000) + Decimal(i) / 7, "cash": Decimal("5.25")}
        for i in range(5)
    ]
    reconciliations = [{"started_at": start, "broker": "paper", "broker_ok": ok, "error": None} for ok in (True, False)]
    events = [{"client_order_id": "tk-1", "status": "accepted", "filled_qty": None, "time": start}]  # no detail
    tables = ((t.equity, equity), (t.reconciliations, reconciliations), (t.order_events, events))
    written: list[dict[str, list[tuple[Any, ...]]]] = []
    for name, write in (("ours", _insert), ("sqlalchemy", lambda c, table, rows: c.execute(table.insert(), rows))):
        engine = sa.create_engine(f"sqlite:///{tmp_path / name}.db")
        t.metadata.create_all(engine)
        with engine.begin() as conn:
            for table, rows in tables:
                write(conn, table, rows)
        with engine.connect() as conn:
            written.append(
                {
                    table.name: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY id")]
                    for table, _ in tables
                }
            )
        engine.dispose()
    assert written[0] == written[1]
    assert written[0][t.equity.name][0] == (1, "2024-03-01T14:30:00.000000+00:00", "100000", "5.25")
    assert written[0][t.order_events.name][0][-2:] == ("", "2024-03-01T14:30:00.000000+00:00")
    # The defaulted column left unset took SQLAlchemy's path; the others were prepared.
    dialect = sa.create_engine("sqlite://").dialect
    assert _insert_plan(dialect, t.order_events, tuple(events[0])) is None
    assert _insert_plan(dialect, t.equity, tuple(equity[0])) is not None


@given(st.lists(st.text(min_size=1, max_size=30), unique=True, max_size=400), st.integers(min_value=1, max_value=64))
def test_seen_ids_never_forget_an_id_however_many_they_take(ids: list[str], capacity: int) -> None:
    seen = SeenIds(capacity)
    for i, key in enumerate(ids):
        seen.add(key)
        assert all(earlier in seen for earlier in ids[: i + 1])


def test_seen_ids_rarely_answer_perhaps_for_a_new_id() -> None:
    seen = SeenIds(1_000)
    for i in range(5_000):  # past capacity: it grew to filters of 1,000 + 2,000 + 4,000 ids
        seen.add(f"sig-{i}")
    false_perhaps = sum(f"new-{i}" in seen for i in range(20_000))
    assert false_perhaps < 20_000 * 0.05
    assert seen.nbytes < 5_000 * 4


def test_settled_signals_leave_memory_and_are_still_refused_like_the_committing_ledger(tmp_path: Path) -> None:
    """A replay settles one queued buy a decision: once written, their ids leave memory, and a
    signal queued or settled again is refused exactly as the SQL ledger refuses it."""
    signals = [
        Signal(symbol="KO", side=Side.BUY, confidence=5, generated_at=T0 + timedelta(days=i), source="k")
        for i in range(300)
    ]
    answers: list[Any] = []
    for kind in (Ledger, BufferedLedger):
        with kind.open(f"sqlite:///{tmp_path / f'{kind.__name__}.db'}", for_trading=True) as ledger:
            for signal in signals:
                with ledger.transaction() as tx:
                    tx.queue_buy(signal, "k", T0)
                    tx.settle_queued_buy(signal.signal_id, T0, decision_id=None, note="judged")
            waiting = Signal(symbol="PFE", side=Side.BUY, confidence=5, generated_at=T0, source="k")
            with ledger.transaction() as tx:
                tx.queue_buy(waiting, "k", T0)
            if isinstance(ledger, BufferedLedger):
                ledger.flush()
                state = ledger._state
                assert list(state.queued_ids) == [waiting.signal_id]
                assert state.settled_ids == set()
            with ledger.transaction() as tx:
                again = [tx.queue_buy(s, "k", T0) for s in signals[::7]]
                for s in signals[::11]:
                    tx.settle_queued_buy(s.signal_id, T0, decision_id=None, note="twice")
                fresh = tx.queue_buy(attrs.evolve(signals[0], symbol="XOM", signal_id="sig-xom"), "k", T0)
            with ledger.reading() as tx:
                answers.append((again, fresh, [s.symbol for s in tx.queued_buys("k")]))
        rows = _dump(f"sqlite:///{tmp_path / f'{kind.__name__}.db'}")
        answers.append((rows["tk_queued_buys"], rows["tk_queued_buy_settlements"]))
    assert answers[0] == answers[2]
    assert answers[1] == answers[3]
    assert answers[0] == ([False] * len(signals[::7]), True, ["PFE", "XOM"])


def test_a_decision_settles_its_signals_queued_buy_in_both_ledgers_alike(tmp_path: Path) -> None:
    """Schema 5: the decision on a queued signal is what settles it (no settlement row); a
    transaction that fails puts it back in the queue, in its place; a signal decided before
    it was ever queued does not wait; and a reopened (resumed) ledger sees the same queue."""
    base = make_context()
    decided = evaluate_buy(base, plugins=Plugins(load_entrypoints=False, env={}))
    signals = [
        Signal(symbol=f"S{i}", side=Side.BUY, confidence=5, generated_at=T0 + timedelta(days=i), source="k")
        for i in range(4)
    ]

    def decision_on(signal: Signal, n: int) -> Any:
        return attrs.evolve(decided, decision_id=f"dec-{n}", symbol=signal.symbol, signal_id=signal.signal_id)

    seen: list[Any] = []
    for kind in (Ledger, BufferedLedger):
        url = f"sqlite:///{tmp_path / f'{kind.__name__}.db'}"
        with kind.open(url, for_trading=True) as ledger:
            with ledger.transaction() as tx:
                for signal in signals[:3]:
                    tx.queue_buy(signal, "k", T0)
            with ledger.transaction() as tx:
                tx.record_decision(decision_on(signals[1], 1))
                tx.settle_queued_buy(signals[1].signal_id, T0, decision_id="dec-1")
            with pytest.raises(LedgerError), ledger.transaction() as tx:  # noqa: PT012
                tx.record_decision(decision_on(signals[0], 2))
                assert [s.symbol for s in tx.queued_buys("k")] == ["S2"]
                raise LedgerError("the transaction fails after the decision")
            with ledger.transaction() as tx:
                tx.record_decision(decision_on(signals[3], 3))  # never queued: settles nothing
                assert tx.queue_buy(signals[3], "k", T0)  # kept, but already judged
            with ledger.reading() as tx:
                live = [s.symbol for s in tx.queued_buys("k")]
        reopened = (
            BufferedLedger.open(url, for_trading=True, resume=True) if kind is BufferedLedger else Ledger.open(url)
        )
        with reopened as ledger, ledger.reading() as tx:
            after = [s.symbol for s in tx.queued_buys("k")]
        rows = _dump(url)
        seen.append((live, after, rows["tk_queued_buys"], rows["tk_queued_buy_settlements"], rows["tk_decisions"]))
    assert seen[0][:2] == seen[1][:2] == (["S0", "S2"], ["S0", "S2"])
    assert seen[0][2:] == seen[1][2:]
    assert seen[0][3] == []  # the decisions settled; no settlement rows


def test_a_resumed_buffered_ledger_keeps_refusing_settled_signals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    signals = [
        Signal(symbol="KO", side=Side.BUY, confidence=5, generated_at=T0 + timedelta(days=i), source="k")
        for i in range(5)
    ]
    with BufferedLedger.open(url, for_trading=True) as ledger:
        for signal in signals:
            with ledger.transaction() as tx:
                tx.queue_buy(signal, "k", T0)
        with ledger.transaction() as tx:
            tx.settle_queued_buy(signals[0].signal_id, T0, decision_id=None)
    with BufferedLedger.open(url, for_trading=True, resume=True) as ledger:
        assert ledger._state.settled_ids == set()
        with ledger.transaction() as tx:
            assert not tx.queue_buy(signals[0], "k", T0)
            assert not tx.queue_buy(signals[3], "k", T0)
            tx.settle_queued_buy(signals[0].signal_id, T0, decision_id=None, note="twice")
            assert [s.signal_id for s in tx.queued_buys("k")] == [s.signal_id for s in signals[1:]]
    rows = _dump(url)
    assert len(rows["tk_queued_buy_settlements"]) == 1
    assert len(rows["tk_queued_buys"]) == 5


def test_finished_orders_left_memory_and_are_answered_like_the_committing_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "KEEP_RECENT", 0)  # finished orders leave at the first flush
    answers: list[Any] = []
    for kind in (Ledger, BufferedLedger):
        with kind.open(f"sqlite:///{tmp_path / f'{kind.__name__}.db'}", for_trading=True) as ledger:
            first, canceled = _intent("exit|x1|1", side=Side.BUY), _intent("exit|x1|2")
            other = _intent("exit|y1|1")
            sell = _intent("sell|x1|1", side=Side.SELL)
            with ledger.transaction() as tx:
                for intent in (first, canceled, other):
                    tx.record_intent(intent)
                tx.record_fill(_fill(first, "e1", qty="4"))
                tx.record_order_event(first.client_order_id, LedgerOrderStatus.CANCELED, T0)
                tx.record_order_event(canceled.client_order_id, LedgerOrderStatus.CANCELED, T0)
                tx.record_order_event(other.client_order_id, LedgerOrderStatus.NOT_FOUND, T0)
            with ledger.transaction() as tx:  # the position the fill opened is closed
                tx.record_intent(sell)
                tx.record_fill(_fill(sell, "e0", qty="4", side=Side.SELL))
                tx.record_order_event(sell.client_order_id, LedgerOrderStatus.FILLED, T0)
            if isinstance(ledger, BufferedLedger):
                ledger.flush()
                assert first.client_order_id not in ledger._state.heads
                assert canceled.client_order_id not in ledger._state.heads
                assert "e1" not in ledger._state.execution_ids
            with ledger.transaction() as tx:
                with pytest.raises(DuplicateIntentError):
                    tx.record_intent(attrs.evolve(canceled))  # first thing asked about it
                attempts = [i.intent_key for i in tx.intents_with_prefix("exit|x1")]
                duplicate = tx.record_fill(_fill(first, "e1", qty="4"))
                late = tx.record_fill(_fill(canceled, "e2", qty="1"))
                given_up = [i.intent_key for i in tx.intents_with_status(LedgerOrderStatus.NOT_FOUND, since=T0)]
                state = tx.intent_state(first.client_order_id)
                answers.append(
                    (
                        attempts,
                        duplicate,
                        late,
                        given_up,
                        state,
                        tx.filled_qty(canceled.client_order_id),
                    )
                )
            if isinstance(ledger, BufferedLedger):
                ledger.flush()
        answers.append(_dump(f"sqlite:///{tmp_path / f'{kind.__name__}.db'}"))
    assert answers[0] == answers[2]
    assert answers[1] == answers[3]
    assert answers[0][:4] == (["exit|x1|1", "exit|x1|2"], FillResult.DUPLICATE, FillResult.APPLIED, ["exit|y1|1"])


def test_the_most_recent_finished_orders_stay_in_memory_and_older_ones_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's events about an order arrive after it was recorded: the latest finished
    orders and executions are answered from memory (no read of the file), the older ones
    leave it at a flush and are read back, with the same answers."""
    monkeypatch.setattr(write_behind, "KEEP_RECENT", 3)
    reads: list[int] = []
    back, written = BufferedLedger._read_back, BufferedLedger._written

    def counted_back(self: BufferedLedger, where: Any) -> Any:
        reads.append(1)
        return back(self, where)

    def counted_written(self: BufferedLedger, column: Any, value: str) -> bool:
        reads.append(1)
        return written(self, column, value)

    monkeypatch.setattr(BufferedLedger, "_read_back", counted_back)
    monkeypatch.setattr(BufferedLedger, "_written", counted_written)
    intents = [_intent(f"buy|k{n}|1", symbol=f"K{n}") for n in range(5)]
    with BufferedLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}", for_trading=True) as ledger:
        for n, intent in enumerate(intents):
            with ledger.transaction() as tx:
                tx.record_intent(intent)
                tx.record_fill(_fill(intent, f"e{n}"))
                tx.record_order_event(intent.client_order_id, LedgerOrderStatus.FILLED, T0)
            with ledger.transaction() as tx:  # closed, so nothing holds the order in memory
                sell = _intent(f"sell|k{n}|1", side=Side.SELL, symbol=f"K{n}")
                tx.record_intent(sell)
                tx.record_fill(_fill(sell, f"x{n}", side=Side.SELL))
                tx.record_order_event(sell.client_order_id, LedgerOrderStatus.FILLED, T0)
        ledger.flush()
        state = ledger._state
        kept = [i for i in intents if i.client_order_id in state.heads]
        assert kept == intents[-1:]  # 10 finished orders: the last three are the last sells and buy
        assert [e for e in ("e0", "e1", "e2", "e3", "e4") if e in state.execution_ids] == ["e4"]
        with ledger.transaction() as tx:  # a late duplicate event of a recent order: memory answers
            assert tx.record_fill(_fill(intents[-1], "e4")) is FillResult.DUPLICATE
            assert tx.filled_qty(intents[-1].client_order_id) == Decimal(10)
        assert reads == []
        with ledger.transaction() as tx:  # an older one is read back from the file
            assert tx.record_fill(_fill(intents[0], "e0")) is FillResult.DUPLICATE
            assert tx.filled_qty(intents[0].client_order_id) == Decimal(10)
        assert len(reads) == 2


def test_a_replay_keeps_its_paper_orders_beside_the_ledger_not_in_memory(tmp_path: Path) -> None:
    run = run_paper_replay(
        strategy=TrendAdder, settings=Settings(), plugins=Plugins(load_entrypoints=False, env={}),
        bars=_bars(), out_dir=tmp_path / "run", chart=False,
    )  # fmt: skip
    archive = tmp_path / "run" / "paper-orders.db"
    conn = sqlite3.connect(archive)
    try:
        archived = {row[0] for row in conn.execute("SELECT client_order_id FROM orders")}
        received = conn.execute("SELECT count(*) FROM received").fetchone()[0]
    finally:
        conn.close()
    rows = _dump(run.ledger_url)
    sent = {row[1] for row in rows["tk_order_intents"]}
    assert len(sent) == sum(run.summary.orders_by_purpose.values()) > 10
    assert archived == sent  # every order the run placed finished, and is kept there
    assert received == len(sent)
