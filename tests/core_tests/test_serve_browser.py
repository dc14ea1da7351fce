"""tradekit serve as a person sees it: the pages rendered by headless Chromium against the
server on loopback, with no request leaving it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tradekit.guard.state import ACCOUNT

from .conftest import CHROMIUM, CHROMIUM_ARGS, require_chromium
from .serve_kit import Served, serving
from .serve_world import AFTER, World, build_world

pytestmark = pytest.mark.browser

TOKEN = "browser-token-0123456789abcdef"
HALTED_RED = (0xB3, 0x26, 0x1E)
OK_GREEN = (0x1F, 0x7A, 0x3A)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(tmp_path_factory.mktemp("browser"))
    yield built
    built.trading.ledger.close()


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[Served]:
    # With a token, as a remote page would be: the browser sends it with every request.
    with serving(world.url, now=AFTER, token=TOKEN, refresh_seconds=1) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def outside_requests() -> list[str]:
    return []


@pytest.fixture
def page(browser: Any, served: Served, outside_requests: list[str]) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, extra_http_headers={"Authorization": f"Bearer {TOKEN}"}
    )
    opened = context.new_page()

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(served.base):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    opened.route("**/*", only_the_server)
    try:
        yield opened
    finally:
        context.close()


def _colour_count(png: bytes, colour: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    return int(np.all(np.abs(pixels - np.array(colour)) <= 10, axis=1).sum())


def test_the_overview_shows_health_state_and_account_and_needs_no_network(
    page: Any, served: Served, outside_requests: list[str]
) -> None:
    page.goto(served.base + "/")
    page.wait_for_function("() => window.htmx !== undefined")
    health = page.locator("#health").inner_text()
    assert "add_each_close on paper" in health
    assert "5 min ago" in health
    assert "no stream: order events are polled" in health
    assert "BACKFILLED" in page.locator("#findings").inner_text()
    state = page.locator("#state").inner_text()
    assert "symbol:PFE" in state
    assert "HALTED" in state
    assert "earnings tomorrow" in state
    assert "2 positions" in page.locator("#account").inner_text()
    shot = page.screenshot(full_page=True)
    assert _colour_count(shot, HALTED_RED) > 50, "the HALTED badge is not drawn"
    assert _colour_count(shot, OK_GREEN) > 50, "no OK badge is drawn"
    assert outside_requests == []


def test_positions_show_each_entry_and_the_next_scale_in(page: Any, served: Served) -> None:
    page.goto(served.base + "/positions")
    ko = page.locator("tr.position", has_text="KO")
    text = ko.inner_text()
    assert "add_each_close" in text
    assert "entry 3/3" in text
    page.get_by_text("2 entries").click()
    entries = page.locator("table.entries").first.inner_text()
    assert "entry" in entries
    assert "add-on" in entries
    assert ko.screenshot()


def test_a_decision_page_shows_every_check_and_the_explanation(page: Any, served: Served) -> None:
    page.goto(served.base + "/decisions")
    first = page.locator("#decisions tr", has_text="SCALE IN")
    symbol = first.locator("td").nth(1).inner_text()
    first.locator("a").click()
    page.wait_for_selector("#checks")
    assert page.locator("#checks tr").count() > 10
    assert "PASS" in page.locator("#checks").inner_text()
    explanation = page.locator("#explanation").inner_text()
    assert symbol in explanation
    assert "SCALE_IN" in explanation


def test_the_page_refreshes_itself_when_the_ledger_changes(page: Any, served: Served, world: World) -> None:
    page.goto(served.base + "/")
    assert "account HALTED" not in page.locator("#state").inner_text().replace("\n", " ")
    world.guard.halt(ACCOUNT, reason="maintenance", actor="user:ops", at=AFTER)
    page.wait_for_function("() => document.querySelector('#state').innerText.includes('maintenance')")
    assert "HALTED" in page.locator("#state").inner_text()


def test_without_the_token_the_browser_gets_nothing(browser: Any, served: Served) -> None:
    context = browser.new_context()
    try:
        response = context.new_page().goto(served.base + "/")
        assert response is not None
        assert response.status == 401
    finally:
        context.close()
