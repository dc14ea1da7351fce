"""The positions view of pairs: one row per pair with its scale-in state and rails.

``position_rows`` reads the pair tables and returns typed rows; ``rows_to_json`` and
``render_rows`` turn them into what ``tradekit pairs positions`` prints. The current spread
and PnL are the trader's latest monitoring figures (with the time they were taken): the view
itself never calls a venue.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from tradekit.serialization import unstructure
from tradekit_venue_ccxt.pairs.config import PairTradingConfig
from tradekit_venue_ccxt.pairs.models import PairPosition, PairStatus
from tradekit_venue_ccxt.pairs.spread import next_trigger, to_bps
from tradekit_venue_ccxt.pairs.store import PairStore

_CENT = Decimal("0.01")


@attrs.frozen(kw_only=True)
class PairRow:
    """One pair as the positions view shows it. Spreads are in basis points."""

    pair_id: str
    symbol: str
    long_venue: str
    short_venue: str
    status: PairStatus
    entries: int
    max_entries: int | None
    qty: Decimal
    """Contracts held on each leg (the legs match; see ``naked`` when they do not)."""
    total_notional: Decimal
    weighted_entry_spread_bps: Decimal | None
    initial_spread_bps: Decimal | None
    current_spread_bps: Decimal | None
    marked_at: datetime | None
    next_trigger_bps: Decimal | None
    """The spread the next add needs; None when no add is possible (max entries, scale-in off, closed)."""
    funding_paid: Decimal
    funding_hard_stop: Decimal | None
    pnl: Decimal | None
    take_profit_target: Decimal | None
    opened_at: datetime
    force_close_at: datetime
    time_to_force_close: timedelta | None
    exit_reason: str | None
    naked: str | None


def _row(pair: PairPosition, store: PairStore, config: PairTradingConfig | None, now: datetime) -> PairRow:
    mark = store.mark(pair.pair_id)
    initial = pair.initial_spread
    max_entries = config.effective_max_entries if config is not None else None
    multiplier = config.trigger_multiplier if config is not None else None
    if multiplier is None and pair.snapshots:
        multiplier = pair.snapshots[0].trigger_multiplier
    trigger = None
    can_add = pair.status is PairStatus.OPEN and (max_entries is None or pair.entry_count < max_entries)
    if can_add and initial is not None and multiplier is not None and pair.entry_count > 0:
        trigger = to_bps(next_trigger(initial, multiplier, pair.entry_count))
    weighted = pair.weighted_entry_spread
    live = pair.status is not PairStatus.CLOSED
    exit_reason = (
        pair.closed.reason.value if pair.closed is not None else (pair.exit.reason.value if pair.exit else None)
    )
    return PairRow(
        pair_id=pair.pair_id,
        symbol=pair.symbol,
        long_venue=pair.header.long_venue,
        short_venue=pair.header.short_venue,
        status=pair.status,
        entries=pair.entry_count,
        max_entries=max_entries,
        qty=pair.long.held,
        total_notional=pair.total_notional,
        weighted_entry_spread_bps=to_bps(weighted) if weighted is not None else None,
        initial_spread_bps=to_bps(initial) if initial is not None else None,
        current_spread_bps=to_bps(mark.spread) if mark is not None and live else None,
        marked_at=mark.time if mark is not None and live else None,
        next_trigger_bps=trigger,
        funding_paid=pair.funding_paid,
        funding_hard_stop=config.funding_hard_stop if config is not None else None,
        pnl=mark.pnl if mark is not None and live else None,
        take_profit_target=pair.take_profit_target,
        opened_at=pair.header.opened_at,
        force_close_at=pair.header.force_close_at,
        time_to_force_close=max(pair.header.force_close_at - now, timedelta(0)) if live else None,
        exit_reason=exit_reason,
        naked=pair.naked.reason if pair.naked is not None else None,
    )


def position_rows(
    store: PairStore,
    *,
    now: datetime,
    status: PairStatus | None = PairStatus.OPEN,
    config: PairTradingConfig | None = None,
) -> list[PairRow]:
    """The pairs in ``status`` (None: all), oldest first.

    ``open`` includes pairs being closed (their exit has started but a leg is still held).
    """
    pairs = store.pairs()
    if status is PairStatus.OPEN:
        pairs = [p for p in pairs if p.is_live]
    elif status is not None:
        pairs = [p for p in pairs if p.status is status]
    return [_row(p, store, config, now) for p in pairs]


def rows_to_json(rows: Sequence[PairRow]) -> str:
    """Rows as JSON: decimals as strings, times in ISO 8601 UTC, durations in seconds."""
    return json.dumps([unstructure(row) for row in rows], indent=2)


def _num(value: Decimal | None, places: Decimal = _CENT) -> str:
    return "-" if value is None else str(value.quantize(places))


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    hours, rest = divmod(int(value.total_seconds()), 3600)
    return f"{hours // 24}d{hours % 24:02d}h{rest // 60:02d}m"


COLUMNS = (
    "pair",
    "status",
    "entries",
    "qty",
    "notional",
    "w.entry bps",
    "now bps",
    "next trigger bps",
    "funding paid",
    "pnl",
    "force-close in",
)


def row_cells(row: PairRow) -> tuple[str, ...]:
    """One row as the text of each of ``COLUMNS`` (the table below, and the ``pairs`` status page)."""
    entries = f"{row.entries}/{row.max_entries}" if row.max_entries is not None else str(row.entries)
    status = row.status.value + (f" ({row.exit_reason})" if row.exit_reason else "") + (" NAKED" if row.naked else "")
    return (
        row.pair_id,
        status,
        entries,
        str(row.qty),
        _num(row.total_notional),
        _num(row.weighted_entry_spread_bps),
        _num(row.current_spread_bps),
        _num(row.next_trigger_bps),
        _num(row.funding_paid),
        _num(row.pnl),
        _duration(row.time_to_force_close),
    )


def render_rows(rows: Sequence[PairRow]) -> str:
    """Rows as an aligned text table."""
    if not rows:
        return "no pairs"
    header = COLUMNS
    table = [header, *(row_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table)
