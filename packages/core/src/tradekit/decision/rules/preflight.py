"""Preflight: refuse what must never reach a broker call — unreconciled symbols first."""

from __future__ import annotations

from tradekit.decision.context import ScalingContext
from tradekit.decision.reasons import ReasonCode, RulePhase
from tradekit.decision.rules import Rule
from tradekit.decision.verdict import Check, block, passed
from tradekit.hookspecs import hookimpl

PHASE = RulePhase.PREFLIGHT

# Checks whose text never varies are built once: the engine runs on every signal.
_PASS_ACCOUNT_STATUS = passed("account_status", PHASE, "account may trade")


def unreconciled_symbol(ctx: ScalingContext) -> Check:
    if ctx.symbol in ctx.unreconciled_symbols:
        return block(
            "unreconciled_symbol",
            PHASE,
            ReasonCode.UNRECONCILED_BROKER_POSITION,
            f"the broker holds {ctx.symbol} but the ledger could not reconcile it; "
            "buying could double an exposure nobody tracks",
        )
    return passed("unreconciled_symbol", PHASE, f"{ctx.symbol} is reconciled with the broker")


def account_status(ctx: ScalingContext) -> Check:
    if ctx.account.trading_blocked or ctx.account.account_blocked:
        which = "account blocked" if ctx.account.account_blocked else "trading blocked"
        return block("account_status", PHASE, ReasonCode.TRADING_BLOCKED, f"the broker reports {which}")
    return _PASS_ACCOUNT_STATUS


RULES: tuple[Rule, ...] = (unreconciled_symbol, account_status)


@hookimpl
def evaluate_buy(context: ScalingContext) -> list[Check]:
    return [rule(context) for rule in RULES]
