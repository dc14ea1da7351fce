"""Ledger errors: each names what is wrong and what to do, never a bare driver traceback."""

from __future__ import annotations


class LedgerError(RuntimeError):
    """Base class of ledger errors."""


class LedgerConnectionError(LedgerError):
    """The database cannot be reached or refuses the credentials."""


class LedgerNotFoundError(LedgerError):
    """No ledger exists where one was expected (a read-only command never creates one)."""


class LedgerCorruptError(LedgerError):
    """The ledger file is not a readable database (corrupt, truncated, not SQLite)."""


class LedgerVersionError(LedgerError):
    """The ledger's schema version is unknown to this tradekit."""


class LedgerInUseError(LedgerError):
    """Another process has this SQLite ledger open for trading."""


class LedgerWriteError(LedgerError):
    """A write failed (disk full, read-only file ...); the transaction was rolled back whole."""


class DuplicateIntentError(LedgerError):
    """An order intent with this key or client order id is already recorded."""


class InvalidExitTransition(LedgerError):
    """An exit intent cannot move from its current state to the requested one."""
