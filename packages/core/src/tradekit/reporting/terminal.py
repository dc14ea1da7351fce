"""Run statistics as rows of text: the run summary's table, the report's tables."""

from __future__ import annotations

from decimal import Decimal

from rich import box
from rich.table import Table

from tradekit.reporting.statistics import RunStatistics, TradeStatistics, money, pct_text, percent


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


SYMBOL_COLUMNS = (
    "symbol",
    "return",
    "Sharpe",
    "max drawdown",
    "positions",
    "win rate",
    "realized P&L",
    "open P&L",
    "fees",
    "exposure",
    "buy & hold",
)


# Realized: the positions closed by the end, after all their fees (entries' and exits');
# open: the positions still open, marked at the last close, after the fees paid on them.
REALIZED_PNL = "realized P&L (closed, after fees)"
OPEN_PNL = "open P&L (at last close, after fees)"


LEFT_OUT = "left out of the P&L and trade figures"


def pnl_rows(
    realized: Decimal, open_pnl: Decimal | None, *, unknown_closed: int = 0, unknown_open: int = 0
) -> list[tuple[str, str]]:
    """The run's P&L, split as every table splits it (``tradekit.reporting.statistics``);
    each says how many positions of unknown P&L it leaves out."""
    return [
        (REALIZED_PNL, money(realized) + _excludes(unknown_closed)),
        (OPEN_PNL, money(open_pnl) + _excludes(unknown_open)),
    ]


def _excludes(unknown: int) -> str:
    if not unknown:
        return ""
    return f" (excludes {_positions(unknown)} of unknown P&L)"


def _of_unknown(unknown: int) -> str:
    return f"; {unknown:,} of unknown P&L, not in the figures below" if unknown else ""


def _positions(count: int) -> str:
    return f"{count:,} position{'' if count == 1 else 's'}"


_REASONS_SHOWN = 3


def left_out_rows(trades: TradeStatistics) -> list[tuple[str, str]]:
    """What the P&L and trade figures leave out, and why: the positions of unknown P&L (an
    exit of unknown price); no row when there are none."""
    if not trades.unknown_pnl:
        return []
    reasons = list(trades.unknown_pnl_reasons.items())
    why = "; ".join(f"{reason} ({count:,})" for reason, count in reasons[:_REASONS_SHOWN])
    if len(reasons) > _REASONS_SHOWN:
        why += f"; {len(reasons) - _REASONS_SHOWN:,} other reasons"
    return [
        (
            LEFT_OUT,
            f"{_positions(trades.unknown_pnl)} of unknown P&L ({trades.unknown_pnl_closed:,} closed, "
            f"{trades.unknown_pnl_open:,} open), exited at an unknown price: {why}",
        )
    ]


def statistics_rows(stats: RunStatistics, *, pnl: bool = True) -> list[tuple[str, str]]:
    """(what, value) for every run statistic, in the order a trader reads them; ``pnl``: with
    the realized and open P&L (the run summary shows them beside the account's P&L). When
    positions of unknown P&L are left out, a row says how many and why: after the P&L, or
    first without it (under the P&L the caller shows)."""
    rows: list[tuple[str, str]] = []
    t = stats.trades
    if not pnl:
        rows += left_out_rows(t)
    r = stats.returns
    if r is not None:
        rows += [
            ("period", f"{r.start} to {r.end} ({r.closes:,} closes; annualised at {r.periods_per_year} a year)"),
            ("total return", percent(r.total_return)),
            ("CAGR", percent(r.cagr)),
            ("volatility (annual)", percent(r.volatility).lstrip("+")),
            ("Sharpe", _ratio(r.sharpe)),
            ("Sortino", _ratio(r.sortino)),
            ("Calmar", _ratio(r.calmar)),
            ("max drawdown", f"{percent(r.max_drawdown)} (longest {r.max_drawdown_days:,} days under a peak)"),
            ("exposure time", percent(r.exposure, 1).lstrip("+")),
        ]
    if pnl:
        rows += pnl_rows(
            t.realized_pnl, t.open_pnl, unknown_closed=t.unknown_pnl_closed, unknown_open=t.unknown_pnl_open
        )
        rows += left_out_rows(t)
    rows += [
        ("buy & hold (same symbols)", percent(stats.buy_and_hold_return)),
        ("positions (closed / open)", f"{t.positions} ({t.closed} / {t.open})" + _of_unknown(t.unknown_pnl)),
        ("win rate", percent(t.win_rate, 1).lstrip("+")),
        ("profit factor", _ratio(t.profit_factor)),
        ("expectancy per position", money(t.expectancy)),
        ("average / best / worst position", f"{money(t.average_pnl)} / {money(t.best_pnl)} / {money(t.worst_pnl)}"),
        (
            "average / best / worst return",
            f"{pct_text(t.average_return_pct)} / {pct_text(t.best_return_pct)} / {pct_text(t.worst_return_pct)}",
        ),
        ("average holding time", "-" if t.average_holding_days is None else f"{t.average_holding_days:.1f} days"),
        ("fees paid", _fees(t.fees, t.open_fees)),
        ("entries per position", _ratio(t.entries_per_position)),
        ("P&L of first entries / add-ons", f"{money(t.first_entry_pnl)} / {money(t.add_on_pnl)} ({t.add_ons} add-ons)"),
    ]
    return rows


def _fees(fees: Decimal, open_fees: Decimal) -> str:
    if not open_fees:
        return f"{fees:,.2f}"
    return f"{fees:,.2f} ({open_fees:,.2f} of it on positions still open)"


def symbol_rows(stats: RunStatistics) -> list[tuple[str, ...]]:
    """Per symbol: its contribution's return, Sharpe and max drawdown, positions, win rate,
    realized P&L (closed positions, after all their fees), open P&L (open positions at the
    last close, after the fees paid on them; the two make the return's P&L), fees,
    exposure, buy-and-hold. Positions of unknown P&L are left out ("excl. 1 unknown"), and a
    symbol with one has no return figures."""
    return [
        (
            symbol,
            percent(s.returns.total_return) if s.returns else "-",
            _ratio(s.returns.sharpe) if s.returns else "-",
            percent(s.returns.max_drawdown) if s.returns else "-",
            str(s.trades.positions),
            percent(s.trades.win_rate, 1).lstrip("+"),
            money(s.trades.realized_pnl) + _excluded(s.trades.unknown_pnl_closed),
            money(s.trades.open_pnl) + _excluded(s.trades.unknown_pnl_open),
            f"{s.trades.fees:,.2f}",
            percent(s.exposure, 1).lstrip("+"),
            percent(s.buy_and_hold_return),
        )
        for symbol, s in sorted(stats.by_symbol.items())
    ]


def _excluded(unknown: int) -> str:
    return f" (excl. {unknown:,} unknown)" if unknown else ""


UNKNOWN_PNL_NOTE = (
    "excl. N unknown: N positions with an exit at an unknown price (closed by reconciliation, the "
    "broker no longer holding them) are left out; their symbol has no return figures"
)


def decision_rows(stats: RunStatistics) -> list[tuple[str, str, str]]:
    """(action, reason, count), by action then most frequent reason first."""
    ordered = sorted(stats.decisions_by_reason.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
    return [(action.upper(), reason or "-", f"{count:,}") for (action, reason), count in ordered]


# The terminal's per-symbol table leaves out Sharpe, fees and exposure (the JSON and the
# report have them) so that it fits an 80-column terminal.
_TERMINAL_SYMBOL_COLUMNS = (
    "symbol",
    "return",
    "max drawdown",
    "positions",
    "win rate",
    "realized P&L",
    "open P&L",
    "buy & hold",
)
_TERMINAL_HEADERS = {
    "max drawdown": "max DD",
    "positions": "trades",
    "realized P&L": "realized",
    "open P&L": "open",
    "buy & hold": "buy&hold",
}


def symbol_table(stats: RunStatistics) -> Table:
    """The per-symbol statistics as a rich table."""
    caption = (
        "realized: closed positions, after all their fees; open: positions still open, at the last "
        "close, after the fees paid on them; return: the two together, on the starting equity"
    )
    if stats.trades.unknown_pnl:
        caption += f"; {UNKNOWN_PNL_NOTE}"
    table = Table(
        title="by symbol",
        caption=caption,
        caption_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    keep = [SYMBOL_COLUMNS.index(col) for col in _TERMINAL_SYMBOL_COLUMNS]
    for col in _TERMINAL_SYMBOL_COLUMNS:
        header = _TERMINAL_HEADERS.get(col, col)
        table.add_column(header, justify="left" if col == "symbol" else "right", no_wrap=True)
    for row in symbol_rows(stats):
        table.add_row(*(row[i] for i in keep))
    return table
