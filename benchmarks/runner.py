"""One benchmark run: the feed generated and listed, the scenarios the options
ask for in their order, the report, and the scratch space cleaned up after."""

from __future__ import annotations

import datetime as dt
import uuid

from benchmarks import big_file, ingest_report, loader_rounds, per_row, s3_scenario, warehouse
from benchmarks.feed import Feed, Folders, generate
from benchmarks.measuring import Recorder, log
from benchmarks.options import Options
from benchmarks.scratch import SCRATCH, ScratchDatabases, env_for


def run(options: Options) -> None:
    """Everything the options ask for; scratch databases are dropped (and the
    generated feed removed, unless --keep-data) whatever happens."""
    run_id = uuid.uuid4().hex[:8]
    folders = Folders.for_options(options)
    databases = ScratchDatabases(run_id)
    try:
        _run(options, run_id, folders, databases)
    finally:
        databases.drop_all()
        if not options.keep_data:
            folders.remove()


def _run(options: Options, run_id: str, folders: Folders, databases: ScratchDatabases) -> None:
    started = dt.datetime.now(dt.UTC)
    recorder = Recorder()
    generate(options, folders)
    feed = Feed.scan(folders.feed)
    log(
        f"feed: {feed.event_lines:,} event lines in {len(feed.event_files)} files "
        f"({feed.event_bytes / 2**20:.0f} MB), {len(feed.song_files):,} song files "
        f"({feed.song_bytes / 2**20:.1f} MB); {options.workers} workers"
    )
    env = env_for(databases.new("main"))
    workers = options.workers
    floor_counts: dict[str, tuple[int, int]] = {}
    if options.s3_only:
        _s3(options, recorder, feed, env)
    else:
        if options.warehouse_only:
            for kind in ("events", "songs"):
                loader_rounds.run_loader(recorder, feed, env, kind, workers)
        else:
            loader_rounds.side_by_side(recorder, feed, env, workers, options.repeat)
            if not options.skip_s3:
                _s3(options, recorder, feed, env)
            if options.per_row_lines:
                sample = SCRATCH / f"per-row-{run_id}.json"
                per_row.run(
                    recorder, feed, env, options.per_row_lines, options.per_row_files, sample
                )
            if options.big_file_mb:
                big_file.run(recorder, feed, databases, options.big_file_mb, folders.big)
        if not options.skip_dbt:
            floor_counts = warehouse.run(
                recorder,
                env,
                feed.event_lines,
                folders,
                options.warehouse_repeat,
                SCRATCH / f"dbt-{run_id}",
            )
    ingest_report.write(options, feed, recorder.best_runs(), floor_counts, started)


def _s3(options: Options, recorder: Recorder, feed: Feed, env: dict[str, str]) -> None:
    s3_scenario.run(
        recorder,
        feed,
        env,
        options.workers,
        options.s3_repeat,
        also_from_disk=options.s3_only,
        moto_log=SCRATCH / "moto.log",
    )
