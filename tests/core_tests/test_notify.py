"""Notifications reach a webhook on 127.0.0.1 for fills, add-ons, exits, guard transitions,
reconciliation findings and errors; a failing or hanging endpoint never delays or stops
trading; the URLs are secrets."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit import redaction
from tradekit.cli import cli
from tradekit.config import NotificationSettings, Settings, load_settings
from tradekit.config.settings import NotificationEvent, SettingsError
from tradekit.guard.state import ACCOUNT
from tradekit.notify.hooks import ErrorRelay
from tradekit.notify.messages import Message
from tradekit.notify.notifier import Notifier
from tradekit.notify.service import notifications

from .serve_world import DAY, TUESDAY_OPEN, World, at, build_world, world_plugins
from .webhook import Receiver, webhook

WAIT = 30  # seconds a test waits for the endpoint at most (a bound, not a measurement)


def _settings(receiver: Receiver, **extra: object) -> Settings:
    return Settings(notifications=NotificationSettings(urls=(receiver.url,), **extra))  # type: ignore[arg-type]


def _sell_now(world: World) -> None:
    """Thursday, in the exit window: the trader executes the exit of KO it planned at Wednesday's close."""
    trading = world.trading
    now = TUESDAY_OPEN + 2 * DAY + timedelta(minutes=10)
    trading.broker.set_price("KO", Decimal(62), now - timedelta(minutes=1))
    at(trading, now, is_open=True)
    world.trader.cycle()


def _trade_with_notifications(tmp_path: Path, receiver: Receiver) -> tuple[World, Notifier]:
    settings = _settings(receiver)
    manager = world_plugins()
    with notifications(settings.notifications, manager) as notifier:
        assert notifier is not None
        world = build_world(tmp_path, plugins=manager, settings=settings)
        _sell_now(world)
    return world, notifier


def test_fills_add_ons_exits_guard_and_reconciliation_reach_the_webhook(tmp_path: Path) -> None:
    with webhook("answer") as receiver:
        world, notifier = _trade_with_notifications(tmp_path, receiver)
        world.trading.ledger.close()
    titles = receiver.titles()
    assert titles[0] == "tradekit reconciliation against paper: 1 finding"
    assert "tradekit bought KO" in titles
    assert "tradekit added to KO" in titles
    assert "tradekit sold KO" in titles
    assert "tradekit symbol:PFE HALTED" in titles
    bought = next(m for m in receiver.received if m["title"] == "tradekit bought KO")
    assert bought["message"].startswith("BUY ")
    assert "first entry, strategy add_each_close" in bought["message"]
    assert notifier.delivered == len(titles)
    assert notifier.dropped == notifier.failed == 0


def test_a_hanging_endpoint_never_delays_trading(tmp_path: Path) -> None:
    settings = Settings()
    with webhook("hang") as receiver:
        settings = _settings(receiver)
        manager = world_plugins()
        with notifications(settings.notifications, manager) as notifier:
            assert notifier is not None
            world = build_world(tmp_path, plugins=manager, settings=settings)
            assert receiver.arrived.wait(WAIT), "the notifier never reached the endpoint"
            # The endpoint now holds the worker's request and will not answer: trading goes on.
            world.guard.halt(ACCOUNT, reason="hung endpoint test", actor="user:ops", at=world.trading.clock.now)
            world.guard.resume(ACCOUNT, reason="done", actor="user:ops", at=world.trading.clock.now)
            _sell_now(world)
            assert not receiver.release.is_set()
            assert world.trading.ledger.position("KO") is None  # sold while the endpoint hung
            assert [h.state.value for h in world.guard.states().holds] == ["halted"]  # PFE's
            receiver.release.set()
        world.trading.ledger.close()
    assert notifier.delivered + notifier.failed + notifier.dropped >= 6


def test_a_failing_endpoint_never_stops_trading_and_each_message_is_tried(tmp_path: Path) -> None:
    with webhook("fail") as receiver:
        world, notifier = _trade_with_notifications(tmp_path, receiver)
        assert world.trading.ledger.position("KO") is None
        world.trading.ledger.close()
    assert notifier.failed == len(receiver.titles()) >= 5
    assert notifier.delivered == 0


def test_a_full_queue_drops_new_messages_instead_of_waiting() -> None:
    with webhook("hang") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,), queue_size=2))
        first = Message(event=NotificationEvent.ERROR, title="first", body="held by the endpoint")
        assert notifier.send(first)
        assert receiver.arrived.wait(WAIT)
        sent = [notifier.send(Message(event=NotificationEvent.ERROR, title=f"m{i}", body="x")) for i in range(9)]
        assert sent == [True, True] + [False] * 7
        assert notifier.dropped == 7
        receiver.release.set()
        assert notifier.close(WAIT) == 0
    assert receiver.titles()[0] == "first"


def test_only_the_chosen_events_are_sent() -> None:
    with webhook("answer") as receiver:
        notifier = Notifier(NotificationSettings(urls=(receiver.url,), events=(NotificationEvent.GUARD,)))
        assert not notifier.send(Message(event=NotificationEvent.ENTRY, title="fill", body="x"))
        assert notifier.send(Message(event=NotificationEvent.GUARD, title="halt", body="x"))
        notifier.close(WAIT)
    assert receiver.titles() == ["halt"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 5, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_same_error_is_sent_once_per_window_with_a_count_of_repeats() -> None:
    clock = Clock()
    with webhook("answer") as receiver:
        settings = NotificationSettings(urls=(receiver.url,), repeat_error_after_minutes=60)
        notifier = Notifier(settings)
        relay = ErrorRelay(notifier, settings, clock=clock)
        logger = logging.getLogger("tradekit.execution.live")
        logger.addHandler(relay)
        try:
            for _ in range(3):
                logger.error("strategy %s raised on %s", "pyramid", "KO")
            logging.getLogger("tradekit.notify.notifier").error("never relayed: the notifier's own")
            logging.getLogger("urllib3").error("never relayed: not tradekit's")
            clock.now += timedelta(minutes=61)
            logger.error("strategy %s raised on %s", "pyramid", "KO")
        finally:
            logger.removeHandler(relay)
        notifier.close(WAIT)
    assert receiver.titles() == ["tradekit error: tradekit.execution.live"] * 2
    assert receiver.received[1]["message"].endswith("(2 more like it since the last message)")


def test_a_notification_url_is_a_secret_in_config_check(receiver_url: str) -> None:
    result = CliRunner().invoke(
        cli, ["config", "check", "--json"], env={"TRADEKIT_NOTIFICATIONS__URLS": receiver_url, "TRADEKIT_CONFIG": ""}
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["settings"]["notifications"]["urls"]
    assert shown == ["json://<redacted>"]
    assert "s3cret" not in result.output
    assert redaction.SECRETS.leaked(result.output) == []


def test_a_bad_notification_url_is_named_by_position_and_scheme_only() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            None, env={"TRADEKIT_NOTIFICATIONS__URLS": "json://127.0.0.1/ok-hook-0123,nosuch://t0ps3cretvalue/x"}
        )
    message = str(raised.value)
    assert "notifications.urls[1]" in message
    assert "nosuch://<redacted>" in message
    assert "t0ps3cretvalue" not in message


def test_a_webhook_token_in_a_log_line_is_masked(receiver_url: str) -> None:
    from tradekit.notify.targets import register_target_secrets

    register_target_secrets(receiver_url)
    assert "w3bh00k-s3cret" not in redaction.redact(f"POST {receiver_url.replace('json', 'http')} failed")
    assert "127.0.0.1" in redaction.redact("POST http://127.0.0.1:8080/ failed")


@pytest.fixture
def receiver_url() -> str:
    return "json://127.0.0.1:9/hooks/w3bh00k-s3cret-path-token"


def test_without_urls_nothing_starts() -> None:
    manager = world_plugins()
    with notifications(NotificationSettings(), manager) as notifier:
        assert notifier is None
        assert "tradekit.notify" not in [p.name for p in manager.loaded]


def test_a_target_password_is_masked_as_written_and_percent_decoded_and_a_short_one_too() -> None:
    # A library may log the password it decoded from the URL ("p@ss:w0rd-9"), not the form the
    # URL carries ("p%40ss%3Aw0rd-9"); a short password given as a query value is still one.
    from tradekit.notify.targets import register_target_secrets

    register_target_secrets("mailto://ops:p%40ss%3Aw0rd-9@mail.example.com?to=desk@example.com")
    register_target_secrets("ntfys://ntfy.example.com/alerts?user=ops&pass=zq7%2Bk")
    logged = "login ops p@ss:w0rd-9 refused; retrying with pass=zq7+k"
    masked = redaction.redact(logged)
    assert "p@ss:w0rd-9" not in masked
    assert "zq7+k" not in masked
    assert "login ops" in masked
