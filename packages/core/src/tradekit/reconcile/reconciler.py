"""Reconcile the ledger with the broker: the broker is the source of truth.

- A broker position the ledger does not know is backfilled (one entry at the broker's
  average price, entry time unknown and marked as backfilled, no owner, no confidence), or,
  when backfill is off or the position cannot be adopted (short, odd lot on a whole-share
  asset, unknown asset), left unreconciled: every buy on it is then BLOCKed.
- A ledger position the broker no longer holds is closed with an EXTERNAL_CLOSE record.
- Both holding it in different sizes is a quantity mismatch: reported and blocked, never
  "fixed" by guessing which fills were missed.
- A broker that cannot be read is never taken to mean "flat": nothing is closed or adopted,
  every symbol stays blocked, and the report says why.

Running it twice in a row changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from tradekit.broker.errors import BrokerError
from tradekit.broker.protocol import Broker
from tradekit.config.settings import ReconciliationSettings
from tradekit.domain.positions import BrokerPosition, Position
from tradekit.ledger.store import Ledger
from tradekit.plugins import Plugins
from tradekit.reconcile.report import ReconcileAction, ReconcileFinding, ReconcileReport

log = logging.getLogger(__name__)


class Reconciler:
    """Compares the ledger with one broker and records what it found and did."""

    def __init__(
        self,
        ledger: Ledger,
        broker: Broker,
        settings: ReconciliationSettings,
        plugins: Plugins,
    ) -> None:
        self._ledger = ledger
        self._broker = broker
        self._settings = settings
        self._plugins = plugins

    def run(self, now: datetime) -> ReconcileReport:
        """Reconcile, persist the report and every ledger change in one transaction."""
        try:
            broker_positions = list(self._broker.get_positions())
        except BrokerError as exc:
            return self._broker_unavailable(now, f"broker positions could not be read: {exc}")
        with self._ledger.transaction() as tx:
            ledger_positions = tx.open_positions()
            findings = self._compare(broker_positions, ledger_positions)
            report = ReconcileReport(started_at=now, broker=self._broker.name, broker_ok=True, findings=findings)
            extra = self._plugins.on_reconcile(report)
            refused = [f for f in extra if f.action is not ReconcileAction.UNRECONCILED]
            if refused:
                # A plugin may add blocks, never change the ledger: adoption and closing
                # follow the broker's positions only.
                raise ValueError(
                    f"on_reconcile plugins may only add UNRECONCILED findings, got {[str(f.action) for f in refused]}"
                )
            report = ReconcileReport(
                started_at=now, broker=self._broker.name, broker_ok=True, findings=[*findings, *extra]
            )
            for finding in report.findings:
                if finding.action is ReconcileAction.BACKFILLED:
                    assert finding.broker_qty is not None
                    assert finding.price is not None
                    tx.record_backfill(finding.symbol, finding.broker_qty, finding.price, now, finding.reason)
                elif finding.action is ReconcileAction.EXTERNAL_CLOSE:
                    assert finding.ledger_qty is not None
                    tx.record_external_close(finding.symbol, finding.ledger_qty, now, finding.reason)
            tx.record_reconciliation(report)
        for finding in report.findings:
            if finding.action is not ReconcileAction.IN_SYNC:
                log.warning(
                    "reconciliation %s %s: broker_qty=%s ledger_qty=%s price=%s — %s",
                    finding.action.value.upper(),
                    finding.symbol,
                    finding.broker_qty,
                    finding.ledger_qty,
                    finding.price,
                    finding.reason,
                )
        return report

    def _broker_unavailable(self, now: datetime, error: str) -> ReconcileReport:
        with self._ledger.transaction() as tx:
            previous = tx.unreconciled_symbols()
            held = set(tx.open_positions())
            report = ReconcileReport(
                started_at=now,
                broker=self._broker.name,
                broker_ok=False,
                error=error,
                blocked_symbols=held | previous,
            )
            tx.record_reconciliation(report)
        log.error("reconciliation failed, nothing changed, buys stay blocked: %s", error)
        return report

    def _compare(
        self, broker_positions: Sequence[BrokerPosition], ledger_positions: dict[str, Position]
    ) -> list[ReconcileFinding]:
        findings: list[ReconcileFinding] = []
        at_broker: set[str] = set()
        for bp in broker_positions:
            at_broker.add(bp.symbol)
            mine = ledger_positions.get(bp.symbol)
            if mine is not None:
                findings.append(self._compare_held(bp, mine))
            else:
                findings.append(self._adopt(bp))
        for symbol, pos in sorted(ledger_positions.items()):
            if symbol in at_broker:
                continue
            if self._settings.mark_unknown_closed:
                findings.append(
                    ReconcileFinding(
                        symbol=symbol,
                        action=ReconcileAction.EXTERNAL_CLOSE,
                        ledger_qty=pos.qty,
                        broker_qty=Decimal(0),
                        reason="position not found at the broker during reconciliation",
                    )
                )
            else:
                findings.append(
                    ReconcileFinding(
                        symbol=symbol,
                        action=ReconcileAction.UNRECONCILED,
                        ledger_qty=pos.qty,
                        broker_qty=Decimal(0),
                        reason="ledger position not at the broker and mark_unknown_closed is off",
                    )
                )
        return findings

    def _compare_held(self, bp: BrokerPosition, mine: Position) -> ReconcileFinding:
        if bp.qty == mine.qty:
            return ReconcileFinding(
                symbol=bp.symbol,
                action=ReconcileAction.IN_SYNC,
                broker_qty=bp.qty,
                ledger_qty=mine.qty,
                price=bp.avg_entry_price,
                reason="ledger and broker agree",
            )
        return ReconcileFinding(
            symbol=bp.symbol,
            action=ReconcileAction.QUANTITY_MISMATCH,
            broker_qty=bp.qty,
            ledger_qty=mine.qty,
            price=bp.avg_entry_price,
            reason=f"broker holds {bp.qty}, ledger {mine.qty}; buys blocked until they agree",
        )

    def _adopt(self, bp: BrokerPosition) -> ReconcileFinding:
        def unreconciled(reason: str) -> ReconcileFinding:
            return ReconcileFinding(
                symbol=bp.symbol,
                action=ReconcileAction.UNRECONCILED,
                broker_qty=bp.qty,
                ledger_qty=Decimal(0),
                price=bp.avg_entry_price,
                reason=reason,
            )

        if bp.is_short:
            return unreconciled("short position at the broker: tradekit only adopts long positions")
        if not self._settings.backfill_enabled:
            return unreconciled("broker-only position and backfill is disabled")
        if bp.qty != bp.qty.to_integral_value():
            try:
                asset = self._broker.get_asset(bp.symbol)
            except BrokerError as exc:
                return unreconciled(f"fractional position and the asset could not be looked up: {exc}")
            if not asset.fractionable:
                return unreconciled(f"odd lot: {bp.qty} shares of a whole-share asset")
        return ReconcileFinding(
            symbol=bp.symbol,
            action=ReconcileAction.BACKFILLED,
            broker_qty=bp.qty,
            ledger_qty=Decimal(0),
            price=bp.avg_entry_price,
            reason="broker position missing from the ledger: adopted (entry time unknown)",
        )
