"""What can go wrong talking to a broker, sorted by what the caller must do next.

The split that matters for money: ``OrderRejected`` means the order definitely does not
exist; ``AmbiguousSubmission`` means it may exist, so the caller must look it up by its
client order id and never simply send it again.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base class of broker and venue errors."""


class BrokerUnavailable(BrokerError):
    """The broker could not be asked (connection refused, timeout on a read, 5xx on a read).

    A read that fails this way must never be taken to mean "no positions" or "flat".
    """


class BrokerDataError(BrokerError):
    """The broker answered with data tradekit cannot trust (missing or malformed fields)."""


class OrderRejected(BrokerError):
    """The broker refused the order; it does not exist and may be retried differently."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class FractionalNotSupported(OrderRejected):
    """A fractional quantity or notional order was refused (asset or account)."""


class AmbiguousSubmission(BrokerError):
    """The order may or may not have reached the broker (timeout, lost response, 5xx,
    "client order id already exists"). Look it up by client order id; do not resend."""


class DuplicateClientOrderId(AmbiguousSubmission):
    """The broker already has an order with this client order id."""
