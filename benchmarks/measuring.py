"""The measuring plumbing: a timed run (Measure), and the Recorder that times
runs, leaves warm-ups out and keeps the best of each kind.

Noise on a shared machine only ever slows a run down, so the fastest of several
runs is the figure; memory is not noise, so the worst run's peak is kept. The
load average before and after each run goes beside its figure.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the scripts under test run in the benchmark's own environment


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Measure:
    """One timed run."""

    name: str
    what: str  # 'events', 'songs', 'big_file', 'read', 's3' or 'warehouse'
    seconds: float
    lines: int = 0
    files: int = 0
    bytes: int = 0
    extrapolated_from: str = ""
    peak_rss_mb: float | None = None  # whole process tree
    peak_process_rss_mb: float | None = None  # largest single process
    # CPU seconds while it ran: the command's own process tree (user + system),
    # and the whole machine's, every core (the server's work is most of the rest).
    client_cpu_seconds: float | None = None
    machine_cpu_seconds: float | None = None
    load_before: float = 0.0
    load_after: float = 0.0
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 2**20 / self.seconds if self.seconds else 0.0

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


class Recorder:
    """Every kept run, in order. Runs timed while `warming` is set are warm-ups:
    logged, not kept."""

    def __init__(self) -> None:
        self.runs: list[Measure] = []
        self.warming = False

    def add(self, measure: Measure) -> None:
        """Keep a run timed elsewhere (a read timed inside one connection, or an n/a note)."""
        self.runs.append(measure)

    @contextlib.contextmanager
    def timed(self, name: str, what: str) -> Iterator[Measure]:
        """Time the block, after a CHECKPOINT so that no run pays for another's writes."""
        with contextlib.suppress(psycopg.Error), psycopg.connect(autocommit=True) as conn:
            conn.execute("checkpoint")
        measure = Measure(name, what, 0.0, load_before=os.getloadavg()[0])
        busy_before = _machine_busy_seconds()
        started = time.perf_counter()
        yield measure
        measure.seconds = time.perf_counter() - started
        measure.machine_cpu_seconds = _machine_busy_seconds() - busy_before
        measure.load_after = os.getloadavg()[0]
        if not self.warming:
            self.runs.append(measure)
        load = f"load {measure.load_before:.2f} -> {measure.load_after:.2f}"
        log(f"  {measure.seconds:.2f} s ({load}){' warm-up' if self.warming else ''}")

    def best_runs(self) -> list[Measure]:
        """One measure per run name: the fastest, with every run's time and load."""
        best: dict[tuple[str, str], Measure] = {}
        for run in self.runs:
            key = (run.what, run.name)
            if key not in best:
                best[key] = run
                run.details["all_seconds"] = []
                run.details["all_peak_rss_mb"] = []
            kept = best[key]
            kept.details["all_seconds"].append(round(run.seconds, 2))
            if run.peak_rss_mb is not None:
                kept.details["all_peak_rss_mb"].append(round(run.peak_rss_mb))
            if run.seconds < kept.seconds:
                run.details = kept.details
                best[key] = run
        for measure in best.values():
            peaks = measure.details["all_peak_rss_mb"]
            if peaks:  # memory is not noise: report the worst run's
                measure.peak_rss_mb = max(peaks)
                measure.peak_process_rss_mb = max(
                    run.peak_process_rss_mb or 0
                    for run in self.runs
                    if run.name == measure.name and run.what == measure.what
                )
        return list(best.values())


def _machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's waited-for descendants (a
    worker that its parent waited for counts once its parent is waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_cell(client: float | None, machine: float | None) -> str:
    """A results table's CPU column: "client / machine" seconds, blank where not measured."""
    return " / ".join("" if value is None else f"{value:.2f}" for value in (client, machine))


def run_watched(command: list[str], env: dict[str, str], measure: Measure) -> str:
    """Run a command as a user runs it; record the peak RSS of its whole process
    tree (the loader's workers included) and its CPU time, and return its stdout."""
    cpu_before = _children_cpu_seconds()
    process = subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak_total = peak_one = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree = [watched, *watched.children(recursive=True)]
            sizes = []
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    sizes.append(proc.memory_info().rss)
            peak_total = max(peak_total, sum(sizes))
            peak_one = max(peak_one, max(sizes, default=0))
        # Not sleep(): the run's time must end when the command does.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
    out, err = process.communicate()
    measure.client_cpu_seconds = _children_cpu_seconds() - cpu_before
    if process.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[1:3])} failed: {err.decode()[-2000:]}")
    measure.peak_rss_mb = peak_total / 2**20
    measure.peak_process_rss_mb = peak_one / 2**20
    return out.decode()


def check_command(command: list[str]) -> None:
    """Run a preparation step (not timed); stop the benchmark if it fails."""
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[:3])} failed: {result.stderr[-2000:]}")
