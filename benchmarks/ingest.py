"""Benchmark the raw load against the course approach and against PostgreSQL itself.

One run generates a feed with the project's generator, then measures, on the same
files:

1. the loader (ingest/load_raw.py, run as a user runs it: listing, planning and
   hashing included, into raw.events / raw.songs with their keys), with N
   workers and with one; and with N workers and a BRIN index on load_id, with
   what that index saves a reader of one new load;
2. the course approach, pandas.read_json and one INSERT per row (autocommit, as
   the course's etl.py does), on a subset, extrapolated;
3. the floor: PostgreSQL reading the same files itself into a bare jsonb table
   (one jsonb column, no key, no index), COPY ... FROM 'file' for the event logs
   (one connection, and N connections over disjoint files) and pg_read_file over
   the list of song files in one statement;
4. a single log file of --big-file-mb MB (the event logs concatenated): the
   loader's peak memory on it;
5. the feed from S3 (benchmarks/s3_scenario.py): the loader reading a local
   moto server, beside the same objects downloaded to nowhere with the same
   client and parallelism; and the listing time of the song files' prefix;
6. the warehouse: a full `dbt build` beside benchmarks/floor.sql (the same star
   schema in plain SQL, whose row counts must equal dbt's), dbt's fixed cost (a
   build with nothing new, and `dbt parse`), one more generated day, and one
   more small file (1% of the events), each loaded and built.

Steps 1 and 3 run side by side in rounds: one warm-up round that is not kept,
then --repeat rounds, of which the best of each is kept. The warehouse builds
and the floor likewise: a warm-up, then the best of --warehouse-repeat.

It prints lines/s, MB/s and files/s with ratios and the load average beside each
figure (the machine may be shared), and writes benchmarks/results/latest.json and
latest.md (and a copy named after the event count). Timing is wall-clock, warm
page cache (the feed was just written); a CHECKPOINT precedes each measurement.

The server-side figures need a superuser (or pg_read_server_files) on a server
that can read the feed's folder: the embedded server can. Elsewhere they are n/a.

This file is the command line; the run is runner.py, each scenario a module of
its own (loader_rounds, server_floor, s3_scenario, per_row, big_file,
warehouse), the goals one table in goals.py, the report ingest_report.py.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from benchmarks import options, runner


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 no server named (or bad options, from argparse),
    130 interrupted (Ctrl-C or SIGTERM, after the scratch databases are dropped);
    a failed step stops the run with its message (exit 1)."""
    chosen = options.parse(argv, __doc__)
    if not os.environ.get("PGHOST"):
        print(
            "bench: PGHOST is not set: run through 'python -m sparkify.embedded_pg exec -- ...' "
            "(as 'make bench' does) or point the PG* variables at a server",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (scratch databases) on kill too
    try:
        runner.run(chosen)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
