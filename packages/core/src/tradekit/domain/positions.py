"""Positions: the ledger's view (built from entries) and the broker's view (the truth)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

import attrs

from tradekit.domain.values import (
    ZERO,
    finite,
    optional_positive,
    optional_to_utc,
    optional_utc,
    positive,
    to_utc,
    utc,
)


class EntryOrigin(StrEnum):
    """Where an entry came from: our own fill, or a broker position adopted at reconcile."""

    FILL = "fill"
    BACKFILL = "backfill"


@attrs.frozen(kw_only=True)
class PositionEntry:
    """One buy that added to a position.

    A backfilled entry (adopted from the broker at reconciliation) has no known entry time:
    ``time`` then holds the moment it was adopted, which is what cooldowns measure from.
    """

    time: datetime = attrs.field(converter=to_utc, validator=utc)
    price: Decimal = attrs.field(validator=positive)
    qty: Decimal = attrs.field(validator=positive)
    origin: EntryOrigin = EntryOrigin.FILL
    confidence: int | None = None
    client_order_id: str | None = None

    @property
    def notional(self) -> Decimal:
        return self.price * self.qty


@attrs.frozen(kw_only=True)
class PositionReduction:
    """A sell that reduced a position (an exit fill or an external close)."""

    time: datetime = attrs.field(converter=to_utc, validator=utc)
    qty: Decimal = attrs.field(validator=positive)
    price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    reason: str = ""


def _entries(items: Iterable[PositionEntry]) -> tuple[PositionEntry, ...]:
    return tuple(items)


def _reductions(items: Iterable[PositionReduction]) -> tuple[PositionReduction, ...]:
    return tuple(items)


def _non_empty(
    _inst: object,
    attribute: attrs.Attribute[Sequence[PositionEntry]],
    value: Sequence[PositionEntry],
) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: a position has at least one entry")


@attrs.frozen(kw_only=True)
class Position:
    """A long position as the ledger knows it: its entries and any reductions.

    Every figure is derived from the entries, never stored separately, so it cannot drift.
    """

    symbol: str
    # None: adopted from the broker at reconciliation, owned by no strategy yet.
    strategy: str | None
    entries: tuple[PositionEntry, ...] = attrs.field(converter=_entries, validator=_non_empty)
    reductions: tuple[PositionReduction, ...] = attrs.field(default=(), converter=_reductions)

    @property
    def entry_count(self) -> int:
        return len(self.entries)

    @property
    def first_entry(self) -> PositionEntry:
        return self.entries[0]

    @property
    def last_entry(self) -> PositionEntry:
        return self.entries[-1]

    @property
    def last_entry_time(self) -> datetime:
        return self.last_entry.time

    @property
    def last_entry_price(self) -> Decimal:
        return self.last_entry.price

    @cached_property
    def entered_qty(self) -> Decimal:
        return sum((e.qty for e in self.entries), ZERO)

    @cached_property
    def qty(self) -> Decimal:
        return self.entered_qty - sum((r.qty for r in self.reductions), ZERO)

    @property
    def cost_basis(self) -> Decimal:
        """Entry notional still held, at the average entry price."""
        return self.average_price * self.qty

    @cached_property
    def average_price(self) -> Decimal:
        """Notional-weighted average entry price: sum(price * qty) / sum(qty)."""
        return sum((e.notional for e in self.entries), ZERO) / self.entered_qty

    @cached_property
    def is_open(self) -> bool:
        return self.qty > 0

    @property
    def is_backfilled(self) -> bool:
        return any(e.origin is EntryOrigin.BACKFILL for e in self.entries)

    def market_value(self, price: Decimal) -> Decimal:
        return self.qty * price


@attrs.frozen(kw_only=True)
class BrokerPosition:
    """A position as the broker reports it: the source of truth. ``qty`` < 0 is short."""

    symbol: str
    qty: Decimal = attrs.field(validator=finite)
    avg_entry_price: Decimal = attrs.field(validator=positive)
    as_of: datetime = attrs.field(converter=to_utc, validator=utc)
    current_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    asset_class: str = "us_equity"
    opened_at: datetime | None = attrs.field(default=None, converter=optional_to_utc, validator=optional_utc)

    @property
    def is_short(self) -> bool:
        return self.qty < 0

    def market_value(self, fallback_price: Decimal | None = None) -> Decimal:
        price = self.current_price or fallback_price or self.avg_entry_price
        return abs(self.qty) * price
