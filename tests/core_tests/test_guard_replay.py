"""The same guard in a replay: the triggers run at each close on the paper broker, the run
summary counts the buys they blocked, and a buffered replay leaves the rows a committing one does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import GuardSettings, Settings
from tradekit.domain import Bar, Side
from tradekit.execution.paper_run import PaperRun, run_paper_replay
from tradekit.guard import ACCOUNT, TradingState, Trigger
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins

from .test_buffered_ledger import TrendAdder, _bars, _dump

COSTS = PaperBrokerConfig(commission_per_order=Decimal(1))


def replay(
    out: Path,
    guard: GuardSettings,
    *,
    buffered: bool = True,
    config: PaperBrokerConfig = COSTS,
    bars: dict[str, list[Bar]] | None = None,
) -> PaperRun:
    return run_paper_replay(
        strategy=TrendAdder,
        settings=Settings(guard=guard),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=bars if bars is not None else _bars(),
        out_dir=out,
        broker_config=config,
        chart=False,
        buffered=buffered,
    )


def test_a_backtest_shows_what_the_drawdown_halt_would_have_done(tmp_path: Path) -> None:
    free = replay(tmp_path / "free", GuardSettings())
    guarded = replay(tmp_path / "guarded", GuardSettings(max_drawdown_pct=Decimal(1)))
    assert free.summary.guard_blocked_buys == 0
    with Ledger.open(guarded.ledger_url) as ledger, ledger.reading() as tx:
        (halt,) = tx.trading_state_transitions()
        buys_after = [
            i for i in tx.intents_with_prefix("trend_adder|") if i.created_at > halt.time and i.side is Side.BUY
        ]
        last_state = tx.trading_states().scope_state(ACCOUNT, halt.time)
    assert (halt.trigger, halt.to_state) == (Trigger.MAX_DRAWDOWN, TradingState.HALTED)
    assert last_state.state is TradingState.HALTED  # no human resumes a replay: it stays halted
    assert buys_after == []
    blocked = guarded.summary.decisions_by_reason[("block", "trading_halted")]
    assert blocked > 0
    assert guarded.summary.guard_blocked_buys == blocked
    assert guarded.summary.as_json()["guard_blocked_buys"] == blocked
    # Halted without exits allowed: the sells decided after the halt never went out; each
    # waited, window after window.
    assert guarded.result.tally.exits_rolled > 0
    assert guarded.summary.orders_by_purpose["entry"] < free.summary.orders_by_purpose["entry"]


def test_a_halt_that_allows_exits_still_sells_in_the_backtest(tmp_path: Path) -> None:
    guarded = replay(tmp_path / "exits", GuardSettings(max_drawdown_pct=Decimal(1), allow_exits_when_halted=True))
    assert guarded.summary.guard_blocked_buys > 0
    assert guarded.result.tally.exits_rolled == 0


def test_a_buffered_replay_with_the_guard_leaves_exactly_the_rows_a_committing_one_leaves(tmp_path: Path) -> None:
    guard = GuardSettings(
        max_drawdown_pct=Decimal(4),
        daily_loss_limit_pct=Decimal("0.4"),
        losing_streak_exits=2,
        exit_cooldown_minutes=2880,
    )
    config = PaperBrokerConfig(fill_slices=3, slippage_bps=Decimal(5), commission_per_order=Decimal(1))
    # Two years: every trigger fires and the committing ledger (a transaction per write) stays affordable.
    bars = _bars(cutoff=datetime(2002, 1, 1, tzinfo=UTC))
    runs = {mode: replay(tmp_path / mode, guard, buffered=mode == "b", config=config, bars=bars) for mode in ("c", "b")}
    committing, buffered = _dump(runs["c"].ledger_url), _dump(runs["b"].ledger_url)
    triggers = {row[3] for row in committing["tk_trading_state_transitions"]}
    assert triggers >= {"losing_streak", "exit_cooldown"}
    assert committing["tk_trading_state_marks"]
    for table, rows in committing.items():
        assert buffered[table] == rows, f"{table} differs between the buffered and the committing replay"
    assert runs["b"].summary == runs["c"].summary
    assert runs["c"].summary.guard_blocked_buys > 0
