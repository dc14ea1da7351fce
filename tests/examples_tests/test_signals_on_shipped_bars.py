"""The example strategies' signals on the shipped real bars (strategy logic only; the full
pipeline runs in the execution tests)."""

from __future__ import annotations

from decimal import Decimal

from tradekit.data import load_daily_bars
from tradekit.domain import Position, PositionEntry, Side, Signal
from tradekit.strategy import Strategy, StrategyView
from tradekit_strategies_examples import PyramidBreakout, SingleEntryBreakout


def replay(strategy: Strategy, symbol: str, *, hold_after_buy: bool) -> list[Signal]:
    bars = load_daily_bars([symbol])[symbol]
    position: Position | None = None
    signals: list[Signal] = []
    for i in range(len(bars)):
        view = StrategyView(symbol=symbol, history=bars[: i + 1], position=position)
        for sig in strategy.on_bar(view):
            signals.append(sig)
            if sig.side is Side.BUY and hold_after_buy and position is None:
                entry = PositionEntry(time=sig.generated_at, price=bars[i].close, qty=Decimal(1))
                position = Position(symbol=symbol, strategy=strategy.name, entries=[entry])
            elif sig.side is Side.SELL:
                position = None
    return signals


def test_breakout_sells_only_while_holding_and_signals_with_bar_evidence() -> None:
    signals = replay(SingleEntryBreakout(), "IBM", hold_after_buy=True)
    buys = [s for s in signals if s.side is Side.BUY]
    sells = [s for s in signals if s.side is Side.SELL]
    assert len(buys) > 20
    assert len(sells) > 10
    assert all(s.reference_price is not None and s.source == "breakout" for s in signals)
    # every sell is preceded by a buy since the previous sell
    holding = False
    for s in signals:
        if s.side is Side.SELL:
            assert holding
            holding = False
        else:
            holding = True


def test_pyramid_emits_high_confidence_add_ons_while_holding() -> None:
    signals = replay(PyramidBreakout(), "AAPL", hold_after_buy=True)
    add_ons = [s for s in signals if s.side is Side.BUY and s.reason.startswith("trend intact")]
    entries = [s for s in signals if s.side is Side.BUY and s.reason.startswith("breakout")]
    assert add_ons
    assert entries
    assert {s.confidence for s in add_ons} == {5}
    assert {s.confidence for s in entries} <= {3, 4}
