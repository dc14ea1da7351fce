"""A paper replay into a named ledger survives being stopped: run again, it continues from its
last checkpoint and ends with exactly what an uninterrupted run ends with."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.execution.paper_run import ReplayMismatch, checkpointed_paper_account, run_paper_replay
from tradekit.plugins import Plugins

from .test_buffered_ledger import TrendAdder, _bars, _dump

PLUGINS = Plugins(load_entrypoints=False, env={})
# Partial fills, slippage and commissions: fills, order events and positions are not one-to-one.
CONFIG = PaperBrokerConfig(fill_slices=3, slippage_bps=Decimal(5), commission_per_order=Decimal(1))


class Stop(Exception):
    """The process stops here (an exception stands in for a crash the ledger never sees)."""


def replay(ledger: Path, *, stop_after: int | None = None, config: PaperBrokerConfig = CONFIG) -> Any:
    seen = 0
    ticks = itertools.count()

    def progress(_bars: int) -> None:
        nonlocal seen
        seen += 1
        if stop_after is not None and seen == stop_after:
            raise Stop

    return run_paper_replay(
        strategy=TrendAdder,
        settings=Settings(),
        plugins=PLUGINS,
        bars=_bars(),
        out_dir=ledger.parent,
        broker_config=config,
        chart=False,
        ledger_path=ledger,
        # A clock that moves a second each time it is read (once a session): a checkpoint
        # every 10 sessions, so a stop between two loses some sessions that are replayed.
        checkpoint_seconds=10,
        monotonic=lambda: float(next(ticks)),
        progress=progress,
    )


def account(ledger: Path) -> tuple[Any, Any]:
    """The paper account the run left: its last state file's cash and positions."""
    assert len(list(ledger.parent.glob(f"{ledger.name}.paper-*.json"))) == 1
    broker = checkpointed_paper_account(ledger, CONFIG)
    return broker.get_account().cash, sorted((p.symbol, p.qty) for p in broker.get_positions())


@pytest.mark.parametrize("stops", [[7], [3, 40, 41], [90]])
def test_a_stopped_replay_continues_from_its_checkpoint_and_ends_as_an_uninterrupted_one(
    tmp_path: Path, stops: list[int]
) -> None:
    whole = replay(tmp_path / "whole" / "ledger.db")
    ledger = tmp_path / "stopped" / "ledger.db"
    ledger.parent.mkdir()
    for stop in stops:
        with pytest.raises(Stop):
            replay(ledger, stop_after=stop)
    resumed = replay(ledger)

    assert resumed.started == "resumed"
    expected, found = _dump(whole.ledger_url), _dump(resumed.ledger_url)
    assert expected["tk_order_intents"], "the replay traded"
    for table, rows in expected.items():
        assert found[table] == rows, f"{table} differs from the uninterrupted run's"
    assert resumed.summary == whole.summary
    assert resumed.result.tally == whole.result.tally
    assert account(ledger) == account(tmp_path / "whole" / "ledger.db")


def test_rerunning_a_finished_replay_changes_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    first = replay(ledger)
    before = _dump(first.ledger_url)
    again = replay(ledger)

    assert again.started == "finished"
    assert _dump(again.ledger_url) == before
    assert again.summary == first.summary


def test_a_ledger_holding_another_replay_is_refused_naming_what_differs(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with pytest.raises(Stop):
        replay(ledger, stop_after=5)
    with pytest.raises(ReplayMismatch, match="paper_account_sha256 differ"):
        replay(ledger, config=PaperBrokerConfig(commission_per_order=Decimal(2)))
