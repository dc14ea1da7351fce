"""Where pairs live: this package's own tables, in the same database as the tradekit ledger.

The core ledger keeps what it knows how to keep for every leg order: the order intent,
recorded before the order is sent under a deterministic client order id, and the order's
status events; and every pair decision with its full trace. What the core ledger cannot
represent — a pair of a short and a long on two venues — lives here, in tables of a separate
SQLAlchemy ``MetaData`` (prefix ``tkx_ccxt_``) with their own schema version:

- ``tkx_ccxt_pairs``: one row per pair, written once when it opens;
- ``tkx_ccxt_pair_events``: the pair's append-only audit trail (entry snapshots, entries
  opened or failed, leg failures, unwinds, naked legs, exits) with a JSON payload;
- ``tkx_ccxt_leg_orders``: every leg order, written before its intent and before it is sent;
- ``tkx_ccxt_leg_fills``: executions, deduplicated by (venue, execution id);
- ``tkx_ccxt_funding``: funding payments, deduplicated by (venue, funding id);
- ``tkx_ccxt_signals``: each signal's status changes (append-only; the latest row wins);
- ``tkx_ccxt_pair_marks``: the latest monitoring figures per pair — the one table that is
  overwritten, because it is a cache for the positions view, not a record.

Money and times use the core ledger's exact column types (decimal text, fixed-width UTC).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from tradekit.domain.signals import Side
from tradekit.ledger.schema import DecimalText, UtcText
from tradekit.serialization import structure, unstructure
from tradekit_venue_ccxt.pairs.models import (
    PAYLOAD_TYPES,
    EntrySnapshot,
    EventPayload,
    Leg,
    LegOrder,
    LegPurpose,
    PairEvent,
    PairEventKind,
    PairHeader,
    PairMark,
    PairPosition,
    PairSignal,
    PairStatus,
    SignalRecord,
    SignalStatus,
)
from tradekit_venue_ccxt.providers import FundingPayment, VenueFill

SCHEMA_VERSION = 1

metadata = sa.MetaData()

meta = sa.Table(
    "tkx_ccxt_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

pairs = sa.Table(
    "tkx_ccxt_pairs",
    metadata,
    sa.Column("pair_id", sa.String(200), primary_key=True),
    sa.Column("pair_key", sa.String(160), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("long_venue", sa.String(32), nullable=False),
    sa.Column("short_venue", sa.String(32), nullable=False),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("opened_at", UtcText, nullable=False),
    sa.Column("max_hold_seconds", sa.Integer, nullable=False),
    sa.Column("take_profit_pct", DecimalText, nullable=False),
    sa.Column("contract_size", DecimalText, nullable=False),
    sa.Index("ix_tkx_ccxt_pairs_key", "pair_key"),
)

pair_events = sa.Table(
    "tkx_ccxt_pair_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pair_id", sa.String(200), sa.ForeignKey("tkx_ccxt_pairs.pair_id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("time", UtcText, nullable=False),
    # The watchlist event an entry was opened on (entry snapshots only), to find it without JSON.
    sa.Column("signal_event_id", sa.String(128)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("ix_tkx_ccxt_pair_events_pair", "pair_id", "id"),
    sa.Index("ix_tkx_ccxt_pair_events_kind", "kind", "pair_id"),
    sa.Index("ix_tkx_ccxt_pair_events_signal", "signal_event_id"),
)

leg_orders = sa.Table(
    "tkx_ccxt_leg_orders",
    metadata,
    sa.Column("client_order_id", sa.String(64), primary_key=True),
    sa.Column("pair_id", sa.String(200), sa.ForeignKey("tkx_ccxt_pairs.pair_id"), nullable=False),
    sa.Column("entry_no", sa.Integer, nullable=False),
    sa.Column("leg", sa.String(8), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("venue", sa.String(32), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("created_at", UtcText, nullable=False),
    sa.UniqueConstraint("pair_id", "entry_no", "leg", "purpose", "attempt", name="uq_tkx_ccxt_leg_orders_slot"),
    sa.Index("ix_tkx_ccxt_leg_orders_pair", "pair_id"),
)

leg_fills = sa.Table(
    "tkx_ccxt_leg_fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("venue", sa.String(32), nullable=False),
    sa.Column("execution_id", sa.String(128), nullable=False),
    sa.Column("client_order_id", sa.String(64), nullable=False),
    sa.Column("venue_order_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("price", DecimalText, nullable=False),
    sa.Column("fee", DecimalText, nullable=False),
    sa.Column("time", UtcText, nullable=False),
    sa.UniqueConstraint("venue", "execution_id", name="uq_tkx_ccxt_leg_fills_execution"),
    sa.Index("ix_tkx_ccxt_leg_fills_coid", "client_order_id"),
)

funding = sa.Table(
    "tkx_ccxt_funding",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pair_id", sa.String(200), sa.ForeignKey("tkx_ccxt_pairs.pair_id"), nullable=False),
    sa.Column("venue", sa.String(32), nullable=False),
    sa.Column("funding_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("amount", DecimalText, nullable=False),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("time", UtcText, nullable=False),
    sa.UniqueConstraint("venue", "funding_id", name="uq_tkx_ccxt_funding_payment"),
    sa.Index("ix_tkx_ccxt_funding_pair", "pair_id"),
)

signals = sa.Table(
    "tkx_ccxt_signals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("long_venue", sa.String(32), nullable=False),
    sa.Column("short_venue", sa.String(32), nullable=False),
    sa.Column("generated_at", UtcText, nullable=False),
    sa.Column("event_open", sa.Boolean, nullable=False),
    sa.Column("confidence", sa.Integer, nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decision_id", sa.String(64)),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcText, nullable=False),
    sa.Index("ix_tkx_ccxt_signals_event", "event_id", "id"),
)

marks = sa.Table(
    "tkx_ccxt_pair_marks",
    metadata,
    sa.Column("pair_id", sa.String(200), sa.ForeignKey("tkx_ccxt_pairs.pair_id"), primary_key=True),
    sa.Column("time", UtcText, nullable=False),
    sa.Column("spread", DecimalText, nullable=False),
    sa.Column("open_spread", DecimalText, nullable=False),
    sa.Column("pnl", DecimalText, nullable=False),
    sa.Column("funding_paid", DecimalText, nullable=False),
)


class PairStoreError(RuntimeError):
    """The pair tables cannot be used (unreachable database, newer schema, conflicting write)."""


class PairStore:
    """Reads and appends the pair tables. Open with ``PairStore.open(url)``; close when done."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._token: str | None = None

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> PairStore:
        """Open the pair tables in the database at ``url`` (the ledger's URL).

        With ``create`` (trading) missing tables are created; without it (listings) a
        database without pair tables is an error and nothing is written.
        """
        try:
            parsed = sa.make_url(url)
        except exc.ArgumentError as error:
            raise PairStoreError(f"pair store URL {url!r} is not a database URL: {error}") from None
        where = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite" and not create:
            database = parsed.database
            if not database or database == ":memory:" or not Path(database).exists():
                raise PairStoreError(f"no ledger at {where}: no pair has been traded with it")
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed)
        if parsed.get_backend_name() == "sqlite":
            _configure_sqlite(engine)
        store = cls(engine)
        try:
            if create:
                store._migrate()
            else:
                store._check_existing(where)
        except BaseException:
            engine.dispose()
            raise
        return store

    def _check_existing(self, where: str) -> None:
        with self._read() as conn:
            if meta.name not in sa.inspect(conn).get_table_names():
                raise PairStoreError(f"the ledger at {where} holds no pair tables: no pair has been traded with it")
            raw = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        if raw is None or not raw.isdigit() or int(raw) > SCHEMA_VERSION:
            raise PairStoreError(
                f"the pair tables at {where} have schema version {raw!r}; this tradekit-venue-ccxt reads "
                f"version {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> PairStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(tkx_write=True)
                with conn.begin():
                    yield conn
        except exc.IntegrityError as error:
            raise PairStoreError(f"pair store write refused (another writer got there first?): {error.orig}") from None
        except exc.DBAPIError as error:
            raise PairStoreError(f"pair store write failed and was rolled back: {error.orig}") from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except exc.DBAPIError as error:
            raise PairStoreError(f"pair store read failed: {error.orig}") from None

    def _migrate(self) -> None:
        with self._write() as conn:
            metadata.create_all(conn, tables=[meta])
            raw = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            version = int(raw) if raw is not None and raw.isdigit() else 0
            if raw is not None and not raw.isdigit():
                raise PairStoreError(f"the pair tables' schema version is unreadable ({raw!r})")
            if version > SCHEMA_VERSION:
                raise PairStoreError(
                    f"the pair tables have schema version {version}, newer than this tradekit-venue-ccxt "
                    f"understands ({SCHEMA_VERSION}); upgrade the package"
                )
            if version < 1:
                metadata.create_all(conn)
                conn.execute(meta.delete().where(meta.c.key == "schema_version"))
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))

    # --- pairs and their events ------------------------------------------------------------

    def next_pair_id(self, key: str) -> str:
        """``<key>#<n>-<database>``: the n-th pair of the key in this database.

        The pair id is in every leg order's client order id, so it carries this database's
        own token: a new ledger on the same venue accounts (a new machine, a wiped file) must
        never give its first pair the ids of an earlier ledger's first pair — the venue would
        refuse them as duplicates, and the lookup that follows would take the earlier
        ledger's orders and fills for this pair's.
        """
        token = self._database_token()
        with self._read() as conn:
            count = conn.execute(sa.select(sa.func.count()).where(pairs.c.pair_key == key)).scalar_one()
        return f"{key}#{int(count) + 1}-{token}"

    def _database_token(self) -> str:
        """A random token written once per database (``tkx_ccxt_meta``), the same after every restart."""
        if self._token is None:
            select = sa.select(meta.c.value).where(meta.c.key == "database_token")
            with self._read() as conn:
                token = conn.execute(select).scalar()
            if token is None:
                # Another process may write it first: its token is the one read back.
                with contextlib.suppress(PairStoreError), self._write() as conn:
                    conn.execute(meta.insert().values(key="database_token", value=secrets.token_hex(6)))
                with self._read() as conn:
                    token = conn.execute(select).scalar_one()
            self._token = str(token)
        return self._token

    def create_pair(self, header: PairHeader) -> None:
        with self._write() as conn:
            conn.execute(
                pairs.insert().values(
                    pair_id=header.pair_id,
                    pair_key=header.key,
                    symbol=header.symbol,
                    long_venue=header.long_venue,
                    short_venue=header.short_venue,
                    strategy=header.strategy,
                    opened_at=header.opened_at,
                    max_hold_seconds=int(header.max_hold.total_seconds()),
                    take_profit_pct=header.take_profit_pct,
                    contract_size=header.contract_size,
                )
            )

    def append_event(self, pair_id: str, kind: PairEventKind, time: datetime, payload: EventPayload) -> None:
        expected = PAYLOAD_TYPES[kind]
        if not isinstance(payload, expected):
            raise TypeError(f"a {kind} event carries a {expected.__name__}, got {type(payload).__name__}")
        with self._write() as conn:
            conn.execute(
                pair_events.insert().values(
                    pair_id=pair_id,
                    kind=kind.value,
                    time=time,
                    signal_event_id=payload.event_id if isinstance(payload, EntrySnapshot) else None,
                    payload=json.dumps(unstructure(payload), separators=(",", ":"), sort_keys=True),
                )
            )

    def record_leg_order(self, order: LegOrder) -> None:
        with self._write() as conn:
            conn.execute(
                leg_orders.insert().values(
                    client_order_id=order.client_order_id,
                    pair_id=order.pair_id,
                    entry_no=order.entry_no,
                    leg=order.leg.value,
                    purpose=order.purpose.value,
                    attempt=order.attempt,
                    venue=order.venue,
                    symbol=order.symbol,
                    side=order.side.value,
                    qty=order.qty,
                    created_at=order.created_at,
                )
            )

    def record_fills(self, fills: Iterable[VenueFill]) -> int:
        """Append executions not seen before; return how many were new."""
        added = 0
        with self._write() as conn:
            for fill in fills:
                seen = conn.execute(
                    sa.select(leg_fills.c.id).where(
                        leg_fills.c.venue == fill.venue, leg_fills.c.execution_id == fill.execution_id
                    )
                ).first()
                if seen is not None:
                    continue
                conn.execute(
                    leg_fills.insert().values(
                        venue=fill.venue,
                        execution_id=fill.execution_id,
                        client_order_id=fill.client_order_id,
                        venue_order_id=fill.venue_order_id,
                        symbol=fill.symbol,
                        side=fill.side.value,
                        qty=fill.qty,
                        price=fill.price,
                        fee=fill.fee,
                        time=fill.time,
                    )
                )
                added += 1
        return added

    def record_funding(self, pair_id: str, payments: Iterable[FundingPayment]) -> int:
        """Attribute funding payments to a pair, each once; return how many were new."""
        added = 0
        with self._write() as conn:
            for payment in payments:
                seen = conn.execute(
                    sa.select(funding.c.id).where(
                        funding.c.venue == payment.venue, funding.c.funding_id == payment.funding_id
                    )
                ).first()
                if seen is not None:
                    continue
                conn.execute(
                    funding.insert().values(
                        pair_id=pair_id,
                        venue=payment.venue,
                        funding_id=payment.funding_id,
                        symbol=payment.symbol,
                        amount=payment.amount,
                        currency=payment.currency,
                        time=payment.time,
                    )
                )
                added += 1
        return added

    def save_mark(self, mark: PairMark) -> None:
        with self._write() as conn:
            conn.execute(marks.delete().where(marks.c.pair_id == mark.pair_id))
            conn.execute(
                marks.insert().values(
                    pair_id=mark.pair_id,
                    time=mark.time,
                    spread=mark.spread,
                    open_spread=mark.open_spread,
                    pnl=mark.pnl,
                    funding_paid=mark.funding_paid,
                )
            )

    def mark(self, pair_id: str) -> PairMark | None:
        with self._read() as conn:
            row = conn.execute(sa.select(marks).where(marks.c.pair_id == pair_id)).first()
        if row is None:
            return None
        return PairMark(
            pair_id=row.pair_id,
            time=row.time,
            spread=row.spread,
            open_spread=row.open_spread,
            pnl=row.pnl,
            funding_paid=row.funding_paid,
        )

    def events(self, pair_id: str) -> list[PairEvent]:
        with self._read() as conn:
            return self._events(conn, [pair_id])[pair_id]

    def _events(self, conn: Connection, pair_ids: Sequence[str]) -> dict[str, list[PairEvent]]:
        found: dict[str, list[PairEvent]] = defaultdict(list)
        rows = conn.execute(
            sa.select(pair_events).where(pair_events.c.pair_id.in_(list(pair_ids))).order_by(pair_events.c.id)
        )
        for row in rows:
            kind = PairEventKind(row.kind)
            payload = structure(json.loads(row.payload), PAYLOAD_TYPES[kind], what=f"{kind} payload of {row.pair_id}")
            found[row.pair_id].append(PairEvent(pair_id=row.pair_id, kind=kind, time=row.time, payload=payload))
        return found

    def pair(self, pair_id: str) -> PairPosition | None:
        found = self._pairs(sa.select(pairs).where(pairs.c.pair_id == pair_id))
        return found[0] if found else None

    def pairs(self, status: PairStatus | None = None, *, key: str | None = None) -> list[PairPosition]:
        """Every pair (oldest first), optionally only those in ``status`` or with ``key``."""
        query = sa.select(pairs).order_by(pairs.c.opened_at, pairs.c.pair_id)
        if key is not None:
            query = query.where(pairs.c.pair_key == key)
        return [p for p in self._pairs(query) if status is None or p.status is status]

    def live_pairs(self) -> list[PairPosition]:
        """Pairs not closed yet (open or closing), oldest first, without reading closed ones."""
        closed = sa.select(pair_events.c.pair_id).where(pair_events.c.kind == PairEventKind.CLOSED.value)
        query = sa.select(pairs).where(pairs.c.pair_id.not_in(closed)).order_by(pairs.c.opened_at, pairs.c.pair_id)
        return self._pairs(query)

    def closed_pairs_of_events(self, event_ids: Sequence[str]) -> dict[str, list[PairPosition]]:
        """The closed pairs each of these watchlist events opened an entry of."""
        if not event_ids:
            return {}
        closed = sa.select(pair_events.c.pair_id).where(pair_events.c.kind == PairEventKind.CLOSED.value)
        with self._read() as conn:
            rows = list(
                conn.execute(
                    sa.select(pair_events.c.signal_event_id, pair_events.c.pair_id)
                    .where(
                        pair_events.c.signal_event_id.in_(list(event_ids)),
                        pair_events.c.pair_id.in_(closed),
                    )
                    .distinct()
                )
            )
        if not rows:
            return {}
        found = {
            p.pair_id: p for p in self._pairs(sa.select(pairs).where(pairs.c.pair_id.in_({r.pair_id for r in rows})))
        }
        by_event: dict[str, list[PairPosition]] = defaultdict(list)
        for row in rows:
            by_event[row.signal_event_id].append(found[row.pair_id])
        return dict(by_event)

    def entry_failures(self, key: str) -> list[datetime]:
        """When this pair key's entries failed in a row since its last entry that opened, latest first.

        Read from the audit trail (``entry_failed`` and ``entry_opened`` events, across every
        pair of the key), so a restart sees the same streak.
        """
        query = (
            sa.select(pair_events.c.kind, pair_events.c.time)
            .join(pairs, pairs.c.pair_id == pair_events.c.pair_id)
            .where(
                pairs.c.pair_key == key,
                pair_events.c.kind.in_([PairEventKind.ENTRY_FAILED.value, PairEventKind.ENTRY_OPENED.value]),
            )
            .order_by(pair_events.c.id.desc())
        )
        failures: list[datetime] = []
        with self._read() as conn:
            for row in conn.execute(query):
                if row.kind == PairEventKind.ENTRY_OPENED.value:
                    break
                failures.append(row.time)
        return failures

    def live_pair(self, key: str) -> PairPosition | None:
        live = [p for p in self.pairs(key=key) if p.is_live]
        return live[-1] if live else None

    def _pairs(self, query: sa.Select[Any]) -> list[PairPosition]:
        with self._read() as conn:
            headers = [_header(row) for row in conn.execute(query)]
            if not headers:
                return []
            ids = [h.pair_id for h in headers]
            events = self._events(conn, ids)
            orders: dict[str, list[LegOrder]] = defaultdict(list)
            for row in conn.execute(
                sa.select(leg_orders).where(leg_orders.c.pair_id.in_(ids)).order_by(leg_orders.c.created_at)
            ):
                orders[row.pair_id].append(_leg_order(row))
            cids = [o.client_order_id for group in orders.values() for o in group]
            fills_by_cid: dict[str, list[VenueFill]] = defaultdict(list)
            if cids:
                for row in conn.execute(sa.select(leg_fills).where(leg_fills.c.client_order_id.in_(cids))):
                    fills_by_cid[row.client_order_id].append(_fill(row))
            payments: dict[str, list[FundingPayment]] = defaultdict(list)
            for row in conn.execute(sa.select(funding).where(funding.c.pair_id.in_(ids))):
                payments[row.pair_id].append(_payment(row))
        built = []
        for header in headers:
            pair_orders = orders[header.pair_id]
            pair_fills = [f for o in pair_orders for f in fills_by_cid[o.client_order_id]]
            built.append(
                PairPosition.build(header, events[header.pair_id], pair_orders, pair_fills, payments[header.pair_id])
            )
        return built

    # --- signals ---------------------------------------------------------------------------

    def record_signal(
        self,
        signal: PairSignal,
        status: SignalStatus,
        now: datetime,
        *,
        decision_id: str | None = None,
        detail: str = "",
    ) -> None:
        with self._write() as conn:
            conn.execute(
                signals.insert().values(
                    event_id=signal.event_id,
                    symbol=signal.symbol,
                    long_venue=signal.long_venue,
                    short_venue=signal.short_venue,
                    generated_at=signal.generated_at,
                    event_open=signal.event_open,
                    confidence=signal.confidence,
                    source=signal.source,
                    status=status.value,
                    decision_id=decision_id,
                    detail=detail,
                    recorded_at=now,
                )
            )

    def latest_signals(self, statuses: Iterable[SignalStatus] | None = None) -> list[SignalRecord]:
        """The latest record of every event (only those now in ``statuses``), oldest first."""
        latest = sa.select(sa.func.max(signals.c.id)).group_by(signals.c.event_id).scalar_subquery()
        query = sa.select(signals).where(signals.c.id.in_(latest)).order_by(signals.c.id)
        if statuses is not None:
            query = query.where(signals.c.status.in_([s.value for s in statuses]))
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [_signal_record(row) for row in rows]

    def signal_history(self, event_id: str) -> list[SignalRecord]:
        with self._read() as conn:
            rows = list(conn.execute(sa.select(signals).where(signals.c.event_id == event_id).order_by(signals.c.id)))
        return [_signal_record(row) for row in rows]


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tkx_write") else "BEGIN")


def _header(row: Any) -> PairHeader:
    return PairHeader(
        pair_id=row.pair_id,
        symbol=row.symbol,
        long_venue=row.long_venue,
        short_venue=row.short_venue,
        strategy=row.strategy,
        opened_at=row.opened_at,
        max_hold=timedelta(seconds=row.max_hold_seconds),
        take_profit_pct=row.take_profit_pct,
        contract_size=row.contract_size,
    )


def _leg_order(row: Any) -> LegOrder:
    return LegOrder(
        client_order_id=row.client_order_id,
        pair_id=row.pair_id,
        entry_no=row.entry_no,
        leg=Leg(row.leg),
        purpose=LegPurpose(row.purpose),
        attempt=row.attempt,
        venue=row.venue,
        symbol=row.symbol,
        side=Side(row.side),
        qty=row.qty,
        created_at=row.created_at,
    )


def _fill(row: Any) -> VenueFill:
    return VenueFill(
        venue=row.venue,
        execution_id=row.execution_id,
        client_order_id=row.client_order_id,
        venue_order_id=row.venue_order_id,
        symbol=row.symbol,
        side=Side(row.side),
        qty=row.qty,
        price=row.price,
        fee=row.fee,
        time=row.time,
    )


def _payment(row: Any) -> FundingPayment:
    return FundingPayment(
        venue=row.venue,
        symbol=row.symbol,
        funding_id=row.funding_id,
        amount=row.amount,
        currency=row.currency,
        time=row.time,
    )


def _signal_record(row: Any) -> SignalRecord:
    return SignalRecord(
        signal=PairSignal(
            event_id=row.event_id,
            symbol=row.symbol,
            long_venue=row.long_venue,
            short_venue=row.short_venue,
            generated_at=row.generated_at,
            event_open=row.event_open,
            confidence=row.confidence,
            source=row.source,
        ),
        status=SignalStatus(row.status),
        recorded_at=row.recorded_at,
        decision_id=row.decision_id,
        detail=row.detail,
    )
