"""The search space: which strategy parameters and scaling-policy fields a search may change.

A dimension is named ``policy.<field>`` (a ``StrategyScalingPolicy`` field) or
``strategy.<attribute>`` (a public class attribute of the strategy holding an int, float,
Decimal, bool or str). Each is declared as a mapping, in the ``--space`` TOML file or in
the strategy class's ``search_space``:

- ``{ low = 2, high = 6 }`` (``step``, ``log`` optional): a range; its type is the field's
  (an int, or a Decimal sampled on the ``step`` grid, or a float);
- ``{ choices = ["pyramid", "average_down"] }``: a set of values.

``check_space`` refuses, before any trial runs, a space the policy's own validation would
refuse somewhere: every combination of the policy dimensions' ends and choices is built
into a policy, so ``max_entries = { low = 1, high = 4 }`` on a scaling strategy is named as
the bad dimension up front instead of failing trial after trial.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import attrs

from tradekit.strategy.base import Strategy
from tradekit.strategy.policy import InvalidPolicyError, StrategyScalingPolicy

POLICY = "policy"
STRATEGY = "strategy"
# Not parameters: what every strategy class carries.
_RESERVED = frozenset({"name", "description", "scaling_policy", "search_space"})
# Beyond this many corner combinations only each dimension on its own is checked.
_MAX_CORNERS = 4096


class SpaceError(ValueError):
    """A search space that cannot be searched; the message names the dimension."""


@attrs.frozen(kw_only=True)
class Dimension:
    """One searched parameter: a range (``low``..``high``) or a set of ``choices``."""

    name: str  # "policy.max_entries", "strategy.exit_length"
    # What the field holds: "int", "decimal", "float", "days" (a timedelta in whole days),
    # "bool", "str" or "enum"; a dimension with ``choices`` takes one of them.
    kind: str
    low: Decimal | None = None
    high: Decimal | None = None
    step: Decimal | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    @property
    def target(self) -> str:
        return self.name.partition(".")[0]

    @property
    def field(self) -> str:
        return self.name.partition(".")[2]

    def grid(self) -> list[Any]:
        """Every value this dimension can take (what the grid sampler runs through)."""
        if self.categorical:
            return list(self.choices)
        assert self.low is not None
        assert self.high is not None
        if self.kind == "float" and self.step is None:
            raise SpaceError(f"{self.name}: the grid sampler needs a step for a float range")
        step = self.step or Decimal(1)
        count = int((self.high - self.low) / step) + 1
        values = [self.low + step * i for i in range(count)]
        return [int(v) if self.kind in ("int", "days") else float(v) for v in values]

    def ends(self) -> list[Any]:
        """The values validation tries: the two ends of a range, every choice."""
        if self.categorical:
            return list(self.choices)
        assert self.low is not None
        assert self.high is not None
        if self.kind in ("int", "days"):
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]

    def value(self, sampled: Any) -> Any:
        """The parameter's value as the policy or the strategy holds it, from what Optuna sampled."""
        if self.kind in ("int", "bool", "str", "enum"):
            return sampled
        if self.kind == "days":
            return timedelta(days=int(sampled))
        if self.kind == "decimal" and self.categorical:
            return Decimal(str(sampled))
        if self.kind == "decimal":
            assert self.step is not None
            # Exact on the step's grid: 0.1 + 0.2 sampled as 0.30000000000000004 is 0.3.
            return Decimal(repr(float(sampled))).quantize(self.step)
        return float(sampled)


def parse_space(raw: Mapping[str, Any], strategy: type[Strategy]) -> list[Dimension]:
    """Dimensions from ``{"policy.max_entries": {...}, ...}`` or the TOML file's tables
    (``{"policy": {"max_entries": {...}}, "strategy": {...}}``), checked against ``strategy``."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in (POLICY, STRATEGY) and isinstance(value, Mapping):
            flat.update({f"{key}.{name}": spec for name, spec in value.items()})
        else:
            flat[key] = value
    return [_dimension(name, spec, strategy) for name, spec in sorted(flat.items())]


def flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The space file's tables (``[policy]``, ``[strategy]``) as ``{"policy.field": spec}``."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in (POLICY, STRATEGY) or not isinstance(value, Mapping):
            raise SpaceError(f"{key}: a search space file holds only [policy] and [strategy] tables")
        flat.update({f"{key}.{name}": spec for name, spec in value.items()})
    return flat


def declared_space(strategy: type[Strategy]) -> dict[str, Any]:
    """The search space the strategy class declares (``search_space``), or an empty one."""
    declared = getattr(strategy, "search_space", None) or {}
    if not isinstance(declared, Mapping):
        raise SpaceError(f"{strategy.__name__}.search_space must be a mapping of dimension name to range or choices")
    return dict(declared)


def _dimension(name: str, spec: Any, strategy: type[Strategy]) -> Dimension:
    target, _, field = name.partition(".")
    if target not in (POLICY, STRATEGY) or not field:
        raise SpaceError(f"{name}: a dimension is named policy.<field> or strategy.<attribute>")
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{name}: give {{ low = .., high = .. }} or {{ choices = [..] }}, not {spec!r}")
    unknown = set(spec) - {"low", "high", "step", "log", "choices"}
    if unknown:
        raise SpaceError(f"{name}: unknown key(s) {', '.join(sorted(unknown))} (use low, high, step, log or choices)")
    kind = _policy_kind(name, field) if target == POLICY else _strategy_kind(name, field, strategy)
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise SpaceError(f"{name}: choices cannot be mixed with a range")
        return _choice(name, kind, field, spec["choices"], target)
    if kind in ("bool", "str", "enum"):
        raise SpaceError(f"{name} takes {kind} values: give {{ choices = [..] }}")
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{name}: a range needs both low and high")
    low, high = _number(name, "low", spec["low"]), _number(name, "high", spec["high"])
    step = _number(name, "step", spec["step"]) if "step" in spec else None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{name}: log must be true or false")
    if low > high:
        raise SpaceError(f"{name}: low {low} is above high {high}")
    if step is not None and step <= 0:
        raise SpaceError(f"{name}: step must be positive, got {step}")
    if kind in ("int", "days"):
        if low != low.to_integral_value() or high != high.to_integral_value():
            raise SpaceError(f"{name} is a whole number: low and high must be integers")
        step = step or Decimal(1)
        if step != step.to_integral_value():
            raise SpaceError(f"{name} is a whole number: its step must be an integer")
    if kind == "decimal" and step is None:
        raise SpaceError(f'{name} is a Decimal: give a step (e.g. step = "0.5"), its values are exact')
    if step is not None and (high - low) % step != 0:
        raise SpaceError(f"{name}: the range {low}..{high} is not a whole number of steps of {step}")
    if log and (step not in (None, Decimal(1)) or low <= 0):
        raise SpaceError(f"{name}: a log range needs low > 0 and no step")
    return Dimension(name=name, kind=kind, low=low, high=high, step=step, log=log)


def _choice(name: str, kind: str, field: str, values: Any, target: str) -> Dimension:
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise SpaceError(f"{name}: choices must be a non-empty list")
    allowed: dict[str, tuple[type, ...]] = {
        "bool": (bool,),
        "str": (str,),
        "enum": (str,),
        "decimal": (str, int),
        "int": (int,),
        "days": (int,),
        "float": (int, float),
    }
    for value in values:
        if not isinstance(value, allowed[kind]) or (kind != "bool" and isinstance(value, bool)):
            raise SpaceError(f"{name}: choice {value!r} is not a {kind} value")
        if kind == "decimal":
            _number(name, "a choice", value)
    if kind == "enum" and target == POLICY:
        enum = _policy_types()[field]
        known = [member.value for member in enum]
        for value in values:
            if value not in known:
                raise SpaceError(f"{name}: {value!r} is not one of {', '.join(known)}")
    if len(set(values)) != len(values):
        raise SpaceError(f"{name}: a choice is repeated")
    return Dimension(name=name, kind=kind, choices=tuple(values))


def _number(name: str, key: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpaceError(f"{name}: {key} must be a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise SpaceError(f"{name}: {key} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise SpaceError(f"{name}: {key} must be finite")
    return number


def _policy_types() -> dict[str, Any]:
    hints = typing.get_type_hints(StrategyScalingPolicy)
    return {f.name: _unwrap_optional(hints[f.name]) for f in attrs.fields(StrategyScalingPolicy)}


def _unwrap_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and type(None) in typing.get_args(hint) else hint


def _policy_kind(name: str, field: str) -> str:
    types = _policy_types()
    if field not in types:
        raise SpaceError(f"{name}: StrategyScalingPolicy has no field {field!r} (fields: {', '.join(types)})")
    hint = types[field]
    if hint is bool:
        return "bool"
    if hint is int:
        return "int"
    if hint is Decimal:
        return "decimal"
    if hint is timedelta:
        return "days"
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "enum"
    raise SpaceError(f"{name}: a field of type {hint} cannot be searched")  # pragma: no cover - every field is above


def _strategy_kind(name: str, field: str, strategy: type[Strategy]) -> str:
    if field.startswith("_") or field in _RESERVED:
        raise SpaceError(f"{name}: {field!r} is not a strategy parameter")
    if not hasattr(strategy, field):
        raise SpaceError(f"{name}: strategy {strategy.name!r} has no class attribute {field!r} to tune")
    current = getattr(strategy, field)
    for kind, types in (("bool", bool), ("int", int), ("decimal", Decimal), ("float", float), ("str", str)):
        if isinstance(current, types):
            return kind
    held = type(current).__name__
    raise SpaceError(f"{name}: {strategy.name}.{field} holds a {held}; only numbers, booleans and strings can be tuned")


def policy_with(base: StrategyScalingPolicy, values: Mapping[str, Any]) -> StrategyScalingPolicy:
    """``base`` with the policy fields in ``values`` (field name -> value as the policy holds it)."""
    types = _policy_types()
    changes = {}
    for field, value in values.items():
        hint = types[field]
        if isinstance(hint, type) and issubclass(hint, Enum):
            value = hint(value)
        elif hint is Decimal and not isinstance(value, Decimal):
            value = Decimal(str(value))
        changes[field] = value
    return attrs.evolve(base, **changes)


def check_space(dimensions: Sequence[Dimension], strategy: type[Strategy]) -> None:
    """Refuse a space whose policy dimensions the policy's validation refuses somewhere.

    Every combination of the policy dimensions' ends (a range's low and high, every choice)
    is built into the strategy's policy; the first refused one is reported with the
    dimension(s) it comes from and the policy's own reason.
    """
    policy_dims = [d for d in dimensions if d.target == POLICY]
    if not policy_dims:
        return
    base = strategy.policy()
    for dim in policy_dims:
        for value in dim.ends():
            _try_policy(base, {dim: value}, single=True)
    corners = 1
    for dim in policy_dims:
        corners *= len(dim.ends())
    if corners > _MAX_CORNERS or len(policy_dims) < 2:
        return
    for combo in itertools.product(*(d.ends() for d in policy_dims)):
        _try_policy(base, dict(zip(policy_dims, combo, strict=True)), single=False)


def _try_policy(base: StrategyScalingPolicy, values: Mapping[Dimension, Any], *, single: bool) -> None:
    try:
        policy_with(base, {d.field: d.value(v) for d, v in values.items()})
    except (InvalidPolicyError, ValueError, TypeError) as exc:
        where = ", ".join(f"{d.name} = {_show(d, v)}" for d, v in values.items())
        scope = "" if single else " (together)"
        raise SpaceError(
            f"the search space reaches a scaling policy the strategy's validation refuses: {where}{scope}: {exc}"
        ) from None


def _show(dim: Dimension, value: Any) -> str:
    if dim.categorical:
        return repr(value)
    end = "low" if dim.low is not None and Decimal(str(value)) == dim.low else "high"
    return f"{value} (the {end} end of its range)"
