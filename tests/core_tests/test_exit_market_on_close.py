"""A missed exit window escalated to market-on-close sells the whole position that day.

Alpaca takes fractional orders as DAY orders only, and the paper broker refuses what Alpaca
refuses: a market-on-close exit of 33.333333333 shares goes out as 33 shares on close plus
0.333333333 shares as a DAY market order at the same moment, both recorded before either is
sent, never more than is held.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.broker.errors import FractionalNotSupported, OrderRejected
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig
from tradekit.config import AllocationSettings, ExitSettings, MissedWindow, Settings
from tradekit.domain import Order, OrderRequest, OrderType, Side, TimeInForce
from tradekit.exits import ExitState
from tradekit.ledger import Ledger, LedgerOrderStatus

from .test_pipeline import OPEN, Trading
from .test_restarts import MONDAY_EVENING, bought, held, in_the_window

# Tuesday 2024-03-05: the exit window (14:35-15:00 UTC) has closed; the session closes 21:00 UTC.
TUESDAY_AFTERNOON = datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
TUESDAY_CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
HELD = Decimal("33.333333333")


def fractional(client_order_id: str, tif: TimeInForce, qty: Decimal = Decimal("0.5")) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol="KO",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=qty,
        time_in_force=tif,
    )


@pytest.mark.parametrize("tif", [TimeInForce.CLS, TimeInForce.GTC, TimeInForce.IOC])
def test_the_paper_broker_refuses_a_fractional_order_that_is_not_a_day_order_as_alpaca_does(tif: TimeInForce) -> None:
    paper = PaperBroker(PaperBrokerConfig())
    paper.set_price("KO", Decimal(60), OPEN)

    with pytest.raises(FractionalNotSupported):
        paper.submit_order(fractional("frac", tif))
    assert paper.submit_order(fractional("whole", tif, Decimal(2))).qty == Decimal(2)
    assert paper.submit_order(fractional("day", TimeInForce.DAY)).qty == Decimal("0.5")
    assert paper.get_asset("KO").fractional_day_only


def test_a_paper_broker_configured_as_a_generic_broker_takes_fractional_orders_of_any_time_in_force() -> None:
    paper = PaperBroker(PaperBrokerConfig(fractional_day_only=False))
    paper.set_price("KO", Decimal(60), OPEN)

    assert paper.submit_order(fractional("frac", TimeInForce.CLS)).qty == Decimal("0.5")
    assert not paper.get_asset("KO").fractional_day_only


class SeesLedger(PaperBroker):
    """The paper broker, noting at each sell it receives how many sell intents the ledger holds."""

    ledger: Ledger | None = None

    def __init__(self) -> None:
        super().__init__(PaperBrokerConfig())
        self.recorded_at_send: list[int] = []

    def submit_order(self, request: OrderRequest) -> Order:
        if request.side is Side.SELL and self.ledger is not None:
            with self.ledger.reading() as tx:
                self.recorded_at_send.append(len([i for i in tx.order_intents(symbol="KO") if i.side is Side.SELL]))
        return super().submit_order(request)


class RefusesFractionalSells(PaperBroker):
    """The paper broker refusing every fractional sell (an account or venue rule)."""

    def submit_order(self, request: OrderRequest) -> Order:
        if request.side is Side.SELL and request.is_fractional:
            raise OrderRejected(f"order {request.client_order_id}: fractional sells refused", code="test")
        return super().submit_order(request)


def missed_window(tmp_path: Path, paper: PaperBroker, settings: Settings | None = None) -> Trading:
    """KO bought Monday, its exit planned, the process down through Tuesday's window."""
    settings = settings or Settings(exits=ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE))
    t = bought(tmp_path, paper=paper, settings=settings)
    t.clock.now = MONDAY_EVENING
    t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
    in_the_window(t, "61", TUESDAY_AFTERNOON)
    return t


def sell_requests(t: Trading) -> list[tuple[TimeInForce, OrderType, Decimal | None]]:
    return [(r.time_in_force, r.order_type, r.qty) for r in t.accepted() if r.side is Side.SELL]


def test_a_fractional_position_missing_its_window_sells_whole_shares_on_close_and_the_fraction_at_once(
    tmp_path: Path,
) -> None:
    paper = SeesLedger()
    t = missed_window(tmp_path, paper)
    paper.ledger = t.ledger
    assert held(t) == (HELD, HELD)

    (outcome,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.pipeline.apply_events()

    assert sell_requests(t) == [
        (TimeInForce.CLS, OrderType.MARKET, Decimal(33)),
        (TimeInForce.DAY, OrderType.MARKET, Decimal("0.333333333")),
    ]
    assert paper.recorded_at_send == [2, 2]  # both intents committed before either order left
    assert outcome.intent is not None
    with t.ledger.reading() as tx:
        (exit_intent,) = tx.exit_intents()
        attempts = [i for i in tx.order_intents(symbol="KO") if i.side is Side.SELL]
    assert exit_intent.state is ExitState.SUBMITTED  # the whole shares wait for the close
    assert len({a.client_order_id for a in attempts}) == 2
    assert held(t) == (Decimal(33), Decimal(33))

    for minute in range(30, 300, 30):  # the afternoon's cycles change nothing
        t.clock.now = TUESDAY_AFTERNOON + timedelta(minutes=minute)
        assert t.pipeline.execute_due_exits({"KO": Decimal(61)}) == []
        t.pipeline.apply_events()
    t.broker.set_price("KO", Decimal("62.25"), TUESDAY_CLOSE)  # the close
    t.pipeline.apply_events()

    with t.ledger.reading() as tx:
        (exit_intent,) = tx.exit_intents()
        reductions = tx.position_history()[-1].reductions
    assert exit_intent.state is ExitState.EXECUTED
    assert [r.price for r in reductions] == [Decimal(61), Decimal("62.25")]
    assert held(t) == (Decimal(0), Decimal(0))
    assert len(sell_requests(t)) == 2


def test_a_refused_fraction_leaves_the_exit_planned_for_what_is_still_held_after_the_close(tmp_path: Path) -> None:
    t = missed_window(tmp_path, RefusesFractionalSells(PaperBrokerConfig()))
    assert held(t) == (HELD, HELD)

    t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.broker.set_price("KO", Decimal("62.25"), TUESDAY_CLOSE)
    t.pipeline.apply_events()
    t.clock.now = TUESDAY_CLOSE + timedelta(minutes=15)
    (rolled,) = t.pipeline.execute_due_exits({"KO": Decimal("62.25")})

    assert sell_requests(t) == [(TimeInForce.CLS, OrderType.MARKET, Decimal(33))]
    assert held(t) == (Decimal("0.333333333"), Decimal("0.333333333"))
    assert rolled.rolled
    assert rolled.intent is not None
    assert rolled.intent.state is ExitState.PLANNED
    with t.ledger.reading() as tx:
        statuses = [
            s.status
            for i in tx.order_intents(symbol="KO")
            if i.side is Side.SELL and (s := tx.intent_state(i.client_order_id)) is not None
        ]
    assert statuses == [LedgerOrderStatus.FILLED, LedgerOrderStatus.REJECTED]


def test_a_position_of_less_than_one_share_missing_its_window_is_sold_at_once_as_a_day_market_order(
    tmp_path: Path,
) -> None:
    small = Settings(
        allocation=AllocationSettings(position_size_pct=Decimal("0.03")),  # $30 of KO at $60
        exits=ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE),
    )
    t = missed_window(tmp_path, PaperBroker(PaperBrokerConfig()), small)
    assert held(t) == (Decimal("0.5"), Decimal("0.5"))

    (outcome,) = t.pipeline.execute_due_exits({"KO": Decimal(61)})
    t.pipeline.apply_events()

    assert sell_requests(t) == [(TimeInForce.DAY, OrderType.MARKET, Decimal("0.5"))]
    assert outcome.intent is not None
    with t.ledger.reading() as tx:
        (exit_intent,) = tx.exit_intents()
    assert exit_intent.state is ExitState.EXECUTED
    assert held(t) == (Decimal(0), Decimal(0))
