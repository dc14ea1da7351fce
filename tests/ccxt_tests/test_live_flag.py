"""Real money only with --live: the venues trade on their testnet/demo by default, and no command
reaches (or even looks up) a production host without the flag.

Every order-sending command is run in this process under ``network_guard``, which records
each name lookup and connection in any thread and refuses those leaving this machine.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit.broker.live import LiveTradingRefused
from tradekit.cli import cli
from tradekit.testing.network import network_guard
from tradekit_venue_ccxt.config import CcxtVenueConfig, VenueEnvironment
from tradekit_venue_ccxt.venues import build_client

from .quiet_strategy import PLUGIN_NAME, install_quiet_strategy
from .venues import VENUES

PRODUCTION = {"binanceusdm": "fapi.binance.com", "bybit": "api.bybit.com"}
TEST_HOSTS = {"binanceusdm": {"demo-fapi.binance.com"}, "bybit": {"api-testnet.bybit.com"}}


def commands(venue: str) -> dict[str, list[str]]:
    broker = f"ccxt-{venue}"
    return {
        "run": ["run", "--broker", broker, "--strategy", "quiet", "--symbols", "ETH/USDT:USDT", "--once"],
        "intents execute": ["intents", "execute", "--broker", broker],
        "reconcile": ["reconcile", "--broker", broker],
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.syspath_prepend(str(install_quiet_strategy(tmp_path / "plugins")))
    importlib.invalidate_caches()
    ledger = tmp_path / "ledger.db"
    assert CliRunner().invoke(cli, ["ledger", "init", str(ledger)], env={"TRADEKIT_CONFIG": ""}).exit_code == 0
    env = {"TRADEKIT_LOAD_PLUGINS": f"ccxt,{PLUGIN_NAME}", "TRADEKIT_CONFIG": "", "TRADEKIT_LIVE": ""}
    env["TRADEKIT_LEDGER__URL"] = str(ledger)
    for venue in VENUES:
        env[f"TRADEKIT_CCXT_{venue.upper()}_API_KEY"] = "k3Y7tqZ9mW2xR5vB8nL4"
        env[f"TRADEKIT_CCXT_{venue.upper()}_SECRET"] = "s6Jd1Fp8Qw3Er7Ty2Ui5"
        env[f"TRADEKIT_PLUGINS__CCXT__VENUES__{venue.upper()}__TIMEOUT_MS"] = "2000"
    return env


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, str, set[str]]:
    with network_guard() as guard:
        result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.output, guard.hosts()


def production_overrides(venue: str) -> list[dict[str, str]]:
    key = f"TRADEKIT_PLUGINS__CCXT__VENUES__{venue.upper()}__"
    return [
        {key + "ENVIRONMENT": "production"},
        {key + "API_URL": f"https://{PRODUCTION[venue]}"},
        {key + "API_URL": f"https://{PRODUCTION[venue].upper()}.:443"},
        {key + "API_URL": "https://203.0.113.9"},
        {key + "ENVIRONMENT": "production", key + "API_URL": "https://venue-proxy.example.com"},
    ]


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("command", ["run", "intents execute", "reconcile"])
def test_a_production_endpoint_is_refused_without_the_flag_before_any_connection(
    env: dict[str, str], venue: str, command: str
) -> None:
    for override in production_overrides(venue):
        code, output, hosts = invoke(commands(venue)[command], {**env, **override})

        assert code != 0, override
        assert "real money, refused without the live flag — give --live (or set TRADEKIT_LIVE=1)" in output
        assert hosts == set(), override


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("command", ["intents execute", "reconcile"])
def test_by_default_a_venue_only_asks_for_its_test_environment(env: dict[str, str], venue: str, command: str) -> None:
    code, output, hosts = invoke(commands(venue)[command], env)

    assert code != 0  # the guard refuses the testnet too: nothing leaves this machine in tests
    assert hosts, output
    assert hosts <= TEST_HOSTS[venue]


@pytest.mark.parametrize("venue", VENUES)
def test_the_flag_or_tradekit_live_unlocks_production(env: dict[str, str], venue: str) -> None:
    production = {f"TRADEKIT_PLUGINS__CCXT__VENUES__{venue.upper()}__ENVIRONMENT": "production"}

    by_flag = invoke([*commands(venue)["reconcile"], "--live"], {**env, **production})
    by_env = invoke(commands(venue)["reconcile"], {**env, **production, "TRADEKIT_LIVE": "1"})

    for code, output, hosts in (by_flag, by_env):
        assert code != 0
        assert PRODUCTION[venue] in hosts, output


@pytest.mark.parametrize("venue", VENUES)
def test_the_library_refuses_production_unless_asked_to_trade_live(venue: str) -> None:
    production = CcxtVenueConfig(venue=venue, environment=VenueEnvironment.PRODUCTION)

    with network_guard() as guard:
        with pytest.raises(LiveTradingRefused, match=PRODUCTION[venue]):
            build_client(production, None, async_=False)
        with pytest.raises(LiveTradingRefused, match=PRODUCTION[venue]):
            build_client(production, None, async_=True)
        client = build_client(production, None, async_=False, live=True)

    assert any(PRODUCTION[venue] in client.implode_hostname(url) for url in client.urls["api"].values())
    assert guard.attempts == []


def test_binance_futures_testnet_is_refused_as_ccxt_refuses_it() -> None:
    with pytest.raises(ValueError, match="'testnet' is not offered for binanceusdm"):
        CcxtVenueConfig(venue="binanceusdm", environment=VenueEnvironment.TESTNET)
