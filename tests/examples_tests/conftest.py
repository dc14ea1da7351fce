"""Fixtures of the command-line tests: a small slice of the shipped bars."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

ENV = {"TRADEKIT_LOAD_PLUGINS": "examples", "TRADEKIT_CONFIG": ""}


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """Two years of IBM and MSFT, cut from the shipped file."""
    from importlib.resources import files

    raw = gzip.decompress(files("tradekit.data").joinpath("daily_bars.csv.gz").read_bytes()).decode().splitlines()
    rows = [r for r in csv.reader(raw[1:]) if r[0] in ("IBM", "MSFT") and "2006-01-01" <= r[1] <= "2007-12-31"]
    path = tmp_path / "bars.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(raw[0].split(","))
        writer.writerows(rows)
    return path
