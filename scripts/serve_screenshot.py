"""Remake docs/images/serve-overview.png: the status page over the test world, in Debian's Chromium.

Run from the repository root: ``PYTHONPATH=tests python scripts/serve_screenshot.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from core_tests.conftest import CHROMIUM, CHROMIUM_ARGS
from core_tests.serve_kit import serving
from core_tests.serve_world import AFTER, build_world

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve-overview.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        world = build_world(Path(folder))
        try:
            with serving(world.url, now=AFTER, refresh_seconds=0) as served, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(served.base + "/")
                page.screenshot(path=str(OUT), full_page=True)
                browser.close()
        finally:
            world.trading.ledger.close()
    print(OUT)


if __name__ == "__main__":
    main()
