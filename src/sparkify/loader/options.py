"""How a load runs: one typed set of options for PostgreSQL and for the lake."""

from __future__ import annotations

from dataclasses import dataclass

from sparkify.loader.lines import DEFAULT_MAX_LINE_BYTES
from sparkify.loader.s3_source import DEFAULT_IN_FLIGHT, DEFAULT_STORE_TIMEOUT

# A batch is closed when it reaches either limit: many small song files share a
# transaction (one commit per file is 20x slower), a big log file gets its own.
# 16 MB keeps batches small enough to spread well over parallel workers.
BATCH_MAX_BYTES = 16 * 1024 * 1024
BATCH_MAX_FILES = 5000


@dataclass(frozen=True)
class LoadOptions:
    """The options of `load_raw.py` that shape a load (not where the feed is)."""

    workers: int = 1  # PostgreSQL only: the lake is written by one process
    batch_files: int = BATCH_MAX_FILES
    batch_bytes: int = BATCH_MAX_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    verify: bool = False  # hash every file, even one whose size and stamp are as recorded
    prune: bool = False  # remove the files no longer in the feed
    replace_other_feed: bool = False  # see planning.Plan.other_feed
    # An s3:// feed: how long a request or a stream may keep failing (s3_source.patiently).
    store_timeout: float = DEFAULT_STORE_TIMEOUT
    # An s3:// feed: GETs in flight at once, across all workers (read_ahead.py).
    s3_in_flight: int = DEFAULT_IN_FLIGHT
