"""Reconciliation: the broker is the source of truth; the ledger follows it."""

from tradekit.reconcile.report import ReconcileAction, ReconcileFinding, ReconcileReport

__all__ = ["ReconcileAction", "ReconcileFinding", "ReconcileReport"]
