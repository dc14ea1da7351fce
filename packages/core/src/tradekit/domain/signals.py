"""Trading signals produced by strategies, scanners or other plugins."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import attrs

from tradekit.domain.values import optional_positive, to_utc, utc


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Urgency(StrEnum):
    """How soon an exit must go out: planned (next session window) or immediate."""

    PLANNED = "planned"
    IMMEDIATE = "immediate"


def _confidence(_inst: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValueError(f"{attribute.name} must be an integer from 1 to 5, got {value!r}")


@attrs.frozen(kw_only=True)
class Signal:
    """A request to buy or sell, with the evidence needed to judge its freshness.

    ``reference_price`` is the price the signal was computed at (e.g. a scan price or the
    bar close); the pipeline refuses the signal when the current price has gapped away from
    it or when it is older than the allowed age.
    """

    symbol: str = attrs.field(validator=attrs.validators.min_len(1))
    side: Side
    confidence: int = attrs.field(validator=_confidence)
    generated_at: datetime = attrs.field(converter=to_utc, validator=utc)
    reference_price: Decimal | None = attrs.field(default=None, validator=optional_positive)
    source: str = ""
    reason: str = ""
    urgency: Urgency = Urgency.PLANNED
    payload: dict[str, str] = attrs.field(factory=dict)
    signal_id: str = attrs.field()

    @signal_id.default
    def _derive_id(self) -> str:
        # Deterministic: the same signal seen again after a restart has the same id, so
        # the ledger's one-order-per-intent guarantees can key on it.
        basis = f"{self.source}|{self.symbol}|{self.side}|{self.generated_at.isoformat()}"
        return "sig-" + hashlib.sha256(basis.encode()).hexdigest()[:20]
