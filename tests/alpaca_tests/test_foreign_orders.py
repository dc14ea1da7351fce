"""Orders and positions at Alpaca that tradekit did not place and cannot read.

A user may trade by hand, in the same account, things tradekit does not trade: a multi-leg
options order, a crypto pair. Such an order must not stop tradekit from reading the rest of
the account (its exits, its recovery poll); an unreadable order tradekit placed itself must
still stop the read; an unreadable order on a stock stands for an open order of unknown
size on that stock, so nothing is bought or sold there past it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import BrokerDataError
from tradekit.broker.protocol import OrderEventKind
from tradekit.config import Settings
from tradekit.domain import OrderRequest, Side, Signal
from tradekit.domain.orders import OrderStatus
from tradekit.domain.signals import Urgency
from tradekit.execution.pipeline import ExitOutcome
from tradekit.ledger import client_order_id_for
from tradekit.plugins import Plugins
from tradekit_broker_alpaca.execution import AlpacaBroker

from .conftest import MakeBroker
from .test_e2e_run import IN_THE_WINDOW, pipeline_on

# The end-to-end fixtures, re-exported under their own names for pytest to find here.
from .test_e2e_run import env as env
from .test_e2e_run import ledger_url as ledger_url
from .test_e2e_run import market as market
from .test_e2e_run import plugins as plugins
from .test_e2e_run import settings as settings
from .test_review_fixes import holding_ten_aapl

CREATED = "2026-03-03T14:31:00Z"


def raw_order(order_id: str, **fields: Any) -> dict[str, Any]:
    """An open order in Alpaca's JSON shape, placed by hand (Alpaca made up its client order id)."""
    order: dict[str, Any] = {
        "id": order_id,
        "client_order_id": f"hand-{order_id}",
        "created_at": CREATED,
        "submitted_at": CREATED,
        "updated_at": CREATED,
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "order_class": "",
        "type": "limit",
        "order_type": "limit",
        "side": "buy",
        "time_in_force": "day",
        "qty": "1",
        "notional": None,
        "limit_price": "100",
        "filled_qty": "0",
        "filled_avg_price": None,
        "status": "new",
        "legs": None,
    }
    order.update(fields)
    return order


def multi_leg_options_order(order_id: str = "mleg-1") -> dict[str, Any]:
    """A two-leg options spread: no symbol and no side of its own, the legs hold them."""
    legs = [
        raw_order(f"{order_id}-leg-{n}", symbol=symbol, asset_class="us_option", side=side)
        for n, (symbol, side) in enumerate([("AAPL260320C00200000", "buy"), ("AAPL260320C00210000", "sell")])
    ]
    return raw_order(order_id, symbol="", side="", asset_class="us_option", order_class="mleg", legs=legs)


FOREIGN_UNREADABLE = {
    "multi-leg options": multi_leg_options_order(),
    "no symbol": raw_order("nosym-1", symbol="", asset_class="us_option"),
    "crypto pair, no side": raw_order("crypto-1", symbol="BTC/USD", asset_class="crypto", side=""),
}


def stop_loss_exit_with_a_hand_order(
    hand_order: Mapping[str, Any],
    market: AlpacaEmulator,
    ledger_url: str,
    env: dict[str, str],
    settings: Settings,
    plugins: Plugins,
) -> ExitOutcome:
    """Hold 10 AAPL (adopted by reconciling), put ``hand_order`` at Alpaca, then exit all of AAPL now."""
    stop = Signal(symbol="AAPL", side=Side.SELL, confidence=5, generated_at=IN_THE_WINDOW, urgency=Urgency.IMMEDIATE)
    with holding_ten_aapl(market, ledger_url, env, settings) as (ledger, broker):
        pipeline = pipeline_on(ledger, broker, settings, plugins)
        pipeline.reconcile()
        market.put_raw_order(hand_order)
        return pipeline.plan_exit(stop)


def plugin_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("tradekit_broker_alpaca") and r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------- orders tradekit did not place


@pytest.mark.parametrize("foreign", FOREIGN_UNREADABLE.values(), ids=FOREIGN_UNREADABLE.keys())
def test_open_orders_are_read_past_a_foreign_order_of_an_asset_class_tradekit_does_not_trade(
    emu: AlpacaEmulator, broker: AlpacaBroker, foreign: Mapping[str, Any]
) -> None:
    emu.set_fill_policy(auto_fill_market=False)
    mine = broker.submit_order(
        OrderRequest(client_order_id=client_order_id_for("k"), symbol="AAPL", side=Side.BUY, qty=Decimal(1))
    )
    emu.put_raw_order(foreign)

    assert [o.client_order_id for o in broker.get_open_orders()] == [mine.client_order_id]


def test_a_foreign_unreadable_order_is_warned_about_once(
    emu: AlpacaEmulator, broker: AlpacaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    emu.put_raw_order(multi_leg_options_order())
    caplog.set_level(logging.WARNING)

    broker.get_open_orders()
    broker.get_open_orders()

    assert len(plugin_warnings(caplog)) == 1


def test_an_exit_goes_out_while_a_multi_leg_options_order_is_open(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> None:
    outcome = stop_loss_exit_with_a_hand_order(multi_leg_options_order(), market, ledger_url, env, settings, plugins)

    assert outcome.order is not None, outcome.note
    assert [(r.body or {}).get("qty") for r in market.requests("POST /v2/orders")] == ["10"]


def test_the_recovery_poll_reports_fills_while_a_multi_leg_options_order_is_open(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(stream=False, poll_interval_seconds=0)
    emu.put_raw_order(multi_leg_options_order())
    emu.put_raw_order(raw_order("mleg-done", symbol="", side="", order_class="mleg", status="filled"))

    broker.submit_order(
        OrderRequest(client_order_id=client_order_id_for("p"), symbol="AAPL", side=Side.BUY, qty=Decimal(2))
    )

    assert [e.kind for e in broker.drain_events()] == [OrderEventKind.FILL]


# ---------------------------------------------------------------------------- orders tradekit placed


def test_an_unreadable_order_tradekit_placed_still_stops_the_read(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.put_raw_order(raw_order("ours-1", client_order_id=client_order_id_for("mine"), side=""))

    with pytest.raises(BrokerDataError, match="side"):
        broker.get_open_orders()


# ---------------------------------------------------------------------------- unreadable orders on a stock


def test_a_foreign_unreadable_order_on_a_stock_stands_for_an_open_order_of_unknown_size(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.put_raw_order(raw_order("odd-1", side=""))

    (stand_in,) = broker.get_open_orders()

    assert (stand_in.symbol, stand_in.broker_order_id, stand_in.client_order_id) == ("AAPL", "odd-1", "hand-odd-1")
    # Its side unread, it is taken as a sell of all that is held: no exit sells past it.
    assert (stand_in.side, stand_in.qty, stand_in.notional) == (Side.SELL, None, None)
    assert stand_in.status is OrderStatus.ACCEPTED


def test_a_foreign_unreadable_order_on_the_stock_holds_its_exit_back(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> None:
    odd_sell = raw_order("odd-sell", side="sell", type="some_new_type", order_type="some_new_type")

    outcome = stop_loss_exit_with_a_hand_order(odd_sell, market, ledger_url, env, settings, plugins)

    assert outcome.order is None
    assert market.requests("POST /v2/orders") == []


# ---------------------------------------------------------------------------- positions


def raw_position(symbol: str, asset_class: str, **fields: Any) -> dict[str, Any]:
    position: dict[str, Any] = {
        "asset_id": f"id-{symbol}",
        "symbol": symbol,
        "asset_class": asset_class,
        "qty": "1",
        "side": "long",
        "avg_entry_price": "3.10",
        "current_price": "3.40",
    }
    position.update(fields)
    return position


def test_positions_are_read_past_an_unreadable_position_of_another_asset_class(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    emu.set_position("AAPL", Decimal(10), Decimal(120))
    emu.put_raw_position(raw_position("AAPL260320C00200000", "us_option", avg_entry_price=None))

    assert [(p.symbol, p.qty) for p in broker.get_positions()] == [("AAPL", Decimal(10))]


def test_an_unreadable_stock_position_still_stops_the_read(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.put_raw_position(raw_position("MSFT", "us_equity", qty="lots"))

    with pytest.raises(BrokerDataError, match="qty"):
        broker.get_positions()
