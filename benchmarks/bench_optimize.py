"""Search throughput: trials per minute of ``tradekit optimize run`` on the shipped data.

Each trial is one full paper replay of the example ``pyramid`` strategy over all the shipped
bars (4 symbols, 11,958 daily bars), its scaling policy searched by random sampling (the
sampler's own cost is negligible beside a replay). The same budget runs in one process and
then with ``--workers N`` local processes on one SQLite study; the figure is trials per minute
of wall-clock time, from the command's start (Python, the data, the study) to its end, as a
user waits for it.

Run with ``nox -s bench`` or ``python benchmarks/bench_optimize.py [--trials 6] [--workers 2]``
(needs ``tradekit[optimize]`` and ``tradekit-strategies-examples``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """
[policy]
max_entries = { low = 2, high = 5 }
price_step_pct = { low = "1", high = "5", step = "1" }
min_bars_between_entries = { low = 0, high = 5 }
"""


def run(trials: int, workers: int, folder: Path) -> tuple[float, dict[str, object]]:
    """Seconds a ``tradekit optimize run`` of ``trials`` takes, and its JSON answer."""
    space = folder / "space.toml"
    space.write_text(SPACE)
    command = [
        sys.executable, "-c", "from tradekit.cli import main; main()",
        "optimize", "run", "--strategy", "pyramid", "--space", str(space), "--sampler", "random",
        "--trials", str(trials), "--workers", str(workers), "--study", f"bench-{workers}",
        "--storage", f"sqlite:///{folder / f'bench-{workers}.db'}", "--json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    answer: dict[str, object] = json.loads(done.stdout)
    return elapsed, answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6, help="trials per run (default 6)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the parallel run (default 2)")
    args, _ = parser.parse_known_args()  # nox -s bench passes every script the same arguments
    print(f"tradekit optimize run: pyramid over the shipped bars, {args.trials} trials (random sampler, SQLite)")
    with tempfile.TemporaryDirectory(prefix="bench-optimize-") as scratch:
        baseline: float | None = None
        for workers in (1, args.workers):
            elapsed, answer = run(args.trials, workers, Path(scratch))
            trials = answer["trials"]
            assert isinstance(trials, list)
            complete = sum(1 for t in trials if t["state"] == "COMPLETE")
            seconds = [t["seconds"] for t in trials if t["seconds"] is not None]
            rate = complete / elapsed * 60
            speedup = f", {rate / baseline:.2f}x one process" if baseline else ""
            print(
                f"  {'1 process ' if workers == 1 else f'{workers} workers'}: {complete} trials in {elapsed:6.1f} s "
                f"= {rate:5.2f} trials/min{speedup} (a trial: {sum(seconds) / len(seconds):.1f} s on average)"
            )
            baseline = baseline or rate


if __name__ == "__main__":
    main()
