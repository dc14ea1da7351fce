"""Where a held position's next scale-in could come: the owner's policy read against the position.

``tradekit positions`` and the status page both show it, so it lives here, below both.
"""

from __future__ import annotations

from typing import Any

from tradekit.config.settings import Settings
from tradekit.domain.positions import Position
from tradekit.strategy.base import Strategy
from tradekit.strategy.policy import PriceStructure


def next_scale_in(position: Position, strategy: type[Strategy] | None, settings: Settings) -> dict[str, Any]:
    """When and where the next scale-in could happen under the owner's policy and the account."""
    if strategy is None:
        return {
            "allowed": False,
            "why": "no owning strategy (adopted from the broker)"
            if position.strategy is None
            else f"strategy {position.strategy!r} is not installed",
        }
    policy = strategy.policy()
    if not policy.allow_scaling or not settings.scale_in.enabled:
        return {"allowed": False, "why": "scaling not permitted"}
    limit = min(policy.max_entries, settings.scale_in.max_entries_per_symbol)
    if position.entry_count >= limit:
        return {"allowed": False, "why": f"max entries reached ({position.entry_count}/{limit})"}
    wait = max(policy.min_time_between_entries, settings.scale_in.min_time_between_entries)
    last = position.last_entry_price
    step = policy.price_step_pct / 100
    price: str
    if policy.price_structure is PriceStructure.PYRAMID:
        price = f">= {last * (1 + step):.4f}"
    elif policy.price_structure is PriceStructure.AVERAGE_DOWN:
        price = f"<= {last * (1 - step):.4f}"
    else:
        price = "any"
    return {
        "allowed": True,
        "entry": position.entry_count + 1,
        "max_entries": limit,
        "not_before": (position.last_entry_time + wait).isoformat(),
        "price": price,
    }
