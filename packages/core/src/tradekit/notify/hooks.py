"""What is notified: the plugin hooks that hand events to the notifier, and the error relay.

``NotificationHooks`` is registered with the process's plugin manager: it hears fills
(``on_fill``), guard transitions (``on_trading_state``) and reconciliations (``on_reconcile``)
and queues a message for each, returning at once. A reconciliation is told with the findings
every plugin added (it wraps the hook). A guard condition that flaps (a hold placed and lifted
again and again) is told at most ``FLAP_BURST`` times per ``repeat_error_after_minutes``, the
next message counting the changes held back; a halt, a hold that needs a resume and an
operator's command are always told.

``ErrorRelay`` is a logging handler that queues tradekit's (and its plugins') errors: the
same error (logger and text) is sent once per ``repeat_error_after_minutes``, and at most
``ERROR_BURST`` different errors of one kind (logger and message template: the rejections of
different orders) in that time, the next message counting the ones held back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta

import attrs

from tradekit.config.settings import ErrorLevel, NotificationSettings
from tradekit.domain.orders import Fill
from tradekit.guard.state import Scope, TradingState, Transition, Trigger
from tradekit.hookspecs import hookimpl
from tradekit.ledger.records import OrderIntent
from tradekit.notify.messages import error_message, fill_message, reconciliation_message, transition_message
from tradekit.notify.notifier import Notifier
from tradekit.reconcile.report import ReconcileAction, ReconcileFinding, ReconcileReport

_LEVELS = {ErrorLevel.WARNING: logging.WARNING, ErrorLevel.ERROR: logging.ERROR, ErrorLevel.CRITICAL: logging.CRITICAL}
# Loggers whose warnings are news already told by their own notification (a reconciliation's
# findings, a guard transition): only their errors are relayed.
_TOLD_ELSEWHERE = ("tradekit.reconcile", "tradekit.guard")

FLAP_BURST = 4
"""Changes of one automatic hold (scope and trigger) told per window; the rest are counted."""
ERROR_BURST = 5
"""Different errors of one kind (logger and message template) told per window."""
_DEFAULT_WINDOW = timedelta(minutes=60)
_MAX_KINDS = 1000  # error kinds remembered before those whose window passed are forgotten

_Findings = list[list[ReconcileFinding] | None]


class NotificationHooks:
    """The plugin that turns tradekit's events into queued messages."""

    def __init__(self, notifier: Notifier, *, repeat_after: timedelta = _DEFAULT_WINDOW) -> None:
        self.notifier = notifier
        self._window = repeat_after
        self._lock = threading.Lock()
        # Per automatic hold: the start of its window, changes told in it, changes held back.
        self._holds: dict[tuple[Scope, Trigger], tuple[datetime, int, int]] = {}

    @hookimpl
    def on_fill(self, fill: Fill, intent: OrderIntent) -> None:
        self.notifier.send(fill_message(fill, intent))

    @hookimpl
    def on_trading_state(self, transition: Transition) -> None:
        note = self._flap_note(transition)
        if note is None:
            return
        message = transition_message(transition)
        if note:
            message = attrs.evolve(message, body=f"{message.body}\n{note}")
        self.notifier.send(message)

    def _flap_note(self, transition: Transition) -> str | None:
        """None when ``transition`` is held back (its hold flaps), else what to add to its message."""
        if (
            transition.to_state is TradingState.HALTED
            or transition.needs_resume
            or transition.trigger is Trigger.MANUAL
            or transition.actor.startswith("user:")
        ):
            return ""
        key = (transition.scope, transition.trigger)
        now = transition.time
        with self._lock:
            start, told, held = self._holds.get(key, (now, 0, 0))
            if now - start >= self._window or now < start:
                start, told = now, 0
            if told >= FLAP_BURST:
                self._holds[key] = (start, told, held + 1)
                return None
            self._holds[key] = (start, told + 1, 0)
        notes = []
        if held:
            notes.append(f"({held} more change{'s' if held > 1 else ''} of this hold held back before this one)")
        if told + 1 == FLAP_BURST:
            notes.append(
                f"(this hold keeps changing: its changes are held back until {(start + self._window).isoformat()}; "
                "the status page shows the current state)"
            )
        return "\n".join(notes)

    @hookimpl(wrapper=True)
    def on_reconcile(self, report: ReconcileReport) -> Generator[None, _Findings, _Findings]:
        # A wrapper: the findings the other plugins add (an UNRECONCILED symbol they know of)
        # are told too. One that raises, or a finding the reconciler refuses, fails the
        # reconciliation: nothing is told of it.
        results = yield
        extra = [finding for result in results if result for finding in result]
        if all(f.action is ReconcileAction.UNRECONCILED for f in extra):
            message = reconciliation_message(attrs.evolve(report, findings=(*report.findings, *extra)))
            if message is not None:
                self.notifier.send(message)
        return results


class ErrorRelay(logging.Handler):
    """Queue the errors tradekit and its plugins log (never its own, nor other libraries')."""

    def __init__(
        self, notifier: Notifier, settings: NotificationSettings, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(level=_LEVELS[settings.error_level])
        self.notifier = notifier
        self._repeat_after = timedelta(minutes=settings.repeat_error_after_minutes)
        self._clock = clock or (lambda: datetime.now(UTC))
        # Per kind of error (logger and message template): when its window started, the
        # errors (their text) sent in it, and how many were held back since the last sent.
        self._kinds: dict[tuple[str, str], tuple[datetime, frozenset[str], int]] = {}

    def relays(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not name.startswith("tradekit") or name.startswith("tradekit.notify"):
            return False
        return not (record.levelno < logging.ERROR and name.startswith(_TOLD_ELSEWHERE))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.relays(record):
            return
        key = (record.name, str(record.msg))
        text = record.getMessage()
        now = self._clock()
        start, sent, held = self._kinds.get(key, (now, frozenset(), 0))
        if now - start >= self._repeat_after or now < start:
            start, sent = now, frozenset()
        if text in sent or len(sent) >= ERROR_BURST:
            self._kinds[key] = (start, sent, held + 1)
            return
        if self.notifier.send(error_message(record, repeated=held)):
            if key not in self._kinds and len(self._kinds) >= _MAX_KINDS:
                self._forget(now)
            self._kinds[key] = (start, sent | {text}, 0)

    def _forget(self, now: datetime) -> None:
        """Forget the kinds whose window passed (memory stays bounded)."""
        for key, (start, _, _) in list(self._kinds.items()):
            if now - start >= self._repeat_after:
                del self._kinds[key]
