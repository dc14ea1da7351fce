"""The built-in buy rules, one module per phase, each module a pluggy plugin.

Every rule is a plain function ``(ScalingContext) -> Check``; each phase module exposes its
rules as ``RULES`` and implements the ``evaluate_buy`` hook by running them. A third-party
rule is written exactly the same way.
"""

from collections.abc import Callable

from tradekit.decision.context import ScalingContext
from tradekit.decision.verdict import Check

Rule = Callable[[ScalingContext], Check]

__all__ = ["Rule"]
