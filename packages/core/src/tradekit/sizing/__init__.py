"""Position sizing: how much to buy once the engine has said yes."""

from tradekit.sizing.result import SizingResult

__all__ = ["SizingResult"]
