"""tradekit serve's JSON API and its rules, over a real socket on loopback: every route, read-only,
the Host allowlist, the bearer token, and binds it refuses."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit import hookimpl, redaction
from tradekit.cli import cli
from tradekit.config import Settings
from tradekit.ledger import Ledger, LedgerError
from tradekit.serve.app import create_app
from tradekit.serve.pages import StatusPage
from tradekit.serve.security import ServeRefused, check_bind, read_token
from tradekit.serve.server import StatusServer

from .conftest import PG_URL, require_postgres
from .serve_kit import Served, serving
from .serve_world import AFTER, World, build_world, world_plugins

TOKEN = "t0ken-for-the-status-page-0123456789"
HTML_PAGES = ("/", "/positions", "/decisions", "/exits", "/guard")
API_ROUTES = (
    "/api/overview",
    "/api/health",
    "/api/state",
    "/api/account",
    "/api/positions",
    "/api/decisions",
    "/api/exits",
    "/api/pages",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(tmp_path_factory.mktemp("serve"))
    yield built
    built.trading.ledger.close()


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[Served]:
    with serving(world.url, now=AFTER) as running:
        yield running


def test_health_shows_the_traders_last_cycle_bar_and_stream_and_the_last_reconciliation(served: Served) -> None:
    health = served.get("/api/health").json()
    (trader,) = health["traders"]
    assert trader["trader"] == "add_each_close on paper"
    assert trader["last_cycle"]["age_seconds"] == 300
    assert trader["last_cycle"]["status"] == "ok"
    assert trader["last_bar"]["at"] == "2024-03-06T21:00:00+00:00"
    assert trader["last_bar"]["of_last_session"] is True
    assert trader["stream"]["state"] == "none"
    findings = health["reconciliation"]["findings"]
    assert [(f["symbol"], f["action"]) for f in findings] == [("MSFT", "backfilled")]


def test_a_trader_silent_longer_than_stale_after_is_flagged_stale(world: World) -> None:
    with serving(world.url, now=AFTER + timedelta(hours=1)) as running:
        health = running.get("/api/health").json()
    assert health["traders"][0]["last_cycle"]["status"] == "stale"
    assert health["status"] == "stale"


def test_trading_state_lists_each_scope_with_who_and_why(served: Served) -> None:
    state = served.get("/api/state").json()
    scopes = {s["scope"]: s for s in state["scopes"]}
    assert scopes["account"]["state"] == "active"
    assert scopes["symbol:PFE"]["state"] == "halted"
    assert scopes["symbol:PFE"]["by"] == "user:ops"
    assert scopes["symbol:PFE"]["why"] == "earnings tomorrow"
    assert state["transitions"][0]["scope"] == "symbol:PFE"


def test_positions_show_entries_average_fees_pnl_at_the_mark_and_the_next_trigger(served: Served, world: World) -> None:
    rows = {p["symbol"]: p for p in served.get("/api/positions").json()["positions"]}
    ko = rows["KO"]
    held = world.trading.ledger.position("KO")
    assert held is not None
    assert ko["entry_count"] == 2 == len(ko["entries"])
    assert [e["kind"] for e in ko["entries"]] == ["entry", "add-on"]
    assert Decimal(ko["qty"]) == held.qty
    assert Decimal(ko["average_entry"]) == round(held.average_price, 6)
    assert ko["mark"]["price"] == "60"
    assert Decimal(ko["unrealized_pnl"]) == round((Decimal(60) - held.average_price) * held.qty, 2)
    assert ko["next_scale_in"]["allowed"] is True
    assert ko["next_scale_in"]["entry"] == 3
    assert rows["MSFT"]["strategy"] is None
    assert rows["MSFT"]["next_scale_in"]["allowed"] is False


def test_account_shows_equity_and_exposure_by_tier(served: Served) -> None:
    account = served.get("/api/account").json()
    assert Decimal(account["equity"]) > 0
    assert set(account["tiers"]) == {"untiered"}
    assert sorted(account["tiers"]["untiered"]["symbols"]) == ["KO", "MSFT"]


def test_a_decision_carries_the_full_trace_explain_prints(served: Served, world: World) -> None:
    listed = served.get("/api/decisions?limit=10&action=scale_in").json()["decisions"]
    (scale_in,) = listed
    detail = served.get(f"/api/decisions/{scale_in['decision_id']}").json()
    with world.trading.ledger.reading() as tx:
        stored = tx.decision(scale_in["decision_id"])
    assert stored is not None
    assert detail["trace"] == stored.document()
    assert detail["explanation"] == stored.decision().explain()


def test_exit_intents_show_their_windows_and_steps(served: Served) -> None:
    exits = served.get("/api/exits").json()
    (planned,) = exits["in_flight"]
    assert planned["symbol"] == "KO"
    assert planned["state"] == "planned"
    assert planned["window_opens_at"] == "2024-03-07T14:35:00+00:00"
    assert planned["window"] == "waiting"
    steps = served.get(f"/api/exits/{planned['intent_id']}").json()["transitions"]
    assert [s["state"] for s in steps] == ["planned"]


@pytest.mark.parametrize("path", [*HTML_PAGES, *API_ROUTES, "/metrics", "/static/htmx.min.js"])
def test_every_route_answers_a_get(served: Served, path: str) -> None:
    reply = served.get(path)
    assert reply.status == 200, reply.text
    assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/api/health", "/api/decisions", "/no/such/route"])
def test_anything_but_a_read_answers_405(served: Served, method: str, path: str) -> None:
    reply = served.request(method, path, {"Origin": "http://evil.example", "Content-Length": "0"})
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert "access-control-allow-origin" not in reply.headers


def test_a_foreign_host_header_is_refused_against_dns_rebinding(served: Served) -> None:
    assert served.get("/api/health", {"Host": "attacker.example"}).status == 400
    assert served.get("/api/health", {"Host": f"localhost:{served.port}"}).status == 200


def test_bad_queries_and_unknown_records_are_clear_errors(served: Served) -> None:
    assert "limit" in served.get("/api/decisions?limit=0").json()["error"]
    assert "action" in served.get("/api/decisions?action=buy").json()["error"]
    assert served.get("/api/decisions/nope").status == 404
    assert served.get("/decisions/nope").status == 404
    assert served.get("/api/pages/nope").status == 404


def test_pages_send_a_policy_that_allows_only_their_own_scripts(served: Served) -> None:
    headers = served.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers


def test_metrics_report_health_state_and_positions(served: Served) -> None:
    text = served.get("/metrics").text
    assert 'tradekit_trader_last_cycle_age_seconds{trader="add_each_close on paper"} 300.0' in text
    assert 'tradekit_trading_state{scope="symbol:PFE"} 2.0' in text
    assert 'tradekit_position_entries{symbol="KO"} 2.0' in text


def test_with_a_token_every_request_needs_it(world: World) -> None:
    with serving(world.url, now=AFTER, token=TOKEN) as running:
        assert running.get("/api/health").status == 401
        assert running.get("/static/htmx.min.js").status == 401
        assert running.get("/api/health", {"Authorization": "Bearer wrong-token-0123456789"}).status == 401
        assert running.get("/api/health", {"Authorization": f"Basic {TOKEN}"}).status == 401
        assert running.get("/api/health", {"Authorization": f"Bearer {TOKEN}"}).status == 200
        assert running.request("POST", "/api/health", {"Authorization": f"Bearer {TOKEN}"}).status == 405


def test_without_a_token_loopback_is_served_openly(served: Served) -> None:
    assert served.get("/api/health").status == 200


def test_a_remote_bind_is_refused_without_allow_remote_and_a_token() -> None:
    with pytest.raises(ServeRefused, match="only loopback"):
        check_bind("192.0.2.7", allow_remote=False, token=TOKEN, extra_hosts=())
    with pytest.raises(ServeRefused, match="without a token"):
        check_bind("192.0.2.7", allow_remote=True, token=None, extra_hosts=())
    with pytest.raises(ServeRefused, match="--allowed-host"):
        check_bind("0.0.0.0", allow_remote=True, token=TOKEN, extra_hosts=())
    check_bind("192.0.2.7", allow_remote=True, token=TOKEN, extra_hosts=())
    check_bind("127.0.0.1", allow_remote=False, token=None, extra_hosts=())


def test_the_server_refuses_to_listen_remotely_before_binding(world: World) -> None:
    with pytest.raises(ServeRefused):
        StatusServer(object(), host="0.0.0.0", port=0)  # type: ignore[arg-type]


def test_the_command_refuses_a_remote_bind_without_a_token(world: World) -> None:
    result = CliRunner().invoke(cli, ["serve", "--ledger", world.url, "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "only loopback" in result.output


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ServeRefused, match="chmod 600"):
        read_token(path)
    os.chmod(path, 0o600)
    assert read_token(path) == TOKEN
    path.write_text("short\n")
    with pytest.raises(ServeRefused, match="at least 16"):
        read_token(path)


def test_the_command_refuses_a_missing_ledger_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = CliRunner().invoke(cli, ["serve", "--ledger", str(missing)])
    assert result.exit_code == 1
    assert "no ledger" in result.output
    assert not missing.exists()


class BrokenPages:
    @hookimpl
    def register_status_pages(self, register: Callable[[StatusPage], None]) -> None:
        raise ImportError("a plugin's page module is broken")


def test_a_plugin_that_cannot_register_its_page_leaves_the_others_served(world: World) -> None:
    manager = world_plugins()
    manager.register(BrokenPages(), "broken_pages")
    with serving(world.url, now=AFTER, plugins=manager) as running:
        assert running.get("/").status == 200
        assert running.get("/api/pages").json() == {"pages": []}


# --- a password in the ledger URL's query (libpq takes ?password= as well as user:pw@) -------------


@pytest.mark.postgres
def test_a_ledger_password_given_as_a_query_parameter_is_never_served() -> None:
    require_postgres()
    secret = "Qz7wX2vKpL9mRt4Y"
    url = f"{PG_URL}?password={secret}&application_name=tk-serve-test"
    ledger = Ledger.open(url, schema=f"tk_serve_{uuid.uuid4().hex[:10]}")
    try:
        app = create_app(ledger=ledger, ledger_url=url, settings=Settings(), plugins=world_plugins())
        server = StatusServer(app, port=0)
        server.start()
        try:
            running = Served(server.port)
            overview, page = running.get("/api/overview"), running.get("/")
        finally:
            server.stop()
        assert overview.json()["ledger"].endswith("?application_name=tk-serve-test&password=***")
        assert secret not in overview.text
        assert secret not in page.text
        assert secret not in ledger.url
    finally:
        ledger.drop_schema()
        ledger.close()


def test_a_ledger_url_error_names_no_query_credential_and_logs_mask_them() -> None:
    password, key = "Hq3ZvT8nWx1LcP6d", "Jr5YbN2kVs9QmF4g"
    url = f"postgresql+psycopg://tk@127.0.0.1:1/db?password={password}&sslpassword={password}&api_key={key}"
    with pytest.raises(LedgerError) as refused:  # psycopg refuses api_key before connecting
        Ledger.open(url)
    assert "sslpassword=***" in str(refused.value)
    assert password not in str(refused.value)
    assert key not in str(refused.value)
    # Registered when the URL was read: a library's log line quoting it is masked too.
    assert redaction.redact(f"connecting with {password} and {key}") == (
        f"connecting with {redaction.MASK} and {redaction.MASK}"
    )


def test_shown_settings_and_environment_urls_mask_query_credentials() -> None:
    token = "Wm8RcX4tHz2PqL7v"
    redaction.register_environment_secrets(
        {"TRADEKIT_LEDGER_URL": f"postgresql://u@h/db?sslmode=require&token={token}"}
    )
    assert token not in redaction.redact(f"token is {token}")
    shown = redaction.redact_settings(
        {"ledger": {"url": "postgresql://u@h/db?sslmode=require&password=Bn6TkW3xZr9MvQ2h"}}
    )
    assert shown == {"ledger": {"url": f"postgresql://u@h/db?sslmode=require&password={redaction.MASK}"}}


def test_a_position_partly_closed_at_an_unknown_price_shows_its_realized_pnl_as_unknown(tmp_path: Path) -> None:
    # Reconciliation found the broker holding less KO than the ledger, and no fill says what
    # the rest went for: the position's realized P&L is unknown, never the known part's.
    built = build_world(tmp_path)
    try:
        held = built.trading.ledger.position("KO")
        assert held is not None
        with built.trading.ledger.transaction() as tx:
            tx.record_external_close("KO", held.qty / 2, AFTER, "the ledger follows the broker")
        with serving(built.url, now=AFTER) as running:
            rows = {p["symbol"]: p for p in running.get("/api/positions").json()["positions"]}
            page = running.get("/positions").text
    finally:
        built.trading.ledger.close()
    ko = rows["KO"]
    assert ko["realized_pnl"] is None
    assert ko["pnl"] is None
    assert "unknown price" in ko["unknown_pnl"]
    assert "the ledger follows the broker" in ko["unknown_pnl"]
    assert ko["unrealized_pnl"] is not None  # what is still held is marked as before
    assert rows["MSFT"]["unknown_pnl"] is None
    ko_row = page[page.index("<strong>KO</strong>") :].split("</tr>", 1)[0]
    assert 'title="' in ko_row
    assert ">unknown</span>" in ko_row
