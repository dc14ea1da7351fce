"""Reconciliation: the broker is the source of truth; the ledger follows it."""

from typing import TYPE_CHECKING

from tradekit.reconcile.report import ReconcileAction, ReconcileFinding, ReconcileReport

if TYPE_CHECKING:
    from tradekit.reconcile.reconciler import Reconciler

__all__ = ["ReconcileAction", "ReconcileFinding", "ReconcileReport", "Reconciler"]


def __getattr__(name: str) -> object:
    # The reconciler needs the ledger and plugins, which import this package's report
    # module; import it lazily to keep that cycle out of import time.
    if name == "Reconciler":
        from tradekit.reconcile.reconciler import Reconciler

        return Reconciler
    raise AttributeError(name)
