"""Pages a plugin adds to ``tradekit serve`` (the ``register_status_pages`` hook).

A plugin gives data, never HTML: a ``StatusPage`` names the page and how to read it; its
``read`` returns a ``PageContent`` (a summary line, a table of text cells, and JSON-ready
data). The server renders the table in its own template (escaped) at ``/pages/NAME`` and
returns the data at ``/api/pages/NAME``, both read-only like every other page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from tradekit.domain.values import str_tuple

if TYPE_CHECKING:
    from tradekit.config.settings import Settings

_PAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _page_name(_inst: Any, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not _PAGE_NAME.match(value):
        raise ValueError(f"status page name {value!r} must be lower-case letters, digits and dashes (a URL part)")


def _rows(rows: Any) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(str(cell) for cell in row) for row in rows)


@attrs.frozen(kw_only=True)
class StatusTable:
    """Rows of text cells under column headings."""

    columns: tuple[str, ...] = attrs.field(converter=str_tuple)
    rows: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_rows)

    def __attrs_post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a status table row has {len(row)} cells for {len(self.columns)} columns: {row}")


@attrs.frozen(kw_only=True)
class PageContent:
    """What a page shows: one summary line, a table, and the same facts as JSON-ready data."""

    table: StatusTable
    data: Any
    summary: str = ""


@attrs.frozen(kw_only=True)
class PageRequest:
    """What a page is read with. ``ledger_url`` is the full URL (a password included, to
    open the plugin's own tables in the same database): never put it in the content."""

    ledger_url: str
    settings: Settings
    now: datetime


@attrs.frozen(kw_only=True)
class StatusPage:
    """A page of ``tradekit serve``: ``/pages/NAME`` (HTML) and ``/api/pages/NAME`` (JSON)."""

    name: str = attrs.field(validator=_page_name)
    title: str
    read: Callable[[PageRequest], PageContent]
    description: str = ""
