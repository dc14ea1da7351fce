"""The automatic triggers: each turns what the guard observes into a demand on one scope.

A trigger is a function of the settings, what was observed (account, stream, closed trades,
unreconciled symbols) and the marks it remembers between observations; it returns the holds
it wants. ``plan`` turns those demands and the standing holds into transitions: new holds,
renewed cooldowns, and releases (a condition that cleared, seen by a trader that runs its
trigger; a cooldown that ended). Holds that need a human resume are never released here. A
per-trader trigger's hold (a stale stream: each trader sees only its own) is held for the
traders that observed it: one trader's observation adds or removes that trader only, and
the hold goes with the last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from tradekit.broker.protocol import StreamHeartbeat
from tradekit.config.settings import GuardSettings
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.values import HUNDRED, ZERO
from tradekit.exits.calendar import TradingCalendar
from tradekit.guard.records import Mark
from tradekit.guard.state import (
    ACCOUNT,
    PER_TRADER,
    ClosedTrade,
    Hold,
    Scope,
    TradingState,
    TradingStates,
    Transition,
    Trigger,
    trigger_actor,
)

EQUITY_HIGH = "equity_high"  # the highest equity seen (and when)
SESSION_START = "session_start"  # the equity the session started from; time: the session's day start
LAST_EQUITY = "last_equity"  # the equity at the last observation (and when)
# time: closed trades up to here are counted. Each trigger that reads closed trades keeps its
# own (``counted_mark``): several traders share the marks, each running the triggers its
# settings turn on, and one that runs only one of them must not count the trades for the
# other. The shared mark a ledger holds from before is where a trigger without its own starts.
TRADES_COUNTED = "trades_counted"
LOSING_STREAK = "losing_streak"  # value: losing exits in a row so far

_INSTANT = timedelta(microseconds=1)

# Triggers that follow a condition: their holds go when the condition does.
CONDITIONS = frozenset({Trigger.UNRECONCILED, Trigger.STALE_STREAM, Trigger.ACCOUNT_BLOCKED})


@attrs.frozen(kw_only=True)
class Observation:
    """What the guard was shown at one moment."""

    now: datetime
    account: AccountSnapshot | None = None
    stream: StreamHeartbeat | None = None
    unreconciled: frozenset[str] = frozenset()
    # Closed trades from the least counted of the triggers that read them, in the order they
    # closed; each trigger takes those past its own mark.
    closed: tuple[ClosedTrade, ...] = ()


@attrs.frozen(kw_only=True)
class Demand:
    """A trigger's wish: this scope in this state, for this reason (until, if it lapses)."""

    scope: Scope
    trigger: Trigger
    state: TradingState
    reason: str
    until: datetime | None = None
    needs_resume: bool = False


class Marks:
    """The remembered figures, read once per observation; ``changed`` is what to write back."""

    def __init__(self, stored: Mapping[str, Mark]) -> None:
        self._stored = dict(stored)
        self.changed: dict[str, Mark] = {}

    def value(self, name: str) -> Decimal | None:
        mark = self._stored.get(name)
        return None if mark is None else mark.value

    def time(self, name: str) -> datetime | None:
        mark = self._stored.get(name)
        return None if mark is None else mark.time

    def set(self, name: str, mark: Mark) -> None:
        if self._stored.get(name) != mark:
            self._stored[name] = mark
            self.changed[name] = mark


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def max_drawdown(settings: GuardSettings, marks: Marks, seen: Observation) -> Demand | None:
    """HALTED once equity is ``max_drawdown_pct`` below the highest equity seen."""
    limit = settings.max_drawdown_pct
    if limit is None or seen.account is None:
        return None
    equity, high = seen.account.equity, marks.value(EQUITY_HIGH)
    if high is None or equity > high:
        marks.set(EQUITY_HIGH, Mark(equity, seen.now))
        return None
    if high <= 0:
        return None
    drawdown = (high - equity) * HUNDRED / high
    if drawdown < limit:
        return None
    high_at = marks.time(EQUITY_HIGH)
    return Demand(
        scope=ACCOUNT,
        trigger=Trigger.MAX_DRAWDOWN,
        state=TradingState.HALTED,
        reason=(
            f"equity {_money(equity)} is {drawdown:.2f}% below its high of {_money(high)}"
            f"{f' ({high_at.isoformat()})' if high_at else ''}; the limit is {limit}%"
        ),
        needs_resume=True,
    )


def daily_loss(settings: GuardSettings, marks: Marks, seen: Observation, calendar: TradingCalendar) -> Demand | None:
    """HALTED until the next session (and a resume) once the session lost its limit.

    The session's loss counts from the last equity seen before it (the previous close, in a
    replay; the equity before a resume, after one), or from the first one seen in it when
    nothing was seen since the previous session's trading day began.
    """
    pct, amount = settings.daily_loss_limit_pct, settings.daily_loss_limit
    if (pct is None and amount is None) or seen.account is None:
        return None
    equity, day = seen.account.equity, calendar.day_start(seen.now)
    last, last_at = marks.value(LAST_EQUITY), marks.time(LAST_EQUITY)
    marks.set(LAST_EQUITY, Mark(equity, seen.now))
    start = marks.value(SESSION_START)
    if start is None or marks.time(SESSION_START) != day:
        since = _previous_day_start(calendar, day)
        recent = last_at is not None and (since is None or last_at >= since)
        start = last if last is not None and recent else equity
        marks.set(SESSION_START, Mark(start, day))
    loss = start - equity
    if loss <= 0:
        return None
    loss_pct = loss * HUNDRED / start if start > 0 else None
    over_amount = amount is not None and loss >= amount
    over_pct = pct is not None and loss_pct is not None and loss_pct >= pct
    if not (over_amount or over_pct):
        return None
    limits = " / ".join(
        part for part in (f"{pct}%" if pct is not None else "", _money(amount) if amount is not None else "") if part
    )
    share = f" ({loss_pct:.2f}%)" if loss_pct is not None else ""
    return Demand(
        scope=ACCOUNT,
        trigger=Trigger.DAILY_LOSS,
        state=TradingState.HALTED,
        reason=f"the session lost {_money(loss)}{share} from {_money(start)}; the daily limit is {limits}",
        until=calendar.next_open(seen.now),
        needs_resume=True,
    )


def _previous_day_start(calendar: TradingCalendar, day: datetime) -> datetime | None:
    previous = calendar.last_close(day)
    if previous is None:
        return None
    # The day of the previous session's open: on a calendar whose sessions abut (24/7), that
    # session closes at ``day`` itself, and its close's day start is ``day`` (the last equity
    # before midnight would never count). On XNYS the open and close share a day.
    opened = calendar.last_open(previous - _INSTANT)
    return calendar.day_start(opened if opened is not None else previous)


def counted_mark(trigger: Trigger) -> str:
    """The name of the mark that says how far ``trigger`` counted closed trades."""
    return f"{TRADES_COUNTED}:{trigger.value}"


def counted_since(marks: Marks, trigger: Trigger) -> datetime | None:
    """How far ``trigger`` counted closed trades: its own mark, else the shared one a ledger
    holds from before each trigger had its own (None: nothing counted yet)."""
    own = marks.time(counted_mark(trigger))
    return own if own is not None else marks.time(TRADES_COUNTED)


def closed_trade_triggers(settings: GuardSettings) -> tuple[Trigger, ...]:
    """The triggers these settings run that read closed trades."""
    return tuple(
        trigger
        for trigger, on in (
            (Trigger.LOSING_STREAK, settings.losing_streak_exits is not None),
            (Trigger.EXIT_COOLDOWN, settings.exit_cooldown_minutes is not None),
        )
        if on
    )


def closed_trades_since(settings: GuardSettings, marks: Marks) -> datetime | None:
    """Where an observation reads closed trades from: the least counted of the triggers
    these settings run (None: from the first)."""
    starts = [counted_since(marks, trigger) for trigger in closed_trade_triggers(settings)]
    if not starts or any(start is None for start in starts):
        return None
    return min(start for start in starts if start is not None)


def _uncounted(trigger: Trigger, marks: Marks, seen: Observation) -> tuple[ClosedTrade, ...]:
    """The closed trades ``trigger`` has not counted yet; they count as of now."""
    since = counted_since(marks, trigger)
    fresh = tuple(trade for trade in seen.closed if since is None or trade.closed_at > since)
    if fresh:
        marks.set(counted_mark(trigger), Mark(None, fresh[-1].closed_at))
    return fresh


def losing_streak(settings: GuardSettings, marks: Marks, seen: Observation) -> Demand | None:
    """REDUCE_ONLY for ``losing_streak_cooldown_minutes`` after N losing exits in a row.

    Exits of unknown P&L (closed outside tradekit) neither extend nor break a streak; the
    count restarts after each streak that fired.
    """
    needed = settings.losing_streak_exits
    if needed is None:
        return None
    closed = _uncounted(Trigger.LOSING_STREAK, marks, seen)
    streak = int(marks.value(LOSING_STREAK) or 0)
    demand: Demand | None = None
    losers: list[ClosedTrade] = []
    for trade in closed:
        if trade.pnl is None:
            continue
        if not trade.is_loss:
            streak, losers = 0, []
            continue
        streak += 1
        losers.append(trade)
        if streak >= needed:
            until = trade.closed_at + settings.losing_streak_cooldown
            if until > seen.now:
                named = ", ".join(f"{t.symbol} {_money(t.pnl or ZERO)}" for t in losers)
                demand = Demand(
                    scope=ACCOUNT,
                    trigger=Trigger.LOSING_STREAK,
                    state=TradingState.REDUCE_ONLY,
                    reason=f"{streak} losing exits in a row (the latest: {named})",
                    until=until,
                )
            streak, losers = 0, []
    if closed:
        marks.set(LOSING_STREAK, Mark(Decimal(streak), closed[-1].closed_at))
    return demand


def exit_cooldowns(settings: GuardSettings, marks: Marks, seen: Observation) -> list[Demand]:
    """REDUCE_ONLY for a symbol ``exit_cooldown_minutes`` after any exit of it."""
    minutes = settings.exit_cooldown_minutes
    if minutes is None:
        return []
    latest = {trade.symbol: trade for trade in _uncounted(Trigger.EXIT_COOLDOWN, marks, seen)}
    demands = []
    for symbol, trade in sorted(latest.items()):
        until = trade.closed_at + timedelta(minutes=minutes)
        if until > seen.now:
            pnl = f" (P&L {_money(trade.pnl)})" if trade.pnl is not None else ""
            demands.append(
                Demand(
                    scope=Scope.symbol(symbol),
                    trigger=Trigger.EXIT_COOLDOWN,
                    state=TradingState.REDUCE_ONLY,
                    reason=f"{symbol} was exited at {trade.closed_at.isoformat()}{pnl}; "
                    f"no new entry for {minutes} minutes",
                    until=until,
                )
            )
    return demands


def unreconciled(settings: GuardSettings, seen: Observation) -> list[Demand]:
    """REDUCE_ONLY for each symbol the last reconciliation could not reconcile."""
    if not settings.reduce_only_on_unreconciled:
        return []
    return [
        Demand(
            scope=Scope.symbol(symbol),
            trigger=Trigger.UNRECONCILED,
            state=TradingState.REDUCE_ONLY,
            reason=f"the last reconciliation could not reconcile {symbol} with the broker",
        )
        for symbol in sorted(seen.unreconciled)
    ]


def stale_stream(settings: GuardSettings, seen: Observation) -> Demand | None:
    """REDUCE_ONLY for the account while the trade-update stream is down too long, or stopped."""
    after = settings.stream_stale_after_seconds
    heartbeat = seen.stream
    if after is None or heartbeat is None or (heartbeat.connected and heartbeat.failure is None):
        return None
    heard = heartbeat.last_heard_at
    if heartbeat.failure is not None:
        why = f"the trade-update stream stopped: {heartbeat.failure}"
    elif heard is None or seen.now - heard >= timedelta(seconds=after):
        since = heard.isoformat() if heard is not None else "it started"
        why = f"the trade-update stream has been down since {since} (the limit is {after} s)"
    else:
        return None
    return Demand(scope=ACCOUNT, trigger=Trigger.STALE_STREAM, state=TradingState.REDUCE_ONLY, reason=why)


def account_blocked(settings: GuardSettings, seen: Observation) -> Demand | None:
    """HALTED while the broker reports the account, or trading on it, blocked."""
    account = seen.account
    if not settings.halt_on_account_blocked or account is None:
        return None
    if not (account.account_blocked or account.trading_blocked):
        return None
    which = "the account" if account.account_blocked else "trading on the account"
    return Demand(
        scope=ACCOUNT,
        trigger=Trigger.ACCOUNT_BLOCKED,
        state=TradingState.HALTED,
        reason=f"the broker reports {which} blocked",
    )


def evaluated_conditions(settings: GuardSettings, seen: Observation) -> frozenset[Trigger]:
    """The condition triggers this observation speaks for: their holds without a demand go.

    Only the triggers these settings run speak: a trader that does not run one (its setting
    off) has not looked, and several traders with their own settings share the account's
    holds, so it never lifts another's (nor its own: that takes `tradekit resume`).
    Blocked-account holds stay while the account could not be read: not knowing is not
    "unblocked".
    """
    spoken: set[Trigger] = set()
    if settings.reduce_only_on_unreconciled:
        spoken.add(Trigger.UNRECONCILED)
    if settings.stream_stale_after_seconds is not None:
        spoken.add(Trigger.STALE_STREAM)
    if settings.halt_on_account_blocked and seen.account is not None:
        spoken.add(Trigger.ACCOUNT_BLOCKED)
    return frozenset(spoken)


def demands(settings: GuardSettings, marks: Marks, seen: Observation, calendar: TradingCalendar) -> list[Demand]:
    """Every trigger's demand for this observation."""
    found: list[Demand | None] = [
        max_drawdown(settings, marks, seen),
        daily_loss(settings, marks, seen, calendar),
        losing_streak(settings, marks, seen),
        stale_stream(settings, seen),
        account_blocked(settings, seen),
    ]
    return [d for d in found if d is not None] + exit_cooldowns(settings, marks, seen) + unreconciled(settings, seen)


def plan(
    states: TradingStates,
    wanted: Iterable[Demand],
    *,
    conditions: frozenset[Trigger],
    now: datetime,
    allow_exits_when_halted: bool,
    trader: str,
    departed: Callable[[str], bool] = lambda name: False,
) -> list[Transition]:
    """The transitions that take the standing holds to what the triggers want now.

    ``trader``: who observed (a per-trader trigger's demand, or its absence, is this
    trader's alone); ``departed``: whether a trader a per-trader hold names is known to be
    gone (a process of this host that ended), so that it no longer keeps the hold.
    """
    demands = list(wanted)
    by_key = {(d.scope, d.trigger): d for d in demands if d.trigger not in PER_TRADER}
    changes: list[Transition] = []
    for trigger in PER_TRADER & conditions:
        mine = {d.scope: d for d in demands if d.trigger is trigger}
        held = {h.scope: h for h in states.holds if h.trigger is trigger}
        for scope in sorted(mine.keys() | held.keys()):
            change = _per_trader(held.get(scope), mine.get(scope), scope, trigger, trader, now, departed)
            if change is not None:
                changes.append(change)
    for standing in states.holds:
        if (
            (standing.scope, standing.trigger) in by_key
            or standing.trigger is Trigger.MANUAL
            or standing.trigger in PER_TRADER
        ):
            continue
        actor = trigger_actor(standing.trigger)
        if standing.trigger in conditions:
            changes.append(standing.release(now, reason=f"{standing.trigger.value} no longer applies", actor=actor))
        elif not standing.in_force(now) and standing.until is not None:
            ended = f"the {standing.trigger.value} cooldown ended at {standing.until.isoformat()}"
            changes.append(standing.release(now, reason=ended, actor=actor))
    for (scope, trigger), demand in by_key.items():
        hold = states.hold(scope, trigger)
        if hold is not None and hold.in_force(now):
            renews = demand.until is not None and hold.until is not None and demand.until > hold.until
            if hold.needs_resume or not (demand.state.severity > hold.state.severity or renews):
                continue
        changes.append(
            Transition(
                time=now,
                scope=scope,
                trigger=trigger,
                from_state=hold.state if hold is not None else TradingState.ACTIVE,
                to_state=demand.state,
                reason=demand.reason,
                actor=trigger_actor(trigger),
                until=demand.until,
                needs_resume=demand.needs_resume,
                allow_exits=demand.state is TradingState.HALTED and allow_exits_when_halted,
            )
        )
    return changes


def _per_trader(
    hold: Hold | None,
    demand: Demand | None,
    scope: Scope,
    trigger: Trigger,
    trader: str,
    now: datetime,
    departed: Callable[[str], bool],
) -> Transition | None:
    """The change ``trader``'s observation makes to a per-trader hold: it joins the traders
    the hold is held for when it observed the condition (placing the hold if none stands),
    leaves them when it did not, and the hold is lifted when no trader is left. A hold held
    for no trader in particular (stored before schema 6) is this trader's to keep or lift."""
    before = hold.traders if hold is not None else ()
    others = tuple(name for name in before if name != trader and not departed(name))
    keeping = (*others, trader) if demand is not None else others
    actor = trigger_actor(trigger)
    if hold is None:
        if demand is None:
            return None
        return Transition(
            time=now,
            scope=scope,
            trigger=trigger,
            from_state=TradingState.ACTIVE,
            to_state=demand.state,
            reason=f"{trader}: {demand.reason}",
            actor=actor,
            traders=keeping,
        )
    state = demand.state if demand is not None and demand.state.severity > hold.state.severity else hold.state
    if keeping and tuple(sorted(set(keeping))) == before and state is hold.state:
        return None
    gone = [name for name in before if name != trader and name not in others]
    if demand is not None:
        reason = f"{trader}: {demand.reason}"
        if gone:
            reason += f"; no longer held for {', '.join(gone)} (ended)"
    else:
        # Who no longer keeps it: this trader (a hold of no trader in particular is its to
        # lift), and the traders known to be gone.
        cleared = [trader] if trader in before or not before else []
        reason = f"{trigger.value} no longer applies for {', '.join([*cleared, *gone])}"
        if not keeping:
            return hold.release(now, reason=reason, actor=actor)
        reason += f"; it still does for {', '.join(others)}"
    return Transition(
        time=now,
        scope=scope,
        trigger=trigger,
        from_state=hold.state,
        to_state=state,
        reason=reason,
        actor=actor,
        traders=keeping,
    )


def uses_closed_trades(settings: GuardSettings) -> bool:
    return bool(closed_trade_triggers(settings))


def uses_account(settings: GuardSettings) -> bool:
    return (
        settings.max_drawdown_pct is not None
        or settings.daily_loss_limit_pct is not None
        or settings.daily_loss_limit is not None
        or settings.halt_on_account_blocked
    )


def any_enabled(settings: GuardSettings) -> bool:
    return (
        uses_account(settings)
        or uses_closed_trades(settings)
        or settings.reduce_only_on_unreconciled
        or settings.stream_stale_after_seconds is not None
    )
