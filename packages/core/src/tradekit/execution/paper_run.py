"""Assemble and run a paper replay: settings, plugins, ledger, paper broker, pipeline.

A replay into a named ledger (``tradekit run --ledger PATH``) is resumable. It checkpoints
every ``checkpoint_seconds``: the ledger's rows since the last checkpoint and the checkpoint
record (how far the replay got, and what it had counted) are written in one transaction,
and the paper account's state file beside the ledger (``<ledger>.paper-<N>.json``) is
written just before that transaction commits, so after a kill at any moment the ledger and
the paper account are found at the same checkpoint. Run again, the same command continues
from there and ends with exactly what an uninterrupted run ends with; a finished run is not
run again, and a ledger that holds another run (other bars, settings, strategy or costs)
is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

from tradekit import __version__
from tradekit.broker.paper import PaperBroker, PaperBrokerConfig
from tradekit.config.settings import Settings
from tradekit.domain.market import Bar
from tradekit.execution.clock import SimClock
from tradekit.execution.pipeline import OrderPipeline
from tradekit.execution.replay import ReplayProgress, ReplayResult, ReplayRunner
from tradekit.execution.session import Focus, startup
from tradekit.exits.calendar import trading_calendar
from tradekit.ledger import schema as t
from tradekit.ledger.buffered import BufferedLedger
from tradekit.ledger.errors import LedgerError
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit.reporting.outputs import CHART_FILE, REPORT_FILE, write_run_outputs
from tradekit.reporting.statistics import RunStatistics, calendar_periods_per_year
from tradekit.reporting.summary import RunSummary, summarize
from tradekit.serialization import unstructure
from tradekit.strategy.base import Strategy

DEFAULT_CHECKPOINT_SECONDS = 5.0


@attrs.frozen
class PaperRun:
    result: ReplayResult
    summary: RunSummary
    ledger_url: str
    out_dir: Path
    chart: Path | None
    statistics: RunStatistics
    report: Path | None = None
    # How this call found the run: "new", "resumed" (from a checkpoint) or "finished" (ran before).
    started: str = "new"


class ReplayMismatch(LedgerError):
    """The ledger holds another replay than the one asked for."""


def run_paper_replay(
    *,
    strategy: type[Strategy],
    settings: Settings,
    plugins: Plugins,
    bars: Mapping[str, list[Bar]],
    out_dir: Path,
    broker_config: PaperBrokerConfig | None = None,
    progress: Callable[[int], None] | None = None,
    chart: bool = True,
    durable: bool = False,
    buffered: bool = True,
    notes: Sequence[tuple[str, str]] = (),
    ledger_path: Path | None = None,
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> PaperRun:
    """Replay ``strategy`` over ``bars`` on a paper account; write the charts into ``out_dir``.

    Without ``ledger_path`` the replay goes into a fresh ``out_dir/ledger.db``. With it, the
    replay is resumable (see the module doc): a new ledger there starts the run, one that
    holds this run unfinished continues it, one that holds it finished returns its results.

    ``buffered`` (the default) keeps the ledger's state in memory and writes its rows in
    batches (``tradekit.ledger.buffered``); ``buffered=False`` commits every step the way a
    live run does. Both leave the same rows in the ledger file. ``chart`` writes
    ``chart.png`` and ``report.html``; ``notes`` are (label, text) lines the report shows
    under its title (where the data came from, the costs).
    """
    if not bars:
        raise ValueError("no bars to replay")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = broker_config or PaperBrokerConfig()
    if ledger_path is not None:
        return _resumable(
            strategy, settings, plugins, bars, out_dir, config, progress, chart, notes, ledger_path,
            checkpoint_seconds, monotonic,
        )  # fmt: skip
    ledger_path = out_dir / "ledger.db"
    if ledger_path.exists():
        raise FileExistsError(f"{ledger_path} exists: a replay starts from an empty ledger; choose another --out")
    ledger_url = f"sqlite:///{ledger_path}"
    # The paper account's finished orders and received requests, beside the ledger (not in a
    # temporary directory, which may be memory-backed): ~1.2 KB an order.
    broker = _paper_broker(config, settings, archive_path=out_dir / PAPER_ORDERS_FILE)
    kind = BufferedLedger if buffered else Ledger
    with kind.open(ledger_url, for_trading=True, durable=durable) as ledger:
        runner = _runner(strategy, settings, plugins, bars, ledger, broker)
        startup(runner.pipeline)
        result = runner.run(progress)
        broker.close()
        return _finish(
            ledger, ledger_url, result, bars, out_dir, strategy, notes, chart, "new", _per_year(settings, bars)
        )


def _paper_broker(
    config: PaperBrokerConfig,
    settings: Settings,
    *,
    archive_path: Path,
    state_path: Path | None = None,
    autosave: bool = True,
) -> PaperBroker:
    """The replay's paper account, on the market clock of the run's exchange calendar: its DAY
    orders expire, and its market-on-close orders fill, at the closes the session driver
    works to (a 24/7 Saturday's, a half day's 13:00), not at a weekday New York close."""
    calendar = trading_calendar(settings.exits.calendar)
    return PaperBroker(
        config, state_path=state_path, autosave=autosave, archive_path=archive_path, session_clock=calendar.market_clock
    )


def _runner(
    strategy: type[Strategy],
    settings: Settings,
    plugins: Plugins,
    bars: Mapping[str, list[Bar]],
    ledger: Ledger,
    broker: PaperBroker,
) -> ReplayRunner:
    first = min(series[0].time for series in bars.values() if series)
    clock = SimClock(first - timedelta(days=1))
    calendar = trading_calendar(settings.exits.calendar)
    pipeline = OrderPipeline(
        ledger=ledger, broker=broker, settings=settings, plugins=plugins, calendar=calendar, clock=clock
    )
    return ReplayRunner(
        strategy=strategy,
        bars=bars,
        pipeline=pipeline,
        broker=broker,
        calendar=calendar,
        clock=clock,
        focus=Focus(plugins, settings.scanner) if settings.scanner.enabled else None,
    )


def _per_year(settings: Settings, bars: Mapping[str, Sequence[Bar]]) -> int:
    """The closes in a year of the calendar the replay trades on: its annual figures' year."""
    first = min(series[0].time for series in bars.values() if series)
    return calendar_periods_per_year(trading_calendar(settings.exits.calendar), first)


def _finish(
    ledger: Ledger,
    ledger_url: str,
    result: ReplayResult,
    bars: Mapping[str, list[Bar]],
    out_dir: Path,
    strategy: type[Strategy],
    notes: Sequence[tuple[str, str]],
    pictures: bool,
    started: str,
    per_year: int,
) -> PaperRun:
    outputs = write_run_outputs(
        ledger,
        bars,
        out_dir,
        title=f"tradekit paper run: {strategy.name}",
        notes=notes,
        pictures=pictures,
        per_year=per_year,
    )
    summary = summarize(
        ledger,
        starting_equity=result.starting_equity,
        final_equity=result.final_equity,
        trades=outputs.statistics.trades,
    )
    return PaperRun(
        result=result,
        summary=summary,
        ledger_url=ledger_url,
        out_dir=out_dir,
        chart=outputs.chart,
        statistics=outputs.statistics,
        report=outputs.report,
        started=started,
    )


# --- resumable runs ---------------------------------------------------------------------------------


def replay_identity(
    strategy: type[Strategy], settings: Settings, bars: Mapping[str, Sequence[Bar]], config: PaperBrokerConfig
) -> dict[str, Any]:
    """What makes a replay the same replay: its strategy, its bars (by content), its settings,
    its paper account and costs, and tradekit's version."""
    digest = hashlib.sha256()
    for symbol in sorted(bars):
        for bar in bars[symbol]:
            digest.update(
                f"{symbol},{bar.time.isoformat()},{bar.open},{bar.high},{bar.low},{bar.close},{bar.volume}\n".encode()
            )
    return {
        "strategy": strategy.name,
        "symbols": sorted(bars),
        "bars": sum(len(series) for series in bars.values()),
        "bars_sha256": digest.hexdigest(),
        "settings_sha256": _sha256(unstructure(settings)),
        "paper_account_sha256": _sha256(unstructure(config)),
        "tradekit": __version__,
    }


def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@attrs.frozen
class _RunRecord:
    identity: dict[str, Any]
    checkpoint: int
    progress: ReplayProgress | None
    finished: bool


def _read_run(ledger: Ledger) -> _RunRecord | None:
    row = ledger.replay_run()
    if row is None:
        return None
    progress = json.loads(row["progress"])
    return _RunRecord(
        identity=json.loads(row["identity"]),
        checkpoint=int(row["checkpoint"]),
        progress=ReplayProgress.from_json(progress) if progress else None,
        finished=bool(row["finished"]),
    )


PAPER_ORDERS_FILE = "paper-orders.db"


def _paper_state_file(ledger_path: Path, checkpoint: int) -> Path:
    return ledger_path.with_name(f"{ledger_path.name}.paper-{checkpoint:06d}.json")


def _paper_archive_file(ledger_path: Path) -> Path:
    # The paper account's terminal orders and received requests, shared by its checkpoints'
    # state files (each names the archive generation it includes).
    return ledger_path.with_name(f"{ledger_path.name}.paper-orders.db")


def checkpointed_paper_account(ledger_path: Path, config: PaperBrokerConfig | None = None) -> PaperBroker:
    """The paper account of a resumable replay as its last checkpoint left it (to inspect it:
    it is not saved back)."""
    states = sorted(ledger_path.parent.glob(f"{ledger_path.name}.paper-*.json"))
    if not states:
        raise FileNotFoundError(f"no paper account checkpointed beside {ledger_path}")
    return PaperBroker(config, state_path=states[-1], autosave=False, archive_path=_paper_archive_file(ledger_path))


def _other_paper_state_files(ledger_path: Path, keep: Path) -> list[Path]:
    return [p for p in ledger_path.parent.glob(f"{ledger_path.name}.paper-*.json") if p != keep]


class _Checkpoints:
    """Saves a resumable replay's progress every ``every`` seconds (and at its end)."""

    def __init__(
        self,
        ledger: BufferedLedger,
        broker: PaperBroker,
        ledger_path: Path,
        identity: dict[str, Any],
        checkpoint: int,
        every: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._ledger, self._broker, self._path = ledger, broker, ledger_path
        self._identity = json.dumps(identity, sort_keys=True)
        self._digest = _sha256(identity)
        self.checkpoint = checkpoint
        self._every, self._monotonic = every, monotonic
        self._last = monotonic()

    def maybe(self, result: ReplayResult, last_session: Any) -> None:
        if self._monotonic() - self._last >= self._every:
            self.save(ReplayProgress.of(result, last_session))

    def save(self, progress: ReplayProgress | None, *, finished: bool = False) -> None:
        number = self.checkpoint + 1
        state_file = _paper_state_file(self._path, number)
        # The paper account first: a kill before the ledger commits leaves this file unused.
        self._broker.save_state(state_file)
        row = {
            "digest": self._digest,
            "identity": self._identity,
            "checkpoint": number,
            "last_session": progress.last_session if progress is not None else None,
            "progress": json.dumps(progress.to_json() if progress is not None else None),
            "finished": finished,
        }

        def write(conn: sa.Connection) -> None:
            conn.execute(t.replay_runs.delete())
            conn.execute(t.replay_runs.insert().values(**row))

        self._ledger.checkpoint(write)
        self.checkpoint = number
        for stale in _other_paper_state_files(self._path, state_file):
            stale.unlink(missing_ok=True)
        self._last = self._monotonic()


def _resumable(
    strategy: type[Strategy],
    settings: Settings,
    plugins: Plugins,
    bars: Mapping[str, list[Bar]],
    out_dir: Path,
    config: PaperBrokerConfig,
    progress: Callable[[int], None] | None,
    chart: bool,
    notes: Sequence[tuple[str, str]],
    ledger_path: Path,
    every: float,
    monotonic: Callable[[], float],
) -> PaperRun:
    identity = replay_identity(strategy, settings, bars, config)
    ledger_url = f"sqlite:///{ledger_path}"
    exists = ledger_path.exists() and ledger_path.stat().st_size > 0
    with BufferedLedger.open(ledger_url, for_trading=True, durable=True, resume=exists) as ledger:
        record = _read_run(ledger)
        if exists and record is None:
            raise ReplayMismatch(
                f"ledger {ledger_path} holds no paper replay (a live account's ledger?): replay into another --ledger"
            )
        if record is not None and record.identity != identity:
            differs = ", ".join(k for k in identity if record.identity.get(k) != identity.get(k))
            raise ReplayMismatch(
                f"ledger {ledger_path} holds another replay ({differs} differ): rerun it with what it was run "
                "with, or replay into another --ledger"
            )
        per_year = _per_year(settings, bars)
        if record is not None and record.finished:
            return _results_of(ledger, ledger_url, record, bars, out_dir, strategy, notes, chart, per_year)
        if record is not None:
            state_file = _paper_state_file(ledger_path, record.checkpoint)
            broker = _paper_broker(
                config, settings, state_path=state_file, autosave=False, archive_path=_paper_archive_file(ledger_path)
            )
            after, started = record.progress, "resumed"
        else:
            broker = _paper_broker(config, settings, archive_path=_paper_archive_file(ledger_path))
            after, started = None, "new"
        runner = _runner(strategy, settings, plugins, bars, ledger, broker)
        checkpoints = _Checkpoints(
            ledger, broker, ledger_path, identity, record.checkpoint if record else 0, every, monotonic
        )
        ledger.auto_flush = False
        if record is None:
            startup(runner.pipeline)
            checkpoints.save(None)
        result = runner.run(progress, after=after, on_session_end=checkpoints.maybe)
        days = sorted({b.time for series in bars.values() for b in series})
        checkpoints.save(ReplayProgress.of(result, days[-1]), finished=True)
        ledger.auto_flush = True
        return _finish(ledger, ledger_url, result, bars, out_dir, strategy, notes, chart, started, per_year)


def _results_of(
    ledger: Ledger,
    ledger_url: str,
    record: _RunRecord,
    bars: Mapping[str, list[Bar]],
    out_dir: Path,
    strategy: type[Strategy],
    notes: Sequence[tuple[str, str]],
    pictures: bool,
    per_year: int,
) -> PaperRun:
    """A finished run's results, read from its ledger: nothing in it changes."""
    assert record.progress is not None
    progress = record.progress
    result = ReplayResult(
        strategy=strategy.name,
        symbols=tuple(sorted(bars)),
        tally=progress.tally,
        bars=progress.bars,
        days=progress.days,
        starting_equity=progress.starting_equity,
    )
    with ledger.reading() as tx:
        curve = tx.equity_curve()
    result.final_equity = curve[-1].equity if curve else progress.starting_equity
    drawn = pictures and (out_dir / CHART_FILE).exists() and (out_dir / REPORT_FILE).exists()
    run = _finish(
        ledger, ledger_url, result, bars, out_dir, strategy, notes, pictures and not drawn, "finished", per_year
    )
    if drawn:
        run = attrs.evolve(run, chart=out_dir / CHART_FILE, report=out_dir / REPORT_FILE)
    return run
