"""Command-line value types."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import click

# Recent click types ParamType by its value; older releases, which tradekit allows, cannot subscript it.
if TYPE_CHECKING:
    _ParamType = click.ParamType[Decimal]
else:
    _ParamType = click.ParamType


class DecimalType(_ParamType):
    """A finite decimal number, read exactly (never through float)."""

    name = "decimal"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        if isinstance(value, Decimal):
            return value
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a decimal number", param, ctx)
        if not number.is_finite():
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


DECIMAL = DecimalType()
