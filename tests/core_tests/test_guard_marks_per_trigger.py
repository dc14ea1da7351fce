"""Each trigger that reads closed trades counts them for itself.

The losing streak and the exit cooldown both read the closed trades an observation has not
counted yet. They shared one mark (``trades_counted``): a trader that ran only one of them
moved it past the trades it read, and a trader of the same account (one ledger) that ran the
other never saw those trades — no cooldown after the exit, a losing streak never counted. A
trader whose settings turned the second trigger on after a restart lost the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tradekit.config import GuardSettings
from tradekit.guard import ACCOUNT, TradingState, Transition, Trigger, triggers
from tradekit.guard.control import TradingGuard
from tradekit.guard.records import Mark
from tradekit.ledger import Ledger

from .conftest import LedgerFactory
from .guard_kit import MONDAY_OPEN, round_trip

ALPHA, BETA = "trend on alpaca", "meanrev on alpaca"
COOLDOWN = GuardSettings(exit_cooldown_minutes=60)
STREAK = GuardSettings(losing_streak_exits=2, losing_streak_cooldown_minutes=600)
BOTH = GuardSettings(exit_cooldown_minutes=60, losing_streak_exits=2, losing_streak_cooldown_minutes=600)


def guard(ledger: Ledger, trader: str, settings: GuardSettings) -> TradingGuard:
    return TradingGuard(ledger=ledger, settings=settings, trader=trader)


def placed(made: list[Transition]) -> set[tuple[str, Trigger]]:
    return {(str(t.scope), t.trigger) for t in made}


def standing(ledger: Ledger, at: datetime) -> set[tuple[str, Trigger]]:
    with ledger.reading() as tx:
        return {(str(h.scope), h.trigger) for h in tx.trading_states().holds if h.in_force(at)}


def two_losing_exits(ledger: Ledger) -> datetime:
    """KO and PFE closed at a loss, a minute apart; returns a minute after the second."""
    for minutes, symbol in ((0, "KO"), (1, "PFE")):
        round_trip(ledger, symbol, bought="60", sold="30", closed_at=MONDAY_OPEN + timedelta(minutes=minutes))
    return MONDAY_OPEN + timedelta(minutes=2)


COOLDOWNS = {("symbol:KO", Trigger.EXIT_COOLDOWN), ("symbol:PFE", Trigger.EXIT_COOLDOWN)}
STREAK_HOLD = {("account", Trigger.LOSING_STREAK)}


@pytest.mark.parametrize("first", ["cooldown", "streak"])
def test_a_trader_running_one_trigger_does_not_hide_the_closed_trades_from_another_running_the_other(
    ledger_factory: LedgerFactory, first: str
) -> None:
    cooling = guard(ledger_factory(), ALPHA, COOLDOWN)
    counting = guard(ledger_factory(), BETA, STREAK)  # its own connection, as another process has
    now = two_losing_exits(cooling.ledger)
    order = [(cooling, COOLDOWNS), (counting, STREAK_HOLD)]
    if first == "streak":
        order.reverse()
    for minutes, (trader, expected) in enumerate(order):
        at = now + timedelta(minutes=minutes)
        assert placed(trader.observe(now=at)) == expected, trader.trader
    assert standing(cooling.ledger, now + timedelta(minutes=2)) == COOLDOWNS | STREAK_HOLD
    # Each counted the trades once: observing again places nothing.
    later = now + timedelta(minutes=3)
    assert cooling.observe(now=later) == []
    assert counting.observe(now=later) == []


def test_a_trader_running_both_triggers_and_one_running_one_count_each_trade_once(
    ledger_factory: LedgerFactory,
) -> None:
    both = guard(ledger_factory(), ALPHA, BOTH)
    counting = guard(ledger_factory(), BETA, STREAK)
    now = two_losing_exits(both.ledger)
    assert placed(both.observe(now=now)) == COOLDOWNS | STREAK_HOLD
    # BETA sees the streak ALPHA counted already: it is not counted twice (no second streak
    # begins from the same exits), and the hold stands as placed.
    assert counting.observe(now=now + timedelta(minutes=1)) == []
    # One more loss: a streak of one so far, for either trader.
    round_trip(both.ledger, "XOM", bought="100", sold="90", closed_at=now + timedelta(minutes=2))
    assert counting.observe(now=now + timedelta(minutes=3)) == []
    assert placed(both.observe(now=now + timedelta(minutes=4))) == {("symbol:XOM", Trigger.EXIT_COOLDOWN)}


def test_a_trigger_turned_on_at_a_restart_counts_the_trades_the_other_already_counted(
    ledger_factory: LedgerFactory,
) -> None:
    before = guard(ledger_factory(), ALPHA, COOLDOWN)
    round_trip(before.ledger, "KO", bought="60", sold="30", closed_at=MONDAY_OPEN)
    now = MONDAY_OPEN + timedelta(minutes=1)
    assert placed(before.observe(now=now)) == {("symbol:KO", Trigger.EXIT_COOLDOWN)}
    # The same trader restarts with the losing streak on too; a second loss follows.
    after = guard(ledger_factory(), ALPHA, BOTH)
    round_trip(after.ledger, "PFE", bought="60", sold="30", closed_at=now + timedelta(minutes=1))
    made = after.observe(now=now + timedelta(minutes=2))
    assert placed(made) == {("symbol:PFE", Trigger.EXIT_COOLDOWN), ("account", Trigger.LOSING_STREAK)}
    (streak,) = [t for t in made if t.trigger is Trigger.LOSING_STREAK]
    assert streak.scope == ACCOUNT
    assert streak.to_state is TradingState.REDUCE_ONLY
    assert "2 losing exits in a row" in streak.reason


def test_a_ledger_counted_under_the_shared_mark_goes_on_from_it(ledger_factory: LedgerFactory) -> None:
    """A ledger an earlier tradekit wrote holds one ``trades_counted`` mark: each trigger
    starts from it (the trades before it were counted then), and the next trades count."""
    ledger = ledger_factory()
    counted_at = two_losing_exits(ledger) - timedelta(minutes=1)
    with ledger.transaction(lock_account=True) as tx:
        # The earlier tradekit counted KO and PFE: a streak of two fired and restarted.
        tx.record_trading_state_mark("trades_counted", Mark(None, counted_at))
        tx.record_trading_state_mark(triggers.LOSING_STREAK, Mark(Decimal(0), counted_at))
    upgraded = guard(ledger_factory(), ALPHA, BOTH)
    now = counted_at + timedelta(minutes=1)
    assert upgraded.observe(now=now) == []  # neither is counted again
    round_trip(ledger, "XOM", bought="100", sold="90", closed_at=now + timedelta(minutes=1))
    assert placed(upgraded.observe(now=now + timedelta(minutes=2))) == {("symbol:XOM", Trigger.EXIT_COOLDOWN)}
    round_trip(ledger, "T", bought="20", sold="10", closed_at=now + timedelta(minutes=3))
    assert placed(upgraded.observe(now=now + timedelta(minutes=4))) == {
        ("symbol:T", Trigger.EXIT_COOLDOWN),
        ("account", Trigger.LOSING_STREAK),
    }
    with ledger.reading() as tx:
        assert tx.trading_state_marks()["trades_counted"] == Mark(None, counted_at)  # left as it was


def test_a_missing_mark_of_one_trigger_starts_from_the_shared_one_not_the_others(
    ledger_factory: LedgerFactory,
) -> None:
    """After the upgrade, a trader that runs only the exit cooldown counts on; a trader that
    runs the streak, not seen since, starts from the shared mark, not from where the
    cooldown got to."""
    ledger = ledger_factory()
    start = MONDAY_OPEN - timedelta(minutes=1)
    with ledger.transaction(lock_account=True) as tx:
        tx.record_trading_state_mark("trades_counted", Mark(None, start))
    cooling = guard(ledger_factory(), ALPHA, COOLDOWN)
    now = two_losing_exits(ledger)
    assert placed(cooling.observe(now=now)) == COOLDOWNS
    counting = guard(ledger_factory(), BETA, STREAK)
    assert placed(counting.observe(now=now + timedelta(minutes=1))) == STREAK_HOLD
