"""Configuration: Settings, loading from TOML and the environment, and safety checks."""

from tradekit.config.loading import LoadedSettings, load_settings
from tradekit.config.plugin_settings import PluginSettings
from tradekit.config.safety import UNSAFE_RULES, check_safety
from tradekit.config.settings import (
    AllocationSettings,
    ExitSettings,
    FreshnessSettings,
    GuardSettings,
    LedgerSettings,
    MissedWindow,
    NotificationEvent,
    NotificationSettings,
    OrderGuardSettings,
    ReconciliationSettings,
    SafetySettings,
    ScaleInSettings,
    ScannerSettings,
    Settings,
    SettingsError,
    TierSettings,
)

__all__ = [
    "UNSAFE_RULES",
    "AllocationSettings",
    "ExitSettings",
    "FreshnessSettings",
    "GuardSettings",
    "LedgerSettings",
    "LoadedSettings",
    "MissedWindow",
    "NotificationEvent",
    "NotificationSettings",
    "OrderGuardSettings",
    "PluginSettings",
    "ReconciliationSettings",
    "SafetySettings",
    "ScaleInSettings",
    "ScannerSettings",
    "Settings",
    "SettingsError",
    "TierSettings",
    "check_safety",
    "load_settings",
]
