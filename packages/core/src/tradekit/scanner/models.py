"""What the scanner finds: candidates with the price and time they were scanned at."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from tradekit.domain.values import positive, to_utc, utc


@attrs.frozen(kw_only=True)
class Candidate:
    symbol: str
    score: Decimal
    scan_price: Decimal = attrs.field(validator=positive)
    scanned_at: datetime = attrs.field(converter=to_utc, validator=utc)
    reason: str = ""


@attrs.frozen(kw_only=True)
class ScanResult:
    scanned_at: datetime = attrs.field(converter=to_utc, validator=utc)
    candidates: tuple[Candidate, ...]
    baseline: tuple[str, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        ranked = tuple(c.symbol for c in self.candidates)
        return ranked + tuple(s for s in self.baseline if s not in ranked)
