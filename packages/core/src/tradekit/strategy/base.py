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

# What a strategy sees unless it says otherwise: about a year of daily bars (the example
# strategies' longest lookback is a 200-bar average).
DEFAULT_HISTORY_BARS = 250
MAX_HISTORY_BARS = 100_000


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

    ``history_bars`` is how many completed bars ``on_bar`` sees, the current one included:
    its longest lookback with any warm-up. The live trader fetches that many from its feed
    and the replay shows no more, so a strategy sees the same bars in both (an indicator
    read through ``tradekit.strategy.history.indicator`` must not look further back either:
    the replay computes it over the whole series, the live trader over these bars).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    scaling_policy: ClassVar[StrategyScalingPolicy] = DEFAULT_SCALING_POLICY
    history_bars: ClassVar[int] = DEFAULT_HISTORY_BARS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("scaling_policy")
        if declared is not None:
            cls.scaling_policy = _coerce_policy(cls.__name__, declared)
        bars = cls.__dict__.get("history_bars")
        if bars is not None and (
            isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_HISTORY_BARS
        ):
            raise TypeError(
                f"{cls.__qualname__}.history_bars must be a whole number of bars from 1 to "
                f"{MAX_HISTORY_BARS:,}, got {bars!r}"
            )
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
