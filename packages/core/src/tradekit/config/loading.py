"""Load Settings from a TOML file plus ``TRADEKIT_*`` environment overrides.

Environment overrides name a key path with double underscores:
``TRADEKIT_SCALE_IN__MAX_ENTRIES_PER_SYMBOL=3`` sets ``[scale_in] max_entries_per_symbol``;
``TRADEKIT_SYMBOLS=AAPL,MSFT`` sets the top-level list. Variables without a double
underscore (``TRADEKIT_CONFIG``, ``TRADEKIT_LOAD_PLUGINS`` ...) are not settings.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tradekit.config.safety import check_safety
from tradekit.config.settings import Settings, SettingsError
from tradekit.serialization import StructureError, structure

ENV_PREFIX = "TRADEKIT_"
_NON_SETTING_VARS = frozenset({"CONFIG", "DISABLED_PLUGINS", "LOAD_PLUGINS", "LOG_LEVEL", "LIVE"})
# Credentials plugins read from the environment (e.g. TRADEKIT_CCXT_BYBIT_API_KEY): never
# settings, never parsed, never echoed.
_CREDENTIAL_SUFFIXES = ("_API_KEY", "_SECRET", "_PASSWORD", "_PASSPHRASE")


@attrs.frozen
class LoadedSettings:
    settings: Settings
    warnings: tuple[str, ...]
    source: Path | None


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> LoadedSettings:
    """Read, merge, validate and safety-check the configuration.

    Raises ``SettingsError`` naming the file, the key and the problem.
    """
    env = os.environ if env is None else env
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = env[ENV_PREFIX + "CONFIG"]
    source = Path(path) if path is not None else None
    data: dict[str, Any] = _read_toml(source) if source is not None else {}
    for dotted, raw in _env_overrides(env):
        _assign(data, dotted, raw)
    try:
        settings = structure(data, Settings, what="settings")
    except StructureError as exc:
        where = f" in {source}" if source else ""
        raise SettingsError(
            f"configuration{where} is invalid:\n" + "\n".join(f"  - {p}" for p in exc.problems)
        ) from exc
    return LoadedSettings(settings, tuple(check_safety(settings)), source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"configuration file {path} is not valid TOML: {exc}") from None


def _env_overrides(env: Mapping[str, str]) -> list[tuple[tuple[str, ...], str]]:
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
        overrides.append((path, value))
    return overrides


def _assign(data: dict[str, Any], path: tuple[str, ...], raw: str) -> None:
    target: type[Any] | None = Settings
    node = data
    for i, part in enumerate(path):
        target = _field_type(target, part) if target is not None else None
        if target is _MISSING:
            raise SettingsError(
                f"{ENV_PREFIX}{'__'.join(path).upper()} names no setting: {'.'.join(path[: i + 1])} is not a known key"
            )
        if i == len(path) - 1:
            node[part] = _coerce_env(raw, target)
        else:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{'.'.join(path[: i + 1])} is a value, not a table")
            node = child


_MISSING: Any = object()


def _field_type(cls: Any, name: str) -> Any:
    origin = typing.get_origin(cls)
    if origin is dict:
        return typing.get_args(cls)[1]
    if cls is Any or not attrs.has(cls):
        return None
    hints = typing.get_type_hints(cls)
    return hints.get(name, _MISSING)


def _coerce_env(raw: str, target: Any) -> Any:
    # Environment values are strings; lists are comma-separated.
    origin = typing.get_origin(target)
    if origin is types.UnionType or origin is typing.Union:
        args = [a for a in typing.get_args(target) if a is not type(None)]
        target = args[0] if len(args) == 1 else target
        origin = typing.get_origin(target)
    if origin in (tuple, list):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw
