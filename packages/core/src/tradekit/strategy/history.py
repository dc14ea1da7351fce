"""A symbol's bar history as a strategy sees it, with indicators computed once per series.

A replay hands each strategy call a ``History``: a view of the symbol's bars up to the
current one, without copying the list. Indicators asked for through ``indicator()`` are
computed once over the whole series and then looked up by index, the way a vectorized
backtester precomputes its columns, so a strategy costs the same per bar whether its moving
average spans 20 bars or 200.

The contract that keeps this honest: an indicator's ``compute`` must be *causal* — the value
at index ``i`` may depend on ``bars[0..i]`` only. Computed over the whole series, a causal
column holds at index ``i`` exactly what it would hold computed over the history that ends
at ``i`` (the property test in ``tests/core_tests/test_history.py`` checks the built-in ones).
On a plain sequence (a live run's bars) ``indicator()`` computes over what it is given and
returns the last value.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from tradekit.domain.market import Bar

log = logging.getLogger(__name__)

T = TypeVar("T")
Column = Callable[[Sequence[Bar]], Sequence[T]]


class History(Sequence[Bar]):
    """A symbol's bars up to (and including) the current one, oldest first: the last of them
    from ``start`` (a strategy sees its ``history_bars``, see ``History.last``)."""

    __slots__ = ("_bars", "_cache", "_end", "_start")

    def __init__(
        self, bars: list[Bar], end: int, cache: dict[Hashable, Sequence[object]] | None = None, start: int = 0
    ) -> None:
        self._bars = bars
        self._end = end
        self._start = start
        # Shared by every History over the same series (the runner passes one per symbol).
        self._cache: dict[Hashable, Sequence[object]] = {} if cache is None else cache

    def __len__(self) -> int:
        return self._end - self._start

    def __iter__(self) -> Iterator[Bar]:
        return itertools.islice(self._bars, self._start, self._end)

    @overload
    def __getitem__(self, index: int) -> Bar: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Bar]: ...

    def __getitem__(self, index: int | slice) -> Bar | Sequence[Bar]:
        first = self._start
        if isinstance(index, slice):
            lo, hi, step = index.indices(self._end - first)
            if step == 1:
                return self._bars[first + lo : first + max(lo, hi)]
            return [self._bars[first + i] for i in range(lo, hi, step)]
        if index < 0:
            index += self._end - first
        if not 0 <= index < self._end - first:
            raise IndexError("bar index out of range")
        return self._bars[first + index]

    def last(self, count: int) -> History:
        """The same view cut to its last ``count`` bars (the columns stay the whole series')."""
        return History(self._bars, self._end, self._cache, max(self._start, self._end - count))

    def count_since(self, moment: datetime) -> int:
        """How many bars of the view are stamped at or after ``moment`` (a bisection)."""
        times = self.column(BAR_TIMES, bar_times)
        return self._end - bisect.bisect_left(times, moment, self._start, self._end)

    def column(self, key: Hashable, compute: Column[T]) -> Sequence[T]:
        """The whole series' column for ``key``, computed on first use."""
        found = self._cache.get(key)
        if found is None:
            found = compute(self._bars)
            if len(found) != len(self._bars):
                raise ValueError(f"indicator {key!r} returned {len(found)} values for {len(self._bars)} bars")
            self._cache[key] = found
        return found  # type: ignore[return-value]

    def at_current(self, key: Hashable, compute: Column[T]) -> T:
        value = self.column(key, compute)[self._end - 1]
        if self._start == 0:
            return value
        # A view cut to the strategy's ``history_bars``: the live trader computes the
        # indicator over those bars alone. The whole series' value is checked against that
        # on the first calls that know a value and on every ``_RECHECK``-th call after; an
        # indicator found to look back further than the view (or never to forget, like an
        # exponential average) is computed over the view from then on, as the live trader does.
        found = self._cache.get(("computed over the view", key))
        state: list[int] = found if isinstance(found, list) else [0, 0]  # [differs, calls]
        if found is None:
            self._cache[("computed over the view", key)] = state
        differs, calls = state
        if differs:
            return compute(self._bars[self._start : self._end])[-1]
        if calls % _RECHECK == 0:
            seen = compute(self._bars[self._start : self._end])[-1]
            if seen != value:
                state[0] = 1
                log.warning(
                    "indicator %r looks back further than the strategy's history_bars (%d bars): "
                    "computed over those bars from now on, as the live trader does (%r, not %r "
                    "over the whole series); declare a larger history_bars if it needs more",
                    key,
                    len(self),
                    seen,
                    value,
                )
                return seen
            if seen is None:
                return value  # nothing learnt yet: checked again on the next call
        state[1] = calls + 1
        return value


# How often a windowed indicator is checked against the whole series' column (see
# ``History.at_current``): rarely enough to cost little, often enough to catch one that only
# differs now and then (a highest close over more bars than the view).
_RECHECK = 512


# The bars' times as a column (a replay seeds it with the list it already keeps): what is
# found by time is found by a bisection over a list, not through the view bar by bar.
BAR_TIMES = ("bar_times",)


def bar_times(bars: Sequence[Bar]) -> list[datetime]:
    return [b.time for b in bars]


def indicator(history: Sequence[Bar], key: Hashable, compute: Column[T]) -> T:
    """The value of a causal indicator at the current (last) bar of ``history``.

    ``key`` names the indicator and its parameters (e.g. ``("sma", 20)``); ``compute`` maps a
    bar list to one value per bar. On a ``History`` the column is computed once per series.
    """
    if isinstance(history, History):
        return history.at_current(key, compute)
    if not history:
        raise IndexError("indicator of an empty history")
    return compute(history)[-1]


# --- causal columns over closes ---------------------------------------------------------------


class ArrayColumn(Sequence[T]):
    """A column kept as one numpy array (8 bytes a bar), read one value at a time."""

    __slots__ = ("_values",)

    def __init__(self, values: npt.NDArray[Any]) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self._values)
        if not 0 <= index < len(self._values):
            raise IndexError("column index out of range")
        return self._read(index)

    def _read(self, index: int) -> T:
        raise NotImplementedError


class FloatColumn(ArrayColumn[float | None]):
    """A float statistic per bar, NaN meaning "not known yet" (read as None)."""

    __slots__ = ()

    def _read(self, index: int) -> float | None:
        value = float(self._values[index])
        return None if math.isnan(value) else value


class _ScaledSma(ArrayColumn[Decimal | None]):
    """SMA values kept as exact running sums of closes scaled to integers.

    ``value[i] = Decimal(sum of the window's scaled closes) * 10**-scale / length``: the same
    Decimal as ``sum(window closes) / length``, without keeping a Decimal object per bar.
    """

    __slots__ = ("_length", "_scale")

    def __init__(self, sums: npt.NDArray[np.int64], length: int, scale: int) -> None:
        super().__init__(sums)
        self._length, self._scale = length, scale

    def _read(self, index: int) -> Decimal | None:
        if index < self._length - 1:
            return None
        return Decimal(int(self._values[index])).scaleb(-self._scale) / self._length


# Closes with more decimals than this (or sums beyond int64) keep a Decimal per bar instead.
_MAX_SCALE = 8


def sma_column(length: int) -> Column[Decimal | None]:
    """Simple moving average of the last ``length`` closes, current bar included.

    Exact: each value equals ``sum(window closes) / length`` computed in Decimal afresh.
    """
    if length < 1:
        raise ValueError("sma length must be at least 1")

    def compute(bars: Sequence[Bar]) -> Sequence[Decimal | None]:
        closes = [bar.close for bar in bars]
        scale = max((-int(c.as_tuple().exponent) for c in closes), default=0)
        peak = max(closes, default=Decimal(0))
        if 0 <= scale <= _MAX_SCALE and peak * length * 10**scale < 2**62:
            scaled = np.array([int(c.scaleb(scale)) for c in closes], dtype=np.int64)
            running = np.cumsum(scaled)
            sums = running.copy()
            sums[length:] = running[length:] - running[:-length]
            return _ScaledSma(sums, length, scale)
        out: list[Decimal | None] = []
        total = Decimal(0)
        for i, close in enumerate(closes):
            total += close
            if i >= length:
                total -= closes[i - length]
            out.append(total / length if i >= length - 1 else None)
        return out

    return compute


def _prior_extreme_column(lookback: int, *, highest: bool) -> Column[Decimal | None]:
    if lookback < 1:
        raise ValueError("lookback must be at least 1")

    def compute(bars: Sequence[Bar]) -> list[Decimal | None]:
        # Monotonic deque of indices over the window bars[i-lookback : i] (current bar excluded).
        out: list[Decimal | None] = []
        window: deque[int] = deque()
        for i in range(len(bars)):
            if i >= 1:
                j = i - 1
                value = bars[j].close
                while window and (bars[window[-1]].close <= value if highest else bars[window[-1]].close >= value):
                    window.pop()
                window.append(j)
                if window[0] < i - lookback:
                    window.popleft()
            out.append(bars[window[0]].close if i >= lookback else None)
        return out

    return compute


def prior_high_column(lookback: int) -> Column[Decimal | None]:
    """Highest close of the ``lookback`` bars before the current one."""
    return _prior_extreme_column(lookback, highest=True)


def prior_low_column(lookback: int) -> Column[Decimal | None]:
    """Lowest close of the ``lookback`` bars before the current one."""
    return _prior_extreme_column(lookback, highest=False)
