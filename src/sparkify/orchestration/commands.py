"""The project's commands, run as a user runs them: the loader and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sparkify.orchestration.settings import REPO_ROOT

LOADER = ["-m", "sparkify.loader"]  # the loader, as make load runs it


class CommandFailed(RuntimeError):
    def __init__(self, exit_code: int, said: str):
        super().__init__(said)
        self.exit_code = exit_code
        self.said = said


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def loader_json(args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[int, dict[str, Any]]:
    """`load_raw.py ARGS --json`: its exit code and the JSON object it printed.
    An exit code not in `ok` raises CommandFailed with the loader's last line."""
    done = run([*LOADER, *args, "--json"])
    if done.returncode not in ok:
        raise CommandFailed(done.returncode, last_line(done.stderr) or last_line(done.stdout))
    return done.returncode, json.loads(done.stdout)
