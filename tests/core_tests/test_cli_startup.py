"""Commands that touch no ledger start without loading what only the ledger and the calendar need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "exchange_calendars", "pandas", "tradekit.ledger", "tradekit.decision.engine")

PROBE = """
import json, sys
from tradekit.cli import main
sys.argv = ["tradekit", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--version"], ["halt", "--help"], ["trades", "--help"], ["config", "--help"]])
def test_a_command_that_touches_no_ledger_does_not_import_sqlalchemy_or_the_calendars(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert loaded == [], f"tradekit {' '.join(args)} imported {loaded}"
