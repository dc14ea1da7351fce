"""A lost exit sell is sent again under its own client order id whatever the next attempt is.

The next attempt after a lost sell may be another kind of order: a limit sell whose window
closed escalates to market-on-close (``exits.on_missed_window``), a market-on-close split into
whole shares and a DAY fraction (a broker that takes fractional orders as DAY orders only) is
followed the next day by one limit sell. The broker takes one order per client order id
whatever its kind, so every lost order's id is used again, with the kind and quantity of the
attempt: should a lost request still arrive, one copy of each id is refused as a duplicate and
the exit sells what it had to, once. The paper broker here takes short sales, so a second sell
would show as a short instead of being refused for want of shares.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.broker.paper import Fault, PaperBrokerConfig, ReceiptOutcome
from tradekit.config import AllocationSettings, ExitSettings, MissedWindow, Settings
from tradekit.domain import OrderRequest, OrderType, Side, TimeInForce
from tradekit.execution.pipeline import _resend_quantities
from tradekit.exits import ExitState
from tradekit.ledger import IntentPurpose, Ledger, LedgerOrderStatus, OrderIntent
from tradekit.ledger.buffered import BufferedLedger

from .test_exit_never_doubles import LateArrivals, at_broker, the_exit
from .test_pipeline import Single, Trading, make_trading
from .test_restarts import MONDAY_EVENING, in_the_window

# Tuesday's exit window is 14:35-15:00 UTC, the session closes 21:00 UTC; Wednesday's likewise.
TUESDAY_AFTERNOON = datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
TUESDAY_CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
WEDNESDAY_WINDOW = datetime(2024, 3, 6, 14, 36, tzinfo=UTC)
WEDNESDAY_CLOSE = datetime(2024, 3, 6, 21, 0, tzinfo=UTC)
HELD = Decimal("33.333333333")
PRICES = {"KO": Decimal(61)}
ON_CLOSE = ExitSettings(on_missed_window=MissedWindow.MARKET_AT_CLOSE)


class PlannedExit(Protocol):
    def __call__(self, *, whole_shares: bool = False, buffered: bool = False) -> Trading: ...


@pytest.fixture
def planned_exit(tmp_path: Path) -> Iterator[PlannedExit]:
    """KO held (33.333333333 shares, or 33) on an account that may sell short, whose lost requests
    may still arrive (``LateArrivals.land``), and its exit planned Monday evening; the ledger the
    committing one live trading uses, or the buffered one of replays."""
    made: list[Trading] = []

    def make(*, whole_shares: bool = False, buffered: bool = False) -> Trading:
        allocation = AllocationSettings(fractional_shares=not whole_shares)
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        t = make_trading(
            tmp_path,
            paper=LateArrivals(PaperBrokerConfig(allow_short_selling=True)),
            settings=Settings(allocation=allocation, exits=ON_CLOSE),
            ledger=(BufferedLedger if buffered else Ledger).open(url, for_trading=True),
        )
        made.append(t)
        t.reconcile()
        t.pipeline.process_buy(t.signal(), Single, t.market())
        t.pipeline.apply_events()
        t.clock.now = MONDAY_EVENING
        t.pipeline.plan_exit(t.signal(side=Side.SELL, age=timedelta(0)))
        return t

    yield make
    for t in made:
        t.ledger.close()


def late(t: Trading) -> LateArrivals:
    assert isinstance(t.broker, LateArrivals)
    return t.broker


def given_up(t: Trading, at: datetime) -> None:
    """At ``at`` the grace of the lost request(s) is over: given up on as not found."""
    in_the_window(t, "61", at)
    t.pipeline.settle_pending()
    assert the_exit(t).state is ExitState.PLANNED


def the_close(t: Trading, close: datetime) -> None:
    t.broker.set_price("KO", Decimal(62), close)
    t.clock.now = close + timedelta(minutes=5)
    t.pipeline.apply_events()
    t.pipeline.settle_pending()


def cycle(t: Trading, step: timedelta = timedelta(minutes=1)) -> None:
    t.clock.now += step
    t.pipeline.settle_pending()
    t.pipeline.execute_due_exits(PRICES)
    t.pipeline.apply_events()
    t.pipeline.reconcile_if_due()


def sell_receipts(t: Trading) -> list[tuple[str, OrderType, TimeInForce, Decimal | None, ReceiptOutcome]]:
    return [
        (r.request.client_order_id, r.request.order_type, r.request.time_in_force, r.request.qty, r.outcome)
        for r in t.broker.received_orders
        if r.request.side is Side.SELL
    ]


def order_intent(t: Trading, client_order_id: str) -> OrderIntent:
    with t.ledger.reading() as tx:
        intent = tx.intent(client_order_id)
    assert intent is not None
    return intent


def exit_orders(t: Trading) -> list[OrderIntent]:
    with t.ledger.reading() as tx:
        return tx.intents_with_prefix("exit|")


def as_sent(lost: OrderRequest, order_type: OrderType, time_in_force: TimeInForce) -> OrderRequest:
    """The lost request as a market order of another time in force, under its client order id."""
    return OrderRequest(
        client_order_id=lost.client_order_id,
        symbol=lost.symbol,
        side=lost.side,
        order_type=order_type,
        qty=lost.qty,
        time_in_force=time_in_force,
    )


def lost_limit_sell(t: Trading) -> OrderRequest:
    """Tuesday's limit sell, its request lost in the window and given up on once it closed."""
    in_the_window(t, "61")
    late(t).faults.arm(Fault.LOST_REQUEST, symbol="KO")
    (first,) = t.pipeline.execute_due_exits(PRICES)
    assert first.order is None
    given_up(t, TUESDAY_AFTERNOON)
    (lost,) = late(t).in_flight
    assert (lost.order_type, lost.limit_price) == (OrderType.LIMIT, Decimal(61))
    return lost


def test_a_lost_limit_sell_escalated_to_market_on_close_takes_its_client_order_id_and_sells_once(
    planned_exit: PlannedExit,
) -> None:
    t = planned_exit(whole_shares=True)
    assert at_broker(t) == 33
    lost = lost_limit_sell(t)

    (escalated,) = t.pipeline.execute_due_exits(PRICES)  # the window closed: market-on-close
    late(t).land()  # the lost limit sell reaches the broker now (it would fill at once)
    the_close(t, TUESDAY_CLOSE)

    assert at_broker(t) == 0  # sold once: flat, not short
    coid = lost.client_order_id
    assert escalated.intent is not None
    assert escalated.intent.client_order_id == coid
    assert sell_receipts(t) == [
        (coid, OrderType.MARKET, TimeInForce.CLS, Decimal(33), ReceiptOutcome.ACCEPTED),
        (coid, OrderType.LIMIT, TimeInForce.DAY, Decimal(33), ReceiptOutcome.DUPLICATE),
    ]
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED
    assert [o.client_order_id for o in exit_orders(t)] == [coid]


def test_a_lost_limit_sell_of_a_fractional_position_escalated_goes_out_as_one_day_market_order_under_its_id(
    planned_exit: PlannedExit,
) -> None:
    # A split (33 on close and the fraction as a DAY order) would need a second client order id,
    # and the lost request alone may still sell all of it: the lost id takes the whole quantity,
    # as a DAY order (the broker refuses a fractional market-on-close).
    t = planned_exit()
    lost = lost_limit_sell(t)

    (escalated,) = t.pipeline.execute_due_exits(PRICES)
    late(t).land()
    the_close(t, TUESDAY_CLOSE)

    assert at_broker(t) == 0
    coid = lost.client_order_id
    assert escalated.intent is not None
    assert escalated.intent.client_order_id == coid
    assert sell_receipts(t) == [
        (coid, OrderType.MARKET, TimeInForce.DAY, HELD, ReceiptOutcome.ACCEPTED),
        (coid, OrderType.LIMIT, TimeInForce.DAY, HELD, ReceiptOutcome.DUPLICATE),
    ]
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED


def lost_split_on_close(t: Trading) -> list[OrderRequest]:
    """Tuesday's market-on-close (33 on close, the fraction as a DAY order), both requests lost
    and given up on, and the exit moved to Wednesday's window."""
    in_the_window(t, "61", TUESDAY_AFTERNOON)  # the process was down through the window
    late(t).faults.arm(Fault.LOST_REQUEST, times=2, symbol="KO")
    t.pipeline.execute_due_exits(PRICES)
    given_up(t, TUESDAY_AFTERNOON + timedelta(minutes=5))
    (rolled,) = t.pipeline.execute_due_exits(PRICES)  # one market-on-close a session: rolled
    assert rolled.rolled
    lost = list(late(t).in_flight)
    assert [(r.order_type, r.time_in_force) for r in lost] == [
        (OrderType.MARKET, TimeInForce.CLS),
        (OrderType.MARKET, TimeInForce.DAY),
    ]
    return lost


def test_a_lost_split_market_on_close_followed_by_one_limit_sell_reuses_both_client_order_ids(
    planned_exit: PlannedExit,
) -> None:
    t = planned_exit()
    whole, fraction = lost_split_on_close(t)
    assert (whole.qty, fraction.qty) == (Decimal(33), HELD - 33)

    in_the_window(t, "61", WEDNESDAY_WINDOW)
    (resent,) = t.pipeline.execute_due_exits(PRICES)
    late(t).land()  # Tuesday's lost requests reach the broker now
    the_close(t, WEDNESDAY_CLOSE)

    assert at_broker(t) == 0
    ids = [whole.client_order_id, fraction.client_order_id]
    assert resent.intent is not None
    assert resent.intent.client_order_id == whole.client_order_id
    assert sell_receipts(t) == [
        (ids[0], OrderType.LIMIT, TimeInForce.DAY, Decimal(33), ReceiptOutcome.ACCEPTED),
        (ids[1], OrderType.LIMIT, TimeInForce.DAY, HELD - 33, ReceiptOutcome.ACCEPTED),
        (ids[0], OrderType.MARKET, TimeInForce.CLS, Decimal(33), ReceiptOutcome.DUPLICATE),
        (ids[1], OrderType.MARKET, TimeInForce.DAY, HELD - 33, ReceiptOutcome.DUPLICATE),
    ]
    assert [o.client_order_id for o in exit_orders(t)] == ids
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED


def test_a_lost_split_sent_again_as_two_resting_limit_sells_has_both_canceled_when_the_window_closes(
    planned_exit: PlannedExit,
) -> None:
    t = planned_exit()
    whole, fraction = lost_split_on_close(t)
    in_the_window(t, "60", WEDNESDAY_WINDOW)  # below the limit: both limit sells rest
    t.pipeline.execute_due_exits(PRICES)
    t.pipeline.apply_events()
    assert at_broker(t) == HELD

    for minutes in (0, 5, 10):  # the window closed: both canceled, then market-on-close
        t.clock.now = datetime(2024, 3, 6, 16, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        t.pipeline.execute_due_exits(PRICES)
        t.pipeline.apply_events()
    late(t).land()
    the_close(t, WEDNESDAY_CLOSE)

    assert at_broker(t) == 0
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED
    accepted = [
        (coid, tif, qty) for coid, _, tif, qty, outcome in sell_receipts(t) if outcome is ReceiptOutcome.ACCEPTED
    ]
    assert accepted[:2] == [
        (whole.client_order_id, TimeInForce.DAY, Decimal(33)),
        (fraction.client_order_id, TimeInForce.DAY, HELD - 33),
    ]
    assert [(tif, qty) for _, tif, qty in accepted[2:]] == [
        (TimeInForce.CLS, Decimal(33)),
        (TimeInForce.DAY, HELD - 33),
    ]


def test_a_lost_split_sent_again_after_shares_were_sold_elsewhere_asks_no_id_for_more_than_its_lost_request(
    planned_exit: PlannedExit,
) -> None:
    t = planned_exit()
    whole, fraction = lost_split_on_close(t)
    # Ten shares are sold at the broker outside tradekit meanwhile.
    t.broker.submit_order(OrderRequest(client_order_id="by-hand", symbol="KO", side=Side.SELL, qty=Decimal(10)))

    in_the_window(t, "61", WEDNESDAY_WINDOW)
    t.pipeline.execute_due_exits(PRICES)
    late(t).land()
    the_close(t, WEDNESDAY_CLOSE)
    t.pipeline.reconcile_if_due()  # the ledger's ten the broker no longer holds

    assert at_broker(t) == 0
    sent = [(coid, qty) for coid, _, _, qty, outcome in sell_receipts(t) if outcome is ReceiptOutcome.ACCEPTED]
    assert sent == [
        ("by-hand", Decimal(10)),
        (whole.client_order_id, Decimal(23)),
        (fraction.client_order_id, HELD - 33),
    ]
    assert t.ledger.position("KO") is None


@pytest.mark.parametrize("buffered", [False, True], ids=["committing", "buffered"])
def test_the_intent_of_a_lost_sell_sent_again_as_another_kind_states_what_was_sent(
    planned_exit: PlannedExit, buffered: bool
) -> None:
    t = planned_exit(whole_shares=True, buffered=buffered)
    lost = lost_limit_sell(t)
    coid = lost.client_order_id

    t.pipeline.execute_due_exits(PRICES)  # market-on-close, under the lost limit sell's id
    resent = order_intent(t, coid)
    for minutes in range(30, 300, 30):  # the afternoon's cycles leave the market-on-close alone
        t.clock.now = TUESDAY_AFTERNOON + timedelta(minutes=minutes)
        assert t.pipeline.execute_due_exits(PRICES) == []
        t.pipeline.apply_events()
    the_close(t, TUESDAY_CLOSE)

    assert (resent.order_type, resent.time_in_force, resent.qty, resent.limit_price) == (
        OrderType.MARKET,
        TimeInForce.CLS,
        Decimal(33),
        None,
    )
    assert resent.to_request() == as_sent(lost, OrderType.MARKET, TimeInForce.CLS)
    with t.ledger.reading() as tx:
        events = tx.order_events(coid)
        assert tx.order_intents(symbol="KO")[-1] == resent  # as written to the ledger's file
    assert [e.status for e in events] == [
        LedgerOrderStatus.SUBMITTING,
        LedgerOrderStatus.AMBIGUOUS,
        LedgerOrderStatus.NOT_FOUND,
        LedgerOrderStatus.SUBMITTING,
        LedgerOrderStatus.ACCEPTED,
        LedgerOrderStatus.FILLED,
    ]
    assert "market-on-close sell 33 KO" in events[3].detail
    assert "limit sell 33 KO at 61" in events[3].detail  # what the lost request was
    assert at_broker(t) == 0
    assert the_exit(t).state is ExitState.EXECUTED


@pytest.mark.parametrize("buffered", [False, True], ids=["committing", "buffered"])
def test_a_refused_resend_of_another_kind_leaves_the_intent_stating_the_lost_request(
    planned_exit: PlannedExit, buffered: bool
) -> None:
    t = planned_exit(whole_shares=True, buffered=buffered)
    lost = lost_limit_sell(t)
    coid = lost.client_order_id
    late(t).faults.arm(Fault.REJECT, symbol="KO")

    (refused,) = t.pipeline.execute_due_exits(PRICES)

    assert refused.order is None
    assert order_intent(t, coid).to_request() == lost  # the request that may still arrive
    with t.ledger.reading() as tx:
        assert tx.order_intents(symbol="KO")[-1].to_request() == lost
        assert [e.status for e in tx.order_events(coid)][-2:] == [
            LedgerOrderStatus.SUBMITTING,
            LedgerOrderStatus.NOT_FOUND,
        ]
    for minutes in (1, 2, 3):  # one market-on-close a session, refused or not: no second today
        t.clock.now = TUESDAY_AFTERNOON + timedelta(minutes=minutes)
        t.pipeline.execute_due_exits(PRICES)
    assert [outcome for *_, outcome in sell_receipts(t)] == [ReceiptOutcome.REJECTED]
    late(t).land()
    assert at_broker(t) == 0  # the lost limit sell arrived and filled: sold once
    in_the_window(t, "61", WEDNESDAY_WINDOW)
    for _ in range(3):  # found at the broker after all: followed; nothing more is sold
        cycle(t)
    assert at_broker(t) == 0
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED


def test_a_lost_split_that_now_has_more_to_sell_than_its_requests_asked_waits_while_that_cannot_be_bounded(
    planned_exit: PlannedExit,
) -> None:
    # Ten shares are being sold outside tradekit (a resting sell): Tuesday's market-on-close
    # sells the rest, 23 on close and the fraction, both lost; Wednesday's limit sells of the
    # same are lost again. Then the outside sell is canceled: the exit has 33.333333333 to sell,
    # more than its lost requests asked, and each id may still sell what any of its copies
    # asked: no split is known to be safe, so the exit waits until they show up.
    t = planned_exit()
    outside = OrderRequest(
        client_order_id="by-hand",
        symbol="KO",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        qty=Decimal(10),
        limit_price=Decimal(100),
        time_in_force=TimeInForce.GTC,
    )
    t.broker.submit_order(outside)
    whole, fraction = lost_split_on_close(t)
    assert (whole.qty, fraction.qty) == (Decimal(23), HELD - 33)
    in_the_window(t, "61", WEDNESDAY_WINDOW)
    late(t).faults.arm(Fault.LOST_REQUEST, times=2, symbol="KO")
    (lost_again,) = t.pipeline.execute_due_exits(PRICES)
    assert lost_again.intent is not None
    assert lost_again.intent.client_order_id == whole.client_order_id
    given_up(t, WEDNESDAY_WINDOW + timedelta(minutes=3))
    t.broker.cancel_order("by-hand")
    sent = len(t.broker.received_orders)

    (waits,) = t.pipeline.execute_due_exits(PRICES)

    assert waits.order is None
    assert waits.note.startswith("exit waits")
    assert len(t.broker.received_orders) == sent
    assert the_exit(t).state is ExitState.PLANNED
    late(t).land()  # Tuesday's requests arrive (Wednesday's copies are refused as duplicates)
    for _ in range(3):
        cycle(t)
    the_close(t, WEDNESDAY_CLOSE)
    t.pipeline.reconcile_if_due()
    assert at_broker(t) == 0
    assert t.ledger.position("KO") is None
    assert the_exit(t).state is ExitState.EXECUTED


_QUANTITIES = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(500), places=3)


@settings(max_examples=300, deadline=None)
@given(
    stated=st.lists(_QUANTITIES, min_size=1, max_size=2),
    earlier=st.lists(st.decimals(min_value=0, max_value=Decimal(500), places=3), min_size=2, max_size=2),
    qty=_QUANTITIES,
)
def test_lost_orders_sent_again_never_let_late_requests_sell_more_than_they_or_the_exit_could(
    stated: list[Decimal], earlier: list[Decimal], qty: Decimal
) -> None:
    # Each lost id's intent states its last request; an earlier request under the same id (sent
    # again before, and lost again) may have asked more. Whichever copy of an id the broker
    # takes first, the exit sells no more than it has to sell now or than the lost requests
    # alone could have sold.
    lost = [
        OrderIntent(
            intent_key=f"exit|x|{n}",
            symbol="KO",
            side=Side.SELL,
            purpose=IntentPurpose.EXIT,
            created_at=MONDAY_EVENING,
            qty=q,
        )
        for n, q in enumerate(stated)
    ]
    most = [max(q, e) for q, e in zip(stated, earlier, strict=False)]

    quantities = _resend_quantities(lost, qty)

    if quantities is None:
        assert len(lost) > 1
        assert qty > sum(stated)
        return
    assert sum(quantities) == qty
    assert all(q >= 0 for q in quantities)
    could_sell = sum((max(sent, asked) for sent, asked in zip(quantities, most, strict=True)), Decimal(0))
    assert could_sell <= max(qty, sum(most, Decimal(0)))
