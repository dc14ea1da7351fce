"""The fault x kill campaign: ``python -m chaos`` (``nox -s chaos``), seeded and replayable.

Each run prints its seed and the command that replays it; a violation names the invariant,
the seed and what the run saw, and points at the run's narrative (every moment, call, fault,
kill and exit, in order).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from chaos.alpaca_campaign import run_alpaca
from chaos.pairs_campaign import run_pairs
from chaos.runs import Backend, RunResult
from chaos.world import RUN_SESSIONS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="first run's seed (default: random)")
    parser.add_argument("--runs", type=int, default=1, help="how many runs (seeds seed, seed+1, ...)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--venue", choices=("alpaca", "pairs"), default="alpaca", help="Alpaca stocks, or perp pairs on Binance/Bybit"
    )
    parser.add_argument("--sessions", type=int, default=RUN_SESSIONS, help="sessions per Alpaca run")
    parser.add_argument("--calm", action="store_true", help="no faults and no kills (the trader's own course)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep each run's files here")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each mostly waits on its trader)")
    return parser


def run_one(args: argparse.Namespace, seed: int, workdir: Path) -> RunResult:
    backend = Backend(args.backend, args.pg_url)
    if args.venue == "pairs":
        return run_pairs(seed, workdir, backend, calm=args.calm)
    return run_alpaca(seed, workdir, backend, args.sessions, calm=args.calm)


def _print_result(seed: int, result: RunResult) -> None:
    status = "ok" if not result.violations else f"{len(result.violations)} VIOLATIONS"
    print(
        f"seed {seed}: {status} in {result.seconds:.1f} s, {len(result.faults)} faults, "
        f"{len(result.kills)} kills; replay: {result.replay}",
        flush=True,
    )
    if result.course:
        print(f"    course: {result.course}")
    for kill in result.kills:
        print(f"    kill: {kill}")
    for violation in result.violations:
        print(f"    VIOLATION {violation.invariant} (seed {seed}): {violation.saw}")
    if result.violations:
        print(f"    faults: {', '.join(result.faults) or 'none'}")
        print(f"    narrative: {result.narrative_path}", flush=True)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="tradekit-chaos-"))
    by_invariant: dict[str, list[int]] = defaultdict(list)
    seconds: list[float] = []
    started = time.monotonic()
    seeds = list(range(first, first + args.runs))
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, args, seed, root / f"run-{seed}") for seed in seeds]
        for seed, future in zip(seeds, futures, strict=True):
            result = future.result()
            seconds.append(result.seconds)
            _print_result(seed, result)
            for violation in result.violations:
                by_invariant[violation.invariant].append(seed)
    total = time.monotonic() - started
    print(
        f"\n{args.runs} runs ({args.venue}, {args.backend}) in {total:.0f} s, "
        f"{sum(seconds) / max(1, len(seconds)):.1f} s per run"
    )
    for invariant, seeds in sorted(by_invariant.items()):
        unique = sorted(set(seeds))
        print(f"  {invariant}: {len(seeds)} violations in {len(unique)} runs, seeds {unique}")
    if not by_invariant:
        print("  no violation")
    return 1 if by_invariant else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
