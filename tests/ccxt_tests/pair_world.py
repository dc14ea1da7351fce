"""A pair-trading world for tests: two venues, a ledger, the pair store and a trader.

``PairWorld`` runs the trader against two emulators over HTTP (the real ccxt clients);
``EngineVenue`` is an in-process ``PerpVenue`` over the same matching engine, without HTTP,
for property tests that need many runs. Both quote books from a ``SeriesPoint`` of the
synthetic generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ccxt_tests.venues import ETH, new_emulator, set_book, sync_venue
from emulators._perp_book import IncomeType, PerpEngine, PerpVenueEmulator, TimeInForce
from emulators._perp_book import OrderRejected as EngineRejection
from emulators._perp_book import OrderType as EngineOrderType
from emulators._perp_book import Side as EngineSide
from tradekit.broker.errors import OrderRejected
from tradekit.decision.context import AccountLimits
from tradekit.domain.account import AccountSnapshot
from tradekit.domain.orders import Order, OrderRequest, OrderStatus, OrderType
from tradekit.domain.positions import BrokerPosition
from tradekit.domain.signals import Side
from tradekit.ledger.records import StoredDecision
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit_venue_ccxt import plugin
from tradekit_venue_ccxt.pairs import features as f
from tradekit_venue_ccxt.pairs.config import BookClock, PairTradingConfig
from tradekit_venue_ccxt.pairs.models import PairEventKind, PairPosition, PairSignal
from tradekit_venue_ccxt.pairs.store import PairStore
from tradekit_venue_ccxt.pairs.synthetic import SeriesPoint
from tradekit_venue_ccxt.pairs.trader import CycleReport, PairTrader, SignalOutcome
from tradekit_venue_ccxt.pairs.venue import PerpVenue
from tradekit_venue_ccxt.providers import FundingPayment, OrderBook, PerpMarket, VenueFill, ms_to_utc

LONG_VENUE = "binanceusdm"
SHORT_VENUE = "bybit"
START = datetime(2025, 1, 6, tzinfo=UTC)
MID = Decimal(3000)
TICK = Decimal("0.01")
BPS = Decimal("0.0001")


def pair_plugins() -> Plugins:
    """tradekit's built-in rules plus this package's plugin, nothing else installed."""
    return Plugins(load_entrypoints=False, env={}, extra=[("ccxt", plugin)])


def pair_limits(**overrides: Any) -> AccountLimits:
    """Account limits a pair account would use: cooldowns the pair config governs, a wide cap."""
    settings: dict[str, Any] = {
        "max_entries_per_symbol": 6,
        "min_time_between_entries": timedelta(0),
        "max_allocation_per_symbol_pct": Decimal(40),
        "max_position_pct_of_account": Decimal(40),
        "daily_order_limit": 1000,
        "order_cooldown": timedelta(0),
        "one_signal_per_symbol_per_day": False,
    }
    settings.update(overrides)
    return AccountLimits(**settings)


def pair_config(**overrides: Any) -> PairTradingConfig:
    settings: dict[str, Any] = {
        "entry_notional": Decimal(1000),
        "max_total_notional": Decimal(4500),
        "funding_hard_stop": Decimal(50),
        "min_interval_minutes": 30,
        "signal_max_age_minutes": 30,
        # A world's ``now`` is not its emulators' clock: books are aged by each venue's server
        # time, with room for a slow machine between quoting a book and reading it.
        "book_clock": BookClock.VENUE,
        "max_book_age_seconds": 60,
    }
    settings.update(overrides)
    return PairTradingConfig(**settings)


def pair_figures(**overrides: Decimal) -> dict[str, Decimal]:
    """The figures a pair decision reads: a first entry at 20 bps that passes every pair check."""
    values = {
        f.SPREAD: 20 * BPS,
        f.TRIGGER_MULTIPLIER: Decimal("1.5"),
        f.TOTAL_NOTIONAL: Decimal(0),
        f.ADD_NOTIONAL: Decimal(1000),
        f.MAX_TOTAL_NOTIONAL: Decimal(4000),
        f.SIGNAL_AGE_SECONDS: Decimal(60),
        f.SIGNAL_MAX_AGE_SECONDS: Decimal(900),
        f.LONG_SLIPPAGE_BPS: Decimal(1),
        f.SHORT_SLIPPAGE_BPS: Decimal(1),
        f.MAX_SLIPPAGE_BPS: Decimal(10),
        f.LONG_BOOK_FILL: Decimal(1),
        f.SHORT_BOOK_FILL: Decimal(1),
        f.ORDER_QTY: Decimal("0.33"),
        f.MIN_ORDER_QTY: Decimal("0.01"),
        f.CONFLICTING_PAIRS: Decimal(0),
        f.LONG_BOOK_AGE_SECONDS: Decimal("0.2"),
        f.SHORT_BOOK_AGE_SECONDS: Decimal("0.3"),
        f.MAX_BOOK_AGE_SECONDS: Decimal(5),
        f.FAILED_ENTRIES: Decimal(0),
        f.ENTRY_COOLDOWN_SECONDS: Decimal(0),
        f.ENTRY_COOLDOWN_LEFT_SECONDS: Decimal(0),
    }
    values.update(overrides)
    return values


def quote(emulators: tuple[PerpVenueEmulator, PerpVenueEmulator], point: SeriesPoint, depth: Decimal) -> None:
    long_emu, short_emu = emulators
    set_book(long_emu, ETH, point.long_mid, depth=depth)
    set_book(short_emu, ETH, point.short_mid, depth=depth)
    long_emu.set_funding_rate(ETH, point.long_funding_rate)
    short_emu.set_funding_rate(ETH, point.short_funding_rate)
    if point.funding_settles:
        long_emu.apply_funding(ETH)
        short_emu.apply_funding(ETH)


@attrs.define
class PairWorld:
    """Binance long, Bybit short (unless told), on ETH/USDT perpetuals; a SQLite ledger in ``directory``."""

    directory: Path
    config: PairTradingConfig
    limits: AccountLimits
    long_emu: PerpVenueEmulator
    short_emu: PerpVenueEmulator
    long_venue: str = LONG_VENUE
    short_venue: str = SHORT_VENUE
    depth: Decimal = Decimal(50)
    ledger: Ledger | None = None
    store: PairStore | None = None
    trader: PairTrader | None = None
    venues: dict[str, Any] = attrs.field(factory=dict)
    events: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    @classmethod
    def start(
        cls,
        directory: Path,
        config: PairTradingConfig | None = None,
        limits: AccountLimits | None = None,
        *,
        long_venue: str = LONG_VENUE,
        short_venue: str = SHORT_VENUE,
    ) -> PairWorld:
        world = cls(
            directory=directory,
            config=config or pair_config(),
            limits=limits if limits is not None else pair_limits(),
            long_emu=new_emulator(long_venue).start(),
            short_emu=new_emulator(short_venue).start(),
            long_venue=long_venue,
            short_venue=short_venue,
        )
        world.connect()
        return world

    @property
    def url(self) -> str:
        return f"sqlite:///{self.directory / 'ledger.db'}"

    def connect(
        self, venues: dict[str, Any] | None = None, wrap_ledger: Callable[[Ledger], Any] | None = None
    ) -> PairTrader:
        """(Re)start the trading process: fresh clients, the same database."""
        self.ledger = Ledger.open(self.url, for_trading=True)
        self.store = PairStore.open(self.url)
        self.venues = venues or {
            self.long_venue: sync_venue(self.long_emu, self.long_venue, timeout_ms=1000),
            self.short_venue: sync_venue(self.short_emu, self.short_venue, timeout_ms=1000),
        }
        self.trader = PairTrader(
            config=self.config,
            venues=self.venues,
            ledger=wrap_ledger(self.ledger) if wrap_ledger is not None else self.ledger,
            store=self.store,
            limits=self.limits,
            plugins=pair_plugins(),
            order_poll_interval_s=0,
            sleep=lambda _s: None,
        )
        return self.trader

    def crash(self) -> None:
        """The process dies: connections go, nothing else is written."""
        for venue in self.venues.values():
            venue.close()
        assert self.store is not None
        assert self.ledger is not None
        self.store.close()
        self.ledger.close()

    def close(self) -> None:
        self.crash()
        self.long_emu.stop()
        self.short_emu.stop()

    def quote(self, point: SeriesPoint) -> None:
        quote((self.long_emu, self.short_emu), point, self.depth)

    def signal(self, at: datetime, *, event_id: str = "evt-1", event_open: bool = True) -> PairSignal:
        return PairSignal(
            event_id=event_id,
            symbol=ETH,
            long_venue=self.long_venue,
            short_venue=self.short_venue,
            generated_at=at,
            event_open=event_open,
            confidence=5,
        )

    def step(self, point: SeriesPoint, *, signal: bool = True, event_id: str = "evt-1") -> CycleReport:
        """Quote the point, let the watchlist refresh its event, run one cycle."""
        self.quote(point)
        return self.cycle(point.time, signal=signal, event_id=event_id)

    def quote_spread(self, spread_bps: int, mid: Decimal = MID) -> None:
        """The long venue's book around ``mid``, the short venue's ``spread_bps`` above it."""
        set_book(self.long_emu, ETH, mid)
        set_book(self.short_emu, ETH, mid * (1 + Decimal(spread_bps) / 10000))

    def cycle(
        self, at: datetime, spread_bps: int | None = None, *, signal: bool = True, event_id: str = "evt-1"
    ) -> CycleReport:
        """Quote ``spread_bps`` (if given), let the watchlist refresh its event (if ``signal``), run one cycle."""
        if spread_bps is not None:
            self.quote_spread(spread_bps)
        assert self.trader is not None
        if signal:
            self.trader.submit_signal(self.signal(at, event_id=event_id), at)
        return self.trader.run_cycle(at)

    def pairs(self) -> list[PairPosition]:
        assert self.store is not None
        return self.store.pairs()

    def only_pair(self) -> PairPosition:
        pairs = self.pairs()
        assert len(pairs) == 1, pairs
        return pairs[0]

    def venue_qty(self) -> tuple[Decimal, Decimal]:
        """Signed ETH position on the long venue and on the short venue."""
        return self.long_emu.position(ETH).qty, self.short_emu.position(ETH).qty

    def events_of(self, kind: PairEventKind) -> list[Any]:
        """The payloads of the latest pair's events of ``kind``, oldest first."""
        pair = self.pairs()[-1]
        assert self.store is not None
        return [e.payload for e in self.store.events(pair.pair_id) if e.kind is kind]

    def latest_decision(self, event_id: str = "evt-1") -> StoredDecision:
        """The decision the ledger recorded for the latest update of the event."""
        assert self.store is not None
        assert self.ledger is not None
        decision_id = self.store.signal_history(event_id)[-1].decision_id
        assert decision_id is not None
        with self.ledger.reading() as tx:
            stored = tx.decision(decision_id)
        assert stored is not None
        return stored


def only_outcome(report: CycleReport) -> SignalOutcome:
    (outcome,) = report.signals
    return outcome


class RefusingReduceOnly:
    """A venue that refuses reduce-only orders while ``refusing`` (e.g. the venue is in maintenance)."""

    def __init__(self, inner: Any, *, refusing: bool = False) -> None:
        self.inner = inner
        self.refusing = refusing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        if reduce_only and self.refusing:
            raise OrderRejected(f"{request.client_order_id}: reduce-only orders are suspended")
        result: Order = self.inner.submit_order(request, reduce_only=reduce_only)
        return result


# --- an in-process venue over the emulators' matching engine ---------------------------------


def _market(engine: PerpEngine, symbol: str) -> PerpMarket:
    spec = engine.spec(symbol)
    return PerpMarket(
        symbol=spec.symbol,
        venue_symbol=spec.venue_symbol,
        base=spec.base,
        quote=spec.quote,
        settle=spec.settle,
        contract_size=spec.contract_size,
        amount_step=spec.step_size,
        price_step=spec.tick_size,
        min_qty=spec.min_qty,
        max_qty=spec.max_qty,
        max_market_qty=spec.max_market_qty,
        min_notional=spec.min_notional,
    )


_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
}


class EngineVenue:
    """A ``PerpVenue`` calling a ``PerpEngine`` directly: the emulators' venue logic without HTTP."""

    def __init__(self, venue: str, engine: PerpEngine) -> None:
        self._venue = venue
        self.engine = engine

    @property
    def venue(self) -> str:
        return self._venue

    def quote(self, mid: Decimal) -> None:
        """Three levels of 50 each side of ``mid`` (rounded to the tick), marked at ``mid``."""
        mid = mid.quantize(TICK)
        self.engine.set_order_book(
            ETH,
            bids=[(mid - TICK * k, Decimal(50)) for k in range(1, 4)],
            asks=[(mid + TICK * k, Decimal(50)) for k in range(1, 4)],
        )
        self.engine.set_mark_price(ETH, mid)

    def market(self, symbol: str) -> PerpMarket | None:
        try:
            return _market(self.engine, symbol)
        except KeyError:
            return None

    def order_book(self, symbol: str, depth: int = 50) -> OrderBook:
        bids, asks, _update, updated_ms = self.engine.order_book(symbol, depth)
        raw = {"bids": [[p, q] for p, q in bids], "asks": [[p, q] for p, q in asks], "timestamp": updated_ms}
        return OrderBook.from_ccxt(raw, symbol=symbol, received_at=datetime.now(UTC))

    def get_account(self) -> AccountSnapshot:
        account = self.engine.account()
        return AccountSnapshot(
            equity=account.margin_balance,
            cash=account.wallet_balance,
            buying_power=max(account.available_balance, Decimal(0)),
            as_of=ms_to_utc(account.updated_ms, field="updated", what="engine"),
            currency=account.asset,
        )

    def get_positions(self) -> Sequence[BrokerPosition]:
        return [
            BrokerPosition(
                symbol=p.symbol,
                qty=p.qty,
                avg_entry_price=p.entry_price,
                as_of=datetime.now(UTC),
                current_price=p.mark_price,
                asset_class="crypto_perp",
            )
            for p in self.engine.account().positions
            if p.qty != 0
        ]

    def submit_order(self, request: OrderRequest, *, reduce_only: bool = False) -> Order:
        assert request.qty is not None
        assert request.order_type is OrderType.MARKET
        try:
            placed = self.engine.place_order(
                symbol=request.symbol,
                side=EngineSide.BUY if request.side is Side.BUY else EngineSide.SELL,
                order_type=EngineOrderType.MARKET,
                quantity=request.qty,
                price=None,
                time_in_force=TimeInForce.IOC,
                reduce_only=reduce_only,
                client_order_id=request.client_order_id,
            )
        except EngineRejection as exc:
            raise OrderRejected(f"{self._venue} refused {request.client_order_id}: {exc}") from None
        order = self.find_order(request.client_order_id, request.symbol)
        assert order is not None
        assert order.broker_order_id == placed.order_id
        return order

    def find_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        found = self.engine.find_order(symbol, client_order_id=client_order_id)
        if found is None:
            return None
        return Order(
            client_order_id=found.client_order_id,
            broker_order_id=found.order_id,
            symbol=found.symbol,
            side=Side.BUY if found.side is EngineSide.BUY else Side.SELL,
            order_type=OrderType.MARKET,
            status=_STATUS[found.status.value],
            qty=found.quantity,
            filled_qty=found.filled_qty,
            filled_avg_price=found.average_price,
            submitted_at=ms_to_utc(found.created_ms, field="created", what="engine"),
        )

    def venue_fills(self, client_order_id: str, symbol: str | None = None) -> list[VenueFill]:
        return [
            VenueFill(
                venue=self._venue,
                execution_id=f.trade_id,
                client_order_id=f.client_order_id,
                venue_order_id=f.order_id,
                symbol=f.symbol,
                side=Side.BUY if f.side is EngineSide.BUY else Side.SELL,
                qty=f.qty,
                price=f.price,
                fee=f.fee,
                time=ms_to_utc(f.time_ms, field="time", what="engine"),
            )
            for f in self.engine.fills(symbol)
            if f.client_order_id == client_order_id
        ]

    def funding_payments(self, symbol: str, since: datetime | None = None) -> list[FundingPayment]:
        return [
            FundingPayment(
                venue=self._venue,
                symbol=income.symbol,
                funding_id=income.funding_id,
                amount=income.amount,
                currency=income.asset,
                time=ms_to_utc(income.time_ms, field="time", what="engine"),
            )
            for income in self.engine.incomes()
            if income.income_type is IncomeType.FUNDING_FEE and income.symbol == symbol
        ]


def engine_venues() -> dict[str, PerpVenue]:
    """Fresh in-process Binance (long) and Bybit (short) accounts of 10 000 USDT each."""
    return {
        LONG_VENUE: EngineVenue(LONG_VENUE, new_emulator(LONG_VENUE).engine),
        SHORT_VENUE: EngineVenue(SHORT_VENUE, new_emulator(SHORT_VENUE).engine),
    }


@attrs.define
class EngineWorld:
    """A trader on ``engine_venues()`` (Binance long, Bybit short) and in-memory databases."""

    long: EngineVenue
    short: EngineVenue
    ledger: Ledger
    store: PairStore
    trader: PairTrader

    def quote(self, long_mid: Decimal, short_mid: Decimal) -> None:
        self.long.quote(long_mid)
        self.short.quote(short_mid)

    def cycle(self, now: datetime) -> CycleReport:
        """Refresh the watchlist's event at ``now`` and run one cycle."""
        signal = PairSignal(
            event_id="evt", symbol=ETH, long_venue=LONG_VENUE, short_venue=SHORT_VENUE, generated_at=now
        )
        self.trader.submit_signal(signal, now)
        return self.trader.run_cycle(now)


@contextmanager
def engine_world(config: PairTradingConfig, limits: AccountLimits | None = None) -> Iterator[EngineWorld]:
    venues = engine_venues()
    long, short = venues[LONG_VENUE], venues[SHORT_VENUE]
    assert isinstance(long, EngineVenue)
    assert isinstance(short, EngineVenue)
    ledger = Ledger.open("sqlite://")
    store = PairStore.open("sqlite://")
    trader = PairTrader(
        config=config,
        venues=venues,
        ledger=ledger,
        store=store,
        limits=limits if limits is not None else pair_limits(),
        plugins=pair_plugins(),
        order_poll_interval_s=0,
        sleep=lambda _s: None,
    )
    try:
        yield EngineWorld(long=long, short=short, ledger=ledger, store=store, trader=trader)
    finally:
        store.close()
        ledger.close()
