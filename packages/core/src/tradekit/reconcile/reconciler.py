"""Reconcile the ledger with the broker: the broker is the source of truth.

- A broker position the ledger does not know is backfilled (one entry at the broker's
  average price, entry time unknown and marked as backfilled, no owner, no confidence), or,
  when backfill is off or the position cannot be adopted (short, odd lot on a whole-share
  asset, unknown asset), left unreconciled: every buy on it is then BLOCKed.
- A ledger position the broker no longer holds is closed with an EXTERNAL_CLOSE record.
- Both holding it in different sizes is a quantity mismatch: reported and blocked, never
  "fixed" by guessing which fills were missed.
- A symbol with an order whose outcome is unresolved (in flight, or its lookup failed) is
  **deferred**: nothing is adopted, closed or compared while a fill of it may still come;
  the finding says which order, and buys on it stay blocked until a later reconciliation.
  So is a symbol with an order the broker still works that the ledger does not have in
  flight (placed by hand, or one of tradekit's given up on as not found): a position it is
  still building is adopted once it ended, whole, not in part and then found mismatched.
- A symbol with a fill the ledger recorded but could not apply (it reduced a position that
  was already closed, or belonged to an order given up on as not found) is **re-derived**
  from the broker: the fill is applied when ledger plus fill equals the broker, set aside as
  already counted when the ledger already equals the broker, and otherwise the ledger
  follows the broker's quantity; the finding says which.
- A broker that cannot be read is never taken to mean "flat": nothing is closed or adopted,
  every symbol stays blocked, and the report says why. A position the broker lists at zero
  is not held.

Its changes are written in one transaction holding the account's lock (PostgreSQL): two
processes reconciling at once take turns, the second seeing what the first wrote, and no
order is sent meanwhile. What tradekit has in flight is read before the broker is: a fill
another process records while the broker is read is of an order already deferred, never
taken for a position the broker no longer holds. Running it twice in a row changes nothing
the second time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from tradekit.broker.errors import BrokerError
from tradekit.broker.protocol import Broker
from tradekit.config.settings import ReconciliationSettings
from tradekit.domain.orders import Fill, Order
from tradekit.domain.positions import BrokerPosition, Position
from tradekit.domain.signals import Side
from tradekit.domain.values import ZERO
from tradekit.ledger.records import UnappliedFill
from tradekit.ledger.store import Ledger, LedgerTx
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
        # What tradekit has in flight, read before the broker is: an order of it may fill
        # (and another process record the fill) while the broker is read, and its symbol is
        # deferred whatever the ledger says afterwards. The broker is read outside the write
        # transaction: a slow broker never holds the ledger (SQLite: every writer) locked.
        with self._ledger.reading() as tx:
            in_flight = self._deferred(tx)
        error = ""
        broker_positions: list[BrokerPosition] = []
        open_orders: Sequence[Order] = ()
        try:
            # A position listed at zero is not held (never adopted as an empty entry).
            broker_positions = [bp for bp in self._broker.get_positions() if bp.qty != 0]
        except BrokerError as exc:
            error = f"broker positions could not be read: {exc}"
        if not error:
            try:
                open_orders = self._broker.get_open_orders()
            except BrokerError as exc:
                error = f"broker open orders could not be read: {exc}"
        with self._ledger.transaction(lock_account=True) as tx:
            deferred = self._deferred(tx)
            for symbol, finding in [*in_flight.items(), *self._working_elsewhere(tx, open_orders).items()]:
                deferred.setdefault(symbol, finding)
            if error:
                return self._broker_unavailable(tx, now, error, deferred)
            unapplied = self._unapplied(tx, deferred)
            ledger_positions = tx.open_positions()
            findings = [
                *deferred.values(),
                *self._rederive(tx, broker_positions, ledger_positions, unapplied, now),
                *self._compare(
                    [bp for bp in broker_positions if bp.symbol not in deferred and bp.symbol not in unapplied],
                    {s: p for s, p in ledger_positions.items() if s not in deferred and s not in unapplied},
                ),
            ]
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

    def _broker_unavailable(
        self, tx: LedgerTx, now: datetime, error: str, deferred: Mapping[str, object]
    ) -> ReconcileReport:
        previous = tx.unreconciled_symbols()
        held = set(tx.open_positions())
        report = ReconcileReport(
            started_at=now,
            broker=self._broker.name,
            broker_ok=False,
            error=error,
            blocked_symbols=held | previous | set(deferred),
        )
        tx.record_reconciliation(report)
        log.error("reconciliation failed, nothing changed, buys stay blocked: %s", error)
        return report

    def _deferred(self, tx: LedgerTx) -> dict[str, ReconcileFinding]:
        """One DEFERRED finding per symbol with an order still unresolved."""
        found: dict[str, ReconcileFinding] = {}
        for state in tx.pending_intents():
            symbol = state.intent.symbol
            if symbol not in found:
                status = state.status.value if state.status is not None else "not yet sent"
                found[symbol] = ReconcileFinding(
                    symbol=symbol,
                    action=ReconcileAction.DEFERRED,
                    reason=(
                        f"order {state.intent.client_order_id} ({state.intent.side} {state.intent.purpose}) is "
                        f"unresolved ({status}): nothing adopted or closed until its outcome is known"
                    ),
                )
        return found

    @staticmethod
    def _working_elsewhere(tx: LedgerTx, open_orders: Sequence[Order]) -> dict[str, ReconcileFinding]:
        """One DEFERRED finding per symbol with an order the broker works that the ledger does
        not have in flight: placed outside tradekit, or tradekit's own given up on."""
        found: dict[str, ReconcileFinding] = {}
        for order in open_orders:
            if order.status.is_terminal or order.symbol in found:
                continue
            state = tx.intent_state(order.client_order_id)
            if state is not None and (state.status is None or not state.status.is_terminal):
                continue  # in flight in the ledger: deferred as such
            whose = (
                "not placed by tradekit"
                if state is None
                else f"tradekit's, recorded as {state.status.value if state.status else 'unsent'}"
            )
            found[order.symbol] = ReconcileFinding(
                symbol=order.symbol,
                action=ReconcileAction.DEFERRED,
                reason=(
                    f"order {order.client_order_id} ({order.side}, {whose}) is open at the broker with "
                    f"{order.filled_qty} filled: nothing adopted or closed until it ends"
                ),
            )
        return found

    def _unapplied(self, tx: LedgerTx, deferred: Mapping[str, object]) -> dict[str, list[tuple[UnappliedFill, Fill]]]:
        by_symbol: dict[str, list[tuple[UnappliedFill, Fill]]] = defaultdict(list)
        for unapplied in tx.unapplied_fills():
            fill = tx.fill(unapplied.execution_id)
            if fill is not None and unapplied.symbol not in deferred:
                by_symbol[unapplied.symbol].append((unapplied, fill))
        return dict(by_symbol)

    def _rederive(
        self,
        tx: LedgerTx,
        broker_positions: Sequence[BrokerPosition],
        ledger_positions: Mapping[str, Position],
        unapplied: Mapping[str, list[tuple[UnappliedFill, Fill]]],
        now: datetime,
    ) -> list[ReconcileFinding]:
        """Settle the fills the ledger could not apply, one symbol at a time (see the module doc)."""
        at_broker = {bp.symbol: bp for bp in broker_positions}
        findings = []
        for symbol, pairs in sorted(unapplied.items()):
            bp = at_broker.get(symbol)
            mine = ledger_positions.get(symbol)
            held = mine.qty if mine is not None else ZERO
            broker_qty = bp.qty if bp is not None else ZERO
            fills = [fill for _, fill in pairs]
            effect = sum((f.qty if f.side is Side.BUY else -f.qty for f in fills), ZERO)
            names = ", ".join(f.execution_id for f in fills)
            if bp is not None and bp.is_short:
                outcome = f"the broker holds a short ({broker_qty}): left unreconciled"
                findings.append(self._finding(symbol, ReconcileAction.UNRECONCILED, broker_qty, held, bp, outcome))
            elif held + effect == broker_qty:
                # Buys first: applying a sell before the buy it follows would reduce a flat position.
                for fill in sorted(fills, key=lambda f: (f.side is Side.SELL, f.time)):
                    tx.apply_fill(fill)
                outcome = f"applied fills {names}: ledger {held} + {effect} equals the broker's {broker_qty}"
                findings.append(self._finding(symbol, ReconcileAction.REDERIVED, broker_qty, held, bp, outcome))
            elif held == broker_qty:
                outcome = f"fills {names} were already counted: the ledger already equals the broker ({held})"
                findings.append(self._finding(symbol, ReconcileAction.REDERIVED, broker_qty, held, bp, outcome))
            else:
                outcome = f"after fills {names} the ledger follows the broker: {held} -> {broker_qty}"
                if broker_qty > held:
                    cost = bp.avg_entry_price if bp is not None and bp.avg_entry_price is not None else fills[-1].price
                    tx.record_backfill(symbol, broker_qty - held, cost, now, outcome)
                else:
                    sold = [f for f in fills if f.side is Side.SELL]
                    price = sold[-1].price if sold else None
                    tx.record_external_close(symbol, held - broker_qty, now, outcome, price=price)
                findings.append(self._finding(symbol, ReconcileAction.REDERIVED, broker_qty, held, bp, outcome))
            for unapplied_fill, _ in pairs:
                tx.settle_unapplied_fill(unapplied_fill.execution_id, outcome, now)
        return findings

    @staticmethod
    def _finding(
        symbol: str,
        action: ReconcileAction,
        broker_qty: Decimal,
        ledger_qty: Decimal,
        bp: BrokerPosition | None,
        reason: str,
    ) -> ReconcileFinding:
        price = bp.avg_entry_price if bp is not None else None
        return ReconcileFinding(
            symbol=symbol, action=action, broker_qty=broker_qty, ledger_qty=ledger_qty, price=price, reason=reason
        )

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
