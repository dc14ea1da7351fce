"""The answer of a ``size_position`` hook."""

from __future__ import annotations

from decimal import Decimal

import attrs

from tradekit.domain.values import positive


@attrs.frozen(kw_only=True)
class SizingResult:
    """How much to buy: a quantity (possibly fractional) at an estimated price.

    ``qty`` is zero when nothing can be bought (then ``detail`` says why); ``method`` names
    the sizer that decided, for the audit trail.
    """

    qty: Decimal
    price: Decimal = attrs.field(validator=positive)
    method: str
    detail: str = ""
    fractional: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.qty.is_finite() or self.qty < 0:
            raise ValueError(f"sizing {self.method}: qty must be finite and >= 0, got {self.qty}")

    @property
    def notional(self) -> Decimal:
        return self.qty * self.price
