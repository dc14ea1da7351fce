"""Type B pair records: signals, leg orders, the audit events of a pair, and its derived state.

A pair's state is never stored as such: it is folded from its append-only events, its leg
orders and their fills, and its funding payments (``PairPosition.build``), so it cannot
drift from what happened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import attrs

from tradekit.domain.signals import Side
from tradekit.domain.values import ZERO, finite, non_negative, optional_finite, positive, to_utc, utc
from tradekit_venue_ccxt.pairs.spread import spread_of
from tradekit_venue_ccxt.providers import FundingPayment, VenueFill


class Leg(StrEnum):
    LONG = "long"
    SHORT = "short"


class LegPurpose(StrEnum):
    OPEN = "open"  # opens an entry's leg
    UNWIND = "unwind"  # takes back the unmatched part of an entry's leg
    CLOSE = "close"  # closes the pair


def leg_side(leg: Leg, purpose: LegPurpose) -> Side:
    """Buy to open a long leg or close a short one; sell otherwise."""
    opening = purpose is LegPurpose.OPEN
    return Side.BUY if (leg is Leg.LONG) == opening else Side.SELL


class PairStatus(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ExitReason(StrEnum):
    TAKE_PROFIT = "take_profit"
    FUNDING_HARD_STOP = "funding_hard_stop"
    MAX_HOLD = "max_hold"
    STOP_LOSS = "stop_loss"
    LEG_MISMATCH = "leg_mismatch"  # a venue holds less than a leg: liquidated or closed by hand
    FIRST_ENTRY_FAILED = "first_entry_failed"


class PairEventKind(StrEnum):
    ENTRY_PLANNED = "entry_planned"
    ENTRY_OPENED = "entry_opened"
    ENTRY_FAILED = "entry_failed"
    LEG_FAILED = "leg_failed"
    LEG_RETRIED = "leg_retried"
    LEG_UNWOUND = "leg_unwound"
    LEG_NAKED = "leg_naked"
    LEG_DUST = "leg_dust"  # a remainder below what its venue can trade: left in the leg, closed with it
    LEG_MISMATCH = "leg_mismatch"
    EXIT_STARTED = "exit_started"
    CLOSED = "closed"


class SignalStatus(StrEnum):
    PENDING = "pending"
    SKIPPED = "skipped"  # not now: retried while the event is open or within its window
    ACTED = "acted"
    BLOCKED = "blocked"
    EXPIRED = "expired"

    @property
    def is_retried(self) -> bool:
        return self in (SignalStatus.PENDING, SignalStatus.SKIPPED)


def pair_key(symbol: str, long_venue: str, short_venue: str) -> str:
    """The name of a pair in decisions and the ledger: ``long>short:symbol``."""
    return f"{long_venue}>{short_venue}:{symbol}"


@attrs.frozen(kw_only=True)
class PairSignal:
    """A watchlist event saying "trade this pair now": its latest update.

    ``generated_at`` is when the event was last updated; an event that stays open keeps the
    same ``event_id`` and moves ``generated_at`` on. ``event_open`` is False once the event
    has closed.
    """

    event_id: str = attrs.field(validator=attrs.validators.min_len(1))
    symbol: str = attrs.field(validator=attrs.validators.min_len(1))
    long_venue: str
    short_venue: str
    generated_at: datetime = attrs.field(converter=to_utc, validator=utc)
    event_open: bool = True
    confidence: int = 5
    source: str = "watchlist"

    def __attrs_post_init__(self) -> None:
        if self.long_venue == self.short_venue:
            raise ValueError(f"pair signal {self.event_id}: long and short venue are both {self.long_venue!r}")
        if not 1 <= self.confidence <= 5:
            raise ValueError(f"pair signal {self.event_id}: confidence must be 1..5, got {self.confidence}")

    @property
    def pair_key(self) -> str:
        return pair_key(self.symbol, self.long_venue, self.short_venue)

    @property
    def signal_id(self) -> str:
        basis = f"{self.event_id}|{self.generated_at.isoformat()}"
        return "pairsig-" + hashlib.sha256(basis.encode()).hexdigest()[:20]


@attrs.frozen(kw_only=True)
class SignalRecord:
    """A signal with its latest status, as the store returns it."""

    signal: PairSignal
    status: SignalStatus
    recorded_at: datetime = attrs.field(converter=to_utc, validator=utc)
    decision_id: str | None = None
    detail: str = ""


@attrs.frozen(kw_only=True)
class PairHeader:
    """What never changes about a pair once it is opened."""

    pair_id: str
    symbol: str
    long_venue: str
    short_venue: str
    strategy: str
    opened_at: datetime = attrs.field(converter=to_utc, validator=utc)
    max_hold: timedelta
    take_profit_pct: Decimal = attrs.field(validator=positive)
    contract_size: Decimal = attrs.field(validator=positive)
    """Base units per contract, the same on both venues (a pair with different sizes is refused)."""

    @property
    def key(self) -> str:
        return pair_key(self.symbol, self.long_venue, self.short_venue)

    @property
    def force_close_at(self) -> datetime:
        return self.opened_at + self.max_hold


@attrs.frozen(kw_only=True)
class LegOrder:
    """An order for one leg, recorded before it is sent (its intent is in the core ledger too)."""

    client_order_id: str
    pair_id: str
    entry_no: int
    leg: Leg
    purpose: LegPurpose
    attempt: int
    venue: str
    symbol: str
    side: Side
    qty: Decimal = attrs.field(validator=positive)
    created_at: datetime = attrs.field(converter=to_utc, validator=utc)

    @property
    def reduce_only(self) -> bool:
        return self.purpose is not LegPurpose.OPEN


# --- event payloads (persisted as JSON through the core converter) ---------------------------


@attrs.frozen(kw_only=True)
class EntrySnapshot:
    """The figures an entry (or scale-in) was decided on: the scale-in audit snapshot."""

    entry_no: int
    signal_id: str
    event_id: str
    decision_id: str
    spread: Decimal = attrs.field(validator=finite)
    initial_spread: Decimal | None = attrs.field(default=None, validator=optional_finite)
    trigger: Decimal | None = attrs.field(default=None, validator=optional_finite)
    trigger_multiplier: Decimal = attrs.field(validator=positive)
    qty: Decimal = attrs.field(validator=positive)
    add_notional: Decimal = attrs.field(validator=non_negative)
    total_notional_before: Decimal = attrs.field(validator=non_negative)
    max_total_notional: Decimal = attrs.field(validator=positive)
    funding_paid: Decimal = attrs.field(validator=finite)
    long_vwap: Decimal = attrs.field(validator=positive)
    short_vwap: Decimal = attrs.field(validator=positive)
    long_slippage_bps: Decimal = attrs.field(validator=finite)
    short_slippage_bps: Decimal = attrs.field(validator=finite)


@attrs.frozen(kw_only=True)
class EntryResult:
    """An entry as it ended up: both legs matched at ``qty`` (after any unwind)."""

    entry_no: int
    qty: Decimal = attrs.field(validator=positive)
    long_price: Decimal = attrs.field(validator=positive)
    short_price: Decimal = attrs.field(validator=positive)
    contract_size: Decimal = attrs.field(validator=positive)
    note: str = ""

    @property
    def spread(self) -> Decimal:
        return spread_of(self.long_price, self.short_price)

    @property
    def notional(self) -> Decimal:
        """Long leg notional of the entry, in the settle currency."""
        return self.qty * self.contract_size * self.long_price


@attrs.frozen(kw_only=True)
class EntryFailure:
    entry_no: int
    reason: str


@attrs.frozen(kw_only=True)
class LegNote:
    """Something that happened to a leg: a failure, a retry, an unwind, a naked, dust or mismatched leg."""

    leg: Leg
    reason: str
    entry_no: int | None = None
    client_order_id: str | None = None
    qty: Decimal | None = attrs.field(default=None, validator=optional_finite)


@attrs.frozen(kw_only=True)
class ExitNote:
    """Why the pair is being closed, with the figures that decided it."""

    reason: ExitReason
    detail: str
    pnl: Decimal | None = attrs.field(default=None, validator=optional_finite)
    funding_paid: Decimal | None = attrs.field(default=None, validator=optional_finite)
    spread: Decimal | None = attrs.field(default=None, validator=optional_finite)


@attrs.frozen(kw_only=True)
class CloseResult:
    """How a pair ended; ``realized_pnl`` is from tradekit's own fills, before fees and funding."""

    reason: ExitReason
    realized_pnl: Decimal = attrs.field(validator=finite)
    funding_net: Decimal = attrs.field(validator=finite)
    fees: Decimal = attrs.field(validator=finite)
    note: str = ""


EventPayload = EntrySnapshot | EntryResult | EntryFailure | LegNote | ExitNote | CloseResult

PAYLOAD_TYPES: Mapping[PairEventKind, type[EventPayload]] = {
    PairEventKind.ENTRY_PLANNED: EntrySnapshot,
    PairEventKind.ENTRY_OPENED: EntryResult,
    PairEventKind.ENTRY_FAILED: EntryFailure,
    PairEventKind.LEG_FAILED: LegNote,
    PairEventKind.LEG_RETRIED: LegNote,
    PairEventKind.LEG_UNWOUND: LegNote,
    PairEventKind.LEG_NAKED: LegNote,
    PairEventKind.LEG_DUST: LegNote,
    PairEventKind.LEG_MISMATCH: LegNote,
    PairEventKind.EXIT_STARTED: ExitNote,
    PairEventKind.CLOSED: CloseResult,
}


@attrs.frozen(kw_only=True)
class PairEvent:
    pair_id: str
    kind: PairEventKind
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    payload: EventPayload


@attrs.frozen(kw_only=True)
class PairMark:
    """The latest monitoring figures of a pair (a cache for the positions view, overwritten)."""

    pair_id: str
    time: datetime = attrs.field(converter=to_utc, validator=utc)
    spread: Decimal = attrs.field(validator=finite)
    """The closing spread now: short leg's ask over the long leg's bid."""
    open_spread: Decimal = attrs.field(validator=finite)
    """The opening spread now (what the next add would get at the top of the books)."""
    pnl: Decimal = attrs.field(validator=finite)
    funding_paid: Decimal = attrs.field(validator=finite)


# --- derived state -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LegBook:
    """One leg's quantity held and cost, folded from its fills."""

    held: Decimal = attrs.field(validator=non_negative)
    opened: Decimal = attrs.field(validator=non_negative)
    open_cost: Decimal = attrs.field(validator=non_negative)
    realized: Decimal = attrs.field(validator=finite)
    fees: Decimal = attrs.field(validator=finite)
    first_fill_at: datetime | None
    last_fill_at: datetime | None

    @property
    def average_price(self) -> Decimal | None:
        return self.open_cost / self.opened if self.opened > 0 else None


def _fold_leg(leg: Leg, orders: Iterable[LegOrder], fills: Sequence[VenueFill], contract_size: Decimal) -> LegBook:
    by_cid = {o.client_order_id: o for o in orders if o.leg is leg}
    opened = held = cost = realized = fees = ZERO
    first: datetime | None = None
    last: datetime | None = None
    for fill in sorted(fills, key=lambda x: (x.time, x.execution_id)):
        order = by_cid.get(fill.client_order_id)
        if order is None:
            continue
        fees += fill.fee
        first = fill.time if first is None else min(first, fill.time)
        last = fill.time if last is None else max(last, fill.time)
        if order.purpose is LegPurpose.OPEN:
            opened += fill.qty
            held += fill.qty
            cost += fill.qty * fill.price
            continue
        average = cost / opened if opened > 0 else fill.price
        # A long leg gains when it sells above its average; a short one when it buys below.
        direction = 1 if leg is Leg.LONG else -1
        realized += (fill.price - average) * fill.qty * contract_size * direction
        held -= fill.qty
    return LegBook(
        held=max(held, ZERO),
        opened=opened,
        open_cost=cost,
        realized=realized,
        fees=fees,
        first_fill_at=first,
        last_fill_at=last,
    )


@attrs.frozen(kw_only=True)
class PairPosition:
    """A pair as its records say it is: entries, both legs, funding, and where it stands."""

    header: PairHeader
    status: PairStatus
    entries: tuple[EntryResult, ...]
    entry_times: tuple[datetime, ...]
    snapshots: tuple[EntrySnapshot, ...]
    in_progress: tuple[int, ...]
    """Entries planned whose legs are not settled yet (orders in flight, or a leg to unwind)."""
    long: LegBook
    short: LegBook
    funding_net: Decimal
    """Funding received minus paid, both legs (negative: the pair paid)."""
    exit: ExitNote | None
    closed: CloseResult | None
    closed_at: datetime | None
    naked: LegNote | None
    """The latest unresolved naked-leg record, or None once the legs match again."""
    last_mismatch: LegNote | None
    """The latest record of the venues disagreeing with the pair's legs."""
    leg_orders: tuple[LegOrder, ...]
    fills: tuple[VenueFill, ...]

    @property
    def pair_id(self) -> str:
        return self.header.pair_id

    @property
    def key(self) -> str:
        return self.header.key

    @property
    def symbol(self) -> str:
        return self.header.symbol

    @property
    def entry_count(self) -> int:
        return len(self.entries)

    @property
    def first_entry(self) -> EntryResult | None:
        return self.entries[0] if self.entries else None

    @property
    def initial_spread(self) -> Decimal | None:
        return self.entries[0].spread if self.entries else None

    @property
    def total_notional(self) -> Decimal:
        return sum((e.notional for e in self.entries), ZERO)

    @property
    def weighted_entry_spread(self) -> Decimal | None:
        """Notional-weighted spread of all entries."""
        total = self.total_notional
        if total <= 0:
            return None
        return sum((e.notional * e.spread for e in self.entries), ZERO) / total

    @property
    def take_profit_target(self) -> Decimal | None:
        """The PnL that takes profit: a share of the *first* entry's notional, never re-anchored."""
        first = self.first_entry
        return None if first is None else first.notional * self.header.take_profit_pct / 100

    @property
    def funding_paid(self) -> Decimal:
        return -self.funding_net

    @property
    def fees(self) -> Decimal:
        return self.long.fees + self.short.fees

    @property
    def legs_match(self) -> bool:
        return self.long.held == self.short.held

    @property
    def is_live(self) -> bool:
        return self.status is not PairStatus.CLOSED

    @property
    def funding_since(self) -> datetime | None:
        """Venue time of the pair's first fill: funding before it belongs to someone else."""
        times = [t for t in (self.long.first_fill_at, self.short.first_fill_at) if t is not None]
        return min(times) if times else None

    def orders_of(self, entry_no: int | None = None, leg: Leg | None = None) -> list[LegOrder]:
        return [
            o for o in self.leg_orders if (entry_no is None or o.entry_no == entry_no) and (leg is None or o.leg is leg)
        ]

    @classmethod
    def build(
        cls,
        header: PairHeader,
        events: Sequence[PairEvent],
        orders: Sequence[LegOrder],
        fills: Sequence[VenueFill],
        funding: Sequence[FundingPayment],
    ) -> PairPosition:
        entries: dict[int, EntryResult] = {}
        entry_times: dict[int, datetime] = {}
        snapshots: dict[int, EntrySnapshot] = {}
        planned: set[int] = set()
        settled: set[int] = set()
        exit_note: ExitNote | None = None
        closed: CloseResult | None = None
        closed_at: datetime | None = None
        naked: LegNote | None = None
        mismatch: LegNote | None = None
        for event in events:
            payload = event.payload
            if isinstance(payload, EntrySnapshot):
                planned.add(payload.entry_no)
                snapshots[payload.entry_no] = payload
            elif isinstance(payload, EntryResult):
                entries[payload.entry_no] = payload
                entry_times[payload.entry_no] = event.time
                settled.add(payload.entry_no)
                naked = None
            elif isinstance(payload, EntryFailure):
                settled.add(payload.entry_no)
                naked = None
            elif event.kind is PairEventKind.LEG_NAKED and isinstance(payload, LegNote):
                naked = payload
            elif event.kind is PairEventKind.LEG_MISMATCH and isinstance(payload, LegNote):
                mismatch = payload
            elif isinstance(payload, ExitNote):
                exit_note = exit_note or payload
            elif isinstance(payload, CloseResult):
                closed, closed_at = payload, event.time
        long_book = _fold_leg(Leg.LONG, orders, fills, header.contract_size)
        short_book = _fold_leg(Leg.SHORT, orders, fills, header.contract_size)
        if naked is not None and long_book.held == short_book.held:
            naked = None
        if closed is not None:
            status = PairStatus.CLOSED
        elif exit_note is not None:
            status = PairStatus.CLOSING
        else:
            status = PairStatus.OPEN
        ordered = sorted(entries)
        return cls(
            header=header,
            status=status,
            entries=tuple(entries[n] for n in ordered),
            entry_times=tuple(entry_times[n] for n in ordered),
            snapshots=tuple(snapshots[n] for n in sorted(snapshots)),
            in_progress=tuple(sorted(planned - settled)),
            long=long_book,
            short=short_book,
            funding_net=sum((p.amount for p in funding), ZERO),
            exit=exit_note,
            closed=closed,
            closed_at=closed_at,
            naked=naked,
            last_mismatch=mismatch,
            leg_orders=tuple(orders),
            fills=tuple(sorted(fills, key=lambda x: (x.time, x.execution_id))),
        )
