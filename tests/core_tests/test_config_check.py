"""`tradekit config check`: everything validated at load, one clear paragraph per problem, no secret shown."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradekit.cli import cli
from tradekit.config import SettingsError, load_settings
from tradekit.plugins import Plugins

# Random-looking, so a test can prove no part of them is printed.
DB_PASSWORD = "Pw9xK2mQ7vL4zR8t"
PLUGIN_SECRET = "Zs4Hq8Lw2Xc6Vb1Nm5Kp"
ENV = {"TRADEKIT_CONFIG": "", "TRADEKIT_LOAD_PLUGINS": ""}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradekit.toml"
    path.write_text(text)
    return path


def check(tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["config", "check", "--config", str(write(tmp_path, text)), *args], env={**ENV, **(env or {})}
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[exits]\ncalendar = "NOPE"\n', ["exits.calendar = 'NOPE' is not an exchange calendar", "XNYS"]),
        ('[freshness]\nmax_signal_age_hours = "1e30"\n', ["max_signal_age_hours must be at most 8,760 hours", "1E+30"]),
        ("[orders]\norder_cooldown_minutes = 9223372036854775807\n", ["order_cooldown_minutes must be at most"]),
        ("[exits]\nwindow_end_minutes = 100000\n", ["window_end_minutes must be at most 1,440"]),
        ('[scale_in]\nenabled = "yes"\n', ["expected true or false, got 'yes'", "settings.scale_in.enabled"]),
        ("[reconciliation]\nbackfill_enabled = 1\n", ["expected true or false, got 1", "backfill_enabled"]),
        ('[ledger]\nurl = "mysql://db/ledger"\n', ["ledger.url = 'mysql://db/ledger' is not a supported ledger URL"]),
        ('[plugins.paper]\nstartng_cash = "1000"\n', ["startng_cash", "plugins.paper"]),
        ('[plugins.paper]\nstarting_cash = "-5"\n', ["starting_cash", "-5"]),
        ('[plugins.paper]\nfractional_trading = "no"\n', ["expected true or false, got 'no'", "fractional_trading"]),
        ("[plugins.nope]\nx = 1\n", ["[plugins.nope] is not read by any loaded plugin", "plugin sections: paper"]),
    ],
)
def test_a_bad_value_fails_config_check_naming_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    code, output = check(tmp_path, text)

    assert code == 1
    assert "Traceback" not in output
    for part in expected:
        assert part in output


@pytest.mark.parametrize(("spelling", "value"), [("true", True), ("FALSE", False), ("1", True), (" 0 ", False)])
def test_environment_booleans_are_true_false_one_or_zero(spelling: str, value: bool) -> None:
    env = {"TRADEKIT_SCALE_IN__ENABLED": spelling, "TRADEKIT_PLUGINS__PAPER__FRACTIONAL_TRADING": spelling}
    loaded = load_settings(env=env, plugin_settings=Plugins(load_entrypoints=False, env={}).settings_tables())

    assert loaded.settings.scale_in.enabled is value
    assert loaded.settings.plugins["paper"]["fractional_trading"] is value


@pytest.mark.parametrize("spelling", ["yes", "no", "on", "", "2"])
def test_other_environment_booleans_are_refused_naming_the_variable(spelling: str) -> None:
    with pytest.raises(
        SettingsError, match=f"TRADEKIT_PLUGINS__PAPER__FRACTIONAL_TRADING='{spelling}' is not a boolean"
    ):
        load_settings(
            env={"TRADEKIT_PLUGINS__PAPER__FRACTIONAL_TRADING": spelling},
            plugin_settings=Plugins(load_entrypoints=False, env={}).settings_tables(),
        )


def test_an_unknown_key_of_a_plugin_table_from_the_environment_is_named() -> None:
    with pytest.raises(SettingsError, match="TRADEKIT_PLUGINS__PAPER__STARTNG_CASH names no setting"):
        load_settings(
            env={"TRADEKIT_PLUGINS__PAPER__STARTNG_CASH": "5"},
            plugin_settings=Plugins(load_entrypoints=False, env={}).settings_tables(),
        )


@pytest.mark.parametrize("form", [[], ["--json"], ["--toml"]])
def test_config_check_never_prints_a_secret_from_the_file_or_the_environment(tmp_path: Path, form: list[str]) -> None:
    text = f'[ledger]\nurl = "postgresql+psycopg://trader:{DB_PASSWORD}@db.example/ledger"\n'

    code, output = check(tmp_path, text, *form)
    refused_code, refused = check(tmp_path, "", *form, env={"TRADEKIT_PLUGINS__PAPER__API_SECRET": PLUGIN_SECRET})

    assert code == 0, output
    assert "trader:<redacted>@db.example" in output
    assert refused_code == 1
    assert "TRADEKIT_PLUGINS__PAPER__API_SECRET names no setting" in refused
    for secret in (DB_PASSWORD, PLUGIN_SECRET):
        for text_out in (output, refused):
            assert not any(secret[i : i + 8] in text_out for i in range(len(secret) - 7))


def test_config_check_toml_is_a_configuration_that_loads_to_the_same_settings(tmp_path: Path) -> None:
    text = '[scale_in]\nmax_entries_per_symbol = 3\n[plugins.paper]\nstarting_cash = "25000"\nstate_file = "p.json"\n'
    code, output = check(tmp_path, text, "--toml")
    assert code == 0, output
    again = tmp_path / "again.toml"
    again.write_text(output)
    tables = Plugins(load_entrypoints=False, env={}).settings_tables()

    reloaded = load_settings(again, env={}, plugin_settings=tables).settings
    original = load_settings(write(tmp_path, text), env={}, plugin_settings=tables).settings

    assert tomllib.loads(output)["scale_in"]["max_entries_per_symbol"] == 3
    assert reloaded.scale_in == original.scale_in
    paper = tables["paper"]
    assert paper.read_table(reloaded.plugins["paper"]) == paper.read_table(original.plugins["paper"])


def test_config_check_json_lists_the_settings_and_warnings(tmp_path: Path) -> None:
    code, output = check(tmp_path, "[reconciliation]\nbackfill_enabled = false\n", "--json")

    assert code == 0
    document = json.loads(output[output.index("{") :])
    assert document["settings"]["reconciliation"]["backfill_enabled"] is False
    assert any("backfill is off" in w for w in document["warnings"])
