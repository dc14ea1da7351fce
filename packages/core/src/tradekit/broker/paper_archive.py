"""Where the paper broker keeps what is over: terminal orders with their fills, and the log of
every order request it received.

The paper broker's book (cash, holdings, working orders) is small and is written whole to its
state file. What only grows — every order that reached a final status, and every request
that arrived — lives here instead, one row each in a SQLite file, so the broker's memory and
its state file stay the size of what is still open however long the account trades (issue
#15: a million-bar replay places ~130,000 orders, and a paper account left running for
months would otherwise rewrite all of them at every change).

Crash safety comes from generations. The book carries a generation number that goes up by
one at every successful save; every row written here carries the generation of the save that
will include it (the book's current one plus one). The archive is committed before the state
file is written, so a state file of generation G always finds its rows here; rows newer than
G (written after the last save that completed) describe orders the restored book still holds
as working, or never saw, and are dropped when that book is loaded (``forget_after``).

An account given neither a state file nor an archive path keeps its archive in a temporary
directory, removed when the archive is closed or collected.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tradekit.domain.orders import Fill, Order
from tradekit.seen_ids import SeenIds
from tradekit.serialization import StructureError, record_json, structure

# The latest archived orders are also kept as objects: a trader asks for an order's fills
# right after it fills (and so is archived), and that answer costs no read and no parsing.
_RECENT = 256

# Rows are committed at least this often, so an account that never saves (a replay between
# checkpoints) holds a bounded amount of unwritten work in memory and in SQLite's cache.
_COMMIT_EVERY = 2_000

_PUT_ORDER = "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?)"
_ADD_RECEIVED = "INSERT INTO received (generation, doc) VALUES (?, ?)"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS orders (client_order_id TEXT PRIMARY KEY, generation INTEGER NOT NULL, "
    "order_doc TEXT NOT NULL, fills_doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS received (seq INTEGER PRIMARY KEY, generation INTEGER NOT NULL, doc TEXT NOT NULL)",
)


class ArchiveError(RuntimeError):
    """The paper broker's archive cannot be read, or does not match its state file."""


class OrderArchive:
    """Terminal orders and received requests of one paper account, in a SQLite file.

    ``path`` None: a temporary file, created on the first write. Used under the paper
    broker's lock (one thread at a time), from whichever thread holds it.
    """

    def __init__(self, path: Path | None, *, durable: bool) -> None:
        self._path = path
        self._durable = durable
        self._conn: sqlite3.Connection | None = None
        self._uncommitted = 0
        # Rows not yet handed to SQLite, as the objects they will be written from: written
        # together (one executemany a table instead of a statement a row, the documents
        # written in one loop) at the next commit, or before anything reads the file.
        self._orders: list[tuple[Order, tuple[Fill, ...], int]] = []
        self._received: list[tuple[Any, int]] = []
        self._cleanup: weakref.finalize[Any, Any] | None = None
        self._existed = path is not None and path.exists()
        self._recent: OrderedDict[str, tuple[Order, tuple[Fill, ...]]] = OrderedDict()
        # Client order ids archived by this process: a new order's id (the usual question)
        # is answered without a read. Ids archived before it started are read.
        self._seen = SeenIds()

    @property
    def path(self) -> Path | None:
        """Return the archive's file (None until a temporary archive is first written)."""
        return self._path

    def existed(self) -> bool:
        """Whether the archive's file was there when this archive was made."""
        return self._existed

    # --- writing ---------------------------------------------------------------------------------

    def put_order(self, order: Order, fills: Sequence[Fill], generation: int) -> None:
        """Keep a terminal order and its fills (replacing an earlier copy of the same order)."""
        recent = self._recent
        kept = (order, tuple(fills))
        self._seen.add(order.client_order_id)
        recent[order.client_order_id] = kept
        recent.move_to_end(order.client_order_id)
        if len(recent) > _RECENT:
            recent.popitem(last=False)
        self._orders.append((*kept, generation))
        self._added()

    def add_received(self, received: Any, generation: int) -> None:
        """Append one received request (a ``ReceivedOrder``) to the log."""
        self._received.append((received, generation))
        self._added()

    def _added(self) -> None:
        self._uncommitted += 1
        if self._uncommitted >= _COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        """Make every row written so far durable (a save's first step; it creates a persistent
        archive's file, which its state file then refers to)."""
        if self._conn is None and self._durable:
            self._open()
        self.write_pending()  # opens a temporary archive's file if it has rows to take
        if self._conn is not None:
            try:
                self._conn.commit()
            except sqlite3.Error as exc:
                raise ArchiveError(f"paper broker archive {self._path} cannot be committed: {exc}") from exc
            self._uncommitted = 0

    def forget_after(self, generation: int) -> None:
        """Drop rows newer than the state being loaded (written after its save completed)."""
        if not self._existed:
            return
        conn = self._open()
        self.write_pending()
        self._recent.clear()
        conn.execute("DELETE FROM orders WHERE generation > ?", (generation,))
        conn.execute("DELETE FROM received WHERE generation > ?", (generation,))
        conn.commit()

    # --- reading ---------------------------------------------------------------------------------

    def __contains__(self, client_order_id: str) -> bool:
        if client_order_id in self._recent:
            return True
        if not self._existed and client_order_id not in self._seen:
            return False
        self.write_pending()
        if self._conn is None:
            return False
        row = self._conn.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)).fetchone()
        return row is not None

    def order(self, client_order_id: str) -> tuple[Order, tuple[Fill, ...]] | None:
        """Return the archived order and its fills, or None if it is not here."""
        kept = self._recent.get(client_order_id)
        if kept is not None:
            return kept
        self.write_pending()
        if self._conn is None:
            return None
        row = self._conn.execute(
            "SELECT order_doc, fills_doc FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        if row is None:
            return None
        what = f"archived order {client_order_id} in {self._path}"
        try:
            order = structure(json.loads(row[0]), Order, what=what)
            fills = structure(json.loads(row[1]), list[Fill], what=f"fills of {what}")
        except (json.JSONDecodeError, StructureError) as exc:
            raise ArchiveError(f"{what} cannot be read: {exc}") from exc
        return order, tuple(fills)

    def received_docs(self) -> list[Any]:
        """Every received request's JSON document, in arrival order."""
        self.write_pending()
        if self._conn is None:
            return []
        return [json.loads(doc) for (doc,) in self._conn.execute("SELECT doc FROM received ORDER BY seq")]

    # --- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit and close; a temporary archive is removed."""
        self.write_pending()
        if self._conn is not None:
            self._conn.commit()
            self._conn.close()
            self._conn = None
        if self._cleanup is not None:
            self._cleanup()

    def write_pending(self) -> None:
        """Hand the rows kept in memory to SQLite, all or none (a failure keeps them all, to be
        written again by the next commit or read)."""
        orders, received = self._orders, self._received
        if not (orders or received):
            return
        conn = self._open()
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN")
            conn.execute("SAVEPOINT pending")
            try:
                if orders:
                    conn.executemany(_PUT_ORDER, [_order_row(*pending) for pending in orders])
                if received:
                    conn.executemany(_ADD_RECEIVED, [(generation, record_json(r)) for r, generation in received])
            except BaseException:  # a row that cannot be written, or serialised: none of them
                conn.execute("ROLLBACK TO pending")
                raise
            finally:
                conn.execute("RELEASE pending")
        except sqlite3.Error as exc:
            raise ArchiveError(f"paper broker archive {self._path} cannot be written: {exc}") from exc
        self._orders, self._received = [], []

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self._path is None:
            directory = tempfile.mkdtemp(prefix="tradekit-paper-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
            self._path = Path(directory) / "orders.db"
        try:
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level="DEFERRED")
            if self._durable:
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute("PRAGMA synchronous=FULL")
            else:
                # Nothing to survive a crash (a temporary archive), but a failed batch must still
                # roll back (with the journal OFF, SQLite's ROLLBACK is undefined).
                conn.execute("PRAGMA journal_mode=MEMORY")
                conn.execute("PRAGMA synchronous=OFF")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.commit()
        except sqlite3.Error as exc:
            raise ArchiveError(f"paper broker archive {self._path} cannot be opened: {exc}") from exc
        self._conn = conn
        return conn


def _order_row(order: Order, fills: tuple[Fill, ...], generation: int) -> tuple[str, int, str, str]:
    return (
        order.client_order_id,
        generation,
        record_json(order),
        "[" + ",".join([record_json(fill) for fill in fills]) + "]",
    )
