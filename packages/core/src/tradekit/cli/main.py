"""``tradekit``: run strategies, inspect the ledger, reconcile, explain decisions.

The heavy parts (SQLAlchemy, the decision engine, the plugins, pandas through the exchange
calendars) are imported by the commands that use them, so ``tradekit --version`` and
``--help`` start without them; plugins' commands are loaded when they are asked for.
"""

from __future__ import annotations

import functools
import logging
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradekit import __version__, redaction
from tradekit.cli.common import (
    command_line,
    config_option,
    console,
    emit_json,
    err_console,
    json_option,
    ledger_option,
    load,
    open_ledger,
    plugins,
    redact_output,
    setup_logging,
)
from tradekit.cli.config_init import config_init
from tradekit.cli.data import data_group
from tradekit.cli.guard import register_guard_commands
from tradekit.cli.optimize import optimize
from tradekit.cli.serve import serve
from tradekit.cli.trades import trades
from tradekit.cli.types import DECIMAL

if TYPE_CHECKING:
    from tradekit.broker.paper import PaperBrokerConfig
    from tradekit.config.settings import Settings
    from tradekit.data import BarData
    from tradekit.plugins import Plugins
    from tradekit.strategy.base import Strategy

log = logging.getLogger(__name__)

DEFAULT_STRATEGY = "pyramid"


class TradekitGroup(click.Group):
    """The top-level group: plugins' commands loaded on demand, and no traceback for the user.

    An error nothing else turned into a message (a bug, or a library failing in a way
    tradekit did not foresee) ends the command with one line, secrets masked, and the
    traceback in the log at DEBUG (``TRADEKIT_LOG_LEVEL=DEBUG``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands: dict[str, click.Command] | None = None

    def _plugins_commands(self) -> dict[str, click.Command]:
        if self._plugin_commands is None:
            found = click.Group()
            try:
                plugins().register_commands(found)
            except (click.ClickException, Exception) as exc:  # noqa: BLE001 - a broken plugin must not hide the built-ins
                message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
                err_console.print(f"plugin commands unavailable: {redaction.redact(message)}", markup=False)
            self._plugin_commands = {n: c for n, c in found.commands.items() if n not in self.commands}
        return self._plugin_commands

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._plugins_commands().get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins_commands()})

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            log.debug("unexpected error", exc_info=exc)
            raise click.ClickException(
                f"unexpected error: {redaction.redact_exception(exc)} (a bug in tradekit or a plugin: please "
                "report it; TRADEKIT_LOG_LEVEL=DEBUG logs the traceback)"
            ) from None


@click.group(cls=TradekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradekit")
def cli() -> None:
    """Safe multi-entry position scaling for automated trading."""
    redact_output()
    setup_logging()


def main() -> None:
    cli()


# --- run -------------------------------------------------------------------------------------


def _pick_strategy(manager: Plugins, name: str | None) -> type[Strategy]:
    available = manager.strategies()
    if not available:
        raise click.ClickException(
            "no strategies are installed; install tradekit-strategies-examples or a strategy plugin"
        )
    wanted = name or (DEFAULT_STRATEGY if DEFAULT_STRATEGY in available else sorted(available)[0])
    if wanted not in available:
        raise click.ClickException(f"unknown strategy {wanted!r}; installed: {', '.join(sorted(available))}")
    return available[wanted]


def _bars(data: tuple[Path, ...], symbols: tuple[str, ...], start: datetime | None, end: datetime | None) -> BarData:
    from tradekit.data import BarData, DataError, load_bar_data

    try:
        loaded = load_bar_data(symbols or None, data)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    trimmed = {
        s: [
            b
            for b in series
            if (start is None or b.time >= start) and (end is None or b.time <= end + timedelta(days=1))
        ]
        for s, series in loaded.bars.items()
    }
    trimmed = {s: series for s, series in trimmed.items() if series}
    if not trimmed:
        raise click.ClickException("no bars in the chosen period")
    return BarData(bars=trimmed, source=loaded.source)


_DATA_HELP = (
    "Daily bars: a file or a directory; repeat for several. tradekit CSV (symbol,date,open,high,low,close,volume), "
    "Yahoo-style CSV (Date,Open,High,Low,Close,Adj Close,Volume; one file per symbol, named after it) or "
    "Parquet (default: the shipped bars)."
)


@cli.command()
@click.option("--strategy", "strategy_name", default=None, help=f"Strategy name (default: {DEFAULT_STRATEGY}).")
@click.option("--broker", "broker_name", default="paper", show_default=True, help="Broker plugin to trade through.")
@click.option("--live", is_flag=True, help="Trade real money (needs a live-capable broker and its credentials).")
@click.option("--symbols", default="", help="Comma-separated symbols (default: all shipped, or [symbols]).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day to replay.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day to replay.")
@click.option("--data", type=click.Path(exists=True, path_type=Path), multiple=True, help=_DATA_HELP)
@click.option("--cash", type=DECIMAL, default=None, help="Paper: starting cash (default: [plugins.paper] or 100000).")
@click.option(
    "--commission",
    "commissions",
    multiple=True,
    help="Paper: AMOUNT per order, AMOUNT/share or PERCENT% of notional; repeat to combine.",
)
@click.option("--slippage", type=DECIMAL, default=None, help="Paper: slippage in basis points against each fill.")
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("tradekit-run"),
    show_default=True,
    help="Where paper runs write their ledger and chart.",
)
@click.option("--no-chart", is_flag=True, help="Skip the chart.")
@click.option(
    "--ledger",
    "ledger_url",
    default=None,
    help="The ledger (URL or SQLite path). Paper: a resumable run there (a killed run continues, a finished "
    "one is not run again; charts beside it). Live: the account's ledger. Default: the config's [ledger] url "
    "when set, else (paper) a new tradekit-run/ directory.",
)
@click.option(
    "--checkpoint-every",
    "checkpoint_seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Paper runs with --ledger: seconds between checkpoints (what a kill may cost to replay).",
)
@click.option("--once", is_flag=True, help="Live brokers: run one cycle and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=60.0,
    show_default=True,
    help="Live brokers: seconds between cycles (a daily strategy needs no less than ~30; sub-second "
    "intervals are for a local emulator).",
)
@config_option
@json_option
def run(
    strategy_name: str | None,
    broker_name: str,
    live: bool,
    symbols: str,
    start: datetime | None,
    end: datetime | None,
    data: tuple[Path, ...],
    cash: Decimal | None,
    commissions: tuple[str, ...],
    slippage: Decimal | None,
    out_root: Path,
    no_chart: bool,
    ledger_url: str | None,
    checkpoint_seconds: float,
    once: bool,
    interval: float,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Run a strategy: on the paper broker over shipped real bars by default."""
    loaded = load(config_path)
    manager = plugins()
    strategy = _pick_strategy(manager, strategy_name)
    chosen = tuple(s.strip().upper() for s in symbols.split(",") if s.strip()) or loaded.settings.symbols
    if broker_name != "paper":
        from tradekit.cli.live import run_live

        run_live(
            manager,
            loaded.settings,
            strategy,
            broker_name,
            chosen,
            live=live,
            once=once,
            as_json=as_json,
            interval_seconds=interval,
            ledger_url=ledger_url,
        )
        return
    if live:
        raise click.ClickException("--live needs a live broker (e.g. --broker alpaca); the paper broker is simulated")
    from tradekit.broker.paper_plugin import load_paper_settings
    from tradekit.config.settings import SettingsError

    try:
        paper = load_paper_settings(loaded.settings).with_costs(
            cash=cash, commissions=commissions, slippage_bps=slippage
        )
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    ledger_path = _paper_ledger(ledger_url, loaded.settings)
    _run_paper(
        loaded.settings,
        manager,
        strategy,
        _bars(data, chosen, _as_utc(start), _as_utc(end)),
        _PaperOutput(out_root, ledger_path, checkpoint_seconds, pictures=not no_chart, as_json=as_json),
        paper.broker_config(),
    )


@attrs.frozen
class _PaperOutput:
    """Where a paper run goes: a new directory under ``root``, or a resumable ledger."""

    root: Path
    ledger: Path | None
    checkpoint_seconds: float
    pictures: bool
    as_json: bool


def _paper_ledger(ledger_url: str | None, settings: Settings) -> Path | None:
    """The resumable paper run's ledger file: --ledger, else the config's [ledger] url when it
    was set (the default one is for live trading), else none (a new run directory)."""
    from tradekit.config.settings import LedgerSettings
    from tradekit.ledger.store import ledger_url as parse_ledger_url

    url = ledger_url or (settings.ledger.url if settings.ledger.url != LedgerSettings().url else None)
    if url is None:
        return None
    parsed = parse_ledger_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise click.ClickException(
            f"a paper run's ledger is a SQLite file (its paper account is kept beside it), not {url!r}"
        )
    path = Path(parsed.database)
    if not path.parent.is_dir():
        raise click.ClickException(f"ledger directory {path.parent} does not exist")
    return path


def _new_run_dir(root: Path, name: str) -> Path:
    """A directory for a new run, named by strategy and time; two runs in one second get two."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    candidate, n = root / f"{name}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = root / f"{name}-{stamp}-{n}"
    return candidate


def _as_utc(day: datetime | None) -> datetime | None:
    return day.replace(tzinfo=UTC) if day is not None else None


def _run_paper(
    settings: Settings,
    manager: Plugins,
    strategy: type[Strategy],
    loaded: BarData,
    output: _PaperOutput,
    broker_config: PaperBrokerConfig,
) -> None:
    from tradekit.broker.paper_plugin import describe_costs
    from tradekit.execution.paper_run import run_paper_replay
    from tradekit.ledger import LedgerError
    from tradekit.serialization import unstructure

    bars, costs = loaded.bars, describe_costs(broker_config)
    notes = [("data", loaded.source), ("costs", costs)]
    total = sum(len(b) for b in bars.values())
    out_dir = output.ledger.parent if output.ledger is not None else _new_run_dir(output.root, strategy.name)
    replay = functools.partial(
        run_paper_replay,
        strategy=strategy,
        settings=settings,
        plugins=manager,
        bars=bars,
        out_dir=out_dir,
        chart=output.pictures,
        broker_config=broker_config,
        notes=notes,
        ledger_path=output.ledger,
        checkpoint_seconds=output.checkpoint_seconds,
    )
    try:
        if output.as_json:
            paper = replay()
        else:
            console.print(
                f"[bold]tradekit run[/] strategy [cyan]{strategy.name}[/] on the paper broker: "
                f"{total:,} daily bars of {', '.join(sorted(bars))} ({loaded.source})",
                soft_wrap=True,
            )
            console.print(f"costs: {costs}", soft_wrap=True)
            with Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task("replaying bars", total=total)
                paper = replay(progress=lambda n: progress.advance(task, n))
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None
    if output.ledger is None:
        latest = output.root / "latest"
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(out_dir.name)
    if output.as_json:
        emit_json(
            {
                "strategy": strategy.name,
                "started": paper.started,
                "bars": paper.result.bars,
                "ledger": paper.ledger_url,
                "chart": str(paper.chart) if paper.chart else None,
                "report": str(paper.report) if paper.report else None,
                "data_source": loaded.source,
                "costs": unstructure(broker_config),
                "statistics": paper.statistics.as_json(),
                "signals": dict(paper.result.tally.signals),
                "exits_planned": paper.result.tally.exits_planned,
                "exits_expired": paper.result.tally.exits_expired,
                "exits_rolled": paper.result.tally.exits_rolled,
                **paper.summary.as_json(),
            }
        )
        return
    if paper.started != "new":
        console.print(
            "this run continued from its last checkpoint"
            if paper.started == "resumed"
            else "this run had already finished: its results, unchanged"
        )
    _print_summary(paper)


def _print_summary(paper: Any) -> None:
    from tradekit.reporting.terminal import pnl_rows, statistics_rows, symbol_table

    s, r = paper.summary, paper.result
    tally = r.tally
    table = Table(title=f"run summary: {r.strategy}", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("bars replayed", f"{r.bars:,} ({r.days:,} days)")
    if r.bars_without_session:
        table.add_row("bars not traded", f"{r.bars_without_session:,} on days with no exchange session")
    table.add_row("signals", ", ".join(f"{k} {v:,}" for k, v in sorted(tally.signals.items())) or "none")
    table.add_row("orders", ", ".join(f"{k} {v}" for k, v in sorted(s.orders_by_purpose.items())) or "none")
    table.add_row("fills", str(s.fills))
    table.add_row(
        "positions by entry count",
        ", ".join(f"{k} entr{'y' if k == 1 else 'ies'}: {v}" for k, v in sorted(s.positions_by_entry_count.items())),
    )
    table.add_row("round trips / still open", f"{s.round_trips} / {s.open_positions}")
    table.add_row(
        "exits planned / rolled to a later window / expired unexecuted",
        f"{tally.exits_planned} / {tally.exits_rolled} / {tally.exits_expired}",
    )
    table.add_row("buys blocked by the guard", str(s.guard_blocked_buys))
    table.add_row("starting equity", f"{s.starting_equity:,.2f}")
    table.add_row("final equity", f"{s.final_equity:,.2f}")
    table.add_row("P&L (realized + open)", f"{s.pnl:+,.2f} ({s.pnl * 100 / s.starting_equity:+.2f}%)")
    for what, value in pnl_rows(
        s.realized_pnl, s.open_pnl, unknown_closed=s.unknown_pnl_closed, unknown_open=s.unknown_pnl_open
    ):
        table.add_row(what, value)
    for what, value in statistics_rows(paper.statistics, pnl=False):
        table.add_row(what, value)
    console.print(table)
    console.print(symbol_table(paper.statistics))
    reasons = Table(title="buy decisions by action and reason", header_style="bold")
    reasons.add_column("action")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for (action, reason), count in sorted(s.decisions_by_reason.items(), key=lambda kv: (kv[0][0], -kv[1])):
        reasons.add_row(action.upper(), reason or "-", str(count))
    console.print(reasons)
    if paper.chart:
        console.print(f"chart:  {paper.chart}")
    if paper.report:
        console.print(f"report: {paper.report}")
    console.print(f"ledger: {paper.ledger_url}")
    console.print("next:", soft_wrap=True)
    for command in (["trades"], ["decisions"], ["positions", "--status", "all"], ["intents", "list"]):
        console.print(f"  {command_line(*command, '--ledger', paper.ledger_url)}", soft_wrap=True, markup=False)


# --- ledger views -----------------------------------------------------------------------------

cli.add_command(trades)
cli.add_command(data_group)
cli.add_command(serve)
cli.add_command(optimize)


def _ledger_url(settings: Settings, url: str | None) -> str:
    return url or settings.ledger.url


@cli.command()
@click.option("--status", type=click.Choice(["open", "all"]), default="open", show_default=True)
@ledger_option
@config_option
@json_option
def positions(status: str, ledger_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """List positions with their entries, average price and next scale-in trigger."""
    from tradekit.reporting.scaling import next_scale_in
    from tradekit.reporting.trades import plain_number

    manager = plugins()
    settings = load(config_path, manager=manager).settings
    strategies = manager.strategies()
    with open_ledger(_ledger_url(settings, ledger_url), create=False) as ledger, ledger.reading() as tx:
        found = list(tx.open_positions().values()) if status == "open" else tx.position_history()
    rows: list[dict[str, Any]] = []
    for pos in sorted(found, key=lambda p: p.symbol):
        owner = strategies.get(pos.strategy) if pos.strategy else None
        rows.append(
            {
                "symbol": pos.symbol,
                "strategy": pos.strategy,
                "open": pos.is_open,
                "qty": plain_number(pos.qty),
                "entry_count": pos.entry_count,
                "average_price": str(round(pos.average_price, 6)),
                "last_entry_price": str(pos.last_entry_price),
                "last_entry_time": pos.last_entry_time.isoformat(),
                "backfilled": pos.is_backfilled,
                "entries": [
                    {"time": e.time.isoformat(), "price": str(e.price), "qty": str(e.qty), "origin": e.origin.value}
                    for e in pos.entries
                ],
                "next_scale_in": next_scale_in(pos, owner, settings) if pos.is_open else None,
            }
        )
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"positions ({status})", header_style="bold")
    for col in ("symbol", "strategy", "qty", "entries", "avg price", "last entry", "next scale-in"):
        table.add_column(col)
    for row in rows:
        nxt = row["next_scale_in"]
        trigger = (
            "-"
            if nxt is None
            else (
                f"#{nxt['entry']}/{nxt['max_entries']} at {nxt['price']} after {nxt['not_before'][:16]}"
                if nxt["allowed"]
                else nxt["why"]
            )
        )
        table.add_row(
            row["symbol"],
            row["strategy"] or "(backfilled)",
            row["qty"],
            str(row["entry_count"]),
            row["average_price"],
            f"{row['last_entry_price']} @ {row['last_entry_time'][:10]}",
            trigger,
        )
    console.print(table)


@cli.command()
@click.option("--symbol", default=None)
@click.option("--action", type=click.Choice(["enter_new", "scale_in", "skip", "block"]), default=None)
@click.option("--limit", default=30, show_default=True)
@ledger_option
@config_option
@json_option
def decisions(
    symbol: str | None, action: str | None, limit: int, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """List recent buy decisions (newest first)."""
    settings = load(config_path).settings
    where = _ledger_url(settings, ledger_url)
    from tradekit.ledger.records import describe_outcome
    from tradekit.serialization import unstructure

    with open_ledger(where, create=False) as ledger, ledger.reading() as tx:
        found = tx.decisions(symbol=symbol, action=action, limit=limit)
        outcomes = tx.decision_outcomes([d.decision_id for d in found])
    if as_json:
        emit_json(
            [
                {
                    "decision_id": d.decision_id,
                    "symbol": d.symbol,
                    "strategy": d.strategy,
                    "action": d.action,
                    "reasons": list(d.reasons),
                    "evaluated_at": d.evaluated_at.isoformat(),
                    "summary": d.summary,
                    "orders": [unstructure(o) for o in outcomes.get(d.decision_id, [])],
                }
                for d in found
            ]
        )
        return
    table = Table(title="buy decisions", header_style="bold")
    table.add_column("id", no_wrap=True)
    for col in ("time", "symbol", "action", "reasons", "what became of it"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.decision_id,
            d.evaluated_at.strftime("%Y-%m-%d %H:%M"),
            d.symbol,
            d.action.upper(),
            ", ".join(d.reasons) or "-",
            describe_outcome(outcomes.get(d.decision_id, [])) or "-",
        )
    console.print(table)
    if found:
        hint = command_line("explain", found[0].decision_id, "--ledger", where)
        console.print(f"explain one: {hint}", markup=False, soft_wrap=True)


@cli.command()
@click.argument("decision_id")
@ledger_option
@config_option
@json_option
def explain(decision_id: str, ledger_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """Show the full trace of one decision: every check, in the order it was judged."""
    from tradekit.guard.audit import blocking_transition
    from tradekit.serialization import unstructure

    settings = load(config_path).settings
    with open_ledger(_ledger_url(settings, ledger_url), create=False) as ledger, ledger.reading() as tx:
        stored = tx.decision(decision_id)
        cause = blocking_transition(tx, stored) if stored is not None else None  # trading-state guard
        orders = tx.decision_outcomes([decision_id]).get(decision_id, [])
    if stored is None:
        raise click.ClickException(f"no decision {decision_id} in the ledger")
    if as_json:
        emit_json(
            {
                **stored.document(),
                "trading_state_transition": unstructure(cause),
                "orders": [unstructure(o) for o in orders],
            }
        )
        return
    from tradekit.decision.plugin_reasons import PluginReason

    decision = stored.decision()
    console.print(decision.explain(), markup=False, soft_wrap=True)
    if cause is not None:
        console.print(f"  blocked by the trading-state transition: {cause.one_line()}", markup=False, soft_wrap=True)
    if stored.action in ("enter_new", "scale_in"):
        console.print("what became of it:", markup=False)
        for order in orders or ():
            console.print(f"  {order.describe()}", markup=False, soft_wrap=True)
        if not orders:
            console.print("  no order was recorded for it", markup=False)
    declared = plugins().reasons() if any(isinstance(r, PluginReason) for r in decision.reasons) else {}
    for reason in decision.reasons:
        if reason in declared and declared[reason].description:
            console.print(f"  {reason}: {declared[reason].description}", markup=False, soft_wrap=True)


def _intents_options(fn: Any) -> Any:
    # Accepted both before and after the sub-command: `tradekit intents --ledger L list` and
    # `tradekit intents list --ledger L` (what `tradekit run` prints) mean the same.
    return ledger_option(config_option(json_option(fn)))


def _intents_context(
    ctx: click.Context, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> dict[str, Any]:
    group = (ctx.parent.obj if ctx.parent is not None else None) or {}
    return {
        "ledger_url": ledger_url or group.get("ledger_url"),
        "config_path": config_path or group.get("config_path"),
        "as_json": as_json or bool(group.get("as_json")),
    }


@cli.group(invoke_without_command=True)
@_intents_options
@click.pass_context
def intents(ctx: click.Context, ledger_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """List exit intents (planned -> submitted -> executed / cancelled / expired)."""
    ctx.ensure_object(dict)
    ctx.obj.update(ledger_url=ledger_url, config_path=config_path, as_json=as_json)
    if ctx.invoked_subcommand is None:
        _list_intents(ledger_url, config_path, as_json, None)


def _exit_states() -> list[str]:
    from tradekit.exits.intent import ExitState

    return [s.value for s in ExitState]


@intents.command("list")
@click.option("--state", type=click.Choice(_exit_states()), default=None)
@_intents_options
@click.pass_context
def list_intents(
    ctx: click.Context, state: str | None, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """List exit intents."""
    opts = _intents_context(ctx, ledger_url, config_path, as_json)
    _list_intents(opts["ledger_url"], opts["config_path"], opts["as_json"], state)


def _list_intents(ledger_url: str | None, config_path: Path | None, as_json: bool, state: str | None) -> None:
    from tradekit.exits.intent import ExitState
    from tradekit.serialization import unstructure

    settings = load(config_path).settings
    with open_ledger(_ledger_url(settings, ledger_url), create=False) as ledger, ledger.reading() as tx:
        found = tx.exit_intents(states=[ExitState(state)] if state else None)
    if as_json:
        emit_json([unstructure(i) for i in found])
        return
    table = Table(title="exit intents", header_style="bold")
    for col in ("id", "symbol", "qty", "state", "type", "decided", "window", "note"):
        table.add_column(col)
    for i in found:
        window = (
            f"{i.window_opens_at:%Y-%m-%d %H:%M}-{i.window_closes_at:%H:%M}"
            if i.window_opens_at and i.window_closes_at
            else "now"
        )
        table.add_row(
            i.intent_id,
            i.symbol,
            str(i.qty),
            i.state.value,
            i.order_type.value,
            f"{i.decided_at:%Y-%m-%d %H:%M}",
            window,
            i.note,
        )
    console.print(table)


@intents.command("execute")
@click.option("--broker", "broker_name", required=True, help="Broker to execute through.")
@click.option("--live", is_flag=True, help="Allow a live (real-money) account (or TRADEKIT_LIVE=1).")
@_intents_options
@click.pass_context
def execute_intents(
    ctx: click.Context, broker_name: str, live: bool, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Execute planned exits whose window is open now (idempotent: twice executes once)."""
    from tradekit.cli.live import connect

    opts = _intents_context(ctx, ledger_url, config_path, as_json)
    manager = plugins()
    settings = load(opts["config_path"], manager=manager).settings
    session = connect(manager, settings, broker_name, live=live, ledger_url=opts["ledger_url"], create_ledger=False)
    with session:
        _require_broker(session.broker, broker_name)
        prices = session.current_prices()
        outcomes = session.pipeline.execute_due_exits(prices)
        session.pipeline.apply_events()
    rows = [
        {
            "intent": o.intent.intent_id if o.intent else None,
            "state": o.intent.state.value if o.intent else None,
            "note": o.note,
        }
        for o in outcomes
    ]
    if opts["as_json"]:
        emit_json(rows)
    else:
        for row in rows:
            console.print(f"{row['intent']}: {row['state']} {row['note']}", markup=False)
        if not rows:
            console.print("no planned exit is due")


def _require_broker(broker: Any, broker_name: str) -> None:
    """Read the account once: an unreachable or unreadable broker ends the command with one line."""
    from tradekit.broker.errors import BrokerError

    try:
        broker.get_account()
    except BrokerError as exc:
        raise click.ClickException(f"broker {broker_name!r} cannot be used: {redaction.redact(str(exc))}") from None


@cli.command()
@click.option("--broker", "broker_name", default=None, help="Broker to reconcile against.")
@click.option("--live", is_flag=True, help="Allow a live (real-money) account.")
@ledger_option
@config_option
@json_option
def reconcile(
    broker_name: str | None, live: bool, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Reconcile the ledger with the broker (the broker is the source of truth).

    Exits non-zero when the broker cannot be read (a cron job must see it): nothing changes.
    """
    from tradekit.cli.live import connect
    from tradekit.serialization import unstructure

    if broker_name is None:
        raise click.ClickException("choose the broker to reconcile against: --broker NAME")
    manager = plugins()
    settings = load(config_path, manager=manager).settings
    with connect(manager, settings, broker_name, live=live, ledger_url=ledger_url, create_ledger=False) as session:
        _require_broker(session.broker, broker_name)
        report = session.startup()
    if not report.broker_ok:
        raise click.ClickException(
            f"reconciliation against {report.broker} failed, nothing changed: {redaction.redact(str(report.error))}"
        )
    data = unstructure(report)
    data["unreconciled_broker_symbols"] = sorted(report.unreconciled_broker_symbols)
    if as_json:
        emit_json(data)
        return
    console.print(f"reconciliation against {report.broker}: ok", markup=False)
    table = Table(header_style="bold")
    for col in ("symbol", "action", "broker qty", "ledger qty", "price", "reason"):
        table.add_column(col)
    for f in report.findings:
        table.add_row(f.symbol, f.action.value.upper(), str(f.broker_qty), str(f.ledger_qty), str(f.price), f.reason)
    console.print(table)
    blocked = sorted(report.unreconciled_broker_symbols)
    console.print(f"buys blocked on: {', '.join(blocked) if blocked else 'nothing'}")


@cli.group()
def config() -> None:
    """Configuration commands."""


config.add_command(config_init)


@config.command("check")
@config_option
@click.option("--toml", "as_toml", is_flag=True, help="Print the effective settings as TOML (a valid config file).")
@json_option
def config_check(config_path: Path | None, as_toml: bool, as_json: bool) -> None:
    """Validate the configuration (plugin tables included) and show the effective settings and warnings.

    Credentials never appear: keys named like one, URL passwords and any secret of the
    environment are shown as <redacted>.
    """
    import tomli_w

    from tradekit.serialization import unstructure

    if as_toml and as_json:
        raise click.UsageError("choose one of --toml and --json")
    loaded = load(config_path)
    data = redaction.redact_settings(unstructure(loaded.settings))
    if as_json:
        emit_json(
            {
                "source": str(loaded.source) if loaded.source else None,
                "warnings": list(loaded.warnings),
                "settings": data,
            }
        )
        return
    if as_toml:
        click.echo(tomli_w.dumps(_without_nulls(data)), nl=False)
        return
    console.print(
        f"configuration OK ({loaded.source or 'built-in defaults'}"
        f"{' + TRADEKIT_* environment' if any(k.startswith('TRADEKIT_') for k in os.environ) else ''})",
        markup=False,
    )
    console.print_json(data=data)


def _without_nulls(data: Any) -> Any:
    # TOML has no null: an unset optional setting is simply left out.
    if isinstance(data, dict):
        return {k: _without_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_without_nulls(v) for v in data]
    return data


@cli.group("ledger")
def ledger_group() -> None:
    """Ledger commands."""


@ledger_group.command("init")
@click.argument("ledger_url", metavar="LEDGER", required=False)
@config_option
def ledger_init(ledger_url: str | None, config_path: Path | None) -> None:
    """Create a new, empty ledger at LEDGER (a file path or URL; default: the config's [ledger] url).

    Refuses a location that already holds a ledger or any file: nothing is ever replaced.
    """
    from tradekit.ledger import Ledger, LedgerError, LedgerNotFoundError
    from tradekit.ledger import ledger_url as parse_ledger_url

    settings = load(config_path).settings
    where = _ledger_url(settings, ledger_url)
    try:
        parsed = parse_ledger_url(where)
        database = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if database and database != ":memory:" and Path(database).exists():
            raise click.ClickException(f"{database} already exists; nothing was changed (a ledger is never replaced)")
        if database is None:
            try:
                Ledger.open(where, create=False).close()
            except LedgerNotFoundError:
                pass
            else:
                raise click.ClickException(f"{where} already holds a ledger; nothing was changed")
        with Ledger.open(where, create=True) as created:
            console.print(f"created an empty ledger: {created.url}", markup=False)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--top", "top_n", type=int, default=None, help="How many candidates (default: [scanner] top_n).")
@click.option(
    "--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Scan as of this day (default: last bar)."
)
@click.option("--data", type=click.Path(exists=True, path_type=Path), multiple=True, help=_DATA_HELP)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Candidates file (default: [scanner] candidates_file).",
)
@config_option
@json_option
def scan(
    top_n: int | None,
    as_of: datetime | None,
    data: tuple[Path, ...],
    output: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Rank symbols and write the candidates file (top N plus baseline symbols)."""
    from tradekit.scanner.scan import run_scan
    from tradekit.serialization import unstructure

    manager = plugins()
    settings = load(config_path, manager=manager).settings
    bars = _bars(data, settings.symbols, None, None).bars
    moment = as_of.replace(tzinfo=UTC) + timedelta(days=1) if as_of else None
    path = output or Path(settings.scanner.candidates_file)
    result = run_scan(manager, bars, settings, path, top_n=top_n, as_of=moment)
    if as_json:
        emit_json(unstructure(result))
        return
    table = Table(title=f"candidates as of {result.scanned_at:%Y-%m-%d}", header_style="bold")
    for col in ("symbol", "score", "scan price", "why"):
        table.add_column(col)
    for c in result.candidates:
        table.add_row(c.symbol, f"{c.score:.4f}", str(c.scan_price), c.reason)
    console.print(table)
    console.print(f"baseline: {', '.join(result.baseline)}  ->  {path}")


@cli.command("plugins")
@json_option
def list_plugins(as_json: bool) -> None:
    """List loaded plugins, strategies and brokers."""
    manager = plugins()
    data: dict[str, Any] = {
        "plugins": [{"name": p.name, "origin": p.origin} for p in manager.loaded],
        "strategies": sorted(manager.strategies()),
        "brokers": sorted(manager.brokers()),
        "reasons": {code: reason.description for code, reason in sorted(manager.reasons().items())},
    }
    if as_json:
        emit_json(data)
        return
    for p in data["plugins"]:
        console.print(f"{p['name']:<40} {p['origin']}")
    console.print(f"strategies: {', '.join(data['strategies'])}")
    console.print(f"brokers:    {', '.join(data['brokers'])}")
    for code, description in data["reasons"].items():
        console.print(f"reason:     {code}  {description}", markup=False)


# The trading-state guard's commands (halt, reduce-only, resume, state) live in their own module.
register_guard_commands(cli)
