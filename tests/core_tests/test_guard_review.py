"""The trading-state guard's fixes from review: the daily loss limit on a calendar whose
sessions abut (``24/7``), the trader's own ``allow_exits_when_halted`` against a hold
another process placed, and ``tradekit halt`` refusing a strategy no one trades."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit import BuyAction, Strategy, hookimpl
from tradekit.cli import cli
from tradekit.config import GuardSettings, Settings
from tradekit.domain import Side, Urgency
from tradekit.exits.calendar import TradingCalendar
from tradekit.guard import ACCOUNT, Scope, TradingState, Trigger
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger
from tradekit.ledger.records import IntentPurpose, OrderIntent
from tradekit.plugins import Plugins

from .guard_kit import MONDAY_CLOSE, MONDAY_OPEN, TUESDAY_CLOSE, account
from .test_pipeline import OPEN, Pyramid, Single, hold, make_trading

# 24/7 sessions run midnight to midnight UTC: a session's close is the next one's open.
MIDNIGHT = datetime(2024, 3, 6, tzinfo=UTC)


def round_the_clock_guard(ledger: Ledger, **settings: object) -> TradingGuard:
    return TradingGuard(
        ledger=ledger,
        settings=GuardSettings(**settings),  # type: ignore[arg-type]
        calendar=TradingCalendar("24/7"),
    )


# --- daily loss on a calendar whose sessions abut ---------------------------------------------------


def test_a_24_7_session_loss_seen_only_at_the_closes_halts_the_account(ledger: Ledger) -> None:
    guard = round_the_clock_guard(ledger, daily_loss_limit_pct=Decimal(3))
    # A replay observes once per session, at its close: midnight UTC.
    guard.observe(now=MIDNIGHT - timedelta(days=1), account=account(100_000))
    (halted,) = guard.observe(now=MIDNIGHT, account=account(90_000))
    assert (halted.trigger, halted.to_state) == (Trigger.DAILY_LOSS, TradingState.HALTED)
    assert "100,000.00" in halted.reason


def test_a_24_7_loss_across_midnight_counts_from_the_last_equity_before_it(ledger: Ledger) -> None:
    guard = round_the_clock_guard(ledger, daily_loss_limit_pct=Decimal(3))
    guard.observe(now=MIDNIGHT - timedelta(seconds=30), account=account(100_000))
    (halted,) = guard.observe(now=MIDNIGHT + timedelta(seconds=30), account=account(96_000))
    assert halted.trigger is Trigger.DAILY_LOSS
    assert "100,000.00" in halted.reason


def test_a_24_7_day_starts_from_the_first_equity_when_nothing_was_seen_the_day_before(ledger: Ledger) -> None:
    guard = round_the_clock_guard(ledger, daily_loss_limit_pct=Decimal(3))
    guard.observe(now=MIDNIGHT - timedelta(days=2), account=account(100_000))  # two sessions ago
    assert guard.observe(now=MIDNIGHT + timedelta(hours=1), account=account(90_000)) == []
    (halted,) = guard.observe(now=MIDNIGHT + timedelta(hours=2), account=account(87_000))
    assert "90,000.00" in halted.reason


def test_an_xnys_session_loss_still_counts_from_the_previous_close(ledger: Ledger) -> None:
    guard = TradingGuard(
        ledger=ledger, settings=GuardSettings(daily_loss_limit_pct=Decimal(3)), calendar=TradingCalendar()
    )
    guard.observe(now=MONDAY_CLOSE - timedelta(days=4), account=account(200_000))  # the Thursday before
    guard.observe(now=MONDAY_CLOSE, account=account(100_000))
    (halted,) = guard.observe(now=TUESDAY_CLOSE, account=account(96_000))
    assert "100,000.00" in halted.reason
    with ledger.reading() as tx:
        assert tx.trading_states().scope_state(ACCOUNT, TUESDAY_CLOSE).state is TradingState.HALTED


# --- the trader's own allow_exits_when_halted, whoever placed the halt -------------------------------


def order(purpose: IntentPurpose, side: Side) -> OrderIntent:
    return OrderIntent(
        intent_key=f"trend|KO|{purpose.value}",
        symbol="KO",
        side=side,
        purpose=purpose,
        created_at=MONDAY_OPEN,
        strategy="trend",
        qty=Decimal(10),
    )


def test_a_trader_that_allows_exits_when_halted_lets_them_out_of_a_halt_another_process_placed(
    ledger: Ledger,
) -> None:
    # The operator's `tradekit halt` runs without the trader's config: the hold forbids exits.
    operator = TradingGuard(ledger=ledger, calendar=TradingCalendar())
    (halted,) = operator.halt(ACCOUNT, reason="incident", actor="user:ops", at=MONDAY_OPEN)
    assert not halted.allow_exits
    trader = TradingGuard(
        ledger=ledger, settings=GuardSettings(allow_exits_when_halted=True), calendar=TradingCalendar()
    )
    with ledger.reading() as tx:
        states = trader.trading_states(tx)
    assert states.exit_blocker(strategy="trend", symbol="KO", at=MONDAY_OPEN) is None
    assert states.standing(strategy="trend", symbol="KO", at=MONDAY_OPEN).state is TradingState.HALTED
    with trader.sending(order(IntentPurpose.EXIT, Side.SELL), MONDAY_OPEN) as refusal:
        assert refusal is None
    with trader.sending(order(IntentPurpose.ENTRY, Side.BUY), MONDAY_OPEN) as refusal:
        assert refusal is not None
    # A trader without the setting still waits for the resume.
    with operator.sending(order(IntentPurpose.EXIT, Side.SELL), MONDAY_OPEN) as refusal:
        assert refusal is not None
    with ledger.reading() as tx:  # what is stored is unchanged
        assert tx.trading_states().exit_blocker(strategy="trend", symbol="KO", at=MONDAY_OPEN) is not None


def test_the_pipelines_exit_goes_out_under_a_halt_placed_without_the_traders_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    trading = make_trading(
        tmp_path,
        settings=Settings(guard=GuardSettings(allow_exits_when_halted=True)),
        ledger=Ledger.open(url, for_trading=True),
    )
    with trading.ledger:
        trading.reconcile()
        hold(trading)
        with Ledger.open(url) as elsewhere:
            TradingGuard(ledger=elsewhere, calendar=TradingCalendar()).halt(
                Scope.symbol("KO"), reason="incident", actor="user:ops", at=OPEN
            )
        trading.pipeline.plan_exit(trading.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
        assert len([r for r in trading.accepted() if r.side is Side.SELL]) == 1


# --- a strategy scope names a strategy someone trades --------------------------------------------


class PyramidPlugin:
    @hookimpl
    def register_strategies(self, register: Callable[[type[Strategy]], None]) -> None:
        register(Pyramid)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The guard commands with one strategy installed: ``pyr``."""
    monkeypatch.setattr(
        "tradekit.cli.guard.plugins",
        lambda: Plugins(load_entrypoints=False, env={}, extra=[("pyramid_plugin", PyramidPlugin())]),
    )
    return CliRunner(env={"TRADEKIT_LOAD_PLUGINS": "", "TRADEKIT_CONFIG": ""})


def test_a_halt_of_a_strategy_no_one_trades_is_refused_naming_the_installed_ones(
    cli_env: CliRunner, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    trading = make_trading(tmp_path, ledger=Ledger.open(url, for_trading=True))
    with trading.ledger:
        trading.reconcile()
        hold(trading)  # strategy "single" (not installed here) holds KO
        refused = cli_env.invoke(cli, ["halt", "--scope", "strategy:Single", "--ledger", url])
        assert refused.exit_code == 2, refused.output
        assert "'Single'" in refused.output
        assert "pyr, single" in refused.output  # installed, and holding a position in the ledger
        with trading.ledger.reading() as tx:
            assert tx.trading_state_transitions() == []
        outcome = trading.pipeline.process_buy(trading.signal("PFE", price="28"), Single, trading.market("PFE"))
        assert outcome.decision is not None
        assert outcome.decision.action is not BuyAction.BLOCK
        # The strategy installed here, and the one holding a position, are accepted as named.
        for name in ("pyr", "single"):
            accepted = cli_env.invoke(cli, ["reduce-only", "--scope", f"strategy:{name}", "--ledger", url])
            assert accepted.exit_code == 0, accepted.output


def test_force_halts_a_strategy_installed_only_where_the_trader_runs(cli_env: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).close()
    refused = cli_env.invoke(cli, ["reduce-only", "--scope", "strategy:elsewhere", "--ledger", url])
    assert refused.exit_code == 2, refused.output
    forced = cli_env.invoke(cli, ["halt", "--force", "--scope", "strategy:elsewhere", "--ledger", url])
    assert forced.exit_code == 0, forced.output
    with Ledger.open(url) as ledger, ledger.reading() as tx:
        (held,) = tx.trading_states().holds
    assert (str(held.scope), held.state) == ("strategy:elsewhere", TradingState.HALTED)
