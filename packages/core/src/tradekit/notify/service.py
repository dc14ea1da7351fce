"""Notifications for one command: start the notifier, its hooks and the error relay; stop them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tradekit.notify.hooks import ErrorRelay, NotificationHooks
from tradekit.notify.notifier import Notifier

if TYPE_CHECKING:
    from tradekit.config.settings import NotificationSettings
    from tradekit.plugins import Plugins

PLUGIN_NAME = "tradekit.notify"


@contextlib.contextmanager
def notifications(
    settings: NotificationSettings, plugins: Plugins, *, clock: Callable[[], datetime] | None = None
) -> Iterator[Notifier | None]:
    """Send this process's notifications while inside (None, and nothing sent, without targets)."""
    if not settings.urls:
        yield None
        return
    notifier = Notifier(settings)
    relay = ErrorRelay(notifier, settings, clock=clock)
    root = logging.getLogger()
    hooks = NotificationHooks(notifier, repeat_after=timedelta(minutes=settings.repeat_error_after_minutes))
    plugins.register(hooks, PLUGIN_NAME)
    root.addHandler(relay)
    try:
        yield notifier
    finally:
        root.removeHandler(relay)
        plugins.unregister(PLUGIN_NAME)
        notifier.close()
