"""The built-in ranking for the scanner: 20-day momentum, a plugin like the built-in rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tradekit.domain.market import Bar
from tradekit.hookspecs import hookimpl
from tradekit.scanner.models import Candidate

MOMENTUM_LOOKBACK = 20


@hookimpl(trylast=True)
def scan_candidates(bars: Mapping[str, Sequence[Bar]], as_of: datetime, top_n: int) -> list[Candidate] | None:
    """The built-in ranking: 20-day momentum (close over close 20 bars earlier)."""
    scored: list[Candidate] = []
    for symbol, series in bars.items():
        # A replay hands over views that already end at as_of: no copy needed then.
        upto = series if series and series[-1].time <= as_of else [b for b in series if b.time <= as_of]
        if len(upto) <= MOMENTUM_LOOKBACK:
            continue
        last, then = upto[-1], upto[-1 - MOMENTUM_LOOKBACK]
        score = last.close / then.close - 1
        scored.append(
            Candidate(
                symbol=symbol,
                score=score,
                scan_price=last.close,
                scanned_at=last.time,
                reason=f"{MOMENTUM_LOOKBACK}-day momentum {score * 100:+.2f}%",
            )
        )
    scored.sort(key=lambda c: (-c.score, c.symbol))
    return scored[:top_n]
