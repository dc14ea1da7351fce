"""ccxt's exceptions sorted into tradekit's broker errors, by what the caller must do next.

For an order submission the split that matters is "does the order exist?":

- ``OrderRejected``: the venue answered and refused it (bad quantity, margin, symbol,
  permissions, reduce-only). It does not exist.
- ``DuplicateClientOrderId``: the venue already has an order with this client id (Binance
  -4116, Bybit 110072). It exists: look it up.
- ``AmbiguousSubmission``: everything else — timeouts, dropped connections, 5xx pages, rate
  limits, unknown venue errors, unparseable answers. It may exist: look it up by client id,
  never send it again. Rate limits are in this group on purpose: a throttled gateway may
  still have forwarded the order.

For reads, a failure is ``BrokerUnavailable`` (never "no positions"), and an answer that
cannot be parsed is ``BrokerDataError``. Messages are scrubbed of the API key and secret,
which some venues echo back (Bybit's signature errors do).
"""

from __future__ import annotations

from ccxt.base.errors import (
    AuthenticationError,
    BadRequest,
    BadResponse,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    NetworkError,
    NotSupported,
    OperationRejected,
    OrderNotFound,
)

from tradekit.broker.errors import (
    AmbiguousSubmission,
    BrokerDataError,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    OrderRejected,
)
from tradekit_venue_ccxt.config import VenueCredentials
from tradekit_venue_ccxt.venues import VenueProfile

_REFUSALS = (InsufficientFunds, InvalidOrder, BadRequest, AuthenticationError, OperationRejected, NotSupported)


def describe(exc: BaseException, credentials: VenueCredentials | None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return credentials.scrub(text) if credentials is not None else text


def submit_error(
    exc: Exception, *, profile: VenueProfile, credentials: VenueCredentials | None, what: str
) -> BrokerError:
    """Classify an exception raised while sending an order."""
    message = describe(exc, credentials)
    if profile.is_duplicate_id_error(message):
        return DuplicateClientOrderId(f"{what}: the venue already has this client order id ({message})")
    if isinstance(exc, NetworkError):
        return AmbiguousSubmission(f"{what}: no usable answer ({message}); look it up by client id")
    if isinstance(exc, _REFUSALS) and not isinstance(exc, OrderNotFound):
        return OrderRejected(f"{what}: refused by {profile.venue} ({message})", code=type(exc).__name__)
    return AmbiguousSubmission(f"{what}: unclassified answer ({message}); look it up by client id")


def read_error(exc: Exception, *, credentials: VenueCredentials | None, what: str) -> BrokerError:
    """Classify an exception raised while reading venue state."""
    message = describe(exc, credentials)
    if isinstance(exc, BadResponse):
        return BrokerDataError(f"{what}: unreadable answer ({message})")
    return BrokerUnavailable(f"{what} could not be read ({message})")


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, OrderNotFound)


CCXT_ERRORS: tuple[type[Exception], ...] = (ExchangeError, NetworkError, BadResponse)
"""What a ccxt call may raise besides programming errors (every ccxt error derives from these)."""
