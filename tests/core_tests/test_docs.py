"""The plugin guide documents every hook (datasette's rule: no hook without docs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradekit.plugins import hook_names

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_there_are_hooks_to_document() -> None:
    assert {"evaluate_buy", "size_position", "on_reconcile", "on_exit_intent"} <= set(hook_names())


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_section_in_the_plugin_guide(hook: str) -> None:
    headings = re.findall(r"^### (\w+)\s*$", DOCS.read_text(), flags=re.MULTILINE)
    assert hook in headings, f"docs/plugins.md has no '### {hook}' section"
