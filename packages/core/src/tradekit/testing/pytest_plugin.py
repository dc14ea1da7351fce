"""Pytest fixtures for testing tradekit plugins (auto-loaded through ``pytest11``)."""

from __future__ import annotations

import pytest

from tradekit.plugins import Plugins


@pytest.fixture
def tradekit_plugins() -> Plugins:
    """A plugin manager with tradekit's built-ins only: no installed entry points."""
    return Plugins(load_entrypoints=False, env={})
