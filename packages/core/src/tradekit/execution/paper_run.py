"""Assemble and run a paper replay: settings, plugins, ledger, paper broker, pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import attrs

from tradekit.broker.paper import PaperBroker, PaperBrokerConfig
from tradekit.config.settings import Settings
from tradekit.domain.market import Bar
from tradekit.execution.clock import SimClock
from tradekit.execution.pipeline import OrderPipeline
from tradekit.execution.replay import ReplayResult, ReplayRunner
from tradekit.execution.session import Focus, startup
from tradekit.exits.calendar import TradingCalendar
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit.reporting.outputs import write_run_outputs
from tradekit.reporting.statistics import RunStatistics
from tradekit.reporting.summary import RunSummary, summarize
from tradekit.strategy.base import Strategy


@attrs.frozen
class PaperRun:
    result: ReplayResult
    summary: RunSummary
    ledger_url: str
    out_dir: Path
    chart: Path | None
    statistics: RunStatistics
    report: Path | None = None


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
) -> PaperRun:
    """Replay ``strategy`` over ``bars`` on a fresh paper account and ledger in ``out_dir``.

    ``buffered`` (the default) keeps the ledger's state in memory and writes its rows in
    batches (``tradekit.ledger.buffered``); ``buffered=False`` commits every step the way a
    live run does. Both leave the same rows in the ledger file. ``chart`` writes
    ``chart.png`` and ``report.html``; ``notes`` are (label, text) lines the report shows
    under its title (where the data came from, the costs).
    """
    if not bars:
        raise ValueError("no bars to replay")
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = out_dir / "ledger.db"
    if ledger_path.exists():
        raise FileExistsError(f"{ledger_path} exists: a replay starts from an empty ledger; choose another --out")
    ledger_url = f"sqlite:///{ledger_path}"
    first = min(series[0].time for series in bars.values() if series)
    clock = SimClock(first - timedelta(days=1))
    broker = PaperBroker(broker_config or PaperBrokerConfig())
    calendar = TradingCalendar(settings.exits.calendar)
    with Ledger.open(ledger_url, for_trading=True, durable=durable, buffered=buffered) as ledger:
        pipeline = OrderPipeline(
            ledger=ledger, broker=broker, settings=settings, plugins=plugins, calendar=calendar, clock=clock
        )
        startup(pipeline)
        runner = ReplayRunner(
            strategy=strategy,
            bars=bars,
            pipeline=pipeline,
            broker=broker,
            calendar=calendar,
            clock=clock,
            focus=Focus(plugins, settings.scanner) if settings.scanner.enabled else None,
        )
        result = runner.run(progress)
        summary = summarize(ledger, starting_equity=result.starting_equity, final_equity=result.final_equity)
        outputs = write_run_outputs(
            ledger, bars, out_dir, title=f"tradekit paper run: {strategy.name}", notes=notes, pictures=chart
        )
    return PaperRun(
        result=result,
        summary=summary,
        ledger_url=ledger_url,
        out_dir=out_dir,
        chart=outputs.chart,
        statistics=outputs.statistics,
        report=outputs.report,
    )
