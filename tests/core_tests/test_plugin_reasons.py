"""A rule plugin speaks for itself: its own reason codes, stored and explained as its own, in scope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tradekit import hookimpl
from tradekit.config import Settings
from tradekit.data import load_daily_bars
from tradekit.decision import PluginReason, ReasonCode, RulePhase, block, evaluate_buy, passed, scoped
from tradekit.decision.context import ScalingContext
from tradekit.decision.verdict import Check
from tradekit.execution.paper_run import run_paper_replay
from tradekit.ledger import Ledger
from tradekit.plugins import PluginLoadError, Plugins
from tradekit.testing import make_context

from .test_buffered_ledger import TrendAdder

NO_FRIDAY_BUYS = PluginReason("house_rules", "no_friday_buys", "no new positions are opened on a Friday")
FRIDAY = datetime(2024, 3, 8, 15, 0, tzinfo=UTC)
THURSDAY = datetime(2024, 3, 7, 15, 0, tzinfo=UTC)


class HouseRules:
    @hookimpl
    def register_reasons(self, register: Callable[[PluginReason], None]) -> None:
        register(NO_FRIDAY_BUYS)

    @hookimpl
    def evaluate_buy(self, context: ScalingContext) -> list[Check]:
        if context.now.weekday() == 4:
            return [block("no_friday_buys", RulePhase.QUALIFICATION, NO_FRIDAY_BUYS, "house rule: not on a Friday")]
        return [passed("no_friday_buys", RulePhase.QUALIFICATION, "not a Friday")]


@pytest.fixture
def plugins() -> Plugins:
    return Plugins(load_entrypoints=False, env={}, extra=[("house_rules", HouseRules())])


def test_a_plugin_blocks_with_its_own_reason_and_declares_it(plugins: Plugins) -> None:
    decision = evaluate_buy(make_context(now=FRIDAY), plugins=plugins)
    assert decision.reasons == (NO_FRIDAY_BUYS,)
    assert decision.reasons[0] == "house_rules:no_friday_buys"
    assert not isinstance(decision.reasons[0], ReasonCode)
    assert plugins.reasons() == {"house_rules:no_friday_buys": NO_FRIDAY_BUYS}
    assert plugins.reasons()["house_rules:no_friday_buys"].description == "no new positions are opened on a Friday"
    assert evaluate_buy(make_context(now=THURSDAY), plugins=plugins).allows_order


def test_the_plugins_reason_is_stored_counted_and_explained_as_its_own(plugins: Plugins, ledger: Ledger) -> None:
    decision = evaluate_buy(make_context(now=FRIDAY), plugins=plugins)
    with ledger.transaction() as tx:
        tx.record_decision(decision)
    with ledger.reading() as tx:
        stored = tx.decision(decision.decision_id)
        counts = tx.decision_counts()
    assert stored is not None
    assert stored.reasons == ("house_rules:no_friday_buys",)
    read = stored.decision()
    assert read == decision
    assert isinstance(read.reasons[0], PluginReason)
    assert (read.reasons[0].plugin, read.reasons[0].code) == ("house_rules", "no_friday_buys")
    assert counts == {("block", "house_rules:no_friday_buys"): 1}
    assert "reasons       house_rules:no_friday_buys" in read.explain()
    assert "(house_rules:no_friday_buys): house rule: not on a Friday" in read.explain()


def test_a_replay_summarises_decisions_by_the_plugins_reason(plugins: Plugins, tmp_path: Path) -> None:
    bars = {s: [b for b in series if b.time.year < 2002] for s, series in load_daily_bars(["AAPL"]).items()}
    run = run_paper_replay(
        strategy=TrendAdder, settings=Settings(), plugins=plugins, bars=bars, out_dir=tmp_path, chart=False
    )
    blocked = run.summary.decisions_by_reason.get(("block", "house_rules:no_friday_buys"), 0)
    assert blocked > 0
    assert run.statistics.decisions_by_reason[("block", "house_rules:no_friday_buys")] == blocked
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        fridays = [d for d in tx.decisions(limit=10_000) if d.evaluated_at.weekday() == 4]
    assert fridays
    assert all(d.action == "block" and "house_rules:no_friday_buys" in d.reasons for d in fridays)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (PluginReason("someone_else", "no_friday_buys"), "namespace must be the plugin's name, house_rules:"),
        ("house_rules:no_friday_buys", "not a PluginReason"),
    ],
)
def test_a_reason_outside_the_plugins_namespace_is_refused(declared: Any, message: str) -> None:
    plugin = SimpleNamespace(register_reasons=hookimpl(lambda register: register(declared)))
    manager = Plugins(load_entrypoints=False, env={}, extra=[("house_rules", plugin)])
    with pytest.raises(PluginLoadError, match=message):
        manager.reasons()


def test_a_reason_declared_twice_is_refused() -> None:
    twice = SimpleNamespace(
        register_reasons=hookimpl(lambda register: (register(NO_FRIDAY_BUYS), register(NO_FRIDAY_BUYS)))
    )
    manager = Plugins(load_entrypoints=False, env={}, extra=[("house_rules", twice)])
    with pytest.raises(PluginLoadError, match="declared twice"):
        manager.reasons()


def test_a_check_may_not_carry_a_bare_string_as_its_reason() -> None:
    with pytest.raises(ValueError, match="must be a ReasonCode or the plugin's own PluginReason"):
        block("r", RulePhase.QUALIFICATION, "my_reason", "no")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a:b", "has space"])
def test_a_plugin_reason_is_a_plain_name(bad: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        PluginReason("house_rules", bad)


class ScopedRules:
    @hookimpl
    @scoped("no_friday_buys", RulePhase.QUALIFICATION, strategies={"breakout"}, symbols={"ko"})
    def evaluate_buy(self, context: ScalingContext) -> list[Check]:
        return [block("no_friday_buys", RulePhase.QUALIFICATION, ReasonCode.RISK_BUDGET_EXCEEDED, "in scope")]


@pytest.mark.parametrize(
    ("strategy", "symbol", "applies"),
    [("breakout", "KO", True), ("pyramid", "KO", False), ("breakout", "PEP", False)],
)
def test_a_scoped_rule_judges_only_its_strategies_and_symbols(strategy: str, symbol: str, applies: bool) -> None:
    manager = Plugins(load_entrypoints=False, env={}, extra=[("scoped", ScopedRules())])
    decision = evaluate_buy(make_context(strategy=strategy, symbol=symbol), plugins=manager)
    (check,) = [c for c in decision.checks if c.rule == "no_friday_buys"]
    if applies:
        assert check.detail == "in scope"
        assert not decision.allows_order
    else:
        assert check.detail == "no_friday_buys applies to strategies breakout and symbols KO only"
        assert decision.allows_order


def test_explain_and_plugins_show_the_plugins_own_reason_with_its_description(
    plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from click.testing import CliRunner

    # The module, not the ``tradekit.cli.main`` function the package exports under that name.
    main = importlib.import_module("tradekit.cli.main")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    decision = evaluate_buy(make_context(now=FRIDAY), plugins=plugins)
    with ledger.transaction() as tx:
        tx.record_decision(decision)
    ledger.close()
    monkeypatch.setattr(main, "plugins", lambda: plugins)
    runner = CliRunner(env={"TRADEKIT_CONFIG": ""})
    explained = runner.invoke(
        main.cli, ["explain", decision.decision_id, "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}"]
    )
    assert explained.exit_code == 0, explained.output
    assert "reasons       house_rules:no_friday_buys" in explained.output
    assert "house_rules:no_friday_buys: no new positions are opened on a Friday" in explained.output
    listed = runner.invoke(main.cli, ["plugins", "--json"])
    assert '"house_rules:no_friday_buys": "no new positions are opened on a Friday"' in listed.output
