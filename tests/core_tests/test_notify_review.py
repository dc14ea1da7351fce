"""Review of the notifications: what reaches the target, escaped for its format; findings a
plugin adds to a reconciliation; a flapping guard condition is not a storm of messages.

The endpoint is the webhook receiver on 127.0.0.1 (tests/core_tests/webhook.py); clocks are
injected; every wait is bounded."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tradekit.config import NotificationSettings
from tradekit.guard.state import ACCOUNT, Scope, ScopeKind, TradingState, Transition, Trigger
from tradekit.hookspecs import hookimpl
from tradekit.notify.hooks import ErrorRelay, NotificationHooks
from tradekit.notify.messages import transition_message
from tradekit.notify.notifier import Notifier
from tradekit.reconcile.report import ReconcileAction, ReconcileFinding, ReconcileReport

from .serve_world import world_plugins
from .webhook import webhook

WAIT = 30  # seconds a test waits for the endpoint at most (a bound, not a measurement)
T0 = datetime(2024, 3, 5, 15, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _transition(
    to_state: TradingState,
    *,
    trigger: Trigger = Trigger.STALE_STREAM,
    scope: Scope = ACCOUNT,
    reason: str = "the trade-update stream has been down since 15:00 (the limit is 60 s)",
    actor: str | None = None,
    at: datetime = T0,
) -> Transition:
    from_state = TradingState.REDUCE_ONLY if to_state is TradingState.ACTIVE else TradingState.ACTIVE
    return Transition(
        time=at,
        scope=scope,
        trigger=trigger,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        actor=actor or f"trigger:{trigger.value}",
    )


# --- escaping for the target's format --------------------------------------------------------


def test_a_reason_with_markup_reaches_an_html_target_escaped() -> None:
    """Telegram (HTML by default) and any target in HTML or Markdown must get tradekit's plain
    text escaped: a ``<`` or ``&`` in a reason otherwise breaks the message (Telegram refuses it:
    the halt is never told) or injects a link."""
    reason = 'drawdown <b>7%</b> & <a href="http://evil.example/">resume here</a>'
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(f"{receiver.url}?format=html",)))
        halt = _transition(TradingState.HALTED, trigger=Trigger.MANUAL, reason=reason)
        assert notifier.send(transition_message(halt))
        assert notifier.close(WAIT) == 0
    [received] = receiver.received
    body = str(received["message"])
    assert "<a href" not in body, body
    assert "<b>" not in body, body
    # Escaped, not dropped: the target shows the reason as it was written.
    assert reason in html.unescape(body).replace("\xa0", " "), body
    assert notifier.delivered == 1


def test_a_plain_text_target_gets_the_text_unchanged() -> None:
    reason = "drawdown <b>7%</b> & more"
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(f"{receiver.url}?format=text",)))
        halt = _transition(TradingState.HALTED, trigger=Trigger.MANUAL, reason=reason)
        assert notifier.send(transition_message(halt))
        assert notifier.close(WAIT) == 0
    assert reason in str(receiver.received[0]["message"])


# --- reconciliation: the findings plugins add ------------------------------------------------


class BlocksWeirdSymbol:
    """A plugin that knows a symbol must not be traded (the hookspec's own example)."""

    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding] | None:
        return [
            ReconcileFinding(
                symbol="XYZ", action=ReconcileAction.UNRECONCILED, reason="corporate action pending", source="ops"
            )
        ]


def test_an_unreconciled_symbol_a_plugin_adds_is_notified() -> None:
    manager = world_plugins()
    manager.register(BlocksWeirdSymbol(), "blocks_xyz")
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,)))
        manager.register(NotificationHooks(notifier), "tradekit.notify")
        report = ReconcileReport(
            started_at=T0,
            broker="paper",
            broker_ok=True,
            findings=[ReconcileFinding(symbol="KO", action=ReconcileAction.IN_SYNC, reason="agree")],
        )
        extra = manager.on_reconcile(report)  # what the reconciler calls
        assert [f.symbol for f in extra] == ["XYZ"]  # the plugin's finding is kept ...
        notifier.close(WAIT)
    # ... and the trader hears of it: buys on XYZ are blocked.
    assert receiver.titles() == ["tradekit reconciliation against paper: 1 finding"]
    body = str(receiver.received[0]["message"])
    assert "UNRECONCILED XYZ" in body
    assert "corporate action pending" in body
    assert "buys blocked on: XYZ" in body
    assert receiver.received[0]["type"] == "warning"


def test_a_reconciliation_in_sync_is_still_not_notified() -> None:
    manager = world_plugins()
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,)))
        manager.register(NotificationHooks(notifier), "tradekit.notify")
        report = ReconcileReport(
            started_at=T0,
            broker="paper",
            broker_ok=True,
            findings=[ReconcileFinding(symbol="KO", action=ReconcileAction.IN_SYNC, reason="agree")],
        )
        assert manager.on_reconcile(report) == []
        notifier.close(WAIT)
    assert receiver.received == []


# --- storms: a flapping condition ------------------------------------------------------------


def test_a_flapping_condition_is_not_a_storm_and_halts_still_go_out() -> None:
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,)))
        hooks = NotificationHooks(notifier)
        # A trade-update stream that drops and comes back every minute for 200 minutes (the
        # transitions carry the guard's clock).
        for minute in range(200):
            now = T0 + timedelta(minutes=minute)
            state = TradingState.REDUCE_ONLY if minute % 2 == 0 else TradingState.ACTIVE
            hooks.on_trading_state(_transition(state, at=now))
            if minute == 101:
                # The operator's halt in the middle of it is told at once, whatever else is held back.
                halt = _transition(
                    TradingState.HALTED, trigger=Trigger.MANUAL, reason="kill switch", actor="user:ops", at=now
                )
                hooks.on_trading_state(halt)
        # After the storm, the next change is told with what was held back.
        hooks.on_trading_state(_transition(TradingState.REDUCE_ONLY, at=T0 + timedelta(minutes=260)))
        notifier.close(WAIT)
    titles = receiver.titles()
    assert len(titles) <= 30, len(titles)
    assert titles.count("tradekit account HALTED") == 1
    assert receiver.received[-1]["title"] == "tradekit account REDUCE_ONLY"
    assert "held back" in str(receiver.received[-1]["message"])


def test_each_symbol_s_condition_and_every_automatic_halt_is_told() -> None:
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,)))
        hooks = NotificationHooks(notifier)
        for symbol in ("KO", "PFE", "XOM"):
            hooks.on_trading_state(
                _transition(TradingState.HALTED, trigger=Trigger.UNRECONCILED, scope=Scope(ScopeKind.SYMBOL, symbol))
            )
        hooks.on_trading_state(_transition(TradingState.HALTED, trigger=Trigger.MAX_DRAWDOWN, reason="drawdown 11%"))
        notifier.close(WAIT)
    assert receiver.titles() == [
        "tradekit symbol:KO HALTED",
        "tradekit symbol:PFE HALTED",
        "tradekit symbol:XOM HALTED",
        "tradekit account HALTED",
    ]


# --- errors: one kind held back must not hide another ----------------------------------------


def test_a_rejection_of_another_symbol_is_not_held_back_as_the_same_error() -> None:
    clock = Clock()
    with webhook("answer") as receiver:
        settings = NotificationSettings(urls=(receiver.url,), repeat_error_after_minutes=60)
        notifier = Notifier(settings)
        relay = ErrorRelay(notifier, settings, clock=clock)
        logger = logging.getLogger("tradekit.execution.pipeline")
        logger.addHandler(relay)
        try:
            logger.error("buy %s blocked: %s", "KO", "insufficient buying power")
            clock.now += timedelta(minutes=5)
            logger.error("buy %s blocked: %s", "PFE", "insufficient buying power")
            clock.now += timedelta(minutes=1)
            logger.error("buy %s blocked: %s", "PFE", "insufficient buying power")  # the same again: held back
        finally:
            logger.removeHandler(relay)
        notifier.close(WAIT)
    bodies = [str(m["message"]) for m in receiver.received]
    assert bodies == ["buy KO blocked: insufficient buying power", "buy PFE blocked: insufficient buying power"]


def test_a_storm_of_distinct_errors_of_one_kind_is_bounded() -> None:
    clock = Clock()
    with webhook("answer") as receiver:
        settings = NotificationSettings(urls=(receiver.url,), repeat_error_after_minutes=60)
        notifier = Notifier(settings)
        relay = ErrorRelay(notifier, settings, clock=clock)
        logger = logging.getLogger("tradekit.execution.pipeline")
        logger.addHandler(relay)
        try:
            for i in range(300):
                clock.now = T0 + timedelta(seconds=i)
                logger.error("order %s for %s rejected: %s", f"tk-{i}", "KO", Decimal(i))
        finally:
            logger.removeHandler(relay)
        notifier.close(WAIT)
    assert 1 <= len(receiver.received) <= 30


class RaisesOnReconcile:
    @hookimpl
    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding] | None:
        raise RuntimeError("plugin broke")


def test_a_reconciliation_that_fails_tells_nothing() -> None:
    """The reconciler's transaction is rolled back when a plugin raises: its findings (here a
    backfill) were never recorded and must not be told."""
    manager = world_plugins()
    manager.register(RaisesOnReconcile(), "raises")
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,)))
        manager.register(NotificationHooks(notifier), "tradekit.notify")
        report = ReconcileReport(
            started_at=T0,
            broker="paper",
            broker_ok=True,
            findings=[
                ReconcileFinding(
                    symbol="KO",
                    action=ReconcileAction.BACKFILLED,
                    reason="broker-only",
                    broker_qty=Decimal(3),
                    price=Decimal(60),
                )
            ],
        )
        with pytest.raises(RuntimeError, match="plugin broke"):
            manager.on_reconcile(report)
        notifier.close(WAIT)
    assert receiver.received == []
