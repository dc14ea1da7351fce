"""The Strategy base class: turns bars into signals and declares its scaling policy."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from tradekit.domain.market import Bar
from tradekit.domain.positions import Position
from tradekit.domain.signals import Signal
from tradekit.strategy.policy import (
    DEFAULT_SCALING_POLICY,
    InvalidPolicyError,
    StrategyScalingPolicy,
)


@attrs.frozen(kw_only=True)
class StrategyView:
    """What a strategy sees on each bar: the symbol's history so far and its position.

    ``history`` ends with the current bar (oldest first); ``position`` is the ledger's open
    position for this strategy and symbol, or None.
    """

    symbol: str
    history: Sequence[Bar]
    position: Position | None

    @property
    def bar(self) -> Bar:
        return self.history[-1]


class Strategy(abc.ABC):
    """Base class of every strategy.

    Subclasses set ``name`` (unique among installed strategies), optionally
    ``scaling_policy`` (a ``StrategyScalingPolicy`` or a mapping of its fields), and
    implement ``on_bar``. The policy is validated when the class is defined, so a bad policy
    fails at import with a message naming the field. A strategy that declares no policy
    keeps single-entry behaviour: every scale-in it would attempt is BLOCKed.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    scaling_policy: ClassVar[StrategyScalingPolicy] = DEFAULT_SCALING_POLICY

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("scaling_policy")
        if declared is not None:
            cls.scaling_policy = _coerce_policy(cls.__name__, declared)
        if inspect.isabstract(cls):
            return
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"strategy class {cls.__qualname__} must set a non-empty class attribute `name`")

    @abc.abstractmethod
    def on_bar(self, view: StrategyView) -> Sequence[Signal]:
        """Return the signals this bar produces (buy to enter or add, sell to exit)."""

    @classmethod
    def policy(cls) -> StrategyScalingPolicy:
        return cls.scaling_policy


def _coerce_policy(owner: str, declared: object) -> StrategyScalingPolicy:
    if isinstance(declared, StrategyScalingPolicy):
        return declared
    if isinstance(declared, Mapping):
        # Imported here: serialization is only needed for policies written as data.
        from tradekit.serialization import StructureError, structure

        try:
            return structure(dict(declared), StrategyScalingPolicy, what=f"{owner}.scaling_policy")
        except StructureError as exc:
            raise InvalidPolicyError(str(exc)) from exc
    raise InvalidPolicyError(
        f"{owner}.scaling_policy must be a StrategyScalingPolicy (or a mapping of its fields), "
        f"got {type(declared).__name__}"
    )
