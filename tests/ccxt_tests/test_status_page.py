"""The perp pairs page tradekit-venue-ccxt adds to ``tradekit serve`` through register_status_pages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html import escape as html_escape
from pathlib import Path

from core_tests.serve_kit import serving
from tradekit.ledger import Ledger
from tradekit.plugins import Plugins
from tradekit_venue_ccxt import plugin

from .pair_world import START
from .test_pair_view import traded  # noqa: F401 - the fixture of a ledger holding one pair


def _plugins() -> Plugins:
    return Plugins(load_entrypoints=False, env={}, extra=[("ccxt", plugin)])


def test_the_pairs_page_lists_the_open_pair_as_the_positions_command_does(traded: str) -> None:  # noqa: F811
    with serving(traded, now=START + timedelta(days=2), plugins=_plugins()) as served:
        listed = served.get("/api/pages").json()["pages"]
        page = served.get("/api/pages/pairs").json()
        html = served.get("/pages/pairs").text
    assert [p["name"] for p in listed] == ["pairs"]
    assert page["summary"] == "1 open pair"
    (row,) = page["data"]
    assert row["entries"] == 2
    assert row["status"] == "open"
    assert Decimal(row["next_trigger_bps"]) > Decimal(row["initial_spread_bps"])
    (cells,) = page["rows"]
    assert cells[1] == "open"
    assert cells[-2] == "5d00h00m"
    assert html_escape(row["pair_id"]) in html
    assert "perp pairs" in html


def test_a_ledger_without_pairs_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).close()
    with serving(url, now=START, plugins=_plugins()) as served:
        page = served.get("/api/pages/pairs").json()
    assert page["summary"] == "No perp pair has been traded with this ledger."
    assert page["rows"] == []
