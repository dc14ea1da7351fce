"""``tradekit``: run strategies, inspect the ledger, reconcile, explain decisions."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradekit import __version__
from tradekit.cli.common import (
    config_option,
    console,
    emit_json,
    err_console,
    json_option,
    ledger_option,
    load,
    open_ledger,
    plugins,
    setup_logging,
)
from tradekit.cli.guard import register_guard_commands
from tradekit.config.settings import Settings
from tradekit.data import BarDataError, load_daily_bars
from tradekit.domain.market import Bar
from tradekit.domain.positions import Position
from tradekit.exits.intent import ExitState
from tradekit.guard.audit import blocking_transition
from tradekit.plugins import Plugins
from tradekit.serialization import unstructure
from tradekit.strategy.base import Strategy
from tradekit.strategy.policy import PriceStructure

DEFAULT_STRATEGY = "pyramid"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradekit")
def cli() -> None:
    """Safe multi-entry position scaling for automated trading."""
    setup_logging()


def main() -> None:
    # Plugins may add commands; they are loaded when the CLI starts.
    try:
        Plugins().register_commands(cli)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the built-in commands
        err_console.print(f"[red]plugin commands unavailable:[/] {exc}")
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


def _bars(
    data: Path | None, symbols: tuple[str, ...], start: datetime | None, end: datetime | None
) -> dict[str, list[Bar]]:
    try:
        bars = load_daily_bars(symbols or None, path=data)
    except BarDataError as exc:
        raise click.ClickException(str(exc)) from None
    trimmed = {
        s: [
            b
            for b in series
            if (start is None or b.time >= start) and (end is None or b.time <= end + timedelta(days=1))
        ]
        for s, series in bars.items()
    }
    trimmed = {s: series for s, series in trimmed.items() if series}
    if not trimmed:
        raise click.ClickException("no bars in the chosen period")
    return trimmed


@cli.command()
@click.option("--strategy", "strategy_name", default=None, help=f"Strategy name (default: {DEFAULT_STRATEGY}).")
@click.option("--broker", "broker_name", default="paper", show_default=True, help="Broker plugin to trade through.")
@click.option("--live", is_flag=True, help="Trade real money (needs a live-capable broker and its credentials).")
@click.option("--symbols", default="", help="Comma-separated symbols (default: all shipped, or [symbols]).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day to replay.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day to replay.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV(.gz) of daily bars: symbol,date,open,high,low,close,volume (default: shipped bars).",
)
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("tradekit-run"),
    show_default=True,
    help="Where paper runs write their ledger and chart.",
)
@click.option("--no-chart", is_flag=True, help="Skip the chart.")
@click.option("--once", is_flag=True, help="Live brokers: run one cycle and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Live brokers: seconds between cycles.",
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
    data: Path | None,
    out_root: Path,
    no_chart: bool,
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
        )
        return
    if live:
        raise click.ClickException("--live needs a live broker (e.g. --broker alpaca); the paper broker is simulated")
    _run_paper(loaded.settings, manager, strategy, chosen, start, end, data, out_root, no_chart, as_json)


def _as_utc(day: datetime | None) -> datetime | None:
    return day.replace(tzinfo=UTC) if day is not None else None


def _run_paper(
    settings: Settings,
    manager: Plugins,
    strategy: type[Strategy],
    symbols: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    data: Path | None,
    out_root: Path,
    no_chart: bool,
    as_json: bool,
) -> None:
    from tradekit.execution.paper_run import run_paper_replay

    bars = _bars(data, symbols, _as_utc(start), _as_utc(end))
    total = sum(len(b) for b in bars.values())
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = out_root / f"{strategy.name}-{stamp}"
    if as_json:
        paper = run_paper_replay(
            strategy=strategy, settings=settings, plugins=manager, bars=bars, out_dir=out_dir, chart=not no_chart
        )
    else:
        console.print(
            f"[bold]tradekit run[/] strategy [cyan]{strategy.name}[/] on the paper broker: "
            f"{total:,} daily bars of {', '.join(sorted(bars))} (public-domain Quandl WIKI sample)"
        )
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("replaying bars", total=total)
            paper = run_paper_replay(
                strategy=strategy,
                settings=settings,
                plugins=manager,
                bars=bars,
                out_dir=out_dir,
                chart=not no_chart,
                progress=lambda n: progress.advance(task, n),
            )
    latest = out_root / "latest"
    if latest.is_symlink() or not latest.exists():
        latest.unlink(missing_ok=True)
        latest.symlink_to(out_dir.name)
    if as_json:
        emit_json(
            {
                "strategy": strategy.name,
                "bars": paper.result.bars,
                "ledger": paper.ledger_url,
                "chart": str(paper.chart) if paper.chart else None,
                "signals": dict(paper.result.signals),
                "exits_planned": paper.result.exits_planned,
                "exits_expired": paper.result.exits_expired,
                **paper.summary.as_json(),
            }
        )
        return
    _print_summary(paper)


def _print_summary(paper: Any) -> None:
    s, r = paper.summary, paper.result
    table = Table(title=f"run summary: {r.strategy}", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("bars replayed", f"{r.bars:,} ({r.days:,} days)")
    table.add_row("signals", ", ".join(f"{k} {v:,}" for k, v in sorted(r.signals.items())) or "none")
    table.add_row("orders", ", ".join(f"{k} {v}" for k, v in sorted(s.orders_by_purpose.items())) or "none")
    table.add_row("fills", str(s.fills))
    table.add_row(
        "positions by entry count",
        ", ".join(f"{k} entr{'y' if k == 1 else 'ies'}: {v}" for k, v in sorted(s.positions_by_entry_count.items())),
    )
    table.add_row("round trips / still open", f"{s.round_trips} / {s.open_positions}")
    table.add_row("exits planned / expired unexecuted", f"{r.exits_planned} / {r.exits_expired}")
    table.add_row("buys blocked by the guard", str(s.guard_blocked_buys))
    table.add_row("starting equity", f"{s.starting_equity:,.2f}")
    table.add_row("final equity", f"{s.final_equity:,.2f}")
    table.add_row("P&L", f"{s.pnl:+,.2f} ({s.pnl * 100 / s.starting_equity:+.2f}%)")
    table.add_row("realized P&L", f"{s.realized_pnl:+,.2f}")
    console.print(table)
    reasons = Table(title="buy decisions by action and reason", header_style="bold")
    reasons.add_column("action")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for (action, reason), count in sorted(s.decisions_by_reason.items(), key=lambda kv: (kv[0][0], -kv[1])):
        reasons.add_row(action.upper(), reason or "-", str(count))
    console.print(reasons)
    if paper.chart:
        console.print(f"chart:  {paper.chart}")
    console.print(f"ledger: {paper.ledger_url}")
    console.print("next:", soft_wrap=True)
    for command in ("decisions", "positions --status all", "intents list"):
        console.print(f"  tradekit {command} --ledger {paper.ledger_url}", soft_wrap=True)


# --- ledger views -----------------------------------------------------------------------------


def _ledger_url(settings: Settings, url: str | None) -> str:
    return url or settings.ledger.url


def next_trigger(position: Position, strategy: type[Strategy] | None, settings: Settings) -> dict[str, Any]:
    """When and where the next scale-in could happen under the owner's policy and the account."""
    if strategy is None:
        return {
            "allowed": False,
            "why": "no owning strategy (adopted from the broker)"
            if position.strategy is None
            else f"strategy {position.strategy!r} is not installed",
        }
    policy = strategy.policy()
    if not policy.allow_scaling or not settings.scale_in.enabled:
        return {"allowed": False, "why": "scaling not permitted"}
    limit = min(policy.max_entries, settings.scale_in.max_entries_per_symbol)
    if position.entry_count >= limit:
        return {"allowed": False, "why": f"max entries reached ({position.entry_count}/{limit})"}
    wait = max(policy.min_time_between_entries, settings.scale_in.min_time_between_entries)
    last = position.last_entry_price
    step = policy.price_step_pct / 100
    price: str
    if policy.price_structure is PriceStructure.PYRAMID:
        price = f">= {last * (1 + step):.4f}"
    elif policy.price_structure is PriceStructure.AVERAGE_DOWN:
        price = f"<= {last * (1 - step):.4f}"
    else:
        price = "any"
    return {
        "allowed": True,
        "entry": position.entry_count + 1,
        "max_entries": limit,
        "not_before": (position.last_entry_time + wait).isoformat(),
        "price": price,
    }


@cli.command()
@click.option("--status", type=click.Choice(["open", "all"]), default="open", show_default=True)
@ledger_option
@config_option
@json_option
def positions(status: str, ledger_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """List positions with their entries, average price and next scale-in trigger."""
    settings = load(config_path).settings
    strategies = plugins().strategies()
    with open_ledger(_ledger_url(settings, ledger_url)) as ledger, ledger.reading() as tx:
        found = list(tx.open_positions().values()) if status == "open" else tx.position_history()
    rows: list[dict[str, Any]] = []
    for pos in sorted(found, key=lambda p: p.symbol):
        owner = strategies.get(pos.strategy) if pos.strategy else None
        rows.append(
            {
                "symbol": pos.symbol,
                "strategy": pos.strategy,
                "open": pos.is_open,
                "qty": str(pos.qty),
                "entry_count": pos.entry_count,
                "average_price": str(round(pos.average_price, 6)),
                "last_entry_price": str(pos.last_entry_price),
                "last_entry_time": pos.last_entry_time.isoformat(),
                "backfilled": pos.is_backfilled,
                "entries": [
                    {"time": e.time.isoformat(), "price": str(e.price), "qty": str(e.qty), "origin": e.origin.value}
                    for e in pos.entries
                ],
                "next_scale_in": next_trigger(pos, owner, settings) if pos.is_open else None,
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
    with open_ledger(_ledger_url(settings, ledger_url)) as ledger, ledger.reading() as tx:
        found = tx.decisions(symbol=symbol, action=action, limit=limit)
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
                }
                for d in found
            ]
        )
        return
    table = Table(title="buy decisions", header_style="bold")
    table.add_column("id", no_wrap=True)
    for col in ("time", "symbol", "action", "reasons"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.decision_id,
            d.evaluated_at.strftime("%Y-%m-%d %H:%M"),
            d.symbol,
            d.action.upper(),
            ", ".join(d.reasons) or "-",
        )
    console.print(table)
    console.print("explain one: tradekit explain ID")


@cli.command()
@click.argument("decision_id")
@ledger_option
@config_option
@json_option
def explain(decision_id: str, ledger_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """Show the full trace of one decision: every check, in the order it was judged."""
    settings = load(config_path).settings
    with open_ledger(_ledger_url(settings, ledger_url)) as ledger, ledger.reading() as tx:
        stored = tx.decision(decision_id)
        cause = blocking_transition(tx, stored) if stored is not None else None  # trading-state guard
    if stored is None:
        raise click.ClickException(f"no decision {decision_id} in the ledger")
    if as_json:
        emit_json({**stored.document(), "trading_state_transition": unstructure(cause)})
        return
    console.print(stored.decision().explain(), markup=False, soft_wrap=True)
    if cause is not None:
        console.print(f"  blocked by the trading-state transition: {cause.one_line()}", markup=False, soft_wrap=True)


@cli.group(invoke_without_command=True)
@ledger_option
@config_option
@json_option
@click.pass_context
def intents(ctx: click.Context, ledger_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """List exit intents (planned -> submitted -> executed / cancelled / expired)."""
    ctx.ensure_object(dict)
    ctx.obj.update(ledger_url=ledger_url, config_path=config_path, as_json=as_json)
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_intents)


@intents.command("list")
@click.option("--state", type=click.Choice([s.value for s in ExitState]), default=None)
@click.pass_context
def list_intents(ctx: click.Context, state: str | None = None) -> None:
    """List exit intents."""
    opts = ctx.obj or {}
    settings = load(opts.get("config_path")).settings
    with open_ledger(_ledger_url(settings, opts.get("ledger_url"))) as ledger, ledger.reading() as tx:
        found = tx.exit_intents(states=[ExitState(state)] if state else None)
    if opts.get("as_json"):
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
@click.option("--live", is_flag=True, help="Allow a live (real-money) account.")
@click.pass_context
def execute_intents(ctx: click.Context, broker_name: str, live: bool) -> None:
    """Execute planned exits whose window is open now (idempotent: twice executes once)."""
    from tradekit.cli.live import connect

    opts = ctx.obj or {}
    settings = load(opts.get("config_path")).settings
    manager = plugins()
    session = connect(manager, settings, broker_name, live=live, ledger_url=opts.get("ledger_url"))
    with session:
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
    if opts.get("as_json"):
        emit_json(rows)
    else:
        for row in rows:
            console.print(f"{row['intent']}: {row['state']} {row['note']}")
        if not rows:
            console.print("no planned exit is due")


@cli.command()
@click.option("--broker", "broker_name", default=None, help="Broker to reconcile against.")
@click.option("--live", is_flag=True, help="Allow a live (real-money) account.")
@ledger_option
@config_option
@json_option
def reconcile(
    broker_name: str | None, live: bool, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Reconcile the ledger with the broker (the broker is the source of truth)."""
    from tradekit.cli.live import connect

    settings = load(config_path).settings
    manager = plugins()
    if broker_name is None:
        raise click.ClickException("choose the broker to reconcile against: --broker NAME")
    with connect(manager, settings, broker_name, live=live, ledger_url=ledger_url) as session:
        report = session.startup()
    data = unstructure(report)
    data["unreconciled_broker_symbols"] = sorted(report.unreconciled_broker_symbols)
    if as_json:
        emit_json(data)
        return
    status = "ok" if report.broker_ok else f"[red]broker unreadable: {report.error}[/]"
    console.print(f"reconciliation against {report.broker}: {status}")
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


@config.command("check")
@config_option
@json_option
def config_check(config_path: Path | None, as_json: bool) -> None:
    """Validate the configuration and show the effective settings and warnings."""
    loaded = load(config_path)
    data = unstructure(loaded.settings)
    if as_json:
        emit_json(
            {
                "source": str(loaded.source) if loaded.source else None,
                "warnings": list(loaded.warnings),
                "settings": data,
            }
        )
        return
    console.print(
        f"configuration OK ({loaded.source or 'built-in defaults'}"
        f"{' + TRADEKIT_* environment' if any(k.startswith('TRADEKIT_') for k in os.environ) else ''})"
    )
    console.print_json(data=data)


@cli.command()
@click.option("--top", "top_n", type=int, default=None, help="How many candidates (default: [scanner] top_n).")
@click.option(
    "--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Scan as of this day (default: last bar)."
)
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
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
    data: Path | None,
    output: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Rank symbols and write the candidates file (top N plus baseline symbols)."""
    from tradekit.scanner import run_scan

    settings = load(config_path).settings
    manager = plugins()
    bars = _bars(data, settings.symbols, None, None)
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
    }
    if as_json:
        emit_json(data)
        return
    for p in data["plugins"]:
        console.print(f"{p['name']:<40} {p['origin']}")
    console.print(f"strategies: {', '.join(data['strategies'])}")
    console.print(f"brokers:    {', '.join(data['brokers'])}")


# The trading-state guard's commands (halt, reduce-only, resume, state) live in their own module.
register_guard_commands(cli)
