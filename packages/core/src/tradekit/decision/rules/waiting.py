"""How long since something happened, as the cooldown rules measure it.

A daily strategy acts at one moment of each session (the exit window's start), and a live
trader's cycles reach that moment a few seconds earlier or later each day. A cooldown of
whole days measured on the clock would then pass one day and fail the next by seconds,
where its backtest (at the same moment every day) always passes. So while signal ages are
counted in sessions (``freshness.signal_age_unit = "sessions"``, the default), a cooldown of
N whole days is over once N sessions of the exchange calendar have opened since; any other
cooldown is measured on the clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tradekit.decision.context import ScalingContext

if TYPE_CHECKING:
    from tradekit.exits.calendar import TradingCalendar

_DAY = timedelta(days=1)


def calendar_of(name: str) -> TradingCalendar:
    # Imported when first judged, not with the rules: the calendar brings pandas and
    # exchange-calendars. (An import statement per call costs more than the lookup.)
    global _trading_calendar
    if _trading_calendar is None:
        from tradekit.exits.calendar import trading_calendar

        _trading_calendar = trading_calendar
    return _trading_calendar(name)


_trading_calendar: Callable[[str], TradingCalendar] | None = None


def waited(ctx: ScalingContext, since: datetime, wait: timedelta) -> tuple[bool, str]:
    """Whether ``wait`` has passed since ``since`` at the decision's moment, and how much has."""
    limits = ctx.limits
    return _waited(since, ctx.now, wait, limits.calendar if limits.max_signal_age_sessions is not None else None)


# Remembered by everything the answer depends on (UTC times): the decisions of one moment ask
# about the same few (one symbol's entry and order cooldowns both count from its last fill,
# and the symbols that entered at one open share that moment).
@functools.lru_cache(maxsize=4096)
def _waited(since: datetime, now: datetime, wait: timedelta, calendar: str | None) -> tuple[bool, str]:
    elapsed = now - since
    if calendar is None or wait <= timedelta(0) or wait % _DAY:
        return elapsed >= wait, f"{elapsed}"
    # Something that happened between sessions (an adopted position, a pre-market fill)
    # belongs to the session that opens next: that open does not end its wait.
    sessions = calendar_of(calendar).sessions_opened_since(since, now)
    return sessions >= wait // _DAY, f"{elapsed} ({sessions} session{'' if sessions == 1 else 's'} opened since)"
