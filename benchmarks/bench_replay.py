"""Replay throughput of `tradekit run`: bars per second through the whole pipeline
(strategy, decision engine, sizing, limits, paper fill, ledger commit), with peak memory,
against a plain Python loop running the same strategy logic on the same bars.

Cases: one symbol (AAPL, 3,270 real daily bars) and a tiled set (the four shipped symbols
copied under new names until ``--tiled-bars`` is reached; the default 1,000,000 is the issue's
reference size). The tiled set runs twice: with default settings, where one $100k account
runs out of buying power and most signals become persisted SKIPs, and "funded", with caps
small enough that every symbol can hold its entries, so the pipeline trades about as often
as the plain loop (which ignores capital). Each case runs in a fresh child process so its
peak RSS is its own. The whole run takes six to twelve minutes here.

Each pipeline case also reports where its time went, measured by wrapping three functions
(the wrappers cost well under a microsecond a call): the decision engine (``evaluate_buy``:
every rule hook and the fold), recording each decision's audit row, and the ledger's
batched flushes. The engine's share bounds the replay: with every other step free, the
replay could not run faster than ``bars / engine seconds``.

Run with ``nox -s bench`` or ``python benchmarks/bench_replay.py [--tiled-bars N]``.
"""

from __future__ import annotations

import argparse
import functools
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


@attrs.frozen
class Figures:
    rate: float  # bars/s
    decisions: int
    orders: int
    rss_mb: float  # peak RSS
    elapsed: float = 0.0
    phases: tuple[tuple[str, float], ...] = ()  # (step, seconds spent in it)


class PhaseTimer:
    """Wraps functions so the seconds spent inside each are summed under a name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        inner = getattr(owner, attribute)
        self.seconds[name] = 0.0
        seconds = self.seconds

        @functools.wraps(inner)
        def timed(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start

        setattr(owner, attribute, timed)


def run_pipeline(case: str, tiled_bars: int, queue: multiprocessing.Queue[Figures]) -> None:
    from tradekit.execution import pipeline
    from tradekit.execution.paper_run import run_paper_replay
    from tradekit.ledger import buffered
    from tradekit.plugins import Plugins

    bars = case_bars(case, tiled_bars)
    timer = PhaseTimer()
    timer.wrap(pipeline, "evaluate_buy", "decision engine")
    timer.wrap(buffered._MemoryTx, "record_decision", "decision audit rows")
    timer.wrap(buffered.BufferedLedger, "flush", "ledger flushes")
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
    decisions = sum(run.result.tally.decisions.values())
    orders = sum(run.summary.orders_by_purpose.values())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(Figures(run.result.bars / elapsed, decisions, orders, rss, elapsed, tuple(timer.seconds.items())))


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
    queue.put(Figures(count / elapsed, 0, orders, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def in_child(target: object, case: str, tiled_bars: int) -> Figures:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[Figures] = ctx.Queue()
    proc = ctx.Process(target=target, args=(case, tiled_bars, queue))  # type: ignore[arg-type]
    proc.start()
    result = queue.get(timeout=7200)
    proc.join()
    return result


def phase_lines(got: Figures) -> str:
    bars = got.rate * got.elapsed
    lines = [f"    {got.elapsed:.1f} s in all, of which:"]
    for name, seconds in got.phases:
        per = f", {seconds / got.decisions * 1e6:.0f} us per decision" if got.decisions else ""
        lines.append(f"    {name:<20} {seconds:7.1f} s ({seconds / got.elapsed:5.1%}{per})")
    engine = dict(got.phases).get("decision engine", 0.0)
    if engine > 0:
        lines.append(f"    ceiling with every step but the engine free: {bars / engine:,.0f} bars/s")
    return "\n".join(lines)


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
        got = in_child(run_pipeline, case, args.tiled_bars)
        line = (
            f"{label}: pipeline {got.rate:,.0f} bars/s ({got.decisions:,} decisions and {got.orders:,} orders "
            f"persisted), peak RSS {got.rss_mb:.0f} MB"
        )
        if plain_case is not None:
            plain = in_child(run_plain, plain_case, args.tiled_bars)
            line += f" | plain loop {plain.rate:,.0f} bars/s ({plain.orders:,} orders), peak RSS {plain.rss_mb:.0f} MB"
        print(line, flush=True)
        print(phase_lines(got), flush=True)


if __name__ == "__main__":
    main()
