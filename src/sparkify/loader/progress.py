"""Progress of a load on stderr: at most every few seconds, so long loads show they are alive."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sparkify.loader.contract import SOURCE_KINDS
from sparkify.loader.planning import PlannedFile
from sparkify.loader.reading import FileResult

log = logging.getLogger("load_raw")


@dataclass
class Progress:
    """Counts what has committed, and logs it now and then."""

    total_files: int
    total_bytes: int
    listing: bool = False  # the feed is still being listed: the totals grow (expect)
    every_seconds: float = 2.0
    files: int = 0
    bytes: int = 0
    rows: int = 0
    rejects: int = 0
    rows_by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCE_KINDS, 0))
    load_ids: set[int] = field(default_factory=set)  # the loads committed so far
    # Bytes read of batches not yet committed, by worker (None: this process).
    in_flight: dict[object, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.last = self.started

    def expect(self, planned: list[PlannedFile]) -> None:
        """More files to load, from a part of the listing planned now."""
        self.total_files += len(planned)
        self.total_bytes += sum(item.file.size for item in planned)

    def reading(self, worker: object, read: int) -> None:
        """A worker has read this many bytes of the batch it is loading."""
        self.in_flight[worker] = read
        self._maybe_log()

    def add(self, results: list[FileResult], worker: object = None, skipped: int = 0) -> None:
        """A batch committed: its results; `skipped` files of it were left out
        (unreadable), so they no longer count towards the total."""
        self.in_flight.pop(worker, None)
        self.total_files -= skipped
        self.files += len(results)
        self.bytes += sum(r.file.size for r in results)
        self.rows += sum(r.rows for r in results)
        for r in results:
            self.rows_by_kind[r.file.kind] += r.rows
        self.rejects += sum(r.rejects for r in results)
        self.load_ids.update(r.load_id for r in results)
        self._maybe_log(done=self.files == self.total_files and not self.listing)

    def _maybe_log(self, done: bool = False) -> None:
        now = time.monotonic()
        if now - self.last < self.every_seconds and not done:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        read = self.bytes + sum(self.in_flight.values())
        share = min(100.0, 100 * read / self.total_bytes) if self.total_bytes else 100.0
        log.info(
            "%d/%d files%s (%.0f%% read), %d loads and %d rows committed, %d rejects, %.0f rows/s",
            self.files,
            self.total_files,
            " listed so far" if self.listing else "",
            share,
            len(self.load_ids),
            self.rows,
            self.rejects,
            self.rows / elapsed,
        )
