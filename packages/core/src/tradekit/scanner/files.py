"""The candidates file: written atomically, read with a clear error when it is missing or bad."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tradekit.config.settings import Settings
from tradekit.scanner.models import ScanResult
from tradekit.serialization import StructureError, structure, unstructure


def write_candidates(path: Path, result: ScanResult) -> None:
    """Write atomically: a trader reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".candidates-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(unstructure(result), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_candidates(path: Path) -> ScanResult:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"candidates file {path} does not exist: run `tradekit scan` first") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"candidates file {path} is not valid JSON: {exc}") from None
    try:
        return structure(data, ScanResult, what=f"candidates file {path}")
    except StructureError as exc:
        raise ValueError(str(exc)) from None


def focus_symbols(settings: Settings) -> tuple[str, ...]:
    """What to trade: the scanner's candidates plus baseline when scanning is on, else the
    configured symbols."""
    if not settings.scanner.enabled:
        return settings.symbols
    return read_candidates(Path(settings.scanner.candidates_file)).symbols
