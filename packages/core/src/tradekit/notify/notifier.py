"""Deliver messages through apprise from a worker thread: sending one never waits.

The trading path only puts a message on a queue (``Notifier.send``) and goes on. One worker
thread takes them off and delivers each to every configured target. An endpoint that fails
is logged (the message is not retried) and the next message is tried; one that hangs holds
the worker until apprise's own timeouts give up (``cto`` / ``rto`` in the URL, 4 s each by
default), never the trader. When messages come faster than they can be delivered, the queue
fills to ``queue_size`` and the newest are dropped and counted: memory stays bounded and the
trader never blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Final

from tradekit.notify.messages import Message
from tradekit.notify.targets import describe_target, register_target_secrets

if TYPE_CHECKING:
    import apprise

    from tradekit.config.settings import NotificationSettings

log = logging.getLogger(__name__)

_STOP: Final = object()


class Notifier:
    """A queue of messages and the worker thread that delivers them to the configured targets."""

    def __init__(self, settings: NotificationSettings) -> None:
        for url in settings.urls:
            register_target_secrets(url)
        self._urls = settings.urls
        self._events = frozenset(settings.events)
        self._capacity = settings.queue_size
        self._shutdown_wait = settings.shutdown_wait_seconds
        self._apprise = _apprise(settings.urls)
        self._queue: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._worker = threading.Thread(target=self._work, name="tradekit-notify", daemon=True)
        self._worker.start()

    def wants(self, message: Message) -> bool:
        return message.event in self._events

    def send(self, message: Message) -> bool:
        """Queue ``message`` for delivery and return at once; False when it was not queued
        (its event is not wanted, the queue is full, or the notifier is closed)."""
        if not self.wants(message):
            return False
        with self._lock:
            if self._closed:
                return False
            if self._queue.qsize() >= self._capacity:
                self.dropped += 1
                dropped = self.dropped
            else:
                self._queue.put(message)
                return True
        if dropped == 1 or dropped % 100 == 0:
            log.warning(
                "notifications are not keeping up: %d dropped so far (a slow or hanging endpoint; the queue holds %d)",
                dropped,
                self._capacity,
            )
        return False

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            if message is _STOP:
                return
            assert isinstance(message, Message)
            try:
                # The text is plain: apprise escapes it for a target that reads HTML or
                # Markdown (Telegram, Slack, e-mail ...), so a ``<`` or ``*`` in a symbol or a
                # reason neither breaks the message (Telegram refuses bad HTML) nor injects markup.
                sent = bool(
                    self._apprise.notify(
                        body=message.body, title=message.title, notify_type=message.severity.value, body_format="text"
                    )
                )
            except Exception:
                log.exception("notification %r could not be delivered", message.title)
                sent = False
            if sent:
                self.delivered += 1
            else:
                self.failed += 1
                log.warning("notification %r was not delivered to every target (apprise logs why)", message.title)

    def pending(self) -> int:
        """Messages queued and not yet taken by the worker."""
        return self._queue.qsize()

    def close(self, wait: float | None = None) -> int:
        """Stop taking messages, deliver those queued for up to ``wait`` seconds (default:
        ``shutdown_wait_seconds``), and return how many were left undelivered."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._worker.join(self._shutdown_wait if wait is None else wait)
        if not self._worker.is_alive():
            return 0
        # Still delivering one: that one and every message behind it (the stop mark stands in for it).
        left = self._queue.qsize()
        log.warning("%d notifications were not delivered before the end (an endpoint is slow or hanging)", left)
        return left

    @property
    def targets(self) -> list[str]:
        """The targets, named without their credentials."""
        return [describe_target(url) for url in self._urls]


def _apprise(urls: tuple[str, ...]) -> apprise.Apprise:
    import apprise

    targets = apprise.Apprise()
    for url in urls:
        if not targets.add(url):
            raise ValueError(f"notification target {describe_target(url)} cannot be used")
    return targets
