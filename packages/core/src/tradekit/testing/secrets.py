"""Prove that no secret reaches any output: run ``tradekit`` as a user does, then search everything.

``run_tradekit`` runs the real command line in a child process (its own stdout, stderr,
logging set-up and threads), bounded in time. ``SecretScan`` collects what came out —
stdout, stderr, log files, the ledger file and its journal, error messages — and
``SecretScan.leaks()`` lists every place holding any ``PIECE`` characters in a row of a
secret: libraries shorten what they print (a long websocket frame keeps its ends), so a
piece leaks the secret as well as the whole does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from tradekit.redaction import PIECE

COMMAND_TIMEOUT_S = 120.0


def run_tradekit(
    args: Iterable[str], env: Mapping[str, str], *, cwd: Path, timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run ``tradekit ARGS`` in a child process with exactly ``env`` (plus PATH and the Python path)."""
    child_env = {key: os.environ[key] for key in ("PATH", "PYTHONPATH", "HOME", "SYSTEMROOT") if key in os.environ}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", "from tradekit.cli import main; main()", *args],
        env=child_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pieces_of(secret: str) -> list[str]:
    """Every run of ``PIECE`` characters of ``secret`` (the whole of a shorter one)."""
    return [secret[i : i + PIECE] for i in range(max(1, len(secret) - PIECE + 1))]


@attrs.define
class SecretScan:
    """What a test collected from the commands it ran, searched for the secrets it set."""

    secrets: tuple[str, ...]
    outputs: dict[str, str] = attrs.field(factory=dict)

    def add_text(self, where: str, text: str) -> None:
        self.outputs[where] = self.outputs.get(where, "") + text

    def add_run(self, label: str, result: subprocess.CompletedProcess[str]) -> None:
        self.add_text(f"{label}: stdout", result.stdout)
        self.add_text(f"{label}: stderr", result.stderr)

    def run_all(self, commands: Iterable[list[str]], env: Mapping[str, str], *, cwd: Path) -> dict[str, int]:
        """Run each ``tradekit`` command, collect its output, and return the exit codes by command."""
        codes = {}
        for args in commands:
            result = run_tradekit(args, env, cwd=cwd)
            codes[" ".join(args)] = result.returncode
            self.add_run(" ".join(args), result)
        return codes

    def add_files(self, paths: Iterable[Path]) -> None:
        """Add files as text (a SQLite ledger included: its strings are stored as UTF-8)."""
        for path in paths:
            if path.is_file():
                self.add_text(str(path), path.read_bytes().decode("utf-8", "replace"))

    def leaks(self) -> dict[str, list[str]]:
        """Each output holding a piece of a secret, with the pieces found (empty: nothing leaked)."""
        found: dict[str, list[str]] = {}
        for where, text in self.outputs.items():
            pieces = [p for secret in self.secrets for p in pieces_of(secret) if p in text]
            if pieces:
                found[where] = pieces
        return found
