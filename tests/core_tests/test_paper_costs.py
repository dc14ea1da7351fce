"""What a paper run costs: starting cash, commissions (per order, per share, percent) and slippage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tradekit.broker.errors import OrderRejected
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig, PaperRejectCode
from tradekit.broker.paper_plugin import (
    PaperSettings,
    describe_costs,
    load_paper_settings,
    make_paper_broker,
    parse_commission,
)
from tradekit.config import Settings, SettingsError
from tradekit.domain import OrderRequest, OrderType, Side, TimeInForce

D = Decimal
T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def _buy(client_order_id: str, qty: Decimal) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=qty,
        time_in_force=TimeInForce.DAY,
    )


def test_a_percent_commission_is_charged_on_each_fills_notional() -> None:
    paper = PaperBroker(PaperBrokerConfig(commission_pct=D("0.1"), commission_per_order=D(1)))
    paper.set_price("AAPL", D(100), T0)
    paper.submit_order(_buy("b", D(10)))
    (fill,) = paper.get_fills("b")
    assert fill.commission == D("2.0")  # 1 per order + 0.1 % of 1,000
    assert paper.get_account().cash == D(100_000) - D(1000) - D(2)


def test_a_cash_account_buys_only_what_it_can_pay_for_commission_included() -> None:
    paper = PaperBroker(PaperBrokerConfig(starting_cash=D(1000), commission_pct=D(1)))
    paper.set_price("AAPL", D(100), T0)
    with pytest.raises(OrderRejected) as refused:
        paper.submit_order(_buy("all", D(10)))  # 1,000 plus 10 of commission
    assert refused.value.code == PaperRejectCode.INSUFFICIENT_BUYING_POWER
    paper.submit_order(_buy("most", D("9.9")))
    assert paper.get_account().cash == D(1000) - D(990) - D("9.9")


def test_the_paper_table_becomes_paper_settings_and_the_broker_config() -> None:
    settings = Settings(
        plugins={
            "paper": {
                "starting_cash": "25000",
                "commission_per_order": "1",
                "commission_per_share": "0.005",
                "commission_pct": "0.05",
                "slippage_bps": "5",
            }
        }
    )
    paper = load_paper_settings(settings)
    assert isinstance(paper, PaperSettings)
    assert paper.broker_config() == PaperBrokerConfig(
        starting_cash=D(25_000),
        commission_per_order=D(1),
        commission_per_share=D("0.005"),
        commission_pct=D("0.05"),
        slippage_bps=D(5),
    )
    broker = make_paper_broker(settings, {})
    assert isinstance(broker, PaperBroker)
    assert broker.config.commission_pct == D("0.05")


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"starting_cash": "-1"}, "starting_cash must not be negative"),
        ({"comission_per_order": "1"}, "comission_per_order"),
        ({"commission_pct": "100"}, "commission_pct must be below 100"),
        ({"commission_per_share": "-0.01"}, "commission_per_share must not be negative"),
        ({"slippage_bps": 2.5}, "quote it"),
    ],
)
def test_a_bad_paper_setting_is_an_error_naming_the_key(table: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=r"plugins\.paper") as caught:
        load_paper_settings(Settings(plugins={"paper": table}))
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", {"commission_per_order": D(1)}),
        ("$1.50/order", {"commission_per_order": D("1.50")}),
        ("0.005/share", {"commission_per_share": D("0.005")}),
        ("0.1%", {"commission_pct": D("0.1")}),
    ],
)
def test_a_command_line_commission_names_its_kind_by_its_unit(text: str, expected: dict[str, Decimal]) -> None:
    assert parse_commission(text) == expected


@pytest.mark.parametrize("text", ["-1", "abc", "1/lot", "NaN%"])
def test_a_commission_that_is_not_understood_says_what_is_allowed(text: str) -> None:
    with pytest.raises(SettingsError, match=r"AMOUNT/share"):
        parse_commission(text)


def test_command_line_costs_override_the_configured_ones_part_by_part() -> None:
    configured = load_paper_settings(Settings(plugins={"paper": {"commission_per_order": "1", "slippage_bps": "3"}}))
    changed = configured.with_costs(cash=D(5000), commissions=["0.2%"], slippage_bps=D(10))
    assert (changed.starting_cash, changed.commission_per_order, changed.commission_pct, changed.slippage_bps) == (
        D(5000),
        D(1),
        D("0.2"),
        D(10),
    )
    with pytest.raises(SettingsError, match="starting_cash must not be negative"):
        configured.with_costs(cash=D(-5))


def test_the_costs_read_as_a_sentence() -> None:
    assert describe_costs(PaperBrokerConfig()) == ("starting cash 100,000.00 USD, commission none, slippage none")
    config = PaperBrokerConfig(
        starting_cash=D(25_000), commission_per_order=D(1), commission_pct=D("0.1"), slippage_bps=D(5)
    )
    assert describe_costs(config) == (
        "starting cash 25,000.00 USD, commission 1.00 per order + 0.1% of notional, slippage 5 bps"
    )
