"""A trader whose settings do not run a trigger never lifts that trigger's hold.

Several traders share one account through one ledger, each with its own ``[guard]``
settings. A hold an automatic trigger placed lifts only when a trader that runs the trigger
observes its condition cleared, by its own cooldown, or by ``tradekit resume``; before, a
trader with ``reduce_only_on_unreconciled`` (or ``halt_on_account_blocked``) off took every
observation as "the condition cleared" and lifted the hold another trader's settings placed,
while the symbol was still unreconciled (the account still blocked).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tradekit.config import GuardSettings, ReconciliationSettings
from tradekit.guard import ACCOUNT, Scope, TradingState, Transition, Trigger
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile import Reconciler

from .conftest import LedgerFactory
from .doubles import PositionsOnlyBroker
from .guard_kit import MONDAY_CLOSE, MONDAY_OPEN, TUESDAY_OPEN, account, round_trip, stream

PFE = Scope.symbol("PFE")
ALPHA, BETA = "trend on alpaca", "meanrev on alpaca"

# What the other trader runs: nothing at all, or every trigger but the one in question.
NOTHING = GuardSettings()
OTHERS = GuardSettings(
    max_drawdown_pct=Decimal(50),
    daily_loss_limit_pct=Decimal(50),
    losing_streak_exits=5,
    exit_cooldown_minutes=5,
    stream_stale_after_seconds=600,
)


def guard(ledger: Ledger, trader: str, settings: GuardSettings) -> TradingGuard:
    return TradingGuard(ledger=ledger, settings=settings, trader=trader)


def holds(ledger: Ledger, trigger: Trigger) -> list[tuple[Scope, TradingState]]:
    with ledger.reading() as tx:
        return [(h.scope, h.state) for h in tx.trading_states().holds if h.trigger is trigger]


def reconcile(ledger: Ledger, broker: PositionsOnlyBroker, at: object) -> None:
    Reconciler(ledger, broker, ReconciliationSettings(), Plugins(load_entrypoints=False, env={})).run(at)  # type: ignore[arg-type]


@pytest.mark.parametrize("other", [NOTHING, OTHERS], ids=["no-trigger", "other-triggers"])
def test_a_trader_without_the_unreconciled_trigger_does_not_lift_its_hold(
    ledger_factory: LedgerFactory, other: GuardSettings
) -> None:
    alpha = guard(ledger_factory(), ALPHA, GuardSettings(reduce_only_on_unreconciled=True))
    beta = guard(ledger_factory(), BETA, other)  # its own connection, as another process has
    broker = PositionsOnlyBroker()
    broker.hold("PFE", "-5", "28")  # a short position: never adopted, PFE stays unreconciled
    reconcile(alpha.ledger, broker, MONDAY_OPEN)
    (placed,) = alpha.observe(now=MONDAY_OPEN)
    assert (placed.scope, placed.trigger, placed.to_state) == (PFE, Trigger.UNRECONCILED, TradingState.REDUCE_ONLY)
    for minutes in (1, 2):  # B observes, cycle after cycle, with PFE still unreconciled
        now = MONDAY_OPEN + timedelta(minutes=minutes)
        assert beta.observe(now=now, account=account(100_000, now), stream=stream(True, now)) == []
        assert holds(alpha.ledger, Trigger.UNRECONCILED) == [(PFE, TradingState.REDUCE_ONLY)]
        with beta.ledger.reading() as tx:
            standing = beta.trading_states(tx).standing(strategy="meanrev", symbol="PFE", at=now)
        assert standing.state is TradingState.REDUCE_ONLY  # B buys no PFE either
    # The reconciliation clears PFE: B still says nothing of it, A's observation lifts it.
    broker.hold("PFE", "0", "28")
    reconcile(alpha.ledger, broker, MONDAY_CLOSE)
    assert beta.observe(now=MONDAY_CLOSE, account=account(100_000), stream=stream(True, MONDAY_CLOSE)) == []
    assert holds(alpha.ledger, Trigger.UNRECONCILED) == [(PFE, TradingState.REDUCE_ONLY)]
    (lifted,) = alpha.observe(now=MONDAY_CLOSE)
    assert (lifted.scope, lifted.to_state, lifted.actor) == (PFE, TradingState.ACTIVE, "trigger:unreconciled")


@pytest.mark.parametrize("other", [NOTHING, OTHERS], ids=["no-trigger", "other-triggers"])
def test_a_trader_without_the_blocked_account_trigger_does_not_lift_the_halt(
    ledger_factory: LedgerFactory, other: GuardSettings
) -> None:
    alpha = guard(ledger_factory(), ALPHA, GuardSettings(halt_on_account_blocked=True))
    beta = guard(ledger_factory(), BETA, other)
    (halted,) = alpha.observe(now=MONDAY_OPEN, account=account(100_000, MONDAY_OPEN, trading_blocked=True))
    assert (halted.trigger, halted.to_state) == (Trigger.ACCOUNT_BLOCKED, TradingState.HALTED)
    # B reads the account (still blocked), or cannot read it: the halt stands either way.
    later = MONDAY_OPEN + timedelta(minutes=1)
    assert beta.observe(now=later, account=account(100_000, later, trading_blocked=True)) == []
    assert beta.observe(now=later + timedelta(minutes=1)) == []
    assert holds(alpha.ledger, Trigger.ACCOUNT_BLOCKED) == [(ACCOUNT, TradingState.HALTED)]
    # Unblocked: only A, which runs the trigger, lifts it.
    assert beta.observe(now=MONDAY_CLOSE, account=account(100_000)) == []
    assert holds(alpha.ledger, Trigger.ACCOUNT_BLOCKED) == [(ACCOUNT, TradingState.HALTED)]
    (lifted,) = alpha.observe(now=MONDAY_CLOSE, account=account(100_000))
    assert lifted.to_state is TradingState.ACTIVE


def test_a_trader_without_the_stale_stream_trigger_does_not_lift_a_hold_of_no_trader(
    ledger_factory: LedgerFactory,
) -> None:
    """A stale-stream hold stored before ledger schema 6 names no trader: the next trader
    that runs the trigger keeps or lifts it, not one that does not."""
    ledger = ledger_factory()
    with ledger.transaction(lock_account=True) as tx:
        tx.record_trading_state(
            Transition(
                time=MONDAY_OPEN,
                scope=ACCOUNT,
                trigger=Trigger.STALE_STREAM,
                from_state=TradingState.ACTIVE,
                to_state=TradingState.REDUCE_ONLY,
                reason="the trade-update stream stopped: refused",
                actor="trigger:stale_stream",
            )
        )
    later = MONDAY_OPEN + timedelta(minutes=1)
    unwatched = guard(ledger_factory(), BETA, GuardSettings(reduce_only_on_unreconciled=True))
    assert unwatched.observe(now=later, stream=stream(True, later)) == []
    assert holds(ledger, Trigger.STALE_STREAM) == [(ACCOUNT, TradingState.REDUCE_ONLY)]
    watching = guard(ledger_factory(), ALPHA, GuardSettings(stream_stale_after_seconds=60))
    (lifted,) = watching.observe(now=later, stream=stream(True, later))
    assert lifted.to_state is TradingState.ACTIVE


def test_cooldowns_and_halts_that_need_a_resume_are_not_lifted_by_a_trader_that_does_not_run_them(
    ledger_factory: LedgerFactory,
) -> None:
    alpha = guard(
        ledger_factory(),
        ALPHA,
        GuardSettings(
            losing_streak_exits=2,
            losing_streak_cooldown_minutes=600,
            exit_cooldown_minutes=60,
            max_drawdown_pct=Decimal(5),
            daily_loss_limit_pct=Decimal(2),
        ),
    )
    beta = guard(ledger_factory(), BETA, GuardSettings(reduce_only_on_unreconciled=True))
    alpha.observe(now=MONDAY_OPEN - timedelta(days=3), account=account(100_000, MONDAY_OPEN - timedelta(days=3)))
    for minutes, symbol in ((0, "KO"), (1, "PFE")):
        round_trip(alpha.ledger, symbol, bought="60", sold="30", closed_at=MONDAY_OPEN + timedelta(minutes=minutes))
    now = MONDAY_OPEN + timedelta(minutes=2)
    placed = alpha.observe(now=now, account=account(90_000, now))
    assert {p.trigger for p in placed} == {
        Trigger.LOSING_STREAK,
        Trigger.EXIT_COOLDOWN,
        Trigger.MAX_DRAWDOWN,
        Trigger.DAILY_LOSS,
    }

    def standing() -> set[tuple[str, Trigger]]:
        with alpha.ledger.reading() as tx:
            return {(str(h.scope), h.trigger) for h in tx.trading_states().holds}

    before = standing()
    assert len(before) == 5  # the exit cooldown holds KO and PFE
    assert beta.observe(now=now + timedelta(minutes=1), account=account(110_000)) == []
    assert standing() == before
    # The exit cooldowns end by themselves (whoever observes then); the losing streak's
    # cooldown runs on; drawdown and daily loss wait for `tradekit resume`, whoever observes.
    ended = beta.observe(now=TUESDAY_OPEN - timedelta(hours=1), account=account(110_000))
    assert {(str(e.scope), e.trigger, e.to_state) for e in ended} == {
        ("symbol:KO", Trigger.EXIT_COOLDOWN, TradingState.ACTIVE),
        ("symbol:PFE", Trigger.EXIT_COOLDOWN, TradingState.ACTIVE),
        ("account", Trigger.LOSING_STREAK, TradingState.ACTIVE),
    }
    assert standing() == {("account", Trigger.MAX_DRAWDOWN), ("account", Trigger.DAILY_LOSS)}
