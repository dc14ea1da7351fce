"""The ``[plugins.ccxt]`` settings: TOML and ``TRADEKIT_PLUGINS__CCXT__...`` environment strings."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradekit.config.loading import load_settings
from tradekit.config.settings import Settings, SettingsError
from tradekit_venue_ccxt.config import CcxtVenueConfig, load_ccxt_settings
from tradekit_venue_ccxt.pairs.config import LegFailurePolicy, PairTradingConfig

TOML = """
[plugins.ccxt.venues.binanceusdm]
symbols = ["ETH/USDT:USDT"]
leverage = 2

[plugins.ccxt.venues.bybit]
timeout_ms = 5000

[plugins.ccxt.pairs]
entry_notional = "1000"
max_total_notional = "4000"
funding_hard_stop = "25"
trigger_multiplier = "1.5"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradekit.toml"
    path.write_text(text)
    return path


def test_toml_tables_become_venue_and_pair_configs(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, TOML), env={}).settings
    ccxt = load_ccxt_settings(settings)

    assert ccxt.venue("binanceusdm") == CcxtVenueConfig(venue="binanceusdm", symbols=("ETH/USDT:USDT",), leverage=2)
    assert ccxt.venue("bybit").timeout_ms == 5000
    assert ccxt.pairs is not None
    assert ccxt.pairs.entry_notional == Decimal(1000)
    assert ccxt.pairs.max_entries == 4
    assert ccxt.pairs.max_hold == timedelta(days=7)


def test_environment_strings_override_the_seed_knobs(tmp_path: Path) -> None:
    env = {
        "TRADEKIT_PLUGINS__CCXT__PAIRS__SCALE_IN_ENABLED": "true",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__MAX_ENTRIES": "3",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__TRIGGER_MULTIPLIER": "1.75",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__MIN_INTERVAL_MINUTES": "45",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__SIGNAL_MAX_AGE_MINUTES": "10",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__MAX_TOTAL_NOTIONAL": "3500",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__MAX_HOLD_DAYS": "5",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__FUNDING_HARD_STOP": "12.5",
        "TRADEKIT_PLUGINS__CCXT__PAIRS__LEG_FAILURE_POLICY": "retry_then_unwind",
        "TRADEKIT_PLUGINS__CCXT__VENUES__BYBIT__LEVERAGE": "3",
    }
    settings = load_settings(write(tmp_path, TOML), env=env).settings
    ccxt = load_ccxt_settings(settings)
    pairs = ccxt.pairs
    assert pairs is not None
    assert (pairs.max_entries, pairs.trigger_multiplier, pairs.max_total_notional) == (
        3,
        Decimal("1.75"),
        Decimal(3500),
    )
    assert pairs.min_interval == timedelta(minutes=45)
    assert pairs.signal_max_age == timedelta(minutes=10)
    assert pairs.max_hold == timedelta(days=5)
    assert pairs.funding_hard_stop == Decimal("12.5")
    assert pairs.leg_failure_policy is LegFailurePolicy.RETRY_THEN_UNWIND
    assert ccxt.venue("bybit").leverage == 3


def test_every_bad_value_is_named() -> None:
    settings = Settings(
        plugins={
            "ccxt": {
                "venues": {"kraken": {}, "bybit": {"leverage": "0", "secret": "x"}},
                "pairs": {
                    "entry_notional": "1000",
                    "max_total_notional": "4000",
                    "funding_hard_stop": "10",
                    "trigger_multiplier": 1.5,
                },
                "pair": {},
            }
        }
    )
    with pytest.raises(SettingsError) as raised:
        load_ccxt_settings(settings)
    message = str(raised.value)
    assert "kraken" in message
    assert "binanceusdm, bybit" in message
    assert "secret" in message
    assert "float 1.5" in message
    assert "unknown key(s) in [plugins.ccxt]: pair" in message


def test_money_limits_have_no_default() -> None:
    settings = Settings(plugins={"ccxt": {"pairs": {"max_entries": "4"}}})
    with pytest.raises(SettingsError) as raised:
        load_ccxt_settings(settings)
    for key in ("entry_notional", "max_total_notional", "funding_hard_stop"):
        assert key in str(raised.value)


@pytest.mark.parametrize(
    ("knobs", "complaint"),
    [
        ({"trigger_multiplier": Decimal(1)}, "greater than 1"),
        ({"max_entries": 1}, "needs max_entries >= 2"),
        ({"max_total_notional": Decimal(500)}, "below entry_notional"),
        ({"funding_hard_stop": Decimal(0)}, "positive amount"),
    ],
)
def test_unsafe_pair_config_is_refused(knobs: dict[str, object], complaint: str) -> None:
    values: dict[str, object] = {
        "entry_notional": Decimal(1000),
        "max_total_notional": Decimal(4000),
        "funding_hard_stop": Decimal(10),
    }
    values.update(knobs)
    with pytest.raises(SettingsError, match=complaint):
        PairTradingConfig(**values)  # type: ignore[arg-type]


def test_scale_in_off_means_one_entry_and_the_stop_loss_applies() -> None:
    config = PairTradingConfig(
        entry_notional=Decimal(1000),
        max_total_notional=Decimal(1000),
        funding_hard_stop=Decimal(10),
        scale_in_enabled=False,
        max_entries=1,
        stop_loss_pct=Decimal(1),
    )
    assert config.effective_max_entries == 1
    assert config.mechanical_stop_active
    assert not config.scaling_policy().allow_scaling
    on = PairTradingConfig(
        entry_notional=Decimal(1000),
        max_total_notional=Decimal(4000),
        funding_hard_stop=Decimal(10),
        stop_loss_pct=Decimal(1),
    )
    assert not on.mechanical_stop_active
    assert on.scaling_policy().min_time_between_entries == on.min_interval


def test_api_url_must_be_a_bare_origin() -> None:
    with pytest.raises(SettingsError, match="bare http"):
        CcxtVenueConfig(venue="bybit", api_url="127.0.0.1:8080/v5")
