"""An exit sell given up on as lost is sent again under its own client order id.

A request whose answer never came (timeout, connection reset) and that the broker still does
not know once ``orders.lost_order_grace_seconds`` is over is given up on, and the exit tries
again. The retry re-sends the same order, under the lost attempt's client order id: the broker
takes one order per client order id, so should the lost request still arrive, before or after
the re-send, one of the two copies is refused as a duplicate and nothing is sold twice (on an
account that may sell short, a second sell would open a short).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.broker.errors import DuplicateClientOrderId
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, ReceiptOutcome
from tradekit.domain import OrderRequest, Side, Urgency
from tradekit.execution.session import startup
from tradekit.exits import ExitState
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.ledger.buffered import BufferedLedger

from .test_pipeline import Single, Trading, make_trading

HELD = Decimal("33.333333333")  # what the buy of the fixture bought


class Crash(Exception):
    """The process dies here."""


def shortable() -> PaperBroker:
    # A second sell the broker took would open a short, not be refused for want of shares.
    return PaperBroker(PaperBrokerConfig(allow_short_selling=True))


def holding(t: Trading) -> Trading:
    t.reconcile()
    t.pipeline.process_buy(t.signal(), Single, t.market())
    t.pipeline.apply_events()
    assert held(t) == (HELD, HELD)
    return t


@pytest.fixture(params=["committing", "buffered"])
def trading(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Trading]:
    # The committing ledger live trading uses and the buffered one replays use.
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    kind = BufferedLedger if request.param == "buffered" else Ledger
    t = holding(make_trading(tmp_path, paper=shortable(), ledger=kind.open(url, for_trading=True)))
    yield t
    t.ledger.close()


def held(t: Trading, symbol: str = "KO") -> tuple[Decimal, Decimal]:
    """(ledger quantity, broker quantity) of ``symbol``."""
    position = t.ledger.position(symbol)
    at_broker = {p.symbol: p.qty for p in t.broker.get_positions()}
    return (position.qty if position is not None else Decimal(0), at_broker.get(symbol, Decimal(0)))


def sell_receipts(t: Trading) -> list[tuple[str, ReceiptOutcome]]:
    return [(r.request.client_order_id, r.outcome) for r in t.broker.received_orders if r.request.side is Side.SELL]


def lost_stop_loss(t: Trading) -> OrderRequest:
    """An immediate exit whose sell never reached the broker, given up on as lost: the request
    (still on its way somewhere) is returned."""
    t.broker.faults.arm(Fault.LOST_REQUEST)
    outcome = t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    assert outcome.order is None
    assert outcome.intent is not None
    assert outcome.intent.client_order_id is not None
    with t.ledger.reading() as tx:
        lost = tx.intent(outcome.intent.client_order_id)
    assert lost is not None
    t.clock.now += timedelta(seconds=t.pipeline.settings.orders.lost_order_grace_seconds + 1)
    t.pipeline.settle_pending()
    with t.ledger.reading() as tx:
        state = tx.intent_state(lost.client_order_id)
        (exit_,) = tx.exit_intents()
    assert state is not None
    assert state.status is LedgerOrderStatus.NOT_FOUND
    assert exit_.state is ExitState.PLANNED
    assert sell_receipts(t) == []
    return lost.to_request()


def statuses(t: Trading, client_order_id: str) -> list[LedgerOrderStatus]:
    with t.ledger.reading() as tx:
        return [e.status for e in tx.order_events(client_order_id)]


def test_a_lost_sell_arriving_after_its_resend_filled_is_refused_as_a_duplicate(trading: Trading) -> None:
    t = trading
    lost = lost_stop_loss(t)

    (resent,) = t.pipeline.execute_due_exits({})
    t.pipeline.apply_events()
    assert held(t) == (Decimal(0), Decimal(0))
    with pytest.raises(DuplicateClientOrderId):  # the lost request reaches the broker now
        t.broker.submit_order(lost)
    t.pipeline.apply_events()

    assert resent.intent is not None
    assert resent.intent.client_order_id == lost.client_order_id
    assert resent.intent.attempts == 2
    coid = lost.client_order_id
    assert sell_receipts(t) == [(coid, ReceiptOutcome.ACCEPTED), (coid, ReceiptOutcome.DUPLICATE)]
    assert held(t) == (Decimal(0), Decimal(0))  # sold once: flat, not short
    with t.ledger.reading() as tx:
        assert [i.client_order_id for i in tx.intents_with_prefix("exit|")] == [coid]
        (exit_,) = tx.exit_intents()
        assert tx.pending_intents() == []
        assert tx.unapplied_fills() == []
    assert exit_.state is ExitState.EXECUTED
    assert statuses(t, coid) == [
        LedgerOrderStatus.SUBMITTING,
        LedgerOrderStatus.AMBIGUOUS,
        LedgerOrderStatus.NOT_FOUND,
        LedgerOrderStatus.SUBMITTING,  # the re-send, recorded before it left
        LedgerOrderStatus.FILLED,
    ]


def test_a_lost_sell_arriving_just_before_its_resend_is_followed_and_the_resend_refused(trading: Trading) -> None:
    t = trading
    lost = lost_stop_loss(t)

    def arrives(step: str) -> None:
        if step == "exit_intent":  # the re-send is recorded; the lost request gets there first
            t.broker.submit_order(lost)

    t.pipeline._on_step = arrives
    (outcome,) = t.pipeline.execute_due_exits({})
    t.pipeline._on_step = lambda step: None
    t.pipeline.apply_events()
    t.pipeline.reconcile_if_due()

    coid = lost.client_order_id
    assert outcome.intent is not None
    assert outcome.intent.client_order_id == coid
    assert sell_receipts(t) == [(coid, ReceiptOutcome.ACCEPTED), (coid, ReceiptOutcome.DUPLICATE)]
    assert held(t) == (Decimal(0), Decimal(0))
    with t.ledger.reading() as tx:
        (exit_,) = tx.exit_intents()
        assert tx.pending_intents() == []
    assert exit_.state is ExitState.EXECUTED
    assert statuses(t, coid)[3:5] == [LedgerOrderStatus.SUBMITTING, LedgerOrderStatus.AMBIGUOUS]
    assert statuses(t, coid)[-1] is LedgerOrderStatus.FILLED


def test_the_resend_sells_no_more_than_the_broker_holds_and_keeps_the_lost_id(trading: Trading) -> None:
    t = trading
    lost = lost_stop_loss(t)
    assert lost.qty == HELD
    # Ten shares are sold at the broker outside tradekit meanwhile.
    t.broker.submit_order(OrderRequest(client_order_id="by-hand", symbol="KO", side=Side.SELL, qty=Decimal(10)))

    (resent,) = t.pipeline.execute_due_exits({})
    t.pipeline.apply_events()

    coid = lost.client_order_id
    assert resent.intent is not None
    assert resent.intent.client_order_id == coid
    sent = [r.request for r in t.broker.received_orders if r.request.client_order_id == coid]
    assert [r.qty for r in sent] == [HELD - 10]  # what the broker held, under the lost id
    assert held(t)[1] == Decimal(0)
    with t.ledger.reading() as tx:
        (resend,) = [e for e in tx.order_events(coid) if e.status is LedgerOrderStatus.SUBMITTING][1:]
    assert f"sell {HELD - 10} KO" in resend.detail
    assert "same client order id" in resend.detail
    with t.ledger.reading() as tx:
        intent = tx.intent(coid)
        (written,) = [i for i in tx.order_intents(symbol="KO") if i.client_order_id == coid]
    assert intent is not None
    assert intent.qty == written.qty == HELD - 10  # what was sent, not the lost request's quantity


def test_a_refused_exit_attempt_is_tried_again_under_a_new_client_order_id(trading: Trading) -> None:
    t = trading
    t.broker.faults.arm(Fault.REJECT)  # refused: the order does not exist, no copy is on its way
    first = t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0), urgency=Urgency.IMMEDIATE))
    (second,) = t.pipeline.execute_due_exits({})
    t.pipeline.apply_events()

    assert first.intent is not None
    assert second.intent is not None
    assert second.intent.client_order_id != first.intent.client_order_id
    assert held(t) == (Decimal(0), Decimal(0))


def test_a_restart_between_recording_the_resend_and_sending_it_sends_exactly_one_order(tmp_path: Path) -> None:
    broker = shortable()
    t = holding(make_trading(tmp_path, paper=broker))
    lost = lost_stop_loss(t)
    coid = lost.client_order_id

    def dies(step: str) -> None:
        if step == "exit_intent":
            raise Crash

    t.pipeline._on_step = dies
    with pytest.raises(Crash):
        t.pipeline.execute_due_exits({})
    # The re-send was committed before it would have left, and nothing left.
    assert statuses(t, coid)[-1] is LedgerOrderStatus.SUBMITTING
    assert sell_receipts(t) == []
    t.ledger.close()

    again = make_trading(tmp_path, paper=broker, ledger=Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}"))
    again.clock.now = t.clock.now + timedelta(minutes=1)
    startup(again.pipeline)
    for _ in range(3):  # cycles: settle what is in flight, carry the exit on, apply events
        again.clock.now += timedelta(minutes=3)
        again.pipeline.settle_pending()
        again.pipeline.execute_due_exits({})
        again.pipeline.apply_events()
        again.pipeline.reconcile_if_due()
    with pytest.raises(DuplicateClientOrderId):  # the lost request, at last
        broker.submit_order(lost)

    assert sell_receipts(again) == [(coid, ReceiptOutcome.ACCEPTED), (coid, ReceiptOutcome.DUPLICATE)]
    assert held(again) == (Decimal(0), Decimal(0))
    with again.ledger.reading() as tx:
        assert [i.client_order_id for i in tx.intents_with_prefix("exit|")] == [coid]
        (exit_,) = tx.exit_intents()
        assert tx.pending_intents() == []
    assert exit_.state is ExitState.EXECUTED
    again.ledger.close()


def test_a_refused_resend_keeps_the_lost_client_order_id_for_the_next_attempt(trading: Trading) -> None:
    t = trading
    lost = lost_stop_loss(t)
    coid = lost.client_order_id
    t.broker.faults.arm(Fault.REJECT)  # the re-send is refused; the lost request is still out there

    (refused,) = t.pipeline.execute_due_exits({})
    assert refused.order is None
    assert statuses(t, coid)[-2:] == [LedgerOrderStatus.SUBMITTING, LedgerOrderStatus.NOT_FOUND]
    (resent,) = t.pipeline.execute_due_exits({})
    t.pipeline.apply_events()
    with pytest.raises(DuplicateClientOrderId):
        t.broker.submit_order(lost)

    assert resent.intent is not None
    assert resent.intent.client_order_id == coid
    assert held(t) == (Decimal(0), Decimal(0))
    with t.ledger.reading() as tx:
        assert [i.client_order_id for i in tx.intents_with_prefix("exit|")] == [coid]
        (exit_,) = tx.exit_intents()
    assert exit_.state is ExitState.EXECUTED
