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
from tradekit.execution.paper_run import PaperRun, run_paper_replay
from tradekit.plugins import Plugins
from tradekit.reporting.terminal import decision_rows, statistics_rows

from .conftest import CHROMIUM, CHROMIUM_ARGS, require_chromium
from .test_buffered_ledger import TrendAdder

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


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PaperRun:
    bars = {s: [b for b in series if b.time.year < 2003] for s, series in load_daily_bars(["AAPL", "MSFT"]).items()}
    return run_paper_replay(
        strategy=TrendAdder,
        settings=Settings(),
        plugins=Plugins(load_entrypoints=False, env={}),
        bars=bars,
        out_dir=tmp_path_factory.mktemp("report"),
        broker_config=PaperBrokerConfig(commission_per_order=Decimal(1)),
        notes=[("data", "two symbols of the shipped sample"), ("costs", "1.00 per order")],
    )


@pytest.fixture(scope="module")
def outside_requests() -> list[str]:
    """Every request the page made for anything but its own file (each one refused)."""
    return []


@pytest.fixture(scope="module")
def page(run: PaperRun, outside_requests: list[str]) -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    assert run.report is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            opened = browser.new_page(viewport={"width": 1400, "height": 1000})

            def only_the_file(route: Any) -> None:
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    outside_requests.append(route.request.url)
                    route.abort()

            opened.route("**/*", only_the_file)
            opened.goto(run.report.as_uri())
            opened.wait_for_function("() => window.Bokeh !== undefined && Bokeh.index.roots.length > 0")
            yield opened
        finally:
            browser.close()


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
