"""Raw-load the Sparkify feed into PostgreSQL: every file, every line, nothing parsed.

Song files (song_data/**.json, one JSON object each) land in raw.songs, event
logs (log_data/**.json, JSON lines) in raw.events, as jsonb, one row per object,
with the file's name and line number. A line that cannot be jsonb goes to
raw.rejects with the reason. raw.load_manifest remembers each file's checksum, so
a re-run loads only new or changed files, and a changed file replaces its rows.

Files are loaded in batches, one transaction each (a batch's rows, rejects and
manifest rows commit together), by --workers processes at once, each with its
own connection and its own files. Each batch is one load: raw.loads gets a row
(its load id and counts) in the same transaction, and every row, reject and
manifest entry it writes carries that load_id, so a reader that sees a load in
raw.loads sees all of its rows. Many small song files share a batch; a big
log file is streamed in blocks, so memory stays flat whatever its size.

The connection comes from the standard libpq variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD or ~/.pgpass, PGDATABASE). Passwords are never accepted as arguments.

The feed may be in object storage: --data-dir s3://bucket/prefix (or
--song-data/--log-data as s3:// URLs), with credentials and endpoint from the
standard AWS variables and files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL or
AWS_ENDPOINT_URL_S3); see docs/operations.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import psycopg

from raw_loader.errors import describe, one_line
from raw_loader.files import LocalFileSource, UnreadableFile
from raw_loader.lines import DEFAULT_MAX_LINE_BYTES
from raw_loader.load import (
    BATCH_MAX_BYTES,
    BATCH_MAX_FILES,
    FileResult,
    Progress,
    batches,
    load_batch,
    plan,
    prune,
    restamp,
)
from raw_loader.parallel import WorkerFailed, WorkerPool, drain_earlier_workers
from raw_loader.s3_source import NO_BUCKET, UNREACHABLE, ObjectStoreError, S3FileSource
from raw_loader.s3_source import is_url as is_s3_url
from raw_loader.s3_source import parse_url as parse_s3_url
from raw_loader.schema import ensure_schema
from raw_loader.session import connect

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "sample"

EXIT_OK = 0
EXIT_DATABASE = 1
EXIT_USAGE = 2
EXIT_PATHS_SKIPPED = 3
# Object storage (an s3:// feed): by the kind of ObjectStoreError.
EXIT_STORE_UNREACHABLE = 4
EXIT_STORE_DENIED = 5
EXIT_STORE_NO_BUCKET = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
# Vanished files named in the log (the count is always given).
VANISHED_NAMED = 5

EPILOG = """\
examples:
  python ingest/load_raw.py                          # the generated sample in data/sample
  python ingest/load_raw.py --data-dir /data/sparkify
  python ingest/load_raw.py --log-data /mnt/feed/logs # only new event logs

exit codes:
  0    every file was loaded or was already loaded (rejected lines are not an error:
       they are in raw.rejects, counted in the summary); the summary says how
       many loads (rows in raw.loads) this run committed, and their load ids
  1    the database could not be reached or refused the load (the message names
       the SQLSTATE and what to do: a lost connection, a full disk, a cancelled
       statement...), a file could not be read (a corrupt .json.gz: fix or move
       it), or a worker failed (the other workers are stopped; what they had
       committed stays, re-run to finish)
  2    usage error: a folder that does not exist, or no data folder at all; or
       the feed would replace files loaded from another feed (another folder or
       s3:// prefix): load it into another database (PGDATABASE=...), or pass
       --replace-other-feed
  3    loaded, but some paths were skipped: a folder or file that could not be
       listed (no permission, a path over the system's limit), named in the log;
       everything else was loaded
  4    s3:// feed: the store did not answer (endpoint unreachable, or still
       failing after AWS_MAX_ATTEMPTS tries with backoff); re-run to finish
  5    s3:// feed: the store refused the credentials or the access
  6    s3:// feed: no such bucket
  130  interrupted (Ctrl-C): the batch under way was rolled back, re-run to finish
  143  terminated (SIGTERM): the batch under way was rolled back, re-run to finish

On any failure, the batches already committed stay, each a complete load in
raw.loads; a batch under way leaves no rows and no raw.loads row.
"""

log = logging.getLogger("load_raw")


class UsageError(Exception):
    """Bad arguments: said in one line, exit code 2."""


class ServerError(Exception):
    """PostgreSQL failed the load after it began: what and what to do, in one line
    (raw_loader.errors.describe, by SQLSTATE); exit code 1."""


class Terminated(SystemExit):
    """SIGTERM: unwinds like Ctrl-C (batches under way roll back); exit code 143.

    A SystemExit, because psycopg treats that (and KeyboardInterrupt) as an
    interruption: it cancels the statement under way, so the transaction can
    roll back cleanly."""


@contextlib.contextmanager
def _described() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise ServerError(describe(exc)) from exc


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(EXIT_TERMINATED)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="load_raw.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=_location,
        help="folder or s3://bucket/prefix holding song_data/ and log_data/ "
        "(default: data/sample, the generated sample)",
    )
    parser.add_argument(
        "--song-data",
        type=_location,
        help="folder or s3:// prefix of song files (default: DATA_DIR/song_data)",
    )
    parser.add_argument(
        "--log-data",
        type=_location,
        help="folder or s3:// prefix of event logs (default: DATA_DIR/log_data)",
    )
    parser.add_argument(
        "-w",
        "--workers",
        type=_positive,
        default=default_workers(),
        help="processes loading at once, each with its own connection "
        "(default: the CPU count, %(default)s here)",
    )
    parser.add_argument(
        "--batch-files",
        type=_positive,
        default=BATCH_MAX_FILES,
        help="at most this many files per transaction (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-mb",
        type=_positive,
        default=BATCH_MAX_BYTES // 2**20,
        help="at most this many MB of files per transaction; a bigger file goes alone "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=_size,
        default=DEFAULT_MAX_LINE_BYTES,
        help="a longer line is a reject (too_long); suffixes K, M, G "
        "(default: %(default)s, 64M: the warehouse is tested to build with it)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="hash every file already loaded, even one whose size and modification "
        "time are as recorded (slower: reads the whole feed; catches a file changed "
        "by cp -p, rsync -t or a restore)",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove the rows, rejects and manifest rows of loaded files that are no "
        "longer in the feed (without it they stay, and are counted and named)",
    )
    parser.add_argument(
        "--replace-other-feed",
        action="store_true",
        help="replace files of the same name that were loaded from another feed "
        "(another folder or s3:// prefix); without it the load is refused",
    )
    parser.add_argument(
        "--lake",
        type=Path,
        default=os.environ.get("SPARKIFY_LAKE") or None,
        help="land the feed as Parquet files in this folder, for Spark (dbt --target spark), "
        "instead of into PostgreSQL; the same contract (docs/spark.md). "
        "Default: SPARKIFY_LAKE, if set",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every batch")
    return parser


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    scale = units.get(text[-1:].upper(), 1)
    try:
        value = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _location(text: str) -> Path | str:
    """A folder, or an s3:// URL (kept as text)."""
    if is_s3_url(text):
        try:
            parse_s3_url(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return Path(text)


def resolve_roots(args: argparse.Namespace) -> dict[str, Path] | dict[str, str]:
    """Which folder (or s3:// prefix) feeds which landing table."""
    explicit = {"songs": args.song_data, "events": args.log_data}
    given = [args.data_dir, *explicit.values()]
    if any(isinstance(value, str) for value in given):
        return _s3_roots(args.data_dir, explicit)
    if args.data_dir is None and any(explicit.values()):
        roots = {kind: path for kind, path in explicit.items() if path is not None}
    else:
        data_dir = args.data_dir or DEFAULT_DATA_DIR
        if not data_dir.is_dir():
            hint = " (generate the sample with 'make data')" if args.data_dir is None else ""
            raise UsageError(f"no such folder: {data_dir}{hint}")
        roots = {
            "songs": args.song_data or data_dir / "song_data",
            "events": args.log_data or data_dir / "log_data",
        }
        missing = [kind for kind, path in roots.items() if not path.is_dir()]
        if len(missing) == 2:
            raise UsageError(f"{data_dir} holds neither song_data/ nor log_data/")
        for kind in missing:
            log.warning("no %s folder at %s: loading the other one only", kind, roots.pop(kind))
    for path in roots.values():
        if not path.is_dir():
            raise UsageError(f"no such folder: {path}")
    return roots


def _s3_roots(
    data_dir: Path | str | None, explicit: dict[str, Path | str | None]
) -> dict[str, str]:
    """The s3:// prefixes of each kind; their being empty is found when listed."""
    given = [data_dir, *explicit.values()]
    if any(isinstance(value, Path) for value in given):
        raise UsageError("the feed is either in folders or in s3://, not both")
    if data_dir is None:
        return {kind: str(url) for kind, url in explicit.items() if url is not None}
    base = str(data_dir).rstrip("/")
    return {
        kind: str(explicit[kind] or f"{base}/{prefix}")
        for kind, prefix in (("songs", "song_data"), ("events", "log_data"))
    }


def run(
    roots: dict[str, Path] | dict[str, str],
    workers: int = 1,
    batch_files: int = BATCH_MAX_FILES,
    batch_bytes: int = BATCH_MAX_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    verify: bool = False,
    prune_vanished: bool = False,
    replace_other_feed: bool = False,
) -> dict:
    started = time.monotonic()
    source = _source(roots)
    with contextlib.ExitStack() as stack:
        pool = (
            stack.enter_context(WorkerPool(source, workers, max_line_bytes))
            if workers > 1
            else None
        )
        return _run(
            source,
            pool,
            batch_files,
            batch_bytes,
            started,
            max_line_bytes=max_line_bytes,
            verify=verify,
            prune_vanished=prune_vanished,
            replace_other_feed=replace_other_feed,
        )


def _source(roots: dict[str, Path] | dict[str, str]) -> LocalFileSource | S3FileSource:
    """Local folders, or s3:// prefixes (see resolve_roots: never a mix)."""
    if all(isinstance(root, Path) for root in roots.values()):
        return LocalFileSource(roots)  # type: ignore[arg-type]
    return S3FileSource({kind: parse_s3_url(str(root)) for kind, root in roots.items()})


def _run(
    source: LocalFileSource | S3FileSource,
    pool: WorkerPool | None,
    batch_files: int,
    batch_bytes: int,
    started: float,
    *,
    max_line_bytes: int,
    verify: bool,
    prune_vanished: bool,
    replace_other_feed: bool,
) -> dict:
    files, skipped = source.list_files()
    if isinstance(source, S3FileSource):
        _check_s3_roots(source, files)
    for name in skipped:
        log.warning("skipped %s: not a .json or .json.gz file", name)
    for name, why in source.unreadable:
        log.warning("skipped %s: cannot be listed (%s); the rest is loaded", name, why)
    listed = time.monotonic()
    with connect("sparkify load_raw") as conn, _described():
        ensure_schema(conn)
        _take_load_lock(conn)
        drain_earlier_workers(conn)
        load_plan = plan(
            conn,
            source,
            files,
            kinds=source.roots.keys(),
            verify=verify,
            unlisted=[name for name, _ in source.unreadable],
        )
        _other_feed(load_plan.other_feed, replace_other_feed)
        restamp(conn, load_plan.restamped)
        prune_loads = _vanished(conn, load_plan.vanished, prune_vanished)
        replaced = sum(item.replaces for item in load_plan.to_load)
        # Events largest first, so the big files start early and the small ones
        # fill the gaps; song files in name order.
        ordered = sorted(
            load_plan.to_load,
            key=lambda item: (item.file.kind, -item.file.size if item.file.kind == "events" else 0),
        )
        if pool is not None and isinstance(source, S3FileSource):
            # An object costs a round trip, not its few bytes: spread small files
            # over every worker, not one size-limited batch (on disk, they fit one).
            batch_files = min(batch_files, max(1, -(-len(ordered) // len(pool.processes))))
        work = list(batches(ordered, batch_bytes, batch_files))
        workers = min(len(pool.processes), len(work)) if pool and len(work) > 1 else 1
        log.info(
            "%d files found: %d new, %d changed, %d already loaded; %d batches, %d %s",
            len(files),
            len(load_plan.to_load) - replaced,
            replaced,
            len(load_plan.unchanged),
            len(work),
            workers,
            "worker" if workers == 1 else "workers",
        )
        progress = Progress(
            total_files=len(load_plan.to_load),
            total_bytes=sum(item.file.size for item in load_plan.to_load),
        )
        planned = time.monotonic()

        def committed(worker: object, results: list[FileResult]) -> None:
            progress.add(results, worker)
            for result in results:
                if result.rejects:
                    log.warning(
                        "%s: %d rejected lines (see raw.rejects)", result.file.name, result.rejects
                    )

        if pool is None or len(work) <= 1:  # in this process, on this connection
            for batch in work:
                committed(
                    None,
                    load_batch(
                        conn,
                        source,
                        batch,
                        on_read=lambda n: progress.reading(None, n),
                        max_line_bytes=max_line_bytes,
                    ),
                )
        else:
            pool.run(work, committed, progress.reading)
    finished = time.monotonic()
    load_ids = progress.load_ids | set(prune_loads)
    return {
        "files_found": len(files),
        "files_loaded": len(load_plan.to_load),
        "files_replaced": replaced,
        "files_unchanged": len(load_plan.unchanged),
        "files_skipped": len(skipped),
        "paths_unreadable": [name for name, _ in source.unreadable],
        "files_vanished": [name for _, name in load_plan.vanished],
        "files_pruned": len(load_plan.vanished) if prune_vanished else 0,
        "event_rows": progress.rows_by_kind["events"],
        "song_rows": progress.rows_by_kind["songs"],
        "rejects": progress.rejects,
        "loads": len(load_ids),
        "first_load_id": min(load_ids, default=0),
        "last_load_id": max(load_ids, default=0),
        "workers": workers,
        "batches": len(work),
        "seconds": finished - started,
        "seconds_listing": listed - started,
        "seconds_planning": planned - listed,
        "seconds_loading": finished - planned,
    }


def _other_feed(other: list[tuple[str, str]], replace_them: bool) -> None:
    """Refuse to replace files that came from another feed, unless asked to."""
    if not other:
        return
    name, root = other[0]
    if not replace_them:
        raise UsageError(
            f"{len(other)} files of this feed would replace files loaded from another "
            f"feed (e.g. {name} from {root}): load this feed into another database "
            "(PGDATABASE=another_name; the embedded server creates it), or pass "
            "--replace-other-feed to replace them"
        )
    log.warning(
        "replacing %d files loaded from another feed (e.g. %s from %s)", len(other), name, root
    )


def _check_s3_roots(source: S3FileSource, files: list) -> None:
    """Like missing folders: a prefix with no object at all is said, and if no
    prefix holds one it is a usage error (a typo in the URL, most likely)."""
    listed = {file.kind for file in files}
    empty = [kind for kind in source.roots if kind not in listed]
    if len(empty) == len(source.roots):
        where = " nor ".join(str(source.roots[kind]) for kind in sorted(empty))
        raise UsageError(f"no .json or .json.gz object under {where}")
    for kind in empty:
        log.warning("no %s objects under %s: loading the other one only", kind, source.roots[kind])


def _vanished(
    conn: psycopg.Connection, vanished: list[tuple[str, str]], prune_them: bool
) -> list[int]:
    """Say which loaded files are no longer in the feed; with --prune, remove
    them (one load per kind). Returns the prune loads' ids."""
    if not vanished:
        return []
    names = [name for _, name in vanished]
    shown = ", ".join(names[:VANISHED_NAMED]) + (", ..." if len(names) > VANISHED_NAMED else "")
    if not prune_them:
        log.warning(
            "%d loaded files are no longer in the feed (their rows stay in raw; "
            "--prune removes them): %s",
            len(names),
            shown,
        )
        return []
    load_ids = []
    for kind in sorted({kind for kind, _ in vanished}):
        load_ids.append(prune(conn, kind, [name for k, name in vanished if k == kind]))
    log.warning("pruned %d files no longer in the feed: %s", len(names), shown)
    return load_ids


def _take_load_lock(conn: psycopg.Connection) -> None:
    """One loader at a time per database: a second loader waits, and says so.

    Only loaders take this lock. Readers (dbt) do not wait for it and need not:
    a load's rows become visible in the same commit as its raw.loads row.
    """
    key = "select hashtext('sparkify.load_raw')"
    got = conn.execute(f"select pg_try_advisory_lock(({key}))").fetchone()[0]
    if not got:
        log.warning("another load_raw is running against this database: waiting for it to finish")
        conn.execute(f"select pg_advisory_lock(({key}))")


def summary_line(stats: dict) -> str:
    loads = stats["loads"]
    ids = (
        ""
        if not loads
        else f", load id {stats['first_load_id']}"
        if loads == 1
        else f", load ids {stats['first_load_id']}-{stats['last_load_id']}"
    )
    return (
        f"loaded {stats['files_loaded']} files ({stats['files_replaced']} replaced), "
        f"{stats['files_unchanged']} unchanged, {stats['files_skipped']} skipped as not data; "
        f"{stats['event_rows']} event rows, {stats['song_rows']} song rows, "
        f"{stats['rejects']} rejects; {loads} load{'s' if loads != 1 else ''}{ids}; "
        f"{len(stats['files_vanished'])} no longer in the feed "
        f"({stats['files_pruned']} pruned), "
        f"{len(stats['paths_unreadable'])} paths unreadable; "
        f"in {stats['seconds']:.1f} s "
        f"(listing {stats['seconds_listing']:.1f} s, planning {stats['seconds_planning']:.1f} s, "
        f"loading {stats['seconds_loading']:.1f} s with {stats['workers']} "
        f"worker{'s' if stats['workers'] != 1 else ''})"
    )


def main(argv: list[str] | None = None) -> int:
    # From here on Ctrl-C is a KeyboardInterrupt and SIGTERM a Terminated, both
    # said in one line below (load_raw.py handles them while importing).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(
            "load_raw: interrupted; the batch under way was rolled back, re-run to finish",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Terminated:
        print(
            "load_raw: terminated (SIGTERM); the batch under way was rolled back, re-run to finish",
            file=sys.stderr,
        )
        return EXIT_TERMINATED


def _store_exit(kind: str) -> int:
    return {UNREACHABLE: EXIT_STORE_UNREACHABLE, NO_BUCKET: EXIT_STORE_NO_BUCKET}.get(
        kind, EXIT_STORE_DENIED
    )


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="load_raw: %(message)s", stream=sys.stderr)
    try:
        if args.lake is not None:
            return _print_summary(_run_lake(args), args.json)
        stats = run(
            resolve_roots(args),
            workers=args.workers,
            batch_files=args.batch_files,
            batch_bytes=args.batch_mb * 2**20,
            max_line_bytes=args.max_line_bytes,
            verify=args.verify,
            prune_vanished=args.prune,
            replace_other_feed=args.replace_other_feed,
        )
    except UsageError as exc:
        print(f"load_raw: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnreadableFile as exc:
        print(
            f"load_raw: cannot read {exc}; nothing of its batch was loaded: "
            "fix or move the file, then re-run",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    except ServerError as exc:
        print(f"load_raw: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except ObjectStoreError as exc:
        print(f"load_raw: {exc}", file=sys.stderr)
        return _store_exit(exc.kind)
    except psycopg.OperationalError as exc:
        print(f"load_raw: cannot reach PostgreSQL: {one_line(exc)}", file=sys.stderr)
        print(
            "load_raw: set PGHOST/PGPORT/PGUSER/PGDATABASE, or run through "
            "'python ingest/embedded_pg.py exec -- ...' (as 'make load' does)",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    except psycopg.Error as exc:
        print(f"load_raw: {describe(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    except WorkerFailed as exc:
        print(f"load_raw: {exc}; the other workers were stopped, re-run to finish", file=sys.stderr)
        return _store_exit(exc.store_kind) if exc.store_kind else EXIT_DATABASE
    except OSError as exc:
        print(f"load_raw: cannot read a file: {one_line(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    return _print_summary(stats, args.json)


def _run_lake(args: argparse.Namespace) -> dict:
    from raw_loader import lake  # pyarrow, imported only for a lake

    return lake.run(
        _source(resolve_roots(args)),
        args.lake,
        batch_files=args.batch_files,
        batch_bytes=args.batch_mb * 2**20,
        max_line_bytes=args.max_line_bytes,
        verify=args.verify,
        prune_vanished=args.prune,
    )


def _print_summary(stats: dict, as_json: bool) -> int:
    print(json.dumps(stats) if as_json else summary_line(stats))
    if stats["paths_unreadable"]:
        print(
            f"load_raw: loaded, but {len(stats['paths_unreadable'])} paths could not be "
            "listed and were skipped (named above): exit code 3",
            file=sys.stderr,
        )
        return EXIT_PATHS_SKIPPED
    return EXIT_OK
