"""Load Settings from a TOML file plus ``TRADEKIT_*`` environment overrides.

Environment overrides name a key path with double underscores:
``TRADEKIT_SCALE_IN__MAX_ENTRIES_PER_SYMBOL=3`` sets ``[scale_in] max_entries_per_symbol``;
``TRADEKIT_SYMBOLS=AAPL,MSFT`` sets the top-level list. Variables without a double
underscore (``TRADEKIT_CONFIG``, ``TRADEKIT_LOAD_PLUGINS`` ...) are not settings. Every
value is text there: a boolean is spelled ``true`` / ``false`` or ``1`` / ``0`` (any case),
a list comma-separated.

Plugin tables (``[plugins.<name>]``) are checked against the ``PluginSettings`` the loaded
plugins declare (``plugin_settings``): an unknown section, an unknown key, a wrong type or
an invalid value is an error at load, like one in tradekit's own tables.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections import abc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tradekit.config.plugin_settings import PluginSettings
from tradekit.config.safety import check_safety
from tradekit.config.settings import Settings, SettingsError
from tradekit.serialization import EnvText, StructureError, env_boolean, structure

ENV_PREFIX = "TRADEKIT_"
_NON_SETTING_VARS = frozenset({"CONFIG", "DISABLED_PLUGINS", "LOAD_PLUGINS", "LOG_LEVEL", "LOG_FILE", "LIVE"})
# Credentials plugins read from the environment (e.g. TRADEKIT_CCXT_BYBIT_API_KEY): never
# settings, never parsed, never echoed.
_CREDENTIAL_SUFFIXES = ("_API_KEY", "_SECRET", "_PASSWORD", "_PASSPHRASE")


@attrs.frozen
class LoadedSettings:
    settings: Settings
    warnings: tuple[str, ...]
    source: Path | None


def load_settings(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    plugin_settings: Mapping[str, PluginSettings] | None = None,
) -> LoadedSettings:
    """Read, merge, validate and safety-check the configuration.

    ``plugin_settings`` (``Plugins.settings_tables()``; the CLI always passes it) declares
    which ``[plugins.<name>]`` tables exist and what they hold; without it plugin tables are
    kept unchecked for their plugins to read. Raises ``SettingsError`` naming the file, the
    key, the value and what is allowed.
    """
    env = os.environ if env is None else env
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = env[ENV_PREFIX + "CONFIG"]
    source = Path(path) if path is not None else None
    where = f" in {source}" if source else ""
    data: dict[str, Any] = _read_toml(source) if source is not None else {}
    tables = dict(plugin_settings or {})
    for name, dotted, raw in _env_overrides(env):
        _assign(data, name, dotted, raw, tables)
    try:
        settings = structure(data, Settings, what="settings")
    except StructureError as exc:
        raise SettingsError(_invalid(where, exc.problems)) from exc
    if plugin_settings is not None:
        problems = _plugin_problems(settings, tables)
        if problems:
            raise SettingsError(_invalid(where, problems))
    return LoadedSettings(settings, tuple(check_safety(settings)), source)


def _invalid(where: str, problems: list[str]) -> str:
    return f"configuration{where} is invalid:\n" + "\n".join(f"  - {p}" for p in problems)


def _plugin_problems(settings: Settings, tables: Mapping[str, PluginSettings]) -> list[str]:
    problems: list[str] = []
    for name, table in sorted(settings.plugins.items()):
        declared = tables.get(name)
        if declared is None:
            known = ", ".join(sorted(tables)) or "none"
            problems.append(
                f"[plugins.{name}] is not read by any loaded plugin (plugin sections: {known}); "
                "remove it, or install / enable the plugin that reads it"
            )
            continue
        try:
            declared.read_table(table)
        except StructureError as exc:
            problems.extend(exc.problems)
        except SettingsError as exc:
            problems.extend(_items(str(exc)))
    return problems


def _items(message: str) -> list[str]:
    # A plugin's own "the [plugins.x] settings are invalid:" list joins the load's list.
    lines = message.splitlines()
    if len(lines) > 1 and lines[0].endswith(":"):
        return [line.strip().removeprefix("- ") for line in lines[1:]]
    return [message]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"configuration file {path} is not valid TOML: {exc}") from None


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, tuple[str, ...], str]]:
    overrides = []
    top_level = {f.name for f in attrs.fields(Settings)}
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :]
        if key in _NON_SETTING_VARS or ("__" not in key and key.endswith(_CREDENTIAL_SUFFIXES)):
            continue
        path = tuple(part.lower() for part in key.split("__"))
        if len(path) == 1 and path[0] not in top_level:
            raise SettingsError(
                f"environment variable {name} is not a setting; nested keys use a double "
                f"underscore, e.g. TRADEKIT_SCALE_IN__ENABLED"
            )
        overrides.append((name, path, value))
    return overrides


def _assign(
    data: dict[str, Any], name: str, path: tuple[str, ...], raw: str, tables: Mapping[str, PluginSettings]
) -> None:
    target: Any = Settings
    node = data
    for i, part in enumerate(path):
        if path[:i] == ("plugins",) and part in tables:
            target = tables[part].settings_type
        else:
            target = _field_type(target, part) if target is not None else None
        if target is _MISSING:
            raise SettingsError(f"{name} names no setting: {'.'.join(path[: i + 1])} is not a known key")
        if i == len(path) - 1:
            node[part] = _coerce_env(name, raw, target)
        else:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{name}: {'.'.join(path[: i + 1])} is a value, not a table")
            node = child


_MISSING: Any = object()


def _field_type(cls: Any, name: str) -> Any:
    cls = _unwrap_optional(cls)
    origin = typing.get_origin(cls)
    if origin in (dict, Mapping, abc.Mapping):
        return typing.get_args(cls)[1]
    if cls is Any or not attrs.has(cls):
        return None
    hints = typing.get_type_hints(cls)
    return hints.get(name, _MISSING)


def _unwrap_optional(target: Any) -> Any:
    origin = typing.get_origin(target)
    if origin is types.UnionType or origin is typing.Union:
        args = [a for a in typing.get_args(target) if a is not type(None)]
        return args[0] if len(args) == 1 else target
    return target


def _coerce_env(name: str, raw: str, target: Any) -> Any:
    # Environment values are text: lists are comma-separated, booleans true/false or 1/0.
    target = _unwrap_optional(target)
    origin = typing.get_origin(target)
    if origin in (tuple, list, frozenset, set) or target in (tuple, list, frozenset, set):
        return [EnvText(item.strip()) for item in raw.split(",") if item.strip()]
    if target is bool:
        value = env_boolean(raw)
        if value is None:
            raise SettingsError(
                f"{name}={raw!r} is not a boolean: in the environment a boolean is true or false (or 1 / 0)"
            )
        return value
    return EnvText(raw)
