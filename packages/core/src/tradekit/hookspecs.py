"""The tradekit hook specifications and the public ``hookimpl`` marker.

This module holds only the markers and the specs. Hooks are always called by keyword; a
spec may gain arguments in a later version but never loses or renames one. Each hook has a
section in ``docs/plugins.md`` (a test enforces it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from tradekit.broker.spec import BrokerSpec
    from tradekit.config.plugin_settings import PluginSettings
    from tradekit.data.fetch import DataSourceSpec
    from tradekit.decision.context import ScalingContext
    from tradekit.decision.plugin_reasons import PluginReason
    from tradekit.decision.verdict import BuyDecision, Check
    from tradekit.domain.market import Bar
    from tradekit.domain.orders import Fill
    from tradekit.exits.intent import ExitIntent
    from tradekit.guard.state import Transition
    from tradekit.ledger.records import OrderIntent
    from tradekit.reconcile.report import ReconcileFinding, ReconcileReport
    from tradekit.scanner.models import Candidate
    from tradekit.serve.pages import StatusPage
    from tradekit.sizing.result import SizingResult
    from tradekit.strategy.base import Strategy

PROJECT_NAME = "tradekit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def evaluate_buy(context: ScalingContext) -> list[Check] | None:
    """Judge one buy signal and return the checks this plugin ran.

    Every implementation is called (this is not a firstresult hook). The engine folds the
    checks of all plugins: any BLOCK makes the decision BLOCK, else any SKIP makes it SKIP,
    else it is ENTER_NEW (flat) or SCALE_IN (adding). Return None or an empty list when the
    plugin has nothing to say. An implementation that raises produces a BLOCK with reason
    ``RULE_ERROR``: a buy never goes out without a rule that was meant to judge it.

    :param context: Everything the decision may use, frozen: the signal, the strategy's
        policy, the account's limits, the ledger and broker positions, pending orders,
        unreconciled symbols, counters, tier exposure and the market snapshot.
    :return: The checks this plugin ran, each with its phase, outcome and reason.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def size_position(context: ScalingContext, decision: BuyDecision) -> SizingResult | None:
    """Decide how much to buy for an approved decision (ENTER_NEW or SCALE_IN).

    Stops at the first non-None result: plugins run before the built-in sizer (register a
    plugin with ``tryfirst=True`` to be sure), and the built-in fixed-fraction or tiered
    sizer answers when no plugin does. The execution pipeline still applies the account's
    order limits (allocation cap, tier cap, max position % of account, minimum notional) to
    whatever is returned.

    :param context: The same context the decision was made on.
    :param decision: The approved decision.
    :return: The quantity to buy and the price it was sized at, or None to defer.

    .. versionadded:: 0.1
    """


@hookspec
def on_reconcile(report: ReconcileReport) -> list[ReconcileFinding] | None:
    """See a finished reconciliation and add findings to it.

    Called after the reconciler compared the ledger with the broker. A plugin may return
    extra findings, e.g. ``UNRECONCILED`` for a symbol it knows must not be traded; those
    symbols are then blocked like any other unreconciled symbol. Every finding is written to
    the audit trail. A plugin that raises fails the reconciliation: the ledger is left as it
    was, and the error (a ``HookError``) names the plugin.

    :param report: The reconciler's report (findings, whether the broker could be read).
    :return: Additional findings, or None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def on_exit_intent(intent: ExitIntent) -> ExitIntent | None:
    """See an exit intent before it is persisted or executed, and optionally adjust it.

    Called when an exit is planned and again when it is about to be executed. Stops at the
    first non-None result, which replaces the intent (e.g. a different limit price). The
    order type rule still holds: planned exits are limit orders, only immediate ones market.

    :param intent: The intent as tradekit would persist or execute it.
    :return: An adjusted intent, or None to leave it unchanged.

    .. versionadded:: 0.1
    """


@hookspec
def on_trading_state(transition: Transition) -> None:
    """See every change of the trading-state guard (a halt, a reduce-only, a resume, a
    cooldown that ended), after it is committed to the ledger.

    Called in the process that made the change: the trader for automatic triggers, the
    command line for ``tradekit halt / reduce-only / resume``. Every implementation is
    called, each on its own: one that raises is logged and the others are still called; the
    transition stands either way. Do not block here for long: the trader waits.

    :param transition: The change: its scope, trigger, the hold's state before and after,
        why, by whom (``user:NAME`` or ``trigger:NAME``), and until when.

    .. versionadded:: 0.2
    """


@hookspec
def on_fill(fill: Fill, intent: OrderIntent) -> None:
    """See a fill of one of tradekit's orders, after it is committed to the ledger and applied
    to its position.

    Called once per execution (a fill seen again is not announced again), in the process
    that recorded it: a first entry, an add-on or an exit, as ``intent.purpose`` says. Every
    implementation is called, each on its own: one that raises is logged naming it and the
    others are still called; the fill stands either way. Do not block here: the trader
    waits (``tradekit.notify`` hands messages to a worker thread).

    :param fill: The execution: symbol, side, quantity, price, commission, time.
    :param intent: The order intent it filled (purpose, strategy, the decision behind it).

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def scan_candidates(bars: Mapping[str, Sequence[Bar]], as_of: datetime, top_n: int) -> list[Candidate] | None:
    """Rank symbols for the scanner and return the best ``top_n`` candidates.

    Stops at the first non-None result; the built-in ranking (20-day momentum) answers last.
    Each candidate carries its scan price and time, so signals built from it go through the
    usual freshness checks (signal age, overnight gap).

    :param bars: Daily bars per symbol, oldest first.
    :param as_of: Rank with the bars up to this moment only.
    :param top_n: How many candidates to return at most.
    :return: Candidates, best first, or None to defer.

    .. versionadded:: 0.1
    """


@hookspec
def register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    """Register strategy classes by calling ``register(StrategyClass)`` for each.

    Strategy names must be unique across all plugins; a duplicate is an error at load.

    :param register: Callback that records one ``Strategy`` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def register_brokers(register: Callable[[BrokerSpec], None]) -> None:
    """Register brokers by calling ``register(BrokerSpec(...))`` for each.

    Broker names must be unique across all plugins; a duplicate is an error at load.

    :param register: Callback that records one ``BrokerSpec``.

    .. versionadded:: 0.1
    """


@hookspec
def register_settings(register: Callable[[PluginSettings], None]) -> None:
    """Declare the ``[plugins.<name>]`` table this plugin reads, by calling ``register(PluginSettings(...))``.

    tradekit structures the table into the declared attrs class when the configuration
    loads, so an unknown key, a wrong type or a bad value is an error at ``tradekit config
    check``, and a ``[plugins.<name>]`` section that no loaded plugin declares is one too.
    Table names must be unique across all plugins; a duplicate is an error at load.

    :param register: Callback that records one ``PluginSettings``.

    .. versionadded:: 0.2
    """


@hookspec
def register_data_sources(register: Callable[[DataSourceSpec], None]) -> None:
    """Offer market-data sources to ``tradekit data fetch`` by calling ``register(DataSourceSpec(...))``.

    The spec's factory receives the settings and the environment (credentials come from the
    environment only) and returns a ``BarSource``. Names must be unique across all plugins.

    :param register: Callback that records one ``DataSourceSpec``.

    .. versionadded:: 0.2
    """


@hookspec
def register_reasons(register: Callable[[PluginReason], None]) -> None:
    """Declare the plugin's own reason codes by calling ``register(PluginReason(...))`` for each.

    A rule plugin skips or blocks buys with these codes rather than borrowing a built-in
    ``ReasonCode``, so its decisions are stored, counted and explained as its own. A code's
    namespace (``PluginReason.plugin``) must be the plugin's registered name (its entry-point
    name); a code declared twice is an error at load.

    :param register: Callback that records one ``PluginReason``.

    .. versionadded:: 0.2
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``tradekit`` command-line interface.

    :param cli: The top-level click group; call ``cli.add_command`` or use ``@cli.command``.

    .. versionadded:: 0.1
    """


@hookspec
def register_status_pages(register: Callable[[StatusPage], None]) -> None:
    """Add pages to ``tradekit serve`` by calling ``register(StatusPage(...))`` for each.

    A page gives data, never HTML: its ``read`` returns a table and JSON-ready data, which
    the server renders read-only at ``/pages/NAME`` and ``/api/pages/NAME``. Page names must
    be unique across all plugins; a duplicate is an error at load.

    :param register: Callback that records one ``StatusPage``.

    .. versionadded:: 0.2
    """
