"""Type B perp-perp pair trades with the spread rescue scale-in.

A pair is one symbol, long on one venue and short on another. ``PairTrader`` opens each
entry on both legs, scales in when the spread widens by a multiplier step over the initial
entry's spread (decided by ``tradekit.evaluate_buy`` with the pair rule plugged in), watches
the whole pair, and closes it on its rails. ``PairStore`` keeps pairs next to the ledger;
``position_rows`` is the positions view; ``synthetic`` generates test series (synthetic).
"""

from tradekit_venue_ccxt.pairs.config import LegFailurePolicy, PairTradingConfig
from tradekit_venue_ccxt.pairs.models import (
    ExitReason,
    Leg,
    LegPurpose,
    PairEventKind,
    PairPosition,
    PairSignal,
    PairStatus,
    SignalStatus,
    pair_key,
)
from tradekit_venue_ccxt.pairs.spread import next_trigger, spread_of
from tradekit_venue_ccxt.pairs.store import PairStore, PairStoreError
from tradekit_venue_ccxt.pairs.trader import CycleReport, PairRuleMissing, PairSetupError, PairTrader
from tradekit_venue_ccxt.pairs.venue import PerpVenue
from tradekit_venue_ccxt.pairs.view import PairRow, position_rows, render_rows, rows_to_json

__all__ = [
    "CycleReport",
    "ExitReason",
    "Leg",
    "LegFailurePolicy",
    "LegPurpose",
    "PairEventKind",
    "PairPosition",
    "PairRow",
    "PairRuleMissing",
    "PairSetupError",
    "PairSignal",
    "PairStatus",
    "PairStore",
    "PairStoreError",
    "PairTrader",
    "PairTradingConfig",
    "PerpVenue",
    "SignalStatus",
    "next_trigger",
    "pair_key",
    "position_rows",
    "render_rows",
    "rows_to_json",
    "spread_of",
]
