"""``TradingGuard``: the trading-state guard's one entry point for drivers, the CLI and the pipeline.

- The order pipeline asks it (as an ``OrderGate``) for the state a decision sees, and for
  leave to send each order: ``sending`` holds the ledger's account lock shared while the
  order leaves, so a halt that commits first stops it, and a halt never commits while an
  order it would have stopped is on its way.
- A driver calls ``observe`` once per cycle (live) or per close (replay), or
  ``observe_broker`` to let it read the account and the stream itself; the automatic
  triggers run there.
- The command line's ``halt``, ``reduce-only`` and ``resume`` call the methods of the same
  names.

Every change is written in one transaction holding the account lock exclusively, then
announced through the ``on_trading_state`` hook.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeGuard

import attrs

from tradekit.broker.errors import BrokerError
from tradekit.broker.protocol import Broker, StreamHealth, StreamHeartbeat
from tradekit.config.settings import GuardSettings
from tradekit.domain.account import AccountSnapshot
from tradekit.exits.calendar import TradingCalendar, trading_calendar
from tradekit.guard import triggers
from tradekit.guard.records import Mark
from tradekit.guard.state import ClosedTrade, Hold, Scope, TradingState, TradingStates, Transition, Trigger
from tradekit.ledger.records import IntentPurpose, OrderIntent
from tradekit.ledger.store import Ledger, LedgerTx

if TYPE_CHECKING:
    from tradekit.plugins import Plugins

log = logging.getLogger(__name__)

# A change of the state: from the holds and marks as they stand, in the transaction, to
# the transitions to record (marks it changes are written too).
Change = Callable[[TradingStates, "triggers.Marks", LedgerTx], list[Transition]]


class GuardError(RuntimeError):
    """A change of the trading state that cannot be made; the message says why and what to do."""


class ResumeRefused(GuardError):
    """A resume asked for before a hold allows it (a daily-loss halt before the next session)."""


@attrs.frozen
class Refusal:
    """Why the guard will not let an order leave: the hold that stops it."""

    hold: Hold

    def __str__(self) -> str:
        return self.hold.describe()


class OrderGate(Protocol):
    """What the order pipeline asks the guard (``OrderPipeline(guard=...)``)."""

    def trading_states(self, tx: LedgerTx) -> TradingStates:
        """The holds a decision made in ``tx`` sees (never raises: unreadable is REDUCE_ONLY)."""
        ...

    def sending(self, intent: OrderIntent, at: datetime) -> AbstractContextManager[Refusal | None]:
        """Hold the account's send lock while the order leaves; yield why it may not (or None)."""
        ...


def read_trading_states(tx: LedgerTx) -> TradingStates:
    """The holds in ``tx``; a state that cannot be read is reported as such (REDUCE_ONLY)."""
    try:
        return tx.trading_states()
    except ValueError as exc:
        log.error("the trading state in the ledger cannot be read, trading is REDUCE_ONLY: %s", exc)
        return TradingStates(unreadable=str(exc))


def process_trader(pid: int | None = None) -> str:
    """The trader identity of a process of this host (default: this one), what a guard goes
    by when it is given none: ``pid 1234 on HOST`` (and its PID namespace, where it has one:
    a container sharing the host's name counts its processes apart)."""
    namespace = _pid_namespace()
    return f"pid {os.getpid() if pid is None else pid} on {socket.gethostname()}" + (
        f" (pidns {namespace})" if namespace is not None else ""
    )


_PROCESS_TRADER = re.compile(r"pid (\d+) on (\S+)(?: \(pidns (\d+)\))?")


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def process_departed(trader: str) -> bool:
    """Whether ``trader`` is a process identity (``process_trader``) of this host and PID
    namespace whose process has ended. Anything else — a trader's own name, a process of
    another host, one that runs, one that cannot be told — is not known to be gone."""
    found = _PROCESS_TRADER.fullmatch(trader)
    if found is None or os.name != "posix":
        return False
    pid, host, namespace = int(found[1]), found[2], found[3]
    mine = _pid_namespace()
    if host != socket.gethostname() or namespace != (str(mine) if mine is not None else None):
        return False
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's), or cannot be asked
    return False


def refusal_for(
    states: TradingStates, intent: OrderIntent, at: datetime, *, also: Sequence[str] = ()
) -> Refusal | None:
    """Why ``states`` keep ``intent`` from leaving at ``at``, or None when it may.

    An entry or an add-on (whatever its side: a pair's short leg opens exposure too) needs
    ACTIVE; an exit goes unless a HALTED hold without allowed exits applies. ``also``: more
    symbol scopes the order falls in (a pair leg: the pair's key besides its instrument).
    """
    for symbol in (intent.symbol, *also):
        if intent.purpose is not IntentPurpose.EXIT:
            hold = states.standing(strategy=intent.strategy, symbol=symbol, at=at).hold
        else:
            hold = states.exit_blocker(strategy=intent.strategy, symbol=symbol, at=at)
        if hold is not None:
            return Refusal(hold)
    return None


class TradingGuard:
    """The trading-state guard of one ledger (one account).

    ``settings`` are the automatic triggers (all off by default); ``calendar`` dates the
    daily loss limit's sessions; ``plugins`` hear every transition (``on_trading_state``).

    ``trader`` names the trader whose observations this guard makes, for the holds each
    trader places for itself (``PER_TRADER``: its trade-update stream gone stale): several
    traders sharing the account's ledger each keep their own part of such a hold, and only a
    trader's own observation takes it off. Give a name that stays the same across restarts
    (the trader's strategy and broker), so that a restarted trader lifts what it placed
    before; the live trader names the guard it is given without one (``go_by``). Default:
    this process (``process_trader``), which a later process of the same host lifts once this
    one has ended; a process of another host that ended keeps its part until ``tradekit
    resume``.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        settings: GuardSettings | None = None,
        calendar: TradingCalendar | None = None,
        plugins: Plugins | None = None,
        trader: str | None = None,
    ) -> None:
        if trader is not None and not trader.strip():
            raise ValueError("a trader's name cannot be empty")
        self.trader = trader.strip() if trader is not None else process_trader()
        self._named = trader is not None
        self.ledger = ledger
        self._settings = settings or GuardSettings()
        self.calendar = calendar or trading_calendar()
        self.plugins = plugins
        # Whether any automatic trigger is on (the settings are frozen): with none, an
        # observation only looks for cooldowns an earlier run left that have ended (a
        # condition's hold waits for a trader that runs its trigger, or a resume), and a
        # driver observes at every step of every session.
        self._automatic = triggers.any_enabled(self.settings)

    def go_by(self, trader: str) -> None:
        """Go by ``trader`` from now on, unless this guard was given a name already: what a
        driver that knows its trader's lasting name (the live trader: its strategy and broker)
        calls on a guard built without one (the pipeline's own)."""
        if self._named:
            return
        if not trader.strip():
            raise ValueError("a trader's name cannot be empty")
        self.trader, self._named = trader.strip(), True

    @property
    def settings(self) -> GuardSettings:
        """The automatic triggers, fixed for the guard's life (what it observes is worked out
        from them once)."""
        return self._settings

    # --- the order gate ------------------------------------------------------------------------

    def trading_states(self, tx: LedgerTx) -> TradingStates:
        """The holds in ``tx`` as this trader goes by them (see ``_as_this_trader``)."""
        return self._as_this_trader(read_trading_states(tx))

    @contextlib.contextmanager
    def sending(self, intent: OrderIntent, at: datetime, *, also: Sequence[str] = ()) -> Iterator[Refusal | None]:
        """Hold the account's send lock while the order leaves; yield why it may not (or None)."""
        with self.ledger.sending() as tx:
            yield refusal_for(self._as_this_trader(read_trading_states(tx)), intent, at, also=also)

    def _as_this_trader(self, states: TradingStates) -> TradingStates:
        # A trader whose own settings let exits out while halted may always reduce exposure,
        # whoever placed the halt and whatever it stored: `tradekit halt` run elsewhere (without
        # this trader's config) stores a hold that forbids exits, and the trader's promise to
        # its operator is that a halt never traps a position. Buys stay blocked either way.
        return states.letting_exits_out() if self.settings.allow_exits_when_halted else states

    def states(self) -> TradingStates:
        """The holds standing now (a fresh read)."""
        with self.ledger.reading() as tx:
            return read_trading_states(tx)

    # --- manual control ------------------------------------------------------------------------

    def halt(
        self, scope: Scope, *, reason: str, actor: str, at: datetime, allow_exits: bool = False
    ) -> list[Transition]:
        """HALT ``scope`` by hand: nothing but cancels (exits too, with ``allow_exits``).

        A trader whose own settings have ``allow_exits_when_halted`` lets its exits out of
        any halt, this one included, whatever ``allow_exits`` says."""
        exits = allow_exits or self.settings.allow_exits_when_halted
        return self._set_manual(scope, TradingState.HALTED, reason=reason, actor=actor, at=at, allow_exits=exits)

    def reduce_only(self, scope: Scope, *, reason: str, actor: str, at: datetime) -> list[Transition]:
        """Put ``scope`` in REDUCE_ONLY by hand: exits only, no new position and no add-on."""
        return self._set_manual(scope, TradingState.REDUCE_ONLY, reason=reason, actor=actor, at=at)

    def _set_manual(
        self, scope: Scope, state: TradingState, *, reason: str, actor: str, at: datetime, allow_exits: bool = False
    ) -> list[Transition]:
        def change(states: TradingStates, marks: triggers.Marks, tx: LedgerTx) -> list[Transition]:
            held = states.hold(scope, Trigger.MANUAL)
            return [
                Transition(
                    time=at,
                    scope=scope,
                    trigger=Trigger.MANUAL,
                    from_state=held.state if held is not None else TradingState.ACTIVE,
                    to_state=state,
                    reason=reason,
                    actor=actor,
                    needs_resume=True,
                    allow_exits=allow_exits,
                )
            ]

        return self._change(change)

    def resume(self, scope: Scope, *, reason: str, actor: str, at: datetime, force: bool = False) -> list[Transition]:
        """Lift every hold on ``scope`` (manual and triggered alike); return what was lifted.

        A daily-loss halt is not lifted before the next session opens unless ``force``. A
        trigger whose condition still holds places its hold again at the next observation.
        Lifting a drawdown halt restarts the equity high from the next observation; lifting
        a daily-loss halt restarts the session's loss from there.
        """

        def change(states: TradingStates, marks: triggers.Marks, tx: LedgerTx) -> list[Transition]:
            if states.unreadable is not None:
                raise GuardError(
                    f"the trading state in the ledger cannot be read ({states.unreadable}); "
                    "restore the ledger or remove the unreadable rows of tk_trading_state_holds"
                )
            held = states.on_scope(scope)
            early = [h for h in held if h.needs_resume and h.until is not None and at < h.until]
            if early and not force:
                hold = early[0]
                assert hold.until is not None
                raise ResumeRefused(
                    f"{hold.describe()}; it may be resumed from {hold.until.isoformat()} (or now with --force)"
                )
            for hold in held:
                if hold.trigger is Trigger.MAX_DRAWDOWN:
                    marks.set(triggers.EQUITY_HIGH, Mark(None, at))
                elif hold.trigger is Trigger.DAILY_LOSS:
                    marks.set(triggers.SESSION_START, Mark(None, at))
            return [hold.release(at, reason=reason, actor=actor) for hold in held]

        return self._change(change)

    # --- automatic triggers ----------------------------------------------------------------------

    def observe(
        self,
        *,
        now: datetime,
        account: AccountSnapshot | None = None,
        stream: StreamHeartbeat | None = None,
    ) -> list[Transition]:
        """Run the automatic triggers on what is observed now; return the transitions made.

        ``account``: the broker's account snapshot (equity includes unrealised P&L and fees),
        for the drawdown, daily-loss and blocked-account triggers (None: not readable now,
        those triggers wait). ``stream``: this trader's trade-update stream's health (None:
        the broker has no stream); it places or keeps this trader's part of a stale-stream
        hold, or takes it off, never another trader's. Closed trades and unreconciled symbols
        are read from the ledger. Call it once per cycle (live) or per close (replay), before
        buys are judged.
        """
        settings = self.settings
        if not self._automatic and self._idle():
            return []

        def change(states: TradingStates, marks: triggers.Marks, tx: LedgerTx) -> list[Transition]:
            if states.unreadable is not None:
                log.error("automatic triggers skipped: %s", states.unreadable)
                return []
            closed: tuple[ClosedTrade, ...] = ()
            if triggers.uses_closed_trades(settings):
                # From the least counted of this trader's triggers: each counts (and marks)
                # only the trades it has not counted yet.
                closed = tuple(tx.closed_trades(since=triggers.closed_trades_since(settings, marks)))
            unreconciled = tx.unreconciled_symbols() if settings.reduce_only_on_unreconciled else frozenset()
            seen = triggers.Observation(
                now=now, account=account, stream=stream, unreconciled=unreconciled, closed=closed
            )
            return triggers.plan(
                states,
                triggers.demands(settings, marks, seen, self.calendar),
                conditions=triggers.evaluated_conditions(settings, seen),
                now=now,
                allow_exits_when_halted=settings.allow_exits_when_halted,
                trader=self.trader,
                departed=process_departed,
            )

        return self._change(change)

    def observe_broker(self, *, now: datetime, broker: Broker) -> list[Transition]:
        """``observe`` with the account and the stream read from ``broker`` (only when needed).

        A broker that cannot be read leaves the account triggers waiting for the next call.
        """
        if not self._automatic and self._idle():
            return []
        account = None
        if triggers.uses_account(self.settings):
            try:
                account = broker.get_account()
            except BrokerError as exc:
                log.warning("account unreadable, the guard's account triggers wait: %s", exc)
        stream = broker.stream_heartbeat() if _streams(broker) else None
        return self.observe(now=now, account=account, stream=stream)

    def _idle(self) -> bool:
        """With no automatic trigger on: whether nothing is left for an observation to do (no
        hold but manual ones, and the state readable)."""
        with self.ledger.reading() as tx:
            states = read_trading_states(tx)
        if states.unreadable is not None:
            return False
        return not states.holds or all(h.trigger is Trigger.MANUAL for h in states.holds)

    # --- writing -----------------------------------------------------------------------------------

    def _change(self, change: Change) -> list[Transition]:
        with self.ledger.transaction(lock_account=True) as tx:
            states = read_trading_states(tx)
            marks = triggers.Marks(tx.trading_state_marks())
            made = change(states, marks, tx)
            for transition in made:
                tx.record_trading_state(transition)
            for name, mark in marks.changed.items():
                tx.record_trading_state_mark(name, mark)
        for transition in made:
            # A halt a trigger placed is news to whoever reads the trader's log; a cooldown
            # coming and going is routine, and an operator knows what they did.
            automatic_halt = transition.to_state is TradingState.HALTED and not transition.actor.startswith("user:")
            level = logging.WARNING if automatic_halt else logging.INFO
            log.log(level, "trading state: %s", transition.one_line())
            if self.plugins is not None:
                self.plugins.on_trading_state(transition)
        return made


# Whether a broker class has ``stream_heartbeat``, remembered by class: an isinstance check
# against a runtime-checkable protocol walks the protocol's members each time (~100 us), and
# the guard asks at every step of a session (three times a replayed day). A class that
# delegates attributes (``__getattr__``) may answer per instance, so it is asked every time.
_STREAMING: dict[type, bool] = {}


def _streams(broker: Broker) -> TypeGuard[StreamHealth]:
    kind = type(broker)
    found = _STREAMING.get(kind)
    if found is None:
        found = isinstance(broker, StreamHealth)
        if not hasattr(kind, "__getattr__"):
            _STREAMING[kind] = found
    return found
