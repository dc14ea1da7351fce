"""The scanner: rank symbols, write a candidates file, trade only the candidates.

A candidate carries the price and time it was scanned at, so a signal built from it is
judged by the same freshness rules as any other (too old, or the price gapped away: SKIP).
The built-in ranking (``tradekit.scanner.ranking``, 20-day momentum) is a plugin like the
built-in buy rules; ``tradekit.scanner.scan.run_scan`` ranks through the plugins and writes
the file; ``tradekit.scanner.files`` reads and writes it.
"""

from tradekit.scanner.files import focus_symbols, read_candidates, write_candidates
from tradekit.scanner.models import Candidate, ScanResult

__all__ = ["Candidate", "ScanResult", "focus_symbols", "read_candidates", "write_candidates"]
