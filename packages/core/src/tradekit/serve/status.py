"""What ``tradekit serve`` shows, read from the ledger: one function per page, JSON-ready.

Every HTML page and every API route is built from these functions, so the page and the API
always say the same. Money and quantities leave as exact decimal text, times as ISO 8601
UTC, ages in whole seconds. Nothing here writes: the ledger is opened read-only, and every
read is one snapshot.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

import tradekit.redaction as redaction
from tradekit.config.settings import Settings
from tradekit.domain.values import HUNDRED, ZERO
from tradekit.exits.calendar import TradingCalendar, trading_calendar
from tradekit.exits.intent import ExitState
from tradekit.guard.audit import blocking_transition
from tradekit.guard.control import read_trading_states
from tradekit.guard.state import ACCOUNT, TradingState
from tradekit.health.heartbeat import StreamStatus, TraderHeartbeat
from tradekit.ledger.records import StoredDecision
from tradekit.ledger.store import Ledger, LedgerTx
from tradekit.plugins import Plugins
from tradekit.reconcile.report import BLOCKING_ACTIONS, ReconcileAction
from tradekit.reporting.scaling import next_scale_in
from tradekit.reporting.trades import Trade, plain_number, read_trades
from tradekit.serialization import unstructure
from tradekit.serve.pages import PageRequest, StatusPage

Json = dict[str, Any]

log = logging.getLogger(__name__)

OK, ATTENTION, STALE = "ok", "attention", "stale"
_RANK = {OK: 0, ATTENTION: 1, STALE: 2}
FINISHED_EXITS_SHOWN = 50


@attrs.frozen(kw_only=True)
class StatusSource:
    """What the pages read: the ledger (read-only), the settings, the plugins, the clock.

    ``ledger_url`` is the full URL, for plugin pages to open their own tables; it is never shown
    (``ledger.url`` is, with any password hidden). ``stale_after``: a trader's last cycle or
    a stream's last word older than this is flagged stale.
    """

    ledger: Ledger
    ledger_url: str
    settings: Settings
    plugins: Plugins
    clock: Callable[[], datetime]
    stale_after: timedelta

    @functools.cached_property
    def calendar(self) -> TradingCalendar:
        return trading_calendar(self.settings.exits.calendar)

    @functools.cached_property
    def pages(self) -> dict[str, StatusPage]:
        try:
            return self.plugins.status_pages()
        except Exception:
            log.exception("the plugins' status pages could not be registered; serving the built-in pages only")
            return {}

    @functools.cached_property
    def strategies(self) -> dict[str, Any]:
        return self.plugins.strategies()


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


def _num(value: Decimal | None, places: int | None = None) -> str | None:
    return None if value is None else plain_number(value, places)


def _worst(*verdicts: str) -> str:
    return max(verdicts, key=_RANK.__getitem__, default=OK)


# --- health ------------------------------------------------------------------------------------


def _trader_health(source: StatusSource, beat: TraderHeartbeat, now: datetime) -> Json:
    cycle_age = _age(now, beat.cycle_at)
    cycle = STALE if cycle_age is not None and cycle_age > source.stale_after.total_seconds() else OK
    if beat.cycle_skipped:
        cycle = _worst(cycle, ATTENTION)
    session_close = source.calendar.last_close(now)
    bar_behind = beat.last_bar_at is not None and session_close is not None and beat.last_bar_at < session_close
    stream_age = _age(now, beat.stream_last_heard_at)
    stream = {
        StreamStatus.NONE: OK,
        StreamStatus.CONNECTED: OK,
        StreamStatus.DISCONNECTED: STALE
        if stream_age is None or stream_age > source.stale_after.total_seconds()
        else ATTENTION,
        StreamStatus.FAILED: STALE,
    }[beat.stream]
    bar = ATTENTION if bar_behind or beat.last_bar_at is None else OK
    return {
        "trader": beat.trader,
        "strategy": beat.strategy,
        "broker": beat.broker,
        "host": beat.host,
        "pid": beat.pid,
        "status": _worst(cycle, stream, bar),
        "last_cycle": {
            "at": _time(beat.cycle_at),
            "age_seconds": cycle_age,
            "status": cycle,
            "skipped": beat.cycle_skipped,
            "note": redaction.redact(beat.cycle_note),
            "events_applied": beat.events_applied,
            "exits": beat.exits,
            "signals": beat.signals,
            "buys": beat.buys,
            "strategy_errors": beat.strategy_errors,
        },
        "last_bar": {
            "at": _time(beat.last_bar_at),
            "age_seconds": _age(now, beat.last_bar_at),
            "status": bar,
            "of_last_session": not bar_behind and beat.last_bar_at is not None,
            "last_session_closed_at": _time(session_close),
        },
        "stream": {
            "state": beat.stream.value,
            "last_heard_at": _time(beat.stream_last_heard_at),
            "age_seconds": stream_age,
            "failure": redaction.redact(beat.stream_failure) if beat.stream_failure else None,
            "status": stream,
        },
    }


def _reconciliation(tx: LedgerTx, now: datetime) -> Json | None:
    report = tx.last_reconciliation()
    if report is None:
        return None
    findings = [f for f in report.findings if f.action is not ReconcileAction.IN_SYNC]
    blocked = sorted({f.symbol for f in report.findings if f.action in BLOCKING_ACTIONS})
    unapplied = sorted({u.symbol for u in tx.unapplied_fills()})
    return {
        "at": _time(report.started_at),
        "age_seconds": _age(now, report.started_at),
        "broker": report.broker,
        "broker_ok": report.broker_ok,
        "error": redaction.redact(report.error) if report.error else None,
        "in_sync": sum(1 for f in report.findings if f.action is ReconcileAction.IN_SYNC),
        "findings": [
            {
                "symbol": f.symbol,
                "action": f.action.value,
                "broker_qty": _num(f.broker_qty),
                "ledger_qty": _num(f.ledger_qty),
                "price": _num(f.price),
                "reason": redaction.redact(f.reason),
                "source": f.source,
            }
            for f in findings
        ],
        "blocked_symbols": blocked,
        "unapplied_fill_symbols": unapplied,
        "status": OK if report.broker_ok and not blocked and not unapplied else ATTENTION,
    }


def health(source: StatusSource) -> Json:
    """Each live trader's last cycle, last bar and stream, and the last reconciliation."""
    now = source.clock()
    with source.ledger.reading() as tx:
        beats = tx.trader_heartbeats()
        reconciliation = _reconciliation(tx, now)
    traders = [_trader_health(source, beat, now) for beat in beats]
    verdicts = [t["status"] for t in traders] + ([reconciliation["status"]] if reconciliation else [])
    return {
        "as_of": _time(now),
        "status": _worst(*verdicts) if traders else ATTENTION,
        "stale_after_seconds": int(source.stale_after.total_seconds()),
        "traders": traders,
        "reconciliation": reconciliation,
    }


# --- the trading-state guard ---------------------------------------------------------------------


def trading_state(source: StatusSource, *, history: int = 20) -> Json:
    """Each scope's state, the holds behind it, and the latest transitions."""
    now = source.clock()
    with source.ledger.reading() as tx:
        states = read_trading_states(tx)
        recent = tx.trading_state_transitions(limit=history)
    scopes = list(dict.fromkeys([ACCOUNT, *states.scopes]))
    rows = []
    for scope in scopes:
        standing = states.scope_state(scope, now)
        hold = standing.hold
        rows.append(
            {
                "scope": str(scope),
                "state": standing.state.value,
                "since": _time(hold.since) if hold else None,
                "trigger": hold.trigger.value if hold else None,
                "why": redaction.redact(hold.reason) if hold else None,
                "by": hold.actor if hold else None,
                "until": _time(hold.until) if hold else None,
                "holds": [
                    {**unstructure(h), "reason": redaction.redact(h.reason), "in_force": h.in_force(now)}
                    for h in states.on_scope(scope)
                ],
            }
        )
    account_state = rows[0]["state"]
    return {
        "as_of": _time(now),
        "unreadable": states.unreadable,
        "account": account_state,
        "scopes": rows,
        "transitions": [
            {**unstructure(t), "reason": redaction.redact(t.reason), "text": redaction.redact(t.one_line())}
            for t in reversed(recent)
        ],
    }


# --- positions and the account -----------------------------------------------------------------


def _marks(beats: Sequence[TraderHeartbeat]) -> dict[str, Json]:
    marks: dict[str, Json] = {}
    for beat in sorted(beats, key=lambda b: b.cycle_at):
        for symbol, mark in beat.marks.items():
            marks[symbol] = {"price": mark.price, "at": mark.time}
    return marks


def _position(source: StatusSource, trade: Trade, mark: Json | None, tx: LedgerTx) -> Json:
    position = tx.position(trade.symbol)
    qty = trade.entered_qty - trade.exited_qty
    average = trade.average_entry
    unrealized = (mark["price"] - average) * qty if mark is not None else None
    # A part sold at an unknown price (reconciliation closed it) makes the realized P&L unknown,
    # never the known part's (tradekit.reporting.trades).
    realized = trade.realized_pnl if trade.pnl_known else None
    owner = source.strategies.get(trade.strategy) if trade.strategy else None
    cost = average * qty
    return {
        "symbol": trade.symbol,
        "strategy": trade.strategy,
        "qty": plain_number(qty),
        "entry_count": len(trade.entries),
        "average_entry": plain_number(average, 6),
        "cost": plain_number(cost, 2),
        "fees": plain_number(trade.fees, 6),
        "realized_pnl": _num(realized, 2),
        "unknown_pnl": trade.unknown_pnl_reason,
        "mark": None
        if mark is None
        else {
            "price": plain_number(mark["price"]),
            "at": _time(mark["at"]),
            "value": plain_number(mark["price"] * qty, 2),
        },
        "unrealized_pnl": _num(unrealized, 2),
        "pnl": _num(realized + unrealized if realized is not None and unrealized is not None else None, 2),
        "opened_at": _time(trade.opened_at),
        "entries": [
            {
                "time": _time(e.time),
                "kind": e.kind,
                "price": plain_number(e.price),
                "qty": plain_number(e.qty),
                "fees": plain_number(e.fees, 6),
                "decision_id": e.decision_id,
            }
            for e in trade.entries
        ],
        "exits": [
            {"time": _time(x.time), "price": _num(x.price), "qty": plain_number(x.qty), "reason": x.reason}
            for x in trade.exits
        ],
        "next_scale_in": next_scale_in(position, owner, source.settings) if position is not None else None,
    }


def positions(source: StatusSource) -> Json:
    """Open positions with their entries, average entry, fees, P&L and next scale-in trigger.

    A position is marked at the last close its trader has (the heartbeat's marks); without
    one, its unrealized P&L is unknown (null), never guessed.
    """
    now = source.clock()
    with source.ledger.reading() as tx:
        marks = _marks(tx.trader_heartbeats())
        trades = [t for t in read_trades(tx) if t.is_open]
        rows = [_position(source, t, marks.get(t.symbol), tx) for t in sorted(trades, key=lambda t: t.symbol)]
    return {"as_of": _time(now), "positions": rows}


def account(source: StatusSource) -> Json:
    """Equity (the last recorded, its high and the drawdown from it) and exposure by tier."""
    now = source.clock()
    allocation = source.settings.allocation
    with source.ledger.reading() as tx:
        curve = tx.equity_curve()
        marks = _marks(tx.trader_heartbeats())
        held = tx.open_positions()
    last = curve[-1] if curve else None
    high = max((p.equity for p in curve), default=None)
    equity = last.equity if last is not None else None
    tiers: dict[str, Json] = {}
    exposure: dict[str, Decimal] = defaultdict(lambda: ZERO)
    symbols: dict[str, list[str]] = defaultdict(list)
    marked_at_cost: list[str] = []
    for symbol, position in sorted(held.items()):
        tier = allocation.tier_of(symbol) or "untiered"
        mark = marks.get(symbol)
        price = mark["price"] if mark is not None else position.average_price
        if mark is None:
            marked_at_cost.append(symbol)
        exposure[tier] += price * position.qty
        symbols[tier].append(symbol)
    names = [*allocation.tiers, *(["untiered"] if "untiered" in exposure else [])]
    for name in names:
        value = exposure.get(name, ZERO)
        settings = allocation.tiers.get(name)
        tiers[name] = {
            "value": plain_number(value, 2),
            "pct_of_equity": _num(value * HUNDRED / equity, 2) if equity else None,
            "cap_pct": _num(settings.effective_cap_pct) if settings is not None else None,
            "symbols": symbols.get(name, []),
        }
    total = sum(exposure.values(), ZERO)
    return {
        "as_of": _time(now),
        "equity": _num(equity, 2),
        "cash": _num(last.cash, 2) if last is not None else None,
        "equity_at": _time(last.time) if last is not None else None,
        "equity_high": _num(high, 2),
        "drawdown_pct": _num((high - equity) * HUNDRED / high, 2) if high and equity is not None else None,
        "exposure": plain_number(total, 2),
        "exposure_pct_of_equity": _num(total * HUNDRED / equity, 2) if equity else None,
        "tiers": tiers,
        "marked_at_cost": marked_at_cost,
    }


# --- decisions -------------------------------------------------------------------------------------


def _decision_row(d: StoredDecision) -> Json:
    return {
        "decision_id": d.decision_id,
        "symbol": d.symbol,
        "strategy": d.strategy,
        "action": d.action,
        "reasons": list(d.reasons),
        "evaluated_at": _time(d.evaluated_at),
        "summary": redaction.redact(d.summary),
    }


def decisions(source: StatusSource, *, symbol: str | None = None, action: str | None = None, limit: int = 50) -> Json:
    """The most recent buy decisions first."""
    with source.ledger.reading() as tx:
        found = tx.decisions(symbol=symbol, action=action, limit=limit)
    return {"decisions": [_decision_row(d) for d in found], "symbol": symbol, "action": action, "limit": limit}


def decision(source: StatusSource, decision_id: str) -> Json | None:
    """One decision's full trace (what ``tradekit explain --json`` prints) and its explanation."""
    with source.ledger.reading() as tx:
        stored = tx.decision(decision_id)
        cause = blocking_transition(tx, stored) if stored is not None else None
    if stored is None:
        return None
    declared = source.plugins.reasons()
    return {
        **_decision_row(stored),
        "trace": stored.document(),
        "explanation": redaction.redact(stored.decision().explain()),
        "trading_state_transition": unstructure(cause),
        "reason_descriptions": {r: declared[r].description for r in stored.reasons if r in declared},
    }


# --- exits -----------------------------------------------------------------------------------------

_IN_FLIGHT = (ExitState.PLANNED, ExitState.SUBMITTED)


def _exit_row(intent: Any, now: datetime) -> Json:
    opens, closes = intent.window_opens_at, intent.window_closes_at
    if opens is None or closes is None:
        window = "now (immediate)"
    elif now < opens:
        window = "waiting"
    elif now < closes:
        window = "open"
    else:
        window = "passed"
    return {
        "intent_id": intent.intent_id,
        "symbol": intent.symbol,
        "strategy": intent.strategy,
        "qty": plain_number(intent.qty),
        "state": intent.state.value,
        "urgency": intent.urgency.value,
        "order_type": intent.order_type.value,
        "limit_price": _num(intent.limit_price),
        "reason": redaction.redact(intent.reason),
        "note": redaction.redact(intent.note),
        "decided_at": _time(intent.decided_at),
        "window_opens_at": _time(opens),
        "window_closes_at": _time(closes),
        "window": window,
        "attempts": intent.attempts,
        "rolls": intent.rolls,
    }


def exits(source: StatusSource) -> Json:
    """Exit intents in flight (planned, submitted), then the latest finished ones."""
    now = source.clock()
    with source.ledger.reading() as tx:
        in_flight = tx.exit_intents(states=_IN_FLIGHT)
        finished = tx.exit_intents(states=[s for s in ExitState if s not in _IN_FLIGHT])
    finished = sorted(finished, key=lambda i: i.decided_at, reverse=True)[:FINISHED_EXITS_SHOWN]
    return {
        "as_of": _time(now),
        "in_flight": [_exit_row(i, now) for i in in_flight],
        "finished": [_exit_row(i, now) for i in finished],
    }


def exit_intent(source: StatusSource, intent_id: str) -> Json | None:
    """One exit intent and every step of its life."""
    now = source.clock()
    with source.ledger.reading() as tx:
        intent = tx.exit_intent(intent_id)
        steps = tx.exit_transitions(intent_id) if intent is not None else []
    if intent is None:
        return None
    return {
        **_exit_row(intent, now),
        "transitions": [
            {
                "state": s.state.value,
                "time": _time(s.time),
                "note": redaction.redact(s.note),
                "limit_price": _num(s.limit_price),
                "client_order_id": s.client_order_id,
                "window_opens_at": _time(s.window_opens_at),
                "window_closes_at": _time(s.window_closes_at),
            }
            for s in steps
        ],
    }


# --- plugin pages and the overview -------------------------------------------------------------------


def page(source: StatusSource, name: str) -> Json | None:
    """A plugin's page, read now (None: no such page)."""
    found = source.pages.get(name)
    if found is None:
        return None
    content = found.read(PageRequest(ledger_url=source.ledger_url, settings=source.settings, now=source.clock()))
    return {
        "name": found.name,
        "title": found.title,
        "description": found.description,
        "summary": redaction.redact(content.summary),
        "columns": list(content.table.columns),
        "rows": [[redaction.redact(cell) for cell in row] for row in content.table.rows],
        "data": content.data,
    }


def overview(source: StatusSource) -> Json:
    """The front page: health, the account's state, equity, and what is open and pending."""
    with source.ledger.reading() as tx:
        open_count = len(tx.open_positions())
        pending = len(tx.pending_intents())
        in_flight = len(tx.exit_intents(states=_IN_FLIGHT))
        latest = [_decision_row(d) for d in tx.decisions(limit=5)]
    return {
        "health": health(source),
        "trading_state": trading_state(source, history=5),
        "account": account(source),
        "open_positions": open_count,
        "pending_orders": pending,
        "exits_in_flight": in_flight,
        "latest_decisions": latest,
        "ledger": source.ledger.url,
    }


def state_severity(state: str) -> int:
    return TradingState(state).severity
