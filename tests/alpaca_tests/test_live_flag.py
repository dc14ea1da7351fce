"""Real money only with --live: without it, no command reaches (or even looks up) a live Alpaca host.

Every order-sending command is run in this process under ``network_guard``, which records
each name lookup and connection in any thread and refuses those leaving this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit.cli import cli
from tradekit.testing.network import network_guard

from .conftest import KEY_ID, SECRET_KEY

COMMANDS = {
    "run": ["run", "--broker", "alpaca", "--strategy", "breakout", "--symbols", "AAPL", "--once"],
    "intents execute": ["intents", "execute", "--broker", "alpaca"],
    "reconcile": ["reconcile", "--broker", "alpaca"],
}
# The live host however it is written, an address that is not this machine, an unknown host.
LIVE_BASE_URLS = [
    "https://api.alpaca.markets",
    "https://API.Alpaca.Markets",
    "https://api.alpaca.markets.",
    "https://api.alpaca.markets:443/",
    "https://trader@api.alpaca.markets",
    "http://203.0.113.7:8080",
    "https://alpaca-proxy.example.com",
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    ledger = tmp_path / "ledger.db"
    assert CliRunner().invoke(cli, ["ledger", "init", str(ledger)], env={"TRADEKIT_CONFIG": ""}).exit_code == 0
    return {
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET_KEY,
        "TRADEKIT_LOAD_PLUGINS": "alpaca,examples",
        "TRADEKIT_CONFIG": "",
        "TRADEKIT_LIVE": "",
        "TRADEKIT_LEDGER__URL": str(ledger),
        "TRADEKIT_PLUGINS__ALPACA__REQUEST_TIMEOUT_SECONDS": "2",
        "TRADEKIT_PLUGINS__ALPACA__READ_RETRIES": "0",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str, list[str]]:
    with network_guard() as guard:
        result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.output, sorted(guard.hosts())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_live_account_is_refused_without_the_flag_before_any_connection(env: dict[str, str], command: str) -> None:
    code, output, hosts = invoke(COMMANDS[command], {**env, "TRADEKIT_PLUGINS__ALPACA__PAPER": "false"})

    assert code != 0
    assert "refused without the live flag — give --live (or set TRADEKIT_LIVE=1)" in output
    assert hosts == []


@pytest.mark.parametrize("base_url", LIVE_BASE_URLS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_base_url_that_may_be_live_is_refused_without_the_flag_before_any_connection(
    env: dict[str, str], command: str, base_url: str
) -> None:
    code, output, hosts = invoke(COMMANDS[command], {**env, "TRADEKIT_PLUGINS__ALPACA__BASE_URL": base_url})

    assert code != 0
    assert "--live" in output
    assert hosts == []


@pytest.mark.parametrize("spelling", ["1", "true", "TRUE"])
def test_the_flag_or_tradekit_live_unlocks_the_live_host_and_nothing_else_is_asked(
    env: dict[str, str], spelling: str
) -> None:
    live_env = {**env, "TRADEKIT_PLUGINS__ALPACA__PAPER": "false"}

    by_flag = invoke([*COMMANDS["reconcile"], "--live"], live_env)
    by_env = invoke(COMMANDS["reconcile"], {**live_env, "TRADEKIT_LIVE": spelling})

    for code, output, hosts in (by_flag, by_env):
        # The guard refuses the connection: the command names the host it could not reach.
        assert code != 0
        assert "cannot reach api.alpaca.markets:443" in output
        assert set(hosts) <= {"api.alpaca.markets", "data.alpaca.markets"}
        assert "api.alpaca.markets" in hosts


def test_the_default_is_alpacas_paper_host(env: dict[str, str]) -> None:
    code, output, hosts = invoke(COMMANDS["reconcile"], env)

    assert code != 0
    assert "cannot reach paper-api.alpaca.markets:443" in output
    assert "api.alpaca.markets" not in hosts
    assert "paper-api.alpaca.markets" in hosts


def test_a_misspelt_tradekit_live_is_an_error_naming_it(env: dict[str, str]) -> None:
    code, output, hosts = invoke(COMMANDS["reconcile"], {**env, "TRADEKIT_LIVE": "yes"})

    assert code != 0
    assert "TRADEKIT_LIVE='yes' is not a boolean" in output
    assert hosts == []
