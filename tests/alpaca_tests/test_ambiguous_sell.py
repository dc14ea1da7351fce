"""An exit sell whose POST had no clear answer, against the emulator through alpaca-py.

Until its outcome is known the exit sends nothing more; once it is given up on as not found
(``orders.lost_order_grace_seconds``), the next attempt re-sends the same order under the lost
attempt's client order id. Alpaca takes one order per client order id, so the lost POST, should
it still reach Alpaca, is refused as a duplicate ("client_order_id must be unique"), whether the
re-sent sell still works or has already filled: on an account that may sell short, a second
sell would otherwise open a short.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import attrs
import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import BrokerError, DuplicateClientOrderId
from tradekit.config import Settings
from tradekit.domain import OrderRequest, Side, Signal, Urgency
from tradekit.execution.pipeline import OrderPipeline
from tradekit.exits import ExitState
from tradekit.ledger import Ledger, LedgerOrderStatus
from tradekit.plugins import Plugins
from tradekit_broker_alpaca.execution import AlpacaBroker

from .test_e2e_run import IN_THE_WINDOW, pipeline_on

# The end-to-end fixtures, re-exported under their own names for pytest to find here.
from .test_e2e_run import env as env
from .test_e2e_run import ledger_url as ledger_url
from .test_e2e_run import market as market
from .test_e2e_run import plugins as plugins
from .test_e2e_run import settings as settings
from .test_review_fixes import holding_ten_aapl


@attrs.define
class Clock:
    now: datetime = IN_THE_WINDOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def selling(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> Iterator[tuple[OrderPipeline, Ledger, AlpacaBroker, Clock]]:
    """10 AAPL held (adopted by reconciliation) on an account that may sell short; a stop-loss
    whose first POST was answered 504 before Alpaca stored it."""
    market.set_account(shorting_enabled=True)
    with holding_ten_aapl(market, ledger_url, env, settings) as (ledger, broker):
        clock = Clock()
        pipeline = pipeline_on(ledger, broker, settings, plugins, clock=clock)
        pipeline.reconcile()
        market.arm_error(504)  # a gateway timeout: the order never reached Alpaca (yet)
        outcome = pipeline.plan_exit(
            Signal(
                symbol="AAPL",
                side=Side.SELL,
                confidence=5,
                generated_at=IN_THE_WINDOW,
                source="stop",
                urgency=Urgency.IMMEDIATE,
                reason="stop loss",
            )
        )
        assert outcome.order is None
        yield pipeline, ledger, broker, clock


def aapl_at_alpaca(market: AlpacaEmulator) -> Decimal:
    return sum((Decimal(p["qty"]) for p in market.positions() if p["symbol"] == "AAPL"), Decimal(0))


def sell_posts(market: AlpacaEmulator) -> list[tuple[str, int | None]]:
    return [
        (r.body["client_order_id"], r.status)
        for r in market.requests("POST /v2/orders")
        if isinstance(r.body, dict) and r.body.get("side") == "sell"
    ]


def test_an_ambiguous_sell_is_only_looked_up_until_its_grace_is_over(
    market: AlpacaEmulator, selling: tuple[OrderPipeline, Ledger, AlpacaBroker, Clock]
) -> None:
    pipeline, ledger, _broker, clock = selling
    for seconds in (30, 60, 119):  # cycles within the grace: lookups, no second sell
        clock.now = IN_THE_WINDOW + timedelta(seconds=seconds)
        pipeline.settle_pending()
        assert pipeline.execute_due_exits({}) == []
    assert len(sell_posts(market)) == 1
    with ledger.reading() as tx:
        (pending,) = tx.pending_intents()
        (exit_,) = tx.exit_intents()
    assert pending.status is LedgerOrderStatus.AMBIGUOUS
    assert exit_.state is ExitState.SUBMITTED
    assert aapl_at_alpaca(market) == 10


def test_a_sell_that_reaches_alpaca_while_the_next_attempt_works_is_refused(
    market: AlpacaEmulator, selling: tuple[OrderPipeline, Ledger, AlpacaBroker, Clock]
) -> None:
    pipeline, _ledger, broker, clock = selling
    ((lost, _),) = sell_posts(market)
    market.set_fill_policy(auto_fill_market=False)  # the next attempt rests unfilled
    clock.now = IN_THE_WINDOW + timedelta(seconds=pipeline.settings.orders.lost_order_grace_seconds)
    pipeline.settle_pending()  # given up on as not found
    pipeline.execute_due_exits({})  # attempt 2 sells the 10, under the lost attempt's id
    (request, _resent) = [r for r in market.requests("POST /v2/orders") if r.body["client_order_id"] == lost]

    with pytest.raises(DuplicateClientOrderId):  # the lost POST arrives now
        broker.submit_order(_request_of(pipeline, lost))

    assert request.status == 504
    assert sell_posts(market) == [(lost, 504), (lost, 200), (lost, 422)]
    assert aapl_at_alpaca(market) == 10


def test_a_sell_that_reaches_alpaca_after_the_next_attempt_filled_never_opens_a_short(
    market: AlpacaEmulator, selling: tuple[OrderPipeline, Ledger, AlpacaBroker, Clock]
) -> None:
    pipeline, ledger, broker, clock = selling
    ((lost, _),) = sell_posts(market)
    clock.now = IN_THE_WINDOW + timedelta(seconds=pipeline.settings.orders.lost_order_grace_seconds)
    pipeline.settle_pending()
    pipeline.execute_due_exits({})  # attempt 2 sells the 10, and fills
    pipeline.apply_events()
    assert aapl_at_alpaca(market) == 0

    with contextlib.suppress(BrokerError):  # the lost POST reaches Alpaca now (refused: fine)
        broker.submit_order(_request_of(pipeline, lost))

    assert aapl_at_alpaca(market) >= 0
    assert sell_posts(market) == [(lost, 504), (lost, 200), (lost, 422)]  # refused as a duplicate
    with ledger.reading() as tx:
        (exit_,) = tx.exit_intents()
    assert exit_.state is ExitState.EXECUTED


def _request_of(pipeline: OrderPipeline, client_order_id: str) -> OrderRequest:
    with pipeline.ledger.reading() as tx:
        intent = tx.intent(client_order_id)
    assert intent is not None
    return intent.to_request()
