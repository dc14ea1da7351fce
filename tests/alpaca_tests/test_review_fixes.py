"""What a review found against real Alpaca behaviour, pinned against the emulator.

- Alpaca refuses a reused client order id as "client_order_id must be unique" (underscores);
- a refused stream login is retried for as long as the broker runs, and only reported;
- a page-bounded read of fill activities goes on where it stopped;
- a key holding a line break never reaches an error text or the ledger;
- a negative buying power (a margin deficit) is read as reported and never blocks an exit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

import emulators.alpaca._broker as emulated_broker
import tradekit_broker_alpaca.execution as execution
from emulators.alpaca import AlpacaEmulator
from tradekit.broker.errors import BrokerError, DuplicateClientOrderId
from tradekit.broker.protocol import StreamHeartbeat
from tradekit.config import Settings
from tradekit.domain import OrderRequest, OrderType, Side, Signal
from tradekit.domain.signals import Urgency
from tradekit.execution.live import LiveTrader
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit_broker_alpaca import AlpacaConfigError, AlpacaCredentials
from tradekit_broker_alpaca._http import AlpacaFailure
from tradekit_broker_alpaca.execution import AlpacaBroker
from tradekit_broker_alpaca.plugin import make_alpaca_broker
from tradekit_broker_alpaca.stream import login_retry_delay
from tradekit_strategies_examples.breakout import SingleEntryBreakout

from .conftest import DELIVERY_WAIT_S, KEY_ID, SECRET_KEY, MakeBroker, emulator_config
from .test_e2e_run import IN_THE_WINDOW, market_open, pipeline_on

# The end-to-end fixtures, re-exported under their own names for pytest to find here.
from .test_e2e_run import env as env
from .test_e2e_run import ledger_url as ledger_url
from .test_e2e_run import market as market
from .test_e2e_run import plugins as plugins
from .test_e2e_run import settings as settings

DEFICIT = Decimal("-2500.00")
# The secret split by a line break (a two-line paste); its first half must show nowhere.
BROKEN_SECRET = SECRET_KEY[:20] + "\n" + SECRET_KEY[20:]


def buy(client_order_id: str, qty: str = "1") -> OrderRequest:
    return OrderRequest(client_order_id=client_order_id, symbol="AAPL", side=Side.BUY, qty=Decimal(qty))


def heartbeat_of(broker: AlpacaBroker) -> StreamHeartbeat:
    heartbeat = broker.stream_heartbeat()
    assert heartbeat is not None, "the broker's stream is switched off"
    return heartbeat


def wait_until(reached: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while not reached():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"never reached: {what}")
        time.sleep(0.01)


@contextmanager
def holding_ten_aapl(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings
) -> Iterator[tuple[Ledger, AlpacaBroker]]:
    """The account holds 10 AAPL bought at 120 and the session is open: a ledger and a broker on it."""
    market.set_position("AAPL", Decimal(10), Decimal(120))
    market_open(market)
    ledger = Ledger.open(ledger_url)
    broker = make_alpaca_broker(settings, env)
    try:
        yield ledger, broker
    finally:
        broker.close()
        ledger.close()


# ---------------------------------------------------------------------------- duplicate client order id


def test_reused_client_order_id_refused_in_alpacas_underscore_wording_raises_duplicate(
    emu: AlpacaEmulator, broker: AlpacaBroker
) -> None:
    first = broker.submit_order(buy("dup-underscore"))

    with pytest.raises(DuplicateClientOrderId):
        broker.submit_order(buy("dup-underscore"))

    assert emu.requests("POST /v2/orders")[-1].status == 422
    assert len(emu.orders_with_client_id("dup-underscore")) == 1
    found = broker.get_order_by_client_id("dup-underscore")
    assert found is not None
    assert found.broker_order_id == first.broker_order_id


def test_reused_client_order_id_refused_in_the_spaced_wording_raises_duplicate(
    emu: AlpacaEmulator, broker: AlpacaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulated_broker, "DUPLICATE_CLIENT_ORDER_ID_MESSAGE", "client order id must be unique")
    broker.submit_order(buy("dup-spaced"))

    with pytest.raises(DuplicateClientOrderId):
        broker.submit_order(buy("dup-spaced"))

    assert len(emu.orders_with_client_id("dup-spaced")) == 1


@pytest.mark.parametrize(
    ("code", "message", "duplicate"),
    [
        (40010001, "client_order_id must be unique", True),
        (40010001, "Client Order ID must be unique", True),
        (None, "client_order_id must be unique", True),
        (40010001, "client_order_id must be no more than 128 characters", False),
        (40010001, "invalid client_order_id", False),
        (40310000, "client_order_id must be unique", False),
    ],
)
def test_only_alpacas_uniqueness_refusal_reads_as_a_duplicate(code: int | None, message: str, duplicate: bool) -> None:
    assert AlpacaFailure(422, code, message).is_duplicate_client_order_id is duplicate


# ---------------------------------------------------------------------------- negative buying power


def test_a_negative_buying_power_is_read_as_alpaca_reports_it(emu: AlpacaEmulator, broker: AlpacaBroker) -> None:
    emu.report_buying_power(DEFICIT)

    assert broker.get_account().buying_power == DEFICIT


def test_with_a_margin_deficit_a_stop_loss_exit_still_goes_out(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> None:
    with holding_ten_aapl(market, ledger_url, env, settings) as (ledger, broker):
        pipeline = pipeline_on(ledger, broker, settings, plugins)
        pipeline.reconcile()  # adopts the 10 AAPL held at Alpaca
        market.report_buying_power(DEFICIT)
        stop = Signal(
            symbol="AAPL",
            side=Side.SELL,
            confidence=5,
            generated_at=IN_THE_WINDOW,
            source="stop",
            urgency=Urgency.IMMEDIATE,
            reason="stop loss",
        )
        outcome = pipeline.plan_exit(stop)

    assert outcome.order is not None
    (sell,) = market.requests("POST /v2/orders")
    assert sell.body is not None
    assert (sell.body["side"], sell.body["qty"]) == ("sell", "10")


# ---------------------------------------------------------------------------- the stream's refused logins


def test_the_login_retry_delay_doubles_from_the_minimum_and_stays_at_the_maximum() -> None:
    delays = [login_retry_delay(n, min_backoff=1.0, max_backoff=30.0) for n in range(1, 9)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert login_retry_delay(10_000, min_backoff=1.0, max_backoff=30.0) == 30.0


def test_refused_stream_logins_are_reported_while_polls_go_on_and_the_stream_comes_back(
    emu: AlpacaEmulator, make_broker: MakeBroker
) -> None:
    broker = make_broker(stream_max_auth_failures=2)
    emu.refuse_stream_logins()
    emu.drop_stream_connections()
    wait_until(lambda: heartbeat_of(broker).failure is not None, "the failure is reported")
    down = heartbeat_of(broker)
    emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(1))

    recovered = broker.drain_events()  # polled, since the stream cannot deliver
    quiet = [broker.drain_events() for _ in range(2)]  # nothing new: no error either
    emu.refuse_stream_logins(False)
    wait_until(lambda: heartbeat_of(broker).connected, "the stream logs in again")
    up = heartbeat_of(broker)

    assert not down.connected
    assert down.failure is not None
    assert "refused the API key" in down.failure
    assert [e.kind.value for e in recovered if e.fill is not None] == ["fill"]
    assert quiet == [(), ()]
    assert up.failure is None


def test_live_cycles_go_on_while_the_stream_login_is_refused(
    market: AlpacaEmulator, ledger_url: str, env: dict[str, str], settings: Settings, plugins: Plugins
) -> None:
    with holding_ten_aapl(market, ledger_url, env, settings) as (ledger, broker):
        market.wait_for_stream_listeners(1)
        pipeline = pipeline_on(ledger, broker, settings, plugins)
        pipeline.reconcile()
        market.refuse_stream_logins()
        market.drop_stream_connections()
        wait_until(lambda: heartbeat_of(broker).failure is not None, "the failure is reported")
        trader = LiveTrader(pipeline, SingleEntryBreakout, ["AAPL"])
        reports = [trader.cycle() for _ in range(2)]

    assert [r.skipped for r in reports] == [False, False]


# ---------------------------------------------------------------------------- fill activities beyond the page bound


def test_a_missed_fill_beyond_the_page_bound_is_recovered_by_the_next_polls_in_bounded_steps(
    emu: AlpacaEmulator, make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution, "_MAX_ACTIVITY_PAGES", 1)
    monkeypatch.setattr(execution, "_ACTIVITIES_PAGE", 2)
    emu.set_fill_policy(fill_limit_orders=False)
    broker = make_broker(stream=False, poll_interval_seconds=0)
    mine = broker.submit_order(
        OrderRequest(
            client_order_id="rest-1",
            symbol="AAPL",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=Decimal(2),
            limit_price=Decimal(100),
        )
    )
    broker.drain_events()
    for _ in range(3):  # other fills on the account first: the dashboard, another program
        emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(1))
    emu.fill_order(mine.broker_order_id, price=Decimal(100))

    reads_per_poll: list[int] = []
    fills: list[Decimal] = []
    for _ in range(3):
        before = len(emu.requests("GET /v2/account/activities/FILL"))
        events = broker.drain_events()
        reads_per_poll.append(len(emu.requests("GET /v2/account/activities/FILL")) - before)
        fills += [e.fill.qty for e in events if e.fill is not None and e.order.client_order_id == "rest-1"]

    assert fills == [Decimal(2)]
    assert max(reads_per_poll) <= 1


def test_get_fills_stops_reading_activities_once_the_orders_fills_are_all_read(
    emu: AlpacaEmulator, make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution, "_ACTIVITIES_PAGE", 1)
    broker = make_broker(stream=False)
    broker.submit_order(buy("early", qty="2"))
    for _ in range(5):  # later fills on the account
        emu.submit_dashboard_order("AAPL", "buy", qty=Decimal(1))

    fills = broker.get_fills("early")

    assert [f.qty for f in fills] == [Decimal(2)]
    assert len(emu.requests("GET /v2/account/activities/FILL")) == 1


# ---------------------------------------------------------------------------- a key with a line break


@pytest.fixture
def broken_key_broker(emu: AlpacaEmulator) -> Iterator[AlpacaBroker]:
    broker = AlpacaBroker(
        emulator_config(emu, stream=False), AlpacaCredentials(key_id=KEY_ID, secret_key=BROKEN_SECRET)
    )
    yield broker
    broker.close()


@pytest.mark.parametrize("call", ["get_positions", "get_account", "submit_order"])
def test_a_line_break_in_the_secret_never_reaches_the_error_text(broken_key_broker: AlpacaBroker, call: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "get_positions": broken_key_broker.get_positions,
        "get_account": broken_key_broker.get_account,
        "submit_order": lambda: broken_key_broker.submit_order(buy("broken-key")),
    }

    with pytest.raises(BrokerError) as raised:
        calls[call]()

    text = str(raised.value)
    assert SECRET_KEY[:20] not in text
    assert SECRET_KEY[20:] not in text
    assert "InvalidHeader" in text


def test_a_line_break_in_the_secret_never_reaches_the_ledger(
    market: AlpacaEmulator, tmp_path: Path, settings: Settings, plugins: Plugins
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'broken.db'}")
    broker = AlpacaBroker(
        emulator_config(market, stream=False), AlpacaCredentials(key_id=KEY_ID, secret_key=BROKEN_SECRET)
    )
    try:
        # A fixed clock: the broker's clock cannot be read with this key.
        report = pipeline_on(ledger, broker, settings, plugins, clock=lambda: IN_THE_WINDOW).reconcile()
    finally:
        broker.close()
        ledger.close()

    stored = b"".join(path.read_bytes() for path in tmp_path.glob("broken.db*"))
    assert report.error is not None
    assert SECRET_KEY[:20].encode() not in stored
    assert SECRET_KEY[:20] not in report.error


@pytest.mark.parametrize("variable", ["APCA_API_KEY_ID", "APCA_API_SECRET_KEY"])
@pytest.mark.parametrize("inside", ["\n", "\r", "\t", " ", "\x00"])
def test_a_key_with_whitespace_or_a_control_character_inside_is_refused_naming_the_variable(
    variable: str, inside: str
) -> None:
    env = {"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": SECRET_KEY}
    env[variable] = env[variable][:8] + inside + env[variable][8:]

    with pytest.raises(AlpacaConfigError) as raised:
        AlpacaCredentials.from_env(env)

    text = str(raised.value)
    assert variable in text
    assert KEY_ID[:8] not in text
    assert SECRET_KEY[:8] not in text


def test_whitespace_around_a_key_is_still_dropped() -> None:
    credentials = AlpacaCredentials.from_env({"APCA_API_KEY_ID": f" {KEY_ID}\n", "APCA_API_SECRET_KEY": SECRET_KEY})

    assert credentials.key_id == KEY_ID
