"""Checks, their fold into one decision, and the decision's explanation."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

import attrs

from tradekit.decision.plugin_reasons import PluginReason, Reason
from tradekit.decision.reasons import BuyAction, CheckOutcome, ReasonCode, RulePhase
from tradekit.domain.values import to_utc, utc

_STOPPING = frozenset({CheckOutcome.SKIP, CheckOutcome.BLOCK})


@attrs.frozen(kw_only=True)
class Check:
    """One rule's verdict on one buy: its outcome, the reason code and a sentence why."""

    rule: str
    phase: RulePhase
    outcome: CheckOutcome
    detail: str
    reason: Reason | None = None

    def __attrs_post_init__(self) -> None:
        if self.reason is None and self.outcome in _STOPPING:
            raise ValueError(f"check {self.rule}: a {self.outcome} needs a reason code")
        if self.reason is not None and not isinstance(self.reason, (ReasonCode, PluginReason)):
            raise ValueError(
                f"check {self.rule}: reason {self.reason!r} must be a ReasonCode or the plugin's own "
                "PluginReason (declared through register_reasons)"
            )

    @property
    def stops_buy(self) -> bool:
        return self.outcome in _STOPPING


# Passing and not-applicable checks are values: the same rule with the same sentence is the
# same check, and most decisions repeat the last one's ("entry 2 of at most 4"). A check is
# ~5x dearer to build than to look up; the memo is cleared when full, so it stays small.
_MEMO_LIMIT = 4096
_passes: dict[tuple[str, int, str], Check] = {}
_not_applicable: dict[tuple[str, int, str], Check] = {}


def _memoized(
    memo: dict[tuple[str, int, str], Check], rule: str, phase: RulePhase, outcome: CheckOutcome, detail: str
) -> Check:
    key = (rule, phase._value_, detail)  # the phase's number: an enum member hashes in Python
    check = memo.get(key)
    if check is None:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        check = memo[key] = Check(rule=rule, phase=phase, outcome=outcome, detail=detail)
    return check


def passed(rule: str, phase: RulePhase, detail: str) -> Check:
    return _memoized(_passes, rule, phase, CheckOutcome.PASS, detail)


def not_applicable(rule: str, phase: RulePhase, detail: str) -> Check:
    return _memoized(_not_applicable, rule, phase, CheckOutcome.NOT_APPLICABLE, detail)


def skip(rule: str, phase: RulePhase, reason: Reason, detail: str) -> Check:
    return Check(rule=rule, phase=phase, outcome=CheckOutcome.SKIP, reason=reason, detail=detail)


def block(rule: str, phase: RulePhase, reason: Reason, detail: str) -> Check:
    return Check(rule=rule, phase=phase, outcome=CheckOutcome.BLOCK, reason=reason, detail=detail)


_RULE = operator.attrgetter("rule")
_PHASE = operator.attrgetter("phase")


def order_checks(checks: Iterable[Check]) -> tuple[Check, ...]:
    """Sort checks into the canonical trace order: by phase, then rule name.

    Two stable sorts (by rule, then by phase) give the order of one sort by (phase, rule),
    ties included, without building a key tuple per check (~25% cheaper per decision)."""
    return tuple(sorted(sorted(checks, key=_RULE), key=_PHASE))


def fold(checks: Iterable[Check], *, is_scale_in: bool) -> BuyAction:
    """Combine checks: any BLOCK -> BLOCK, else any SKIP -> SKIP, else enter or scale in.

    The result does not depend on the order of ``checks``.
    """
    outcomes = {c.outcome for c in checks}
    if CheckOutcome.BLOCK in outcomes:
        return BuyAction.BLOCK
    if CheckOutcome.SKIP in outcomes:
        return BuyAction.SKIP
    return BuyAction.SCALE_IN if is_scale_in else BuyAction.ENTER_NEW


@attrs.frozen(kw_only=True)
class BuyDecision:
    """The engine's answer for one buy signal, with every check that ran, in phase order."""

    decision_id: str
    symbol: str
    strategy: str
    signal_id: str
    action: BuyAction
    checks: tuple[Check, ...]
    entry_count: int
    max_entries: int
    position_pct: Decimal
    allocation_cap_pct: Decimal
    risk_amount: Decimal
    price: Decimal | None
    confidence: int
    evaluated_at: datetime = attrs.field(converter=to_utc, validator=utc)

    @functools.cached_property
    def reasons(self) -> tuple[Reason, ...]:
        """Reason codes of the checks that stopped the buy (BLOCKs first)."""
        blocking: list[Reason] = []
        skipping: list[Reason] = []
        for c in self.checks:
            if c.reason is not None:
                if c.outcome is CheckOutcome.BLOCK:
                    blocking.append(c.reason)
                elif c.outcome is CheckOutcome.SKIP:
                    skipping.append(c.reason)
        return tuple(dict.fromkeys(blocking + skipping))

    @property
    def allows_order(self) -> bool:
        return self.action in (BuyAction.ENTER_NEW, BuyAction.SCALE_IN)

    def one_line(self) -> str:
        """Render a single-line summary, as a log line or table row would show it."""
        return self._one_line

    @functools.cached_property
    def _one_line(self) -> str:
        return one_line_text(
            action=self.action.value,
            symbol=self.symbol,
            strategy=self.strategy,
            entry_count=self.entry_count,
            max_entries=self.max_entries,
            position_pct=self.position_pct,
            allocation_cap_pct=self.allocation_cap_pct,
            risk_amount=self.risk_amount,
            confidence=self.confidence,
            stops=[(str(c.reason), c.detail) for c in self.checks if c.outcome in _STOPPING],
        )

    def explain(self) -> str:
        """Render the full trace: the decision, then each check in the order it is judged."""
        price = f"{self.price}" if self.price is not None else "unknown"
        head = [
            f"decision {self.decision_id}: {self.action.value.upper()} {self.symbol}",
            f"  strategy      {self.strategy}",
            f"  signal        {self.signal_id} (confidence {self.confidence})",
            f"  evaluated at  {self.evaluated_at.isoformat()}",
            f"  price         {price}",
            f"  entries       {self.entry_count} of at most {self.max_entries}",
            f"  position      {self.position_pct:.2f}% of equity (cap {self.allocation_cap_pct}%)",
            f"  risk amount   {self.risk_amount:.2f}",
            f"  reasons       {', '.join(self.reasons) or 'none'}",
            "  checks:",
        ]
        rows = [
            f"    [{c.phase.name.lower():<14}] {c.outcome.value.upper():<14} {c.rule}"
            + (f" ({c.reason})" if c.reason else "")
            + f": {c.detail}"
            for c in self.checks
        ]
        return "\n".join(head + rows)


def one_line_text(
    *,
    action: str,
    symbol: str,
    strategy: str,
    entry_count: int,
    max_entries: int,
    position_pct: Decimal,
    allocation_cap_pct: Decimal,
    risk_amount: Decimal,
    confidence: int,
    stops: Sequence[tuple[str, str]],
) -> str:
    """A decision on one line (``BuyDecision.one_line``), from its figures and the (reason,
    detail) of each check that stopped it: also what a stored trace's summary is rendered
    from without rebuilding the decision."""
    why = "; ".join(f"{reason}: {detail}" for reason, detail in stops) if stops else "all checks passed"
    return (
        f"{action.upper()} {symbol} [{strategy}] "
        f"entries={entry_count}/{max_entries} position={position_pct:.2f}% "
        f"cap={allocation_cap_pct}% risk={risk_amount:.2f} confidence={confidence} — {why}"
    )
