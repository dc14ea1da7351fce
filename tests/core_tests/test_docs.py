"""The plugin guide documents every hook (datasette's rule: no hook without docs)."""

from __future__ import annotations

import importlib
import re
import sys
import types
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


GUIDES = ("plugins.md", "strategies.md")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("guide", GUIDES)
def test_the_python_examples_of_a_guide_run_in_order(guide: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block runs, top to bottom, in one module: the examples build on each
    other the way a reader follows them, and their asserts say what they show."""
    blocks = python_blocks((DOCS.parent / guide).read_text())
    assert blocks, f"docs/{guide} has no python example"
    module = types.ModuleType(f"docs_{guide.removesuffix('.md')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setenv("TRADEKIT_CONFIG", "")
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"docs/{guide} python block {number}", "exec")
        exec(code, module.__dict__)


@pytest.mark.parametrize(
    "module", ["tradekit", "tradekit.strategy", "tradekit.domain", "tradekit.decision", "tradekit.testing"]
)
def test_every_public_name_of_the_sdk_is_in_the_reference(module: str) -> None:
    reference = (DOCS.parent / "strategies.md").read_text().split("## Reference: every public name", 1)[1]
    missing = [name for name in importlib.import_module(module).__all__ if f"`{name}`" not in reference]
    assert not missing, f"docs/strategies.md's reference lacks {module}'s {missing}"
