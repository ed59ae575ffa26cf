"""The loader, run as a user runs it, and side by side with the floor in rounds.

ingest/load_raw.py lands the feed into raw.events / raw.songs with their keys:
listing, planning and hashing included, with N workers and with one, and with N
workers and a BRIN index on load_id. Then what that index saves a reader of
the newest load.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from benchmarks import server_floor
from benchmarks.feed import Feed
from benchmarks.measuring import PYTHON, Measure, Recorder, log, run_watched
from benchmarks.scratch import check_count, connect_args, scalar
from sparkify.loader.schema import ensure_schema


def run_loader(
    recorder: Recorder,
    feed: Feed,
    env: dict[str, str],
    kind: str,
    workers: int,
    *,
    brin: bool = False,
    keyless: bool = False,
    s3_prefix: str | None = None,
) -> Measure:
    """One timed load of the whole feed of one kind into emptied tables: from the
    feed's folders, or (s3_prefix given, env naming the S3 server) from its
    s3:// copy."""
    with psycopg.connect(**connect_args(env), autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute(sql.SQL("truncate {}").format(sql.Identifier("raw", kind)))
        conn.execute("delete from raw.load_manifest where source_kind = %s", [kind])
        conn.execute("delete from raw.loads where source_kind = %s", [kind])
        # The alternative the issue names: a BRIN index on load_id (see read_one_load).
        conn.execute(
            "create index events_load_id_brin on raw.events using brin (load_id)"
            if brin
            else "drop index if exists raw.events_load_id_brin"
        )
        # The question the issue asks: what the primary key costs the loader.
        # Dropped for this run only (a scratch database), put back after.
        if keyless:
            conn.execute("alter table raw.events drop constraint events_pkey")
    option, folder = (
        ("--log-data", "log_data") if kind == "events" else ("--song-data", "song_data")
    )
    source = str(feed.folder / folder) if s3_prefix is None else f"{s3_prefix}/{folder}"
    workers_said = f"{workers} worker{'s' if workers > 1 else ''}"
    label = f"loader + BRIN on load_id, {workers_said}" if brin else f"loader, {workers_said}"
    if keyless:
        label = f"loader, raw.events without its key, {workers_said}"
    if s3_prefix is not None:
        label = f"loader from S3, {workers_said}"
    log(f"{label}, {kind}")
    with recorder.timed(label, kind) as m:
        out = run_watched(
            [PYTHON, "-m", "sparkify.loader", option, source, "--workers", str(workers), "-q"],
            env,
            m,
        )
    m.details["summary"] = out.strip()
    if keyless:
        with psycopg.connect(**connect_args(env), autocommit=True) as conn:
            conn.execute("alter table raw.events add primary key (source_file, line_number)")
    if kind == "events":
        m.lines, m.files, m.bytes = feed.event_lines, len(feed.event_files), feed.event_bytes
        check_count(env, "raw.events", feed.event_lines)
    else:
        m.lines = m.files = len(feed.song_files)
        m.bytes = feed.song_bytes
        check_count(env, "raw.songs", len(feed.song_files))
    return m


def side_by_side(
    recorder: Recorder, feed: Feed, env: dict[str, str], workers: int, repeat: int
) -> None:
    """Server and loader runs interleaved: one warm-up round (not kept), then
    `repeat` rounds; each pair runs under the same load, and the best of each
    is kept (noise only ever slows down)."""
    server = server_floor.prepare_tables(recorder, feed, env)
    counts = sorted({1, workers})
    for round_number in range(0, repeat + 1):
        recorder.warming = round_number == 0
        log("warm-up round (not kept)" if recorder.warming else f"round {round_number} of {repeat}")
        for kind in ("events", "songs"):
            for connections in counts:
                if server:
                    server_floor.run(recorder, feed, env, kind, connections)
                    if kind == "events":
                        server_floor.run(recorder, feed, env, kind, connections, shaped=True)
                run_loader(recorder, feed, env, kind, connections)
        run_loader(recorder, feed, env, "events", workers, brin=True)
        run_loader(recorder, feed, env, "events", workers, keyless=True)
    recorder.warming = False
    read_one_load(recorder, env)
    if server:
        server_floor.empty_tables(env)


def read_one_load(recorder: Recorder, env: dict[str, str]) -> None:
    """What a BRIN index on load_id saves a reader of the newest event load,
    against reading it as dbt does: the load's files from the manifest, then
    their rows through the primary key (source_file, line_number)."""
    newest = "(select max(load_id) from raw.loads where source_kind = 'events')"
    with psycopg.connect(**connect_args(env), autocommit=True) as conn:
        conn.execute("analyze raw.events")
        brin_bytes = scalar(
            conn, "select coalesce(pg_relation_size(to_regclass('raw.events_load_id_brin')), 0)"
        )
        files = [
            name
            for (name,) in conn.execute(
                f"select source_file from raw.load_manifest where load_id = {newest}"
            )
        ]
        aggregate = "select count(*), sum(octet_length(payload ->> 'song')) from raw.events "
        reads: dict[str, tuple[str, list[list[str]] | None]] = {
            "by its files (primary key)": (aggregate + "where source_file = any(%s)", [files]),
            "by load_id (BRIN)": (aggregate + f"where load_id = {newest}", None),
        }
        for name, (query, params) in reads.items():
            plan = "\n".join(r[0] for r in conn.execute("explain " + query, params))
            runs = []
            rows = 0
            for attempt in range(4):  # the first warms the cache: not kept
                started = time.perf_counter()
                row = conn.execute(query, params).fetchone()
                if attempt:
                    runs.append(time.perf_counter() - started)
                rows = row[0] if row else 0
            measure = Measure(f"read the newest event load {name}", "read", min(runs))
            measure.lines, measure.files = rows, len(files)
            measure.details = {
                "plan": plan,
                "read_seconds": [round(r, 4) for r in runs],
                "brin_index_bytes": brin_bytes,
            }
            recorder.add(measure)
            log(f"read one load {name}: {rows} rows in {min(runs):.3f} s")
