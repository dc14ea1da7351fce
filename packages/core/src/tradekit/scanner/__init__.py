"""The scanner: rank symbols, write a candidates file, trade only the candidates.

A candidate carries the price and time it was scanned at, so a signal built from it is
judged by the same freshness rules as any other (too old, or the price gapped away: SKIP).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import attrs

from tradekit.config.settings import Settings
from tradekit.domain.market import Bar
from tradekit.domain.values import positive, to_utc, utc
from tradekit.hookspecs import hookimpl
from tradekit.plugins import Plugins
from tradekit.serialization import StructureError, structure, unstructure

MOMENTUM_LOOKBACK = 20


@attrs.frozen(kw_only=True)
class Candidate:
    symbol: str
    score: Decimal
    scan_price: Decimal = attrs.field(validator=positive)
    scanned_at: datetime = attrs.field(converter=to_utc, validator=utc)
    reason: str = ""


@attrs.frozen(kw_only=True)
class ScanResult:
    scanned_at: datetime = attrs.field(converter=to_utc, validator=utc)
    candidates: tuple[Candidate, ...]
    baseline: tuple[str, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        ranked = tuple(c.symbol for c in self.candidates)
        return ranked + tuple(s for s in self.baseline if s not in ranked)


@hookimpl(trylast=True)
def scan_candidates(bars: Mapping[str, Sequence[Bar]], as_of: datetime, top_n: int) -> list[Candidate] | None:
    """The built-in ranking: 20-day momentum (close over close 20 bars earlier)."""
    scored: list[Candidate] = []
    for symbol, series in bars.items():
        # A replay hands over views that already end at as_of: no copy needed then.
        upto = series if series and series[-1].time <= as_of else [b for b in series if b.time <= as_of]
        if len(upto) <= MOMENTUM_LOOKBACK:
            continue
        last, then = upto[-1], upto[-1 - MOMENTUM_LOOKBACK]
        score = last.close / then.close - 1
        scored.append(
            Candidate(
                symbol=symbol,
                score=score,
                scan_price=last.close,
                scanned_at=last.time,
                reason=f"{MOMENTUM_LOOKBACK}-day momentum {score * 100:+.2f}%",
            )
        )
    scored.sort(key=lambda c: (-c.score, c.symbol))
    return scored[:top_n]


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
