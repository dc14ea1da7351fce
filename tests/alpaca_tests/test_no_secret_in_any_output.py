"""No piece of the Alpaca keys in any output of any command, with DEBUG logging to a file.

Each command that talks to Alpaca is run as a user runs it (a child process) against the
emulator: reconcile, a live cycle, exit execution, the ledger listings, config check, and a
login the emulator refuses. Then stdout, stderr, the log file, the ledger file (and its
journal) and every error message are searched for any eight characters of a key in a row.
"""

from __future__ import annotations

from pathlib import Path

from emulators.alpaca import AlpacaEmulator
from tradekit.testing.secrets import SecretScan, run_tradekit

from .conftest import KEY_ID, SECRET_KEY

WRONG_KEY_ID = "PKQ8W3E6RT1YU4IO"
WRONG_SECRET = "Hz5Xc2Vb8Nm1Lk4Jh7Gf0Ds3Aq6Wp"


def test_no_piece_of_a_key_reaches_stdout_stderr_the_log_the_ledger_or_an_error(
    emu: AlpacaEmulator, tmp_path: Path
) -> None:
    log_file = tmp_path / "tradekit.log"
    ledger = tmp_path / "ledger.db"
    env = {
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET_KEY,
        "TRADEKIT_LOAD_PLUGINS": "alpaca,examples",
        "TRADEKIT_CONFIG": "",
        "TRADEKIT_LOG_LEVEL": "DEBUG",
        "TRADEKIT_LOG_FILE": str(log_file),
        "TRADEKIT_LEDGER__URL": str(ledger),
        "TRADEKIT_PLUGINS__ALPACA__BASE_URL": emu.base_url,
        "TRADEKIT_PLUGINS__ALPACA__DATA_URL": emu.data_url,
        "TRADEKIT_PLUGINS__ALPACA__STREAM_URL": emu.stream_url,
        "TRADEKIT_PLUGINS__ALPACA__REQUEST_TIMEOUT_SECONDS": "2",
        "TRADEKIT_PLUGINS__ALPACA__READ_RETRIES": "0",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }
    scan = SecretScan(secrets=(KEY_ID, SECRET_KEY, WRONG_KEY_ID, WRONG_SECRET))
    commands = [
        ["ledger", "init"],
        ["reconcile", "--broker", "alpaca"],
        ["reconcile", "--broker", "alpaca", "--json"],
        ["run", "--broker", "alpaca", "--strategy", "breakout", "--symbols", "AAPL", "--once"],
        ["intents", "execute", "--broker", "alpaca"],
        ["intents", "list"],
        ["decisions"],
        ["positions", "--status", "all", "--json"],
        ["config", "check"],
        ["config", "check", "--json"],
        ["config", "check", "--toml"],
    ]

    codes = scan.run_all(commands, env, cwd=tmp_path)
    refused = run_tradekit(
        ["reconcile", "--broker", "alpaca"],
        {**env, "APCA_API_KEY_ID": WRONG_KEY_ID, "APCA_API_SECRET_KEY": WRONG_SECRET},
        cwd=tmp_path,
    )
    scan.add_run("reconcile with refused keys", refused)
    in_config = run_tradekit(
        ["config", "check"], {**env, "TRADEKIT_PLUGINS__ALPACA__SECRET_KEY": SECRET_KEY}, cwd=tmp_path
    )
    scan.add_run("config check with a key among the settings", in_config)
    scan.add_files([log_file, ledger, ledger.with_name(ledger.name + "-wal")])

    assert codes["reconcile --broker alpaca"] == 0, scan.outputs["reconcile --broker alpaca: stderr"]
    assert codes["config check --toml"] == 0
    assert refused.returncode != 0
    assert in_config.returncode != 0
    assert "plugins.alpaca.SECRET_KEY" in in_config.stderr or "SECRET_KEY" in in_config.stderr
    # The commands did talk to Alpaca, with the keys, and logged at DEBUG what they sent.
    assert any(v == KEY_ID for r in emu.requests() for k, v in r.headers.items() if k.lower() == "apca-api-key-id")
    assert "/v2/positions" in log_file.read_text()
    assert scan.leaks() == {}
