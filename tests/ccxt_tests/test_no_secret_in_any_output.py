"""No piece of a venue's API key or secret in any output of any command, with DEBUG logging to a file.

ccxt logs every request's headers at DEBUG, the API-key header included. Each command that
talks to a venue is run as a user runs it (a child process) against both emulators; then
stdout, stderr, the log file, the ledger file (and its journal) and every error message are
searched for any eight characters of a key or secret in a row.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emulators import binance_usdm, bybit
from emulators._perp_book import PerpVenueEmulator
from tradekit.testing.secrets import SecretScan, run_tradekit

from .quiet_strategy import PLUGIN_NAME, install_quiet_strategy
from .venues import ETH

KEYS = {
    "binanceusdm": ("Bk7Qm2Xz9Lw4Rt6Yv8Nc", "Bs3Hj5Kd1Fg7Pq9Wm2Xz4Lc6Vb8Nt0Ry"),
    "bybit": ("Yk4Nw8Qs2Zx6Lp1Rm5Tc", "Ys9Jd3Fh7Kg1Lq5Wp8Xz2Mc6Vb4Nt0Re"),
}
WRONG_KEY, WRONG_SECRET = "Wk2Pq7Zr4Xm9Ls1Tn6Vc", "Ws8Hd2Jf6Kg0Lq4Wp7Xz3Mc9Vb5Nt1Ry"


def emulator(venue: str) -> PerpVenueEmulator:
    key, secret = KEYS[venue]
    if venue == "binanceusdm":
        return binance_usdm.BinanceUsdmEmulator(api_key=key, api_secret=secret)
    return bybit.BybitEmulator(api_key=key, api_secret=secret)


@pytest.mark.parametrize("venue", sorted(KEYS))
def test_no_piece_of_a_key_reaches_stdout_stderr_the_log_the_ledger_or_an_error(venue: str, tmp_path: Path) -> None:
    key, secret = KEYS[venue]
    log_file = tmp_path / "tradekit.log"
    ledger = tmp_path / "ledger.db"
    plugins = install_quiet_strategy(tmp_path / "plugins")
    prefix = f"TRADEKIT_PLUGINS__CCXT__VENUES__{venue.upper()}__"
    broker = f"ccxt-{venue}"
    scan = SecretScan(secrets=(key, secret, WRONG_KEY, WRONG_SECRET))
    with emulator(venue) as emu:
        env = {
            f"TRADEKIT_CCXT_{venue.upper()}_API_KEY": key,
            f"TRADEKIT_CCXT_{venue.upper()}_SECRET": secret,
            "PYTHONPATH": os.pathsep.join(p for p in (str(plugins), os.environ.get("PYTHONPATH")) if p),
            "TRADEKIT_LOAD_PLUGINS": f"ccxt,{PLUGIN_NAME}",
            "TRADEKIT_CONFIG": "",
            "TRADEKIT_LOG_LEVEL": "DEBUG",
            "TRADEKIT_LOG_FILE": str(log_file),
            "TRADEKIT_LEDGER__URL": str(ledger),
            prefix + "API_URL": emu.base_url,
            prefix + "RATE_LIMIT": "false",
            prefix + "TIMEOUT_MS": "3000",
            prefix + "SYMBOLS": ETH,
        }
        commands = [
            ["ledger", "init"],
            ["reconcile", "--broker", broker],
            ["reconcile", "--broker", broker, "--json"],
            ["run", "--broker", broker, "--strategy", "quiet", "--symbols", ETH, "--once"],
            ["intents", "execute", "--broker", broker],
            ["positions", "--status", "all"],
            ["config", "check"],
            ["config", "check", "--json"],
            ["config", "check", "--toml"],
        ]
        codes = scan.run_all(commands, env, cwd=tmp_path)
        wrong = {
            f"TRADEKIT_CCXT_{venue.upper()}_API_KEY": WRONG_KEY,
            f"TRADEKIT_CCXT_{venue.upper()}_SECRET": WRONG_SECRET,
        }
        refused = run_tradekit(["reconcile", "--broker", broker], {**env, **wrong}, cwd=tmp_path)
        scan.add_run("reconcile with refused keys", refused)
        in_config = run_tradekit(["config", "check"], {**env, prefix + "API_KEY": key}, cwd=tmp_path)
        scan.add_run("config check with a key among the settings", in_config)
        requests = emu.requests()
    scan.add_files([log_file, ledger, ledger.with_name(ledger.name + "-wal")])

    assert codes[f"reconcile --broker {broker}"] == 0, scan.outputs[f"reconcile --broker {broker}: stderr"]
    assert codes["config check --toml"] == 0
    assert refused.returncode != 0
    assert in_config.returncode != 0
    assert requests, "the commands did not reach the emulator"
    # ccxt did log the signed requests at DEBUG, headers and all: the masking is what kept them out.
    assert "<redacted>" in log_file.read_text()
    assert scan.leaks() == {}
