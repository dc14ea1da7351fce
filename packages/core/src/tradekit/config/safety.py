"""Values a careful trader would not set by accident.

Each rule names the dotted key, the unsafe condition and why it is unsafe (from the source
write-ups' "do not" list). An unsafe value is refused unless its key is listed in
``[safety] acknowledge``; some choices are allowed but always reported as warnings.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from tradekit.config.settings import MissedWindow, Settings, SettingsError

_MAX_SAFE_ALLOCATION_PCT = 10
_MIN_SAFE_CONFIDENCE = 5
_MAX_SAFE_POSITION_PCT = 25
_LATE_WINDOW_START_MIN = 60
# NYSE and Nasdaq (and so Alpaca) refuse market-on-close orders in the last ten minutes
# before the close (after 15:50 New York).
_MARKET_ON_CLOSE_CUTOFF_MIN = 10


@attrs.frozen
class UnsafeRule:
    key: str
    is_unsafe: Callable[[Settings], bool]
    why: str


UNSAFE_RULES: tuple[UnsafeRule, ...] = (
    UnsafeRule(
        "allocation.max_allocation_per_symbol_pct",
        lambda s: s.allocation.max_allocation_per_symbol_pct > _MAX_SAFE_ALLOCATION_PCT,
        f"more than {_MAX_SAFE_ALLOCATION_PCT}% of the account in one symbol is a concentration risk",
    ),
    UnsafeRule(
        "scale_in.add_on_confidence_threshold",
        lambda s: s.scale_in.add_on_confidence_threshold < _MIN_SAFE_CONFIDENCE,
        f"adding to a position on a signal below confidence {_MIN_SAFE_CONFIDENCE} stacks risk on weak evidence",
    ),
    UnsafeRule(
        "allocation.max_position_pct_of_account",
        lambda s: s.allocation.max_position_pct_of_account > _MAX_SAFE_POSITION_PCT,
        f"a single position above {_MAX_SAFE_POSITION_PCT}% of the account can ruin it on one gap",
    ),
)

# Allowed, but the user is told every time the configuration loads.
WARNINGS: tuple[UnsafeRule, ...] = (
    UnsafeRule(
        "reconciliation.backfill_enabled",
        lambda s: not s.reconciliation.backfill_enabled,
        "backfill is off: broker positions missing from the ledger stay unreconciled, every buy "
        "on them is blocked, and the ledger will diverge from the broker",
    ),
    UnsafeRule(
        "reconciliation.mark_unknown_closed",
        lambda s: not s.reconciliation.mark_unknown_closed,
        "positions the broker no longer holds stay open in the ledger and keep their symbols blocked",
    ),
    UnsafeRule(
        "exits.window_start_minutes",
        lambda s: s.exits.window_start_minutes > _LATE_WINDOW_START_MIN,
        f"an exit window starting more than {_LATE_WINDOW_START_MIN} minutes after the open may be missed",
    ),
    UnsafeRule(
        "exits.window_end_minutes",
        lambda s: (
            s.exits.on_missed_window is MissedWindow.MARKET_AT_CLOSE
            and (left := s.exits.minutes_from_window_end_to_close()) is not None
            and left < _MARKET_ON_CLOSE_CUTOFF_MIN
        ),
        f"the exit window ends less than {_MARKET_ON_CLOSE_CUTOFF_MIN} minutes before the close: a missed exit's "
        "market-on-close order would come too late for NYSE, Nasdaq and Alpaca (after 15:50 New York), be "
        "refused, and the exit wait for the next session's window",
    ),
)


def check_safety(settings: Settings) -> list[str]:
    """Refuse unacknowledged unsafe values; return the warnings to show the user."""
    acknowledged = set(settings.safety.acknowledge)
    known = {rule.key for rule in UNSAFE_RULES}
    stray = acknowledged - known
    if stray:
        raise SettingsError(
            f"safety.acknowledge lists unknown key(s) {sorted(stray)}; acknowledgeable keys: {sorted(known)}"
        )
    refused = [r for r in UNSAFE_RULES if r.is_unsafe(settings) and r.key not in acknowledged]
    if refused:
        lines = "\n".join(f"  - {r.key}: {r.why}" for r in refused)
        raise SettingsError(
            f'unsafe configuration refused:\n{lines}\nto accept the risk, add the key to [safety] acknowledge = ["..."]'
        )
    warnings = [f"{r.key}: {r.why}" for r in WARNINGS if r.is_unsafe(settings)]
    warnings += [
        f"{r.key}: acknowledged unsafe value ({r.why})"
        for r in UNSAFE_RULES
        if r.is_unsafe(settings) and r.key in acknowledged
    ]
    return warnings
