"""``tradekit halt``, ``reduce-only``, ``resume`` and ``state``: the trading-state guard by hand.

They write to the ledger only — no broker is needed — and take the ledger's account lock,
so they work while a trader runs: on PostgreSQL, once ``halt`` returns, no process trading
the account sends another order; a SQLite trader reads the halt before its next order (an
order already past its check may still go out, and ``halt`` / ``reduce-only`` say so).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.table import Table

from tradekit.cli.common import (
    config_option,
    console,
    emit_json,
    json_option,
    ledger_option,
    load,
    open_ledger,
    plugins,
)
from tradekit.guard.state import (
    ACCOUNT,
    Hold,
    Scope,
    ScopeError,
    ScopeKind,
    Standing,
    TradingStates,
    Transition,
)
from tradekit.serialization import unstructure

if TYPE_CHECKING:
    from tradekit.guard.control import TradingGuard

F = TypeVar("F", bound=Callable[..., Any])


def _scope_option(fn: F) -> F:
    return click.option(
        "--scope",
        "scope_text",
        default="account",
        show_default=True,
        help="What to restrict: account, strategy:NAME or symbol:SYM.",
    )(fn)


def _reason_option(default: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        return click.option("--reason", default=default, show_default=True, help="Why (kept in the ledger).")(fn)

    return decorate


def _by_option(fn: F) -> F:
    return click.option("--by", "user", default=None, help="Who does it (default: the logged-in user).")(fn)


def _scope(text: str) -> Scope:
    try:
        return Scope.parse(text)
    except ScopeError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None


def _force_option(fn: F) -> F:
    return click.option(
        "--force",
        is_flag=True,
        help="Accept a strategy:NAME that is not installed here (a strategy installed only where the trader runs).",
    )(fn)


def _check_strategy(guard: TradingGuard, scope: Scope) -> None:
    # A strategy name is matched exactly (unlike a symbol): a typo or another case would
    # report HALTED while the strategy that trades keeps buying. Known: the strategies
    # installed here, and those the ledger knows (an open position, a hold already placed).
    if scope.kind is not ScopeKind.STRATEGY:
        return
    installed = set(guard.plugins.strategies()) if guard.plugins is not None else set()
    if scope.name in installed:
        return
    with guard.ledger.reading() as tx:
        held = {s.name for s in tx.trading_states().scopes if s.kind is ScopeKind.STRATEGY}
    owning = {p.strategy for p in guard.ledger.open_positions().values() if p.strategy is not None}
    known = installed | held | owning
    if scope.name in known:
        return
    alike = sorted(name for name in known if name.casefold() == scope.name.casefold())
    hint = f"; did you mean {', '.join(repr(n) for n in alike)}?" if alike else ""
    raise click.BadParameter(
        f"no strategy is named {scope.name!r} (names are case-sensitive){hint}; known here: "
        f"{', '.join(sorted(known)) or 'none'} (installed, holding a position in the ledger, or already held); "
        "--force accepts a strategy installed only where the trader runs",
        param_hint="--scope",
    )


def _actor(user: str | None) -> str:
    return f"user:{user or getpass.getuser()}"


@contextmanager
def _guard(ledger_url: str | None, config_path: Path | None) -> Iterator[TradingGuard]:
    # The ledger (SQLAlchemy) and the calendar (pandas) load here, not when the CLI starts.
    from tradekit.exits.calendar import trading_calendar
    from tradekit.guard.control import GuardError, TradingGuard
    from tradekit.ledger import LedgerError
    from tradekit.notify.service import notifications

    manager = plugins()
    settings = load(config_path, manager=manager).settings
    # Not opened for trading: these commands must work while a trader holds the ledger.
    with (
        open_ledger(ledger_url or settings.ledger.url, create=False) as ledger,
        notifications(settings.notifications, manager),  # a halt or a resume is announced
    ):
        try:
            yield TradingGuard(
                ledger=ledger,
                settings=settings.guard,
                calendar=trading_calendar(settings.exits.calendar),
                plugins=manager,
            )
        except (GuardError, LedgerError) as exc:
            raise click.ClickException(str(exc)) from None


def _standing_json(scope: Scope, standing: Standing) -> dict[str, Any]:
    hold = standing.hold
    return {
        "scope": str(scope),
        "state": standing.state.value,
        "since": hold.since.isoformat() if hold else None,
        "trigger": hold.trigger.value if hold else None,
        "why": hold.reason if hold else None,
        "by": hold.actor if hold else None,
        "until": hold.until.isoformat() if hold and hold.until else None,
    }


# What a halt or a reduce-only on a SQLite ledger cannot promise (docs: "Persistent and shared").
SQLITE_IN_FLIGHT = (
    "note: on a SQLite ledger an order that passed its guard check before this committed may "
    "still be going out; no order checked after it is (on PostgreSQL the command waits for those)"
)


def _in_flight_note(guard: TradingGuard, made: list[Transition]) -> str | None:
    """The note for a change that restricts trading on a ledger that cannot wait for the
    orders already past their guard check (SQLite: no shared send lock), else None."""
    restricts = any(t.to_state.severity > t.from_state.severity for t in made)
    return SQLITE_IN_FLIGHT if restricts and guard.ledger.backend == "sqlite" else None


def _report(guard: TradingGuard, scope: Scope, made: list[Transition], as_json: bool, verb: str) -> None:
    now = datetime.now(UTC)
    standing = guard.states().scope_state(scope, now)
    note = _in_flight_note(guard, made)
    if as_json:
        emit_json({**_standing_json(scope, standing), "transitions": unstructure(made), "note": note})
        return
    if not made:
        console.print(f"{scope}: nothing to {verb}", markup=False)
    for transition in made:
        console.print(transition.one_line(), markup=False, soft_wrap=True)
    console.print(f"{scope} is now {standing.state.value.upper()}", markup=False)
    if standing.hold is not None:
        console.print(f"  held by: {standing.hold.describe()}", markup=False, soft_wrap=True)
    if note is not None:
        console.print(note, markup=False, soft_wrap=True)


def _manual(reason: str) -> Callable[[F], F]:
    """The options every manual command takes: scope, reason, who, ledger, config, --json."""

    def decorate(fn: F) -> F:
        for option in (json_option, config_option, ledger_option, _by_option, _reason_option(reason), _scope_option):
            fn = option(fn)
        return fn

    return decorate


Act = Callable[["TradingGuard", Scope, str, datetime], list[Transition]]


def _run(options: dict[str, Any], verb: str, act: Act, *, force: bool = True) -> None:
    scope = _scope(options["scope_text"])
    with _guard(options["ledger_url"], options["config_path"]) as guard:
        if not force:
            _check_strategy(guard, scope)
        made = act(guard, scope, _actor(options["user"]), datetime.now(UTC))
        _report(guard, scope, made, options["as_json"], verb)


@click.command()
@_manual("halted by hand")
@click.option("--allow-exits", is_flag=True, help="Let exits out while halted (default: nothing but cancels).")
@_force_option
def halt(reason: str, allow_exits: bool, force: bool, **options: Any) -> None:
    """HALT trading on a scope: no order leaves but cancels (exits too, unless --allow-exits).

    A trader whose config sets [guard] allow_exits_when_halted lets its exits out anyway.
    """
    _run(
        options,
        "halt",
        lambda guard, scope, actor, at: guard.halt(scope, reason=reason, actor=actor, at=at, allow_exits=allow_exits),
        force=force,
    )


@click.command("reduce-only")
@_manual("reduce-only by hand")
@_force_option
def reduce_only(reason: str, force: bool, **options: Any) -> None:
    """Put a scope in REDUCE_ONLY: exits only, no new position and no add-on."""
    _run(
        options,
        "restrict",
        lambda guard, scope, actor, at: guard.reduce_only(scope, reason=reason, actor=actor, at=at),
        force=force,
    )


@click.command()
@_manual("resumed by hand")
@click.option("--force", is_flag=True, help="Resume a daily-loss halt before the next session opens.")
def resume(reason: str, force: bool, **options: Any) -> None:
    """Lift every hold on a scope, manual or triggered (a trigger still true places its hold again)."""
    _run(
        options,
        "resume",
        lambda guard, scope, actor, at: guard.resume(scope, reason=reason, actor=actor, at=at, force=force),
    )


def _hold_row(hold: Hold, now: datetime) -> list[str]:
    return [
        str(hold.scope),
        hold.state.value.upper(),
        hold.trigger.value,
        hold.since.strftime("%Y-%m-%d %H:%M"),
        hold.until.strftime("%Y-%m-%d %H:%M") if hold.until else "-",
        hold.actor,
        hold.reason + ("" if hold.in_force(now) else " (ended; cleared at the next observation)"),
    ]


@click.command("state")
@click.option("--scope", "scope_text", default=None, help="Only this scope (account, strategy:NAME, symbol:SYM).")
@click.option("--history", "history", type=click.IntRange(min=0), default=0, help="Also list the last N transitions.")
@ledger_option
@config_option
@json_option
def state(
    scope_text: str | None, history: int, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Show each scope's trading state: since when, why and by whom (a user or a trigger)."""
    only = _scope(scope_text) if scope_text is not None else None
    now = datetime.now(UTC)
    from tradekit.guard.control import read_trading_states

    with _guard(ledger_url, config_path) as guard, guard.ledger.reading() as tx:
        states = read_trading_states(tx)  # what is stored, not as one trader's settings read it
        recent = tx.trading_state_transitions(limit=history) if history else []
    scopes = [only] if only is not None else list(dict.fromkeys([ACCOUNT, *states.scopes]))
    if as_json:
        emit_json(
            {
                "as_of": now.isoformat(),
                "unreadable": states.unreadable,
                "scopes": [
                    {**_standing_json(s, states.scope_state(s, now)), "holds": unstructure(list(states.on_scope(s)))}
                    for s in scopes
                ],
                "history": unstructure(recent),
            }
        )
        return
    _print_states(states, scopes, now)
    if recent:
        console.print("recent transitions:")
        for transition in recent:
            console.print("  " + transition.one_line(), markup=False, soft_wrap=True)


def _print_states(states: TradingStates, scopes: list[Scope], now: datetime) -> None:
    if states.unreadable is not None:
        console.print(f"[red]the stored state cannot be read ({states.unreadable}): trading is REDUCE_ONLY[/]")
    table = Table(title="trading state", header_style="bold")
    for column in ("scope", "state", "since", "why", "by"):
        table.add_column(column)
    for scope in scopes:
        standing = states.scope_state(scope, now)
        hold = standing.hold
        table.add_row(
            str(scope),
            standing.state.value.upper(),
            hold.since.strftime("%Y-%m-%d %H:%M") if hold else "-",
            f"{hold.trigger.value}: {hold.reason}" if hold else "-",
            hold.actor if hold else "-",
        )
    console.print(table)
    holds = [h for scope in scopes for h in states.on_scope(scope)]
    if any(len(states.on_scope(s)) > 1 for s in scopes) or any(not h.in_force(now) for h in holds):
        detail = Table(title="holds (each trigger's, and the operator's)", header_style="bold")
        for column in ("scope", "state", "trigger", "since", "until", "by", "why"):
            detail.add_column(column)
        for hold in holds:
            detail.add_row(*_hold_row(hold, now))
        console.print(detail)


GUARD_COMMANDS: tuple[click.Command, ...] = (halt, reduce_only, resume, state)


def register_guard_commands(cli: click.Group) -> None:
    """Add the trading-state guard's commands to the ``tradekit`` group."""
    for command in GUARD_COMMANDS:
        cli.add_command(command)
