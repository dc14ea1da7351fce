"""``tradekit trades``: the trade list, one row per position, read from the ledger."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from tradekit.cli.common import config_option, console, emit_json, json_option, ledger_option, load, open_ledger

if TYPE_CHECKING:
    from tradekit.reporting.trades import Trade

CSV_COLUMNS = (
    "symbol",
    "strategy",
    "number",
    "status",
    "opened_at",
    "closed_at",
    "entry_count",
    "qty",
    "average_entry",
    "average_exit",
    "realized_pnl",
    "return_pct",
    "fees",
    "holding_days",
    "close_reason",
    "entry_times",
    "entry_kinds",
    "entry_prices",
    "entry_qtys",
    "entry_fees",
    "entry_decisions",
    "exit_times",
    "exit_prices",
    "exit_qtys",
    "exit_fees",
)

_PLURAL = {"decision_id": "decisions", "fees": "fees"}


@click.command("trades")
@click.option("--symbol", default=None, help="Only this symbol's positions.")
@click.option("--status", type=click.Choice(["all", "open", "closed"]), default="all", show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="CSV on standard output, one row per position.")
@ledger_option
@config_option
@json_option
def trades(
    symbol: str | None, status: str, as_csv: bool, ledger_url: str | None, config_path: Path | None, as_json: bool
) -> None:
    """List every position with its entries, exits, P&L, holding time and why it closed."""
    if as_csv and as_json:
        raise click.UsageError("choose one of --csv and --json")
    from tradekit.reporting.trades import read_trades  # the ledger loads when a command needs it

    settings = load(config_path).settings
    with open_ledger(ledger_url or settings.ledger.url, create=False) as ledger, ledger.reading() as tx:
        found = read_trades(tx)
    if symbol is not None:
        found = [t for t in found if t.symbol == symbol.upper()]
    if status != "all":
        found = [t for t in found if t.is_open == (status == "open")]
    if as_json:
        emit_json([t.as_json() for t in found])
    elif as_csv:
        click.echo(trades_csv(found), nl=False)
    else:
        console.print(trades_table(found))


def trades_csv(found: list[Trade]) -> str:
    """The trades as CSV; a position's entries and exits are ``;``-separated lists."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for trade in found:
        data = trade.as_json()
        row = {key: data[key] for key in CSV_COLUMNS if key in data}
        row["status"] = "open" if trade.is_open else "closed"
        for side, items, fields in (
            ("entry", data["entries"], ("time", "kind", "price", "qty", "fees", "decision_id")),
            ("exit", data["exits"], ("time", "price", "qty", "fees")),
        ):
            for field in fields:
                column = f"{side}_{_PLURAL.get(field, field + 's')}"
                row[column] = ";".join(str(item[field] or "") for item in items)
        writer.writerow(row)
    return out.getvalue()


def trades_table(found: list[Trade]) -> Table:
    table = Table(title=f"trades ({len(found)})", header_style="bold", show_lines=True)
    for col in ("position", "entries: day kind price x qty, fees, decision", "exits", "P&L", "why it closed"):
        table.add_column(col)
    for trade in found:
        entries = "\n".join(
            f"{e.time:%Y-%m-%d} {e.kind} {e.price:,.4f} x {e.qty:.4f}, {e.fees:,.2f}, {e.decision_id or '-'}"
            for e in trade.entries
        )
        exits = "\n".join(
            f"{x.time:%Y-%m-%d} {'-' if x.price is None else f'{x.price:,.4f}'} x {x.qty:.4f}" for x in trade.exits
        )
        held = trade.holding_time
        table.add_row(
            f"{trade.symbol}#{trade.number}\n" + ("open" if held is None else f"{held.days} days"),
            entries + f"\navg {trade.average_entry:,.4f}",
            exits or "open",
            _pnl_cell(trade),
            trade.close_reason,
        )
    return table


def _pnl_cell(trade: Trade) -> str:
    """A position's P&L and return, or "unknown" and why (an exit of unknown price)."""
    unknown = trade.unknown_pnl_reason
    if unknown is not None:
        return f"unknown: {unknown}"
    pct = trade.return_pct
    return f"{trade.realized_pnl:+,.2f}" + ("" if pct is None else f"\n{pct:+.2f}%")
