"""The ``tradekit`` command line (click + rich)."""

from tradekit.cli.main import cli, main

__all__ = ["cli", "main"]
