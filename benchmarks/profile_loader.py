"""Where the loader's time goes: one load under cProfile, the top entries printed.

    python -m sparkify.embedded_pg exec -- python -m benchmarks.profile_loader \
        --song-data benchmarks/results/tmp/feed-1000000-20000/song_data

The load runs in this process with one worker (cProfile sees one process; the
COPY sender and read-ahead threads are not profiled, their waits show as the
main thread's waits on them), into a scratch database whose raw tables are
emptied first, so every file is loaded. An s3:// source takes the AWS_*
variables as the loader does. Not a figure of speed: a profile slows Python
code more than C code, so it tells where the time goes, not how much there is.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.measuring import REPO_ROOT
from benchmarks.scratch import ScratchDatabases, connect_args, env_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_loader", description=__doc__
    )
    parser.add_argument("--song-data", help="folder or s3:// prefix of song files")
    parser.add_argument("--log-data", help="folder or s3:// prefix of event logs")
    parser.add_argument("--top", type=int, default=25, help="entries printed per order (25)")
    parser.add_argument("--out", type=Path, help="also write the pstats dump here")
    parser.add_argument(
        "--checkout",
        type=Path,
        default=REPO_ROOT,
        help="profile the loader of this checkout (e.g. the main branch: a before/after "
        "under the same load)",
    )
    args = parser.parse_args(argv)
    # The loader of the checkout asked for (this one by default).
    sys.path.insert(0, str(args.checkout.resolve() / "src"))
    from sparkify.loader.options import LoadOptions
    from sparkify.loader.run import resolve_roots, run
    from sparkify.loader.schema import ensure_schema

    given = {"song_data": args.song_data, "log_data": args.log_data}
    if not any(given.values()):
        parser.error("name --song-data or --log-data")
    roots = resolve_roots(
        None,
        *(
            None if value is None else value if value.startswith("s3://") else Path(value)
            for value in given.values()
        ),
    )
    databases = ScratchDatabases(uuid.uuid4().hex[:8])
    try:
        env = env_for(databases.new("profile"))
        os.environ["PGDATABASE"] = env["PGDATABASE"]
        with psycopg.connect(**connect_args(env), autocommit=True) as conn:
            ensure_schema(conn)
            for kind in roots:
                conn.execute(sql.SQL("truncate {}").format(sql.Identifier("raw", kind)))
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        summary = run(roots, LoadOptions(workers=1))
        profile.disable()
        took = time.perf_counter() - started
    finally:
        databases.drop_all()
    print(
        f"loaded {summary.files_loaded} files, {summary.event_rows + summary.song_rows} rows "
        f"in {took:.2f} s under the profiler (listing {summary.seconds_listing:.2f} s, "
        f"planning {summary.seconds_planning:.2f} s)"
    )
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).strip_dirs().sort_stats(order).print_stats(args.top)
        print(text.getvalue())
    if args.out is not None:
        profile.dump_stats(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
