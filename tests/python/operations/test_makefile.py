"""The Makefile tells a newcomer what they can set, and where `make run` left things."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from helpers import REPO_ROOT

# `make run`'s steps, taken as done (-o): only run's own recipe, its closing note, runs.
RUN_STEPS = ("load", "build", "docs-build", "report", "counts")


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_help_names_every_variable_a_user_sets():
    makefile = (REPO_ROOT / "Makefile").read_text()
    settable = re.findall(r"^([A-Z][A-Z0-9_]*) \?=", makefile, flags=re.MULTILINE)
    assert "DATA_DIR" in settable
    shown = make("help")
    assert shown.returncode == 0, shown.stderr
    for variable in (*settable, "PGHOST", "PGDATABASE"):
        assert re.search(rf"\b{variable}=", shown.stdout), variable
    # Every target with a description is listed.
    for target in re.findall(r"^([a-z0-9-]+):.*## ", makefile, flags=re.MULTILINE):
        assert f"make {target} " in shown.stdout, target


@pytest.mark.slow  # the embedded PostgreSQL
def test_make_run_ends_saying_the_server_still_runs_and_how_to_stop_it(embedded_env):
    embedded = embedded_env
    skipped = [option for step in RUN_STEPS for option in ("-o", step)]
    done = make(*skipped, "run", env=embedded)
    assert done.returncode == 0, done.stderr
    tail = done.stdout.strip().splitlines()[-4:]
    assert tail[0] == "The embedded PostgreSQL is still running (database sparkify):"
    assert tail[1].strip().startswith("running, pid ")
    assert tail[-1].strip() == "stop it:  make stop"

    # With PGHOST naming a server, there is no embedded server to speak of.
    elsewhere = make(*skipped, "run", env={**embedded, "PGHOST": "/nowhere"})
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "make stop" not in elsewhere.stdout
