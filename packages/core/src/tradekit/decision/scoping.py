"""Scope a rule plugin's ``evaluate_buy`` to named strategies or symbols."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any

from tradekit.decision.reasons import RulePhase
from tradekit.decision.verdict import not_applicable

# A hook implementation: a function or a method taking the context.
EvaluateBuy = Callable[..., Any]


def scoped(
    rule: str,
    phase: RulePhase,
    *,
    strategies: Collection[str] = (),
    symbols: Collection[str] = (),
) -> Callable[[EvaluateBuy], EvaluateBuy]:
    """Apply an ``evaluate_buy`` implementation only to some strategies and/or symbols.

    Outside its scope the rule is not run: the trace records it as not applicable, naming
    the scope. An empty collection means "any"::

        @hookimpl
        @scoped("no_friday_buys", RulePhase.QUALIFICATION, strategies={"breakout"})
        def evaluate_buy(context): ...
    """
    wanted_strategies = frozenset(strategies)
    wanted_symbols = frozenset(s.upper() for s in symbols)
    scope = " and ".join(
        part
        for part in (
            f"strategies {', '.join(sorted(wanted_strategies))}" if wanted_strategies else "",
            f"symbols {', '.join(sorted(wanted_symbols))}" if wanted_symbols else "",
        )
        if part
    )

    def wrap(evaluate: EvaluateBuy) -> EvaluateBuy:
        @functools.wraps(evaluate)
        def evaluate_in_scope(*args: Any, **kwargs: Any) -> Any:
            # A function or a method (``self`` first); pluggy passes the context last.
            context = kwargs["context"] if "context" in kwargs else args[-1]
            if (wanted_strategies and context.strategy not in wanted_strategies) or (
                wanted_symbols and context.symbol.upper() not in wanted_symbols
            ):
                return [not_applicable(rule, phase, f"{rule} applies to {scope} only")]
            return evaluate(*args, **kwargs)

        return evaluate_in_scope

    return wrap
