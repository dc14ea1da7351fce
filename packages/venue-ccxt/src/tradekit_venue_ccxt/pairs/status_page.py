"""The ``pairs`` page of ``tradekit serve``: the open perp pairs, as ``tradekit pairs positions`` lists them.

Registered through ``register_status_pages`` (the way a rule plugin adds a rule): the core
server renders the table and serves the data at ``/api/pages/pairs``, read-only.
"""

from __future__ import annotations

from tradekit.config.settings import SettingsError
from tradekit.serialization import unstructure
from tradekit.serve.pages import PageContent, PageRequest, StatusPage, StatusTable
from tradekit_venue_ccxt.config import load_ccxt_settings
from tradekit_venue_ccxt.pairs import view
from tradekit_venue_ccxt.pairs.models import PairStatus
from tradekit_venue_ccxt.pairs.store import PairStore, PairStoreError
from tradekit_venue_ccxt.pairs.view import PairRow, position_rows

# The positions command's columns, and when the spread and P&L were last marked.
COLUMNS = (*view.COLUMNS, "marked")


def _cells(row: PairRow) -> tuple[str, ...]:
    cells = view.row_cells(row)
    pair = f"{cells[0]} ({row.long_venue} long / {row.short_venue} short)"
    return (pair, *cells[1:], row.marked_at.isoformat(timespec="minutes") if row.marked_at else "-")


def read_pairs_page(request: PageRequest) -> PageContent:
    """The open pairs (those being closed included) in the ledger's database."""
    try:
        config = load_ccxt_settings(request.settings).pairs
    except SettingsError:
        config = None  # the rows then show what the pair tables alone say
    try:
        store = PairStore.open(request.ledger_url, create=False)
    except PairStoreError:
        return PageContent(
            table=StatusTable(columns=COLUMNS), data=[], summary="No perp pair has been traded with this ledger."
        )
    with store:
        rows = position_rows(store, now=request.now, status=PairStatus.OPEN, config=config)
    naked = sum(1 for row in rows if row.naked)
    summary = f"{len(rows)} open pair{'s' if len(rows) != 1 else ''}" + (f", {naked} with a naked leg" if naked else "")
    return PageContent(
        table=StatusTable(columns=COLUMNS, rows=[_cells(row) for row in rows]),
        data=[unstructure(row) for row in rows],
        summary=summary,
    )


PAIRS_PAGE = StatusPage(
    name="pairs",
    title="perp pairs",
    read=read_pairs_page,
    description="Open perp pair trades (tradekit-venue-ccxt): entries, spreads, funding, P&L, force-close time.",
)
