"""What is notified: the plugin hooks that hand events to the notifier, and the error relay.

``NotificationHooks`` is registered with the process's plugin manager: it hears fills
(``on_fill``), guard transitions (``on_trading_state``) and reconciliations (``on_reconcile``)
and queues a message for each, returning at once. ``ErrorRelay`` is a logging handler that
queues tradekit's (and its plugins') errors: the same error is sent once per
``repeat_error_after_minutes``, with a count of the repeats it held back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tradekit.config.settings import ErrorLevel, NotificationSettings
from tradekit.domain.orders import Fill
from tradekit.guard.state import Transition
from tradekit.hookspecs import hookimpl
from tradekit.ledger.records import OrderIntent
from tradekit.notify.messages import error_message, fill_message, reconciliation_message, transition_message
from tradekit.notify.notifier import Notifier
from tradekit.reconcile.report import ReconcileFinding, ReconcileReport

_LEVELS = {ErrorLevel.WARNING: logging.WARNING, ErrorLevel.ERROR: logging.ERROR, ErrorLevel.CRITICAL: logging.CRITICAL}
# Loggers whose warnings are news already told by their own notification (a reconciliation's
# findings, a guard transition): only their errors are relayed.
_TOLD_ELSEWHERE = ("tradekit.reconcile", "tradekit.guard")


class NotificationHooks:
    """The plugin that turns tradekit's events into queued messages."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @hookimpl
    def on_fill(self, fill: Fill, intent: OrderIntent) -> None:
        self.notifier.send(fill_message(fill, intent))

    @hookimpl
    def on_trading_state(self, transition: Transition) -> None:
        self.notifier.send(transition_message(transition))

    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding] | None:
        message = reconciliation_message(report)
        if message is not None:
            self.notifier.send(message)
        return None


class ErrorRelay(logging.Handler):
    """Queue the errors tradekit and its plugins log (never its own, nor other libraries')."""

    def __init__(
        self, notifier: Notifier, settings: NotificationSettings, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(level=_LEVELS[settings.error_level])
        self.notifier = notifier
        self._repeat_after = timedelta(minutes=settings.repeat_error_after_minutes)
        self._clock = clock or (lambda: datetime.now(UTC))
        # Per error (logger and message template): when it was last sent, and how many since.
        self._sent: dict[tuple[str, str], tuple[datetime, int]] = {}

    def relays(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not name.startswith("tradekit") or name.startswith("tradekit.notify"):
            return False
        return not (record.levelno < logging.ERROR and name.startswith(_TOLD_ELSEWHERE))

    def emit(self, record: logging.LogRecord) -> None:
        if not self.relays(record):
            return
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._sent.get(key)
        if last is not None and now - last[0] < self._repeat_after:
            self._sent[key] = (last[0], last[1] + 1)
            return
        if self.notifier.send(error_message(record, repeated=last[1] if last is not None else 0)):
            self._sent[key] = (now, 0)
