"""Fixtures for the core tests: the ledger on both real backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tradekit.ledger import Ledger

PG_URL = os.environ.get("TK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception:  # noqa: BLE001 - any failure means "no server"
        return False
    return True


def require_postgres() -> None:
    """Skip without a server on a developer machine; fail under CI, where one must exist."""
    if postgres_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI=true but the PostgreSQL server at {PG_URL} is unreachable")
    pytest.skip(f"no PostgreSQL server at {PG_URL}")


LedgerFactory = Callable[[], Ledger]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerFactory]:
    """Open (and reopen, as after a restart) one ledger on the parametrized backend."""
    opened: list[Ledger] = []
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'ledger.db'}", None
    else:
        require_postgres()
        url, schema = PG_URL, f"tk_test_{uuid.uuid4().hex[:12]}"

    def factory() -> Ledger:
        ledger = Ledger.open(url, schema=schema)
        opened.append(ledger)
        return ledger

    yield factory
    if schema is not None:
        factory().drop_schema()
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(ledger_factory: LedgerFactory) -> Ledger:
    return ledger_factory()


CHROMIUM = Path(os.environ.get("TK_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium() -> None:
    """Skip without the system's Chromium on a developer machine; fail under CI, where nox installs it."""
    if CHROMIUM.exists():
        return
    why = f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium; nox -s tests installs it as root)"
    if os.environ.get("CI"):
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def open_offline(
    browser: Any, page: Path, outside_requests: list[str], *, width: int = 1400, height: int = 1000
) -> Any:
    """``page`` (a file) open in a new tab of ``browser``, BokehJS drawn; every request for
    anything but the file is refused and noted in ``outside_requests``."""
    opened = browser.new_page(viewport={"width": width, "height": height})

    def only_the_file(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    opened.route("**/*", only_the_file)
    opened.goto(page.resolve().as_uri())
    opened.wait_for_function("() => window.Bokeh !== undefined && Bokeh.index.roots.length > 0")
    return opened
