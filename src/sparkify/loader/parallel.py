"""Spread batches over worker processes, each with its own connection.

The coordinator (run.py, in the process load_raw.py started) starts the
workers first (they connect while it lists and plans), takes the load lock,
and hands batches out through a shared queue as the feed is listed (largest
first within each part of the listing), so each worker
takes the next batch as soon as it is free. A worker loads a batch in one
transaction (rows, rejects and manifest rows together, see batch.load_batch)
and reports the results back. No two workers ever hold the same file.

Failure rules:
- A worker that fails says why and exits; the coordinator then stops the other
  workers (their batches under way roll back) and fails with that one line.
- Workers die with the coordinator (Linux parent-death signal; elsewhere they
  notice between batches), and each worker holds a shared advisory lock while
  connected, so a later loader waits until no worker of an earlier one is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.queues
import os
import queue
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import psycopg

from sparkify.loader.batch import Skipped, load_batch, skipping
from sparkify.loader.contract import WORKER_LOCK
from sparkify.loader.errors import describe
from sparkify.loader.files import FileSource
from sparkify.loader.lines import DEFAULT_MAX_LINE_BYTES
from sparkify.loader.planning import PlannedFile
from sparkify.loader.reading import FileResult
from sparkify.loader.session import connect
from sparkify.messages import one_line

# WORKER_LOCK is held shared by every worker while connected, exclusively (for
# a moment) by a coordinator before it starts: see drain_earlier_workers.
APPLICATION_NAME = "sparkify load_raw worker"


class _Reported(Exception):
    """A worker's failure, already reported."""


class WorkerFailed(Exception):
    """A worker could not load its batch: the message is one line for the user.

    `kind` is the error kind cli.py maps to an exit code: an object store's
    failure keeps its own (s3_source), so that the exit code is the same with
    one worker or many; any other is 'database' or 'file'."""

    def __init__(self, message: str, kind: str = "database"):
        super().__init__(message)
        self.kind = kind


@dataclass
class _Failure:
    worker: int
    kind: str  # 'unreachable', 'database', 'file' or 'bug'
    message: str
    store_kind: str | None = None  # an object store's failure: its kind


# Batches to load (None: no more), and what workers report: ("read", worker,
# bytes read), ("done", worker, (results, files skipped)) or a _Failure.
# (Strings: multiprocessing's Queue cannot be subscripted at run time.)
Tasks: TypeAlias = "multiprocessing.queues.Queue[list[PlannedFile] | None]"
Reports: TypeAlias = "multiprocessing.queues.Queue[tuple[str, int, Any] | _Failure]"


def drain_earlier_workers(conn: psycopg.Connection) -> None:
    """Wait until no worker of an earlier (perhaps killed) loader is still connected."""
    conn.execute("select pg_advisory_lock(hashtext(%s))", [WORKER_LOCK])
    conn.execute("select pg_advisory_unlock(hashtext(%s))", [WORKER_LOCK])


def batch_cost(batch: list[PlannedFile]) -> int:
    """Rough work of a batch, in bytes: opening a file costs like reading 4 kB."""
    return sum(item.file.size + 4096 for item in batch)


class WorkerPool:
    """`workers` processes, started early (they connect while the coordinator lists
    and plans), that load the batches handed to `run`."""

    def __init__(
        self, source: FileSource, workers: int, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ):
        # fork where there is one: a worker starts in milliseconds, not seconds of
        # imports. The pool is made before the coordinator opens a connection, so
        # no connection is shared with a child.
        methods = multiprocessing.get_all_start_methods()
        self.context = (
            multiprocessing.get_context("fork")
            if "fork" in methods
            else multiprocessing.get_context("spawn")
        )
        self.tasks: Tasks = self.context.Queue()
        self.reports: Reports = self.context.Queue()
        self.processes = [
            self.context.Process(
                target=_worker,
                args=(number, source, self.tasks, self.reports, os.getpid(), max_line_bytes),
                name=f"load_raw worker {number}",
                daemon=True,
            )
            for number in range(workers)
        ]
        # Forked with SIGTERM at its default: the coordinator's handler (which
        # raises, see cli.py) must not run in a child that close() terminates
        # while it is still starting.
        previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            for process in self.processes:
                process.start()
        finally:
            signal.signal(signal.SIGTERM, previous)

    def run(
        self,
        work: Iterable[list[PlannedFile]],
        on_results: Callable[[int, list[FileResult], list[Skipped]], None],
        on_read: Callable[[int, int], None],
    ) -> None:
        """Load every batch, in the order given, as `work` gives them (the feed may
        still be listed: run.py); call on_results(worker, results, files skipped)
        as batches commit."""
        pending = 0
        for batch in work:
            self.tasks.put(batch)
            pending += 1
            while pending and self._took_report(on_results, on_read, wait=False):
                pending -= 1
        for _ in self.processes:
            self.tasks.put(None)
        while pending:
            if self._took_report(on_results, on_read, wait=True):
                pending -= 1
            else:
                _check_alive(self.processes, pending)
        for process in self.processes:
            process.join(timeout=30)

    def _took_report(
        self,
        on_results: Callable[[int, list[FileResult], list[Skipped]], None],
        on_read: Callable[[int, int], None],
        *,
        wait: bool,
    ) -> bool:
        """Take the reports waiting (with `wait`, for up to half a second) until
        a batch's results; True if one came. A worker's failure is raised."""
        while True:
            try:
                report = self.reports.get(timeout=0.5) if wait else self.reports.get_nowait()
            except queue.Empty:
                return False
            if isinstance(report, _Failure):
                kind = report.store_kind or ("file" if report.kind == "file" else "database")
                raise WorkerFailed(_describe(report), kind)
            kind, number, payload = report
            if kind == "read":
                on_read(number, payload)
            else:
                on_results(number, *payload)
                return True

    def close(self) -> None:
        """Stop whatever still runs (its transaction under way rolls back)."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=10)
        self.tasks.cancel_join_thread()
        self.reports.cancel_join_thread()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_alive(processes: Sequence[multiprocessing.process.BaseProcess], pending: int) -> None:
    for number, process in enumerate(processes):
        if process.exitcode not in (None, 0):
            raise WorkerFailed(f"worker {number} stopped with exit code {process.exitcode}")
    if all(process.exitcode == 0 for process in processes):
        raise WorkerFailed(f"the workers stopped with {pending} batches not loaded")


def _describe(failure: _Failure) -> str:
    what = {
        "unreachable": "cannot reach PostgreSQL",
        "database": "",
        "file": "cannot read a file",
        "bug": "unexpected error",
    }[failure.kind]
    if not what:  # the message says what happened (sparkify.loader.errors.describe)
        return f"worker {failure.worker}: {failure.message}"
    return f"worker {failure.worker}: {what}: {failure.message}"


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (no orphan keeps loading)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker(
    number: int,
    source: FileSource,
    tasks: Tasks,
    reports: Reports,
    parent: int,
    max_line_bytes: int,
) -> None:
    # The coordinator's SIGTERM handler is not a worker's: a worker stopped by
    # SIGTERM just ends (its batch under way rolls back), the coordinator speaks.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    batch: list[PlannedFile] | None = None
    try:
        try:
            conn = connect(APPLICATION_NAME)
        except psycopg.OperationalError as exc:
            reports.put(_Failure(number, "unreachable", one_line(exc)))
            raise _Reported from exc
        with conn:
            locked = False
            while (batch := tasks.get()) is not None:
                if os.getppid() != parent:
                    return
                if not locked:  # only now: the coordinator drained earlier workers
                    conn.execute("select pg_advisory_lock_shared(hashtext(%s))", [WORKER_LOCK])
                    locked = True
                landed = skipping(
                    lambda part: load_batch(
                        conn,
                        source,
                        part,
                        on_read=lambda read: reports.put(("read", number, read)),
                        max_line_bytes=max_line_bytes,
                    ),
                    batch,
                )
                reports.put(("done", number, landed))
    except _Reported:
        pass
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the
        os._exit(130)  # coordinator reports it; the batch under way rolled back
    except psycopg.Error as exc:
        reports.put(_Failure(number, "database", _with_file(batch, describe(exc))))
    except OSError as exc:
        reports.put(_Failure(number, "file", one_line(exc), getattr(exc, "kind", None)))
    except Exception as exc:  # a bug: still one line, and the coordinator stops
        reports.put(_Failure(number, "bug", f"{type(exc).__name__}: {one_line(exc)}"))
    else:
        return
    reports.close()
    reports.join_thread()
    os._exit(1)


def _with_file(batch: list[PlannedFile] | None, message: str) -> str:
    if not batch:
        return message
    first = batch[0].file.name
    return f"{message} (batch of {len(batch)} files from {first})"
