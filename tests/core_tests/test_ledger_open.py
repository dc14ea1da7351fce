"""Opening a ledger never silently creates, replaces or half-reads one.

A read-only open of a missing path, a 0-byte file or a database without tradekit's tables
is an error naming it; every open checks that each table and index of the current schema
(read from ``tradekit.ledger.schema.metadata``) is there and whole.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tradekit.ledger import (
    Ledger,
    LedgerConnectionError,
    LedgerCorruptError,
    LedgerNotFoundError,
    LedgerVersionError,
)
from tradekit.ledger import schema as t

from .conftest import PG_URL, require_postgres
from .test_ledger import buy_intent

TABLES = sorted(t.metadata.tables)
INDEX = "ix_tk_order_intents_created"
INDEXES = sorted((str(ix.name), table.name) for table in t.metadata.sorted_tables for ix in table.indexes)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    """A ledger file holding one order intent."""
    path = tmp_path / "ledger.db"
    with Ledger.open(f"sqlite:///{path}") as ledger, ledger.transaction() as tx:
        tx.record_intent(buy_intent())
    return path


def test_a_read_only_open_of_a_missing_file_names_it_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"

    with pytest.raises(LedgerNotFoundError, match=f"no ledger at {path}: the file does not exist"):
        Ledger.open(f"sqlite:///{path}", create=False)

    assert list(tmp_path.iterdir()) == []


def test_a_read_only_open_in_a_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(LedgerNotFoundError, match="does not exist"):
        Ledger.open(str(tmp_path / "nowhere" / "ledger.db"), create=False)


@pytest.mark.parametrize("create", [True, False])
def test_a_zero_byte_file_is_never_taken_as_a_ledger(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "ledger.db"
    path.touch()

    with pytest.raises(LedgerCorruptError, match=f"ledger {path} is an empty file \\(0 bytes\\)"):
        Ledger.open(f"sqlite:///{path}", create=create, for_trading=create)

    assert path.stat().st_size == 0


def test_a_bare_path_is_a_sqlite_ledger(ledger_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ledger_path.parent)

    with Ledger.open(ledger_path.name, create=False) as ledger, ledger.reading() as tx:
        assert tx.intent(buy_intent().client_order_id) is not None
        assert ledger.backend == "sqlite"


def test_a_database_without_tradekit_tables_is_no_ledger_to_read(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")

    with pytest.raises(LedgerNotFoundError, match="holds no tradekit tables"):
        Ledger.open(f"sqlite:///{path}", create=False)

    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["notes"]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("create", [True, False])
def test_a_dropped_table_is_a_clear_error_and_is_not_recreated(ledger_path: Path, table: str, create: bool) -> None:
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(f'DROP TABLE "{table}"')

    expected = "holds tradekit tables .* but no schema version" if table == t.meta.name else f"table {table} is missing"
    with pytest.raises((LedgerCorruptError, LedgerVersionError), match=expected):
        Ledger.open(f"sqlite:///{ledger_path}", create=create)

    with sqlite3.connect(ledger_path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (table,)).fetchone() == (0,)


@pytest.mark.parametrize(("index", "table"), INDEXES)
def test_a_dropped_index_is_a_clear_error(ledger_path: Path, index: str, table: str) -> None:
    with sqlite3.connect(ledger_path) as conn:
        conn.execute(f'DROP INDEX "{index}"')

    with pytest.raises(LedgerCorruptError, match=f"index {index} \\(on {table}\\) is missing"):
        Ledger.open(f"sqlite:///{ledger_path}", create=False)


def test_an_emptied_index_is_a_clear_error(ledger_path: Path) -> None:
    # Swap the index's b-tree with an empty one, as a damaged page or a hand-edited schema
    # would: the file still passes PRAGMA quick_check, but lookups through the index find nothing.
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("CREATE TABLE spare (v TEXT)")
        conn.execute("CREATE INDEX spare_ix ON spare (v)")
        roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'index'").fetchall())
        conn.execute("PRAGMA writable_schema = ON")
        for name, root in ((INDEX, roots["spare_ix"]), ("spare_ix", roots[INDEX])):
            conn.execute("UPDATE sqlite_master SET rootpage = ? WHERE name = ?", (root, name))
        conn.execute("PRAGMA writable_schema = OFF")
    with sqlite3.connect(ledger_path) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)

    with pytest.raises(LedgerCorruptError, match=f"index {INDEX} holds 0 of the 1 rows"):
        Ledger.open(f"sqlite:///{ledger_path}", create=False)


def test_a_newer_schema_version_names_both_versions(ledger_path: Path) -> None:
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("UPDATE tk_meta SET value = '7' WHERE key = 'schema_version'")

    with pytest.raises(LedgerVersionError, match=f"schema version 7, newer than .*\\({t.SCHEMA_VERSION}\\)"):
        Ledger.open(f"sqlite:///{ledger_path}", create=False)


def test_a_postgres_ledger_without_the_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes `import psycopg` fail as it does when the extra is not installed.
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(LedgerConnectionError, match=r"pip install 'tradekit\[postgres\]'"):
        Ledger.open("postgresql+psycopg://trader@127.0.0.1:5432/ledger", create=False)


def test_a_postgres_url_with_another_driver_is_refused() -> None:
    with pytest.raises(LedgerConnectionError, match="postgresql\\+psycopg://"):
        Ledger.open("postgresql+psycopg2://trader@127.0.0.1:5432/ledger")


@pytest.mark.postgres
def test_a_postgres_ledger_missing_a_table_is_refused_and_an_absent_one_is_not_created() -> None:
    require_postgres()
    schema = f"tk_test_{uuid.uuid4().hex[:12]}"
    with pytest.raises(LedgerNotFoundError, match="holds no tradekit tables"):
        Ledger.open(PG_URL, schema=schema, create=False)
    try:
        Ledger.open(PG_URL, schema=schema).close()
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP TABLE "{schema}".tk_fills')
        engine.dispose()
        with pytest.raises(LedgerCorruptError, match="table tk_fills is missing"):
            Ledger.open(PG_URL, schema=schema, create=False)
    finally:
        _drop(schema)


def _drop(schema: str) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()
