"""report.html as a person sees it: rendered by headless Chromium, with no network."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tradekit.broker.paper import PaperBrokerConfig
from tradekit.config import Settings
from tradekit.data import load_daily_bars
from tradekit.domain.market import Bar
from tradekit.execution.paper_run import PaperRun, run_paper_replay
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit.reporting.outputs import OutputLimits, RunOutputs, write_run_outputs
from tradekit.reporting.terminal import decision_rows, statistics_rows
from tradekit.reporting.trades import read_trades

from .conftest import CHROMIUM, CHROMIUM_ARGS, open_offline, require_chromium
from .test_buffered_ledger import TrendAdder
from .test_unknown_exit_price import AFTER, NOT_AT_THE_BROKER, reconciled_run

pytestmark = pytest.mark.browser

ENTRY_GREEN = (0x2C, 0xA0, 0x2C)

# The screen position of the middle point of a named glyph renderer, from BokehJS's own scales.
_POINT_OF = """([plotName, rendererName]) => {
  const doc = Bokeh.documents[0];
  const plot = doc.get_model_by_name(plotName);
  const renderer = doc.get_model_by_name(rendererName);
  const find = (view) => view.model === plot ? view : (view.child_views ?? []).map(find).find(Boolean);
  const view = Bokeh.index.roots.map(find).find(Boolean);
  const data = renderer.data_source.data;
  const i = Math.floor(data.x.length / 2);
  const box = view.el.getBoundingClientRect();
  return {
    x: box.left + view.frame.x_scale.compute(data.x[i]),
    y: box.top + view.frame.y_scale.compute(data.y[i]),
    why: data.why[i],
    action: data.action[i],
  };
}"""


def _bars() -> dict[str, list[Bar]]:
    return {s: [b for b in series if b.time.year < 2003] for s, series in load_daily_bars(["AAPL", "MSFT"]).items()}


# A chart's legend entries (drawn on the canvas, so read from BokehJS's models).
_LEGEND_OF = """(plotName) => Bokeh.documents[0].get_model_by_name(plotName).above
  .filter(m => m.items !== undefined).flatMap(l => l.items.map(i => i.label.value))"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PaperRun:
    return run_paper_replay(
        strategy=TrendAdder,
        settings=Settings(),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=_bars(),
        out_dir=tmp_path_factory.mktemp("report"),
        broker_config=PaperBrokerConfig(commission_per_order=Decimal(1)),
        notes=[("data", "two symbols of the shipped sample"), ("costs", "1.00 per order")],
    )


@pytest.fixture(scope="module")
def outside_requests() -> list[str]:
    """Every request the page made for anything but its own file (each one refused)."""
    return []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, one for the module's pages."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(run: PaperRun, browser: Any, outside_requests: list[str]) -> Any:
    assert run.report is not None
    return open_offline(browser, run.report, outside_requests)


def test_the_report_sits_beside_the_chart_and_needs_no_network(
    run: PaperRun, page: Any, outside_requests: list[str]
) -> None:
    assert run.report is not None
    assert run.chart is not None
    assert run.report.parent == run.chart.parent
    text = run.report.read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", text)
    assert page.locator(".bk-Figure").count() == 4  # two price charts, equity, drawdown
    assert outside_requests == []


def test_the_price_chart_is_drawn_with_its_entry_markers(page: Any) -> None:
    canvas = page.locator(".bk-Figure").first
    pixels = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).reshape(-1, 3).astype(int)
    assert len(np.unique(pixels, axis=0)) > 20, "the chart area is blank"
    green = np.all(np.abs(pixels - np.array(ENTRY_GREEN)) <= 12, axis=1).sum()
    assert green > 50, "no entry marker was drawn"
    grey = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"))
    assert grey.min() < 80, "the page has no dark ink at all"


def test_the_page_shows_the_statistics_and_the_decisions_by_reason(run: PaperRun, page: Any) -> None:
    stats = page.locator("#statistics").inner_text()
    for what, value in statistics_rows(run.statistics):
        assert f"{what}\t{value}" in stats
    assert "Sharpe" in stats
    decisions = page.locator("#decisions").inner_text()
    for action, reason, count in decision_rows(run.statistics):
        assert re.search(rf"{action}\s+{re.escape(reason)}\s+{count}", decisions)
    assert "two symbols of the shipped sample" in page.locator("ul.notes").inner_text()
    assert page.locator("#trades tbody tr").count() == run.statistics.trades.positions


def test_hovering_an_entry_shows_its_decision(page: Any) -> None:
    point = page.evaluate(_POINT_OF, ["price-AAPL", "entry-AAPL"])
    page.mouse.move(point["x"], point["y"])
    tip = page.locator(".tk-tip").filter(has_text="ENTER_NEW").first
    tip.wait_for(state="visible")
    assert "all checks passed" in tip.inner_text()
    assert point["action"].split(" ")[0] in tip.inner_text()


def test_hovering_a_skipped_buy_shows_its_reasons(page: Any) -> None:
    # A person clicks "skipped / blocked buys" in the legend; the same toggle, through BokehJS.
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('passed over-AAPL').visible = true }")
    point = page.evaluate(_POINT_OF, ["price-AAPL", "passed over-AAPL"])
    page.mouse.move(0, 0)
    page.mouse.move(point["x"], point["y"])
    # Signals of neighbouring days can sit under the pointer together: each gets a tooltip row.
    tip = page.locator(".tk-tip").filter(has_text=point["why"][:60]).first
    tip.wait_for(state="visible")
    assert point["action"] in tip.inner_text()
    assert re.search(r"(SKIP|BLOCK): [a-z_]+", tip.inner_text())


def test_a_short_runs_chart_marks_every_passed_over_buy_and_says_no_sample(run: PaperRun, page: Any) -> None:
    with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
        passed = [d for d in tx.decisions(symbol="AAPL", limit=10_000) if d.action in ("skip", "block")]
    priced = sorted(d.decision_id for d in passed if d.document().get("price") is not None)
    assert 0 < len(passed) < OutputLimits().passed_over_per_symbol
    marked = page.evaluate("() => Bokeh.documents[0].get_model_by_name('passed over-AAPL').data_source.data.action")
    assert sorted(a.rsplit("(decision ", 1)[1].rstrip(")") for a in marked) == priced
    labels = page.evaluate(_LEGEND_OF, "price-AAPL")
    assert f"skipped / blocked buys ({len(priced)})" in labels
    assert page.locator("#charted-note").count() == 0
    assert page.locator("#trades-note").count() == 0


# --- a long run's report: what it leaves out, and that it says so ---------------------------------

LIMITS = OutputLimits(charted_symbols=1, passed_over_per_symbol=3, trade_rows=2)


@pytest.fixture(scope="module")
def limited(run: PaperRun, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunOutputs, Any]:
    """The same run's outputs written again with small limits (as a long run meets the defaults)."""
    with Ledger.open(run.ledger_url, create=False) as ledger:
        outputs = write_run_outputs(ledger, _bars(), tmp_path_factory.mktemp("limited"), title="limited", limits=LIMITS)
    assert outputs.report is not None
    return outputs, open_offline(browser, outputs.report, [])


def _busiest(run: PaperRun) -> str:
    """The symbol with the most positions (ties by name): the one a one-chart report draws."""
    positions = {s: run.statistics.by_symbol[s].trades.positions for s in ("AAPL", "MSFT")}
    return min(positions, key=lambda s: (-positions[s], s))


def test_a_long_runs_report_charts_its_busiest_symbols_and_says_how_many_it_left_out(
    run: PaperRun, limited: tuple[RunOutputs, Any]
) -> None:
    """The page draws the symbol the outputs chose and says so (which symbols are chosen, by
    positions and then name, is test_run_outputs.py's: here the two symbols tie)."""
    outputs, page = limited
    busiest = _busiest(run)
    other = ({"AAPL", "MSFT"} - {busiest}).pop()
    assert page.locator(".bk-Figure").count() == 3  # one price chart, equity, drawdown
    assert page.evaluate(f"() => Bokeh.documents[0].get_model_by_name('price-{busiest}') !== null")
    assert page.evaluate(f"() => Bokeh.documents[0].get_model_by_name('price-{other}') === null")
    assert "Price charts for 1 of 2 symbols" in page.locator("#charted-note").inner_text()
    # Every symbol still has its statistics, and the statistics count every trade.
    assert other in page.locator("#by-symbol").inner_text()
    assert outputs.statistics == run.statistics
    # The PNG draws the same symbol (and the equity): two panels where the full run has three.
    assert outputs.chart is not None
    assert run.chart is not None
    with Image.open(outputs.chart) as limited_png, Image.open(run.chart) as full_png:
        assert limited_png.size[1] < full_png.size[1]


def test_a_long_runs_report_marks_a_sample_of_the_passed_over_buys_spread_over_the_run(
    run: PaperRun, limited: tuple[RunOutputs, Any]
) -> None:
    _, page = limited
    busiest = _busiest(run)
    with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
        passed = [d for d in reversed(tx.decisions(symbol=busiest, limit=10_000)) if d.action in ("skip", "block")]
    assert len(passed) > LIMITS.passed_over_per_symbol, "the run must pass over more buys than the sample holds"
    total, limit = len(passed), LIMITS.passed_over_per_symbol
    sample = [d.decision_id for i, d in enumerate(passed) if i * limit % total < limit]  # one a stretch
    marked = page.evaluate(
        f"() => Bokeh.documents[0].get_model_by_name('passed over-{busiest}').data_source.data.action"
    )
    assert [a.rsplit("(decision ", 1)[1].rstrip(")") for a in marked] == sample
    assert len(marked) == limit
    labels = page.evaluate(_LEGEND_OF, f"price-{busiest}")
    assert f"skipped / blocked buys ({len(marked)} of {len(passed):,})" in labels


def test_a_long_runs_trade_table_lists_the_latest_positions_numbered_as_in_the_whole_run(
    run: PaperRun, limited: tuple[RunOutputs, Any]
) -> None:
    _, page = limited
    total = run.statistics.trades.positions
    assert total > LIMITS.trade_rows
    with Ledger.open(run.ledger_url, create=False) as ledger, ledger.reading() as tx:
        every = read_trades(tx)
    rows = page.locator("#trades tbody tr")
    assert rows.count() == LIMITS.trade_rows
    for row, (n, trade) in zip(rows.all(), list(enumerate(every, start=1))[-LIMITS.trade_rows :], strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[:3] == [str(n), trade.symbol, f"{trade.opened_at:%Y-%m-%d}"]
    assert f"The latest {LIMITS.trade_rows} of {total} positions" in page.locator("#trades-note").inner_text()


# --- a position closed at an unknown price ----------------------------------------------------------


def test_a_position_closed_at_an_unknown_price_reads_as_unknown_and_is_left_out_of_the_figures(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Reconciliation closed a position the broker no longer held: no fill says at what price.
    The page shows its P&L as unknown, with why, and says the figures leave it out."""
    reconciled = reconciled_run(tmp_path_factory.mktemp("unknown-price"), pictures=True)
    assert reconciled.outputs.report is not None
    outside: list[str] = []
    page = open_offline(browser, reconciled.outputs.report, outside)
    rows = [row.locator("td").all_inner_texts() for row in page.locator("#trades tbody tr").all()]
    (closed,) = [cells for cells in rows if cells[1] == "AAA" and cells[0] == "3"]  # AAA's second position
    assert closed[3] == f"{AFTER:%Y-%m-%d}"  # closed when reconciliation found it gone
    assert closed[6] == "unknown"  # the average exit price
    assert closed[7].startswith("unknown: ")
    assert f"exited at an unknown price (closed outside tradekit: {NOT_AT_THE_BROKER})" in closed[7]
    assert closed[8] == "-"  # no return
    assert closed[9] == f"closed outside tradekit: {NOT_AT_THE_BROKER}"
    # The other positions are priced as before.
    assert all(cells[7][0] in "+-" for cells in rows if cells is not closed)
    note = page.locator("#unknown-pnl-note")
    assert note.is_visible()
    said = note.inner_text()
    assert "1 position of unknown P&L (1 closed, 0 open)" in said
    assert NOT_AT_THE_BROKER in said
    assert "unknown, not zero" in said
    stats = page.locator("#statistics").inner_text()
    for what, value in statistics_rows(reconciled.statistics):
        assert f"{what}\t{value}" in stats
    assert "win rate\t50.0%" in stats  # one of the two positions of known P&L
    assert "(excludes 1 position of unknown P&L)" in stats
    by_symbol = {
        cells[0]: cells
        for cells in (r.locator("td").all_inner_texts() for r in page.locator("#by-symbol tbody tr").all())
    }
    assert by_symbol["AAA"][1] == "-"  # no return: AAA's contribution after the close is unknown
    assert by_symbol["AAA"][6].endswith("(excl. 1 unknown)")
    assert "excl." not in " ".join(by_symbol["BBB"])
    assert outside == []
