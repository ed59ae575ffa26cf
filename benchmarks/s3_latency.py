"""The loader against a far-away object store: a local moto server behind a
proxy that waits before answering each GET, of an object or of a listing page
(as a remote store's first byte does), beside the same GETs made with many requests in flight.

    make bench-latency                       # 30 ms per GET, 1,000 song files
    make bench-latency LATENCY_ARGS="--delay-ms 60 --compare-with /work/main"

In one run, side by side in rounds (a warm-up round not kept, then the best of
--repeat), for song files and for event logs:

- the floor: the same objects GET through the same proxy by --floor-threads
  boto3 threads of one process (64 by default), each read to nowhere; keys
  given, so listing is not timed;
- the loader: `load_raw.py --song-data s3://...` (or --log-data), run as a user
  runs it (listing, planning, hashing, COPY, commit) into emptied raw tables,
  with --workers and --s3-in-flight;
- with --compare-with DIR, the loader of another checkout (e.g. the main
  branch) the same way, with the same options, for a before/after in one run;
- memory, once each after the rounds, straight from moto (no proxy: the
  delay does not change what is held): one log object of --big-object-mb
  (300) and --many-objects small song objects (100,000), the loader's peak
  RSS (its whole process tree, and its largest process) beside its time.

The proxy is the tests' own (tests/python/fault_proxy.py): a Python threaded
server that opens a connection to moto per request, so both sides pay its cost.
Figures: files/s of each, the loader over the floor, the loader's peak RSS (its
whole process tree) and the load average before and after each run. Written to
results/s3-latency.md and .json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config
from psycopg import sql

from benchmarks import s3_scenario
from benchmarks.measuring import (
    PYTHON,
    REPO_ROOT,
    Measure,
    Recorder,
    check_command,
    cpu_cell,
    log,
    run_watched,
)
from benchmarks.scratch import (
    RESULTS,
    SCRATCH,
    ScratchDatabases,
    check_count,
    connect_args,
    env_for,
)
from sparkify.loader.s3_source import DEFAULT_IN_FLIGHT
from sparkify.loader.schema import ensure_schema

sys.path.insert(0, str(REPO_ROOT / "tests" / "python"))  # the tests' delaying proxy
from fault_proxy import FaultProxy, Rule

BUCKET = s3_scenario.BUCKET
FOLDERS = {"songs": "song_data", "events": "log_data"}
TABLES = {"songs": "raw.songs", "events": "raw.events"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.s3_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--delay-ms", type=float, default=30.0, help="wait before each GET (30)")
    parser.add_argument("--songs", type=int, default=1000, help="song files (1000)")
    parser.add_argument("--days", type=int, default=30, help="days of event logs (30)")
    parser.add_argument("--workers", type=int, default=2, help="the loader's --workers (2)")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=DEFAULT_IN_FLIGHT,
        help=f"the loader's --s3-in-flight ({DEFAULT_IN_FLIGHT}, its default)",
    )
    parser.add_argument("--floor-threads", type=int, default=64, help="the floor's threads (64)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds kept, after a warm-up (2)")
    parser.add_argument(
        "--big-object-mb",
        type=int,
        default=300,
        help="memory: one log object of about this many MB; 0 to skip (300)",
    )
    parser.add_argument(
        "--many-objects",
        type=int,
        default=100_000,
        help="memory: this many small song objects; 0 to skip (100000)",
    )
    parser.add_argument(
        "--results",
        default="s3-latency",
        help="name of the results files in benchmarks/results (s3-latency)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="another checkout (with its .venv) whose loader runs too, with the same "
        "--workers and --s3-in-flight, e.g. the main branch",
    )
    return parser.parse_args(argv)


def generate(songs: int, days: int) -> Path:
    feed = SCRATCH / f"latency-{songs}-songs-{days}-days"
    if not (feed / "song_data").is_dir():
        log(f"generating {songs:,} song files and {days} days of events")
        check_command(
            [
                PYTHON,
                "-m",
                "sparkify.generator",
                "--out",
                str(feed),
                "--days",
                str(days),
                "--songs",
                str(songs),
                "--quiet",
            ]
        )
    return feed


def generate_memory(args: argparse.Namespace) -> dict[str, list[Path]]:
    """The memory cases' files: one big log file, and many song files."""
    out: dict[str, list[Path]] = {}
    if args.big_object_mb:
        # About 470 bytes an event: one day of that many events, repeated in its
        # file until it reaches the size (a day varies around the mean).
        target = args.big_object_mb * 2**20
        feed = SCRATCH / f"memory-big-{args.big_object_mb}mb"
        if not (feed / "log_data").is_dir():
            log(f"generating one log file of about {args.big_object_mb} MB")
            check_command(
                [
                    *(PYTHON, "-m", "sparkify.generator", "--out", str(feed), "--days", "1"),
                    *("--events-per-day", str(target // 470), "--users", "2000", "--quiet"),
                ]
            )
            (path,) = data_files(feed, "events")
            day = path.read_bytes()
            with path.open("ab") as grown:
                size = len(day)
                while size < target:  # whole lines, up to the first end past the size
                    cut = day.find(b"\n", min(target - size, len(day) - 1)) + 1
                    grown.write(day[: cut or len(day)])
                    size += cut or len(day)
        out["events"] = data_files(feed, "events")
    if args.many_objects:
        feed = SCRATCH / f"memory-{args.many_objects}-songs"
        if not (feed / "song_data").is_dir():
            log(f"generating {args.many_objects:,} song files")
            check_command(
                [
                    *(PYTHON, "-m", "sparkify.generator", "--out", str(feed), "--days", "1"),
                    *("--songs", str(args.many_objects), "--events-per-day", "10", "--quiet"),
                ]
            )
        out["songs"] = data_files(feed, "songs")
    return out


def data_files(feed: Path, kind: str) -> list[Path]:
    return sorted(
        path
        for path in (feed / FOLDERS[kind]).rglob("*")
        if path.is_file() and path.name.endswith((".json", ".json.gz"))
    )


def floor(endpoint: str, keys: list[str], threads: int) -> int:
    """Every key GET and read to nowhere by `threads` threads; the bytes read."""
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=s3_scenario.CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_scenario.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=s3_scenario.CREDENTIALS["AWS_REGION"],
        # One connection per thread: botocore's default pool (10) would cap it.
        config=Config(max_pool_connections=threads),
    )

    def get(key: str) -> int:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        read = 0
        while block := body.read(s3_scenario.BLOCK):
            read += len(block)
        return read

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(get, keys))


def reset(env: dict[str, str], kind: str) -> None:
    """Emptied raw tables of one kind: each load lands every file again."""
    with psycopg.connect(**connect_args(env), autocommit=True) as conn:
        ensure_schema(conn)
        conn.execute(sql.SQL("truncate {}").format(sql.Identifier("raw", kind)))
        conn.execute("delete from raw.load_manifest where source_kind = %s", [kind])
        conn.execute("delete from raw.loads where source_kind = %s", [kind])


def loader(
    recorder: Recorder,
    label: str,
    checkout: Path,
    env: dict[str, str],
    kind: str,
    files: int,
    args: argparse.Namespace,
    extra: list[str],
    prefix: str = "feed",
    what: str | None = None,
) -> None:
    reset(env, kind)
    option = "--song-data" if kind == "songs" else "--log-data"
    command = [str(checkout / ".venv" / "bin" / "python"), "-m", "sparkify.loader"]
    command += [option, f"s3://{BUCKET}/{prefix}/{FOLDERS[kind]}", "--workers", str(args.workers)]
    log(f"{label}, {kind}")
    with recorder.timed(label, what or kind) as m:
        out = run_watched([*command, *extra, "-q", "--json"], env, m)
    m.files = files
    m.details["summary"] = json.loads(out)
    check_count(env, TABLES[kind], m.details["summary"][f"{kind[:-1]}_rows"])
    if m.details["summary"]["files_loaded"] != files:
        raise SystemExit(f"bench: {label} loaded {m.details['summary']['files_loaded']} files")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = dt.datetime.now(dt.UTC)
    feed = generate(args.songs, args.days)
    files = {kind: data_files(feed, kind) for kind in FOLDERS}
    databases = ScratchDatabases(uuid.uuid4().hex[:8])
    moto = s3_scenario.MotoServer(SCRATCH / "moto-latency.log")
    recorder = Recorder()
    try:
        keys = {
            kind: [f"feed/{path.relative_to(feed).as_posix()}" for path in files[kind]]
            for kind in FOLDERS
        }
        uploads = [
            (key, path)
            for kind in FOLDERS
            for key, path in zip(keys[kind], files[kind], strict=True)
        ]
        log(f"uploading {len(uploads):,} objects to moto at {moto.endpoint}")
        s3_scenario.upload(moto.endpoint, uploads)
        with FaultProxy(moto.endpoint) as proxy:
            # Objects (/bucket/key) and listing pages (/bucket?list-type=2...).
            proxy.rules = [Rule(rf"^GET /{BUCKET}[/?]", delay=args.delay_ms / 1000)]
            env = moto.env(env_for(databases.new("latency")))
            env["AWS_ENDPOINT_URL"] = proxy.endpoint
            _rounds(recorder, args, proxy, env, keys)
        _memory(recorder, args, moto, env_for(databases.new("memory")))
        # Written before the servers stop: a slow stop must not lose the figures.
        _report(args, recorder.runs, files, started)
    finally:
        moto.stop()
        databases.drop_all()
    return 0


def _rounds(
    recorder: Recorder,
    args: argparse.Namespace,
    proxy: FaultProxy,
    env: dict[str, str],
    keys: dict[str, list[str]],
) -> None:
    for round_number in range(args.repeat + 1):
        recorder.warming = round_number == 0
        log("warm-up round (not kept)" if recorder.warming else f"round {round_number}")
        for kind in ("songs", "events"):
            name = f"{args.floor_threads} GETs in flight (boto3 threads)"
            log(f"{name}, {kind}")
            with recorder.timed(name, kind) as m:
                m.bytes = floor(proxy.endpoint, keys[kind], args.floor_threads)
            m.files = len(keys[kind])
            this = ["--s3-in-flight", str(args.in_flight)]
            loader(
                recorder,
                f"loader, {args.workers} workers, --s3-in-flight {args.in_flight}",
                REPO_ROOT,
                env,
                kind,
                len(keys[kind]),
                args,
                this,
            )
            if args.compare_with is not None:
                loader(
                    recorder,
                    f"loader of {args.compare_with}, {args.workers} workers, "
                    f"--s3-in-flight {args.in_flight}",
                    args.compare_with,
                    env,
                    kind,
                    len(keys[kind]),
                    args,
                    this,
                )
    recorder.warming = False


def _memory(
    recorder: Recorder, args: argparse.Namespace, moto: s3_scenario.MotoServer, env: dict[str, str]
) -> None:
    """The memory cases, once each, straight from moto: what the loader holds
    does not depend on the store's delay (read-ahead is bounded in count)."""
    recorder.warming = False
    env = moto.env(env)
    for kind, paths in generate_memory(args).items():
        feed = next(parent for parent in paths[0].parents if parent.name == FOLDERS[kind]).parent
        keys = [f"memory/{path.relative_to(feed).as_posix()}" for path in paths]
        log(f"uploading {len(keys):,} objects (memory, {kind})")
        s3_scenario.upload(moto.endpoint, list(zip(keys, paths, strict=True)), threads=16)
        what = (
            f"memory: one log object of {paths[0].stat().st_size / 2**20:.0f} MB"
            if kind == "events"
            else f"memory: {len(paths):,} small objects"
        )
        extra = ["--s3-in-flight", str(args.in_flight)]
        loader(recorder, what, REPO_ROOT, env, kind, len(paths), args, extra, "memory", "memory")


def _rss(row: dict[str, Any]) -> str:
    if row["peak_rss_mb"] is None:
        return ""
    return f"{row['peak_rss_mb']} / {row['peak_process_rss_mb']}"


def _rounded(value: float | None, digits: int | None = None) -> float | None:
    return None if value is None else round(value, digits)


def _best(rounds: list[Measure]) -> Measure:
    """The fastest round, with its own summary (noise only ever slows a run)."""
    return min(rounds, key=lambda run: run.seconds)


def _report(
    args: argparse.Namespace,
    runs: list[Measure],
    files: dict[str, list[Path]],
    started: dt.datetime,
) -> None:
    floor_name = f"{args.floor_threads} GETs in flight (boto3 threads)"
    rows: list[dict[str, Any]] = []
    for kind in ("songs", "events", "memory"):
        floors = [run for run in runs if run.what == kind and run.name == floor_name]
        base = _best(floors) if floors else None
        names = dict.fromkeys(run.name for run in runs if run.what == kind)
        for name in names:
            rounds = [run for run in runs if run.what == kind and run.name == name]
            run = _best(rounds)
            run.details["all_seconds"] = [round(each.seconds, 2) for each in rounds]
            rows.append(
                {
                    "kind": kind,
                    "what": run.name,
                    "files": run.files,
                    "seconds": round(run.seconds, 2),
                    "all_seconds": run.details.get("all_seconds", []),
                    "files_per_s": round(run.files_per_s, 1),
                    # The loader's own split: listing and planning are not GETs.
                    "seconds_loading": run.details.get("summary", {}).get("seconds_loading"),
                    "ratio_to_floor": (
                        None if base is None else round(run.files_per_s / base.files_per_s, 2)
                    ),
                    "peak_rss_mb": _rounded(run.peak_rss_mb),
                    "peak_process_rss_mb": _rounded(run.peak_process_rss_mb),
                    "client_cpu_seconds": _rounded(run.client_cpu_seconds, 2),
                    "machine_cpu_seconds": _rounded(run.machine_cpu_seconds, 2),
                    "load_before": round(run.load_before, 2),
                    "load_after": round(run.load_after, 2),
                }
            )
    header = (
        f"# The loader against a store {args.delay_ms:g} ms away\n\n"
        f"{started:%Y-%m-%d %H:%M} UTC, `benchmarks/s3_latency.py`: moto behind the tests' "
        f"proxy, {args.delay_ms:g} ms before each GET (objects and listing pages); "
        f"{len(files['songs']):,} song files, {len(files['events'])} event logs; "
        f"{os.cpu_count()} CPUs; best of "
        f"{args.repeat} rounds after a warm-up. The memory rows run once each, straight "
        "from moto (no delay: it does not change what the loader holds). CPU s: the "
        "loader's own process tree (user + system), and the whole machine's over the run, "
        "every core (moto, the proxy and PostgreSQL share those CPUs).\n\n"
        "| kind | what | files | s (all rounds) | of which loading | files/s | / floor "
        "| peak RSS MB (tree / largest process) | CPU s (client / machine) | load |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    )
    lines = [
        f"| {r['kind']} | {r['what']} | {r['files']:,} | {r['seconds']} "
        f"({', '.join(str(s) for s in r['all_seconds'])}) | "
        f"{'' if r['seconds_loading'] is None else round(r['seconds_loading'], 2)} | "
        f"{r['files_per_s']:,} | "
        f"{'' if r['ratio_to_floor'] is None else r['ratio_to_floor']} | "
        f"{_rss(r)} | "
        f"{cpu_cell(r['client_cpu_seconds'], r['machine_cpu_seconds'])} | "
        f"{r['load_before']} → {r['load_after']} |"
        for r in rows
    ]
    text = header + "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.results}.md").write_text(text)
    options = {
        key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
    }
    (RESULTS / f"{args.results}.json").write_text(
        json.dumps({"started": started.isoformat(), "options": options, "runs": rows}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
