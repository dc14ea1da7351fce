"""The example strategies are found through the `tradekit` entry-point group."""

from __future__ import annotations

from decimal import Decimal

from tradekit import PriceStructure
from tradekit.plugins import Plugins
from tradekit.strategy import DEFAULT_SCALING_POLICY
from tradekit_strategies_examples import PyramidBreakout, SingleEntryBreakout


def test_examples_register_through_the_entry_point() -> None:
    plugins = Plugins(env={"TRADEKIT_LOAD_PLUGINS": "examples"})
    strategies = plugins.strategies()
    assert strategies["breakout"] is SingleEntryBreakout
    assert strategies["pyramid"] is PyramidBreakout
    assert any(
        p.name == "examples" and p.origin.startswith("entrypoint:tradekit-strategies-examples") for p in plugins.loaded
    )


def test_single_entry_strategy_declares_no_policy() -> None:
    assert SingleEntryBreakout.policy() is DEFAULT_SCALING_POLICY


def test_pyramid_strategy_declares_a_four_entry_pyramid() -> None:
    policy = PyramidBreakout.policy()
    assert policy.allow_scaling
    assert policy.max_entries == 4
    assert policy.price_structure is PriceStructure.PYRAMID
    assert policy.price_step_pct == Decimal(3)
