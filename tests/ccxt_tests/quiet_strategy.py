"""A strategy plugin installed for one test through a real entry point (a dist-info on sys.path).

The ccxt distribution ships no strategy, but ``tradekit run --broker ccxt-...`` needs one:
``install_quiet_strategy`` writes a package and its ``.dist-info`` (``entry_points.txt``)
into a directory and puts it on the path, so ``importlib.metadata`` finds the plugin exactly
as it finds an installed one (and a child process started with that ``PYTHONPATH`` too).
"""

from __future__ import annotations

from pathlib import Path

PLUGIN_NAME = "quiet"
_MODULE = "tradekit_test_quiet_strategy"
_SOURCE = '''
from tradekit.hookspecs import hookimpl
from tradekit.strategy import Strategy


class Quiet(Strategy):
    """Trades nothing: the runs that use it exercise the venue, not a strategy."""

    name = "quiet"
    description = "never signals"

    def on_bar(self, view):
        return []


@hookimpl
def register_strategies(register):
    register(Quiet)
'''


def install_quiet_strategy(directory: Path) -> Path:
    """Write the plugin into ``directory`` and return it (put it on ``sys.path`` / ``PYTHONPATH``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{_MODULE}.py").write_text(_SOURCE)
    info = directory / f"{_MODULE}-0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {_MODULE}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[tradekit]\n{PLUGIN_NAME} = {_MODULE}\n")
    return directory
