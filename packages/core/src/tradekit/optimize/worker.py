"""A worker process: ``python -m tradekit.optimize.worker --study NAME`` joins a study and runs
its queued trials until none is left (``tradekit optimize run --workers N`` starts N).

The storage URL comes in the environment (``TRADEKIT_OPTIMIZE_STORAGE``), not on the
command line, where ``ps`` would show its password to every user of the machine. The
problem is read from the study itself, so a worker needs nothing else.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta

from tradekit.optimize.problem import prepare
from tradekit.optimize.study import (
    StorageOptions,
    StudyError,
    Worker,
    check_same,
    close_storage,
    open_storage,
    stored_problem,
)
from tradekit.plugins import Plugins

STORAGE_ENV = "TRADEKIT_OPTIMIZE_STORAGE"


def command(options: StorageOptions, study: str) -> list[str]:
    """The arguments of a worker process for ``study`` (the storage URL goes in the environment)."""
    args = ["--study", study, "--max-retry", str(options.max_retry)]
    args += ["--heartbeat", str(options.heartbeat or 0)]
    if options.grace:
        args += ["--grace", str(options.grace)]
    if options.trial_timeout is not None:
        args += ["--trial-timeout", str(options.trial_timeout.total_seconds())]
    return args


def spawn(
    options: StorageOptions,
    study: str,
    count: int,
    *,
    program: Sequence[str] = (sys.executable, "-m", "tradekit.optimize.worker"),
    env: Mapping[str, str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` worker processes on ``study`` (the study must exist: its creator made it)."""
    environment = {**(os.environ if env is None else env), STORAGE_ENV: options.url}
    return [
        subprocess.Popen([*program, *command(options, study)], env=environment, stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, *, plugins: Plugins | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradekit.optimize.worker")
    parser.add_argument("--study", required=True)
    parser.add_argument("--heartbeat", type=int, default=10)
    parser.add_argument("--grace", type=int, default=None)
    parser.add_argument("--max-retry", type=int, default=2)
    parser.add_argument("--trial-timeout", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("TRADEKIT_LOG_LEVEL", "WARNING").upper(), stream=sys.stderr)
    # Taken out of the environment: it is not a setting (the configuration would refuse a
    # TRADEKIT_ variable it does not know), and the rest of the process has no need of it.
    url = os.environ.pop(STORAGE_ENV, None)
    if not url:
        print(f"{STORAGE_ENV} must hold the study storage URL", file=sys.stderr)
        return 2
    options = StorageOptions(
        url=url,
        heartbeat=args.heartbeat or None,
        grace=args.grace,
        max_retry=args.max_retry,
        trial_timeout=timedelta(seconds=args.trial_timeout) if args.trial_timeout else None,
    )
    try:
        storage = open_storage(options, create_tables=False)
    except ValueError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 1
    try:
        found = stored_problem(storage, args.study)
        if found is None:
            raise StudyError(f"no study {args.study!r} to join: create it first (tradekit optimize run)")
        prepared = prepare(found[0], plugins)
        check_same(args.study, found, prepared)
        # Stopped (the parent's Ctrl-C or terminate()): the running trial is queued again.
        signal.signal(signal.SIGTERM, _interrupt)
        Worker(storage=storage, study=args.study, prepared=prepared, options=options).run()
    except ValueError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        close_storage(storage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
