"""The ledger's tables: append-only records, Decimal and time stored as exact text.

Money and quantities are stored as decimal strings (SQLite has no exact decimal type and
SQLAlchemy's Numeric would pass through float there). Times are stored as fixed-width UTC
ISO 8601 strings, which sort and compare correctly as text on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

SCHEMA_VERSION = 6

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


class DecimalText(sa.types.TypeDecorator[Decimal]):
    """A Decimal stored as its exact string."""

    impl = sa.String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"the ledger stores finite Decimals only, got {value!r}")
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


# Each time's stored text, by the time object: a flush writes the same moment into many rows
# (every decision, queued buy and order event of one step share the clock's datetime). Keyed
# by ``id`` with the time held beside its text, so an id is never reused while its entry
# stands (datetimes are immutable); cleared when full.
_UTC_TEXTS: dict[int, tuple[datetime, str]] = {}
_UTC_TEXTS_LIMIT = 1024


class UtcText(sa.types.TypeDecorator[datetime]):
    """A timezone-aware datetime stored as fixed-width UTC text."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        known = _UTC_TEXTS.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        moment = value
        if moment.tzinfo is not UTC:
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"the ledger stores timezone-aware times only, got {value!r}")
            moment = moment.astimezone(UTC)
        # isoformat (C) writes exactly what strftime(_TIME_FORMAT) does for a UTC time, ~5x faster.
        text = moment.isoformat(timespec="microseconds")
        if len(_UTC_TEXTS) >= _UTC_TEXTS_LIMIT:
            _UTC_TEXTS.clear()
        _UTC_TEXTS[id(value)] = (value, text)
        return text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        # fromisoformat (C) reads the stored form exactly and is ~10x faster than strptime.
        return None if value is None else datetime.fromisoformat(value)


metadata = sa.MetaData()

meta = sa.Table(
    "tk_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

# An order tradekit decided to send, written before it is sent. Its client order id is
# deterministic (derived from intent_key), so a second attempt at the same intent collides
# here and at the broker instead of becoming a second order. A lost exit sell sent again
# under its client order id has its order columns (order_type, qty, notional, limit_price,
# time_in_force) rewritten to the order sent, with that send's status event.
order_intents = sa.Table(
    "tk_order_intents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_order_id", sa.String(128), nullable=False, unique=True),
    sa.Column("intent_key", sa.String(512), nullable=False, unique=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("strategy", sa.String(128)),
    sa.Column("order_type", sa.String(16), nullable=False),
    sa.Column("qty", DecimalText),
    sa.Column("notional", DecimalText),
    sa.Column("limit_price", DecimalText),
    sa.Column("decision_id", sa.String(64)),
    sa.Column("exit_intent_id", sa.String(64)),
    sa.Column("replaces", sa.String(128)),
    sa.Column("confidence", sa.Integer),
    sa.Column("created_at", UtcText, nullable=False),
    # NULL (and before schema 3): a day order.
    sa.Column("time_in_force", sa.String(8)),
    sa.Index("ix_tk_order_intents_symbol_created", "symbol", "created_at"),
    sa.Index("ix_tk_order_intents_created", "created_at"),
)

# Each intent's latest order status: a derived index kept in the same transaction as the
# order events, so "what is still in flight" never scans the history.
intent_heads = sa.Table(
    "tk_intent_heads",
    metadata,
    sa.Column("client_order_id", sa.String(128), primary_key=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32)),
    sa.Column("broker_order_id", sa.String(128)),
    sa.Column("terminal", sa.Boolean, nullable=False),
    sa.Index("ix_tk_intent_heads_open", "terminal", "symbol"),
)

# Every status an order went through, as reported by the broker (or decided by tradekit:
# "submitting", "not_found").
order_events = sa.Table(
    "tk_order_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_order_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("broker_order_id", sa.String(128)),
    sa.Column("filled_qty", DecimalText),
    sa.Column("filled_avg_price", DecimalText),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Column("time", UtcText, nullable=False),
    sa.Index("ix_tk_order_events_coid", "client_order_id", "id"),
)

fills = sa.Table(
    "tk_fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(128), nullable=False, unique=True),
    sa.Column("client_order_id", sa.String(128), nullable=False),
    sa.Column("broker_order_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("price", DecimalText, nullable=False),
    sa.Column("commission", DecimalText, nullable=False),
    sa.Column("time", UtcText, nullable=False),
    sa.Index("ix_tk_fills_coid", "client_order_id"),
)

# Exposure changes. A position's life (lifecycle) runs from its first entry to flat; the
# open position of a symbol is the fold of its latest lifecycle's rows.
position_events = sa.Table(
    "tk_position_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("lifecycle", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("strategy", sa.String(128)),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("price", DecimalText),
    sa.Column("confidence", sa.Integer),
    sa.Column("client_order_id", sa.String(128)),
    sa.Column("execution_id", sa.String(128), unique=True),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("time", UtcText, nullable=False),
    sa.Index("ix_tk_position_events_symbol_life", "symbol", "lifecycle"),
)

# The current lifecycle of each symbol and whether it is open: a derived index kept in the
# same transaction as the events, so "all open positions" never scans history.
position_heads = sa.Table(
    "tk_position_heads",
    metadata,
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("lifecycle", sa.Integer, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
)

decisions = sa.Table(
    "tk_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("decision_id", sa.String(64), nullable=False, unique=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("signal_id", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("trace", sa.Text, nullable=False),
    sa.Column("evaluated_at", UtcText, nullable=False),
    # A symbol's decisions, newest first, are read through this index (its entries are in
    # (symbol, id) order); nothing looks decisions up by time (schema 5 dropped the two
    # indexes on evaluated_at, ~90 bytes a decision).
    sa.Index("ix_tk_decisions_symbol", "symbol"),
    # A decision settles the queued buy of its signal (schema 5): what is still waiting is
    # read through this index, instead of a settlement row per decision.
    sa.Index("ix_tk_decisions_signal", "signal_id"),
)

reconciliations = sa.Table(
    "tk_reconciliations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", UtcText, nullable=False),
    sa.Column("broker", sa.String(64), nullable=False),
    sa.Column("broker_ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
)

reconcile_findings = sa.Table(
    "tk_reconcile_findings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reconciliation_id", sa.Integer, sa.ForeignKey("tk_reconciliations.id"), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("broker_qty", DecimalText),
    sa.Column("ledger_qty", DecimalText),
    sa.Column("price", DecimalText),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Index("ix_tk_reconcile_findings_rec", "reconciliation_id"),
)

exit_intents = sa.Table(
    "tk_exit_intents",
    metadata,
    sa.Column("intent_id", sa.String(64), primary_key=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("strategy", sa.String(128)),
    sa.Column("qty", DecimalText, nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("order_type", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("decided_at", UtcText, nullable=False),
    sa.Column("window_opens_at", UtcText),
    sa.Column("window_closes_at", UtcText),
    sa.Index("ix_tk_exit_intents_symbol", "symbol"),
)

# Each exit intent's current state: a derived index kept in the same transaction as its
# transitions, so listing planned exits never scans the history.
exit_heads = sa.Table(
    "tk_exit_heads",
    metadata,
    sa.Column("intent_id", sa.String(64), sa.ForeignKey("tk_exit_intents.intent_id"), primary_key=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Index("ix_tk_exit_heads_state", "state"),
    sa.Index("ix_tk_exit_heads_symbol", "symbol"),
)

exit_transitions = sa.Table(
    "tk_exit_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("intent_id", sa.String(64), sa.ForeignKey("tk_exit_intents.intent_id"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("limit_price", DecimalText),
    sa.Column("client_order_id", sa.String(128)),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("time", UtcText, nullable=False),
    # Set when the intent moves to another window (schema 3).
    sa.Column("window_opens_at", UtcText),
    sa.Column("window_closes_at", UtcText),
    sa.Index("ix_tk_exit_transitions_intent", "intent_id", "id"),
)

# Buy signals made at a close and waiting for the next session's open, so that a restart in
# between neither loses them nor depends on running the strategy again. A decision on the
# signal closes it (since schema 5; before, a settlement row naming the decision did), and
# a row of tk_queued_buy_settlements closes one set aside without a decision.
queued_buys = sa.Table(
    "tk_queued_buys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("signal_id", sa.String(128), nullable=False, unique=True),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("signal", sa.Text, nullable=False),
    sa.Column("queued_at", UtcText, nullable=False),
)

queued_buy_settlements = sa.Table(
    "tk_queued_buy_settlements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("signal_id", sa.String(128), nullable=False, unique=True),
    sa.Column("decision_id", sa.String(64)),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("time", UtcText, nullable=False),
)

# Fills the ledger kept but could not apply as expected (see ledger.records.UnappliedFill),
# and how reconciliation later settled each: their symbols are blocked in between.
unapplied_fills = sa.Table(
    "tk_unapplied_fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(128), nullable=False, unique=True),
    sa.Column("client_order_id", sa.String(128), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcText, nullable=False),
)

unapplied_fill_settlements = sa.Table(
    "tk_unapplied_fill_settlements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(128), nullable=False, unique=True),
    sa.Column("resolution", sa.Text, nullable=False),
    sa.Column("time", UtcText, nullable=False),
)

# The account's equity and cash over time (a replay records one row at each close; a live
# run records the same): what run statistics measure returns, volatility and drawdown on.
equity = sa.Table(
    "tk_equity",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UtcText, nullable=False),
    sa.Column("equity", DecimalText, nullable=False),
    sa.Column("cash", DecimalText, nullable=False),
    sa.Index("ix_tk_equity_time", "time"),
)

# --- the trading-state guard (tradekit.guard) -------------------------------------------------

# Every change of a hold (one trigger's, or the operator's, restriction of one scope), appended.
trading_state_transitions = sa.Table(
    "tk_trading_state_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UtcText, nullable=False),
    sa.Column("scope", sa.String(160), nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(160), nullable=False),
    sa.Column("until", UtcText),
    sa.Column("needs_resume", sa.Boolean, nullable=False),
    sa.Column("allow_exits", sa.Boolean, nullable=False),
    # The traders a per-trader hold (a stale stream) is held for, a JSON list of names
    # (schema 6; NULL: none, the hold is the account's).
    sa.Column("traders", sa.Text),
    sa.Index("ix_tk_trading_state_transitions_time", "time"),
)

# The holds standing now, one per scope and trigger: the head the transitions leave, kept in
# the same transaction, so reading the state never scans the history.
trading_state_holds = sa.Table(
    "tk_trading_state_holds",
    metadata,
    sa.Column("scope", sa.String(160), primary_key=True),
    sa.Column("trigger", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("since", UtcText, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(160), nullable=False),
    sa.Column("until", UtcText),
    sa.Column("needs_resume", sa.Boolean, nullable=False),
    sa.Column("allow_exits", sa.Boolean, nullable=False),
    # The traders whose own observation keeps a per-trader hold (a stale stream: those whose
    # trade-update stream is stale), a JSON list of names; it stands while any of them does
    # (schema 6; NULL: none, the hold is the account's, as every hold was before).
    sa.Column("traders", sa.Text),
)

# What the automatic triggers remember between observations (the equity high, the session's
# starting equity, how far closed trades were counted, the losing streak), so a restart
# resumes them.
trading_state_marks = sa.Table(
    "tk_trading_state_marks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", DecimalText),
    sa.Column("time", UtcText),
)

# A paper replay run into this ledger (tradekit run --ledger): what it replays (its identity),
# how far it got (its last checkpoint, written with the rows it covers), and whether it ended.
# A killed run continues from here; a finished one is not run again.
replay_runs = sa.Table(
    "tk_replay_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("identity", sa.Text, nullable=False),
    sa.Column("checkpoint", sa.Integer, nullable=False),
    sa.Column("last_session", UtcText),
    sa.Column("progress", sa.Text, nullable=False),
    sa.Column("finished", sa.Boolean, nullable=False),
)

# --- watching a running trader (tradekit serve) --------------------------------------------------

# Each live trader's latest cycle, overwritten every cycle (a head, not a record): when it ran,
# the newest bar it had, how its trade-update stream was, and its held symbols' last closes.
# What the status page measures a trader's health by; tradekit.health.heartbeat writes it.
trader_heartbeats = sa.Table(
    "tk_trader_heartbeats",
    metadata,
    sa.Column("trader", sa.String(300), primary_key=True),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("broker", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("cycle_at", UtcText, nullable=False),
    sa.Column("cycle_skipped", sa.Boolean, nullable=False),
    sa.Column("cycle_note", sa.Text, nullable=False),
    sa.Column("events_applied", sa.Integer, nullable=False),
    sa.Column("exits", sa.Integer, nullable=False),
    sa.Column("signals", sa.Integer, nullable=False),
    sa.Column("buys", sa.Integer, nullable=False),
    sa.Column("strategy_errors", sa.Integer, nullable=False),
    sa.Column("last_bar_at", UtcText),
    # "none" (no stream: order events are polled), "connected", "disconnected" or "failed".
    sa.Column("stream", sa.String(16), nullable=False),
    sa.Column("stream_last_heard_at", UtcText),
    sa.Column("stream_failure", sa.Text),
    # JSON {symbol: [close, time]}: the last close the trader has of each symbol it holds.
    sa.Column("marks", sa.Text, nullable=False),
)
