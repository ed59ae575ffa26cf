"""The loader stopped by a signal: SIGTERM to it or its group, and Ctrl-C while it
still imports. One line, the documented exit code, nothing half loaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from feed_lines import make_feed
from helpers import (
    WAIT_SECONDS,
    kill_group,
    run_loader,
    start_loader,
    wait_until,
)
from interruptions import Blocker, assert_nothing_half_loaded
from landing import (
    one_line_said,
    outcomes,
)

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt


@pytest.mark.parametrize(
    ("target", "workers"), [("coordinator", "1"), ("coordinator", "2"), ("group", "2")]
)
def test_sigterm_says_one_line_and_exits_143(db_env, tmp_path, target, workers):
    feed = make_feed(tmp_path / "feed", days=3, per_day=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_loader(db_env, "--log-data", empty).returncode == 0
    blocker = Blocker(db_env, "log_data/2018/11/2018-11-03-events.json")
    loader = start_loader(db_env, tmp_path / "err", "--data-dir", feed, "--workers", workers)
    try:
        wait_until(blocker.blocked_pids, "the loader to block on the held row")
        if target == "group":
            os.killpg(loader.pid, signal.SIGTERM)  # as systemd or docker stop do
        else:
            os.kill(loader.pid, signal.SIGTERM)
        loader.wait(timeout=WAIT_SECONDS)
    finally:
        blocker.release()
        if loader.poll() is None:
            kill_group(loader)
    stderr = (tmp_path / "err").read_text()
    assert loader.returncode == 143, stderr
    last = one_line_said(stderr)
    assert "terminated (SIGTERM)" in last and "re-run" in last
    assert sum("terminated" in line for line in stderr.splitlines()) == 1
    assert_nothing_half_loaded(db_env)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    assert len(outcomes(db_env)) == 3 * 20 + 3


def test_ctrl_c_while_importing_says_one_line(db_env, tmp_path):
    """-X importtime reports each module as its import ends: a SIGINT sent when
    psycopg's first submodules are in lands while psycopg still imports."""
    feed = make_feed(tmp_path / "feed", days=1, per_day=3)
    loader = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "sparkify.loader",
            "--data-dir",
            feed,
        ],
        env=db_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    said = []
    assert loader.stderr is not None
    for line in loader.stderr:
        said.append(line)
        if "psycopg.pq" in line:
            os.killpg(loader.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
            break
    rest = loader.stderr.read()
    loader.wait(timeout=60)
    words = [line for line in [*said, *rest.splitlines()] if not line.startswith("import time")]
    assert loader.returncode == 130, words
    assert len(words) == 1 and "Traceback" not in rest, words
    assert words[0].startswith("load_raw: interrupted")
