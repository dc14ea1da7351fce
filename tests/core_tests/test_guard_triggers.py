"""The trading-state guard's automatic triggers, each driven through ``TradingGuard.observe``
on a real ledger, as a session driver calls it once per cycle or per close."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tradekit import hookimpl
from tradekit.config import GuardSettings, ReconciliationSettings, SettingsError, load_settings
from tradekit.guard import ACCOUNT, Scope, TradingState, Transition, Trigger
from tradekit.guard.control import GuardError, ResumeRefused, TradingGuard
from tradekit.ledger import Ledger
from tradekit.ledger import schema as t
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler

from .conftest import LedgerFactory
from .doubles import PositionsOnlyBroker
from .guard_kit import (
    MONDAY_CLOSE,
    MONDAY_OPEN,
    TUESDAY_CLOSE,
    TUESDAY_OPEN,
    WEDNESDAY_OPEN,
    account,
    make_guard,
    round_trip,
    store_unreadable_hold,
    stream,
)

KO = Scope.symbol("KO")
PFE = Scope.symbol("PFE")


def account_state(ledger: Ledger, at: datetime = MONDAY_CLOSE) -> TradingState:
    with ledger.reading() as tx:
        return tx.trading_states().scope_state(ACCOUNT, at).state


# --- off by default ---------------------------------------------------------------------------


def test_no_trigger_fires_unless_the_config_turns_it_on(ledger: Ledger) -> None:
    guard = make_guard(ledger)
    round_trip(ledger, "KO", bought="60", sold="30", closed_at=MONDAY_OPEN)
    made = [
        guard.observe(now=MONDAY_OPEN, account=account(100_000, account_blocked=True), stream=stream(False, None)),
        guard.observe(now=MONDAY_CLOSE, account=account(1_000), stream=stream(False, None, "login refused")),
    ]
    assert made == [[], []]
    with ledger.reading() as tx:
        assert tx.trading_state_transitions() == []
        assert tx.trading_state_marks() == {}
    # The triggers are the guard's for its life (it works out once what it has to observe).
    with pytest.raises(AttributeError):
        guard.settings = GuardSettings(max_drawdown_pct=Decimal(5))  # type: ignore[misc]


# --- max drawdown ---------------------------------------------------------------------------------


def test_drawdown_from_the_equity_high_halts_the_account_until_a_human_resumes(ledger: Ledger) -> None:
    guard = make_guard(ledger, max_drawdown_pct=Decimal(10))
    guard.observe(now=MONDAY_OPEN, account=account(100_000))
    guard.observe(now=MONDAY_OPEN + timedelta(hours=1), account=account(105_000))
    assert guard.observe(now=MONDAY_OPEN + timedelta(hours=2), account=account("94500.01")) == []  # 9.99...%
    (halted,) = guard.observe(now=MONDAY_CLOSE, account=account(94_500))  # 10% below 105,000
    assert (halted.scope, halted.trigger, halted.to_state) == (ACCOUNT, Trigger.MAX_DRAWDOWN, TradingState.HALTED)
    assert halted.needs_resume
    assert "105,000.00" in halted.reason
    assert "10.00%" in halted.reason
    # Equity recovering does not lift it: only a human does.
    assert guard.observe(now=TUESDAY_CLOSE, account=account(120_000)) == []
    assert account_state(ledger, TUESDAY_CLOSE) is TradingState.HALTED
    (resumed,) = guard.resume(ACCOUNT, reason="checked the book", actor="user:ops", at=TUESDAY_CLOSE)
    assert (resumed.from_state, resumed.to_state, resumed.actor) == (
        TradingState.HALTED,
        TradingState.ACTIVE,
        "user:ops",
    )
    # The high restarts from the next observation, so the old high does not halt it again.
    assert guard.observe(now=TUESDAY_CLOSE + timedelta(minutes=1), account=account(94_000)) == []
    assert account_state(ledger, TUESDAY_CLOSE) is TradingState.ACTIVE


def test_the_equity_high_survives_a_restart(ledger_factory: LedgerFactory) -> None:
    first = ledger_factory()
    make_guard(first, max_drawdown_pct=Decimal(5)).observe(now=MONDAY_OPEN, account=account(200_000))
    first.close()
    again = ledger_factory()
    (halted,) = make_guard(again, max_drawdown_pct=Decimal(5)).observe(now=MONDAY_CLOSE, account=account(190_000))
    assert halted.trigger is Trigger.MAX_DRAWDOWN


def test_an_unreadable_account_leaves_the_equity_triggers_waiting(ledger: Ledger) -> None:
    guard = make_guard(ledger, max_drawdown_pct=Decimal(10), halt_on_account_blocked=True)
    guard.observe(now=MONDAY_OPEN, account=account(100_000, account_blocked=True))
    assert guard.observe(now=MONDAY_CLOSE, account=None) == []
    # Not knowing is not "unblocked": the blocked-account halt stays.
    assert account_state(ledger) is TradingState.HALTED


# --- daily loss -----------------------------------------------------------------------------------


def test_daily_loss_halts_until_the_next_session_and_then_needs_a_resume(ledger: Ledger) -> None:
    guard = make_guard(ledger, daily_loss_limit_pct=Decimal(2))
    guard.observe(now=MONDAY_CLOSE, account=account(100_000))  # Monday's last equity
    assert guard.observe(now=TUESDAY_OPEN, account=account(98_500)) == []  # 1.5% down
    (halted,) = guard.observe(now=TUESDAY_OPEN + timedelta(hours=2), account=account(98_000))
    assert (halted.trigger, halted.to_state, halted.until) == (Trigger.DAILY_LOSS, TradingState.HALTED, WEDNESDAY_OPEN)
    assert "100,000.00" in halted.reason
    with pytest.raises(ResumeRefused, match="2024-03-06T14:30"):
        guard.resume(ACCOUNT, reason="too early", actor="user:ops", at=TUESDAY_CLOSE)
    assert account_state(ledger, TUESDAY_CLOSE) is TradingState.HALTED
    # The next session does not lift it by itself either.
    assert guard.observe(now=WEDNESDAY_OPEN + timedelta(minutes=1), account=account(98_000)) == []
    assert account_state(ledger, WEDNESDAY_OPEN) is TradingState.HALTED
    (resumed,) = guard.resume(ACCOUNT, reason="new day", actor="user:ops", at=WEDNESDAY_OPEN + timedelta(minutes=2))
    assert resumed.to_state is TradingState.ACTIVE


def test_a_forced_resume_counts_the_session_loss_from_the_resume(ledger: Ledger) -> None:
    guard = make_guard(ledger, daily_loss_limit=Decimal(1_000))
    guard.observe(now=MONDAY_CLOSE, account=account(50_000))
    (halted,) = guard.observe(now=TUESDAY_OPEN, account=account(49_000))
    assert halted.trigger is Trigger.DAILY_LOSS
    guard.resume(ACCOUNT, reason="known cause", actor="user:ops", at=TUESDAY_OPEN, force=True)
    assert guard.observe(now=TUESDAY_OPEN + timedelta(hours=1), account=account(48_500)) == []
    (again,) = guard.observe(now=TUESDAY_OPEN + timedelta(hours=2), account=account(48_000))
    assert again.trigger is Trigger.DAILY_LOSS


# --- losing streak and exit cooldown --------------------------------------------------------------


def test_consecutive_losing_exits_put_the_account_in_reduce_only_for_the_cooldown(ledger: Ledger) -> None:
    guard = make_guard(ledger, losing_streak_exits=3, losing_streak_cooldown_minutes=600)
    at = MONDAY_OPEN
    for i, (bought, sold) in enumerate([("50", "49"), ("50", "48"), ("50", "51"), ("50", "49"), ("50", "47")]):
        round_trip(ledger, f"S{i}", bought=bought, sold=sold, closed_at=at + timedelta(minutes=i))
    # Two losses, a win, two losses: no streak of three yet.
    assert guard.observe(now=at + timedelta(minutes=10), account=account(100_000)) == []
    # A flat exit turned into a loss by its commission completes the streak.
    round_trip(ledger, "S5", bought="50", sold="50", commission="1", closed_at=at + timedelta(minutes=20))
    (reduced,) = guard.observe(now=at + timedelta(minutes=21))
    assert (reduced.scope, reduced.trigger, reduced.to_state) == (
        ACCOUNT,
        Trigger.LOSING_STREAK,
        TradingState.REDUCE_ONLY,
    )
    assert reduced.until == at + timedelta(minutes=20 + 600)
    assert not reduced.needs_resume
    # The cooldown ends by itself, and the observation after records it.
    assert guard.observe(now=at + timedelta(minutes=619)) == []
    (ended,) = guard.observe(now=at + timedelta(minutes=620))
    assert (ended.to_state, ended.actor) == (TradingState.ACTIVE, "trigger:losing_streak")


def test_the_losing_streak_count_survives_a_restart(ledger_factory: LedgerFactory) -> None:
    first = ledger_factory()
    for i in range(2):
        round_trip(first, f"S{i}", bought="10", sold="9", closed_at=MONDAY_OPEN + timedelta(minutes=i))
    assert make_guard(first, losing_streak_exits=3).observe(now=MONDAY_OPEN + timedelta(minutes=5)) == []
    first.close()
    again = ledger_factory()
    round_trip(again, "S2", bought="10", sold="9", closed_at=MONDAY_OPEN + timedelta(minutes=6))
    (reduced,) = make_guard(again, losing_streak_exits=3).observe(now=MONDAY_OPEN + timedelta(minutes=7))
    assert reduced.trigger is Trigger.LOSING_STREAK


def test_any_exit_puts_its_symbol_in_reduce_only_for_the_exit_cooldown(ledger: Ledger) -> None:
    guard = make_guard(ledger, exit_cooldown_minutes=60)
    round_trip(ledger, "KO", bought="60", sold="66", closed_at=MONDAY_OPEN)
    (cooling,) = guard.observe(now=MONDAY_OPEN + timedelta(minutes=5))
    assert (cooling.scope, cooling.trigger, cooling.to_state, cooling.until) == (
        KO,
        Trigger.EXIT_COOLDOWN,
        TradingState.REDUCE_ONLY,
        MONDAY_OPEN + timedelta(minutes=60),
    )
    with ledger.reading() as tx:
        states = tx.trading_states()
    at = MONDAY_OPEN + timedelta(minutes=6)
    assert states.standing(strategy="trend", symbol="KO", at=at).state is TradingState.REDUCE_ONLY
    assert states.standing(strategy="trend", symbol="PFE", at=at).state is TradingState.ACTIVE
    # A later exit of the same symbol renews the cooldown from that exit.
    round_trip(ledger, "KO", bought="66", sold="65", closed_at=MONDAY_OPEN + timedelta(minutes=30))
    (renewed,) = guard.observe(now=MONDAY_OPEN + timedelta(minutes=31))
    assert (renewed.from_state, renewed.to_state) == (TradingState.REDUCE_ONLY, TradingState.REDUCE_ONLY)
    assert renewed.until == MONDAY_OPEN + timedelta(minutes=90)
    (ended,) = guard.observe(now=MONDAY_OPEN + timedelta(minutes=90))
    assert (ended.scope, ended.to_state) == (KO, TradingState.ACTIVE)


def test_an_exit_whose_cooldown_already_passed_places_no_hold(ledger: Ledger) -> None:
    guard = make_guard(ledger, exit_cooldown_minutes=60)
    round_trip(ledger, "KO", bought="60", sold="66", closed_at=MONDAY_OPEN)
    assert guard.observe(now=MONDAY_OPEN + timedelta(minutes=61)) == []


# --- conditions: unreconciled symbols, the stream, a blocked account -------------------------------


def test_an_unreconciled_symbol_is_reduce_only_until_reconciliation_clears_it(ledger: Ledger) -> None:
    guard = make_guard(ledger, reduce_only_on_unreconciled=True)
    broker = PositionsOnlyBroker()
    broker.hold("PFE", "-5", "28")  # a short position: never adopted
    plugins = Plugins(load_entrypoints=False, env={})
    Reconciler(ledger, broker, ReconciliationSettings(), plugins).run(MONDAY_OPEN)
    (reduced,) = guard.observe(now=MONDAY_OPEN)
    assert (reduced.scope, reduced.trigger, reduced.to_state) == (PFE, Trigger.UNRECONCILED, TradingState.REDUCE_ONLY)
    assert guard.observe(now=MONDAY_OPEN + timedelta(minutes=1)) == []  # still unreconciled: no new row
    broker.hold("PFE", "0", "28")
    Reconciler(ledger, broker, ReconciliationSettings(), plugins).run(MONDAY_CLOSE)
    (cleared,) = guard.observe(now=MONDAY_CLOSE)
    assert (cleared.scope, cleared.to_state) == (PFE, TradingState.ACTIVE)


def test_a_stream_down_longer_than_the_limit_puts_the_account_in_reduce_only(ledger: Ledger) -> None:
    guard = make_guard(ledger, stream_stale_after_seconds=60)
    lost = MONDAY_OPEN
    assert guard.observe(now=lost, stream=stream(True, lost - timedelta(hours=1))) == []  # connected: alive
    assert guard.observe(now=lost + timedelta(seconds=59), stream=stream(False, lost)) == []
    (stale,) = guard.observe(now=lost + timedelta(seconds=60), stream=stream(False, lost))
    assert (stale.scope, stale.trigger, stale.to_state) == (ACCOUNT, Trigger.STALE_STREAM, TradingState.REDUCE_ONLY)
    (back,) = guard.observe(now=lost + timedelta(seconds=90), stream=stream(True, lost + timedelta(seconds=85)))
    assert back.to_state is TradingState.ACTIVE


def test_a_stream_that_stopped_for_good_is_stale_at_once(ledger: Ledger) -> None:
    guard = make_guard(ledger, stream_stale_after_seconds=600)
    (stale,) = guard.observe(now=MONDAY_OPEN, stream=stream(False, MONDAY_OPEN, "login refused 3 times"))
    assert "login refused 3 times" in stale.reason


def test_the_broker_reporting_the_account_blocked_halts_it_while_it_lasts(ledger: Ledger) -> None:
    guard = make_guard(ledger, halt_on_account_blocked=True)
    (halted,) = guard.observe(now=MONDAY_OPEN, account=account(100_000, trading_blocked=True))
    assert (halted.trigger, halted.to_state, halted.needs_resume) == (
        Trigger.ACCOUNT_BLOCKED,
        TradingState.HALTED,
        False,
    )
    assert not halted.allow_exits
    (lifted,) = guard.observe(now=MONDAY_CLOSE, account=account(100_000))
    assert lifted.to_state is TradingState.ACTIVE


def test_switching_a_condition_trigger_off_leaves_its_holds_for_a_resume(ledger: Ledger) -> None:
    # A trader that does not run a trigger has not looked at its condition: it cannot say the
    # condition cleared (another trader of the account may still see it), so the hold stays
    # until someone resumes.
    make_guard(ledger, halt_on_account_blocked=True).observe(
        now=MONDAY_OPEN, account=account(100_000, account_blocked=True)
    )
    assert make_guard(ledger).observe(now=MONDAY_CLOSE, account=account(100_000)) == []
    with ledger.reading() as tx:
        assert [h.trigger for h in tx.trading_states().holds] == [Trigger.ACCOUNT_BLOCKED]
    (lifted,) = make_guard(ledger).resume(ACCOUNT, reason="unblocked", actor="user:ops", at=MONDAY_CLOSE)
    assert (lifted.trigger, lifted.to_state) == (Trigger.ACCOUNT_BLOCKED, TradingState.ACTIVE)


def test_a_triggered_halt_lets_exits_out_when_the_setting_allows_it(ledger: Ledger) -> None:
    guard = make_guard(ledger, halt_on_account_blocked=True, allow_exits_when_halted=True)
    (halted,) = guard.observe(now=MONDAY_OPEN, account=account(100_000, account_blocked=True))
    assert halted.allow_exits
    with ledger.reading() as tx:
        assert tx.trading_states().exit_blocker(strategy="trend", symbol="KO", at=MONDAY_OPEN) is None


# --- the most restrictive wins; transitions are persisted and announced ---------------------------


def test_resume_lifts_every_hold_on_the_scope_and_a_true_condition_comes_back(ledger: Ledger) -> None:
    guard = make_guard(ledger, max_drawdown_pct=Decimal(5), halt_on_account_blocked=True)
    guard.observe(now=MONDAY_OPEN, account=account(100_000))
    guard.reduce_only(ACCOUNT, reason="news", actor="user:ops", at=MONDAY_OPEN)
    made = guard.observe(now=MONDAY_CLOSE, account=account(90_000, account_blocked=True))
    assert {m.trigger for m in made} == {Trigger.MAX_DRAWDOWN, Trigger.ACCOUNT_BLOCKED}
    lifted = guard.resume(ACCOUNT, reason="all clear", actor="user:ops", at=TUESDAY_OPEN)
    assert {m.trigger for m in lifted} == {Trigger.MANUAL, Trigger.MAX_DRAWDOWN, Trigger.ACCOUNT_BLOCKED}
    (again,) = guard.observe(now=TUESDAY_CLOSE, account=account(90_000, account_blocked=True))
    assert again.trigger is Trigger.ACCOUNT_BLOCKED


def test_every_transition_is_appended_with_its_head_on_both_backends(ledger: Ledger) -> None:
    guard = make_guard(ledger, exit_cooldown_minutes=30)
    guard.halt(KO, reason="earnings", actor="user:ana", at=MONDAY_OPEN, allow_exits=True)
    round_trip(ledger, "PFE", bought="28", sold="27", closed_at=MONDAY_OPEN)
    guard.observe(now=MONDAY_OPEN + timedelta(minutes=1))
    guard.observe(now=MONDAY_OPEN + timedelta(minutes=31))
    with ledger.reading() as tx:
        history = tx.trading_state_transitions()
        states = tx.trading_states()
    assert [(str(h.scope), h.trigger.value, h.from_state.value, h.to_state.value) for h in history] == [
        ("symbol:KO", "manual", "active", "halted"),
        ("symbol:PFE", "exit_cooldown", "active", "reduce_only"),
        ("symbol:PFE", "exit_cooldown", "reduce_only", "active"),
    ]
    assert history[0].actor == "user:ana"
    assert history[0].allow_exits
    assert history[1].until == MONDAY_OPEN + timedelta(minutes=30)
    (hold,) = states.holds
    assert (hold.scope, hold.state, hold.since, hold.reason) == (KO, TradingState.HALTED, MONDAY_OPEN, "earnings")


class Recorder:
    def __init__(self) -> None:
        self.heard: list[Transition] = []

    @hookimpl
    def on_trading_state(self, transition: Transition) -> None:
        self.heard.append(transition)


class Broken:
    @hookimpl
    def on_trading_state(self, transition: Transition) -> None:
        raise ConnectionError("the chat service is down")


def test_every_transition_reaches_the_hook_even_past_a_plugin_that_raises(ledger: Ledger) -> None:
    recorder = Recorder()
    plugins = Plugins(load_entrypoints=False, env={}, extra=[("recorder", recorder), ("broken", Broken())])
    guard = make_guard(ledger, plugins=plugins, halt_on_account_blocked=True)
    made = guard.halt(KO, reason="manual", actor="user:ops", at=MONDAY_OPEN)
    made += guard.observe(now=MONDAY_OPEN, account=account(1, account_blocked=True))
    made += guard.resume(ACCOUNT, reason="ok", actor="user:ops", at=MONDAY_CLOSE)
    assert recorder.heard == made
    assert len(made) == 3
    # The broken notifier did not undo anything.
    with ledger.reading() as tx:
        assert len(tx.trading_state_transitions()) == 3


# --- settings -----------------------------------------------------------------------------------


def test_guard_settings_are_validated_with_the_key_named() -> None:
    with pytest.raises(SettingsError, match="max_drawdown_pct"):
        GuardSettings(max_drawdown_pct=Decimal(0))
    with pytest.raises(SettingsError, match="losing_streak_exits"):
        GuardSettings(losing_streak_exits=0)
    loaded = load_settings(
        env={"TRADEKIT_GUARD__MAX_DRAWDOWN_PCT": "12.5", "TRADEKIT_GUARD__STREAM_STALE_AFTER_SECONDS": "90"}
    )
    assert loaded.settings.guard.max_drawdown_pct == Decimal("12.5")
    assert loaded.settings.guard.stream_stale_after_seconds == 90
    with pytest.raises(SettingsError, match="daily_loss_limit"):
        load_settings(env={"TRADEKIT_GUARD__DAILY_LOSS_LIMIT": "-5"})
    with pytest.raises(SettingsError, match="max_drawdown_typo"):
        load_settings(env={"TRADEKIT_GUARD__MAX_DRAWDOWN_TYPO": "5"})


def test_a_version_2_ledger_gains_the_guard_tables_when_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Ledger.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("tk_trading_state_transitions", "tk_trading_state_holds", "tk_trading_state_marks"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("UPDATE tk_meta SET value = '2' WHERE key = 'schema_version'")
    engine.dispose()
    with Ledger.open(url) as ledger:
        make_guard(ledger).halt(KO, reason="after the upgrade", actor="user:ops", at=MONDAY_OPEN)
        with ledger.reading() as tx:
            version = tx._conn.exec_driver_sql("SELECT value FROM tk_meta WHERE key = 'schema_version'").scalar()
            assert [h.scope for h in tx.trading_states().holds] == [KO]
    assert version == str(t.SCHEMA_VERSION)


@pytest.mark.parametrize(
    "settings", [GuardSettings(), GuardSettings(max_drawdown_pct=Decimal(1))], ids=["idle", "triggers on"]
)
def test_an_unreadable_state_stops_no_driver_and_is_left_for_a_human(ledger: Ledger, settings: GuardSettings) -> None:
    store_unreadable_hold(ledger, scope="desk:7")  # no such scope in this tradekit
    guard = TradingGuard(ledger=ledger, settings=settings)
    assert guard.observe(now=MONDAY_CLOSE, account=account(100_000)) == []
    assert guard.states().unreadable is not None
    with pytest.raises(GuardError, match="cannot be read"):
        guard.resume(ACCOUNT, reason="try", actor="user:ops", at=MONDAY_CLOSE)
