"""tradekit's replay against its peers on one reference strategy, trade for trade.

The reference strategy (issue #15): enter when the close crosses above its 20-bar simple
moving average; add an equal entry (10 shares each) when the close is at least 2 % above
the last entry and at least 5 bars after it, up to 4 entries; exit everything when the close
crosses below the average. $100,000 of cash; every order fills at the close of the bar that
signalled it. "Crosses" is backtesting.py's ``crossover``: below (above) on the bar before,
above (below) on this one.

It runs three ways on the same bars and must produce the same trades:

- a plain Python loop (Decimal, no framework);
- backtesting.py (``Backtest(..., trade_on_close=True)``), a bench-only dependency (AGPL:
  never a runtime dependency of tradekit);
- tradekit's replay (``run_paper_replay``: session driver, decision engine, sizing, limits,
  paper broker, buffered SQLite ledger with every decision and its trace), two ways:
  ``every-bar``, a buy candidate on every bar held, the strategy's pyramid
  ``StrategyScalingPolicy`` deciding which become add-ons; and ``when-due``, a buy only when
  the add-on conditions hold.

tradekit fills a buy queued at a close at the next session's open. To fill "at the signal
bar's close" as the peers do, every engine gets gapless bars: each bar's open is the
previous bar's close (high and low widened to contain it). The bars are the shipped GOOG
series (2,148 daily bars), and tiled sets of it: whole copies under new names (GOOG0000, ...)
over the same dates, as many as come nearest the asked number (47 copies, 100,956 bars, for
100,000; 466 copies, 1,000,968 bars, for 1,000,000). Each copy trades as its own
$100,000 account would: the peers run each copy separately with $100,000, and tradekit runs
them all in one paper account funded with $100,000 a copy (so cash never binds, as in each
peer run). The trades compared are, per symbol, every buy (bar, price) and every sell
(bar, price), bars numbered within the symbol's series.

Each case runs in a fresh child process, so its peak RSS is its own. Printed: seconds,
bars/s, the ratio to backtesting.py, peak RSS and, for tradekit, decisions persisted and
ledger bytes per decision. Then what a bar with no decision costs each: backtesting.py
running the same ``next`` without orders, and tradekit's replay of the when-due strategy with
its signals dropped (``Watching``), per bar.

Run with ``nox -s bench`` or ``python benchmarks/bench_peers.py [--tiled-bars 100000]
[--million]`` (1,000,000 tiled bars: minutes per tradekit case).
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.data import load_daily_bars
from tradekit.decision.context import ScalingContext
from tradekit.decision.verdict import BuyDecision
from tradekit.domain import Bar, Side, Signal
from tradekit.hookspecs import hookimpl
from tradekit.sizing.result import SizingResult
from tradekit.strategy import PriceStructure, Strategy, StrategyScalingPolicy, StrategyView
from tradekit.strategy.history import History, sma_column

SMA_LENGTH = 20
MAX_ENTRIES = 4
MIN_BARS = 5
STEP = Decimal("1.02")  # an add-on needs the close >= 2 % above the last entry
SHARES = 10  # every entry buys this many shares
CASH = 100_000

# One (symbol's) trades: every buy and every sell as (bar index, price).
Trades = tuple[tuple[tuple[int, Decimal], ...], tuple[tuple[int, Decimal], ...]]


# --- the bars ------------------------------------------------------------------------------------


def gapless(series: Sequence[Bar], symbol: str) -> list[Bar]:
    """The bars with each open set to the previous close (the first keeps its own)."""
    out: list[Bar] = []
    previous: Decimal | None = None
    for bar in series:
        opened = bar.open if previous is None else previous
        out.append(
            Bar(
                symbol=symbol,
                time=bar.time,
                open=opened,
                high=max(bar.high, opened),
                low=min(bar.low, opened),
                close=bar.close,
                volume=bar.volume,
            )
        )
        previous = bar.close
    return out


def case_bars(total: int | None) -> dict[str, list[Bar]]:
    """GOOG (``total`` None), or as many whole copies of it as come nearest to ``total`` bars
    (a copy cut short would leave an exit planned for a session it has no price in)."""
    goog = load_daily_bars(["GOOG"])["GOOG"]
    if total is None:
        return {"GOOG": gapless(goog, "GOOG")}
    copies = max(1, round(total / len(goog)))
    return {f"GOOG{copy:04d}": gapless(goog, f"GOOG{copy:04d}") for copy in range(copies)}


def cross_column(bars: Sequence[Bar]) -> list[int]:
    """+1 where the close crosses above its SMA20, -1 below, else 0 (causal)."""
    sma = sma_column(SMA_LENGTH)(bars)
    out = [0] * len(bars)
    for i in range(SMA_LENGTH, len(bars)):
        before, now = sma[i - 1], sma[i]
        assert before is not None
        assert now is not None
        previous, close = bars[i - 1].close, bars[i].close
        if previous < before and close > now:
            out[i] = 1
        elif previous > before and close < now:
            out[i] = -1
    return out


def cross(history: Sequence[Bar]) -> int:
    if isinstance(history, History):
        return history.at_current("cross_sma20", cross_column)
    return cross_column(history)[-1]


# --- the plain loop --------------------------------------------------------------------------------


def plain_trades(series: Sequence[Bar]) -> Trades:
    """The reference strategy on one series: Decimal, no framework. A signal on the last bar
    fills nowhere (as with the peers, whose fills come after the signal's bar is processed)."""
    closes = [b.close for b in series]
    buys: list[tuple[int, Decimal]] = []
    sells: list[tuple[int, Decimal]] = []
    total = Decimal(0)
    sma: list[Decimal | None] = []
    for i, close in enumerate(closes):
        total += close
        if i >= SMA_LENGTH:
            total -= closes[i - SMA_LENGTH]
        sma.append(total / SMA_LENGTH if i >= SMA_LENGTH - 1 else None)
    entries, last_bar, last_price = 0, 0, Decimal(0)
    for i in range(SMA_LENGTH, len(closes) - 1):
        before, now, close = sma[i - 1], sma[i], closes[i]
        assert before is not None
        assert now is not None
        up = closes[i - 1] < before and close > now
        down = closes[i - 1] > before and close < now
        if entries and down:
            sells.append((i, close))
            entries = 0
        elif (not entries and up) or (
            0 < entries < MAX_ENTRIES and close >= last_price * STEP and i - last_bar >= MIN_BARS
        ):
            buys.append((i, close))
            entries, last_bar, last_price = entries + 1, i, close
    return tuple(buys), tuple(sells)


def run_plain(total: int | None) -> dict[str, Any]:
    bars = case_bars(total)
    start = time.perf_counter()
    trades = {symbol: plain_trades(series) for symbol, series in bars.items()}
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "trades": trades}


# --- backtesting.py ----------------------------------------------------------------------------------


def run_backtesting(total: int | None, trade: bool = True) -> dict[str, Any]:
    """backtesting.py on each symbol; ``trade=False`` runs the same ``next`` without orders
    (what a bar costs it with nothing to do but look: ``--watching``'s baseline)."""
    import numpy as np
    import pandas as pd
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy

    def rolling_mean(values: Any) -> Any:
        return pd.Series(values).rolling(SMA_LENGTH).mean()

    class Reference(BtStrategy):  # type: ignore[misc]
        def init(self) -> None:
            self.sma = self.I(rolling_mean, self.data.Close)
            self.entries = 0
            self.last_bar = 0
            self.last_price = 0.0

        def next(self) -> None:
            i = len(self.data) - 1
            close, previous = self.data.Close[-1], self.data.Close[-2]
            now, before = self.sma[-1], self.sma[-2]
            if np.isnan(before):
                return
            if self.position and previous > before and close < now:
                self.position.close()  # (a watching run never holds a position)
                self.entries = 0
            elif (not self.position and previous < before and close > now) or (
                0 < self.entries < MAX_ENTRIES and close >= self.last_price * 1.02 and i - self.last_bar >= MIN_BARS
            ):
                if trade:
                    self.buy(size=SHARES)
                self.entries, self.last_bar, self.last_price = self.entries + 1, i, close

    warnings.filterwarnings("ignore", message="Some trades remain open")  # compared as open entries below
    bars = case_bars(total)
    frames = {
        symbol: pd.DataFrame(
            {
                "Open": [float(b.open) for b in series],
                "High": [float(b.high) for b in series],
                "Low": [float(b.low) for b in series],
                "Close": [float(b.close) for b in series],
                "Volume": [float(b.volume) for b in series],
            },
            index=pd.DatetimeIndex([b.time.replace(tzinfo=None) for b in series]),
        )
        for symbol, series in bars.items()
    }
    start = time.perf_counter()
    results = {}
    for symbol, frame in frames.items():
        bt = Backtest(frame, Reference, cash=CASH, commission=0, trade_on_close=True, finalize_trades=False)
        results[symbol] = bt.run()
    elapsed = time.perf_counter() - start
    trades: dict[str, Trades] = {}
    for symbol, stats in results.items():
        frame = stats["_trades"]
        buys = sorted((int(r.EntryBar), _price(r.EntryPrice)) for r in frame.itertuples())
        sells = sorted({(int(r.ExitBar), _price(r.ExitPrice)) for r in frame.itertuples()})
        open_trades = stats._strategy.trades  # entries still held at the end
        buys = sorted([*buys, *((int(t.entry_bar), _price(t.entry_price)) for t in open_trades)])
        trades[symbol] = (tuple(buys), tuple(sells))
    return {"seconds": elapsed, "trades": trades}


def _price(value: float) -> Decimal:
    return Decimal(f"{value:.4f}")


# --- tradekit ------------------------------------------------------------------------------------------

_POLICY = StrategyScalingPolicy(
    allow_scaling=True,
    max_entries=MAX_ENTRIES,
    min_bars_between_entries=MIN_BARS,
    price_structure=PriceStructure.PYRAMID,
    price_step_pct=Decimal(2),
    min_confidence=5,
    min_entry_confidence=5,
)


def _signal(view: StrategyView, side: Side, reason: str) -> Signal:
    bar = view.bar
    return Signal(
        symbol=view.symbol,
        side=side,
        confidence=5,
        generated_at=bar.time,
        reference_price=bar.close,
        source="peers",
        reason=reason,
    )


class EveryBar(Strategy):
    """The reference strategy emitting a buy candidate on every bar held: the pyramid policy
    (4 entries, 5 bars apart, 2 % above the last) decides which become add-ons."""

    name = "peers-every-bar"
    scaling_policy = _POLICY

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        crossed = cross(view.history)
        if view.position is not None:
            if crossed < 0:
                return [_signal(view, Side.SELL, "close crossed below SMA20")]
            return [_signal(view, Side.BUY, "held: an add-on if the policy allows")]
        if crossed > 0:
            return [_signal(view, Side.BUY, "close crossed above SMA20")]
        return []


class WhenDue(Strategy):
    """The reference strategy emitting a buy only when an entry or add-on is due."""

    name = "peers-when-due"
    scaling_policy = _POLICY

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        crossed = cross(view.history)
        position = view.position
        if position is not None:
            if crossed < 0:
                return [_signal(view, Side.SELL, "close crossed below SMA20")]
            history = view.history
            # Bars since the last entry's signal: the entry filled at the next session's open,
            # so the bars stamped at or after it are those since its signal bar.
            since = len(history) - bisect.bisect_left(history, position.last_entry_time, key=_time)
            if (
                position.entry_count < MAX_ENTRIES
                and since >= MIN_BARS
                and view.bar.close >= position.last_entry_price * STEP
            ):
                return [_signal(view, Side.BUY, "add-on due: 2% above the last entry, 5 bars on")]
            return []
        if crossed > 0:
            return [_signal(view, Side.BUY, "close crossed above SMA20")]
        return []


class Watching(WhenDue):
    """The when-due strategy's work on every bar with its signals dropped: what a bar with no
    decision costs the replay (the driver, the strategy view, the indicators, the paper
    broker's prices, each session's fixed steps)."""

    name = "peers-watching"

    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        super().on_bar(view)
        return []


def _time(bar: Bar) -> Any:
    return bar.time


class FixedShares:
    """Sizes every entry at ``SHARES`` shares (the peers' ``buy(size=10)``)."""

    @hookimpl(tryfirst=True)
    def size_position(self, context: ScalingContext, decision: BuyDecision) -> SizingResult | None:
        price = context.market.price
        if price is None:
            return None
        return SizingResult(qty=Decimal(SHARES), price=price, method=f"fixed: {SHARES} shares")


def bench_settings() -> Settings:
    """Account rules that let the reference strategy's orders through as the peers do:
    no per-symbol cap below the position, no daily order limit, the policy's entry count."""
    s = Settings()
    return attrs.evolve(
        s,
        allocation=attrs.evolve(
            s.allocation, max_allocation_per_symbol_pct=Decimal(100), max_position_pct_of_account=Decimal(100)
        ),
        orders=attrs.evolve(s.orders, daily_order_limit=1_000_000, order_cooldown_minutes=0),
        scale_in=attrs.evolve(s.scale_in, max_entries_per_symbol=MAX_ENTRIES, min_time_between_entries_minutes=0),
    )


# Where a tradekit run's time goes (``--phases``): each wrapped function's seconds and calls.
# The buy decisions include the engine, the audit row, their share of the flushes and the
# entry orders; the exit orders are sent from the exits due at the open.
PHASES = (
    ("execution.session", "SessionDriver", "_judge", "buy decisions, all-in (incl. entry orders)"),
    ("execution.pipeline", "", "evaluate_buy", "  decision engine (rules and fold)"),
    ("ledger.buffered", "_MemoryTx", "record_decision", "  audit row (summary and packed trace)"),
    ("execution.pipeline", "OrderPipeline", "_submit", "orders sent: guard, paper fill, records"),
    ("ledger.buffered", "BufferedLedger", "flush", "ledger flushes (batched inserts)"),
    ("execution.session", "SessionDriver", "close_session", "the close: strategy, exits planned, queue"),
    ("execution.session", "SessionDriver", "maintain", "exits due and the guard, twice a session"),
)


def _wrap_phases() -> dict[str, list[float]]:
    import functools
    import importlib

    spent: dict[str, list[float]] = {}
    for module_name, owner_name, attribute, label in PHASES:
        module = importlib.import_module(f"tradekit.{module_name}")
        owner = getattr(module, owner_name) if owner_name else module
        inner = getattr(owner, attribute)
        totals = spent.setdefault(label, [0.0, 0.0])

        def timed(*args: Any, _inner: Any = inner, _totals: list[float] = totals, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                _totals[0] += time.perf_counter() - start
                _totals[1] += 1

        setattr(owner, attribute, functools.wraps(inner)(timed))
    return spent


def run_tradekit(total: int | None, variant: str, phases: bool = False) -> dict[str, Any]:
    from tradekit.execution.paper_run import run_paper_replay
    from tradekit.ledger.store import Ledger
    from tradekit.plugins import Plugins
    from tradekit.reporting.trades import Trade, each_trade

    spent = _wrap_phases() if phases else {}
    bars = case_bars(total)
    plugins = Plugins(env={"TRADEKIT_LOAD_PLUGINS": ""})
    plugins.register(FixedShares(), "bench-fixed-shares")
    strategies: dict[str, type[Strategy]] = {"every-bar": EveryBar, "when-due": WhenDue, "watching": Watching}
    strategy = strategies[variant]
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        run = run_paper_replay(
            strategy=strategy,
            settings=bench_settings(),
            plugins=plugins,
            bars=bars,
            out_dir=Path(d) / "run",
            broker_config=PaperBrokerConfig(starting_cash=Decimal(CASH * len(bars))),
            chart=False,
        )
        elapsed = time.perf_counter() - start
        ledger_bytes = sum(p.stat().st_size for p in (Path(d) / "run").glob("ledger.db*"))
        times = {symbol: [b.time for b in series] for symbol, series in bars.items()}
        buys: dict[str, list[tuple[int, Decimal]]] = {s: [] for s in bars}
        sells: dict[str, list[tuple[int, Decimal]]] = {s: [] for s in bars}

        def compared(trade: Trade) -> None:  # one trade at a time, as the ledger is read
            # A fill at a session's open is the signal bar's close: the last bar before it.
            def signal_bar(moment: Any, symbol: str = trade.symbol) -> int:
                return bisect.bisect_left(times[symbol], moment) - 1

            buys[trade.symbol] += [(signal_bar(e.time), e.price) for e in trade.entries]
            sells[trade.symbol] += [(signal_bar(x.time), x.price) for x in trade.exits if x.price is not None]

        with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
            each_trade(tx, compared)
        floor = storage_floor(Path(d) / "run" / "ledger.db", Path(d) / "floor.db") if phases else {}
    trades = {s: (tuple(sorted(buys[s])), tuple(sorted(sells[s]))) for s in bars}
    decisions = sum(run.result.tally.decisions.values())
    return {
        "seconds": elapsed,
        "trades": trades,
        "decisions": decisions,
        "ledger_bytes": ledger_bytes,
        "final_equity": str(run.result.final_equity),
        "phases": spent,
        "floor": floor,
    }


# The rows a decision writes: its audit row and its queued signal (a settlement row only for a
# signal set aside without a decision); every other table holds what the orders, exits and
# the equity curve wrote.
DECISION_TABLES = ("tk_decisions", "tk_queued_buys", "tk_queued_buy_settlements")


def storage_floor(ledger: Path, scratch: Path) -> dict[str, float]:
    """The storage's own cost of the rows a run wrote: every row of the finished ledger
    inserted again, as the flushes batch them (one transaction per 4,000 rows, WAL,
    synchronous off, the ledger's page size and foreign keys, every index in place), into an
    empty copy of its schema through sqlite3 with no Python between the rows. What SQLite
    alone charges for the final rows of the audit trail, whatever the driver does: a floor
    under the flushes (which also rewrite the heads tables as they go). Seconds by table.
    The rows are read 4,000 at a time, so the copy adds little to the run's peak RSS."""
    import sqlite3

    source = sqlite3.connect(f"{ledger.as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(scratch, isolation_level=None)
    (page_size,) = source.execute("PRAGMA page_size").fetchone()
    target.execute(f"PRAGMA page_size = {int(page_size)}")
    target.execute("PRAGMA journal_mode = WAL")
    target.execute("PRAGMA synchronous = OFF")
    target.execute("PRAGMA foreign_keys = ON")
    schema = source.execute(
        "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC"
    ).fetchall()
    for _name, sql in schema:  # the tables, then their indexes
        target.execute(sql)
    tables = [name for (name,) in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    spent: dict[str, float] = {}
    for table in tables:
        if not table.startswith("tk_"):
            continue
        rows = source.execute(f'SELECT * FROM "{table}"')
        marks = ",".join("?" * len(rows.description))
        insert = f'INSERT INTO "{table}" VALUES ({marks})'
        seconds = 0.0
        while batch := rows.fetchmany(4000):
            start = time.perf_counter()
            target.execute("BEGIN")
            target.executemany(insert, batch)
            target.execute("COMMIT")
            seconds += time.perf_counter() - start
        if seconds:
            spent[table] = seconds
    source.close()
    target.close()
    return spent


# --- running the cases ----------------------------------------------------------------------------------


def _child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], queue: Any) -> None:
    result = target(*args)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def in_child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    os.environ["TQDM_DISABLE"] = "1"  # backtesting.py's progress bar
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    result: dict[str, Any] = queue.get(timeout=7200)
    proc.join()
    return result


def summary_of(trades: dict[str, Trades]) -> str:
    buys = sum(len(b) for b, _ in trades.values())
    sells = sum(len(s) for _, s in trades.values())
    return f"{buys:,} entries, {sells:,} exits"


def pnl(trades: dict[str, Trades]) -> Decimal:
    """Realized profit of every closed round trip, at ``SHARES`` shares an entry."""
    total = Decimal(0)
    for buys, sells in trades.values():
        opened = -1
        for exit_bar, exit_price in sells:
            total += sum(((exit_price - price) * SHARES for bar, price in buys if opened < bar < exit_bar), Decimal(0))
            opened = exit_bar
    return total


def run_case(label: str, total: int | None, phases: bool = False) -> None:
    bars = sum(len(s) for s in case_bars(total).values())
    print(f"\n{label}: {bars:,} bars")
    plain = in_child(run_plain, total)
    peer = in_child(run_backtesting, total)
    if plain["trades"] != peer["trades"]:
        differ = [s for s in plain["trades"] if plain["trades"][s] != peer["trades"].get(s)]
        raise AssertionError(f"backtesting.py's trades differ from the plain loop's on {differ[:3]}")
    rows = [("plain Python loop", plain), ("backtesting.py", peer)]
    for variant in ("when-due", "every-bar"):
        got = in_child(run_tradekit, total, variant, phases)
        if got["trades"] != plain["trades"]:
            differ = [s for s in plain["trades"] if plain["trades"][s] != got["trades"].get(s)]
            raise AssertionError(f"tradekit ({variant})'s trades differ from the plain loop's on {differ[:3]}")
        rows.append((f"tradekit, {variant}", got))
    print(f"  identical trades in all four: {summary_of(plain['trades'])}; realized P&L {pnl(plain['trades'])}")
    base = peer["seconds"]
    for name, got in rows:
        seconds = got["seconds"]
        extra = ""
        if "decisions" in got:
            per = got["ledger_bytes"] / got["decisions"] if got["decisions"] else 0.0
            extra = f", {got['decisions']:,} decisions, ledger {per:,.0f} B/decision, equity {got['final_equity']}"
        print(
            f"  {name:<22} {seconds:8.2f} s {bars / seconds:12,.0f} bars/s {seconds / base:7.2f}x backtesting.py"
            f"  peak RSS {got['rss_mb']:6.0f} MB{extra}"
        )
    # A bar with no decision: the same strategy work on every bar, nothing ordered.
    looked = in_child(run_backtesting, total, False)
    idle = in_child(run_tradekit, total, "watching", False)
    if idle["decisions"] or any(b or x for b, x in looked["trades"].values()):
        raise AssertionError("a watching run decided or traded")
    ours, theirs, full = (r["seconds"] / bars * 1e6 for r in (idle, looked, peer))
    print(
        f"  a bar with no decision (the strategy looks, nothing is ordered): tradekit {ours:.1f} us, "
        f"backtesting.py {theirs:.1f} us ({ours / theirs:.2f}x; backtesting.py trading: {full:.1f} us a bar)"
    )
    for name, got in rows:
        if got.get("phases"):
            print(f"  where {name}'s {got['seconds']:.1f} s went ({bars:,} bars, {got['decisions']:,} decisions):")
            for phase, (seconds, calls) in got["phases"].items():
                per = f"{seconds / calls * 1e6:8,.0f} us a call" if calls else ""
                print(f"    {phase:<46} {seconds:7.2f} s {int(calls):9,} calls {per}")
            floor = got["floor"]
            decided = sum(v for k, v in floor.items() if k in DECISION_TABLES)
            rest = sum(v for k, v in floor.items() if k not in DECISION_TABLES)
            own = decided / max(got["decisions"], 1) * 1e6
            print(
                f"    the storage alone (its rows inserted again by sqlite3, no Python between them): "
                f"{decided + rest:.2f} s; {own:.1f} us a decision for its own rows, "
                f"{rest:.2f} s for the orders', exits' and equity's"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiled-bars", type=int, default=100_000, help="the tiled case's size (default 100,000)")
    parser.add_argument("--million", action="store_true", help="also run 1,000,000 tiled bars (slow)")
    parser.add_argument("--only", choices=("goog", "tiled", "million"), help="run one case only")
    parser.add_argument("--phases", action="store_true", help="also time the steps of tradekit's replay")
    args, _others = parser.parse_known_args()  # nox -s bench passes its posargs to every benchmark
    cases = [
        ("GOOG (shipped daily bars)", None, "goog"),
        (f"tiled GOOG, {args.tiled_bars:,}", args.tiled_bars, "tiled"),
    ]
    if args.million or args.only == "million":
        cases.append(("tiled GOOG, 1,000,000", 1_000_000, "million"))
    for label, total, key in cases:
        if args.only in (None, key):
            run_case(label, total, args.phases)


if __name__ == "__main__":
    main()
