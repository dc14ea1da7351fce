"""Two-phase exits: ExitIntent and its life cycle."""

from tradekit.exits.intent import EXIT_TRANSITIONS, ExitIntent, ExitState

__all__ = ["EXIT_TRANSITIONS", "ExitIntent", "ExitState"]
