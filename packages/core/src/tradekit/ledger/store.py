"""The ledger: tradekit's append-only memory in SQLite (default) or PostgreSQL.

Everything that changes exposure or explains it is appended: order intents (before the
order is sent), order status events, fills (deduplicated by execution id), position events,
buy decisions with their trace, reconciliations and their findings, exit intents and their
transitions. Positions and the counters that guard orders are derived from those rows. The
one row rewritten is the order intent of a lost exit sell sent again under its client order
id: it states the order sent (``LedgerTx.revise_intent``), each send its own status event.

Concurrency:

- SQLite: one process trades on a ledger file at a time. ``Ledger.open(..., for_trading=True)``
  takes an exclusive lock file next to the database and refuses a second trader with a
  message naming the holder's pid; read-only opens (the CLI's listings) are always allowed.
  Write transactions are ``BEGIN IMMEDIATE``, so readers never see half a decision.
- PostgreSQL: several processes may trade on one account. ``transaction(lock_symbol=...)``
  takes a transaction-scoped advisory lock on the symbol, so two processes evaluating a buy
  for the same symbol run one after the other and the second sees the first one's intent.
  Unique constraints on intent keys and client order ids back that up at the row level.
  The trading-state guard adds an account-level advisory lock: a change of the guard's
  state takes it exclusively (``transaction(lock_account=True)``) and every order is sent
  holding it shared (``sending()``), so once a halt commits no process sends another order.
  A buy's decision also takes the account's buy lock (``transaction(lock_buys=True)``): the
  limits it checks span symbols (the daily order limit, a tier's cap), so two processes
  buying different symbols decide one after the other, the second seeing the first's intent.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import sqlite3
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _q
from pathlib import Path
from typing import IO, Any, Literal, Self

import attrs
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine, RowMapping

import tradekit.ledger.schema as t
from tradekit import redaction
from tradekit.decision.reasons import BuyAction, ReasonCode
from tradekit.decision.trace import encode_trace, pack_trace, trace_document
from tradekit.decision.verdict import BuyDecision
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Fill, OrderType, TimeInForce
from tradekit.domain.positions import EntryOrigin, Position, PositionEntry, PositionReduction
from tradekit.domain.signals import Side, Signal, Urgency
from tradekit.domain.values import ZERO
from tradekit.exits.calendar import ExecutionWindow
from tradekit.exits.intent import EXIT_TRANSITIONS, ExitIntent, ExitState
from tradekit.guard.records import (
    Mark,
    closed_trade,
    hold_from_row,
    hold_row,
    mark_row,
    transition_from_row,
    transition_row,
)
from tradekit.guard.state import ClosedTrade, TradingStates, Transition
from tradekit.health.heartbeat import PriceMark, StreamStatus, TraderHeartbeat
from tradekit.ledger.errors import (
    DuplicateIntentError,
    InvalidExitTransition,
    LedgerConnectionError,
    LedgerCorruptError,
    LedgerError,
    LedgerInUseError,
    LedgerNotFoundError,
    LedgerVersionError,
    LedgerWriteError,
)
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
from tradekit.reconcile.report import BLOCKING_ACTIONS, ReconcileAction, ReconcileFinding, ReconcileReport
from tradekit.serialization import StructureError, structure

_EXIT_IN_FLIGHT = (ExitState.PLANNED.value, ExitState.SUBMITTED.value)
_BLOCKING_FINDINGS = tuple(sorted(a.value for a in BLOCKING_ACTIONS))

PositionKind = Literal["entry", "backfill", "reduction", "external_close"]
_REDUCING = ("reduction", "external_close")


def _sqlite_path(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _describe_url(url: sa.URL) -> str:
    # The password hidden wherever it is written: ``user:pw@`` and ``?password=`` (libpq takes
    # both), and any query parameter named like a credential.
    shown = url.set(query={}).render_as_string(hide_password=True)
    params = [
        f"{urllib.parse.quote_plus(key)}={'***' if redaction.is_secret_query_key(key) else urllib.parse.quote_plus(v)}"
        for key, values in sorted(url.normalized_query.items())
        for v in values
    ]
    return f"{shown}?{'&'.join(params)}" if params else shown


def _register_url_secrets(url: sa.URL) -> None:
    # Registered as soon as the URL is read, so a log line or traceback that quotes it (a
    # driver's error, say) is masked too.
    if url.password is not None:
        redaction.register_secret(str(url.password))
    for key, values in url.normalized_query.items():
        if redaction.is_secret_query_key(key):
            for value in values:
                redaction.register_secret(value)


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def ledger_url(url: str) -> sa.URL:
    """Parse a ledger URL; a bare file path (``tradekit-run/latest/ledger.db``) is a SQLite ledger.

    Raises ``LedgerConnectionError`` for text that is neither.
    """
    text = url.strip()
    if not _URL_SCHEME.match(text):
        if not text or ":" in text:
            raise LedgerConnectionError(
                f"ledger {url!r} is neither a database URL nor a file path: use sqlite:///PATH, a plain "
                "file path, or postgresql+psycopg://user@host:5432/db"
            )
        return sa.URL.create("sqlite", database=text)
    redaction.register_url_secrets(text)
    try:
        parsed = sa.make_url(text)
    except exc.ArgumentError as e:
        shown = redaction.redact(repr(url))
        raise LedgerConnectionError(
            f"ledger URL {shown} is not a valid database URL: {redaction.redact(str(e))}"
        ) from None
    _register_url_secrets(parsed)
    return parsed


class Ledger:
    """A connection to one ledger database. Open with ``Ledger.open``; close when done."""

    def __init__(self, engine: Engine, *, lock_file: IO[str] | None, schema: str | None) -> None:
        self._engine = engine
        self._lock_file = lock_file
        self.schema = schema
        self._unreconciled: frozenset[str] | None = None
        self._create = True
        self._location = engine.url

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        for_trading: bool = False,
        schema: str | None = None,
        durable: bool = True,
        create: bool = True,
        **options: Any,
    ) -> Self:
        """Open (creating or migrating if needed) the ledger at ``url``.

        ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/ledger.db`` or
        ``postgresql+psycopg://user@host:5432/db``; a bare file path
        (``tradekit-run/latest/ledger.db``) is a SQLite ledger. ``schema`` (PostgreSQL only)
        keeps the ledger's tables in their own schema. ``for_trading`` takes the SQLite trader
        lock. ``durable=False`` (SQLite only, for replays that can simply be rerun) skips the
        fsync at each commit; live trading always uses durable commits. ``options`` go to the
        ledger class: ``BufferedLedger.open(url, for_trading=True)`` (replays only) serves reads
        from memory and writes rows in batches, ``resume=True`` loading a file that already
        holds a replay (see ``tradekit.ledger.buffered``).

        ``create=False`` (the read-only commands) refuses a ledger that does not exist yet —
        a missing file, or a database without tradekit's tables — instead of creating an
        empty one that would hide a mistyped path. A 0-byte file is never taken as a ledger.
        Every open checks the schema: a known version, every table and index of it present,
        and (SQLite) the file's ``quick_check``; raises ``LedgerError`` naming what is wrong.
        """
        parsed = ledger_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise LedgerConnectionError(f"ledger backend {backend!r} is not supported: use sqlite or postgresql")
        lock_file = None
        path = _sqlite_path(parsed)
        if path is not None:
            _check_sqlite_path(path, create=create)
            if for_trading:
                lock_file = _take_trader_lock(path)
            engine = _sqlite_engine(parsed, durable=durable)
        elif backend == "sqlite":
            engine = _sqlite_engine(parsed, durable=durable)
        else:
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = _postgres_engine(parsed, schema)
        ledger = cls(engine, lock_file=lock_file, schema=schema if backend == "postgresql" else None, **options)
        ledger._create = create
        ledger._location = parsed
        try:
            ledger._prepare(path)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _prepare(self, path: Path | None) -> None:
        try:
            if path is not None:
                _check_sqlite_file(path)
            with self._engine.connect() as conn, conn.begin():
                if self._engine.dialect.name == "postgresql":
                    # Two processes opening a fresh database at once must not both migrate.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7352001)")
                    if self.schema and self._create:
                        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                created = _migrate(conn, create=self._create, where=self.url, location=self._location)
                if not created:  # a ledger this transaction created holds exactly the schema
                    _check_schema(conn, where=self.url)
        except LedgerError:
            raise
        except exc.OperationalError as e:
            raise self._translate(e) from None
        except exc.DatabaseError as e:
            raise self._translate(e) from None

    def _translate(self, error: exc.DBAPIError) -> LedgerError:
        where = _describe_url(self._engine.url)
        original = error.orig
        text = str(original).strip().splitlines()[0] if original is not None else str(error)
        if isinstance(original, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "disk image" in text
        ):
            return LedgerCorruptError(
                f"ledger {where} is not a readable SQLite database ({text}); restore it from a backup, "
                "or move it aside and start a new ledger — reconciliation then rebuilds positions from the broker"
            )
        if "disk is full" in text or "disk full" in text or "readonly" in text or "read-only" in text:
            return LedgerWriteError(f"ledger {where}: write failed and was rolled back ({text})")
        if self._engine.dialect.name == "postgresql" and isinstance(error, exc.OperationalError):
            return LedgerConnectionError(f"cannot use PostgreSQL ledger at {where}: {text}")
        return LedgerWriteError(f"ledger {where}: write refused and rolled back ({text})")

    def close(self) -> None:
        self._engine.dispose()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def exclusive(self) -> bool:
        """True when this process is the ledger's only writer (the SQLite trader lock).

        Only then may a caller keep derived state in memory between transactions.
        """
        return self._lock_file is not None

    @property
    def url(self) -> str:
        return _describe_url(self._engine.url)

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    def drop_schema(self) -> None:
        """Drop a PostgreSQL ledger's schema and everything in it (tests clean up with this)."""
        if self.backend != "postgresql" or not self.schema:
            raise LedgerError("drop_schema only applies to a PostgreSQL ledger opened with a schema")
        with self._engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    # --- transactions ------------------------------------------------------------------

    def transaction(
        self, *, lock_symbol: str | None = None, lock_account: bool = False, lock_buys: bool = False
    ) -> contextlib.AbstractContextManager[LedgerTx]:
        """A write transaction: everything inside commits together or not at all.

        With ``lock_symbol`` on PostgreSQL, no other process can hold a transaction on the
        same symbol at the same time (SQLite write transactions are already exclusive).
        ``lock_account`` (PostgreSQL) takes the account's trading lock exclusively: it waits
        for the orders being sent (``sending()``), and no order is sent until it commits.
        ``lock_buys`` (PostgreSQL) takes the account's buy lock, after the symbol's: one buy
        decision at a time across the account, whatever its symbol.
        """
        return self._transaction(lock_symbol, lock_account, lock_buys)

    @contextlib.contextmanager
    def _transaction(self, lock_symbol: str | None, lock_account: bool, lock_buys: bool) -> Iterator[LedgerTx]:
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(tk_write=True)
                with conn.begin():
                    if lock_symbol is not None and self.backend == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(lock_symbol)})
                    if lock_buys and self.backend == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._buys_key})
                    if lock_account and self.backend == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._account_key})
                    tx = LedgerTx(conn)
                    yield tx
                if tx.blocks_changed:
                    self._unreconciled = None
        except exc.DBAPIError as e:
            raise self._translate(e) from None

    def reading(self) -> contextlib.AbstractContextManager[LedgerTx]:
        """A read-only snapshot."""
        return self._reading()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[LedgerTx]:
        try:
            with self._engine.connect() as conn, conn.begin():
                yield LedgerTx(conn)
        except exc.DBAPIError as e:
            raise self._translate(e) from None

    def sending(self) -> contextlib.AbstractContextManager[LedgerTx]:
        """A read transaction to send an order in: read the guard's state, send, leave.

        On PostgreSQL it holds the account's trading lock shared until it ends, so a change
        of the guard's state (which takes it exclusively) waits for the sends in flight, and a
        send that starts after a halt committed reads the halt. On SQLite (one trader per
        file) it is a read snapshot taken when the order is about to leave.
        """
        return self._sending()

    @contextlib.contextmanager
    def _sending(self) -> Iterator[LedgerTx]:
        try:
            with self._engine.connect() as conn, conn.begin():
                if self.backend == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": self._account_key})
                yield LedgerTx(conn)
        except exc.DBAPIError as e:
            raise self._translate(e) from None

    @property
    def _account_key(self) -> int:
        # One account per ledger: the lock is the ledger's (its schema's, on a shared server).
        return int.from_bytes(
            hashlib.sha256(f"tradekit-account:{self.schema or ''}".encode()).digest()[:8], "big", signed=True
        )

    @property
    def _buys_key(self) -> int:
        return int.from_bytes(
            hashlib.sha256(f"tradekit-buys:{self.schema or ''}".encode()).digest()[:8], "big", signed=True
        )

    # --- one-shot conveniences -----------------------------------------------------------

    def open_positions(self) -> dict[str, Position]:
        with self.reading() as tx:
            return tx.open_positions()

    def position(self, symbol: str) -> Position | None:
        with self.reading() as tx:
            return tx.position(symbol)

    def unreconciled_symbols(self) -> frozenset[str]:
        """Symbols every buy must be BLOCKed on (cached while this process is the only writer)."""
        if self.exclusive and self._unreconciled is not None:
            return self._unreconciled
        with self.reading() as tx:
            found = tx.unreconciled_symbols()
        if self.exclusive:
            self._unreconciled = found
        return found

    def record_fill(self, fill: Fill) -> FillResult:
        with self.transaction(lock_symbol=fill.symbol) as tx:
            return tx.record_fill(fill)

    def replay_run(self) -> dict[str, Any] | None:
        """The paper replay recorded in this ledger (``tradekit.execution.paper_run``), if any:
        its identity, its last checkpoint and whether it finished, as stored."""
        r = t.replay_runs
        try:
            with self._engine.connect() as conn:
                row = conn.execute(sa.select(r).order_by(r.c.id.desc()).limit(1)).first()
        except exc.DBAPIError as e:
            raise self._translate(e) from None
        return None if row is None else dict(row._mapping)

    def record_equity(self, account: AccountSnapshot) -> None:
        """Append the account's equity and cash as of its snapshot time."""
        with self.transaction() as tx:
            tx.record_equity(EquityPoint(time=account.as_of, equity=account.equity, cash=account.cash))


class LedgerTx:
    """Reads and appends on one connection, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # The set of blocked symbols changed (a reconciliation, an unapplied fill).
        self.blocks_changed = False

    # --- intents and orders ---------------------------------------------------------------

    def record_intent(self, intent: OrderIntent) -> None:
        """Append an order intent; a duplicate key or client order id is refused."""
        existing = self._conn.execute(
            sa.select(t.order_intents.c.intent_key).where(
                sa.or_(
                    t.order_intents.c.intent_key == intent.intent_key,
                    t.order_intents.c.client_order_id == intent.client_order_id,
                )
            )
        ).first()
        if existing is not None:
            raise DuplicateIntentError(f"an order intent for {intent.intent_key!r} is already recorded")
        try:
            with self._conn.begin_nested():
                self._conn.execute(t.order_intents.insert().values(**intent_row(intent)))
                self._conn.execute(
                    t.intent_heads.insert().values(
                        client_order_id=intent.client_order_id, symbol=intent.symbol, status=None, terminal=False
                    )
                )
        except exc.IntegrityError:
            # Another process won the race between the check and the insert.
            raise DuplicateIntentError(f"an order intent for {intent.intent_key!r} is already recorded") from None

    def revise_intent(self, intent: OrderIntent) -> None:
        """Make a recorded order intent state the order ``intent`` describes: its type,
        quantity, limit price and time in force (nothing else of it changes).

        A lost exit sell sent again under its client order id may be another kind of order
        than the lost request (a limit sell sent again market-on-close): its intent is revised
        in the transaction that records the re-send's ``submitting`` event, before the order
        leaves, and revised back to the lost request if the re-send is refused, so that it
        always states the last request that may be at the broker.
        """
        revised = self._conn.execute(
            t.order_intents.update()
            .where(t.order_intents.c.client_order_id == intent.client_order_id)
            .values(**revised_columns(intent))
        )
        if revised.rowcount != 1:
            raise LedgerError(f"no order intent {intent.client_order_id} to revise")

    def intents_with_prefix(self, prefix: str) -> list[OrderIntent]:
        """Intents whose key starts with ``prefix`` (e.g. every order of one signal).

        ``prefix`` is whole "|"-separated parts of a key (``strategy|symbol|signal|buy``,
        ``exit|<exit intent id>``): the buffered ledger remembers the orders it no longer
        keeps in memory by those parts."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._conn.execute(
            sa.select(t.order_intents)
            .where(t.order_intents.c.intent_key.like(escaped + "%", escape="\\"))
            .order_by(t.order_intents.c.id)
        )
        return [_intent_from_row(r._mapping) for r in rows]

    def intents_with_status(self, status: LedgerOrderStatus, *, since: datetime) -> list[OrderIntent]:
        """Intents created since ``since`` whose latest status is ``status``, oldest first."""
        i, h = t.order_intents, t.intent_heads
        rows = self._conn.execute(
            sa.select(i)
            .join(h, h.c.client_order_id == i.c.client_order_id)
            .where(h.c.status == status.value, i.c.created_at >= since)
            .order_by(i.c.id)
        )
        return [_intent_from_row(r._mapping) for r in rows]

    def order_intents(self, *, symbol: str | None = None) -> list[OrderIntent]:
        """Every order intent (of ``symbol``), in the order they were recorded."""
        query = sa.select(t.order_intents).order_by(t.order_intents.c.id)
        if symbol is not None:
            query = query.where(t.order_intents.c.symbol == symbol)
        return [_intent_from_row(r._mapping) for r in self._conn.execute(query)]

    def intent(self, client_order_id: str) -> OrderIntent | None:
        i = t.order_intents
        row = self._conn.execute(
            sa.lambda_stmt(lambda: sa.select(i).where(i.c.client_order_id == client_order_id))
        ).first()
        return None if row is None else _intent_from_row(row._mapping)

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
        self._conn.execute(
            t.order_events.insert().values(
                **order_event_row(client_order_id, status, time, broker_order_id, filled_qty, filled_avg_price, detail)
            )
        )
        values: dict[str, Any] = {"status": status.value, "terminal": status.is_terminal}
        if broker_order_id is not None:
            values["broker_order_id"] = broker_order_id
        self._conn.execute(
            t.intent_heads.update().where(t.intent_heads.c.client_order_id == client_order_id).values(**values)
        )

    def decision_outcomes(self, decision_ids: Sequence[str]) -> dict[str, list[OrderOutcome]]:
        """The orders each decision made, with how each ended (a decision that made none is
        absent): sent with its client order id and filled, refused, not sent and why, or
        replaced by a whole-share fallback."""
        if not decision_ids:
            return {}
        i, h, e, f = t.order_intents, t.intent_heads, t.order_events, t.fills
        found: dict[str, list[OrderOutcome]] = defaultdict(list)
        rows = list(
            self._conn.execute(
                sa.select(i.c.decision_id, i.c.client_order_id, i.c.qty, i.c.notional, i.c.replaces, h.c.status)
                .join(h, h.c.client_order_id == i.c.client_order_id)
                .where(i.c.decision_id.in_(list(decision_ids)))
                .order_by(i.c.id)
            )
        )
        coids = [r.client_order_id for r in rows]
        filled: dict[str, Decimal] = defaultdict(lambda: ZERO)
        details: dict[str, str] = {}
        if coids:
            for row in self._conn.execute(
                sa.select(f.c.client_order_id, f.c.qty).where(f.c.client_order_id.in_(coids))
            ):
                filled[row.client_order_id] += row.qty
            for row in self._conn.execute(
                sa.select(e.c.client_order_id, e.c.detail).where(e.c.client_order_id.in_(coids)).order_by(e.c.id)
            ):
                if row.detail:
                    details[row.client_order_id] = row.detail
        for r in rows:
            found[r.decision_id].append(
                OrderOutcome(
                    client_order_id=r.client_order_id,
                    qty=r.qty,
                    notional=r.notional,
                    status=LedgerOrderStatus(r.status) if r.status else None,
                    filled_qty=filled[r.client_order_id],
                    detail=details.get(r.client_order_id, ""),
                    replaces=r.replaces,
                )
            )
        return dict(found)

    def order_events(self, client_order_id: str) -> list[OrderEventRecord]:
        """Every status recorded for one order, oldest first."""
        e = t.order_events
        rows = self._conn.execute(sa.select(e).where(e.c.client_order_id == client_order_id).order_by(e.c.id))
        return [
            OrderEventRecord(
                client_order_id=r.client_order_id,
                status=LedgerOrderStatus(r.status),
                time=r.time,
                detail=r.detail,
                broker_order_id=r.broker_order_id,
                filled_qty=r.filled_qty,
                filled_avg_price=r.filled_avg_price,
            )
            for r in rows
        ]

    def intent_state(self, client_order_id: str) -> IntentState | None:
        found = self._intent_states(t.intent_heads.c.client_order_id == client_order_id)
        return found[0] if found else None

    def pending_intents(self, symbol: str | None = None) -> list[IntentState]:
        """Intents whose order has not reached a terminal status (or was never confirmed)."""
        h = t.intent_heads
        if symbol is None:
            return self._intent_states(h.c.terminal == sa.false())
        return self._intent_states(h.c.terminal == sa.false(), h.c.symbol == symbol)

    def _intent_states(self, *conditions: sa.ColumnElement[bool]) -> list[IntentState]:
        # The latest status comes from intent_heads (kept with every order event), the
        # filled quantity from the fills themselves.
        i, h = t.order_intents, t.intent_heads
        rows = list(
            self._conn.execute(
                sa.select(i, h.c.status, h.c.broker_order_id)
                .join(h, h.c.client_order_id == i.c.client_order_id)
                .where(*conditions)
                .order_by(i.c.id)
            )
        )
        if not rows:
            return []
        coids = [r.client_order_id for r in rows]
        filled: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for row in self._conn.execute(
            sa.select(t.fills.c.client_order_id, t.fills.c.qty).where(t.fills.c.client_order_id.in_(coids))
        ):
            filled[row.client_order_id] += row.qty
        return [
            IntentState(
                intent=_intent_from_row(r._mapping),
                status=LedgerOrderStatus(r.status) if r.status else None,
                broker_order_id=r.broker_order_id,
                filled_qty=filled[r.client_order_id],
            )
            for r in rows
        ]

    def order_counts(self, symbol: str, *, day_start: datetime) -> OrderCounts:
        """Counters for the buy guards, from the intents recorded since ``day_start``."""
        i = t.order_intents
        buy = Side.BUY.value
        orders_today = self._conn.execute(
            sa.lambda_stmt(lambda: sa.select(sa.func.count()).select_from(i).where(i.c.created_at >= day_start))
        ).scalar_one()
        last = self._conn.execute(
            sa.lambda_stmt(lambda: sa.select(sa.func.max(i.c.created_at)).where(i.c.symbol == symbol))
        ).scalar_one()
        acted = self._conn.execute(
            sa.lambda_stmt(
                lambda: (
                    sa.select(sa.func.count())
                    .select_from(i)
                    .where(i.c.symbol == symbol, i.c.side == buy, i.c.created_at >= day_start)
                )
            )
        ).scalar_one()
        return OrderCounts(
            orders_today=int(orders_today),
            last_order_at=last,
            acted_on_symbol_today=bool(acted),
        )

    # --- fills and positions ----------------------------------------------------------------

    def filled_qty(self, client_order_id: str) -> Decimal:
        rows = self._conn.execute(sa.select(t.fills.c.qty).where(t.fills.c.client_order_id == client_order_id))
        return sum((r.qty for r in rows), ZERO)

    def record_fill(self, fill: Fill) -> FillResult:
        """Append a fill and, when it is one of our orders', its position change.

        Fills are deduplicated by the broker's execution id, so a repeated or replayed fill
        event never changes a position twice. A fill of an order tradekit did not place is
        recorded but changes no position: reconciliation handles outside activity. A fill of
        ours that cannot be applied as expected (see ``UnappliedFill``) is recorded, changes
        no position, and blocks its symbol until reconciliation re-derives it from the broker:
        applying broker facts never raises.
        """
        seen = self._conn.execute(sa.select(t.fills.c.id).where(t.fills.c.execution_id == fill.execution_id)).first()
        if seen is not None:
            return FillResult.DUPLICATE
        self._conn.execute(t.fills.insert().values(**fill_row(fill)))
        intent = self.intent(fill.client_order_id)
        if intent is None:
            return FillResult.NOT_OURS
        state = self.intent_state(fill.client_order_id)
        why = unapplicable(fill, state.status if state is not None else None, self._open_qty(fill.symbol))
        if why:
            self._conn.execute(t.unapplied_fills.insert().values(**unapplied_row(fill, why)))
            self.blocks_changed = True
            return FillResult.UNAPPLIED
        kind, fields = fill_position_event(fill, intent)
        self._append_position_event(fill.symbol, kind, **fields)
        return FillResult.APPLIED

    def apply_fill(self, fill: Fill) -> None:
        """Apply a recorded fill of ours to its position (reconciliation re-deriving it)."""
        intent = self.intent(fill.client_order_id)
        if intent is None:
            raise LedgerError(f"fill {fill.execution_id} is not of an order tradekit placed")
        kind, fields = fill_position_event(fill, intent)
        self._append_position_event(fill.symbol, kind, **fields)

    def fill(self, execution_id: str) -> Fill | None:
        row = self._conn.execute(sa.select(t.fills).where(t.fills.c.execution_id == execution_id)).first()
        return None if row is None else _fill_from_row(row)

    def unapplied_fills(self, symbol: str | None = None) -> list[UnappliedFill]:
        """Fills recorded but not applied, not yet settled by a reconciliation, oldest first."""
        u, st = t.unapplied_fills, t.unapplied_fill_settlements
        query = (
            sa.select(u)
            .select_from(u.outerjoin(st, st.c.execution_id == u.c.execution_id))
            .where(st.c.id.is_(None))
            .order_by(u.c.id)
        )
        if symbol is not None:
            query = query.where(u.c.symbol == symbol)
        return [
            UnappliedFill(
                execution_id=r.execution_id,
                client_order_id=r.client_order_id,
                symbol=r.symbol,
                reason=r.reason,
                recorded_at=r.recorded_at,
            )
            for r in self._conn.execute(query)
        ]

    def settle_unapplied_fill(self, execution_id: str, resolution: str, time: datetime) -> None:
        """Record how reconciliation settled an unapplied fill (its symbol is then unblocked)."""
        self._conn.execute(
            t.unapplied_fill_settlements.insert().values(execution_id=execution_id, resolution=resolution, time=time)
        )
        self.blocks_changed = True

    def _open_qty(self, symbol: str) -> Decimal:
        head = self._conn.execute(sa.select(t.position_heads).where(t.position_heads.c.symbol == symbol)).first()
        if head is None or not head.is_open:
            return ZERO
        return self._lifecycle_qty(symbol, int(head.lifecycle))

    def record_backfill(self, symbol: str, qty: Decimal, price: Decimal, time: datetime, reason: str) -> None:
        """Adopt a broker-only position: one entry at the broker's average price, no owner."""
        self._append_position_event(symbol, "backfill", qty=qty, price=price, time=time, reason=reason)

    def record_external_close(
        self, symbol: str, qty: Decimal, time: datetime, reason: str, *, price: Decimal | None = None
    ) -> None:
        """Close (or reduce) a position the broker no longer holds in full (EXTERNAL_CLOSE)."""
        self._append_position_event(symbol, "external_close", qty=qty, price=price, time=time, reason=reason)

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
        head = self._conn.execute(sa.select(t.position_heads).where(t.position_heads.c.symbol == symbol)).first()
        adds = kind in ("entry", "backfill")
        if head is None:
            lifecycle, was_open = 1, False
        else:
            lifecycle, was_open = int(head.lifecycle), bool(head.is_open)
        if adds and not was_open:
            lifecycle = lifecycle + 1 if head is not None else 1
        if not adds and not was_open:
            raise LedgerError(f"cannot reduce {symbol}: the ledger holds no open position in it")
        self._conn.execute(
            t.position_events.insert().values(
                symbol=symbol,
                lifecycle=lifecycle,
                kind=kind,
                qty=qty,
                price=price,
                time=time,
                strategy=strategy,
                confidence=confidence,
                client_order_id=client_order_id,
                execution_id=execution_id,
                reason=reason,
            )
        )
        remaining = self._lifecycle_qty(symbol, lifecycle)
        is_open = remaining > 0
        if head is None:
            self._conn.execute(t.position_heads.insert().values(symbol=symbol, lifecycle=lifecycle, is_open=is_open))
        else:
            self._conn.execute(
                t.position_heads.update()
                .where(t.position_heads.c.symbol == symbol)
                .values(lifecycle=lifecycle, is_open=is_open)
            )

    def _lifecycle_qty(self, symbol: str, lifecycle: int) -> Decimal:
        pe = t.position_events
        total = ZERO
        for row in self._conn.execute(
            sa.select(pe.c.kind, pe.c.qty).where(pe.c.symbol == symbol, pe.c.lifecycle == lifecycle)
        ):
            total += -row.qty if row.kind in _REDUCING else row.qty
        return total

    def position(self, symbol: str) -> Position | None:
        """The open position in ``symbol``, or None when flat."""
        return self.open_positions([symbol]).get(symbol)

    def open_positions(self, symbols: Iterable[str] | None = None) -> dict[str, Position]:
        """Every open position, derived from the events of each symbol's current lifecycle."""
        heads = sa.select(t.position_heads.c.symbol, t.position_heads.c.lifecycle).where(t.position_heads.c.is_open)
        if symbols is not None:
            heads = heads.where(t.position_heads.c.symbol.in_(list(symbols)))
        current = heads.subquery()
        pe = t.position_events
        rows = self._conn.execute(
            sa.select(pe)
            .join(current, sa.and_(pe.c.symbol == current.c.symbol, pe.c.lifecycle == current.c.lifecycle))
            .order_by(pe.c.symbol, pe.c.id)
        )
        grouped: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            grouped[row.symbol].append(row)
        return {symbol: fold_position(symbol, events) for symbol, events in grouped.items()}

    def fills_with_purpose(self, symbols: Iterable[str] | None = None) -> list[tuple[Fill, IntentPurpose | None]]:
        """Every fill, oldest first, with the purpose of the intent it filled (None: not ours)."""
        result: list[tuple[Fill, IntentPurpose | None]] = []
        self.each_fill_with_purpose(lambda fill, purpose: result.append((fill, purpose)), symbols)
        return result

    def each_fill_with_purpose(
        self, visit: Callable[[Fill, IntentPurpose | None], None], symbols: Iterable[str] | None = None
    ) -> None:
        """``fills_with_purpose`` handed to ``visit`` one at a time, as the rows are read (a
        long run's summary reads every fill without holding them all)."""
        f, i = t.fills, t.order_intents
        query = sa.select(f, i.c.purpose).select_from(f.outerjoin(i, f.c.client_order_id == i.c.client_order_id))
        if symbols is not None:
            query = query.where(f.c.symbol.in_(list(symbols)))
        for row in self._conn.execute(query.order_by(f.c.id)):
            visit(_fill_from_row(row), IntentPurpose(row.purpose) if row.purpose else None)

    def intent_counts(self) -> dict[str, int]:
        """How many order intents were recorded, by purpose."""
        rows = self._conn.execute(
            sa.select(t.order_intents.c.purpose, sa.func.count()).group_by(t.order_intents.c.purpose)
        )
        return {row[0]: int(row[1]) for row in rows}

    def position_history(self) -> list[Position]:
        """Every position's life (closed ones included), each folded from its events."""
        result: list[Position] = []
        self.each_position(result.append)
        return result

    def each_position(self, visit: Callable[[Position], None]) -> None:
        """``position_history`` handed to ``visit`` one position at a time, as its events are
        read (by symbol, then lifecycle): only one position's events are held at once."""
        for rows in self._position_lives():
            visit(fold_position(rows[0].symbol, rows))

    def position_events(self) -> list[PositionEventRecord]:
        """Every stored change of exposure, oldest first (what trade lists are built from)."""
        pe = t.position_events
        return [_position_event_record(r) for r in self._conn.execute(sa.select(pe).order_by(pe.c.id))]

    def each_position_life(self, visit: Callable[[list[LifeEvent]], None]) -> None:
        """Each position's events (one lifecycle of one symbol, oldest first) handed to
        ``visit`` as they are read, by symbol then lifecycle: one life is held at a time.

        Each event comes with its fill's commission and its order's purpose, decision and
        exit intent, joined in the same query, so a reader of every trade (the trade list,
        the run statistics) needs no index of every fill and order beside them."""
        pe, f, i, x = t.position_events, t.fills, t.order_intents, t.exit_intents
        query = (
            sa.select(pe, f.c.commission, i.c.purpose, i.c.decision_id, i.c.exit_intent_id, x.c.reason.label("why"))
            .select_from(
                pe.outerjoin(f, f.c.execution_id == pe.c.execution_id)
                .outerjoin(i, i.c.client_order_id == pe.c.client_order_id)
                .outerjoin(x, x.c.intent_id == i.c.exit_intent_id)
            )
            .order_by(pe.c.symbol, pe.c.lifecycle, pe.c.id)
        )
        for rows in self._position_lives(query):
            visit(
                [
                    LifeEvent(
                        event=_position_event_record(r),
                        commission=r.commission,
                        purpose=IntentPurpose(r.purpose) if r.purpose else None,
                        decision_id=r.decision_id,
                        exit_intent_id=r.exit_intent_id,
                        exit_reason=r.why,
                    )
                    for r in rows
                ]
            )

    def _position_lives(self, query: sa.Select[Any] | None = None) -> Iterator[list[Any]]:
        """The position event rows of each life (symbol, lifecycle), one life at a time;
        ``query`` (ordered by symbol, lifecycle, id) may add columns to each row."""
        pe = t.position_events
        if query is None:
            query = sa.select(pe).order_by(pe.c.symbol, pe.c.lifecycle, pe.c.id)
        life: list[Any] = []
        for row in self._conn.execute(query):
            if life and (row.symbol, row.lifecycle) != (life[0].symbol, life[0].lifecycle):
                yield life
                life = []
            life.append(row)
        if life:
            yield life

    # --- equity -------------------------------------------------------------------------------

    def record_equity(self, point: EquityPoint) -> None:
        self._conn.execute(t.equity.insert().values(**equity_row(point)))

    def equity_curve(self) -> list[EquityPoint]:
        """The recorded equity and cash, oldest first."""
        e = t.equity
        return [
            EquityPoint(time=r.time, equity=r.equity, cash=r.cash)
            for r in self._conn.execute(sa.select(e).order_by(e.c.time, e.c.id))
        ]

    # --- decisions ----------------------------------------------------------------------------

    def record_decision(self, decision: BuyDecision) -> None:
        self._conn.execute(t.decisions.insert().values(**decision_row(decision)))

    def decision(self, decision_id: str) -> StoredDecision | None:
        row = self._conn.execute(sa.select(t.decisions).where(t.decisions.c.decision_id == decision_id)).first()
        return None if row is None else _decision_from_row(row._mapping)

    def decisions(
        self, *, symbol: str | None = None, action: str | None = None, limit: int = 50
    ) -> list[StoredDecision]:
        """The most recent decisions first."""
        query = sa.select(t.decisions).order_by(t.decisions.c.id.desc()).limit(limit)
        if symbol is not None:
            query = query.where(t.decisions.c.symbol == symbol)
        if action is not None:
            query = query.where(t.decisions.c.action == action)
        return [_decision_from_row(r._mapping) for r in self._conn.execute(query)]

    def passed_over(self, symbol: str, limit: int) -> tuple[int, list[StoredDecision]]:
        """``symbol``'s skipped and blocked buys: how many there are, and ``min(limit, total)``
        of them spread evenly over the run, oldest first: the i-th of ``total`` (from 0) is
        kept when ``i * limit % total < limit``, which keeps exactly one in each stretch of
        ``total / limit``, the first one included. Only the kept rows are read whole: a long
        replay holds tens of thousands a symbol, and a chart marks a few hundred."""
        d = t.decisions
        where = (d.c.symbol == symbol, d.c.action.in_(PASSED_OVER_ACTIONS))
        total = int(self._conn.execute(sa.select(sa.func.count()).select_from(d).where(*where)).scalar_one())
        if total == 0 or limit <= 0:
            return total, []
        numbered = sa.select(d.c.id, sa.func.row_number().over(order_by=d.c.id).label("n")).where(*where).subquery()
        kept = sa.select(numbered.c.id).where((numbered.c.n - 1) * limit % total < limit)
        rows = self._conn.execute(sa.select(d).where(d.c.id.in_(kept)).order_by(d.c.id))
        return total, [_decision_from_row(r._mapping) for r in rows]

    def decisions_by_id(self, decision_ids: Iterable[str]) -> dict[str, StoredDecision]:
        """The decisions with these ids (those the ledger holds), by id."""
        ids = list(dict.fromkeys(decision_ids))
        found: dict[str, StoredDecision] = {}
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            for row in self._conn.execute(sa.select(t.decisions).where(t.decisions.c.decision_id.in_(chunk))):
                found[row.decision_id] = _decision_from_row(row._mapping)
        return found

    def decision_counts(self) -> dict[tuple[str, str], int]:
        """How many decisions per (action, first reason) — for run summaries."""
        d = t.decisions
        counts: dict[tuple[str, str], int] = defaultdict(int)
        grouped = sa.select(d.c.action, d.c.reasons, sa.func.count()).group_by(d.c.action, d.c.reasons)
        for action, reasons, count in self._conn.execute(grouped):
            counts[(action, reasons.split(",")[0] if reasons else "")] += int(count)
        return dict(counts)

    # --- queued buys ----------------------------------------------------------------------------

    def queue_buy(self, signal: Signal, strategy: str, queued_at: datetime) -> bool:
        """Keep a buy signal for the next session's open; False if it is already queued."""
        q = t.queued_buys
        if self._conn.execute(sa.select(q.c.id).where(q.c.signal_id == signal.signal_id)).first() is not None:
            return False
        self._conn.execute(q.insert().values(**queued_buy_row(signal, strategy, queued_at)))
        return True

    def queued_buys(self, strategy: str) -> list[Signal]:
        """``strategy``'s buy signals still waiting to be judged, in the order they were queued."""
        rows = self._conn.execute(waiting_buys_query().where(t.queued_buys.c.strategy == strategy))
        return [signal_from_text(row.signal, row.symbol, row.signal_id) for row in rows]

    def settle_queued_buy(self, signal_id: str, time: datetime, *, decision_id: str | None, note: str = "") -> None:
        """Close a queued buy: judged by ``decision_id`` (or set aside, ``note`` says why).

        A decision on the signal settles it by itself (schema 5): when its row is written,
        in this transaction or before, nothing more is written here.
        """
        if not self._signal_settled(signal_id):
            s = t.queued_buy_settlements
            self._conn.execute(s.insert().values(**settlement_row(signal_id, time, decision_id, note)))

    def _signal_settled(self, signal_id: str) -> bool:
        return any(
            self._conn.execute(sa.select(column).where(column == signal_id).limit(1)).first() is not None
            for column in SETTLING_COLUMNS
        )

    # --- reconciliation ------------------------------------------------------------------------

    def record_reconciliation(self, report: ReconcileReport) -> int:
        """Persist a reconciliation and its findings; return its id."""
        self.blocks_changed = True
        rec_id = self._conn.execute(
            t.reconciliations.insert().values(
                started_at=report.started_at, broker=report.broker, broker_ok=report.broker_ok, error=report.error
            )
        ).inserted_primary_key
        assert rec_id is not None
        rows = finding_rows(report, rec_id[0])
        if rows:
            self._conn.execute(t.reconcile_findings.insert(), rows)
        return int(rec_id[0])

    def last_reconciliation(self) -> ReconcileReport | None:
        rec = self._conn.execute(sa.select(t.reconciliations).order_by(t.reconciliations.c.id.desc()).limit(1)).first()
        if rec is None:
            return None
        findings = [
            ReconcileFinding(
                symbol=r.symbol,
                action=ReconcileAction(r.action),
                reason=r.reason,
                broker_qty=r.broker_qty,
                ledger_qty=r.ledger_qty,
                price=r.price,
                source=r.source,
            )
            for r in self._conn.execute(
                sa.select(t.reconcile_findings)
                .where(t.reconcile_findings.c.reconciliation_id == rec.id)
                .order_by(t.reconcile_findings.c.id)
            )
        ]
        return ReconcileReport(
            started_at=rec.started_at, broker=rec.broker, broker_ok=rec.broker_ok, findings=findings, error=rec.error
        )

    def unreconciled_symbols(self) -> frozenset[str]:
        """Symbols every buy is BLOCKed on: those the latest reconciliation could not
        reconcile, and those with a fill the ledger could not apply (until re-derived)."""
        r, f = t.reconciliations, t.reconcile_findings
        rows = self._conn.execute(
            sa.lambda_stmt(
                lambda: sa.select(f.c.symbol).where(
                    f.c.reconciliation_id == sa.select(sa.func.max(r.c.id)).scalar_subquery(),
                    f.c.action.in_(_BLOCKING_FINDINGS),
                )
            )
        )
        return frozenset(r.symbol for r in rows) | {u.symbol for u in self.unapplied_fills()}

    # --- exit intents -------------------------------------------------------------------------

    def record_exit_intent(self, intent: ExitIntent) -> None:
        self._conn.execute(t.exit_intents.insert().values(**exit_intent_row(intent)))
        self._conn.execute(
            t.exit_heads.insert().values(
                intent_id=intent.intent_id, symbol=intent.symbol, state=ExitState.PLANNED.value
            )
        )
        self._conn.execute(t.exit_transitions.insert().values(**first_exit_transition_row(intent)))

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
        """Move an exit intent to ``state`` (to ``window`` too, when given) if its life cycle
        allows it; return the result."""
        current = self.exit_intent(intent_id)
        if current is None:
            raise InvalidExitTransition(f"no exit intent {intent_id}")
        check_exit_transition(current, state, window)
        self._conn.execute(t.exit_heads.update().where(t.exit_heads.c.intent_id == intent_id).values(state=state.value))
        self._conn.execute(
            t.exit_transitions.insert().values(
                **exit_transition_row(intent_id, state, time, note, client_order_id, limit_price, window)
            )
        )
        updated = self.exit_intent(intent_id)
        assert updated is not None
        return updated

    def exit_transitions(self, intent_id: str) -> list[ExitTransition]:
        """Every step of one exit intent's life, oldest first."""
        x = t.exit_transitions
        rows = self._conn.execute(sa.select(x).where(x.c.intent_id == intent_id).order_by(x.c.id))
        return [
            ExitTransition(
                intent_id=r.intent_id,
                state=ExitState(r.state),
                time=r.time,
                note=r.note,
                client_order_id=r.client_order_id,
                limit_price=r.limit_price,
                window_opens_at=r.window_opens_at,
                window_closes_at=r.window_closes_at,
            )
            for r in rows
        ]

    def exit_intent(self, intent_id: str) -> ExitIntent | None:
        found = self.exit_intents(intent_ids=[intent_id])
        return found[0] if found else None

    def exit_intents(
        self,
        *,
        states: Iterable[ExitState] | None = None,
        symbol: str | None = None,
        intent_ids: Sequence[str] | None = None,
    ) -> list[ExitIntent]:
        """Exit intents with their current state (the latest transition), oldest first."""
        query = (
            sa.select(t.exit_intents)
            .join(t.exit_heads, t.exit_heads.c.intent_id == t.exit_intents.c.intent_id)
            .order_by(t.exit_intents.c.decided_at, t.exit_intents.c.intent_id)
        )
        if symbol is not None:
            query = query.where(t.exit_heads.c.symbol == symbol)
        if intent_ids is not None:
            query = query.where(t.exit_intents.c.intent_id.in_(list(intent_ids)))
        if states is not None:
            query = query.where(t.exit_heads.c.state.in_([s.value for s in states]))
        base = [r._mapping for r in self._conn.execute(query)]
        if not base:
            return []
        transitions: dict[str, list[Any]] = defaultdict(list)
        for row in self._conn.execute(
            sa.select(t.exit_transitions)
            .where(t.exit_transitions.c.intent_id.in_([b["intent_id"] for b in base]))
            .order_by(t.exit_transitions.c.id)
        ):
            transitions[row.intent_id].append(row)
        result = []
        for b in base:
            first, *later = transitions[b["intent_id"]]
            intent = ExitIntent(
                intent_id=b["intent_id"],
                symbol=b["symbol"],
                strategy=b["strategy"],
                qty=b["qty"],
                urgency=Urgency(b["urgency"]),
                reason=b["reason"],
                decided_at=b["decided_at"],
                order_type=OrderType(b["order_type"]),
                limit_price=first.limit_price,
                window_opens_at=b["window_opens_at"],
                window_closes_at=b["window_closes_at"],
                client_order_id=first.client_order_id,
                note=first.note,
            )
            for row in later:
                intent = advance_exit(intent, row._mapping)
            result.append(intent)
        return result

    def exit_pending(self, symbol: str) -> bool:
        h = t.exit_heads
        found = self._conn.execute(
            sa.lambda_stmt(lambda: sa.select(h.c.intent_id).where(h.c.symbol == symbol, h.c.state.in_(_EXIT_IN_FLIGHT)))
        ).first()
        return found is not None

    # --- the trading-state guard (tradekit.guard) ----------------------------------------------

    def trading_states(self) -> TradingStates:
        """The guard's holds standing now; a row this tradekit cannot read raises ``ValueError``."""
        rows = self._conn.execute(sa.select(t.trading_state_holds))
        return TradingStates(hold_from_row(r._mapping) for r in rows)

    def record_trading_state(self, transition: Transition) -> None:
        """Append a transition and leave its hold (or none) as the head of its scope and trigger."""
        h = t.trading_state_holds
        self._conn.execute(t.trading_state_transitions.insert().values(**transition_row(transition)))
        self._conn.execute(
            h.delete().where(h.c.scope == str(transition.scope), h.c.trigger == transition.trigger.value)
        )
        hold = transition.hold()
        if hold is not None:
            self._conn.execute(h.insert().values(**hold_row(hold)))

    def trading_state_transitions(self, *, until: datetime | None = None, limit: int | None = None) -> list[Transition]:
        """Transitions, oldest first: all of them up to ``until``, or the latest ``limit``."""
        tr = t.trading_state_transitions
        query = sa.select(tr).order_by(tr.c.id.desc())
        if until is not None:
            query = query.where(tr.c.time <= until)
        if limit is not None:
            query = query.limit(limit)
        return [transition_from_row(r._mapping) for r in reversed(list(self._conn.execute(query)))]

    def trading_state_marks(self) -> dict[str, Mark]:
        rows = self._conn.execute(sa.select(t.trading_state_marks))
        return {r.name: Mark(r.value, r.time) for r in rows}

    def record_trading_state_mark(self, name: str, mark: Mark) -> None:
        m = t.trading_state_marks
        self._conn.execute(m.delete().where(m.c.name == name))
        self._conn.execute(m.insert().values(**mark_row(name, mark)))

    def closed_trades(self, *, since: datetime | None = None) -> list[ClosedTrade]:
        """Positions that went flat after ``since`` (all when None), in the order they closed."""
        pe, f = t.position_events, t.fills
        touched = sa.select(pe.c.symbol, pe.c.lifecycle).where(pe.c.kind.in_(_REDUCING))
        if since is not None:
            touched = touched.where(pe.c.time > since)
        keys = [(r.symbol, r.lifecycle) for r in self._conn.execute(touched.distinct())]
        if not keys:
            return []
        rows = self._conn.execute(
            sa.select(
                pe.c.symbol, pe.c.lifecycle, pe.c.kind, pe.c.qty, pe.c.price, pe.c.time, pe.c.strategy, f.c.commission
            )
            .select_from(pe.outerjoin(f, f.c.execution_id == pe.c.execution_id))
            .where(sa.tuple_(pe.c.symbol, pe.c.lifecycle).in_(keys))
            .order_by(pe.c.symbol, pe.c.lifecycle, pe.c.id)
        )
        grouped: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for row in rows:
            grouped[(row.symbol, row.lifecycle)].append(row)
        trades = []
        for (symbol, _), events in grouped.items():
            fees = sum((e.commission for e in events if e.commission is not None), ZERO)
            trade = closed_trade(symbol, events, fees)
            if trade is not None and (since is None or trade.closed_at > since):
                trades.append(trade)
        return sorted(trades, key=lambda trade: (trade.closed_at, trade.symbol))

    def guard_blocked_buys(self) -> int:
        """Buys the guard stopped: decisions it blocked, and buy orders it kept from leaving."""
        d = t.decisions
        guard_codes = {ReasonCode.TRADING_HALTED.value, ReasonCode.REDUCE_ONLY.value}
        candidates = self._conn.execute(
            sa.select(d.c.reasons).where(sa.or_(*(d.c.reasons.contains(code) for code in guard_codes)))
        )
        blocked = sum(1 for row in candidates if guard_codes & set(row.reasons.split(",")))
        i, e = t.order_intents, t.order_events
        not_sent = self._conn.execute(
            sa.select(sa.func.count(sa.distinct(e.c.client_order_id)))
            .select_from(e.join(i, i.c.client_order_id == e.c.client_order_id))
            .where(e.c.status == LedgerOrderStatus.NOT_SENT.value, i.c.side == Side.BUY.value)
        ).scalar_one()
        return blocked + int(not_sent)

    # --- live traders' heartbeats (tradekit.health) ----------------------------------------------

    def record_heartbeat(self, beat: TraderHeartbeat) -> None:
        """Leave ``beat`` as its trader's latest heartbeat (the previous one is replaced)."""
        h = t.trader_heartbeats
        self._conn.execute(h.delete().where(h.c.trader == beat.trader))
        self._conn.execute(h.insert().values(**heartbeat_row(beat)))

    def trader_heartbeats(self) -> list[TraderHeartbeat]:
        """Every live trader's latest heartbeat, by trader name."""
        h = t.trader_heartbeats
        return [heartbeat_from_row(r._mapping) for r in self._conn.execute(sa.select(h).order_by(h.c.trader))]


# --- helpers --------------------------------------------------------------------------------


def _lock_key(symbol: str) -> int:
    # A signed 64-bit key derived from the symbol for pg_advisory_xact_lock.
    return int.from_bytes(hashlib.sha256(f"tradekit:{symbol}".encode()).digest()[:8], "big", signed=True)


def _take_trader_lock(path: Path) -> IO[str]:
    lock_path = path.with_name(path.name + ".lock")
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LedgerInUseError(
            f"ledger {path} is already open for trading by another process (pid {holder}); "
            "one process trades on a SQLite ledger at a time — stop the other one, or use a "
            "PostgreSQL ledger for several processes sharing an account"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _sqlite_engine(url: sa.URL, *, durable: bool) -> Engine:
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself (pysqlite's implicit BEGIN is
        # deferred, which would let two writers interleave reads and writes).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 10000")
        cur.execute("PRAGMA foreign_keys = ON")
        if url.database and url.database != ":memory:":
            # 8 KB pages: chosen when a decision row was ~2.5 KB (now ~400 bytes); on the peers'
            # every-bar replay 4 KB and 16 KB pages were no faster (docs/performance.md).
            # Only takes effect when the file is created (before WAL); a no-op afterwards.
            cur.execute("PRAGMA page_size = 8192")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise LedgerError(f"ledger {url.database}: could not enable WAL journaling (got {mode})")
        # FULL: a commit is on disk when it returns, the WAL included (durable appends).
        cur.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = OFF")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tk_write") else "BEGIN")

    return engine


def _init_hint(location: sa.URL | Path) -> str:
    """How to create the ledger that is missing, as a command that works as printed."""
    if isinstance(location, Path):
        command = shlex.join(("tradekit", "ledger", "init", str(location)))
    elif location.password is None and not any(redaction.is_secret_query_key(key) for key in location.query):
        command = shlex.join(("tradekit", "ledger", "init", location.render_as_string(hide_password=False)))
    else:
        # The password is never printed, so the command cannot be shown whole.
        return "commands that trade create one, or `tradekit ledger init` with the same URL"
    return f"commands that trade create one, or `{command}` creates an empty one"


def _check_sqlite_path(path: Path, *, create: bool) -> None:
    if not path.parent.exists():
        raise LedgerNotFoundError(f"no ledger at {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise LedgerNotFoundError(f"no ledger at {path}: it is a directory, not a ledger file")
    if not path.exists():
        if not create:
            raise LedgerNotFoundError(f"no ledger at {path}: the file does not exist ({_init_hint(path)})")
        return
    if path.stat().st_size == 0:
        # An empty file is not a new ledger: it may be one that was truncated, and writing a
        # fresh schema into it would hide that.
        raise LedgerCorruptError(
            f"ledger {path} is an empty file (0 bytes), not a ledger: if it was one, restore it from a "
            f"backup; if not, delete it ({_init_hint(path)})"
        )


def _check_sqlite_file(path: Path) -> None:
    if not path.exists():
        return
    with open(path, "rb") as fh:
        header = fh.read(16)
    advice = (
        "restore it from a backup, or move it aside and start a new ledger — reconciliation then "
        "rebuilds positions from the broker"
    )
    if header != b"SQLite format 3\x00":
        raise LedgerCorruptError(f"ledger {path} is not a SQLite database (bad header); {advice}")
    try:
        conn = sqlite3.connect(path)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise LedgerCorruptError(f"ledger {path} is not a readable SQLite database ({e}); {advice}") from None
    if result != "ok":
        raise LedgerCorruptError(f"ledger {path} failed its integrity check ({result}); {advice}")


def _postgres_engine(url: sa.URL, schema: str | None) -> Engine:
    if url.get_driver_name() != "psycopg":
        raise LedgerConnectionError(
            f"ledger URL driver {url.drivername!r} is not supported: use postgresql+psycopg://user@host:5432/db"
        )
    try:
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except ImportError:
        raise LedgerConnectionError(
            f"a PostgreSQL ledger ({_describe_url(url)}) needs the psycopg driver, which is not installed: "
            "pip install 'tradekit[postgres]'"
        ) from None
    if schema:
        if not schema.replace("_", "").isalnum():
            raise LedgerConnectionError(f"ledger schema name {schema!r} must be alphanumeric (with _)")

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f'SET search_path TO "{schema}"')
            cur.close()
            dbapi_conn.commit()

    return engine


MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {
    1: lambda conn: t.metadata.create_all(conn),
    # 2: decision traces are written in the compact format 2 (tradekit.decision.trace); the
    # tables are unchanged and format-1 traces stay readable, but an older tradekit could
    # not read the new ones, so the version moves.
    2: lambda conn: None,
    # 3: tables added since version 2 (create_all creates only the missing ones) and
    # nullable columns added to existing tables.
    3: lambda conn: _create_missing(conn),
    # 4: decision traces are written packed (tradekit.decision.trace: deflated against a fixed
    # dictionary, ~10x smaller); the tables are unchanged and earlier traces stay readable,
    # but an older tradekit could not read the packed ones, so the version moves.
    4: lambda conn: None,
    # 5: decision rows leave their one-line summary empty (it is rendered from the trace when
    # read) and their traces are format 3 (without the fields the row holds in columns);
    # queued signals are stored without the symbol and signal id their row holds. Earlier
    # rows stay readable; an older tradekit could not read the new ones, so the version moves.
    # The decisions' two indexes on evaluated_at, which no query used, become one on symbol,
    # and one on signal_id: a decision settles its signal's queued buy (no settlement row).
    5: lambda conn: _reindex_decisions(conn),
    # 6: a per-trader hold (a stale trade-update stream) names the traders it is held for, so
    # that a trader whose own stream is healthy does not lift another's (tk_trading_state_holds
    # and tk_trading_state_transitions gain the nullable column ``traders``). Earlier holds
    # stay readable (held for no trader in particular); an older tradekit would lift a hold
    # another trader still needs, so the version moves.
    6: lambda conn: _create_missing(conn),
}


def _reindex_decisions(conn: Connection) -> None:
    for name in ("ix_tk_decisions_symbol_time", "ix_tk_decisions_time"):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    for index in t.decisions.indexes:
        index.create(conn, checkfirst=True)


def _create_missing(conn: Connection) -> None:
    """Create the tables a ledger lacks, and add the nullable columns its tables lack."""
    t.metadata.create_all(conn)
    inspector = sa.inspect(conn)
    for table in t.metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                if not column.nullable:
                    raise LedgerVersionError(f"cannot add the required column {table.name}.{column.name}")
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')


def _migrate(conn: Connection, *, create: bool, where: str, location: sa.URL) -> bool:
    """Bring the ledger to the current schema version; tell whether it was created just now.

    A new ledger is created at the current version in one step (the migrations are for
    ledgers written by an earlier tradekit: on an empty database they would only check, table
    by table, for what the first step has just created).
    """
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    if t.meta.name not in tables:
        stray = {name for name in tables if name.startswith("tk_")}
        if stray:
            raise LedgerVersionError(
                f"ledger {where} holds tradekit tables {sorted(stray)} but no schema version (no {t.meta.name} table)"
            )
        if not create:
            raise LedgerNotFoundError(
                f"no ledger at {_describe_url(location)}: the database holds no tradekit tables "
                f"({_init_hint(location)})"
            )
        t.metadata.create_all(conn, checkfirst=False)
        conn.execute(t.meta.insert().values(key="schema_version", value=str(t.SCHEMA_VERSION)))
        return True
    raw = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "schema_version")).scalar()
    if raw is None or not raw.isdigit():
        raise LedgerVersionError(f"ledger {where}: the schema version is unreadable ({raw!r})")
    version = int(raw)
    if version > t.SCHEMA_VERSION:
        raise LedgerVersionError(
            f"ledger {where} has schema version {version}, newer than this tradekit understands "
            f"({t.SCHEMA_VERSION}); upgrade tradekit to use it"
        )
    for target in range(version + 1, t.SCHEMA_VERSION + 1):
        MIGRATIONS[target](conn)
        conn.execute(t.meta.delete().where(t.meta.c.key == "schema_version"))
        conn.execute(t.meta.insert().values(key="schema_version", value=str(target)))
    return False


def _check_schema(conn: Connection, *, where: str) -> None:
    """Refuse a ledger missing any table or index of the current schema, or with an emptied index.

    The list comes from ``tradekit.ledger.schema.metadata``, so a table added to the schema is
    checked without a change here. A missing table or index is never recreated silently: a
    ledger that lost one may show fewer positions than it holds.
    """
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    problems = [f"table {name} is missing" for name in sorted(set(t.metadata.tables) - present)]
    for table in t.metadata.sorted_tables:
        if table.name not in present:
            continue
        indexes = {ix["name"] for ix in inspector.get_indexes(table.name)}
        problems += [
            f"index {ix.name} (on {table.name}) is missing"
            for ix in sorted(table.indexes, key=lambda ix: str(ix.name))
            if ix.name not in indexes
        ]
    if not problems and conn.dialect.name == "sqlite":
        problems = _emptied_indexes(conn)
    if problems:
        raise LedgerCorruptError(
            f"ledger {where} does not match schema version {t.SCHEMA_VERSION}: {'; '.join(problems)}. "
            "Nothing was changed: restore it from a backup, or move it aside and start a new ledger "
            "(reconciliation then rebuilds positions from the broker)"
        )


def _emptied_indexes(conn: Connection) -> list[str]:
    # PRAGMA quick_check does not compare an index with its table; an index that lost its
    # rows (a damaged file, a schema edited by hand) would make lookups through it find
    # nothing. Counting each index against its table reads what quick_check already read.
    problems = []
    for table in t.metadata.sorted_tables:
        if not table.indexes:
            continue
        rows = conn.exec_driver_sql(f'SELECT count(*) FROM "{table.name}" NOT INDEXED').scalar_one()
        for ix in sorted(table.indexes, key=lambda ix: str(ix.name)):
            counted = conn.exec_driver_sql(f'SELECT count(*) FROM "{table.name}" INDEXED BY "{ix.name}"').scalar_one()
            if counted != rows:
                problems.append(f"index {ix.name} holds {counted} of the {rows} rows of {table.name}")
    return problems


def order_event_row(
    client_order_id: str,
    status: LedgerOrderStatus,
    time: datetime,
    broker_order_id: str | None,
    filled_qty: Decimal | None,
    filled_avg_price: Decimal | None,
    detail: str,
) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "status": status.value,
        "broker_order_id": broker_order_id,
        "filled_qty": filled_qty,
        "filled_avg_price": filled_avg_price,
        "detail": detail,
        "time": time,
    }


def fill_row(fill: Fill) -> dict[str, Any]:
    return {
        "execution_id": fill.execution_id,
        "client_order_id": fill.client_order_id,
        "broker_order_id": fill.broker_order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "qty": fill.qty,
        "price": fill.price,
        "commission": fill.commission,
        "time": fill.time,
    }


def fill_position_event(fill: Fill, intent: OrderIntent) -> tuple[PositionKind, dict[str, Any]]:
    """The position event a fill of one of our intents appends: an entry or a reduction."""
    fields: dict[str, Any] = {
        "qty": fill.qty,
        "price": fill.price,
        "time": fill.time,
        "client_order_id": fill.client_order_id,
        "execution_id": fill.execution_id,
        "reason": intent.purpose.value,
    }
    if fill.side is Side.BUY:
        fields.update(strategy=intent.strategy, confidence=intent.confidence)
        return "entry", fields
    return "reduction", fields


def equity_row(point: EquityPoint) -> dict[str, Any]:
    return {"time": point.time, "equity": point.equity, "cash": point.cash}


def decision_row(decision: BuyDecision, *, packed: bool = True) -> dict[str, Any]:
    """The decision's ledger row; ``packed=False`` leaves its trace document unpacked, for a
    writer that packs a batch of them at once before they are written (``pack_rows``)."""
    return {
        "decision_id": decision.decision_id,
        "symbol": decision.symbol,
        "strategy": decision.strategy,
        "signal_id": decision.signal_id,
        "action": decision.action.value,
        "reasons": ",".join(decision.reasons),
        "summary": "",  # rendered from the trace when read (schema 5)
        "trace": encode_trace(decision) if packed else trace_document(decision),
        "evaluated_at": decision.evaluated_at,
    }


def pack_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Pack, in place, the trace of each decision row ``decision_row(..., packed=False)``
    made (a document starts with ``{``; one packed already is left as it is). A replay's
    buffered ledger packs its decisions at each flush: deflating a few thousand traces in
    one go costs a replay ~5% less than one at a time between the other steps of each
    decision (the compressor's state, copied for each trace, evicts theirs from the caches)."""
    for row in rows:
        text = row["trace"]
        if text.startswith("{"):
            row["trace"] = pack_trace(text)


def report_findings(report: ReconcileReport) -> list[ReconcileFinding]:
    """A report's findings as persisted: symbols it blocked without a finding get one."""
    findings = list(report.findings)
    listed = {f.symbol for f in findings if f.action is ReconcileAction.UNRECONCILED}
    findings += [
        ReconcileFinding(symbol=s, action=ReconcileAction.UNRECONCILED, reason=report.error or "broker unavailable")
        for s in sorted(report.blocked_symbols - listed)
    ]
    return findings


def finding_rows(report: ReconcileReport, reconciliation_id: int) -> list[dict[str, Any]]:
    return [
        {
            "reconciliation_id": reconciliation_id,
            "symbol": f.symbol,
            "action": f.action.value,
            "broker_qty": f.broker_qty,
            "ledger_qty": f.ledger_qty,
            "price": f.price,
            "reason": f.reason,
            "source": f.source,
        }
        for f in report_findings(report)
    ]


def exit_intent_row(intent: ExitIntent) -> dict[str, Any]:
    return {
        "intent_id": intent.intent_id,
        "symbol": intent.symbol,
        "strategy": intent.strategy,
        "qty": intent.qty,
        "urgency": intent.urgency.value,
        "order_type": intent.order_type.value,
        "reason": intent.reason,
        "decided_at": intent.decided_at,
        "window_opens_at": intent.window_opens_at,
        "window_closes_at": intent.window_closes_at,
    }


def exit_transition_row(
    intent_id: str,
    state: ExitState,
    time: datetime,
    note: str,
    client_order_id: str | None,
    limit_price: Decimal | None,
    window: ExecutionWindow | None = None,
) -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "state": state.value,
        "limit_price": limit_price,
        "client_order_id": client_order_id,
        "note": note,
        "time": time,
        "window_opens_at": window.opens_at if window is not None else None,
        "window_closes_at": window.closes_at if window is not None else None,
    }


def check_exit_transition(current: ExitIntent, state: ExitState, window: ExecutionWindow | None) -> None:
    if state not in EXIT_TRANSITIONS[current.state] or (state is current.state and window is None):
        raise InvalidExitTransition(f"exit intent {current.intent_id} is {current.state}; it cannot become {state}")


def advance_exit(intent: ExitIntent, row: Mapping[str, Any]) -> ExitIntent:
    """The exit intent after one more transition row: its state, note, latest limit price and
    order, its window when the row moves it (which starts the attempts afresh)."""
    state = ExitState(row["state"])
    moved = row["window_opens_at"] is not None
    return attrs.evolve(
        intent,
        state=state,
        note=row["note"],
        limit_price=row["limit_price"] if row["limit_price"] is not None else intent.limit_price,
        client_order_id=row["client_order_id"] or intent.client_order_id,
        window_opens_at=row["window_opens_at"] if moved else intent.window_opens_at,
        window_closes_at=row["window_closes_at"] if moved else intent.window_closes_at,
        attempts=0 if moved else intent.attempts + (state is ExitState.SUBMITTED),
        rolls=intent.rolls + moved,
    )


def first_exit_transition_row(intent: ExitIntent) -> dict[str, Any]:
    return exit_transition_row(
        intent.intent_id,
        ExitState.PLANNED,
        intent.decided_at,
        intent.note or "planned",
        intent.client_order_id,
        intent.limit_price,
    )


def intent_row(intent: OrderIntent) -> dict[str, Any]:
    return {
        "client_order_id": intent.client_order_id,
        "intent_key": intent.intent_key,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "purpose": intent.purpose.value,
        "strategy": intent.strategy,
        "order_type": intent.order_type.value,
        "qty": intent.qty,
        "notional": intent.notional,
        "limit_price": intent.limit_price,
        "decision_id": intent.decision_id,
        "exit_intent_id": intent.exit_intent_id,
        "replaces": intent.replaces,
        "confidence": intent.confidence,
        "created_at": intent.created_at,
        # Day orders, nearly all of them, keep the column empty, as ledgers before schema 3 did.
        "time_in_force": None if intent.time_in_force is TimeInForce.DAY else intent.time_in_force.value,
    }


def revised_columns(intent: OrderIntent) -> dict[str, Any]:
    """The columns ``LedgerTx.revise_intent`` rewrites: the order the intent sends."""
    row = intent_row(intent)
    return {name: row[name] for name in ("order_type", "qty", "notional", "limit_price", "time_in_force")}


def _position_event_record(r: Any) -> PositionEventRecord:
    return PositionEventRecord(
        symbol=r.symbol,
        lifecycle=r.lifecycle,
        kind=r.kind,
        qty=r.qty,
        price=r.price,
        time=r.time,
        strategy=r.strategy,
        client_order_id=r.client_order_id,
        execution_id=r.execution_id,
        reason=r.reason,
    )


def _intent_from_row(row: RowMapping) -> OrderIntent:
    return OrderIntent(
        intent_key=row["intent_key"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        purpose=IntentPurpose(row["purpose"]),
        created_at=row["created_at"],
        strategy=row["strategy"],
        order_type=OrderType(row["order_type"]),
        qty=row["qty"],
        notional=row["notional"],
        limit_price=row["limit_price"],
        decision_id=row["decision_id"],
        exit_intent_id=row["exit_intent_id"],
        replaces=row["replaces"],
        confidence=row["confidence"],
        time_in_force=TimeInForce(row["time_in_force"] or TimeInForce.DAY.value),
    )


def _decision_from_row(row: RowMapping) -> StoredDecision:
    return StoredDecision(
        decision_id=row["decision_id"],
        symbol=row["symbol"],
        strategy=row["strategy"],
        signal_id=row["signal_id"],
        action=row["action"],
        reasons=tuple(r for r in row["reasons"].split(",") if r),
        trace=row["trace"],
        evaluated_at=row["evaluated_at"],
        stored_summary=row["summary"],
    )


def fold_position(symbol: str, events: Sequence[Any]) -> Position:
    # Fills of one order are one entry (a scale-in filled in three slices is one add-on):
    # group entry fills by client order id, notional-weighted.
    entries: list[PositionEntry] = []
    by_order: dict[str, int] = {}
    reductions: list[PositionReduction] = []
    owner: str | None = None
    for ev in events:
        if ev.kind == "backfill":
            entries.append(PositionEntry(time=ev.time, price=ev.price, qty=ev.qty, origin=EntryOrigin.BACKFILL))
        elif ev.kind == "entry":
            owner = owner or ev.strategy
            index = by_order.get(ev.client_order_id)
            if index is None:
                by_order[ev.client_order_id] = len(entries)
                entries.append(
                    PositionEntry(
                        time=ev.time,
                        price=ev.price,
                        qty=ev.qty,
                        confidence=ev.confidence,
                        client_order_id=ev.client_order_id,
                    )
                )
            else:
                prev = entries[index]
                qty = prev.qty + ev.qty
                entries[index] = PositionEntry(
                    time=prev.time,
                    price=(prev.notional + ev.qty * ev.price) / qty,
                    qty=qty,
                    confidence=prev.confidence,
                    client_order_id=prev.client_order_id,
                )
        else:
            reductions.append(PositionReduction(time=ev.time, qty=ev.qty, price=ev.price, reason=ev.reason))
    return Position(symbol=symbol, strategy=owner, entries=entries, reductions=reductions)


def queued_buy_row(signal: Signal, strategy: str, queued_at: datetime) -> dict[str, Any]:
    return {
        "signal_id": signal.signal_id,
        "strategy": strategy,
        "symbol": signal.symbol,
        "signal": signal_text(signal),
        "queued_at": queued_at,
    }


def signal_text(signal: Signal) -> str:
    """The queued signal as stored (schema 5): the converter's document less what its row holds
    in columns (symbol, signal id) and less the fields at their defaults, as ``json.dumps``
    writes it with the separators ``,`` and ``:``, byte for byte (a test holds it to that).
    Written out by hand: a replay queues one per buy signal, and this is ~4x faster."""
    price = signal.reference_price
    text = (
        f'{{"side":{_q(signal.side._value_)},"confidence":{int(signal.confidence)!r},'
        f'"generated_at":{_q(signal.generated_at.astimezone(UTC).isoformat())}'
    )
    if price is not None:
        text += f',"reference_price":{_q(str(price))}'
    if signal.source:
        text += f',"source":{_q(signal.source)}'
    if signal.reason:
        text += f',"reason":{_q(signal.reason)}'
    if signal.urgency is not Urgency.PLANNED:
        text += f',"urgency":{_q(signal.urgency._value_)}'
    if signal.payload:
        text += f',"payload":{json.dumps(signal.payload, separators=(",", ":"))}'
    return text + "}"


# The decisions a chart marks as passed over (the approved ones are its entries and add-ons).
PASSED_OVER_ACTIONS = (BuyAction.SKIP.value, BuyAction.BLOCK.value)
# Keys bound in one ``IN (...)``: well under SQLite's and PostgreSQL's limits on parameters.
IDS_PER_QUERY = 500

# What settles a queued buy: a decision on its signal (schema 5: the decision's row is the
# record), or a settlement row (a signal set aside, or one judged by a ledger before schema 5).
# Decisions first: a signal judged at the open is found by the first lookup.
SETTLING_COLUMNS = (t.decisions.c.signal_id, t.queued_buy_settlements.c.signal_id)


def waiting_buys_query() -> sa.Select[Any]:
    """Queued buys no settlement or decision has settled, in the order they were queued."""
    q = t.queued_buys
    unsettled = [~sa.exists().where(column == q.c.signal_id) for column in SETTLING_COLUMNS]
    return sa.select(q.c.signal_id, q.c.strategy, q.c.symbol, q.c.signal).where(*unsettled).order_by(q.c.id)


def settlement_row(signal_id: str, time: datetime, decision_id: str | None, note: str) -> dict[str, Any]:
    return {"signal_id": signal_id, "decision_id": decision_id, "note": note, "time": time}


def signal_from_text(text: str, symbol: str, signal_id: str) -> Signal:
    """The queued signal a row holds: ``signal_text`` with the row's symbol and signal id, or
    the whole document as ledgers before schema 5 stored it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StructureError("a queued buy signal", [f"not JSON: {exc}"]) from None
    if isinstance(data, dict):
        data.setdefault("symbol", symbol)
        data.setdefault("signal_id", signal_id)
    return structure(data, Signal, what="a queued buy signal")


def unapplicable(fill: Fill, status: LedgerOrderStatus | None, held: Decimal) -> str:
    """Why a fill of one of our orders cannot be applied as expected ("" when it can)."""
    if status in (LedgerOrderStatus.NOT_FOUND, LedgerOrderStatus.REJECTED):
        return (
            f"a fill of order {fill.client_order_id}, which the ledger had marked {status} (the broker's "
            "position may have been adopted meanwhile)"
        )
    if fill.side is Side.SELL and held < fill.qty:
        return f"it sells {fill.qty} {fill.symbol} and the ledger holds {held} (closed or reduced meanwhile)"
    return ""


def unapplied_row(fill: Fill, reason: str) -> dict[str, Any]:
    return {
        "execution_id": fill.execution_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol,
        "reason": reason,
        "recorded_at": fill.time,
    }


def _fill_from_row(row: Any) -> Fill:
    return Fill(
        execution_id=row.execution_id,
        client_order_id=row.client_order_id,
        broker_order_id=row.broker_order_id,
        symbol=row.symbol,
        side=Side(row.side),
        qty=row.qty,
        price=row.price,
        time=row.time,
        commission=row.commission,
    )


def heartbeat_row(beat: TraderHeartbeat) -> dict[str, Any]:
    return {
        "trader": beat.trader,
        "strategy": beat.strategy,
        "broker": beat.broker,
        "host": beat.host,
        "pid": beat.pid,
        "cycle_at": beat.cycle_at,
        "cycle_skipped": beat.cycle_skipped,
        "cycle_note": beat.cycle_note,
        "events_applied": beat.events_applied,
        "exits": beat.exits,
        "signals": beat.signals,
        "buys": beat.buys,
        "strategy_errors": beat.strategy_errors,
        "last_bar_at": beat.last_bar_at,
        "stream": beat.stream.value,
        "stream_last_heard_at": beat.stream_last_heard_at,
        "stream_failure": beat.stream_failure,
        "marks": json.dumps(
            {symbol: [str(mark.price), mark.time.isoformat()] for symbol, mark in beat.marks.items()},
            separators=(",", ":"),
        ),
    }


def heartbeat_from_row(row: RowMapping) -> TraderHeartbeat:
    marks = {
        symbol: PriceMark(Decimal(price), datetime.fromisoformat(time))
        for symbol, (price, time) in json.loads(row["marks"]).items()
    }
    return TraderHeartbeat(
        trader=row["trader"],
        strategy=row["strategy"],
        broker=row["broker"],
        host=row["host"],
        pid=row["pid"],
        cycle_at=row["cycle_at"],
        cycle_skipped=row["cycle_skipped"],
        cycle_note=row["cycle_note"],
        events_applied=row["events_applied"],
        exits=row["exits"],
        signals=row["signals"],
        buys=row["buys"],
        strategy_errors=row["strategy_errors"],
        last_bar_at=row["last_bar_at"],
        stream=StreamStatus(row["stream"]),
        stream_last_heard_at=row["stream_last_heard_at"],
        stream_failure=row["stream_failure"],
        marks=marks,
    )
