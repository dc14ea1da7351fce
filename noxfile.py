"""Sessions for the tradekit monorepo.

``nox -s tests typecheck`` is what a new user and CI run. Each distribution is tested in a
virtualenv of its own with only what it declares installed (plus the test tools), so an
undeclared dependency fails its tests instead of hiding behind another package's.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

CORE = "./packages/core[postgres,parquet,optimize]"
EXAMPLES = "./packages/strategies-examples"
ALPACA = "./packages/broker-alpaca"
CCXT = "./packages/venue-ccxt"

# distribution under test -> (what to install, which test folder)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "core": ((CORE,), "tests/core_tests"),
    "examples": ((CORE, EXAMPLES), "tests/examples_tests"),
    # The Alpaca end-to-end tests run an example strategy through `tradekit run --broker alpaca`.
    "alpaca": ((CORE, EXAMPLES, ALPACA), "tests/alpaca_tests"),
    "ccxt": ((CORE, CCXT), "tests/ccxt_tests"),
}


def _install_group(session: nox.Session, group: str) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, group))


CHROMIUM = Path("/usr/bin/chromium")


def _ensure_chromium(session: nox.Session) -> None:
    """Install Debian's Chromium for the report tests (as root; nothing is downloaded by Playwright)."""
    if CHROMIUM.exists():
        return
    if os.name != "posix" or os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists():
        session.warn(f"{CHROMIUM} is missing and cannot be installed here: the browser tests skip (CI fails)")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run("apt-get", "install", "-y", "-q", "chromium", external=True, env=env)


@nox.session
@nox.parametrize("dist", list(DISTRIBUTIONS))
def tests(session: nox.Session, dist: str) -> None:
    """Test one distribution in its own virtualenv (built from its wheel, not the tree)."""
    packages, folder = DISTRIBUTIONS[dist]
    if dist == "core":
        _ensure_chromium(session)
    _install_group(session, "test")
    # --force-reinstall of our own packages only: a reused venv must test the current tree.
    session.install("--force-reinstall", "--no-deps", *[p.split("[")[0] for p in packages])
    session.install(*packages)
    session.run("pytest", folder, *session.posargs, env={"PYTHONHASHSEED": "0"})


@nox.session
def typecheck(session: nox.Session) -> None:
    """One mypy --strict pass over every src tree, the tests, the benchmarks and this file."""
    _install_group(session, "typecheck")
    _install_group(session, "test")
    _install_group(session, "bench")
    session.install("-e", CORE, "-e", EXAMPLES, "-e", ALPACA, "-e", CCXT)
    session.run(
        "mypy",
        "packages/core/src",
        "packages/strategies-examples/src",
        "packages/broker-alpaca/src",
        "packages/venue-ccxt/src",
        "tests",
        "benchmarks",
        "noxfile.py",
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff over the whole repository."""
    _install_group(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print their figures (not part of the test run).

    ``nox -s bench`` runs every benchmark with its defaults; ``nox -s bench -- replay
    --tiled-bars 50000`` runs one (``bench_replay.py``) with its own options (each script's
    ``--help`` lists them).
    """
    _install_group(session, "bench")  # the peers bench_peers.py compares with (never a runtime dependency)
    session.install(CORE, EXAMPLES)
    scripts = {p.stem.removeprefix("bench_"): p for p in sorted((ROOT / "benchmarks").glob("bench_*.py"))}
    if not session.posargs:
        for script in scripts.values():
            session.run("python", str(script))
        return
    name, *options = session.posargs
    chosen = scripts.get(name.removeprefix("bench_").removesuffix(".py"))
    if chosen is None:
        session.error(f"no benchmark {name!r}: name one of {', '.join(scripts)} first, then its options")
    session.run("python", str(chosen), *options)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the main job: a paper-trading run on the shipped bars, no credentials."""
    session.install(CORE, EXAMPLES)
    session.run(
        "tradekit",
        "run",
        *session.posargs,
        env={"TRADEKIT_LOG_LEVEL": os.environ.get("TRADEKIT_LOG_LEVEL", "WARNING")},
    )


@nox.session
def chaos(session: nox.Session) -> None:
    """The randomized fault x kill campaign against the emulators (figures and violations).

    ``nox -s chaos -- --seed 7 --runs 50 --backend sqlite|postgres --venue alpaca|pairs --jobs 3``;
    every run prints the command that replays it.
    """
    _install_group(session, "test")
    session.install("--force-reinstall", "--no-deps", CORE.split("[")[0], EXAMPLES, ALPACA, CCXT)
    session.install(CORE, EXAMPLES, ALPACA, CCXT)
    session.run("python", "-m", "chaos", *session.posargs, env={"PYTHONPATH": str(ROOT / "tests")})
