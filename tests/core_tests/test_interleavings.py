"""Any interleaving of broker faults and restarts ends with the ledger holding what the broker holds.

Hypothesis plays a Monday session of buys and a Tuesday exit window on the paper broker and
a real SQLite ledger file, with faults armed between steps: lost requests, lost answers,
timeouts after acceptance, rejections, duplicate and reordered events, dropped events, a
disconnected broker, order lookups and fill reads answering errors, fills arriving later
(slices at later prices), and restarts (a new pipeline on the same ledger and broker). When
the faults stop and the clock passes the lost-order grace, a restart settles everything and
the invariants issue #11 names must hold: per symbol the ledger holds what the broker holds,
every intent has at most one broker order, nothing is left unsettled or blocked.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tradekit import Strategy, StrategyScalingPolicy, StrategyView
from tradekit.broker.errors import BrokerUnavailable
from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, ReceiptOutcome, SliceTiming
from tradekit.config import OrderGuardSettings, ScaleInSettings, Settings
from tradekit.domain import Fill, Order, Side, Signal
from tradekit.execution.session import startup
from tradekit.ledger import Ledger

from .test_pipeline import Trading, make_trading

MONDAY = datetime(2024, 3, 4, 14, 35, tzinfo=UTC)
MONDAY_EVENING = datetime(2024, 3, 4, 21, 15, tzinfo=UTC)
TUESDAY_WINDOW = datetime(2024, 3, 5, 14, 36, tzinfo=UTC)
AFTER_TUESDAY_CLOSE = datetime(2024, 3, 5, 21, 1, tzinfo=UTC)
SYMBOLS = ("KO", "PFE")
PRICES = {"KO": Decimal(60), "PFE": Decimal(28)}


class Adder(Strategy):
    """Scales in on every signal the account allows: the most entries, the most chances to err."""

    name = "adder"
    scaling_policy = StrategyScalingPolicy(allow_scaling=True, max_entries=4)

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        return []


class FlakyPaper(PaperBroker):
    """The paper broker whose order lookups and fill reads can answer errors (HTTP 500s)."""

    lookups_down = False
    fills_down = False

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        if self.lookups_down:
            raise BrokerUnavailable("GET /v2/orders:by_client_order_id: HTTP 500")
        return super().get_order_by_client_id(client_order_id)

    def get_fills(self, client_order_id: str) -> Sequence[Fill]:
        if self.fills_down:
            raise BrokerUnavailable("GET /v2/account/activities/FILL: HTTP 500")
        return super().get_fills(client_order_id)


ORDER_FAULTS = (
    Fault.LOST_REQUEST,
    Fault.LOST_RESPONSE,
    Fault.TIMEOUT_AFTER_ACCEPT,
    Fault.REJECT,
    Fault.REJECT_AFTER_ACCEPT,
)
EVENT_FAULTS = (Fault.DUPLICATE_FILL_EVENTS, Fault.OUT_OF_ORDER_EVENTS)


@attrs.frozen
class Send:
    """Send an order (a buy on Monday, the due exits on Tuesday), ``fault`` armed first."""

    symbol: str
    fault: Fault | None


@attrs.frozen
class Events:
    """Deliver the broker's events: applied (``drop=False``) or lost with a dying stream."""

    drop: bool
    fault: Fault | None


@attrs.frozen
class Reads:
    """Order lookups and fill reads start or stop answering errors."""

    lookups_down: bool
    fills_down: bool


@attrs.frozen
class Disconnect:
    """The next ``calls`` broker calls fail."""

    calls: int


@attrs.frozen
class Tick:
    """Time passes; the symbol's price moves (a later slice may fill); the cycle settles."""

    symbol: str
    move_pct: int
    minutes: int


@attrs.frozen
class Restart:
    """The process dies and a new one starts on the same ledger file and broker."""


Step = Send | Events | Reads | Disconnect | Tick | Restart

# Most orders go through cleanly, as in a real session; a third meet a fault.
sends = st.builds(Send, st.sampled_from(SYMBOLS), st.one_of(st.none(), st.none(), st.sampled_from(ORDER_FAULTS)))
events = st.builds(Events, st.booleans(), st.none() | st.sampled_from(EVENT_FAULTS))
ticks = st.builds(Tick, st.sampled_from(SYMBOLS), st.integers(-2, 3), st.integers(1, 4))
# Orders, events and time weigh more than the rest: most of a session is trading.
steps = st.one_of(
    sends,
    sends,
    sends,
    sends,
    events,
    events,
    ticks,
    ticks,
    ticks,
    st.builds(Reads, st.booleans(), st.booleans()),
    st.builds(Disconnect, st.integers(1, 4)),
    st.just(Restart()),
)


@attrs.define
class World:
    tmp: Path
    broker: FlakyPaper
    settings: Settings
    t: Trading
    signals: int = 0

    @classmethod
    def start(cls, tmp: Path) -> World:
        broker = FlakyPaper(PaperBrokerConfig(fill_slices=2, slice_timing=SliceTiming.PER_PRICE_UPDATE))
        for symbol, price in PRICES.items():
            broker.set_price(symbol, price, MONDAY - timedelta(minutes=5))
        # No cooldowns or daily limits: every signal that may be sent is, the most chances to err.
        settings = Settings(
            scale_in=ScaleInSettings(min_time_between_entries_minutes=0),
            orders=OrderGuardSettings(
                daily_order_limit=100, order_cooldown_minutes=0, one_signal_per_symbol_per_day=False
            ),
        )
        world = cls(tmp, broker, settings, make_trading(tmp, paper=broker, settings=settings))
        world.t.clock.now = MONDAY
        world.guarded(lambda: startup(world.t.pipeline))
        return world

    def guarded(self, action: Callable[[], object]) -> None:
        """Run one cycle step; a broker that is down is what the next cycle retries."""
        with contextlib.suppress(BrokerUnavailable):
            action()

    def signal(self, symbol: str, side: Side) -> Signal:
        self.signals += 1
        return Signal(
            symbol=symbol,
            side=side,
            confidence=5,
            generated_at=self.t.clock.now - timedelta(minutes=1),
            reference_price=self.broker.last_price(symbol) or PRICES[symbol],
            source=f"interleaving-{self.signals}",
        )

    def play(self, step: Step, *, selling: bool) -> None:
        pipeline = self.t.pipeline
        if isinstance(step, Send):
            if step.fault is not None:
                self.broker.faults.arm(step.fault, symbol=step.symbol)
            if selling:
                prices = {s: p for s in SYMBOLS if (p := self.broker.last_price(s)) is not None}
                self.guarded(lambda: pipeline.execute_due_exits(prices))
            else:
                market = self.t.market(step.symbol)
                self.guarded(lambda: pipeline.process_buy(self.signal(step.symbol, Side.BUY), Adder, market))
        elif isinstance(step, Events):
            if step.fault is not None:
                self.broker.faults.arm(step.fault)
            if step.drop:
                self.guarded(self.broker.drain_events)
            else:
                self.guarded(pipeline.apply_events)
        elif isinstance(step, Reads):
            self.broker.lookups_down, self.broker.fills_down = step.lookups_down, step.fills_down
        elif isinstance(step, Disconnect):
            self.broker.faults.arm(Fault.DISCONNECT, times=step.calls)
        elif isinstance(step, Tick):
            self.t.clock.now += timedelta(minutes=step.minutes)
            last = self.broker.last_price(step.symbol)
            assert last is not None
            self.broker.set_price(step.symbol, last * (100 + step.move_pct) / 100, self.t.clock.now)
            self.guarded(pipeline.apply_events)
            self.guarded(pipeline.settle_pending)
            self.guarded(pipeline.reconcile_if_due)
        else:
            self.restart()

    def restart(self) -> None:
        now = self.t.clock.now
        self.t.ledger.close()
        ledger = Ledger.open(f"sqlite:///{self.tmp / 'ledger.db'}")
        self.t = make_trading(self.tmp, paper=self.broker, ledger=ledger, settings=self.settings)
        self.t.clock.now = now
        self.guarded(lambda: startup(self.t.pipeline))

    def plan_exits(self) -> None:
        self.t.clock.now = MONDAY_EVENING
        for symbol in self.t.ledger.open_positions():
            self.guarded(functools.partial(self.t.pipeline.plan_exit, self.signal(symbol, Side.SELL)))
        self.t.clock.now = TUESDAY_WINDOW

    def settle(self) -> None:
        """The faults stop and the session closes; past the lost-order grace a restart settles what is left."""
        self.broker.faults.clear()
        self.broker.lookups_down = self.broker.fills_down = False
        # The market's last prices come after Tuesday's close: every market slice still
        # resting executes, and a day order still working (a limit exit the price moved away
        # from) expires, as it would at a real broker.
        self.t.clock.now = max(self.t.clock.now, AFTER_TUESDAY_CLOSE)
        for symbol in SYMBOLS:
            price = self.broker.last_price(symbol)
            assert price is not None
            self.broker.set_price(symbol, price, self.t.clock.now)
        grace = self.settings.orders.lost_order_grace_seconds
        self.t.clock.now += timedelta(seconds=grace + 60)
        self.restart()
        self.t.pipeline.apply_events()
        self.t.pipeline.settle_pending()
        self.t.pipeline.reconcile_if_due()


# Each session opens with its orders (Monday's buy, Tuesday's due exits); whatever follows may break them.
mondays = st.builds(lambda first, rest: [first, *rest], sends, st.lists(steps, min_size=2, max_size=20))
tuesdays = st.builds(lambda first, rest: [first, *rest], sends, st.lists(steps, max_size=12))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(monday=mondays, tuesday=tuesdays)
def test_after_any_interleaving_of_faults_and_restarts_the_ledger_holds_what_the_broker_holds(
    monday: list[Step], tuesday: list[Step]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World.start(Path(tmp))
        for step in monday:
            world.play(step, selling=False)
        world.plan_exits()
        for step in tuesday:
            world.play(step, selling=True)
        world.settle()

        t = world.t
        at_broker = {p.symbol: p.qty for p in world.broker.get_positions()}
        in_ledger = {s: p.qty for s, p in t.ledger.open_positions().items()}
        assert in_ledger == at_broker
        accepted = Counter(
            r.request.client_order_id for r in world.broker.received_orders if r.outcome is ReceiptOutcome.ACCEPTED
        )
        assert all(n == 1 for n in accepted.values()), accepted
        sides = Counter(r.request.side for r in world.broker.received_orders if r.outcome is ReceiptOutcome.ACCEPTED)
        event(f"buys accepted: {min(sides[Side.BUY], 3)}+, sells accepted: {min(sides[Side.SELL], 2)}+")
        event(f"held at the end: {sorted(in_ledger)}")
        with t.ledger.reading() as tx:
            assert tx.pending_intents() == []
            assert tx.unapplied_fills() == []
        assert t.ledger.unreconciled_symbols() == frozenset()
        t.ledger.close()
