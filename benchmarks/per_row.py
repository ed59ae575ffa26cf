"""The course approach: pandas.read_json, then one INSERT per row in autocommit,
as the course's etl.py does. Too slow for the whole feed, so it runs on a subset
and its time is extrapolated to the feed's size."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.feed import Feed
from benchmarks.measuring import Measure, Recorder, log
from benchmarks.scratch import connect_args

INSERT = "insert into bench.per_row_{} (source_file, line_number, payload) values (%s, %s, %s)"


def run(
    recorder: Recorder,
    feed: Feed,
    env: dict[str, str],
    lines: int,
    song_files: int,
    sample: Path,
) -> None:
    """The first `lines` lines of the first log file (written to `sample`), and
    the first `song_files` song files."""
    import pandas as pd  # only this scenario needs it: not loaded for the others

    with psycopg.connect(**connect_args(env), autocommit=True) as conn:
        for kind in ("events", "songs"):
            conn.execute(
                sql.SQL(
                    "drop table if exists {bench}; "
                    "create table {bench} (like {raw} including all); "
                    # The course's tables have no load ids.
                    "alter table {bench} drop column load_id"
                ).format(
                    bench=sql.Identifier("bench", f"per_row_{kind}"),
                    raw=sql.Identifier("raw", kind),
                )
            )
    # The subset: the first `lines` lines of the first log file, as a file.
    name, first, _ = feed.event_files[0]
    with open(first, "rb") as stream:
        head = [line for _, line in zip(range(lines), stream, strict=False)]
    sample.write_bytes(b"".join(head))
    subset, size = [(name, sample)], sample.stat().st_size
    log(f"per-row INSERT after pandas.read_json, {len(head):,} event lines")
    with (
        recorder.timed("pandas + one INSERT per row", "events") as m,
        psycopg.connect(**connect_args(env), autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        for name, path in subset:
            frame = pd.read_json(path, lines=True)
            frame = frame.astype(object).where(frame.notna(), None)  # NaN is not JSON
            for number, record in enumerate(frame.to_dict("records"), 1):
                cur.execute(
                    INSERT.format("events"), [name, number, json.dumps(record, default=str)]
                )
    sample.unlink()
    _extrapolate(
        m, len(head), len(subset), size, feed.event_lines, len(feed.event_files), feed.event_bytes
    )
    songs = feed.song_files[:song_files]
    log(f"per-row INSERT after pandas.read_json, {len(songs):,} song files")
    with (
        recorder.timed("pandas + one INSERT per row", "songs") as m,
        psycopg.connect(**connect_args(env), autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        for name, path, _ in songs:
            frame = pd.read_json(path, lines=True)
            frame = frame.astype(object).where(frame.notna(), None)
            for record in frame.to_dict("records"):
                cur.execute(INSERT.format("songs"), [name, 1, json.dumps(record, default=str)])
    n = len(feed.song_files)
    _extrapolate(m, len(songs), len(songs), sum(s for *_, s in songs), n, n, feed.song_bytes)


def _extrapolate(
    m: Measure,
    lines: int,
    files: int,
    size: int,
    all_lines: int,
    all_files: int,
    all_bytes: int,
) -> None:
    """Scale the subset's time to the whole feed, by lines (the per-row cost)."""
    m.extrapolated_from = f"{lines:,} lines in {m.seconds:.1f} s"
    m.seconds = m.seconds * all_lines / lines
    m.machine_cpu_seconds = None  # the subset's, not the feed's
    m.lines, m.files, m.bytes = all_lines, all_files, all_bytes
