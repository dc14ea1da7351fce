"""What a notification says: one ``Message`` per fill, guard transition, reconciliation or error.

Every text passes through ``tradekit.redaction`` before it leaves: a message never carries
a registered secret, whatever a plugin or a broker put in a reason.
"""

from __future__ import annotations

import logging
from enum import StrEnum

import attrs

from tradekit import redaction
from tradekit.config.settings import NotificationEvent
from tradekit.domain.orders import Fill
from tradekit.guard.state import TradingState, Transition
from tradekit.ledger.records import IntentPurpose, OrderIntent
from tradekit.reconcile.report import ReconcileAction, ReconcileReport
from tradekit.reporting.trades import plain_number


class Severity(StrEnum):
    """How a message is flagged (apprise's notification types)."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


@attrs.frozen(kw_only=True)
class Message:
    """One notification: what it is about, a title, a body and how it is flagged."""

    event: NotificationEvent
    title: str = attrs.field(converter=redaction.redact)
    body: str = attrs.field(converter=redaction.redact)
    severity: Severity = Severity.INFO


_FILL_EVENTS = {
    IntentPurpose.ENTRY: (NotificationEvent.ENTRY, "bought", "first entry"),
    IntentPurpose.SCALE_IN: (NotificationEvent.SCALE_IN, "added to", "add-on"),
    IntentPurpose.EXIT: (NotificationEvent.EXIT, "sold", "exit"),
}


def fill_message(fill: Fill, intent: OrderIntent) -> Message:
    """A fill of one of tradekit's orders: a first entry, an add-on or an exit."""
    event, verb, kind = _FILL_EVENTS[intent.purpose]
    body = (
        f"{fill.side.value.upper()} {plain_number(fill.qty)} {fill.symbol} @ {plain_number(fill.price)} "
        f"({kind}{f', strategy {intent.strategy}' if intent.strategy else ''}, fees {plain_number(fill.commission)}) "
        f"at {fill.time.isoformat()}"
    )
    if intent.decision_id:
        body += f"; decision {intent.decision_id} (tradekit explain {intent.decision_id})"
    return Message(event=event, title=f"tradekit {verb} {fill.symbol}", body=body, severity=Severity.SUCCESS)


_STATE_SEVERITY = {
    TradingState.HALTED: Severity.FAILURE,
    TradingState.REDUCE_ONLY: Severity.WARNING,
    TradingState.ACTIVE: Severity.SUCCESS,
}


def transition_message(transition: Transition) -> Message:
    """A change of the trading-state guard."""
    state = transition.to_state.value.upper()
    return Message(
        event=NotificationEvent.GUARD,
        title=f"tradekit {transition.scope} {state}",
        body=transition.one_line(),
        severity=_STATE_SEVERITY[transition.to_state],
    )


def reconciliation_message(report: ReconcileReport) -> Message | None:
    """A reconciliation's findings, or None when the ledger and the broker agree."""
    found = [f for f in report.findings if f.action is not ReconcileAction.IN_SYNC]
    if not found:
        return None
    lines = [
        f"{f.action.value.upper()} {f.symbol}: broker {f.broker_qty if f.broker_qty is not None else '-'}, "
        f"ledger {f.ledger_qty if f.ledger_qty is not None else '-'} ({f.reason})"
        for f in found
    ]
    blocked = sorted(report.unreconciled_broker_symbols)
    if blocked:
        lines.append(f"buys blocked on: {', '.join(blocked)}")
    return Message(
        event=NotificationEvent.RECONCILIATION,
        title=f"tradekit reconciliation against {report.broker}: {len(found)} finding{'s' if len(found) > 1 else ''}",
        body="\n".join(lines),
        severity=Severity.WARNING if blocked else Severity.INFO,
    )


def error_message(record: logging.LogRecord, repeated: int = 0) -> Message:
    """A logged error (or warning); ``repeated``: how many like it were not sent since the last."""
    body = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        body += f"\n{redaction.redact_exception(record.exc_info[1])}"
    if repeated:
        body += f"\n({repeated} more like it since the last message)"
    return Message(
        event=NotificationEvent.ERROR,
        title=f"tradekit {record.levelname.lower()}: {record.name}",
        body=body,
        severity=Severity.FAILURE if record.levelno >= logging.ERROR else Severity.WARNING,
    )
