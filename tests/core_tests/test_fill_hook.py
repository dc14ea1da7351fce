"""on_fill: each fill of tradekit's orders is announced once, after it is committed; a plugin
that raises is logged and the fill stands."""

from __future__ import annotations

from pathlib import Path

from tradekit import hookimpl
from tradekit.domain.orders import Fill
from tradekit.ledger.records import IntentPurpose, OrderIntent
from tradekit.plugins import Plugins

from .test_pipeline import Single, make_trading


class Listener:
    def __init__(self) -> None:
        self.heard: list[tuple[str, IntentPurpose, bool]] = []
        self.ledger_url = ""

    @hookimpl
    def on_fill(self, fill: Fill, intent: OrderIntent) -> None:
        from tradekit.ledger import Ledger

        # Another connection sees it: the announcement comes after the commit.
        with Ledger.open(self.ledger_url, create=False) as other, other.reading() as tx:
            committed = tx.fill(fill.execution_id) is not None
        self.heard.append((fill.symbol, intent.purpose, committed))


class Broken:
    @hookimpl
    def on_fill(self, fill: Fill, intent: OrderIntent) -> None:
        raise RuntimeError("chat service down")


def test_a_fill_is_announced_once_after_its_commit_and_a_broken_listener_changes_nothing(tmp_path: Path) -> None:
    listener = Listener()
    manager = Plugins(load_entrypoints=False, env={}, extra=[("listener", listener), ("broken", Broken())])
    trading = make_trading(tmp_path, plugins=manager)
    listener.ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    trading.reconcile()
    outcome = trading.pipeline.process_buy(trading.signal(), Single, trading.market())
    assert outcome.order is not None
    trading.pipeline.apply_events()
    trading.pipeline.settle_pending()  # the broker reports the same fill again: not announced twice
    assert listener.heard == [("KO", IntentPurpose.ENTRY, True)]
    position = trading.ledger.position("KO")
    assert position is not None
    assert position.entry_count == 1
