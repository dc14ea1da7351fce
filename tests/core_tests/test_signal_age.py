"""A daily signal's age is counted in trading sessions: Friday's close is fresh at Monday's open."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.config import Settings, load_settings
from tradekit.config.settings import FreshnessSettings, SettingsError, SignalAgeUnit
from tradekit.decision import AccountLimits, BuyAction, ReasonCode, evaluate_buy
from tradekit.plugins import Plugins
from tradekit.testing import make_context

FRIDAY_CLOSE = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)  # 16:00 New York
MONDAY_OPEN = datetime(2024, 3, 11, 13, 35, tzinfo=UTC)  # 09:35 New York (DST began on the Sunday)
TUESDAY_OPEN = datetime(2024, 3, 12, 13, 35, tzinfo=UTC)
SESSIONS = AccountLimits(max_signal_age_sessions=1)


def _action(now: datetime, made: datetime, limits: AccountLimits) -> tuple[BuyAction, str]:
    decision = evaluate_buy(
        make_context(now=now, signal_age=now - made, limits=limits), plugins=Plugins(load_entrypoints=False, env={})
    )
    (check,) = [c for c in decision.checks if c.rule == "signal_age"]
    return decision.action, check.detail


def test_a_friday_close_signal_is_fresh_at_mondays_open() -> None:
    action, detail = _action(MONDAY_OPEN, FRIDAY_CLOSE, SESSIONS)
    assert action is BuyAction.ENTER_NEW
    assert "1 session opened since, 1 allowed" in detail


def test_a_signal_is_stale_once_a_second_session_opened() -> None:
    decision = evaluate_buy(
        make_context(now=TUESDAY_OPEN, signal_age=TUESDAY_OPEN - FRIDAY_CLOSE, limits=SESSIONS),
        plugins=Plugins(load_entrypoints=False, env={}),
    )
    assert decision.action is BuyAction.SKIP
    assert decision.reasons == (ReasonCode.STALE_SIGNAL,)
    assert "2 XNYS sessions opened since the signal" in decision.one_line()


def test_a_holiday_is_not_a_session() -> None:
    friday = datetime(2024, 1, 12, 21, 0, tzinfo=UTC)
    tuesday_after_martin_luther_king_day = datetime(2024, 1, 16, 14, 35, tzinfo=UTC)
    assert _action(tuesday_after_martin_luther_king_day, friday, SESSIONS)[0] is BuyAction.ENTER_NEW


def test_counted_in_hours_a_friday_signal_is_stale_on_monday() -> None:
    action, detail = _action(MONDAY_OPEN, FRIDAY_CLOSE, AccountLimits())
    assert action is BuyAction.SKIP
    assert "more than the 1 day, 0:00:00 allowed" in detail


def test_settings_measure_signal_age_in_sessions_unless_told_hours() -> None:
    default = AccountLimits.from_settings(Settings())
    assert (default.max_signal_age_sessions, default.calendar) == (1, "XNYS")
    hours = Settings(freshness=FreshnessSettings(signal_age_unit=SignalAgeUnit.HOURS, max_signal_age_hours=Decimal(6)))
    limits = AccountLimits.from_settings(hours)
    assert limits.max_signal_age_sessions is None
    assert limits.max_signal_age.total_seconds() == 6 * 3600


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [("signal_age_unit", '"days"', "'sessions', 'hours'"), ("max_signal_age_sessions", "0", "must be >= 1")],
)
def test_a_bad_signal_age_setting_is_refused_naming_it(tmp_path: Path, key: str, value: str, named: str) -> None:
    config = tmp_path / "tradekit.toml"
    config.write_text(f"[freshness]\n{key} = {value}\n")
    with pytest.raises(SettingsError, match=key) as caught:
        load_settings(config, env={})
    assert named in str(caught.value)
