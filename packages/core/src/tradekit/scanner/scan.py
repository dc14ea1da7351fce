"""Run the scanner: rank through the plugins, keep the top N, add the baseline, write the file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from tradekit.config.settings import Settings
from tradekit.domain.market import Bar
from tradekit.plugins import Plugins
from tradekit.scanner.files import write_candidates
from tradekit.scanner.models import ScanResult


def run_scan(
    plugins: Plugins,
    bars: Mapping[str, Sequence[Bar]],
    settings: Settings,
    path: Path,
    *,
    top_n: int | None = None,
    as_of: datetime | None = None,
) -> ScanResult:
    """Rank, keep the top N, add the baseline symbols, and write the candidates file."""
    moment = as_of or max(series[-1].time for series in bars.values() if series)
    candidates = plugins.scan_candidates(bars, moment, top_n or settings.scanner.top_n)
    result = ScanResult(scanned_at=moment, candidates=tuple(candidates), baseline=settings.scanner.baseline_symbols)
    write_candidates(path, result)
    return result
