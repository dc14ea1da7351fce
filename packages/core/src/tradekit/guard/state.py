"""The trading-state guard's vocabulary: states, scopes, holds, transitions, and their fold.

A scope (the account, one strategy, one symbol) is restricted by *holds*: each trigger (and
the operator, as ``manual``) keeps at most one hold per scope, REDUCE_ONLY or HALTED. What
applies to a buy or an exit is the most restrictive hold in force on any scope it falls in
(the account, its strategy, its symbol). Every change of a hold is a ``Transition``, appended
to the ledger; the holds are the current state those transitions leave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

import attrs

from tradekit.domain.values import optional_to_utc, optional_utc, to_utc, utc


class TradingState(StrEnum):
    """How far trading is allowed: ACTIVE, exits only (REDUCE_ONLY), or nothing but cancels."""

    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCE_ONLY: 1, TradingState.HALTED: 2}


class ScopeKind(StrEnum):
    ACCOUNT = "account"
    STRATEGY = "strategy"
    SYMBOL = "symbol"


class ScopeError(ValueError):
    """A scope that cannot be read; the message says what is allowed."""


@attrs.frozen(order=True)
class Scope:
    """What a hold restricts: the whole account, one strategy, or one symbol."""

    kind: ScopeKind
    name: str = ""

    def __attrs_post_init__(self) -> None:
        if (self.kind is ScopeKind.ACCOUNT) != (self.name == ""):
            raise ScopeError(f"scope {self.kind}: the account has no name, a strategy or symbol scope needs one")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Read ``account``, ``strategy:NAME`` or ``symbol:SYM`` (symbols are upper-cased)."""
        kind, _, name = text.strip().partition(":")
        name = name.strip()
        if kind == ScopeKind.ACCOUNT and not name:
            return ACCOUNT
        if kind == ScopeKind.STRATEGY and name:
            return cls(ScopeKind.STRATEGY, name)
        if kind == ScopeKind.SYMBOL and name:
            return cls.symbol(name)
        raise ScopeError(f"scope {text!r} is not one of: account, strategy:NAME, symbol:SYM")

    @classmethod
    def strategy(cls, name: str) -> Scope:
        return cls(ScopeKind.STRATEGY, name)

    @classmethod
    def symbol(cls, name: str) -> Scope:
        # Symbols are matched case-insensitively: "ko" on the command line is KO.
        return cls(ScopeKind.SYMBOL, name.upper())

    def __str__(self) -> str:
        return self.kind.value if self.kind is ScopeKind.ACCOUNT else f"{self.kind.value}:{self.name}"


ACCOUNT = Scope(ScopeKind.ACCOUNT)


class Trigger(StrEnum):
    """Who or what placed a hold."""

    MANUAL = "manual"
    MAX_DRAWDOWN = "max_drawdown"
    DAILY_LOSS = "daily_loss"
    LOSING_STREAK = "losing_streak"
    EXIT_COOLDOWN = "exit_cooldown"
    UNRECONCILED = "unreconciled"
    STALE_STREAM = "stale_stream"
    ACCOUNT_BLOCKED = "account_blocked"
    # Never stored: what a state that cannot be read is reported as (REDUCE_ONLY).
    UNREADABLE = "unreadable"


# Triggers each trader observes for itself, on what only it sees (its own trade-update
# stream): their hold names the traders that observed the condition (``Hold.traders``), only
# a trader's own observation takes it off the hold, and the hold stands while any trader
# still observes it. The other triggers observe the shared account and ledger: any trader's
# observation speaks for them.
PER_TRADER = frozenset({Trigger.STALE_STREAM})


def _traders(names: Iterable[str]) -> tuple[str, ...]:
    # One order whatever order they were listed in, each name once.
    return tuple(sorted(set(names)))


def user_actor(name: str) -> str:
    return f"user:{name}"


def trigger_actor(trigger: Trigger) -> str:
    return f"trigger:{trigger.value}"


@attrs.frozen(kw_only=True)
class Hold:
    """One trigger's (or the operator's) standing restriction of one scope.

    ``until``: for a hold that lifts by itself (a cooldown), when it ends; for one that
    ``needs_resume`` (drawdown, daily loss, manual), the earliest a resume is accepted.
    ``allow_exits``: a HALTED hold that still lets exits out. ``traders``: for a trigger that
    each trader observes for itself (``PER_TRADER``: a stale stream), the traders whose own
    observation keeps the hold; it stands while any of them does (empty: a hold from before
    ledger schema 6, or one that is the whole account's).
    """

    scope: Scope
    trigger: Trigger
    state: TradingState
    since: datetime = attrs.field(converter=to_utc, validator=utc)
    reason: str
    actor: str
    until: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    needs_resume: bool = False
    allow_exits: bool = False
    traders: tuple[str, ...] = attrs.field(default=(), converter=_traders)

    def __attrs_post_init__(self) -> None:
        if self.state is TradingState.ACTIVE:
            raise ValueError(f"hold {self.scope}/{self.trigger}: a hold restricts; ACTIVE is the absence of one")

    def in_force(self, at: datetime) -> bool:
        """Whether the hold still applies at ``at`` (a cooldown past its end does not)."""
        return self.needs_resume or self.until is None or at < self.until

    def stops_exits(self) -> bool:
        return self.state is TradingState.HALTED and not self.allow_exits

    def release(self, at: datetime, *, reason: str, actor: str) -> Transition:
        """The transition that lifts this hold."""
        return Transition(
            time=at,
            scope=self.scope,
            trigger=self.trigger,
            from_state=self.state,
            to_state=TradingState.ACTIVE,
            reason=reason,
            actor=actor,
        )

    def describe(self) -> str:
        """Say in one sentence what holds the scope, since when, by whom and why."""
        text = f"{self.scope} is {self.state.value.upper()} by {self.trigger.value} since {self.since.isoformat()}"
        if self.until is not None:
            text += f" ({'not before' if self.needs_resume else 'until'} {self.until.isoformat()})"
        text += f", by {self.actor}: {self.reason}"
        if self.traders:
            text += f" (held for {', '.join(self.traders)} until each sees it cleared, or `tradekit resume`)"
        if self.needs_resume:
            text += "; lifts only by `tradekit resume`"
        return text


@attrs.frozen(kw_only=True)
class Transition:
    """One change of one hold, as the ledger appends it.

    ``from_state`` and ``to_state`` are the hold's (ACTIVE: no hold). A renewed cooldown is a
    transition with equal states and a later ``until``; a trader joining or leaving a
    per-trader hold (``traders``) is one with equal states and other traders.
    """

    time: datetime = attrs.field(converter=to_utc, validator=utc)
    scope: Scope
    trigger: Trigger
    from_state: TradingState
    to_state: TradingState
    reason: str
    actor: str
    until: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)
    needs_resume: bool = False
    allow_exits: bool = False
    traders: tuple[str, ...] = attrs.field(default=(), converter=_traders)

    def hold(self) -> Hold | None:
        """The hold this transition leaves on its scope (None when it released it)."""
        if self.to_state is TradingState.ACTIVE:
            return None
        return Hold(
            scope=self.scope,
            trigger=self.trigger,
            state=self.to_state,
            since=self.time,
            reason=self.reason,
            actor=self.actor,
            until=self.until,
            needs_resume=self.needs_resume,
            allow_exits=self.allow_exits,
            traders=self.traders,
        )

    def one_line(self) -> str:
        until = f" until {self.until.isoformat()}" if self.until is not None else ""
        return (
            f"{self.time.isoformat()} {self.scope}: {self.from_state.value} -> {self.to_state.value}"
            f" ({self.trigger.value}{until}) by {self.actor}: {self.reason}"
        )


@attrs.frozen
class Standing:
    """What applies to one buy or exit: the state and the hold that decides it (None: ACTIVE)."""

    state: TradingState
    hold: Hold | None = None

    def describe(self) -> str:
        return self.hold.describe() if self.hold is not None else "trading is active"


ACTIVE_STANDING = Standing(TradingState.ACTIVE)


def _holds(items: Iterable[Hold]) -> tuple[Hold, ...]:
    # One order whatever order the ledger listed them in: a buffered replay must write the
    # rows a committing one writes (holds ending at the same moment end in this order).
    return tuple(sorted(items, key=lambda h: (h.since, str(h.scope), h.trigger.value)))


_SCOPE_ORDER = {ScopeKind.ACCOUNT: 0, ScopeKind.STRATEGY: 1, ScopeKind.SYMBOL: 2}


def _precedence(hold: Hold) -> tuple[int, int, str, str]:
    # Most restrictive first; among equals, the widest scope, then the trigger's name.
    return (-hold.state.severity, _SCOPE_ORDER[hold.scope.kind], hold.scope.name, hold.trigger.value)


@attrs.frozen
class TradingStates:
    """Every hold in the ledger at one moment, and what they mean for a buy or an exit.

    ``unreadable`` says why the stored state could not be read: then everything is
    REDUCE_ONLY (exits go on, nothing new is bought), never ACTIVE.
    """

    holds: tuple[Hold, ...] = attrs.field(default=(), converter=_holds)
    unreadable: str | None = None

    @cached_property
    def _by_scope(self) -> Mapping[Scope, tuple[Hold, ...]]:
        grouped: dict[Scope, list[Hold]] = {}
        for hold in self.holds:
            grouped.setdefault(hold.scope, []).append(hold)
        return {scope: tuple(sorted(found, key=_precedence)) for scope, found in grouped.items()}

    @property
    def all_active(self) -> bool:
        return not self.holds and self.unreadable is None

    def applying(self, *, strategy: str | None, symbol: str | None, at: datetime) -> list[Hold]:
        """The holds in force at ``at`` on the account, ``strategy`` and ``symbol``, strongest first."""
        if self.unreadable is not None:
            return [self._unreadable_hold(at)]
        if not self.holds:
            return []
        scopes = [ACCOUNT]
        if strategy is not None:
            scopes.append(Scope.strategy(strategy))
        if symbol is not None:
            scopes.append(Scope.symbol(symbol))
        found = [h for scope in scopes for h in self._by_scope.get(scope, ()) if h.in_force(at)]
        return sorted(found, key=_precedence)

    def standing(self, *, strategy: str | None, symbol: str | None, at: datetime) -> Standing:
        """The state that applies to a buy of ``symbol`` by ``strategy`` at ``at``."""
        if self.all_active:
            return ACTIVE_STANDING
        found = self.applying(strategy=strategy, symbol=symbol, at=at)
        return Standing(found[0].state, found[0]) if found else ACTIVE_STANDING

    def exit_blocker(self, *, strategy: str | None, symbol: str, at: datetime) -> Hold | None:
        """The hold that stops an exit of ``symbol`` (a HALTED one without allowed exits), if any."""
        if self.all_active:
            return None
        return next((h for h in self.applying(strategy=strategy, symbol=symbol, at=at) if h.stops_exits()), None)

    def letting_exits_out(self) -> TradingStates:
        """These holds with every HALTED one letting exits out: what a trader whose own
        settings allow exits while halted (``allow_exits_when_halted``) goes by, whoever
        placed the halt. Buys stay blocked; an unreadable state stays REDUCE_ONLY."""
        if not any(hold.stops_exits() for hold in self.holds):
            return self
        return TradingStates(
            tuple(attrs.evolve(h, allow_exits=True) if h.stops_exits() else h for h in self.holds),
            unreadable=self.unreadable,
        )

    def scope_state(self, scope: Scope, at: datetime) -> Standing:
        """The state of one scope by its own holds (what ``tradekit state`` lists)."""
        if self.unreadable is not None:
            return Standing(TradingState.REDUCE_ONLY, self._unreadable_hold(at))
        found = [h for h in self._by_scope.get(scope, ()) if h.in_force(at)]
        return Standing(found[0].state, found[0]) if found else ACTIVE_STANDING

    def hold(self, scope: Scope, trigger: Trigger) -> Hold | None:
        return next((h for h in self._by_scope.get(scope, ()) if h.trigger is trigger), None)

    def on_scope(self, scope: Scope) -> tuple[Hold, ...]:
        return self._by_scope.get(scope, ())

    @property
    def scopes(self) -> list[Scope]:
        return sorted(self._by_scope, key=lambda s: (_SCOPE_ORDER[s.kind], s.name))

    def _unreadable_hold(self, at: datetime) -> Hold:
        return Hold(
            scope=ACCOUNT,
            trigger=Trigger.UNREADABLE,
            state=TradingState.REDUCE_ONLY,
            since=at,
            reason=f"the stored trading state cannot be read ({self.unreadable}); only exits are allowed",
            actor=trigger_actor(Trigger.UNREADABLE),
        )


ALL_ACTIVE = TradingStates()


def fold_transitions(transitions: Iterable[Transition]) -> dict[tuple[Scope, Trigger], Transition]:
    """The transition that placed each hold still standing after ``transitions`` (in order)."""
    standing: dict[tuple[Scope, Trigger], Transition] = {}
    for transition in transitions:
        key = (transition.scope, transition.trigger)
        if transition.to_state is TradingState.ACTIVE:
            standing.pop(key, None)
        else:
            standing[key] = transition
    return standing


@attrs.frozen(kw_only=True)
class ClosedTrade:
    """A position from its first entry to flat: when it closed and what it made, fees included.

    ``pnl`` is None when a reduction has no price (a position closed outside tradekit).
    """

    symbol: str
    strategy: str | None
    closed_at: datetime = attrs.field(converter=to_utc, validator=utc)
    pnl: Decimal | None

    @property
    def is_loss(self) -> bool:
        return self.pnl is not None and self.pnl < 0
