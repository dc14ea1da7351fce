"""Each example strategy replayed through the whole pipeline (decision engine, sizing,
limits, paper broker, ledger) on the shipped real bars."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from tradekit.config import AllocationSettings, ScannerSettings, Settings, TierSettings
from tradekit.data import load_daily_bars
from tradekit.decision import BuyDecision, CheckOutcome
from tradekit.domain import Bar
from tradekit.execution.paper_run import PaperRun, run_paper_replay
from tradekit.ledger import IntentPurpose, Ledger
from tradekit.plugins import Plugins
from tradekit.strategy import Strategy
from tradekit_strategies_examples import AverageDown, PyramidBreakout, SingleEntryBreakout, TieredMomentum

PLUGINS = Plugins(load_entrypoints=False, env={})


def bars(symbols: list[str], start: int, end: int) -> dict[str, list[Bar]]:
    lo, hi = datetime(start, 1, 1, tzinfo=UTC), datetime(end, 12, 31, 23, tzinfo=UTC)
    return {s: [b for b in series if lo <= b.time <= hi] for s, series in load_daily_bars(symbols).items()}


def replay(
    tmp_path: Path, strategy: type[Strategy], data: dict[str, list[Bar]], settings: Settings | None = None
) -> PaperRun:
    return run_paper_replay(
        strategy=strategy,
        settings=settings or Settings(),
        plugins=PLUGINS,
        bars=data,
        out_dir=tmp_path / "run",
        chart=False,
    )


def decisions(run: PaperRun) -> list[BuyDecision]:
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        stored = tx.decisions(limit=100_000)
    return [d.decision() for d in stored]


def test_single_entry_breakout_never_scales_in(tmp_path: Path) -> None:
    run = replay(tmp_path, SingleEntryBreakout, bars(["IBM", "MSFT"], 2004, 2008))
    assert run.summary.orders_by_purpose.get("entry", 0) > 5
    assert "scale_in" not in run.summary.orders_by_purpose
    assert set(run.summary.positions_by_entry_count) == {1}
    blocked = [d for d in decisions(run) if d.action.value == "block"]
    assert blocked, "repeated breakouts while holding must reach the engine and be blocked"
    assert all("scaling_not_permitted" in d.reasons for d in blocked)


def test_pyramid_adds_on_strength_only_3_percent_above_the_last_entry(tmp_path: Path) -> None:
    run = replay(tmp_path, PyramidBreakout, bars(["AAPL", "IBM"], 2004, 2008))
    assert run.summary.orders_by_purpose.get("scale_in", 0) > 3
    assert max(run.summary.positions_by_entry_count) <= 4
    assert max(run.summary.positions_by_entry_count) >= 2
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        history = tx.position_history()
    for pos in history:
        for before, after in zip(pos.entries, pos.entries[1:], strict=False):
            # the add was decided on the open price; the fill can differ only by slippage (0 here)
            assert after.price >= before.price * Decimal("1.03")


def test_average_down_adds_only_4_percent_below_and_respects_the_risk_budget(tmp_path: Path) -> None:
    run = replay(tmp_path, AverageDown, bars(["AAPL", "IBM", "MSFT"], 2003, 2012))
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        history = tx.position_history()
    multi = [p for p in history if p.entry_count > 1]
    assert multi, "the replay should contain at least one averaged-down position"
    for pos in history:
        assert pos.entry_count <= 3
        for before, after in zip(pos.entries, pos.entries[1:], strict=False):
            assert after.price <= before.price * Decimal("0.96")
    for d in decisions(run):
        if d.action.value == "scale_in":
            # risk = cost x 10% stop distance stays under 1% of equity when the add is allowed
            risk = next(c for c in d.checks if c.rule == "risk_budget")
            assert risk.outcome is CheckOutcome.PASS


TIERS = AllocationSettings(
    tiered=True,
    tiers={
        "core": TierSettings(allocation_pct=Decimal(8), cap_pct=Decimal(10), symbols=("AAPL", "MSFT")),
        "satellite": TierSettings(allocation_pct=Decimal(6), cap_pct=Decimal(7), symbols=("IBM", "GOOG")),
    },
)


@pytest.mark.parametrize("scanner_on", [True, False])
def test_tiered_momentum_sizes_by_tier_and_trades_only_scanner_candidates(tmp_path: Path, scanner_on: bool) -> None:
    settings = Settings(
        allocation=TIERS,
        scanner=ScannerSettings(enabled=scanner_on, top_n=2, baseline_symbols=()),
    )
    data = bars(["AAPL", "MSFT", "IBM", "GOOG"], 2006, 2009)
    run = replay(tmp_path, TieredMomentum, data, settings)
    entered = [d for d in decisions(run) if d.action.value == "enter_new"]
    assert entered
    for d in entered:
        sizing = next(c for c in d.checks if c.rule == "sizing")
        assert sizing.detail.startswith("tiered:")
        tier = next(c for c in d.checks if c.rule == "tier_capacity")
        assert tier.outcome is CheckOutcome.PASS
    closes = sorted(run.result.tally.candidates_by_close)
    if scanner_on:
        for d in entered:
            # the buy was decided at the open after the close whose scan picked the symbol
            decided_on = max(c for c in closes if c < d.evaluated_at)
            assert d.symbol in run.result.tally.candidates_by_close[decided_on]
        assert any(len(found) < len(data) for found in run.result.tally.candidates_by_close.values())
    else:
        assert closes == []
    with Ledger.open(run.ledger_url) as ledger, ledger.reading() as tx:
        fills = tx.fills_with_purpose()
    entries = [f for f, purpose in fills if purpose is IntentPurpose.ENTRY]
    assert entries
    for fill in entries:
        tier_name = TIERS.tier_of(fill.symbol)
        assert tier_name is not None
        share = TIERS.tiers[tier_name].allocation_pct / 100 / len(TIERS.tiers[tier_name].symbols)
        # one symbol's share of its tier, computed on equity that drifts only a little
        assert fill.notional <= Decimal(200_000) * share


def test_tiered_settings_from_the_shipped_example_config_load() -> None:
    from tradekit.config import load_settings

    config = Path(__file__).resolve().parents[2] / "packages/strategies-examples/tiered.toml"
    loaded = load_settings(config, env={})
    assert loaded.settings.allocation.tiered
    assert loaded.settings.scanner.enabled
    assert attrs.has(type(loaded.settings))
