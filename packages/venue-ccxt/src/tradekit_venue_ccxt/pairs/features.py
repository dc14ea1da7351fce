"""The names of the market features a pair decision carries to the pair rule.

``MarketSnapshot.features`` is a ``Mapping[str, Decimal]``; the pair trader fills these and
the pair rule (``tradekit_venue_ccxt.pairs.rules``) reads them. A context carrying any
``ccxt_pair.`` feature is a pair decision and must carry all the required ones.

Spreads are fractions of the long leg's price: ``(short price - long price) / long price``,
so ``Decimal("0.002")`` is 20 basis points.
"""

from __future__ import annotations

PREFIX = "ccxt_pair."

SPREAD = PREFIX + "spread"
"""Executable opening spread now: the short leg's sell VWAP over the long leg's buy VWAP."""
INITIAL_SPREAD = PREFIX + "initial_spread"
"""Spread realised by the pair's first entry (scale-ins only): what every trigger is a multiple of."""
TRIGGER_MULTIPLIER = PREFIX + "trigger_multiplier"
TRIGGER = PREFIX + "trigger"
"""The spread this add needs, as the trader computed it (shown in the trace; the rule recomputes it)."""
TOTAL_NOTIONAL = PREFIX + "total_notional"
"""Entry notional the pair already holds, per leg."""
ADD_NOTIONAL = PREFIX + "add_notional"
"""Notional this entry would add, per leg."""
MAX_TOTAL_NOTIONAL = PREFIX + "max_total_notional"
SIGNAL_AGE_SECONDS = PREFIX + "signal_age_seconds"
SIGNAL_MAX_AGE_SECONDS = PREFIX + "signal_max_age_seconds"
LONG_SLIPPAGE_BPS = PREFIX + "long_slippage_bps"
SHORT_SLIPPAGE_BPS = PREFIX + "short_slippage_bps"
MAX_SLIPPAGE_BPS = PREFIX + "max_slippage_bps"
LONG_BOOK_FILL = PREFIX + "long_book_fill"
"""Fraction of the wanted quantity the long venue's book can fill (1 = all of it)."""
SHORT_BOOK_FILL = PREFIX + "short_book_fill"
ORDER_QTY = PREFIX + "order_qty"
MIN_ORDER_QTY = PREFIX + "min_order_qty"
"""The smallest quantity both venues accept at this price (their minimum quantity and notional)."""
MAX_ORDER_QTY = PREFIX + "max_order_qty"
"""The largest market order both venues take (absent when neither lists a limit)."""
FUNDING_PAID = PREFIX + "funding_paid"
"""Net funding the pair has paid so far (negative: received)."""
CONFLICTING_PAIRS = PREFIX + "conflicting_pairs"
"""Open pairs on the same symbol with other venues, which would net against this one."""
LONG_BOOK_AGE_SECONDS = PREFIX + "long_book_age_seconds"
"""Age of the long venue's book: the venue's clock minus the book's own timestamp (never below 0)."""
SHORT_BOOK_AGE_SECONDS = PREFIX + "short_book_age_seconds"
MAX_BOOK_AGE_SECONDS = PREFIX + "max_book_age_seconds"
FAILED_ENTRIES = PREFIX + "failed_entries"
"""Entries of this pair key that failed in a row since its last entry that opened."""
ENTRY_COOLDOWN_SECONDS = PREFIX + "entry_cooldown_seconds"
"""How long the pair key waits after the latest of those failures."""
ENTRY_COOLDOWN_LEFT_SECONDS = PREFIX + "entry_cooldown_left_seconds"
"""What is left of that wait now (0: the next entry may go)."""

REQUIRED: tuple[str, ...] = (
    SPREAD,
    TRIGGER_MULTIPLIER,
    TOTAL_NOTIONAL,
    ADD_NOTIONAL,
    MAX_TOTAL_NOTIONAL,
    SIGNAL_AGE_SECONDS,
    SIGNAL_MAX_AGE_SECONDS,
    LONG_SLIPPAGE_BPS,
    SHORT_SLIPPAGE_BPS,
    MAX_SLIPPAGE_BPS,
    LONG_BOOK_FILL,
    SHORT_BOOK_FILL,
    ORDER_QTY,
    MIN_ORDER_QTY,
    CONFLICTING_PAIRS,
    LONG_BOOK_AGE_SECONDS,
    SHORT_BOOK_AGE_SECONDS,
    MAX_BOOK_AGE_SECONDS,
    FAILED_ENTRIES,
    ENTRY_COOLDOWN_SECONDS,
    ENTRY_COOLDOWN_LEFT_SECONDS,
)
REQUIRED_FOR_SCALE_IN: tuple[str, ...] = (INITIAL_SPREAD,)
