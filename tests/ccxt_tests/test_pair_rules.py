"""The pair rule judges pair decisions inside ``tradekit.evaluate_buy``, next to the built-ins."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from ccxt_tests.pair_world import (
    BPS,
    LONG_VENUE,
    SHORT_VENUE,
    START,
    EngineVenue,
    engine_venues,
    pair_config,
    pair_figures,
    pair_limits,
    pair_plugins,
)
from ccxt_tests.venues import ETH
from tradekit.decision.context import MarketSnapshot
from tradekit.decision.engine import evaluate_buy
from tradekit.decision.plugin_reasons import Reason
from tradekit.decision.reasons import BuyAction, CheckOutcome, ReasonCode
from tradekit.decision.verdict import BuyDecision
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit.testing.builders import DEFAULT_NOW, make_context, make_position
from tradekit_venue_ccxt.pairs import features as f
from tradekit_venue_ccxt.pairs.models import PairSignal
from tradekit_venue_ccxt.pairs.rules import PAIR_RULES, RULE_SPREAD
from tradekit_venue_ccxt.pairs.store import PairStore
from tradekit_venue_ccxt.pairs.trader import PairRuleMissing, PairTrader

KEY = "binanceusdm>bybit:ETH/USDT:USDT"


def decide(features: dict[str, Decimal], *, entries: int = 0, drop: tuple[str, ...] = ()) -> BuyDecision:
    position = None
    if entries:
        position = make_position(
            KEY,
            strategy="ccxt-pair",
            entries=[(timedelta(hours=entries - i), Decimal(3000), Decimal("0.33")) for i in range(entries)],
        )
    context = make_context(
        symbol=KEY,
        strategy="ccxt-pair",
        policy=pair_config().scaling_policy(),
        limits=pair_limits(),
        price=Decimal(3000),
        position=position,
    )
    features = {name: value for name, value in features.items() if name not in drop}
    market = MarketSnapshot(price=Decimal(3000), as_of=DEFAULT_NOW, features=features)
    return evaluate_buy(attrs.evolve(context, market=market), plugins=pair_plugins())


def check(decision: BuyDecision, rule: str) -> tuple[CheckOutcome, Reason | None, str]:
    (found,) = [c for c in decision.checks if c.rule == rule]
    return found.outcome, found.reason, found.detail


def test_entry_with_a_positive_spread_is_entered_with_every_pair_check_in_the_trace() -> None:
    decision = decide(pair_figures())
    assert decision.action is BuyAction.ENTER_NEW
    assert {c.rule for c in decision.checks} >= set(PAIR_RULES)


def test_entry_with_a_non_positive_spread_is_skipped() -> None:
    decision = decide(pair_figures(**{f.SPREAD: -1 * BPS}))
    assert decision.action is BuyAction.SKIP
    assert check(decision, RULE_SPREAD)[:2] == (CheckOutcome.SKIP, ReasonCode.PRICE_STRUCTURE)


@pytest.mark.parametrize(
    ("entries", "spread_bps", "action"),
    [
        (1, Decimal("29.99"), BuyAction.SKIP),
        (1, Decimal(30), BuyAction.SCALE_IN),
        (2, Decimal(44), BuyAction.SKIP),
        (2, Decimal(45), BuyAction.SCALE_IN),
        (3, Decimal("67.5"), BuyAction.SCALE_IN),
        (3, Decimal(67), BuyAction.SKIP),
    ],
)
def test_kth_add_needs_the_initial_spread_times_the_multiplier_to_the_k(
    entries: int, spread_bps: Decimal, action: BuyAction
) -> None:
    held = Decimal(990) * entries
    decision = decide(
        pair_figures(**{f.SPREAD: spread_bps * BPS, f.INITIAL_SPREAD: 20 * BPS, f.TOTAL_NOTIONAL: held}),
        entries=entries,
    )
    assert decision.action is action, decision.explain()


def test_trigger_is_measured_against_the_initial_spread_not_the_last_add() -> None:
    # The last add was at 45 bps; 1.5 x 45 would need 67.5, but the 2nd add's trigger is 20 x 1.5^2 = 45.
    decision = decide(
        pair_figures(**{f.SPREAD: 45 * BPS, f.INITIAL_SPREAD: 20 * BPS, f.TOTAL_NOTIONAL: Decimal(1980)}), entries=2
    )
    assert decision.action is BuyAction.SCALE_IN


def test_add_beyond_max_total_notional_is_blocked() -> None:
    decision = decide(
        pair_figures(**{f.SPREAD: 80 * BPS, f.INITIAL_SPREAD: 20 * BPS, f.TOTAL_NOTIONAL: Decimal(3100)}), entries=2
    )
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.MAX_POSITION_SIZE in decision.reasons


def test_scale_in_on_a_stale_signal_is_skipped() -> None:
    decision = decide(
        pair_figures(**{f.SPREAD: 40 * BPS, f.INITIAL_SPREAD: 20 * BPS, f.SIGNAL_AGE_SECONDS: Decimal(901)}), entries=1
    )
    assert decision.action is BuyAction.SKIP
    assert ReasonCode.STALE_SIGNAL in decision.reasons


def test_thin_book_or_too_much_slippage_is_skipped() -> None:
    thin = decide(pair_figures(**{f.SHORT_BOOK_FILL: Decimal("0.8")}))
    slippy = decide(pair_figures(**{f.LONG_SLIPPAGE_BPS: Decimal(11)}))
    for decision in (thin, slippy):
        assert decision.action is BuyAction.SKIP
        assert ReasonCode.EXECUTION_INFEASIBLE in decision.reasons


def test_another_open_pair_on_the_symbol_blocks() -> None:
    decision = decide(pair_figures(**{f.CONFLICTING_PAIRS: Decimal(1)}))
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.DIRECTION_CONFLICT in decision.reasons


def test_built_in_max_entries_still_applies_to_pairs() -> None:
    decision = decide(
        pair_figures(**{f.SPREAD: 200 * BPS, f.INITIAL_SPREAD: 20 * BPS, f.TOTAL_NOTIONAL: Decimal(3960)}), entries=4
    )
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.MAX_ENTRIES_REACHED in decision.reasons


def test_pair_decision_missing_a_figure_is_blocked_naming_it() -> None:
    decision = decide(pair_figures(**{f.SPREAD: 40 * BPS}), entries=1, drop=(f.TOTAL_NOTIONAL,))
    assert decision.action is BuyAction.BLOCK
    assert ReasonCode.MARKET_DATA_UNAVAILABLE in decision.reasons
    assert f.INITIAL_SPREAD in decision.explain()
    assert f.TOTAL_NOTIONAL in decision.explain()


def test_other_buys_get_no_pair_checks() -> None:
    context = make_context(symbol="KO")
    decision = evaluate_buy(context, plugins=pair_plugins())
    assert not {c.rule for c in decision.checks} & set(PAIR_RULES)


def test_trader_sends_nothing_when_the_pair_rule_is_not_loaded() -> None:
    venues = engine_venues()
    for name, mid in ((LONG_VENUE, Decimal(3000)), (SHORT_VENUE, Decimal(3006))):
        venue = venues[name]
        assert isinstance(venue, EngineVenue)
        venue.engine.set_order_book(ETH, bids=[(mid - 1, Decimal(10))], asks=[(mid + 1, Decimal(10))])
    ledger = Ledger.open("sqlite://")
    store = PairStore.open("sqlite://")
    built_ins_only = Plugins(load_entrypoints=False, env={})
    trader = PairTrader(
        config=pair_config(), venues=venues, ledger=ledger, store=store, limits=pair_limits(), plugins=built_ins_only
    )
    signal = PairSignal(event_id="e", symbol=ETH, long_venue=LONG_VENUE, short_venue=SHORT_VENUE, generated_at=START)
    try:
        trader.submit_signal(signal, START)
        with pytest.raises(PairRuleMissing, match="rule plugin is not loaded"):
            trader.run_cycle(START)
        assert store.pairs() == []
    finally:
        store.close()
        ledger.close()
    for venue in venues.values():
        assert isinstance(venue, EngineVenue)
        assert venue.engine.orders() == []
