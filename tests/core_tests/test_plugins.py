"""Plugin loading: built-ins first, env block/allow lists, entry points, strict checks."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tradekit import BuyAction, ReasonCode, Strategy, StrategyView, evaluate_buy, hookimpl
from tradekit.broker.spec import BrokerSpec
from tradekit.decision import RulePhase, ScalingContext, block, passed
from tradekit.decision.verdict import Check
from tradekit.domain import Signal
from tradekit.plugins import BUILTIN_RULE_PLUGINS, PluginLoadError, Plugins
from tradekit.testing import make_context


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str, str], None]:
    """Install a throwaway distribution (dist-info + module) that declares entry points."""

    def install(dist: str, entry_points: str, module_source: str) -> None:
        info = tmp_path / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        (tmp_path / f"{dist}_plugin.py").write_text(textwrap.dedent(module_source))
        importlib.invalidate_caches()

    monkeypatch.syspath_prepend(str(tmp_path))
    return install


RULE_MODULE = """
    from tradekit import hookimpl
    from tradekit.decision import ReasonCode, RulePhase, block

    @hookimpl
    def evaluate_buy(context):
        if context.symbol == "GME":
            return [block("no_meme_stocks", RulePhase.HARD_SAFETY, ReasonCode.RISK_BUDGET_EXCEEDED, "house rule")]
        return []
"""


def test_builtin_rules_load_first_and_entry_points_after(
    fake_distribution: Callable[[str, str, str], None],
) -> None:
    fake_distribution("fakeplug", "[tradekit]\nhouse_rules = fakeplug_plugin\n", RULE_MODULE)
    plugins = Plugins(env={})
    names = [p.name for p in plugins.loaded]
    assert names[: len(BUILTIN_RULE_PLUGINS)] == list(BUILTIN_RULE_PLUGINS)
    assert "house_rules" in names
    origin = next(p.origin for p in plugins.loaded if p.name == "house_rules")
    assert origin == "entrypoint:fakeplug 1.0"
    decision = evaluate_buy(make_context(symbol="GME"), plugins=plugins)
    assert decision.action is BuyAction.BLOCK
    assert any(c.rule == "no_meme_stocks" for c in decision.checks)


def test_disabled_plugins_env_blocks_an_entry_point(
    fake_distribution: Callable[[str, str, str], None],
) -> None:
    fake_distribution("fakeplug", "[tradekit]\nhouse_rules = fakeplug_plugin\n", RULE_MODULE)
    plugins = Plugins(env={"TRADEKIT_DISABLED_PLUGINS": "house_rules"})
    assert "house_rules" not in [p.name for p in plugins.loaded]
    assert evaluate_buy(make_context(symbol="GME"), plugins=plugins).action is BuyAction.ENTER_NEW


def test_load_plugins_env_is_an_allowlist(
    fake_distribution: Callable[[str, str, str], None],
) -> None:
    fake_distribution("fakeplug", "[tradekit]\nhouse_rules = fakeplug_plugin\n", RULE_MODULE)
    assert "house_rules" not in [p.name for p in Plugins(env={"TRADEKIT_LOAD_PLUGINS": ""}).loaded]
    assert "house_rules" in [p.name for p in Plugins(env={"TRADEKIT_LOAD_PLUGINS": "house_rules"}).loaded]


def test_builtin_safety_rules_cannot_be_disabled() -> None:
    with pytest.raises(PluginLoadError, match="cannot be switched off"):
        Plugins(
            load_entrypoints=False,
            env={"TRADEKIT_DISABLED_PLUGINS": "tradekit.decision.rules.safety"},
        )
    with pytest.raises(PluginLoadError, match="cannot be removed"):
        Plugins(load_entrypoints=False, env={}).unregister("tradekit.decision.rules.preflight")


def test_duplicate_plugin_name_is_an_error() -> None:
    class Rule:
        @hookimpl
        def evaluate_buy(self, context: ScalingContext) -> list[Check]:
            return []

    with pytest.raises(PluginLoadError, match="two plugins are named"):
        Plugins(load_entrypoints=False, env={}, extra=[("mine", Rule()), ("mine", Rule())])


def test_implementation_of_an_unknown_hook_is_an_error() -> None:
    class Typo:
        @hookimpl
        def evaluate_buys(self, context: ScalingContext) -> None:
            return None

    with pytest.raises(PluginLoadError, match="evaluate_buys"):
        Plugins(load_entrypoints=False, env={}, extra=[("typo", Typo())])


def test_entry_point_that_fails_to_import_is_named(
    fake_distribution: Callable[[str, str, str], None],
) -> None:
    fake_distribution(
        "brokenplug",
        "[tradekit]\nbroken = brokenplug_plugin\n",
        "raise ImportError('missing dep')\n",
    )
    with pytest.raises(PluginLoadError, match=r"entry point 'broken'.*missing dep"):
        Plugins(env={})


def _strategy(strategy_name: str) -> type[Strategy]:
    class S(Strategy):
        name = strategy_name

        def on_bar(self, view: StrategyView) -> Sequence[Signal]:
            return []

    return S


def test_duplicate_strategy_names_are_an_error() -> None:
    first, second = _strategy("same"), _strategy("same")

    class A:
        @hookimpl
        def register_strategies(self, register: Callable[[type[Strategy]], None]) -> None:
            register(first)

    class B:
        @hookimpl
        def register_strategies(self, register: Callable[[type[Strategy]], None]) -> None:
            register(second)

    plugins = Plugins(load_entrypoints=False, env={}, extra=[("a", A()), ("b", B())])
    with pytest.raises(PluginLoadError, match="two strategies are named 'same'"):
        plugins.strategies()


def test_duplicate_broker_names_are_an_error() -> None:
    spec = BrokerSpec(name="paperish", description="x", factory=lambda settings, env: None)  # type: ignore[arg-type,return-value]

    class A:
        @hookimpl
        def register_brokers(self, register: Callable[[BrokerSpec], None]) -> None:
            register(spec)

    plugins = Plugins(load_entrypoints=False, env={}, extra=[("a", A()), ("b", A())])
    with pytest.raises(PluginLoadError, match="two brokers are named 'paperish'"):
        plugins.brokers()


def test_third_party_rule_is_written_like_a_builtin_and_traced() -> None:
    class MaxPrice:
        @hookimpl
        def evaluate_buy(self, context: ScalingContext) -> list[Check]:
            price = context.market.price
            if price is not None and price > 50:
                return [
                    block(
                        "max_price",
                        RulePhase.QUALIFICATION,
                        ReasonCode.PRICE_STRUCTURE,
                        f"{price} > 50",
                    )
                ]
            return [passed("max_price", RulePhase.QUALIFICATION, "cheap enough")]

    plugins = Plugins(load_entrypoints=False, env={}, extra=[("max-price", MaxPrice())])
    decision = evaluate_buy(make_context(), plugins=plugins)
    assert decision.action is BuyAction.BLOCK
    assert [c.rule for c in decision.checks if c.reason is ReasonCode.PRICE_STRUCTURE] == ["max_price"]
    assert plugins.hookimpl_plugin_names("evaluate_buy")[-1] == "max-price"


@pytest.fixture
def _isolated_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import tradekit.plugins as mod

    monkeypatch.setattr(mod, "_default", None)


@pytest.mark.usefixtures("_isolated_default")
def test_evaluate_buy_without_plugins_uses_the_default_manager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEKIT_LOAD_PLUGINS", "")
    assert evaluate_buy(make_context()).action is BuyAction.ENTER_NEW
