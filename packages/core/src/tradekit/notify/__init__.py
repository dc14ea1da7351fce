"""Notifications on fills, scale-ins, exits, guard transitions, reconciliation findings and
errors, through apprise (Telegram, Slack, e-mail, webhooks, ...), off the trading path.

``tradekit.notify.service.notifications(settings, plugins)`` starts them for one command (a live run, ``tradekit
halt``): a ``Notifier`` (a queue and its worker thread), the hooks that feed it, and the
error relay; leaving it delivers what is queued for up to ``shutdown_wait_seconds``. Without
``[notifications] urls`` it does nothing.
"""
