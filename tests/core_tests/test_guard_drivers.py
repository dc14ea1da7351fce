"""The drivers run the guard's triggers: a live trader once per cycle, before it sends the
buys queued for the open (a replay at each close: see test_guard_replay)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tradekit import BuyAction, ReasonCode
from tradekit.config import GuardSettings, Settings
from tradekit.execution.live import LiveTrader
from tradekit.guard import Trigger

from .test_live_trader import MONDAY_CLOSE, TUESDAY_OPEN, BarsBroker, BuyEveryClose, at
from .test_pipeline import Single, make_trading


def test_a_live_cycle_halts_on_a_drawdown_before_it_sends_the_queued_buy(tmp_path: Path) -> None:
    trading = make_trading(
        tmp_path, paper=BarsBroker(), settings=Settings(guard=GuardSettings(max_drawdown_pct=Decimal(1)))
    )
    trading.reconcile()
    trading.pipeline.process_buy(trading.signal("PFE", price="28"), Single, trading.market("PFE"))
    trading.pipeline.apply_events()
    trading.broker.set_price("KO", Decimal(60), MONDAY_CLOSE)  # no overnight gap: the buy would go
    trader = LiveTrader(trading.pipeline, BuyEveryClose, ["KO"])
    at(trading, MONDAY_CLOSE + timedelta(minutes=5), is_open=False)
    # The strategy runs on KO and on the held PFE; the buys wait for the open; the equity high is noted.
    assert trader.cycle().signals == 2
    trading.broker.set_price("PFE", Decimal(11), MONDAY_CLOSE + timedelta(minutes=10))  # -1,200 on 100,000
    at(trading, TUESDAY_OPEN + timedelta(minutes=5), is_open=True)
    buys = trader.cycle().buys
    assert [b.decision.symbol for b in buys if b.decision is not None] == ["KO", "PFE"]
    for buy in buys:
        assert buy.decision is not None
        assert buy.decision.action is BuyAction.BLOCK
        assert buy.decision.reasons[0] is ReasonCode.TRADING_HALTED
    with trading.ledger.reading() as tx:
        (halt,) = tx.trading_state_transitions()
    assert halt.trigger is Trigger.MAX_DRAWDOWN
    assert halt.time == TUESDAY_OPEN + timedelta(minutes=5)
