"""The counters that limit how often orders go out, through the pipeline on a real ledger:
the daily order limit counts the exchange's day (not UTC's), and the order cooldown holds
across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tradekit import BuyAction, ReasonCode
from tradekit.config import OrderGuardSettings, ScaleInSettings, Settings
from tradekit.config.settings import FreshnessSettings, SignalAgeUnit

from .test_pipeline import Pyramid, Single, make_trading

# Monday 2024-03-04, New York on EST (UTC-5): its day ends at 05:00 UTC on Tuesday.
MONDAY_EVENING = datetime(2024, 3, 4, 23, 30, tzinfo=UTC)  # 18:30 in New York
AFTER_UTC_MIDNIGHT = datetime(2024, 3, 5, 0, 30, tzinfo=UTC)  # still Monday, 19:30, in New York
TUESDAY_OPEN = datetime(2024, 3, 5, 14, 35, tzinfo=UTC)


def test_the_daily_order_limit_counts_the_exchanges_day_not_utcs(tmp_path: Path) -> None:
    settings = Settings(orders=OrderGuardSettings(daily_order_limit=1, order_cooldown_minutes=0))
    t = make_trading(tmp_path, settings=settings)
    t.reconcile()
    t.clock.now = MONDAY_EVENING
    first = t.pipeline.process_buy(t.signal("KO", age=timedelta(hours=1)), Single, t.market("KO"))
    assert first.intent is not None

    t.clock.now = AFTER_UTC_MIDNIGHT  # a new day in UTC, the same one in New York
    late = t.pipeline.process_buy(t.signal("PFE", price="28", age=timedelta(hours=1)), Single, t.market("PFE"))
    assert late.decision is not None
    assert late.decision.reasons == (ReasonCode.DAILY_ORDER_LIMIT,)
    assert late.intent is None

    t.clock.now = TUESDAY_OPEN
    t.broker.set_price("PFE", Decimal(28), t.clock.now)
    next_day = t.pipeline.process_buy(t.signal("PFE", price="28", age=timedelta(hours=1)), Single, t.market("PFE"))
    t.ledger.close()
    assert next_day.decision is not None
    assert next_day.decision.action is BuyAction.ENTER_NEW


def test_the_order_cooldown_outlives_a_restart(tmp_path: Path) -> None:
    # A two-hour cooldown, measured on the clock (signal ages in hours): a new process sees
    # the order the old one sent.
    settings = Settings(
        orders=OrderGuardSettings(order_cooldown_minutes=120, one_signal_per_symbol_per_day=False),
        scale_in=ScaleInSettings(min_time_between_entries_minutes=0),
        freshness=FreshnessSettings(signal_age_unit=SignalAgeUnit.HOURS),
    )
    t = make_trading(tmp_path, settings=settings)
    t.reconcile()
    t.pipeline.process_buy(t.signal("KO", age=timedelta(minutes=5)), Pyramid, t.market("KO"))
    t.ledger.close()

    restarted = make_trading(tmp_path, settings=settings, paper=t.broker)
    restarted.clock.now = t.clock.now + timedelta(minutes=119)
    again = restarted.pipeline.process_buy(
        restarted.signal("KO", price="60", age=timedelta(minutes=4)), Pyramid, restarted.market("KO")
    )
    restarted.clock.now = t.clock.now + timedelta(minutes=121)
    later = restarted.pipeline.process_buy(
        restarted.signal("KO", price="60", age=timedelta(minutes=3)), Pyramid, restarted.market("KO")
    )
    restarted.ledger.close()
    assert again.decision is not None
    assert again.decision.reasons == (ReasonCode.ORDER_COOLDOWN,)
    assert again.intent is None
    assert later.decision is not None
    assert later.decision.action is BuyAction.SCALE_IN
