"""Connecting the CLI to a broker plugin: credentials from the environment, live only on request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Coroutine, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import click

from tradekit.broker.errors import BrokerError
from tradekit.broker.live import LIVE_ENV, live_requested
from tradekit.broker.protocol import Broker
from tradekit.cli.common import console, emit_json, open_ledger
from tradekit.config.settings import Settings, SettingsError
from tradekit.execution.clock import BrokerClock
from tradekit.execution.live import CycleReport, LiveTrader, current_prices, run_async
from tradekit.execution.pipeline import OrderPipeline
from tradekit.execution.session import Focus, startup
from tradekit.exits.calendar import trading_calendar
from tradekit.ledger.store import Ledger
from tradekit.notify.service import notifications
from tradekit.plugins import Plugins
from tradekit.reconcile.report import ReconcileReport
from tradekit.scanner.files import read_candidates
from tradekit.strategy.base import Strategy


class BrokerSession:
    """A broker, the ledger and a pipeline, opened together and closed together."""

    def __init__(self, broker: Broker, ledger: Ledger, pipeline: OrderPipeline, clock: BrokerClock) -> None:
        self.broker = broker
        self.ledger = ledger
        self.pipeline = pipeline
        self.clock = clock

    def startup(self) -> ReconcileReport:
        self.clock.sync()
        return startup(self.pipeline)

    def current_prices(self) -> dict[str, Decimal]:
        return current_prices(self.pipeline, ())

    def __enter__(self) -> BrokerSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.broker.close()
        self.ledger.close()


def broker_env(live: bool) -> dict[str, str]:
    """The environment a broker factory sees: ``TRADEKIT_LIVE=1`` only for ``--live`` or the
    user's own ``TRADEKIT_LIVE=1`` (any other spelling of it is an error naming it)."""
    try:
        live = live or live_requested(os.environ)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    env = {k: v for k, v in os.environ.items() if k != LIVE_ENV}
    if live:
        env[LIVE_ENV] = "1"
    return env


def connect(
    manager: Plugins,
    settings: Settings,
    broker_name: str,
    *,
    live: bool,
    ledger_url: str | None,
    create_ledger: bool = True,
) -> BrokerSession:
    """Build the broker (refusing a real-money endpoint without the live flag, before any request),
    then open the ledger (``create_ledger=False``: it must exist) and the pipeline."""
    specs = manager.brokers()
    spec = specs.get(broker_name)
    if spec is None:
        raise click.ClickException(f"unknown broker {broker_name!r}; installed: {', '.join(sorted(specs)) or 'none'}")
    if live and not spec.live_capable:
        raise click.ClickException(f"broker {broker_name!r} cannot trade live")
    env = broker_env(live)
    try:
        broker = spec.factory(settings, env)
    except (BrokerError, ValueError) as exc:
        raise click.ClickException(f"broker {broker_name!r}: {exc}") from None
    try:
        ledger = open_ledger(ledger_url or settings.ledger.url, create=create_ledger, for_trading=True)
    except BaseException:
        broker.close()
        raise
    # The broker's market clock is "now": sessions and windows are judged on the exchange's time.
    clock = BrokerClock(broker)
    pipeline = OrderPipeline(
        ledger=ledger,
        broker=broker,
        settings=settings,
        plugins=manager,
        calendar=trading_calendar(settings.exits.calendar),
        clock=clock,
    )
    return BrokerSession(broker, ledger, pipeline, clock)


def run_live(
    manager: Plugins,
    settings: Settings,
    strategy: type[Strategy],
    broker_name: str,
    symbols: Sequence[str],
    *,
    live: bool,
    once: bool,
    as_json: bool,
    interval_seconds: float = 60.0,
    ledger_url: str | None = None,
) -> None:
    focus, candidates = None, None
    if settings.scanner.enabled:
        focus, candidates = Focus(manager, settings.scanner), Path(settings.scanner.candidates_file)
        try:
            read_candidates(candidates)
        except (OSError, ValueError) as exc:
            if not symbols:
                raise click.ClickException(
                    f"live runs need symbols: --symbols AAPL,MSFT, [symbols] in the config, or the scanner's "
                    f"candidates ({exc})"
                ) from None
    elif not symbols:
        raise click.ClickException("live runs need symbols: --symbols AAPL,MSFT or [symbols] in the config")

    # Each cycle is shown as it ends. --once --json prints the one-element list it always
    # has; a run without an end prints one JSON object per line per cycle (JSON Lines).
    def show(report: CycleReport) -> None:
        if as_json:
            if not once:
                click.echo(json.dumps(cycle_json(report), default=str))
            return
        console.print(
            f"cycle: {report.events_applied} events, {report.exits} exits, {report.signals} signals, "
            f"{len(report.buys)} buys {report.note}",
            markup=False,
        )
        for b in report.buys:
            console.print("  " + (b.decision.one_line() if b.decision else b.note), markup=False)
        for symbol, error in report.strategy_errors.items():
            console.print(f"  strategy error on {symbol}: {error}", markup=False)

    with (
        connect(manager, settings, broker_name, live=live, ledger_url=ledger_url) as session,
        notifications(settings.notifications, manager),
    ):
        trader = LiveTrader(session.pipeline, strategy, symbols, focus=focus, candidates_file=candidates)
        try:
            reports = asyncio.run(
                _until_terminated(
                    run_async(trader, interval_seconds=interval_seconds, cycles=1 if once else None, on_cycle=show)
                )
            )
        except KeyboardInterrupt:
            console.print("stopped")
            return
        except BrokerError as exc:
            raise click.ClickException(f"broker {broker_name!r} unavailable at startup: {exc}") from None
    if as_json:
        emit_json([cycle_json(r) for r in reports])
    skipped = [r.note for r in reports if r.skipped]
    if skipped:
        # A cron job running --once must see that nothing was done.
        raise click.ClickException(skipped[0])


async def _until_terminated(run: Coroutine[Any, Any, list[CycleReport]]) -> list[CycleReport]:
    """Run ``run``; SIGTERM (what systemd, Docker and ``kill`` send) stops it as Ctrl-C does.

    Without this a SIGTERM ends the process wherever it is. The ledger is safe either way
    (every order's intent is committed before it is sent), but the stream would not be
    closed, nothing would say the trader stopped, and the exit status would be the signal's.
    The cycle in progress finishes first (it runs in a worker thread; asyncio waits for it).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, a thread)
        handled = False
    try:
        return await run
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


def cycle_json(report: CycleReport) -> dict[str, object]:
    return {
        "events_applied": report.events_applied,
        "exits": report.exits,
        "signals": report.signals,
        "buys": [b.decision.one_line() if b.decision else b.note for b in report.buys],
        "note": report.note,
        "skipped": report.skipped,
        "strategy_errors": report.strategy_errors,
    }
