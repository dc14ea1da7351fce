"""Walk-forward analysis end to end: folds optimised in sample, scored out of sample, and the
page a person opens (walk-forward.html) rendered by headless Chromium, with no network."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tradekit.cli import cli

from .conftest import CHROMIUM, CHROMIUM_ARGS, open_offline, require_chromium
from .optimize_kit import Gated, kit_plugins

CURVE_BLUE = (0x1F, 0x77, 0xB4)


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("walk-forward")
    space = folder / "space.toml"
    space.write_text("[strategy]\nfast = { choices = [5, 20] }\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tradekit.cli.common.plugins", kit_plugins)
        result = CliRunner().invoke(
            cli,
            ["optimize", "walk-forward", "--strategy", Gated.name, "--symbols", "AAPL", "--start", "2003-07-01",
             "--end", "2004-12-31", "--space", str(space), "--sampler", "grid", "--storage", "memory",
             "--in-sample", "126", "--out-of-sample", "63", "--out", str(folder / "out"), "--json"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_each_fold_is_scored_out_of_sample_after_its_in_sample_window(walked: dict[str, Any]) -> None:
    folds = walked["folds"]
    # 380 sessions: 126 in sample, then four out-of-sample windows of 63 and a last one of 2
    assert len(folds) == 5
    assert folds[-1]["out_of_sample"] == ["2004-12-30", "2004-12-31"]
    for before, after in itertools.pairwise(folds):
        assert after["in_sample"][0] > before["in_sample"][0]  # rolling
        assert after["out_of_sample"][0] > before["out_of_sample"][1]
    assert walked["min_trades"] == 10  # the default
    for fold in folds:
        assert fold["in_sample"][1] < fold["out_of_sample"][0]
        assert fold["params"]["strategy.fast"] in (5, 20)
        assert fold["in_sample_closed_trades"] >= 10
        below = fold["out_of_sample_closed_trades"] < 10
        assert fold["out_of_sample_below_min_trades"] is below
        assert len(fold["out_of_sample_values"]) == 1
    assert folds[-1]["out_of_sample_below_min_trades"]  # two sessions close no position
    stitched = walked["stitched"]["returns"]
    assert stitched["start"] == folds[0]["out_of_sample"][0]
    assert stitched["end"] == folds[-1]["out_of_sample"][1]
    rows = {row["metric"]: row for row in walked["summary"]}
    assert rows["sharpe"]["out_of_sample_stitched"] == stitched["sharpe"]


@pytest.fixture(scope="module")
def page(walked: dict[str, Any]) -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    report = Path(walked["report"])
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            opened = open_offline(browser, report, outside, width=1200, height=900)
            yield opened
            assert outside == []
        finally:
            browser.close()


@pytest.mark.browser
def test_the_page_shows_the_stitched_curve_and_in_and_out_of_sample_figures(walked: dict[str, Any], page: Any) -> None:
    assert page.locator(".bk-Figure").count() == 2  # the stitched equity, the objective per fold
    summary = page.locator("#summary").inner_text()
    assert "out of sample (stitched)" in summary
    sharpe = next(row for row in walked["summary"] if row["metric"] == "sharpe")
    assert f"sharpe\t{sharpe['in_sample_mean']:.4f}\t" in summary
    folds = page.locator("#folds tbody tr")
    assert folds.count() == len(walked["folds"])
    assert "strategy.fast=" in folds.first.inner_text()
    assert "trials closing fewer than 10 positions were set aside" in page.locator("body").inner_text()
    for row, fold in zip(folds.all(), walked["folds"], strict=True):
        closed = fold["out_of_sample_closed_trades"]
        flag = f"{closed} closed trade{'' if closed == 1 else 's'} out of sample, below the minimum of 10"
        assert (flag in row.inner_text()) is fold["out_of_sample_below_min_trades"]

    curve = page.locator(".bk-Figure").first
    pixels = np.asarray(Image.open(io.BytesIO(curve.screenshot())).convert("RGB")).reshape(-1, 3).astype(int)
    blue = np.all(np.abs(pixels - np.array(CURVE_BLUE)) <= 12, axis=1).sum()
    assert blue > 200, "the stitched equity curve was not drawn"
    assert len(np.unique(pixels, axis=0)) > 20, "the chart area is blank"
