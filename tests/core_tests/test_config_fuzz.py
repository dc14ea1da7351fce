"""Any configuration document either loads, or fails with ``SettingsError``: never another exception.

And one that loads is usable: every value a later step derives from it (durations, the
exit window, the calendar, the paper account) can be computed, so nothing that passed
``config check`` crashes a run.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit.config import Settings, SettingsError, load_settings
from tradekit.exits.calendar import TradingCalendar
from tradekit.plugins import Plugins

TABLES = Plugins(load_entrypoints=False, env={}).settings_tables()


def _keys(cls: Any) -> list[str]:
    return [f.name for f in attrs.fields(cls)]


SECTIONS = {f.name: f.type for f in attrs.fields(Settings)}
KNOWN_KEYS = {
    "scale_in": [
        "enabled",
        "max_entries_per_symbol",
        "min_time_between_entries_minutes",
        "add_on_confidence_threshold",
    ],
    "allocation": ["max_allocation_per_symbol_pct", "position_size_pct", "min_order_notional", "tiered", "tiers"],
    "freshness": ["max_signal_age_hours", "max_gap_pct"],
    "orders": ["daily_order_limit", "order_cooldown_minutes", "one_signal_per_symbol_per_day"],
    "reconciliation": ["backfill_enabled", "mark_unknown_closed"],
    "exits": ["two_phase_enabled", "window_start_minutes", "window_end_minutes", "calendar"],
    "scanner": ["enabled", "top_n", "baseline_symbols", "candidates_file"],
    "ledger": ["url"],
    "safety": ["acknowledge"],
    "paper": ["starting_cash", "slippage_bps", "fill_slices", "fractional_trading", "state_file", "tradable_symbols"],
}

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["0", "1", "5", "24", "1e30", "-1", "nan", "inf", "1e-999999", "9e999999", "yes", "XNYS", "NOPE"]),
    st.sampled_from(["sqlite:///x.db", "ledger.db", "mysql://h/d", "postgresql+psycopg://h/d", "::", ""]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(KNOWN_KEYS)), max_size=4, unique=True)):
        keys = KNOWN_KEYS[section] + ["typo_key"]
        table = draw(st.dictionaries(st.sampled_from(keys), values, max_size=4))
        if section == "paper":
            document.setdefault("plugins", {})["paper"] = table
        else:
            document[section] = table
    if draw(st.booleans()):
        document[draw(st.sampled_from(["symbols", "plugins", "unknown"]))] = draw(values)
    return document


def _derived(settings: Settings) -> None:
    # Everything computed from the settings after load: each property of each section.
    for section in (getattr(settings, name) for name in SECTIONS):
        if not attrs.has(type(section)):
            continue
        for name, member in inspect.getmembers(type(section)):
            if isinstance(member, property):
                value = getattr(section, name)
                assert not isinstance(value, timedelta) or value >= timedelta(0)
    TradingCalendar(settings.exits.calendar)
    for name, table in settings.plugins.items():
        TABLES[name].read_table(table)


def _loads_or_refuses(path: Path, env: dict[str, str]) -> None:
    try:
        loaded = load_settings(path, env=env, plugin_settings=TABLES)
    except SettingsError:
        return
    _derived(loaded.settings)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=documents())
def test_any_document_loads_usable_settings_or_fails_with_settings_error(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "tradekit.toml"
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):
        return  # not representable in TOML (e.g. a NaN key); the raw-text test covers odd bytes
    path.write_text(text)

    _loads_or_refuses(path, {})


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.text(max_size=200))
def test_any_text_loads_or_fails_with_settings_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tradekit.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    _loads_or_refuses(path, {})


@given(
    env=st.dictionaries(
        st.sampled_from(
            [
                "TRADEKIT_SCALE_IN__ENABLED",
                "TRADEKIT_FRESHNESS__MAX_SIGNAL_AGE_HOURS",
                "TRADEKIT_EXITS__CALENDAR",
                "TRADEKIT_SYMBOLS",
                "TRADEKIT_PLUGINS__PAPER__STARTING_CASH",
                "TRADEKIT_PLUGINS__PAPER__FRACTIONAL_TRADING",
                "TRADEKIT_PLUGINS__PAPER__TRADABLE_SYMBOLS",
                "TRADEKIT_PLUGINS__NOPE__X",
                "TRADEKIT_SCALE_IN",
                "TRADEKIT_ORDERS__DAILY_ORDER_LIMIT",
            ]
        ),
        st.text(max_size=10),
        max_size=4,
    )
)
def test_any_environment_loads_usable_settings_or_fails_with_settings_error(env: dict[str, str]) -> None:
    env = {k: v.replace("\x00", "") for k, v in env.items()}
    try:
        loaded = load_settings(env=env, plugin_settings=TABLES)
    except SettingsError:
        return
    _derived(loaded.settings)


def test_the_derived_values_of_the_largest_accepted_settings_are_computable() -> None:
    loaded = load_settings(
        env={
            "TRADEKIT_FRESHNESS__MAX_SIGNAL_AGE_HOURS": "8760",
            "TRADEKIT_ORDERS__ORDER_COOLDOWN_MINUTES": "525600",
            "TRADEKIT_SCALE_IN__MIN_TIME_BETWEEN_ENTRIES_MINUTES": "525600",
        },
        plugin_settings=TABLES,
    )

    assert loaded.settings.freshness.max_signal_age == timedelta(hours=8760)
    assert loaded.settings.orders.order_cooldown == timedelta(minutes=525600)
    assert loaded.settings.allocation.min_order_notional == Decimal(10)
