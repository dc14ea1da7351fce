"""A write-behind ledger for replays: the same reads and appends, state kept in memory.

A paper replay is one process trading a fresh SQLite ledger against a paper broker whose
state lives in the same process. Nothing outside can change either, so every read the
pipeline makes (positions, pending intents, counters, planned exits) can be answered from
memory, and the rows can be written in batches instead of one commit per step — which is
what "replay may batch commits" allows. Live trading never uses this: it commits every
intent before the order is sent (``Ledger.open``).

The rows written are the ones ``LedgerTx`` writes, built by the same helpers, so a replay's
ledger file reads exactly like a live one (``tests/core_tests/test_buffered_ledger.py`` runs
the same replay both ways and compares every table). Transactions keep their meaning: a
``transaction()`` block that raises leaves neither memory nor the pending rows changed.
Listings that only reports need (decision history, fills for a chart, the last
reconciliation) flush the pending rows and read them back through SQL.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Engine

import tradekit.ledger.schema as t
from tradekit.decision.verdict import BuyDecision
from tradekit.domain.orders import Fill
from tradekit.domain.positions import Position
from tradekit.domain.signals import Side, Signal
from tradekit.domain.values import ZERO
from tradekit.exits.calendar import ExecutionWindow
from tradekit.exits.intent import ExitIntent, ExitState
from tradekit.guard.records import Mark, closed_trade, hold_row, mark_row, transition_row
from tradekit.guard.state import ClosedTrade, Hold, Scope, TradingStates, Transition, Trigger
from tradekit.ledger.errors import DuplicateIntentError, InvalidExitTransition, LedgerError
from tradekit.ledger.records import (
    EquityPoint,
    ExitTransition,
    FillResult,
    IntentPurpose,
    IntentState,
    LedgerOrderStatus,
    LifeEvent,
    OrderCounts,
    OrderEventRecord,
    OrderIntent,
    OrderOutcome,
    PositionEventRecord,
    StoredDecision,
    UnappliedFill,
)
from tradekit.ledger.store import (
    _BLOCKING_FINDINGS,
    _EXIT_IN_FLIGHT,
    _REDUCING,
    IDS_PER_QUERY,
    SETTLING_COLUMNS,
    Ledger,
    LedgerTx,
    PositionKind,
    _intent_from_row,
    advance_exit,
    check_exit_transition,
    decision_row,
    equity_row,
    exit_intent_row,
    exit_transition_row,
    fill_position_event,
    fill_row,
    finding_rows,
    first_exit_transition_row,
    fold_position,
    intent_row,
    order_event_row,
    pack_rows,
    queued_buy_row,
    revised_columns,
    settlement_row,
    signal_from_text,
    unapplicable,
    unapplied_row,
    waiting_buys_query,
)
from tradekit.reconcile.report import ReconcileReport
from tradekit.seen_ids import SeenIds

R = TypeVar("R")

# Rows are flushed once this many are pending (and at close): bounds memory on long replays
# (a pending decision row is ~0.5 KB with its packed trace: a few MB). Fewer, larger batches write each hot
# page (a table's last leaf, its indexes') fewer times: 4,000 instead of 500 made a 47-symbol
# every-bar replay ~10% faster. A resumable replay flushes at its checkpoints instead.
FLUSH_EVERY = 4000
# The most recent finished orders and written executions stay in memory, however many
# flushes pass: the broker's events about an order (its acceptance, its fills) are applied
# after the pipeline recorded it, a replay drains them once a step, and a session of
# hundreds of symbols flushes several times in between. Older ones leave memory.
KEEP_RECENT = 1024

_APPEND_ORDER = (
    t.order_intents,
    t.order_events,
    t.fills,
    t.position_events,
    t.decisions,
    t.reconciliations,
    t.reconcile_findings,
    t.exit_intents,
    t.exit_transitions,
    t.queued_buys,
    t.queued_buy_settlements,
    t.unapplied_fills,
    t.unapplied_fill_settlements,
    t.equity,
    t.trading_state_transitions,
)


class _PositionEvent(NamedTuple):
    # The fields fold_position reads, as a row of tk_position_events has them.
    kind: str
    time: datetime
    price: Decimal | None
    qty: Decimal
    strategy: str | None
    confidence: int | None
    client_order_id: str | None
    reason: str


@attrs.define
class _Head:
    """One intent's latest order status (the memory twin of a tk_intent_heads row)."""

    seq: int
    intent: OrderIntent
    status: LedgerOrderStatus | None = None
    broker_order_id: str | None = None
    terminal: bool = False


@attrs.define
class _Lifecycle:
    """One symbol's current position lifecycle (twin of tk_position_heads + its events)."""

    lifecycle: int
    is_open: bool
    qty: Decimal
    events: list[_PositionEvent]
    folded: Position | None = None


@attrs.define
class _Exit:
    """An exit intent as the SQL listing rebuilds it: its row plus its latest transition."""

    seq_key: tuple[datetime, str]
    intent: ExitIntent


class _State:
    def __init__(self) -> None:
        self.heads: dict[str, _Head] = {}
        self.keys: list[str] = []  # intent keys, sorted (prefix lookups)
        self.coid_by_key: dict[str, str] = {}
        self.open_by_symbol: dict[str, dict[str, None]] = defaultdict(dict)
        self.open_count = 0  # orders in open_by_symbol, all symbols together
        self.created: list[datetime] = []  # every intent's created_at, sorted
        self.buys_created: dict[str, list[datetime]] = defaultdict(list)
        self.last_created: dict[str, datetime] = {}
        self.filled: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.execution_ids: set[str] = set()
        self.positions: dict[str, _Lifecycle] = {}
        self.exits: dict[str, _Exit] = {}
        self.exits_in_flight: dict[str, set[str]] = defaultdict(set)
        self.unreconciled: frozenset[str] = frozenset()
        self.unapplied: dict[str, UnappliedFill] = {}  # by execution id, unsettled ones
        self.unapplied_fills: dict[str, Fill] = {}  # their fills, for reconciliation to re-derive
        # Queued buys still waiting, per strategy (in queue order), and every id ever queued
        # or settled (a duplicate is refused as the SQL ledger refuses it).
        self.queued: dict[str, dict[str, Signal]] = defaultdict(dict)
        self.queued_ids: dict[str, int] = {}  # signal id -> its place in the queue
        self.queue_seq = 0
        self.settled_ids: set[str] = set()
        # Settled since the last flush: once their rows are written they leave both id sets for
        # ``retired_signals``, so memory does not grow with the number of decisions.
        self.settled_unwritten: list[str] = []
        self.retired_signals = SeenIds()
        # Orders over and done with leave memory the same way once their rows are written
        # (``BufferedLedger._retire_orders``): a finished order that is asked about again is read
        # back from the file. ``retired_keys`` holds every "|"-separated prefix of their keys.
        self.intent_seq = 0  # the next intent's place in recording order (its row id - 1)
        self.terminal_unretired: list[str] = []
        # How many of them the last retirement left waiting (in use, or among the most
        # recent): the next looks again once KEEP_RECENT more have finished, so a flush
        # costs what finished since, not every order an open position still holds.
        self.terminal_kept = 0
        self.retired_orders = SeenIds()
        self.retired_keys = SeenIds()
        self.retired_count = 0
        # Executions recorded and not yet retired, oldest first (the last KEEP_RECENT stay).
        self.executions_unwritten: list[str] = []
        self.retired_executions = SeenIds()
        self.reconciliation_ids = 0
        self.pending: dict[sa.Table, list[dict[str, Any]]] = {table: [] for table in _APPEND_ORDER}
        self.pending_count = 0
        self.dirty_intent_heads: set[str] = set()
        # Intents revised since the last flush (``LedgerTx.revise_intent``): their rows are
        # rewritten from their heads' intents, after the batch's inserts.
        self.revised_intents: set[str] = set()
        self.dirty_position_heads: set[str] = set()
        self.dirty_exit_heads: set[str] = set()
        # The trading-state guard: its holds, its marks, and what it reads of closed positions.
        self.holds: dict[tuple[Scope, Trigger], Hold] = {}
        self.trading_states: TradingStates | None = TradingStates()
        self.marks: dict[str, Mark] = {}
        self.commission: dict[str, Decimal] = {}
        self.closed_trades: list[ClosedTrade] = []
        self.dirty_holds: set[tuple[Scope, Trigger]] = set()
        self.dirty_marks: set[str] = set()
        # The equity curve, one point a session: the run's statistics read it back whole at
        # the end, and it is small (13 years of sessions: ~3,300 points, whatever the symbols).
        self.equity: list[EquityPoint] = []


class BufferedLedger(Ledger):
    """An exclusive SQLite ledger whose state is served from memory and written in batches.

    Open with ``BufferedLedger.open(url, for_trading=True)`` on an empty SQLite
    ledger. ``flush()`` writes pending rows in one transaction; ``close()`` flushes. Used
    from one thread (a replay's). A failed flush keeps the rows pending and raises; rows a
    crash leaves unflushed are lost with the replay, which is rerun into a new ledger.
    """

    def __init__(self, engine: Engine, *, lock_file: IO[str] | None, schema: str | None, resume: bool = False) -> None:
        super().__init__(engine, lock_file=lock_file, schema=schema)
        self._state = _State()
        self._reader: _Reading | None = None
        self._undo: list[Callable[[], None]] | None = None
        # Load an existing file's state instead of refusing it: a replay continuing from its
        # last checkpoint.
        self._resume = resume
        # Off while a checkpointed replay runs: rows are written only at its checkpoints, so the
        # file always holds a whole checkpoint (see checkpoint()).
        self.auto_flush = True

    def _prepare(self, path: Path | None) -> None:
        if self._lock_file is None:
            raise LedgerError("a buffered ledger needs a SQLite ledger file opened for trading (one writer)")
        super()._prepare(path)
        with super().reading() as tx:
            counts = tx.intent_counts()
            positions = tx.open_positions()
            reconciled = tx.last_reconciliation() is not None
            if self._resume:
                self._state = _load_state(tx)
                return
        if counts or positions or reconciled:
            raise LedgerError(
                f"a buffered ledger starts empty, and {self.url} already holds records: replay into a new ledger file"
            )

    # --- transactions ---------------------------------------------------------------------------

    def transaction(
        self, *, lock_symbol: str | None = None, lock_account: bool = False, lock_buys: bool = False
    ) -> contextlib.AbstractContextManager[LedgerTx]:
        # Context managers written as classes: a replay opens tens of thousands (a dozen
        # reads a session), and a generator-based one costs ~10x as much to enter and leave.
        return _Transaction(self)

    def reading(self) -> contextlib.AbstractContextManager[LedgerTx]:
        # Reads change nothing, so one view serves them all (a replay reads a dozen times a
        # session); it is made again if the state it views was replaced (a resumed file's).
        reader = self._reader
        if reader is None or reader.state is not self._state:
            reader = self._reader = _Reading(_MemoryTx(self))
        return reader

    def sending(self) -> contextlib.AbstractContextManager[LedgerTx]:
        return _Reading(_MemoryTx(self))

    def unreconciled_symbols(self) -> frozenset[str]:
        return _MemoryTx(self).unreconciled_symbols()

    def open_positions(self) -> dict[str, Position]:
        return _MemoryTx(self).open_positions()

    def position(self, symbol: str) -> Position | None:
        # Asked for every symbol at every close (most are not held): no view is made.
        return _open_position(self._state, symbol)

    def _journal(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def _append(self, table: sa.Table, row: dict[str, Any]) -> None:
        rows = self._state.pending[table]
        rows.append(row)
        self._state.pending_count += 1

        def undo() -> None:
            rows.pop()
            self._state.pending_count -= 1

        self._journal(undo)

    # --- writing --------------------------------------------------------------------------------

    def checkpoint(self, write: Callable[[sa.Connection], None]) -> int:
        """Write every pending row and, in the same transaction, what ``write`` writes (a
        replay's checkpoint record): the file then holds exactly one more whole checkpoint."""
        return self.flush(also=write)

    def flush(self, *, also: Callable[[sa.Connection], None] | None = None) -> int:
        """Write every pending row (and the heads they changed) in one transaction."""
        state = self._state
        if (
            also is None
            and state.pending_count == 0
            and not (
                state.dirty_intent_heads
                or state.dirty_position_heads
                or state.dirty_exit_heads
                or state.dirty_holds
                or state.dirty_marks
                or state.revised_intents
            )
        ):
            return 0
        written = state.pending_count
        pack_rows(state.pending[t.decisions])  # in place, and only once: a failed flush keeps them packed
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(tk_write=True)
                with conn.begin():
                    for table in _APPEND_ORDER:
                        rows = state.pending[table]
                        if rows:
                            _insert(conn, table, rows)
                    self._write_revisions(conn)
                    self._write_heads(conn)
                    if also is not None:
                        also(conn)
        except exc.DBAPIError as e:
            # The rows stay pending (and memory stays as it was): a later flush retries.
            raise self._translate(e) from None
        for table in _APPEND_ORDER:
            state.pending[table] = []
        state.pending_count = 0
        state.dirty_intent_heads.clear()
        state.revised_intents.clear()
        state.dirty_position_heads.clear()
        state.dirty_exit_heads.clear()
        state.dirty_holds.clear()
        state.dirty_marks.clear()
        if self._undo is None:
            self._retire_settled_signals()
            self._retire_orders()
        return written

    def _retire_orders(self) -> None:
        """Forget finished orders whose rows are written, unless something still reads them
        from memory: an open position's entries (their commissions count when it closes) and
        fills kept for re-derivation wait for a later flush, and the KEEP_RECENT most recent
        stay (their broker events may not have been applied yet). Executions likewise."""
        state = self._state
        unretired = state.executions_unwritten
        cut = max(0, len(unretired) - KEEP_RECENT)
        for execution_id in unretired[:cut]:
            if execution_id in state.execution_ids:
                state.execution_ids.discard(execution_id)
                state.retired_executions.add(execution_id)
        state.executions_unwritten = unretired[cut:]
        if len(state.terminal_unretired) <= state.terminal_kept + KEEP_RECENT:
            return
        in_use = {
            e.client_order_id for lifecycle in state.positions.values() if lifecycle.is_open for e in lifecycle.events
        }
        in_use.update(fill.client_order_id for fill in state.unapplied_fills.values())
        ready, waiting = [], []
        for coid in dict.fromkeys(state.terminal_unretired):
            head = state.heads.get(coid)
            if head is None or not head.terminal:
                continue
            if coid in in_use or coid in state.dirty_intent_heads:
                waiting.append(coid)
                continue
            ready.append(coid)
        cut = max(0, len(ready) - KEEP_RECENT)
        waiting += ready[cut:]  # the most recent stay a while
        for coid in ready[:cut]:
            head = state.heads[coid]
            key = head.intent.intent_key
            del state.heads[coid]
            del state.coid_by_key[key]
            state.keys.pop(bisect.bisect_left(state.keys, key))
            state.filled.pop(coid, None)
            state.commission.pop(coid, None)
            state.retired_orders.add(coid)
            for end in range(len(key)):
                if key[end] == "|":
                    state.retired_keys.add(key[:end])
            state.retired_keys.add(key)
            state.retired_count += 1
        state.terminal_unretired = waiting
        state.terminal_kept = len(waiting)

    def _read_back(self, where: sa.ColumnElement[bool]) -> list[_Head]:
        """Retired intents matching ``where``, back in memory (to leave again at a later flush)."""
        state = self._state
        i, h, f = t.order_intents, t.intent_heads, t.fills
        try:
            with self._engine.connect() as conn:
                rows = list(
                    conn.execute(
                        sa.select(i, h.c.status, h.c.broker_order_id, h.c.terminal)
                        .join(h, h.c.client_order_id == i.c.client_order_id)
                        .where(where)
                        .order_by(i.c.id)
                    )
                )
                found = []
                for row in rows:
                    intent = _intent_from_row(row._mapping)
                    coid = intent.client_order_id
                    if coid in state.heads:
                        found.append(state.heads[coid])
                        continue
                    fills = conn.execute(sa.select(f.c.qty, f.c.commission).where(f.c.client_order_id == coid))
                    filled, commission = ZERO, None
                    for fill in fills:
                        filled += fill.qty
                        commission = (commission or ZERO) + fill.commission
                    status = LedgerOrderStatus(row.status) if row.status else None
                    head = state.heads[coid] = _Head(
                        seq=row.id - 1,
                        intent=intent,
                        status=status,
                        broker_order_id=row.broker_order_id,
                        terminal=bool(row.terminal),
                    )
                    state.coid_by_key[intent.intent_key] = coid
                    bisect.insort(state.keys, intent.intent_key)
                    if filled:
                        state.filled[coid] = filled
                    if commission is not None:
                        state.commission[coid] = commission
                    if head.terminal:
                        state.terminal_unretired.append(coid)
                    found.append(head)
                return found
        except exc.DBAPIError as e:
            raise self._translate(e) from None

    def _retire_settled_signals(self) -> None:
        state = self._state
        retired = state.retired_signals
        for signal_id in state.settled_unwritten:
            state.settled_ids.discard(signal_id)
            state.queued_ids.pop(signal_id, None)
            retired.add(signal_id)
        state.settled_unwritten = []

    def _written(self, column: sa.Column[Any], value: str) -> bool:
        """Whether a row already in the file has ``value`` in ``column`` (a retired id's "perhaps")."""
        try:
            with self._engine.connect() as conn:
                return conn.execute(sa.select(column).where(column == value).limit(1)).first() is not None
        except exc.DBAPIError as e:
            raise self._translate(e) from None

    def _write_revisions(self, conn: sa.Connection) -> None:
        state = self._state
        for coid in sorted(state.revised_intents):
            conn.execute(
                t.order_intents.update()
                .where(t.order_intents.c.client_order_id == coid)
                .values(**revised_columns(state.heads[coid].intent))
            )

    def _write_heads(self, conn: sa.Connection) -> None:
        state = self._state
        coids = sorted(state.dirty_intent_heads)
        _replace(
            conn,
            t.intent_heads,
            t.intent_heads.c.client_order_id,
            coids,
            [_intent_head_row(state.heads[c]) for c in coids],
        )
        symbols = sorted(state.dirty_position_heads)
        _replace(
            conn,
            t.position_heads,
            t.position_heads.c.symbol,
            symbols,
            [
                {"symbol": s, "lifecycle": state.positions[s].lifecycle, "is_open": state.positions[s].is_open}
                for s in symbols
            ],
        )
        ids = sorted(state.dirty_exit_heads)
        _replace(
            conn,
            t.exit_heads,
            t.exit_heads.c.intent_id,
            ids,
            [
                {"intent_id": i, "symbol": state.exits[i].intent.symbol, "state": state.exits[i].intent.state.value}
                for i in ids
            ],
        )
        holds = t.trading_state_holds
        dirty = sorted(state.dirty_holds)
        if dirty:
            conn.execute(
                holds.delete().where(holds.c.scope == sa.bindparam("s"), holds.c.trigger == sa.bindparam("g")),
                [{"s": str(scope), "g": trigger.value} for scope, trigger in dirty],
            )
            standing = [hold_row(state.holds[key]) for key in dirty if key in state.holds]
            if standing:
                conn.execute(holds.insert(), standing)
        names = sorted(state.dirty_marks)
        _replace(
            conn,
            t.trading_state_marks,
            t.trading_state_marks.c.name,
            names,
            [mark_row(n, state.marks[n]) for n in names],
        )

    def close(self) -> None:
        try:
            # A checkpointed replay that stops between two checkpoints keeps the file at the
            # last one (what follows is replayed when it continues).
            if self._undo is None and self.auto_flush:
                self.flush()
        finally:
            super().close()

    def _sql(self, read: Callable[[LedgerTx], R]) -> R:
        if not self.auto_flush:
            # A flush between two checkpoints would leave the file holding half of one.
            raise LedgerError("report listings are read after a checkpointed replay, not while it runs")
        if self._undo is not None:
            # Flushing now would write rows a later failure in this transaction rolls back.
            raise LedgerError("report listings are read outside a write transaction on a buffered ledger")
        self.flush()
        with super().reading() as tx:
            return read(tx)


def _open_position(state: _State, symbol: str) -> Position | None:
    """``symbol``'s open position, folded from its events once until they change."""
    head = state.positions.get(symbol)
    if head is None or not head.is_open:
        return None
    if head.folded is None:
        head.folded = fold_position(symbol, head.events)
    return head.folded


def _point_time(point: EquityPoint) -> datetime:
    return point.time


def _closing_order(trade: ClosedTrade) -> tuple[datetime, str]:
    return (trade.closed_at, trade.symbol)


def _intent_head_row(head: _Head) -> dict[str, Any]:
    status = head.status
    return {
        "client_order_id": head.intent.client_order_id,
        "symbol": head.intent.symbol,
        "status": None if status is None else status.value,
        "broker_order_id": head.broker_order_id,
        "terminal": head.terminal,
    }


class _Reading:
    """``with ledger.reading() as tx``: a view of the buffered state; nothing to undo."""

    __slots__ = ("_tx",)

    def __init__(self, tx: _MemoryTx) -> None:
        self._tx = tx

    @property
    def state(self) -> _State:
        return self._tx._s

    def __enter__(self) -> LedgerTx:
        return self._tx

    def __exit__(self, *exc_info: object) -> None:
        return None


class _Transaction:
    """``with ledger.transaction() as tx``: changes applied to the buffered state at once and
    journaled; an exception undoes them (newest first) and propagates. Leaving it cleanly
    flushes when enough rows are pending (unless the ledger's ``auto_flush`` is off)."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: BufferedLedger) -> None:
        self._ledger = ledger

    def __enter__(self) -> LedgerTx:
        ledger = self._ledger
        if ledger._undo is not None:
            raise LedgerError("buffered ledger transactions do not nest")
        ledger._undo = []
        return _MemoryTx(ledger)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        ledger = self._ledger
        undo, ledger._undo = ledger._undo, None
        if exc_type is not None:
            for step in reversed(undo or ()):
                step()
            return
        if ledger.auto_flush and ledger._state.pending_count >= FLUSH_EVERY:
            ledger.flush()


def _after_prefix(prefix: str) -> str:
    """The least string above every string that starts with ``prefix`` (SQLite compares text
    by its UTF-8 bytes, which orders as Python orders code points)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"


def _replace(
    conn: sa.Connection, table: sa.Table, key: sa.Column[Any], keys: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    for start in range(0, len(keys), IDS_PER_QUERY):
        conn.execute(table.delete().where(key.in_(keys[start : start + IDS_PER_QUERY])))
    if rows:
        _insert(conn, table, rows)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` in one ``executemany``: the statement and each column's bind processor
    (``DecimalText``, ``UtcText``: the same conversions and checks) are prepared once per
    table, and the driver gets plain tuples. Through ``conn.execute(table.insert(), rows)``
    SQLAlchemy builds the parameters row by row, which cost about as much as the rest of a
    replay's flush. Rows of mixed shapes, or that leave a column with a default unset, take
    that path instead (SQLAlchemy fills the defaults)."""
    keys = rows[0].keys()
    plan = _insert_plan(conn.dialect, table, tuple(keys))
    if plan is None or any(row.keys() != keys for row in rows):
        conn.execute(table.insert(), rows)
        return
    conn.exec_driver_sql(plan.sql, list(map(plan.values, rows)))


# A row's values in an insert statement's order, each through its column's bind processor.
RowValues = Callable[[dict[str, Any]], tuple[Any, ...]]


@attrs.frozen
class _InsertPlan:
    sql: str
    values: RowValues


_PLANS: dict[tuple[str, str, tuple[str, ...]], _InsertPlan | None] = {}


def _insert_plan(dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...]) -> _InsertPlan | None:
    cache_key = (dialect.name, table.fullname, keys)
    if cache_key in _PLANS:
        return _PLANS[cache_key]
    plan = None
    unset_defaults = [c for c in table.columns if c.name not in keys and c.default is not None]
    if dialect.paramstyle == "qmark" and not unset_defaults and all(k in table.columns for k in keys):
        quote = dialect.identifier_preparer
        sql = (
            f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(k) for k in keys)}) "
            f"VALUES ({', '.join('?' for _ in keys)})"
        )
        plan = _InsertPlan(sql=sql, values=_row_values(dialect, table, keys))
    _PLANS[cache_key] = plan
    return plan


def _row_values(dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...]) -> RowValues:
    """One function that turns a row into the driver's tuple, written out for these keys (as
    attrs and dataclasses write their methods): one call a row, instead of a loop over the
    columns and a call of SQLAlchemy's wrapper around each converting column's processor."""
    names: dict[str, Callable[[Any], Any]] = {}
    parts = []
    for i, key in enumerate(keys):
        process = _bind_processor(dialect, table.columns[key].type)
        if process is None:
            parts.append(f"row[{key!r}]")
        else:
            names[f"p{i}"] = process
            parts.append(f"p{i}(row[{key!r}])")
    source = f"def values(row):\n    return ({', '.join(parts)},)\n"
    scope: dict[str, Any] = dict(names)
    # The source holds our own column names, repr'd, and nothing else from outside.
    exec(compile(source, f"<row values of {table.name}>", "exec"), scope)
    values: RowValues = scope["values"]
    return values


def _bind_processor(dialect: sa.Dialect, column_type: sa.types.TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """The column's bind processor; for one of our decorated types whose stored type needs none
    (DecimalText and UtcText store text), its own conversion called directly."""
    if (
        isinstance(column_type, sa.types.TypeDecorator)
        and type(column_type).process_bind_param is not sa.types.TypeDecorator.process_bind_param
        and column_type.impl_instance.bind_processor(dialect) is None
    ):
        return functools.partial(column_type.process_bind_param, dialect=dialect)
    return column_type.bind_processor(dialect)


class _MemoryTx(LedgerTx):
    """``LedgerTx``'s reads and appends, answered from and applied to the buffered state."""

    def __init__(self, ledger: BufferedLedger) -> None:
        self.blocks_changed = False
        self._ledger = ledger
        self._s = ledger._state

    # --- intents and orders -------------------------------------------------------------------

    def record_intent(self, intent: OrderIntent) -> None:
        s = self._s
        coid, key, symbol = intent.client_order_id, intent.intent_key, intent.symbol
        if key in s.coid_by_key or coid in s.heads or self._retired_intent(coid, key):
            raise DuplicateIntentError(f"an order intent for {intent.intent_key!r} is already recorded")
        s.heads[coid] = _Head(seq=s.intent_seq, intent=intent)
        s.intent_seq += 1
        s.coid_by_key[key] = coid
        bisect.insort(s.keys, key)
        s.open_by_symbol[symbol][coid] = None
        s.open_count += 1
        bisect.insort(s.created, intent.created_at)
        buys = s.buys_created[symbol]
        if intent.side is Side.BUY:
            bisect.insort(buys, intent.created_at)
        previous_last = s.last_created.get(symbol)
        if previous_last is None or intent.created_at > previous_last:
            s.last_created[symbol] = intent.created_at
        s.dirty_intent_heads.add(coid)
        self._ledger._append(t.order_intents, intent_row(intent))

        def undo() -> None:
            del s.heads[coid]
            s.intent_seq -= 1
            del s.coid_by_key[key]
            s.keys.pop(bisect.bisect_left(s.keys, key))
            symbol_open = s.open_by_symbol[symbol]
            if coid in symbol_open:
                del symbol_open[coid]
                s.open_count -= 1
            s.created.pop(bisect.bisect_left(s.created, intent.created_at))
            if intent.side is Side.BUY:
                buys.pop(bisect.bisect_left(buys, intent.created_at))
            if previous_last is None:
                s.last_created.pop(symbol, None)
            else:
                s.last_created[symbol] = previous_last
            s.dirty_intent_heads.discard(coid)

        self._ledger._journal(undo)

    def _retired_intent(self, coid: str, key: str) -> bool:
        s = self._s
        if coid not in s.retired_orders and key not in s.retired_keys:
            return False
        return bool(
            self._ledger._read_back(
                sa.or_(t.order_intents.c.client_order_id == coid, t.order_intents.c.intent_key == key)
            )
        )

    def _head(self, client_order_id: str) -> _Head | None:
        """The intent's head, read back from the file if it was retired."""
        head = self._s.heads.get(client_order_id)
        if head is None and client_order_id in self._s.retired_orders:
            read = self._ledger._read_back(t.order_intents.c.client_order_id == client_order_id)
            head = read[0] if read else None
        return head

    def intents_with_prefix(self, prefix: str) -> list[OrderIntent]:
        """Intents whose key starts with ``prefix``: whole "|"-separated parts of a key (as
        every caller builds them), which is what retired keys are remembered by."""
        s = self._s
        if prefix in s.retired_keys:
            keys = t.order_intents.c.intent_key
            self._ledger._read_back(sa.and_(keys >= prefix, keys < _after_prefix(prefix)))
        found = []
        for i in range(bisect.bisect_left(s.keys, prefix), len(s.keys)):
            key = s.keys[i]
            if not key.startswith(prefix):
                break
            found.append(s.heads[s.coid_by_key[key]])
        return [h.intent for h in sorted(found, key=lambda h: h.seq)]

    def intents_with_status(self, status: LedgerOrderStatus, *, since: datetime) -> list[OrderIntent]:
        if self._s.retired_count and status.is_terminal:
            self._ledger._read_back(t.intent_heads.c.status == status.value)
        heads = sorted((h for h in self._s.heads.values() if h.status is status), key=lambda h: h.seq)
        return [h.intent for h in heads if h.intent.created_at >= since]

    def decision_outcomes(self, decision_ids: Sequence[str]) -> dict[str, list[OrderOutcome]]:
        return self._ledger._sql(lambda tx: tx.decision_outcomes(decision_ids))

    def order_events(self, client_order_id: str) -> list[OrderEventRecord]:
        return self._ledger._sql(lambda tx: tx.order_events(client_order_id))

    def exit_transitions(self, intent_id: str) -> list[ExitTransition]:
        return self._ledger._sql(lambda tx: tx.exit_transitions(intent_id))

    def order_intents(self, *, symbol: str | None = None) -> list[OrderIntent]:
        return self._ledger._sql(lambda tx: tx.order_intents(symbol=symbol))

    def intent(self, client_order_id: str) -> OrderIntent | None:
        head = self._head(client_order_id)
        return None if head is None else head.intent

    def revise_intent(self, intent: OrderIntent) -> None:
        s = self._s
        coid = intent.client_order_id
        head = self._head(coid)
        if head is None:
            raise LedgerError(f"no order intent {coid} to revise")
        before, was_revised = head.intent, coid in s.revised_intents
        head.intent = attrs.evolve(
            before,
            order_type=intent.order_type,
            qty=intent.qty,
            notional=intent.notional,
            limit_price=intent.limit_price,
            time_in_force=intent.time_in_force,
        )
        s.revised_intents.add(coid)

        def undo() -> None:
            head.intent = before
            if not was_revised:
                s.revised_intents.discard(coid)

        self._ledger._journal(undo)

    def record_order_event(
        self,
        client_order_id: str,
        status: LedgerOrderStatus,
        time: datetime,
        *,
        broker_order_id: str | None = None,
        filled_qty: Decimal | None = None,
        filled_avg_price: Decimal | None = None,
        detail: str = "",
    ) -> None:
        s = self._s
        self._ledger._append(
            t.order_events,
            order_event_row(client_order_id, status, time, broker_order_id, filled_qty, filled_avg_price, detail),
        )
        head = self._head(client_order_id)
        if head is None:
            return  # SQL updates no head row for an order we never intended
        before = (head.status, head.broker_order_id, head.terminal)
        was_dirty = client_order_id in s.dirty_intent_heads
        head.status, head.terminal = status, status.is_terminal
        if broker_order_id is not None:
            head.broker_order_id = broker_order_id
        symbol_open = s.open_by_symbol[head.intent.symbol]
        was_open = client_order_id in symbol_open
        if head.terminal:
            if was_open:
                del symbol_open[client_order_id]
                s.open_count -= 1
            s.terminal_unretired.append(client_order_id)  # checked again when it is retired
        elif not was_open:
            symbol_open[client_order_id] = None
            s.open_count += 1
        s.dirty_intent_heads.add(client_order_id)

        def undo() -> None:
            head.status, head.broker_order_id, head.terminal = before
            is_open = client_order_id in symbol_open
            if was_open and not is_open:
                symbol_open[client_order_id] = None
                s.open_count += 1
            elif is_open and not was_open:
                del symbol_open[client_order_id]
                s.open_count -= 1
            if not was_dirty:
                s.dirty_intent_heads.discard(client_order_id)

        self._ledger._journal(undo)

    def intent_state(self, client_order_id: str) -> IntentState | None:
        head = self._head(client_order_id)
        return None if head is None else self._state_of(head)

    def _state_of(self, head: _Head) -> IntentState:
        return IntentState(
            intent=head.intent,
            status=head.status,
            broker_order_id=head.broker_order_id,
            filled_qty=self._s.filled.get(head.intent.client_order_id, ZERO),
        )

    def pending_intents(self, symbol: str | None = None) -> list[IntentState]:
        s = self._s
        if symbol is None:
            if not s.open_count:
                return []  # asked twice a session: most often nothing is unfinished
            coids: Iterable[str] = (c for per in s.open_by_symbol.values() for c in per)
        else:
            coids = s.open_by_symbol.get(symbol, {})
        heads = sorted((s.heads[c] for c in coids), key=lambda h: h.seq)
        return [self._state_of(h) for h in heads]

    def order_counts(self, symbol: str, *, day_start: datetime) -> OrderCounts:
        s = self._s
        buys = s.buys_created.get(symbol, [])
        return OrderCounts(
            orders_today=len(s.created) - bisect.bisect_left(s.created, day_start),
            last_order_at=s.last_created.get(symbol),
            acted_on_symbol_today=bool(buys) and buys[-1] >= day_start,
        )

    # --- fills and positions ---------------------------------------------------------------------

    def filled_qty(self, client_order_id: str) -> Decimal:
        self._head(client_order_id)
        return self._s.filled.get(client_order_id, ZERO)

    def record_fill(self, fill: Fill) -> FillResult:
        s = self._s
        execution_id = fill.execution_id
        if execution_id in s.execution_ids or (
            execution_id in s.retired_executions and self._ledger._written(t.fills.c.execution_id, execution_id)
        ):
            return FillResult.DUPLICATE
        head = self._head(fill.client_order_id)  # a retired order's filled qty comes back with it
        coid, before = fill.client_order_id, s.filled.get(fill.client_order_id)
        commission_before = s.commission.get(coid)
        s.execution_ids.add(fill.execution_id)
        s.executions_unwritten.append(fill.execution_id)
        s.filled[coid] = (before or ZERO) + fill.qty
        s.commission[coid] = (commission_before or ZERO) + fill.commission
        self._ledger._append(t.fills, fill_row(fill))

        def undo() -> None:
            s.execution_ids.discard(fill.execution_id)
            if before is None:
                s.filled.pop(coid, None)
            else:
                s.filled[coid] = before
            if commission_before is None:
                s.commission.pop(coid, None)
            else:
                s.commission[coid] = commission_before

        self._ledger._journal(undo)
        if head is None:
            return FillResult.NOT_OURS
        lifecycle = s.positions.get(fill.symbol)
        held = lifecycle.qty if lifecycle is not None and lifecycle.is_open else ZERO
        why = unapplicable(fill, head.status, held)
        if why:
            self._record_unapplied(fill, why)
            return FillResult.UNAPPLIED
        self.apply_fill(fill)
        return FillResult.APPLIED

    def _record_unapplied(self, fill: Fill, why: str) -> None:
        s = self._s
        row = unapplied_row(fill, why)
        s.unapplied[fill.execution_id] = UnappliedFill(**row)
        s.unapplied_fills[fill.execution_id] = fill
        self._ledger._append(t.unapplied_fills, row)
        self.blocks_changed = True

        def undo() -> None:
            s.unapplied.pop(fill.execution_id, None)
            s.unapplied_fills.pop(fill.execution_id, None)

        self._ledger._journal(undo)

    def apply_fill(self, fill: Fill) -> None:
        intent = self.intent(fill.client_order_id)
        if intent is None:
            raise LedgerError(f"fill {fill.execution_id} is not of an order tradekit placed")
        kind, fields = fill_position_event(fill, intent)
        self._append_position_event(fill.symbol, kind, **fields)

    def fill(self, execution_id: str) -> Fill | None:
        kept = self._s.unapplied_fills.get(execution_id)
        return kept if kept is not None else self._ledger._sql(lambda tx: tx.fill(execution_id))

    def unapplied_fills(self, symbol: str | None = None) -> list[UnappliedFill]:
        return [u for u in self._s.unapplied.values() if symbol is None or u.symbol == symbol]

    def settle_unapplied_fill(self, execution_id: str, resolution: str, time: datetime) -> None:
        s = self._s
        settled = s.unapplied.pop(execution_id)
        self._ledger._append(
            t.unapplied_fill_settlements, {"execution_id": execution_id, "resolution": resolution, "time": time}
        )
        self.blocks_changed = True

        def undo() -> None:
            s.unapplied[execution_id] = settled

        self._ledger._journal(undo)

    def _append_position_event(
        self,
        symbol: str,
        kind: PositionKind,
        *,
        qty: Decimal,
        price: Decimal | None,
        time: datetime,
        strategy: str | None = None,
        confidence: int | None = None,
        client_order_id: str | None = None,
        execution_id: str | None = None,
        reason: str = "",
    ) -> None:
        s = self._s
        head = s.positions.get(symbol)
        adds = kind in ("entry", "backfill")
        was_open = head is not None and head.is_open
        if not adds and not was_open:
            raise LedgerError(f"cannot reduce {symbol}: the ledger holds no open position in it")
        saved = None if head is None else attrs.evolve(head, events=list(head.events))
        was_dirty = symbol in s.dirty_position_heads
        if head is None:
            head = s.positions[symbol] = _Lifecycle(lifecycle=1, is_open=False, qty=ZERO, events=[])
        elif adds and not was_open:
            head.lifecycle, head.qty, head.events = head.lifecycle + 1, ZERO, []
        event = _PositionEvent(kind, time, price, qty, strategy, confidence, client_order_id, reason)
        head.events.append(event)
        head.qty += -qty if kind in _REDUCING else qty
        head.is_open = head.qty > 0
        head.folded = None
        s.dirty_position_heads.add(symbol)
        closed = None
        if was_open and not head.is_open:
            fees = sum(
                (s.commission.get(c, ZERO) for c in dict.fromkeys(e.client_order_id for e in head.events) if c), ZERO
            )
            closed = closed_trade(symbol, head.events, fees)
            if closed is not None:
                bisect.insort(s.closed_trades, closed, key=_closing_order)
        self._ledger._append(
            t.position_events,
            {
                "symbol": symbol,
                "lifecycle": head.lifecycle,
                "kind": kind,
                "strategy": strategy,
                "qty": qty,
                "price": price,
                "confidence": confidence,
                "client_order_id": client_order_id,
                "execution_id": execution_id,
                "reason": reason,
                "time": time,
            },
        )

        def undo() -> None:
            if saved is None:
                del s.positions[symbol]
            else:
                s.positions[symbol] = saved
            if not was_dirty:
                s.dirty_position_heads.discard(symbol)
            if closed is not None:
                s.closed_trades.remove(closed)

        self._ledger._journal(undo)

    def position(self, symbol: str) -> Position | None:
        return _open_position(self._s, symbol)

    def open_positions(self, symbols: Iterable[str] | None = None) -> dict[str, Position]:
        wanted = sorted(self._s.positions if symbols is None else set(symbols))
        found = {s: self.position(s) for s in wanted}
        return {s: p for s, p in found.items() if p is not None}

    def fills_with_purpose(self, symbols: Iterable[str] | None = None) -> list[tuple[Fill, IntentPurpose | None]]:
        return self._ledger._sql(lambda tx: tx.fills_with_purpose(symbols))

    def each_fill_with_purpose(
        self, visit: Callable[[Fill, IntentPurpose | None], None], symbols: Iterable[str] | None = None
    ) -> None:
        self._ledger._sql(lambda tx: tx.each_fill_with_purpose(visit, symbols))

    def intent_counts(self) -> dict[str, int]:
        return self._ledger._sql(lambda tx: tx.intent_counts())

    def position_history(self) -> list[Position]:
        return self._ledger._sql(lambda tx: tx.position_history())

    def each_position(self, visit: Callable[[Position], None]) -> None:
        self._ledger._sql(lambda tx: tx.each_position(visit))

    def position_events(self) -> list[PositionEventRecord]:
        return self._ledger._sql(lambda tx: tx.position_events())

    def each_position_life(self, visit: Callable[[list[LifeEvent]], None]) -> None:
        self._ledger._sql(lambda tx: tx.each_position_life(visit))

    # --- equity ------------------------------------------------------------------------------------

    def record_equity(self, point: EquityPoint) -> None:
        curve = self._s.equity
        curve.append(point)

        def undo() -> None:
            curve.pop()

        self._ledger._journal(undo)
        self._ledger._append(t.equity, equity_row(point))

    def equity_curve(self) -> list[EquityPoint]:
        # Oldest first, points of the same time in the order recorded (as the SQL ledger's
        # ORDER BY time, id): a stable sort, which costs one pass when they came in order.
        return sorted(self._s.equity, key=_point_time)

    # --- decisions ---------------------------------------------------------------------------------

    def record_decision(self, decision: BuyDecision) -> None:
        self._ledger._append(t.decisions, decision_row(decision, packed=False))  # packed at the flush
        # The decision settles its signal's queued buy, if it has one (schema 5).
        if not self._settled(decision.signal_id):
            self._settle(decision.signal_id)

    def decision(self, decision_id: str) -> StoredDecision | None:
        return self._ledger._sql(lambda tx: tx.decision(decision_id))

    def decisions(
        self, *, symbol: str | None = None, action: str | None = None, limit: int = 50
    ) -> list[StoredDecision]:
        return self._ledger._sql(lambda tx: tx.decisions(symbol=symbol, action=action, limit=limit))

    def passed_over(self, symbol: str, limit: int) -> tuple[int, list[StoredDecision]]:
        return self._ledger._sql(lambda tx: tx.passed_over(symbol, limit))

    def decisions_by_id(self, decision_ids: Iterable[str]) -> dict[str, StoredDecision]:
        return self._ledger._sql(lambda tx: tx.decisions_by_id(decision_ids))

    def decision_counts(self) -> dict[tuple[str, str], int]:
        return self._ledger._sql(lambda tx: tx.decision_counts())

    # --- queued buys ------------------------------------------------------------------------------

    def queue_buy(self, signal: Signal, strategy: str, queued_at: datetime) -> bool:
        s = self._s
        signal_id = signal.signal_id
        if signal_id in s.queued_ids:
            return False
        if signal_id in s.retired_signals and self._ledger._written(t.queued_buys.c.signal_id, signal_id):
            return False
        s.queued_ids[signal_id] = s.queue_seq
        s.queue_seq += 1
        waiting = s.queued[strategy]
        if not self._settled(signal_id):  # a signal already judged is kept, not waiting (as in SQL)
            waiting[signal_id] = signal
        self._ledger._append(t.queued_buys, queued_buy_row(signal, strategy, queued_at))

        def undo() -> None:
            del s.queued_ids[signal_id]
            waiting.pop(signal_id, None)

        self._ledger._journal(undo)
        return True

    def queued_buys(self, strategy: str) -> list[Signal]:
        return list(self._s.queued.get(strategy, {}).values())

    def settle_queued_buy(self, signal_id: str, time: datetime, *, decision_id: str | None, note: str = "") -> None:
        if self._settled(signal_id):  # by a decision on it (schema 5) or an earlier settlement
            return
        self._settle(signal_id)
        self._ledger._append(t.queued_buy_settlements, settlement_row(signal_id, time, decision_id, note))

    def _settled(self, signal_id: str) -> bool:
        s = self._s
        if signal_id in s.settled_ids:
            return True
        ledger = self._ledger
        return signal_id in s.retired_signals and any(ledger._written(c, signal_id) for c in SETTLING_COLUMNS)

    def _settle(self, signal_id: str) -> None:
        # The signal leaves the queue (if it waits there) and is remembered as settled.
        s = self._s
        s.settled_ids.add(signal_id)
        s.settled_unwritten.append(signal_id)
        found = [(waiting, waiting.pop(signal_id)) for waiting in s.queued.values() if signal_id in waiting]

        def undo() -> None:
            s.settled_ids.discard(signal_id)
            s.settled_unwritten.remove(signal_id)
            for waiting, signal in found:
                # Back in its place: the queue's order is the order signals were queued in.
                restored = sorted([*waiting.items(), (signal_id, signal)], key=lambda kv: s.queued_ids[kv[0]])
                waiting.clear()
                waiting.update(restored)

        self._ledger._journal(undo)

    # --- reconciliation ----------------------------------------------------------------------------

    def record_reconciliation(self, report: ReconcileReport) -> int:
        s = self._s
        self.blocks_changed = True
        s.reconciliation_ids += 1
        rec_id = s.reconciliation_ids
        before = s.unreconciled
        self._ledger._append(
            t.reconciliations,
            {
                "id": rec_id,
                "started_at": report.started_at,
                "broker": report.broker,
                "broker_ok": report.broker_ok,
                "error": report.error,
            },
        )
        rows = finding_rows(report, rec_id)
        for row in rows:
            self._ledger._append(t.reconcile_findings, row)
        s.unreconciled = frozenset(r["symbol"] for r in rows if r["action"] in _BLOCKING_FINDINGS)

        def undo() -> None:
            s.reconciliation_ids -= 1
            s.unreconciled = before

        self._ledger._journal(undo)
        return rec_id

    def last_reconciliation(self) -> ReconcileReport | None:
        return self._ledger._sql(lambda tx: tx.last_reconciliation())

    def unreconciled_symbols(self) -> frozenset[str]:
        s = self._s
        return s.unreconciled | {u.symbol for u in s.unapplied.values()} if s.unapplied else s.unreconciled

    # --- exit intents ---------------------------------------------------------------------------

    def record_exit_intent(self, intent: ExitIntent) -> None:
        s = self._s
        if intent.intent_id in s.exits:
            raise LedgerError(f"exit intent {intent.intent_id} is already recorded")
        self._ledger._append(t.exit_intents, exit_intent_row(intent))
        first = first_exit_transition_row(intent)
        self._ledger._append(t.exit_transitions, first)
        stored = attrs.evolve(
            intent,
            state=ExitState.PLANNED,
            limit_price=intent.limit_price,
            client_order_id=intent.client_order_id,
            note=first["note"],
        )
        s.exits[intent.intent_id] = _Exit(seq_key=(intent.decided_at, intent.intent_id), intent=stored)
        s.exits_in_flight[intent.symbol].add(intent.intent_id)
        s.dirty_exit_heads.add(intent.intent_id)

        def undo() -> None:
            del s.exits[intent.intent_id]
            s.exits_in_flight[intent.symbol].discard(intent.intent_id)
            s.dirty_exit_heads.discard(intent.intent_id)

        self._ledger._journal(undo)

    def transition_exit(
        self,
        intent_id: str,
        state: ExitState,
        time: datetime,
        *,
        note: str,
        client_order_id: str | None = None,
        limit_price: Decimal | None = None,
        window: ExecutionWindow | None = None,
    ) -> ExitIntent:
        s = self._s
        found = s.exits.get(intent_id)
        if found is None:
            raise InvalidExitTransition(f"no exit intent {intent_id}")
        current = found.intent
        check_exit_transition(current, state, window)
        row = exit_transition_row(intent_id, state, time, note, client_order_id, limit_price, window)
        self._ledger._append(t.exit_transitions, row)
        was_dirty = intent_id in s.dirty_exit_heads
        found.intent = advance_exit(current, row)
        in_flight = s.exits_in_flight[current.symbol]
        if state.value in _EXIT_IN_FLIGHT:
            in_flight.add(intent_id)
        else:
            in_flight.discard(intent_id)
        s.dirty_exit_heads.add(intent_id)

        def undo() -> None:
            found.intent = current
            if current.state.value in _EXIT_IN_FLIGHT:
                in_flight.add(intent_id)
            else:
                in_flight.discard(intent_id)
            if not was_dirty:
                s.dirty_exit_heads.discard(intent_id)

        self._ledger._journal(undo)
        return found.intent

    def exit_intent(self, intent_id: str) -> ExitIntent | None:
        found = self._s.exits.get(intent_id)
        return None if found is None else found.intent

    def exit_intents(
        self,
        *,
        states: Iterable[ExitState] | None = None,
        symbol: str | None = None,
        intent_ids: Sequence[str] | None = None,
    ) -> list[ExitIntent]:
        s = self._s
        if intent_ids is not None:
            candidates: Iterable[_Exit] = (s.exits[i] for i in intent_ids if i in s.exits)
        elif states is not None and set(states) <= {ExitState.PLANNED, ExitState.SUBMITTED}:
            candidates = (s.exits[i] for per in s.exits_in_flight.values() for i in per)
        else:
            candidates = s.exits.values()
        wanted = None if states is None else set(states)
        chosen = [
            e
            for e in candidates
            if (wanted is None or e.intent.state in wanted) and (symbol is None or e.intent.symbol == symbol)
        ]
        return [e.intent for e in sorted(chosen, key=lambda e: e.seq_key)]

    def exit_pending(self, symbol: str) -> bool:
        return bool(self._s.exits_in_flight.get(symbol))

    # --- the trading-state guard -------------------------------------------------------------------

    def trading_states(self) -> TradingStates:
        s = self._s
        if s.trading_states is None:
            s.trading_states = TradingStates(s.holds.values())
        return s.trading_states

    def record_trading_state(self, transition: Transition) -> None:
        s = self._s
        key = (transition.scope, transition.trigger)
        before, was_dirty = s.holds.get(key), key in s.dirty_holds
        self._ledger._append(t.trading_state_transitions, transition_row(transition))
        hold = transition.hold()
        if hold is None:
            s.holds.pop(key, None)
        else:
            s.holds[key] = hold
        s.dirty_holds.add(key)
        s.trading_states = None

        def undo() -> None:
            if before is None:
                s.holds.pop(key, None)
            else:
                s.holds[key] = before
            if not was_dirty:
                s.dirty_holds.discard(key)
            s.trading_states = None

        self._ledger._journal(undo)

    def trading_state_transitions(self, *, until: datetime | None = None, limit: int | None = None) -> list[Transition]:
        return self._ledger._sql(lambda tx: tx.trading_state_transitions(until=until, limit=limit))

    def trading_state_marks(self) -> dict[str, Mark]:
        return dict(self._s.marks)

    def record_trading_state_mark(self, name: str, mark: Mark) -> None:
        s = self._s
        before, was_dirty = s.marks.get(name), name in s.dirty_marks
        s.marks[name] = mark
        s.dirty_marks.add(name)

        def undo() -> None:
            if before is None:
                s.marks.pop(name, None)
            else:
                s.marks[name] = before
            if not was_dirty:
                s.dirty_marks.discard(name)

        self._ledger._journal(undo)

    def closed_trades(self, *, since: datetime | None = None) -> list[ClosedTrade]:
        trades = self._s.closed_trades
        start = 0 if since is None else bisect.bisect_right(trades, since, key=lambda trade: trade.closed_at)
        return trades[start:]

    def guard_blocked_buys(self) -> int:
        return self._ledger._sql(lambda tx: tx.guard_blocked_buys())


def _load_state(tx: LedgerTx) -> _State:
    """The memory of a buffered ledger whose file already holds a replay up to a checkpoint:
    what each ``_MemoryTx`` read would have answered had the replay never stopped."""
    s = _State()
    conn = tx._conn
    i, h = t.order_intents, t.intent_heads
    for seq, row in enumerate(
        conn.execute(
            sa.select(i, h.c.status, h.c.broker_order_id, h.c.terminal)
            .join(h, h.c.client_order_id == i.c.client_order_id)
            .order_by(i.c.id)
        )
    ):
        intent = _intent_from_row(row._mapping)
        status = LedgerOrderStatus(row.status) if row.status else None
        coid, symbol = intent.client_order_id, intent.symbol
        s.heads[coid] = _Head(
            seq=seq, intent=intent, status=status, broker_order_id=row.broker_order_id, terminal=bool(row.terminal)
        )
        s.intent_seq = seq + 1
        if row.terminal:
            s.terminal_unretired.append(coid)  # retired at the next flush
        s.coid_by_key[intent.intent_key] = coid
        s.keys.append(intent.intent_key)
        if not row.terminal:
            s.open_by_symbol[symbol][coid] = None
            s.open_count += 1
        s.created.append(intent.created_at)
        if intent.side is Side.BUY:
            s.buys_created[symbol].append(intent.created_at)
        if symbol not in s.last_created or intent.created_at > s.last_created[symbol]:
            s.last_created[symbol] = intent.created_at
    s.keys.sort()
    s.created.sort()
    for times in s.buys_created.values():
        times.sort()
    for row in conn.execute(
        sa.select(t.fills.c.execution_id, t.fills.c.client_order_id, t.fills.c.qty, t.fills.c.commission)
    ):
        s.execution_ids.add(row.execution_id)
        s.executions_unwritten.append(row.execution_id)
        s.filled[row.client_order_id] += row.qty
        s.commission[row.client_order_id] = s.commission.get(row.client_order_id, ZERO) + row.commission
    pe = t.position_events
    for head in conn.execute(sa.select(t.position_heads)):
        events = [
            _PositionEvent(e.kind, e.time, e.price, e.qty, e.strategy, e.confidence, e.client_order_id, e.reason)
            for e in conn.execute(
                sa.select(pe).where(pe.c.symbol == head.symbol, pe.c.lifecycle == head.lifecycle).order_by(pe.c.id)
            )
        ]
        qty = sum((-e.qty if e.kind in _REDUCING else e.qty for e in events), ZERO)
        s.positions[head.symbol] = _Lifecycle(
            lifecycle=int(head.lifecycle), is_open=bool(head.is_open), qty=qty, events=events
        )
    for planned in tx.exit_intents():
        s.exits[planned.intent_id] = _Exit(seq_key=(planned.decided_at, planned.intent_id), intent=planned)
        if planned.state.value in _EXIT_IN_FLIGHT:
            s.exits_in_flight[planned.symbol].add(planned.intent_id)
    latest = tx.last_reconciliation()
    if latest is not None:
        r, f = t.reconciliations, t.reconcile_findings
        s.reconciliation_ids = int(conn.execute(sa.select(sa.func.max(r.c.id))).scalar_one())
        s.unreconciled = frozenset(
            row.symbol
            for row in conn.execute(
                sa.select(f.c.symbol).where(
                    f.c.reconciliation_id == s.reconciliation_ids, f.c.action.in_(_BLOCKING_FINDINGS)
                )
            )
        )
    for unapplied in tx.unapplied_fills():
        s.unapplied[unapplied.execution_id] = unapplied
        fill = tx.fill(unapplied.execution_id)
        if fill is not None:
            s.unapplied_fills[unapplied.execution_id] = fill
    # Settled signals (and the settled ones' queue rows) are kept as retired ids (see
    # SeenIds); the waiting ones in full.
    for column in SETTLING_COLUMNS:
        for (signal_id,) in conn.execute(sa.select(column)):
            s.retired_signals.add(signal_id)
    for row in conn.execute(waiting_buys_query()):
        s.queued_ids[row.signal_id] = s.queue_seq
        s.queue_seq += 1
        s.queued[row.strategy][row.signal_id] = signal_from_text(row.signal, row.symbol, row.signal_id)
    states = tx.trading_states()
    s.holds = {(hold.scope, hold.trigger): hold for hold in states.holds}
    s.trading_states = None
    s.marks = tx.trading_state_marks()
    s.closed_trades = sorted(tx.closed_trades(), key=_closing_order)
    s.equity = tx.equity_curve()
    return s
