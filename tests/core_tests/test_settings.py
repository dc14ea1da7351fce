"""Settings load from TOML plus TRADEKIT_* overrides, with clear errors and safety checks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.config import Settings, SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradekit.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_source_write_ups() -> None:
    s = load_settings(env={}).settings
    assert s.scale_in.enabled is True
    assert s.scale_in.max_entries_per_symbol == 4
    assert s.scale_in.min_time_between_entries_minutes == 1440
    assert s.scale_in.min_add_pct_above_last_entry == Decimal(0)
    assert s.scale_in.add_on_confidence_threshold == 5
    assert s.allocation.max_allocation_per_symbol_pct == Decimal(5)
    assert s.allocation.max_position_pct_of_account == Decimal(25)
    assert s.allocation.min_order_notional == Decimal(10)
    assert s.freshness.max_gap_pct == Decimal(2)
    assert s.freshness.max_signal_age_hours == Decimal(24)
    assert s.orders.daily_order_limit == 10
    assert s.orders.order_cooldown_minutes == 1440
    assert (s.exits.window_start_minutes, s.exits.window_end_minutes) == (5, 30)
    assert s.reconciliation.backfill_enabled
    assert s.reconciliation.mark_unknown_closed
    assert s.scanner.baseline_symbols == ("SPY", "QQQ")


def test_toml_values_and_tiers_are_structured(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
symbols = ["AAPL", "MSFT"]
[scale_in]
max_entries_per_symbol = 3
[allocation]
tiered = true
min_order_notional = "25"
[allocation.tiers.TIER1]
allocation_pct = "40"
symbols = ["SPY", "QQQ"]
[allocation.tiers.TIER3]
allocation_pct = "30"
cap_pct = "33"
symbols = ["COST"]
""",
    )
    s = load_settings(path, env={}).settings
    assert s.symbols == ("AAPL", "MSFT")
    assert s.scale_in.max_entries_per_symbol == 3
    assert s.allocation.min_order_notional == Decimal(25)
    assert s.allocation.tier_of("COST") == "TIER3"
    assert s.allocation.tiers["TIER3"].effective_cap_pct == Decimal(33)
    assert s.allocation.tiers["TIER1"].effective_cap_pct == Decimal(40)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[scale_in]\nmax_entries_per_symbol = 3\n")
    env = {
        "TRADEKIT_SCALE_IN__MAX_ENTRIES_PER_SYMBOL": "2",
        "TRADEKIT_SCALE_IN__ENABLED": "false",
        "TRADEKIT_SYMBOLS": "KO, PFE",
        "TRADEKIT_FRESHNESS__MAX_GAP_PCT": "1.5",
        "TRADEKIT_LOAD_PLUGINS": "examples",
    }
    s = load_settings(path, env=env).settings
    assert s.scale_in.max_entries_per_symbol == 2
    assert s.scale_in.enabled is False
    assert s.symbols == ("KO", "PFE")
    assert s.freshness.max_gap_pct == Decimal("1.5")


def test_credential_variables_are_not_read_as_settings() -> None:
    env = {"TRADEKIT_CCXT_BYBIT_API_KEY": "k", "TRADEKIT_CCXT_BYBIT_SECRET": "s", "TRADEKIT_LIVE": "1"}
    assert load_settings(env=env).settings == Settings()


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[orders]\ndaily_order_limit = 3\n")
    assert load_settings(env={"TRADEKIT_CONFIG": str(path)}).settings.orders.daily_order_limit == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[scale_in]\nmax_entrie = 3\n", r"max_entrie.*settings\.scale_in"),
        (
            "[scale_in]\nmax_entries_per_symbol = 'four'\n",
            r"expected an integer.*max_entries_per_symbol",
        ),
        ("[allocation]\nmin_order_notional = 10.5\n", r"float 10.5 \(quote it\)"),
        (
            '[allocation]\nmax_allocation_per_symbol_pct = "-1"\n',
            r"max_allocation_per_symbol_pct must be a percentage",
        ),
        ('[freshness]\nmax_gap_pct = "nan"\n', r"finite"),
        (
            "[exits]\nwindow_start_minutes = 30\nwindow_end_minutes = 5\n",
            r"window_end_minutes \(5\) must be after",
        ),
        ("[scale_in\n", r"not valid TOML"),
        ("[allocation]\ntiered = true\n", r"needs at least one"),
    ],
)
def test_malformed_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(write(tmp_path, text), env={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRADEKIT_SCALE_IN__MAX_ENTRIES": "2"}, "scale_in.max_entries is not a known key"),
        ({"TRADEKIT_MAXENTRIES": "2"}, "is not a setting"),
        ({"TRADEKIT_SCALE_IN__ENABLED": "maybe"}, "TRADEKIT_SCALE_IN__ENABLED=.maybe. is not a boolean"),
    ],
)
def test_bad_environment_override_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            '[allocation]\nmax_allocation_per_symbol_pct = "12"\n',
            "allocation.max_allocation_per_symbol_pct",
        ),
        ("[scale_in]\nadd_on_confidence_threshold = 3\n", "scale_in.add_on_confidence_threshold"),
        (
            '[allocation]\nmax_position_pct_of_account = "40"\n',
            "allocation.max_position_pct_of_account",
        ),
    ],
)
def test_unsafe_value_is_refused_unless_acknowledged(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(SettingsError, match=rf"unsafe configuration refused:\n  - {key}"):
        load_settings(write(tmp_path, text), env={})
    loaded = load_settings(write(tmp_path, text + f'\n[safety]\nacknowledge = ["{key}"]\n'), env={})
    assert any(w.startswith(f"{key}: acknowledged unsafe value") for w in loaded.warnings)


def test_acknowledging_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown key"):
        load_settings(write(tmp_path, '[safety]\nacknowledge = ["scale_in.whatever"]\n'), env={})


def test_disabling_backfill_is_allowed_but_warned() -> None:
    loaded = load_settings(env={"TRADEKIT_RECONCILIATION__BACKFILL_ENABLED": "false"})
    assert loaded.settings.reconciliation.backfill_enabled is False
    assert any(w.startswith("reconciliation.backfill_enabled") for w in loaded.warnings)


def test_settings_object_defaults_need_no_file() -> None:
    assert Settings().ledger.url.startswith("sqlite:///")
