"""Replay throughput of `tradekit run`: bars per second through the whole pipeline
(strategy, decision engine, sizing, limits, paper fill, ledger commit), with peak memory,
against a plain Python loop running the same strategy logic on the same bars.

Cases: one symbol (AAPL, 3,270 real daily bars) and a tiled set (the four shipped symbols
copied under new names until ``--tiled-bars`` is reached; the default 1,000,000 is the issue's
reference size). The tiled set runs twice: with default settings, where one $100k account
runs out of buying power and most signals become persisted SKIPs, and "funded", with caps
small enough that every symbol can hold its entries, so the pipeline trades about as often
as the plain loop (which ignores capital). Each case runs in a fresh child process so its
peak RSS is its own. The whole run takes about six minutes here.

Run with ``nox -s bench`` or ``python benchmarks/bench_replay.py [--tiled-bars N]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Hashable, Sequence
from decimal import Decimal
from pathlib import Path

import attrs

from tradekit.config import Settings
from tradekit.data import load_daily_bars
from tradekit.domain import Bar, Position, PositionEntry, Side
from tradekit.strategy import StrategyView


def tiled(total: int) -> dict[str, list[Bar]]:
    shipped = load_daily_bars()
    out: dict[str, list[Bar]] = {}
    copy = 0
    while sum(len(b) for b in out.values()) < total:
        for symbol, series in shipped.items():
            name = f"{symbol}{copy:03d}"
            out[name] = [
                Bar(symbol=name, time=b.time, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
                for b in series
            ]
            if sum(len(b) for b in out.values()) >= total:
                break
        copy += 1
    return out


def case_bars(case: str, tiled_bars: int) -> dict[str, list[Bar]]:
    return load_daily_bars(["AAPL"]) if case == "one" else tiled(tiled_bars)


def funded(settings: Settings) -> Settings:
    """Caps small enough that every tiled symbol can hold its 4 entries on one account, no
    daily order limit, and weekend signals still fresh: the pipeline then trades about as
    often as the plain loop (which ignores capital), instead of skipping most signals."""
    return attrs.evolve(
        settings,
        allocation=attrs.evolve(
            settings.allocation, max_allocation_per_symbol_pct=Decimal("0.25"), position_size_pct=Decimal("0.06")
        ),
        orders=attrs.evolve(settings.orders, daily_order_limit=1_000_000),
        freshness=attrs.evolve(settings.freshness, max_signal_age_hours=Decimal(96)),
    )


Figures = tuple[float, int, int, float]  # bars/s, decisions, orders, peak RSS MB


def run_pipeline(case: str, tiled_bars: int, queue: multiprocessing.Queue[Figures]) -> None:
    from tradekit.execution.paper_run import run_paper_replay
    from tradekit.plugins import Plugins

    bars = case_bars(case, tiled_bars)
    plugins = Plugins(env={"TRADEKIT_LOAD_PLUGINS": "examples"})
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        run = run_paper_replay(
            strategy=plugins.strategies()["pyramid"],
            settings=funded(Settings()) if case == "funded" else Settings(),
            plugins=plugins,
            bars=bars,
            out_dir=Path(d) / "run",
            chart=False,
        )
        elapsed = time.perf_counter() - start
    decisions = sum(run.result.decisions.values())
    orders = sum(run.summary.orders_by_purpose.values())
    queue.put((run.result.bars / elapsed, decisions, orders, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_plain(case: str, tiled_bars: int, queue: multiprocessing.Queue[Figures]) -> None:
    from tradekit_strategies_examples import PyramidBreakout

    bars = case_bars(case, tiled_bars)
    strategy = PyramidBreakout()
    from tradekit.strategy.history import History

    start = time.perf_counter()
    count = orders = 0
    for symbol, series in bars.items():
        position: Position | None = None
        pending: Side | None = None
        columns: dict[Hashable, Sequence[object]] = {}
        for i, bar in enumerate(series):
            if pending is Side.BUY:  # fill at the open, like the pipeline does
                entry = PositionEntry(time=bar.time, price=bar.open, qty=Decimal(1))
                entries = (*position.entries, entry) if position else (entry,)
                position = Position(symbol=symbol, strategy=strategy.name, entries=entries)
                orders += 1
            elif pending is Side.SELL:
                position = None
                orders += 1
            pending = None
            for signal in strategy.on_bar(
                StrategyView(symbol=symbol, history=History(series, i + 1, columns), position=position)
            ):
                if signal.side is Side.SELL or position is None or position.entry_count < 4:
                    pending = signal.side
            count += 1
    elapsed = time.perf_counter() - start
    queue.put((count / elapsed, 0, orders, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def in_child(target: object, case: str, tiled_bars: int) -> Figures:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[Figures] = ctx.Queue()
    proc = ctx.Process(target=target, args=(case, tiled_bars, queue))  # type: ignore[arg-type]
    proc.start()
    result = queue.get(timeout=7200)
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiled-bars", type=int, default=1_000_000)
    args = parser.parse_args()
    tiled_label = f"tiled set, {args.tiled_bars:,} bars"
    cases = (
        ("one", "1 symbol, 3,270 bars", "one"),
        ("tiled", f"{tiled_label}, default settings (shared $100k account)", "tiled"),
        ("funded", f"{tiled_label}, funded per symbol (trades like the plain loop)", None),
    )
    for case, label, plain_case in cases:
        rate, decisions, orders, rss = in_child(run_pipeline, case, args.tiled_bars)
        line = (
            f"{label}: pipeline {rate:,.0f} bars/s ({decisions:,} decisions and {orders:,} orders persisted), "
            f"peak RSS {rss:.0f} MB"
        )
        if plain_case is not None:
            plain_rate, _, plain_orders, plain_rss = in_child(run_plain, plain_case, args.tiled_bars)
            line += f" | plain loop {plain_rate:,.0f} bars/s ({plain_orders:,} orders), peak RSS {plain_rss:.0f} MB"
        print(line, flush=True)


if __name__ == "__main__":
    main()
