"""``tradekit halt / reduce-only / resume / state`` (and ``explain`` for a guard block): the
ledger only, no broker, while a trader holds the ledger; ``--json`` on each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tradekit import BuyAction
from tradekit.cli import cli
from tradekit.ledger import Ledger

from .guard_kit import MONDAY_CLOSE, account, make_guard
from .test_pipeline import Single, make_trading


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"TRADEKIT_LOAD_PLUGINS": "", "TRADEKIT_CONFIG": ""})


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A ledger that exists (the commands never create one: a mistyped path must not halt nothing)."""
    location = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(location).close()
    return location


def invoke(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_halt_reduce_only_and_resume_write_the_ledger_and_say_what_holds(runner: CliRunner, url: str) -> None:
    halted = invoke(runner, "halt", "--scope", "symbol:ko", "--reason", "earnings", "--by", "ana", "--ledger", url)
    assert {k: halted[k] for k in ("scope", "state", "trigger", "why", "by")} == {
        "scope": "symbol:KO",
        "state": "halted",
        "trigger": "manual",
        "why": "earnings",
        "by": "user:ana",
    }
    (made,) = halted["transitions"]
    assert (made["from_state"], made["to_state"], made["allow_exits"]) == ("active", "halted", False)
    # --force: no strategy is installed in this test's environment (plugins are not loaded).
    reduced = invoke(runner, "reduce-only", "--force", "--scope", "strategy:pyramid", "--by", "ana", "--ledger", url)
    assert (reduced["scope"], reduced["state"]) == ("strategy:pyramid", "reduce_only")
    state = invoke(runner, "state", "--ledger", url, "--history", "10")
    assert [(s["scope"], s["state"], s["by"]) for s in state["scopes"]] == [
        ("account", "active", None),
        ("strategy:pyramid", "reduce_only", "user:ana"),
        ("symbol:KO", "halted", "user:ana"),
    ]
    assert state["scopes"][2]["since"] == made["time"]
    assert [h["to_state"] for h in state["history"]] == ["halted", "reduce_only"]
    resumed = invoke(runner, "resume", "--scope", "symbol:KO", "--reason", "reported", "--by", "bo", "--ledger", url)
    assert resumed["state"] == "active"
    assert [(t["from_state"], t["to_state"], t["actor"]) for t in resumed["transitions"]] == [
        ("halted", "active", "user:bo")
    ]
    with Ledger.open(url) as ledger, ledger.reading() as tx:
        assert [h.to_state.value for h in tx.trading_state_transitions()] == ["halted", "reduce_only", "active"]


def test_halt_allow_exits_is_kept_with_the_hold(runner: CliRunner, url: str) -> None:
    halted = invoke(runner, "halt", "--allow-exits", "--ledger", url)
    assert halted["transitions"][0]["allow_exits"] is True
    with Ledger.open(url) as ledger, ledger.reading() as tx:
        assert tx.trading_states().exit_blocker(strategy=None, symbol="KO", at=MONDAY_CLOSE) is None


def test_the_text_output_names_the_state_the_hold_and_who(runner: CliRunner, url: str) -> None:
    result = runner.invoke(cli, ["halt", "--reason", "kill switch", "--by", "ana", "--ledger", url])
    assert result.exit_code == 0, result.output
    assert "account is now HALTED" in result.output
    assert "by user:ana: kill switch" in result.output
    shown = runner.invoke(cli, ["state", "--ledger", url])
    assert "HALTED" in shown.output
    assert "kill switch" in shown.output


def test_resume_with_nothing_held_changes_nothing(runner: CliRunner, url: str) -> None:
    resumed = invoke(runner, "resume", "--ledger", url)
    assert (resumed["state"], resumed["transitions"]) == ("active", [])


def test_a_bad_scope_is_a_clear_error_and_writes_nothing(runner: CliRunner, url: str) -> None:
    result = runner.invoke(cli, ["halt", "--scope", "desk:7", "--ledger", url])
    assert result.exit_code == 2
    assert "account, strategy:NAME, symbol:SYM" in result.output
    with Ledger.open(url) as ledger, ledger.reading() as tx:
        assert tx.trading_state_transitions() == []


def test_resuming_a_daily_loss_halt_before_the_next_session_needs_force(runner: CliRunner, url: str) -> None:
    now = datetime.now(UTC)  # the command line resumes "now"
    with Ledger.open(url) as ledger:
        guard = make_guard(ledger, daily_loss_limit_pct=Decimal(2))
        guard.observe(now=now - timedelta(days=1), account=account(100_000))
        (halted,) = guard.observe(now=now, account=account(97_000))
    assert halted.until is not None
    assert halted.until > now
    refused = runner.invoke(cli, ["resume", "--ledger", url])
    assert refused.exit_code == 1
    assert "--force" in refused.output
    assert halted.until.isoformat() in refused.output
    forced = invoke(runner, "resume", "--force", "--ledger", url)
    assert [t["trigger"] for t in forced["transitions"]] == ["daily_loss"]
    assert forced["state"] == "active"


def test_halt_works_while_a_trader_holds_the_ledger_and_stops_its_next_buy(
    runner: CliRunner, tmp_path: Path, url: str
) -> None:
    trader = make_trading(tmp_path, ledger=Ledger.open(url, for_trading=True))
    trader.reconcile()
    invoke(runner, "halt", "--reason", "stop now", "--ledger", url)
    outcome = trader.pipeline.process_buy(trader.signal(), Single, trader.market())
    trader.ledger.close()
    assert outcome.decision is not None
    assert outcome.decision.action is BuyAction.BLOCK
    assert trader.accepted() == []


def test_explain_shows_the_transition_that_blocked_a_decision(runner: CliRunner, tmp_path: Path, url: str) -> None:
    trader = make_trading(tmp_path, ledger=Ledger.open(url))
    trader.reconcile()
    guard = make_guard(trader.ledger, max_drawdown_pct=Decimal(2))
    guard.observe(now=trader.clock.now, account=account(100_000))
    guard.observe(now=trader.clock.now, account=account(97_000))
    blocked = trader.pipeline.process_buy(trader.signal(), Single, trader.market())
    trader.ledger.close()
    assert blocked.decision is not None
    trace = invoke(runner, "explain", blocked.decision.decision_id, "--ledger", url)
    cause = trace["trading_state_transition"]
    assert (cause["scope"], cause["trigger"], cause["to_state"], cause["actor"]) == (
        "account",
        "max_drawdown",
        "halted",
        "trigger:max_drawdown",
    )
    text = runner.invoke(cli, ["explain", blocked.decision.decision_id, "--ledger", url])
    assert "blocked by the trading-state transition" in text.output
    assert "(max_drawdown) by trigger:max_drawdown" in text.output
