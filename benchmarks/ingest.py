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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "ingest"))

import s3_scenario  # noqa: E402  (beside this file)
from raw_loader.files import LocalFileSource  # noqa: E402
from raw_loader.schema import ensure_schema  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
SCRATCH = RESULTS / "tmp"  # gitignored: generated feeds and dbt output
PYTHON = sys.executable
START_DATE = dt.date(2018, 11, 1)
DAYS = 30


@dataclass
class Measure:
    """One timed run."""

    name: str
    what: str  # 'events', 'songs', 'big_file' or 'warehouse'
    seconds: float
    lines: int = 0
    files: int = 0
    bytes: int = 0
    extrapolated_from: str = ""
    peak_rss_mb: float | None = None  # whole process tree
    peak_process_rss_mb: float | None = None  # largest single process
    load_before: float = 0.0
    load_after: float = 0.0
    note: str = ""
    details: dict = field(default_factory=dict)

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 2**20 / self.seconds if self.seconds else 0.0

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.environ.get("PGHOST"):
        print(
            "bench: PGHOST is not set: run through 'python ingest/embedded_pg.py exec -- ...' "
            "(as 'make bench' does) or point the PG* variables at a server",
            file=sys.stderr,
        )
        return 2
    bench = Bench(args)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (scratch databases) on kill too
    try:
        bench.run()
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        bench.cleanup()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/ingest.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--songs", type=int, default=20_000, help="song files to generate")
    parser.add_argument(
        "--workers", type=int, default=_cpus(), help="loader workers and server connections"
    )
    parser.add_argument(
        "--per-row-lines",
        type=int,
        default=5_000,
        help="event lines for the per-row approach (extrapolated); 0 to skip",
    )
    parser.add_argument(
        "--per-row-files", type=int, default=300, help="song files for the per-row approach"
    )
    parser.add_argument(
        "--big-file-mb", type=int, default=1024, help="size of the one-file case; 0 to skip"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the side-by-side runs after one warm-up round; the best of each "
        "is kept (default: 3)",
    )
    parser.add_argument(
        "--warehouse-repeat",
        type=int,
        default=2,
        help="full dbt builds and floor runs after one warm-up each; the best is kept (default: 2)",
    )
    parser.add_argument("--skip-dbt", action="store_true", help="leave out the warehouse timing")
    parser.add_argument(
        "--warehouse-only",
        action="store_true",
        help="load the feed once and time only the warehouse (dbt build against floor.sql,"
        " one more day, one more small file): the 10M run without the loader rounds",
    )
    parser.add_argument(
        "--skip-s3", action="store_true", help="leave out the feed from S3 (a local moto server)"
    )
    parser.add_argument(
        "--s3-only",
        action="store_true",
        help="only the S3 scenario (results in s3-*.md/json, not latest.*)",
    )
    parser.add_argument(
        "--s3-repeat",
        type=int,
        default=2,
        help="rounds of the S3 runs, after one warm-up; the best is kept (default: 2)",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help=f"keep the generated feed in {SCRATCH}"
    )
    return parser


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.databases: list[str] = []
        self.runs: list[Measure] = []  # every timed run, in order
        self.measures: list[Measure] = []  # the best run of each kind, for the report
        self.feed = SCRATCH / f"feed-{args.events}-{args.songs}"
        self.extra = SCRATCH / f"extra-day-{args.events}-{args.songs}"
        self.big = SCRATCH / f"big-{args.big_file_mb}mb"
        self.small = SCRATCH / f"small-file-{args.events}-{args.songs}"
        self.started = dt.datetime.now(dt.UTC)
        self.warming = False  # runs timed while True are warm-ups: not kept
        self.floor_counts: dict[str, tuple[int, int]] = {}  # mart: (dbt, floor)

    # ---- the run ---------------------------------------------------------------

    def run(self) -> None:
        self.generate()
        source = LocalFileSource(
            {"events": self.feed / "log_data", "songs": self.feed / "song_data"}
        )
        files, _ = source.list_files()
        self.event_files = [
            (f.name, source.path_of(f), f.size) for f in files if f.kind == "events"
        ]
        self.song_files = [(f.name, source.path_of(f), f.size) for f in files if f.kind == "songs"]
        self.event_lines = self.count_lines([path for _, path, _ in self.event_files])
        self.event_bytes = sum(size for *_, size in self.event_files)
        self.song_bytes = sum(size for *_, size in self.song_files)
        log(
            f"feed: {self.event_lines:,} event lines in {len(self.event_files)} files "
            f"({self.event_bytes / 2**20:.0f} MB), {len(self.song_files):,} song files "
            f"({self.song_bytes / 2**20:.1f} MB); {self.args.workers} workers"
        )
        main_db = self.new_database("main")
        if self.args.s3_only:
            self.s3(main_db)
            self.report()
            return
        if self.args.warehouse_only:
            for kind in ("events", "songs"):
                self.loader(kind, main_db, self.args.workers)
        else:
            self.side_by_side(main_db)
            if not self.args.skip_s3:
                self.s3(main_db)
            if self.args.per_row_lines:
                self.per_row(main_db)
            if self.args.big_file_mb:
                self.big_file()
        if not self.args.skip_dbt:
            self.warehouse(main_db)
        self.report()

    def generate(self) -> None:
        per_day = max(1, round(self.args.events / DAYS))
        users = max(100, self.args.events // 500)
        common = ["--users", str(users), "--songs", str(self.args.songs)]
        common += ["--events-per-day", str(per_day), "--quiet"]
        if not (self.feed / "log_data").is_dir():
            log(f"generating {self.args.events:,} events and {self.args.songs:,} songs")
            _check(
                [
                    PYTHON,
                    "ingest/generate_data.py",
                    "--out",
                    str(self.feed),
                    "--days",
                    str(DAYS),
                    *common,
                ]
            )
        if self.args.s3_only:
            return
        if not self.args.skip_dbt and not (self.small / "log_data").is_dir():
            day = START_DATE + dt.timedelta(days=DAYS + 1)
            log(f"generating one more small file ({day}, 1% of the events)")
            small = [
                "--users",
                str(users),
                "--songs",
                str(self.args.songs),
                "--events-per-day",
                str(max(1, self.args.events // 100)),
                "--quiet",
            ]
            _check(
                [
                    PYTHON,
                    "ingest/generate_data.py",
                    "--out",
                    str(self.small),
                    "--days",
                    "1",
                    "--start-date",
                    day.isoformat(),
                    *small,
                ]
            )
        if not self.args.skip_dbt and not (self.extra / "log_data").is_dir():
            day = START_DATE + dt.timedelta(days=DAYS)
            log(f"generating one more day ({day})")
            _check(
                [
                    PYTHON,
                    "ingest/generate_data.py",
                    "--out",
                    str(self.extra),
                    "--days",
                    "1",
                    "--start-date",
                    day.isoformat(),
                    *common,
                ]
            )

    def count_lines(self, paths: list[Path]) -> int:
        total = 0
        for path in paths:
            with open(path, "rb") as stream:
                for line in stream:
                    total += bool(line.strip())
        return total

    # ---- 3. the server-side limit ----------------------------------------------

    def prepare_server_tables(self, db: str) -> bool:
        """bench.events and bench.songs: the floor's shape, one jsonb column with
        no key, no index and no default (the least the server can store)."""
        env = self.env(db)
        try:
            with psycopg.connect(**_conn(env), autocommit=True) as conn:
                ensure_schema(conn)
                conn.execute("create schema if not exists bench")
                for kind in ("events", "songs"):
                    conn.execute(
                        sql.SQL(
                            "drop table if exists {bench}; create table {bench} (payload jsonb)"
                        ).format(bench=sql.Identifier("bench", kind))
                    )
                # Not a baseline, a reference: the server's own COPY into raw.events'
                # shape (its columns and primary key; the file name and line number
                # from defaults) says what the shape costs, apart from the loader.
                conn.execute(
                    "drop table if exists bench.events_shaped; "
                    "create table bench.events_shaped (like raw.events including all); "
                    "alter table bench.events_shaped alter column source_file "
                    "set default current_setting('bench.source_file'); "
                    "alter table bench.events_shaped alter column line_number "
                    "add generated by default as identity (cache 1000); "
                    "alter table bench.events_shaped alter column load_id set default 0"
                )
                conn.execute("select pg_read_file(%s, 0, 1)", [str(self.event_files[0][1])])
        except psycopg.Error as exc:
            note = f"n/a: the server cannot read the files itself ({_one_line(exc)})"
            log(note)
            self.runs.append(Measure("PostgreSQL COPY FROM file", "events", 0, note=note))
            return False
        return True

    def side_by_side(self, db: str) -> None:
        """Server and loader runs interleaved: one warm-up round (not kept), then
        --repeat rounds; each pair runs under the same load, and the best of each
        is kept (noise only ever slows down)."""
        server = self.prepare_server_tables(db)
        counts = sorted({1, self.args.workers})
        for round_number in range(0, self.args.repeat + 1):
            self.warming = round_number == 0
            log(
                "warm-up round (not kept)"
                if self.warming
                else f"round {round_number} of {self.args.repeat}"
            )
            for kind in ("events", "songs"):
                for connections in counts:
                    if server:
                        self.server_run(db, kind, connections)
                        if kind == "events":
                            self.server_run(db, kind, connections, shaped=True)
                    self.loader(kind, db, connections)
            self.loader("events", db, self.args.workers, brin=True)
        self.warming = False
        self.read_one_load(db)
        if server:
            for table in ("bench.events", "bench.songs", "bench.events_shaped"):
                self.truncate(self.env(db), table)

    def server_run(self, db: str, kind: str, connections: int, shaped: bool = False) -> None:
        env = self.env(db)
        table = "bench.events_shaped" if shaped else f"bench.{kind}"
        self.truncate(env, table)
        if kind == "events":
            into = " into raw's shape" if shaped else ""
            log(f"server COPY FROM file{into}, {connections} connection(s)")
            with self.timed(f"PostgreSQL COPY FROM file{into}, {connections} conn", kind) as m:
                self.server_copy(env, connections, table)
            m.lines, m.files, m.bytes = self.event_lines, len(self.event_files), self.event_bytes
        else:
            log(f"server pg_read_file over the song files, {connections} connection(s)")
            with self.timed(f"PostgreSQL pg_read_file, {connections} conn", kind) as m:
                self.server_read_files(env, connections)
            m.lines = m.files = len(self.song_files)
            m.bytes = self.song_bytes
        self.check_count(env, table, m.lines)

    def server_copy(self, env: dict[str, str], connections: int, table: str) -> None:
        def copy_files(files: list[tuple[str, Path, int]]) -> None:
            with psycopg.connect(**_conn(env), autocommit=True) as conn:
                for name, path, _ in files:
                    conn.execute("select set_config('bench.source_file', %s, false)", [name])
                    conn.execute(
                        sql.SQL(
                            "copy {} (payload) from {} "
                            "with (format csv, quote e'\\x01', delimiter e'\\x02')"
                        ).format(sql.Identifier(*table.split(".")), sql.Literal(str(path)))
                    )

        _in_threads(copy_files, _spread(self.event_files, connections))

    def server_read_files(self, env: dict[str, str], connections: int) -> None:
        def read_files(files: list[tuple[str, Path, int]]) -> None:
            with psycopg.connect(**_conn(env), autocommit=True) as conn:
                conn.execute(
                    "insert into bench.songs (payload) "
                    "select pg_read_file(path)::jsonb from unnest(%s::text[]) as f (path)",
                    [[str(path) for _, path, _ in files]],
                )

        chunks = [self.song_files[i::connections] for i in range(connections)]
        _in_threads(read_files, chunks)

    def read_one_load(self, db: str) -> None:
        """What a BRIN index on load_id saves a reader of the newest event load,
        against reading it as dbt does: the load's files from the manifest, then
        their rows through the primary key (source_file, line_number)."""
        env = self.env(db)
        newest = "(select max(load_id) from raw.loads where source_kind = 'events')"
        with psycopg.connect(**_conn(env), autocommit=True) as conn:
            conn.execute("analyze raw.events")
            (brin_bytes,) = conn.execute(
                "select coalesce(pg_relation_size(to_regclass('raw.events_load_id_brin')), 0)"
            ).fetchone()
            files = [
                name
                for (name,) in conn.execute(
                    f"select source_file from raw.load_manifest where load_id = {newest}"
                )
            ]
            aggregate = "select count(*), sum(octet_length(payload ->> 'song')) from raw.events "
            reads = {
                "by its files (primary key)": (aggregate + "where source_file = any(%s)", [files]),
                "by load_id (BRIN)": (aggregate + f"where load_id = {newest}", None),
            }
            for name, (query, params) in reads.items():
                plan = "\n".join(r[0] for r in conn.execute("explain " + query, params))
                runs = []
                for attempt in range(4):  # the first warms the cache: not kept
                    started = time.perf_counter()
                    (rows, _) = conn.execute(query, params).fetchone()
                    if attempt:
                        runs.append(time.perf_counter() - started)
                measure = Measure(f"read the newest event load {name}", "read", min(runs))
                measure.lines, measure.files = rows, len(files)
                measure.details = {
                    "plan": plan,
                    "read_seconds": [round(r, 4) for r in runs],
                    "brin_index_bytes": brin_bytes,
                }
                self.runs.append(measure)
                log(f"read one load {name}: {rows} rows in {min(runs):.3f} s")

    # ---- 1. the loader ---------------------------------------------------------

    def loader(self, kind: str, db: str, workers: int, brin: bool = False, moto=None) -> Measure:
        """The loader on the feed's folders, or (moto given) on its s3:// copy."""
        env = self.env(db) if moto is None else moto.env(self.env(db))
        with psycopg.connect(**_conn(env), autocommit=True) as conn:
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
        folder = ("--log-data", self.feed / "log_data")
        if kind == "songs":
            folder = ("--song-data", self.feed / "song_data")
        if moto is not None:
            folder = (folder[0], f"s3://{s3_scenario.BUCKET}/feed/{folder[1].name}")
        workers_said = f"{workers} worker{'s' if workers > 1 else ''}"
        label = f"loader + BRIN on load_id, {workers_said}" if brin else f"loader, {workers_said}"
        if moto is not None:
            label = f"loader from S3, {workers_said}"
        log(f"{label}, {kind}")
        with self.timed(label, kind) as m:
            out = self.run_measured(
                [PYTHON, "ingest/load_raw.py", *map(str, folder), "--workers", str(workers), "-q"],
                env,
                m,
            )
        m.details["summary"] = out.strip()
        if kind == "events":
            m.lines, m.files, m.bytes = self.event_lines, len(self.event_files), self.event_bytes
            self.check_count(env, "raw.events", self.event_lines)
        else:
            m.lines = m.files = len(self.song_files)
            m.bytes = self.song_bytes
            self.check_count(env, "raw.songs", len(self.song_files))
        return m

    # ---- 5. the feed from S3 ----------------------------------------------------

    def s3(self, db: str) -> None:
        """The loader from a local moto server, beside downloading the same objects
        to nowhere with the same client and parallelism (benchmarks/s3_scenario.py)."""
        moto = s3_scenario.MotoServer(SCRATCH / "moto.log")
        try:
            files = [(f"feed/{name}", path) for name, path, _ in self.event_files + self.song_files]
            log(f"S3: uploading {len(files):,} objects to moto at {moto.endpoint}")
            s3_scenario.upload(moto.endpoint, files)
            for attempt in range(4):  # the first warms moto up: not kept
                keys, seconds = s3_scenario.list_keys(moto.endpoint, "feed/song_data/")
                if attempt:
                    with self.timed(f"S3 listing of {len(keys):,} keys (boto3)", "s3") as m:
                        pass
                    m.seconds, m.files = seconds, len(keys)
                log(f"S3 listing: {len(keys):,} keys in {seconds:.2f} s")
            if len(keys) != len(self.song_files):
                raise SystemExit(
                    f"bench: listed {len(keys)} song objects, not {len(self.song_files)}"
                )
            workers = self.args.workers
            for round_number in range(self.args.s3_repeat + 1):
                self.warming = round_number == 0
                log("S3 warm-up round (not kept)" if self.warming else f"S3 round {round_number}")
                for kind, prefix in (("events", "log_data"), ("songs", "song_data")):
                    keys, _ = s3_scenario.list_keys(moto.endpoint, f"feed/{prefix}/")
                    log(f"S3 download to nowhere, {workers} processes, {kind}")
                    name = f"S3 download to nowhere (boto3), {workers} processes"
                    with self.timed(name, kind) as m:
                        m.bytes = s3_scenario.download(moto.endpoint, keys, workers)
                    m.files = len(keys)
                    m.lines = self.event_lines if kind == "events" else len(keys)
                    self.loader(kind, db, workers, moto=moto)
                    if self.args.s3_only:  # the same loader from disk, side by side
                        self.loader(kind, db, workers)
            self.warming = False
        finally:
            moto.stop()

    # ---- 2. the course approach ------------------------------------------------

    def per_row(self, db: str) -> None:
        import pandas as pd

        env = self.env(db)
        with psycopg.connect(**_conn(env), autocommit=True) as conn:
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
        # The subset: the first --per-row-lines lines of the first log file, as a file.
        name, first, _ = self.event_files[0]
        with open(first, "rb") as stream:
            head = [line for _, line in zip(range(self.args.per_row_lines), stream, strict=False)]
        sample = SCRATCH / f"per-row-{self.run_id}.json"
        sample.write_bytes(b"".join(head))
        subset, lines, size = [(name, sample)], len(head), sample.stat().st_size
        log(f"per-row INSERT after pandas.read_json, {lines:,} event lines")
        insert = (
            "insert into bench.per_row_{} (source_file, line_number, payload) values (%s, %s, %s)"
        )
        with (
            self.timed("pandas + one INSERT per row", "events") as m,
            psycopg.connect(**_conn(env), autocommit=True) as conn,
            conn.cursor() as cur,
        ):
            for name, path in subset:
                frame = pd.read_json(path, lines=True)
                frame = frame.astype(object).where(frame.notna(), None)  # NaN is not JSON
                for number, record in enumerate(frame.to_dict("records"), 1):
                    cur.execute(
                        insert.format("events"), [name, number, json.dumps(record, default=str)]
                    )
        sample.unlink()
        self._extrapolate(
            m, lines, len(subset), size, self.event_lines, len(self.event_files), self.event_bytes
        )
        songs = self.song_files[: self.args.per_row_files]
        log(f"per-row INSERT after pandas.read_json, {len(songs):,} song files")
        with (
            self.timed("pandas + one INSERT per row", "songs") as m,
            psycopg.connect(**_conn(env), autocommit=True) as conn,
            conn.cursor() as cur,
        ):
            for name, path, _ in songs:
                frame = pd.read_json(path, lines=True)
                frame = frame.astype(object).where(frame.notna(), None)
                for record in frame.to_dict("records"):
                    cur.execute(insert.format("songs"), [name, 1, json.dumps(record, default=str)])
        n = len(self.song_files)
        self._extrapolate(
            m, len(songs), len(songs), sum(s for *_, s in songs), n, n, self.song_bytes
        )

    @staticmethod
    def _extrapolate(
        m: Measure,
        lines: int,
        files: int,
        size: int,
        all_lines: int,
        all_files: int,
        all_bytes: int,
    ) -> None:
        m.extrapolated_from = f"{lines:,} lines in {m.seconds:.1f} s"
        m.seconds = m.seconds * all_lines / lines
        m.lines, m.files, m.bytes = all_lines, all_files, all_bytes

    # ---- 4. one big file -------------------------------------------------------

    def big_file(self) -> None:
        target = self.args.big_file_mb * 2**20
        path = self.big / "log_data" / "big-events.json"
        if not path.exists() or path.stat().st_size < target:
            log(f"writing a {self.args.big_file_mb} MB log file")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                while out.tell() < target:
                    for _, source, _ in self.event_files:
                        out.write(source.read_bytes().rstrip(b"\n") + b"\n")
                        if out.tell() >= target:
                            break
        lines = self.count_lines([path])
        db = self.new_database("big")
        log(f"loader, one {path.stat().st_size / 2**20:.0f} MB file")
        with self.timed("loader, one big file", "big_file") as m:
            self.run_measured(
                [PYTHON, "ingest/load_raw.py", "--log-data", str(path.parent), "-q"],
                self.env(db),
                m,
            )
        m.lines, m.files, m.bytes = lines, 1, path.stat().st_size
        self.check_count(self.env(db), "raw.events", lines)
        self.drop_database(db)

    # ---- 5. the warehouse ------------------------------------------------------

    def warehouse(self, db: str) -> None:
        env = self.env(db)
        with psycopg.connect(**_conn(env), autocommit=True) as conn:
            conn.execute("drop index if exists raw.events_load_id_brin")  # the contract's shape
        dbt_dir = SCRATCH / f"dbt-{self.run_id}"
        profiles = dbt_dir / "profiles"
        profiles.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "profiles.yml.example", profiles / "profiles.yml")
        dbt_env = {**env, "DBT_PROFILES_DIR": str(profiles), "DO_NOT_TRACK": "1"}
        paths = ["--project-dir", str(REPO_ROOT), "--target-path", str(dbt_dir / "target")]
        paths += ["--log-path", str(dbt_dir / "logs")]
        dbt = [str(Path(PYTHON).parent / "dbt"), "build", *paths]

        def build(name: str, *extra: str) -> Measure:
            with self.timed(name, "warehouse") as m:
                result = subprocess.run(
                    [*dbt, *extra], env=dbt_env, capture_output=True, text=True, cwd=REPO_ROOT
                )
            m.note = _dbt_outcome(result)
            return m

        # The full build: the first build warms up, then --full-refresh builds.
        log(f"dbt build on {self.event_lines:,} events (full; the first is a warm-up)")
        self.warming = True
        build("dbt build, full")
        self.warming = False
        for _ in range(self.args.warehouse_repeat):
            build("dbt build, full", "--full-refresh").lines = self.event_lines
        # The floor, on the same raw tables, beside it.
        floor_sql = (REPO_ROOT / "benchmarks" / "floor.sql").read_text()
        log("floor.sql (the first is a warm-up)")
        for attempt in range(self.args.warehouse_repeat + 1):
            self.warming = attempt == 0
            with (
                psycopg.connect(**_conn(env)) as conn,
                self.timed("floor.sql, same star schema", "warehouse") as m,
            ):
                conn.execute(floor_sql)
                conn.commit()
            m.lines = self.event_lines
        self.warming = False
        self.floor_counts = self.compare_with_floor(env)
        # dbt's fixed cost: a build with nothing new to read, and parsing the project.
        log("dbt build with nothing new (fixed cost)")
        build("dbt build, nothing new")
        log("dbt parse, no partial parsing (fixed cost)")
        with self.timed("dbt parse (no partial parse)", "warehouse") as m:
            result = subprocess.run(
                [str(Path(PYTHON).parent / "dbt"), "parse", "--no-partial-parse", *paths],
                env=dbt_env,
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
            )
        m.note = _dbt_outcome(result)
        # One more day, then one more small file (1% of the events).
        log("loader, one more day")
        extra_lines = self.count_lines(sorted((self.extra / "log_data").rglob("*.json")))
        self.loader_extra(env, "one more day", self.extra, extra_lines)
        log("dbt build after one more day")
        build("dbt build, one more day").lines = extra_lines
        log("loader, one more small file")
        small_lines = self.count_lines(sorted((self.small / "log_data").rglob("*.json")))
        self.loader_extra(env, "one more small file", self.small, small_lines)
        log("dbt build after one more small file")
        build("dbt build, one more small file").lines = small_lines
        shutil.rmtree(dbt_dir, ignore_errors=True)

    def compare_with_floor(self, env: dict[str, str]) -> dict[str, tuple[int, int]]:
        """Row counts of each mart: dbt's (analytics) and the floor's (floor)."""
        counts = {}
        with psycopg.connect(**_conn(env)) as conn:
            for mart in ("songplays", "users", "songs", "artists", "time"):
                counts[mart] = tuple(
                    conn.execute(
                        sql.SQL("select count(*) from {}").format(sql.Identifier(schema, mart))
                    ).fetchone()[0]
                    for schema in ("analytics", "floor")
                )
        for mart, (ours, floor) in counts.items():
            log(f"  {mart}: dbt {ours:,}, floor {floor:,}{'' if ours == floor else '  DIFFERENT'}")
        return counts

    def loader_extra(self, env: dict[str, str], what: str, feed: Path, lines: int) -> None:
        with self.timed(f"loader, {what}", "warehouse") as m:
            self.run_measured(
                [PYTHON, "ingest/load_raw.py", "--log-data", str(feed / "log_data"), "-q"],
                env,
                m,
            )
        m.lines = lines

    # ---- plumbing --------------------------------------------------------------

    @contextlib.contextmanager
    def timed(self, name: str, what: str) -> Iterator[Measure]:
        with contextlib.suppress(psycopg.Error), psycopg.connect(autocommit=True) as conn:
            conn.execute("checkpoint")
        measure = Measure(name, what, 0.0, load_before=os.getloadavg()[0])
        started = time.perf_counter()
        yield measure
        measure.seconds = time.perf_counter() - started
        measure.load_after = os.getloadavg()[0]
        if not self.warming:
            self.runs.append(measure)
        load = f"load {measure.load_before:.2f} -> {measure.load_after:.2f}"
        log(f"  {measure.seconds:.2f} s ({load}){' warm-up' if self.warming else ''}")

    def run_measured(self, command: list[str], env: dict[str, str], measure: Measure) -> str:
        """Run a command; record the peak RSS of its whole process tree."""
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
            time.sleep(0.05)
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command[1:3])} failed: {err.decode()[-2000:]}")
        measure.peak_rss_mb = peak_total / 2**20
        measure.peak_process_rss_mb = peak_one / 2**20
        return out.decode()

    def env(self, db: str) -> dict[str, str]:
        return {**os.environ, "PGDATABASE": db}

    def new_database(self, label: str) -> str:
        name = f"sparkify_bench_{label}_{self.run_id}"
        with psycopg.connect(**_conn(self.env("postgres")), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(**_conn(self.env("postgres")), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
        if name in self.databases:
            self.databases.remove(name)

    def truncate(self, env: dict[str, str], table: str) -> None:
        with psycopg.connect(**_conn(env), autocommit=True) as conn:
            schema, name = table.split(".")
            conn.execute(sql.SQL("truncate {}").format(sql.Identifier(schema, name)))

    def check_count(self, env: dict[str, str], table: str, expected: int) -> None:
        schema, name = table.split(".")
        with psycopg.connect(**_conn(env)) as conn:
            got = conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(schema, name))
            ).fetchone()[0]
        if got != expected:
            raise SystemExit(f"bench: {table} has {got} rows, expected {expected}")

    def cleanup(self) -> None:
        for name in list(self.databases):
            with contextlib.suppress(psycopg.Error):
                self.drop_database(name)
        if not self.args.keep_data:
            for folder in (self.feed, self.extra, self.small, self.big):
                shutil.rmtree(folder, ignore_errors=True)

    # ---- the report ------------------------------------------------------------

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

    def report(self) -> None:
        self.measures = self.best_runs()
        results = {
            "run_at": self.started.isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "python": sys.version.split()[0],
                "postgresql": self.server_version(),
            },
            "options": vars(self.args),
            "feed": {
                "event_lines": self.event_lines,
                "event_files": len(self.event_files),
                "event_mb": round(self.event_bytes / 2**20, 1),
                "song_files": len(self.song_files),
                "song_mb": round(self.song_bytes / 2**20, 1),
            },
            "measures": [
                {
                    **asdict(m),
                    "lines_per_s": round(m.lines_per_s),
                    "mb_per_s": round(m.mb_per_s, 1),
                    "files_per_s": round(m.files_per_s),
                }
                for m in self.measures
            ],
            "targets": self.targets(),
            "floor_counts": {
                mart: {"dbt": ours, "floor": floor}
                for mart, (ours, floor) in self.floor_counts.items()
            },
        }
        markdown = self.markdown(results)
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = (
            f"{self.args.events // 1000}k-events"
            if self.args.events < 10**6
            else (f"{self.args.events // 10**6}M-events")
        )
        names = (f"s3-{stem}",) if self.args.s3_only else ("latest", stem)
        for name in names:
            (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
            (RESULTS / f"{name}.md").write_text(markdown)
        print(markdown)
        log("results in " + " and ".join(str(RESULTS / f"{name}.md") for name in names))

    def server_version(self) -> str:
        with psycopg.connect(autocommit=True) as conn:
            return conn.execute("show server_version").fetchone()[0]

    def find(self, what: str, prefix: str) -> Measure | None:
        for m in self.measures:
            if m.what == what and m.name.startswith(prefix) and m.seconds:
                return m
        return None

    def targets(self) -> list[dict]:
        n = self.args.workers
        loader = self.find("events", f"loader, {n} worker")
        song_loader = self.find("songs", f"loader, {n} worker")
        brin = self.find("events", f"loader + BRIN on load_id, {n} worker")
        checks = [
            (
                f"events from S3: loader ({n} workers) / download to nowhere ({n} processes)",
                self.find("events", f"loader from S3, {n} worker"),
                self.find("events", "S3 download to nowhere"),
                0.8,
                "bytes",
            ),
            (
                f"songs from S3: loader ({n} workers) / download to nowhere ({n} processes)",
                self.find("songs", f"loader from S3, {n} worker"),
                self.find("songs", "S3 download to nowhere"),
                0.8,
                "files",
            ),
            (
                f"events: loader from S3 / loader from disk ({n} workers)",
                self.find("events", f"loader from S3, {n} worker"),
                loader,
                None,
                "lines",
            ),
            (
                f"songs: loader from S3 / loader from disk ({n} workers)",
                self.find("songs", f"loader from S3, {n} worker"),
                song_loader,
                None,
                "files",
            ),
            (
                f"events: loader ({n} workers) / bare-table COPY, 1 connection",
                loader,
                self.find("events", "PostgreSQL COPY FROM file, 1 conn"),
                1.5,
                "lines",
            ),
            (
                f"events: loader ({n} workers) / bare-table COPY, {n} connections",
                loader,
                self.find("events", f"PostgreSQL COPY FROM file, {n} conn"),
                0.85,
                "lines",
            ),
            (
                f"events: loader + BRIN on load_id ({n} workers) / bare-table COPY, 1 connection",
                brin,
                self.find("events", "PostgreSQL COPY FROM file, 1 conn"),
                1.5,
                "lines",
            ),
            (
                f"events: loader + BRIN on load_id ({n} workers) / bare-table COPY, "
                f"{n} connections",
                brin,
                self.find("events", f"PostgreSQL COPY FROM file, {n} conn"),
                0.85,
                "lines",
            ),
            (
                f"events (reference): loader ({n} workers) / COPY into raw's shape, "
                f"{n} connections",
                loader,
                self.find("events", f"PostgreSQL COPY FROM file into raw's shape, {n} conn"),
                None,
                "lines",
            ),
            (
                f"events (reference): COPY into raw's shape / bare-table COPY, {n} connections",
                self.find("events", f"PostgreSQL COPY FROM file into raw's shape, {n} conn"),
                self.find("events", f"PostgreSQL COPY FROM file, {n} conn"),
                None,
                "lines",
            ),
            (
                "events: loader / per-row INSERT",
                loader,
                self.find("events", "pandas"),
                20.0,
                "lines",
            ),
            (
                "songs: loader / bare-table pg_read_file, 1 connection",
                song_loader,
                self.find("songs", "PostgreSQL pg_read_file, 1 conn"),
                0.8,
                "files",
            ),
            (
                "songs: loader / per-row INSERT",
                song_loader,
                self.find("songs", "pandas"),
                20.0,
                "files",
            ),
        ]
        out = []
        for label, ours, theirs, target, unit in checks:
            goal = f">= {target}" if target else "(a figure)"
            if ours is None or theirs is None:
                out.append({"target": label, "ratio": None, "goal": goal, "met": None})
                continue
            ratio = theirs.seconds / ours.seconds  # same work, so a ratio of rates
            out.append(
                {
                    "target": label,
                    "ratio": round(ratio, 2),
                    "goal": goal,
                    "met": ratio >= target if target else None,
                    "unit": unit,
                }
            )
        full = self.find("warehouse", "dbt build, full")
        warehouse = [
            ("full dbt build / floor.sql", full, self.find("warehouse", "floor.sql"), 2.5, "1M"),
            (
                "one more day / full dbt build",
                self.find("warehouse", "dbt build, one more day"),
                full,
                0.10,
                "10M",
            ),
            (
                "one more small file (1% of the events) / full dbt build",
                self.find("warehouse", "dbt build, one more small file"),
                full,
                0.25,
                "1M",
            ),
            (
                "dbt build with nothing new (fixed cost) / full dbt build",
                self.find("warehouse", "dbt build, nothing new"),
                full,
                None,
                "",
            ),
        ]
        for label, ours, theirs, goal, size in warehouse:
            if ours is None or theirs is None or ours.note or theirs.note:
                continue  # not run, or dbt failed: no ratio
            ratio = ours.seconds / theirs.seconds
            out.append(
                {
                    "target": f"warehouse: {label}",
                    "ratio": round(ratio, 3),
                    "goal": f"<= {goal} (at {size} events)" if goal else "(a figure)",
                    "met": ratio <= goal if goal else None,
                }
            )
        return out

    def markdown(self, results: dict) -> str:
        feed, machine = results["feed"], results["machine"]
        lines = [
            f"# Ingest benchmark: {feed['event_lines']:,} events, "
            f"{feed['song_files']:,} song files",
            "",
            f"Run {results['run_at']} on {machine['cpus']} CPUs, {machine['memory_gb']} GB, "
            f"PostgreSQL {machine['postgresql']}, Python {machine['python']}; "
            f"{self.args.workers} workers. Event logs: {feed['event_files']} files, "
            f"{feed['event_mb']} MB; song files: {feed['song_mb']} MB. "
            "Load average (1 min) before → after each run: the machine may be shared, so "
            "compare figures side by side, not across runs.",
            "",
            "| what | run | seconds | lines/s | MB/s | files/s "
            "| peak RSS MB (tree / largest process) | load |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for m in self.measures:
            rss = (
                f"{m.peak_rss_mb:.0f} / {m.peak_process_rss_mb:.0f}"
                if m.peak_rss_mb is not None
                else ""
            )
            seconds = f"{m.seconds:.2f}" + (" (extrapolated)" if m.extrapolated_from else "")
            if m.note and not m.seconds:
                lines.append(f"| {m.what} | {m.name} | {m.note} | | | | | |")
                continue
            lines.append(
                f"| {m.what} | {m.name}{' (' + m.note + ')' if m.note else ''} | {seconds} | "
                f"{m.lines_per_s:,.0f} | {m.mb_per_s:.1f} | {m.files_per_s:,.0f} | {rss} | "
                f"{m.load_before:.2f} → {m.load_after:.2f} |"
            )
        lines += ["", "| target | ratio | goal | met |", "|---|---:|---|---|"]
        for t in results["targets"]:
            ratio = "n/a" if t["ratio"] is None else f"{t['ratio']}"
            met = {True: "yes", False: "no", None: "n/a"}[t["met"]]
            lines.append(f"| {t['target']} | {ratio} | {t['goal']} | {met} |")
        if self.floor_counts:
            lines += [
                "",
                "Row counts of the marts, dbt against floor.sql (they must be equal):",
                "",
                "| mart | dbt | floor.sql |",
                "|---|---:|---:|",
            ]
            lines += [
                f"| {mart} | {ours:,} | {floor:,} |"
                for mart, (ours, floor) in self.floor_counts.items()
            ]
        lines += [
            "",
            f"Each figure is the best of {self.args.repeat} runs after one warm-up run "
            f"(warehouse builds and floor.sql: best of {self.args.warehouse_repeat} after one "
            "warm-up; the one-more-day and small-file builds and the reads run once or best of "
            "3). The server baselines copy into a bare table: one jsonb column, no key, no "
            "index. Every run's time is in the JSON (`details.all_seconds`).",
        ]
        extrapolated = [m for m in self.measures if m.extrapolated_from]
        if extrapolated:
            lines += [
                "",
                "Per-row figures are extrapolated from a subset: "
                + "; ".join(f"{m.what} from {m.extrapolated_from}" for m in extrapolated)
                + ".",
            ]
        lines += [
            "",
            "Reproduce: `make bench` (or `python ingest/embedded_pg.py exec -- "
            f"python benchmarks/ingest.py --events {self.args.events} --songs {self.args.songs}"
            f"{' --warehouse-only' if self.args.warehouse_only else ''}"
            f"{' --s3-only' if self.args.s3_only else ''}`).",
            "",
        ]
        return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dbt_outcome(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode == 0:
        return ""
    tail = [line for line in result.stdout.splitlines() if line.strip()][-3:]
    return "dbt failed: " + " / ".join(tail)


def _spread(files: list[tuple[str, Path, int]], n: int) -> list[list[tuple[str, Path, int]]]:
    """Largest first, each to the least loaded of n lists (as the loader spreads them)."""
    groups: list[list[tuple[str, Path, int]]] = [[] for _ in range(n)]
    sizes = [0] * n
    for item in sorted(files, key=lambda f: -f[2]):
        least = sizes.index(min(sizes))
        groups[least].append(item)
        sizes[least] += item[2]
    return groups


def _in_threads(work, groups: list) -> None:
    errors: list[BaseException] = []

    def run(group) -> None:
        try:
            work(group)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(group,)) for group in groups if group]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _conn(env: dict[str, str]) -> dict[str, str]:
    keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGDATABASE": "dbname"}
    return {key: env[var] for var, key in keys.items() if env.get(var)}


def _check(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[:3])} failed: {result.stderr[-2000:]}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
