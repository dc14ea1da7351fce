"""The market a chaos run trades: bars crafted so the pyramid strategy enters, scales in to its
policy maximum and exits within a dozen sessions, and the moments of each session the campaign
moves the simulated clock through.

Each symbol trades flat for its history, breaks out at the close of the session before the
run, rises 1.5% a session with no overnight gap (each open is the previous close) so every
add-on clears the policy's 3% step after its three bars, and falls 15% at one close, below its
20-day average: the exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from emulators.alpaca import BarSeed
from emulators.alpaca._sessions import NEW_YORK, Sessions, SessionTimes

HISTORY_SESSIONS = 70
# Entries at the opens of sessions 1, 4, 7 and 10 (three bars apart), the fall at the close
# of session 10, the exit in session 11's window.
RUN_SESSIONS = 11
FALL_SESSION = 10
DAILY_RISE = Decimal("1.015")
FALL = Decimal("0.85")
SYMBOLS: dict[str, Decimal] = {"AAA": Decimal(100), "BBB": Decimal(40)}
FIRST_SESSION = date(2024, 3, 4)

# The moments of a session the campaign moves the clock through, from its open.
MOMENTS: tuple[tuple[str, timedelta], ...] = (
    ("open", timedelta(0)),
    ("open+5m", timedelta(minutes=5)),
    ("open+10m", timedelta(minutes=10)),
    ("window closed", timedelta(minutes=31)),
    ("mid-session", timedelta(hours=3, minutes=15)),
)
AFTER_CLOSE = timedelta(minutes=5)


@dataclass(frozen=True)
class Moment:
    """A point of simulated time the campaign runs a trader cycle at."""

    label: str
    at: datetime


def _q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def run_sessions(sessions: Sessions, count: int = RUN_SESSIONS) -> list[SessionTimes]:
    """Return the run's sessions, the first on FIRST_SESSION (or the next trading day)."""
    found = sessions.between(FIRST_SESSION, FIRST_SESSION + timedelta(days=3 * count + 10))
    return found[:count]


def bars_for(symbol: str, sessions: Sessions, count: int = RUN_SESSIONS) -> list[BarSeed]:
    """Return a symbol's daily bars: its history, the breakout session, and the run's sessions."""
    base = SYMBOLS[symbol]
    run = run_sessions(sessions, count)
    history = sessions.between(run[0].day - timedelta(days=2 * HISTORY_SESSIONS), run[0].day - timedelta(days=1))
    history = history[-(HISTORY_SESSIONS + 1) :]
    bars: list[BarSeed] = []
    # Flat at 0.95 x base over the history, oscillating a little (no breakout there); the
    # breakout session (the last of the history) closes at base, above every close before it.
    for index, session in enumerate(history[:-1]):
        close = _q(base * (Decimal("0.95") + Decimal("0.004") * Decimal((index % 3) - 1)))
        bars.append(_bar(session, close, close))
    previous = bars[-1].close
    bars.append(_bar(history[-1], previous, base))
    previous = base
    for number, session in enumerate(run, start=1):
        close = _q(previous * (FALL if number == FALL_SESSION else DAILY_RISE))
        if number > FALL_SESSION:
            close = previous
        bars.append(_bar(session, previous, close))
        previous = close
    return bars


def _bar(session: SessionTimes, open_: Decimal, close: Decimal) -> BarSeed:
    return BarSeed(
        timestamp=datetime.combine(session.day, time(0), NEW_YORK).astimezone(UTC),
        open=open_,
        high=max(open_, close) + Decimal("0.5"),
        low=min(open_, close) - Decimal("0.5"),
        close=close,
        volume=1_000_000,
    )


def moments(sessions: Sessions, count: int = RUN_SESSIONS) -> list[Moment]:
    """Return the run's moments: after the close before the run, then each session's."""
    run = run_sessions(sessions, count)
    before = sessions.last_closed(run[0].open)
    assert before is not None
    found = [Moment("after the close", before.close + AFTER_CLOSE)]
    for number, session in enumerate(run, start=1):
        found.extend(Moment(f"session {number} {label}", session.open + offset) for label, offset in MOMENTS)
        found.append(Moment(f"session {number} after the close", session.close + AFTER_CLOSE))
    return found
