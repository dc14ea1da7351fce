"""Derive tradekit's shipped daily bars from the public-domain Quandl WIKI sample.

Source: the PyPI package ``bokeh-sampledata`` (``bokeh_sampledata/_data/stocks.csv.gz``),
Quandl WIKI prices, declared public domain by Quandl. We keep AAPL, IBM, MSFT and GOOG
(2000-03-01 .. 2013-03-01 where available) and split/dividend-adjust open, high, low and close
with the source's ``adj_close / close`` ratio, so that a 2:1 split is not read as a crash.
Volume is scaled by the inverse ratio. Prices are rounded to 4 decimals.

Run: ``pip install bokeh-sampledata && python scripts/derive_sample_data.py``
"""

from __future__ import annotations

import csv
import gzip
import io
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import bokeh_sampledata

SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")
OUT = Path(__file__).resolve().parents[1] / "packages/core/src/tradekit/data/daily_bars.csv.gz"
Q = Decimal("0.0001")


def main() -> None:
    source = Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"
    rows: list[list[str]] = []
    with gzip.open(source, "rt", newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["Ticker"] not in SYMBOLS:
                continue
            close, adj = Decimal(rec["Close"]), Decimal(rec["Adj Close"])
            ratio = adj / close
            prices = [(Decimal(rec[k]) * ratio).quantize(Q, ROUND_HALF_EVEN) for k in ("Open", "High", "Low", "Close")]
            volume = (Decimal(rec["Volume"]) / ratio).quantize(Decimal(1))
            rows.append([rec["Ticker"], rec["Date"], *map(str, prices), str(volume)])
    rows.sort(key=lambda r: (r[0], r[1]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["symbol", "date", "open", "high", "low", "close", "volume"])
    writer.writerows(rows)
    # mtime=0: the same input always gives byte-identical output.
    OUT.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
    print(f"wrote {len(rows)} bars for {', '.join(SYMBOLS)} to {OUT}")


if __name__ == "__main__":
    main()
